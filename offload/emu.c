/*
 * offload/emu.c — accelerator emulation: PRNG decisions, the ring, and the timer thread
 * that completes requests when their latency has passed. See emu.h.
 *
 * Ownership:
 *  - struct emu is a process-wide static. cfg and the thresholds are written under
 *    pool.mu by the first offload_start() (emu_configure_) before the pool accepts
 *    submits, and read by submitters after they passed the pool's gate (its seq_cst
 *    `accepting` orders them), and by inline calls after an acquire load of
 *    offload_emu_on_.
 *  - The heap and credits belong to the timer (under emu.lock). A parked request
 *    belongs to the timer from its push until its done() returns; the timer thread
 *    holds emu.busy from popping a request until its done() has returned, so fork()'s
 *    prepare handler (which takes emu.busy) never sees a request popped but not
 *    completed.
 *
 * Lock order (extends offload.c's): ... busy[i] -> emu.busy -> deq_lock -> emu.lock ->
 * wait_lock -> bcast_lock. A worker holds its busy and then emu.lock (park); the timer
 * thread holds emu.busy and then emu.lock (pop) or wait_lock (a space wake-up), never
 * both of those at once; emu.lock is a leaf for everyone but fork's prepare.
 */
#define _GNU_SOURCE
#include "emu_internal.h"
#include "timing.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

atomic_int offload_emu_on_;

struct ent {
    uint64_t due;
    offload_req *req;
};

static struct emu {
    /* Configuration: see Ownership above. Thresholds are probabilities scaled to 2^53
     * (a draw's top 53 bits below the threshold means yes); 2^53 means always. */
    offload_emu_config cfg;
    uint64_t fail_thr[OFFLOAD_EMU_CLASSES];
    uint64_t refuse_thr[OFFLOAD_EMU_CLASSES];
    int has_lat[OFFLOAD_EMU_CLASSES];

    /* Requests in the device: reserved at submit, released before done(). seq_cst on
     * both sides: the release followed by a read of the pool's waiter count pairs with
     * offload_wait_space's registration followed by its read of the ring (see there). */
    atomic_uint ring_used;
    /* Decision counter: relaxed, it only has to hand every decision its own number. */
    atomic_uint_fast64_t draws;

    /* Timer. */
    pthread_mutex_t lock; /* guards heap, n, cap, credits, sleeping, stop */
    struct ent *heap;     /* min-heap on due */
    size_t n, cap;
    unsigned credits;     /* injected refusals whose waiter is still to be woken */
    int sleeping;         /* the timer thread is (about to be) in futex_wait on seq */
    int stop;             /* complete everything at once and exit */
    atomic_uint seq;      /* bumped under lock when a sleeping timer must look again */
    pthread_mutex_t busy; /* held by the timer thread while it completes a batch */
    pthread_t tid;
    int started;          /* guarded by pool.mu */

    /* Counters: relaxed, for statistics only. Bumped before done(), so a caller that
     * sees its call done also sees its own count. */
    atomic_uint_fast64_t delayed, ring_refused, refused, faults;
} emu = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .busy = PTHREAD_MUTEX_INITIALIZER,
};

/* Set by emu_admit_ on an injected refusal, read by offload_wait_space on the same
 * thread right after. initial-exec for the reason offload.c gives for in_worker. */
static _Thread_local int injected_refusal __attribute__((tls_model("initial-exec")));

/* ---- decisions ------------------------------------------------------------------- */

/* splitmix64's output function: a bijective mixer, good enough to make independent-
 * looking uniforms out of consecutive integers. */
static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Draw k (0: refuse, 1: fail, 2-3: latency) of decision n: 53 uniform bits. */
static uint64_t draw(uint64_t n, unsigned k)
{
    return mix64(emu.cfg.seed + (n * 4 + k + 1) * 0x9e3779b97f4a7c15ull) >> 11;
}

static double unit(uint64_t bits53)
{
    return (double)bits53 / 9007199254740992.0; /* [0, 1) */
}

