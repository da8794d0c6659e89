/*
 * fork(): a child gets a working pool of its own while the parent goes on offloading;
 * a fork while another thread keeps submitting does not deadlock the child; a request
 * the parent had queued at the fork is failed (not hung) in the child.
 *
 * Children report through their exit status (0: all good; otherwise the number of the
 * check that failed) and never call into Check. alarm() turns a deadlock in a child
 * into a signal death that the parent's waitpid() assertions catch.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <check.h>
#include <openssl/async.h>
#include <openssl/crypto.h>
#include <openssl/err.h>

#include "async_core/acore.h"
#include "check_util.h"
#include "offload/offload.h"
#include "util.h"

#define STALL_MS 20000
#define CHILD_ALARM_S 60

static int quick(void *arg)
{
    return mix(*(const uint32_t *)arg);
}

static int tiny_sleep(void *arg)
{
    sleep_us(5);
    return mix(*(const uint32_t *)arg);
}

/* ---- a batch of jobs driven to completion with epoll --------------------------------- */

struct bjob {
    uint32_t base;
    int ops;
    int bad;       /* results that did not match */
    int offloaded; /* calls that ran on a worker */
};

static int bjob_fn(void *p)
{
    struct bjob *j = *(struct bjob **)p;
    acore_trace tr;
    int k;

    for (k = 0; k < j->ops; k++) {
        uint32_t in = j->base + (uint32_t)k;

        if (acore_call(tiny_sleep, &in, 0, &tr) != mix(in))
            j->bad++;
        j->offloaded += tr.offloaded;
    }
    return 1;
}

/* Runs njobs jobs of ops calls, inflight at a time. Returns 0 if every result was right
 * and every call ran on a worker, else a nonzero code. Usable in a child (no Check).
 * During a fork() in another thread calls run inline by design: a thread that may see
 * one passes any_where = 1. */
static int run_batch_ex(uint32_t seed, int njobs, int ops, int inflight, int any_where)
{
    struct bjob *jobs = calloc((size_t)njobs, sizeof(*jobs));
    struct bjob **jp = calloc((size_t)inflight, sizeof(*jp));
    ASYNC_WAIT_CTX **w = calloc((size_t)inflight, sizeof(*w));
    ASYNC_JOB **job = calloc((size_t)inflight, sizeof(*job));
    int *fd = calloc((size_t)inflight, sizeof(int));
    struct epoll_event evs[64];
    int ep = epoll_create1(EPOLL_CLOEXEC), next = 0, done = 0, i, ret, rc = 0;

    if (jobs == NULL || jp == NULL || w == NULL || job == NULL || fd == NULL || ep < 0
        || inflight > 64)
        return 10;
    for (i = 0; i < inflight; i++) {
        w[i] = ASYNC_WAIT_CTX_new();
        fd[i] = -1;
    }
    for (i = 0; i < njobs; i++) {
        jobs[i].base = seed + (uint32_t)i * 1000u;
        jobs[i].ops = ops;
    }
    /* step(s): start or resume slot s until it pauses or runs out of jobs. */
    for (i = 0; i < inflight; i++)
        job[i] = NULL;
    for (;;) {
        int n, k;

        for (i = 0; i < inflight; i++) {
            while (job[i] == NULL && next < njobs) {
                int r;

                jp[i] = &jobs[next++];
                r = ASYNC_start_job(&job[i], w[i], &ret, bjob_fn, &jp[i], sizeof(jp[i]));
                if (r == ASYNC_FINISH)
                    done++;
                else if (r != ASYNC_PAUSE)
                    rc = 11;
                if (r == ASYNC_PAUSE && fd[i] < 0) {
                    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};

                    fd[i] = wctx_fd(w[i], NULL);
                    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd[i], &ev) != 0)
                        rc = 12;
                }
                if (rc)
                    goto out;
            }
        }
        if (done == njobs)
            break;
        n = epoll_wait(ep, evs, 64, STALL_MS);
        if (n <= 0) {
            rc = 13;
            goto out;
        }
        for (k = 0; k < n; k++) {
            int s = (int)evs[k].data.u32, r;

            if (job[s] == NULL)
                continue;
            r = ASYNC_start_job(&job[s], w[s], &ret, bjob_fn, &jp[s], sizeof(jp[s]));
            if (r == ASYNC_FINISH)
                done++;
            else if (r != ASYNC_PAUSE) {
                rc = 14;
                goto out;
            }
        }
    }
    for (i = 0; i < njobs && rc == 0; i++) {
        if (jobs[i].bad != 0)
            rc = 15;
        else if (!any_where && jobs[i].offloaded != ops)
            rc = 16;
    }
