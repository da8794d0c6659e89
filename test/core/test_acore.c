/*
 * async_core over real libcrypto ASYNC jobs: many jobs with scrambled completion, the
 * eventfd contract, callback mode and its statuses, a full queue, early resumes, error
 * propagation, and the policy outside a job.
 *
 * Each test starts and stops its own pool: Check forks per test, and the pool is a
 * process-wide static whose counters the tests read as deltas.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <check.h>
#include <openssl/async.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include "async_core/acore.h"
#include "check_util.h"
#include "offload/offload.h"
#include "util.h"

#define STALL_MS 20000 /* no progress for this long means a lost wake-up */

/* Start the pool with cfg (NULL: defaults), plus the spin window that the ctest run
 * core_acore_spin sets (AP_TEST_SPIN_US): the same contract must hold with workers
 * that take requests without a wake-up. */
static int start_pool(const offload_config *cfg)
{
    offload_config c = {0};
    const char *spin = getenv("AP_TEST_SPIN_US");

    if (cfg != NULL)
        c = *cfg;
    if (spin != NULL)
        c.spin_us = (unsigned)atoi(spin);
    return offload_start(&c);
}

/* ---- offloaded functions --------------------------------------------------------- */

/* Sleeps a pseudo-random 1..20 µs so that workers finish out of submission order. */
static int scrambled(void *arg)
{
    static _Thread_local uint32_t rng;
    uint32_t in = *(const uint32_t *)arg;

    if (rng == 0)
        rng = (uint32_t)(uintptr_t)&rng | 1u;
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    sleep_us(1 + rng % 20);
    return mix(in);
}

/* ---- test 1: many jobs, fd mode --------------------------------------------------- */

#define T1_OPS 3

struct t1_job {
    int id;
    int got[T1_OPS];
    int offloaded;
};

/* Runs on the 32 KiB fibre stack: keep it small. */
static int t1_job_fn(void *p)
{
    struct t1_job *j = *(struct t1_job **)p;
    acore_trace tr;
    int k;

    for (k = 0; k < T1_OPS; k++) {
        uint32_t in = (uint32_t)(j->id * T1_OPS + k);

        j->got[k] = acore_call(scrambled, &in, 0, &tr);
        j->offloaded += tr.offloaded;
    }
    return j->id + 1;
}

struct slot {
    ASYNC_WAIT_CTX *w;
    ASYNC_JOB *job;
    void *arg;
    int fd;
    int pauses;
};

