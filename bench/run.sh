#!/usr/bin/env bash
# bench/run.sh — asyncpool benchmarks a user can rerun: one command, a report and a chart.
#
#   bench/run.sh            full run (~13-15 min on 2 cores)
#   bench/run.sh --quick    short run (~2.3 min): 1 round, 1 s per speed test, 2 TLS points
#
# Options:
#   --build DIR     build directory (default: build; built with scripts/build.sh first)
#   --no-build      use the binaries already in DIR
#   --only LIST     comma-separated groups to run: speed,acore,tls,sync (default: all;
#                   --quick leaves out sync)
#   --out DIR       where the report goes (default: bench/results)
# Environment overrides (defaults: full / --quick):
#   ROUNDS speed and acore rounds (5/1)  SPEED_SECONDS (1/1)  ASYNC_JOBS ("1 8 32 128")
#   TLS_ROUNDS (3/1)
#   ACORE_N round trips (50000/10000)  ACORE_SECONDS ceiling run (2/1)
#   TLS_CONCS client concurrencies ("1 8 32 128"/"8 64")  TLS_DURATION (4/2)  TLS_WARMUP (1/1)
#   GOAL_A32_VS_MULTI  goal for asyncpool -async_jobs 32 / default -multi <cores> (unset: not
#                      shown as met/not met)
#
# What it runs, side by side in one run, the contenders alternating (order rotated every
# test and every round) so that the machine's drift hits them all alike:
#   speed  openssl speed -elapsed -mr: rsa2048 rsa4096 ecdsap256 ecdhp256 x25519 ed25519,
#          -evp aes-128-gcm at 16/1024/16384 bytes; contenders: default provider (one process,
#          and -multi <cores>), asyncpool (synchronous path, -async_jobs 1 8 32 128), and for
#          AES-GCM asyncpool -async_jobs 32 with inline_threshold = 0 (forced offload).
#          Every asyncpool run has ASYNCPOOL_STATS=1: its exit line proves what was offloaded.
#   acore  build/bench/acore_bench: the async core's round trip and ceiling, fd and callback.
#   tls    ssl_demo tls_client against tls_server --sync, tls_server (asyncpool, fd mode),
#          tls_server --callback (asyncpool), and Debian's nginx (worker_processes <cores>);
#          TLS 1.3, RSA-2048 certificate, full handshakes plus one GET.
# Writes <out>/<date>-<host>[-quick].{md,png,tsv,stats.tsv}: tables with medians over
# rounds and ratios against the multi-process anchor (default -multi <cores>; nginx for
# TLS), the per-round ratio range, the CPU each run got and what the rest of the machine
# used meanwhile; the raw measurements and the asyncpool counters of every run.
# Prints one progress line per step; a failed step is reported on that line and in the
# report's "Failed steps" section, and makes the exit status 1.
set -euo pipefail
cd "$(dirname "$0")/.."
src=$PWD

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

QUICK=0 BUILD=build DO_BUILD=1 ONLY= OUT=bench/results
while [ $# -gt 0 ]; do
  case $1 in
    --quick) QUICK=1 ;;
    --build) BUILD=${2:?--build needs a directory}; shift ;;
    --no-build) DO_BUILD=0 ;;
    --only) ONLY=${2:?--only needs a list}; shift ;;
    --out) OUT=${2:?--out needs a directory}; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "run.sh: unknown option '$1'" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
# sync (instruction counts under callgrind, ~1 min) only in the full run by default.
[ -n "$ONLY" ] || { [ "$QUICK" = 1 ] && ONLY=speed,acore,tls || ONLY=speed,acore,tls,sync; }
BUILD=$(realpath -m "$BUILD")
OUT=$(realpath -m "$OUT")
CORES=$(nproc)
if [ "$QUICK" = 1 ]; then
  : "${ROUNDS:=1}" "${TLS_ROUNDS:=1}" "${SPEED_SECONDS:=1}" "${ACORE_N:=10000}" "${ACORE_SECONDS:=1}"
  : "${TLS_CONCS:=8 64}" "${TLS_DURATION:=2}" "${TLS_WARMUP:=1}"
else
  : "${ROUNDS:=5}" "${TLS_ROUNDS:=3}" "${SPEED_SECONDS:=1}" "${ACORE_N:=50000}" "${ACORE_SECONDS:=2}"
  : "${TLS_CONCS:=1 8 32 128}" "${TLS_DURATION:=4}" "${TLS_WARMUP:=1}"
fi
: "${ASYNC_JOBS:=1 8 32 128}" "${GOAL_A32_VS_MULTI:=}"
want() { [[ ",$ONLY," == *",$1,"* ]]; }

