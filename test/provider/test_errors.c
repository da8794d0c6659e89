/*
 * Errors: a bad signature, a bad OAEP ciphertext and a wrong GCM tag fail through
 * asyncpool with the same library and reason code (last error on the queue) as the
 * default provider, inside jobs (errors raised on a worker must come back to the
 * caller's thread) and outside any job.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>

#include "ops.h"
#include "ptest.h"

#define N 8

static ap_env E;

static void setup(void)
{
    ck_assert(ap_env_init(&E));
    ck_assert(ASYNC_init_thread(N, N));
}

static void teardown(void)
{
    ASYNC_cleanup_thread();
    ap_env_free(&E);
}

static void same_error(const char *what, unsigned long ours, unsigned long ref, int injob)
{
    char a[160], b[160];

    ERR_error_string_n(ours, a, sizeof(a));
    ERR_error_string_n(ref, b, sizeof(b));
    fprintf(stderr, "%s (%s job): asyncpool [%s] default [%s]\n", what, injob ? "in" : "outside",
            a, b);
    ck_assert_msg(ERR_GET_LIB(ours) == ERR_GET_LIB(ref) && ERR_GET_REASON(ours) == ERR_GET_REASON(ref),
                  "%s (%s job): asyncpool raised lib %d reason %d [%s], default lib %d reason %d [%s]",
                  what, injob ? "in" : "outside", ERR_GET_LIB(ours), ERR_GET_REASON(ours), a,
                  ERR_GET_LIB(ref), ERR_GET_REASON(ref), b);
}

/* Run N copies of op through asyncpool (in jobs or not); each must fail (return 0). */
static void run_fail(int (*fn)(void *), void *ops, size_t size, int injob)
{
    void *args[N];
    int rets[N], i;
    ap_jobstats st;

    for (i = 0; i < N; i++)
        args[i] = (char *)ops + (size_t)i * size;
    if (injob)
        ck_assert(ap_run_jobs(fn, args, N, N, rets, &st));
    else
        ap_run_direct(fn, args, N, rets);
    for (i = 0; i < N; i++)
        ck_assert_msg(rets[i] == 0, "op #%d succeeded where it must fail", i);
    if (injob && !ap_dev())
        ck_assert_msg(st.pauses > 0, "the failing ops never paused their jobs (not offloaded)");
}

static const struct { const char *alg, *group; int bits; int pad; } BADSIG[] = {
    {"RSA", NULL, 2048, RSA_PKCS1_PADDING},
    {"RSA", NULL, 2048, RSA_PKCS1_PSS_PADDING},
    {"EC", "P-256", 0, 0},
    {"ED25519", NULL, 0, 0},
};

START_TEST(bad_signature)
{
    op_kg k = {E.lib, E.ref, BADSIG[_i].alg, BADSIG[_i].group, BADSIG[_i].bits, NULL, 0};
    unsigned char msg[32] = "a message to sign, then tamper", sig[N][512];
    op_sig ops[N], ref;
    int injob, i, ed = strcmp(BADSIG[_i].alg, "ED25519") == 0;

    ck_assert(op_keygen(&k));
    for (injob = 1; injob >= 0; injob--) {
        for (i = 0; i < N; i++) {
            op_sig s = {E.lib, E.ref, k.out, ed ? NULL : "SHA256", BADSIG[_i].pad, -1, NULL, 0,
                        msg, sizeof(msg), sig[i], sizeof(sig[i]), 0};

            ck_assert(op_sign(&s));
            s.sig[i % 8] ^= 0x10;
            ops[i] = s;
            ops[i].propq = E.ours;
        }
        ref = ops[0];
        ref.propq = E.ref;
        ck_assert(op_verify(&ref) == 0);
        if (strcmp(BADSIG[_i].alg, "RSA") == 0) /* so the comparison means something */
            ck_assert_msg(ref.err != 0, "default raised no error for a bad RSA signature");
        run_fail(op_verify, ops, sizeof(ops[0]), injob);
        for (i = 0; i < N; i++) { /* each tampering has its own reference outcome */
            ref = ops[i];
            ref.propq = E.ref;
            ck_assert(op_verify(&ref) == 0);
            same_error(BADSIG[_i].alg, ops[i].err, ref.err, injob);
        }
    }
    EVP_PKEY_free(k.out);
}
END_TEST

