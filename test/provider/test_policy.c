/*
 * offload = auto | always (provider/policy.c), through the provider as an application
 * sees it: which heavy calls made in ASYNC jobs go to the pool, from the provider's
 * counters, and that every result is right whichever way a call went.
 *
 *  - always offloads every call, cheap ones included;
 *  - auto: a call with no cost estimate yet is offloaded; one estimated below
 *    offload_min_us runs inline while the demand for such calls is low, goes to the
 *    pool when it is high (measured here for real: back-to-back signatures are a full
 *    core of demand, signatures 2 ms apart about 1%), and runs inline when every worker
 *    already has a request queued (caller runs); a call above offload_min_us is
 *    offloaded unless rule 6's probe runs it inline (offload_probe_ms; 0: never);
 *    outside a job nothing changes; a cheap call sent to the pool wakes
 *    no worker while workers for every core but the loop's are awake (pool.spared);
 *  - ASYNCPOOL_OFFLOAD overrides the file, and a bad value fails the load, naming it;
 *  - worker_spin_us (and ASYNCPOOL_SPIN_US over it): calls one at a time are handed to
 *    a spinning worker without a wake-up (pool.spin_claims); without it, never.
 *
 * Each Check test runs in its own process (the pool is process-wide). The figures are
 * chosen with wide margins: a P-256 signature costs 15-60 µs here (ASan included)
 * against offload_min_us = 100; back-to-back signing is 1 core of demand against a
 * threshold of 0.5.
 */
#define _GNU_SOURCE
#include <check.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/provider.h>

#include "ops.h"
#include "ptest.h"

#define NSIG 20

typedef struct fixture {
    OSSL_LIB_CTX *lib;
    OSSL_PROVIDER *ap;
    ap_env e; /* for ap_ctr: only .ap is set */
    EVP_PKEY *key;
} fixture;

static const char OURS[] = "provider=asyncpool";

/* A libctx configured with `body` in asyncpool's section, and a key made by default. */
static void setup(fixture *f, const char *body, const char *alg, const char *group, int bits)
{
    const char *path = ap_write_conf(body, 1);
    op_kg k = {NULL, "provider=default", alg, group, bits, NULL, 0};

    memset(f, 0, sizeof(*f));
    f->lib = OSSL_LIB_CTX_new();
    ck_assert_ptr_nonnull(f->lib);
    if (OSSL_LIB_CTX_load_config(f->lib, path) != 1)
        ap_dump_errors("load_config");
    unlink(path);
    ck_assert_msg(OSSL_PROVIDER_available(f->lib, "asyncpool"), "asyncpool not active (%s)", body);
    f->ap = OSSL_PROVIDER_load(f->lib, "asyncpool"); /* a reference to the active one */
    ck_assert_ptr_nonnull(f->ap);
    f->e.ap = f->ap;
    k.lib = f->lib;
    ck_assert(op_keygen(&k));
    f->key = k.out;
    ck_assert(ASYNC_init_thread(32, 32));
}

static void teardown(fixture *f)
{
    ASYNC_cleanup_thread();
    EVP_PKEY_free(f->key);
    OSSL_PROVIDER_unload(f->ap);
    OSSL_LIB_CTX_free(f->lib);
}

static uint64_t ctr(fixture *f, const char *name)
{
    return ap_ctr(&f->e, name);
}

struct signing {
    op_sig s;
    unsigned char msg[32], sig[600];
};

static void signing_init(fixture *f, struct signing *g, int i)
{
    memset(g, 0, sizeof(*g));
    memset(g->msg, i + 1, sizeof(g->msg));
    g->s = (op_sig){f->lib, OURS, f->key, "SHA256", 0, -1, NULL, 0, g->msg, sizeof(g->msg),
                    g->sig, sizeof(g->sig), 0};
}

/* The signature verifies with the default provider. */
static void check_signature(struct signing *g)
{
    op_sig v = g->s;

    v.propq = "provider=default";
    v.siglen = g->s.siglen;
    ck_assert_msg(op_verify(&v) == 1, "a signature made through asyncpool does not verify");
}