static uint64_t threshold(double p)
{
    if (p <= 0)
        return 0;
    if (p >= 1)
        return 1ull << 53;
    return (uint64_t)(p * 9007199254740992.0);
}

static uint64_t latency_ns(unsigned cls, uint64_t n)
{
    const offload_emu_latency *l = &emu.cfg.cls[cls].lat;
    double ns = (double)l->fixed_ns;

    if (l->jitter_ns != 0) {
        ns += (2 * unit(draw(n, 2)) - 1) * (double)l->jitter_ns;
        if (ns < 0)
            ns = 0;
    }
    if (l->exp_mean_ns != 0) {
        double e = -log1p(-unit(draw(n, 3))) * (double)l->exp_mean_ns;

        ns += e < (double)OFFLOAD_EMU_MAX_NS ? e : (double)OFFLOAD_EMU_MAX_NS;
    }
    return (uint64_t)ns;
}

int offload_emu_config_active(const offload_emu_config *c)
{
    unsigned i;

    if (c == NULL)
        return 0;
    if (c->ring != 0)
        return 1;
    for (i = 1; i < OFFLOAD_EMU_CLASSES; i++) {
        const offload_emu_class *k = &c->cls[i];

        if (k->lat.fixed_ns || k->lat.jitter_ns || k->lat.exp_mean_ns || k->fail > 0
            || k->refuse > 0)
            return 1;
    }
    return 0;
}

void emu_configure_(const offload_emu_config *c)
{
    unsigned i;

    memset(&emu.cfg, 0, sizeof(emu.cfg));
    if (!offload_emu_config_active(c))
        return;
    emu.cfg = *c;
    for (i = 0; i < OFFLOAD_EMU_CLASSES; i++) {
        const offload_emu_latency *l = &c->cls[i].lat;

        emu.fail_thr[i] = i == 0 ? 0 : threshold(c->cls[i].fail);
        emu.refuse_thr[i] = i == 0 ? 0 : threshold(c->cls[i].refuse);
        emu.has_lat[i] = i != 0 && (l->fixed_ns || l->jitter_ns || l->exp_mean_ns);
    }
    atomic_store(&emu.draws, 0);
    atomic_store(&emu.ring_used, 0);
    /* Release: an inline call that reads 1 (acquire) sees the configuration. */
    atomic_store_explicit(&offload_emu_on_, 1, memory_order_release);
}

/* Field by field: the struct has padding, which memcmp would compare too. */
static int config_equal(const offload_emu_config *a, const offload_emu_config *b)
{
    unsigned i;

    if (a->ring != b->ring || a->seed != b->seed)
        return 0;
    for (i = 1; i < OFFLOAD_EMU_CLASSES; i++) {
        const offload_emu_class *x = &a->cls[i], *y = &b->cls[i];

        if (x->lat.fixed_ns != y->lat.fixed_ns || x->lat.jitter_ns != y->lat.jitter_ns
            || x->lat.exp_mean_ns != y->lat.exp_mean_ns || x->fail != y->fail
            || x->refuse != y->refuse)
            return 0;
    }
    return 1;
}

int emu_same_(const offload_emu_config *c)
{
    int on = atomic_load_explicit(&offload_emu_on_, memory_order_relaxed);

    if (!offload_emu_config_active(c))
        return !on;
    return on && config_equal(&emu.cfg, c);
}

void emu_reset_(void)
{
    atomic_store_explicit(&offload_emu_on_, 0, memory_order_relaxed);
}

