#!/usr/bin/env bash
# deploy/cluster.sh starts two chatd nodes and the mock LLM on the test
# PostgreSQL, nginx in front; chat_load chats over WebSockets through nginx
# (send, ack, every chunk, done, checked by chat_load), both nodes get
# connections, and the access log holds no token. Everything is stopped on
# exit, also on failure.
#   cluster_nginx_test.sh SOURCE_DIR BIN_DIR [BASE_PORT]   (CHAT_TEST_DATABASE_URL set)
set -euo pipefail
src=$1 bin=$2 port=${3:-18180}
: "${CHAT_TEST_DATABASE_URL:?}"

# The first base port whose addresses nobody listens on: nginx and the mock on
# 127.0.0.1:PORT and PORT+1, the nodes on 127.0.0.2 and .3, same ports.
taken() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }
for _ in $(seq 1 20); do
  busy=0
  for a in 127.0.0.1 127.0.0.2 127.0.0.3; do
    for p in "$port" $((port + 1)); do taken "$a" "$p" && busy=1; done
  done
  [ "$busy" = 0 ] && break
  port=$((port + 4))
done
echo "base port $port"
tmp=$(mktemp -d /tmp/chat-deploy-cluster-XXXXXX)
export CHAT_CLUSTER_DIR=$tmp CHAT_BIN_DIR=$bin DATABASE_URL=$CHAT_TEST_DATABASE_URL \
  CHAT_DRAIN_TIMEOUT=5 CHAT_USER_SENDS_PER_MIN=0
unset OPENAI_API_KEY CHAT_JWT_SECRET

cleanup() {
  rc=$?
  set +e
  "$src/deploy/cluster.sh" stop
  if [ "$rc" != 0 ]; then
    for f in "$tmp"/*.log "$tmp"/nginx/*.log; do echo "== $f"; tail -n 30 "$f"; done
  fi
  rm -rf "$tmp"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$src/deploy/cluster.sh" start 2 "$port"

# The nodes run with the cluster settings (today's chatd parses LISTEN/PEERS).
tr '\0' '\n' <"/proc/$(cat "$tmp/node1.pid")/environ" | grep -qx "CHAT_CLUSTER_PEERS=127.0.0.3:$((port + 1))"
tr '\0' '\n' <"/proc/$(cat "$tmp/node2.pid")/environ" | grep -qx "CHAT_CLUSTER_TLS_CERT=$tmp/certs/node2.pem"

# Through nginx: 4 connections x 2 messages, every reply checked by chat_load.
CHAT_JWT_SECRET=$(cat "$tmp/jwt-secret") "$bin/chat_load" \
  --url "ws://127.0.0.1:$port/api/v1/chat/ws" --connections 4 --messages 2 \
  --duration-limit 40 --timeout-ms 15000

# least_conn spread the WebSockets over both nodes.
for ip in 127.0.0.2 127.0.0.3; do
  opened=$(curl -fsS "http://$ip:$port/metrics" | sed -nE 's/^chat_connections_opened_total ([0-9]+).*/\1/p')
  echo "node $ip: $opened WebSocket connections"
  [ "${opened:-0}" -ge 1 ] || { echo "node $ip got no connection through nginx"; exit 1; }
done
# start again: idempotent, starts nothing twice; another size is refused.
again=$("$src/deploy/cluster.sh" start 2 "$port")
for what in "node1 already running" "node2 already running" "mock LLM already running" "nginx already running"; do
  echo "$again" | grep -q "$what" || { echo "second start: no '$what':"; echo "$again"; exit 1; }
done
if "$src/deploy/cluster.sh" start 3 "$port" 2>/dev/null; then echo "start 3 over a running 2-node cluster did not fail"; exit 1; fi

# The page and readiness through nginx; /metrics only on the nodes.
curl -fsS -o /dev/null "http://127.0.0.1:$port/"
curl -fsS -o /dev/null "http://127.0.0.1:$port/readyz"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/metrics")
[ "$code" = 404 ] || { echo "/metrics through nginx answered $code, not 404"; exit 1; }
grep -q '"GET /api/v1/chat/ws HTTP/1.1" 101' "$tmp/nginx/access.log" \
  || { echo "no WebSocket upgrade (101) in nginx's access log"; exit 1; }
if grep -q 'token=' "$tmp/nginx/access.log"; then echo "a token in nginx's access log"; exit 1; fi
echo "chat through nginx: ok"
