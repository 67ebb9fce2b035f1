#!/usr/bin/env bash
# The cost of a cross-node hop: starts a private durable PostgreSQL, mock_llm
# and two chatd nodes (A and B) in one cluster, and runs chat_load with the
# same parameters twice: conversations created on A, then measured from a
# connection to A (same node) and from a connection to B (other node: every
# send, ack and chunk crosses the cluster port). With FAILOVER=1 (default),
# then kills A (kill -9) while connections on B have conversations on A, and
# measures how long until each conversation answers again. Stops everything
# and removes the temp dir at the end. Exits 1 if a chat_load run failed or a
# node died (also: crashed when stopped).
#
#   bench/run_cluster_latency.sh [CONNECTIONS] [MESSAGES] [-- extra chat_load flags]
#
# env: BUILD_DIR (default build; nothing is built: build chat_load, chatd and
#      mock_llm first), PG_PORT (default random, a socket-only port),
#      MOCK_TTFT_MS (20), MOCK_TOKEN_DELAY_MS (10), MOCK_TOKENS (24),
#      USERS (default: one per connection), DURATION_LIMIT (120),
#      CHAT_THREADS (default: chatd's own, the core count), ROUNDS (1: how
#      many times to run the same-node/other-node pair; 0: only the node death),
#      TLS=1 (mutual TLS on the cluster port, certificates from deploy/certs.sh),
#      SETTLE (0.3 s: wait after both nodes count 2 live nodes, before measuring),
#      FAILOVER (1; 0 skips the node-death run), FAILOVER_MESSAGES (2: sends
#      per conversation before the kill), FAILOVER_ACK_TIMEOUT_MS (200: after
#      the kill, a send unacked this long is resent, same clientMsgId),
#      SUSPECT_TIMEOUT (2 s: CHAT_CLUSTER_SUSPECT_TIMEOUT of both nodes),
#      KEEP_LOGS=1 keeps the temp dir (logs) instead of deleting it.
set -euo pipefail

