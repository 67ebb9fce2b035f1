#!/usr/bin/env bash
# The deployment files that cannot run on this machine (systemd unit,
# Dockerfile, compose, Kubernetes), checked with what it has:
# systemd-analyze verify, docker-compose config, kubectl kustomize, nginx -t on
# the compose nginx configuration, and static_files_check.py (YAML parse and
# what the files must say). A missing tool is reported as SKIP.
#   static_files_test.sh SOURCE_DIR BIN_DIR
set -euo pipefail
src=$1 bin=$2
tmp=$(mktemp -d /tmp/chat-deploy-static-XXXXXX)
trap 'rm -rf "$tmp"' EXIT

# systemd unit: verify prints every problem (unknown keys, bad values, a
# missing program) but may still exit 0, so any output fails. ExecStart
# points at the built chatd for the check.
if command -v systemd-analyze >/dev/null; then
  exe=$bin/chatd; [ -x "$exe" ] || exe=/bin/true
  sed "s|/usr/local/bin/chatd|$exe|g" "$src/deploy/systemd/chatd.service" >"$tmp/chatd.service"
  out=$(systemd-analyze verify "$tmp/chatd.service" 2>&1) || { echo "$out"; exit 1; }
  [ -z "$out" ] || { echo "systemd-analyze verify: $out"; exit 1; }
  echo "ok:   systemd-analyze verify chatd.service"
  systemd-analyze security --offline=true "$tmp/chatd.service" 2>/dev/null | tail -n1 || true
else
  echo "SKIP: systemd-analyze not installed"
fi
stop=$(sed -nE 's/^TimeoutStopSec=([0-9]+)s?$/\1/p' "$src/deploy/systemd/chatd.service")
[ "${stop:-0}" -gt 35 ] || { echo "TimeoutStopSec ($stop) must be above the 30 s drain + 5 s"; exit 1; }
for want in 'EnvironmentFile=' 'Restart=on-failure' 'KillSignal=SIGTERM' 'LimitNOFILE=' 'NoNewPrivileges=yes' 'ProtectSystem=strict'; do
  grep -q "^$want" "$src/deploy/systemd/chatd.service" || { echo "chatd.service lacks $want"; exit 1; }
done
echo "ok:   chatd.service: TimeoutStopSec=${stop}s, restart, kill signal, limits, hardening"

# The runtime image installs the packages runtime-packages.sh finds for the
# built programs: it must find one for every library. Not for a sanitizer
# build: a TSan chatd links a CAF built from source (deploy/sanitizers/
# caf-tsan.sh), which no package holds, and no image ships such a build.
if [ -n "${CHAT_SANITIZE:-}" ]; then
  echo "skip: runtime packages (a CHAT_SANITIZE=$CHAT_SANITIZE build)"
elif [ -x "$bin/chatd" ] && [ -x "$bin/mock_llm" ]; then
  pkgs=$("$src/deploy/docker/runtime-packages.sh" "$bin/chatd" "$bin/mock_llm")
  echo "$pkgs" | grep -qx libpqxx-6.4 || { echo "runtime packages lack libpqxx: $pkgs"; exit 1; }
  if echo "$pkgs" | grep -q -- '-dev$'; then echo "a -dev package at runtime: $pkgs"; exit 1; fi
  echo "ok:   runtime packages: $(echo "$pkgs" | wc -l) ($(echo "$pkgs" | grep -E 'caf|pq|jwt|curl' | tr '\n' ' '))"
fi

# compose: docker-compose (the Debian package; the engine is not needed) resolves it.
if command -v docker-compose >/dev/null; then
  CHAT_JWT_SECRET=0123456789abcdef0123456789abcdef docker-compose \
    -f "$src/deploy/docker/compose.yaml" config -q
  echo "ok:   docker-compose config"
else
  echo "SKIP: docker-compose not installed: compose.yaml not resolved"
fi

# The nginx configuration compose renders (the template with its environment),
# with the node names replaced by loopback addresses so that nginx -t resolves them.
if command -v nginx >/dev/null && command -v python3 >/dev/null && python3 -c 'import yaml' 2>/dev/null; then
  python3 - "$src" "$tmp" <<'PY'
import sys, yaml
src, tmp = sys.argv[1], sys.argv[2]
env = yaml.safe_load(open(f"{src}/deploy/docker/compose.yaml"))["services"]["nginx"]["environment"]
env = dict(env, CHAT_NGINX_ACCESS_LOG=f"{tmp}/access.log", CHAT_NGINX_LISTEN="127.0.0.1:18290")
env["CHAT_UPSTREAM_SERVERS"] = env["CHAT_UPSTREAM_SERVERS"].replace("chatd-", "127.0.0.1")
t = open(f"{src}/deploy/nginx/chat.conf.template").read()
for k, v in env.items():
    t = t.replace("${" + k + "}", str(v))
assert "${" not in t, "unrendered placeholder"
open(f"{tmp}/chat.conf", "w").write(t)
open(f"{tmp}/nginx.conf", "w").write(
    f"pid {tmp}/nginx.pid;\nerror_log {tmp}/error.log;\nevents {{}}\n"
    f"http {{\n  proxy_temp_path {tmp}/proxy;\n  client_body_temp_path {tmp}/body;\n  include {tmp}/chat.conf;\n}}\n")
PY
  nginx -t -q -p "$tmp" -c "$tmp/nginx.conf" -e "$tmp/error.log"
  echo "ok:   nginx -t on the configuration compose renders"
fi

# Kubernetes: kustomize builds the manifests (offline; no cluster to apply to).
if command -v kubectl >/dev/null; then
  kubectl kustomize "$src/deploy/k8s" >"$tmp/k8s.yaml"
  echo "ok:   kubectl kustomize deploy/k8s ($(grep -c '^kind:' "$tmp/k8s.yaml") objects)"
else
  echo "SKIP: kubectl not installed: kustomization not built"
fi

python3 "$src/tests/deploy/static_files_check.py" "$src"