/* n signatures, one job at a time (never two requests in the pool), gap_us apart. */
static void sign_sequential(fixture *f, int n, long gap_us)
{
    int i;

    for (i = 0; i < n; i++) {
        struct signing g;
        void *arg = &g.s;
        int ret = 0;

        signing_init(f, &g, i);
        ck_assert(ap_run_jobs(op_sign, &arg, 1, 1, &ret, NULL));
        ck_assert_msg(ret == 1, "sign %d failed", i);
        check_signature(&g);
        if (gap_us > 0) {
            struct timespec ts = {0, gap_us * 1000};

            nanosleep(&ts, NULL);
        }
    }
}

struct batch {
    struct signing g[16];
    void *args[16];
    int rets[16];
};

/* 16 signatures in 16 jobs at once; each checked when verify (the check costs more
 * than the signature, and is no demand on asyncpool). */
static void sign_batch(fixture *f, struct batch *b, int verify)
{
    int i;

    for (i = 0; i < 16; i++) {
        signing_init(f, &b->g[i], i);
        b->args[i] = &b->g[i].s;
    }
    ck_assert(ap_run_jobs(op_sign, b->args, 16, 16, b->rets, NULL));
    for (i = 0; i < 16; i++) {
        ck_assert_msg(b->rets[i] == 1, "sign %d failed", i);
        if (verify)
            check_signature(&b->g[i]);
    }
}

/* Batches of 16 concurrent signatures back to back, for about ms milliseconds. *max_load:
 * the highest auto.load_pct read after a batch (the counter holds the last closed 10 ms
 * window only: one window that lost the core to another process reads low). */
static int sign_for(fixture *f, long ms, uint64_t *max_load)
{
    struct batch *b = calloc(1, sizeof(*b));
    struct timespec t0, t;
    int n = 0;

    ck_assert_ptr_nonnull(b);
    *max_load = 0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do {
        uint64_t load;

        sign_batch(f, b, 0);
        n += 16;
        load = ctr(f, "asyncpool.auto.load_pct");
        if (load > *max_load)
            *max_load = load;
        clock_gettime(CLOCK_MONOTONIC, &t);
    } while ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 < ms);
    sign_batch(f, b, 1);
    n += 16;
    free(b);
    return n;
}

/* Batches of 16 (checked) until the counter `name` is above 0, at most max_rounds: a
 * round in which the loop lost its core for as long as the workers took to drain the
 * queue moves nothing, so the tests that wait for a queue give it a few. Returns the
 * rounds run; *value is the counter's last reading. */
static int batches_until(fixture *f, struct batch *b, const char *name, int max_rounds,
                         uint64_t *value)
{
    int round;

    *value = 0;
    for (round = 0; round < max_rounds && *value == 0; round++) {
        sign_batch(f, b, 1);
        *value = ctr(f, name);
    }
    return round;
}

START_TEST(always_offloads_cheap_calls)
{
    fixture f;

    if (ap_dev())
        return;
    setup(&f, "offload = always\n", "EC", "P-256", 0);
    sign_sequential(&f, NSIG, 0);
    ck_assert_uint_eq(ctr(&f, "asyncpool.sign.offloaded"), NSIG);
    ck_assert_uint_eq(ctr(&f, "asyncpool.sign.inline"), 0);
    ck_assert_uint_eq(ctr(&f, "asyncpool.auto.cheap_inline"), 0);
    teardown(&f);
}
END_TEST

/* Demand never high enough (offload_load_pct = 100000 %): after the first calls have
 * taught the policy that a P-256 signature is cheap, they run inline. */
START_TEST(auto_runs_cheap_calls_inline)
{
    fixture f;
    uint64_t off, inl;

    if (ap_dev())
        return;
    /* offload_min_us = 10 ms: "cheap" under any sanitizer or valgrind too. */
    setup(&f, "offload = auto\noffload_min_us = 10000\noffload_load_pct = 100000\n", "EC",
          "P-256", 0);
    sign_sequential(&f, NSIG, 0);
    off = ctr(&f, "asyncpool.sign.offloaded");
    inl = ctr(&f, "asyncpool.sign.inline");
    fprintf(stderr, "auto, P-256: offloaded=%llu inline=%llu\n", (unsigned long long)off,
            (unsigned long long)inl);
    ck_assert_msg(off >= 1, "the first signature (no estimate yet) was not offloaded");
    ck_assert_msg(inl >= NSIG / 2, "only %llu of %d cheap signatures ran inline",
                  (unsigned long long)inl, NSIG);
    ck_assert_uint_eq(off + inl, NSIG);
    ck_assert_uint_eq(ctr(&f, "asyncpool.auto.cheap_inline"), inl);
    teardown(&f);
}
END_TEST

