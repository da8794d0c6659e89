/*
 * offload/ — the "accelerator": one process-wide pool of worker threads behind a
 * bounded submission queue.
 *
 * It knows nothing of OpenSSL. A caller embeds an offload_req in its own object, fills
 * in run() and done(), and submits it; a worker calls run() and then done(). done() is
 * the caller's completion signal: after it returns the pool never touches the request
 * again.
 *
 * Lifetime: offload_start() takes a reference on the pool (configuring it when it is the
 * first), offload_stop() drops one; the last drop drains the queue and joins the workers.
 * Worker threads themselves start lazily on the first submit, so a child process after
 * fork() gets a working pool the first time it submits.
 */
#ifndef ASYNCPOOL_OFFLOAD_H
#define ASYNCPOOL_OFFLOAD_H

#include <stdint.h>

#include "emu.h"

/* Queue link, private to offload/. Callers never read or write it. */
typedef struct offload_link {
    void *opaque_;
} offload_link;

typedef struct offload_req offload_req;

/* How a request left the pool, as passed to done(). */
enum offload_how {
    OFFLOAD_RAN = 0,     /* run() was called on a worker */
    OFFLOAD_ABORTED = 1, /* run() was not called: the request was orphaned by fork() */
    OFFLOAD_FAILED = 2,  /* run() was not called: the emulated device failed it (emu.h) */
};

/* Emulation state of a request, private to offload/. */
typedef struct offload_emu_state {
    uint64_t due_;   /* CLOCK_MONOTONIC ns at which done() may be called */
    unsigned flags_; /* what the emulated device did with it; 0: not emulated */
} offload_emu_state;

struct offload_req {
    offload_link link;
    void (*run)(offload_req *req);
    void (*done)(offload_req *req, int how);
    /* Emulation class (emu.h), set by the caller before each submit; 0: the request
     * is never emulated. */
    unsigned emu_class;
    offload_emu_state emu_; /* private to offload/ */
    unsigned flags_;        /* private to offload/: the submit's flags */
};

/*
 * A waiter for queue space. A submitter that was told OFFLOAD_FULL may register one
 * (offload_wait_space). The invariant, whatever the interleaving: every registration
 * ends exactly once, either in offload_cancel_wait() returning 1, or in one call of
 * wake() (by a worker after it took a request off the queue, so a slot is free; by the
 * emulation's timer thread when an emulated ring slot frees or for an injected refusal
 * (emu.h); at shutdown; or in a fork child). wake() returns 1 if its owner takes the
 * wake-up (it will retry its submit), 0 if the owner no longer needs it (it already got
 * a slot, or is gone): the pool then wakes the next waiter, so a slot's wake-up is
 * never spent on a waiter that will not use it. aborted is 1 only in a child after fork(), for waiters
 * registered by the parent: then wake() must only release what it holds.
 * The owner keeps the waiter alive until its registration has ended.
 */
typedef struct offload_waiter offload_waiter;
struct offload_waiter {
    offload_waiter *next_, *prev_; /* private to offload/ */
    int queued_;                   /* private: on the pool's list */
    int (*wake)(offload_waiter *w, int aborted);
};

/* Results of offload_wait_space(). */
enum offload_wait_result {
    OFFLOAD_WAIT_ADDED = 0,   /* registered now: wake() or a cancel will end it */
    OFFLOAD_WAIT_ALREADY = 1, /* it was registered already; nothing changed */
    OFFLOAD_WAIT_RETRY = 2,   /* not registered: a slot is free now, submit again */
    OFFLOAD_WAIT_STOPPED = 3, /* not registered: the pool is not running */
};

/* Results of offload_submit(). */
enum offload_result {
    OFFLOAD_OK = 0,      /* queued; done() will be called exactly once */
    OFFLOAD_FULL = 1,    /* queue at capacity; nothing was queued; retry later */
    OFFLOAD_STOPPED = 2, /* no pool (never started, or stopping); nothing was queued */
};

typedef struct offload_config {
    unsigned workers;  /* 0: number of online CPUs */
    unsigned capacity; /* queue capacity; 0: 1024 */
    /* Optional: called by each worker (and the timer thread) just before it exits (e.g.
     * to free thread-locals). */
    void (*thread_exit)(void);
    /* Optional: device emulation (emu.h); NULL or inactive: none. Copied. */
    const offload_emu_config *emu;
    /* CPUs to plan OFFLOAD_SPARE_CORE submits for; 0: those this process may run on
     * (sched_getaffinity). */
    unsigned cores;
    /* Microseconds a worker may poll the queue after its last request before it
     * parks, at most OFFLOAD_MAX_SPIN_US. Each worker's window adapts: it halves when
     * it runs out unused (to none below spin_us / 8) and grows back when a park ends
     * sooner than spin_us. A worker spins only while at most spare_cap workers (see
     * offload_stats) are awake, itself included, and never with cores < 2; the others
     * park at once. A submit that claims a spinning worker (one no other submit has
     * claimed) wakes nobody. 0: park at once. */
    unsigned spin_us;
} offload_config;