START_TEST(test_many_jobs_fd_mode)
{
    enum { INFLIGHT = 64 };
    int njobs = scaled(10000, 10);
    struct t1_job *jobs = calloc((size_t)njobs, sizeof(*jobs));
    int *finish_order = calloc((size_t)njobs, sizeof(int));
    struct slot slots[INFLIGHT];
    struct epoll_event evs[INFLIGHT];
    offload_config cfg = {.workers = 2};
    offload_stats s0, s1;
    int ep, i, next = 0, finished = 0, inversions = 0, ret;
    long offloaded = 0;

    ck_assert_ptr_nonnull(jobs);
    ck_assert_int_eq(start_pool(&cfg), 1);
    offload_get_stats(&s0);
    ep = epoll_create1(EPOLL_CLOEXEC);
    ck_assert_int_ge(ep, 0);
    memset(slots, 0, sizeof(slots));

    for (i = 0; i < INFLIGHT; i++) {
        slots[i].w = ASYNC_WAIT_CTX_new();
        slots[i].fd = -1;
        ck_assert_ptr_nonnull(slots[i].w);
    }

    /* Launch or resume the job in slot s and account for the outcome. */
#define STEP(s)                                                                            \
    do {                                                                                   \
        struct slot *sl_ = &slots[s];                                                      \
        int r_ = ASYNC_start_job(&sl_->job, sl_->w, &ret, t1_job_fn, &sl_->arg,            \
                                 sizeof(sl_->arg));                                        \
        if (r_ == ASYNC_PAUSE) {                                                           \
            size_t cnt_ = 0;                                                               \
            int fd_ = wctx_fd(sl_->w, &cnt_);                                              \
            REQUIRE(cnt_ == 1, "WAIT_CTX has %zu fds", cnt_);                             \
            REQUIRE(ERR_peek_error() == 0, "paused with errors queued");                  \
            if (sl_->fd < 0) {                                                             \
                struct epoll_event ev_ = {.events = EPOLLIN, .data.u32 = (uint32_t)(s)};   \
                sl_->fd = fd_;                                                             \
                REQUIRE(epoll_ctl(ep, EPOLL_CTL_ADD, fd_, &ev_) == 0, "epoll_ctl");      \
            } else {                                                                       \
                REQUIRE(fd_ == sl_->fd, "fd changed from %d to %d", sl_->fd, fd_);         \
            }                                                                              \
        } else {                                                                           \
            struct t1_job *j_ = sl_->arg;                                                  \
            REQUIRE(r_ == ASYNC_FINISH, "ASYNC_start_job returned %d", r_);              \
            REQUIRE(ret == j_->id + 1, "job %d returned %d", j_->id, ret);                \
            finish_order[j_->id] = finished++;                                             \
            sl_->job = NULL;                                                               \
            sl_->arg = NULL;                                                               \
        }                                                                                  \
    } while (0)

    for (i = 0; i < INFLIGHT && next < njobs; i++) {
        jobs[next].id = next;
        slots[i].arg = &jobs[next++];
        STEP(i);
        /* A finished job frees its slot; refill before moving on. */
        while (slots[i].job == NULL && next < njobs) {
            jobs[next].id = next;
            slots[i].arg = &jobs[next++];
            STEP(i);
        }
    }
    while (finished < njobs) {
        int n = epoll_wait(ep, evs, INFLIGHT, STALL_MS), k;

        REQUIRE(n > 0, "no completion for %d ms (%d of %d jobs finished)", STALL_MS,
                finished, njobs);
        for (k = 0; k < n; k++) {
            int s = (int)evs[k].data.u32;

            if (slots[s].job == NULL)
                continue; /* stale wake-up for a slot with no job: never resumed */
            STEP(s);
            while (slots[s].job == NULL && next < njobs) {
                jobs[next].id = next;
                slots[s].arg = &jobs[next++];
                STEP(s);
            }
        }
    }
#undef STEP

    for (i = 0; i < njobs; i++) {
        int k;

        for (k = 0; k < T1_OPS; k++)
            REQUIRE(jobs[i].got[k] == mix((uint32_t)(i * T1_OPS + k)),
                    "job %d op %d: got %d", i, k, jobs[i].got[k]);
        offloaded += jobs[i].offloaded;
        if (i > 0 && finish_order[i - 1] > finish_order[i])
            inversions++;
    }
    offload_get_stats(&s1);
    ck_assert_int_eq(finished, njobs);
    ck_assert_int_eq(offloaded, (long)njobs * T1_OPS);
    ck_assert_uint_eq(s1.completed - s0.completed, (uint64_t)njobs * T1_OPS);
    ck_assert_uint_eq(s1.submitted - s0.submitted, (uint64_t)njobs * T1_OPS);
    /* The point of the sleeps: jobs must not simply finish in launch order. */
    ck_assert_int_gt(inversions, 0);

    for (i = 0; i < INFLIGHT; i++)
        ASYNC_WAIT_CTX_free(slots[i].w);
    close(ep);
    free(jobs);
    free(finish_order);
    offload_stop();
    ASYNC_cleanup_thread();
}
END_TEST

/* ---- test 2: callback mode -------------------------------------------------------- */

static int app_efd = -1;

struct cb_slot {
    struct slot s;
    /* Callbacks seen, bumped on a worker; the loop resumes the job when it grows. Its
     * increment is ordered after the job's done flag by async_core (the callback runs
     * after the flag's seq_cst store), so a resume after seeing it finds the call done. */
    atomic_int cbs;
    int seen;
    int statuses[64]; /* ASYNC_WAIT_CTX_get_status at each pause */
};

static int on_done(void *arg)
{
    struct cb_slot *cs = arg;
    uint64_t one = 1;

    atomic_fetch_add(&cs->cbs, 1);
    return write(app_efd, &one, sizeof(one)) == sizeof(one);
}

#define T2_OPS 2

struct t2_job {
    int id;
    int got[T2_OPS];
    int offloaded;
};

static int t2_job_fn(void *p)
{
    struct t2_job *j = *(struct t2_job **)p;
    acore_trace tr;
    int k;

    for (k = 0; k < T2_OPS; k++) {
        uint32_t in = (uint32_t)(j->id * 7919 + k);

        j->got[k] = acore_call(scrambled, &in, 0, &tr);
        j->offloaded += tr.offloaded;
    }
    return 1;
}

