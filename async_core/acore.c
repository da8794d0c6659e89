/*
 * async_core/ — pause/wake over libcrypto's ASYNC API. See acore.h.
 *
 * Ownership:
 *  - struct call lives on the caller's stack (for a job, the fibre's stack, which stays
 *    put while the job is paused). From a successful offload_submit() until the worker
 *    sets done, the worker owns it; after done the worker never touches it again.
 *  - struct notifier (one per ASYNC_WAIT_CTX) is refcounted. References: the
 *    ASYNC_WAIT_CTX (dropped by its cleanup callback when the WAIT_CTX is freed), each
 *    submitted call (dropped by the worker after its wake-up), a space waiter while it
 *    is registered with the pool (dropped by its wake() or by a successful cancel), and,
 *    for a blocking call outside a job, the caller. The eventfd closes with the last
 *    reference, so a worker never writes to a closed fd whose number the kernel has
 *    given to someone else. Workers never call ASYNC_* functions and never touch the
 *    WAIT_CTX.
 *
 * The rules this file keeps, and where:
 *  1. Only a worker runs an application's WAIT_CTX callback (call_done, space_wake),
 *     never the thread that submits, which may be inside another connection's job.
 *     ("Worker" includes the device emulation's timer thread, offload/emu.c, which
 *     completes delayed requests and wakes space waiters: offload_in_worker() is 1
 *     there too.)
 *  2. The application's thread never sleeps inside a job that really paused: every
 *     early resume pauses again (pause_job). It sleeps only when ASYNC_pause_job()
 *     cannot switch (ASYNC_block_pause()), and for space it never sleeps at all.
 *  3. No signal outlives the call it belongs to (level-triggered pollers would spin):
 *     the job drains its eventfd after the last write of the call has landed
 *     (sig_inflight), and a callback never runs after the job has finished (cb_active).
 *  4. The caller's error queue and its marks are never touched by a pause: a job with
 *     errors queued runs the call inline (acore_call).
 *  5. A fork child never reads or writes an eventfd it inherited: the parent owns it
 *     (gen).
 */
#define _GNU_SOURCE
#include "acore.h"
#include "../offload/offload.h"
#include "../offload/timing.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/select.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <openssl/async.h>
#include <openssl/err.h>

#define container_of(p, type, member) ((type *)(void *)((char *)(p) - offsetof(type, member)))

static const char wait_key; /* its address is our ASYNC_WAIT_CTX key */

const void *acore_wait_key(void)
{
    return &wait_key;
}

/* ---- fork generation --------------------------------------------------------------- */

/*
 * Bumped in every fork child. A notifier made in an earlier generation belongs to the
 * parent: its eventfd is the same open file as the parent's (fork shares it), so a
 * child that read it would steal the parent's completion signal, and one that wrote it
 * would wake the parent's loop. The child leaves such an fd alone, and replaces it in
 * the WAIT_CTX before it pauses a job of its own there.
 */
static atomic_uint fork_gen;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void on_fork_child(void)
{
    atomic_fetch_add(&fork_gen, 1);
}

static void register_atfork(void)
{
    pthread_atfork(NULL, NULL, on_fork_child);
}

/* ---- captured OpenSSL errors --------------------------------------------------- */

struct err_entry {
    unsigned long code;
    /* Our copies. ERR_get_error_all's strings belong to the worker's error slot: OpenSSL
     * 3.0 keeps its own copies of file and function there and frees them when the slot
     * is reused, which can happen before the caller resumes. */
    char *file, *func, *data;
    int line;
};

struct errs {
    int n;
    struct err_entry e[16]; /* OpenSSL's queue holds at most 16 (ERR_NUM_ERRORS) */
};

/* On a worker: pop every error off its queue into a new list (NULL if none). */
static struct errs *errs_capture(void)
{
    struct errs *es;
    const char *file, *func, *data;
    int line, flags;
    unsigned long code;

    if (ERR_peek_error() == 0)
        return NULL;
    es = calloc(1, sizeof(*es));
    if (es == NULL) {
        ERR_clear_error(); /* the worker's own queue: never leave it to the next call */
        return NULL;
    }
    while ((code = ERR_get_error_all(&file, &line, &func, &data, &flags)) != 0) {
        struct err_entry *e;

        if (es->n == (int)(sizeof(es->e) / sizeof(es->e[0])))
            continue; /* cannot happen with a 16-slot queue; drop, don't overflow */
        e = &es->e[es->n++];
        e->code = code;
        e->file = file != NULL ? strdup(file) : NULL;
        e->line = line;
        e->func = func != NULL ? strdup(func) : NULL;
        e->data = (flags & ERR_TXT_STRING) && data != NULL && *data ? strdup(data) : NULL;
    }
    return es;
}

