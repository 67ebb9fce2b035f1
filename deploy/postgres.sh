#!/usr/bin/env bash
# A private PostgreSQL cluster for development, tests and benchmarks, without
# systemd: initdb on first use, pg_ctl to start and stop. It listens on a Unix
# socket in DIR only (no TCP port is opened).
#
#   deploy/postgres.sh start DIR PORT [--fast]   prints the DATABASE_URL
#   deploy/postgres.sh stop DIR [--immediate]
#
# --fast turns off fsync for quick unit tests. Durability tests and
# benchmarks must run without it, or "durable" means nothing. --immediate
# stops as a crash would (no shutdown checkpoint: the next start recovers
# from the WAL), for fault tests.
set -euo pipefail

PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
[ -x "$PGBIN/pg_ctl" ] || { echo "postgres.sh: PostgreSQL server binaries not found" >&2; exit 1; }

# PostgreSQL refuses to run as root: run it as the 'postgres' user then.
as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

cmd=${1:-}; dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { sed -n '2,12p' "$0" >&2; exit 2; }
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

case "$cmd" in
  start)
    port=${3:-55432}; fast=${4:-}
    if [ "$(id -u)" = 0 ]; then
      chown postgres:postgres "$dir"
      if ! runuser -u postgres -- test -w "$dir"; then
        echo "postgres.sh: user postgres cannot reach $dir (a parent directory is not searchable)" >&2
        exit 1
      fi
    fi
    chmod 700 "$dir"
    if [ ! -f "$dir/data/PG_VERSION" ]; then
      as_pg "$PGBIN/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C --no-sync >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; exit 1; }
    fi
    opts="-p $port -k $dir -c listen_addresses='' -c max_connections=200"
    [ "$fast" = --fast ] && opts="$opts -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    if ! as_pg "$PGBIN/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
      as_pg "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -o "$opts" start >/dev/null \
        || { tail -n 20 "$dir/server.log" >&2; exit 1; }
    fi
    as_pg "$PGBIN/psql" -h "$dir" -p "$port" -U postgres -d postgres -tAc \
      "SELECT 1 FROM pg_database WHERE datname='chat'" | grep -q 1 \
      || as_pg "$PGBIN/psql" -h "$dir" -p "$port" -U postgres -d postgres -qc "CREATE DATABASE chat" >/dev/null
    echo "postgresql:///chat?host=$dir&port=$port&user=postgres"
    ;;
  stop)
    mode=fast; [ "${3:-}" = --immediate ] && mode=immediate
    if [ -f "$dir/data/PG_VERSION" ]; then
      as_pg "$PGBIN/pg_ctl" -D "$dir/data" -m "$mode" -w stop >/dev/null 2>&1 || true
    fi
    ;;
  *)
    sed -n '2,12p' "$0" >&2; exit 2 ;;
esac
