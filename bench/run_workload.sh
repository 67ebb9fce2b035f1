#!/usr/bin/env bash
# Workload A (issue 9): the mock LLM at 100 ms to first token, 10 ms a token,
# 50 tokens; USERS users each send MESSAGES messages one after another in one
# conversation, with THINK_MS (500) between a reply's done and the next send.
# Starts are spread over RAMP_MS (default 1100, about one send cycle) so that
# the users do not all send in the same millisecond. Runs bench/run_load.sh
# (private durable PostgreSQL, mock_llm, chatd, chat_load) and prints one
# summary line: ack, first chunk and first chunk - 100 ms (what chatd adds to
# the provider's time to first token), p50 and p99, in ms.
#
#   bench/run_workload.sh USERS [MESSAGES] [-- extra chat_load flags]
#
# env: THINK_MS (500), RAMP_MS (1100), RUNS (1: repeat, one summary line each),
#      OUT_DIR (keep each run's full output there),
#      and everything bench/run_load.sh takes (BUILD_DIR, CHAT_THREADS,
#      CHATD_PRELOAD, PERF_DATA, KEEP_LOGS, ...). CHAT_PROVIDER_MAX_STREAMS
#      defaults to 5000 here: at 3,000 users ~1,700 replies stream at once,
#      and chatd's default of 1,000 would queue the rest (a deployment knob,
#      not a cost of the token path).
set -euo pipefail
cd "$(dirname "$0")/.."
USERS_N=${1:?usage: bench/run_workload.sh USERS [MESSAGES] [-- flags]}
M=${2:-10}
shift $(( $# >= 2 ? 2 : $# )) || true
[ "${1:-}" = -- ] && shift
TTFT=100
export MOCK_TTFT_MS=$TTFT MOCK_TOKEN_DELAY_MS=10 MOCK_TOKENS=50
export CHAT_PROVIDER_MAX_STREAMS=${CHAT_PROVIDER_MAX_STREAMS:-5000}
export DURATION_LIMIT=${DURATION_LIMIT:-300}
rc=0
for run in $(seq 1 "${RUNS:-1}"); do
  out=$(mktemp /tmp/chat-workload-XXXXXX.txt)
  r=0
  bench/run_load.sh "$USERS_N" "$M" -- --think-ms "${THINK_MS:-500}" --ramp-ms "${RAMP_MS:-1100}" --connect-timeout-ms 30000 \
    --timeout-ms 60000 "$@" >"$out" 2>&1 || r=$?
  [ "${VERBOSE:-0}" = 1 ] && cat "$out"
  # p50 and p99 of a latency row of the measured sends.
  col() { awk -v row="$1" -v key="$2" '
      /^measured sends/ {m=1}
      m && index($0, "  " row " ") == 1 {
        if (match($0, key "= *[0-9.]+")) { v = substr($0, RSTART, RLENGTH); sub(/^[^=]*= */, "", v); print v }
        exit }' "$out"; }
  ack50=$(col ack p50); ack99=$(col ack p99)
  fc50=$(col "first chunk" p50); fc99=$(col "first chunk" p99)
  msgs=$(grep -m1 'throughput:' "$out" | sed -E 's/.*throughput: ([0-9.]+) messages.*/\1/')
  counts=$(grep -m1 '  messages: expected' "$out" | sed -E 's/^ *messages: //')
  cpu=$(grep -m1 '^chatd cpu' "$out" | sed -E 's/^chatd cpu during the load: //')
  others=$(grep -m1 '^cpu of the others' "$out" | sed -E 's/^cpu of the others during the load: //')
  result=$(grep -m1 '^result:' "$out" || echo "result: (none)")
  printf 'workload A, %s users x %s msgs, run %s: msgs/s %s | ack p50 %s p99 %s | first chunk p50 %s p99 %s | first chunk - %s ms p50 %s p99 %s | %s | chatd cpu %s | others: %s | %s\n' \
    "$USERS_N" "$M" "$run" "$msgs" "$ack50" "$ack99" "$fc50" "$fc99" "$TTFT" \
    "$(awk -v x="$fc50" -v t="$TTFT" 'BEGIN{printf "%.1f", x - t}')" \
    "$(awk -v x="$fc99" -v t="$TTFT" 'BEGIN{printf "%.1f", x - t}')" "$counts" "$cpu" "$others" "$result"
  if [ "$r" != 0 ]; then rc=$r; echo "run $run failed (exit $r); its output:"; cat "$out"; fi
  if [ -n "${OUT_DIR:-}" ]; then mkdir -p "$OUT_DIR"; mv "$out" "$OUT_DIR/workload-$USERS_N-$(date +%H%M%S)-$run.txt"; else rm -f "$out"; fi
done
exit $rc
