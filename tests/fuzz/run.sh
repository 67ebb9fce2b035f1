#!/usr/bin/env bash
# Builds the libFuzzer targets with clang-14 into build-fuzz/ (its own
# folder, kept across runs; the gcc build in build/ is not touched) and runs
# each for a bounded number of executions or a time. See README.md here.
#
#   tests/fuzz/run.sh [--fresh] [--build-only] [LIBFUZZER_FLAG...] [TARGET...]
#     TARGET          e.g. jwt_fuzz (default: every target)
#     LIBFUZZER_FLAG  e.g. -runs=20000 or -max_total_time=60 (default -runs=20000)
#     --fresh         start from the seed corpus only (forget inputs found before)
#     --build-only    configure and build, run nothing
#   CHAT_FUZZ_BUILD_DIR  the build folder (default: <repo>/build-fuzz)
#
# Inputs the fuzzer finds go to build-fuzz/corpus/TARGET (the seeds in
# tests/fuzz/corpus/TARGET are only read); a crashing input is written to
# build-fuzz/artifacts/TARGET/ and the script fails (so is an input that runs
# over 60 s: -timeout=60, as 10 s tripped once on an allocator stall of a
# loaded machine). Exit 77 (a CTest skip)
# when clang-14 or libFuzzer (libclang-rt-14-dev) is not installed.
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
build=${CHAT_FUZZ_BUILD_DIR:-$src/build-fuzz}
all=(protocol_codec_fuzz ws_frames_fuzz jwt_fuzz openai_sse_fuzz anthropic_sse_fuzz
     http_request_fuzz)

fresh=0 build_only=0 flags=() targets=()
for a in "$@"; do
  case $a in
    --fresh) fresh=1 ;;
    --build-only) build_only=1 ;;
    -*) flags+=("$a") ;;
    *) targets+=("$a") ;;
  esac
done
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")
[ ${#flags[@]} -gt 0 ] || flags=(-runs=20000)

if ! command -v clang++-14 >/dev/null || ! command -v clang-14 >/dev/null \
   || ! compgen -G "/usr/lib/llvm-14/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a" >/dev/null
then
  echo "fuzz: clang-14 or libclang-rt-14-dev is not installed (deploy/install-deps.sh): skipped"
  exit 77
fi

export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$src}
start=$(date +%s)
if [ ! -f "$build/CMakeCache.txt" ]; then
  generator=()
  command -v ninja >/dev/null && generator=(-G Ninja)
  CC=clang-14 CXX=clang++-14 cmake -S "$src" -B "$build" "${generator[@]}" \
    -DCHAT_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
cmake --build "$build" -j"${CHAT_FUZZ_JOBS:-2}" --target "${targets[@]}" | grep -v '^ninja: no work' || true
[ -x "$build/fuzz/${targets[0]}" ] || { echo "fuzz: build failed" >&2; exit 1; }
echo "fuzz: build ${targets[*]}: $(( $(date +%s) - start )) s"
[ $build_only = 0 ] || exit 0

for t in "${targets[@]}"; do
  [ -x "$build/fuzz/$t" ] || { echo "fuzz: $t not built" >&2; exit 1; }
  corpus=$build/corpus/$t
  artifacts=$build/artifacts/$t
  [ $fresh = 0 ] || rm -rf "$corpus"
  mkdir -p "$corpus" "$artifacts"
  t0=$(date +%s)
  echo "fuzz: $t ${flags[*]}"
  # The found-inputs folder first (libFuzzer writes there), the seeds second.
  if ! "$build/fuzz/$t" -artifact_prefix="$artifacts/" -timeout=60 -print_final_stats=1 \
       "${flags[@]}" "$corpus" "$src/tests/fuzz/corpus/$t" >"$build/$t.log" 2>&1; then
    tail -n 60 "$build/$t.log"
    echo "fuzz: $t FAILED; input in $artifacts/, log $build/$t.log" >&2
    exit 1
  fi
  grep -E '^(#[0-9]+ +DONE|Done [0-9]+ runs|stat::number_of_executed_units|stat::peak_rss_mb)' \
    "$build/$t.log" || true
  echo "fuzz: $t: $(( $(date +%s) - t0 )) s"
done