START_TEST(test_callback_mode)
{
    enum { INFLIGHT = 32 };
    int njobs = scaled(2000, 10);
    struct t2_job *jobs = calloc((size_t)njobs, sizeof(*jobs));
    struct cb_slot *cs = calloc(INFLIGHT, sizeof(*cs));
    offload_config cfg = {.workers = 2};
    offload_stats s0, s1;
    int i, next = 0, finished = 0, ret;
    long offloaded = 0, cbs = 0, total_pauses = 0;

    app_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    ck_assert_int_ge(app_efd, 0);
    ck_assert_int_eq(start_pool(&cfg), 1);
    offload_get_stats(&s0);
    for (i = 0; i < INFLIGHT; i++) {
        cs[i].s.w = ASYNC_WAIT_CTX_new();
        cs[i].s.fd = -1;
        ck_assert_int_eq(ASYNC_WAIT_CTX_set_callback(cs[i].s.w, on_done, &cs[i]), 1);
    }

#define STEP(i_)                                                                           \
    do {                                                                                   \
        struct cb_slot *c_ = &cs[i_];                                                      \
        int r_ = ASYNC_start_job(&c_->s.job, c_->s.w, &ret, t2_job_fn, &c_->s.arg,         \
                                 sizeof(c_->s.arg));                                       \
        if (r_ == ASYNC_PAUSE) {                                                           \
            size_t cnt_ = 0;                                                               \
            int fd_ = wctx_fd(c_->s.w, &cnt_);                                             \
            REQUIRE(cnt_ == 1, "callback-mode WAIT_CTX has %zu fds", cnt_);               \
            if (c_->s.fd < 0)                                                              \
                c_->s.fd = fd_;                                                            \
            REQUIRE(fd_ == c_->s.fd, "fd changed");                                        \
            REQUIRE(!fd_readable(fd_, 0), "eventfd written in callback mode");            \
            REQUIRE(ASYNC_WAIT_CTX_get_status(c_->s.w) == ASYNC_STATUS_OK,                 \
                    "status %d after a normal submit", ASYNC_WAIT_CTX_get_status(c_->s.w)); \
            c_->s.pauses++;                                                                \
            total_pauses++;                                                                \
        } else {                                                                           \
            struct t2_job *j_ = c_->s.arg;                                                 \
            REQUIRE(r_ == ASYNC_FINISH && ret == 1, "job failed: %d/%d", r_, ret);       \
            /* Resumed once per callback, never without one: one pause per op, and one   \
             * more whenever a resume found the op's callback still running (the job    \
             * pauses again and gets one more callback; see cb_may_finish). That can    \
             * repeat as long as the worker in the callback has lost its core (seen: 7  \
             * and 18 pauses for 2 ops on a loaded machine), so the bound is loose: it   \
             * catches a job that re-pauses without end, not a slow callback. */         \
            REQUIRE(c_->s.pauses >= T2_OPS && c_->s.pauses <= 64 * T2_OPS,                \
                    "job %d paused %d times", j_->id, c_->s.pauses);                      \
            c_->s.pauses = 0;                                                              \
            c_->s.job = NULL;                                                              \
            finished++;                                                                    \
        }                                                                                  \
    } while (0)

    for (i = 0; i < INFLIGHT && next < njobs; i++) {
        jobs[next].id = next;
        cs[i].s.arg = &jobs[next++];
        STEP(i);
    }
    while (finished < njobs) {
        uint64_t v;

        REQUIRE(fd_readable(app_efd, STALL_MS), "no callback for %d ms", STALL_MS);
        REQUIRE(read(app_efd, &v, sizeof(v)) == sizeof(v), "read app_efd");
        for (i = 0; i < INFLIGHT; i++) {
            int c = atomic_load(&cs[i].cbs);

            if (c == cs[i].seen || cs[i].s.job == NULL)
                continue;
            REQUIRE(c == cs[i].seen + 1, "slot %d: %d callbacks for one completion", i,
                    c - cs[i].seen);
            cs[i].seen = c;
            STEP(i);
            if (cs[i].s.job == NULL && next < njobs) {
                jobs[next].id = next;
                cs[i].s.arg = &jobs[next++];
                STEP(i);
            }
        }
    }
#undef STEP

    for (i = 0; i < njobs; i++) {
        int k;

        for (k = 0; k < T2_OPS; k++)
            REQUIRE(jobs[i].got[k] == mix((uint32_t)(i * 7919 + k)), "job %d op %d", i, k);
        offloaded += jobs[i].offloaded;
    }
    for (i = 0; i < INFLIGHT; i++) {
        cbs += atomic_load(&cs[i].cbs);
        ck_assert(!fd_readable(cs[i].s.fd, 0));
        ASYNC_WAIT_CTX_free(cs[i].s.w);
    }
    offload_get_stats(&s1);
    ck_assert_int_eq(offloaded, (long)njobs * T2_OPS);
    ck_assert_int_eq(cbs, total_pauses); /* every pause got its callback, and no more */
    ck_assert_uint_eq(s1.completed - s0.completed, (uint64_t)njobs * T2_OPS);
    ck_assert_uint_eq(s1.rejected_full - s0.rejected_full, 0);
    offload_stop();
    close(app_efd);
    free(jobs);
    free(cs);
    ASYNC_cleanup_thread();
}
END_TEST

