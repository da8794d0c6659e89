/*
 * An application thread: an event loop driving many ASYNC jobs at once, the way an
 * async-aware TLS server drives its connections.
 *
 * Each slot is a "connection": a WAIT_CTX (kept across jobs, or freed after a job and
 * made anew) and one job at a time making 1-4 calls (work.c). Half the WAIT_CTXs are
 * in fd mode: their fds (ASYNC_WAIT_CTX_get_changed_fds) are in a level-triggered
 * epoll set and a readable fd resumes its job. The other half are in callback mode,
 * following ASYNC_WAIT_CTX_set_status(3): a job paused with ASYNC_STATUS_EAGAIN is
 * resumed by the loop about 1 ms later, one paused with ASYNC_STATUS_OK when its
 * callback (on a worker) rings the loop's doorbell. Now and then the loop also resumes
 * a paused job at random without looking at anything, as s_server does.
 *
 * Checks made here: every job finishes with every check of its calls passed, within
 * opt.job_bound_ns; no ASYNC_start_job call takes longer than opt.call_bound_ns (less
 * the time the thread waited for a CPU, from /proc/thread-self/schedstat: the machine
 * is shared); no fd of a WAIT_CTX is readable once its job has finished (at once, and
 * for as long as the slot stays idle, through the level-triggered epoll set); no
 * callback runs outside a worker, after its job finished, or while it finishes; no
 * error is left on the thread's queue by a job.
 *
 * In the plain build a small number of paused jobs are abandoned: their WAIT_CTX is
 * freed with a call in flight (libcrypto leaks the job itself; see README).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <execinfo.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <openssl/err.h>

#include "offload/offload.h"
#include "soak.h"
#include "test/core/util.h"

#define MAX_FDS 4
#define MAX_CALLS 4

enum { S_IDLE, S_PAUSED };

struct slot {
    struct app *app;
    int idx;
    ASYNC_WAIT_CTX *w;
    ASYNC_JOB *job;
    int cb_mode;
    int state;
    uint64_t job_start, paused_at, idle_until, finished_at;
    int eagain;         /* callback mode: the last pause said ASYNC_STATUS_EAGAIN */
    unsigned resumes;
    int nfds;
    int fds[MAX_FDS];   /* in the epoll set */
    /* callback mode; written by workers */
    atomic_uint cbs;    /* callbacks so far */
    unsigned seen;      /* cbs when the job was last resumed */
    atomic_int cb_inside;
    atomic_int live;    /* a job runs on this WAIT_CTX (started, not finished) */
    /* the job */
    int ncalls;
    struct call_plan plan[MAX_CALLS];
    struct jctx jc;
};

struct app {
    int id;
    char name[32];
    int epfd, efd;
    int schedfd;
    uint64_t rq_at_iter; /* run-queue wait at the start of this loop iteration */
    int n;
    struct slot *slots;
    uint32_t rng;
    struct beat *beat;
    unsigned lib_gen; /* see prov_app_tick */
    pthread_t tid;
    _Atomic uint64_t call_since; /* when the ASYNC_start_job in progress began; 0: none */
    uint64_t sampled_since;      /* the sampler's: the call it last sampled */
    void *frames[48];            /* the stack sampled inside call frames_of */
    volatile int nframes;
    volatile uint64_t frames_of;
};

/* ---- slow calls: where is the thread? ------------------------------------------ */

static _Thread_local struct app *this_app;

/* On the application thread, interrupted inside a long ASYNC_start_job call: keep its
 * stack; check_call_time prints it if the call then fails its bound. */
static void on_sample(int sig)
{
    struct app *a = this_app;
    int e = errno;

    (void)sig;
    if (a != NULL) {
        a->nframes = backtrace(a->frames, 48);
        a->frames_of = atomic_load_explicit(&a->call_since, memory_order_relaxed);
    }
    errno = e;
}

void app_sampler_init(void)
{
    struct sigaction sa;
    void *warm[2];

    /* backtrace() loads libgcc_s on first use: not in a signal handler. */
    (void)backtrace(warm, 2);
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_sample;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);
}