/* The default is auto, and its default offload_min_us keeps RSA-2048 signatures (a few
 * hundred µs) on the pool. */
START_TEST(auto_offloads_expensive_calls)
{
    fixture f;

    if (ap_dev())
        return;
    setup(&f, "", "RSA", NULL, 2048);
    sign_sequential(&f, 5, 0);
    ck_assert_uint_eq(ctr(&f, "asyncpool.sign.offloaded"), 5);
    ck_assert_uint_eq(ctr(&f, "asyncpool.sign.inline"), 0);
    teardown(&f);
}
END_TEST

/* Rule 6 (provider/probe.c) through the provider: with 1 ms epochs and every call
 * counted heavy (offload_min_us = 0; a P-256 signature stays under rule 6's 500 µs
 * bound with any sanitizer), signatures made one at a time soon meet a probe epoch,
 * whose calls run inline; every signature still verifies, and only rule 6 ran them
 * inline (rules 3-5 are for calls under offload_min_us: none). With
 * offload_probe_ms = 0 as many signatures all go to the pool. Whether a probe's calls
 * turn the choice to inline depends on this machine's speed, so only what every run
 * must do is checked; test_probe.c checks the choice itself. */
static uint64_t sign_until_probed(fixture *f, uint64_t *inl)
{
    uint64_t n = 0;

    *inl = 0;
    for (int round = 0; round < 100 && (*inl == 0 || ctr(f, "asyncpool.auto.probes") < 2);
         round++) {
        sign_sequential(f, 20, 0);
        n += 20;
        *inl = ctr(f, "asyncpool.auto.heavy_inline");
    }
    return n;
}

START_TEST(auto_probe_runs_heavy_calls_inline)
{
    fixture f;
    uint64_t n, inl, off;

    if (ap_dev())
        return;
    setup(&f, "offload_min_us = 0\noffload_probe_ms = 1\n", "EC", "P-256", 0);
    n = sign_until_probed(&f, &inl);
    off = ctr(&f, "asyncpool.sign.offloaded");
    printf("auto_probe: %llu signatures, %llu inline by rule 6, %llu probes, %llu switches, "
           "gain %llu%%\n", (unsigned long long)n, (unsigned long long)inl,
           (unsigned long long)ctr(&f, "asyncpool.auto.probes"),
           (unsigned long long)ctr(&f, "asyncpool.auto.probe_switches"),
           (unsigned long long)ctr(&f, "asyncpool.auto.probe_gain_pct"));
    ck_assert_msg(inl >= 1 && ctr(&f, "asyncpool.auto.probes") >= 2,
                  "no probe epoch ran a call inline in %llu signatures", (unsigned long long)n);
    ck_assert_uint_eq(ctr(&f, "asyncpool.sign.inline"), inl);
    ck_assert_uint_eq(off + inl, n);
    ck_assert_msg(off >= 1, "the first signatures (no estimate yet) were not offloaded");
    teardown(&f);

    setup(&f, "offload_min_us = 0\noffload_probe_ms = 0\n", "EC", "P-256", 0);
    sign_sequential(&f, (int)n, 0);
    ck_assert_uint_eq(ctr(&f, "asyncpool.sign.offloaded"), n);
    ck_assert_uint_eq(ctr(&f, "asyncpool.auto.heavy_inline"), 0);
    ck_assert_uint_eq(ctr(&f, "asyncpool.auto.probes"), 0);
    teardown(&f);
}
END_TEST

/* offload_min_us = 0: every call counts as expensive, so auto offloads them all. */
START_TEST(auto_min_zero_offloads_everything)
{
    fixture f;

    if (ap_dev())
        return;
    setup(&f, "offload_min_us = 0\n", "EC", "P-256", 0);
    sign_sequential(&f, NSIG, 0);
    ck_assert_uint_eq(ctr(&f, "asyncpool.sign.offloaded"), NSIG);
    ck_assert_uint_eq(ctr(&f, "asyncpool.sign.inline"), 0);
    teardown(&f);
}
END_TEST