/* A full queue in callback mode: ASYNC_STATUS_EAGAIN, then a callback when a slot
 * frees, then ASYNC_STATUS_OK for the resubmit and a callback for its completion. */

START_TEST(test_callback_eagain)
{
    struct cb_slot cs[3];
    struct gjob jobs[3];
    struct gate *g = gate_new();
    offload_config cfg = {.workers = 1, .capacity = 1};
    offload_stats s0, s1, st;
    int i, ret, r, live = 3;

    memset(cs, 0, sizeof(cs));
    app_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    ck_assert_int_eq(start_pool(&cfg), 1);
    offload_get_stats(&s0);
    for (i = 0; i < 3; i++) {
        jobs[i] = (struct gjob){.g = g, .in = (uint32_t)(100 + i)};
        cs[i].s.arg = &jobs[i];
        cs[i].s.w = ASYNC_WAIT_CTX_new();
        ck_assert_int_eq(ASYNC_WAIT_CTX_set_callback(cs[i].s.w, on_done, &cs[i]), 1);
    }

    /* A: taken by the only worker, which blocks on the gate. */
    r = ASYNC_start_job(&cs[0].s.job, cs[0].s.w, &ret, gjob_fn, &cs[0].s.arg,
                        sizeof(void *));
    ck_assert_int_eq(r, ASYNC_PAUSE);
    ck_assert_int_eq(ASYNC_WAIT_CTX_get_status(cs[0].s.w), ASYNC_STATUS_OK);
    ck_assert(gate_await_waiters(g, 1, 10000));
    /* B: queued (depth 1 == capacity). */
    r = ASYNC_start_job(&cs[1].s.job, cs[1].s.w, &ret, gjob_fn, &cs[1].s.arg,
                        sizeof(void *));
    ck_assert_int_eq(r, ASYNC_PAUSE);
    ck_assert_int_eq(ASYNC_WAIT_CTX_get_status(cs[1].s.w), ASYNC_STATUS_OK);
    offload_get_stats(&st);
    ck_assert_uint_eq(st.depth, 1);
    /* C: the queue is full. */
    r = ASYNC_start_job(&cs[2].s.job, cs[2].s.w, &ret, gjob_fn, &cs[2].s.arg,
                        sizeof(void *));
    ck_assert_int_eq(r, ASYNC_PAUSE);
    ck_assert_int_eq(ASYNC_WAIT_CTX_get_status(cs[2].s.w), ASYNC_STATUS_EAGAIN);
    offload_get_stats(&st);
    ck_assert_uint_eq(st.rejected_full - s0.rejected_full, 1);
    for (i = 0; i < 3; i++) {
        cs[i].statuses[cs[i].s.pauses++] = ASYNC_WAIT_CTX_get_status(cs[i].s.w);
        ck_assert_int_eq(atomic_load(&cs[i].cbs), 0);
    }

    gate_open(g);
    while (live > 0) {
        uint64_t v;

        ck_assert_msg(fd_readable(app_efd, STALL_MS), "no callback");
        ck_assert_int_eq(read(app_efd, &v, sizeof(v)), sizeof(v));
        for (i = 0; i < 3; i++) {
            int c = atomic_load(&cs[i].cbs);

            if (cs[i].s.job == NULL || c == cs[i].seen)
                continue;
            cs[i].seen = c;
            r = ASYNC_start_job(&cs[i].s.job, cs[i].s.w, &ret, gjob_fn, &cs[i].s.arg,
                                sizeof(void *));
            if (r == ASYNC_PAUSE) {
                ck_assert_int_lt(cs[i].s.pauses, 64);
                cs[i].statuses[cs[i].s.pauses++] = ASYNC_WAIT_CTX_get_status(cs[i].s.w);
            } else {
                ck_assert_int_eq(r, ASYNC_FINISH);
                live--;
            }
        }
    }
    for (i = 0; i < 3; i++) {
        ck_assert_int_eq(jobs[i].got, mix(100 + (uint32_t)i));
        ck_assert_int_eq(jobs[i].tr.offloaded, 1);
    }
    /* A and B: one pause, one callback. C: EAGAIN pause, space callback, OK pause,
     * completion callback. Every pause gets exactly one callback; a resume that finds
     * the completion callback still running pauses once more (status OK) and gets
     * one more (cb_may_finish), which a loaded machine makes happen now and then. */
    for (i = 0; i < 3; i++) {
        int k;

        ck_assert_int_eq(atomic_load(&cs[i].cbs), cs[i].s.pauses);
        for (k = i == 2 ? 1 : 0; k < cs[i].s.pauses; k++)
            ck_assert_int_eq(cs[i].statuses[k], ASYNC_STATUS_OK);
    }
    ck_assert_int_ge(cs[0].s.pauses, 1);
    ck_assert_int_ge(cs[1].s.pauses, 1);
    ck_assert_uint_eq(jobs[2].tr.eagain, 1);
    ck_assert_int_ge(cs[2].s.pauses, 2);
    ck_assert_int_eq(cs[2].statuses[0], ASYNC_STATUS_EAGAIN);
    offload_get_stats(&s1);
    ck_assert_uint_eq(s1.completed - s0.completed, 3);
    for (i = 0; i < 3; i++)
        ASYNC_WAIT_CTX_free(cs[i].s.w);
    offload_stop();
    gate_free(g);
    close(app_efd);
    ASYNC_cleanup_thread();
}
END_TEST

