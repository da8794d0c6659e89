/*
 * offload = auto, rule 6 (provider/probe.c): the choice between offloading heavy calls
 * and running them inline, fed with made-up epochs and a made-up clock, so that every
 * case is exact and repeatable. What the module promises:
 *
 *  - probe_picks_inline: inline 30% faster than the pool -> inline within 3 probes;
 *  - probe_keeps_pool: inline at half the rate -> never inline, and probes grow rare
 *    (at most one in 64 epochs after the first);
 *  - probe_ties_go_to_pool: the same rate both ways -> never inline;
 *  - probe_noise: the same rate with +-10% noise on every epoch -> inline chosen in
 *    under 5% of the epochs;
 *  - probe_turns_back: inline chosen, then the pool becomes faster -> the pool again;
 *  - probe_thin_epochs: epochs with fewer than 8 calls are not counted;
 *  - probe_ratio_exact: the rate ratio is not rounded by integer steps;
 *  - probe_call_epochs: through ap_probe_call with a fake clock: a probe epoch's calls
 *    run the other way, an epoch lasts until it holds 8 calls or 4 epochs have run,
 *    probes are half an epoch, a call whose clock reading predates the epoch closes
 *    nothing, and epoch_ns 0 means always the pool;
 *  - probe_threads: four threads calling at once (ThreadSanitizer runs this): every
 *    inline answer is counted once.
 */
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "provider/probe.h"

#define EP 50000000u /* 50 ms, the default */

/* Readers, so that a failed assertion prints a name, not an expanded atomic_load. */
static unsigned chosen_inline(ap_probe *pr) { return (unsigned)atomic_load(&pr->heavy_inline); }
static unsigned probing(ap_probe *pr) { return (unsigned)atomic_load(&pr->probing); }
static unsigned gain(ap_probe *pr) { return atomic_load(&pr->gain_pm); }
static uint64_t probes(ap_probe *pr) { return atomic_load(&pr->probes); }
static uint64_t switches(ap_probe *pr) { return atomic_load(&pr->switches); }
static uint64_t inlined(ap_probe *pr) { return atomic_load(&pr->inlined); }
static uint64_t ep_calls(ap_probe *pr) { return atomic_load(&pr->ep_calls); }

/* Which way the coming epoch runs: 1 inline. */
static int way(ap_probe *pr)
{
    return (int)(chosen_inline(pr) ^ probing(pr));
}

/* Closes one epoch that would hold `calls` calls at full length (50 ms); a probe epoch
 * is half as long, with half the calls. */
static void close_epoch(ap_probe *pr, uint64_t calls)
{
    if (probing(pr))
        ap_probe_close(pr, calls / 2, EP / 2);
    else
        ap_probe_close(pr, calls, EP);
}

/* A world where a 50 ms epoch holds off_calls offloaded calls or in_calls inline ones.
 * Runs n epochs; returns how many of them ran inline. */
static unsigned run_world(ap_probe *pr, unsigned n, unsigned off_calls, unsigned in_calls)
{
    unsigned inl = 0;

    for (unsigned i = 0; i < n; i++) {
        int w = way(pr);

        inl += (unsigned)w;
        close_epoch(pr, w ? in_calls : off_calls);
    }
    return inl;
}

START_TEST(probe_picks_inline)
{
    ap_probe pr;
    unsigned probes_at_switch = 0;

    ap_probe_init(&pr, EP);
    for (unsigned i = 0; i < 200 && !chosen_inline(&pr); i++) {
        run_world(&pr, 1, 100, 130);
        probes_at_switch = (unsigned)probes(&pr);
    }
    ck_assert_msg(chosen_inline(&pr) == 1, "still offloading, gain %u permille",
                  gain(&pr));
    ck_assert_msg(probes_at_switch <= 3, "switched after %u probes", probes_at_switch);
    /* and stays there */
    run_world(&pr, 500, 100, 130);
    ck_assert_int_eq(chosen_inline(&pr), 1);
    ck_assert_uint_eq(switches(&pr), 1);
}
END_TEST

