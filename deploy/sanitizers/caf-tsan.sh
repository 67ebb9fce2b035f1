#!/usr/bin/env bash
# Builds CAF 0.17.6, Debian's source, with ThreadSanitizer into
#   .data/caf-tsan (or the folder given), for CHAT_SANITIZE=thread builds.
# Why: Debian's libcaf_* are not instrumented, so TSan cannot see the
# synchronisation inside CAF (its mailboxes, the scheduler's queues) and
# reports every message handed between actors as a race (1,385 reports in
# 15 integration tests). With CAF instrumented too, those disappear and what
# is left is ours. deploy/build.sh runs this when CHAT_SANITIZE=thread and
# the folder is missing; cmake/dependencies.cmake then finds CAF there
# (CMAKE_PREFIX_PATH). About 6 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/../.."
prefix=${1:-$(pwd)/.data/caf-tsan}
[ -f "$prefix/lib/libcaf_core.so" ] && exit 0
work=$(mktemp -d /tmp/caf-tsan-src-XXXXXX)
trap 'rm -rf "$work"' EXIT
sudo=""
[ "$(id -u)" -eq 0 ] || sudo=sudo
# The source package from Debian's archive (a deb-src entry for bookworm,
# added for this download only).
list=/etc/apt/sources.list.d/chat-caf-src.sources
$sudo tee "$list" >/dev/null <<'SRC'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
$sudo apt-get update -qq -o Dir::Etc::sourcelist="$list" -o Dir::Etc::sourceparts=- \
  -o APT::Get::List-Cleanup=0
# Only the upstream tarball: Debian's own patch set is not needed but for
# the missing <limits> below (and its .debian.tar.xz may be gone from the
# mirror).
(cd "$work" && apt-get source --download-only actor-framework >/dev/null 2>&1 || true)
$sudo rm -f "$list"
tarball=$(ls "$work"/actor-framework_0.17.6.orig.tar.gz)
tar xzf "$tarball" -C "$work"
src=$work/actor-framework-0.17.6
# gcc 12: receive_buffer.hpp uses std::numeric_limits without <limits>.
sed -i '0,/#include <cstddef>/s//#include <cstddef>\n#include <limits>/' \
  "$src/libcaf_io/caf/io/network/receive_buffer.hpp"
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
launcher=()
export CCACHE_BASEDIR=$work # the source folder is a new temp folder each time
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
cmake -S "$src" -B "$src/build" "${generator[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS="-fsanitize=thread -O1" -DCMAKE_EXE_LINKER_FLAGS=-fsanitize=thread \
  -DCMAKE_SHARED_LINKER_FLAGS=-fsanitize=thread -DCAF_NO_EXAMPLES=yes -DCAF_NO_UNIT_TESTS=yes \
  -DCAF_NO_TOOLS=yes -DCAF_NO_PYTHON=yes -DCAF_NO_OPENCL=yes -DCAF_NO_SUMMARY=yes \
  -DCMAKE_INSTALL_PREFIX="$prefix" "${launcher[@]}" >/dev/null
cmake --build "$src/build" -j"$(nproc)" --target install >/dev/null
echo "caf-tsan: CAF 0.17.6 with ThreadSanitizer in $prefix"