/* worker_spin_us (offload_config.spin_us): with a 1 s window, signatures made one at a
 * time find the worker that ran the last one still spinning and are handed to it
 * without a wake-up (asyncpool.pool.spin_claims); without the key, never. Not policy,
 * but the same fixture: it decides how a call reaches a worker.
 *
 * sequential_spin_claims: NSIG signatures one at a time through a fixture configured
 * with body (and ASYNCPOOL_SPIN_US = env unless NULL), every one offloaded; returns
 * how many claimed a spinning worker. */
static uint64_t sequential_spin_claims(const char *body, const char *env)
{
    fixture f;
    uint64_t claims;

    if (env != NULL)
        setenv("ASYNCPOOL_SPIN_US", env, 1);
    setup(&f, body, "EC", "P-256", 0);
    unsetenv("ASYNCPOOL_SPIN_US");
    sign_sequential(&f, NSIG, 0);
    ck_assert_uint_eq(ctr(&f, "asyncpool.sign.offloaded"), NSIG);
    claims = ctr(&f, "asyncpool.pool.spin_claims");
    teardown(&f);
    return claims;
}

START_TEST(worker_spin_claims)
{
    if (ap_dev())
        return;
    ck_assert_uint_eq(sequential_spin_claims("offload = always\n", NULL), 0);
}
END_TEST

static void spin_claims_on(const char *body, const char *env)
{
    uint64_t claims;

    if (ap_dev())
        return;
    claims = sequential_spin_claims(body, env);
    printf("worker_spin_claims_on: %llu of %d signatures claimed a spinning worker\n",
           (unsigned long long)claims, NSIG);
    /* The first call starts the workers; each later one finds one spinning. A
     * preempted test thread could miss a window now and then, not most of them. */
    ck_assert_msg(claims >= NSIG / 2, "only %llu of %d calls found a spinning worker",
                  (unsigned long long)claims, NSIG);
}

START_TEST(worker_spin_claims_on)
{
    spin_claims_on("offload = always\nworkers = 2\nworker_spin_us = 1000000\n", NULL);
}
END_TEST

/* The environment wins over the file (here: the file says 0). */
START_TEST(worker_spin_env)
{
    spin_claims_on("offload = always\nworkers = 2\nworker_spin_us = 0\n", "1000000");
}
END_TEST

/* Demand measured for real, threshold 10% of a core. Signatures 2 ms apart ask
 * for about 1% of a core: inline once the estimate has settled. 16 at a time, back to
 * back, they ask for more than a core: once a 10 ms window has measured that, they go
 * to the pool (except those the loop runs itself while both workers have a queue). */