void app_sample(struct app *a, uint64_t now)
{
    uint64_t since = atomic_load_explicit(&a->call_since, memory_order_acquire);

    /* Sample a call that has used 3/4 of its bound, once. */
    if (since == 0 || since == a->sampled_since || now - since < opt.call_bound_ns / 4 * 3)
        return;
    a->sampled_since = since;
    pthread_kill(a->tid, SIGUSR1);
}


/* ---- callbacks (on workers) ------------------------------------------------------ */

static int on_callback(void *arg)
{
    struct slot *s = arg;
    uint64_t one = 1;
    ssize_t r;

    atomic_fetch_add(&s->cb_inside, 1);
    check_callback_thread();
    if (!atomic_load(&s->live))
        soak_fail("%s slot %d: a callback ran after its job finished", s->app->name, s->idx);
    atomic_fetch_add(&s->cbs, 1);
    COUNT(callbacks, 1);
    do {
        r = write(s->app->efd, &one, sizeof(one));
    } while (r < 0 && errno == EINTR);
    atomic_fetch_sub(&s->cb_inside, 1);
    return 1;
}

/* ---- the job ------------------------------------------------------------------------ */

static int job_main(void *p)
{
    struct slot *s = *(struct slot **)p;
    int i;

    for (i = 0; i < s->ncalls; i++) {
        s->jc.cur_call = i;
        if (!do_call(&s->plan[i], &s->jc))
            return 0;
    }
    return 1;
}

/* ---- fds ----------------------------------------------------------------------------- */

static void fd_del(struct slot *s, int fd)
{
    int i;

    for (i = 0; i < s->nfds; i++)
        if (s->fds[i] == fd) {
            if (!s->cb_mode && epoll_ctl(s->app->epfd, EPOLL_CTL_DEL, fd, NULL) != 0)
                soak_fail("%s slot %d: epoll DEL fd %d: %s", s->app->name, s->idx, fd,
                          strerror(errno));
            s->fds[i] = s->fds[--s->nfds];
            return;
        }
    soak_fail("%s slot %d: WAIT_CTX deleted fd %d it never added", s->app->name, s->idx, fd);
}

/* Apply the WAIT_CTX's fd changes, as an nginx-style loop does. Callback-mode fds are
 * tracked (for the stale check) but not polled: such an application never looks. */
static void sync_fds(struct slot *s)
{
    OSSL_ASYNC_FD add[MAX_FDS], del[MAX_FDS];
    size_t na = 0, nd = 0, i;

    if (!ASYNC_WAIT_CTX_get_changed_fds(s->w, NULL, &na, NULL, &nd) || na > MAX_FDS
        || nd > MAX_FDS || !ASYNC_WAIT_CTX_get_changed_fds(s->w, add, &na, del, &nd)) {
        soak_fail("%s slot %d: get_changed_fds failed or too many (%zu added, %zu deleted)",
                  s->app->name, s->idx, na, nd);
        return;
    }
    for (i = 0; i < nd; i++)
        fd_del(s, del[i]);
    for (i = 0; i < na; i++) {
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = s};
        int k, have = 0;

        /* libcrypto resets the changes only when a job pauses: an fd added by a job
         * that then finished without pausing is reported again at the next pause. */
        for (k = 0; k < s->nfds; k++)
            have |= s->fds[k] == add[i];
        if (have)
            continue;
        if (s->nfds == MAX_FDS) {
            soak_fail("%s slot %d: more than %d fds", s->app->name, s->idx, MAX_FDS);
            return;
        }
        if (!s->cb_mode && epoll_ctl(s->app->epfd, EPOLL_CTL_ADD, add[i], &ev) != 0) {
            soak_fail("%s slot %d: epoll ADD fd %d: %s", s->app->name, s->idx, add[i],
                      strerror(errno));
            return;
        }
        s->fds[s->nfds++] = add[i];
    }
}

