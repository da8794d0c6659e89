/*
 * Post-quantum interop (OpenSSL 3.5+): ML-KEM and the hybrid ML-KEM groups (KEM), ML-DSA
 * and SLH-DSA (message signatures). What asyncpool produces default accepts and the
 * other way round, inside ASYNC jobs (offloaded: the kem/sign/verify/keygen counters
 * must grow) and outside (inline). On an OpenSSL without an algorithm (3.0) its test
 * prints "not available on this OpenSSL" and passes: the algorithm does not exist there.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/opensslv.h>

#include "ops.h"
#include "ptest.h"

#define INFLIGHT 8

static ap_env E;

static void setup(void)
{
    ck_assert_msg(ap_env_init(&E), "cannot set up the library context");
    ck_assert(ASYNC_init_thread(INFLIGHT, INFLIGHT));
}

static void teardown(void)
{
    ASYNC_cleanup_thread();
    ap_env_free(&E);
}

static int available(const char *what, int have, const char *name)
{
    if (!have) {
        printf("%s %s: not available on this OpenSSL (%s)\n", what, name,
               OpenSSL_version(OPENSSL_VERSION_STRING));
        ERR_clear_error();
    }
    return have;
}

/* Run fn over args, n of them, in jobs or directly; every one must return 1. */
static void run_all(int (*fn)(void *), void **args, int n, int injob, const char *what)
{
    int rets[16];
    ap_jobstats st;

    ck_assert(n <= 16);
    if (injob)
        ck_assert_msg(ap_run_jobs(fn, args, n, INFLIGHT, rets, &st), "%s: job loop", what);
    else
        ap_run_direct(fn, args, n, rets);
    for (int i = 0; i < n; i++)
        ck_assert_msg(rets[i] == 1, "%s #%d (%s job) failed", what, i, injob ? "in" : "outside");
    if (injob)
        ck_assert_msg(st.lost_wakeup == 0 && st.multi_fd == 0, "%s: async protocol", what);
}

static void expect_offloaded(const char *op, uint64_t before, int n)
{
    uint64_t now = ap_opctr(&E, op, "offloaded");

    if (!ap_dev())
        ck_assert_msg(now - before >= (uint64_t)n, "%s: %d in jobs, offloaded %llu -> %llu",
                      op, n, (unsigned long long)before, (unsigned long long)now);
}

/* ---------------------------------------------------------------- KEM */

static const char *const KEMS[] = {
    "ML-KEM-512", "ML-KEM-768", "ML-KEM-1024", "X25519MLKEM768", "SecP256r1MLKEM768",
    "X448MLKEM1024",
};

typedef struct op_kem {
    const char *propq;
    EVP_PKEY *key;
    unsigned char *ct; /* 2 KiB, heap: job functions run on a 32 KiB fibre stack */
    size_t ctlen;
    unsigned char secret[64], secret2[64];
    size_t secretlen, secret2len;
} op_kem;

static int op_encaps(void *p)
{
    op_kem *k = p;
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_pkey(E.lib, k->key, k->propq);
    int ok = c != NULL && EVP_PKEY_encapsulate_init(c, NULL) == 1;

    k->ctlen = 2048;
    k->secretlen = sizeof(k->secret);
    ok = ok && EVP_PKEY_encapsulate(c, k->ct, &k->ctlen, k->secret, &k->secretlen) == 1;
    EVP_PKEY_CTX_free(c);
    ERR_clear_error();
    return ok;
}

static int op_decaps(void *p)
{
    op_kem *k = p;
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_pkey(E.lib, k->key, k->propq);
    int ok = c != NULL && EVP_PKEY_decapsulate_init(c, NULL) == 1;

    k->secret2len = sizeof(k->secret2);
    ok = ok && EVP_PKEY_decapsulate(c, k->secret2, &k->secret2len, k->ct, k->ctlen) == 1;
    EVP_PKEY_CTX_free(c);
    ERR_clear_error();
    return ok;
}

static int op_kg_run(void *p)
{
    return op_keygen(p);
}

