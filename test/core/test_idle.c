/*
 * Idle cost: a started pool whose workers exist must sleep, not spin. Over one idle
 * second the whole process may use less than 10 ms of CPU (1% of a core).
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdlib.h>

#include <check.h>
#include <openssl/async.h>

#include "async_core/acore.h"
#include "offload/offload.h"
#include "util.h"

static int quick(void *arg)
{
    return mix(*(const uint32_t *)arg);
}

START_TEST(test_idle_cpu)
{
    offload_config cfg = {.workers = 4}; /* more workers than cores: all must sleep */
    offload_stats st;
    uint32_t in = 5;
    acore_trace tr;
    long before, used;

    ck_assert_int_eq(offload_start(&cfg), 1);
    ck_assert_int_eq(acore_call(quick, &in, ACORE_BLOCK, &tr), mix(in));
    ck_assert_int_eq(tr.offloaded, 1);
    offload_get_stats(&st);
    ck_assert_uint_eq(st.running, 4);
    sleep_us(100000); /* let the workers settle into their sleep */

    before = process_cpu_us();
    sleep_us(1000000);
    used = process_cpu_us() - before;
    ck_assert_msg(used < 10000, "idle pool used %ld us of CPU in 1 s", used);

    /* Still awake to work after the idle second. */
    in = 6;
    ck_assert_int_eq(acore_call(quick, &in, ACORE_BLOCK, &tr), mix(in));
    ck_assert_int_eq(tr.offloaded, 1);
    offload_stop();
}
END_TEST

int main(void)
{
    const TTest *const tests[] = {
        test_idle_cpu,
    };

    return run_core_suite("idle", tests, sizeof(tests) / sizeof(tests[0]));
}
