/*
 * The emulated device (offload/emu.c) under the pool and async_core, no provider.
 *
 *  latency_holds_no_worker: 2,000 requests with 50 ms latency on two workers all
 *      complete in well under 2,000 x 50 ms / 2, none before its latency, each once.
 *  ring_refuses_then_wakes: ring 4: the fifth submit is refused, its waiter registers
 *      (not RETRY: the ring is full) and is woken exactly once when a slot frees.
 *  injected_refusal_wakes: refuse rate 1 with an empty queue: the waiter is registered
 *      (never RETRY, which would hide the refusal) and the timer thread wakes it once.
 *  jobs_through_refusals: 300 jobs (fd mode, then callback mode) through ring 8, 30%
 *      injected refusals and 1-3 ms latency, the application resuming a job only when
 *      its fd is readable (or its callback came): every job finishes with the right
 *      result. A lost wake-up leaves a job paused forever and fails the test.
 *  failure_on_callers_queue: fail rate 1: run() is never called, done() gets
 *      OFFLOAD_FAILED, and acore_call returns 0 with "emulated device failure" on the
 *      caller's queue, in a job and outside one.
 *  inline_waits_latency: outside a job the caller waits out the latency.
 *  stop_completes_parked: requests parked for 10 s complete at offload_stop at once.
 *  second_start_must_match: a second offload_start with another emulation: EBUSY.
 *  fork_aborts_parked: a fork child aborts what the parent's timer held and gets a
 *      working emulated pool of its own (not under TSan: see test/core.cmake).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <check.h>
#include <openssl/async.h>
#include <openssl/err.h>

#include "async_core/acore.h"
#include "offload/offload.h"
#include "util.h"

#define MS 1000000ull

static int under_tsan(void)
{
    const char *v = getenv("AP_UNDER_TSAN");

    return v != NULL && *v != '\0' && *v != '0';
}

/* A raw request: counts run() and done() calls and when done came. */
struct rreq {
    offload_req req;
    atomic_int runs, dones, how;
    uint64_t submitted_ns;
    _Atomic uint64_t done_ns;
};

static void rreq_run(offload_req *r)
{
    struct rreq *q = (struct rreq *)r;

    atomic_fetch_add(&q->runs, 1);
}

static atomic_int total_done;

static void rreq_done(offload_req *r, int how)
{
    struct rreq *q = (struct rreq *)r;

    atomic_store(&q->how, how);
    atomic_store(&q->done_ns, now_ns());
    atomic_fetch_add(&q->dones, 1);
    atomic_fetch_add(&total_done, 1);
}

static void rreq_init(struct rreq *q)
{
    memset(q, 0, sizeof(*q));
    q->req.run = rreq_run;
    q->req.done = rreq_done;
    q->req.emu_class = 1;
}

static int wait_total(int n, int timeout_ms)
{
    uint64_t end = now_ns() + (uint64_t)timeout_ms * MS;

    while (atomic_load(&total_done) < n) {
        if (now_ns() > end)
            return 0;
        sleep_us(1000);
    }
    return 1;
}

static void start_emu(unsigned workers, const offload_emu_config *e)
{
    offload_config c = {.workers = workers, .capacity = 4096, .emu = e};

    ck_assert_int_eq(offload_start(&c), 1);
}

/* ---- latency does not hold a worker ------------------------------------------------ */