typedef struct offload_stats {
    uint64_t submitted;     /* accepted by offload_submit() */
    uint64_t completed;     /* done() called after run(), or with OFFLOAD_FAILED */
    uint64_t rejected_full; /* OFFLOAD_FULL because the queue was at capacity (refusals
                             * of the emulated ring or by injection: emu stats) */
    uint64_t high_water;    /* largest queue depth seen */
    unsigned depth;         /* requests queued now, not yet taken by a worker */
    unsigned workers;       /* worker threads configured */
    unsigned capacity;      /* queue capacity configured */
    unsigned running;       /* worker threads alive now */
    unsigned parked;        /* workers parked now (asleep, or about to be) with nothing
                             * claimed for them */
    uint64_t parks;         /* times a worker announced that it parks */
    uint64_t unparks;       /* times a waker claimed a parked worker and woke it: never
                             * more than parks, one wake-up per park */
    uint64_t spared;        /* OFFLOAD_SPARE_CORE submits that left a parked worker
                             * asleep because spare_cap workers were awake */
    unsigned spare_cap;     /* most workers awake for OFFLOAD_SPARE_CORE submits */
    uint64_t spin_claims;   /* submits that claimed a spinning worker (offload_config
                             * spin_us) instead of waking a parked one */
    unsigned spinning;      /* workers spinning now, before they park, that a submit
                             * can claim */
    uint64_t spin_misses;   /* spins whose window ran out with nothing to do; each
                             * halves that worker's window (see spin_us) */
} offload_stats;

#define OFFLOAD_MAX_WORKERS 256
#define OFFLOAD_MAX_CAPACITY (1u << 24)
#define OFFLOAD_MAX_SPIN_US 1000000u

/*
 * Take a reference on the process-wide pool. The first reference configures it from cfg
 * (NULL: defaults); later ones ignore cfg's sizes, but must ask for the same emulation
 * as the running pool (none, or the same settings). Returns 1, or 0 with errno set
 * (EINVAL for a configuration out of range, EBUSY for an emulation that differs from
 * the running pool's).
 */
int offload_start(const offload_config *cfg);

/* Drop a reference. The last one drains the queue (every queued request runs and
 * completes), wakes every space waiter, and joins the workers; requests parked on the
 * emulation timer then complete at once, and the timer thread is joined. */
void offload_stop(void);

/* Queue req. Never blocks, never drops: see enum offload_result. Any thread may call.
 * With emulation, OFFLOAD_FULL also means the emulated ring is full or the submit was
 * refused by injection; offload_wait_space() then registers the waiter as for a full
 * queue (for an injected refusal it never answers OFFLOAD_WAIT_RETRY: the timer thread
 * wakes a waiter for it, so the caller's retry path runs). */
int offload_submit(offload_req *req);

/*
 * offload_submit() with flags. OFFLOAD_SPARE_CORE: the submitting thread keeps a core
 * busy with work of its own (an event loop that runs cheap calls inline when the queue
 * is long): wake a parked worker for this request only while fewer than spare_cap
 * workers are awake and not running a request submitted without the flag (spare_cap:
 * min(workers, cores - 1), at least 1; see offload_stats). An awake worker takes the
 * request before it parks, after what it is running: a spared request may wait for
 * the rest of one spared request per awake worker (or, in a short race, of a request
 * without the flag that a worker has just taken) while another worker sleeps. Use it
 * for short requests, whose wait costs less than the wake-up it saves.
 */
#define OFFLOAD_SPARE_CORE 0x1u
int offload_submit_ex(offload_req *req, unsigned flags);

/* Register w for a wake-up when a queue slot frees (see offload_waiter). Never calls
 * wake() itself: a slot that is already free is reported as OFFLOAD_WAIT_RETRY, so no
 * other waiter's wake-up (and what it signals) ever runs on the caller's thread. */
int offload_wait_space(offload_waiter *w);

/* End w's registration if it is still on the list: returns 1 (wake() will not be
 * called for it). 0: it is not on the list (never registered, or a waker has taken it
 * and calls or has called wake()). */
int offload_cancel_wait(offload_waiter *w);

/* Wake the first waiter that takes it, as if a slot had just freed. For an owner that
 * took a wake-up and then went away without using it. */
void offload_pass_wake(void);

/* Run fn(arg) once on every live worker thread and wait for all of them. Used to free
 * per-thread state that belongs to an object about to be freed. No-op without workers.
 * Must not be called from a worker. */
void offload_on_each_worker(void (*fn)(void *arg), void *arg);

/* 1 when called from one of the pool's worker threads. */
int offload_in_worker(void);

void offload_get_stats(offload_stats *st);

/* Requests queued now and not yet taken by a worker, and the workers configured (0: no
 * pool). Relaxed reads for a policy's hint: cheap enough for every call, exact never. */
unsigned offload_backlog(void);
unsigned offload_nworkers(void);

#endif
