# Provider tests (test/provider/). See test/provider/README.md for what each asserts.
set(AP_PT ${CMAKE_CURRENT_SOURCE_DIR}/provider)
set(AP_PT_COMMON ${AP_PT}/ptest.c ${AP_PT}/ops.c)

ap_add_test(NAME provider_interop
  SOURCES ${AP_PT}/test_interop.c ${AP_PT_COMMON}
  LIBS OpenSSL::SSL
  TIMEOUT 600)

# Exit code 77 = the vector folder is missing: ctest reports the test as skipped.
ap_add_test(NAME provider_wycheproof
  SOURCES ${AP_PT}/test_wycheproof.c ${AP_PT_COMMON}
  LIBS PkgConfig::JSONC OpenSSL::SSL
  TIMEOUT 600)
set_tests_properties(provider_wycheproof PROPERTIES SKIP_RETURN_CODE 77)