static void free_wctx(struct slot *s)
{
    while (s->nfds > 0) {
        if (!s->cb_mode)
            (void)epoll_ctl(s->app->epfd, EPOLL_CTL_DEL, s->fds[s->nfds - 1], NULL);
        s->nfds--;
    }
    ASYNC_WAIT_CTX_free(s->w);
    s->w = NULL;
    atomic_store(&s->live, 0);
    COUNT(wctx_frees, 1);
}

/* ---- stepping a job -------------------------------------------------------------- */

static void check_call_time(struct app *a, struct slot *s, uint64_t t0, uint64_t d,
                            int during_fork, uint64_t workers_waited)
{
    /* A call under ASYNC_block_pause() sleeps until a worker has done it and the work
     * queued before it: that is the workers' time (and their CPU waits), not this
     * thread's, so it gets ten times the bound. A lost wake-up would still hang it. */
    uint64_t waited, used, bound = opt.call_bound_ns * (s->jc.blocked ? 10 : 1);

    count_max(&cnt.max_call_ns, d);
    if (d <= bound)
        return;
    /* fork() stops the world: glibc holds every malloc arena lock, both pools' prepare
     * handlers hold their locks (a space wait takes one), and the kernel copies the
     * address space; on a loaded 2-core machine the forking thread may also wait for a
     * CPU meanwhile. A call that overlapped a fork is not held to the bound. */
    if (during_fork) {
        COUNT(slow_during_fork, 1);
        return;
    }
    /* Nor is libcrypto's own work in a signature (fetches wait for locks that the
     * load/unload thread's libctxs hold): what remains is asyncpool's and ours. */
    if (d - (s->jc.ossl_ns < d ? s->jc.ossl_ns : d) <= bound) {
        COUNT(slow_in_libcrypto, 1);
        return;
    }
    d -= s->jc.ossl_ns;
    /* Excuse the time this thread waited for a CPU since the iteration began, or the
     * workers did during the call, whichever is longer: the thread may have been
     * waiting for one of them (see workers_wait_ns). */
    waited = schedstat_wait_ns(a->schedfd) - a->rq_at_iter;
    if (workers_waited > waited)
        waited = workers_waited;
    used = d > waited ? d - waited : 0;
    if (used <= bound) {
        COUNT(slow_excused, 1);
        return;
    }
    soak_fail("%s slot %d (%s mode): one ASYNC_start_job call took %.1f ms (besides any time "
              "in libcrypto's own work), of which at most %.1f ms this thread or the workers "
              "waited for a CPU; bound %.0f ms; call %d of %d, kind %d",
              a->name, s->idx, s->cb_mode ? "callback" : "fd", d / 1e6, waited / 1e6,
              bound / 1e6, s->jc.cur_call, s->ncalls,
              s->plan[s->jc.cur_call].kind);
    if (a->frames_of == t0 && a->nframes > 0) {
        fprintf(stderr, "soak: %s's stack %.0f ms into that call (addr2line -e <file> "
                "<+offset>):\n", a->name, opt.call_bound_ns / 4 * 3 / 1e6);
        backtrace_symbols_fd(a->frames, a->nframes, 2);
    }
}

