/*
 * offload/ — the process-wide worker pool. See offload.h for the contract.
 *
 * Why liburcu's wfcqueue: submitters are application threads, usually a TLS server's
 * event loop, and must never wait for a lock that a worker holds while it runs a 5 ms
 * RSA-4096 sign. cds_wfcq_enqueue is wait-free (one xchg and one store), so a submit
 * costs the same whatever the workers are doing. Dequeue needs mutual exclusion between
 * dequeuers only; that lock (deq_lock) is contended by workers alone and held for a few
 * instructions. The node is intrusive, so a submit allocates nothing. The queue itself is
 * unbounded; the bound is the depth counter, reserved before the enqueue.
 *
 * Ownership:
 *  - The pool struct is a process-wide static; its fields are guarded as noted on each.
 *  - An offload_req belongs to its submitter, except from a successful offload_submit()
 *    until done() returns, when it belongs to the pool (queued, then one worker's).
 *  - An offload_waiter's list fields belong to the pool while it is registered (under
 *    wait_lock); see offload.h for when a registration ends.
 *
 * Lock order (every path that takes more than one): bcast_serial -> mu -> busy[i] ->
 * emu.busy -> deq_lock -> emu.lock -> wait_lock -> bcast_lock. fork's prepare handler
 * takes all of them in that order; a worker holds at most busy and one of deq_lock /
 * emu.lock / wait_lock / bcast_lock; the emulation's timer thread (emu.c) holds at most
 * emu.busy and one of emu.lock / wait_lock.
 *
 * Device emulation (emu.c) hooks in at four places, each behind one read of the
 * read-mostly offload_emu_on_ or of a request's emu_ flags: the submit (ring, refusals,
 * decisions), the worker (the timer takes a finished request), the waiter registration
 * (a full ring counts as no space; an injected refusal is never answered RETRY), and
 * start/stop/fork (the timer thread).
 */
#define _GNU_SOURCE
#define _LGPL_SOURCE
#include "offload.h"
#include "emu_internal.h"
#include "timing.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* A dequeue that finds a submitter between its tail exchange and its link store (it
 * was preempted there) waits for the store. liburcu spins 10 times, then sleeps 10 ms
 * per round: one preempted submitter would stall every worker (they queue on
 * deq_lock) for 10 ms. Yield instead, which lets that submitter run. The hook is the
 * one the header documents for this. */
#define CDS_WFCQ_WAIT_SLEEP(msec) ((void)(msec), (void)sched_yield())
#include <urcu/wfcqueue.h>

_Static_assert(sizeof(struct cds_wfcq_node) == sizeof(offload_link),
               "offload_link must hold a cds_wfcq_node");
_Static_assert(_Alignof(struct cds_wfcq_node) <= _Alignof(offload_link),
               "offload_link alignment");

#define CACHELINE 64

struct worker {
    pthread_t tid;
    /* Held while the worker runs a request (run + done). fork()'s prepare handler takes
     * every worker's lock, so at the fork no worker is inside a request. */
    pthread_mutex_t busy;
    /* The request this worker has dequeued and not finished. Written under deq_lock or
     * busy, read by the child after fork (when both were held by the forking thread). */
    offload_req *current;
    uint64_t bcast_seen; /* last broadcast generation served; worker-private */
    uint64_t spin_win;   /* this worker's spin window now, ns (spin_for_work); private */
    unsigned index;      /* its bit in pool.idle and its park[] word */
};

static struct pool {
    /* Lifecycle: refs, cfg, workers, nthreads. Taken by start/stop/lazy thread start. */
    pthread_mutex_t mu;
    unsigned refs;
    offload_config cfg;
    struct worker *workers;
    unsigned nthreads;     /* threads created; guarded by mu */
    atomic_int running;    /* 1 once threads exist; release-published after creation */
    atomic_int stopping;   /* workers exit once the queue is empty */
    atomic_int accepting;  /* lifecycle gate for submit, set under mu */
    atomic_int fork_hold;  /* 1 while fork() is in progress: submits return STOPPED */
    /* Submitters inside the gate. stop() and fork prepare close the gate, then wait for
     * this to reach 0 so that no enqueue is half done when they go on. */
    atomic_int submitting;
    /* cfg.workers for lock-free readers (offload_nworkers): a hint, ordered by nothing. */
    atomic_uint workers_hint;
    /* Threads created, and the most workers an OFFLOAD_SPARE_CORE submit keeps awake
     * (min(threads, cores - 1), at least 1). Written before running's release store;
     * a submitter reads them after its acquire load of running (ensure_running). */
    atomic_uint live;
    atomic_uint spare_cap;
    /* cfg.spin_us in ns (0: workers never spin; at most 1e9), with live and spare_cap. */
    atomic_uint spin_ns;

    /* Queue: enqueue is wait-free; dequeue under deq_lock. */
    _Alignas(CACHELINE) struct __cds_wfcq_head head;
    pthread_mutex_t deq_lock;
    _Alignas(CACHELINE) struct cds_wfcq_tail tail;
    _Alignas(CACHELINE) atomic_uint depth; /* reserved slots: queued or being queued */

    /* Worker sleep: one bit per parked worker (bit i of word i / 64 for worker i).
     * A worker reads its park[] word, sets its bit, re-checks every wake condition and
     * futex-waits on its park word; a waker (a submitter, after its enqueue) claims a
     * set bit by clearing it (fetch_and: only the thread that sees the bit set owns the
     * claim), then bumps and wakes that worker's park word. Both sides are seq_cst RMWs
     * or loads, so at least one of them sees the other's write: no lost wake-up.
     * Why claims and not one shared event count: a woken worker stays "asleep" for the
     * others until it gets a core, and on a VM that takes tens of µs; with a shared
     * count every submit meanwhile made its own futex_wake syscall (0.95 per offload in
     * openssl speed -async_jobs 32 against 0.12 real sleeps). A claimed worker is woken
     * once. */
    _Alignas(CACHELINE) atomic_uint_fast64_t idle[OFFLOAD_MAX_WORKERS / 64];
    /* Workers running a request submitted without OFFLOAD_SPARE_CORE: written by
     * workers around such a request, read by OFFLOAD_SPARE_CORE submitters as a hint
     * (relaxed: a stale value only delays a request or wakes a worker more, see
     * wake_spare). Its own line: the workers write it on every such request. */
    _Alignas(CACHELINE) atomic_uint busy_plain;
    /* 1 once a submit has used OFFLOAD_SPARE_CORE in this process (a relaxed store
     * that is never undone): until then workers skip busy_plain, so a pool that never
     * sees the flag (offload = always, acore_bench) pays nothing for it. */
    atomic_int spare_used;

