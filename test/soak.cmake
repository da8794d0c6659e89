# The soak (test/soak/): everything at once for a while, checking results, bounds and
# counters; see test/soak/soak.c. A plain C program (exit status), not a Check suite.
# Here it runs briefly; scripts/soak.sh runs it for minutes. Labelled "threads" so the
# TSan suite runs it too. Its fork thread and its abandoned jobs are on in the plain
# build only (the program decides: GCC 12's ASan allocator is not fork-safe, TSan
# cannot follow a child that starts threads, and an abandoned job is a leak by design).
set(AP_SOAK_ENV)
if(ASYNCPOOL_SANITIZE STREQUAL "")
  set(AP_SOAK_SECONDS 30)
else()
  set(AP_SOAK_SECONDS 15)
endif()
if(ASYNCPOOL_SANITIZE STREQUAL "thread")
  # The project's suppressions plus the soak's own (defects found, not yet fixed).
  file(READ ${CMAKE_CURRENT_SOURCE_DIR}/tsan.supp AP_TSAN_SUPP)
  file(READ ${CMAKE_CURRENT_SOURCE_DIR}/soak/tsan.supp AP_SOAK_TSAN_SUPP)
  file(WRITE ${CMAKE_CURRENT_BINARY_DIR}/soak-tsan.supp "${AP_TSAN_SUPP}${AP_SOAK_TSAN_SUPP}")
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS
               ${CMAKE_CURRENT_SOURCE_DIR}/tsan.supp ${CMAKE_CURRENT_SOURCE_DIR}/soak/tsan.supp)
  set(AP_SOAK_ENV
      "TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:suppressions=${CMAKE_CURRENT_BINARY_DIR}/soak-tsan.supp")
endif()
ap_add_test(NAME soak
            SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/soak/soak.c
                    ${CMAKE_CURRENT_SOURCE_DIR}/soak/app.c
                    ${CMAKE_CURRENT_SOURCE_DIR}/soak/work.c
                    ${CMAKE_CURRENT_SOURCE_DIR}/soak/prov.c
                    ${CMAKE_CURRENT_SOURCE_DIR}/soak/forker.c
                    ${CMAKE_CURRENT_SOURCE_DIR}/core/util.c
            ARGS --seconds ${AP_SOAK_SECONDS}
            ENV ${AP_SOAK_ENV}
            LABELS threads
            TIMEOUT 300)
