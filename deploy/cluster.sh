#!/usr/bin/env bash
# A chatd cluster on this machine, for trying it out: one PostgreSQL, a CA and
# a certificate per node, the mock LLM (unless OPENAI_API_KEY is set), N chatd
# nodes and nginx in front of them.
#
#   deploy/cluster.sh start [N] [BASE_PORT]   N nodes (default 3), BASE_PORT default 8180
#   deploy/cluster.sh stop                    stops everything it started
#   deploy/cluster.sh status                  what runs
#   deploy/cluster.sh certs DIR N             only the CA and N node certificates, in DIR
#   deploy/cluster.sh nginx-config DIR N BASE_PORT
#                                             only the nginx configuration, in DIR
#
# Addresses: node i (1..N) is "node<i>" on 127.0.0.<i+1>: HTTP/WebSocket on
# BASE_PORT, cluster (mutual TLS) on BASE_PORT+1. nginx listens on
# 127.0.0.1:BASE_PORT, the mock LLM on 127.0.0.1:BASE_PORT+1. Every file (pids,
# logs, certificates, secret, nginx's) is under .data/cluster/ (or
# $CHAT_CLUSTER_DIR).
#
# Environment: DATABASE_URL set: use that database instead of starting
# PostgreSQL. OPENAI_API_KEY set: no mock LLM. CHAT_BIN_DIR: where chatd and
# mock_llm are (default build/bin, built if missing). CHAT_CLUSTER_PG_PORT:
# the PostgreSQL socket port (default 55440). Any other CHAT_* setting is
# passed on to every node.
# shellcheck disable=SC1091  # cluster.env is written by this script
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

usage() { sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
say() { echo "cluster: $*"; }
die() { echo "cluster: $*" >&2; exit 1; }

# ---------------------------------------------------------------- certificates
# make_certs DIR N: a CA (kept if present) and for each node a key and a
# certificate signed by it (deploy/certs.sh): CN and SAN DNS "node<i>", SAN
# DNS localhost and IP 127.0.0.<i+1>, usable as server and client (mutual TLS).
make_certs() {
  local dir=$1 n=$2 i specs=()
  command -v openssl >/dev/null || die "openssl is missing (deploy/install-deps.sh installs it)"
  for i in $(seq 1 "$n"); do specs+=("node$i,localhost,127.0.0.$((i + 1))"); done
  "$root/deploy/certs.sh" "$dir" "${specs[@]}"
}

# ---------------------------------------------------------------- nginx
# render TEMPLATE OUT NAME=VALUE...: replaces each ${NAME} by VALUE, nothing else.
render() {
  local tpl out kv
  tpl=$(cat "$1"); out=$2; shift 2
  for kv in "$@"; do
    tpl=${tpl//"\${${kv%%=*}}"/${kv#*=}}
  done
  printf '%s\n' "$tpl" >"$out"
}

# nginx_config DIR N BASE_PORT: DIR/nginx.conf and DIR/chat.conf for N nodes.
nginx_config() {
  local dir=$1 n=$2 port=$3 i servers=""
  mkdir -p "$dir/tmp"
  dir=$(cd "$dir" && pwd)
  for i in $(seq 1 "$n"); do
    [ "$i" = 1 ] || servers+=$'\n    '
    servers+="server 127.0.0.$((i + 1)):$port max_fails=3 fail_timeout=10s;"
  done
  render "$root/deploy/nginx/nginx.conf.template" "$dir/nginx.conf" "CHAT_NGINX_PREFIX=$dir"
  render "$root/deploy/nginx/chat.conf.template" "$dir/chat.conf" \
    "CHAT_NGINX_LISTEN=127.0.0.1:$port" "CHAT_UPSTREAM_SERVERS=$servers" \
    "CHAT_NGINX_ACCESS_LOG=$dir/access.log"
}

# ---------------------------------------------------------------- processes
# running PID: the process exists and is not a zombie (the processes started
# here outlive this script, and whoever reaps them may take a moment).
running() {
  local st
  kill -0 "$1" 2>/dev/null || return 1
  st=$(awk '/^State:/ { print $2 }' "/proc/$1/status" 2>/dev/null) || return 1
  [ -n "$st" ] && [ "$st" != Z ]
}
# alive PIDFILE
alive() { [ -s "$1" ] && running "$(cat "$1")"; }

# stop_pidfile FILE NAME SECONDS [nosignal]: SIGTERM (unless nosignal: sent
# already), then SIGKILL after SECONDS.
stop_pidfile() {
  local f=$1 name=$2 secs=$3 pid i
  [ -s "$f" ] || { rm -f "$f"; return 0; }
  pid=$(cat "$f")
  if [ "${4:-}" = nosignal ] || running "$pid"; then
    [ "${4:-}" = nosignal ] || kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 $((secs * 10))); do running "$pid" || break; sleep 0.1; done
    if running "$pid"; then
      echo "cluster: $name (pid $pid) still runs after ${secs} s: SIGKILL" >&2
      kill -KILL "$pid" 2>/dev/null || true
    else
      say "stopped $name (pid $pid)"
    fi
  fi
  rm -f "$f"
}

# wait_ready URL PIDFILE LOG NAME: until URL answers 200 (20 s).
wait_ready() {
  local i
  for i in $(seq 1 200); do
    curl -fsS -o /dev/null --max-time 1 "$1" 2>/dev/null && return 0
    if ! alive "$2"; then
      echo "cluster: $4 exited; the end of $3:" >&2; tail -n 20 "$3" >&2; return 1
    fi
    sleep 0.1
  done
  echo "cluster: $4 not ready at $1 after 20 s; the end of $3:" >&2; tail -n 20 "$3" >&2
  return 1
}

data=${CHAT_CLUSTER_DIR:-$root/.data/cluster}
bin=${CHAT_BIN_DIR:-$root/build/bin}
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)

