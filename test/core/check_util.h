/* Check helpers for hot loops: ck_assert() records a mark point (a write to Check's
 * pipe) on every success, which costs a syscall per assertion; these only call into
 * Check on failure. */
#ifndef AP_TEST_CORE_CHECK_UTIL_H
#define AP_TEST_CORE_CHECK_UTIL_H

#include <check.h>

#define REQUIRE(cond, ...)                                                                 \
    do {                                                                                   \
        if (!(cond))                                                                       \
            ck_abort_msg("REQUIRE(" #cond ") failed: " __VA_ARGS__);                       \
    } while (0)

#endif
