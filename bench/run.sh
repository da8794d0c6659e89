#!/usr/bin/env bash
# bench/run.sh — asyncpool benchmarks a user can rerun: one command, a report and a chart.
#
#   bench/run.sh            full run (~23 min on 2 cores)
#   bench/run.sh --quick    short run (~3.5 min): 1 round, 1 s per speed test, few TLS points
#   bench/run.sh --report-only RESULTS.tsv   rewrite RESULTS.md and .png from saved data
#
# Options:
#   --build DIR     build directory (default: build; built with scripts/build.sh first)
#   --no-build      use the binaries already in DIR
#   --only LIST     comma-separated groups to run: speed,acore,tls,resp,sync (default: all;
#                   --quick leaves out sync)
#   --out DIR       where the report goes (default: bench/results; with --report-only:
#                   next to the .tsv)
#   --report-only TSV  no runs: the report and chart again from a saved <base>.tsv (with
#                   <base>.stats.tsv, and <base>.meta.tsv / <base>.sync.md when saved;
#                   without the meta file, what the data does not say is marked unknown)
# Environment overrides (defaults: full / --quick):
#   ROUNDS speed and acore rounds (5/1)  SPEED_SECONDS (1/1)  ASYNC_JOBS ("1 8 32 128")
#   SPEED_TESTS (all: "rsa2048 rsa4096 ecdsap256 ecdhp256 x25519 ed25519 gcm16 gcm1024 gcm16384")
#   TLS_ROUNDS (3/1)  RESP_ROUNDS (= TLS_ROUNDS)
#   ACORE_N round trips (50000/10000)  ACORE_SECONDS ceiling run (2/1)
#   TLS_CONCS client concurrencies, RSA-2048 ("1 8 32 128"/"8 64")
#   TLS_RSA3072_CONCS ("32"/"")  TLS_RSA4096_CONCS ("32"/"32")  TLS_ECDSA_CONCS ("8 32 128"/"32")
#   TLS_ECDSA_SERVERS ("sync async-fd async-cb async-always"; add nginx for a reference)
#   TLS_DURATION (4/2)  TLS_WARMUP (1/1)
#   RESP_CERT (rsa4096; or rsa2048, rsa3072, ecdsap256)  RESP_KA keep-alive clients (4)
#   RESP_FLOOD handshake connections (32)  RESP_INTERVAL ms between one client's requests
#   (10)  RESP_DURATION (5/2)  RESP_SERVERS ("sync async-fd async-cb nginx")
#   DISTURBED_CORES (0.1): a verdict whose runs saw other processes use more than this
#                   many cores says "disturbed" instead of met / not met
#   GOAL_A32_VS_MULTI  goal for asyncpool -async_jobs 32 / default -multi <cores> (unset:
#                   the provider issue's goal per test)
#
# What it runs, side by side in one run, the contenders alternating (order rotated every
# test and every round) so that the machine's drift hits them all alike:
#   speed  openssl speed -elapsed -mr: rsa2048 rsa4096 ecdsap256 ecdhp256 x25519 ed25519,
#          -evp aes-128-gcm at 16/1024/16384 bytes; contenders: default provider (one process,
#          and -multi <cores>), asyncpool (synchronous path, -async_jobs 1 8 32 128), and for
#          AES-GCM asyncpool -async_jobs 32 with inline_threshold = 0 (forced offload).
#          Every asyncpool run has ASYNCPOOL_STATS=1: its exit line proves what was offloaded.
#   acore  build/bench/acore_bench: the async core's round trip and ceiling, and the CPU one
#          offload costs the application's thread and the workers (per-thread CPU clocks)
#          at 1 and 64 jobs in flight, fd and callback mode; with speed's results, how
#          many cores of rsa2048/ecdsap256/x25519 work one event loop can keep busy.
#   tls    ssl_demo tls_client against tls_server --sync, tls_server (asyncpool, fd mode),
#          tls_server --callback (asyncpool), and Debian's nginx (worker_processes <cores>);
#          TLS 1.3, full handshakes plus one GET; RSA-2048 at every TLS_CONCS, RSA-3072,
#          RSA-4096 and ECDSA P-256 certificates at their own concurrencies.
#   resp   tls_client --keepalive: keep-alive request latency (p50/p99) on established
#          connections while other connections flood the server with full handshakes.
#   sync   bench/sync_overhead.sh: the synchronous path's cost in instructions (callgrind).
# Writes <out>/<date>-<host>[-quick].{md,png,tsv,stats.tsv,meta.tsv}: tables with medians
# over rounds and ratios against the multi-process anchor (default -multi <cores>; nginx
# for TLS), the per-round ratio range, the CPU each run got and what the rest of the
# machine used meanwhile; the raw measurements, the asyncpool counters of every run, and
# what --report-only needs to write the report again.
# Prints one progress line per step; a failed step is reported on that line and in the
# report's "Failed steps" section, and makes the exit status 1.
set -euo pipefail
cd "$(dirname "$0")/.."
src=$PWD

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