out:
    for (i = 0; i < inflight; i++)
        ASYNC_WAIT_CTX_free(w[i]);
    close(ep);
    free(jobs);
    free(jp);
    free(w);
    free(job);
    free(fd);
    return rc;
}

static int run_batch(uint32_t seed, int njobs, int ops, int inflight)
{
    return run_batch_ex(seed, njobs, ops, inflight, 0);
}

static void assert_child_ok(pid_t pid)
{
    int st = 0;

    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert_msg(!WIFSIGNALED(st), "child killed by signal %d (SIGALRM: deadlock)",
                  WTERMSIG(st));
    ck_assert(WIFEXITED(st));
    ck_assert_msg(WEXITSTATUS(st) == 0, "child failed with code %d", WEXITSTATUS(st));
}

/* ---- the child offloads while the parent keeps offloading ----------------------------- */

START_TEST(test_fork_both_offload)
{
    offload_config cfg = {.workers = 2};
    offload_stats st;
    pid_t pid;
    int i;

    ck_assert_int_eq(offload_start(&cfg), 1);
    ck_assert_int_eq(run_batch(1, 8, 4, 8), 0); /* workers exist before the fork */
    offload_get_stats(&st);
    ck_assert_uint_eq(st.running, 2);

    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int rc;

        alarm(CHILD_ALARM_S);
        /* 1,000 offloads inside jobs: 100 jobs of 10 calls. */
        rc = run_batch(7, 100, 10, 16);
        if (rc == 0) {
            offload_get_stats(&st);
            if (st.running == 0)
                rc = 20; /* it all ran inline: the child has no pool */
            else if (st.completed < 1000)
                rc = 21;
        }
        offload_stop();
        _exit(rc);
    }
    /* Meanwhile the parent goes on. */
    for (i = 0; i < 5; i++)
        ck_assert_int_eq(run_batch(100000u * (uint32_t)(i + 1), 20, 10, 16), 0);
    assert_child_ok(pid);
    ck_assert_int_eq(run_batch(3, 10, 10, 10), 0);
    offload_stop();
    ASYNC_cleanup_thread();
}
END_TEST

/* ---- fork while other threads keep submitting ------------------------------------------ */

/*
 * What this case may fork over, and what it may not. OpenSSL 3.x installs no fork
 * handlers for its own locks: a fork while another thread of the parent holds one
 * leaves the child's copy locked for good. asyncpool's part is that no worker is inside
 * a request at the fork (fork_prepare waits for each worker's busy lock), so no worker
 * holds a libcrypto lock then. The application's threads are its own business, as with
 * any OpenSSL program that forks: this case once forked while a submitter was making
 * the process's first OpenSSL error state (OPENSSL_init_crypto loading the error
 * strings under err_string_lock); the child re-ran that pthread_once and its first
 * worker hung on the lock (CI, 1 run in about 20 here). So, as a real server does, the
 * test initialises OpenSSL before it starts threads, and each submitter finishes one
 * round (its per-thread ASYNC and error state made) before the first fork.
 */
static atomic_int stop_submitters; /* orders nothing: a plain stop request */
/* Submitters that finished their first round. seq_cst, read by the forking thread:
 * orders nothing else, it only says that thread set-up is over. */
