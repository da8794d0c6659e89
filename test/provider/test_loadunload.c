/*
 * Load and unload asyncpool in fresh library contexts 100 times (10 under valgrind)
 * while another thread keeps offloading through a long-lived library context: every op
 * must succeed, nothing may crash, and the sanitizer/valgrind runs must find no leak.
 * The pool is process-wide, so each unload happens with the other context's requests
 * in flight on the same workers.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/rand.h>

#include "ops.h"
#include "ptest.h"

#define NOPS 4

/* A few ops of different kinds through e: ECDSA sign (EVP_PKEY_sign), X25519 derive,
 * one AES-256-GCM seal large enough to be offloaded. Returns the number that failed. */
typedef struct batch {
    EVP_PKEY *ec, *xa, *xb;
    unsigned char msg[32], sig[NOPS][128], key[32], iv[12];
    unsigned char *pt, *ct;
    op_sig s[NOPS];
    op_dh d[NOPS];
    op_ciph c;
} batch;

#define BIG 32768

static int batch_init(batch *b, const ap_env *e)
{
    op_kg k1 = {e->lib, e->ref, "EC", "P-256", 0, NULL, 0};
    op_kg k2 = {e->lib, e->ref, "X25519", NULL, 0, NULL, 0};
    op_kg k3 = {e->lib, e->ref, "X25519", NULL, 0, NULL, 0};
    int i;

    memset(b, 0, sizeof(*b));
    if (!op_keygen(&k1) || !op_keygen(&k2) || !op_keygen(&k3))
        return 0;
    b->ec = k1.out;
    b->xa = k2.out;
    b->xb = k3.out;
    b->pt = calloc(1, BIG);
    b->ct = calloc(1, BIG + 32);
    RAND_bytes(b->msg, sizeof(b->msg));
    RAND_bytes(b->key, sizeof(b->key));
    for (i = 0; i < NOPS; i++) {
        op_sig s = {e->lib, e->ours, b->ec, "SHA256", 0, -1, NULL, 1, b->msg, 32, b->sig[i], 128, 0};
        op_dh d = {e->lib, e->ours, b->xa, b->xb, {0}, 0, 0};

        b->s[i] = s;
        b->d[i] = d;
    }
    b->c.lib = e->lib;
    b->c.propq = e->ours;
    b->c.name = "AES-256-GCM";
    b->c.enc = 1;
    b->c.aead = 1;
    b->c.key = b->key;
    b->c.iv = b->iv;
    b->c.ivlen = 12;
    b->c.in = b->pt;
    b->c.inlen = BIG;
    b->c.out = b->ct;
    b->c.taglen = 16;
    return b->pt != NULL && b->ct != NULL;
}

static void batch_free(batch *b)
{
    EVP_PKEY_free(b->ec);
    EVP_PKEY_free(b->xa);
    EVP_PKEY_free(b->xb);
    free(b->pt);
    free(b->ct);
}

static int batch_run(batch *b)
{
    void *args[2 * NOPS + 1];
    int rets[2 * NOPS + 1], i, bad = 0;

    for (i = 0; i < NOPS; i++) {
        args[i] = &b->s[i];
        b->s[i].siglen = sizeof(b->sig[i]);
    }
    if (!ap_run_jobs(op_sign, args, NOPS, NOPS, rets, NULL))
        return 100;
    for (i = 0; i < NOPS; i++)
        bad += rets[i] != 1;
    for (i = 0; i < NOPS; i++)
        args[i] = &b->d[i];
    if (!ap_run_jobs(op_derive, args, NOPS, NOPS, rets, NULL))
        return 100;
    for (i = 0; i < NOPS; i++)
        bad += rets[i] != 1;
    args[0] = &b->c;
    if (!ap_run_jobs(op_cipher, args, 1, 1, rets, NULL))
        return 100;
    bad += rets[0] != 1;
    return bad;
}

static atomic_int stop;
static ap_env L;

/* rounds and exited are read by main while the thread runs; failures after the join. */
struct bg {
    atomic_long rounds;
    atomic_int exited;
    int failures;
};

static void *background(void *p)
{
    struct bg *r = p;
    batch b;

    if (!ASYNC_init_thread(NOPS, NOPS) || !batch_init(&b, &L)) {
        r->failures++;
        atomic_store(&r->exited, 1);
        return NULL;
    }
    while (!atomic_load(&stop)) {
        r->failures += batch_run(&b);
        atomic_fetch_add(&r->rounds, 1);
    }
    batch_free(&b);
    ASYNC_cleanup_thread();
    OPENSSL_thread_stop();
    atomic_store(&r->exited, 1);
    return NULL;
}

/* Waits (at most timeout_s) for the background thread's first round: the unloads must
 * happen with its requests in flight. Its first round (key generation, the first jobs,
 * the workers' start) can take longer than all the iterations on a loaded machine or
 * under a sanitizer, so it is not left to the scheduler. 1 once it has done a round. */
static int await_first_round(struct bg *r, int timeout_s)
{
    struct timespec ms = {0, 1000000}, t0, t;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (atomic_load(&r->rounds) == 0 && !atomic_load(&r->exited)) {
        clock_gettime(CLOCK_MONOTONIC, &t);
        if (t.tv_sec - t0.tv_sec >= timeout_s)
            break;
        nanosleep(&ms, NULL);
    }
    return atomic_load(&r->rounds) > 0;
}

int main(void)
{
    int iters = ap_valgrind() ? 10 : 100, i, failures = 0;
    struct bg r = {0, 0, 0};
    pthread_t t;

    if (getenv("AP_LOADUNLOAD_ITERS"))
        iters = atoi(getenv("AP_LOADUNLOAD_ITERS"));
    if (!ap_env_init(&L) || !ASYNC_init_thread(NOPS, NOPS)) {
        fprintf(stderr, "FAIL: setup\n");
        return 1;
    }
    if (pthread_create(&t, NULL, background, &r) != 0)
        return 1;
    if (!await_first_round(&r, 60)) {
        fprintf(stderr, "FAIL: the background thread did no round in 60 s (it %s)\n",
                atomic_load(&r.exited) ? "ended" : "is still running");
        iters = 0;
        failures++;
    }
    for (i = 0; i < iters; i++) {
        ap_env e;
        batch b;
        int bad;

        if (!ap_env_init(&e)) {
            fprintf(stderr, "FAIL: iteration %d: load failed\n", i);
            failures++;
            ap_env_free(&e);
            break;
        }
        if (!batch_init(&b, &e)) {
            fprintf(stderr, "FAIL: iteration %d: key setup failed\n", i);
            failures++;
        } else if ((bad = batch_run(&b)) != 0) {
            fprintf(stderr, "FAIL: iteration %d: %d ops failed\n", i, bad);
            ap_dump_errors("iteration");
            failures++;
        }
        batch_free(&b);
        ap_env_free(&e);
    }
    atomic_store(&stop, 1);
    pthread_join(t, NULL);
    printf("load/unload: %d iterations, %d failed; background thread: %ld rounds, %d failed ops\n",
           iters, failures, atomic_load(&r.rounds), r.failures);
    failures += r.failures;
    ASYNC_cleanup_thread();
    ap_env_free(&L);
    return failures == 0 ? 0 : 1;
}