START_TEST(auto_follows_demand)
{
    fixture f;
    uint64_t off0, inl0, off1, inl1, ci0, cr0, ci1, cr1, max_load;
    int n;

    if (ap_dev())
        return;
    /* offload_min_us = 10 ms makes a P-256 signature "cheap" under any sanitizer or
     * valgrind; the threshold of 10% lies well between the sparse demand (about 1%)
     * and back to back, which is under a core once the job machinery (slow under
     * ASan) takes its share of each signature's wall time. */
    setup(&f, "offload_min_us = 10000\noffload_load_pct = 10\n", "EC", "P-256", 0);
    /* Warm-up, not asserted. The first signature has no estimate and is offloaded, and
     * its duration becomes the estimate as it is: a first call is slow (cold caches,
     * 1 ms or more under ASan), and one that lost the core for 100 ms makes the estimate
     * 100 ms. Each faster call halves the distance to its own cost, but the windows
     * meanwhile sum the inflated estimates: the first window read 24% of a core under
     * ASan, cheap calls went to the pool, and they stay there until a window reads
     * under half the threshold (two more windows of four or five calls). Seen: 8 calls
     * offloaded from a cold start; a first call of 100 ms costs about 15. */
    sign_sequential(&f, 20, 2000);
    off0 = ctr(&f, "asyncpool.sign.offloaded");
    inl0 = ctr(&f, "asyncpool.sign.inline");
    sign_sequential(&f, 20, 2000);
    off1 = ctr(&f, "asyncpool.sign.offloaded") - off0;
    inl1 = ctr(&f, "asyncpool.sign.inline") - inl0;
    fprintf(stderr, "sparse: 20 warm-up offloaded=%llu inline=%llu; then offloaded=%llu "
            "inline=%llu load=%llu%%\n", (unsigned long long)off0, (unsigned long long)inl0,
            (unsigned long long)off1, (unsigned long long)inl1,
            (unsigned long long)ctr(&f, "asyncpool.auto.load_pct"));
    /* A call that loses the core moves the estimate up by an eighth at most: a few
     * stalls cannot make sparse demand look like 10% of a core. */
    ck_assert_msg(inl1 >= 16, "sparse cheap signatures after warm-up: only %llu of 20 inline",
                  (unsigned long long)inl1);

    off0 = ctr(&f, "asyncpool.sign.offloaded");
    inl0 = ctr(&f, "asyncpool.sign.inline");
    ci0 = ctr(&f, "asyncpool.auto.cheap_inline");
    cr0 = ctr(&f, "asyncpool.auto.caller_runs");
    /* 400 ms: the calls kept inline before the first window has measured the demand are
     * a fixed time's worth (10-20 ms of inline signing, a few hundred calls); over 400 ms
     * they were 1-5% of n, plain and ASan, with both cores also busy elsewhere. */
    n = sign_for(&f, 400, &max_load);
    off1 = ctr(&f, "asyncpool.sign.offloaded") - off0;
    inl1 = ctr(&f, "asyncpool.sign.inline") - inl0;
    ci1 = ctr(&f, "asyncpool.auto.cheap_inline") - ci0;
    cr1 = ctr(&f, "asyncpool.auto.caller_runs") - cr0;
    fprintf(stderr, "back to back: %d signatures, offloaded=%llu inline=%llu (cheap_inline=%llu "
            "caller_runs=%llu), highest load=%llu%%\n", n, (unsigned long long)off1,
            (unsigned long long)inl1, (unsigned long long)ci1, (unsigned long long)cr1,
            (unsigned long long)max_load);
    ck_assert_uint_eq(off1 + inl1, (uint64_t)n);
    ck_assert_uint_le(ci1 + cr1, inl1);
    /* The demand was measured: some 10 ms window saw at least the threshold. */
    ck_assert_msg(max_load >= 10, "back-to-back signing: highest demand read %llu%% of a core",
                  (unsigned long long)max_load);
    /* And the demand rule acted on it: the calls the policy kept inline for lack of demand
     * are those of the windows before it was measured (and of any window that lost the
     * core long enough to read under half the threshold). How many of the others ran
     * inline by caller runs depends on how fast the workers took them, which a loaded
     * machine decides: not asserted. */
    ck_assert_msg(ci1 <= (uint64_t)n / 4,
                  "back-to-back cheap signatures (a core of demand): %llu of %d kept inline "
                  "for lack of demand", (unsigned long long)ci1, n);
    teardown(&f);
}
END_TEST

/* One worker, every call "cheap" (offload_min_us = 10 s) and wanted on the pool
 * (offload_load_pct = 0): 16 RSA-2048 signatures started at once queue behind the
 * one the worker runs, and from then on the loop runs them itself. Every result is
 * right either way. */
START_TEST(auto_caller_runs)
{
    fixture f;
    struct batch *b = calloc(1, sizeof(*b));
    uint64_t cr, off, inl;
    int round;

    if (ap_dev())
        return;
    ck_assert_ptr_nonnull(b);
    setup(&f, "workers = 1\noffload_min_us = 10000000\noffload_load_pct = 0\n", "RSA", NULL,
          2048);
    sign_sequential(&f, 2, 0); /* teaches the estimate */
    /* A round whose submissions were each held up longer than a signature (a busy
     * machine) queues nothing: try a few. */
    round = batches_until(&f, b, "asyncpool.auto.caller_runs", 5, &cr);
    off = ctr(&f, "asyncpool.sign.offloaded");
    inl = ctr(&f, "asyncpool.sign.inline");
    fprintf(stderr, "caller runs: %llu after %d round(s); offloaded=%llu inline=%llu\n",
            (unsigned long long)cr, round, (unsigned long long)off, (unsigned long long)inl);
    ck_assert_msg(cr > 0, "no call ran inline with the only worker's queue full");
    ck_assert_msg(off > 2, "nothing went to the pool");
    ck_assert_uint_eq(ctr(&f, "asyncpool.auto.cheap_inline"), 0);
    ck_assert_uint_eq(inl, cr);
    free(b);
    teardown(&f);
}
END_TEST

