/*
 * The provider part: asyncpool loaded from OPENSSL_MODULES into library contexts of
 * its own.
 *
 *  - A long-lived libctx ("shared") that the application threads' jobs sign through
 *    now and then (K_PROV), so its requests are in flight on the module's workers
 *    while the load/unload thread tears other instances down.
 *  - The load/unload thread: a fresh libctx, load default and asyncpool, make a key,
 *    sign and verify inside a job (fd or callback mode) or outside one, unload in a
 *    random order, free. Every so often it closes the shared libctx (after its users
 *    are done) for a few cycles, so the module's pool also goes from 0 to 1 reference
 *    and back: full start (lazy threads) and stop (drain, join), not only the
 *    teardown broadcast. In those cycles it is the module pool's only user, and its
 *    counters must add up before each unload.
 *  - It also makes blocking calls (ACORE_BLOCK) on the soak's own pool, which meet
 *    its full queue outside any job.
 *
 * The module links its own copy of offload/ and async_core/ (only OSSL_provider_init
 * leaves it), so its pool is not the soak's: the two pools only share the process.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/provider.h>

#include "offload/offload.h"
#include "soak.h"
#include "test/core/util.h"

struct lctx {
    OSSL_LIB_CTX *lib;
    OSSL_PROVIDER *dflt, *ap;
    EVP_PKEY *key;
};

static _Atomic(struct lctx *) shared;
static atomic_int shared_users;

/*
 * OpenSSL 3.0 keeps per-thread state for each library context a thread used (its
 * DRBGs, ...), and a thread's exit handler reads it: a thread must call
 * OPENSSL_thread_stop_ex(ctx) before ctx is freed (OSSL_LIB_CTX(3)). So before the
 * shared libctx goes, every application thread is asked to do that on itself, at the
 * top of its loop (no job of it is inside the libctx then), and the closer waits for
 * their answers.
 */
static _Atomic(OSSL_LIB_CTX *) dying_lib;
static atomic_uint dying_gen;
static atomic_int dying_acks, app_threads_live;

void prov_app_enter(unsigned *seen)
{
    *seen = atomic_load(&dying_gen);
    atomic_fetch_add(&app_threads_live, 1);
}

void prov_app_tick(unsigned *seen)
{
    unsigned g = atomic_load(&dying_gen);

    if (g == *seen)
        return;
    *seen = g;
    OPENSSL_thread_stop_ex(atomic_load(&dying_lib));
    atomic_fetch_add(&dying_acks, 1);
}

void prov_app_leave(void)
{
    OPENSSL_thread_stop(); /* every libctx, the shared one included, before it goes */
    atomic_fetch_sub(&app_threads_live, 1);
}

static void print_errors(const char *what)
{
    unsigned long e;
    char buf[256];

    while ((e = ERR_get_error()) != 0) {
        ERR_error_string_n(e, buf, sizeof(buf));
        fprintf(stderr, "soak:   %s: %s\n", what, buf);
    }
}

static EVP_PKEY *keygen(OSSL_LIB_CTX *lib, const char *propq)
{
    EVP_PKEY_CTX *kc = EVP_PKEY_CTX_new_from_name(lib, "EC", propq);
    EVP_PKEY *k = NULL;

    if (kc != NULL && EVP_PKEY_keygen_init(kc) == 1
        && EVP_PKEY_CTX_set_group_name(kc, "P-256") == 1)
        (void)EVP_PKEY_keygen(kc, &k);
    EVP_PKEY_CTX_free(kc);
    return k;
}

static void lctx_free(struct lctx *l, int key_first)
{
    if (l == NULL)
        return;
    /* Either order is legal: the key keeps the provider alive until it goes. */
    if (key_first)
        EVP_PKEY_free(l->key);
    if (l->ap != NULL)
        OSSL_PROVIDER_unload(l->ap);
    if (l->dflt != NULL)
        OSSL_PROVIDER_unload(l->dflt);
    if (!key_first)
        EVP_PKEY_free(l->key);
    OPENSSL_thread_stop_ex(l->lib); /* this thread's state of it (see above) */
    OSSL_LIB_CTX_free(l->lib);
    free(l);
}

