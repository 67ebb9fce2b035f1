#!/usr/bin/env bash
# Configures and builds every program into build/bin (OPERATIONS.md).
#   deploy/build.sh [TARGET...]   only these targets (e.g. chatd mock_llm)
# CHAT_SANITIZE=address|thread builds with sanitizers into build-asan or
# build-tsan instead (deploy/sanitizers/env.sh); build/ is left alone.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=build
cmake_args=()
if [ -n "${CHAT_SANITIZE:-}" ]; then
  # The build runs the test binaries (doctest lists their cases): with the
  # sanitizers' options too.
  source deploy/sanitizers/env.sh
  cmake_args=(-DCHAT_SANITIZE="$CHAT_SANITIZE" -DCHAT_TEST_PG_PORT="$pg_port")
  if [ "$CHAT_SANITIZE" = thread ]; then
    # CAF instrumented too, or TSan reports every message between actors
    # (deploy/sanitizers/caf-tsan.sh says why).
    deploy/sanitizers/caf-tsan.sh "$(pwd)/.data/caf-tsan"
    cmake_args+=(-DCMAKE_PREFIX_PATH="$(pwd)/.data/caf-tsan")
  fi
fi
generator=()
command -v ninja >/dev/null && [ ! -f "$build_dir/Makefile" ] && generator=(-G Ninja)
cmake -S . -B "$build_dir" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release "${cmake_args[@]}" >/dev/null
targets=()
[ $# -eq 0 ] || targets=(--target "$@")
cmake --build "$build_dir" -j"$(nproc)" "${targets[@]}"