static void finished(struct app *a, struct slot *s, int ret, uint64_t now)
{
    OSSL_ASYNC_FD all[MAX_FDS];
    size_t nall = 0, i;

    atomic_store(&s->live, 0);
    if (atomic_load(&s->cb_inside) != 0)
        soak_fail("%s slot %d: a callback is still running after its job finished", a->name,
                  s->idx);
    /* Every fd of the WAIT_CTX, also one added by a job that never paused after. */
    if (!ASYNC_WAIT_CTX_get_all_fds(s->w, NULL, &nall) || nall > MAX_FDS
        || !ASYNC_WAIT_CTX_get_all_fds(s->w, all, &nall))
        soak_fail("%s slot %d: get_all_fds failed or too many (%zu)", a->name, s->idx, nall);
    else
        for (i = 0; i < nall; i++) {
            COUNT(stale_checks, 1);
            if (fd_readable(all[i], 0))
                soak_fail("%s slot %d (%s mode): fd %d readable right after its job finished "
                          "(a level-triggered poller would spin)", a->name, s->idx,
                          s->cb_mode ? "callback" : "fd", all[i]);
        }
    if (ret != 1 || s->jc.fail != NULL) {
        const struct call_plan *c = &s->plan[s->jc.fail_call];

        soak_fail("%s slot %d (%s mode) call %d of %d (kind %d, raise %d, in %08x): %s: "
                  "%ld, %ld", a->name, s->idx, s->cb_mode ? "callback" : "fd",
                  s->jc.fail_call, s->ncalls, c->kind, c->raise, (unsigned)c->in,
                  s->jc.fail ? s->jc.fail : "job returned 0", s->jc.fail_a, s->jc.fail_b);
    }
    count_max(&cnt.max_job_ns, now - s->job_start);
    COUNT(jobs, 1);
    if (s->cb_mode)
        COUNT(jobs_cb, 1);
    else
        COUNT(jobs_fd, 1);
    beat(a->beat, "running jobs");
    s->state = S_IDLE;
    s->job = NULL;
    s->finished_at = now;
    if (rnd(&a->rng) % 4 == 0)
        free_wctx(s); /* the worker may still be dropping its notifier reference */
    s->idle_until = now + rnd(&a->rng) % 2000000u;
}

static void step(struct app *a, struct slot *s)
{
    struct slot *sp = s;
    uint64_t t0, d, now, ww0, ww1;
    unsigned e0, e1;
    int ret = 0, r;

    if (s->cb_mode)
        s->seen = atomic_load(&s->cbs);
    s->jc.blocked = 0;
    s->jc.ossl_ns = 0;
    ww0 = workers_wait_ns();
    e0 = atomic_load(&fork_epoch);
    t0 = now_ns();
    atomic_store_explicit(&a->call_since, t0, memory_order_release); /* after tid */
    r = ASYNC_start_job(&s->job, s->w, &ret, job_main, &sp, sizeof(sp));
    atomic_store_explicit(&a->call_since, 0, memory_order_relaxed);
    now = now_ns();
    d = now - t0;
    e1 = atomic_load(&fork_epoch);
    ww1 = workers_wait_ns();
    s->resumes++;
    COUNT(resumes, 1);
    check_call_time(a, s, t0, d, e0 != e1 || (e0 & 1), ww1 - ww0);
    if (ERR_peek_error() != 0) {
        soak_fail("%s slot %d: an error was left on the application thread's queue after "
                  "ASYNC_start_job: %lx", a->name, s->idx, ERR_peek_error());
        ERR_clear_error();
    }
    switch (r) {
    case ASYNC_PAUSE:
        s->state = S_PAUSED;
        s->paused_at = now;
        sync_fds(s);
        if (s->cb_mode) {
            int st = ASYNC_WAIT_CTX_get_status(s->w);

            if (st != ASYNC_STATUS_OK && st != ASYNC_STATUS_EAGAIN)
                soak_fail("%s slot %d: paused with status %d", a->name, s->idx, st);
            s->eagain = st == ASYNC_STATUS_EAGAIN;
        }
        break;
    case ASYNC_FINISH:
        finished(a, s, ret, now);
        break;
    default:
        soak_fail("%s slot %d: ASYNC_start_job returned %d", a->name, s->idx, r);
        s->state = S_IDLE;
        s->job = NULL;
        free_wctx(s);
        s->idle_until = now + 1000000u;
        break;
    }
}