start() {
  local n=${1:-3} port=${2:-8180} i name ip pidf log peers j
  if ! [[ $n =~ ^[1-9][0-9]?$ ]] || [ "$n" -gt 50 ]; then
    die "N must be 1..50 (got '$n')"
  fi
  if ! [[ $port =~ ^[0-9]+$ ]] || [ "$port" -lt 1024 ] || [ "$port" -gt 65000 ]; then
    die "BASE_PORT must be 1024..65000 (got '$port')"
  fi

  mkdir -p "$data"
  chmod 755 "$data"
  data=$(cd "$data" && pwd)
  if [ -s "$data/cluster.env" ]; then
    local old_n old_port
    old_n=$(. "$data/cluster.env" && echo "$N"); old_port=$(. "$data/cluster.env" && echo "$BASE_PORT")
    if [ "$old_n" != "$n" ] || [ "$old_port" != "$port" ]; then
      if alive "$data/nginx/nginx.pid" || alive "$data/mock.pid" || ls "$data"/node*.pid >/dev/null 2>&1; then
        die "a cluster of $old_n nodes on port $old_port is set up in $data: 'deploy/cluster.sh stop' first"
      fi
    fi
  fi

  # What is missing: packages, binaries.
  if ! command -v nginx >/dev/null || ! command -v openssl >/dev/null \
     || ! command -v curl >/dev/null || ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then
    "$root/deploy/install-deps.sh"
    nginx_bin=$(command -v nginx)
  fi
  if [ ! -x "$bin/chatd" ] || [ ! -x "$bin/mock_llm" ]; then
    [ -z "${CHAT_BIN_DIR:-}" ] || die "no chatd or mock_llm in CHAT_BIN_DIR=$bin"
    say "building (deploy/build.sh)"
    "$root/deploy/install-deps.sh"
    "$root/deploy/build.sh"
  fi

  # PostgreSQL (durable defaults: no --fast), unless DATABASE_URL is given.
  local pg_dir=""
  if [ -z "${DATABASE_URL:-}" ]; then
    pg_dir="$data/postgres"
    # PostgreSQL runs as user postgres, which must be able to reach the dir.
    if [ "$(id -u)" = 0 ] && ! runuser -u postgres -- test -x "$data" 2>/dev/null; then
      pg_dir="/var/tmp/chat-cluster-postgres-$(echo "$data" | md5sum | cut -c1-8)"
    fi
    DATABASE_URL=$("$root/deploy/postgres.sh" start "$pg_dir" "${CHAT_CLUSTER_PG_PORT:-55440}")
    say "PostgreSQL: $DATABASE_URL"
  fi
  export DATABASE_URL

  if [ ! -s "$data/jwt-secret" ]; then
    (umask 077 && head -c 48 /dev/urandom | base64 | tr -d '\n/+=' >"$data/jwt-secret")
  fi
  export CHAT_JWT_SECRET=${CHAT_JWT_SECRET:-$(cat "$data/jwt-secret")}

  make_certs "$data/certs" "$n"

  cat >"$data/cluster.env" <<ENV
N=$n
BASE_PORT=$port
PG_DIR=$pg_dir
ENV

  # The mock LLM, unless a real provider is configured.
  if [ -z "${OPENAI_API_KEY:-}" ]; then
    export OPENAI_BASE_URL="http://127.0.0.1:$((port + 1))/v1"
    if alive "$data/mock.pid"; then
      say "mock LLM already running (pid $(cat "$data/mock.pid"))"
    else
      setsid "$bin/mock_llm" --listen "127.0.0.1:$((port + 1))" --ttft-ms 200 \
        --token-delay-ms 40 --tokens 60 >"$data/mock.log" 2>&1 </dev/null &
      echo $! >"$data/mock.pid"
      wait_ready "http://127.0.0.1:$((port + 1))/v1/models" "$data/mock.pid" "$data/mock.log" "mock LLM" \
        || die "the mock LLM did not start"
      say "no OPENAI_API_KEY: mock LLM on 127.0.0.1:$((port + 1)) (pid $(cat "$data/mock.pid"))"
    fi
  fi

  "$bin/chatd" migrate >"$data/migrate.log" 2>&1 || { cat "$data/migrate.log" >&2; die "chatd migrate failed"; }

  # The nodes. CHAT_CLUSTER_TLS_* are set through the environment: today's
  # chatd does not know them yet (nor --flags for them) and ignores them.
  for i in $(seq 1 "$n"); do
    name="node$i"; ip="127.0.0.$((i + 1))"; pidf="$data/$name.pid"; log="$data/$name.log"
    if alive "$pidf"; then
      say "$name already running (pid $(cat "$pidf"))"
      continue
    fi
    peers=""
    for j in $(seq 1 "$n"); do
      [ "$j" = "$i" ] || peers+="${peers:+,}127.0.0.$((j + 1)):$((port + 1))"
    done
    (
      export CHAT_NODE_ID="$name" CHAT_LISTEN="$ip:$port" \
        CHAT_CLUSTER_LISTEN="$ip:$((port + 1))" CHAT_CLUSTER_PEERS="$peers" \
        CHAT_CLUSTER_TLS_CERT="$data/certs/$name.pem" \
        CHAT_CLUSTER_TLS_KEY="$data/certs/$name-key.pem" \
        CHAT_CLUSTER_TLS_CA="$data/certs/ca.pem"
      exec setsid "$bin/chatd" </dev/null >>"$log" 2>&1
    ) &
    echo $! >"$pidf"
  done
  for i in $(seq 1 "$n"); do
    name="node$i"
    wait_ready "http://127.0.0.$((i + 1)):$port/readyz" "$data/$name.pid" "$data/$name.log" "$name" \
      || die "$name did not become ready ('deploy/cluster.sh stop' cleans up)"
    say "$name ready on http://127.0.0.$((i + 1)):$port (pid $(cat "$data/$name.pid"), log $data/$name.log)"
  done

  # nginx in front.
  nginx_config "$data/nginx" "$n" "$port"
  if alive "$data/nginx/nginx.pid"; then
    "$nginx_bin" -p "$data/nginx" -c "$data/nginx/nginx.conf" -e "$data/nginx/error.log" -s reload
    say "nginx already running (pid $(cat "$data/nginx/nginx.pid")): configuration reloaded"
  else
    rm -f "$data/nginx/nginx.pid"
    "$nginx_bin" -p "$data/nginx" -c "$data/nginx/nginx.conf" -e "$data/nginx/error.log" \
      || { tail -n 20 "$data/nginx/error.log" >&2; die "nginx did not start"; }
    # The master writes its pid file after it has gone to the background.
    for i in $(seq 1 50); do [ -s "$data/nginx/nginx.pid" ] && break; sleep 0.1; done
    wait_ready "http://127.0.0.1:$port/healthz" "$data/nginx/nginx.pid" "$data/nginx/error.log" nginx \
      || die "nginx does not answer on 127.0.0.1:$port"
    say "nginx on 127.0.0.1:$port (pid $(cat "$data/nginx/nginx.pid"))"
  fi

  local user=${CHAT_DEMO_USER:-demo} token
  token=$("$bin/chatd" token --user "$user" --ttl 86400)
  cat <<MSG

A $n-node chatd cluster is running behind nginx on http://127.0.0.1:$port (user "$user").
Open, already signed in:

  http://127.0.0.1:$port/#token=$token

WebSocket: ws://127.0.0.1:$port/api/v1/chat/ws?token=$token
Nodes: http://127.0.0.2:$port ... http://127.0.0.$((n + 1)):$port (each has /healthz, /readyz, /metrics)
Logs, pids, certificates: $data/
Stop everything: deploy/cluster.sh stop
MSG
}

