#!/usr/bin/env bash
# The README's first command: from a fresh Debian 12 machine to a running
# chat service. Installs what is missing, builds, starts PostgreSQL under
# .data/, starts the bundled mock LLM unless OPENAI_API_KEY is set, applies
# migrations, runs chatd and prints the URL to open, already signed in.
# Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
deploy/install-deps.sh
deploy/build.sh

mkdir -p .data
chmod 755 .data
pg_dir="$root/.data/postgres"
# PostgreSQL runs as user postgres, which must be able to reach .data/.
if [ "$(id -u)" = 0 ] && ! runuser -u postgres -- test -x "$root/.data" 2>/dev/null; then
  pg_dir="/var/tmp/chat-postgres-$(echo "$root" | md5sum | cut -c1-8)"
fi
export DATABASE_URL=${DATABASE_URL:-$(deploy/postgres.sh start "$pg_dir" "${CHAT_PG_PORT:-55432}")}

if [ ! -s .data/jwt-secret ]; then
  head -c 48 /dev/urandom | base64 | tr -d '\n/+=' > .data/jwt-secret
  chmod 600 .data/jwt-secret
fi
export CHAT_JWT_SECRET=${CHAT_JWT_SECRET:-$(cat .data/jwt-secret)}
export CHAT_LISTEN=${CHAT_LISTEN:-127.0.0.1:8080}

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

if [ -z "${OPENAI_API_KEY:-}" ]; then
  mock_port=${CHAT_MOCK_PORT:-8090}
  build/bin/mock_llm --listen "127.0.0.1:$mock_port" --ttft-ms 200 --token-delay-ms 40 --tokens 60 \
    > .data/mock_llm.log 2>&1 &
  pids+=($!)
  export OPENAI_BASE_URL="http://127.0.0.1:$mock_port/v1"
  echo "run: no OPENAI_API_KEY: using the bundled mock LLM on 127.0.0.1:$mock_port"
fi

build/bin/chatd migrate
user=${CHAT_DEMO_USER:-demo}
token=$(build/bin/chatd token --user "$user" --ttl 86400)
host=${CHAT_LISTEN%:*}; port=${CHAT_LISTEN##*:}
[ "$host" = 0.0.0.0 ] && host=127.0.0.1

build/bin/chatd &
pids+=($!)
for _ in $(seq 1 100); do
  curl -fsS "http://$host:$port/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done
cat <<MSG

chatd is running on http://$host:$port (user "$user"). Open, already signed in:

  http://$host:$port/#token=$token

WebSocket: ws://$host:$port/api/v1/chat/ws?token=$token
Logs are JSON lines on this terminal. Ctrl-C stops chatd, the mock LLM
(PostgreSQL keeps running: deploy/postgres.sh stop $pg_dir).
MSG
wait "${pids[@]}"
