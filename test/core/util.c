#define _GNU_SOURCE
#include "util.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

#include "offload/offload.h"

int under_valgrind(void)
{
    const char *v = getenv("AP_UNDER_VALGRIND");

    return v != NULL && *v != '\0' && *v != '0';
}

int scaled(int n, int div)
{
    if (!under_valgrind())
        return n;
    return n / div > 0 ? n / div : 1;
}

uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void sleep_us(unsigned us)
{
    struct timespec ts = {.tv_sec = us / 1000000u, .tv_nsec = (long)(us % 1000000u) * 1000};

    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

long thread_nvcsw(void)
{
    struct rusage ru;

    ck_assert_int_eq(getrusage(RUSAGE_THREAD, &ru), 0);
    return ru.ru_nvcsw;
}

long process_cpu_us(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000L + ru.ru_utime.tv_usec
           + ru.ru_stime.tv_usec;
}

int wctx_fd(ASYNC_WAIT_CTX *w, size_t *count)
{
    OSSL_ASYNC_FD fds[4];
    size_t n = 0;

    if (!ASYNC_WAIT_CTX_get_all_fds(w, NULL, &n))
        return -1;
    if (count != NULL)
        *count = n;
    if (n == 0 || n > 4 || !ASYNC_WAIT_CTX_get_all_fds(w, fds, &n))
        return -1;
    return fds[0];
}

int fd_readable(int fd, int timeout_ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int r;

    while ((r = poll(&p, 1, timeout_ms)) < 0 && errno == EINTR)
        ;
    return r == 1 && (p.revents & POLLIN);
}

int wait_completed(uint64_t target, int timeout_ms)
{
    uint64_t deadline = now_ns() + (uint64_t)timeout_ms * 1000000u;
    offload_stats st;

    for (;;) {
        offload_get_stats(&st);
        if (st.completed >= target)
            return 1;
        if (now_ns() > deadline)
            return 0;
        sleep_us(200);
    }
}

atomic_int req_ran;

void req_count_run(offload_req *r)
{
    (void)r;
    atomic_fetch_add(&req_ran, 1);
}

void req_done_nop(offload_req *r, int how)
{
    (void)r;
    (void)how;
}

static void held_req_run(offload_req *r)
{
    struct held_req *h = (struct held_req *)(void *)r;

    gate_wait(h->g);
    if (h->counted)
        atomic_fetch_add(&req_ran, 1);
}

void held_req_init(struct held_req *h, int counted)
{
    h->req = (offload_req){.run = held_req_run, .done = req_done_nop};
    h->g = gate_new();
    h->counted = counted;
}

int wait_req_ran(int n, int timeout_ms)
{
    uint64_t end = now_ns() + (uint64_t)timeout_ms * 1000000u;

    while (atomic_load(&req_ran) < n && now_ns() <= end)
        sleep_us(100);
    return atomic_load(&req_ran) == n;
}

int wait_parked_spinning(unsigned parked, int spinning, int timeout_ms)
{
    uint64_t deadline = now_ns() + (uint64_t)timeout_ms * 1000000u;
    offload_stats st;

    for (;;) {
        offload_get_stats(&st);
        if (st.parked == parked && st.depth == 0
            && (spinning < 0 || st.spinning == (unsigned)spinning))
            return 1;
        if (now_ns() > deadline)
            return 0;
        sleep_us(200);
    }
}

struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int open;
    int waiters;
};

struct gate *gate_new(void)
{
    struct gate *g = calloc(1, sizeof(*g));

    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    return g;
}

void gate_wait(struct gate *g)
{
    pthread_mutex_lock(&g->mu);
    g->waiters++;
    pthread_cond_broadcast(&g->cv);
    while (!g->open)
        pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
}

int gate_waiters(struct gate *g)
{
    int n;

    pthread_mutex_lock(&g->mu);
    n = g->waiters;
    pthread_mutex_unlock(&g->mu);
    return n;
}

struct timespec realtime_in_ms(int timeout_ms)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    return ts;
}

int gate_await_waiters(struct gate *g, int n, int timeout_ms)
{
    struct timespec ts = realtime_in_ms(timeout_ms);
    int ok;

    pthread_mutex_lock(&g->mu);
    while (g->waiters < n && pthread_cond_timedwait(&g->cv, &g->mu, &ts) == 0)
        ;
    ok = g->waiters >= n;
    pthread_mutex_unlock(&g->mu);
    return ok;
}

void gate_open(struct gate *g)
{
    pthread_mutex_lock(&g->mu);
    g->open = 1;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

void gate_free(struct gate *g)
{
    pthread_mutex_destroy(&g->mu);
    pthread_cond_destroy(&g->cv);
    free(g);
}

int gated(void *arg)
{
    struct gated_arg *a = arg;

    gate_wait(a->g);
    return mix(a->in);
}

int gjob_fn(void *p)
{
    struct gjob *j = *(struct gjob **)p;
    struct gated_arg a = {.g = j->g, .in = j->in};

    j->got = acore_call(gated, &a, 0, &j->tr);
    return 1;
}

int run_core_suite(const char *name, const TTest *const tests[], size_t n)
{
    Suite *s = suite_create(name);
    TCase *tc = tcase_create("core");
    SRunner *sr;
    size_t i;
    int nf;

    for (i = 0; i < n; i++)
        tcase_add_test(tc, tests[i]);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    return nf == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