/* Raise the captured errors on this thread's queue, oldest first, and free the list. */
static void errs_raise(struct errs *es)
{
    int i;

    if (es == NULL)
        return;
    for (i = 0; i < es->n; i++) {
        struct err_entry *e = &es->e[i];

        ERR_new();
        ERR_set_debug(e->file, e->line, e->func);
        if (e->data != NULL)
            ERR_set_error(ERR_GET_LIB(e->code), ERR_GET_REASON(e->code), "%s", e->data);
        else
            ERR_set_error(ERR_GET_LIB(e->code), ERR_GET_REASON(e->code), NULL);
        free(e->data);
        free(e->file);
        free(e->func);
    }
    free(es);
}

/* ---- notifier -------------------------------------------------------------------- */

/* The space waiter's state (notifier.space_state). */
enum {
    SPACE_IDLE = 0,  /* not waiting for space */
    SPACE_WANT = 1,  /* waiting: a wake() may take it */
    SPACE_WOKEN = 2, /* a wake() took it and signalled; the job has not retried yet */
    SPACE_DEAD = 3,  /* the WAIT_CTX is gone */
};

struct notifier {
    offload_waiter space; /* registered when a submit met a full queue (fd mode) */
    atomic_int refs;
    int efd;               /* eventfd owned by this notifier; -1 for a blocking call's */
    unsigned gen;          /* fork_gen when made */
    atomic_int dead;       /* 1 once the WAIT_CTX is freed */

    /* Space: IDLE -> WANT by the job; WANT -> WOKEN by a wake() (CAS: it signals only
     * if it wins); WANT/WOKEN -> IDLE by the job when it retries; any -> DEAD by the
     * WAIT_CTX cleanup. A wake() that loses the CAS returns 0, and the pool passes the
     * slot to the next waiter; a cleanup that finds WOKEN passes it on itself. */
    atomic_int space_state;
    /* The WAIT_CTX callback a space wake-up calls (NULL: fd mode). Written by the job
     * when it registers, and only when they changed: a wake() of an earlier
     * registration may still be reading them. */
    _Atomic(ASYNC_callback_fn) space_cb;
    _Atomic(void *) space_cbarg;

    /* fd mode: writers of the eventfd in progress (a call's completion, a space wake).
     * The job drains its fd only once this is 0, so no signal of a finished call is
     * left behind to make a level-triggered poller spin. */
    atomic_int sig_inflight;

    /* Callback mode: workers inside (or about to call) the application's callback, and
     * whether the job, resumed meanwhile, paused again and needs one more callback.
     * The job never finishes while a callback runs (libssl's callback reads the SSL,
     * which the application may free as soon as the job is done), and it never waits
     * for one either (the callback may wait for a lock that the application holds
     * around its SSL calls): it pauses again and the last callback to leave calls
     * once more (cb_leave / cb_may_finish). */
    atomic_int cb_active;
    atomic_int cb_again;

    /* Event count for sleeping waits (outside a job with ACORE_BLOCK, or a job whose
     * pausing is blocked): every signal bumps seq, then wakes if anyone sleeps. */
    atomic_uint seq;
    atomic_int sleepers;
};

static void futex_wait(atomic_uint *addr, unsigned expected, const struct timespec *timeout)
{
    /* Returns on a wake, a value change (EAGAIN), a signal or the timeout: callers
     * re-check their condition. */
    syscall(SYS_futex, addr, FUTEX_WAIT_PRIVATE, expected, timeout, NULL, 0);
}

