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
#      KEEP_LOGS=1 keeps the temp dir (logs) instead of deleting it.
set -euo pipefail

cd "$(dirname "$0")/.."
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
stop_pid() { # PID: SIGTERM, then SIGKILL after 40 s (chatd drains up to 30 s)
  local i
  kill -TERM "$1" 2>/dev/null || return 0
  for i in $(seq 1 400); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$1" 2>/dev/null; then echo "pid $1 ignored SIGTERM for 40 s: SIGKILL" >&2; kill -KILL "$1"; fi
  wait "$1" 2>/dev/null
}
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

wait_line() { # FILE PATTERN PID -> prints the first matching line
  local i
  for i in $(seq 1 300); do
    if grep -m1 -E "$2" "$1" 2>/dev/null; then return 0; fi
    kill -0 "$3" 2>/dev/null || { echo "process $3 exited:" >&2; cat "$1" >&2; return 1; }
    sleep 0.1
  done
  echo "timed out waiting for '$2' in $1" >&2; cat "$1" >&2; return 1
}

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
  exec "$BIN/chatd"
) >"$TMP/chatd.out" 2>"$TMP/chatd.log" &
CHATD_PID=$!
PORT=$(wait_line "$TMP/chatd.log" '"event":"listening"' "$CHATD_PID" \
  | sed -E 's/.*"address":"127\.0\.0\.1:([0-9]+)".*/\1/')
echo "postgres: $DATABASE_URL; mock_llm :$MOCK_PORT (ttft ${MOCK_TTFT_MS:-20} ms, ${MOCK_TOKEN_DELAY_MS:-10} ms/token, ${MOCK_TOKENS:-24} tokens); chatd :$PORT (pid $CHATD_PID)"

rc=0
CHAT_JWT_SECRET="$SECRET" "$BIN/chat_load" --url "ws://127.0.0.1:$PORT/api/v1/chat/ws" \
  --connections "$N" --messages "$M" ${USERS:+--users "$USERS"} \
  --duration-limit "${DURATION_LIMIT:-120}" "${EXTRA[@]}" || rc=$?

if ! kill -0 "$CHATD_PID" 2>/dev/null; then echo "chatd DIED during the run" >&2; rc=1; fi
# chatd's warnings and errors during the run, if any.
if grep -qE '"level":"(warn|error)"' "$TMP/chatd.log"; then
  echo "chatd warn/error log lines ($(grep -cE '"level":"(warn|error)"' "$TMP/chatd.log")), first 20:"
  grep -E '"level":"(warn|error)"' "$TMP/chatd.log" | head -20
fi
exit $rc
