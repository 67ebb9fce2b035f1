#!/usr/bin/env bash
# The nginx configuration deploy/cluster.sh renders (1 and 3 nodes) passes
# `nginx -t`, and says what a WebSocket balancer must say.
#   nginx_config_test.sh SOURCE_DIR
# shellcheck disable=SC2016  # nginx's $variables are meant literally
set -euo pipefail
src=$1
command -v nginx >/dev/null || { echo "nginx is not installed (deploy/install-deps.sh)"; exit 1; }
tmp=$(mktemp -d /tmp/chat-deploy-nginx-XXXXXX)
trap 'rm -rf "$tmp"' EXIT

for n in 1 3; do
  dir=$tmp/n$n
  "$src/deploy/cluster.sh" nginx-config "$dir" "$n" 18280
  nginx -t -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log"
  conf=$dir/chat.conf
  [ "$(grep -c '^ *server 127\.0\.0\.[0-9]*:18280 max_fails=3 fail_timeout=10s;' "$conf")" = "$n" ] \
    || { echo "expected $n upstream servers in $conf"; cat "$conf"; exit 1; }
done
conf=$tmp/n3/chat.conf
for want in 'least_conn;' 'proxy_http_version 1.1;' 'proxy_set_header Upgrade $http_upgrade;' \
            'proxy_set_header Connection $chat_connection_upgrade;' 'listen 127.0.0.1:18280 default_server;'; do
  grep -qF "$want" "$conf" || { echo "missing in $conf: $want"; exit 1; }
done
# proxy_read_timeout above the protocol's 60 s idle limit.
t=$(sed -nE 's/^ *proxy_read_timeout ([0-9]+)s;.*/\1/p' "$conf")
if [ -z "$t" ] || [ "$t" -le 60 ]; then echo "proxy_read_timeout must be above 60 s, is '$t'"; exit 1; fi
# Nothing left unrendered.
! grep -n '\${CHAT_' "$tmp/n3/chat.conf" "$tmp/n3/nginx.conf" || { echo "unrendered placeholder"; exit 1; }
echo "nginx -t: ok for 1 and 3 nodes"