. bench/lib/common.sh

work=$(mktemp -d "${TMPDIR:-/tmp}/asyncpool-bench.XXXXXX")
mkdir -p "$work/log"
DATA=$work/data.tsv STATS=$work/stats.tsv
: >"$DATA"
: >"$STATS"
trap 'exit 130' INT TERM
trap cleanup EXIT

T_START=$(date +%s)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
echo "asyncpool bench: $([ "$QUICK" = 1 ] && echo quick || echo full) run, $CORES cores," \
     "$ROUNDS round(s) (TLS: $TLS_ROUNDS), speed ${SPEED_SECONDS}s/test, build $BUILD, work dir $work"

# ---- the plan: every step, counted up front so the progress lines say [i/N] ----------
SPEED_TESTS=(rsa2048 rsa4096 ecdsap256 ecdhp256 x25519 ed25519 gcm16 gcm1024 gcm16384)
SPEED_CONT=(def1 defM apsync)
for j in $ASYNC_JOBS; do SPEED_CONT+=("apA$j"); done
ACORE_MODES=(fd callback)
TLS_SERVERS=(sync async-fd async-cb nginx)
read -r -a TLS_CONC_LIST <<<"$TLS_CONCS"

NSTEPS=3 # deps, build, report
if want speed; then
  NSTEPS=$((NSTEPS + ROUNDS * (${#SPEED_TESTS[@]} * ${#SPEED_CONT[@]} + 3)))
fi
want acore && NSTEPS=$((NSTEPS + ROUNDS * ${#ACORE_MODES[@]}))
want tls && NSTEPS=$((NSTEPS + 1 + TLS_ROUNDS * ${#TLS_SERVERS[@]} * ${#TLS_CONC_LIST[@]}))
want sync && NSTEPS=$((NSTEPS + 1))

# ---- deps and build ----------------------------------------------------------------------
step_begin setup "deps (gnuplot-nox, nginx-light, build tools)"
if ensure_deps >"$work/log/deps" 2>&1; then step_ok "$(cat "$work/log/deps.summary" 2>/dev/null || echo ok)"
else step_fail "could not install packages" "$work/log/deps"; fi

step_begin setup "build $BUILD"
if [ "$DO_BUILD" = 0 ]; then
  step_ok "skipped (--no-build)"
elif timeout 600 scripts/build.sh "$BUILD" >"$work/log/build" 2>&1; then
  step_ok "ok"
else
  step_fail "scripts/build.sh $BUILD failed; using whatever binaries are there" "$work/log/build"
fi
AP_MODULES=$BUILD/provider
AP_CONF=$src/conf/openssl-async.cnf
sed 's/^[[:space:]]*inline_threshold[[:space:]]*=.*/inline_threshold = 0/' "$AP_CONF" >"$work/forced.cnf"
grep -q '^inline_threshold = 0$' "$work/forced.cnf" || echo 'note: forced.cnf has no inline_threshold line' >&2

# ---- groups ------------------------------------------------------------------------------
. bench/lib/speed.sh
. bench/lib/acore.sh
. bench/lib/tls.sh

want speed && run_speed
want acore && run_acore
want tls && run_tls
if want sync; then
  # Deterministic: instructions per call, not time, so one run is enough.
  step_begin sync "synchronous path vs default, instructions per call (callgrind)"
  if bench/sync_overhead.sh "$BUILD" >"$work/sync.md" 2>"$work/log/sync"; then
    step_ok "$(grep -c '| yes |$' "$work/sync.md") of $(grep -cE '^\| [a-z0-9]+-' "$work/sync.md") within 3%"
  else
    step_fail "bench/sync_overhead.sh failed" "$work/log/sync"
  fi
fi

# ---- report ------------------------------------------------------------------------------
. bench/lib/report.sh
step_begin report "write report and chart"
mkdir -p "$OUT"
BASE=$OUT/$(date +%F)-$(hostname -s)$([ "$QUICK" = 1 ] && echo -quick || true)
if make_report "$BASE" >"$work/log/report" 2>&1; then
  step_ok "$BASE.md"
else
  step_fail "report/chart failed" "$work/log/report"
  make_report_failed_note "$BASE" || true
fi

T_END=$(date +%s)
echo "done in $(((T_END - T_START) / 60))m$(((T_END - T_START) % 60))s: $BASE.md, $BASE.png, $BASE.tsv, $BASE.stats.tsv"
if [ ${#FAILS[@]} -gt 0 ]; then
  echo "FAILED steps (${#FAILS[@]}):"
  printf '  %s\n' "${FAILS[@]}"
  exit 1
fi
