/*
 * acore_bench — the async core's own overhead, with no crypto:
 *   1. round trip of one trivial offload from one job: submit, worker, eventfd,
 *      epoll wake-up, resume. Median and p99 in microseconds.
 *   2. ceiling: trivial offloads per second with J jobs in flight, one event loop.
 *
 * usage: acore_bench [-n round_trips] [-j jobs] [-s seconds] [-w workers] [-c]
 *   -c  callback mode (ASYNC_WAIT_CTX callback) instead of the eventfd
 * Prints one line per measurement, "key=value" pairs, for bench/run.sh to parse.
 */
#define _GNU_SOURCE
#include <errno.h>
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

static int trivial(void *arg)
{
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

/* Callback mode: the callback runs on a worker; it wakes the loop with an eventfd of the
 * application's own, as an application would (here: one for all jobs, with a ready list
 * kept as a bitmap would be overkill; we resume every paused job on each wake). */
static int app_efd = -1;

static int app_cb(void *arg)
{
    uint64_t one = 1;

    (void)arg;
    return write(app_efd, &one, sizeof(one)) == sizeof(one);
}

static int fd_of(ASYNC_WAIT_CTX *w)
{
    OSSL_ASYNC_FD fd = -1;
    size_t n = 1;

    if (!ASYNC_WAIT_CTX_get_all_fds(w, &fd, &n) || n != 1)
        return -1;
    return fd;
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

    if (cbmode)
        ASYNC_WAIT_CTX_set_callback(w, app_cb, NULL);
    for (i = -1000; i < n; i++) { /* 1000 warm-up round trips */
        double t0 = now_us();
        int r = ASYNC_start_job(&job, w, &ret, job_fn, &ap, sizeof(ap));

        while (r == ASYNC_PAUSE) {
            if (fd < 0) {
                fd = cbmode ? app_efd : fd_of(w);
                ev.data.fd = fd;
                epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
            }
            while (epoll_wait(ep, &out, 1, -1) < 0 && errno == EINTR)
                ;
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
    }
    qsort(lat, n, sizeof(double), cmp_double);
    printf("roundtrip mode=%s n=%d median_us=%.2f p99_us=%.2f\n", cbmode ? "callback" : "fd",
           n, lat[n / 2], lat[(int)(n * 0.99)]);
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
    int *paused = calloc(jobs, sizeof(int));
    struct epoll_event *evs = calloc(jobs + 1, sizeof(*evs));
    volatile int stop = 0;
    int ep = epoll_create1(EPOLL_CLOEXEC), i, ret, live = 0;
    long total = 0;
    double t0, t1;
    offload_stats s0, s1;

    if (!ASYNC_init_thread(jobs, jobs)) {
        fprintf(stderr, "ASYNC_init_thread failed\n");
        return 1;
    }
    if (cbmode) {
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)jobs};

        epoll_ctl(ep, EPOLL_CTL_ADD, app_efd, &ev);
    }
    offload_get_stats(&s0);
    t0 = now_us();
    for (i = 0; i < jobs; i++) {
        w[i] = ASYNC_WAIT_CTX_new();
        if (cbmode)
            ASYNC_WAIT_CTX_set_callback(w[i], app_cb, NULL);
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
        int k, n = epoll_wait(ep, evs, jobs + 1, 1000);

        if (!stop && now_us() - t0 >= seconds * 1e6)
            stop = 1;
        for (k = 0; k < n; k++) {
            uint32_t id = evs[k].data.u32;
            int lo = id, hi = id + 1;

            if (cbmode) { /* the app's own fd: resume every paused job */
                uint64_t v;

                if (read(app_efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
                    return 1;
                lo = 0;
                hi = jobs;
            }
            for (i = lo; i < hi; i++) {
                int r;

                if (!paused[i])
                    continue;
                r = ASYNC_start_job(&job[i], w[i], &ret, job_fn, &ap[i], sizeof(ap[i]));
                if (r == ASYNC_FINISH) {
                    paused[i] = 0;
                    live--;
                } else if (r != ASYNC_PAUSE) {
                    fprintf(stderr, "ceiling: ASYNC_start_job failed\n");
                    return 1;
                }
            }
        }
    }
    t1 = now_us();
    offload_get_stats(&s1);
    for (i = 0; i < jobs; i++) {
        total += a[i].done;
        ASYNC_WAIT_CTX_free(w[i]);
    }
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
    free(paused);
    free(evs);
    return 0;
}

int main(int argc, char **argv)
{
    int n = 20000, jobs = 64, workers = 0, cbmode = 0, opt, rc;
    double seconds = 2.0;
    offload_config cfg = {0};

    while ((opt = getopt(argc, argv, "n:j:s:w:c")) != -1) {
        switch (opt) {
        case 'n': n = atoi(optarg); break;
        case 'j': jobs = atoi(optarg); break;
        case 's': seconds = atof(optarg); break;
        case 'w': workers = atoi(optarg); break;
        case 'c': cbmode = 1; break;
        default:
            fprintf(stderr, "usage: %s [-n round_trips] [-j jobs] [-s seconds] [-w workers] [-c]\n",
                    argv[0]);
            return 2;
        }
    }
    if (n < 100 || jobs < 1 || seconds <= 0) {
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