static void start_job(struct app *a, struct slot *s, uint64_t now)
{
    int i;

    if (s->w == NULL) {
        s->w = ASYNC_WAIT_CTX_new();
        if (s->w == NULL) {
            soak_fail("ASYNC_WAIT_CTX_new failed");
            return;
        }
        s->cb_mode = rnd(&a->rng) & 1;
        atomic_store(&s->cbs, 0);
        s->seen = 0;
        if (s->cb_mode && !ASYNC_WAIT_CTX_set_callback(s->w, on_callback, s))
            soak_fail("ASYNC_WAIT_CTX_set_callback failed");
    }
    s->ncalls = 1 + (int)(rnd(&a->rng) % MAX_CALLS);
    for (i = 0; i < s->ncalls; i++)
        plan_call(&s->plan[i], &a->rng, opt.provider);
    memset(&s->jc, 0, sizeof(s->jc));
    s->job = NULL;
    s->resumes = 0;
    s->eagain = 0;
    s->job_start = now;
    atomic_store(&s->live, 1);
    step(a, s);
}

/* Free a paused job's WAIT_CTX with its call in flight, and forget the job. */
static void abandon(struct slot *s)
{
    /* About 10 a minute over the whole run (each leaks a job and its stack). */
    if (s->state != S_PAUSED || s->jc.in_prov
        || atomic_load(&cnt.abandoned) >= 2 + soak_elapsed_ns() / 6000000000ull)
        return;
    free_wctx(s);
    s->job = NULL; /* leaked by libcrypto, by design: see README */
    s->state = S_IDLE;
    s->idle_until = now_ns() + 1000000u;
    COUNT(abandoned, 1);
}

static void stuck_job(struct app *a, struct slot *s, uint64_t now)
{
    int i;

    fprintf(stderr, "soak: %s slot %d (%s mode): job running for %.1f s (bound %.1f s), "
            "call %d of %d (kind %d), %u resumes, paused %.1f ms ago%s\n",
            a->name, s->idx, s->cb_mode ? "callback" : "fd", (now - s->job_start) / 1e9,
            opt.job_bound_ns / 1e9, s->jc.cur_call, s->ncalls, s->plan[s->jc.cur_call].kind,
            s->resumes, (now - s->paused_at) / 1e6,
            s->cb_mode ? (s->eagain ? ", status EAGAIN" : ", status OK") : "");
    if (s->cb_mode)
        fprintf(stderr, "soak:   callbacks %u, seen %u\n", atomic_load(&s->cbs), s->seen);
    for (i = 0; i < s->nfds; i++)
        fprintf(stderr, "soak:   fd %d readable: %d\n", s->fds[i], fd_readable(s->fds[i], 0));
    soak_fatal("%s: a job did not finish within %.1f s", a->name, opt.job_bound_ns / 1e9);
}

/* ---- the loop -------------------------------------------------------------------- */

struct app *app_new(int id)
{
    struct app *a = calloc(1, sizeof(*a));
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    int i;

    if (a == NULL)
        return NULL;
    a->id = id;
    snprintf(a->name, sizeof(a->name), "app%d", id);
    a->rng = opt.seed * 2654435761u + (uint32_t)id * 40503u + 1;
    a->n = opt.jobs;
    a->slots = calloc((size_t)a->n, sizeof(*a->slots));
    a->epfd = epoll_create1(EPOLL_CLOEXEC);
    a->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    a->schedfd = -1;
    if (a->slots == NULL || a->epfd < 0 || a->efd < 0
        || epoll_ctl(a->epfd, EPOLL_CTL_ADD, a->efd, &ev) != 0) {
        app_free(a);
        return NULL;
    }
    for (i = 0; i < a->n; i++) {
        a->slots[i].app = a;
        a->slots[i].idx = i;
    }
    return a;
}

void app_free(struct app *a)
{
    if (a == NULL)
        return;
    if (a->epfd >= 0)
        close(a->epfd);
    if (a->efd >= 0)
        close(a->efd);
    free(a->slots);
    free(a);
}

