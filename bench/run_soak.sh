#!/usr/bin/env bash
# Soak: SECONDS of steady load with abrupt cuts + resumes, clean reconnects and
# new conversations against one chatd, watching its memory, descriptors and
# threads (issue 10 item 6). See bench/README.md, "Soak".
#
#   bench/run_soak.sh [SECONDS] [-- extra chat_load flags]      (default 3600)
#
# Starts a private durable PostgreSQL (deploy/postgres.sh, no --fast), mock_llm
# and chatd like bench/run_load.sh, then:
#   1. baseline "fresh": fd / thread counts of chatd before any load;
#   2. warm-up: WARMUP_S (30) s of the same load, QUIET_S (60) s quiet, then the
#      baseline "before" (threads or pools started lazily by the first use are
#      in it);
#   3. the soak: chat_load for SECONDS with CONNECTIONS (200) users, think time
#      THINK_MS (2000), --cut-permille CUT_PERMILLE (40) --cut-window-ms
#      CUT_WINDOW_MS (400), --reconnect-every RECONNECT_EVERY (20),
#      --new-conversation; every SAMPLE_S (10) s a CSV row: RSS, fds, sockets
#      to the mock provider (libcurl's cached connections), threads, cpu, and
#      some /metrics values;
#   4. QUIET_S quiet, then "after".
# Checks (exit 1 if one fails):
#   - RSS: the median of the last W s of the soak (W = min(600, SECONDS/6)) is at
#     most RSS_BOUND_PCT (10) % above the median of the plateau after warm-up
#     (the samples in [W, 2W] s of the soak: minutes 10-20 of an hour; idle
#     conversation actors stop after 5 minutes, and a conversation here lasts
#     about 3, so the live set is steady from about minute 9);
#   - fds (sockets to the mock provider counted apart) and threads: after == before;
#   - chat_load: result OK and lost 0 (LOST reports with frame logs go to load.err);
#   - chatd's log: no "error" line; "warn" lines are listed by event (any fails).
# Output stays in OUT_DIR (default /tmp/chat-soak-<UTC time>): samples.csv,
# chatd.log, load.out, load.err (LOST reports), mock.log, summary.txt.
# env: BUILD_DIR (build), PG_PORT (55471), MOCK_TTFT_MS (20), MOCK_TOKEN_DELAY_MS
#      (10), MOCK_TOKENS (24), CHAT_THREADS, and the knobs above.
set -euo pipefail

