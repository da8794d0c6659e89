/*
 * Helpers shared by the core tests: driving ASYNC jobs from a test's own event loop,
 * and waiting on the pool's counters with a deadline instead of a fixed sleep.
 */
#ifndef AP_TEST_CORE_UTIL_H
#define AP_TEST_CORE_UTIL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <check.h>
#include <openssl/async.h>

#include "async_core/acore.h"
#include "offload/offload.h"

/* 1 under valgrind (AP_UNDER_VALGRIND set by ap_add_test): scale counts down. */
int under_valgrind(void);
/* n, or n / div under valgrind (at least 1). */
int scaled(int n, int div);

uint64_t now_ns(void);
void sleep_us(unsigned us);
/* CLOCK_REALTIME timeout_ms milliseconds from now: an absolute deadline for the
 * pthread timed waits (pthread_cond_timedwait, pthread_timedjoin_np). */
struct timespec realtime_in_ms(int timeout_ms);

/* The calling thread's voluntary context switches so far (getrusage RUSAGE_THREAD
 * ru_nvcsw): the times it blocked (a sleep, a futex, a poll). Losing the core to another
 * thread, or to the hypervisor (steal), does not count: a preemption is involuntary
 * (ru_nivcsw) or, for steal, not seen by the guest at all. A timed call that took long
 * but did not change this count was held up, not asleep. */
long thread_nvcsw(void);

/* CPU time (user + system) of the whole process so far, µs (getrusage RUSAGE_SELF). */
long process_cpu_us(void);

/* The single fd of w; *count gets how many fds w has. -1 if none. */
int wctx_fd(ASYNC_WAIT_CTX *w, size_t *count);

/* 1 if fd is readable within timeout_ms. */
int fd_readable(int fd, int timeout_ms);

/* Poll offload_get_stats() until completed >= target; 1 on success, 0 on timeout. */
int wait_completed(uint64_t target, int timeout_ms);

/* Poll offload_get_stats() until `parked` workers are parked, the queue is empty and,
 * unless spinning < 0, `spinning` workers spin (offload_config.spin_us); 1 on success,
 * 0 on timeout. */
int wait_parked_spinning(unsigned parked, int spinning, int timeout_ms);

/* A request that counts its runs: run() adds one to req_ran, done() does nothing.
 * A test sets req_ran to 0 before it counts. */
extern atomic_int req_ran;
void req_count_run(offload_req *r);
void req_done_nop(offload_req *r, int how);
#define COUNTED_REQ ((offload_req){.run = req_count_run, .done = req_done_nop})
/* Poll req_ran until it is n or more; 1 if it is then exactly n, 0 if not or after
 * timeout_ms. */
int wait_req_ran(int n, int timeout_ms);

/* A gate a worker can block on until the test opens it. */
struct gate;
struct gate *gate_new(void);
void gate_wait(struct gate *g);    /* blocks until opened; counts waiters */
int gate_waiters(struct gate *g);  /* how many have entered gate_wait */
int gate_await_waiters(struct gate *g, int n, int timeout_ms);
void gate_open(struct gate *g);
void gate_free(struct gate *g);

/* A request that holds its worker in gate_wait(g) until the test opens g; if counted,
 * it then adds one to req_ran, as COUNTED_REQ does. */
struct held_req {
    offload_req req; /* first: run() gets &req */
    struct gate *g;
    int counted;
};
/* Sets h up with a new gate (h->g, NULL if gate_new failed); the test frees it. */
void held_req_init(struct held_req *h, int counted);

/* A cheap value the test can recompute: the offloaded calls return mix(input). */
static inline int mix(uint32_t x)
{
    x *= 2654435761u;
    x ^= x >> 15;
    x *= 2246822519u;
    x ^= x >> 13;
    return (int)(x & 0x7fffffff);
}

/* An offloaded call that blocks on a gate, then returns mix(in). */
struct gated_arg {
    struct gate *g;
    uint32_t in;
};
int gated(void *arg);

/* An ASYNC job (p points to a struct gjob *) making one gated call: got = its result,
 * tr = its trace. */
struct gjob {
    struct gate *g;
    uint32_t in;
    int got;
    acore_trace tr;
};
int gjob_fn(void *p);

/* Run tests as one Check suite, each in a forked child (so every test starts with fresh
 * pool counters); returns the process exit status. */
int run_core_suite(const char *name, const TTest *const tests[], size_t n);

#endif
