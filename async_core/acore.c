/*
 * async_core/ — pause/wake over libcrypto's ASYNC API. See acore.h.
 *
 * Ownership:
 *  - struct call lives on the caller's stack (for a job, the fibre's stack, which stays
 *    put while the job is paused). From a successful offload_submit() until the worker
 *    sets done, the worker owns it; after done the worker never touches it again.
 *  - struct notifier is refcounted. References: the ASYNC_WAIT_CTX (dropped by its
 *    cleanup callback when the WAIT_CTX is freed), each submitted call (dropped by the
 *    worker after its wake-up), a registered space waiter (dropped at its wake-up), and,
 *    for a blocking call outside a job, the caller. The eventfd closes with the last
 *    reference, so a worker never writes to a closed fd whose number the kernel has
 *    given to someone else. Workers never call ASYNC_* functions and never touch the
 *    WAIT_CTX.
 */
#define _GNU_SOURCE
#include "acore.h"
#include "../offload/offload.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <openssl/async.h>
#include <openssl/err.h>

#define container_of(p, type, member) ((type *)(void *)((char *)(p) - offsetof(type, member)))

/*
 * After this many resumes in a row that find the call unfinished, stop pausing and sleep
 * until it is done. Two things cause such resumes: an application that resumes without
 * waiting (s_server busy-loops on SSL_accept), and ASYNC_block_pause(), under which
 * ASYNC_pause_job() returns at once. Re-pausing is right for the first and a busy loop
 * for the second; there is no public way to tell them apart, so after a bounded number
 * of tries we sleep on the notifier's futex instead of spinning a core.
 */
#define ACORE_EARLY_RESUMES_BEFORE_SLEEP 64

static const char wait_key; /* its address is our ASYNC_WAIT_CTX key */

