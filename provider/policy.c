/*
 * provider/policy.c — offload = auto: which heavy calls are worth a trip to the pool.
 *
 * An offload costs two thread wake-ups on a machine whose cores are idle: on the 2-core
 * VMs we measure on, 25 µs of round trip and as much CPU, split between the event loop
 * and a worker (bench/results/2026-12-02-vm.md). A call that costs less than that, such
 * as an X25519 key generation or a P-256 signature (15-50 µs), gains nothing from the
 * trip when the loop has time for it: run inline, the loop spends less than it would
 * spend handing it out, and the machine does less work in all. What the pool buys for
 * such calls is parallelism, and only when the loop cannot keep up with them itself.
 * So, for each heavy call in an async job:
 *
 *  1. Its cost is estimated from the calls of the same algorithm and size before it
 *     (a moving average of their duration, measured where they ran). No estimate yet:
 *     offload (the first calls teach us).
 *  2. A call estimated at offload_min_us or more goes to the pool: for it the trip is
 *     small change, and keeping it off the loop is what async is for (RSA-2048 signs
 *     take 270 µs here, RSA-4096 4 ms); under 500 µs, as long as rule 6 finds that
 *     it pays.
 *  3. A cheaper call runs inline when every worker already has a request queued behind
 *     the one it runs ("caller runs", as a saturated thread pool does): the pool cannot
 *     start it sooner than the loop can finish it, and the loop saves the trip.
 *  4. Otherwise it goes to the pool only while the process asks for at least
 *     offload_load_pct of a core of such cheap calls (estimated cost x rate, over 10 ms
 *     windows; and until the demand falls under half of that): then the loop would
 *     spend that share of its time on them, and the workers on other cores take it off
 *     the loop. Below that it runs inline.
 *  5. A cheap call that goes to the pool wakes a worker only while fewer than
 *     min(workers, cores - 1) workers (at least 1) are awake and not running a heavy
 *     call (ACORE_SPARE_CORE, see offload_submit_ex); otherwise an awake worker takes
 *     it after the cheap call it runs. Rule 3 makes the loop a worker of its own:
 *     with every worker awake as well, there is one thread more than there are
 *     cores, and the loop and workers preempt each other. Measured on the 2-core VM
 *     (openssl speed -async_jobs 32 under auto, 3 rounds of 2 s, ops/s, without ->
 *     with): ECDSA P-256 sign 56-65k -> 77-79k, ECDH P-256 29-32k -> 39-40k, X25519
 *     41-43k -> 51-55k, against 83-97k, 40-43k and 58-61k for -multi 2; the
 *     process's context switches fell from 34-101k to under 1k per run. A heavy call
 *     wakes any parked worker: its wait would cost more than a wake-up.
 *  6. Heavy calls (rule 2) estimated under 500 µs run inline instead while that is
 *     measured to get more of them done: when the machine has no core for a worker,
 *     the worker takes the loop's, and the trip buys nothing (probe.c,
 *     offload_probe_ms; 0 turns it off).
 *
 * Why not decide against a live measure of the round trip instead of a set
 * offload_min_us: the round trip the provider can measure (submit to resume) includes
 * the time the job waits for the application's loop to come back to it, which grows
 * with the loop's load (hundreds of µs in openssl speed with 32 jobs), and would make
 * an RSA-2048 signature look cheap exactly when the loop is busiest.
 *
 * With device emulation on, every call goes to the pool: the emulated device is what
 * the user is testing. Cipher calls keep their own rule (inline_threshold).
 */
#define _POSIX_C_SOURCE 200809L
#include "ap.h"

#include <time.h>

#include <openssl/async.h>

#include "async_core/acore.h"
#include "offload/offload.h"
#include "offload/timing.h"

#define LOAD_WINDOW_NS 10000000u /* demand is measured over windows of 10 ms */
#define COST_MASK ((UINT64_C(1) << 48) - 1)
#define EWMA_DOWN_SHIFT 1 /* a shorter call moves the estimate half-way to it */
#define EWMA_UP_SHIFT 3   /* a longer one an eighth of the way (see cost_put) */

/* The call, timed where it runs (on a worker, or here). The worker's writes to ns are
 * published to the job by async_core's done flag, like the call's result. */
struct timed {
    int (*fn)(void *);
    void *arg;
    uint64_t ns;
};

static int timed_fn(void *p)
{
    struct timed *t = p;
    uint64_t t0 = mono_ns();
    int r = t->fn(t->arg);

    t->ns = mono_ns() - t0;
    if (t->ns == 0)
        t->ns = 1;
    return r;
}

/* 16 bits naming a kind of call and its size (sizes from 8190 bytes up share one: only
 * SLH-DSA signatures are that big, and all of them are slow). Never 0 (an empty slot).
 * The kind tells an RSA signature from a verification of the same size. */
static uint64_t cost_tag(enum ap_kind kind, size_t size)
{
    return ((uint64_t)(kind & 7) << 13 | (size > 8190 ? 8190 : size)) + 1;
}

static atomic_uint_fast64_t *cost_slot(const ap_alg *a, uint64_t tag)
{
    /* The estimates are the one mutable part of an algorithm: ap_alg objects live in
     * the (mutable) ap_prov; the const is the dispatch tables'. */
    ap_alg *m = (ap_alg *)a;

    return &m->cost[(tag * 2654435761u >> 8) % AP_COST_SLOTS];
}