START_TEST(probe_keeps_pool)
{
    ap_probe pr;
    unsigned inl;

    ap_probe_init(&pr, EP);
    inl = run_world(&pr, 1000, 100, 50);
    ck_assert_int_eq(chosen_inline(&pr), 0);
    ck_assert_uint_eq(switches(&pr), 0);
    /* the first probe after 4 epochs, then one per 64 + 1: 16 in 1000 epochs */
    ck_assert_msg(probes(&pr) <= 17, "%ju probes in 1000 epochs",
                  (uintmax_t)probes(&pr));
    ck_assert_uint_eq(inl, probes(&pr));
    ck_assert_msg(gain(&pr) < 700, "gain %u permille", gain(&pr));
}
END_TEST

START_TEST(probe_ties_go_to_pool)
{
    ap_probe pr;

    ap_probe_init(&pr, EP);
    run_world(&pr, 2000, 100, 100);
    ck_assert_int_eq(chosen_inline(&pr), 0);
    ck_assert_uint_eq(switches(&pr), 0);
    ck_assert_uint_eq(gain(&pr), 1000);
}
END_TEST

START_TEST(probe_noise)
{
    ap_probe pr;
    uint32_t x = 12345;
    unsigned inl = 0, n = 4000;

    ap_probe_init(&pr, EP);
    for (unsigned i = 0; i < n; i++) {
        x = x * 1664525u + 1013904223u;       /* the same sequence on every run */
        inl += (unsigned)chosen_inline(&pr);
        close_epoch(&pr, 900 + (x >> 8) % 201); /* 1000 calls +- 10%, either way */
    }
    ck_assert_msg(inl < n / 20, "inline chosen in %u of %u epochs (%ju switches)", inl, n,
                  (uintmax_t)switches(&pr));
}
END_TEST

START_TEST(probe_turns_back)
{
    ap_probe pr;
    unsigned probes0;

    ap_probe_init(&pr, EP);
    run_world(&pr, 200, 100, 130);
    ck_assert_int_eq(chosen_inline(&pr), 1);
    probes0 = (unsigned)probes(&pr);
    /* the machine frees a core: the pool now does twice what the loop does */
    for (unsigned i = 0; i < 2000 && chosen_inline(&pr); i++)
        run_world(&pr, 1, 100, 50);
    ck_assert_int_eq(chosen_inline(&pr), 0);
    ck_assert_msg(probes(&pr) - probes0 <= 3, "back after %ju probes",
                  (uintmax_t)(probes(&pr) - probes0));
    ck_assert_uint_eq(switches(&pr), 2);
}
END_TEST

START_TEST(probe_thin_epochs)
{
    ap_probe pr;

    ap_probe_init(&pr, EP);
    /* inline "10 times faster", but never 8 calls in an epoch */
    run_world(&pr, 500, 1, 14); /* a probe epoch holds 7 */
    ck_assert_int_eq(chosen_inline(&pr), 0);
    ck_assert_uint_eq(gain(&pr), 1000);
    ck_assert_uint_gt(probes(&pr), 0);
}
END_TEST

/* The ratio is exact where integer division would round: 9 calls in a probe that ran
 * 100 ms against 100 in 50 ms is 45 permille (integer steps would give 40), so the
 * average moves to 1000 + (45 - 1000) / 4 = 762. */
START_TEST(probe_ratio_exact)
{
    ap_probe pr;

    ap_probe_init(&pr, EP);
    for (unsigned i = 0; i < 3; i++)
        ap_probe_close(&pr, 100, EP);
    ap_probe_close(&pr, 100, EP);          /* the 4th: the reference; next is a probe */
    ck_assert_uint_eq(probing(&pr), 1);
    ap_probe_close(&pr, 9, 2 * EP);        /* the probe, stretched */
    ck_assert_uint_eq(probes(&pr), 1);
    ck_assert_uint_eq(gain(&pr), 762);
}
END_TEST

/* n calls at now, through ap_probe_call; returns how many were told "inline". */
static unsigned calls_at(ap_probe *pr, uint64_t now, unsigned n)
{
    unsigned inl = 0;

    for (unsigned i = 0; i < n; i++)
        inl += (unsigned)ap_probe_call(pr, now);
    return inl;
}

