# Unit tests of offload/ and async_core/ over real libcrypto ASYNC jobs (no provider).
# They all run worker threads; those TSan can run are labelled "threads".
set(AP_CORE_UTIL ${CMAKE_CURRENT_SOURCE_DIR}/core/util.c)

ap_add_test(NAME core_acore
            SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/core/test_acore.c ${AP_CORE_UTIL}
            LABELS threads VALGRIND)
# test_early_resume once bounded each ASYNC_start_job call to 20 ms in the plain build:
# beside a test that keeps both cores busy (tls_load_fd, tls_haproxy) it failed 2 runs
# in 3. It now bounds only calls in which the thread blocked (100 ms), but stays serial.
set_tests_properties(core_acore PROPERTIES RUN_SERIAL TRUE)
# The same suite with workers that spin 20 µs before they park (offload_config
# spin_us): every property of the async contract again, now with requests that
# spinning workers take without a wake-up.
ap_add_test(NAME core_acore_spin PROGRAM core_acore ENV AP_TEST_SPIN_US=20 LABELS threads)
set_tests_properties(core_acore_spin PROPERTIES RUN_SERIAL TRUE)

# Spinning workers against offload.h: claims instead of wake-ups, the cap, a bounded
# window, stop and broadcast during a spin, and a mixture with spared submits. No
# valgrind run: the cases count on a 1 s window that memcheck's pace would eat.
ap_add_test(NAME core_spin
            SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/core/test_spin.c ${AP_CORE_UTIL}
            LABELS threads)
set_tests_properties(core_spin PROPERTIES RUN_SERIAL TRUE)

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

# Fork while two other threads keep submitting: plain build only. GCC 12's ASan
# allocator takes no lock around fork() (glibc's malloc does), so a child forked while
# another thread is inside malloc or free inherits that size class's lock held and
# hangs in its first allocation of that class: seen in about 1 run in 5, with the
# child's threads in SizeClassAllocator64::GetFromAllocator and the parent healthy.
# The plain build passed 400 runs in a row. The other fork cases fork while the
# parent's threads are idle and do run under ASan (core_fork above).
if(NOT ASYNCPOOL_SANITIZE STREQUAL "address")
  ap_add_test(NAME core_fork_submitting PROGRAM core_fork ARGS --while-submitting)
endif()

# CPU accounting of an idle second: meaningless under valgrind's serialising scheduler.
ap_add_test(NAME core_idle
            SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/core/test_idle.c ${AP_CORE_UTIL}
            LABELS threads)

# The wake-up path against OpenSSL's async contract, one test per defect of issue 8
# (full queue in both modes, blocked pauses, error marks, where callbacks run, a
# callback that takes the application's lock, no eventfd, stale signals, a fork child
# and the parent's fd). No valgrind run: one case forks, and memcheck leak-checks the
# child's copy of the parent's heap (see core_fork above).
ap_add_test(NAME core_reliability
            SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/core/test_reliability.c ${AP_CORE_UTIL}
            LABELS threads)
# Its full-queue cases bound wall time spent inside ASYNC_start_job: not beside another
# test that competes for the two cores.
set_tests_properties(core_reliability PROPERTIES RUN_SERIAL TRUE)

# fork() in a loop while another thread starts, broadcasts to and stops the pool in a
# loop (lock order between fork's prepare handler and the broadcast). Plain build
# only, for the reason given for core_fork_submitting.
if(NOT ASYNCPOOL_SANITIZE STREQUAL "address")
  ap_add_test(NAME core_fork_teardown PROGRAM core_reliability ARGS --fork-vs-teardown)
endif()

# The emulated device (offload/emu.c): latency on the timer thread, the ring and
# injected refusals through the space waiters (no lost wake-up), failures on the
# caller's queue, stop and fork with requests parked on the timer. No valgrind run:
# one case forks (see core_fork); under TSan that case is skipped.
ap_add_test(NAME core_emu
            SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/core/test_emu.c ${AP_CORE_UTIL}
            LABELS threads TIMEOUT 180)
