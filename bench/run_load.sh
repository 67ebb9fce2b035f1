#!/usr/bin/env bash
# Starts a private durable PostgreSQL, mock_llm and chatd, runs chat_load
# against them, then stops everything and removes the temp dir.
#
#   bench/run_load.sh [CONNECTIONS] [MESSAGES] [-- extra chat_load flags]
#
# env: BUILD_DIR (default build), PG_PORT (default 55499, a socket-only port),
#      MOCK_TTFT_MS (20), MOCK_TOKEN_DELAY_MS (10), MOCK_TOKENS (24),
#      USERS (default: one per connection), DURATION_LIMIT (120),
#      CHAT_THREADS (default: chatd's own default, the core count),
#      KEEP_LOGS=1 keeps the temp dir (logs) instead of deleting it,
#      METRICS_OUT=FILE saves chatd's /metrics after the load,
#      CHATD_PRELOAD (LD_PRELOAD for chatd only, e.g. an allocator),
#      PERF_DATA=FILE records chatd with `perf record -g` while chat_load runs
#      (after PERF_DELAY s, for PERF_SECONDS s: default 5 and 10; PERF_EVENT=EVENT
#      records that event instead of CPU time, e.g. probe_libc:malloc;
#      PERF_CALLGRAPH=dwarf unwinds without frame pointers),
#      PERF_STAT=EVENTS counts perf events of chatd over the whole load
#      (e.g. context-switches,probe_libc:malloc after
#      `perf probe -x /lib/x86_64-linux-gnu/libc.so.6 --add malloc`).
# Any other CHAT_* setting in the environment reaches chatd (e.g.
# CHAT_PROVIDER_MAX_STREAMS). Prints chatd's CPU time during the load.
set -euo pipefail

