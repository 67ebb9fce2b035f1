#!/usr/bin/env bash
# Installs the Debian 12 packages the project needs, if any is missing.
# Needs root (or sudo) only when something must be installed.
# CHAT_DEPS=build: only what building needs (deploy/docker/Dockerfile).
set -euo pipefail

packages=(
  g++ cmake ninja-build pkg-config ccache
  libcaf-dev libboost-dev rapidjson-dev libpqxx-dev libcurl4-openssl-dev
  doctest-dev libssl-dev libjwt-dev libspdlog-dev
  # Optional mallocs for chatd (cmake -DCHAT_ALLOCATOR=jemalloc|mimalloc).
  libjemalloc-dev libmimalloc-dev
)
if [ "${CHAT_DEPS:-all}" != build ]; then
  # Running and testing: PostgreSQL; nginx and openssl for deploy/cluster.sh;
  # python3-yaml for the checks of the compose and Kubernetes files.
  packages+=(postgresql postgresql-client nginx openssl curl python3-yaml)
  # The fuzz targets (tests/fuzz/run.sh, and the CTest smoke run of each):
  # clang with libFuzzer and the sanitizer runtimes.
  packages+=(clang-14 libclang-rt-14-dev)
  # The browser tests (tests/e2e): Node.js with npm for playwright-core, and
  # Debian's chromium. A machine that already has node (a newer one, say) or
  # chromium keeps it.
  command -v node >/dev/null || packages+=(nodejs npm)
  command -v chromium >/dev/null || packages+=(chromium)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "install-deps: installing ${missing[*]}" >&2
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