static struct lctx *lctx_new(const char *keyprop)
{
    struct lctx *l = calloc(1, sizeof(*l));

    if (l == NULL || (l->lib = OSSL_LIB_CTX_new()) == NULL) {
        soak_fail("OSSL_LIB_CTX_new failed");
        free(l);
        return NULL;
    }
    if ((l->dflt = OSSL_PROVIDER_load(l->lib, "default")) == NULL
        || (l->ap = OSSL_PROVIDER_load(l->lib, "asyncpool")) == NULL) {
        soak_fail("cannot load %s (OPENSSL_MODULES=%s)",
                  l->dflt == NULL ? "default" : "asyncpool",
                  getenv("OPENSSL_MODULES") ? getenv("OPENSSL_MODULES") : "(unset)");
        print_errors("load");
        lctx_free(l, 1);
        return NULL;
    }
    if ((l->key = keygen(l->lib, keyprop)) == NULL) {
        soak_fail("EC key generation (%s) failed", keyprop);
        print_errors("keygen");
        lctx_free(l, 1);
        return NULL;
    }
    return l;
}

/* Sign msg(in) through asyncpool, verify through default. 1 if both worked. */
/* Sign msg(in) through asyncpool, verify through default: 1 if both worked. *ossl_ns
 * (if not NULL) gets the time spent in libcrypto's own work around the offload: the
 * sign's init (fetches, which wait for locks a load or unload elsewhere may hold) and
 * the verify (inline, default provider). Neither pauses. */
static int sign_verify(struct lctx *l, uint32_t in, uint64_t *ossl_ns)
{
    unsigned char msg[32], sig[96];
    size_t siglen = sizeof(sig);
    EVP_MD_CTX *m = EVP_MD_CTX_new();
    uint64_t t0;
    int ok, i;

    for (i = 0; i < 32; i++)
        msg[i] = (unsigned char)(mix_of(in + (uint32_t)i) & 0xff);
    t0 = now_ns();
    ok = m != NULL
         && EVP_DigestSignInit_ex(m, NULL, "SHA256", l->lib, "provider=asyncpool", l->key,
                                  NULL) == 1;
    if (ossl_ns != NULL)
        *ossl_ns += now_ns() - t0;
    ok = ok && EVP_DigestSign(m, sig, &siglen, msg, sizeof(msg)) == 1;
    EVP_MD_CTX_free(m);
    if (!ok)
        return 0;
    t0 = now_ns();
    m = EVP_MD_CTX_new();
    ok = m != NULL
         && EVP_DigestVerifyInit_ex(m, NULL, "SHA256", l->lib, "provider=default", l->key,
                                    NULL) == 1
         && EVP_DigestVerify(m, sig, siglen, msg, sizeof(msg)) == 1;
    EVP_MD_CTX_free(m);
    if (ossl_ns != NULL)
        *ossl_ns += now_ns() - t0;
    return ok;
}

/*
 * Application signatures go on while another thread forks: during fork() the pool
 * refuses submits and the call runs inline, so the backend leaves per-thread state on
 * this thread in asyncpool's private libctx. That libctx is kept for the life of the
 * process (provider/backend.c), so the thread's exit handlers find it alive after any
 * number of unloads (issue 8, defect 2; test provider_thread_exit).
 */
