/*
 * Threads that used asyncpool inline and exit after it was unloaded (DESIGN.md
 * decision 13: the private library context lives as long as any thread that used it).
 *
 * An inline ECDSA sign runs the backend on the caller's thread; the backend draws its
 * nonce from the DRBG of asyncpool's private library context, and libcrypto registers a
 * thread-stop handler for that context on this thread (rand_lib.c, with no provider
 * index, so unloading a provider does not remove it). When the thread exits, the
 * handler reads the context. If asyncpool freed it at unload, that is a read of freed
 * memory: a crash, or an invalid read under valgrind or ASan.
 *
 * Each Check test runs in its own process (Check forks), so a crash fails the test.
 * Not in development mode (AP_PTEST_DEV=1): there the thread signs with the
 * application's own libctx, which the test frees, and OpenSSL itself then crashes the
 * same way; that is the application's libctx, not ours to keep.
 */
#define _GNU_SOURCE
#include <check.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>

#include "ops.h"
#include "ptest.h"

/* A thread that signs once through asyncpool, outside any job (inline by default), and
 * then waits until the main thread lets it exit. */
struct signer {
    ap_env *e;
    EVP_PKEY *key;
    int signed_ok;
    int may_exit;
    int done_signing;
    pthread_mutex_t lock;
    pthread_cond_t cond;
};

static void *signer_main(void *arg)
{
    struct signer *s = arg;
    unsigned char msg[32] = {7}, sig[128];
    op_sig o = {s->e->lib, s->e->ours, s->key, "SHA256", 0, -1, NULL, 0, msg, sizeof(msg),
                sig, sizeof(sig), 0};
    int ok = op_sign(&o);

    pthread_mutex_lock(&s->lock);
    s->signed_ok = ok;
    s->done_signing = 1;
    pthread_cond_broadcast(&s->cond);
    while (!s->may_exit)
        pthread_cond_wait(&s->cond, &s->lock);
    pthread_mutex_unlock(&s->lock);
    return NULL; /* libcrypto's thread-exit handlers run now */
}

/* Sign on a fresh thread with asyncpool from e, unload asyncpool and free e's library
 * context, then let the thread exit. Returns whether the thread's sign succeeded. */
static int sign_unload_exit(ap_env *e)
{
    struct signer s = {0};
    op_kg k = {e->lib, e->ref, "EC", "P-256", 0, NULL, 0};
    uint64_t inl0 = ap_opctr(e, "sign", "inline");
    pthread_t t;
    int ok;

    ck_assert_msg(op_keygen(&k), "EC key generation failed");
    s.e = e;
    s.key = k.out;
    pthread_mutex_init(&s.lock, NULL);
    pthread_cond_init(&s.cond, NULL);
    ck_assert(pthread_create(&t, NULL, signer_main, &s) == 0);
    pthread_mutex_lock(&s.lock);
    while (!s.done_signing)
        pthread_cond_wait(&s.cond, &s.lock);
    pthread_mutex_unlock(&s.lock);
    ok = s.signed_ok;
    /* The sign must have run inline on the thread: that is what leaves per-thread state
     * of the backend's context behind (an offloaded one would run on a worker). */
    ck_assert_msg(ap_opctr(e, "sign", "inline") == inl0 + 1,
                  "the sign did not run inline on the thread");
    EVP_PKEY_free(k.out);
    ap_env_free(e); /* unloads asyncpool, frees the application's libctx */

    pthread_mutex_lock(&s.lock);
    s.may_exit = 1;
    pthread_cond_broadcast(&s.cond);
    pthread_mutex_unlock(&s.lock);
    ck_assert(pthread_join(t, NULL) == 0);
    pthread_cond_destroy(&s.cond);
    pthread_mutex_destroy(&s.lock);
    return ok;
}

/* The reported crash: one thread, one unload. */
START_TEST(thread_exits_after_unload)
{
    ap_env e;

    if (ap_dev())
        return;
    ck_assert_msg(ap_env_init(&e), "setup failed");
    ck_assert_msg(sign_unload_exit(&e), "inline sign on the thread failed");
}
END_TEST

/* Several rounds, each with a fresh application libctx and a fresh thread: each load
 * after the first must work with whatever the earlier threads left behind. */
START_TEST(thread_exits_after_unload_repeated)
{
    int i, n = ap_valgrind() ? 3 : 20;

    if (ap_dev())
        return;
    for (i = 0; i < n; i++) {
        ap_env e;

        ck_assert_msg(ap_env_init(&e), "round %d: setup failed", i);
        ck_assert_msg(sign_unload_exit(&e), "round %d: inline sign on the thread failed", i);
    }
}
END_TEST

/* Bytes the heap has handed out (glibc), or 0 when malloc is not glibc's (ASan). */
static size_t heap_in_use(void)
{
    struct mallinfo2 mi = mallinfo2();

    return mi.uordblks + mi.hblkhd;
}

/* Whatever the provider keeps for the life of the process must not be per load:
 * 60 more load/sign/unload rounds after a warm-up must not keep growing the heap. */
START_TEST(reload_does_not_grow)
{
    size_t before = 0, after;
    int i;

    if (ap_dev())
        return;
    if (ap_valgrind() || heap_in_use() == 0) {
        fprintf(stderr, "reload_does_not_grow: no glibc heap statistics here, skipped\n");
        return;
    }
    for (i = 0; i < 70; i++) {
        ap_env e;

        if (i == 10)
            before = heap_in_use();
        ck_assert_msg(ap_env_init(&e), "round %d: setup failed", i);
        ck_assert_msg(sign_unload_exit(&e), "round %d: inline sign failed", i);
    }
    after = heap_in_use();
    fprintf(stderr, "reload_does_not_grow: heap in use %zu -> %zu bytes over 60 rounds\n",
            before, after);
    /* A library context with the default provider, used once, is about 200 KiB, so
     * one leaked per load would be megabytes here. libcrypto itself grows by a few
     * hundred bytes per libctx created and freed (measured: ~240 B per round with
     * default alone, ~460 B with asyncpool, before and after the backend cache). */
    ck_assert_msg(after < before + 256 * 1024, "heap grew by %zu bytes over 60 rounds",
                  after - before);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("provider_thread_exit");
    TCase *tc = tcase_create("thread_exit");

    tcase_set_timeout(tc, ap_valgrind() ? 600 : 120);
    tcase_add_test(tc, thread_exits_after_unload);
    tcase_add_test(tc, thread_exits_after_unload_repeated);
    tcase_add_test(tc, reload_does_not_grow);
    suite_add_tcase(s, tc);
    return ap_run_suite(s);
}
