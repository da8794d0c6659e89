/*
 * acore_bench — the async core's own overhead, with no crypto:
 *   1. round trip of one trivial offload from one job: submit, worker, eventfd,
 *      epoll wake-up, resume. Median and p99 in microseconds.
 *   2. ceiling: trivial offloads per second with J jobs in flight, one event loop.
 *   3. CPU per offload, in both runs (1 job in flight, and J): CPU time of the
 *      application's thread (CLOCK_THREAD_CPUTIME_ID) and of the pool's workers (the
 *      threads named "asyncpool-wrk" in /proc/self/task, read through their per-thread
 *      CPU clocks, else /proc/self/task/<tid>/schedstat), each divided by the offloads
 *      made meanwhile. The offloaded call is trivial (an add), so the workers' figure is
 *      what the hand-over itself costs them: dequeue, wake-up, notify, sleep, spinning.
 *
 * usage: acore_bench [-n round_trips] [-j jobs] [-s seconds] [-w workers] [-c]
 *                    [-S spin_us] [-p poll_us] [-t work_us] [-g gap_us]
 *   -c  callback mode (ASYNC_WAIT_CTX callback) instead of the eventfd
 *   -S  the workers spin this many µs before they park (offload_config.spin_us)
 *   -p  the loop polls (epoll_wait with a zero timeout) this many µs before it sleeps
 *   -t  the offloaded call busy-waits this many µs instead of returning at once
 *   -g  the round-trip run sleeps this many µs between round trips (under 1 s)
 * Prints one line per measurement, "key=value" pairs, for bench/run.sh to parse:
 *   roundtrip mode= n= median_us= p99_us=
 *   ceiling mode= jobs= seconds= offloads= offloads_per_s= pool_completed=
 *   cpu mode= inflight= offloads= app_us_per_offload= worker_us_per_offload= workers=
 *       source=clock|schedstat
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <openssl/async.h>

#include "async_core/acore.h"
#include "offload/offload.h"

static double now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

/* ---- CPU time of this thread and of the pool's workers ------------------------------ */

#define MAX_WORKER_TIDS 256

static double thread_cpu_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static const char *cpu_source = "none";

/* CPU time of thread tid of this process, in microseconds; < 0 if unreadable. The clock
 * id is the kernel's per-thread CPU clock, built the way glibc's pthread_getcpuclockid
 * builds it (the kernel allows it for threads of the caller's own process). */
static double tid_cpu_us(pid_t tid)
{
    clockid_t clk = (clockid_t)((int)(~(unsigned)tid << 3) | 4 /* per thread */ | 2 /* sched */);
    struct timespec ts;
    char path[64];
    unsigned long long ns;
    FILE *f;
    int ok;

    if (clock_gettime(clk, &ts) == 0) {
        cpu_source = "clock";
        return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
    }
    snprintf(path, sizeof(path), "/proc/self/task/%d/schedstat", (int)tid);
    if ((f = fopen(path, "r")) == NULL)
        return -1;
    ok = fscanf(f, "%llu", &ns) == 1;
    fclose(f);
    if (!ok)
        return -1;
    cpu_source = "schedstat";
    return ns / 1e3;
}

/* The pool's workers: the threads of this process named "asyncpool-wrk". */
static int worker_tids(pid_t *tids, int max)
{
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    int n = 0;

    if (d == NULL)
        return 0;
    while ((e = readdir(d)) != NULL && n < max) {
        char path[300], comm[32] = "";
        FILE *f;

        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        snprintf(path, sizeof(path), "/proc/self/task/%s/comm", e->d_name);
        if ((f = fopen(path, "r")) == NULL)
            continue;
        if (fgets(comm, sizeof(comm), f) != NULL && strncmp(comm, "asyncpool-wrk", 13) == 0)
            tids[n++] = (pid_t)atoi(e->d_name);
        fclose(f);
    }
    closedir(d);
    return n;
}

struct cpu_mark {
    double app_us, wrk_us;
    pid_t tids[MAX_WORKER_TIDS];
    int ntids;
};

static double workers_cpu_us(const struct cpu_mark *m)
{
    double t = 0, v;
    int i;

    for (i = 0; i < m->ntids; i++)
        if ((v = tid_cpu_us(m->tids[i])) > 0)
            t += v;
    return t;
}