START_TEST(test_latency_holds_no_worker)
{
    enum { N = 2000 };
    offload_emu_config e = {0};
    struct rreq *q = calloc(N, sizeof(*q));
    offload_emu_stats st;
    uint64_t t0;
    int i;

    ck_assert_ptr_nonnull(q);
    e.cls[1].lat.fixed_ns = 50 * MS;
    start_emu(2, &e);
    t0 = now_ns();
    for (i = 0; i < N; i++) {
        rreq_init(&q[i]);
        q[i].submitted_ns = now_ns();
        ck_assert_int_eq(offload_submit(&q[i].req), OFFLOAD_OK);
    }
    /* Held workers would need N x 50 ms / 2 = 50 s. */
    ck_assert_msg(wait_total(N, 20000), "only %d of %d done", atomic_load(&total_done), N);
    printf("latency_holds_no_worker: %d requests at 50 ms on 2 workers in %.0f ms\n", N,
           (double)(now_ns() - t0) / MS);
    for (i = 0; i < N; i++) {
        ck_assert_int_eq(atomic_load(&q[i].runs), 1);
        ck_assert_int_eq(atomic_load(&q[i].dones), 1);
        ck_assert_int_eq(atomic_load(&q[i].how), OFFLOAD_RAN);
        ck_assert_msg(atomic_load(&q[i].done_ns) >= q[i].submitted_ns + 50 * MS,
                      "request %d done %.3f ms after submit", i,
                      (double)(atomic_load(&q[i].done_ns) - q[i].submitted_ns) / MS);
    }
    /* A request whose own trip through the queue outlasted its 50 ms (a sanitizer, a
     * busy machine) completes without waiting on the timer: not all need be counted. */
    offload_emu_get_stats(&st);
    ck_assert_uint_ge(st.delayed, 1);
    ck_assert_uint_le(st.delayed, N);
    ck_assert_uint_eq(st.ring_used, 0);
    offload_stop();
    free(q);
}
END_TEST

/* ---- ring ------------------------------------------------------------------------- */

static atomic_int wakes;

static int count_wake(offload_waiter *w, int aborted)
{
    (void)w;
    (void)aborted;
    atomic_fetch_add(&wakes, 1);
    return 1;
}

START_TEST(test_ring_refuses_then_wakes)
{
    offload_emu_config e = {0};
    struct rreq q[6];
    offload_waiter w = {.wake = count_wake};
    offload_emu_stats st;
    int i;

    e.ring = 4;
    /* Long enough that no request completes before the fifth is refused and the waiter
     * added: at 100 ms, a TSan run in CI lost the core that long between the submits. */
    e.cls[1].lat.fixed_ns = 1500 * MS;
    start_emu(2, &e);
    for (i = 0; i < 4; i++) {
        rreq_init(&q[i]);
        ck_assert_int_eq(offload_submit(&q[i].req), OFFLOAD_OK);
    }
    rreq_init(&q[4]);
    ck_assert_int_eq(offload_submit(&q[4].req), OFFLOAD_FULL);
    ck_assert_int_eq(offload_wait_space(&w), OFFLOAD_WAIT_ADDED);
    ck_assert_int_eq(atomic_load(&wakes), 0);
    ck_assert_msg(wait_total(4, 10000), "ring requests not done");
    for (i = 0; i < 200 && atomic_load(&wakes) == 0; i++)
        sleep_us(1000);
    sleep_us(20000); /* a second wake-up would come now */
    ck_assert_int_eq(atomic_load(&wakes), 1);
    ck_assert_int_eq(offload_cancel_wait(&w), 0);
    ck_assert_int_eq(offload_submit(&q[4].req), OFFLOAD_OK);
    ck_assert(wait_total(5, 10000));
    offload_emu_get_stats(&st);
    ck_assert_uint_eq(st.ring_refused, 1);
    offload_stop();
}
END_TEST

START_TEST(test_injected_refusal_wakes)
{
    offload_emu_config e = {0};
    struct rreq q;
    offload_waiter w = {.wake = count_wake};
    offload_emu_stats st;
    int i;

    e.cls[1].refuse = 1;
    start_emu(2, &e);
    rreq_init(&q);
    ck_assert_int_eq(offload_submit(&q.req), OFFLOAD_FULL);
    /* The queue is empty: a plain full queue would answer RETRY here. */
    ck_assert_int_eq(offload_wait_space(&w), OFFLOAD_WAIT_ADDED);
    for (i = 0; i < 2000 && atomic_load(&wakes) == 0; i++)
        sleep_us(1000);
    sleep_us(20000);
    ck_assert_int_eq(atomic_load(&wakes), 1);
    ck_assert_int_eq(offload_cancel_wait(&w), 0);
    /* Class 0 is never emulated. */
    rreq_init(&q);
    q.req.emu_class = 0;
    ck_assert_int_eq(offload_submit(&q.req), OFFLOAD_OK);
    ck_assert(wait_total(1, 5000));
    offload_emu_get_stats(&st);
    ck_assert_uint_eq(st.refused, 1);
    offload_stop();
}
END_TEST