    /* Tokens of spinning workers (offload_config.spin_us), which submitters claim
     * instead of waking a parked worker. A spinner adds one when it starts, and when it
     * stops takes one back if any is left ("leaves"). A submitter claims with a CAS
     * from t > 0 to t - 1 after its enqueue. Every change is a seq_cst RMW on this one
     * word, and the loads that precede a CAS are seq_cst too (a leave that reads 0
     * writes nothing, but still reads the claim's write or a later RMW of its release
     * sequence). Each worker between its add and its leave holds at most one token and
     * claims only remove them, so tokens never exceed the workers in that stretch: a
     * claim that succeeds had one such worker, whose leave comes after the claim, and
     * after its leave a worker always looks at the queue again (the dequeue, or the
     * parking path's re-check), so it sees the claimed request. Tokens are anonymous:
     * the worker that takes the request may be another, or the claimed one may take
     * another request first, and then the claimed request waits for that one, as a
     * spared request does. The claim follows the enqueue, so a spinner may see the
     * request and leave before the claim: the submit then wakes (or spares) as if
     * nobody spun, one wake-up too many, never one too few. How many spin is bounded
     * by the awake rule of spin_for_work, not by this count. Own line: workers write
     * it at every spin. */
    _Alignas(CACHELINE) atomic_uint spin_tokens;

    /* Space waiters: FIFO, doubly linked through next_/prev_ (so a cancel is O(1)),
     * under wait_lock. nwaiters mirrors the list length so that workers can skip the
     * lock when it is 0. */
    _Alignas(CACHELINE) pthread_mutex_t wait_lock;
    offload_waiter *wait_first, *wait_last;
    atomic_int nwaiters;
    /* Wake-ups handed back by owners that took one and went away (offload_pass_wake),
     * for a worker to pass on: wake() may signal an application's callback, which must
     * run on a worker, not on the thread that freed its WAIT_CTX. */
    atomic_int pass_pending;

    /* Broadcast to every worker (offload_on_each_worker). */
    pthread_mutex_t bcast_serial; /* one broadcast at a time */
    pthread_mutex_t bcast_lock;   /* guards bcast_fn/arg/acks */
    pthread_cond_t bcast_cond;
    void (*bcast_fn)(void *);
    void *bcast_arg;
    unsigned bcast_acks;
    atomic_uint_fast64_t bcast_gen;

    /* Counters: relaxed, they order nothing; each on its own line so that the
     * submitting thread and the workers do not share a cache line. */
    _Alignas(CACHELINE) atomic_uint_fast64_t submitted;
    atomic_uint_fast64_t spared; /* written by submitters, as submitted is */
    _Alignas(CACHELINE) atomic_uint_fast64_t completed;
    _Alignas(CACHELINE) atomic_uint_fast64_t rejected_full;
    atomic_uint_fast64_t high_water;
    _Alignas(CACHELINE) atomic_uint_fast64_t parks; /* off the hot path: parking only */
    atomic_uint_fast64_t unparks;
    atomic_uint_fast64_t spin_claims; /* submits that claimed a spinner, woke nobody */
    atomic_uint_fast64_t spin_misses; /* spins whose window ran out unused */
} pool = {
    .mu = PTHREAD_MUTEX_INITIALIZER,
    .deq_lock = PTHREAD_MUTEX_INITIALIZER,
    .wait_lock = PTHREAD_MUTEX_INITIALIZER,
    .bcast_serial = PTHREAD_MUTEX_INITIALIZER,
    .bcast_lock = PTHREAD_MUTEX_INITIALIZER,
    .bcast_cond = PTHREAD_COND_INITIALIZER,
};

/* Set on pool threads; read by every acore_call (offload_in_worker).
 * initial-exec: this code is linked into asyncpool.so, which libcrypto dlopen()s. The
 * default model for a dlopened module (general-dynamic) reads the variable through
 * __tls_get_addr on every call. initial-exec is one %fs-relative load, served by the
 * static TLS surplus glibc keeps for dlopened modules (4 bytes of it). It also keeps
 * the module out of the sanitizer runtime's __tls_get_addr tracking, which up to
 * GCC 13 sometimes takes a malloc'd TLS block for a pre-2.25 glibc one and hands
 * LeakSanitizer a garbage range ("Tracer caught signal 11", google/sanitizers#1322).
 * test/provider/module.sh checks that the module never calls __tls_get_addr. */
static _Thread_local int in_worker __attribute__((tls_model("initial-exec")));
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static struct cds_wfcq_node *node_of(offload_link *l)
{
    return (struct cds_wfcq_node *)(void *)l;
}

static void futex_wait(atomic_uint *addr, unsigned expected)
{
    /* Returns on a wake, on a value change (EAGAIN) or a signal: callers re-check. */
    syscall(SYS_futex, addr, FUTEX_WAIT_PRIVATE, expected, NULL, NULL, 0);
}