int emu_admit_(offload_req *req)
{
    unsigned cls = req->emu_class;
    uint64_t n;

    req->emu_.flags_ = 0;
    req->emu_.due_ = 0;
    injected_refusal = 0;
    if (cls == 0 || cls >= OFFLOAD_EMU_CLASSES)
        return OFFLOAD_OK;
    n = atomic_fetch_add_explicit(&emu.draws, 1, memory_order_relaxed);
    if (emu.refuse_thr[cls] != 0 && draw(n, 0) < emu.refuse_thr[cls]) {
        atomic_fetch_add_explicit(&emu.refused, 1, memory_order_relaxed);
        injected_refusal = 1;
        return OFFLOAD_FULL;
    }
    if (emu.cfg.ring != 0) {
        if (atomic_fetch_add(&emu.ring_used, 1) >= emu.cfg.ring) {
            /* Gave back without a wake-up: we held the slot only if the ring was full,
             * and then the requests in it will each wake a waiter as they complete. */
            atomic_fetch_sub(&emu.ring_used, 1);
            atomic_fetch_add_explicit(&emu.ring_refused, 1, memory_order_relaxed);
            return OFFLOAD_FULL;
        }
        req->emu_.flags_ |= EMU_F_RING;
    }
    req->emu_.flags_ |= EMU_F_ON;
    if (emu.fail_thr[cls] != 0 && draw(n, 1) < emu.fail_thr[cls])
        req->emu_.flags_ |= EMU_F_FAIL;
    if (emu.has_lat[cls])
        req->emu_.due_ = mono_ns() + latency_ns(cls, n);
    return OFFLOAD_OK;
}

void emu_unadmit_(offload_req *req)
{
    /* No wake-up here, as for a queue slot given back in offload_submit: the queue was
     * full, so requests are in flight and each will free a ring slot and wake. */
    if (req->emu_.flags_ & EMU_F_RING)
        atomic_fetch_sub(&emu.ring_used, 1);
    req->emu_.flags_ = 0;
}

int emu_ring_full_(void)
{
    /* seq_cst: see ring_used. */
    return emu.cfg.ring != 0 && atomic_load(&emu.ring_used) >= emu.cfg.ring;
}

int emu_take_injected_(void)
{
    int r = injected_refusal;

    injected_refusal = 0;
    return r;
}

/* ---- completion and the timer ---------------------------------------------------- */

/* Complete req: counters, its ring slot (and a wake-up for it), then done(). */
static void complete(offload_req *req)
{
    unsigned f = req->emu_.flags_;

    offload_count_completed_();
    if (f & EMU_F_FAIL)
        atomic_fetch_add_explicit(&emu.faults, 1, memory_order_relaxed);
    if (f & EMU_F_RING) {
        /* Free the slot before done(): a caller whose call is done and submits again
         * at once must find its own slot free. seq_cst, then read the waiters. */
        atomic_fetch_sub(&emu.ring_used, 1);
        offload_space_freed_();
    }
    req->done(req, (f & EMU_F_FAIL) ? OFFLOAD_FAILED : OFFLOAD_RAN);
}

/* Under emu.lock. */
static void wake_timer_locked(int *need_wake)
{
    if (emu.sleeping) {
        atomic_fetch_add_explicit(&emu.seq, 1, memory_order_relaxed);
        *need_wake = 1;
    }
}