cd "$(dirname "$0")/.."
. bench/lib.sh
ROOT=$(pwd)
BUILD_DIR=${BUILD_DIR:-build}
N=${1:-50}; M=${2:-10}
shift $(( $# >= 2 ? 2 : $# )) || true
[ "${1:-}" = -- ] && shift
EXTRA=("$@")

if [ ! -x "$BUILD_DIR/bin/chat_load" ] || [ ! -x "$BUILD_DIR/bin/chatd" ] || [ ! -x "$BUILD_DIR/bin/mock_llm" ]; then
  if [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
    cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release >/dev/null
  fi
  cmake --build "$BUILD_DIR" --target chat_load chatd mock_llm -j2
fi
BIN=$(cd "$BUILD_DIR/bin" && pwd)

TMP=$(mktemp -d /tmp/chat-bench-XXXXXX)
chmod 755 "$TMP"   # postgres (when we are root) must reach $TMP/pg
MOCK_PID=""; CHATD_PID=""
cleanup() {
  set +e
  trap '' INT TERM
  [ -n "$CHATD_PID" ] && stop_pid "$CHATD_PID"
  [ -n "$MOCK_PID" ] && stop_pid "$MOCK_PID"
  "$ROOT/deploy/postgres.sh" stop "$TMP/pg" >/dev/null 2>&1
  if [ "${KEEP_LOGS:-0}" = 1 ]; then echo "logs kept in $TMP" >&2; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM


# Durable defaults: no --fast (fsync and synchronous_commit on).
DATABASE_URL=$("$ROOT/deploy/postgres.sh" start "$TMP/pg" "${PG_PORT:-55499}")
export DATABASE_URL

"$BIN/mock_llm" --listen 127.0.0.1:0 --ttft-ms "${MOCK_TTFT_MS:-20}" \
  --token-delay-ms "${MOCK_TOKEN_DELAY_MS:-10}" --tokens "${MOCK_TOKENS:-24}" \
  >"$TMP/mock.log" 2>&1 &
MOCK_PID=$!
MOCK_PORT=$(wait_line "$TMP/mock.log" 'listening on' "$MOCK_PID" | sed -E 's/.*127\.0\.0\.1:([0-9]+).*/\1/')

SECRET=$(head -c 48 /dev/urandom | base64 | tr -d '\n')
(
  export CHAT_JWT_SECRET="$SECRET" CHAT_LISTEN=127.0.0.1:0 \
    OPENAI_BASE_URL="http://127.0.0.1:$MOCK_PORT/v1" CHAT_USER_SENDS_PER_MIN=0
  [ -n "${CHAT_THREADS:-}" ] && export CHAT_THREADS
  [ -n "${CHATD_PRELOAD:-}" ] && export LD_PRELOAD="$CHATD_PRELOAD"
  exec "$BIN/chatd"
) >"$TMP/chatd.out" 2>"$TMP/chatd.log" &
CHATD_PID=$!
PORT=$(wait_line "$TMP/chatd.log" '"event":"listening"' "$CHATD_PID" \
  | sed -E 's/.*"address":"127\.0\.0\.1:([0-9]+)".*/\1/')
echo "postgres: $DATABASE_URL; mock_llm :$MOCK_PORT (ttft ${MOCK_TTFT_MS:-20} ms, ${MOCK_TOKEN_DELAY_MS:-10} ms/token, ${MOCK_TOKENS:-24} tokens); chatd :$PORT (pid $CHATD_PID)"

# CPU time (user + system, in clock ticks) of a process so far.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
TICKS=$(getconf CLK_TCK)
CPU0=$(cpu_ticks "$CHATD_PID")
MOCK_CPU0=$(cpu_ticks "$MOCK_PID")
# PostgreSQL's processes: the postmaster and its children (backends, walwriter, ...).
pg_ticks() {
  local pm t=0 p
  pm=$(head -1 "$TMP/pg/data/postmaster.pid" 2>/dev/null) || { echo 0; return; }
  for p in "$pm" $(pgrep -P "$pm" || true); do t=$((t + $(cpu_ticks "$p"))); done
  echo "$t"
}
PG_CPU0=$(pg_ticks)
PERF_PID=""
if [ -n "${PERF_DATA:-}" ]; then
  (sleep "${PERF_DELAY:-5}"; exec perf record ${PERF_EVENT:+-e "$PERF_EVENT"} ${PERF_PERIOD:+-c "$PERF_PERIOD"} --call-graph "${PERF_CALLGRAPH:-fp}" -o "$PERF_DATA" -p "$CHATD_PID" -- sleep "${PERF_SECONDS:-10}") \
    >"$TMP/perf.log" 2>&1 &
  PERF_PID=$!
fi

STAT_PID=""
if [ -n "${PERF_STAT:-}" ]; then
  perf stat -e "$PERF_STAT" -x, -o "$TMP/perf-stat.csv" -p "$CHATD_PID" >/dev/null 2>&1 &
  STAT_PID=$!
  sleep 0.5
fi

rc=0
CHAT_JWT_SECRET="$SECRET" /usr/bin/time -f '%U %S' -o "$TMP/load.time" "$BIN/chat_load" --url "ws://127.0.0.1:$PORT/api/v1/chat/ws" \
  --connections "$N" --messages "$M" ${USERS:+--users "$USERS"} \
  --duration-limit "${DURATION_LIMIT:-120}" "${EXTRA[@]}" || rc=$?

CPU1=$(cpu_ticks "$CHATD_PID")
# METRICS_OUT=FILE: chatd's /metrics after the load (its latency histograms).
[ -n "${METRICS_OUT:-}" ] && curl -s "http://127.0.0.1:$PORT/metrics" >"$METRICS_OUT"
echo "chatd cpu during the load: $(awk -v a="$CPU0" -v b="$CPU1" -v t="$TICKS" 'BEGIN{printf "%.2f", (b-a)/t}') s; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
# Where the cores went: everything in this benchmark shares them. (Backends
# that exited during the load are not counted in postgres's figure.)
echo "cpu of the others during the load: mock_llm $(awk -v a="$MOCK_CPU0" -v b="$(cpu_ticks "$MOCK_PID")" -v t="$TICKS" 'BEGIN{printf "%.2f", (b-a)/t}') s, postgres $(awk -v a="$PG_CPU0" -v b="$(pg_ticks)" -v t="$TICKS" 'BEGIN{printf "%.2f", (b-a)/t}') s, chat_load $(awk '{printf "%.2f", $1 + $2}' "$TMP/load.time" 2>/dev/null || echo ?) s"
[ -n "$PERF_PID" ] && { wait "$PERF_PID" 2>/dev/null || true; }
if [ -n "$STAT_PID" ]; then
  kill -INT "$STAT_PID" 2>/dev/null; wait "$STAT_PID" 2>/dev/null || true
  echo "chatd perf stat:"; grep -v '^#' "$TMP/perf-stat.csv" | grep -v '^$' | awk -F, '{print "  " $3 ": " $1}'
fi
if ! kill -0 "$CHATD_PID" 2>/dev/null; then echo "chatd DIED during the run" >&2; rc=1; fi
# chatd's warnings and errors during the run, if any.
if grep -qE '"level":"(warn|error)"' "$TMP/chatd.log"; then
  echo "chatd warn/error log lines ($(grep -cE '"level":"(warn|error)"' "$TMP/chatd.log")), first 20:"
  grep -E '"level":"(warn|error)"' "$TMP/chatd.log" | head -20
fi
exit $rc