/* ---- test 3: queue full, fd mode ---------------------------------------------------- */

static int slow_mix(void *arg)
{
    sleep_us(50);
    return mix(*(const uint32_t *)arg);
}

#define T3_OPS 3

struct t3_job {
    int id;
    int got[T3_OPS];
    int offloaded;
    unsigned eagain;
};

static int t3_job_fn(void *p)
{
    struct t3_job *j = *(struct t3_job **)p;
    acore_trace tr;
    int k;

    for (k = 0; k < T3_OPS; k++) {
        uint32_t in = (uint32_t)(j->id * 31 + k);

        j->got[k] = acore_call(slow_mix, &in, 0, &tr);
        j->offloaded += tr.offloaded;
        j->eagain += tr.eagain;
    }
    return 1;
}

START_TEST(test_queue_full)
{
    enum { NJOBS = 64 };
    struct t3_job jobs[NJOBS];
    struct slot slots[NJOBS];
    struct epoll_event evs[NJOBS];
    offload_config cfg = {.workers = 2, .capacity = 4};
    offload_stats s0, s1;
    int ep = epoll_create1(EPOLL_CLOEXEC), i, ret, live = 0;
    uint64_t eagain = 0;

    memset(jobs, 0, sizeof(jobs));
    memset(slots, 0, sizeof(slots));
    ck_assert_int_eq(start_pool(&cfg), 1);
    offload_get_stats(&s0);
    for (i = 0; i < NJOBS; i++) {
        int r;

        jobs[i].id = i;
        slots[i].arg = &jobs[i];
        slots[i].w = ASYNC_WAIT_CTX_new();
        r = ASYNC_start_job(&slots[i].job, slots[i].w, &ret, t3_job_fn, &slots[i].arg,
                            sizeof(void *));
        ck_assert_int_eq(r, ASYNC_PAUSE);
        {
            size_t cnt = 0;
            struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};

            slots[i].fd = wctx_fd(slots[i].w, &cnt);
            ck_assert_uint_eq(cnt, 1);
            ck_assert_int_eq(epoll_ctl(ep, EPOLL_CTL_ADD, slots[i].fd, &ev), 0);
        }
        live++;
    }
    while (live > 0) {
        int n = epoll_wait(ep, evs, NJOBS, STALL_MS), k;

        REQUIRE(n > 0, "stalled with %d jobs live", live);
        for (k = 0; k < n; k++) {
            struct slot *sl = &slots[evs[k].data.u32];
            int r;

            if (sl->job == NULL)
                continue;
            r = ASYNC_start_job(&sl->job, sl->w, &ret, t3_job_fn, &sl->arg, sizeof(void *));
            if (r == ASYNC_PAUSE) {
                REQUIRE(wctx_fd(sl->w, NULL) == sl->fd, "fd changed");
                continue;
            }
            REQUIRE(r == ASYNC_FINISH && ret == 1, "job failed");
            live--;
        }
    }
    offload_get_stats(&s1);
    for (i = 0; i < NJOBS; i++) {
        int k;

        for (k = 0; k < T3_OPS; k++)
            ck_assert_int_eq(jobs[i].got[k], mix((uint32_t)(i * 31 + k)));
        ck_assert_int_eq(jobs[i].offloaded, T3_OPS);
        eagain += jobs[i].eagain;
        ASYNC_WAIT_CTX_free(slots[i].w);
    }
    ck_assert_uint_eq(s1.capacity, 4);
    ck_assert_uint_gt(s1.rejected_full - s0.rejected_full, 0);
    /* Every refusal was seen by exactly one call, which retried it. */
    ck_assert_uint_eq(eagain, s1.rejected_full - s0.rejected_full);
    ck_assert_uint_le(s1.high_water, 4);
    ck_assert_uint_eq(s1.completed - s0.completed, NJOBS * T3_OPS);
    ck_assert_uint_eq(s1.depth, 0);
    close(ep);
    offload_stop();
    ASYNC_cleanup_thread();
}
END_TEST