/* The estimate for tag in *slot, 0 if the slot holds another size or nothing. */
static uint64_t cost_get(atomic_uint_fast64_t *slot, uint64_t tag)
{
    uint64_t v = atomic_load_explicit(slot, memory_order_relaxed);

    return (v >> 48) == tag ? v & COST_MASK : 0;
}

/*
 * Fold one measured duration into the estimate. What disturbs a measurement only ever
 * adds to it (the call lost its core to another thread for a time slice, ms; the first
 * call of a process warms caches and tables, a P-256 signature 1 ms instead of 20 µs),
 * so a sample below the estimate is believed more than one above it: the estimate
 * moves half-way down, but only an eighth of the way up, with the sample capped at
 * twice the estimate. A real change (a bigger key of the same size class) still gets
 * through in a few dozen calls. Another size hashed to the same slot takes it over;
 * its calls meanwhile have no estimate and are offloaded (rule 1).
 */
static void cost_put(atomic_uint_fast64_t *slot, uint64_t tag, uint64_t est, uint64_t ns)
{
    uint64_t v;

    if (est == 0)
        v = ns;
    else if (ns < est)
        v = est - ((est - ns) >> EWMA_DOWN_SHIFT);
    else
        v = est + (((ns > 2 * est ? 2 * est : ns) - est) >> EWMA_UP_SHIFT);
    if (v == 0)
        v = 1;
    if (v > COST_MASK)
        v = COST_MASK;
    atomic_store_explicit(slot, tag << 48 | v, memory_order_relaxed);
}

/*
 * Add est to the demand for cheap calls. Returns 1 while cheap calls should go to the
 * pool: from the first window whose demand reached the threshold until one whose
 * demand fell under half of it. The band keeps a demand near the threshold from
 * flipping at every window: offloaded calls complete at the pool's pace, which can
 * measure lower than the same calls made inline (seen: 100% of a core inline, 60%
 * offloaded, against a threshold of 50%). One thread closes each window (the CAS on
 * win_start); load_pm and offloading are read by all, relaxed: a decision made on the
 * previous window's figures is as good as one made on this one's.
 */
static int cheap_to_pool(ap_policy_state *s, uint64_t est, unsigned threshold_pm)
{
    uint64_t now = mono_ns();
    uint_fast64_t start = atomic_load_explicit(&s->win_start, memory_order_relaxed);

    atomic_fetch_add_explicit(&s->win_work, est, memory_order_relaxed);
    if (now - start >= LOAD_WINDOW_NS
        && atomic_compare_exchange_strong_explicit(&s->win_start, &start, now,
                                                   memory_order_relaxed,
                                                   memory_order_relaxed)) {
        uint64_t work = atomic_exchange_explicit(&s->win_work, 0, memory_order_relaxed);
        uint64_t pm = work / ((now - start) / 1000 + 1);
        int was = atomic_load_explicit(&s->offloading, memory_order_relaxed);

        atomic_store_explicit(&s->load_pm, pm > 1000000 ? 1000000u : (unsigned)pm,
                              memory_order_relaxed);
        if (pm >= threshold_pm && !was)
            atomic_store_explicit(&s->offloading, 1, memory_order_relaxed);
        else if (pm < threshold_pm / 2 && was)
            atomic_store_explicit(&s->offloading, 0, memory_order_relaxed);
    }
    return atomic_load_explicit(&s->offloading, memory_order_relaxed);
}

int ap_run_auto(const ap_alg *a, enum ap_kind kind, unsigned flags, size_t size,
                int (*fn)(void *), void *arg, acore_trace *t)
{
    ap_prov *p = a->prov;
    uint64_t tag = cost_tag(kind, size);
    atomic_uint_fast64_t *slot = cost_slot(a, tag);
    uint64_t est = cost_get(slot, tag);
    struct timed tm = {fn, arg, 0};
    int offload = 1, r;

    if (est != 0 && est < p->offload_min_ns) {
        int to_pool = cheap_to_pool(&p->policy, est, p->offload_load_pm);
        unsigned workers = offload_nworkers();

        if (workers != 0 && offload_backlog() >= workers) {
            offload = 0;
            atomic_fetch_add_explicit(&p->policy.caller_runs, 1, memory_order_relaxed);
        } else if (!to_pool) {
            offload = 0;
            atomic_fetch_add_explicit(&p->policy.cheap_inline, 1, memory_order_relaxed);
        }
        flags |= ACORE_SPARE_CORE; /* rule 5 */
    } else if (est != 0 && est < AP_PROBE_MAX_COST_NS
               && ap_probe_call(&p->policy.probe, mono_ns())) {
        offload = 0; /* rule 6 */
    }
    if (offload) {
        r = acore_call(timed_fn, &tm, flags, t);
    } else {
        t->offloaded = 0;
        t->eagain = 0;
        r = timed_fn(&tm);
    }
    if (tm.ns != 0) /* 0: the call never ran (orphaned by fork, or an injected fault) */
        cost_put(slot, tag, est, tm.ns);
    return r;
}
