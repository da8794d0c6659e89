# TLS end-to-end tests: the ssl_demo server and client, curl, openssl s_client/s_server,
# hostile clients. Scripts live in test/tls/. Exit 77 = skipped (asyncpool.so not built:
# functional checks ran, offloading could not be verified).
if(NOT TARGET tls_server)
  return()
endif()

set(AP_TLS_DIR ${CMAKE_CURRENT_SOURCE_DIR}/tls)
# LABELS: extra labels. "threads" puts a test in the ThreadSanitizer run too: the
# callback-mode tests, where provider workers call into the server.
function(ap_tls_test name script)
  cmake_parse_arguments(T "" "" "ARGS;LABELS" ${ARGN})
  ap_add_script_test(NAME ${name} COMMAND ${AP_TLS_DIR}/${script} ${T_ARGS}
                     LABELS tls ${T_LABELS} TIMEOUT 240)
  set_tests_properties(${name} PROPERTIES SKIP_RETURN_CODE 77)
endfunction()

ap_tls_test(tls_curl_fd curl.sh ARGS fd)
ap_tls_test(tls_curl_cb curl.sh ARGS cb LABELS threads)
ap_tls_test(tls_openssl_cli openssl_cli.sh)
ap_tls_test(tls_load_fd load.sh ARGS fd)
ap_tls_test(tls_load_cb load.sh ARGS cb LABELS threads)
# offload = auto (the default) in the demo server: RSA signatures offloaded, cheap calls
# inline, and (callback mode, offload_load_pct = 0) handshakes that mix both.
ap_tls_test(tls_auto auto.sh LABELS threads)
ap_tls_test(tls_hostile_fd hostile.sh ARGS fd)
ap_tls_test(tls_hostile_cb hostile.sh ARGS cb LABELS threads)
# TLS 1.3 with X25519MLKEM768 through s_server/s_client -async: the KEM offloaded on both
# ends (3.5+; passes with "not available" on 3.0).
ap_tls_test(tls_pq_hybrid pq.sh)
# The demo server and client with X25519MLKEM768 (tls_client --groups; curl --curves
# where curl has it) and with an ML-DSA-65 certificate: kem and sign offloaded in the
# server, and with tls_client --async the client's keygen and kem (decapsulation)
# offloaded in the client (3.5+; passes with "not available" on 3.0).
ap_tls_test(tls_pq_demo pq_demo.sh)
# HAProxy (Debian's package) with ssl-mode-async through asyncpool, RSA and ECDSA, loaded
# by OPENSSL_CONF and by haproxy.cfg's ssl-provider: every request on a full handshake,
# one offloaded signature each, a clean soft-stop (skipped without haproxy).
ap_tls_test(tls_haproxy haproxy_async.sh)
# The demo server against an emulated accelerator (README "Emulating an accelerator"):
# Little's law with a 100 ms sign latency, ring depth 8 (fd and callback), 5% sign
# faults. test/provider.cmake has emulation_config.
ap_tls_test(emulation_littles_law emulation.sh ARGS littles)
ap_tls_test(emulation_ring_fd emulation.sh ARGS ring fd)
ap_tls_test(emulation_ring_cb emulation.sh ARGS ring cb LABELS threads)
ap_tls_test(emulation_faults emulation.sh ARGS faults)
# Their rate (littles) and loop-latency (ring) bounds need the two cores: not beside
# another test (a valgrind run beside it halved the handshake rate).
set_tests_properties(emulation_littles_law emulation_ring_fd emulation_ring_cb
                     PROPERTIES RUN_SERIAL TRUE)
# HAProxy with ssl-mode-async against the emulated device, through the harness above:
# ASYNCPOOL_EMULATE=sign=2ms serves every request; with fail=sign:0.01 the failures are
# clean handshake failures, as many as the faults injected, and HAProxy keeps serving
# (skipped without haproxy).
ap_tls_test(emulation_haproxy haproxy_emulation.sh)