static void futex_wake(atomic_uint *addr, int n)
{
    syscall(SYS_futex, addr, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
}

/* Each worker's futex word, bumped by whoever claimed it (see pool.idle). Static, not in
 * struct worker: a waker may run while stop() frees pool.workers (offload_pass_wake is
 * outside the submit gate), and a late bump must land in memory that stays ours. One
 * cache line each: a bump for one worker does not disturb another's. */
static struct park {
    _Alignas(CACHELINE) atomic_uint seq;
} park[OFFLOAD_MAX_WORKERS];

#define IDLE_WORDS (OFFLOAD_MAX_WORKERS / 64)

/* Words of pool.idle in use: those of the configured workers. For a submitter inside
 * the gate: accepting (seq_cst, read at the gate) was opened after workers_hint was set
 * for this pool's life, and no worker of an earlier pool is left (stop joined them). */
static unsigned idle_words(void)
{
    unsigned n = atomic_load_explicit(&pool.workers_hint, memory_order_relaxed);

    return n == 0 || n > OFFLOAD_MAX_WORKERS ? IDLE_WORDS : (n + 63) / 64;
}

static void unpark(unsigned i)
{
    atomic_fetch_add_explicit(&pool.unparks, 1, memory_order_relaxed);
    atomic_fetch_add(&park[i].seq, 1);
    futex_wake(&park[i].seq, 1);
}

/* Wake one parked worker among the first nw words' (idle_words(), or IDLE_WORDS), if any
 * is parked and not yet claimed. Call after publishing the work or condition (seq_cst):
 * a worker that parks after this read sees it. */
static void wake_one_worker(unsigned nw)
{
    unsigned i;

    for (i = 0; i < nw; i++) {
        uint_fast64_t m = atomic_load(&pool.idle[i]);

        while (m != 0) {
            unsigned b = (unsigned)__builtin_ctzll((unsigned long long)m);
            uint_fast64_t bit = (uint_fast64_t)1 << b;
            uint_fast64_t old = atomic_fetch_and(&pool.idle[i], ~bit);

            if (old & bit) {
                unpark(i * 64 + b);
                return;
            }
            m = old & ~bit; /* another waker took that one: try the rest */
        }
    }
}

/* Workers parked now (bits set) among the first nw words of pool.idle. seq_cst loads:
 * after a submitter's enqueue they pair with the workers' announcements (wake_spare);
 * for the stats they are simply a reading. */
static unsigned parked_workers(unsigned nw)
{
    unsigned i, n = 0;

    for (i = 0; i < nw; i++)
        n += (unsigned)__builtin_popcountll((unsigned long long)atomic_load(&pool.idle[i]));
    return n;
}

/*
 * For an OFFLOAD_SPARE_CORE submit: wake a worker only while fewer than spare_cap are
 * awake and free of requests submitted without the flag (those may be long: an
 * RSA-4096 signature is 4 ms). Same pairing as wake_one_worker: these are seq_cst
 * loads after the enqueue, and a worker sets its bit (seq_cst) before its last look at
 * the queue. So a worker whose bit we see clear either had not announced yet (its
 * re-check sees our request) or has been claimed or has withdrawn its bit; and a clear
 * bit otherwise means it runs a request, spins (offload_config.spin_us), serves a
 * broadcast or passed wake-ups, or has not started. Each of those dequeues until the
 * queue is empty before it parks, so with one of them awake the request is taken
 * without a wake-up of its own. Only the
 * bits decide that one is awake; busy_plain, a hint, only decides whether to wake
 * more, so its staleness can delay a request but never strand it.
 *
 * Why: when the submitting thread runs cheap calls inline once the queue is long
 * (provider/policy.c, caller runs), it is a worker too. Waking every worker then puts
 * one thread more than there are cores on the run queue: on a 2-core VM the loop was
 * preempted 6,400 times a second and each worker slept and woke thousands of times a
 * second (openssl speed -async_jobs 32 ecdsap256 under offload = auto).
 */
static void wake_spare(unsigned nw)
{
    unsigned parked = parked_workers(nw), awake, plain;
    unsigned live = atomic_load_explicit(&pool.live, memory_order_relaxed);
    unsigned cap = atomic_load_explicit(&pool.spare_cap, memory_order_relaxed);

    if (parked == 0)
        return; /* nobody to wake: the awake workers take it */
    /* parked <= live: only this pool's workers have bits (stop joined the last pool's,
     * each with its bit withdrawn). */
    awake = live > parked ? live - parked : 0;
    plain = atomic_load_explicit(&pool.busy_plain, memory_order_relaxed);
    /* cap >= 1: with no worker awake, one wakes. */
    if (awake > plain && awake - plain >= cap) {
        atomic_fetch_add_explicit(&pool.spared, 1, memory_order_relaxed);
        return;
    }
    wake_one_worker(nw);
}

/* Wake every parked worker (stop, broadcast). */
static void wake_all_workers(void)
{
    unsigned i;

    for (i = 0; i < IDLE_WORDS; i++) {
        uint_fast64_t m = atomic_exchange(&pool.idle[i], 0);

        while (m != 0) {
            unsigned b = (unsigned)__builtin_ctzll((unsigned long long)m);

            m &= m - 1;
            unpark(i * 64 + b);
        }
    }
}

/* For a submitter, after its enqueue: take a spinner's token (see pool.spin_tokens);
 * 1: a spinning worker will look at the queue after our enqueue, wake nobody. */
static int claim_spinner(void)
{
    unsigned t = atomic_load(&pool.spin_tokens);

    while (t > 0)
        if (atomic_compare_exchange_weak(&pool.spin_tokens, &t, t - 1)) {
            atomic_fetch_add_explicit(&pool.spin_claims, 1, memory_order_relaxed);
            return 1;
        }
    return 0;
}

/* Workers not parked: running a request, spinning, between the two, woken and not yet
 * running, or not yet started. A reading. */
static unsigned awake_workers(void)
{
    unsigned live = atomic_load_explicit(&pool.live, memory_order_relaxed);
    unsigned parked = parked_workers(idle_words());

    return live > parked ? live - parked : 0;
}

/* A wake condition for this worker: a request queued, stop, a broadcast it has not
 * served, or wake-ups passed back. The spin polls it; the park path re-checks it. */
static int worker_has_work(const struct worker *w)
{
    return !cds_wfcq_empty(&pool.head, &pool.tail) || atomic_load(&pool.stopping)
           || atomic_load(&pool.bcast_gen) != w->bcast_seen
           || atomic_load(&pool.pass_pending) != 0;
}

/*
 * Before parking: poll the queue for up to spin_ns (offload_config.spin_us), if at
 * most spare_cap workers are awake, this one included; otherwise park at once. A
 * spinner stops once more than spare_cap are awake. Each spinner counts itself and
 * every other spinner as awake, so at most spare_cap spin. The submitting thread
 * keeps a core: on 2 cores a worker spinning beside one running RSA signatures took
 * openssl speed -async_jobs 32 rsa2048 from 5.7-6.9k to 5.2-5.6k signs/s (3 rounds
 * each, 2 s); with this rule, 5.8-6.5k.
 * Submitters that claim our token meanwhile skip their wake-up.
 * Returns 1 if a wake condition came up; either way the caller goes on to dequeue or to
 * the parking path, and both look at the queue again (what a claim relies on).
 *
 * Why: on a VM a parked worker's wake-up is a halted vCPU's wake-up, tens of µs, and a
 * request that comes within the window skips it (bench/acore_bench -S: the round trip
 * at one request in flight fell from 50-63 µs to 5-15 µs, and the CPU per offload on
 * both sides from about 20 µs to 4-13). A window that nothing follows is a core's time
 * spent for nothing, so the window adapts (spin_adapt), and the whole is off by
 * default.
 * The sched_yield every 32 pauses (a few µs): the scheduler may have put the thread
 * we wait for on our CPU (a woken thread often lands on its waker's CPU), and a
 * spinner that never yields would hold it off for a whole time slice.
 */
static int spin_for_work(struct worker *w, uint64_t spin_ns)
{
    unsigned cap = atomic_load_explicit(&pool.spare_cap, memory_order_relaxed), t;
    uint64_t deadline;
    int found = 0, crowded = 0, i;

    /* A worker that spins while cap others are awake (running requests) would make
     * the loop, the runners and the spinner share cap + 1 cores. */
    if (w->spin_win > spin_ns)
        w->spin_win = spin_ns; /* the first spin of this pool's life */
    if (w->spin_win == 0 || awake_workers() > cap)
        return 0;
    atomic_fetch_add(&pool.spin_tokens, 1);
    deadline = mono_ns() + w->spin_win;
    for (i = 1;; i++) {
        if (worker_has_work(w)) {
            found = 1;
            break;
        }
        cpu_relax();
        if ((i & 31) == 0) {
            if (mono_ns() >= deadline || (crowded = awake_workers() > cap))
                break;
            sched_yield();
        }
    }
    /* Leave: our token back if one is left (else a submitter counts on a spinner, and
     * we are one: our next look at the queue serves it). */
    t = atomic_load(&pool.spin_tokens);
    while (t > 0 && !atomic_compare_exchange_weak(&pool.spin_tokens, &t, t - 1))
        ;
    /* A window that ran out unused halves, down to none (see spin_adapt). One cut
     * short because other workers woke says nothing of the requests' spacing. */
    if (!found && !crowded) {
        atomic_fetch_add_explicit(&pool.spin_misses, 1, memory_order_relaxed);
        if ((w->spin_win /= 2) < spin_ns / 8)
            w->spin_win = 0;
    }
    return found;
}

/*
 * After a park: idle_ns is the whole idle span, from the first look that found no work
 * (before the spin) to the wake-up. Shorter than spin_ns means a window of spin_ns
 * would have caught the request, so the window grows again: to 1.5 times the span,
 * twice the window or spin_ns / 8, whichever is most, at most spin_ns. (A park that a
 * broadcast or a signal ended counts too: at worst a window regrown for nothing, which
 * takes up to four windows run out to close again.) With the
 * halving above it is KVM's halt-polling rule: requests further apart than spin_ns
 * stop the spinning after a few misses, closer ones keep it.
 *
 * Why the span and not the park alone (as KVM compares its whole block time): with
 * requests G apart, spin_ns < G < 2 * spin_ns, a full window runs out and the park
 * that follows, G - spin_ns, is shorter than spin_ns. Measured on the park alone, each
 * such park grew the halved window back to spin_ns, and every gap cost a whole window
 * of spinning and a wake-up as well (core_spin spin_gap_over_window: 12 windows ran
 * out for 12 requests 15 ms apart against a 10 ms window; on the span, 4).
 * Tried and not kept: KVM's growth by doubling from spin_ns / 8 instead of the jump to
 * 1.5 times the span. Back to back the spans straddle the window (the loop's own
 * wake-up comes and goes), and doubling claimed fewer requests: acore_bench -j 1
 * -n 4000 -t 30 -S 50, two runs each, spin_claims on its roundtrip line: 2,672 and
 * 2,031 of 4,000 with doubling, 3,719 and 3,796 with the jump.
 *
 * Why: a fixed window costs both CPU and latency when the requests are sparse. With the
 * loop idle 20 or 200 µs between requests (acore_bench -j 1 -t 30 -g 20|200) every
 * window ran out, and the round trip of a 30 µs call was 53-270 µs against 41-80 µs
 * (mostly 41-47) without spinning: the spinner and the loop shared a CPU (a woken thread often lands
 * on its waker's CPU) and took turns through sched_yield.
 */
static void spin_adapt(struct worker *w, uint64_t spin_ns, uint64_t idle_ns)
{
    uint64_t want = idle_ns + idle_ns / 2;

    if (spin_ns == 0 || idle_ns >= spin_ns || w->spin_win >= spin_ns)
        return; /* (spin_win > spin_ns: not clamped yet, see spin_for_work) */
    if (want < w->spin_win * 2)
        want = w->spin_win * 2;
    /* From none, at least an eighth: the span includes the wake-up itself,
     * so 1.5 times it could stay below the spacing of back-to-back requests. */
    if (want < spin_ns / 8)
        want = spin_ns / 8;
    w->spin_win = want < spin_ns ? want : spin_ns;
}

static void serve_passed_wakes(void);

static offload_req *dequeue(struct worker *w)
{
    struct cds_wfcq_node *node;
    offload_req *req = NULL;

    pthread_mutex_lock(&pool.deq_lock);
    node = __cds_wfcq_dequeue_blocking(&pool.head, &pool.tail);
    if (node != NULL) {
        req = (offload_req *)(void *)((char *)node - offsetof(offload_req, link));
        /* Set under deq_lock: fork's prepare holds deq_lock, so at the fork every
         * dequeued request is visible in some worker's current. */
        w->current = req;
    }
    pthread_mutex_unlock(&pool.deq_lock);
    return req;
}

/* Under wait_lock. */
static void unlink_waiter_locked(offload_waiter *w)
{
    if (w->prev_ != NULL)
        w->prev_->next_ = w->next_;
    else
        pool.wait_first = w->next_;
    if (w->next_ != NULL)
        w->next_->prev_ = w->prev_;
    else
        pool.wait_last = w->prev_;
    w->next_ = w->prev_ = NULL;
    w->queued_ = 0;
    atomic_fetch_sub(&pool.nwaiters, 1);
}

static offload_waiter *pop_waiter(void)
{
    offload_waiter *w;

    pthread_mutex_lock(&pool.wait_lock);
    w = pool.wait_first;
    if (w != NULL)
        unlink_waiter_locked(w);
    pthread_mutex_unlock(&pool.wait_lock);
    return w;
}

/* One slot is free: wake waiters until one takes it (see offload_waiter). */
static void wake_space_waiter(void)
{
    offload_waiter *w;

    while ((w = pop_waiter()) != NULL)
        if (w->wake(w, 0))
            break;
}

/* The pool is stopping: end every registration. Each owner retries, is told
 * OFFLOAD_STOPPED, and runs its call inline. */
static void wake_all_waiters(void)
{
    offload_waiter *w;

    while ((w = pop_waiter()) != NULL)
        (void)w->wake(w, 0);
}

static void serve_broadcast(struct worker *w)
{
    uint64_t gen = atomic_load_explicit(&pool.bcast_gen, memory_order_acquire);
    void (*fn)(void *);
    void *arg;

    if (gen == w->bcast_seen)
        return;
    w->bcast_seen = gen;
    pthread_mutex_lock(&pool.bcast_lock);
    fn = pool.bcast_fn;
    arg = pool.bcast_arg;
    pthread_mutex_unlock(&pool.bcast_lock);
    fn(arg);
    pthread_mutex_lock(&pool.bcast_lock);
    pool.bcast_acks++;
    pthread_cond_signal(&pool.bcast_cond);
    pthread_mutex_unlock(&pool.bcast_lock);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    offload_req *req;
    int spun = 0; /* spun since the last request or park: park next time */
    uint64_t idle_t0 = 0; /* when this idle span began (spin_adapt), 0: not measured */

    in_worker = 1;
    pthread_setname_np(pthread_self(), "asyncpool-wrk"); /* for top -H and perf */
    for (;;) {
        serve_broadcast(w);
        if (atomic_load_explicit(&pool.pass_pending, memory_order_relaxed) > 0)
            serve_passed_wakes();
        req = dequeue(w);
        if (req != NULL) {
            /* busy first: fork's prepare waits for it, so no fork happens while this
             * worker is between taking a request and finishing it, a space wake-up
             * included (a child would inherit a popped waiter that nobody ends). */
            spun = 0;
            pthread_mutex_lock(&w->busy);
            /* The slot is free once the request is off the queue. seq_cst pairs with
             * the nwaiters increment in offload_wait_space (see there). */
            atomic_fetch_sub(&pool.depth, 1);
            /* With the emulated ring full, a waiter woken for this queue slot would be
             * refused again: the ring's next free slot wakes one instead. */
            if (atomic_load(&pool.nwaiters) > 0 && !emu_ring_full_())
                wake_space_waiter();
            if (req->emu_.flags_ != 0) {
                /* Emulated: run, then the timer thread completes it when due. */
                emu_run_(req);
                w->current = NULL;
                pthread_mutex_unlock(&w->busy);
                continue;
            }
            /* Read before done(), after which req is its owner's again. A request
             * taken before the first spared submit is not counted: harmless (a hint),
             * and the decrement below matches this increment whatever happens. */
            int plain = !(req->flags_ & OFFLOAD_SPARE_CORE)
                        && atomic_load_explicit(&pool.spare_used, memory_order_relaxed);

            if (plain)
                atomic_fetch_add_explicit(&pool.busy_plain, 1, memory_order_relaxed);
            req->run(req);
            /* Count before done(): after done() the submitter may read the counters
             * and must see its own completion. */
            atomic_fetch_add_explicit(&pool.completed, 1, memory_order_relaxed);
            req->done(req, OFFLOAD_RAN);
            if (plain)
                atomic_fetch_sub_explicit(&pool.busy_plain, 1, memory_order_relaxed);
            w->current = NULL;
            pthread_mutex_unlock(&w->busy);
            continue;
        }
        if (atomic_load(&pool.stopping)) {
            /* accepting was closed before stopping was set, and a registration checks
             * accepting under wait_lock: no waiter can be added after this flush. The
             * wake-ups run here, on a worker, like every other. */
            wake_all_waiters();
            break;
        }
        if (!spun) {
            uint64_t sn = atomic_load_explicit(&pool.spin_ns, memory_order_relaxed);

            spun = 1;
            /* The idle span spin_adapt measures starts here, at the first look that
             * found no work, not at the park: see there. */
            idle_t0 = sn > 0 ? mono_ns() : 0;
            if (sn > 0 && spin_for_work(w, sn))
                continue;
        }
        spun = 0;

        /* Park. Read the park word, announce (set our bit), then re-check every wake
         * condition: a waker that published one before our announcement is seen by the
         * re-check; one after it finds our bit. Its bump before our futex_wait makes
         * the wait return at once. */
        atomic_uint *seqp = &park[w->index].seq;
        uint_fast64_t bit = (uint_fast64_t)1 << (w->index % 64);
        unsigned seq = atomic_load(seqp);

        atomic_fetch_add_explicit(&pool.parks, 1, memory_order_relaxed);
        atomic_fetch_or(&pool.idle[w->index / 64], bit);
        /* worker_has_work() reads the queue with liburcu's plain loads: the fence keeps them after
         * the announcement on every architecture (on x86 the locked RMW already
         * does). Parking path only. */
        atomic_thread_fence(memory_order_seq_cst);
        if (!worker_has_work(w)) {
            uint64_t sn = atomic_load_explicit(&pool.spin_ns, memory_order_relaxed);

            futex_wait(seqp, seq);
            if (sn > 0 && idle_t0 != 0)
                spin_adapt(w, sn, mono_ns() - idle_t0);
        }
        /* Withdraw the announcement. If a waker cleared the bit first, it claimed us:
         * reading its clear (an RMW on the same word) orders its work before our next
         * look at the queue; its bump, if still to come, only makes our next wait
         * return at once. */
        atomic_fetch_and(&pool.idle[w->index / 64], ~bit);
    }
    if (pool.cfg.thread_exit != NULL)
        pool.cfg.thread_exit();
    return NULL;
}

/* Under pool.mu. Creates the worker threads (and the emulation's timer thread);
 * returns 1 if at least one worker runs. */
static int start_threads_locked(void)
{
    unsigned i, n = pool.cfg.workers;

    if (!emu_timer_start_())
        return 0;
    pool.workers = calloc(n, sizeof(*pool.workers));
    if (pool.workers == NULL)
        return 0;
    pool.nthreads = 0;
    for (i = 0; i < n; i++) {
        struct worker *w = &pool.workers[i];

        pthread_mutex_init(&w->busy, NULL);
        w->index = i;
        w->bcast_seen = atomic_load(&pool.bcast_gen);
        w->spin_win = UINT64_MAX; /* set to spin_ns at its first spin */
        if (pthread_create(&w->tid, NULL, worker_main, w) != 0) {
            pthread_mutex_destroy(&w->busy);
            break;
        }
        pool.nthreads++;
    }
    if (pool.nthreads == 0) {
        free(pool.workers);
        pool.workers = NULL;
        return 0;
    }
    {
        unsigned cores = pool.cfg.cores, cap = cores > 1 ? cores - 1 : 1;

        atomic_store_explicit(&pool.live, pool.nthreads, memory_order_relaxed);
        atomic_store_explicit(&pool.spare_cap, cap < pool.nthreads ? cap : pool.nthreads,
                              memory_order_relaxed);
        /* One core: a spinner would share it with the submitting thread. */
        atomic_store_explicit(&pool.spin_ns, cores > 1 ? pool.cfg.spin_us * 1000u : 0,
                              memory_order_relaxed);
    }
    /* Release: a submitter that reads running == 1 (acquire) sees the threads, live and
     * spare_cap. */
    atomic_store_explicit(&pool.running, 1, memory_order_release);
    return 1;
}

static int ensure_running(void)
{
    int ok;

    if (atomic_load_explicit(&pool.running, memory_order_acquire))
        return 1;
    /* Not a plain lock: offload_stop() and fork_prepare() close the gate and then wait,
     * holding pool.mu (stop) or about to take it (fork), for submitters inside the gate,
     * which we are. Give up once the gate is closed, so they can go on. */
    while (pthread_mutex_trylock(&pool.mu) != 0) {
        if (!atomic_load(&pool.accepting) || atomic_load(&pool.fork_hold))
            return 0;
        sched_yield();
    }
    ok = atomic_load(&pool.running) || (pool.refs > 0 && start_threads_locked());
    pthread_mutex_unlock(&pool.mu);
    return ok;
}

/* ---- fork ---------------------------------------------------------------------- */

static void fork_prepare(void)
{
    unsigned i;

    /* No submitter may be between its depth reservation and its enqueue at the fork,
     * or the child would inherit a half-linked queue. Submits during the fork get
     * OFFLOAD_STOPPED (the caller runs the call inline). */
    atomic_store(&pool.fork_hold, 1);
    while (atomic_load(&pool.submitting) > 0)
        sched_yield();
    /* The documented lock order: bcast_serial before mu, as offload_on_each_worker
     * takes them (a provider teardown broadcasting while another thread forks). */
    pthread_mutex_lock(&pool.bcast_serial);
    pthread_mutex_lock(&pool.mu);
    /* Wait for running requests to finish; lock order busy -> deq_lock matches no
     * worker path (a worker never holds both). */
    for (i = 0; i < pool.nthreads; i++)
        pthread_mutex_lock(&pool.workers[i].busy);
    /* The timer thread between popping a request and its done(): wait for it too. */
    emu_fork_lock_busy_();
    pthread_mutex_lock(&pool.deq_lock);
    emu_fork_lock_();
    pthread_mutex_lock(&pool.wait_lock);
    pthread_mutex_lock(&pool.bcast_lock);
}

static void fork_parent(void)
{
    unsigned i;

    pthread_mutex_unlock(&pool.bcast_lock);
    pthread_mutex_unlock(&pool.wait_lock);
    emu_fork_parent_();
    pthread_mutex_unlock(&pool.deq_lock);
    for (i = 0; i < pool.nthreads; i++)
        pthread_mutex_unlock(&pool.workers[i].busy);
    pthread_mutex_unlock(&pool.mu);
    pthread_mutex_unlock(&pool.bcast_serial);
    atomic_store(&pool.fork_hold, 0);
}

static void fork_child(void)
{
    unsigned i;
    struct cds_wfcq_node *node;
    offload_waiter *w;

    /* The workers do not exist here. What they held is the parent's: requests they had
     * taken and requests still queued belong to jobs of the parent's threads. Abort them
     * (done() with OFFLOAD_ABORTED) so that nothing leaks and a job of the forking
     * thread that is resumed in the child fails instead of hanging. The queue was
     * quiesced by fork_prepare, so no link is half made. */
    for (i = 0; i < pool.nthreads; i++) {
        offload_req *cur = pool.workers[i].current;

        if (cur != NULL)
            cur->done(cur, OFFLOAD_ABORTED);
        pthread_mutex_unlock(&pool.workers[i].busy);
        pthread_mutex_destroy(&pool.workers[i].busy);
    }
    while ((node = __cds_wfcq_dequeue_nonblocking(&pool.head, &pool.tail)) != NULL
           && node != CDS_WFCQ_WOULDBLOCK) {
        offload_req *req = (offload_req *)(void *)((char *)node - offsetof(offload_req, link));

        req->done(req, OFFLOAD_ABORTED);
    }
    emu_fork_child_(); /* aborts what the timer held; releases emu.lock and emu.busy */
    while ((w = pool.wait_first) != NULL) {
        unlink_waiter_locked(w);
        (void)w->wake(w, 1);
    }

    free(pool.workers);
    pool.workers = NULL;
    pool.nthreads = 0;
    atomic_store(&pool.running, 0); /* threads start again on the child's first submit */
    atomic_store(&pool.live, 0);
    atomic_store(&pool.spare_cap, 0);
    atomic_store(&pool.spin_ns, 0);
    atomic_store(&pool.spin_tokens, 0);
    atomic_store(&pool.depth, 0);
    for (unsigned i = 0; i < IDLE_WORDS; i++)
        atomic_store(&pool.idle[i], 0);
    atomic_store(&pool.pass_pending, 0); /* the parent's waiters were aborted above */
    __cds_wfcq_init(&pool.head, &pool.tail);

    pthread_mutex_unlock(&pool.bcast_lock);
    pthread_mutex_unlock(&pool.wait_lock);
    pthread_mutex_unlock(&pool.deq_lock);
    pthread_mutex_unlock(&pool.mu);
    pthread_mutex_unlock(&pool.bcast_serial);
    atomic_store(&pool.submitting, 0);
    atomic_store(&pool.fork_hold, 0);
}

static void register_atfork(void)
{
    pthread_atfork(fork_prepare, fork_parent, fork_child);
}

/* ---- public API ---------------------------------------------------------------- */

/* CPUs this process may run on (its affinity mask: taskset, cgroup cpusets), else the
 * online ones. */
static unsigned usable_cpus(void)
{
    cpu_set_t set;
    long n;

    if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0)
        return (unsigned)CPU_COUNT(&set);
    n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (unsigned)n : 1;
}

