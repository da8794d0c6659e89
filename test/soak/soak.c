/*
 * soak — offload/, async_core/ and the provider under everything at once, for a while
 * (issue 8, part 7). ctest runs it briefly; scripts/soak.sh runs it for minutes.
 *
 * Threads, all at the same time:
 *  - application threads (app.c): event loops with many ASYNC jobs each, fd mode
 *    (epoll) and callback mode mixed, early resumes at random, calls that return
 *    computed values, calls that raise OpenSSL errors, calls under error marks and
 *    under ASYNC_block_pause(), signatures through asyncpool now and then, WAIT_CTXs
 *    freed after their jobs (and, in the plain build, a few freed under a paused job);
 *  - the soak's own pool (offload_start with 1-2 workers and a queue of 1-4), so
 *    submits keep meeting a full queue;
 *  - a load/unload thread (prov.c): asyncpool loaded into fresh library contexts and
 *    unloaded in a loop, signing in and outside jobs;
 *  - a fork thread (forker.c, plain build only);
 *  - a watchdog: a thread that makes no progress for opt.stall_ns fails the run with
 *    its name and what it was doing, and every thread's stack (gdb).
 * At the end: the pool's counters must add up (submitted == completed == what the
 * calls' traces say, depth 0), and a summary is printed. Exit status 0: every check
 * passed; 1: a check failed; 2: something hung.
 *
 * Usage: soak [--seconds S] [--seed N] [--workers N] [--capacity N] [--threads N]
 *             [--jobs N] [--[no-]fork] [--[no-]provider] [--[no-]abandon]
 *             [--call-bound-ms N] [--job-bound-ms N] [--stall-s N]
 *             [--keep-going] [--fork-pool-child]
 * --keep-going: a failed check does not end the run (the first 40 are printed).
 * --fork-pool-child: children also start a pool of their own; kept out of the default
 * run by a hazard of OpenSSL and fork(), not of asyncpool (forker.c says which).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <pthread.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>

#include "offload/offload.h"
#include "soak.h"
#include "test/core/util.h"

extern char **environ;

struct soak_opts opt;
struct soak_counts cnt;
atomic_int soak_stop;
_Thread_local const char *soak_role;

static atomic_int failures;
static uint64_t run_start;

uint64_t soak_elapsed_ns(void)
{
    return now_ns() - run_start;
}

uint32_t rnd(uint32_t *s)
{
    uint32_t x = *s;

    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *s = x ? x : 0x2545f491u;
}

void count_max(_Atomic uint64_t *m, uint64_t v)
{
    uint64_t cur = atomic_load_explicit(m, memory_order_relaxed);

    while (v > cur && !atomic_compare_exchange_weak_explicit(m, &cur, v, memory_order_relaxed,
                                                             memory_order_relaxed))
        ;
}

uint64_t schedstat_wait_ns(int fd)
{
    char buf[128];
    unsigned long long run = 0, wait = 0;
    ssize_t n;

    if (fd < 0 || (n = pread(fd, buf, sizeof(buf) - 1, 0)) <= 0)
        return 0;
    buf[n] = '\0';
    if (sscanf(buf, "%llu %llu", &run, &wait) != 2)
        return 0;
    return wait;
}

/* ---- failures ------------------------------------------------------------------- */

static pthread_mutex_t print_lock = PTHREAD_MUTEX_INITIALIZER;

void soak_fail(const char *fmt, ...)
{
    va_list ap;
    int n = atomic_fetch_add(&failures, 1);

    if (!opt.keep_going)
        atomic_store(&soak_stop, 1);
    if (n >= 40)
        return;
    pthread_mutex_lock(&print_lock);
    fprintf(stderr, "soak: FAIL at %.2f s: ", (now_ns() - run_start) / 1e9);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    pthread_mutex_unlock(&print_lock);
}

void check_callback_thread(void)
{
    char name[16] = "";

    if (soak_role != NULL) {
        soak_fail("a WAIT_CTX callback ran on the soak's %s thread, not on a worker",
                  soak_role);
        return;
    }
    if (offload_in_worker())
        return;
    /* The module's pool has its own copy of offload_in_worker(); its threads carry
     * the same name as ours. */
    pthread_getname_np(pthread_self(), name, sizeof(name));
    if (strcmp(name, "asyncpool-wrk") != 0)
        soak_fail("a WAIT_CTX callback ran on thread \"%s\", not on a pool worker", name);
}

