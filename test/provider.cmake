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

# Never worse than default: every offered algorithm has the backend's function ids, and
# the 3.4/3.5 APIs (message signatures, opaque-key ciphers) work through asyncpool.
ap_add_test(NAME provider_dispatch
  SOURCES ${AP_PT}/test_dispatch.c ${AP_PT_COMMON}
  LIBS OpenSSL::SSL
  TIMEOUT 120)

# ML-KEM, hybrid ML-KEM groups, ML-DSA, SLH-DSA both ways, in and out of jobs (3.5+;
# on 3.0 each says "not available on this OpenSSL").
ap_add_test(NAME provider_pq
  SOURCES ${AP_PT}/test_pq.c ${AP_PT_COMMON}
  LIBS OpenSSL::SSL
  TIMEOUT 900)

ap_add_test(NAME provider_errors
  SOURCES ${AP_PT}/test_errors.c ${AP_PT_COMMON}
  LIBS OpenSSL::SSL
  TIMEOUT 300
  VALGRIND)

# 100 load/unload rounds (10 under valgrind: AP_UNDER_VALGRIND=1 is set by the helper).
ap_add_test(NAME provider_loadunload
  SOURCES ${AP_PT}/test_loadunload.c ${AP_PT_COMMON}
  LIBS OpenSSL::SSL
  TIMEOUT 300
  VALGRIND)

# offload = auto | always (provider/policy.c): what goes to the pool, from the counters.
ap_add_test(NAME provider_policy
  SOURCES ${AP_PT}/test_policy.c ${AP_PT_COMMON}
  LIBS OpenSSL::SSL
  TIMEOUT 300)

ap_add_test(NAME provider_config
  SOURCES ${AP_PT}/test_config.c ${AP_PT_COMMON}
  LIBS OpenSSL::SSL
  TIMEOUT 120)

ap_add_script_test(NAME provider_cli
  COMMAND bash ${AP_PT}/cli.sh
  TIMEOUT 300)
ap_add_script_test(NAME provider_speed
  COMMAND bash ${AP_PT}/speed.sh
  TIMEOUT 300)

# Both TLS ends async in one process, every record offloaded (inline_threshold = 0):
# megabytes each way, every byte checked.
# Every record is a round trip through the pool: several minutes under ASan on a
# busy 2-core machine.
ap_add_test(NAME provider_tls_integrity
  SOURCES ${AP_PT}/test_tls_integrity.c ${AP_PT_COMMON}
  LIBS OpenSSL::SSL
  TIMEOUT 900)

# Only OSSL_provider_init exported; cmake --install (into a DESTDIR) places the module
# and the config, and the installed module loads.
ap_add_script_test(NAME provider_module
  COMMAND bash ${AP_PT}/module.sh
  TIMEOUT 120)

# Threads that signed inline exit after asyncpool was unloaded and its application
# libctx freed: their libcrypto thread-exit handlers must find the backend's private
# libctx alive (DESIGN.md decision 13). Under valgrind a read of freed memory fails it.
ap_add_test(NAME provider_thread_exit
  SOURCES ${AP_PT}/test_thread_exit.c ${AP_PT_COMMON}
  LIBS OpenSSL::SSL
  TIMEOUT 120
  VALGRIND)

# The property-query filter (provider/propq.c, linked in directly) against OpenSSL's
# grammar, and one query with a quoted comma through the module.
ap_add_test(NAME provider_propq
  SOURCES ${AP_PT}/test_propq.c ${CMAKE_SOURCE_DIR}/provider/propq.c
          ${CMAKE_SOURCE_DIR}/provider/err.c ${AP_PT_COMMON}
  LIBS OpenSSL::SSL
  TIMEOUT 60)

# A bad value in the asyncpool section, activated from OPENSSL_CONF: one line on
# stderr naming key, value and range; asyncpool absent from `openssl list -providers`.
ap_add_script_test(NAME provider_bad_config
  COMMAND bash ${AP_PT}/bad_config.sh
  TIMEOUT 60)

# openssl speed -async_jobs 1100 (select() over the job fds) with select_safe_fds = yes.
ap_add_script_test(NAME provider_speed_select
  COMMAND bash ${AP_PT}/speed_select.sh
  TIMEOUT 300)

# The drop path: a fake backend (a built-in provider) whose algorithms carry function
# ids the table builder does not know; provider/tables.c is linked in directly.
ap_add_test(NAME provider_drop
  SOURCES ${AP_PT}/test_drop.c ${CMAKE_SOURCE_DIR}/provider/tables.c
          ${CMAKE_SOURCE_DIR}/provider/propq.c ${CMAKE_SOURCE_DIR}/provider/err.c
          ${AP_PT_COMMON}
  LIBS OpenSSL::SSL
  TIMEOUT 60)

# Device emulation's settings and determinism (README "Emulating an accelerator"):
# every bad emulate_* value and ASYNCPOOL_EMULATE item fails the load with its line;
# precedence (environment over config, a kind over all); a second instance with another
# emulation fails to load; the same seed replays the same faults (emu_probe).
add_executable(emu_probe ${AP_PT}/emu_probe.c)
target_link_libraries(emu_probe PRIVATE OpenSSL::Crypto)
ap_add_script_test(NAME emulation_config
  COMMAND bash ${AP_PT}/emulation_config.sh
  TIMEOUT 120)

# offload = auto, rule 6 (provider/probe.c) fed made-up epochs and clocks: when heavy
# calls go inline and back, how rarely it probes, and four threads calling at once.
ap_add_test(NAME provider_probe
  SOURCES ${AP_PT}/test_probe.c ${CMAKE_SOURCE_DIR}/provider/probe.c
  LABELS threads
  TIMEOUT 60
  VALGRIND)
