#!/usr/bin/env bash
# What an idle WebSocket connection costs chatd: starts a private PostgreSQL
# and chatd, opens 100 connections (warm-up), reads chatd's resident memory,
# opens N more with chat_idle and holds them, reads it again, and prints the
# difference per connection opened (and the kernel's socket memory, which is not in
# the process's RSS). Heap per connection is glibc's count of bytes in use
# (chat_heap_in_use_bytes on /metrics): RSS also holds what the allocator
# keeps after a burst of handshakes. Then stops everything, removes the temp dir.
#
#   bench/run_idle.sh [N ...]        e.g. bench/run_idle.sh 5000 10000 19000
#
# N stays below the 20,000 open files a process may hold here (chat_idle
# holds N sockets, chatd N plus its own). env: BUILD_DIR (build), PG_PORT
# (55498), CHATD_PREFIX (e.g. "heaptrack -o /tmp/idle" to profile the heap),
# KEEP_LOGS=1.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
BUILD_DIR=${BUILD_DIR:-build}
COUNTS=("$@")
[ ${#COUNTS[@]} -gt 0 ] || COUNTS=(5000)

if [ ! -x "$BUILD_DIR/bin/chat_idle" ] || [ ! -x "$BUILD_DIR/bin/chatd" ]; then
  [ -f "$BUILD_DIR/CMakeCache.txt" ] || cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$BUILD_DIR" --target chat_idle chatd -j2
fi
BIN=$(cd "$BUILD_DIR/bin" && pwd)

TMP=$(mktemp -d /tmp/chat-idle-XXXXXX)
chmod 755 "$TMP"
CHATD_PID=""; IDLE_PIDS=()
cleanup() {
  set +e
  trap '' INT TERM
  for p in "${IDLE_PIDS[@]}"; do kill "$p" 2>/dev/null; done
  [ -n "$CHATD_PID" ] && { kill -INT "$CHATD_PID" 2>/dev/null; sleep 1; kill -KILL "$CHATD_PID" 2>/dev/null; wait "$CHATD_PID" 2>/dev/null; }
  "$ROOT/deploy/postgres.sh" stop "$TMP/pg" >/dev/null 2>&1
  if [ "${KEEP_LOGS:-0}" = 1 ]; then echo "logs kept in $TMP" >&2; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

DATABASE_URL=$("$ROOT/deploy/postgres.sh" start "$TMP/pg" "${PG_PORT:-55498}" --fast)
export DATABASE_URL
SECRET=$(head -c 48 /dev/urandom | base64 | tr -d '\n')
(
  export CHAT_JWT_SECRET="$SECRET" CHAT_LISTEN=127.0.0.1:0 CHAT_IDLE_TIMEOUT=3600 \
    OPENAI_BASE_URL=http://127.0.0.1:9/v1
  exec ${CHATD_PREFIX:-} "$BIN/chatd"
) >"$TMP/chatd.out" 2>"$TMP/chatd.log" &
CHATD_PID=$!
for _ in $(seq 1 300); do
  grep -q '"event":"listening"' "$TMP/chatd.log" 2>/dev/null && break
  sleep 0.1
done
PORT=$(grep -m1 '"event":"listening"' "$TMP/chatd.log" | sed -E 's/.*"address":"127\.0\.0\.1:([0-9]+)".*/\1/')
# The chatd process itself (under a prefix such as heaptrack it is a child).
CHATD=$(pgrep -n -f "$BIN/chatd" || echo "$CHATD_PID")
URL="ws://127.0.0.1:$PORT/api/v1/chat/ws"

rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$CHATD/status"; }
metric() { curl -s "http://127.0.0.1:$PORT/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
heap_b() { metric chat_heap_in_use_bytes; }
sock_pages() { awk '/^TCP:/ {for (i = 1; i <= NF; i++) if ($i == "mem") print $(i + 1)}' /proc/net/sockstat; }

hold() { # N -> starts chat_idle holding N connections; waits until they are open
  local fifo="$TMP/idle-$1-$RANDOM"
  mkfifo "$fifo"
  "$BIN/chat_idle" --url "$URL" --secret "$SECRET" --connections "$1" <"$fifo" >"$fifo.out" 2>&1 &
  IDLE_PIDS+=($!)
  exec {keep}>"$fifo" # keeps its stdin open: it holds until we close it
  for _ in $(seq 1 1200); do
    grep -q '^open' "$fifo.out" 2>/dev/null && break
    sleep 0.1
  done
  sed 's/^/  chat_idle: /' "$fifo.out"
}

hold 100
sleep 2
base_rss=$(rss_kb); base_sock=$(sock_pages); base_heap=$(heap_b); base_open=$(metric chat_connections_open)
echo "chatd pid $CHATD: after 100 warm-up connections RSS ${base_rss} KiB, heap in use ${base_heap} B"
printf '%-12s %-12s %-14s %-14s %-18s\n' connections "RSS (KiB)" "RSS/conn (B)" "heap/conn (B)" \
  "kernel TCP mem/conn, both ends (B)"
total=0
for n in "${COUNTS[@]}"; do
  add=$((n - total))
  [ "$add" -gt 0 ] || continue
  hold "$add" # not in a pipe: its stdin's writer must stay open in this shell
  total=$n
  sleep 3
  rss=$(rss_kb); sock=$(sock_pages); heap=$(heap_b); open=$(metric chat_connections_open)
  # Per connection actually opened: past CHAT_MAX_CONNECTIONS (90 % of the
  # open-files limit) chatd refuses the rest.
  opened=$((open - base_open))
  [ "$opened" -gt 0 ] || opened=1
  printf '%-12s %-12s %-14s %-14s %-18s\n' "$n" "$rss" "$(( (rss - base_rss) * 1024 / opened ))" \
    "$(( (heap - base_heap) / opened ))" "$(( (sock - base_sock) * 4096 / opened ))"
  echo "  chatd: $open WebSocket connections open ($opened measured), heap in use $heap B"
done
grep -E '"level":"(warn|error)"' "$TMP/chatd.log" | head -5 || true