/* ---- many jobs through refusals, resumed only when signalled ------------------------- */

#define NJOBS 300

struct ejob {
    ASYNC_JOB *job;
    ASYNC_WAIT_CTX *w;
    uint32_t in;
    int got, ret, finished;
    atomic_int signalled; /* callback mode */
};

static int emu_call(void *arg)
{
    return mix(*(uint32_t *)arg);
}

static int ejob_fn(void *arg)
{
    struct ejob *j = *(struct ejob **)arg;

    j->got = acore_call(emu_call, &j->in, ACORE_CLASS(1), NULL);
    return 1;
}

static int ejob_cb(void *arg)
{
    struct ejob *j = arg;

    atomic_store(&j->signalled, 1);
    return 1;
}

static void run_jobs(int cbmode)
{
    static struct ejob jobs[NJOBS];
    int i, left = NJOBS, rounds = 0;
    uint64_t end = now_ns() + 60000 * MS;

    memset(jobs, 0, sizeof(jobs));
    for (i = 0; i < NJOBS; i++) {
        struct ejob *j = &jobs[i];

        j->in = (uint32_t)i * 7919u;
        j->w = ASYNC_WAIT_CTX_new();
        ck_assert_ptr_nonnull(j->w);
        if (cbmode)
            ck_assert(ASYNC_WAIT_CTX_set_callback(j->w, ejob_cb, j));
        atomic_store(&j->signalled, 1); /* start it */
    }
    while (left > 0) {
        struct pollfd p[NJOBS];
        int idx[NJOBS], np = 0;

        ck_assert_msg(now_ns() < end, "%d jobs never finished (a lost wake-up)", left);
        for (i = 0; i < NJOBS; i++) {
            struct ejob *j = &jobs[i];
            int run;

            if (j->finished)
                continue;
            if (j->job == NULL || cbmode) {
                run = atomic_exchange(&j->signalled, 0);
                /* Callback mode, EAGAIN: the contract lets us resume when we like;
                 * we do not, and rely on the callback a freed slot brings. */
            } else {
                int fd = wctx_fd(j->w, NULL);

                ck_assert_int_ge(fd, 0);
                p[np].fd = fd;
                p[np].events = POLLIN;
                idx[np++] = i;
                continue;
            }
            if (!run)
                continue;
            {
                struct ejob *self = j;
                int r = ASYNC_start_job(&j->job, j->w, &j->ret, ejob_fn, &self, sizeof(self));

                ck_assert_int_ne(r, ASYNC_ERR);
                ck_assert_int_ne(r, ASYNC_NO_JOBS);
                if (r == ASYNC_FINISH) {
                    j->finished = 1;
                    left--;
                }
            }
        }
        if (np > 0) {
            int n = poll(p, (nfds_t)np, 10);
            int k;

            for (k = 0; n > 0 && k < np; k++) {
                struct ejob *j = &jobs[idx[k]];
                struct ejob *self = j;
                int r;

                if (!(p[k].revents & POLLIN))
                    continue;
                r = ASYNC_start_job(&j->job, j->w, &j->ret, ejob_fn, &self, sizeof(self));
                ck_assert_int_ne(r, ASYNC_ERR);
                if (r == ASYNC_FINISH) {
                    j->finished = 1;
                    left--;
                }
            }
        } else if (left > 0) {
            sleep_us(200);
        }
        rounds++;
    }
    for (i = 0; i < NJOBS; i++) {
        ck_assert_int_eq(jobs[i].got, mix(jobs[i].in));
        ASYNC_WAIT_CTX_free(jobs[i].w);
    }
}