static void futex_wake_timer(void)
{
    syscall(SYS_futex, &emu.seq, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

/* Under emu.lock. */
static void heap_sift_up(size_t i)
{
    struct ent e = emu.heap[i];

    while (i > 0 && emu.heap[(i - 1) / 2].due > e.due) {
        emu.heap[i] = emu.heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    emu.heap[i] = e;
}

/* Under emu.lock, n > 0. */
static offload_req *heap_pop(void)
{
    offload_req *top = emu.heap[0].req;
    struct ent last = emu.heap[--emu.n];
    size_t i = 0;

    for (;;) {
        size_t c = 2 * i + 1;

        if (c >= emu.n)
            break;
        if (c + 1 < emu.n && emu.heap[c + 1].due < emu.heap[c].due)
            c++;
        if (emu.heap[c].due >= last.due)
            break;
        emu.heap[i] = emu.heap[c];
        i = c;
    }
    if (emu.n > 0)
        emu.heap[i] = last;
    return top;
}

/* Hand req to the timer. 0 if it cannot (no memory): the caller completes it now. */
static int park(offload_req *req)
{
    int need_wake = 0;

    pthread_mutex_lock(&emu.lock);
    if (emu.n == emu.cap) {
        size_t ncap = emu.cap ? emu.cap * 2 : 256;
        struct ent *h = realloc(emu.heap, ncap * sizeof(*h));

        if (h == NULL) {
            pthread_mutex_unlock(&emu.lock);
            return 0;
        }
        emu.heap = h;
        emu.cap = ncap;
    }
    emu.heap[emu.n].due = req->emu_.due_;
    emu.heap[emu.n].req = req;
    heap_sift_up(emu.n++);
    /* Counted while the request is ours: once parked, the timer may complete it. */
    atomic_fetch_add_explicit(&emu.delayed, 1, memory_order_relaxed);
    if (emu.heap[0].req == req)
        wake_timer_locked(&need_wake); /* a new earliest deadline */
    pthread_mutex_unlock(&emu.lock);
    if (need_wake)
        futex_wake_timer();
    return 1;
}

void emu_run_(offload_req *req)
{
    if (!(req->emu_.flags_ & EMU_F_FAIL))
        req->run(req);
    if (req->emu_.due_ != 0 && mono_ns() < req->emu_.due_ && park(req))
        return;
    complete(req);
}

void emu_credit_(void)
{
    int need_wake = 0;

    pthread_mutex_lock(&emu.lock);
    emu.credits++;
    wake_timer_locked(&need_wake);
    pthread_mutex_unlock(&emu.lock);
    if (need_wake)
        futex_wake_timer();
}

#define BATCH 64

static void *timer_main(void *arg)
{
    (void)arg;
    offload_mark_pool_thread_(); /* done() may signal an application's callback */
    pthread_setname_np(pthread_self(), "asyncpool-tmr");
    for (;;) {
        offload_req *batch[BATCH];
        unsigned nb = 0, credits, i;
        uint64_t now;

        pthread_mutex_lock(&emu.busy);
        pthread_mutex_lock(&emu.lock);
        now = mono_ns();
        while (nb < BATCH && emu.n > 0 && (emu.stop || emu.heap[0].due <= now))
            batch[nb++] = heap_pop();
        credits = emu.credits;
        emu.credits = 0;
        if (nb == 0 && credits == 0) {
            struct timespec ts, *tsp = NULL;
            unsigned seq = 0;
            int stop = emu.stop;

            if (!stop) {
                if (emu.n > 0) {
                    uint64_t d = emu.heap[0].due - now;

                    ts.tv_sec = (time_t)(d / 1000000000u);
                    ts.tv_nsec = (long)(d % 1000000000u);
                    tsp = &ts;
                }
                /* Read seq under the lock: a push or credit after we unlock bumps it
                 * (under the lock, because sleeping is set), so the wait returns. */
                emu.sleeping = 1;
                seq = atomic_load_explicit(&emu.seq, memory_order_relaxed);
            }
            pthread_mutex_unlock(&emu.lock);
            pthread_mutex_unlock(&emu.busy);
            if (stop)
                break;
            syscall(SYS_futex, &emu.seq, FUTEX_WAIT_PRIVATE, seq, tsp, NULL, 0);
            pthread_mutex_lock(&emu.lock);
            emu.sleeping = 0;
            pthread_mutex_unlock(&emu.lock);
            continue;
        }
        pthread_mutex_unlock(&emu.lock);
        for (i = 0; i < nb; i++)
            complete(batch[i]);
        /* Each credit stands for one injected refusal whose waiter registered before
         * the credit was added (under emu.lock, read here under it). */
        for (i = 0; i < credits; i++)
            offload_space_freed_();
        pthread_mutex_unlock(&emu.busy);
    }
    offload_thread_exit_();
    return NULL;
}

int emu_timer_start_(void)
{
    if (!atomic_load_explicit(&offload_emu_on_, memory_order_relaxed) || emu.started)
        return 1;
    emu.stop = 0;
    if (pthread_create(&emu.tid, NULL, timer_main, NULL) != 0)
        return 0;
    emu.started = 1;
    return 1;
}

void emu_timer_stop_(void)
{
    int need_wake = 0;

    if (!emu.started)
        return;
    pthread_mutex_lock(&emu.lock);
    emu.stop = 1;
    wake_timer_locked(&need_wake);
    pthread_mutex_unlock(&emu.lock);
    if (need_wake)
        futex_wake_timer();
    pthread_join(emu.tid, NULL);
    emu.started = 0;
    emu.stop = 0;
    emu.credits = 0;
    free(emu.heap);
    emu.heap = NULL;
    emu.n = emu.cap = 0;
}

/* ---- fork ------------------------------------------------------------------------ */

void emu_fork_lock_busy_(void)
{
    pthread_mutex_lock(&emu.busy);
}

void emu_fork_lock_(void)
{
    pthread_mutex_lock(&emu.lock);
}

void emu_fork_parent_(void)
{
    pthread_mutex_unlock(&emu.lock);
    pthread_mutex_unlock(&emu.busy);
}

void emu_fork_child_(void)
{
    size_t i;

    /* The timer thread does not exist here; what it held belongs to the parent's jobs:
     * abort them, as offload.c does with the queue. */
    for (i = 0; i < emu.n; i++)
        emu.heap[i].req->done(emu.heap[i].req, OFFLOAD_ABORTED);
    emu.n = 0;
    emu.credits = 0;
    emu.sleeping = 0;
    emu.stop = 0;
    emu.started = 0; /* started again with the workers, on the child's first submit */
    atomic_store(&emu.ring_used, 0);
    pthread_mutex_unlock(&emu.lock);
    pthread_mutex_unlock(&emu.busy);
}

/* ---- stats and inline calls -------------------------------------------------------- */

void offload_emu_get_stats(offload_emu_stats *st)
{
    st->delayed = atomic_load_explicit(&emu.delayed, memory_order_relaxed);
    st->ring_refused = atomic_load_explicit(&emu.ring_refused, memory_order_relaxed);
    st->refused = atomic_load_explicit(&emu.refused, memory_order_relaxed);
    st->faults = atomic_load_explicit(&emu.faults, memory_order_relaxed);
    st->ring_used = atomic_load_explicit(&emu.ring_used, memory_order_relaxed);
    st->on = atomic_load_explicit(&offload_emu_on_, memory_order_relaxed);
}

int offload_emu_inline_begin(unsigned cls, offload_emu_ticket *t)
{
    uint64_t n;

    /* Acquire: pairs with emu_configure_'s release, so cfg is read as configured. */
    if (!atomic_load_explicit(&offload_emu_on_, memory_order_acquire) || cls == 0
        || cls >= OFFLOAD_EMU_CLASSES)
        return 0;
    n = atomic_fetch_add_explicit(&emu.draws, 1, memory_order_relaxed);
    t->fail = emu.fail_thr[cls] != 0 && draw(n, 1) < emu.fail_thr[cls];
    t->due_ns = emu.has_lat[cls] ? mono_ns() + latency_ns(cls, n) : 0;
    if (t->fail)
        atomic_fetch_add_explicit(&emu.faults, 1, memory_order_relaxed);
    return 1;
}

void offload_emu_inline_end(const offload_emu_ticket *t)
{
    struct timespec ts;
    int counted = 0;

    if (t->due_ns == 0)
        return;
    ts.tv_sec = (time_t)(t->due_ns / 1000000000u);
    ts.tv_nsec = (long)(t->due_ns % 1000000000u);
    while (mono_ns() < t->due_ns) {
        if (!counted) {
            atomic_fetch_add_explicit(&emu.delayed, 1, memory_order_relaxed);
            counted = 1;
        }
        /* Absolute, so a signal's EINTR resumes the same wait. */
        (void)clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
    }
}