void dump_stacks(pid_t pid)
{
    const char *env = getenv("SOAK_STACKS");
    char spid[16];
    char *argv[] = {"gdb", "-q", "-nx", "-batch", "-p", spid, "-ex", "set pagination off",
                    "-ex", "thread apply all bt 40", NULL};
    posix_spawn_file_actions_t fa;
    pid_t g;
    uint64_t t0;
    int st;

    if (env != NULL && strcmp(env, "0") == 0)
        return;
    snprintf(spid, sizeof(spid), "%d", (int)pid);
    fflush(stderr);
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, 2, 1);
    /* posix_spawn, not fork: no fork handlers run (the pool may be the thing that is
     * stuck, and its prepare handler would wait for it). */
    if (posix_spawnp(&g, "gdb", &fa, NULL, argv, environ) != 0) {
        fprintf(stderr, "soak: (no gdb: no stacks)\n");
        posix_spawn_file_actions_destroy(&fa);
        return;
    }
    posix_spawn_file_actions_destroy(&fa);
    t0 = now_ns();
    while (waitpid(g, &st, WNOHANG) == 0) {
        if (now_ns() - t0 > 120000000000ull) {
            kill(g, SIGKILL);
            waitpid(g, &st, 0);
            break;
        }
        sleep_us(10000);
    }
}

static void print_summary(void);
static void print_beats(void);

void soak_fatal(const char *fmt, ...)
{
    static atomic_int once;
    va_list ap;

    atomic_store(&soak_stop, 1);
    if (atomic_exchange(&once, 1)) {
        for (;;)
            pause(); /* another thread is reporting and will exit */
    }
    pthread_mutex_lock(&print_lock);
    fprintf(stderr, "soak: STUCK at %.2f s: ", (now_ns() - run_start) / 1e9);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    pthread_mutex_unlock(&print_lock);
    print_beats();
    fprintf(stderr, "soak: stacks of every thread:\n");
    dump_stacks(getpid());
    print_summary();
    fprintf(stderr, "soak: FAILED (stuck)\n");
    fflush(stderr);
    fflush(stdout);
    _exit(2);
}

/* ---- progress beats and the watchdog ---------------------------------------------- */

struct beat {
    const char *name;
    _Atomic uint64_t last;
    _Atomic(const char *) state;
    atomic_int active;
};

#define MAX_BEATS 32
static struct beat beats[MAX_BEATS];
static atomic_int nbeats;

struct beat *beat_new(const char *name)
{
    int i = atomic_fetch_add(&nbeats, 1);
    struct beat *b;

    if (i >= MAX_BEATS) {
        fprintf(stderr, "soak: too many threads\n");
        abort();
    }
    b = &beats[i];
    b->name = name;
    atomic_store(&b->state, "starting");
    atomic_store(&b->last, now_ns());
    atomic_store(&b->active, 1);
    return b;
}

void beat(struct beat *b, const char *state)
{
    atomic_store_explicit(&b->state, state, memory_order_relaxed);
    atomic_store_explicit(&b->last, now_ns(), memory_order_relaxed);
}

void beat_state(struct beat *b, const char *state)
{
    atomic_store_explicit(&b->state, state, memory_order_relaxed);
}

void beat_off(struct beat *b)
{
    beat(b, "done");
    atomic_store(&b->active, 0);
}

static void print_beats(void)
{
    uint64_t now = now_ns();
    int i, n = atomic_load(&nbeats);

    for (i = 0; i < n && i < MAX_BEATS; i++)
        fprintf(stderr, "soak:   %-20s %s, last progress %.2f s ago: %s\n", beats[i].name,
                atomic_load(&beats[i].active) ? "running" : "finished",
                (now - atomic_load(&beats[i].last)) / 1e9, atomic_load(&beats[i].state));
}

static atomic_int watchdog_stop;
static struct app *apps[8];
static _Atomic int napps;