cd "$(dirname "$0")/.."
. bench/lib.sh
ROOT=$(pwd)
BUILD_DIR=${BUILD_DIR:-build}
SECS=${1:-3600}
shift $(( $# >= 1 ? 1 : 0 )) || true
[ "${1:-}" = -- ] && shift
EXTRA=("$@")
CONNECTIONS=${CONNECTIONS:-200}
THINK_MS=${THINK_MS:-2000}
CUT_PERMILLE=${CUT_PERMILLE:-40}
CUT_WINDOW_MS=${CUT_WINDOW_MS:-400}
RECONNECT_EVERY=${RECONNECT_EVERY:-20}
WARMUP_S=${WARMUP_S:-30}
QUIET_S=${QUIET_S:-60}
SAMPLE_S=${SAMPLE_S:-10}
RSS_BOUND_PCT=${RSS_BOUND_PCT:-10}

for b in chat_load chatd mock_llm; do
  [ -x "$BUILD_DIR/bin/$b" ] || { echo "$BUILD_DIR/bin/$b missing: deploy/build.sh chatd mock_llm chat_load" >&2; exit 2; }
done
BIN=$(cd "$BUILD_DIR/bin" && pwd)

OUT=${OUT_DIR:-/tmp/chat-soak-$(date -u +%Y%m%dT%H%M%S)}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
TMP=$(mktemp -d /tmp/chat-soak-pg-XXXXXX)
chmod 755 "$TMP"
MOCK_PID=""; CHATD_PID=""; SAMPLER_PID=""
cleanup() {
  set +e
  trap '' INT TERM
  [ -n "$SAMPLER_PID" ] && kill "$SAMPLER_PID" 2>/dev/null
  [ -n "$CHATD_PID" ] && stop_pid "$CHATD_PID"
  [ -n "$MOCK_PID" ] && stop_pid "$MOCK_PID"
  "$ROOT/deploy/postgres.sh" stop "$TMP/pg" >/dev/null 2>&1
  rm -rf "$TMP"
  echo "output in $OUT" >&2
}
trap cleanup EXIT
trap 'exit 130' INT TERM
say() { echo "$*" | tee -a "$OUT/summary.txt"; }

DATABASE_URL=$("$ROOT/deploy/postgres.sh" start "$TMP/pg" "${PG_PORT:-55471}")
export DATABASE_URL
"$BIN/mock_llm" --listen 127.0.0.1:0 --ttft-ms "${MOCK_TTFT_MS:-20}" \
  --token-delay-ms "${MOCK_TOKEN_DELAY_MS:-10}" --tokens "${MOCK_TOKENS:-24}" \
  >"$OUT/mock.log" 2>&1 &
MOCK_PID=$!
MOCK_PORT=$(wait_line "$OUT/mock.log" 'listening on' "$MOCK_PID" | sed -E 's/.*127\.0\.0\.1:([0-9]+).*/\1/')
SECRET=$(head -c 48 /dev/urandom | base64 | tr -d '\n')
(
  export CHAT_JWT_SECRET="$SECRET" CHAT_LISTEN=127.0.0.1:0 \
    OPENAI_BASE_URL="http://127.0.0.1:$MOCK_PORT/v1" CHAT_USER_SENDS_PER_MIN=0
  [ -n "${CHAT_THREADS:-}" ] && export CHAT_THREADS
  exec "$BIN/chatd"
) >"$OUT/chatd.out" 2>"$OUT/chatd.log" &
CHATD_PID=$!
PORT=$(wait_line "$OUT/chatd.log" '"event":"listening"' "$CHATD_PID" \
  | sed -E 's/.*"address":"127\.0\.0\.1:([0-9]+)".*/\1/')
URL="ws://127.0.0.1:$PORT/api/v1/chat/ws"
say "soak $SECS s: $CONNECTIONS users, think $THINK_MS ms, cut-permille $CUT_PERMILLE (window $CUT_WINDOW_MS ms), reconnect-every $RECONNECT_EVERY, new conversations; chatd pid $CHATD_PID :$PORT, mock_llm :$MOCK_PORT; output $OUT"

# -- what /proc says about chatd -----------------------------------------------------
rss_kb() { awk '/^VmRSS:/{print $2}' "/proc/$CHATD_PID/status"; }
threads() { ls "/proc/$CHATD_PID/task" | wc -l; }
fds() { ls "/proc/$CHATD_PID/fd" | wc -l; }
# chatd's TCP sockets to the mock provider (libcurl's cached connections) and
# from clients (its listening port), by ss.
mock_socks() { ss -tnpH state established "( dport = :$MOCK_PORT )" 2>/dev/null | grep -c "pid=$CHATD_PID," || true; }
client_socks() { ss -tnpH state established "( sport = :$PORT )" 2>/dev/null | grep -c "pid=$CHATD_PID," || true; }
# fds by kind: socket, pipe, anon_inode:[eventfd] ..., files.
fd_kinds() {
  for f in /proc/"$CHATD_PID"/fd/*; do readlink "$f" 2>/dev/null; done \
    | sed -E 's/^socket:.*/socket/; s/^pipe:.*/pipe/; s/^anon_inode:\[?([a-z_]+).*/anon:\1/; s#^/.*#file#' \
    | sort | uniq -c | awk '{printf "%s%s=%s", (NR>1?" ":""), $2, $1}'
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
# Sum of a metric over its label sets.
METRICS="chat_connections_open chat_conversations_live chat_replies_active chat_heap_in_use_bytes chat_messages_acked_total chat_replies_finished_total chat_replies_failed_total"
metrics_row() {
  curl -s --max-time 5 "http://127.0.0.1:$PORT/metrics" | awk -v names="$METRICS" '
    BEGIN { n = split(names, a, " "); for (i = 1; i <= n; i++) v[a[i]] = "" }
    /^#/ { next }
    { name = $1; sub(/\{.*/, "", name); if (name in v) v[name] += $NF }
    END { for (i = 1; i <= n; i++) printf "%s%s", (i > 1 ? "," : ""), v[a[i]] }'
}
snapshot() { # NAME: one line, to the summary
  local m=$(mock_socks) f=$(fds)
  say "$(printf '%-7s' "$1"): rss $(rss_kb) kB, threads $(threads), fds $f (sockets to the mock provider $m, others $((f - m)); client sockets $(client_socks)) [$(fd_kinds)]"
  eval "SNAP_${1}_fds=$((f - m)) SNAP_${1}_threads=$(threads) SNAP_${1}_rss=$(rss_kb)"
}

snapshot fresh

run_load() { # SECONDS OUTFILE ERRFILE
  CHAT_JWT_SECRET="$SECRET" "$BIN/chat_load" --url "$URL" --connections "$CONNECTIONS" \
    --messages 100000 --run-s "$1" --duration-limit "$(( $1 + 120 ))" --ramp-ms 5000 \
    --think-ms "$THINK_MS" --cut-permille "$CUT_PERMILLE" --cut-window-ms "$CUT_WINDOW_MS" \
    --reconnect-every "$RECONNECT_EVERY" --new-conversation "${EXTRA[@]}" >"$2" 2>"$3"
}

rc=0
say "warm-up: $WARMUP_S s of the same load, then $QUIET_S s quiet"
run_load "$WARMUP_S" "$OUT/warmup.out" "$OUT/warmup.err" || { rc=1; say "warm-up chat_load FAILED:"; tail -20 "$OUT/warmup.out" | tee -a "$OUT/summary.txt"; }
grep -E '^  (messages|soak):' "$OUT/warmup.out" | tee -a "$OUT/summary.txt" || true
sleep "$QUIET_S"
snapshot before

# -- the soak ---------------------------------------------------------------------------
echo "t_s,utc,rss_kb,fds,mock_sockets,client_sockets,threads,cpu_s,${METRICS// /,}" >"$OUT/samples.csv"
TICKS=$(getconf CLK_TCK)
T0=$(date +%s)
(
  while kill -0 "$CHATD_PID" 2>/dev/null; do
    echo "$(( $(date +%s) - T0 )),$(date -u +%H:%M:%S),$(rss_kb),$(fds),$(mock_socks),$(client_socks),$(threads),$(awk -v t="$(cpu_ticks "$CHATD_PID")" -v k="$TICKS" 'BEGIN{printf "%.1f", t/k}'),$(metrics_row)" >>"$OUT/samples.csv"
    sleep "$SAMPLE_S"
  done
) &
SAMPLER_PID=$!
load_rc=0
run_load "$SECS" "$OUT/load.out" "$OUT/load.err" || load_rc=$?
T_LOAD_END=$(( $(date +%s) - T0 ))
say "soak load ended after $T_LOAD_END s (chat_load exit $load_rc); $QUIET_S s quiet"
sleep "$QUIET_S"
kill "$SAMPLER_PID" 2>/dev/null; wait "$SAMPLER_PID" 2>/dev/null || true; SAMPLER_PID=""
snapshot after

# -- checks ----------------------------------------------------------------------------
say "chat_load:"
grep -E '^(elapsed|  (throughput|messages|soak|finish|errors|    ))|^result' "$OUT/load.out" | tee -a "$OUT/summary.txt" || true
if [ "$load_rc" != 0 ]; then say "FAIL: chat_load exit $load_rc"; rc=1; fi
LOST=$(sed -nE 's/.* lost ([0-9]+)$/\1/p' "$OUT/load.out" | tail -1)
if [ "${LOST:-x}" != 0 ]; then say "FAIL: lost ${LOST:-?} (LOST reports with frames in $OUT/load.err)"; rc=1; else say "ok: lost 0"; fi

W=$(( SECS / 6 < 600 ? SECS / 6 : 600 ))
# RSS: median over soak samples with t in [from, to].
rss_median() {
  awk -F, -v a="$1" -v b="$2" 'NR > 1 && $1 >= a && $1 <= b && $3 != "" {print $3}' "$OUT/samples.csv" \
    | sort -n | awk '{v[NR] = $1} END {if (NR) print v[int((NR + 1) / 2)]; else print 0}'
}
rss_max() {
  awk -F, -v a="$1" -v b="$2" 'NR > 1 && $1 >= a && $1 <= b {if ($3 > m) m = $3} END {print m + 0}' "$OUT/samples.csv"
}
EARLY=$(rss_median "$W" $(( 2 * W )))
LATE=$(rss_median $(( T_LOAD_END - W )) "$T_LOAD_END")
LATE_MAX=$(rss_max $(( T_LOAD_END - W )) "$T_LOAD_END")
GROWTH=$(awk -v a="$EARLY" -v b="$LATE" 'BEGIN{printf "%.1f", a ? (b - a) * 100 / a : 0}')
say "RSS: plateau (median of [$W, $(( 2 * W ))] s) $EARLY kB; last $W s of the load median $LATE kB (max $LATE_MAX kB): growth $GROWTH % (bound $RSS_BOUND_PCT %); after the quiet period ${SNAP_after_rss} kB"
say "RSS per $(( W ))-s window of the load (median / max kB):"
for ((t = 0; t < T_LOAD_END; t += W)); do
  say "  [$t, $(( t + W ))] s: $(rss_median "$t" $(( t + W ))) / $(rss_max "$t" $(( t + W )))"
done
if awk -v g="$GROWTH" -v b="$RSS_BOUND_PCT" 'BEGIN{exit !(g > b)}'; then say "FAIL: RSS grew $GROWTH % > $RSS_BOUND_PCT %"; rc=1; else say "ok: RSS growth $GROWTH % <= $RSS_BOUND_PCT %"; fi
if [ "$SNAP_before_fds" != "$SNAP_after_fds" ]; then say "FAIL: fds (without mock sockets) before $SNAP_before_fds, after $SNAP_after_fds"; rc=1; else say "ok: fds (without mock sockets) before = after = $SNAP_after_fds"; fi
if [ "$SNAP_before_threads" != "$SNAP_after_threads" ]; then say "FAIL: threads before $SNAP_before_threads, after $SNAP_after_threads"; rc=1; else say "ok: threads before = after = $SNAP_after_threads"; fi
if ! kill -0 "$CHATD_PID" 2>/dev/null; then say "FAIL: chatd died"; rc=1; fi

say "chatd log lines by level and event:"
grep -oE '"level":"[a-z]+","event":"[A-Za-z_]+"' "$OUT/chatd.log" | sed -E 's/"level":"([a-z]+)","event":"([A-Za-z_]+)"/\1 \2/' \
  | sort | uniq -c | sort -k2,2 -k1,1nr | sed 's/^/  /' | tee -a "$OUT/summary.txt"
NW=$(grep -cE '"level":"(warn|error)"' "$OUT/chatd.log" || true)
if [ "$NW" != 0 ]; then
  say "FAIL: $NW warn/error lines in chatd's log (first 10):"
  grep -E '"level":"(warn|error)"' "$OUT/chatd.log" | head -10 | tee -a "$OUT/summary.txt"
  rc=1
else
  say "ok: no warn/error lines in chatd's log"
fi
say "result: $([ $rc = 0 ] && echo OK || echo FAILED)"
exit $rc
