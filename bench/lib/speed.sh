# bench/lib/speed.sh — openssl speed, every contender, alternating. Sourced by bench/run.sh.
#
# Contenders:
#   def1    default provider, one process          OPENSSL_CONF=/dev/null
#   defM    default provider, -multi <cores>       (the anchor of every ratio)
#   apsync  asyncpool, no -async_jobs: the synchronous path (outside a job: inline)
#   apA<N>  asyncpool, -async_jobs N
#   apA32f  asyncpool, -async_jobs 32, inline_threshold = 0 (AES-GCM only: forced offload)
#   apA32a  asyncpool, -async_jobs 32, ASYNCPOOL_OFFLOAD=always (all but AES-GCM: every
#           heavy call offloaded, as before offload = auto, the default)
# Results come from speed's machine-readable lines (-mr), 3.0 format:
#   +F2:i:bits:sign/s:verify/s (RSA)   +F4:i:bits:sign/s:verify/s (ECDSA)
#   +F5:i:bits:op/s:s/op (ECDH)        +F6:i:bits:name:sign/s:verify/s (EdDSA)
#   +F:i:name:bytes/s (-evp, one -bytes size)
# and, from OpenSSL 3.5 (-kem-algorithms / -signature-algorithms; i is the algorithm's
# index in speed's list, which differs with asyncpool loaded):
#   +F9:i:keygen/s:encaps/s:decaps/s (KEM)   +F10:i:keygen/s:sign/s:verify/s (signature)
# With -multi the children's lines come back as "Got: +F..." and the parent's own +F line
# is the sum, which is the one taken.

declare -A SPEED_ARGS=(
  [rsa2048]="rsa2048" [rsa4096]="rsa4096" [ecdsap256]="ecdsap256" [ecdhp256]="ecdhp256"
  [x25519]="ecdhx25519" [ed25519]="ed25519"
  [gcm16]="-bytes 16 -evp aes-128-gcm" [gcm1024]="-bytes 1024 -evp aes-128-gcm"
  [gcm16384]="-bytes 16384 -evp aes-128-gcm"
  [mlkem768]="ML-KEM-768" [mldsa65]="ML-DSA-65"
)
# record kind, the metrics it carries, and the asyncpool operation that must be offloaded
declare -A SPEED_KIND=([rsa2048]=F2 [rsa4096]=F2 [ecdsap256]=F4 [ecdhp256]=F5 [x25519]=F5
                       [ed25519]=F6 [gcm16]=F [gcm1024]=F [gcm16384]=F
                       [mlkem768]=F9 [mldsa65]=F10)
declare -A SPEED_OP=([rsa2048]=sign [rsa4096]=sign [ecdsap256]=sign [ecdhp256]=derive
                     [x25519]=derive [ed25519]=sign [gcm16]=cipher [gcm1024]=cipher
                     [gcm16384]=cipher [mlkem768]=kem [mldsa65]=sign)

# The post-quantum tests, added to the default SPEED_TESTS when the openssl we run has
# the algorithm (OpenSSL 3.5 and later): test name and the `openssl list` option that
# shows it. Asked of openssl itself, not inferred from its version string.
SPEED_PQ=(mlkem768 mldsa65)
declare -A SPEED_PQ_LIST=([mlkem768]=-kem-algorithms [mldsa65]=-signature-algorithms)
# Whether the user chose the tests (SPEED_TESTS in the environment): then none is added.
SPEED_TESTS_GIVEN=${SPEED_TESTS:+1}

# speed_has TEST: the default provider of this openssl offers TEST's algorithm
speed_has() {
  local l # not piped into grep -q: under pipefail an early exit can fail the pipe
  l=$(OPENSSL_CONF=/dev/null openssl list "${SPEED_PQ_LIST[$1]}" 2>/dev/null) || return 1
  grep -qiw -- "${SPEED_ARGS[$1]}" <<<"$l"
}

