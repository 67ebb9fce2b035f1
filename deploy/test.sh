#!/usr/bin/env bash
# The README's second command: installs what is missing, builds, and runs
# every test through CTest. The tests start what they need themselves: a
# private PostgreSQL (CTest fixture), the mock LLM and chatd.
#   CHAT_SANITIZE=address deploy/test.sh   the same in build-asan (ASan, UBSan)
#   CHAT_SANITIZE=thread deploy/test.sh    the same in build-tsan (TSan)
# Arguments go to ctest (e.g. -R integration -j2).
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/install-deps.sh
build_dir=build
if [ -n "${CHAT_SANITIZE:-}" ]; then
  source deploy/sanitizers/env.sh
  # Reports of an earlier run must not fail this one.
  rm -rf "$CHAT_SANITIZER_LOGS"
fi
start=$(date +%s)
deploy/build.sh
echo "build ($build_dir): $(( $(date +%s) - start )) s"
# playwright-core for the browser tests, from tests/e2e/package-lock.json.
[ -d tests/e2e/node_modules ] || (cd tests/e2e && npm ci --no-audit --no-fund)
start=$(date +%s)
rc=0
(cd "$build_dir" && ctest --output-on-failure --timeout 300 "$@") || rc=$?
echo "tests ($build_dir): $(( $(date +%s) - start )) s"
if [ -n "${CHAT_SANITIZE:-}" ]; then
  # Every report of any program the suite ran (test binaries, chatd,
  # mock_llm, also those started by the browser and deploy tests) fails it.
  reports=$(find "$CHAT_SANITIZER_LOGS" -type f 2>/dev/null | sort)
  if [ -n "$reports" ]; then
    for f in $reports; do
      echo "=== sanitizer report $f"
      cat "$f"
    done
    echo "test.sh: $(echo "$reports" | wc -l) sanitizer report(s) in $CHAT_SANITIZER_LOGS" >&2
    [ "$rc" -ne 0 ] || rc=1
  fi
fi
exit "$rc"