/* ---- the pool workers' CPU waits ----------------------------------------------------
 *
 * An application thread may wait for a worker (a call under ASYNC_block_pause(), the
 * last instructions of a completion signal, a fork's prepare handler waiting for a
 * request to finish). On this shared machine a worker can sit in a run queue for tens
 * of milliseconds; that is not asyncpool's doing. So the watchdog thread adds up the
 * run-queue waits of every pool worker (both pools' threads are named
 * "asyncpool-wrk"), every 5 ms, into one monotonic counter; a slow call is excused
 * the workers' waits during it. */
struct wthread {
    pid_t tid;
    int fd; /* its /proc/self/task/<tid>/schedstat */
    uint64_t last;
    int seen;
};
static struct wthread wts[64];
static int nwts;
static _Atomic uint64_t worker_wait_total;

uint64_t workers_wait_ns(void)
{
    return atomic_load_explicit(&worker_wait_total, memory_order_relaxed);
}

static void workers_refresh(void)
{
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    int i;

    if (d == NULL)
        return;
    while ((e = readdir(d)) != NULL && nwts < (int)(sizeof(wts) / sizeof(wts[0]))) {
        pid_t tid = (pid_t)atoi(e->d_name);
        char path[64], comm[32] = "";
        int known = 0, fd;
        ssize_t n;

        if (tid <= 0)
            continue;
        for (i = 0; i < nwts; i++)
            known |= wts[i].tid == tid;
        if (known)
            continue;
        snprintf(path, sizeof(path), "/proc/self/task/%d/comm", (int)tid);
        if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
            continue;
        n = read(fd, comm, sizeof(comm) - 1);
        close(fd);
        if (n <= 0 || strncmp(comm, "asyncpool-wrk", 13) != 0)
            continue;
        snprintf(path, sizeof(path), "/proc/self/task/%d/schedstat", (int)tid);
        if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
            continue;
        wts[nwts].tid = tid;
        wts[nwts].fd = fd;
        wts[nwts].last = schedstat_wait_ns(fd);
        nwts++;
    }
    closedir(d);
}

static void workers_sample(void)
{
    int i;

    for (i = 0; i < nwts; i++) {
        char probe[8];
        uint64_t w = schedstat_wait_ns(wts[i].fd);

        /* A thread that exited: its file reads nothing. */
        if (pread(wts[i].fd, probe, sizeof(probe), 0) <= 0) {
            close(wts[i].fd);
            wts[i--] = wts[--nwts];
            continue;
        }
        if (w > wts[i].last)
            atomic_fetch_add_explicit(&worker_wait_total, w - wts[i].last,
                                      memory_order_relaxed);
        wts[i].last = w;
    }
}

static void *watchdog_main(void *arg)
{
    unsigned tick = 0;

    (void)arg;
    soak_role = "watchdog";
    while (!atomic_load(&watchdog_stop)) {
        uint64_t now = now_ns();
        int i, n = atomic_load(&nbeats), na = atomic_load(&napps);

        for (i = 0; i < na; i++)
            app_sample(apps[i], now);
        if (tick % 20 == 0)
            workers_refresh();
        workers_sample();
        sleep_us(5000);
        if (++tick % 40 != 0)
            continue;
        for (i = 0; i < n && i < MAX_BEATS; i++) {
            struct beat *b = &beats[i];
            uint64_t last = atomic_load(&b->last);

            if (atomic_load(&b->active) && now > last && now - last > opt.stall_ns)
                soak_fatal("watchdog: no progress in the %s for %.1f s (it was: %s)", b->name,
                           (now - last) / 1e9, atomic_load(&b->state));
        }
    }
    return NULL;
}

/* ---- summary ------------------------------------------------------------------------ */

#define C(f) ((unsigned long long)atomic_load(&cnt.f))

