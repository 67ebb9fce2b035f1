#!/usr/bin/env bash
# Configures and builds every program into build/bin (OPERATIONS.md).
#   deploy/build.sh [TARGET...]   only these targets (e.g. chatd mock_llm)
set -euo pipefail
cd "$(dirname "$0")/.."
generator=()
command -v ninja >/dev/null && [ ! -f build/Makefile ] && generator=(-G Ninja)
cmake -S . -B build "${generator[@]}" -DCMAKE_BUILD_TYPE=Release >/dev/null
targets=()
[ $# -eq 0 ] || targets=(--target "$@")
cmake --build build -j"$(nproc)" "${targets[@]}"