stop() {
  [ -d "$data" ] || { say "nothing to stop ($data does not exist)"; return 0; }
  data=$(cd "$data" && pwd)
  local f pg_dir="" drain=${CHAT_DRAIN_TIMEOUT:-30}
  # Nodes first, all at once: each drains (replies finish, sent through
  # nginx), then nginx, the mock and PostgreSQL.
  local signalled=()
  for f in "$data"/node*.pid; do
    [ -e "$f" ] || continue
    if alive "$f"; then
      kill -TERM "$(cat "$f")" 2>/dev/null || true
      signalled+=("$f")
    else
      rm -f "$f"
    fi
  done
  [ ${#signalled[@]} -eq 0 ] || say "SIGTERM to ${#signalled[@]} node(s): draining (up to ${drain} s)"
  for f in "${signalled[@]}"; do
    stop_pidfile "$f" "$(basename "$f" .pid)" $((drain + 10)) nosignal
  done
  if alive "$data/nginx/nginx.pid"; then
    # QUIT: graceful; open WebSockets get worker_shutdown_timeout (10 s).
    local pid i
    pid=$(cat "$data/nginx/nginx.pid")
    kill -QUIT "$pid" 2>/dev/null || true
    for i in $(seq 1 150); do running "$pid" || break; sleep 0.1; done
    if running "$pid"; then kill -TERM "$pid" 2>/dev/null || true; fi
    say "stopped nginx (pid $pid)"
  fi
  stop_pidfile "$data/mock.pid" "mock LLM" 5
  if [ -s "$data/cluster.env" ]; then
    pg_dir=$(. "$data/cluster.env" && echo "${PG_DIR:-}")
  fi
  if [ -n "$pg_dir" ] && [ -f "$pg_dir/data/postmaster.pid" ]; then
    "$root/deploy/postgres.sh" stop "$pg_dir"
    say "stopped PostgreSQL ($pg_dir; data kept)"
  fi
  say "stopped"
}

status() {
  [ -d "$data" ] || { say "not set up ($data does not exist)"; return 0; }
  local f
  for f in "$data"/node*.pid "$data/mock.pid" "$data/nginx/nginx.pid"; do
    [ -e "$f" ] || continue
    if alive "$f"; then echo "$(basename "$f" .pid): running (pid $(cat "$f"))"
    else echo "$(basename "$f" .pid): not running"; fi
  done
}

case "${1:-}" in
  start) shift; start "$@" ;;
  stop) stop ;;
  status) status ;;
  certs) [ $# -eq 3 ] || usage; make_certs "$2" "$3" ;;
  nginx-config) [ $# -eq 4 ] || usage; nginx_config "$2" "$3" "$4" ;;
  *) usage ;;
esac
