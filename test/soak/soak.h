/*
 * test/soak — everything at once, for a while: see soak.c for what runs and what is
 * checked. This header is what the parts share.
 */
#ifndef AP_TEST_SOAK_H
#define AP_TEST_SOAK_H

#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>

#include <openssl/async.h>

#include "async_core/acore.h"

#if defined(__SANITIZE_ADDRESS__)
#define SOAK_ASAN 1
#else
#define SOAK_ASAN 0
#endif
#if defined(__SANITIZE_THREAD__)
#define SOAK_TSAN 1
#else
#define SOAK_TSAN 0
#endif
#define SOAK_SANITIZED (SOAK_ASAN || SOAK_TSAN)

struct soak_opts {
    double seconds;
    uint32_t seed;
    unsigned workers, capacity;   /* the soak's own pool */
    int threads, jobs;            /* application threads, job slots per thread */
    int fork, provider, abandon;  /* parts switched on */
    int keep_going;               /* a failed check does not end the run */
    int fork_pool_child;          /* fork children also use the pool (forker.c) */
    uint64_t call_bound_ns;       /* longest ASYNC_start_job call allowed */
    uint64_t job_bound_ns;        /* longest job allowed, start to finish */
    uint64_t stall_ns;            /* watchdog: longest time without progress */
    uint64_t child_bound_ns;      /* longest life of a fork child */
};
extern struct soak_opts opt;

/* Counters for the summary and the final checks. Relaxed: they order nothing. */
struct soak_counts {
    atomic_ullong jobs, jobs_fd, jobs_cb, calls, calls_offloaded, eagain, callbacks,
        resumes, early_resumes, eagain_resumes, wctx_frees, abandoned, errors_checked,
        marks_checked, blocked_calls, outside_calls, stale_checks, slow_excused,
        slow_during_fork, slow_in_libcrypto,
        prov_calls, prov_cycles, prov_alone_cycles, prov_signs, prov_signs_in_job,
        prov_block_calls, prov_block_offloaded, prov_block_eagain, forks,
        fork_variant[4];
    _Atomic uint64_t max_call_ns, max_job_ns, max_fork_ns, max_fork_prepare_ns, max_fork_clone_ns;
};
extern struct soak_counts cnt;
#define COUNT(field, n) atomic_fetch_add_explicit(&cnt.field, (n), memory_order_relaxed)
void count_max(_Atomic uint64_t *m, uint64_t v);

/* Odd while the fork thread is inside fork() (prepare handlers included). */
extern atomic_uint fork_epoch;

/* 1 once the run should wind down (time is up, or a check failed). */
extern atomic_int soak_stop;

/* Record a failed check: printed at once (the first 40), counted, and the run winds
 * down (unless --keep-going). Any thread may call. */
void soak_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Something is stuck: print the message, every thread's stack (gdb, if present) and
 * the summary, and exit at once. */
_Noreturn void soak_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Print pid's thread stacks with gdb, if it is installed (SOAK_STACKS=0: never). */
void dump_stacks(pid_t pid);

/* Progress beats, watched by the watchdog thread. */
struct beat;
struct beat *beat_new(const char *name);
void beat(struct beat *b, const char *state); /* progress; state: a static string */
void beat_state(struct beat *b, const char *state); /* what it does now, no progress */
void beat_off(struct beat *b);                      /* the thread is done */

/* Set on every thread the soak starts (NULL on pool workers): a callback must never
 * run on one of them. */
extern _Thread_local const char *soak_role;
/* Fails the run unless this thread is a pool worker (the soak's pool or the
 * module's). */
void check_callback_thread(void);

uint32_t rnd(uint32_t *s);
uint64_t soak_elapsed_ns(void); /* since the run began */
uint64_t schedstat_wait_ns(int fd); /* run-queue wait of a thread, from its schedstat */
/* The pool workers' run-queue waits so far, added up (sampled every 5 ms). */
uint64_t workers_wait_ns(void);