static void print_summary(void)
{
    offload_stats st;

    offload_get_stats(&st);
    printf("soak: %.1f s, seed %u, pool workers=%u capacity=%u, %d application threads x %d "
           "jobs, fork %s, provider %s, abandon %s\n",
           (now_ns() - run_start) / 1e9, opt.seed, opt.workers, opt.capacity, opt.threads,
           opt.jobs, opt.fork ? "on" : "off", opt.provider ? "on" : "off",
           opt.abandon ? "on" : "off");
    printf("soak: jobs %llu (fd %llu, callback %llu), calls %llu (offloaded %llu), "
           "EAGAINs %llu, callbacks %llu\n",
           C(jobs), C(jobs_fd), C(jobs_cb), C(calls), C(calls_offloaded), C(eagain),
           C(callbacks));
    printf("soak: resumes %llu (early at random %llu, after EAGAIN %llu), WAIT_CTX frees "
           "%llu, paused jobs abandoned %llu, blocked-pause calls %llu, calls outside jobs "
           "%llu\n",
           C(resumes), C(early_resumes), C(eagain_resumes), C(wctx_frees), C(abandoned),
           C(blocked_calls), C(outside_calls));
    printf("soak: errors checked %llu, marks checked %llu, stale-fd checks %llu, longest "
           "ASYNC_start_job %.2f ms (bound %.0f ms; slower: %llu overlapped a fork, %llu in "
           "libcrypto's own fetches, %llu excused by CPU waits), longest job %.1f ms (bound "
           "%.0f ms)\n",
           C(errors_checked), C(marks_checked), C(stale_checks), C(max_call_ns) / 1e6,
           opt.call_bound_ns / 1e6, C(slow_during_fork), C(slow_in_libcrypto), C(slow_excused),
           C(max_job_ns) / 1e6,
           opt.job_bound_ns / 1e6);
    printf("soak: load/unload cycles %llu (%llu with the module's pool alone), signatures "
           "%llu (%llu in jobs) + %llu in application jobs, blocking calls %llu (offloaded "
           "%llu, EAGAINs %llu)\n",
           C(prov_cycles), C(prov_alone_cycles), C(prov_signs), C(prov_signs_in_job),
           C(prov_calls), C(prov_block_calls), C(prov_block_offloaded), C(prov_block_eagain));
    printf("soak: forks %llu (children: exit %llu, inline call %llu, blocking call %llu, "
           "job %llu), longest fork() %.1f ms (prepare handlers %.1f ms, then %.1f ms "
           "to the parent handlers)\n",
           C(forks), C(fork_variant[0]), C(fork_variant[1]), C(fork_variant[2]),
           C(fork_variant[3]), C(max_fork_ns) / 1e6, C(max_fork_prepare_ns) / 1e6,
           C(max_fork_clone_ns) / 1e6);
    printf("soak: pool submitted %llu, completed %llu, rejected_full %llu, high_water %llu, "
           "depth %u\n",
           (unsigned long long)st.submitted, (unsigned long long)st.completed,
           (unsigned long long)st.rejected_full, (unsigned long long)st.high_water, st.depth);
    fflush(stdout);
}

/* ---- final checks ------------------------------------------------------------------ */

static void check_pool(void)
{
    uint64_t t0 = now_ns(), recorded, recorded_eagain, abandoned = C(abandoned);
    offload_stats st;

    /* Abandoned jobs' calls may still be finishing. */
    for (;;) {
        offload_get_stats(&st);
        if ((st.depth == 0 && st.submitted == st.completed) || now_ns() - t0 > 5000000000ull)
            break;
        sleep_us(1000);
    }
    if (st.depth != 0 || st.submitted != st.completed)
        soak_fail("the pool does not add up: submitted %llu, completed %llu, depth %u",
                  (unsigned long long)st.submitted, (unsigned long long)st.completed, st.depth);
    recorded = C(calls_offloaded) + C(prov_block_offloaded);
    recorded_eagain = C(eagain) + C(prov_block_eagain);
    /* Every accepted submit is a call that reported itself offloaded, except the
     * calls abandoned with their job (at most one each, and their EAGAINs). */
    if (st.submitted < recorded || st.submitted > recorded + abandoned)
        soak_fail("pool submitted %llu, calls that say they were offloaded %llu (+%llu "
                  "abandoned)", (unsigned long long)st.submitted,
                  (unsigned long long)recorded, (unsigned long long)abandoned);
    if (st.rejected_full < recorded_eagain || (abandoned == 0 && st.rejected_full != recorded_eagain))
        soak_fail("pool rejected_full %llu, EAGAINs the calls saw %llu",
                  (unsigned long long)st.rejected_full, (unsigned long long)recorded_eagain);
    offload_stop();
    offload_get_stats(&st);
    if (st.running != 0 || st.depth != 0)
        soak_fail("after offload_stop: %u workers running, depth %u", st.running, st.depth);
}

/* ---- main ------------------------------------------------------------------------------ */