int offload_start(const offload_config *cfg)
{
    offload_config c = {0};

    if (cfg != NULL)
        c = *cfg;
    if (c.workers == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);

        c.workers = n > 0 ? (unsigned)n : 1;
    }
    if (c.cores == 0)
        c.cores = usable_cpus();
    if (c.capacity == 0)
        c.capacity = 1024;
    if (c.workers > OFFLOAD_MAX_WORKERS || c.capacity > OFFLOAD_MAX_CAPACITY
        || c.spin_us > OFFLOAD_MAX_SPIN_US) {
        errno = EINVAL;
        return 0;
    }
    pthread_once(&atfork_once, register_atfork);

    pthread_mutex_lock(&pool.mu);
    if (pool.refs > 0 && !emu_same_(c.emu)) {
        /* One process-wide pool, one emulated device: a second configuration would be
         * silently ignored, and its user would test against a device it did not ask
         * for. */
        pthread_mutex_unlock(&pool.mu);
        errno = EBUSY;
        return 0;
    }
    if (pool.refs++ == 0) {
        emu_configure_(c.emu);
        pool.cfg = c;
        atomic_store_explicit(&pool.workers_hint, c.workers, memory_order_relaxed);
        pool.cfg.emu = NULL; /* copied by emu_configure_ */
        __cds_wfcq_init(&pool.head, &pool.tail);
        atomic_store(&pool.depth, 0);
        atomic_store(&pool.stopping, 0);
        atomic_store(&pool.accepting, 1);
    }
    pthread_mutex_unlock(&pool.mu);
    return 1;
}