START_TEST(test_jobs_through_refusals)
{
    offload_emu_config e = {0};
    offload_emu_stats st;
    int cbmode;

    e.ring = 8;
    e.seed = 3;
    e.cls[1].refuse = 0.3;
    e.cls[1].lat.fixed_ns = 2 * MS;
    e.cls[1].lat.jitter_ns = 1 * MS;
    start_emu(2, &e);
    for (cbmode = 0; cbmode <= 1; cbmode++)
        run_jobs(cbmode);
    offload_emu_get_stats(&st);
    printf("jobs_through_refusals: refused=%llu ring_refused=%llu delayed=%llu\n",
           (unsigned long long)st.refused, (unsigned long long)st.ring_refused,
           (unsigned long long)st.delayed);
    ck_assert_uint_gt(st.refused, 0);
    ck_assert_uint_gt(st.ring_refused, 0);
    ck_assert_uint_eq(st.ring_used, 0);
    offload_stop();
}
END_TEST

/* ---- failures ----------------------------------------------------------------------- */

static int fail_job(void *arg)
{
    int *got = *(int **)arg;

    *got = acore_call(emu_call, got, ACORE_CLASS(1), NULL);
    return 1;
}

static int has_emulated_failure(void)
{
    const char *data;
    int flags, found = 0;

    while (ERR_get_error_all(NULL, NULL, NULL, &data, &flags) != 0)
        if ((flags & ERR_TXT_STRING) && strstr(data, "emulated device failure") != NULL)
            found = 1;
    return found;
}

START_TEST(test_failure_on_callers_queue)
{
    offload_emu_config e = {0};
    struct rreq q;
    ASYNC_WAIT_CTX *w = ASYNC_WAIT_CTX_new();
    ASYNC_JOB *job = NULL;
    offload_emu_stats st;
    int got = 12345, *gp = &got, ret, r;

    e.cls[1].fail = 1;
    start_emu(2, &e);
    rreq_init(&q);
    ck_assert_int_eq(offload_submit(&q.req), OFFLOAD_OK);
    ck_assert(wait_total(1, 5000));
    ck_assert_int_eq(atomic_load(&q.runs), 0);
    ck_assert_int_eq(atomic_load(&q.how), OFFLOAD_FAILED);

    ERR_clear_error();
    while ((r = ASYNC_start_job(&job, w, &ret, fail_job, &gp, sizeof(gp))) == ASYNC_PAUSE)
        fd_readable(wctx_fd(w, NULL), 1000);
    ck_assert_int_eq(r, ASYNC_FINISH);
    ck_assert_int_eq(got, 0);
    ck_assert_msg(has_emulated_failure(), "no emulated failure on the caller's queue (job)");

    ck_assert_int_eq(acore_call(emu_call, &got, ACORE_CLASS(1), NULL), 0);
    ck_assert_msg(has_emulated_failure(), "no emulated failure on the caller's queue (inline)");
    ck_assert_int_eq(acore_call(emu_call, &got, ACORE_CLASS(1) | ACORE_BLOCK, NULL), 0);
    ck_assert_msg(has_emulated_failure(), "no emulated failure on the caller's queue (block)");
    offload_emu_get_stats(&st);
    ck_assert_uint_eq(st.faults, 4);
    ASYNC_WAIT_CTX_free(w);
    offload_stop();
}
END_TEST

START_TEST(test_inline_waits_latency)
{
    offload_emu_config e = {0};
    offload_emu_stats st;
    uint32_t in = 5;
    uint64_t t0;

    e.cls[1].lat.fixed_ns = 30 * MS;
    start_emu(2, &e);
    t0 = now_ns();
    ck_assert_int_eq(acore_call(emu_call, &in, ACORE_CLASS(1), NULL), mix(in));
    ck_assert_uint_ge(now_ns() - t0, 30 * MS);
    t0 = now_ns();
    ck_assert_int_eq(acore_call(emu_call, &in, ACORE_CLASS(1) | ACORE_BLOCK, NULL), mix(in));
    ck_assert_uint_ge(now_ns() - t0, 30 * MS);
    /* Class 0 does not wait. */
    t0 = now_ns();
    ck_assert_int_eq(acore_call(emu_call, &in, 0, NULL), mix(in));
    /* The inline call waited; the blocking one did unless its trip to a worker alone
     * outlasted the 30 ms. */
    offload_emu_get_stats(&st);
    ck_assert_uint_ge(st.delayed, 1);
    ck_assert_uint_le(st.delayed, 2);
    offload_stop();
}
END_TEST