/* ---- test 4: early resume ----------------------------------------------------------- */

struct sleepy_arg {
    unsigned us;
    uint32_t in;
};

static int sleepy(void *arg)
{
    const struct sleepy_arg *a = arg;

    sleep_us(a->us);
    return mix(a->in);
}

struct t4_job {
    unsigned us;
    int ops;
    int got[8];
};

static int t4_job_fn(void *p)
{
    struct t4_job *j = *(struct t4_job **)p;
    int k;

    for (k = 0; k < j->ops; k++) {
        struct sleepy_arg a = {.us = j->us, .in = (uint32_t)(k + 5)};

        j->got[k] = acore_call(sleepy, &a, 0, NULL);
    }
    return 1;
}

/* Resume in a tight loop without looking at the fd, as s_server does. *longest_ns gets
 * the longest single ASYNC_start_job call, *longest_slept_ns the longest one in which the
 * thread blocked (its voluntary context switch count moved: thread_nvcsw()). */
static int run_tight(struct t4_job *j, long *pauses, uint64_t *longest_ns,
                     uint64_t *longest_slept_ns)
{
    ASYNC_WAIT_CTX *w = ASYNC_WAIT_CTX_new();
    ASYNC_JOB *job = NULL;
    int r, ret = 0;
    long v0 = thread_nvcsw();
    uint64_t t0 = now_ns(), d;

    *pauses = 0;
    *longest_ns = 0;
    *longest_slept_ns = 0;
    while ((r = ASYNC_start_job(&job, w, &ret, t4_job_fn, &j, sizeof(j))) == ASYNC_PAUSE) {
        long v = thread_nvcsw();

        d = now_ns() - t0;
        if (d > *longest_ns)
            *longest_ns = d;
        if (v != v0 && d > *longest_slept_ns)
            *longest_slept_ns = d;
        (*pauses)++;
        v0 = v;
        t0 = now_ns();
    }
    ASYNC_WAIT_CTX_free(w);
    return r == ASYNC_FINISH && ret == 1;
}

START_TEST(test_early_resume)
{
    offload_config cfg = {.workers = 1};
    struct t4_job j = {.us = 2000, .ops = 5};
    struct t4_job slow = {.us = 200000, .ops = 2};
    long pauses;
    uint64_t longest, longest_slept;
    int k;

    ck_assert_int_eq(start_pool(&cfg), 1);

    ck_assert(run_tight(&j, &pauses, &longest, &longest_slept));
    for (k = 0; k < j.ops; k++)
        ck_assert_int_eq(j.got[k], mix((uint32_t)(k + 5)));
    /* More pauses than calls: the job really was resumed before its calls finished. */
    ck_assert_int_gt(pauses, j.ops);

    /* A 200 ms call under a tight loop: the job pauses again at every resume and never
     * sleeps in the application's thread (which may have other connections to serve):
     * no single ASYNC_start_job call comes near the call's 200 ms. The loop spins,
     * because it asked to. */
    ck_assert(run_tight(&slow, &pauses, &longest, &longest_slept));
    for (k = 0; k < slow.ops; k++)
        ck_assert_int_eq(slow.got[k], mix((uint32_t)(k + 5)));
    ck_assert_int_gt(pauses, slow.ops * 200);
    fprintf(stderr, "early resume: %ld pauses, longest ASYNC_start_job call %.2f ms, longest "
            "in which the thread blocked %.2f ms\n", pauses, longest / 1e6,
            longest_slept / 1e6);
    /* Half the call's time, counting only calls in which the thread blocked: a job that
     * slept in this thread for its call blocks for 200 ms. A call that lost the core
     * (another thread, or hypervisor steal of 100 ms and more on a busy 2-core VM) took
     * long without blocking, and is not the defect. Under a sanitizer or valgrind the
     * loop's own steps take milliseconds at times, and their runtimes take locks of
     * their own; the plain build, which CI runs too, checks the bound. */
    if (!under_valgrind() && getenv("AP_UNDER_TSAN") == NULL && getenv("AP_UNDER_ASAN") == NULL)
        ck_assert_msg(longest_slept < 100000000u, "an ASYNC_start_job call blocked the "
                      "thread and took %.1f ms", longest_slept / 1e6);

    offload_stop();
    ASYNC_cleanup_thread();
}
END_TEST