void *app_main(void *arg)
{
    struct app *a = arg;
    struct epoll_event evs[64];
    uint64_t last_bound_check = 0;
    int i;

    soak_role = a->name;
    this_app = a;
    a->tid = pthread_self();
    a->beat = beat_new(a->name);
    prov_app_enter(&a->lib_gen);
    a->schedfd = open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC);
    for (;;) {
        uint64_t now = now_ns();
        int paused = 0, n, timeout = 1, stopping = atomic_load(&soak_stop);

        a->rq_at_iter = schedstat_wait_ns(a->schedfd);
        prov_app_tick(&a->lib_gen);
        beat_state(a->beat, stopping ? "finishing its paused jobs" : "running jobs");
        /* Start jobs on idle slots. */
        for (i = 0; i < a->n; i++) {
            struct slot *s = &a->slots[i];

            if (s->state == S_IDLE && !stopping && s->idle_until <= now)
                start_job(a, s, now);
            if (s->state == S_PAUSED)
                paused++;
        }
        if (stopping && paused == 0)
            break;
        /* Now and then a call outside any job: it runs inline. */
        if (rnd(&a->rng) % 64 == 0) {
            struct wargs w = {.in = rnd(&a->rng)};
            acore_trace t;
            int r = acore_call(work, &w, 0, &t);

            COUNT(outside_calls, 1);
            if (r != mix_of(w.in) || t.offloaded || w.ran_on_worker)
                soak_fail("%s: a call outside a job: got %d want %d, offloaded %d", a->name, r,
                          mix_of(w.in), t.offloaded);
        }

        n = epoll_wait(a->epfd, evs, 64, timeout);
        if (n < 0 && errno != EINTR)
            soak_fail("%s: epoll_wait: %s", a->name, strerror(errno));
        for (i = 0; i < n; i++) {
            struct slot *s = evs[i].data.ptr;

            if (s == NULL) {
                uint64_t v;

                while (read(a->efd, &v, sizeof(v)) > 0)
                    ;
                continue;
            }
            if (s->state == S_PAUSED) {
                step(a, s);
                continue;
            }
            /* Its job has finished (perhaps earlier in this batch: look again). Readable
             * now is a signal that outlived its call. */
            {
                int k, stale = 0;

                for (k = 0; k < s->nfds; k++)
                    stale |= fd_readable(s->fds[k], 0);
                COUNT(stale_checks, 1);
                if (stale) {
                    soak_fail("%s slot %d: fd readable %.2f ms after its job finished", a->name,
                              s->idx, (now_ns() - s->finished_at) / 1e6);
                    free_wctx(s); /* out of the epoll set, or the loop spins */
                }
            }
        }
        now = now_ns();
        /* Callback mode: resume on a new callback; an EAGAIN pause about 1 ms later. */
        for (i = 0; i < a->n; i++) {
            struct slot *s = &a->slots[i];

            if (s->state != S_PAUSED || !s->cb_mode)
                continue;
            if (atomic_load(&s->cbs) != s->seen) {
                step(a, s);
            } else if (s->eagain && now - s->paused_at >= 1000000u) {
                COUNT(eagain_resumes, 1);
                step(a, s);
            }
        }
        /* Early resumes at random, looking at nothing. */
        if (rnd(&a->rng) % 3 == 0) {
            struct slot *s = &a->slots[rnd(&a->rng) % (uint32_t)a->n];

            if (s->state == S_PAUSED) {
                COUNT(early_resumes, 1);
                step(a, s);
            }
        }
        if (opt.abandon && !stopping && rnd(&a->rng) % 256 == 0)
            abandon(&a->slots[rnd(&a->rng) % (uint32_t)a->n]);
        now = now_ns();
        if (now - last_bound_check > 50000000u) {
            last_bound_check = now;
            for (i = 0; i < a->n; i++) {
                struct slot *s = &a->slots[i];

                if (s->state == S_PAUSED && now - s->job_start > opt.job_bound_ns)
                    stuck_job(a, s, now);
            }
        }
    }
    for (i = 0; i < a->n; i++)
        if (a->slots[i].w != NULL)
            free_wctx(&a->slots[i]);
    if (a->schedfd >= 0)
        close(a->schedfd);
    beat_off(a->beat);
    ASYNC_cleanup_thread();
    prov_app_leave();
    return NULL;
}