QUICK=0 BUILD=build DO_BUILD=1 ONLY= OUT=bench/results OUT_SET=0 REPORT_ONLY=
while [ $# -gt 0 ]; do
  case $1 in
    --quick) QUICK=1 ;;
    --build) BUILD=${2:?--build needs a directory}; shift ;;
    --no-build) DO_BUILD=0 ;;
    --only) ONLY=${2:?--only needs a list}; shift ;;
    --out) OUT=${2:?--out needs a directory}; OUT_SET=1; shift ;;
    --report-only) REPORT_ONLY=${2:?--report-only needs a .tsv file}; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "run.sh: unknown option '$1'" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
BUILD=$(realpath -m "$BUILD")
OUT=$(realpath -m "$OUT")
want() { [[ ",$ONLY," == *",$1,"* ]]; }

. bench/lib/common.sh
. bench/lib/speed.sh
. bench/lib/acore.sh
. bench/lib/tls.sh
. bench/lib/resp.sh
. bench/lib/report.sh

read -r -a SPEED_TESTS <<<"${SPEED_TESTS:-rsa2048 rsa4096 ecdsap256 ecdhp256 x25519 ed25519 gcm16 gcm1024 gcm16384}"
# -spinN: the pool's workers spin N µs before they park (offload_config.spin_us, the
# provider's worker_spin_us). -1cpu: every thread on one CPU, so no wake-up crosses
# CPUs (what the hand-over costs where a wake-up is cheap).
ACORE_MODES=(fd callback fd-spin50 callback-spin50 fd-1cpu)
TLS_SERVERS=(sync async-fd async-cb async-always nginx)
TLS_CERTS=(rsa2048 rsa3072 rsa4096 ecdsap256)

work=$(mktemp -d "${TMPDIR:-/tmp}/asyncpool-bench.XXXXXX")
mkdir -p "$work/log"
trap 'exit 130' INT TERM
trap cleanup EXIT

# ---- --report-only: the report again from saved data, nothing run ------------------------
if [ -n "$REPORT_ONLY" ]; then
  [ -f "$REPORT_ONLY" ] || { echo "run.sh: no such file: $REPORT_ONLY" >&2; exit 2; }
  REPORT_ONLY=$(realpath "$REPORT_ONLY")
  rbase=${REPORT_ONLY%.tsv}
  if [ "$OUT_SET" = 1 ]; then BASE=$OUT/$(basename "$rbase"); else BASE=$rbase; fi
  DATA=$work/data.tsv STATS=$work/stats.tsv
  cp "$REPORT_ONLY" "$DATA"
  if [ -f "$rbase.stats.tsv" ]; then cp "$rbase.stats.tsv" "$STATS"; else : >"$STATS"; fi
  [ -f "$rbase.sync.md" ] && cp "$rbase.sync.md" "$work/sync.md"
  load_meta "$rbase"
  NSTEPS=1
  command -v gnuplot >/dev/null || echo "note: gnuplot missing (apt-get install gnuplot-nox): no chart" >&2
  step_begin report "write report and chart from $(basename "$REPORT_ONLY")"
  mkdir -p "$(dirname "$BASE")"
  # FAILS holds the saved run's failed steps (they go into the report); only our own
  # failure sets the exit status
  if make_report "$BASE" >"$work/log/report" 2>&1; then step_ok "$BASE.md"; exit 0; fi
  step_fail "report/chart failed" "$work/log/report"
  cat "$work/log/report" >&2
  exit 1
fi