/* ---- test 6: errors ------------------------------------------------------------------ */

static int raises(void *arg)
{
    (void)arg;
    ERR_raise_data(ERR_LIB_EVP, EVP_R_BAD_DECRYPT, "detail %d", 42);
    return 0;
}

static int quiet(void *arg)
{
    return mix(*(const uint32_t *)arg);
}

struct t6_job {
    int pre;   /* raise an error in the job before the call */
    int ret1;  /* raises()'s result */
    int ret2;  /* quiet()'s result */
    int line;  /* line of the pre-existing error */
};

static int t6_job_fn(void *p)
{
    struct t6_job *j = *(struct t6_job **)p;

    if (j->pre) {
        j->line = __LINE__ + 1;
        ERR_raise_data(ERR_LIB_BIO, BIO_R_BROKEN_PIPE, "already queued");
    }
    j->ret1 = acore_call(raises, NULL, 0, NULL);
    return 1;
}

static int t6b_job_fn(void *p)
{
    struct t6_job *j = *(struct t6_job **)p;
    uint32_t in = 77;

    j->ret2 = acore_call(quiet, &in, 0, NULL);
    return 1;
}

/* Drive a job to the end, waiting on its fd, asserting the queue is empty at every
 * pause (SSL_get_error would otherwise report SSL_ERROR_SSL) and that it paused at least
 * min_pauses times. */
static void run_checking_pauses(int (*fn)(void *), void *arg, int min_pauses)
{
    ASYNC_WAIT_CTX *w = ASYNC_WAIT_CTX_new();
    ASYNC_JOB *job = NULL;
    int r, ret = 0, pauses = 0;

    while ((r = ASYNC_start_job(&job, w, &ret, fn, &arg, sizeof(arg))) == ASYNC_PAUSE) {
        pauses++;
        ck_assert_uint_eq(ERR_peek_error(), 0);
        ck_assert(fd_readable(wctx_fd(w, NULL), STALL_MS));
    }
    ck_assert_int_eq(r, ASYNC_FINISH);
    ck_assert_int_eq(ret, 1);
    ck_assert_int_ge(pauses, min_pauses);
    ASYNC_WAIT_CTX_free(w);
}

START_TEST(test_errors)
{
    struct t6_job j = {.pre = 1};
    struct t6_job *jp = &j;
    const char *file, *func, *data;
    int line, flags;
    unsigned long e;

    ck_assert_int_eq(start_pool(NULL), 1);
    ERR_clear_error();

    /* An error is queued when the call starts: it runs inline (pausing would need the
     * queue emptied, and OpenSSL 3.0 cannot save its marks; see acore_call). */
    run_checking_pauses(t6_job_fn, jp, 0);
    ck_assert_int_eq(j.ret1, 0);

    /* Oldest first: the error that was queued before the call ... */
    e = ERR_get_error_all(&file, &line, &func, &data, &flags);
    ck_assert_int_eq(ERR_GET_LIB(e), ERR_LIB_BIO);
    ck_assert_int_eq(ERR_GET_REASON(e), BIO_R_BROKEN_PIPE);
    ck_assert(flags & ERR_TXT_STRING);
    ck_assert_str_eq(data, "already queued");
    ck_assert_int_eq(line, j.line);
    ck_assert_str_eq(func, "t6_job_fn");
    /* ... then the worker's, with its data and origin. */
    e = ERR_get_error_all(&file, &line, &func, &data, &flags);
    ck_assert_int_eq(ERR_GET_LIB(e), ERR_LIB_EVP);
    ck_assert_int_eq(ERR_GET_REASON(e), EVP_R_BAD_DECRYPT);
    ck_assert(flags & ERR_TXT_STRING);
    ck_assert_str_eq(data, "detail 42");
    ck_assert_str_eq(func, "raises");
    ck_assert_ptr_nonnull(strstr(file, "test_acore.c"));
    ck_assert_uint_eq(ERR_get_error(), 0);

    /* The worker's queue was emptied: the next call on (likely) the same worker
     * brings no stale error back. */
    run_checking_pauses(t6b_job_fn, jp, 1);
    ck_assert_int_eq(j.ret2, mix(77));
    ck_assert_uint_eq(ERR_peek_error(), 0);

    /* Without a pre-existing error: only the worker's. */
    j.pre = 0;
    run_checking_pauses(t6_job_fn, jp, 1);
    e = ERR_peek_error_all(&file, &line, &func, &data, &flags);
    ck_assert_int_eq(ERR_GET_LIB(e), ERR_LIB_EVP);
    ck_assert_int_eq(ERR_GET_REASON(e), EVP_R_BAD_DECRYPT);
    ck_assert_str_eq(data, "detail 42");
    ERR_get_error();
    ck_assert_uint_eq(ERR_peek_error(), 0);

    /* Blocking mode outside a job carries errors too. */
    {
        acore_trace tr;

        ck_assert_int_eq(acore_call(raises, NULL, ACORE_BLOCK, &tr), 0);
        ck_assert_int_eq(tr.offloaded, 1);
        e = ERR_get_error_all(&file, &line, &func, &data, &flags);
        ck_assert_int_eq(ERR_GET_LIB(e), ERR_LIB_EVP);
        ck_assert_int_eq(ERR_GET_REASON(e), EVP_R_BAD_DECRYPT);
        ck_assert_str_eq(data, "detail 42");
        ck_assert_uint_eq(ERR_peek_error(), 0);
    }
    offload_stop();
    ASYNC_cleanup_thread();
}
END_TEST

