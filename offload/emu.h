/*
 * offload/emu.h — accelerator emulation: device latency, ring depth and faults.
 *
 * Off unless offload_start() is given an active offload_emu_config. When on, every
 * request whose emu_class is not 0 goes through an emulated device:
 *  - at submit, one draw of a seeded PRNG decides whether the submit is refused (as if
 *    the ring were full: OFFLOAD_FULL), whether the request will fail (done() gets
 *    OFFLOAD_FAILED and run() is never called), and its latency;
 *  - the ring holds at most `ring` requests from a successful submit to done(), timer
 *    wait included; one more is refused with OFFLOAD_FULL like a full queue, and the
 *    slot freed at done() wakes a space waiter;
 *  - a worker runs the request and hands it to the pool's one timer thread, which calls
 *    done() once submit time + latency has passed. Latency never holds a worker.
 * Calls that do not go through the pool (run inline) get the same decisions and wait
 * out their latency on the calling thread: offload_emu_inline_begin/_end.
 *
 * Replay: decision n (a process-wide counter, one tick per submit or inline call) is a
 * pure function of (seed, n), so a single-threaded run with the same seed makes the
 * same decisions.
 */
#ifndef ASYNCPOOL_OFFLOAD_EMU_H
#define ASYNCPOOL_OFFLOAD_EMU_H

#include <stdatomic.h>
#include <stdint.h>

/* Request classes: 1..OFFLOAD_EMU_CLASSES-1 (the provider uses one per kind of
 * operation); class 0 is never emulated. */
#define OFFLOAD_EMU_CLASSES 16
/* Longest latency a configuration may ask for (fixed + jitter, or an exponential's
 * mean); a sample of an exponential is also capped at this. */
#define OFFLOAD_EMU_MAX_NS (60ull * 1000000000ull)

/* Latency = max(0, fixed ± uniform(jitter)) + exponential(mean exp_mean); any part may
 * be 0. */
typedef struct offload_emu_latency {
    uint64_t fixed_ns;
    uint64_t jitter_ns;
    uint64_t exp_mean_ns;
} offload_emu_latency;

typedef struct offload_emu_class {
    offload_emu_latency lat;
    double fail;   /* probability, 0..1, that a request fails (OFFLOAD_FAILED) */
    double refuse; /* probability, 0..1, that a submit is refused (OFFLOAD_FULL) */
} offload_emu_class;

typedef struct offload_emu_config {
    offload_emu_class cls[OFFLOAD_EMU_CLASSES]; /* cls[0] is ignored */
    unsigned ring; /* device ring depth; 0: no limit beyond the queue's */
    uint64_t seed;
} offload_emu_config;

typedef struct offload_emu_stats {
    uint64_t delayed;      /* requests (and inline calls) that waited out a latency */
    uint64_t ring_refused; /* submits refused because the ring was full */
    uint64_t refused;      /* submits refused by injection (refuse rate) */
    uint64_t faults;       /* requests (and inline calls) failed by injection */
    unsigned ring_used;    /* requests in the emulated device now */
    int on;                /* emulation configured in the running pool */
} offload_emu_stats;

/* 1 if c asks for any emulation (a ring, a latency, a rate). */
int offload_emu_config_active(const offload_emu_config *c);

void offload_emu_get_stats(offload_emu_stats *st);

/* For a call of class cls that runs on the calling thread instead of the device. */
typedef struct offload_emu_ticket {
    uint64_t due_ns; /* CLOCK_MONOTONIC time at which the call may return */
    int fail;        /* 1: do not run the call; fail it */
} offload_emu_ticket;

/* Read-mostly: nonzero while a pool with emulation exists. Written only by
 * offload_start/offload_stop (under the pool's lock), relaxed: it orders nothing, the
 * configuration it guards was published by the same lock or by the submit that made
 * the request. */
extern atomic_int offload_emu_on_;

static inline int offload_emu_enabled(void)
{
    return atomic_load_explicit(&offload_emu_on_, memory_order_relaxed) != 0;
}

/* Draw the decisions for an inline call of class cls: returns 0 (class not emulated:
 * do nothing more), or 1 with *t filled (counted in faults when t->fail). */
int offload_emu_inline_begin(unsigned cls, offload_emu_ticket *t);

/* Sleep until t->due_ns (counted in delayed if there was anything to wait). */
void offload_emu_inline_end(const offload_emu_ticket *t);

#endif