static void usage(void)
{
    fprintf(stderr, "usage: soak [--seconds S] [--seed N] [--workers N] [--capacity N] "
            "[--threads N] [--jobs N] [--[no-]fork] [--[no-]provider] [--[no-]abandon] "
            "[--call-bound-ms N] [--job-bound-ms N] [--stall-s N] "
            "[--keep-going] [--fork-pool-child]\n");
    exit(64);
}

static void parse(int argc, char **argv)
{
    enum { O_SEC = 256, O_SEED, O_W, O_C, O_T, O_J, O_F, O_NF, O_P, O_NP, O_A, O_NA, O_CB,
           O_JB, O_ST, O_KG, O_FPC };
    static const struct option lo[] = {
        {"seconds", 1, NULL, O_SEC}, {"seed", 1, NULL, O_SEED},
        {"workers", 1, NULL, O_W},   {"capacity", 1, NULL, O_C},
        {"threads", 1, NULL, O_T},   {"jobs", 1, NULL, O_J},
        {"fork", 0, NULL, O_F},      {"no-fork", 0, NULL, O_NF},
        {"provider", 0, NULL, O_P},  {"no-provider", 0, NULL, O_NP},
        {"abandon", 0, NULL, O_A},   {"no-abandon", 0, NULL, O_NA},
        {"call-bound-ms", 1, NULL, O_CB}, {"job-bound-ms", 1, NULL, O_JB},
        {"stall-s", 1, NULL, O_ST},  
        {"keep-going", 0, NULL, O_KG}, {"fork-pool-child", 0, NULL, O_FPC},
        {NULL, 0, NULL, 0},
    };
    int c, seed_set = 0;

    opt.seconds = 30;
    opt.threads = 2;
    opt.jobs = 24;
    opt.fork = !SOAK_SANITIZED;
    opt.abandon = !SOAK_SANITIZED;
    opt.provider = 1;
    /* 100 ms plain: on the shared 2-core machine (load 5-10) a thread preempted while
     * it holds a lock that the application thread needs (glibc's malloc arena, one of
     * libcrypto's) has stalled a call for 80 ms beyond every excuse in
     * check_call_time, about once in 10 minutes at 50 ms. Sanitizers slow the
     * application's side 2-15x, and not the workers' sleeps; under TSan a pool's lazy
     * start (pthread_create, in the submitting job) alone has taken 0.8 s. */
    opt.call_bound_ns = (SOAK_TSAN ? 2000 : SOAK_ASAN ? 500 : 100) * 1000000ull;
    opt.job_bound_ns = (SOAK_SANITIZED ? 30000 : 5000) * 1000000ull;
    opt.stall_ns = (SOAK_SANITIZED ? 60 : 10) * 1000000000ull;
    opt.child_bound_ns = 5000000000ull;
    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (c) {
        case O_SEC: opt.seconds = atof(optarg); break;
        case O_SEED: opt.seed = (uint32_t)strtoul(optarg, NULL, 0); seed_set = 1; break;
        case O_W: opt.workers = (unsigned)atoi(optarg); break;
        case O_C: opt.capacity = (unsigned)atoi(optarg); break;
        case O_T: opt.threads = atoi(optarg); break;
        case O_J: opt.jobs = atoi(optarg); break;
        case O_F: opt.fork = 1; break;
        case O_NF: opt.fork = 0; break;
        case O_P: opt.provider = 1; break;
        case O_NP: opt.provider = 0; break;
        case O_A: opt.abandon = 1; break;
        case O_NA: opt.abandon = 0; break;
        case O_CB: opt.call_bound_ns = strtoull(optarg, NULL, 10) * 1000000ull; break;
        case O_JB: opt.job_bound_ns = strtoull(optarg, NULL, 10) * 1000000ull; break;
        case O_ST: opt.stall_ns = strtoull(optarg, NULL, 10) * 1000000000ull; break;
        case O_KG: opt.keep_going = 1; break;
        case O_FPC: opt.fork_pool_child = 1; break;
        default: usage();
        }
    }
    if (optind != argc || opt.seconds <= 0 || opt.threads < 1 || opt.threads > 8
        || opt.jobs < 1 || opt.jobs > 1024)
        usage();
    if (!seed_set)
        opt.seed = (uint32_t)(now_ns() ^ ((uint64_t)getpid() << 16));
    if (opt.workers == 0)
        opt.workers = 1 + opt.seed % 2;
    if (opt.capacity == 0)
        opt.capacity = 1 + (opt.seed / 2) % 4;
}

