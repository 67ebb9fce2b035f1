#!/usr/bin/env bash
# The README's second command: installs what is missing, builds, and runs
# every test through CTest. The tests start what they need themselves: a
# private PostgreSQL (CTest fixture), the mock LLM and chatd.
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/install-deps.sh
start=$(date +%s)
deploy/build.sh
echo "build: $(( $(date +%s) - start )) s"
# playwright-core for the browser tests, from tests/e2e/package-lock.json.
[ -d tests/e2e/node_modules ] || (cd tests/e2e && npm ci --no-audit --no-fund)
cd build
ctest --output-on-failure --timeout 300 "$@"