void offload_stop(void)
{
    unsigned i;

    pthread_mutex_lock(&pool.mu);
    if (pool.refs == 0 || --pool.refs > 0) {
        pthread_mutex_unlock(&pool.mu);
        return;
    }
    /* Close the gate, then wait out submitters already inside it: after this every
     * accepted request is on the queue. */
    atomic_store(&pool.accepting, 0);
    while (atomic_load(&pool.submitting) > 0)
        sched_yield();
    if (atomic_load(&pool.running)) {
        /* Drain: workers leave only when stopping is set and the queue is empty. */
        atomic_store(&pool.stopping, 1);
        wake_all_workers();
        for (i = 0; i < pool.nthreads; i++) {
            pthread_join(pool.workers[i].tid, NULL);
            pthread_mutex_destroy(&pool.workers[i].busy);
        }
        free(pool.workers);
        pool.workers = NULL;
        pool.nthreads = 0;
        atomic_store(&pool.running, 0);
        atomic_store(&pool.live, 0);
        atomic_store(&pool.spare_cap, 0);
        atomic_store(&pool.spin_ns, 0);
        atomic_store(&pool.stopping, 0);
    }
    /* The queue is drained; what waits on the timer completes now (a no-op when the
     * timer never started). */
    emu_timer_stop_();
    /* The exiting workers flushed the waiters; this flush is for a pool whose threads
     * never started (then nobody could have been told OFFLOAD_FULL, and the list is
     * empty) and keeps the contract whatever changes above. */
    wake_all_waiters();
    emu_reset_();
    pthread_mutex_unlock(&pool.mu);
}