int main(int argc, char **argv)
{
    offload_config cfg = {0};
    pthread_t wd, pt, ft, at[8];
    struct beat *mb;
    uint64_t deadline, next_report;
    int i, started = 0, prov_started = 0, fork_started = 0;

    parse(argc, argv);
    setvbuf(stdout, NULL, _IOLBF, 0);
    soak_role = "main";
    /* Let the gdb we may spawn attach to us (Yama ptrace_scope 1). */
    (void)prctl(PR_SET_PTRACER, PR_SET_PTRACER_ANY, 0, 0, 0);
    run_start = now_ns();
    printf("soak: %.0f s, seed %u, pool workers=%u capacity=%u, %d threads x %d jobs, "
           "fork %s, provider %s, abandon %s\n", opt.seconds, opt.seed, opt.workers,
           opt.capacity, opt.threads, opt.jobs, opt.fork ? "on" : "off",
           opt.provider ? "on" : "off", opt.abandon ? "on" : "off");
    if (opt.fork && SOAK_SANITIZED)
        printf("soak: warning: fork under a sanitizer (see test/core.cmake)\n");

    work_init_reference();
    if (opt.fork)
        forker_init();
    cfg.workers = opt.workers;
    cfg.capacity = opt.capacity;
    if (!offload_start(&cfg)) {
        fprintf(stderr, "soak: offload_start: %s\n", strerror(errno));
        return 1;
    }
    if (opt.provider && !prov_start()) {
        fprintf(stderr, "soak: cannot set up the asyncpool library context\n");
        return 1;
    }
    app_sampler_init();
    for (i = 0; i < opt.threads; i++)
        if ((apps[i] = app_new(i)) == NULL) {
            fprintf(stderr, "soak: out of memory or fds\n");
            return 1;
        }
    atomic_store(&napps, opt.threads);
    if (pthread_create(&wd, NULL, watchdog_main, NULL) != 0)
        return 1;
    for (i = 0; i < opt.threads; i++) {
        if (pthread_create(&at[i], NULL, app_main, apps[i]) != 0) {
            soak_fail("cannot start application thread %d", i);
            break;
        }
        started++;
    }
    if (opt.provider && pthread_create(&pt, NULL, prov_main, NULL) == 0)
        prov_started = 1;
    if (opt.fork && pthread_create(&ft, NULL, fork_main, NULL) == 0)
        fork_started = 1;

    deadline = run_start + (uint64_t)(opt.seconds * 1e9);
    next_report = run_start + 60000000000ull;
    while (!atomic_load(&soak_stop) && now_ns() < deadline) {
        sleep_us(100000);
        if (now_ns() >= next_report) {
            next_report += 60000000000ull;
            printf("soak: %.0f s: jobs %llu, calls %llu, EAGAINs %llu, callbacks %llu, "
                   "forks %llu, load/unload cycles %llu\n", (now_ns() - run_start) / 1e9,
                   C(jobs), C(calls), C(eagain), C(callbacks), C(forks), C(prov_cycles));
        }
    }
    atomic_store(&soak_stop, 1);

    mb = beat_new("main thread");
    for (i = 0; i < started; i++) {
        beat(mb, "joining an application thread");
        pthread_join(at[i], NULL);
    }
    if (prov_started) {
        beat(mb, "joining the load/unload thread");
        pthread_join(pt, NULL);
    }
    if (fork_started) {
        beat(mb, "joining the fork thread");
        pthread_join(ft, NULL);
    }
    beat(mb, "checking the module's pool and unloading");
    prov_finish();
    beat(mb, "checking the pool and stopping it");
    check_pool();
    beat_off(mb);
    atomic_store(&watchdog_stop, 1);
    pthread_join(wd, NULL);
    for (i = 0; i < nwts; i++)
        close(wts[i].fd);
    for (i = 0; i < opt.threads; i++)
        app_free(apps[i]);

    print_summary();
    if (atomic_load(&failures) > 0) {
        printf("soak: FAILED (%d failed checks)\n", atomic_load(&failures));
        return 1;
    }
    printf("soak: PASS\n");
    return 0;
}