static atomic_int submitters_ready;

static void *block_submitter(void *arg)
{
    long bad = 0;
    uint32_t i = 0;

    (void)arg;
    while (!atomic_load_explicit(&stop_submitters, memory_order_relaxed)) {
        acore_trace tr;

        i++;
        if (acore_call(quick, &i, ACORE_BLOCK, &tr) != mix(i))
            bad += 1000; /* codes apart from job_submitter's */
        if (i == 1)
            atomic_fetch_add(&submitters_ready, 1);
    }
    return (void *)bad;
}

static void *job_submitter(void *arg)
{
    long bad = 0;
    uint32_t seed = 1;

    (void)arg;
    while (!atomic_load_explicit(&stop_submitters, memory_order_relaxed)) {
        int rc = run_batch_ex(seed, 4, 4, 4, 1);

        if (rc != 0)
            bad = rc;
        if (seed == 1)
            atomic_fetch_add(&submitters_ready, 1);
        seed += 50000;
    }
    ASYNC_cleanup_thread();
    return (void *)bad;
}

START_TEST(test_fork_while_submitting)
{
    offload_config cfg = {.workers = 2, .capacity = 8};
    pthread_t th[2];
    int forks = scaled(20, 4), i;
    void *bad;

    ck_assert_int_eq(OPENSSL_init_crypto(OPENSSL_INIT_LOAD_CRYPTO_STRINGS, NULL), 1);
    ck_assert_int_eq(offload_start(&cfg), 1);
    atomic_store(&stop_submitters, 0);
    atomic_store(&submitters_ready, 0);
    ck_assert_int_eq(pthread_create(&th[0], NULL, block_submitter, NULL), 0);
    ck_assert_int_eq(pthread_create(&th[1], NULL, job_submitter, NULL), 0);
    while (atomic_load(&submitters_ready) < 2)
        sleep_us(100);
    for (i = 0; i < forks; i++) {
        pid_t pid;

        sleep_us(2000);
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
            int rc = 0, k;

            alarm(CHILD_ALARM_S);
            for (k = 0; k < 50 && rc == 0; k++) {
                uint32_t in = (uint32_t)k;
                acore_trace tr;

                if (acore_call(quick, &in, ACORE_BLOCK, &tr) != mix(in))
                    rc = 30;
                else if (tr.offloaded != 1)
                    rc = 31;
            }
            if (rc == 0)
                rc = run_batch(5, 10, 5, 5);
            offload_stop();
            _exit(rc);
        }
        assert_child_ok(pid);
    }
    atomic_store(&stop_submitters, 1);
    for (i = 0; i < 2; i++) {
        pthread_join(th[i], &bad);
        ck_assert_ptr_null(bad);
    }
    offload_stop();
}
END_TEST

/* ---- a request queued at the fork fails in the child ------------------------------------- */


static void *open_later(void *arg)
{
    sleep_us(100000);
    gate_open(arg);
    return NULL;
}