int offload_submit(offload_req *req)
{
    return offload_submit_ex(req, 0);
}

int offload_submit_ex(offload_req *req, unsigned flags)
{
    unsigned d, cap;
    uint_fast64_t hw;
    int ret = OFFLOAD_STOPPED;

    /* Enter the gate (seq_cst: pairs with the store of accepting/fork_hold followed by
     * the read of submitting in stop and fork_prepare). */
    atomic_fetch_add(&pool.submitting, 1);
    if (!atomic_load(&pool.accepting) || atomic_load(&pool.fork_hold) || !ensure_running())
        goto out;

    /* The one branch emulation costs when it is off (a read-mostly flag). */
    if (atomic_load_explicit(&offload_emu_on_, memory_order_relaxed)) {
        if ((ret = emu_admit_(req)) != OFFLOAD_OK)
            goto out;
    } else {
        req->emu_.flags_ = 0; /* the worker reads it; the caller need not set it */
    }
    req->flags_ = flags; /* read by the worker that takes it */
    cap = pool.cfg.capacity;
    d = atomic_fetch_add(&pool.depth, 1);
    if (d >= cap) {
        atomic_fetch_sub(&pool.depth, 1);
        emu_unadmit_(req);
        atomic_fetch_add_explicit(&pool.rejected_full, 1, memory_order_relaxed);
        ret = OFFLOAD_FULL;
        goto out;
    }
    hw = atomic_load_explicit(&pool.high_water, memory_order_relaxed);
    while (d + 1 > hw
           && !atomic_compare_exchange_weak_explicit(&pool.high_water, &hw, d + 1,
                                                     memory_order_relaxed,
                                                     memory_order_relaxed))
        ;
    atomic_fetch_add_explicit(&pool.submitted, 1, memory_order_relaxed);
    cds_wfcq_node_init(node_of(&req->link));
    /* The enqueue's xchg is a full barrier: the request's fields are published before
     * the node is reachable, and before the read of the idle bits below. */
    cds_wfcq_enqueue(&pool.head, &pool.tail, node_of(&req->link));
    if ((flags & OFFLOAD_SPARE_CORE)
        && !atomic_load_explicit(&pool.spare_used, memory_order_relaxed))
        atomic_store_explicit(&pool.spare_used, 1, memory_order_relaxed);
    if (atomic_load_explicit(&pool.spin_ns, memory_order_relaxed) != 0 && claim_spinner())
        ; /* a spinning worker takes it */
    else if (flags & OFFLOAD_SPARE_CORE)
        wake_spare(idle_words());
    else
        wake_one_worker(idle_words());
    ret = OFFLOAD_OK;
out:
    atomic_fetch_sub(&pool.submitting, 1);
    return ret;
}