/* ---- lifecycle ---------------------------------------------------------------------- */

START_TEST(test_stop_completes_parked)
{
    enum { N = 50 };
    offload_emu_config e = {0};
    struct rreq q[N];
    uint64_t t0;
    int i;

    e.cls[1].lat.fixed_ns = 10000 * MS;
    start_emu(2, &e);
    for (i = 0; i < N; i++) {
        rreq_init(&q[i]);
        ck_assert_int_eq(offload_submit(&q[i].req), OFFLOAD_OK);
    }
    t0 = now_ns();
    offload_stop();
    ck_assert_uint_lt(now_ns() - t0, 5000 * MS);
    for (i = 0; i < N; i++) {
        ck_assert_int_eq(atomic_load(&q[i].dones), 1);
        ck_assert_int_eq(atomic_load(&q[i].runs), 1);
    }
    /* And a new pool starts without emulation. */
    start_emu(1, NULL);
    rreq_init(&q[0]);
    atomic_store(&total_done, 0);
    ck_assert_int_eq(offload_submit(&q[0].req), OFFLOAD_OK);
    ck_assert(wait_total(1, 5000));
    offload_stop();
}
END_TEST

START_TEST(test_second_start_must_match)
{
    offload_emu_config a = {0}, b = {0};
    offload_config c = {.workers = 1};

    a.cls[2].lat.fixed_ns = MS;
    b.cls[2].lat.fixed_ns = 2 * MS;
    start_emu(1, &a);
    c.emu = &b;
    errno = 0;
    ck_assert_int_eq(offload_start(&c), 0);
    ck_assert_int_eq(errno, EBUSY);
    c.emu = NULL;
    ck_assert_int_eq(offload_start(&c), 0);
    c.emu = &a;
    ck_assert_int_eq(offload_start(&c), 1);
    offload_stop();
    offload_stop();
}
END_TEST

START_TEST(test_fork_aborts_parked)
{
    enum { N = 20 };
    offload_emu_config e = {0};
    struct rreq q[N], cq;
    pid_t pid;
    int i, status;

    if (under_tsan())
        return; /* TSan cannot run a child that starts threads (test/core.cmake) */
    e.cls[1].lat.fixed_ns = 10000 * MS;
    start_emu(2, &e);
    for (i = 0; i < N; i++) {
        rreq_init(&q[i]);
        ck_assert_int_eq(offload_submit(&q[i].req), OFFLOAD_OK);
    }
    /* Wait until the workers handed them to the timer. */
    for (i = 0; i < 2000; i++) {
        offload_stats st;

        offload_get_stats(&st);
        if (st.depth == 0)
            break;
        sleep_us(1000);
    }
    sleep_us(20000);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int ok = 1;
        offload_emu_config e2 = e;

        for (i = 0; i < N; i++)
            ok &= atomic_load(&q[i].dones) == 1 && atomic_load(&q[i].how) == OFFLOAD_ABORTED;
        /* The child's own device works: short latency now is not possible (the config
         * is the parent's), so check a failure-free, 10 s request is parked and then
         * completed by stop. */
        (void)e2;
        rreq_init(&cq);
        ok &= offload_submit(&cq.req) == OFFLOAD_OK;
        offload_stop();
        ok &= atomic_load(&cq.dones) == 1 && atomic_load(&cq.runs) == 1;
        _exit(ok ? 0 : 1);
    }
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child failed");
    for (i = 0; i < N; i++)
        ck_assert_int_eq(atomic_load(&q[i].dones), 0); /* the parent's are still parked */
    offload_stop();
    for (i = 0; i < N; i++)
        ck_assert_int_eq(atomic_load(&q[i].how), OFFLOAD_RAN);
}
END_TEST

int main(void)
{
    const TTest *const tests[] = {
        test_latency_holds_no_worker, test_ring_refuses_then_wakes,
        test_injected_refusal_wakes, test_jobs_through_refusals,
        test_failure_on_callers_queue, test_inline_waits_latency,
        test_stop_completes_parked, test_second_start_must_match,
        test_fork_aborts_parked,
    };

    return run_core_suite("emu", tests, sizeof(tests) / sizeof(tests[0]));
}
