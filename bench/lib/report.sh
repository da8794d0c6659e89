# bench/lib/report.sh — the markdown report, raw data and chart. Sourced by bench/run.sh.

declare -A MED NN MIN MAX RA RB RALO RAHI RBLO RBHI DIST

load_summary() {
  awk -f "$src/bench/lib/summarize.awk" "$DATA" >"$work/summary.tsv"
  local g t m c med n mn mx ra rb k a1 a2 b1 b2
  while IFS=$'\t' read -r g t m c med n mn mx ra rb a1 a2 b1 b2; do
    k="$g|$t|$m|$c"
    MED[$k]=$med NN[$k]=$n MIN[$k]=$mn MAX[$k]=$mx RA[$k]=$ra RB[$k]=$rb
    RALO[$k]=$a1 RAHI[$k]=$a2 RBLO[$k]=$b1 RBHI[$k]=$b2
  done <"$work/summary.tsv"
  # per group|test|contender: "runs over DISTURBED_CORES, runs, highest of those (hundredths)"
  DIST=()
  while IFS=$'\t' read -r k a1 a2 b1; do DIST[$k]="$a1 $a2 $b1"; done < <(awk -F'\t' -v lim="${DISTURBED_CORES:-0.1}" '
    $3 == "cpu_others" { k = $1 "|" $2 "|" $4; t[k]++; if ($6 + 0 > lim + 0) { n[k]++; if ($6 + 0 > m[k]) m[k] = $6 + 0 } }
    END { for (k in t) printf "%s\t%d\t%d\t%d\n", k, n[k], t[k], m[k] * 100 + 0.5 }' "$DATA")
}

fmtr() {
  [ -z "$1" ] || [ "$1" = - ] && { echo "-"; return; }
  if [[ $1 =~ ^-?[0-9]*\.?[0-9]*$ ]]; then printf '%.2f\n' "$1"
  else awk -v x="$1" 'BEGIN {printf "%.2f\n", x}'; fi
}

# cell KEY [A|B|none]: "value (ratio×)", with the spread when rounds disagree a lot
cell() {
  local k=$1 which=${2:-A} v r
  [ -n "${MED[$k]:-}" ] || { echo "fail"; return; }
  v=$(fmtn "${MED[$k]}")
  case $which in A) r=${RA[$k]:-} ;; B) r=${RB[$k]:-} ;; *) r='' ;; esac
  if [ -n "$r" ] && [ "$r" != - ]; then echo "$v ($(fmtr "$r")×)"; else echo "$v"; fi
}

speed_unit() { case $1 in gcm*) echo "MB/s" ;; *) echo "ops/s" ;; esac; }
speed_metrics() { # test -> metrics
  case $1 in
    rsa*|ecdsa*|ed25519|mldsa*) echo "sign verify" ;; ecdh*|x25519) echo "derive" ;;
    mlkem*) echo "encaps decaps" ;; *) echo "MBps" ;;
  esac
}
# speed_name TEST METRIC: "rsa2048 sign", "aes-128-gcm 16 B"
speed_name() { if [ "$2" = MBps ]; then speed_label "$1"; else echo "$(speed_label "$1") $2"; fi; }
speed_label() {
  case $1 in
    gcm16) echo "aes-128-gcm 16 B" ;; gcm1024) echo "aes-128-gcm 1024 B" ;;
    gcm16384) echo "aes-128-gcm 16384 B" ;; mlkem768) echo "ML-KEM-768" ;;
    mldsa65) echo "ML-DSA-65" ;; *) echo "$1" ;;
  esac
}

# is_pq TEST: an OpenSSL 3.5+ post-quantum test (no goal was set for these)
# extra_na CONTENDER TEST: 0 (true) when the extra contender does not run that test:
# forced offload (apA32f) runs AES-GCM only, offload = always (apA32a) all but AES-GCM
extra_na() { { [ "$1" = apA32f ] && [[ $2 != gcm* ]]; } || { [ "$1" = apA32a ] && [[ $2 == gcm* ]]; }; }
is_pq() { case $1 in mlkem*|mldsa*) return 0 ;; *) return 1 ;; esac; }

# verdict VALUE GOAL [LO HI [DIR [DISTURBED]]]: met / NOT met on the median (DIR ge: value
# >= goal, le: value <= goal); with the per-round range, a median on either side of the
# goal whose range straddles it is "inconclusive (noise)". DISTURBED non-empty (see
# disturbed()): "disturbed" instead, the runs did not have the machine to themselves.
verdict() {
  local v=$1 g=$2 lo=${3:--} hi=${4:--} dir=${5:-ge} dist=${6:-}
  [ -n "$g" ] && [ -n "$v" ] && [ "$v" != - ] || { echo "-"; return; }
  if [ -n "$dist" ]; then echo "**disturbed** ($dist)"; return; fi
  awk -v r="$v" -v g="$g" -v lo="$lo" -v hi="$hi" -v d="$dir" 'BEGIN {
    ok = (d == "le") ? (r + 0 <= g + 0) : (r + 0 >= g + 0)
    v = ok ? "met" : "**NOT met**"
    if (lo != "-" && hi != "-") {
      if (d == "le" && lo + 0 <= g + 0 && hi + 0 > g + 0) v = v ", inconclusive (rounds straddle the goal)"
      if (d != "le" && lo + 0 < g + 0 && hi + 0 >= g + 0) v = v ", inconclusive (rounds straddle the goal)"
    }
    print v }'
}

# disturbed SPEC...: SPEC = group|test|contender. Prints "k of n runs: other processes used
# up to X cores" when, in any run of those, the rest of the machine used more than
# DISTURBED_CORES cores (metric cpu_others); nothing otherwise. Reads DIST (load_summary).
disturbed() {
  local sp k=0 t=0 m=0 a b c
  for sp in "$@"; do
    [ -n "${DIST[$sp]:-}" ] || continue
    read -r a b c <<<"${DIST[$sp]}"
    k=$((k + a)) t=$((t + b))
    [ "$c" -gt "$m" ] && m=$c
  done
  [ "$k" -gt 0 ] && printf '%d of %d runs: other processes used up to %d.%02d cores\n' "$k" "$t" $((m / 100)) $((m % 100))
  return 0
}

# ratio_row LABEL GROUP|TEST|METRIC CONTENDER ANCHOR A|B DIR GOAL [GOAL_TEXT]: a goal row
# comparing CONTENDER with ANCHOR (the summary's anchor A or B of that group); DIR ge|le;
# an empty GOAL makes the verdict "-" (and the goal column empty, unless GOAL_TEXT says)
ratio_row() {
  local label=$1 kp=$2 c=$3 an=$4 which=$5 dir=$6 g=$7 gt=${8:-} k="$2|$3" r lo hi gr te
  IFS='|' read -r gr te _ <<<"$kp"
  if [ "$which" = A ]; then r=${RA[$k]:--} lo=${RALO[$k]:--} hi=${RAHI[$k]:--}
  else r=${RB[$k]:--} lo=${RBLO[$k]:--} hi=${RBHI[$k]:--}; fi
  [ -n "$gt" ] || [ -z "$g" ] || gt="$([ "$dir" = le ] && echo "≤" || echo "≥") $g"
  echo "| $label | $(fmtn "${MED[$k]:-}") | $(fmtn "${MED[$kp|$an]:-}") | **$(fmtr "$r")**$(rng "$k" "$which") |" \
       "$gt | $(verdict "$r" "$g" "$lo" "$hi" "$dir" "$(disturbed "$gr|$te|$c" "$gr|$te|$an")") |"
}