/* Start of a measured stretch; the workers must be running already (they start lazily,
 * on the first submit: the warm-up did that). */
static void cpu_begin(struct cpu_mark *m)
{
    m->ntids = worker_tids(m->tids, MAX_WORKER_TIDS);
    m->wrk_us = workers_cpu_us(m);
    m->app_us = thread_cpu_us();
}

static void cpu_end(const struct cpu_mark *m, const char *mode, int inflight, long offloads)
{
    double app = thread_cpu_us() - m->app_us, wrk = workers_cpu_us(m) - m->wrk_us;

    if (offloads <= 0)
        offloads = 1;
    printf("cpu mode=%s inflight=%d offloads=%ld app_us_per_offload=%.3f "
           "worker_us_per_offload=%.3f workers=%d source=%s\n",
           mode, inflight, offloads, app / offloads, wrk / offloads, m->ntids, cpu_source);
}

/* -t: the offloaded call busy-waits this many µs (0: returns at once), to see the
 * round trip of a call as long as a real one (a P-256 signature is 20-60 µs here). */
static double work_us;
/* -g: the round-trip run sleeps this many µs between round trips (a sparse stream). */
static double gap_us;

static int trivial(void *arg)
{
    if (work_us > 0)
        for (double end = now_us() + work_us; now_us() < end;)
            ;
    return *(int *)arg + 1;
}

struct jobarg {
    int loops; /* offloads per job run; < 0: until *stop */
    volatile int *stop;
    long done;
};