int offload_wait_space(offload_waiter *w)
{
    /* Read before anything can return: it belongs to this thread's last refusal. */
    int injected = emu_take_injected_();

    pthread_mutex_lock(&pool.wait_lock);
    if (!atomic_load(&pool.accepting)) {
        pthread_mutex_unlock(&pool.wait_lock);
        return OFFLOAD_WAIT_STOPPED;
    }
    if (w->queued_) {
        /* Registered earlier, when the queue was full; the dequeue that frees a slot
         * will see it (nwaiters > 0) and pop it or one ahead of it. */
        pthread_mutex_unlock(&pool.wait_lock);
        return OFFLOAD_WAIT_ALREADY;
    }
    w->next_ = NULL;
    w->prev_ = pool.wait_last;
    if (pool.wait_last != NULL)
        pool.wait_last->next_ = w;
    else
        pool.wait_first = w;
    pool.wait_last = w;
    w->queued_ = 1;
    /* seq_cst, then read depth: pairs with a worker's depth decrement followed by its
     * read of nwaiters. Either that worker sees us (and pops a waiter), or we see the
     * slot it freed. In the second case we do not wake anyone from here: whatever a
     * wake-up signals (an eventfd, an application's callback) must not run on the
     * submitting thread, which may be inside another connection's job. We take our
     * own registration back and tell the caller to retry; if a worker popped us
     * meanwhile, its wake() is on the way and the registration stands. */
    atomic_fetch_add(&pool.nwaiters, 1);
    pthread_mutex_unlock(&pool.wait_lock);
    if (injected) {
        /* Refused by injection: there may be space, and no completion is owed to us.
         * Answering RETRY would retry at once and hide the refusal from the caller's
         * retry path; instead a wake-up is owed by the timer thread, asked for now
         * that we are registered (so it cannot miss us: it pops us or a waiter ahead
         * of us, each of which has a wake-up of its own owed to it). */
        emu_credit_();
        return OFFLOAD_WAIT_ADDED;
    }
    /* The ring is read like depth (seq_cst, pairing with a completion's release of a
     * ring slot followed by its read of nwaiters). */
    if (atomic_load(&pool.depth) < pool.cfg.capacity && !emu_ring_full_()
        && offload_cancel_wait(w))
        return OFFLOAD_WAIT_RETRY;
    return OFFLOAD_WAIT_ADDED;
}

