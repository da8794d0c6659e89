#!/usr/bin/env bash
# openssl speed waits for its async jobs with select(), which aborts the process (glibc:
# "bit out of range 0 - FD_SETSIZE on fd_set") when a job's fd is 1024 or above. With
# select_safe_fds = yes, asyncpool never hands a job such an fd: the jobs that would get
# one run their calls inline, and speed with 1100 jobs completes. The counters show both
# kinds of call (the low-numbered jobs' offloaded, the others' inline).
. "$(dirname "$0")/cli_lib.sh"

sed 's/^\(outside_job = .*\)$/\1\nselect_safe_fds = yes/' "$ASYNCPOOL_CONF" >"$TMP/select.cnf"
grep -q '^select_safe_fds = yes' "$TMP/select.cnf" || fail "could not make the test config"
export OPENSSL_CONF=$TMP/select.cnf

note "ecdsap256 with -async_jobs 1100, select_safe_fds = yes"
ossl many speed -elapsed -async_jobs 1100 -seconds 1 ecdsap256
grep -qE '256 bits ecdsa \(nistp256\)' "$TMP/many.out" || { cat "$TMP/many.out" "$TMP/many.err"; fail "no result line"; }
expect_gt many sign offloaded 0
expect_gt many sign inline 0

note "a bad value fails the load, naming the key"
printf 'openssl_conf = i\n[i]\nproviders = p\n[p]\nasyncpool = a\n[a]\nactivate = 1\nselect_safe_fds = maybe\n' >"$TMP/bad.cnf"
OPENSSL_CONF=$TMP/bad.cnf openssl list -providers >"$TMP/bad.out" 2>"$TMP/bad.err"
grep -q 'select_safe_fds = "maybe": expected yes or no' "$TMP/bad.err" || { cat "$TMP/bad.err"; fail "no error naming select_safe_fds"; }
if grep -q asyncpool "$TMP/bad.out"; then cat "$TMP/bad.out"; fail "asyncpool loaded with a bad select_safe_fds"; fi

echo "PASS: select_safe_fds keeps openssl speed's select() within FD_SETSIZE"