/* Rule 5: a cheap call sent to the pool wakes no worker while workers for every core
 * but the loop's are awake. The process is pinned to 2 CPUs (1 if it has only 1), so
 * with 2 workers one is spared whatever the machine; every cheap call is wanted on the
 * pool (offload_load_pct = 0), and 16 jobs submit back to back, each while the worker
 * the first one woke is still awake (it has signatures queued), unless the loop lost
 * its core for as long as the worker took to drain them: a few rounds. With
 * offload = always nothing is spared; every result is right either way. */
START_TEST(auto_spares_a_core)
{
    fixture f;
    struct batch *b;
    cpu_set_t have, pin;
    uint64_t spared, off, inl;
    int cpu, n = 0, round;

    if (ap_dev())
        return;
    b = calloc(1, sizeof(*b));
    ck_assert_ptr_nonnull(b);
    ck_assert_int_eq(sched_getaffinity(0, sizeof(have), &have), 0);
    CPU_ZERO(&pin);
    for (cpu = 0; cpu < CPU_SETSIZE && CPU_COUNT(&pin) < 2; cpu++)
        if (CPU_ISSET(cpu, &have))
            CPU_SET(cpu, &pin);
    ck_assert_int_eq(sched_setaffinity(0, sizeof(pin), &pin), 0);
    setup(&f, "workers = 2\noffload_min_us = 10000\noffload_load_pct = 0\n", "EC", "P-256", 0);
    sign_sequential(&f, 2, 0); /* teaches the estimate */
    round = batches_until(&f, b, "asyncpool.pool.spared", 20, &spared);
    off = ctr(&f, "asyncpool.sign.offloaded");
    inl = ctr(&f, "asyncpool.sign.inline");
    fprintf(stderr, "spare a core: spared=%llu after %d round(s); offloaded=%llu inline=%llu\n",
            (unsigned long long)spared, round, (unsigned long long)off, (unsigned long long)inl);
    ck_assert_msg(spared > 0, "every cheap call sent to the pool woke a worker");
    ck_assert_uint_eq(off + inl, 2 + 16 * (uint64_t)round);
    teardown(&f);

    /* The pool's counters are the process's, kept across pools: compare. */
    setup(&f, "workers = 2\noffload = always\n", "EC", "P-256", 0);
    spared = ctr(&f, "asyncpool.pool.spared");
    for (round = 0; round < 3; round++, n += 16)
        sign_batch(&f, b, 1);
    ck_assert_uint_eq(ctr(&f, "asyncpool.sign.offloaded"), (uint64_t)n);
    ck_assert_uint_eq(ctr(&f, "asyncpool.pool.spared"), spared);
    teardown(&f);
    free(b);
}
END_TEST

/* Outside a job (outside_job = inline) the policy is not consulted: inline, as always. */
START_TEST(auto_outside_job_unchanged)
{
    fixture f;
    struct signing g;

    if (ap_dev())
        return;
    setup(&f, "", "EC", "P-256", 0);
    signing_init(&f, &g, 0);
    ck_assert(op_sign(&g.s));
    check_signature(&g);
    ck_assert_uint_eq(ctr(&f, "asyncpool.sign.inline"), 1);
    ck_assert_uint_eq(ctr(&f, "asyncpool.auto.cheap_inline"), 0);
    teardown(&f);
}
END_TEST

/* ASYNCPOOL_OFFLOAD=always wins over offload = auto in the file. */
START_TEST(env_overrides_config)
{
    fixture f;

    if (ap_dev())
        return;
    setenv("ASYNCPOOL_OFFLOAD", "always", 1);
    setup(&f, "offload = auto\noffload_load_pct = 100000\n", "EC", "P-256", 0);
    sign_sequential(&f, NSIG, 0);
    ck_assert_uint_eq(ctr(&f, "asyncpool.sign.offloaded"), NSIG);
    ck_assert_uint_eq(ctr(&f, "asyncpool.sign.inline"), 0);
    teardown(&f);
    unsetenv("ASYNCPOOL_OFFLOAD");
}
END_TEST

