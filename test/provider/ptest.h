/*
 * Shared helpers for the provider tests: a library context with "default" and
 * "asyncpool" loaded, the provider's counters, and an event loop that runs many
 * ASYNC jobs at once the way an async-aware application does.
 *
 * Development mode: with AP_PTEST_DEV=1 in the environment "our" side is fetched with
 * "provider=default" and asyncpool is not loaded, so the harness itself can be tested
 * before the module exists. Counter assertions are skipped in that mode (ap_dev()).
 */
#ifndef AP_PTEST_H
#define AP_PTEST_H

#include <stddef.h>
#include <stdint.h>

#include <check.h>
#include <openssl/async.h>
#include <openssl/evp.h>
#include <openssl/provider.h>

typedef struct ap_env {
    OSSL_LIB_CTX *lib;
    OSSL_PROVIDER *dflt;
    OSSL_PROVIDER *ap; /* NULL in development mode */
    const char *ours;  /* "provider=asyncpool" (or "provider=default" in dev mode) */
    const char *ref;   /* "provider=default" */
} ap_env;

/* 1 when AP_PTEST_DEV=1: no asyncpool, "ours" is the default provider. */
int ap_dev(void);
/* 1 under valgrind (AP_UNDER_VALGRIND=1): tests shrink their counts. */
int ap_valgrind(void);

/* Fresh libctx, default + asyncpool loaded. Returns 0 (and prints the error queue) on
 * failure. */
int ap_env_init(ap_env *e);
void ap_env_free(ap_env *e);

/* One uint64 counter of the provider ("asyncpool.sign.offloaded", ...).
 * Returns UINT64_MAX if it cannot be read (always in dev mode). */
uint64_t ap_ctr(const ap_env *e, const char *name);
/* "asyncpool.<op>.<kind>" */
uint64_t ap_opctr(const ap_env *e, const char *op, const char *kind);

/* Job loop statistics, for assertions about the async protocol itself. */
typedef struct ap_jobstats {
    int pauses;          /* ASYNC_PAUSE returns seen */
    int max_paused;      /* most jobs paused at once */
    int fd_changes;      /* a WAIT_CTX presented a different fd than before (design: stable) */
    int multi_fd;        /* a WAIT_CTX had more than one fd */
    int no_fd_pauses;    /* paused without any fd to wait on */
    int undrained;       /* fd still readable after its job finished */
    int lost_wakeup;     /* waited 30 s with jobs paused and nothing became readable */
} ap_jobstats;

/*
 * Run fn(args[i]) for every i < n, each in its own ASYNC job, at most `inflight` at
 * once from this thread, waiting on each WAIT_CTX's fd with epoll. rets[i] gets fn's
 * return value. The calling thread must have called ASYNC_init_thread(inflight, ...).
 * Returns 1 if every job ran to completion (whatever fn returned), 0 otherwise.
 */
int ap_run_jobs(int (*fn)(void *), void **args, int n, int inflight, int *rets,
                ap_jobstats *st);
/* The same functions called directly, outside any job. */
void ap_run_direct(int (*fn)(void *), void **args, int n, int *rets);

/* Write a config file that loads default and asyncpool, whose asyncpool section holds
 * `body` (and "activate = 1" when activate); returns its path (static storage; the
 * caller unlinks it). Fails the running Check test if it cannot. */
const char *ap_write_conf(const char *body, int activate);

/* Hex helpers. ap_unhex allocates (never NULL on success, even for ""), sets *len. */
unsigned char *ap_unhex(const char *hex, size_t *len);

/* Print and clear the thread's error queue, prefixed by what. */
void ap_dump_errors(const char *what);

/* Run a Check suite (forking each test, Check's default); returns the exit status. */
int ap_run_suite(Suite *s);

#endif
