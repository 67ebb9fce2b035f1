#!/usr/bin/env bash
# Saturation against the ceiling, in one run (issue 9): the same chat_load
# (USERS connections, no think time, the mock's pacing: 100 ms to first
# token, 10 ms a token, 50 tokens) first against chatd (+ mock_llm +
# private durable PostgreSQL), then against chat_ceiling (the protocol's
# happy path alone, pacing the chunks itself), ROUNDS times in turn. Prints
# the steady-state chunks/s of each (counted from WARMUP_S to RUN_S seconds
# after the start), the server's CPU per chunk, and chatd / ceiling.
#
#   bench/run_saturation.sh [USERS] [-- extra chat_load flags]
#
# env: USERS (2000), RUN_S (25), WARMUP_S (10), ROUNDS (1), RAMP_MS (4000),
#      BUILD_DIR (build), CHAT_THREADS, CEILING_THREADS (2), CHATD_PRELOAD,
#      PG_PORT (55498), PERF_DATA=FILE (perf record -g of chatd in round 1,
#      WARMUP_S .. WARMUP_S+10 s), KEEP_LOGS=1.
# Needs USERS + a few open files in chat_load (limit here: 20,000).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
ROOT=$(pwd)
BUILD_DIR=${BUILD_DIR:-build}
N=${1:-${USERS:-2000}}
shift $(( $# >= 1 ? 1 : 0 )) || true
[ "${1:-}" = -- ] && shift
EXTRA=("$@")
RUN_S=${RUN_S:-25}; WARMUP_S=${WARMUP_S:-10}
TTFT=100; DELAY=10; TOKENS=50
BIN=$(cd "$BUILD_DIR/bin" && pwd)
for b in chat_load chatd mock_llm chat_ceiling; do
  [ -x "$BIN/$b" ] || { echo "missing $BIN/$b: cmake --build $BUILD_DIR --target $b" >&2; exit 2; }
done
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

TMP=$(mktemp -d /tmp/chat-sat-XXXXXX)
chmod 755 "$TMP"
MOCK_PID=""; SERVER_PID=""
cleanup() {
  set +e
  trap '' INT TERM
  [ -n "$SERVER_PID" ] && stop_pid "$SERVER_PID"
  [ -n "$MOCK_PID" ] && stop_pid "$MOCK_PID"
  "$ROOT/deploy/postgres.sh" stop "$TMP/pg" >/dev/null 2>&1
  if [ "${KEEP_LOGS:-0}" = 1 ]; then echo "logs kept in $TMP" >&2; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
TICKS=$(getconf CLK_TCK)

DATABASE_URL=$("$ROOT/deploy/postgres.sh" start "$TMP/pg" "${PG_PORT:-55498}")
export DATABASE_URL
"$BIN/mock_llm" --listen 127.0.0.1:0 --ttft-ms $TTFT --token-delay-ms $DELAY --tokens $TOKENS \
  >"$TMP/mock.log" 2>&1 &
MOCK_PID=$!
MOCK_PORT=$(wait_line "$TMP/mock.log" 'listening on' "$MOCK_PID" | sed -E 's/.*127\.0\.0\.1:([0-9]+).*/\1/')
SECRET=$(head -c 48 /dev/urandom | base64 | tr -d '\n')

# Runs chat_load against PORT; prints "CHUNKS_PER_S CPU_US_PER_CHUNK OK|FAILED".
measure() { # NAME PORT PID ROUND
  local out="$TMP/$1-$4.txt" c0 c1 rate perf_pid=""
  c0=$(cpu_ticks "$3")
  if [ -n "${PERF_DATA:-}" ] && [ "$1" = chatd ] && [ "$4" = 1 ]; then
    (sleep "$WARMUP_S"; exec perf record -g -o "$PERF_DATA" -p "$3" -- sleep 10) >"$TMP/perf.log" 2>&1 &
    perf_pid=$!
  fi
  CHAT_JWT_SECRET="$SECRET" "$BIN/chat_load" --url "ws://127.0.0.1:$2/api/v1/chat/ws" \
    --connections "$N" --messages 100000 --run-s "$RUN_S" --warmup-s "$WARMUP_S" \
    --ramp-ms "${RAMP_MS:-4000}" --connect-timeout-ms 30000 --timeout-ms 60000 --duration-limit $((RUN_S + 120)) \
    "${EXTRA[@]}" >"$out" 2>&1 || true
  c1=$(cpu_ticks "$3")
  [ -n "$perf_pid" ] && wait "$perf_pid" 2>/dev/null
  rate=$(grep -m1 'steady state:' "$out" | sed -E 's/.*steady state: ([0-9.]+) chunks.*/\1/')
  local total; total=$(grep -m1 'throughput:' "$out" | sed -E 's/.*messages\/s, ([0-9.]+) chunks\/s \(over ([0-9.]+) s\).*/\1 \2/')
  local result; result=$(grep -m1 '^result:' "$out" | awk '{print $2}')
  [ "${VERBOSE:-0}" = 1 ] && cat "$out" >&2
  [ "$result" = OK ] || { echo "--- $1 round $4 chat_load output:" >&2; cat "$out" >&2; }
  # CPU per chunk: the server's CPU over the whole load / all chunks.
  awk -v r="$rate" -v t="$total" -v a="$c0" -v b="$c1" -v k="$TICKS" -v res="${result:-FAILED}" \
    'BEGIN{split(t, x, " "); n = x[1] * x[2]; printf "%s %.1f %s\n", r, (n > 0 ? (b - a) / k * 1e6 / n : 0), res}'
}

printf 'saturation: %s users, no think time, mock %s ms + %s ms x %s tokens, steady state %s..%s s\n' \
  "$N" $TTFT $DELAY $TOKENS "$WARMUP_S" "$RUN_S"
rc=0
for round in $(seq 1 "${ROUNDS:-1}"); do
  (
    export CHAT_JWT_SECRET="$SECRET" CHAT_LISTEN=127.0.0.1:0 \
      OPENAI_BASE_URL="http://127.0.0.1:$MOCK_PORT/v1" CHAT_USER_SENDS_PER_MIN=0 \
      CHAT_PROVIDER_MAX_STREAMS=${CHAT_PROVIDER_MAX_STREAMS:-5000}
    [ -n "${CHAT_THREADS:-}" ] && export CHAT_THREADS
    [ -n "${CHATD_PRELOAD:-}" ] && export LD_PRELOAD="$CHATD_PRELOAD"
    exec "$BIN/chatd"
  ) >"$TMP/chatd.out" 2>"$TMP/chatd-$round.log" &
  SERVER_PID=$!
  PORT=$(wait_line "$TMP/chatd-$round.log" '"event":"listening"' "$SERVER_PID" \
    | sed -E 's/.*"address":"127\.0\.0\.1:([0-9]+)".*/\1/')
  read -r c_rate c_cpu c_res < <(measure chatd "$PORT" "$SERVER_PID" "$round")
  stop_pid "$SERVER_PID"; SERVER_PID=""
  if grep -qE '"level":"(warn|error)"' "$TMP/chatd-$round.log"; then
    echo "chatd warn/error lines: $(grep -cE '"level":"(warn|error)"' "$TMP/chatd-$round.log"), first 5:"
    grep -E '"level":"(warn|error)"' "$TMP/chatd-$round.log" | head -5
  fi

  "$BIN/chat_ceiling" --listen 127.0.0.1:0 --threads "${CEILING_THREADS:-2}" --ttft-ms $TTFT \
    --token-delay-ms $DELAY --tokens $TOKENS >"$TMP/ceiling.log" 2>&1 &
  SERVER_PID=$!
  PORT=$(wait_line "$TMP/ceiling.log" '^listening' "$SERVER_PID" | awk '{print $2}')
  read -r k_rate k_cpu k_res < <(measure ceiling "$PORT" "$SERVER_PID" "$round")
  stop_pid "$SERVER_PID"; SERVER_PID=""

  printf 'round %s: chatd %s chunks/s (%s us cpu/chunk, %s) | ceiling %s chunks/s (%s us cpu/chunk, %s) | ratio %s | load average %s\n' \
    "$round" "$c_rate" "$c_cpu" "$c_res" "$k_rate" "$k_cpu" "$k_res" \
    "$(awk -v a="$c_rate" -v b="$k_rate" 'BEGIN{printf "%.2f", (b > 0 ? a / b : 0)}')" \
    "$(cut -d' ' -f1-3 /proc/loadavg)"
  [ "$c_res" = OK ] && [ "$k_res" = OK ] || rc=1
done
exit $rc