# abs_row LABEL KEY DIR GOAL UNIT DISTURB_SPEC...: a goal row on an absolute value (median
# over rounds, the rounds' range in brackets)
abs_row() {
  local label=$1 k=$2 dir=$3 g=$4 unit=$5 v lo hi rg=""
  shift 5
  v=${MED[$k]:--} lo=${MIN[$k]:--} hi=${MAX[$k]:--}
  [ "$lo" != - ] && [ "${NN[$k]:-1}" -gt 1 ] && rg=" ($(fmtn "$lo")–$(fmtn "$hi"))"
  [ "$v" = - ] && lo=- hi=-
  echo "| $label | **$(fmtn "$v")$unit**$rg | - | - | $([ "$dir" = le ] && echo "≤" || echo "≥") $g$unit |" \
       "$(verdict "$v" "$g" "$lo" "$hi" "$dir" "$(disturbed "$@")") |"
}

# failures_of GROUP TEST CONTENDER: failures summed over rounds, "-" when none recorded
failures_of() {
  awk -F'\t' -v g="$1" -v k="$2" -v s="$3" \
    '$1 == g && $2 == k && $3 == "failures" && $4 == s {t += $6; n++} END {print n ? t : "-"}' "$DATA"
}

# tls_pick_conc "CONCS": 32 if among them, else the last; nothing for none
tls_pick_conc() {
  local c pick=''
  for c in $1; do pick=$c; done
  for c in $1; do [ "$c" = 32 ] && pick=32; done
  echo "$pick"
}

# rng KEY A|B: " (lo–hi)" of the per-round ratios when there are several rounds
rng() {
  local lo hi
  if [ "$2" = A ]; then lo=${RALO[$1]:--} hi=${RAHI[$1]:--}; else lo=${RBLO[$1]:--} hi=${RBHI[$1]:--}; fi
  [ "$lo" != - ] && [ "$lo" != "$hi" ] && printf ' (%s–%s)' "$(fmtr "$lo")" "$(fmtr "$hi")"
  return 0
}

# stats_cell TEST CONTENDER: "offloaded / inline" of the test's main operation (median of
# rounds), with a flag where the run should have offloaded and did not
stats_cell() {
  local t=$1 c=$2 o=${SPEED_OP[$1]}
  awk -F'\t' -v t="$t" -v c="$c" -v o="$o" '
    function med(s,   a, n, i, j, x) { n = split(s, a, " ")
      for (i = 2; i <= n; i++) { x = a[i] + 0; for (j = i - 1; j >= 1 && a[j] + 0 > x; j--) a[j + 1] = a[j]; a[j + 1] = x }
      return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
    $1 == t && $2 == c && $4 == o { off = off " " $5; inl = inl " " $6; err += $8; n++ }
    END {
      if (!n) { print "-"; exit }
      mo = med(off); mi = med(inl)
      s = sprintf("%.0f / %.0f", mo, mi)
      if (c ~ /^apA/ && mo == 0 && (o != "cipher" || c ~ /f$/)) s = s " ⚠ NOT offloaded"
      else if (c ~ /^apA/ && mo == 0 && o == "cipher") s = s " (inline by design)"
      if (err) s = s " errors=" err
      print s }' "$STATS"
}

# sum2 A B: A + B, nothing when either is missing or the sum is not positive
sum2() { awk -v a="$1" -v b="$2" 'BEGIN { if (a != "" && b != "" && a + b > 0) print a + b }'; }

# tls_ratio_parts: the TLS section's "where async ÷ sync goes" table. With the client on
# the same cores, handshakes/s = cores busy ÷ CPU per connection (server + client), so
#   async ÷ sync = (CORES ÷ busy_sync) × (busy_async ÷ CORES) × (cpu_sync ÷ cpu_async):
# the machine's ceiling (what every core busy at sync's CPU per connection would give;
# not a bound: the client's CPU per connection differs with the server), the share of
# the cores the async run kept busy, and its CPU per connection against sync's. Their
# product, from medians, checks the measured ratio (CPU per connection counts the
# warm-up, cores busy do not, so it is close, not equal).
tls_ratio_parts() {
  local cert conc t s k bs ba cs ca rows=''
  for cert in rsa2048 rsa3072 rsa4096 ecdsap256; do
    for conc in $(tls_concs_of "$cert"); do
      [ "$conc" -ge 8 ] || continue
      t=$(tls_test "$cert" "$conc") k="tls|$t"
      bs=$(sum2 "${MED[$k|cpu_server|sync]:-}" "${MED[$k|cpu_client|sync]:-}")
      cs=$(sum2 "${MED[$k|srv_cpu_ms|sync]:-}" "${MED[$k|cli_cpu_ms|sync]:-}")
      [ -n "$bs" ] && [ -n "$cs" ] || continue
      for s in $(tls_servers_of "$cert"); do
        case $s in sync|nginx) continue ;; esac
        ba=$(sum2 "${MED[$k|cpu_server|$s]:-}" "${MED[$k|cpu_client|$s]:-}")
        ca=$(sum2 "${MED[$k|srv_cpu_ms|$s]:-}" "${MED[$k|cli_cpu_ms|$s]:-}")
        [ -n "$ba" ] && [ -n "$ca" ] || continue
        rows+=$(awk -v lab="$(tls_cert_label "$cert")" -v c="$conc" -v s="$s" -v n="$CORES" \
                    -v bs="$bs" -v ba="$ba" -v cs="$cs" -v ca="$ca" -v r="${RB[$k|hs_per_s|$s]:--}" 'BEGIN {
          ceil = n / bs; busy = ba / n; eff = cs / ca
          printf "| %s | %s | %s | %s | %.2f | %.2f | %.2f | %.2f |\n", lab, c, s,
                 (r == "-" ? "-" : sprintf("%.2f", r)), ceil, busy, eff, ceil * busy * eff }')$'\n'
      done
    done
  done
  [ -n "$rows" ] || return 0
  echo "### Where async ÷ sync goes"
  echo
  echo "The client runs on the same $CORES cores, so handshakes/s is the cores kept busy"
  echo "(server and client) divided by the CPU one connection costs them (server and client)."
  echo "Measured ×sync ≈ ceiling × cores busy × CPU efficiency, from the medians above:"
  echo "**ceiling**, what all $CORES cores busy would give at the sync run's CPU per connection"
  echo "($CORES ÷ the cores the sync run used; a server beats it only with connections that"
  echo "cost less, server and client together, than the sync run's); **cores busy**, the"
  echo "share of the $CORES cores this run kept busy (what it lost to idle cores while threads"
  echo "waited for one another); **CPU efficiency**, the sync run's CPU per connection ÷ this"
  echo "run's, both server + client (below 1: what it lost to extra work; the client's share"
  echo "also changes with the server it talks to). CPU per connection counts the warm-up and"
  echo "cores busy do not, so the product comes close to ×sync, not exactly."
  echo
  echo "| certificate | -c | server | ×sync | ceiling | cores busy | CPU efficiency | product |"
  echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
  printf '%s' "$rows"
  echo
}

