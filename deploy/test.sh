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
cd build
ctest --output-on-failure --timeout 300 "$@"