static int job_fn(void *p)
{
    struct jobarg *a = *(struct jobarg **)p;
    int i, x;

    for (i = 0; a->loops < 0 ? !*a->stop : i < a->loops; i++) {
        x = i;
        if (acore_call(trivial, &x, 0, NULL) != i + 1)
            return 0;
        a->done++;
    }
    return 1;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

/* Callback mode: the callback runs on a worker; it puts the job on the loop's ready list
 * and wakes the loop with an eventfd of the application's own, as an application does
 * (ssl_demo's tls_server keeps a locked list; here a lock-free stack: workers push, the
 * loop takes the whole list at once, so there is no ABA). The eventfd is written only
 * when the list was empty: the loop takes everything pushed before it reads the list. */
static int app_efd = -1;

struct ready_node {
    struct ready_node *next;
    atomic_int queued;
    int id;
};

static _Atomic(struct ready_node *) ready_head;

static int app_wake(void)
{
    uint64_t one = 1;

    return write(app_efd, &one, sizeof(one)) == sizeof(one);
}

static int app_cb(void *arg)
{
    struct ready_node *n = arg, *old;

    if (n == NULL) /* the round trip: one job, nothing to list */
        return app_wake();
    if (atomic_exchange(&n->queued, 1))
        return 1; /* already listed; the loop will resume it */
    old = atomic_load(&ready_head);
    do
        n->next = old;
    while (!atomic_compare_exchange_weak(&ready_head, &old, n));
    return old != NULL || app_wake();
}

static int fd_of(ASYNC_WAIT_CTX *w)
{
    OSSL_ASYNC_FD fd = -1;
    size_t n = 1;

    if (!ASYNC_WAIT_CTX_get_all_fds(w, &fd, &n) || n != 1)
        return -1;
    return fd;
}

/* The loop's wait for events. With poll_us > 0 it polls (epoll_wait with a zero
 * timeout) for up to poll_us before it sleeps: HAProxy's busy-polling, for loops that
 * trade a core for latency on machines whose idle CPUs are slow to wake (VMs). */
static double poll_us;

static int loop_wait(int ep, struct epoll_event *evs, int max, int timeout_ms)
{
    int n;

    if (poll_us > 0) {
        double end = now_us() + poll_us;

        do
            if ((n = epoll_wait(ep, evs, max, 0)) != 0)
                return n;
        while (now_us() < end);
    }
    while ((n = epoll_wait(ep, evs, max, timeout_ms)) < 0 && errno == EINTR)
        ;
    return n;
}

static int run_latency(int n, int cbmode)
{
    ASYNC_WAIT_CTX *w = ASYNC_WAIT_CTX_new();
    ASYNC_JOB *job = NULL;
    struct jobarg a = {.loops = 1};
    struct jobarg *ap = &a;
    double *lat = calloc(n, sizeof(double));
    int ep = epoll_create1(EPOLL_CLOEXEC), i, ret, fd = -1;
    struct epoll_event ev = {.events = EPOLLIN}, out;

    struct cpu_mark cm;
    offload_stats s0, s1;

    if (cbmode)
        ASYNC_WAIT_CTX_set_callback(w, app_cb, NULL);
    for (i = -1000; i < n; i++) { /* 1000 warm-up round trips */
        double t0;

        if (i == 0) {
            cpu_begin(&cm);
            offload_get_stats(&s0);
        }
        t0 = now_us();
        int r = ASYNC_start_job(&job, w, &ret, job_fn, &ap, sizeof(ap));

        while (r == ASYNC_PAUSE) {
            if (fd < 0) {
                fd = cbmode ? app_efd : fd_of(w);
                ev.data.fd = fd;
                epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
            }
            loop_wait(ep, &out, 1, -1);
            if (cbmode) {
                uint64_t v;

                if (read(app_efd, &v, sizeof(v)) < 0)
                    return 1;
            }
            r = ASYNC_start_job(&job, w, &ret, job_fn, &ap, sizeof(ap));
        }
        if (r != ASYNC_FINISH || ret != 1) {
            fprintf(stderr, "latency: job failed\n");
            return 1;
        }
        if (i >= 0)
            lat[i] = now_us() - t0;
        if (gap_us > 0) { /* the loop idles between requests, as a lightly loaded one */
            struct timespec ts = {0, (long)(gap_us * 1000)};

            nanosleep(&ts, NULL);
        }
    }
    cpu_end(&cm, cbmode ? "callback" : "fd", 1, n);
    offload_get_stats(&s1);
    qsort(lat, n, sizeof(double), cmp_double);
    /* How the round trips reached their workers: by waking a parked one, or by a
     * claim on a spinning one (and how many windows ran out meanwhile). */
    printf("roundtrip mode=%s n=%d median_us=%.2f p99_us=%.2f wakeups=%llu spin_claims=%llu "
           "spin_misses=%llu\n", cbmode ? "callback" : "fd", n, lat[n / 2],
           lat[(int)(n * 0.99)], (unsigned long long)(s1.unparks - s0.unparks),
           (unsigned long long)(s1.spin_claims - s0.spin_claims),
           (unsigned long long)(s1.spin_misses - s0.spin_misses));
    free(lat);
    close(ep);
    ASYNC_WAIT_CTX_free(w);
    return 0;
}

static int run_ceiling(int jobs, double seconds, int cbmode)
{
    ASYNC_WAIT_CTX **w = calloc(jobs, sizeof(*w));
    ASYNC_JOB **job = calloc(jobs, sizeof(*job));
    struct jobarg *a = calloc(jobs, sizeof(*a));
    struct jobarg **ap = calloc(jobs, sizeof(*ap));
    struct ready_node *nodes = calloc(jobs, sizeof(*nodes));
    int *paused = calloc(jobs, sizeof(int));
    struct epoll_event *evs = calloc(jobs + 1, sizeof(*evs));
    volatile int stop = 0;
    int ep = epoll_create1(EPOLL_CLOEXEC), i, ret, live = 0;
    long total = 0;
    double t0, t1;
    offload_stats s0, s1;
    struct cpu_mark cm;

    if (!ASYNC_init_thread(jobs, jobs)) {
        fprintf(stderr, "ASYNC_init_thread failed\n");
        return 1;
    }
    if (cbmode) {
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)jobs};

        epoll_ctl(ep, EPOLL_CTL_ADD, app_efd, &ev);
    }
    offload_get_stats(&s0);
    cpu_begin(&cm); /* the workers run: run_latency started them */
    t0 = now_us();
    for (i = 0; i < jobs; i++) {
        w[i] = ASYNC_WAIT_CTX_new();
        nodes[i].id = i;
        if (cbmode)
            ASYNC_WAIT_CTX_set_callback(w[i], app_cb, &nodes[i]);
        a[i].loops = -1;
        a[i].stop = &stop;
        ap[i] = &a[i];
        if (ASYNC_start_job(&job[i], w[i], &ret, job_fn, &ap[i], sizeof(ap[i])) != ASYNC_PAUSE)
            return 1;
        paused[i] = 1;
        live++;
        if (!cbmode) {
            struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};

            epoll_ctl(ep, EPOLL_CTL_ADD, fd_of(w[i]), &ev);
        }
    }
    while (live > 0) {
        int k, n = loop_wait(ep, evs, jobs + 1, 1000);

        if (!stop && now_us() - t0 >= seconds * 1e6)
            stop = 1;
        for (k = 0; k < n; k++) {
            uint32_t id = evs[k].data.u32;
            struct ready_node *list = NULL;

            if (cbmode) { /* the app's own fd: resume the jobs on the ready list */
                uint64_t v;

                if (read(app_efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
                    return 1;
                list = atomic_exchange(&ready_head, NULL);
            }
            for (;;) {
                int r;

                if (cbmode) {
                    if (list == NULL)
                        break;
                    i = list->id;
                    list = list->next;
                    /* before the resume: a completion during it lists the job again */
                    atomic_store(&nodes[i].queued, 0);
                } else {
                    i = (int)id;
                }
                if (paused[i]) {
                    r = ASYNC_start_job(&job[i], w[i], &ret, job_fn, &ap[i], sizeof(ap[i]));
                    if (r == ASYNC_FINISH) {
                        paused[i] = 0;
                        live--;
                    } else if (r != ASYNC_PAUSE) {
                        fprintf(stderr, "ceiling: ASYNC_start_job failed\n");
                        return 1;
                    }
                }
                if (!cbmode)
                    break;
            }
        }
    }
    t1 = now_us();
    for (i = 0; i < jobs; i++)
        total += a[i].done;
    cpu_end(&cm, cbmode ? "callback" : "fd", jobs, total);
    offload_get_stats(&s1);
    for (i = 0; i < jobs; i++)
        ASYNC_WAIT_CTX_free(w[i]);
    printf("ceiling mode=%s jobs=%d seconds=%.2f offloads=%ld offloads_per_s=%.0f "
           "pool_completed=%llu\n",
           cbmode ? "callback" : "fd", jobs, (t1 - t0) / 1e6, total, total / ((t1 - t0) / 1e6),
           (unsigned long long)(s1.completed - s0.completed));
    close(ep);
    ASYNC_cleanup_thread();
    free(w);
    free(job);
    free(a);
    free(ap);
    free(nodes);
    free(paused);
    free(evs);
    return 0;
}

int main(int argc, char **argv)
{
    int n = 20000, jobs = 64, workers = 0, cbmode = 0, opt, rc;
    double seconds = 2.0;
    offload_config cfg = {0};

    while ((opt = getopt(argc, argv, "n:j:s:w:cS:p:t:g:")) != -1) {
        switch (opt) {
        case 'n': n = atoi(optarg); break;
        case 'j': jobs = atoi(optarg); break;
        case 's': seconds = atof(optarg); break;
        case 'w': workers = atoi(optarg); break;
        case 'c': cbmode = 1; break;
        case 'S': cfg.spin_us = (unsigned)atoi(optarg); break;
        case 'p': poll_us = atof(optarg); break;
        case 't': work_us = atof(optarg); break;
        case 'g': gap_us = atof(optarg); break;
        default:
            fprintf(stderr, "usage: %s [-n round_trips] [-j jobs] [-s seconds] [-w workers] [-c] "
                            "[-S spin_us] [-p poll_us] [-t work_us] [-g gap_us]\n",
                    argv[0]);
            return 2;
        }
    }
    if (n < 100 || jobs < 1 || seconds <= 0 || poll_us < 0 || work_us < 0 || gap_us < 0 || gap_us >= 1e6) {
        fprintf(stderr, "bad arguments\n");
        return 2;
    }
    cfg.workers = (unsigned)workers;
    if (!offload_start(&cfg)) {
        perror("offload_start");
        return 1;
    }
    app_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    rc = run_latency(n, cbmode) || run_ceiling(jobs, seconds, cbmode);
    offload_stop();
    close(app_efd);
    return rc;
}