START_TEST(kem_interop)
{
    const char *name = KEMS[_i % 6];
    int injob = _i / 6, n = injob ? 8 : 2;
    EVP_KEM *kem = EVP_KEM_fetch(E.lib, name, E.ref);
    op_kg kg[8];
    op_kem k[8];
    void *args[8];
    uint64_t before;

    /* Skipped only where default lacks it; where default has it, so must we. */
    if (!available("KEM", kem != NULL, name))
        return;
    EVP_KEM_free(kem);
    ck_assert_msg((kem = EVP_KEM_fetch(E.lib, name, E.ours)) != NULL, "%s: not offered", name);
    EVP_KEM_free(kem);
    /* Our keygen (offloaded in jobs). */
    before = ap_opctr(&E, "keygen", "offloaded");
    for (int i = 0; i < n; i++) {
        kg[i] = (op_kg){E.lib, E.ours, name, NULL, 0, NULL, 0};
        args[i] = &kg[i];
    }
    run_all(op_kg_run, args, n, injob, "keygen");
    if (injob)
        expect_offloaded("keygen", before, n);
    for (int dir = 0; dir < 2; dir++) {
        /* dir 0: we encapsulate, default decapsulates; dir 1: the other way round. */
        const char *enc = dir == 0 ? E.ours : E.ref, *dec = dir == 0 ? E.ref : E.ours;

        for (int i = 0; i < n; i++) {
            k[i] = (op_kem){.propq = enc, .key = kg[i].out, .ct = malloc(2048)};
            ck_assert_ptr_nonnull(k[i].ct);
            args[i] = &k[i];
        }
        before = ap_opctr(&E, "kem", "offloaded");
        run_all(op_encaps, args, n, dir == 0 && injob, "encapsulate");
        for (int i = 0; i < n; i++)
            k[i].propq = dec;
        run_all(op_decaps, args, n, dir == 1 && injob, "decapsulate");
        if (injob)
            expect_offloaded("kem", before, n);
        for (int i = 0; i < n; i++) {
            ck_assert_msg(k[i].secretlen == k[i].secret2len
                          && memcmp(k[i].secret, k[i].secret2, k[i].secretlen) == 0,
                          "%s: shared secrets differ (encapsulated by %s)", name, enc);
            free(k[i].ct);
        }
    }
    for (int i = 0; i < n; i++)
        EVP_PKEY_free(kg[i].out);
}
END_TEST

/* ---------------------------------------------------------------- signatures */

static const char *const PQSIGS[] = {
    "ML-DSA-44", "ML-DSA-65", "ML-DSA-87",
    "SLH-DSA-SHA2-128s", "SLH-DSA-SHA2-128f", "SLH-DSA-SHA2-192s", "SLH-DSA-SHA2-192f",
    "SLH-DSA-SHA2-256s", "SLH-DSA-SHA2-256f", "SLH-DSA-SHAKE-128s", "SLH-DSA-SHAKE-128f",
    "SLH-DSA-SHAKE-192s", "SLH-DSA-SHAKE-192f", "SLH-DSA-SHAKE-256s", "SLH-DSA-SHAKE-256f",
};
#define NPQSIGS (int)(sizeof(PQSIGS) / sizeof(PQSIGS[0]))

#if OPENSSL_VERSION_NUMBER >= 0x30400000L
typedef struct op_msig {
    const char *propq, *alg;
    EVP_PKEY *key;
    unsigned char *sig; /* heap: an SLH-DSA signature is up to 49856 bytes */
    size_t siglen;
    int stream; /* sign_message_update in pieces, then final */
} op_msig;

static const unsigned char MSG[] = "asyncpool: post-quantum message signatures, both ways";

static int op_msign(void *p)
{
    op_msig *s = p;
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_pkey(E.lib, s->key, s->propq);
    EVP_SIGNATURE *sa = EVP_SIGNATURE_fetch(E.lib, s->alg, s->propq);
    int ok = c != NULL && sa != NULL && EVP_PKEY_sign_message_init(c, sa, NULL) == 1;

    s->siglen = 50000;
    if (ok && s->stream)
        ok = EVP_PKEY_sign_message_update(c, MSG, 10) == 1
             && EVP_PKEY_sign_message_update(c, MSG + 10, sizeof(MSG) - 10) == 1
             && EVP_PKEY_sign_message_final(c, s->sig, &s->siglen) == 1;
    else if (ok)
        ok = EVP_PKEY_sign(c, s->sig, &s->siglen, MSG, sizeof(MSG)) == 1;
    EVP_SIGNATURE_free(sa);
    EVP_PKEY_CTX_free(c);
    ERR_clear_error();
    return ok;
}