/* A bad ASYNCPOOL_OFFLOAD fails the load with an error naming it; asyncpool stays out. */
START_TEST(env_bad_value)
{
    OSSL_LIB_CTX *lib = OSSL_LIB_CTX_new();
    const char *path;
    OSSL_PROVIDER *p;
    unsigned long e;
    const char *data;
    int flags, named = 0;

    if (ap_dev())
        return;
    setenv("ASYNCPOOL_OFFLOAD", "sometimes", 1);
    path = ap_write_conf("", 0);
    ck_assert(OSSL_LIB_CTX_load_config(lib, path) == 1);
    unlink(path);
    ERR_clear_error();
    p = OSSL_PROVIDER_load(lib, "asyncpool");
    while ((e = ERR_get_error_all(NULL, NULL, NULL, &data, &flags)) != 0)
        if ((flags & ERR_TXT_STRING) && strstr(data, "ASYNCPOOL_OFFLOAD") != NULL
            && strstr(data, "sometimes") != NULL)
            named = 1;
    ck_assert_msg(p == NULL, "ASYNCPOOL_OFFLOAD=sometimes: asyncpool loaded");
    ck_assert_msg(named, "no error naming ASYNCPOOL_OFFLOAD and its value");
    unsetenv("ASYNCPOOL_OFFLOAD");
    OSSL_LIB_CTX_free(lib);
}
END_TEST

/* The summary line says what auto did; with always it has no auto part. */
START_TEST(stats_line_reports_auto)
{
    fixture f;
    char line[1024] = "", *lp = line;
    OSSL_PARAM ps[] = {OSSL_PARAM_utf8_string("asyncpool.stats", lp, sizeof(line)),
                       OSSL_PARAM_END};

    if (ap_dev())
        return;
    setup(&f, "offload_min_us = 10000\noffload_load_pct = 100000\n", "EC", "P-256", 0);
    sign_sequential(&f, NSIG, 0);
    ck_assert(OSSL_PROVIDER_get_params(f.ap, ps));
    ck_assert_msg(strstr(line, "; auto cheap_inline=") != NULL, "no auto part: %s", line);
    ck_assert_msg(strstr(line, "auto cheap_inline=0 ") == NULL, "no cheap call inline: %s", line);
    ck_assert_msg(strstr(line, " heavy_inline=0 probes=0 probe_switches=0 probe_gain_pct=100")
                  != NULL, "rule 6's counters missing or moved without heavy calls: %s", line);
    teardown(&f);
    setup(&f, "offload = always\n", "EC", "P-256", 0);
    ck_assert(OSSL_PROVIDER_get_params(f.ap, ps));
    ck_assert_msg(strstr(line, "auto") == NULL, "auto part with offload = always: %s", line);
    teardown(&f);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("provider_policy");
    TCase *tc = tcase_create("policy");

    /* The caller's own setting would change what every test expects. */
    unsetenv("ASYNCPOOL_OFFLOAD");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, always_offloads_cheap_calls);
    tcase_add_test(tc, auto_runs_cheap_calls_inline);
    tcase_add_test(tc, auto_offloads_expensive_calls);
    tcase_add_test(tc, auto_min_zero_offloads_everything);
    tcase_add_test(tc, auto_probe_runs_heavy_calls_inline);
    tcase_add_test(tc, auto_follows_demand);
    tcase_add_test(tc, auto_caller_runs);
    tcase_add_test(tc, auto_spares_a_core);
    tcase_add_test(tc, auto_outside_job_unchanged);
    tcase_add_test(tc, env_overrides_config);
    tcase_add_test(tc, env_bad_value);
    tcase_add_test(tc, stats_line_reports_auto);
    tcase_add_test(tc, worker_spin_claims);
    tcase_add_test(tc, worker_spin_claims_on);
    tcase_add_test(tc, worker_spin_env);
    suite_add_tcase(s, tc);
    return ap_run_suite(s);
}
