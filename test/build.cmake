# Checks of the build system itself (test/build/). They configure the project, not build
# it, and do not depend on the sanitizer: plain build only.
if(NOT ASYNCPOOL_SANITIZE STREQUAL "")
  return()
endif()

# OPENSSL_MODULESDIR follows the OpenSSL find_package found (-DOPENSSL_ROOT_DIR, a
# reconfigure), not the system's pkg-config; a value set by hand stays.
ap_add_script_test(NAME build_modulesdir
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/build/modulesdir.sh
  ENV "AP_CMAKE=${CMAKE_COMMAND}"
  TIMEOUT 120)
