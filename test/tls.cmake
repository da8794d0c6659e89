# TLS end-to-end tests: the ssl_demo server and client, curl, openssl s_client/s_server,
# hostile clients. Scripts live in test/tls/. Exit 77 = skipped (asyncpool.so not built:
# functional checks ran, offloading could not be verified).
if(NOT TARGET tls_server)
  return()
endif()

set(AP_TLS_DIR ${CMAKE_CURRENT_SOURCE_DIR}/tls)
function(ap_tls_test name script)
  ap_add_script_test(NAME ${name} COMMAND ${AP_TLS_DIR}/${script} ${ARGN}
                     LABELS tls TIMEOUT 240)
  set_tests_properties(${name} PROPERTIES SKIP_RETURN_CODE 77)
endfunction()

ap_tls_test(tls_curl_fd curl.sh fd)
ap_tls_test(tls_curl_cb curl.sh cb)
ap_tls_test(tls_openssl_cli openssl_cli.sh)
ap_tls_test(tls_load_fd load.sh fd)
ap_tls_test(tls_load_cb load.sh cb)
ap_tls_test(tls_hostile_fd hostile.sh fd)
ap_tls_test(tls_hostile_cb hostile.sh cb)
