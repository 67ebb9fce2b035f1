# Shared by the bench/run_*.sh scripts (sourced, not run).

# stop_pid PID: SIGTERM, then SIGKILL after 40 s (chatd drains up to 30 s).
stop_pid() {
  local i
  kill -TERM "$1" 2>/dev/null || return 0
  for i in $(seq 1 400); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$1" 2>/dev/null; then echo "pid $1 ignored SIGTERM for 40 s: SIGKILL" >&2; kill -KILL "$1"; fi
  wait "$1" 2>/dev/null || true
}

# wait_line FILE PATTERN PID -> prints the first line of FILE matching PATTERN
# (30 s; fails at once, showing FILE, if PID exits first).
wait_line() {
  local i
  for i in $(seq 1 300); do
    if grep -m1 -E "$2" "$1" 2>/dev/null; then return 0; fi
    kill -0 "$3" 2>/dev/null || { echo "process $3 exited:" >&2; cat "$1" >&2; return 1; }
    sleep 0.1
  done
  echo "timed out waiting for '$2' in $1" >&2; cat "$1" >&2; return 1
}
