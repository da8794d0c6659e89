/*
 * The fork thread (plain build only: GCC 12's ASan allocator is not fork-safe, and
 * ThreadSanitizer cannot follow a child that starts threads; see test/core.cmake).
 *
 * Every 100-300 ms it forks while everything else runs. The child does one of:
 *  0. _exit(0) at once;
 *  1. one call outside a job (inline) and checks its result;
 *  2. one ACORE_BLOCK call: the child's pool starts its workers lazily;
 *  3. one call inside a job of its own, waiting on its fd.
 * Each child must exit 0 within opt.child_bound_ns; a child that hangs has its stacks
 * printed and fails the run. Both pools' fork handlers (the soak's and the module's)
 * run on every fork, while the other threads submit, load and unload.
 *
 * Kept out of the default run (--fork-pool-child puts variants 2 and 3 back): a child
 * that starts a pool of its own. A new thread in the child makes its OpenSSL
 * per-thread state on its first call (error queue, thread-stop handlers), which takes
 * libcrypto's global thread-event lock; if another thread of the parent held that lock
 * at the fork (a libctx being freed, OPENSSL_thread_stop_ex, a thread starting or
 * exiting), the child's copy stays locked and the child hangs in its first call. This
 * is OpenSSL's hazard, not the pool's: OpenSSL 3.x registers no fork handlers for its
 * locks, and the child's main thread would hang the same way making a new thread that
 * calls OpenSSL. asyncpool's part is that no worker is inside a request at the fork
 * (offload.c's fork_prepare), so no worker holds a libcrypto lock then. Seen: one
 * child in about 125 hung in one 10-minute run, none of 400 in a 3-minute one.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/err.h>

#include "soak.h"
#include "test/core/util.h"

static _Noreturn void child(int variant, uint32_t in)
{
    struct wargs a = {.in = in, .us = 20};
    const char *why;
    int r;

    switch (variant) {
    case 0:
        _exit(0);
    case 1:
        r = acore_call(work, &a, 0, NULL);
        _exit(r == mix_of(in) ? 0 : 11);
    case 2:
        r = acore_call(work, &a, ACORE_BLOCK, NULL);
        _exit(r == mix_of(in) ? 0 : 12);
    default:
        r = run_job_blocking(job_plain_call, &a, 0, opt.child_bound_ns / 2, &why);
        if (r != 1) {
            char msg[256];
            int n = snprintf(msg, sizeof(msg), "soak: fork child %d: a job with one call "
                             "failed: %s (got %d, want %d, offloaded %d, ran on a worker %d, "
                             "error %lx)\n", (int)getpid(), why ? why : "wrong result",
                             a.got, mix_of(in), a.offloaded, a.ran_on_worker, a.err);

            /* write(), not stdio: a FILE lock may have been held at the fork */
            if (n > 0)
                (void)!write(2, msg, (size_t)n < sizeof(msg) ? (size_t)n : sizeof(msg) - 1);
        }
        _exit(r == 1 ? 0 : 13);
    }
}

atomic_uint fork_epoch;

/* Where a fork's time goes. Registered before any pool's handlers: prepare handlers
 * run in reverse order of registration, so ours runs last (after both pools' and
 * libcrypto's), and our parent handler first. */
static uint64_t fork_t_prepared, fork_t_parent;

static void fork_prepared(void)
{
    fork_t_prepared = now_ns();
}

static void fork_in_parent(void)
{
    fork_t_parent = now_ns();
}

void forker_init(void)
{
    pthread_atfork(fork_prepared, fork_in_parent, NULL);
}

void *fork_main(void *arg)
{
    struct beat *b = beat_new("fork thread");
    uint32_t rng = opt.seed ^ 0x85ebca6bu;
    struct wargs warm = {.in = 1};
    const char *why;

    (void)arg;
    soak_role = "fork";
    /* This thread's OpenSSL state (error queue, async context) exists before the first
     * fork, so a child does not have to make it. */
    (void)ERR_peek_error();
    (void)run_job_blocking(job_plain_call, &warm, 0, opt.job_bound_ns, &why);
    while (!atomic_load(&soak_stop)) {
        uint64_t until = now_ns() + 100000000u + rnd(&rng) % 200000000u, t0;
        int variant = (int)(rnd(&rng) % (opt.fork_pool_child ? 4 : 2)), status = 0;
        uint32_t in = rnd(&rng);
        pid_t pid, w;

        beat(b, "sleeping");
        while (now_ns() < until && !atomic_load(&soak_stop))
            sleep_us(5000);
        if (atomic_load(&soak_stop))
            break;
        beat_state(b, "in fork()");
        t0 = now_ns();
        atomic_fetch_add(&fork_epoch, 1);
        pid = fork();
        if (pid == 0)
            child(variant, in);
        atomic_fetch_add(&fork_epoch, 1);
        {
            uint64_t total = now_ns() - t0;

            if (total > atomic_load(&cnt.max_fork_ns)) {
                atomic_store(&cnt.max_fork_prepare_ns, fork_t_prepared - t0);
                atomic_store(&cnt.max_fork_clone_ns, fork_t_parent - fork_t_prepared);
            }
            count_max(&cnt.max_fork_ns, total);
        }
        if (pid < 0) {
            soak_fail("fork: %s", strerror(errno));
            break;
        }
        beat(b, "waiting for the child");
        t0 = now_ns();
        while ((w = waitpid(pid, &status, WNOHANG)) == 0 && now_ns() - t0 < opt.child_bound_ns)
            sleep_us(1000);
        if (w == 0) {
            fprintf(stderr, "soak: fork child %d (variant %d) still running after %.1f s; "
                    "its stacks:\n", (int)pid, variant, opt.child_bound_ns / 1e9);
            dump_stacks(pid);
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            soak_fail("a fork child (variant %d) hung", variant);
            continue;
        }
        if (w < 0) {
            soak_fail("waitpid: %s", strerror(errno));
            break;
        }
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            soak_fail("a fork child (variant %d) failed: %s %d", variant,
                      WIFEXITED(status) ? "exit status" : "signal",
                      WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
        COUNT(forks, 1);
        COUNT(fork_variant[variant], 1);
    }
    beat_off(b);
    ASYNC_cleanup_thread();
    OPENSSL_thread_stop();
    return NULL;
}