# sync (instruction counts under callgrind, ~1 min) only in the full run by default.
[ -n "$ONLY" ] || { [ "$QUICK" = 1 ] && ONLY=speed,acore,tls,resp || ONLY=speed,acore,tls,resp,sync; }
CORES=$(nproc)
if [ "$QUICK" = 1 ]; then
  : "${ROUNDS:=1}" "${TLS_ROUNDS:=1}" "${SPEED_SECONDS:=1}" "${ACORE_N:=10000}" "${ACORE_SECONDS:=1}"
  : "${TLS_CONCS:=8 64}" "${TLS_DURATION:=2}" "${TLS_WARMUP:=1}"
  : "${TLS_RSA3072_CONCS=}" "${TLS_RSA4096_CONCS=32}" "${TLS_ECDSA_CONCS=32}" "${RESP_DURATION:=2}"
else
  : "${ROUNDS:=5}" "${TLS_ROUNDS:=3}" "${SPEED_SECONDS:=1}" "${ACORE_N:=50000}" "${ACORE_SECONDS:=2}"
  : "${TLS_CONCS:=1 8 32 128}" "${TLS_DURATION:=4}" "${TLS_WARMUP:=1}"
  : "${TLS_RSA3072_CONCS=32}" "${TLS_RSA4096_CONCS=32}" "${TLS_ECDSA_CONCS=8 32 128}" "${RESP_DURATION:=5}"
fi
: "${ASYNC_JOBS:=1 8 32 128}" "${GOAL_A32_VS_MULTI:=}" "${DISTURBED_CORES:=0.1}"
: "${TLS_ECDSA_SERVERS:=sync async-fd async-cb async-always}" "${RESP_ROUNDS:=$TLS_ROUNDS}"
: "${RESP_CERT:=rsa4096}" "${RESP_KA:=4}" "${RESP_FLOOD:=32}" "${RESP_INTERVAL:=10}"
: "${RESP_SERVERS:=sync async-fd async-cb nginx}"

DATA=$work/data.tsv STATS=$work/stats.tsv
: >"$DATA"
: >"$STATS"

T_START=$(date +%s)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
echo "asyncpool bench: $([ "$QUICK" = 1 ] && echo quick || echo full) run, $CORES cores," \
     "$ROUNDS round(s) (TLS: $TLS_ROUNDS), speed ${SPEED_SECONDS}s/test, groups $ONLY, build $BUILD, work dir $work"

# ---- the plan: every step, counted up front so the progress lines say [i/N] ----------
SPEED_CONT=(def1 defM apsync)
for j in $ASYNC_JOBS; do SPEED_CONT+=("apA$j"); done
read -r -a TLS_CONC_LIST <<<"$TLS_CONCS"
read -r -a RESP_SERVER_LIST <<<"$RESP_SERVERS"
tls_plan

NSTEPS=3 # deps, build, report
if want speed; then
  _ngcm=0 # every test runs one extra contender: forced offload (AES-GCM), offload = always (the rest)
  _ngcm=${#SPEED_TESTS[@]}
  NSTEPS=$((NSTEPS + ROUNDS * (${#SPEED_TESTS[@]} * ${#SPEED_CONT[@]} + _ngcm)))
fi
want acore && NSTEPS=$((NSTEPS + ROUNDS * ${#ACORE_MODES[@]}))
if want tls; then
  NSTEPS=$((NSTEPS + 1))
  for p in "${TLS_PLAN[@]}"; do
    read -r -a _srv <<<"$(tls_servers_of "${p%% *}")"
    NSTEPS=$((NSTEPS + TLS_ROUNDS * ${#_srv[@]}))
  done
fi
want resp && NSTEPS=$((NSTEPS + 1 + RESP_ROUNDS * ${#RESP_SERVER_LIST[@]}))
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
source_state # the source the binaries were built from (see report.sh)
AP_MODULES=$BUILD/provider
AP_CONF=$src/conf/openssl-async.cnf
sed 's/^[[:space:]]*inline_threshold[[:space:]]*=.*/inline_threshold = 0/' "$AP_CONF" >"$work/forced.cnf"
grep -q '^inline_threshold = 0$' "$work/forced.cnf" || echo 'note: forced.cnf has no inline_threshold line' >&2

# ---- groups ------------------------------------------------------------------------------
want speed && run_speed
want acore && run_acore
want tls && run_tls
want resp && run_resp
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
echo "done in $(((T_END - T_START) / 60))m$(((T_END - T_START) % 60))s: $BASE.md, $BASE.png, $BASE.tsv, $BASE.stats.tsv, $BASE.meta.tsv"
if [ ${#FAILS[@]} -gt 0 ]; then
  echo "FAILED steps (${#FAILS[@]}):"
  printf '  %s\n' "${FAILS[@]}"
  exit 1
fi
