#!/usr/bin/env bash
# What one token costs chatd, counted rather than timed: malloc calls,
# context switches and CPU time per chunk delivered, as the difference
# between two bench/run_load.sh runs that differ only in how many tokens a
# reply comes in (TOKENS_HI at 10 ms a token, TOKENS_LO at 10 * HI / LO ms:
# the same 100 ms + 500 ms reply, same users and messages), so that what
# each message and each second of a reply costs (ack, database, provider
# request, checkpoints, timers) cancels out. Needs perf and a uprobe on glibc's malloc (added if missing; root).
# The probe slows every malloc down: the timings of these runs mean nothing.
#
#   bench/count_token_path.sh [USERS] [MESSAGES]     (default 100 3)
#
# env: BUILD_DIR (build), TOKENS_HI (50), TOKENS_LO (10), CHAT_THREADS, ...
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-100}; M=${2:-3}
HI=${TOKENS_HI:-50}; LO=${TOKENS_LO:-10}
LIBC=$(ldd "${BUILD_DIR:-build}/bin/chatd" | awk '/libc\.so\.6/ {print $3}')
perf probe -l 2>/dev/null | grep -q 'probe_libc:malloc' \
  || perf probe -x "$LIBC" --add malloc >/dev/null 2>&1
EVENTS=task-clock,context-switches,probe_libc:malloc
run() { # TOKENS -> "chunks task_clock_ms switches mallocs"
  local out
  out=$(MOCK_TTFT_MS=100 MOCK_TOKEN_DELAY_MS=$((10 * HI / $1)) MOCK_TOKENS="$1" PERF_STAT=$EVENTS \
        bench/run_load.sh "$N" "$M" 2>&1) || { echo "$out" >&2; return 1; }
  local chunks; chunks=$(echo "$out" | awk '/chunk gap/ {sub("n=", "", $3); print $3 + 0; exit}')
  # chunk gaps are chunks - replies; add the replies back
  chunks=$((chunks + N * M))
  echo "$chunks $(echo "$out" | awk -F': ' '/^  task-clock:/ {t=$2} /^  context-switches:/ {c=$2} /^  probe_libc:malloc:/ {m=$2} END {print t, c, m}')"
}
read -r c1 t1 s1 m1 < <(run "$HI")
read -r c0 t0 s0 m0 < <(run "$LO")
awk -v c1="$c1" -v c0="$c0" -v t1="$t1" -v t0="$t0" -v s1="$s1" -v s0="$s0" -v m1="$m1" -v m0="$m0" \
  -v hi="$HI" -v lo="$LO" 'BEGIN {
    d = c1 - c0
    printf "chunks %d (%s tokens) - %d (%s tokens) = %d\n", c1, hi, c0, lo, d
    printf "per token: %.1f malloc calls, %.2f context switches, %.1f us cpu (uprobe-slowed)\n",
      (m1 - m0) / d, (s1 - s0) / d, (t1 - t0) * 1000 / d
    printf "whole run, per chunk (%s tokens): %.1f malloc calls, %.2f context switches\n",
      hi, m1 / c1, s1 / c1
  }'