/* ---- outside a job -------------------------------------------------------------------- */

struct where {
    int in_worker;
    pthread_t self;
};

static int record_where(void *arg)
{
    struct where *w = arg;

    w->in_worker = offload_in_worker();
    w->self = pthread_self();
    return 1234;
}

START_TEST(test_outside_job)
{
    struct where w;
    acore_trace tr;

    /* No pool: even ACORE_BLOCK runs inline. */
    memset(&w, 0, sizeof(w));
    ck_assert_int_eq(acore_call(record_where, &w, ACORE_BLOCK, &tr), 1234);
    ck_assert_int_eq(tr.offloaded, 0);
    ck_assert(pthread_equal(w.self, pthread_self()));

    ck_assert_int_eq(start_pool(NULL), 1);
    memset(&w, 0, sizeof(w));
    ck_assert_int_eq(acore_call(record_where, &w, 0, &tr), 1234);
    ck_assert_int_eq(tr.offloaded, 0);
    ck_assert_int_eq(w.in_worker, 0);
    ck_assert(pthread_equal(w.self, pthread_self()));

    memset(&w, 0, sizeof(w));
    ck_assert_int_eq(acore_call(record_where, &w, ACORE_BLOCK, &tr), 1234);
    ck_assert_int_eq(tr.offloaded, 1);
    ck_assert_int_eq(w.in_worker, 1);
    ck_assert(!pthread_equal(w.self, pthread_self()));
    ck_assert_int_eq(offload_in_worker(), 0);
    offload_stop();
}
END_TEST

/* ACORE_BLOCK against a full queue: waits for space, never fails, never runs inline
 * while the pool is up. */
static void *block_caller(void *arg)
{
    int i, bad = 0;

    (void)arg;
    for (i = 0; i < 200; i++) {
        uint32_t in = (uint32_t)i;
        acore_trace tr;

        if (acore_call(slow_mix, &in, ACORE_BLOCK, &tr) != mix(in) || tr.offloaded != 1)
            bad++;
    }
    return (void *)(intptr_t)bad;
}

START_TEST(test_block_full_queue)
{
    offload_config cfg = {.workers = 1, .capacity = 1};
    pthread_t th[4];
    offload_stats s0, s1;
    void *bad;
    int i;

    ck_assert_int_eq(start_pool(&cfg), 1);
    offload_get_stats(&s0);
    for (i = 0; i < 4; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, block_caller, NULL), 0);
    for (i = 0; i < 4; i++) {
        pthread_join(th[i], &bad);
        ck_assert_ptr_null(bad);
    }
    offload_get_stats(&s1);
    ck_assert_uint_eq(s1.completed - s0.completed, 800);
    ck_assert_uint_gt(s1.rejected_full - s0.rejected_full, 0);
    ck_assert_uint_le(s1.high_water, 1);
    offload_stop();
}
END_TEST

int main(void)
{
    const TTest *const tests[] = {
        test_outside_job,
        test_many_jobs_fd_mode,
        test_callback_mode,
        test_callback_eagain,
        test_queue_full,
        test_early_resume,
        test_errors,
        test_block_full_queue,
    };

    return run_core_suite("acore", tests, sizeof(tests) / sizeof(tests[0]));
}