int prov_call_in_job(uint32_t in, struct jctx *j)
{
    struct lctx *l;
    int ok;

    /* users first, then the pointer: a closer that swapped the pointer out before
     * our load sees us in users and waits (seq_cst on both sides). */
    atomic_fetch_add(&shared_users, 1);
    l = atomic_load(&shared);
    if (l == NULL) {
        atomic_fetch_sub(&shared_users, 1);
        return -1;
    }
    j->in_prov = 1;
    ok = sign_verify(l, in, &j->ossl_ns);
    j->in_prov = 0;
    atomic_fetch_sub(&shared_users, 1);
    COUNT(prov_calls, 1);
    if (!ok) {
        j->fail = "signature through the shared asyncpool libctx failed";
        j->fail_call = j->cur_call;
        j->fail_a = (long)ERR_peek_error();
        j->fail_b = 0;
        return 0;
    }
    if (ERR_peek_error() != 0) {
        j->fail = "errors queued after a good signature";
        j->fail_call = j->cur_call;
        j->fail_a = (long)ERR_peek_error();
        j->fail_b = 0;
        return 0;
    }
    return 1;
}

int prov_start(void)
{
    struct lctx *l = lctx_new("provider=default");

    if (l == NULL)
        return 0;
    /* Its key was made here; another thread may free it: drop this thread's state of
     * it now (see above). */
    OPENSSL_thread_stop_ex(l->lib);
    atomic_store(&shared, l);
    return 1;
}

static void shared_close(struct beat *b)
{
    struct lctx *l = atomic_exchange(&shared, NULL);

    beat_state(b, "closing the shared libctx: waiting for its users");
    while (atomic_load(&shared_users) != 0)
        sleep_us(200);
    beat(b, "closing the shared libctx: application threads drop their state of it");
    atomic_store(&dying_lib, l->lib);
    atomic_store(&dying_acks, 0);
    atomic_fetch_add(&dying_gen, 1);
    /* A thread that leaves instead of answering cleans up everything first. */
    while (atomic_load(&dying_acks) < atomic_load(&app_threads_live))
        sleep_us(200);
    beat(b, "closing the shared libctx: unloading");
    lctx_free(l, 1);
}

/* The module pool's counters through the provider's parameters. */
static int module_pool(OSSL_PROVIDER *ap, uint64_t *submitted, uint64_t *completed,
                       uint64_t *depth)
{
    OSSL_PARAM p[] = {
        OSSL_PARAM_uint64("asyncpool.pool.submitted", submitted),
        OSSL_PARAM_uint64("asyncpool.pool.completed", completed),
        OSSL_PARAM_uint64("asyncpool.pool.depth", depth),
        OSSL_PARAM_END,
    };

    return OSSL_PROVIDER_get_params(ap, p) == 1;
}

static void check_module_pool(OSSL_PROVIDER *ap, const char *when)
{
    uint64_t s = 0, c = 0, d = 0;

    if (!module_pool(ap, &s, &c, &d)) {
        soak_fail("%s: cannot read asyncpool.pool.* from the provider", when);
        return;
    }
    if (s != c || d != 0)
        soak_fail("%s: the module's pool does not add up: submitted %llu, completed %llu, "
                  "depth %llu", when, (unsigned long long)s, (unsigned long long)c,
                  (unsigned long long)d);
}

void prov_finish(void)
{
    struct lctx *l = atomic_exchange(&shared, NULL);

    if (l == NULL)
        return;
    /* Every user has finished: the module's pool is quiet. */
    check_module_pool(l->ap, "end of run");
    lctx_free(l, 1);
}

/* ---- the load/unload thread ----------------------------------------------------- */

struct sign_arg {
    struct lctx *l;
    uint32_t in;
};

static int sign_job(void *p)
{
    struct sign_arg *a = p;
    int ok = sign_verify(a->l, a->in, NULL);

    /* A job's errors stay on this thread's queue after the job: report them there. */
    return ok && ERR_peek_error() == 0;
}