START_TEST(probe_call_epochs)
{
    ap_probe pr, off;
    const uint64_t ep = 1000;
    uint64_t t = 1, t6;

    ap_probe_init(&off, 0);
    ck_assert_uint_eq(calls_at(&off, 5, 100), 0);
    ck_assert_uint_eq(probes(&off), 0);

    ap_probe_init(&pr, ep);
    /* Epochs 1-4, 10 calls each at their start; each first call closes the epoch
     * before. Closing the 4th makes the 5th a probe, so the call that closes it is
     * already the probe's, and runs inline. */
    ck_assert_uint_eq(calls_at(&pr, t, 10), 0);
    for (unsigned e = 2; e <= 4; e++) {
        t += ep;
        ck_assert_uint_eq(calls_at(&pr, t, 10), 0);
    }
    ck_assert_int_eq(probing(&pr), 0);
    t += ep;
    ck_assert_uint_eq(calls_at(&pr, t, 10), 10);
    ck_assert_int_eq(probing(&pr), 1);
    /* Not over before half an epoch... */
    ck_assert_uint_eq(calls_at(&pr, t + ep / 2 - 1, 0), 0);
    ck_assert_int_eq(probing(&pr), 1);
    /* ...and over at half: inline did 10 calls in ep/2 against 10 in ep, twice the
     * rate, so the gain goes a quarter of the way from 1000 to 2000 permille, past
     * 1080: inline is chosen, and this call already runs inline. */
    t += ep / 2;
    ck_assert_uint_eq(calls_at(&pr, t, 1), 1);
    ck_assert_uint_eq(probes(&pr), 1);
    ck_assert_uint_eq(gain(&pr), 1250);
    ck_assert_int_eq(chosen_inline(&pr), 1);
    ck_assert_uint_eq(switches(&pr), 1);
    ck_assert_uint_eq(inlined(&pr), 11);

    /* An epoch short of 8 calls goes on past its end, and ends at 4 epochs. */
    t6 = t;
    ck_assert_uint_eq(calls_at(&pr, t6 + 3 * ep, 1), 1);
    ck_assert_uint_eq(ep_calls(&pr), 2);
    ck_assert_uint_eq(calls_at(&pr, t6 + 4 * ep, 1), 1);
    ck_assert_uint_eq(ep_calls(&pr), 1);
    ck_assert_uint_eq(atomic_load(&pr.ep_start), t6 + 4 * ep);
    ck_assert_uint_eq(gain(&pr), 1250); /* nothing was sampled */

    /* A call whose clock reading predates the epoch's start (another thread closed the
     * epoch before it since) counts in the epoch and closes nothing. */
    ck_assert_uint_eq(calls_at(&pr, t6 + 4 * ep - ep / 2, 20), 20);
    ck_assert_uint_eq(ep_calls(&pr), 21);
    ck_assert_uint_eq(atomic_load(&pr.ep_start), t6 + 4 * ep);
    ck_assert_uint_eq(probes(&pr), 1);
}
END_TEST

struct thr {
    ap_probe *pr;
    unsigned inl;
};

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void *caller(void *arg)
{
    struct thr *t = arg;

    for (unsigned i = 0; i < 20000; i++)
        t->inl += (unsigned)ap_probe_call(t->pr, now_ns());
    return NULL;
}

START_TEST(probe_threads)
{
    ap_probe pr;
    struct thr t[4];
    pthread_t th[4];
    unsigned inl = 0;

    ap_probe_init(&pr, 20000); /* 20 µs epochs: many closes, some raced for */
    for (int i = 0; i < 4; i++) {
        t[i] = (struct thr){&pr, 0};
        ck_assert_int_eq(pthread_create(&th[i], NULL, caller, &t[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        inl += t[i].inl;
    }
    ck_assert_uint_eq(inl, inlined(&pr));
    ck_assert_uint_gt(probes(&pr), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("probe");
    TCase *tc = tcase_create("probe");
    SRunner *sr;
    int failed;

    tcase_add_test(tc, probe_picks_inline);
    tcase_add_test(tc, probe_keeps_pool);
    tcase_add_test(tc, probe_ties_go_to_pool);
    tcase_add_test(tc, probe_noise);
    tcase_add_test(tc, probe_turns_back);
    tcase_add_test(tc, probe_thin_epochs);
    tcase_add_test(tc, probe_ratio_exact);
    tcase_add_test(tc, probe_call_epochs);
    tcase_add_test(tc, probe_threads);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