START_TEST(test_fork_orphans_queued)
{
    enum { NB = 4 };
    offload_config cfg = {.workers = 1};
    struct gate *g = gate_new();
    struct gjob a = {.g = g, .in = 1}, b[NB];
    struct gjob *ap = &a, *bp[NB];
    ASYNC_WAIT_CTX *wa = ASYNC_WAIT_CTX_new(), *wb[NB];
    ASYNC_JOB *ja = NULL, *jb[NB];
    offload_stats s0, st;
    pthread_t th;
    pid_t pid;
    int ret, i;

    ck_assert_int_eq(offload_start(&cfg), 1);
    offload_get_stats(&s0);
    ck_assert_int_eq(ASYNC_start_job(&ja, wa, &ret, gjob_fn, &ap, sizeof(ap)), ASYNC_PAUSE);
    ck_assert(gate_await_waiters(g, 1, STALL_MS)); /* A runs on the only worker */
    for (i = 0; i < NB; i++) {
        b[i] = (struct gjob){.g = g, .in = (uint32_t)(10 + i)};
        bp[i] = &b[i];
        wb[i] = ASYNC_WAIT_CTX_new();
        jb[i] = NULL;
        ck_assert_int_eq(ASYNC_start_job(&jb[i], wb[i], &ret, gjob_fn, &bp[i], sizeof(bp[i])),
                         ASYNC_PAUSE);
    }
    offload_get_stats(&st);
    ck_assert_uint_eq(st.depth, NB); /* the Bs are queued */

    /* fork() waits for running requests (A) to finish; open the gate from elsewhere.
     * Once A is done the worker may take some Bs before the fork gets in: which ones
     * ran before the fork is read from the counters the child inherits. */
    ck_assert_int_eq(pthread_create(&th, NULL, open_later, g), 0);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        uint64_t ran;
        unsigned long e;
        int r;

        alarm(CHILD_ALARM_S);
        offload_get_stats(&st);
        ran = st.completed - s0.completed; /* A, then the first ran - 1 Bs (FIFO) */
        if (ran < 1 || ran > 1 + NB)
            _exit(39);
        r = ASYNC_start_job(&ja, wa, &ret, gjob_fn, &ap, sizeof(ap));
        if (r != ASYNC_FINISH || a.got != mix(1))
            _exit(40);
        for (i = 0; i < NB; i++) {
            ERR_clear_error();
            r = ASYNC_start_job(&jb[i], wb[i], &ret, gjob_fn, &bp[i], sizeof(bp[i]));
            /* Either way the job finishes here: an orphan must fail, not hang. */
            if (r != ASYNC_FINISH)
                _exit(41);
            if ((uint64_t)i + 1 < ran) {
                if (b[i].got != mix((uint32_t)(10 + i)) || ERR_peek_error() != 0)
                    _exit(42);
            } else {
                e = ERR_get_error();
                if (b[i].got != 0 || ERR_GET_LIB(e) != ERR_LIB_ASYNC)
                    _exit(43);
            }
        }
        _exit(0);
    }
    pthread_join(th, NULL);
    assert_child_ok(pid);
    /* In the parent every call ran normally. */
    ck_assert_int_eq(ASYNC_start_job(&ja, wa, &ret, gjob_fn, &ap, sizeof(ap)), ASYNC_FINISH);
    ck_assert_int_eq(a.got, mix(1));
    for (i = 0; i < NB; i++) {
        int r;

        while ((r = ASYNC_start_job(&jb[i], wb[i], &ret, gjob_fn, &bp[i], sizeof(bp[i])))
               == ASYNC_PAUSE)
            ck_assert(fd_readable(wctx_fd(wb[i], NULL), STALL_MS));
        ck_assert_int_eq(r, ASYNC_FINISH);
        ck_assert_int_eq(b[i].got, mix((uint32_t)(10 + i)));
        ASYNC_WAIT_CTX_free(wb[i]);
    }
    ASYNC_WAIT_CTX_free(wa);
    offload_stop();
    gate_free(g);
    ASYNC_cleanup_thread();
}
END_TEST

/* No argument: the child offloads while the parent does, and orphans are failed.
 * --while-submitting: fork while two other threads keep submitting. A separate ctest
 * entry, because the ASan build cannot run it (test/core.cmake says why). */
int main(int argc, char **argv)
{
    const TTest *const tests[] = {
        test_fork_both_offload,
        test_fork_orphans_queued,
    };
    const TTest *const submitting[] = {test_fork_while_submitting};

    if (argc > 1 && strcmp(argv[1], "--while-submitting") == 0)
        return run_core_suite("fork_while_submitting", submitting, 1);
    if (argc > 1) {
        fprintf(stderr, "usage: %s [--while-submitting]\n", argv[0]);
        return EXIT_FAILURE;
    }
    return run_core_suite("fork", tests, sizeof(tests) / sizeof(tests[0]));
}