static void one_cycle(uint32_t *rng, struct beat *b, int alone)
{
    struct lctx *l;
    ASYNC_WAIT_CTX *keep = NULL;
    int i, n = 1 + (int)(rnd(rng) % 3);

    beat(b, "loading asyncpool");
    l = lctx_new(rnd(rng) & 1 ? "provider=asyncpool" : "provider=default");
    if (l == NULL)
        return;
    for (i = 0; i < n; i++) {
        struct sign_arg a = {l, rnd(rng)};
        uint32_t how = rnd(rng) % 4;

        beat(b, how == 0 ? "signing outside a job" : "signing in a job");
        if (how == 0) {
            if (!sign_job(&a)) {
                soak_fail("signature outside a job failed (cycle of the load/unload thread)");
                print_errors("sign");
            }
        } else {
            const char *why = NULL;
            int r = run_job_blocking(sign_job, &a, how == 3, opt.job_bound_ns, &why);

            if (r != 1) {
                soak_fail("signature in a job (%s mode) failed: %s",
                          how == 3 ? "callback" : "fd", why ? why : "bad signature");
                print_errors("sign in job");
            }
            COUNT(prov_signs_in_job, 1);
        }
        COUNT(prov_signs, 1);
    }
    /* Sometimes a WAIT_CTX that used the module outlives the unload (its cleanup
     * callback is the module's). */
    if (rnd(rng) % 4 == 0) {
        struct sign_arg a = {l, rnd(rng)};
        ASYNC_JOB *job = NULL;
        int ret = 0, r;

        keep = ASYNC_WAIT_CTX_new();
        beat(b, "signing in a job whose WAIT_CTX outlives the unload");
        while ((r = ASYNC_start_job(&job, keep, &ret, sign_job, &a, sizeof(a))) == ASYNC_PAUSE)
            sleep_us(100);
        if (r != ASYNC_FINISH || ret != 1)
            soak_fail("signature in a kept WAIT_CTX's job failed (%d, %d)", r, ret);
    }
    if (alone) {
        /* Nobody else uses the module's pool: everything it accepted is done. */
        check_module_pool(l->ap, "before unload, module pool alone");
    }
    beat(b, "unloading asyncpool");
    lctx_free(l, rnd(rng) & 1);
    ASYNC_WAIT_CTX_free(keep);
    COUNT(prov_cycles, 1);
    if (alone)
        COUNT(prov_alone_cycles, 1);
}

/* A blocking call on the soak's own pool (outside any job, queue often full). */
static void block_call(uint32_t *rng)
{
    struct wargs a = {.in = rnd(rng), .us = (uint16_t)(rnd(rng) % 200)};
    acore_trace t;
    int r = acore_call(work, &a, ACORE_BLOCK, &t);

    COUNT(prov_block_calls, 1);
    COUNT(prov_block_offloaded, (unsigned)t.offloaded);
    COUNT(prov_block_eagain, t.eagain);
    if (r != mix_of(a.in))
        soak_fail("ACORE_BLOCK call: got %d, want %d", r, mix_of(a.in));
    if (t.offloaded != a.ran_on_worker)
        soak_fail("ACORE_BLOCK call: trace.offloaded %d but ran on a worker: %d",
                  t.offloaded, a.ran_on_worker);
}

void *prov_main(void *arg)
{
    struct beat *b = beat_new("load/unload thread");
    uint32_t rng = opt.seed ^ 0x9e3779b9u;
    int cycle = 0, alone_left = 0;

    (void)arg;
    soak_role = "load/unload";
    while (!atomic_load(&soak_stop)) {
        cycle++;
        if (alone_left == 0 && cycle % 25 == 0) {
            shared_close(b);
            alone_left = 4;
        }
        one_cycle(&rng, b, alone_left > 0);
        if (rnd(&rng) % 2 == 0) {
            beat(b, "blocking call on the soak's pool");
            block_call(&rng);
        }
        if (alone_left > 0 && --alone_left == 0) {
            beat(b, "reopening the shared libctx");
            if (!prov_start())
                break;
        }
        beat(b, "sleeping");
        sleep_us(2000 + rnd(&rng) % 15000);
    }
    beat_off(b);
    ASYNC_cleanup_thread();
    OPENSSL_thread_stop();
    return NULL;
}

/* ---- a job run to its end by a thread that may block --------------------------- */

struct bwait {
    int efd;
    atomic_uint calls;
};