int offload_cancel_wait(offload_waiter *w)
{
    int removed = 0;

    pthread_mutex_lock(&pool.wait_lock);
    if (w->queued_) {
        unlink_waiter_locked(w);
        removed = 1;
    }
    pthread_mutex_unlock(&pool.wait_lock);
    return removed;
}

void offload_pass_wake(void)
{
    /* seq_cst add, then read the idle bits: pairs with a worker's announcement followed
     * by its re-check of pass_pending (see worker_main). */
    atomic_fetch_add(&pool.pass_pending, 1);
    wake_one_worker(IDLE_WORDS); /* outside the gate: every word (see idle_words) */
}

/* Pass on the wake-ups handed back by offload_pass_wake. */
static void serve_passed_wakes(void)
{
    int n = atomic_load(&pool.pass_pending);

    while (n > 0) {
        if (atomic_compare_exchange_weak(&pool.pass_pending, &n, n - 1)) {
            wake_space_waiter();
            n = atomic_load(&pool.pass_pending);
        }
    }
}

void offload_on_each_worker(void (*fn)(void *arg), void *arg)
{
    pthread_mutex_lock(&pool.bcast_serial);
    pthread_mutex_lock(&pool.mu);
    if (atomic_load(&pool.running) && !in_worker) {
        unsigned n = pool.nthreads;

        pthread_mutex_lock(&pool.bcast_lock);
        pool.bcast_fn = fn;
        pool.bcast_arg = arg;
        pool.bcast_acks = 0;
        /* A worker that sees the new generation then reads fn/arg under bcast_lock.
         * seq_cst (not only release): pairs with a parking worker's announcement
         * followed by its re-check of bcast_gen, like the other wake conditions. */
        atomic_fetch_add(&pool.bcast_gen, 1);
        wake_all_workers();
        while (pool.bcast_acks < n)
            pthread_cond_wait(&pool.bcast_cond, &pool.bcast_lock);
        pthread_mutex_unlock(&pool.bcast_lock);
    }
    pthread_mutex_unlock(&pool.mu);
    pthread_mutex_unlock(&pool.bcast_serial);
}

int offload_in_worker(void)
{
    return in_worker;
}

/* ---- hooks for emu.c ------------------------------------------------------------- */

void offload_count_completed_(void)
{
    atomic_fetch_add_explicit(&pool.completed, 1, memory_order_relaxed);
}

void offload_space_freed_(void)
{
    if (atomic_load(&pool.nwaiters) > 0)
        wake_space_waiter();
}

void offload_mark_pool_thread_(void)
{
    in_worker = 1;
}

void offload_thread_exit_(void)
{
    if (pool.cfg.thread_exit != NULL)
        pool.cfg.thread_exit();
}

unsigned offload_backlog(void)
{
    return atomic_load_explicit(&pool.depth, memory_order_relaxed);
}

unsigned offload_nworkers(void)
{
    return atomic_load_explicit(&pool.workers_hint, memory_order_relaxed);
}

void offload_get_stats(offload_stats *st)
{
    st->submitted = atomic_load_explicit(&pool.submitted, memory_order_relaxed);
    st->completed = atomic_load_explicit(&pool.completed, memory_order_relaxed);
    st->rejected_full = atomic_load_explicit(&pool.rejected_full, memory_order_relaxed);
    st->high_water = atomic_load_explicit(&pool.high_water, memory_order_relaxed);
    st->depth = atomic_load_explicit(&pool.depth, memory_order_relaxed);
    st->parks = atomic_load_explicit(&pool.parks, memory_order_relaxed);
    st->unparks = atomic_load_explicit(&pool.unparks, memory_order_relaxed);
    st->spared = atomic_load_explicit(&pool.spared, memory_order_relaxed);
    st->spare_cap = atomic_load_explicit(&pool.spare_cap, memory_order_relaxed);
    st->spin_claims = atomic_load_explicit(&pool.spin_claims, memory_order_relaxed);
    st->spin_misses = atomic_load_explicit(&pool.spin_misses, memory_order_relaxed);
    /* Unclaimed spinners (a claimed one may still spin until it sees the request). */
    st->spinning = atomic_load_explicit(&pool.spin_tokens, memory_order_relaxed);
    st->parked = parked_workers(IDLE_WORDS);
    pthread_mutex_lock(&pool.mu);
    st->workers = pool.cfg.workers;
    st->capacity = pool.cfg.capacity;
    st->running = pool.nthreads;
    pthread_mutex_unlock(&pool.mu);
}