cd "$(dirname "$0")/.."
. bench/lib.sh
ROOT=$(pwd)
BUILD_DIR=${BUILD_DIR:-build}
N=${1:-20}; M=${2:-10}
shift $(( $# >= 2 ? 2 : $# )) || true
[ "${1:-}" = -- ] && shift
EXTRA=("$@")
ROUNDS=${ROUNDS:-1}
SUSPECT_TIMEOUT=${SUSPECT_TIMEOUT:-2}

for b in chat_load chatd mock_llm; do
  if [ ! -x "$BUILD_DIR/bin/$b" ]; then
    echo "no $BUILD_DIR/bin/$b: cmake --build $BUILD_DIR --target chat_load chatd mock_llm" >&2
    exit 2
  fi
done
BIN=$(cd "$BUILD_DIR/bin" && pwd)

TMP=$(mktemp -d /tmp/chat-bench-xnode-XXXXXX)
chmod 755 "$TMP"   # postgres (when we are root) must reach $TMP/pg
MOCK_PID=""; A_PID=""; B_PID=""
CRASHED=0
# Instead of bench/lib.sh's: also names the process and reports one that crashed.
stop_pid() { # PID NAME: SIGTERM, then SIGKILL after 40 s (chatd drains up to 30 s)
  local st=0 killed=0
  # The shell's stderr is /dev/null inside the braces: no job notices of its own.
  {
    if kill -TERM "$1"; then
      for _ in $(seq 1 400); do kill -0 "$1" || break; sleep 0.1; done
      if kill -0 "$1"; then kill -KILL "$1"; killed=1; fi
    fi
    wait "$1" || st=$?
  } 2>/dev/null
  if [ "$killed" = 1 ]; then
    echo "$2 (pid $1) ignored SIGTERM for 40 s: SIGKILL" >&2
  elif [ "$st" -gt 128 ]; then
    echo "WARNING: $2 (pid $1) died of signal $((st - 128)) ($(kill -l $((st - 128)))) when stopped with SIGTERM" >&2
    CRASHED=1
  fi
}
cleanup() {
  set +e
  trap '' INT TERM
  [ -n "$A_PID" ] && stop_pid "$A_PID" "node A"
  [ -n "$B_PID" ] && stop_pid "$B_PID" "node B"
  [ -n "$MOCK_PID" ] && stop_pid "$MOCK_PID" mock_llm
  "$ROOT/deploy/postgres.sh" stop "$TMP/pg" >/dev/null 2>&1
  if [ "${KEEP_LOGS:-0}" = 1 ]; then echo "logs kept in $TMP" >&2; else rm -rf "$TMP"; fi
  # A crash on the way out fails the run too.
  [ "$CRASHED" = 0 ] || exit 1
}
trap cleanup EXIT
trap 'exit 130' INT TERM


# wait_member PORT: until the node's /readyz is 200 and it counts 2 live nodes (30 s).
wait_member() {
  local live
  for _ in $(seq 1 300); do
    if curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$1/readyz" 2>/dev/null; then
      live=$(curl -fsS --max-time 1 "http://127.0.0.1:$1/metrics" 2>/dev/null \
        | awk '$1 == "chat_cluster_live_nodes" { print $2 }')
      [ "$live" = 2 ] && return 0
    fi
    sleep 0.1
  done
  echo "the node on port $1 is not ready with 2 live nodes after 30 s (live: ${live:-?})" >&2
  return 1
}

# Durable defaults: no --fast (fsync and synchronous_commit on).
DATABASE_URL=$("$ROOT/deploy/postgres.sh" start "$TMP/pg" "${PG_PORT:-$((40000 + RANDOM % 20000))}")
export DATABASE_URL

"$BIN/mock_llm" --listen 127.0.0.1:0 --ttft-ms "${MOCK_TTFT_MS:-20}" \
  --token-delay-ms "${MOCK_TOKEN_DELAY_MS:-10}" --tokens "${MOCK_TOKENS:-24}" \
  >"$TMP/mock.log" 2>&1 &
MOCK_PID=$!
MOCK_PORT=$(wait_line "$TMP/mock.log" 'listening on' "$MOCK_PID" | sed -E 's/.*127\.0\.0\.1:([0-9]+).*/\1/')

SECRET=$(head -c 48 /dev/urandom | base64 | tr -d '\n')
if [ "${TLS:-0}" = 1 ]; then
  "$ROOT/deploy/certs.sh" "$TMP/certs" nodeA,localhost,127.0.0.1 nodeB,localhost,127.0.0.1 2>/dev/null
fi
"$BIN/chatd" migrate >"$TMP/migrate.log" 2>&1 || { cat "$TMP/migrate.log" >&2; exit 1; }

start_node() { # NAME: starts chatd as cluster member NAME, logs in $TMP/NAME.log
  (
    export CHAT_JWT_SECRET="$SECRET" CHAT_LISTEN=127.0.0.1:0 CHAT_NODE_ID="$1" \
      CHAT_CLUSTER_LISTEN=127.0.0.1:0 CHAT_CLUSTER_SUSPECT_TIMEOUT="$SUSPECT_TIMEOUT" \
      OPENAI_BASE_URL="http://127.0.0.1:$MOCK_PORT/v1" CHAT_USER_SENDS_PER_MIN=0
    if [ "${TLS:-0}" = 1 ]; then
      export CHAT_CLUSTER_TLS_CERT="$TMP/certs/$1.pem" CHAT_CLUSTER_TLS_KEY="$TMP/certs/$1-key.pem" \
        CHAT_CLUSTER_TLS_CA="$TMP/certs/ca.pem"
    fi
    [ -n "${CHAT_THREADS:-}" ] && export CHAT_THREADS
    exec "$BIN/chatd"
  ) >"$TMP/$1.out" 2>"$TMP/$1.log" &
}
http_port() { # NAME PID
  wait_line "$TMP/$1.log" '"event":"listening"' "$2" | sed -E 's/.*"address":"127\.0\.0\.1:([0-9]+)".*/\1/'
}
start_node nodeA; A_PID=$!
start_node nodeB; B_PID=$!
A_PORT=$(http_port nodeA "$A_PID")
B_PORT=$(http_port nodeB "$B_PID")
wait_member "$A_PORT"
wait_member "$B_PORT"
sleep "${SETTLE:-0.3}" # the directories have the view too
# Links between the nodes that dropped so far (each makes sessions follow
# their conversations anew): measuring on a flapping cluster means little.
lost=$(cat "$TMP/nodeA.log" "$TMP/nodeB.log" | grep -c '"event":"cluster_peer_lost"' || true)
[ "$lost" = 0 ] || echo "NOTE: $lost cluster_peer_lost log lines before measuring (links between the nodes dropped)"
echo "postgres: $DATABASE_URL; mock_llm :$MOCK_PORT (ttft ${MOCK_TTFT_MS:-20} ms, ${MOCK_TOKEN_DELAY_MS:-10} ms/token, ${MOCK_TOKENS:-24} tokens)"
echo "node A :$A_PORT (pid $A_PID), node B :$B_PORT (pid $B_PID); cluster port $([ "${TLS:-0}" = 1 ] && echo "mutual TLS" || echo "plain TCP"), suspect timeout ${SUSPECT_TIMEOUT} s; both count 2 live nodes"

WS=/api/v1/chat/ws
load() { # URL [flags...]: chat_load with conversations created on A; its stderr to fd ERR_FD
  local url=$1; shift
  CHAT_JWT_SECRET="$SECRET" "$BIN/chat_load" --create-url "ws://127.0.0.1:$A_PORT$WS" \
    --url "$url" ${USERS:+--users "$USERS"} --duration-limit "${DURATION_LIMIT:-120}" "$@" "${EXTRA[@]}" \
    2>&"${ERR_FD:-2}"
}

rc=0
for round in $(seq 1 "$ROUNDS"); do
  echo
  echo "=== round $round: same node (created on A, measured over a connection to A)"
  load "ws://127.0.0.1:$A_PORT$WS" --connections "$N" --messages "$M" || rc=1
  echo
  echo "=== round $round: other node (created on A, measured over a connection to B)"
  load "ws://127.0.0.1:$B_PORT$WS" --connections "$N" --messages "$M" || rc=1
done

if [ "${FAILOVER:-1}" = 1 ]; then
  echo
  echo "=== node death: created on A, ${FAILOVER_MESSAGES:-2} sends over connections to B, then kill -9 A (pid $A_PID) and one more send each"
  # The shell's own stderr goes to /dev/null in this block (its "Killed"
  # notice for node A); chat_load's goes to fd 3, the script's stderr.
  exec 3>&2
  ERR_FD=3
  {
    load "ws://127.0.0.1:$B_PORT$WS" --connections "$N" --messages "${FAILOVER_MESSAGES:-2}" \
      --failover-kill "$A_PID" --ack-timeout-ms "${FAILOVER_ACK_TIMEOUT_MS:-200}" || rc=1
    for _ in $(seq 1 50); do kill -0 "$A_PID" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$A_PID" 2>/dev/null; then echo "node A (pid $A_PID) still runs: SIGKILL" >&3; kill -KILL "$A_PID"; fi
    wait "$A_PID" || true
  } 2>/dev/null
  exec 3>&-
  ERR_FD=2
  A_PID=""
  live=$(curl -fsS --max-time 1 "http://127.0.0.1:$B_PORT/metrics" 2>/dev/null \
    | awk '$1 == "chat_cluster_live_nodes" { print $2 }')
  echo "node B now counts ${live:-?} live node(s)"
fi

if ! kill -0 "$B_PID" 2>/dev/null; then echo "node B DIED during the run" >&2; rc=1; fi
if [ -n "$A_PID" ] && ! kill -0 "$A_PID" 2>/dev/null; then echo "node A DIED during the run" >&2; rc=1; fi
for node in nodeA nodeB; do
  # Warnings and errors, if any (after the kill, B's conversation_lost are expected).
  if grep -qE '"level":"(warn|error)"' "$TMP/$node.log"; then
    echo "$node warn/error log lines ($(grep -cE '"level":"(warn|error)"' "$TMP/$node.log")), first 10:"
    grep -m 10 -E '"level":"(warn|error)"' "$TMP/$node.log"
  fi
done
exit $rc