static int bwait_callback(void *arg)
{
    struct bwait *w = arg;
    uint64_t one = 1;

    check_callback_thread();
    atomic_fetch_add(&w->calls, 1);
    COUNT(callbacks, 1);
    return write(w->efd, &one, sizeof(one)) == sizeof(one);
}

struct bjob {
    int (*fn)(void *);
    void *arg;
};

static int bjob_main(void *p)
{
    struct bjob *b = *(struct bjob **)p;

    return b->fn(b->arg);
}

int run_job_blocking(int (*fn)(void *), void *arg, int cb_mode, uint64_t bound_ns,
                     const char **why)
{
    struct bjob bj = {fn, arg}, *bp = &bj;
    /* On the heap: a job that overruns is left paused with its WAIT_CTX and this,
     * which a late callback may still use. */
    struct bwait *bw = calloc(1, sizeof(*bw));
    ASYNC_WAIT_CTX *w = ASYNC_WAIT_CTX_new();
    ASYNC_JOB *job = NULL;
    uint64_t start = now_ns();
    int ret = 0, r, result = -1, leak = 0;

    *why = NULL;
    if (w == NULL || bw == NULL) {
        *why = "out of memory";
        goto out;
    }
    bw->efd = -1;
    if (cb_mode) {
        bw->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (bw->efd < 0 || !ASYNC_WAIT_CTX_set_callback(w, bwait_callback, bw)) {
            *why = "no eventfd or callback";
            goto out;
        }
    }
    for (;;) {
        r = ASYNC_start_job(&job, w, &ret, bjob_main, &bp, sizeof(bp));
        if (r == ASYNC_FINISH)
            break;
        if (r != ASYNC_PAUSE) {
            *why = "ASYNC_start_job failed";
            goto out;
        }
        if (now_ns() - start > bound_ns) {
            /* Left paused, and leaked: it may still be waiting for its call. Freeing
             * its WAIT_CTX would be the application bug README describes. */
            *why = "the job did not finish in time";
            leak = 1;
            goto out;
        }
        if (cb_mode) {
            struct pollfd p = {.fd = bw->efd, .events = POLLIN};
            uint64_t v;

            /* EAGAIN: resume it ourselves about 1 ms later; OK: wait for the callback
             * (and resume anyway every 100 ms, as a timer would). */
            if (ASYNC_WAIT_CTX_get_status(w) == ASYNC_STATUS_EAGAIN) {
                sleep_us(1000);
                continue;
            }
            (void)poll(&p, 1, 100);
            while (read(bw->efd, &v, sizeof(v)) > 0)
                ;
        } else {
            OSSL_ASYNC_FD fds[4];
            struct pollfd p[4];
            size_t n = 0, i;

            if (!ASYNC_WAIT_CTX_get_all_fds(w, NULL, &n) || n > 4
                || !ASYNC_WAIT_CTX_get_all_fds(w, fds, &n)) {
                *why = "ASYNC_WAIT_CTX_get_all_fds failed or too many fds";
                leak = 1;
                goto out;
            }
            for (i = 0; i < n; i++) {
                p[i].fd = fds[i];
                p[i].events = POLLIN;
            }
            if (n == 0)
                sleep_us(1000);
            else
                (void)poll(p, n, 100);
        }
    }
    result = ret;
    /* No signal of the finished job may be left. */
    {
        OSSL_ASYNC_FD fds[4];
        size_t n = 0, i;

        if (ASYNC_WAIT_CTX_get_all_fds(w, NULL, &n) && n <= 4
            && ASYNC_WAIT_CTX_get_all_fds(w, fds, &n))
            for (i = 0; i < n; i++) {
                COUNT(stale_checks, 1);
                if (fd_readable(fds[i], 0)) {
                    *why = "an fd is readable after its job finished";
                    result = -1;
                }
            }
    }
out:
    if (!leak) {
        ASYNC_WAIT_CTX_free(w);
        if (bw != NULL && bw->efd >= 0)
            close(bw->efd);
        free(bw);
    }
    return result;
}