const void *acore_wait_key(void)
{
    return &wait_key;
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

/* Pop every error off this thread's queue into a new list (NULL if none). */
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
        ERR_clear_error(); /* never leave them behind to poison a pause */
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

struct notifier {
    offload_waiter space; /* registered when a submit met a full queue */
    atomic_int refs;
    int efd; /* eventfd owned by this notifier; -1 for a blocking call's notifier */
    /* 1 once the WAIT_CTX is freed. Written under cb_lock, so a callback already being
     * called finishes before the WAIT_CTX's cleanup returns (and the SSL is freed). */
    atomic_int dead;
    pthread_mutex_t cb_lock;
    /* 1 while space is registered with the pool; cleared (seq_cst) before its wake. */
    atomic_int space_waiting;
    /* The WAIT_CTX callback to call at the space wake-up; written by the job's thread
     * before offload_wait_space(), whose lock publishes it to the waking worker. */
    ASYNC_callback_fn space_cb;
    void *space_cbarg;
    /* Event count for sleeping waits (blocking mode, or pausing that does not pause):
     * every signal bumps seq, then wakes if anyone sleeps. See sleep_until(). */
    atomic_uint seq;
    atomic_int sleepers;
};

static void futex_wait(atomic_uint *addr, unsigned expected)
{
    syscall(SYS_futex, addr, FUTEX_WAIT_PRIVATE, expected, NULL, NULL, 0);
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
    pthread_mutex_destroy(&n->cb_lock);
    free(n);
}

/* Tell whoever waits on n that something happened: futex sleepers, then the WAIT_CTX's
 * callback if cb is set, else the eventfd. Called by workers after they set the flag
 * the waiter checks (seq_cst), so a waiter that wakes sees it. */
static void notifier_signal(struct notifier *n, ASYNC_callback_fn cb, void *cbarg)
{
    atomic_fetch_add(&n->seq, 1);
    if (atomic_load(&n->sleepers) > 0)
        futex_wake(&n->seq);
    if (cb != NULL) {
        pthread_mutex_lock(&n->cb_lock);
        if (!atomic_load(&n->dead))
            cb(cbarg);
        pthread_mutex_unlock(&n->cb_lock);
    } else if (n->efd >= 0 && !atomic_load(&n->dead)) {
        uint64_t one = 1;
        ssize_t r;

        /* Cannot fail short of a counter overflow (2^64 - 2 wake-ups); the fd is ours
         * until our reference is dropped. */
        do {
            r = write(n->efd, &one, sizeof(one));
        } while (r < 0 && errno == EINTR);
    }
}

static void space_wake(offload_waiter *w, int aborted)
{
    struct notifier *n = container_of(w, struct notifier, space);
    /* Read before clearing space_waiting: once it is 0 the job may resume, meet a full
     * queue again and register this waiter anew, rewriting these fields. */
    ASYNC_callback_fn cb = n->space_cb;
    void *cbarg = n->space_cbarg;

    atomic_store(&n->space_waiting, 0);
    if (!aborted)
        notifier_signal(n, cb, cbarg);
    notifier_put(n);
}

static struct notifier *notifier_new(int with_fd)
{
    struct notifier *n = calloc(1, sizeof(*n));

    if (n == NULL)
        return NULL;
    n->efd = -1;
    if (with_fd) {
        n->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (n->efd < 0) {
            ERR_raise_data(ERR_LIB_SYS, errno, "calling eventfd()");
            free(n);
            return NULL;
        }
    }
    atomic_init(&n->refs, 1);
    pthread_mutex_init(&n->cb_lock, NULL);
    n->space.wake = space_wake;
    return n;
}

/* ASYNC_WAIT_CTX cleanup: the WAIT_CTX is being freed, perhaps with a call still on a
 * worker. Stop signalling it and drop its reference; the fd closes with the last one. */
static void wait_ctx_cleanup(ASYNC_WAIT_CTX *ctx, const void *key, OSSL_ASYNC_FD fd,
                             void *custom)
{
    struct notifier *n = custom;

    (void)ctx;
    (void)key;
    (void)fd;
    pthread_mutex_lock(&n->cb_lock);
    atomic_store(&n->dead, 1);
    pthread_mutex_unlock(&n->cb_lock);
    notifier_put(n);
}

/* The notifier of this WAIT_CTX, made and registered on first use (borrowed: the
 * WAIT_CTX holds the reference). */
static struct notifier *notifier_of(ASYNC_WAIT_CTX *wctx)
{
    OSSL_ASYNC_FD fd;
    void *custom = NULL;
    struct notifier *n;

    if (ASYNC_WAIT_CTX_get_fd(wctx, &wait_key, &fd, &custom) && custom != NULL)
        return custom;
    n = notifier_new(1);
    if (n == NULL)
        return NULL;
    if (!ASYNC_WAIT_CTX_set_wait_fd(wctx, &wait_key, n->efd, n, wait_ctx_cleanup)) {
        notifier_put(n);
        return NULL;
    }
    return n;
}

static void notifier_drain(struct notifier *n)
{
    uint64_t v;

    if (n->efd >= 0)
        while (read(n->efd, &v, sizeof(v)) < 0 && errno == EINTR)
            ;
}

/* Sleep (no spinning) until *flag == want. Pairs with a writer that stores the flag
 * (seq_cst) and then calls notifier_signal(): either the writer sees our sleepers
 * increment and wakes us, or we see its flag (or its seq bump) and do not sleep. */
static void sleep_until(struct notifier *n, atomic_int *flag, int want)
{
    while (atomic_load(flag) != want) {
        unsigned seq;

        atomic_fetch_add(&n->sleepers, 1);
        seq = atomic_load(&n->seq);
        if (atomic_load(flag) != want)
            futex_wait(&n->seq, seq);
        atomic_fetch_sub(&n->sleepers, 1);
    }
}

/* ---- the call -------------------------------------------------------------------- */

struct call {
    offload_req req;
    int (*fn)(void *);
    void *arg;
    int ret;
    int aborted;          /* written by done(), read after done */
    struct errs *errs;    /* errors fn raised on the worker */
    struct notifier *n;   /* the call's reference */
    ASYNC_callback_fn cb; /* WAIT_CTX callback, or NULL for fd / blocking mode */
    void *cbarg;
    /* 0 until the worker is finished with the call. seq_cst store after ret/errs are
     * written; a reader that sees 1 sees them too. */
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
    if (how == OFFLOAD_ABORTED)
        c->aborted = 1;
    atomic_store(&c->done, 1);
    if (how == OFFLOAD_RAN)
        notifier_signal(n, cb, cbarg);
    /* Aborted: we are in a fork child's atfork handler; the eventfd is shared with the
     * parent and the callback is the parent thread's. Signal nothing. */
    notifier_put(n);
}

static int run_inline(int (*fn)(void *), void *arg, acore_trace *t)
{
    if (t != NULL)
        t->offloaded = 0;
    return fn(arg);
}

static int finish(struct call *c, struct errs *stash, acore_trace *t)
{
    errs_raise(stash);
    errs_raise(c->errs);
    if (c->aborted) {
        ERR_raise_data(ERR_LIB_ASYNC, ERR_R_OPERATION_FAIL,
                       "asyncpool: call orphaned by fork()");
        return 0;
    }
    if (t != NULL)
        t->offloaded = 1;
    return c->ret;
}

/*
 * Submit c. On a full queue, register c's notifier for the next free slot (once: it may
 * still be registered from an earlier try) and return OFFLOAD_FULL; the caller waits
 * until space_waiting drops to 0, then calls again. OFFLOAD_STOPPED: nothing queued and
 * nothing registered, run the call inline.
 */
static int submit(struct call *c, acore_trace *t)
{
    struct notifier *n = c->n;
    int r;

    notifier_ref(n); /* the call's reference, dropped by call_done() */
    r = offload_submit(&c->req);
    if (r == OFFLOAD_OK)
        return r;
    notifier_put(n);
    if (r == OFFLOAD_STOPPED)
        return r;
    if (t != NULL)
        t->eagain++;
    if (!atomic_load(&n->space_waiting)) {
        n->space_cb = c->cb;
        n->space_cbarg = c->cbarg;
        atomic_store(&n->space_waiting, 1);
        notifier_ref(n); /* the waiter's reference, dropped by space_wake() */
        if (!offload_wait_space(&n->space)) {
            atomic_store(&n->space_waiting, 0);
            notifier_put(n);
            return OFFLOAD_STOPPED;
        }
    }
    return OFFLOAD_FULL;
}

/* Outside a job with ACORE_BLOCK: offload and sleep until done. */
static int call_blocking(int (*fn)(void *), void *arg, acore_trace *t)
{
    struct call c = {.req = {.run = call_run, .done = call_done}, .fn = fn, .arg = arg};
    struct notifier *n = notifier_new(0);
    int r;

    if (n == NULL) {
        ERR_clear_error();
        return run_inline(fn, arg, t);
    }
    c.n = n;
    while ((r = submit(&c, t)) == OFFLOAD_FULL)
        sleep_until(n, &n->space_waiting, 0);
    if (r == OFFLOAD_STOPPED) {
        notifier_put(n);
        return run_inline(fn, arg, t);
    }
    sleep_until(n, &c.done, 1);
    notifier_put(n);
    return finish(&c, NULL, t);
}

/* Pause the job once. Returns after a resume; *early counts resumes that did not find
 * *flag == want; past the limit, sleeps instead (see ACORE_EARLY_RESUMES_BEFORE_SLEEP). */
static void pause_until(struct notifier *n, atomic_int *flag, int want)
{
    unsigned early = 0;

    for (;;) {
        if (early < ACORE_EARLY_RESUMES_BEFORE_SLEEP) {
            ASYNC_pause_job();
        } else {
            sleep_until(n, flag, want);
        }
        /* Drain before reading the flag: a wake-up that lands after the drain leaves
         * the fd readable for the next pause, and one before it is matched by a flag
         * we now see (the worker sets the flag before it writes the fd). */
        notifier_drain(n);
        if (atomic_load(flag) == want)
            return;
        early++;
    }
}

int acore_call(int (*fn)(void *arg), void *arg, unsigned flags, acore_trace *t)
{
    ASYNC_JOB *job;
    ASYNC_WAIT_CTX *wctx;
    struct notifier *n;
    struct errs *stash;
    struct call c = {.req = {.run = call_run, .done = call_done}, .fn = fn, .arg = arg};
    int r;

    if (t != NULL) {
        t->offloaded = 0;
        t->eagain = 0;
    }
    if (offload_in_worker())
        return run_inline(fn, arg, t);
    job = ASYNC_get_current_job();
    if (job == NULL)
        return (flags & ACORE_BLOCK) ? call_blocking(fn, arg, t) : run_inline(fn, arg, t);

    wctx = ASYNC_get_wait_ctx(job);
    n = wctx != NULL ? notifier_of(wctx) : NULL;
    if (n == NULL) {
        ERR_clear_error(); /* no eventfd to be had: still do the work, inline */
        return run_inline(fn, arg, t);
    }
    ASYNC_WAIT_CTX_get_callback(wctx, &c.cb, &c.cbarg);
    c.n = n;

    /* Never pause with errors queued: SSL_get_error() would report SSL_ERROR_SSL
     * instead of SSL_ERROR_WANT_ASYNC. Set them aside and put them back after. */
    stash = errs_capture();

    /* Full queue: the job is made resumable (the space wake-up writes our fd or calls
     * the callback, and callback users see ASYNC_STATUS_EAGAIN), pauses, and resubmits
     * when resumed. */
    for (;;) {
        if (c.cb != NULL)
            ASYNC_WAIT_CTX_set_status(wctx, ASYNC_STATUS_OK);
        r = submit(&c, t);
        if (r != OFFLOAD_FULL)
            break;
        if (c.cb != NULL)
            ASYNC_WAIT_CTX_set_status(wctx, ASYNC_STATUS_EAGAIN);
        pause_until(n, &n->space_waiting, 0);
    }
    if (r == OFFLOAD_STOPPED)
        goto inline_run;
    pause_until(n, &c.done, 1);
    return finish(&c, stash, t);

inline_run:
    errs_raise(stash);
    return run_inline(fn, arg, t);
}