static int op_mverify(void *p)
{
    op_msig *s = p;
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_pkey(E.lib, s->key, s->propq);
    EVP_SIGNATURE *sa = EVP_SIGNATURE_fetch(E.lib, s->alg, s->propq);
    int ok = c != NULL && sa != NULL && EVP_PKEY_verify_message_init(c, sa, NULL) == 1;

    if (ok && s->stream)
        ok = EVP_PKEY_CTX_set_signature(c, s->sig, s->siglen) == 1
             && EVP_PKEY_verify_message_update(c, MSG, sizeof(MSG)) == 1
             && EVP_PKEY_verify_message_final(c) == 1;
    else if (ok)
        ok = EVP_PKEY_verify(c, s->sig, s->siglen, MSG, sizeof(MSG)) == 1;
    EVP_SIGNATURE_free(sa);
    EVP_PKEY_CTX_free(c);
    ERR_clear_error();
    return ok;
}
#endif

START_TEST(sig_interop)
{
    const char *name = PQSIGS[_i % NPQSIGS];
    EVP_SIGNATURE *sa = EVP_SIGNATURE_fetch(E.lib, name, E.ref);

    if (!available("signature", sa != NULL, name))
        return;
    EVP_SIGNATURE_free(sa);
    ck_assert_msg((sa = EVP_SIGNATURE_fetch(E.lib, name, E.ours)) != NULL, "%s: not offered",
                  name);
    EVP_SIGNATURE_free(sa);
#if OPENSSL_VERSION_NUMBER >= 0x30400000L
    {
        /* SLH-DSA "s" sets take a second or more per signature: fewer of them. */
        int injob = _i / NPQSIGS, slow = strstr(name, "SLH-DSA") != NULL;
        int n = injob ? (slow ? 2 : 8) : 1;
        op_kg kg = {E.lib, E.ref, name, NULL, 0, NULL, 0};
        op_msig s[8];
        void *args[8];
        uint64_t sb, vb;

        ck_assert_msg(op_keygen(&kg), "%s: reference keygen", name);
        for (int dir = 0; dir < 2; dir++) {
            const char *sg = dir == 0 ? E.ours : E.ref, *vf = dir == 0 ? E.ref : E.ours;

            for (int i = 0; i < n; i++) {
                s[i] = (op_msig){.propq = sg, .alg = name, .key = kg.out,
                                 .sig = malloc(50000), .stream = i % 2 && !slow};
                ck_assert_ptr_nonnull(s[i].sig);
                args[i] = &s[i];
            }
            sb = ap_opctr(&E, "sign", "offloaded");
            vb = ap_opctr(&E, "verify", "offloaded");
            run_all(op_msign, args, n, dir == 0 && injob, "sign_message");
            for (int i = 0; i < n; i++)
                s[i].propq = vf;
            run_all(op_mverify, args, n, dir == 1 && injob, "verify_message");
            if (injob && dir == 0)
                expect_offloaded("sign", sb, n);
            if (injob && dir == 1)
                expect_offloaded("verify", vb, n);
            /* A flipped bit fails, on our side. */
            s[0].propq = E.ours;
            s[0].sig[5] ^= 1;
            ck_assert_msg(op_mverify(&s[0]) == 0, "%s: a bad signature verified", name);
            for (int i = 0; i < n; i++)
                free(s[i].sig);
        }
        EVP_PKEY_free(kg.out);
    }
#endif
}
END_TEST

int main(void)
{
    Suite *s = suite_create("provider_pq");
    TCase *tc = tcase_create("pq");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, kem_interop, 0, 12);
    tcase_add_loop_test(tc, sig_interop, 0, 2 * NPQSIGS);
    suite_add_tcase(s, tc);
    return ap_run_suite(s);
}
