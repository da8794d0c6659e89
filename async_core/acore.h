/*
 * async_core/ — "offload this call and wait for it", in OpenSSL's async job protocol.
 *
 * acore_call() runs fn(arg) and returns its result:
 *  - inside an ASYNC job: on a worker of the offload pool, pausing the job until the
 *    worker is done. The job's ASYNC_WAIT_CTX gets one eventfd (non-blocking,
 *    close-on-exec) for its whole life, made readable on completion; or, when the
 *    WAIT_CTX has a callback, the callback is called instead. A full queue makes the job
 *    resumable (fd, or ASYNC_STATUS_EAGAIN) and the call is resubmitted on resume.
 *  - outside a job: inline on the calling thread, or with ACORE_BLOCK, on a worker while
 *    the caller sleeps (an emulated synchronous accelerator).
 * OpenSSL errors fn raises on the worker are raised again on the caller's thread, after
 * the job resumes, with the same library, reason, data, file, line and function.
 * When the pool is not running (never started, stopping, or during fork()) the call runs
 * inline: nothing is lost.
 */
#ifndef ASYNCPOOL_ACORE_H
#define ASYNCPOOL_ACORE_H

/* Outside an async job, offload and block instead of running inline. */
#define ACORE_BLOCK 0x1u
/* Inside a job, never hand the application an eventfd that select() cannot wait on
 * (>= FD_SETSIZE): a job that would get one runs its calls inline instead. For
 * applications that wait with select(), such as openssl speed. */
#define ACORE_SELECT_FDS 0x2u
/* Inside a job: the calling thread keeps a core busy with calls it runs itself: wake a
 * worker for this call only while fewer than the pool's spare_cap are awake
 * (OFFLOAD_SPARE_CORE in offload/offload.h). */
#define ACORE_SPARE_CORE 0x4u
/* The call's emulation class (offload/emu.h), 1..15, in bits 8-11; 0 (the default):
 * never emulated. With device emulation on, an emulated call sees the device's latency
 * and faults wherever it runs: on the pool, and inline (outside a job, or when it
 * cannot be offloaded), where the calling thread waits out the latency. A failure
 * injected by the emulation returns 0 with "asyncpool: emulated device failure"
 * raised on the caller's error queue, without running fn. */
#define ACORE_CLASS(c) (((unsigned)(c) & 0xfu) << 8)
#define ACORE_CLASS_OF(flags) (((flags) >> 8) & 0xfu)

typedef struct acore_trace {
    int offloaded;   /* 1 if fn ran on a worker, 0 if inline */
    unsigned eagain; /* submits refused by a full queue before this one went through */
} acore_trace;

/*
 * Run fn(arg) as described above; returns what fn returned. If the call could not run
 * at all (it was orphaned by fork() in a child process), returns 0 with an error raised.
 * trace may be NULL.
 */
int acore_call(int (*fn)(void *arg), void *arg, unsigned flags, acore_trace *trace);

/* The key under which async_core registers its fd in every ASYNC_WAIT_CTX. */
const void *acore_wait_key(void);

#endif