write_md() {
  local base=$1 t m c k hdr sep row s conc cert
  local name
  name=$(basename "$base")
  # The acore modes with goals and cores-per-loop figures: all but -1cpu, a diagnosis
  # (the trip without a wake-up across CPUs), not a way to run.
  local -a acm=()
  for c in "${ACORE_MODES[@]}"; do [[ $c == *-1cpu ]] || acm+=("$c"); done

  echo "# asyncpool benchmarks — $M_DATE on $M_HOST"
  echo
  if [ "$QUICK" = 1 ]; then
    echo "**Quick run** (\`bench/run.sh --quick\`): one round, short tests; numbers are indicative only."
  elif [ "$ONLY" = speed,acore,tls,resp,sync ]; then
    echo "Full run (\`bench/run.sh\`)."
  else
    # --only, often with environment overrides: rounds and seconds are in the table below
    echo "Partial run (\`bench/run.sh --only $ONLY\`): only these groups; rounds and speed seconds below."
  fi
  echo "Rerun: \`bench/run.sh\` (full, ~23 min) or \`bench/run.sh --quick\` (~3.5 min); \`bench/run.sh --help\` for options."
  [ -n "${REPORT_ONLY:-}" ] && echo "This report was written again from the saved data (\`bench/run.sh --report-only $name.tsv\`)."
  echo
  echo "| machine | |"
  echo "| --- | --- |"
  echo "| cores | $CORES ($M_CPU) |"
  echo "| OS / kernel | $M_OS / $M_KERNEL |"
  echo "| CPU idle (cpuidle driver; guest halt polling) | ${M_IDLE:-?} |"
  echo "| OpenSSL | $M_OPENSSL |"
  echo "| nginx | ${M_NGINX:-absent} |"
  echo "| asyncpool commit | $M_COMMIT${M_DIRTY:+ (uncommitted changes in: $M_DIRTY)} |"
  echo "| load average at start / end | $LOAD_START / $LOAD_END |"
  echo "| rounds (speed and acore / TLS / responsiveness), speed seconds per test | $ROUNDS / $TLS_ROUNDS / $RESP_ROUNDS, ${SPEED_SECONDS}s |"
  echo "| CPU used by other processes during our runs (median, max; cores of $CORES) | $(awk -F'\t' '$3 == "cpu_others" {print $6}' "$DATA" | sort -g | awk '{a[++n] = $1} END {
      if (!n) { print "-"; exit } printf "%.2f, %.2f", (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2, a[n] }') |"
  echo "| runs disturbed (other processes used more than $DISTURBED_CORES cores) | $(awk -F'\t' -v lim="$DISTURBED_CORES" '$3 == "cpu_others" {t++; if ($6 + 0 > lim + 0) k++} END {print t ? (k + 0) " of " t : "-"}' "$DATA") |"
  echo "| duration | $DURATION_MIN min |"
  echo
  echo "Method: contenders run one after another, never at once, each test alternating them"
  echo "in an order rotated every test and every round, so that the machine's drift (this is"
  echo "a shared machine) falls on all of them. Values are medians over rounds; a ratio is the"
  echo "median over rounds of the per-round ratio (runs a few seconds apart), so it can differ"
  echo "a little from the ratio of the medians. \`openssl speed\` always runs with \`-elapsed\`"
  echo "(wall-clock; without it speed divides by process CPU time, which would include the"
  echo "workers) and \`-mr\`. Anchor: **default provider with \`-multi $CORES\`** (one process per"
  echo "core), the best the default provider does with these cores."
  echo

  # ---- goals
  local a32="apA32"
  echo "## Goals"
  echo
  echo "Ratio: median over rounds of the per-round ratio; in brackets the lowest and highest"
  echo "per-round ratio, i.e. how much two runs seconds apart disagreed on this machine. A"
  echo "verdict says **disturbed** instead of met / not met when, during any run it rests on,"
  echo "other processes used more than $DISTURBED_CORES cores: that run did not have the machine."
  echo
  echo "| comparison | asyncpool | default | ratio (per-round range) | goal | verdict |"
  echo "| --- | --- | --- | --- | --- | --- |"
  # The provider issue's goals for -async_jobs 32 against -multi <cores> (GOAL_A32_VS_MULTI,
  # when set, overrides them all); small AES sizes have none there (they run inline by
  # design), see the next rows.
  local -A a32goal=([rsa2048]=0.95 [ecdsap256]=0.85 [ecdhp256]=0.85 [x25519]=0.85 [gcm16384]=0.9)
  want speed && for s in "rsa2048 sign" "ecdsap256 sign" "ecdhp256 derive" "x25519 derive" "gcm16 MBps" "gcm1024 MBps" "gcm16384 MBps"; do
    read -r t m <<<"$s"
    local g=${GOAL_A32_VS_MULTI:-${a32goal[$t]:-}}
    ratio_row "$(speed_name "$t" "$m"): \`-async_jobs 32\` vs default \`-multi $CORES\`" "speed|$t|$m" \
      "$a32" defM A ge "$g" "$([ -n "$g" ] && echo "≥ $g" || echo "none (inline by design)")"
  done
  # ML-KEM-768 and ML-DSA-65 (OpenSSL 3.5+ only): the same comparisons, no goal set
  want speed && for t in "${SPEED_TESTS[@]}"; do
    is_pq "$t" || continue
    for m in $(speed_metrics "$t"); do
      ratio_row "$(speed_name "$t" "$m"): \`-async_jobs 32\` vs default \`-multi $CORES\`" "speed|$t|$m" \
        "$a32" defM A ge ""
    done
  done
  # "Small sizes no slower than the default provider": -async_jobs 32 against the default
  # provider in one process (ratio of medians).
  want speed && for t in gcm16 gcm1024; do
    k="speed|$t|MBps"
    [ -n "${MED[$k|$a32]:-}" ] && [ -n "${MED[$k|def1]:-}" ] || continue
    local rm
    rm=$(awk -v a="${MED[$k|$a32]}" -v d="${MED[$k|def1]}" 'BEGIN{printf "%.2f", a/d}')
    echo "| $(speed_label "$t"): \`-async_jobs 32\` vs default, one process |" \
         "$(fmtn "${MED[$k|$a32]}") | $(fmtn "${MED[$k|def1]}") | **$rm** |" \
         "≥ 0.97 (no slower) | $(verdict "$rm" 0.97 - - ge "$(disturbed "speed|$t|$a32" "speed|$t|def1")") |"
  done
  want speed && for s in "rsa2048 sign" "ecdsap256 sign" "ecdhp256 derive" "x25519 derive"; do
    read -r t m <<<"$s"
    k="speed|$t|$m"
    [ -n "${MED[$k|apA32a]:-}" ] || continue
    echo "| $(speed_name "$t" "$m"): \`-async_jobs 32\` with offload = always (every call offloaded) vs \`-multi $CORES\` |" \
         "$(fmtn "${MED[$k|apA32a]}") | $(fmtn "${MED[$k|defM]:-}") | $(fmtr "${RA[$k|apA32a]:-}") | (extra row) | - |"
  done
  want speed && for t in gcm16 gcm1024 gcm16384; do
    k="speed|$t|MBps"
    [ -n "${MED[$k|apA32f]:-}" ] || continue
    echo "| $(speed_label "$t"): \`-async_jobs 32\` forced offload (inline_threshold = 0) vs \`-multi $CORES\` |" \
         "$(fmtn "${MED[$k|apA32f]}") | $(fmtn "${MED[$k|defM]:-}") | $(fmtr "${RA[$k|apA32f]:-}") | (extra row) | - |"
  done
  want speed && for t in "${SPEED_TESTS[@]}"; do
    for m in $(speed_metrics "$t"); do
      if is_pq "$t"; then
        ratio_row "$(speed_name "$t" "$m"): synchronous path vs default, one process" "speed|$t|$m" \
          apsync def1 B ge ""
      else
        ratio_row "$(speed_name "$t" "$m"): synchronous path vs default, one process" "speed|$t|$m" \
          apsync def1 B ge 0.97 "≥ 0.97 (within 3%)"
      fi
    done
  done
  if want acore; then
    for c in "${acm[@]}"; do
      abs_row "async core, $c mode: round trip median (one job)" "acore|roundtrip|median_us|$c" le 10 " µs" "acore|run|$c"
    done
    for c in "${acm[@]}"; do
      abs_row "async core, $c mode: ceiling (trivial offloads/s, 64 jobs)" "acore|ceiling|offloads_per_s|$c" ge 500000 "/s" "acore|run|$c"
    done
    for c in "${acm[@]}"; do
      for k in 1 64; do
        abs_row "async core, $c mode, $k in flight: application-thread CPU per offload" "acore|cpu-$k|app_us|$c" le 2 " µs" "acore|run|$c"
        abs_row "async core, $c mode, $k in flight: worker CPU per offload" "acore|cpu-$k|worker_us|$c" le 3 " µs" "acore|run|$c"
      done
    done
  fi
  local tc
  tc=$(tls_pick_conc "${TLS_CONC_LIST[*]}")
  if want tls && [ -n "$tc" ]; then
    ratio_row "TLS handshakes/s at -c $tc: async-fd vs sync demo server" "tls|c$tc|hs_per_s" async-fd sync B ge 1.6 "≥ 1.6 (bench/tls_compare.sh)"
    ratio_row "TLS handshakes/s at -c $tc: async-fd vs nginx ($CORES workers)" "tls|c$tc|hs_per_s" async-fd nginx A ge 0.9 "≥ 0.9 (bench/tls_compare.sh)"
    for conc in "${TLS_CONC_LIST[@]}"; do
      [ "$conc" -ge 8 ] || continue
      for s in async-fd async-cb async-always; do
        ratio_row "TLS handshakes/s, RSA-2048, -c $conc: $s vs sync demo server" \
          "tls|c$conc|hs_per_s" "$s" sync B ge 1.0 "≥ 1.0 (no fewer)"
        ratio_row "TLS server CPU per connection, RSA-2048, -c $conc: $s vs sync demo server" \
          "tls|c$conc|srv_cpu_ms" "$s" sync B le 1.05
      done
    done
  fi
  if want tls; then
    local -A gsync=([rsa3072]=1.5 [rsa4096]=1.8)
    for cert in rsa3072 rsa4096; do
      for conc in $(tls_concs_of "$cert"); do
        t=$(tls_test "$cert" "$conc")
        for s in async-fd async-cb; do
          ratio_row "TLS handshakes/s, $(tls_cert_label "$cert"), -c $conc: $s vs sync demo server (one thread each)" \
            "tls|$t|hs_per_s" "$s" sync B ge "${gsync[$cert]}"
        done
        for s in async-fd async-cb; do
          ratio_row "TLS handshakes/s, $(tls_cert_label "$cert"), -c $conc: $s vs nginx ($CORES workers)" \
            "tls|$t|hs_per_s" "$s" nginx A ge 0.95
        done
      done
    done
    for conc in $(tls_concs_of ecdsap256); do
      t=$(tls_test ecdsap256 "$conc")
      for s in async-fd async-cb async-always; do
        [ "$conc" -ge 8 ] && ratio_row "TLS handshakes/s, ECDSA P-256, -c $conc: $s vs sync demo server" \
          "tls|$t|hs_per_s" "$s" sync B ge 1.0 "≥ 1.0 (no fewer)"
        ratio_row "TLS server CPU per connection, ECDSA P-256, -c $conc: $s vs sync demo server" \
          "tls|$t|srv_cpu_ms" "$s" sync B le 1.05
      done
    done
  fi
  if want resp; then
    for s in async-fd async-cb; do
      ratio_row "keep-alive request p99 during a handshake flood ($(tls_cert_label "$RESP_CERT"), $RESP_FLOOD connections): $s vs sync demo server" \
        "resp|$RESP_CERT|ka_p99_ms" "$s" sync B le 0.3
    done
  fi
  echo

  # ---- speed
  if want speed; then
    echo "## openssl speed: throughput (ratio against default \`-multi $CORES\`)"
    echo
    hdr="| test | unit" sep="| --- | ---"
    local conts=("${SPEED_CONT[@]}" apA32f apA32a)
    for c in "${conts[@]}"; do hdr+=" | $(label_of "$c")"; sep+=" | ---"; done
    echo "$hdr |"
    echo "$sep |"
    for t in "${SPEED_TESTS[@]}"; do
      for m in $(speed_metrics "$t"); do
        row="| $(speed_name "$t" "$m") | $(speed_unit "$t")"
        for c in "${conts[@]}"; do
          if extra_na "$c" "$t"; then row+=" | "; continue; fi
          row+=" | $(cell "speed|$t|$m|$c" A)"
        done
        echo "$row |"
      done
    done
    echo
    echo "Default provider, one process, against \`-multi $CORES\`: the ratio in the first column."
    echo "AES-GCM up to 16384 bytes runs inline in asyncpool even with \`-async_jobs\`:"
    echo "\`inline_threshold\` defaults to 32768 bytes, by design (on 2 cores inline AES-GCM"
    echo "beat a thread hop up to 16 KiB). The last column shows what offload would give, with a"
    echo "temporary config setting \`inline_threshold = 0\`."
    echo
    for t in "${SPEED_TESTS[@]}"; do
      is_pq "$t" || continue
      echo "ML-KEM-768 (encaps, decaps; asyncpool counts them as \`kem\`) and ML-DSA-65 (sign,"
      echo "verify): only where \`openssl\` has them (OpenSSL 3.5 or later); no goal was set for them."
      echo
      break
    done
    echo "### Proof of offload (ASYNCPOOL_STATS=1 exit line, main operation, offloaded / inline, median of rounds)"
    echo
    hdr="| test | op" sep="| --- | ---"
    local apc=()
    for c in "${conts[@]}"; do [[ $c == ap* ]] && apc+=("$c"); done
    for c in "${apc[@]}"; do hdr+=" | $(label_of "$c")"; sep+=" | ---"; done
    echo "$hdr |"
    echo "$sep |"
    for t in "${SPEED_TESTS[@]}"; do
      row="| $(speed_label "$t") | ${SPEED_OP[$t]}"
      for c in "${apc[@]}"; do
        if extra_na "$c" "$t"; then row+=" | "; continue; fi
        row+=" | $(stats_cell "$t" "$c")"
      done
      echo "$row |"
    done
    echo
    echo "The synchronous path (no \`-async_jobs\`) runs inline by design (\`outside_job = inline\`)."
    echo
    echo "### CPU obtained: cores used by the run / cores used by everything else on the machine meanwhile (median)"
    echo
    echo "Ours = (user + sys) / wall of openssl and its children or threads; others = the rest of"
    echo "the machine's busy time plus steal, / wall. On $CORES cores, \`-multi $CORES\` and asyncpool runs"
    echo "can use up to $CORES; when \"others\" is high the contenders did not get the machine."
    echo
    hdr="| test" sep="| ---"
    for c in "${conts[@]}"; do hdr+=" | $(label_of "$c")"; sep+=" | ---"; done
    echo "$hdr |"
    echo "$sep |"
    for t in "${SPEED_TESTS[@]}"; do
      row="| $(speed_label "$t")"
      for c in "${conts[@]}"; do
        if extra_na "$c" "$t"; then row+=" | "; continue; fi
        row+=" | $(fmtr "${MED[speed|$t|cpu_ours|$c]:--}") / $(fmtr "${MED[speed|$t|cpu_others|$c]:--}")"
      done
      echo "$row |"
    done
    echo
  fi

  # ---- acore
  if want acore; then
    echo "## Async core overhead (build/bench/acore_bench, no crypto)"
    echo
    echo "Round trip: one trivial offload from one job (submit, worker, wake-up, epoll, resume)."
    echo "Ceiling: trivial offloads per second, 64 jobs in flight, one event loop, $CORES workers."
    echo "CPU per offload: CPU time of the application's thread (CLOCK_THREAD_CPUTIME_ID) and of"
    echo "all the pool's workers (threads named asyncpool-wrk, per-thread CPU clocks) over the"
    echo "round-trip run (1 job in flight) and the ceiling run (64 in flight), divided by the"
    echo "offloads made. The offloaded call is an add, so the workers' figure is what the"
    echo "hand-over costs them (dequeue, wake-ups, notification, sleeping or spinning)."
    echo "Callback mode: the callback lists the job on a lock-free ready list and writes the"
    echo "loop's eventfd when the list was empty; the loop resumes only listed jobs."
    echo "-spinN: the workers spin N µs before they park (worker_spin_us = N; default 0)."
    echo "-1cpu: every thread on one CPU (taskset), so no wake-up crosses CPUs: what the"
    echo "hand-over itself costs where a wake-up is cheap. On a VM whose idle vCPUs halt at"
    echo "once (see \"CPU idle\" above) the difference to fd is the cost of waking a halted"
    echo "vCPU, twice per trip. Not a goal row: a diagnosis."
    echo
    echo "| mode | round trip median (µs) | round trip p99 (µs) | ceiling (offloads/s) | app CPU/offload, 1 in flight (µs) | worker CPU/offload, 1 in flight (µs) | app CPU/offload, 64 in flight (µs) | worker CPU/offload, 64 in flight (µs) | cores others (max) |"
    echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    for c in "${ACORE_MODES[@]}"; do
      echo "| $c | $(cell "acore|roundtrip|median_us|$c" none) | $(cell "acore|roundtrip|p99_us|$c" none) | $(cell "acore|ceiling|offloads_per_s|$c" none) |" \
           "$(fmtn "${MED[acore|cpu-1|app_us|$c]:-}") | $(fmtn "${MED[acore|cpu-1|worker_us|$c]:-}") | $(fmtn "${MED[acore|cpu-64|app_us|$c]:-}") | $(fmtn "${MED[acore|cpu-64|worker_us|$c]:-}") |" \
           "$(fmtr "${MAX[acore|run|cpu_others|$c]:--}") |"
    done
    echo
    echo "### Cores of crypto one event loop can keep busy"
    echo
    echo "The CPU one operation takes on one core (default provider, one process: 1 / its ops/s in"
    echo "the speed group) divided by the application thread's CPU per offload at 64 in flight:"
    echo "how many cores of that work one loop thread can hand out before it is itself the"
    echo "bottleneck (the rest of a real request's work on the loop not counted)."
    echo
    hdr="| operation | CPU per operation, one core (µs)" sep="| --- | ---"
    for c in "${acm[@]}"; do hdr+=" | cores, $c"; sep+=" | ---"; done
    echo "$hdr |"
    echo "$sep |"
    for s in "rsa2048 sign" "ecdsap256 sign" "x25519 derive"; do
      read -r t m <<<"$s"
      local ops=${MED[speed|$t|$m|def1]:-} per="-" row
      [ -n "$ops" ] && per=$(awk -v o="$ops" 'BEGIN {printf "%.1f", 1e6 / o}')
      row="| $t $m | $per"
      for c in "${acm[@]}"; do
        local app=${MED[acore|cpu-64|app_us|$c]:-}
        if [ "$per" != - ] && [ -n "$app" ]; then
          row+=" | $(awk -v p="$per" -v a="$app" 'BEGIN {if (a > 0) printf "%.0f", p / a; else print "-"}')"
        else
          row+=" | -"
        fi
      done
      echo "$row |"
    done
    want speed || echo "(The speed group was not run: no CPU per operation.)"
    echo
  fi

  # ---- sync path, instruction counts
  if want sync && [ -s "$work/sync.md" ]; then
    echo "## Synchronous path cost in instructions (bench/sync_overhead.sh, callgrind)"
    echo
    echo "Throughput on a shared machine cannot settle a 3% goal; instruction counts can."
    echo "A fixed number of calls through the default provider and through asyncpool outside"
    echo "any async job (the call runs inline), instructions per call inside the measured loop."
    echo
    cat "$work/sync.md"
    echo
  fi

  # ---- tls
  if want tls; then
    echo "## TLS 1.3 handshakes (ssl_demo tls_client, RSA-2048, full handshake + one GET)"
    echo
    echo "Servers: \`sync\` = ssl_demo tls_server --sync (default provider, one thread);"
    echo "\`async-fd\` / \`async-cb\` = tls_server with SSL_MODE_ASYNC and asyncpool, fd / callback"
    echo "mode, one thread, \`offload = auto\` (the default); \`async-always\` = as async-fd with"
    echo "\`ASYNCPOOL_OFFLOAD=always\` (every heavy call offloaded, as before \`auto\`);"
    echo "\`nginx\` = Debian nginx, \`worker_processes $CORES\` (the anchor)."
    echo "The client (one thread, default provider) runs on the same $CORES cores as the server"
    echo "and takes part of them."
    echo
    echo "CPU ms/conn: CPU time per connection (warm-up included) of the server and of the client."
    echo "Switches/conn: the server's context switches (all its threads, voluntary and not)"
    echo "per connection; each is a sleep and a wake-up or a preemption, a cost beyond the"
    echo "instructions it interrupts."
    echo "Cores: server / client / everything else on the machine, during the client's run."
    echo
    echo "| -c | server | handshakes/s (×nginx) | ×sync | p50 ms | p99 ms | CPU ms/conn server / client | switches/conn | cores server / client / others | failures |"
    echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    for conc in "${TLS_CONC_LIST[@]}"; do
      for s in "${TLS_SERVERS[@]}"; do
        k="tls|c$conc"
        echo "| $conc | $s | $(cell "$k|hs_per_s|$s" A) | $(fmtr "${RB[$k|hs_per_s|$s]:--}") |" \
             "$(cell "$k|p50_ms|$s" none) | $(cell "$k|p99_ms|$s" none) |" \
             "$(fmtn "${MED[$k|srv_cpu_ms|$s]:--}") / $(fmtn "${MED[$k|cli_cpu_ms|$s]:--}") | $(fmtn "${MED[$k|srv_csw|$s]:--}") |" \
             "$(fmtr "${MED[$k|cpu_server|$s]:--}") / $(fmtr "${MED[$k|cpu_client|$s]:--}") / $(fmtr "${MED[$k|cpu_others|$s]:--}") | $(failures_of tls "c$conc" "$s") |"
      done
    done
    echo
    local other=0
    for cert in rsa3072 rsa4096 ecdsap256; do [ -n "$(tls_concs_of "$cert")" ] && other=1; done
    if [ "$other" = 1 ]; then
      echo "### Other certificates"
      echo
      echo "The same measurement with RSA-3072, RSA-4096 and ECDSA P-256 (curve P-256, ECDSA"
      echo "signature) certificates. Server CPU ×sync: the server's CPU per connection (workers"
      echo "included) against the sync server's in the same round."
      echo
      echo "| certificate | -c | server | handshakes/s (×nginx) | ×sync | p50 ms | p99 ms | CPU ms/conn server / client | server CPU ×sync | switches/conn | cores server / client / others | failures |"
      echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
      for cert in rsa3072 rsa4096 ecdsap256; do
        for conc in $(tls_concs_of "$cert"); do
          t=$(tls_test "$cert" "$conc")
          for s in $(tls_servers_of "$cert"); do
            k="tls|$t"
            echo "| $(tls_cert_label "$cert") | $conc | $s | $(cell "$k|hs_per_s|$s" A) | $(fmtr "${RB[$k|hs_per_s|$s]:--}") |" \
                 "$(cell "$k|p50_ms|$s" none) | $(cell "$k|p99_ms|$s" none) |" \
                 "$(fmtn "${MED[$k|srv_cpu_ms|$s]:--}") / $(fmtn "${MED[$k|cli_cpu_ms|$s]:--}") | $(fmtr "${RB[$k|srv_cpu_ms|$s]:--}") | $(fmtn "${MED[$k|srv_csw|$s]:--}") |" \
                 "$(fmtr "${MED[$k|cpu_server|$s]:--}") / $(fmtr "${MED[$k|cpu_client|$s]:--}") / $(fmtr "${MED[$k|cpu_others|$s]:--}") | $(failures_of tls "$t" "$s") |"
          done
        done
      done
      echo
    fi
    tls_ratio_parts
    [ -n "${TLS_MISSING:-}" ] && echo "**TLS step failed: $TLS_MISSING.**" && echo
  fi

  # ---- responsiveness
  if want resp; then
    echo "## Responsiveness: keep-alive requests during a handshake flood (tls_client --keepalive)"
    echo
    echo "$RESP_KA client threads each hold one established keep-alive connection and send a"
    echo "small GET every $RESP_INTERVAL ms; latency runs from the time the request was due (a send"
    echo "held up by a slow previous response counts the wait, as wrk2 does) to the last byte"
    echo "of the response. Meanwhile $RESP_FLOOD other connections do full TLS 1.3 handshakes"
    echo "(+ one GET), $(tls_cert_label "$RESP_CERT") certificate, as fast as the server takes them. Servers as"
    echo "in the TLS section (\`sync\`, \`async-fd\`, \`async-cb\`: one thread; nginx: $CORES workers)."
    echo "A sync server's loop does each signature itself, so a request waits behind them;"
    echo "an async server's loop hands them to the workers and answers in between."
    echo
    echo "| server | keep-alive p50 ms | p90 ms | p99 ms | p99 ×sync | max ms | keep-alive requests | flood handshakes/s | flood handshake p99 ms | cores server / client / others | failures |"
    echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    for s in "${RESP_SERVER_LIST[@]}"; do
      k="resp|$RESP_CERT"
      echo "| $s | $(cell "$k|ka_p50_ms|$s" none) | $(cell "$k|ka_p90_ms|$s" none) | $(cell "$k|ka_p99_ms|$s" none) | $(fmtr "${RB[$k|ka_p99_ms|$s]:--}")$(rng "$k|ka_p99_ms|$s" B) |" \
           "$(cell "$k|ka_max_ms|$s" none) | $(fmtn "${MED[$k|ka_requests|$s]:--}") | $(cell "$k|flood_hs_per_s|$s" none) | $(cell "$k|flood_p99_ms|$s" none) |" \
           "$(fmtr "${MED[$k|cpu_server|$s]:--}") / $(fmtr "${MED[$k|cpu_client|$s]:--}") / $(fmtr "${MED[$k|cpu_others|$s]:--}") | $(failures_of resp "$RESP_CERT" "$s") |"
    done
    echo
    [ -n "${RESP_MISSING:-}" ] && echo "**Responsiveness step failed: $RESP_MISSING.**" && echo
  fi

  echo "## Chart"
  echo
  echo "![throughput against -async_jobs, TLS, async core CPU, responsiveness]($name.png)"
  echo
  echo "Top: asyncpool throughput as a fraction of default \`-multi $CORES\`, against \`-async_jobs\`"
  echo "(\"sync\" = no \`-async_jobs\`). Middle: TLS handshakes/s and p99 latency (RSA-2048) against"
  echo "client concurrency. Bottom: TLS handshakes/s of the async servers over sync and over"
  echo "nginx per certificate; the async core's CPU per offload (application thread, workers)"
  echo "with the goals; keep-alive request latency during the handshake flood per server."
  echo

  echo "## Failed steps"
  echo
  if [ -n "${M_NOTE:-}" ]; then
    echo "Unknown: $M_NOTE."
  elif [ ${#FAILS[@]} -eq 0 ]; then
    echo "None."
  else
    local i
    for i in "${!FAILS[@]}"; do
      echo "- ${FAILS[$i]}"
      if [ -s "$work/fail.$i.log" ]; then
        echo
        echo '  ```'
        sed 's/^/  /' "$work/fail.$i.log" | cut -c1-200
        echo '  ```'
      fi
    done
  fi
  echo
  echo "Raw measurements (group, test, metric, contender, round, value): [$name.tsv]($name.tsv);"
  echo "asyncpool counters per run (test, contender, round, op, offloaded, inline, eagain, errors,"
  echo "pool submitted, pool high water): [$name.stats.tsv]($name.stats.tsv); what"
  echo "\`bench/run.sh --report-only $name.tsv\` needs to write this report again: [$name.meta.tsv]($name.meta.tsv)."
}

write_chart_data() {
  local aj=$work/chart_aj.dat tl=$work/chart_tls.dat t m c x j
  local series=("rsa2048 sign" "rsa4096 sign" "ecdsap256 sign" "ecdhp256 derive"
                "x25519 derive" "ed25519 sign" "gcm16 MBps" "gcm1024 MBps" "gcm16384 MBps")
  {
    printf 'x'
    for s in "${series[@]}"; do read -r t m <<<"$s"; printf '\t"%s"' "$(speed_name "$t" "$m")"; done
    printf '\t"aes-128-gcm 16384 B, forced offload"\n'
    for c in apsync "${SPEED_CONT[@]:3}"; do
      if [ "$c" = apsync ]; then x=0.5; else x=${c#apA}; fi
      printf '%s' "$x"
      for s in "${series[@]}"; do read -r t m <<<"$s"
        j=${RA[speed|$t|$m|$c]:-?}; [ "$j" = - ] && j='?'; printf '\t%s' "$j"
      done
      j='?'
      [ "$c" = apA32 ] && j=${RA[speed|gcm16384|MBps|apA32f]:-?}
      [ "$j" = - ] && j='?'
      printf '\t%s\n' "$j"
    done
  } >"$aj"
  {
    printf 'conc'
    for s in "${TLS_SERVERS[@]}"; do printf '\t"%s hs/s"' "$s"; done
    for s in "${TLS_SERVERS[@]}"; do printf '\t"%s p99"' "$s"; done
    printf '\n'
    for x in "${TLS_CONC_LIST[@]}"; do
      printf '%s' "$x"
      for s in "${TLS_SERVERS[@]}"; do printf '\t%s' "${MED[tls|c$x|hs_per_s|$s]:-?}"; done
      for s in "${TLS_SERVERS[@]}"; do printf '\t%s' "${MED[tls|c$x|p99_ms|$s]:-?}"; done
      printf '\n'
    done
  } >"$tl"
  # TLS by certificate: async / sync and async / nginx, at -c 32 (or the last concurrency)
  local cert conc k v
  {
    printf 'point\t"async-fd / sync"\t"async-cb / sync"\t"async-fd / nginx"\t"async-cb / nginx"\n'
    for cert in "${TLS_CERTS[@]}"; do
      conc=$(tls_pick_conc "$(tls_concs_of "$cert")")
      [ -n "$conc" ] || continue
      k="tls|$(tls_test "$cert" "$conc")|hs_per_s"
      printf '"%s -c%s"' "$(tls_cert_label "$cert")" "$conc"
      for v in "${RB[$k|async-fd]:-?}" "${RB[$k|async-cb]:-?}" "${RA[$k|async-fd]:-?}" "${RA[$k|async-cb]:-?}"; do
        [ "$v" = - ] && v='?'; printf '\t%s' "$v"
      done
      printf '\n'
    done
  } >"$work/chart_certs.dat"
  {
    printf 'what\t"application thread"\t"workers"\n'
    for c in "${ACORE_MODES[@]}"; do
      for x in 1 64; do
        printf '"%s, %s"\t%s\t%s\n' "$c" "$x" "${MED[acore|cpu-$x|app_us|$c]:-?}" "${MED[acore|cpu-$x|worker_us|$c]:-?}"
      done
    done
  } >"$work/chart_acore.dat"
  {
    printf 'server\t"p50"\t"p90"\t"p99"\n'
    for s in "${RESP_SERVER_LIST[@]}"; do
      printf '"%s"\t%s\t%s\t%s\n' "$s" "${MED[resp|$RESP_CERT|ka_p50_ms|$s]:-?}" \
        "${MED[resp|$RESP_CERT|ka_p90_ms|$s]:-?}" "${MED[resp|$RESP_CERT|ka_p99_ms|$s]:-?}"
    done
  } >"$work/chart_resp.dat"
}

# has_values FILE: 0 if a data row (after the header) has a value other than "?"
has_values() {
  awk -F'\t' 'NR > 1 { for (i = 2; i <= NF; i++) if ($i != "?" && $i != "") f = 1 } END { exit !f }' "$1"
}

# ---- what the report needs besides the data: saved in <base>.meta.tsv -------------------
META_VARS=(QUICK CORES ROUNDS TLS_ROUNDS RESP_ROUNDS SPEED_SECONDS ONLY ASYNC_JOBS
  GOAL_A32_VS_MULTI DISTURBED_CORES TLS_CONCS TLS_RSA3072_CONCS TLS_RSA4096_CONCS
  TLS_ECDSA_CONCS TLS_ECDSA_SERVERS TLS_DURATION TLS_WARMUP RESP_CERT RESP_KA RESP_FLOOD
  RESP_INTERVAL RESP_DURATION RESP_SERVERS TLS_MISSING RESP_MISSING
  M_DATE M_DAY M_HOST M_CPU M_OS M_KERNEL M_IDLE M_OPENSSL M_NGINX M_COMMIT M_DIRTY
  LOAD_START LOAD_END DURATION_MIN)

# source_state: M_COMMIT and M_DIRTY, the checkout as it is now. run.sh calls it right
# after its build step: the report is written at the end, and an edit made meanwhile is
# not in what was measured. AP_COMMIT: set by scripts/trixie.sh run, whose root has no
# git.
source_state() {
  M_COMMIT=${AP_COMMIT:-$(git -C "$src" describe --always --dirty 2>/dev/null || echo unknown)}
  M_DIRTY=$(git -C "$src" status --short --untracked-files=no 2>/dev/null | awk '{print $2}' | tr '\n' ' ')
}

# idle_policy: how an idle CPU waits, which sets what a wake-up across CPUs costs. On a
# KVM guest with the haltpoll driver and guest_halt_poll_ns = 0 an idle vCPU halts at
# once, and waking it costs tens of µs (bench/acore_bench: round trip about 57 µs,
# against 6-9 µs with every thread on one CPU or with guest_halt_poll_ns = 200000).
idle_policy() {
  local d=/sys/devices/system/cpu/cpuidle h=/sys/module/haltpoll/parameters/guest_halt_poll_ns
  local drv
  drv=$(cat "$d/current_driver" 2>/dev/null || echo none)
  if [ -r "$h" ]; then echo "$drv; guest_halt_poll_ns=$(cat "$h")"; else echo "$drv; -"; fi
}

# collect_machine: the other M_* variables, this machine now (source_state: the checkout)
collect_machine() {
  M_DATE=$(date '+%F %H:%M') M_DAY=$(date +%F) M_HOST=$(hostname -s)
  M_OS=$(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME" || echo unknown)
  M_KERNEL=$(uname -r)
  M_IDLE=$(idle_policy)
  M_CPU=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1)
  M_OPENSSL=$(openssl version 2>/dev/null)
  M_NGINX=$(nginx -v 2>&1 | sed 's/.*version: //' || true)
  LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
  DURATION_MIN=$((($(date +%s) - T_START) / 60))
}

# save_meta BASE: META_VARS, the failed steps and their log tails, the sync table
save_meta() {
  local v i
  {
    for v in "${META_VARS[@]}"; do printf '%s\t%s\n' "$v" "${!v-}" | tr -d '\r'; done
    for i in "${!FAILS[@]}"; do
      printf 'fail\t%s\n' "${FAILS[$i]}"
      [ -s "$work/fail.$i.log" ] && sed "s/^/faillog\t$i\t/" "$work/fail.$i.log" | cut -c1-300
    done
  } >"$1.meta.tsv"
  if [ -s "$work/sync.md" ]; then cp "$work/sync.md" "$1.sync.md"; else rm -f "$1.sync.md"; fi
}

# load_meta RBASE: for --report-only. Reads RBASE.meta.tsv when there is one (only the
# names in META_VARS are taken), then infers from the data what is still unknown.
load_meta() {
  local f=$1.meta.tsv k v rest n=0
  local -A loaded=()
  if [ -f "$f" ]; then
    while IFS=$'\t' read -r k v rest; do
      case $k in
        fail) FAILS+=("$v"); n=$((n + 1)) ;;
        faillog) printf '%s\n' "$rest" >>"$work/fail.$v.log" ;;
        *) if [[ " ${META_VARS[*]} " == *" $k "* ]]; then printf -v "$k" '%s' "$v"; loaded[$k]=1; fi ;;
      esac
    done <"$f"
  else
    M_NOTE="not saved with this data (no $(basename "$f"))"
  fi
  _unk() { [ -n "${loaded[$1]:-}" ] || printf -v "$1" '%s' "$2"; }
  # from the data: groups, rounds, contenders and concurrencies
  local groups
  groups=$(cut -f1 "$DATA" | sort -u | tr '\n' ',')
  [ -s "$work/sync.md" ] && groups+=sync,
  _unk ONLY "${groups%,}"
  _unk QUICK "$([[ $1 == *-quick ]] && echo 1 || echo 0)"
  _unk CORES "$(nproc)"
  _rounds() { awk -F'\t' -v g="$1" '$1 ~ g {if ($5 + 1 > n) n = $5 + 1} END {print n + 0}' "$DATA"; }
  _unk ROUNDS "$(_rounds '^(speed|acore)$')"
  _unk TLS_ROUNDS "$(_rounds '^tls$')"
  _unk RESP_ROUNDS "$(_rounds '^resp$')"
  _unk SPEED_SECONDS "?"
  _unk ASYNC_JOBS "$(awk -F'\t' '$1 == "speed" && $4 ~ /^apA[0-9]+$/ {sub(/^apA/, "", $4); print $4}' "$DATA" | sort -nu | tr '\n' ' ')"
  _concs() { awk -F'\t' -v p="$1" '$1 == "tls" && $2 ~ ("^" p "c[0-9]+$") {sub(/.*c/, "", $2); print $2}' "$DATA" | sort -nu | tr '\n' ' '; }
  _unk TLS_CONCS "$(_concs '')"
  _unk TLS_RSA3072_CONCS "$(_concs 'rsa3072-')"
  _unk TLS_RSA4096_CONCS "$(_concs 'rsa4096-')"
  _unk TLS_ECDSA_CONCS "$(_concs 'ecdsap256-')"
  _in_order() { local s out=''; for s in sync async-fd async-cb async-always nginx; do grep -qx -- "$s" <<<"$1" && out+="$s "; done; echo "${out% }"; }
  _unk TLS_ECDSA_SERVERS "$(_in_order "$(awk -F'\t' '$1 == "tls" && $2 ~ /^ecdsap256-/ {print $4}' "$DATA" | sort -u)")"
  _unk RESP_CERT "$(awk -F'\t' '$1 == "resp" {print $2; exit}' "$DATA")"
  _unk RESP_SERVERS "$(_in_order "$(awk -F'\t' '$1 == "resp" {print $4}' "$DATA" | sort -u)")"
  local d h
  d=$(basename "$1" | sed -n 's/^\([0-9]\{4\}-[0-9][0-9]-[0-9][0-9]\)-.*/\1/p')
  h=$(basename "$1" | sed -n 's/^[0-9]\{4\}-[0-9][0-9]-[0-9][0-9]-\(.*\)$/\1/p'); h=${h%-quick}
  _unk M_DAY "${d:-unknown}"; _unk M_DATE "${d:-unknown}"; _unk M_HOST "${h:-unknown}"
  for k in GOAL_A32_VS_MULTI TLS_MISSING RESP_MISSING M_DIRTY; do _unk "$k" ""; done
  _unk DISTURBED_CORES 0.1
  for k in TLS_DURATION TLS_WARMUP RESP_KA RESP_FLOOD RESP_INTERVAL RESP_DURATION; do _unk "$k" "?"; done
  for k in M_CPU M_OS M_KERNEL M_IDLE M_OPENSSL M_NGINX M_COMMIT LOAD_START LOAD_END DURATION_MIN; do _unk "$k" "?"; done
  [ -z "${M_NOTE:-}" ] || M_COMMIT="? ($M_NOTE)"
  SPEED_CONT=(def1 defM apsync)
  for k in $ASYNC_JOBS; do SPEED_CONT+=("apA$k"); done
  # the post-quantum tests (OpenSSL 3.5+) when the data has them
  for k in "${SPEED_PQ[@]}"; do
    [[ " ${SPEED_TESTS[*]} " == *" $k "* ]] && continue
    awk -F'\t' -v t="$k" '$1 == "speed" && $2 == t {f = 1; exit} END {exit !f}' "$DATA" && SPEED_TESTS+=("$k")
  done
  read -r -a TLS_CONC_LIST <<<"$TLS_CONCS"
  read -r -a RESP_SERVER_LIST <<<"$RESP_SERVERS"
  tls_plan
  T_START=$(date +%s)
}