/* ---- work.c: the offloaded functions and the calls a job makes ------------------ */

enum call_kind {
    K_PLAIN,      /* acore_call(work): result checked */
    K_RAISE,      /* acore_call(work_raise): exactly its error, nothing else */
    K_MARK_PRE,   /* an error queued and a mark set, then a call: as inline */
    K_MARK_EMPTY, /* a mark set on an empty queue, then a call: as inline */
    K_BLOCKED,    /* a call under ASYNC_block_pause() */
    K_PROV,       /* an ECDSA signature through the long-lived asyncpool libctx */
    K_NKINDS
};

struct call_plan {
    uint8_t kind;
    uint8_t raise; /* mark kinds: the call raises */
    uint8_t spin;  /* busy-wait instead of sleep */
    uint16_t us;   /* work time on the worker */
    uint32_t in;
};

/* What a job reports back to its loop. */
struct jctx {
    const char *fail; /* the first failed check, NULL if none */
    int fail_call;
    long fail_a, fail_b;
    int cur_call;     /* the call in progress */
    int in_prov;      /* 1 while it uses the shared asyncpool libctx (never abandoned) */
    int blocked;      /* a K_BLOCKED call ran since the loop last resumed the job */
    uint64_t ossl_ns; /* since then, in libcrypto's own work around K_PROV calls */
};

void work_init_reference(void);
void plan_call(struct call_plan *c, uint32_t *rng, int allow_prov);
/* Make one call as a job does, and check it; 0 with j->fail set if a check failed. */
int do_call(const struct call_plan *c, struct jctx *j);
/* The offloaded function and its argument, for callers outside jobs. */
struct wargs {
    uint32_t in;
    uint16_t us;
    uint8_t spin;
    int reason;        /* work_raise: the reason to raise */
    int raise_line;    /* work_raise: the line it raised from */
    int ran_on_worker; /* written by the function */
    int got, offloaded; /* job_plain_call: what it saw */
    unsigned long err;  /* job_plain_call: the first error queued after the call */
};
int work(void *arg);
int mix_of(uint32_t in);
/* A job body: one plain call through acore_call, counted; 1 if its result is right. */
int job_plain_call(void *arg);

/* ---- prov.c: the provider in other library contexts ------------------------------ */

int prov_start(void);           /* the long-lived libctx; 0 on failure */
void *prov_main(void *arg);     /* the load/unload thread */
int prov_call_in_job(uint32_t in, struct jctx *j); /* K_PROV; -1: no libctx open now */
void prov_finish(void);         /* final checks of the module's pool; frees the libctx */
/* Application threads: call enter first, tick at the top of every loop iteration
 * (drops this thread's state of a shared libctx about to be freed), leave last. */
void prov_app_enter(unsigned *seen);
void prov_app_tick(unsigned *seen);
void prov_app_leave(void);
/* The fork thread brackets fork() with these (see prov.c: a known defect). */

/* ---- a job run to its end by a thread that may block (provider thread, fork child) */

/* Run fn(arg) in a job, waiting with poll() on its fds, or for its callback
 * (cb_mode). Returns fn's result, or -1 with *why set if it failed or took longer
 * than bound_ns. */
int run_job_blocking(int (*fn)(void *), void *arg, int cb_mode, uint64_t bound_ns,
                     const char **why);

/* ---- app.c, forker.c ------------------------------------------------------------- */

struct app;
struct app *app_new(int id);
void *app_main(void *arg);
void app_free(struct app *a);
/* A thread inside one ASYNC_start_job call for most of opt.call_bound_ns gets SIGUSR1
 * and prints its stack (a few times per run): app_sample is called every few ms. */
void app_sampler_init(void);
void app_sample(struct app *a, uint64_t now);
void *fork_main(void *arg);
void forker_init(void); /* before offload_start and any provider load */

#endif
