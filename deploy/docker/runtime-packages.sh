#!/usr/bin/env bash
# Prints the Debian packages that hold the shared libraries the given
# programs load (ldd), one a line: what a runtime image must install.
#   deploy/docker/runtime-packages.sh build/bin/chatd build/bin/mock_llm
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 PROGRAM..." >&2; exit 2; }
libs=$(for p in "$@"; do ldd "$p"; done | awk '$2 == "=>" && $3 ~ /^\// { print $3 }' | sort -u)
for lib in $libs; do
  real=$(readlink -f "$lib")
  # With merged /usr a file is registered under /lib or /usr/lib: try both.
  pkg=""
  for p in "$lib" "$real" "/usr${lib#/usr}" "${lib#/usr}" "/usr${real#/usr}" "${real#/usr}"; do
    pkg=$(dpkg -S "$p" 2>/dev/null | head -n1 | cut -d: -f1) && [ -n "$pkg" ] && break
  done
  [ -n "$pkg" ] || { echo "runtime-packages.sh: no package holds $lib" >&2; exit 1; }
  echo "$pkg"
done | sort -u