make_report() {
  local base=$1
  load_summary
  [ -n "${REPORT_ONLY:-}" ] || collect_machine
  [ "$DATA" -ef "$base.tsv" ] 2>/dev/null || cp "$DATA" "$base.tsv"
  [ "$STATS" -ef "$base.stats.tsv" ] 2>/dev/null || cp "$STATS" "$base.stats.tsv"
  [ -n "${REPORT_ONLY:-}" ] || save_meta "$base"
  write_md "$base" >"$base.md.tmp"
  mv "$base.md.tmp" "$base.md"
  write_chart_data
  local title
  title="asyncpool, $M_HOST, $CORES cores, $(cut -d' ' -f1-2 <<<"$M_OPENSSL"), $M_DAY$([ "$QUICK" = 1 ] && echo ' (quick)')"
  local hs=0 ht=0 hc=0 ha=0 hr=0
  has_values "$work/chart_aj.dat" && hs=1
  has_values "$work/chart_tls.dat" && ht=1
  has_values "$work/chart_certs.dat" && hc=1
  has_values "$work/chart_acore.dat" && ha=1
  has_values "$work/chart_resp.dat" && hr=1
  command -v gnuplot >/dev/null || { echo "gnuplot not installed: no chart" >&2; return 1; }
  timeout 60 gnuplot -e "ajfile='$work/chart_aj.dat'; tlsfile='$work/chart_tls.dat'; certfile='$work/chart_certs.dat'; acorefile='$work/chart_acore.dat'; respfile='$work/chart_resp.dat'; outfile='$base.png'; ttl='$title'; ncores=$CORES; ntls=${#TLS_SERVERS[@]}; havespeed=$hs; havetls=$ht; havecerts=$hc; haveacore=$ha; haveresp=$hr; respcert='$(tls_cert_label "$RESP_CERT")'" \
    "$src/bench/plot.gp" || return 1
  [ -s "$base.png" ]
}

make_report_failed_note() {
  [ -f "$1.md" ] || printf '# asyncpool benchmarks\n\nReport generation failed; see the run output.\n' >"$1.md"
}