# speed_add_pq: appends to SPEED_TESTS the PQ tests this openssl can run (none on 3.0),
# unless the user set SPEED_TESTS, and grows the plan's step count to match
speed_add_pq() {
  local t added=()
  [ -z "$SPEED_TESTS_GIVEN" ] || return 0
  for t in "${SPEED_PQ[@]}"; do
    [[ " ${SPEED_TESTS[*]} " == *" $t "* ]] && continue
    speed_has "$t" && added+=("$t")
  done
  [ ${#added[@]} -gt 0 ] || return 0
  SPEED_TESTS+=("${added[@]}")
  NSTEPS=$((NSTEPS + ROUNDS * ${#added[@]} * ${#SPEED_CONT[@]}))
  echo "speed: $(openssl version | cut -d' ' -f1-2) has ${added[*]}: added to the speed tests" \
       "(now $NSTEPS steps)"
}

# OpenSSL 3.5's speed runs, for rsa2048/rsa4096, not only the classic RSA test (+F2, the
# one read here) but also the RSA KEM and RSA signature-algorithm tests (+F9, +F10), each
# with one untimed RSA key generation per async job first, outside any job (inline), and
# a timed key generation loop that must wait for every job's key generation in flight.
# With asyncpool at -async_jobs 32 that is 128 RSA-4096 key generations: 211 s on 2
# shared cores (measured; limit 68 s), and four times as many at 128 jobs, all spent on
# numbers the bench throws away. speed has no option to leave them out, but it builds
# those two lists from the algorithms it can fetch with -propquery, while its classic
# RSA test ignores -propquery (on 3.0 and 3.5 alike it takes the implementation the
# config's default_properties give): a query that no provider matches leaves exactly the
# classic test. Only where speed has those lists (3.5+: -kem-algorithms in its -help).
SPEED_CLASSIC_PROPQ=provider=none-bench-classic-rsa-only
SPEED_PKEY_LISTS=''
speed_classic_only_args() { # TEST -> the extra speed arguments for TEST, if any
  [[ $1 == rsa* ]] || return 0
  if [ -z "$SPEED_PKEY_LISTS" ]; then
    local h
    h=$(openssl speed -help 2>&1 || true)
    if grep -q -- '-kem-algorithms' <<<"$h"; then SPEED_PKEY_LISTS=1; else SPEED_PKEY_LISTS=0; fi
  fi
  [ "$SPEED_PKEY_LISTS" = 1 ] && echo "-propquery $SPEED_CLASSIC_PROPQ"
  return 0
}

# parse_speed KIND FILE -> "metric value" lines; nothing when the +F line is missing
parse_speed() {
  awk -F: -v k="+$1" '$1 == k {
      if (k == "+F2" || k == "+F4") { print "sign", $4; print "verify", $5 }
      else if (k == "+F5") print "derive", $4
      else if (k == "+F6") { print "sign", $5; print "verify", $6 }
      else if (k == "+F") printf "MBps %.2f\n", $4 / 1e6
      else if (k == "+F9") { print "encaps", $4; print "decaps", $5 }
      else if (k == "+F10") { print "sign", $4; print "verify", $5 }
      n++
    } END { exit n == 1 ? 0 : 1 }' "$2"
}

# parse_apstats FILE -> "op offloaded inline eagain errors submitted high_water" lines
# from the provider's ASYNCPOOL_STATS=1 exit line:
#   asyncpool: sign offloaded=N inline=N eagain=N errors=N; verify ...; kem ...; dropped=N;
#   pool workers=N submitted=N completed=N rejected_full=N high_water=N
parse_apstats() {
  awk '/^asyncpool: / {
      sub(/^asyncpool: /, ""); n = split($0, seg, /; */)
      for (i = 1; i <= n; i++) {
        m = split(seg[i], f, / +/); name = f[1]
        if (name ~ /=/) continue  # not an operation: "dropped=N" (algorithms left out)
        for (j = 2; j <= m; j++) { split(f[j], kv, "="); v[name "." kv[1]] = kv[2] }
        if (name != "pool") ops[++nops] = name
      }
      found = 1
    } END {
      if (!found) exit 1
      for (i = 1; i <= nops; i++) { o = ops[i]
        print o, v[o ".offloaded"] + 0, v[o ".inline"] + 0, v[o ".eagain"] + 0,
              v[o ".errors"] + 0, v["pool.submitted"] + 0, v["pool.high_water"] + 0 }
    }' "$1"
}

# speed_once CONTENDER TEST ROUND: one openssl speed run, recorded in $DATA and $STATS
speed_once() {
  local c=$1 t=$2 r=$3 log="$work/log/speed.$2.$1.$3" conf=/dev/null ap=0 rc=0 n offload=
  local -a args=()
  case $c in
    def1) ;;
    defM) args=(-multi "$CORES") ;;
    apsync) ap=1 conf=$AP_CONF ;;
    apA*f) ap=1 conf=$work/forced.cnf n=${c#apA}; args=(-async_jobs "${n%f}") ;;
    apA*a) ap=1 conf=$AP_CONF n=${c#apA} offload=always; args=(-async_jobs "${n%a}") ;;
    apA*) ap=1 conf=$AP_CONF args=(-async_jobs "${c#apA}") ;;
  esac
  # shellcheck disable=SC2207 # two words or none
  args+=($(speed_classic_only_args "$t"))
  step_begin speed "$t $(label_of "$c") r$((r + 1))"
  _speed_cmd() {
    # shellcheck disable=SC2086 # SPEED_ARGS holds several words on purpose
    timeout -k 5 $((SPEED_SECONDS * 8 + 60)) env OPENSSL_CONF="$conf" OPENSSL_MODULES="$AP_MODULES" \
      ASYNCPOOL_OFFLOAD="$offload" \
      ASYNCPOOL_STATS=1 openssl speed -elapsed -mr -seconds "$SPEED_SECONDS" "${args[@]}" \
      ${SPEED_ARGS[$t]} >"$log.out" 2>"$log.err"
  }
  local tm wall ours others
  timed tm _speed_cmd || rc=$?
  read -r wall ours others <<<"$tm"
  local res
  if ! res=$(parse_speed "${SPEED_KIND[$t]}" "$log.out"); then
    cat "$log.out" "$log.err" >"$log.both" 2>/dev/null
    step_fail "openssl speed rc=$rc, no +${SPEED_KIND[$t]} result line" "$log.both"
    return 0
  fi
  local m v line=""
  while read -r m v; do
    put speed "$t" "$m" "$c" "$r" "$v"
    line+="$m=$(fmtn "$v") "
  done <<<"$res"
  # CPU obtained: cores used by this run, and by everything else on the machine meanwhile
  put speed "$t" cpu_ours "$c" "$r" "$ours"
  put speed "$t" cpu_others "$c" "$r" "$others"
  line+="cpu=$ours others=$others "
  if [ "$ap" = 1 ]; then
    local st o off inl eag err sub hw
    if ! st=$(parse_apstats "$log.err"); then
      cat "$log.err" >"$log.both"
      step_fail "no 'asyncpool:' stats line: asyncpool not loaded? ($line)" "$log.both"
      return 0
    fi
    while read -r o off inl eag err sub hw; do
      printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$c" "$r" "$o" "$off" "$inl" \
        "$eag" "$err" "$sub" "$hw" >>"$STATS"
      [ "$o" = "${SPEED_OP[$t]}" ] && line+="[$o offloaded=$off inline=$inl hw=$hw]"
    done <<<"$st"
    # async runs of the asymmetric tests must have offloaded, so must the forced GCM row
    off=$(awk -v o="${SPEED_OP[$t]}" '$1 == o {print $2}' <<<"$st")
    if [[ $c == apA* ]] && { [ "${SPEED_OP[$t]}" != cipher ] || [[ $c == *f ]]; } \
       && [ "${off:-0}" -eq 0 ]; then
      step_fail "NOT OFFLOADED: ${SPEED_OP[$t]} offloaded=0 ($line)" "$log.err"
      return 0
    fi
  fi
  [ "$rc" = 0 ] || { step_fail "openssl speed rc=$rc ($line)" "$log.err"; return 0; }
  step_ok "$line"
}

label_of() {
  case $1 in
    def1) echo "default" ;;
    defM) echo "default -multi $CORES" ;;
    apsync) echo "asyncpool sync" ;;
    apA*f) local n=${1#apA}; echo "asyncpool -async_jobs ${n%f} forced" ;;
    apA*a) local n=${1#apA}; echo "asyncpool -async_jobs ${n%a} always" ;;
    apA*) echo "asyncpool -async_jobs ${1#apA}" ;;
    *) echo "$1" ;;
  esac
}

run_speed() {
  local r ti k c n
  local -a conts
  speed_add_pq
  for ((r = 0; r < ROUNDS; r++)); do
    for ((ti = 0; ti < ${#SPEED_TESTS[@]}; ti++)); do
      local t=${SPEED_TESTS[$ti]}
      conts=("${SPEED_CONT[@]}")
      if [[ $t == gcm* ]]; then conts+=(apA32f); else conts+=(apA32a); fi
      n=${#conts[@]}
      for ((k = 0; k < n; k++)); do
        c=${conts[$(((k + r + ti) % n))]}
        speed_once "$c" "$t" "$r"
      done
    done
  done
}
