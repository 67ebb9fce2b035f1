# Sourced by deploy/build.sh and deploy/test.sh (from the repository root)
# when CHAT_SANITIZE is set: picks the build folder and the test
# PostgreSQL's port, and exports the sanitizers' options so that every
# program of the suite (test binaries, and the chatd and mock_llm they
# start, which inherit the environment) runs with them.
#
#   CHAT_SANITIZE=address  build-asan, ASan + LeakSanitizer + UBSan, port 55436
#   CHAT_SANITIZE=thread   build-tsan, TSan, port 55437
#
# Reports go to files, <build folder>/sanitizer-logs/report.<program>.<pid>,
# not to stderr: the integration harness fails the test whose chatd or
# mock_llm wrote one, and deploy/test.sh fails the run while any exists.
# Suppressions (deploy/sanitizers/*.supp) are for third-party code only.
case "${CHAT_SANITIZE:-}" in
  address) build_dir=build-asan pg_port=55436 ;;
  thread) build_dir=build-tsan pg_port=55437 ;;
  *)
    echo "CHAT_SANITIZE must be address or thread, not '${CHAT_SANITIZE:-}'" >&2
    exit 2
    ;;
esac
_san_supp=$(pwd)/deploy/sanitizers
export CHAT_SANITIZER_LOGS=$(pwd)/$build_dir/sanitizer-logs
mkdir -p "$CHAT_SANITIZER_LOGS"
_san_common="log_path=$CHAT_SANITIZER_LOGS/report:log_exe_name=1"
# UBSan: only the `null` check is recoverable (see cmake/sanitizers.cmake),
# so that its suppressions work; halt_on_error makes every report fatal.
export ASAN_OPTIONS="$_san_common:detect_leaks=1:check_initialization_order=1:strict_init_order=1"
export UBSAN_OPTIONS="$_san_common:print_stacktrace=1:halt_on_error=1:suppressions=$_san_supp/ubsan.supp"
export LSAN_OPTIONS="$_san_common:suppressions=$_san_supp/lsan.supp:print_suppressions=0"
export TSAN_OPTIONS="$_san_common:suppressions=$_san_supp/tsan.supp:second_deadlock_stack=1:history_size=4"
unset _san_supp _san_common