static void futex_wake(atomic_uint *addr)
{
    syscall(SYS_futex, addr, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

static void notifier_ref(struct notifier *n)
{
    atomic_fetch_add_explicit(&n->refs, 1, memory_order_relaxed);
}

static void notifier_put(struct notifier *n)
{
    /* acq_rel: every use of n by other holders happens before the free. */
    if (atomic_fetch_sub_explicit(&n->refs, 1, memory_order_acq_rel) != 1)
        return;
    if (n->efd >= 0)
        close(n->efd);
    free(n);
}

/* 1 if this process made n (not inherited across fork()). */
static int notifier_ours(const struct notifier *n)
{
    return n->gen == atomic_load_explicit(&fork_gen, memory_order_relaxed);
}

/* Wake whoever waits on n: futex sleepers, then the WAIT_CTX's callback if cb is set,
 * else the eventfd. Called by workers after they set what the waiter checks (seq_cst),
 * so a waiter that wakes sees it. The caller accounts for itself in cb_active (cb) or
 * sig_inflight (fd). */
static void notifier_signal(struct notifier *n, ASYNC_callback_fn cb, void *cbarg)
{
    atomic_fetch_add(&n->seq, 1);
    if (atomic_load(&n->sleepers) > 0)
        futex_wake(&n->seq);
    if (atomic_load(&n->dead))
        return;
    if (cb != NULL) {
        cb(cbarg);
    } else if (n->efd >= 0 && notifier_ours(n)) {
        uint64_t one = 1;
        ssize_t r;

        /* Cannot fail short of a counter overflow (2^64 - 2 wake-ups); the fd is ours
         * until our reference is dropped. */
        do {
            r = write(n->efd, &one, sizeof(one));
        } while (r < 0 && errno == EINTR);
    }
}

/*
 * A worker leaves the callback section. If it is the last one and the job paused again
 * while callbacks ran (cb_again), it must call once more: returns 1 (the caller calls
 * again, already counted back in). seq_cst pairs with cb_may_finish: the job stores
 * cb_again and then reads cb_active; we decrement cb_active and then take cb_again.
 * Either we see its request, or it sees us gone.
 */
static int cb_leave(struct notifier *n)
{
    if (atomic_fetch_sub(&n->cb_active, 1) != 1)
        return 0;
    if (!atomic_exchange(&n->cb_again, 0))
        return 0;
    atomic_fetch_add(&n->cb_active, 1);
    return 1;
}

/* A callback that is still running when the job sees its call done is usually in its
 * last instructions (returning from the eventfd write that woke the application):
 * wait this long for it before pausing again, which would cost a second callback and a
 * second trip through the application's loop. Bounded, so that a callback that waits
 * for a lock the application holds never holds the job up. */
#define CB_SPIN_NS 20000

/* notifier_settle spins this long for a writer returning from write(), then yields. */
#define SETTLE_SPIN_NS 5000u

/* For a wait loop that reads the clock now and then: the first call (*deadline 0)
 * starts a budget of budget_ns; later calls return 1 once it is spent. */
static int budget_spent(uint64_t *deadline, uint64_t budget_ns)
{
    uint64_t now = mono_ns();

    if (*deadline == 0) {
        *deadline = now + budget_ns;
        return 0;
    }
    return now > *deadline;
}

/* In the job, callback mode, once its call is done: 1 if it may finish (no callback is
 * running and none will be made for it), 0 if it must pause again (the last callback
 * to leave calls once more). */
static int cb_may_finish(struct notifier *n)
{
    uint64_t deadline = 0;
    unsigned i;

    for (i = 0; atomic_load(&n->cb_active) != 0; i++) {
        if ((i & 15) == 0 && budget_spent(&deadline, CB_SPIN_NS))
            break;
        sched_yield();
    }
    if (atomic_load(&n->cb_active) == 0)
        return 1;
    atomic_store(&n->cb_again, 1);
    if (atomic_load(&n->cb_active) != 0)
        return 0;
    /* They all left. If none took our request, take it back: then nobody calls. */
    return atomic_exchange(&n->cb_again, 0) == 1;
}

/* Call the application's callback as a worker: counted in cb_active, and again while
 * the job asks for it. */
static void signal_callback(struct notifier *n, ASYNC_callback_fn cb, void *cbarg)
{
    do {
        notifier_signal(n, cb, cbarg);
    } while (cb_leave(n));
}

static int space_wake(offload_waiter *w, int aborted)
{
    struct notifier *n = container_of(w, struct notifier, space);
    ASYNC_callback_fn cb = atomic_load_explicit(&n->space_cb, memory_order_relaxed);
    void *cbarg = atomic_load_explicit(&n->space_cbarg, memory_order_relaxed);
    int expected = SPACE_WANT, took = 0;

    if (!aborted) {
        /* Count ourselves in before the CAS: a job that finds the CAS lost (its retry
         * raced us) then sees us in cb_active / sig_inflight until we are done. */
        if (cb != NULL)
            atomic_fetch_add(&n->cb_active, 1);
        else
            atomic_fetch_add(&n->sig_inflight, 1);
        took = atomic_compare_exchange_strong(&n->space_state, &expected, SPACE_WOKEN);
        if (cb != NULL) {
            if (took)
                signal_callback(n, cb, cbarg);
            else
                while (cb_leave(n))
                    notifier_signal(n, cb, cbarg);
        } else {
            if (took)
                notifier_signal(n, NULL, NULL);
            atomic_fetch_sub(&n->sig_inflight, 1);
        }
    }
    notifier_put(n); /* the registration's reference */
    return took;
}

/* A notifier; with_fd: with its eventfd, raising an error on failure. Without one
 * (a blocking call outside a job) it raises nothing: that caller must not touch the
 * thread's error state at all, see call_blocking. */
static struct notifier *notifier_new(int with_fd)
{
    struct notifier *n = calloc(1, sizeof(*n));

    if (n == NULL) {
        if (with_fd)
            ERR_raise(ERR_LIB_ASYNC, ERR_R_MALLOC_FAILURE);
        return NULL;
    }
    n->efd = -1;
    if (with_fd) {
        n->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (n->efd < 0) {
            ERR_raise_data(ERR_LIB_SYS, errno, "calling eventfd()");
            free(n);
            return NULL;
        }
    }
    n->gen = atomic_load(&fork_gen);
    atomic_init(&n->refs, 1);
    n->space.wake = space_wake;
    return n;
}

/* End the space registration, if any: the job no longer waits for space. */
static void space_disarm(struct notifier *n)
{
    int old = atomic_exchange(&n->space_state, SPACE_IDLE);

    /* WANT and still on the list: take it off. WANT but popped: the wake() loses its
     * CAS and passes the slot on. WOKEN: it signalled us; the signal is accounted for
     * in sig_inflight / cb_active. */
    if (old == SPACE_WANT && offload_cancel_wait(&n->space))
        notifier_put(n);
}

/* ASYNC_WAIT_CTX cleanup: the WAIT_CTX is being freed, perhaps with a call still on a
 * worker (the application freed it while the job was paused). Stop signalling it and
 * drop its reference; the fd closes with the last one. */
static void wait_ctx_cleanup(ASYNC_WAIT_CTX *ctx, const void *key, OSSL_ASYNC_FD fd,
                             void *custom)
{
    struct notifier *n = custom;
    int old;

    (void)ctx;
    (void)key;
    (void)fd;
    atomic_store(&n->dead, 1);
    old = atomic_exchange(&n->space_state, SPACE_DEAD);
    if (old == SPACE_WANT && offload_cancel_wait(&n->space))
        notifier_put(n);
    else if (old == SPACE_WOKEN)
        offload_pass_wake(); /* we took a slot's wake-up and will never use it */
    /* A callback already running may still read the application's object (libssl's
     * reads the SSL): wait for it. With a job that finished, none can be running (the
     * job waits them out, see cb_may_finish); only an application that frees a WAIT_CTX
     * while its job is paused, which libcrypto documents as a leak, gets here with one.
     * dead (seq_cst) orders this read after the store: a worker that enters later sees
     * dead and does not call. In a fork child the count is the parent's: no worker of
     * ours will ever leave it. */
    while (notifier_ours(n) && atomic_load(&n->cb_active) != 0)
        sched_yield();
    notifier_put(n);
}

/* The notifier of this WAIT_CTX, made and registered on first use (borrowed: the
 * WAIT_CTX holds the reference). select_fds: refuse an eventfd that select() cannot
 * wait on (>= FD_SETSIZE); NULL with an error raised. */
static struct notifier *notifier_of(ASYNC_WAIT_CTX *wctx, int select_fds)
{
    OSSL_ASYNC_FD fd;
    void *custom = NULL;
    struct notifier *n;

    if (ASYNC_WAIT_CTX_get_fd(wctx, &wait_key, &fd, &custom) && custom != NULL) {
        n = custom;
        if (notifier_ours(n))
            return n;
        /* Inherited across fork(): the fd is the parent's. Take it out of this
         * WAIT_CTX (the application sees it among the deleted fds) and make our own.
         * clear_fd does not call the cleanup, so drop the WAIT_CTX's reference here. */
        if (!ASYNC_WAIT_CTX_clear_fd(wctx, &wait_key))
            return NULL;
        atomic_store(&n->dead, 1);
        notifier_put(n);
    }
    n = notifier_new(1);
    if (n == NULL)
        return NULL;
    if (select_fds && n->efd >= FD_SETSIZE) {
        ERR_raise_data(ERR_LIB_ASYNC, ERR_R_OPERATION_FAIL,
                       "asyncpool: eventfd %d is beyond select()'s FD_SETSIZE", n->efd);
        notifier_put(n);
        return NULL;
    }
    if (!ASYNC_WAIT_CTX_set_wait_fd(wctx, &wait_key, n->efd, n, wait_ctx_cleanup)) {
        notifier_put(n);
        return NULL;
    }
    return n;
}

static void notifier_drain(struct notifier *n)
{
    uint64_t v;

    if (n->efd >= 0 && notifier_ours(n))
        while (read(n->efd, &v, sizeof(v)) < 0 && errno == EINTR)
            ;
}

/* fd mode, the call finished: drain once the last writer is out, so that the fd is
 * not left readable. The writers are workers between two atomics and one write():
 * this is a wait for a few instructions, not for anything the application does. */
static void notifier_settle(struct notifier *n)
{
    unsigned i;

    if (!notifier_ours(n))
        return; /* in a fork child: the writers were the parent's threads */
    /* The usual writer is the worker whose write() woke us, returning from it: spin
     * first (a yield is a system call, and on a busy machine it hands the core to
     * whoever else is runnable for a whole time slice), yield only if it was
     * preempted there. The spin is bounded in time, not in pauses: the woken thread
     * often lands on its waker's CPU and preempts it there, and then no spin ends
     * the wait, only a yield. 4096 pauses were about 100 µs on this VM's CPUs: with
     * the workers spinning (a fixed 50 µs window) and the loop idle 200 µs between
     * requests, that wait was 42% of the loop's samples (perf record) and the round
     * trip of a 30 µs call 167 µs; 53-59 µs with this bound (acore_bench -j 1 -t 30
     * -g 200 -S 50). Past the bound it yields every 64 pauses (a few µs).
     * What the yield costs, measured (openssl speed -elapsed -async_jobs 32 rsa2048,
     * 2-core VM, perf sched): the worker, with requests queued, keeps the CPU until
     * the next tick, so speed's thread waited 3.0 ms on average to run again after
     * settling, and completions piled up meanwhile. Tried instead: sleeping on
     * sig_inflight (futex) with the writer waking it as it leaves. The wait fell to
     * 17 µs, but the loop then ran for each completion on its own (speed's thread
     * 136 against 28 ms of CPU per second, the workers' context switches 5,801
     * against 515): speed rsa2048 0.97 of this (5 alternating rounds, medians 5,124
     * against 5,295 signs/s), the TLS demo server unchanged (RSA-2048 -c 8 and -c 32,
     * keep-alive p99 during a flood). The tick-long wait batches completions; kept. */
    uint64_t deadline = 0;

    for (i = 0; atomic_load(&n->sig_inflight) != 0; i++) {
        if ((i & 63) == 0 && budget_spent(&deadline, SETTLE_SPIN_NS)) {
            sched_yield();
            continue;
        }
        cpu_relax();
    }
    notifier_drain(n);
}

/* Sleep (no spinning) until *flag != unwanted, or until timeout (NULL: none). Pairs
 * with a writer that stores the flag (seq_cst) and then calls notifier_signal():
 * either the writer sees our sleepers increment and wakes us, or we see its flag (or
 * its seq bump) and do not sleep. */
static void sleep_while(struct notifier *n, atomic_int *flag, int unwanted,
                        const struct timespec *timeout)
{
    while (atomic_load(flag) == unwanted) {
        unsigned seq;

        atomic_fetch_add(&n->sleepers, 1);
        seq = atomic_load(&n->seq);
        if (atomic_load(flag) == unwanted)
            futex_wait(&n->seq, seq, timeout);
        atomic_fetch_sub(&n->sleepers, 1);
        if (timeout != NULL)
            return;
    }
}

/* ---- the call -------------------------------------------------------------------- */

struct call {
    offload_req req;
    int (*fn)(void *);
    void *arg;
    int ret;
    int aborted;          /* written by done(), read after done */
    int failed;           /* written by done(): the emulated device failed it */
    struct errs *errs;    /* errors fn raised on the worker */
    struct notifier *n;   /* the call's reference */
    ASYNC_callback_fn cb; /* WAIT_CTX callback, or NULL for fd / blocking mode */
    void *cbarg;
    unsigned submit_flags; /* for offload_submit_ex */
    /* 0 until the worker has written ret/errs. seq_cst store after them; a reader
     * that sees 1 sees them too. */
    atomic_int done;
};

static void call_run(offload_req *r)
{
    struct call *c = container_of(r, struct call, req);

    c->ret = c->fn(c->arg);
    c->errs = errs_capture();
}

static void call_done(offload_req *r, int how)
{
    struct call *c = container_of(r, struct call, req);
    struct notifier *n = c->n;
    ASYNC_callback_fn cb = c->cb;
    void *cbarg = c->cbarg;

    /* Read everything we need from c first: once done is 1 the caller may return and
     * its stack frame (c) is gone. */
    if (how == OFFLOAD_ABORTED) {
        /* In a fork child's atfork handler: the eventfd is shared with the parent and
         * the callback is the parent thread's. Signal nothing. */
        c->aborted = 1;
        atomic_store(&c->done, 1);
        notifier_put(n);
        return;
    }
    if (how == OFFLOAD_FAILED)
        c->failed = 1; /* published by the seq_cst store of done below */
    /* Count ourselves in before done: a job that sees done then sees us. */
    if (cb != NULL)
        atomic_fetch_add(&n->cb_active, 1);
    else
        atomic_fetch_add(&n->sig_inflight, 1);
    atomic_store(&c->done, 1);
    if (cb != NULL) {
        signal_callback(n, cb, cbarg);
    } else {
        notifier_signal(n, NULL, NULL);
        atomic_fetch_sub(&n->sig_inflight, 1);
    }
    notifier_put(n);
}

/* Raised on the caller's thread for a call the emulated device failed. */
static void raise_emulated_failure(void)
{
    ERR_raise_data(ERR_LIB_PROV, ERR_R_OPERATION_FAIL, "asyncpool: emulated device failure");
}

/* An emulated call that runs on this thread: the device's decisions, and its latency
 * waited out here (a synchronous device). */
static int run_inline_emulated(int (*fn)(void *), void *arg, unsigned cls)
{
    offload_emu_ticket tk;
    int r;

    if (!offload_emu_inline_begin(cls, &tk))
        return fn(arg);
    if (tk.fail) {
        offload_emu_inline_end(&tk);
        raise_emulated_failure();
        return 0;
    }
    r = fn(arg);
    offload_emu_inline_end(&tk);
    return r;
}

/* cls: the call's emulation class, 0 for a call that is not to be emulated. */
static int run_inline(int (*fn)(void *), void *arg, unsigned cls, acore_trace *t)
{
    if (t != NULL)
        t->offloaded = 0;
    /* The one branch emulation costs here when it is off. */
    if (cls != 0 && offload_emu_enabled())
        return run_inline_emulated(fn, arg, cls);
    return fn(arg);
}

static int finish(struct call *c, acore_trace *t)
{
    errs_raise(c->errs);
    if (c->aborted) {
        ERR_raise_data(ERR_LIB_ASYNC, ERR_R_OPERATION_FAIL,
                       "asyncpool: call orphaned by fork()");
        return 0;
    }
    if (c->failed) {
        raise_emulated_failure();
        if (t != NULL)
            t->offloaded = 1;
        return 0;
    }
    if (t != NULL)
        t->offloaded = 1;
    return c->ret;
}

/* Submit c once: OFFLOAD_OK (the call holds a notifier reference until done()),
 * OFFLOAD_FULL or OFFLOAD_STOPPED (nothing queued). */
static int try_submit(struct call *c, acore_trace *t)
{
    int r;

    notifier_ref(c->n); /* the call's reference, dropped by call_done() */
    r = offload_submit_ex(&c->req, c->submit_flags);
    if (r != OFFLOAD_OK) {
        notifier_put(c->n);
        if (r == OFFLOAD_FULL && t != NULL)
            t->eagain++;
    }
    return r;
}

/* The queue is full: register for the next free slot. OFFLOAD_WAIT_ADDED or _ALREADY
 * (wait for the wake-up, or retry whenever resumed), _RETRY (retry now) or _STOPPED. */
static int space_arm(struct notifier *n, ASYNC_callback_fn cb, void *cbarg)
{
    int r;

    /* Relaxed: the seq_cst store of WANT below (and the pool's lock) publish them. */
    if (atomic_load_explicit(&n->space_cb, memory_order_relaxed) != cb)
        atomic_store_explicit(&n->space_cb, cb, memory_order_relaxed);
    if (atomic_load_explicit(&n->space_cbarg, memory_order_relaxed) != cbarg)
        atomic_store_explicit(&n->space_cbarg, cbarg, memory_order_relaxed);
    atomic_store(&n->space_state, SPACE_WANT);
    notifier_ref(n); /* the registration's reference, if it is a new one */
    r = offload_wait_space(&n->space);
    if (r != OFFLOAD_WAIT_ADDED)
        notifier_put(n);
    if (r == OFFLOAD_WAIT_RETRY || r == OFFLOAD_WAIT_STOPPED)
        atomic_store(&n->space_state, SPACE_IDLE);
    return r;
}

/* Outside a job with ACORE_BLOCK: offload and sleep until done. This thread may be the
 * one that would resume the jobs whose waiters are ahead of ours, so a space wake-up
 * is not guaranteed to reach us: sleep at most 1 ms per try, then retry anyway. */
static int call_blocking(int (*fn)(void *), void *arg, unsigned cls, acore_trace *t)
{
    static const struct timespec retry_after = {0, 1000000};
    struct call c = {.req = {.run = call_run, .done = call_done, .emu_class = cls},
                     .fn = fn, .arg = arg};
    struct notifier *n;
    int r;

    /* No ERR_* call here: the first one on a thread creates its error state, which
     * takes a libcrypto-wide lock, and in a fork child that lock may have been held by
     * another thread of the parent at the fork (seen on OpenSSL 3.5: the child hung). */
    n = notifier_new(0);
    if (n == NULL)
        return run_inline(fn, arg, cls, t);
    c.n = n;
    while ((r = try_submit(&c, t)) == OFFLOAD_FULL) {
        int w = space_arm(n, NULL, NULL);

        if (w == OFFLOAD_WAIT_STOPPED)
            break;
        if (w != OFFLOAD_WAIT_RETRY)
            sleep_while(n, &n->space_state, SPACE_WANT, &retry_after);
    }
    space_disarm(n);
    if (r != OFFLOAD_OK) {
        notifier_put(n);
        return run_inline(fn, arg, cls, t);
    }
    sleep_while(n, &c.done, 0, NULL);
    notifier_put(n);
    return finish(&c, t);
}

/* ---- pausing ----------------------------------------------------------------------- */

/*
 * Telling a real pause from a blocked one. ASYNC_pause_job() returns 1 both when it
 * switched to the application and back, and when pausing is blocked
 * (ASYNC_block_pause()) and it did not switch at all; libcrypto has no call that says
 * which. A real early resume must pause again (the application's thread must never
 * sleep inside a job it can resume); a blocked one must not be retried in a loop (that
 * spins a core) but slept on. What we can observe is the time: a pause that did not
 * switch costs what the same call costs under ASYNC_block_pause(), which we measure on
 * the spot (blocked_pause_ns); one that switched adds two context switches and a trip
 * through the application's loop (measured here: blocked 20-35 ns, the tightest
 * possible real resume 90 ns and more). After BLOCKED_AFTER early resumes in a row
 * whose pause took at most BLOCKED_FACTOR x a blocked one, we treat pausing as blocked. A mistake either way costs time,
 * never correctness: a real pause taken for blocked makes the job sleep until its
 * call is done (it will be), or run a call inline that met a full queue; a blocked one
 * taken for real spins a little longer.
 */
#define BLOCKED_AFTER 8
#define BLOCKED_FACTOR 4

struct pauser {
    unsigned early;   /* resumes so far that found the call unfinished */
    uint64_t last_ns; /* how long the last pause took (timed once early > 0) */
    unsigned fast;    /* early resumes in a row that looked like blocked pauses */
};

/* What a pause that cannot switch costs here and now: one blocked ASYNC_pause_job(),
 * timed in the same place as the pause it is compared with (right after it, with the
 * caches as warm or as cold: a blocked pause timed in a tight loop of its own came out
 * 5x faster than one between two drains under TSan). Block/unblock is a counter: this
 * leaves the application's own blocking as it was. */
static uint64_t blocked_pause_ns(void)
{
    uint64_t t0, d;

    ASYNC_block_pause();
    t0 = mono_ns();
    ASYNC_pause_job();
    d = mono_ns() - t0;
    ASYNC_unblock_pause();
    return d > 0 ? d : 1;
}

/* Pause the job once; 0 if ASYNC_pause_job() failed (then do not pause again). Only
 * pauses after an early resume are timed: the usual call pauses once and is resumed
 * by its completion, and pays nothing for this. */
static int pause_job(struct pauser *p)
{
    uint64_t t0;

    if (p->early == 0)
        return ASYNC_pause_job();
    t0 = mono_ns();
    if (!ASYNC_pause_job())
        return 0;
    p->last_ns = mono_ns() - t0;
    return 1;
}

/* After a resume that found the call unfinished: 1 if pausing looks blocked (see
 * above), so the caller must stop pausing. */
static int early_resume_blocked(struct pauser *p)
{
    if (p->early++ == 0)
        return 0; /* the first pause was not timed */
    if (p->last_ns > BLOCKED_FACTOR * blocked_pause_ns()) {
        p->fast = 0;
        return 0;
    }
    return ++p->fast >= BLOCKED_AFTER;
}

/* ---- in a job ---------------------------------------------------------------------- */

enum { SUBMITTED, RUN_INLINE };

/* Callback mode: wait out callbacks still running for n before the job goes on with
 * an inline call or finishes. Pauses again while pausing works (the last callback to
 * leave calls once more); yields if pausing is blocked. */
static void cb_quiesce(struct notifier *n, ASYNC_WAIT_CTX *wctx, struct pauser *p)
{
    int can_pause = 1;

    ASYNC_WAIT_CTX_set_status(wctx, ASYNC_STATUS_OK);
    while (!cb_may_finish(n)) {
        if (can_pause && pause_job(p))
            continue;
        can_pause = 0;
        sched_yield();
    }
}

/* Submit c, pausing while the queue is full. In callback mode the job is paused with
 * ASYNC_STATUS_EAGAIN: the application resumes it when it likes
 * (ASYNC_WAIT_CTX_set_status(3)), and a worker also calls the callback once a slot
 * frees, for applications that wait for one. In fd mode the fd is made readable when a
 * slot frees. Every resume retries, whatever woke it. */
static int submit_in_job(struct call *c, ASYNC_WAIT_CTX *wctx, struct pauser *p,
                         acore_trace *t)
{
    struct notifier *n = c->n;
    int r, paused = 0;

    for (;;) {
        if (c->cb != NULL)
            ASYNC_WAIT_CTX_set_status(wctx, ASYNC_STATUS_OK);
        r = try_submit(c, t);
        if (r != OFFLOAD_FULL)
            break;
        if (paused && early_resume_blocked(p))
            break; /* cannot pause: do not wait for space at all, run it here */
        r = space_arm(n, c->cb, c->cbarg);
        if (r == OFFLOAD_WAIT_RETRY)
            continue;
        if (r == OFFLOAD_WAIT_STOPPED)
            break;
        if (c->cb != NULL)
            ASYNC_WAIT_CTX_set_status(wctx, ASYNC_STATUS_EAGAIN);
        if (!pause_job(p))
            break;
        paused = 1;
        if (c->cb == NULL)
            notifier_drain(n);
    }
    space_disarm(n);
    if (r == OFFLOAD_OK)
        return SUBMITTED;
    if (c->cb == NULL)
        notifier_settle(n); /* a space wake-up may be writing the fd */
    else
        cb_quiesce(n, wctx, p);
    return RUN_INLINE;
}

/* 1 when the job may go on after its call: done, and no signal of it still running. */
static int call_finished(struct call *c)
{
    struct notifier *n = c->n;

    if (!atomic_load(&c->done))
        return 0;
    if (c->cb == NULL || !notifier_ours(n))
        return 1;
    return cb_may_finish(n);
}

/* Pause until c is done, pausing again on every early resume. */
static void wait_done(struct call *c, struct pauser *p)
{
    struct notifier *n = c->n;

    for (;;) {
        if (!pause_job(p))
            goto blocked;
        if (call_finished(c))
            break;
        if (c->cb == NULL) {
            /* Early resume. Drain, then look again: a write that lands after the drain
             * leaves the fd readable for the next pause, and one before it is matched
             * by a done we now see (the worker stores done before it writes). */
            notifier_drain(n);
            if (call_finished(c))
                break;
        }
        if (early_resume_blocked(p))
            goto blocked;
    }
    if (c->cb == NULL)
        notifier_settle(n);
    return;

blocked:
    /* Pausing is blocked: sleep until the worker is done, then until its callback (if
     * any) has returned. */
    sleep_while(n, &c->done, 0, NULL);
    if (c->cb == NULL)
        notifier_settle(n);
    else if (notifier_ours(n))
        while (atomic_load(&n->cb_active) != 0)
            sched_yield();
}

int acore_call(int (*fn)(void *arg), void *arg, unsigned flags, acore_trace *t)
{
    ASYNC_JOB *job;
    ASYNC_WAIT_CTX *wctx;
    struct notifier *n;
    struct pauser p = {0, 0, 0};
    unsigned cls = ACORE_CLASS_OF(flags);
    struct call c = {.req = {.run = call_run, .done = call_done, .emu_class = cls},
                     .fn = fn, .arg = arg,
                     .submit_flags = (flags & ACORE_SPARE_CORE) ? OFFLOAD_SPARE_CORE : 0};

    if (t != NULL) {
        t->offloaded = 0;
        t->eagain = 0;
    }
    if (offload_in_worker())
        return run_inline(fn, arg, 0, t); /* nested in a device call: not a device call */
    pthread_once(&atfork_once, register_atfork);
    job = ASYNC_get_current_job();
    if (job == NULL)
        return (flags & ACORE_BLOCK) ? call_blocking(fn, arg, cls, t)
                                     : run_inline(fn, arg, cls, t);

    /*
     * Never pause with errors queued (SSL_get_error() would report SSL_ERROR_SSL
     * instead of SSL_ERROR_WANT_ASYNC), and never take them off the queue either:
     * OpenSSL 3.0 has no public call that saves and restores the queue with its marks
     * (ERR_set_mark / ERR_pop_to_mark, which libssl and libcrypto use around calls
     * like this one), and popping them loses the marks. Such a call runs inline; in a
     * TLS handshake the queue is empty (SSL_get_error(3) requires it), so this does
     * not cost the offloads that matter.
     */
    if (ERR_peek_error() != 0)
        return run_inline(fn, arg, cls, t);

    wctx = ASYNC_get_wait_ctx(job);
    if (wctx == NULL)
        return run_inline(fn, arg, cls, t);
    /* The queue is empty here, so our own errors are all there is to pop if we cannot
     * get an eventfd (a mark, not ERR_clear_error(), in case an OpenSSL lets a mark sit
     * on an empty queue). */
    ERR_set_mark();
    n = notifier_of(wctx, (flags & ACORE_SELECT_FDS) != 0);
    if (n == NULL) {
        ERR_pop_to_mark();
        return run_inline(fn, arg, cls, t);
    }
    ERR_clear_last_mark();
    ASYNC_WAIT_CTX_get_callback(wctx, &c.cb, &c.cbarg);
    c.n = n;

    if (submit_in_job(&c, wctx, &p, t) != SUBMITTED)
        return run_inline(fn, arg, cls, t);
    wait_done(&c, &p);
    return finish(&c, t);
}
