# Unit tests of offload/ and async_core/ over real libcrypto ASYNC jobs (no provider).
# They all run worker threads; those TSan can run are labelled "threads".
set(AP_CORE_UTIL ${CMAKE_CURRENT_SOURCE_DIR}/core/util.c)

ap_add_test(NAME core_acore
            SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/core/test_acore.c ${AP_CORE_UTIL}
            LABELS threads VALGRIND)

ap_add_test(NAME core_lifetime
            SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/core/test_lifetime.c ${AP_CORE_UTIL}
            LABELS threads VALGRIND)

# Not labelled "threads": ThreadSanitizer does not support a child of a multi-threaded
# process that starts threads (its thread registry still holds the parent's threads and
# aborts with "dup thread with used id"), and restarting the pool in the child is what
# this test is about. No valgrind run either: memcheck leak-checks every fork child,
# and in a child the heap of the parent's other threads (their OpenSSL error states,
# a blocked submitter's notifier) is unreachable by nature, not leaked by us.
# It runs in the plain and ASan+UBSan suites.
ap_add_test(NAME core_fork
            SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/core/test_fork.c ${AP_CORE_UTIL})

# CPU accounting of an idle second: meaningless under valgrind's serialising scheduler.
ap_add_test(NAME core_idle
            SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/core/test_idle.c ${AP_CORE_UTIL}
            LABELS threads)