START_TEST(bad_oaep)
{
    op_kg k = {E.lib, E.ref, "RSA", NULL, 2048, NULL, 0};
    unsigned char pt[32] = "thirty-two bytes of plain text!", ct[N][256], out[N][256];
    op_enc ops[N], ref;
    int injob, i;

    ck_assert(op_keygen(&k));
    for (injob = 1; injob >= 0; injob--) {
        for (i = 0; i < N; i++) {
            op_enc e = {E.lib, E.ref, k.out, RSA_PKCS1_OAEP_PADDING, "SHA256", "SHA256", NULL, 0,
                        pt, sizeof(pt), ct[i], sizeof(ct[i]), 0};

            ck_assert(op_encrypt(&e));
            ct[i][100 + i] ^= 0x01;
            ops[i] = e;
            ops[i].in = ct[i];
            ops[i].inlen = e.outlen;
            ops[i].out = out[i];
            ops[i].outlen = sizeof(out[i]);
            ops[i].propq = E.ours;
        }
        ref = ops[0];
        ref.propq = E.ref;
        ck_assert(op_decrypt(&ref) == 0);
        ck_assert_msg(ref.err != 0, "default raised no error for a bad OAEP ciphertext");
        run_fail(op_decrypt, ops, sizeof(ops[0]), injob);
        for (i = 0; i < N; i++) {
            ref = ops[i];
            ref.propq = E.ref;
            ref.out = out[0];
            ref.outlen = sizeof(out[0]);
            ck_assert(op_decrypt(&ref) == 0);
            same_error("OAEP", ops[i].err, ref.err, injob);
        }
    }
    EVP_PKEY_free(k.out);
}
END_TEST

/* Wrong tag, with input large enough to be offloaded and small enough to run inline. */
START_TEST(bad_gcm_tag)
{
    static const size_t lens[] = {64, 65536};
    size_t len = lens[_i % 2];
    const char *name = _i < 2 ? "AES-256-GCM" : "ChaCha20-Poly1305";
    unsigned char key[32], iv[12], *pt = malloc(len), *ct = malloc(len + 32),
                                   *out = malloc(N * (len + 32));
    op_ciph ops[N], seal = {0}, ref;
    int injob, i;

    RAND_bytes(key, sizeof(key));
    RAND_bytes(iv, sizeof(iv));
    RAND_bytes(pt, (int)len);
    seal.lib = E.lib;
    seal.propq = E.ref;
    seal.name = name;
    seal.enc = 1;
    seal.aead = 1;
    seal.key = key;
    seal.iv = iv;
    seal.ivlen = 12;
    seal.in = pt;
    seal.inlen = len;
    seal.out = ct;
    seal.taglen = 16;
    ck_assert(op_cipher(&seal));
    for (injob = 1; injob >= 0; injob--) {
        for (i = 0; i < N; i++) {
            ops[i] = seal;
            ops[i].enc = 0;
            ops[i].in = ct;
            ops[i].inlen = seal.outlen;
            ops[i].out = out + (size_t)i * (len + 32);
            ops[i].tag[i % 16] ^= 0x04;
            ops[i].propq = E.ours;
        }
        ref = ops[0];
        ref.propq = E.ref;
        ref.out = out;
        ck_assert(op_cipher(&ref) == 0);
        {
            void *args[N];
            int rets[N];

            for (i = 0; i < N; i++)
                args[i] = &ops[i];
            if (injob)
                ck_assert(ap_run_jobs(op_cipher, args, N, N, rets, NULL));
            else
                ap_run_direct(op_cipher, args, N, rets);
            for (i = 0; i < N; i++)
                ck_assert_msg(rets[i] == 0, "%s: wrong tag accepted", name);
        }
        for (i = 0; i < N; i++)
            same_error(name, ops[i].err, ref.err, injob);
    }
    free(pt);
    free(ct);
    free(out);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("provider_errors");
    TCase *tc = tcase_create("errors");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, bad_signature, 0, 4);
    tcase_add_test(tc, bad_oaep);
    tcase_add_loop_test(tc, bad_gcm_tag, 0, 4);
    suite_add_tcase(s, tc);
    return ap_run_suite(s);
}
