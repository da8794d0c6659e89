/*
 * Interop: for every algorithm asyncpool offers, what asyncpool produces the default
 * provider accepts, and the other way round; inside ASYNC jobs (32 in flight) and
 * outside any job. The provider's counters must show the work offloaded inside jobs and
 * run inline outside them.
 */
#define _POSIX_C_SOURCE 200809L /* setenv */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>

#include "ops.h"
#include "ptest.h"

#define INFLIGHT 32
#define NJOBS 64   /* per phase, in jobs */
#define NDIRECT 4  /* per phase, outside jobs */

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

/* Counter snapshot of one op, for deltas. */
typedef struct ctr {
    uint64_t off, inl, err;
} ctr;

static ctr snap(const char *op)
{
    ctr c = {ap_opctr(&E, op, "offloaded"), ap_opctr(&E, op, "inline"),
             ap_opctr(&E, op, "errors")};

    if (!ap_dev())
        ck_assert_msg(c.off != UINT64_MAX && c.inl != UINT64_MAX && c.err != UINT64_MAX,
                      "counters asyncpool.%s.* not readable", op);
    return c;
}

/* Inside jobs: at least n more offloaded. Outside: at least n more inline, none offloaded. */
static void expect(const char *op, ctr before, int n, int injob)
{
    ctr now = snap(op);

    if (ap_dev())
        return;
    if (injob) {
        ck_assert_msg(now.off - before.off >= (uint64_t)n,
                      "%s: %d ops in jobs but offloaded went %llu -> %llu", op, n,
                      (unsigned long long)before.off, (unsigned long long)now.off);
    } else {
        ck_assert_msg(now.off == before.off,
                      "%s: ops outside jobs were offloaded (%llu -> %llu)", op,
                      (unsigned long long)before.off, (unsigned long long)now.off);
        ck_assert_msg(now.inl - before.inl >= (uint64_t)n,
                      "%s: %d ops outside jobs but inline went %llu -> %llu", op, n,
                      (unsigned long long)before.inl, (unsigned long long)now.inl);
    }
}

/* The async protocol as an application sees it: jobs really paused (in real mode), one
 * stable fd per WAIT_CTX, drained after resume, no lost wake-up. */
static void check_jobstats(const ap_jobstats *st, int expect_pauses, const char *what)
{
    ck_assert_msg(st->multi_fd == 0, "%s: a WAIT_CTX had several fds", what);
    ck_assert_msg(st->fd_changes == 0, "%s: a WAIT_CTX's fd changed", what);
    ck_assert_msg(st->lost_wakeup == 0, "%s: lost wake-up", what);
    ck_assert_msg(st->undrained == 0, "%d eventfds left readable after their job finished",
                  st->undrained);
    if (expect_pauses && !ap_dev()) {
        ck_assert_msg(st->pauses > 0, "%s: offloaded ops never paused their job", what);
        ck_assert_msg(st->max_paused > 1, "%s: jobs never overlapped (max paused %d)", what,
                      st->max_paused);
    }
}

static void run_all(int (*fn)(void *), void **args, int n, int injob, int expect_ok,
                    int expect_pauses, const char *what)
{
    int *rets = calloc((size_t)n, sizeof(int)), i;
    ap_jobstats st;

    ck_assert_ptr_nonnull(rets);
    if (injob)
        ck_assert_msg(ap_run_jobs(fn, args, n, INFLIGHT, rets, &st), "%s: job loop failed", what);
    else
        ap_run_direct(fn, args, n, rets);
    for (i = 0; i < n; i++)
        ck_assert_msg(rets[i] == expect_ok, "%s #%d (%s job): returned %d, expected %d", what, i,
                      injob ? "in" : "outside", rets[i], expect_ok);
    if (injob)
        check_jobstats(&st, expect_pauses, what);
    free(rets);
}

static void rnd(unsigned char *p, size_t n)
{
    ck_assert(RAND_bytes_ex(E.lib, p, n, 0) == 1);
}

static EVP_PKEY *ref_keygen(const char *alg, const char *group, int bits)
{
    op_kg k = {E.lib, E.ref, alg, group, bits, NULL, 0};

    ck_assert_msg(op_keygen(&k), "reference keygen %s failed", alg);
    return k.out;
}

/* ---------------------------------------------------------------- signatures */

static const struct sigalg {
    const char *name, *alg, *group;
    int bits;
    const char *md;
    int pad, raw;
} SIGALGS[] = {
    {"RSA-PKCS1 DigestSign", "RSA", NULL, 2048, "SHA256", RSA_PKCS1_PADDING, 0},
    {"RSA-PKCS1 sign", "RSA", NULL, 2048, "SHA256", RSA_PKCS1_PADDING, 1},
    {"RSA-PSS-pad DigestSign", "RSA", NULL, 2048, "SHA256", RSA_PKCS1_PSS_PADDING, 0},
    {"RSA-PSS-pad sign", "RSA", NULL, 2048, "SHA256", RSA_PKCS1_PSS_PADDING, 1},
    {"RSA-PSS key DigestSign", "RSA-PSS", NULL, 2048, "SHA256", 0, 0},
    {"ECDSA P-256 DigestSign", "EC", "P-256", 0, "SHA256", 0, 0},
    {"ECDSA P-256 sign", "EC", "P-256", 0, "SHA256", 0, 1},
    {"ECDSA P-384 DigestSign", "EC", "P-384", 0, "SHA384", 0, 0},
    {"ED25519", "ED25519", NULL, 0, NULL, 0, 0},
    {"ED448", "ED448", NULL, 0, NULL, 0, 0},
};

#define MSGLEN 48 /* a SHA-384 digest's size, so raw mode can sign it as one */

START_TEST(sig_interop)
{
    const struct sigalg *a = &SIGALGS[_i];
    EVP_PKEY *key = ref_keygen(a->alg, a->group, a->bits);
    int injob;

    fprintf(stderr, "sig_interop: %s\n", a->name);
    for (injob = 1; injob >= 0; injob--) {
        int n = injob ? NJOBS : NDIRECT, i;
        op_sig *ours = calloc((size_t)n, sizeof(*ours)), *ref = calloc((size_t)n, sizeof(*ref));
        void **args = calloc((size_t)n, sizeof(void *));
        unsigned char *buf = calloc((size_t)n, 2 * (MSGLEN + 1024));
        ctr c;

        for (i = 0; i < n; i++) {
            unsigned char *m = buf + (size_t)i * 2 * (MSGLEN + 1024);
            op_sig base = {E.lib, E.ours, key, a->md, a->pad, -1, NULL, a->raw, m,
                           a->raw && a->md && strcmp(a->md, "SHA256") == 0 ? 32 : MSGLEN,
                           m + MSGLEN, 1024, 0};

            rnd(m, MSGLEN);
            ours[i] = base;
            ref[i] = base;
            ref[i].propq = E.ref;
            ref[i].sig = m + MSGLEN + 1024;
            args[i] = &ours[i];
        }
        /* asyncpool signs, default verifies */
        c = snap("sign");
        run_all(op_sign, args, n, injob, 1, 1, "asyncpool sign");
        expect("sign", c, n, injob);
        for (i = 0; i < n; i++) {
            op_sig v = ours[i];

            v.propq = E.ref;
            ck_assert_msg(op_verify(&v) == 1, "%s: default rejects asyncpool's signature #%d",
                          a->name, i);
            v.sig[v.siglen / 2] ^= 0x01; /* and the signature is bound to its content */
            ck_assert_msg(op_verify(&v) == 0, "%s: default accepts a corrupted signature",
                          a->name);
            v.sig[v.siglen / 2] ^= 0x01;
        }
        /* default signs, asyncpool verifies; every other signature corrupted */
        for (i = 0; i < n; i++) {
            ck_assert_msg(op_sign(&ref[i]), "%s: default sign failed", a->name);
            ours[i].sig = ref[i].sig;
            ours[i].siglen = ref[i].siglen;
        }
        c = snap("verify");
        run_all(op_verify, args, n, injob, 1, 1, "asyncpool verify");
        expect("verify", c, n, injob);
        for (i = 0; i < n; i++)
            ours[i].sig[3] ^= 0x40;
        run_all(op_verify, args, n, injob, 0, 1, "asyncpool verify (corrupted)");
        free(ours);
        free(ref);
        free(args);
        free(buf);
    }
    EVP_PKEY_free(key);
}
END_TEST

/* ------------------------------------------------------------- asym cipher */

static const struct encalg {
    const char *name;
    int pad;
    const char *md;
} ENCALGS[] = {
    {"RSA PKCS#1 v1.5", RSA_PKCS1_PADDING, NULL},
    {"RSA OAEP SHA-1", RSA_PKCS1_OAEP_PADDING, NULL},
    {"RSA OAEP SHA-256", RSA_PKCS1_OAEP_PADDING, "SHA256"},
};

START_TEST(enc_interop)
{
    const struct encalg *a = &ENCALGS[_i];
    EVP_PKEY *key = ref_keygen("RSA", NULL, 2048);
    int injob;

    fprintf(stderr, "enc_interop: %s\n", a->name);
    for (injob = 1; injob >= 0; injob--) {
        int n = injob ? NJOBS : NDIRECT, i, dir;

        for (dir = 0; dir < 2; dir++) { /* 0: asyncpool encrypts; 1: asyncpool decrypts */
            op_enc *ours = calloc((size_t)n, sizeof(*ours)), *ref = calloc((size_t)n, sizeof(*ref));
            void **args = calloc((size_t)n, sizeof(void *));
            unsigned char *buf = calloc((size_t)n, 32 + 2 * 256);
            ctr c;

            for (i = 0; i < n; i++) {
                unsigned char *pt = buf + (size_t)i * (32 + 512);
                op_enc base = {E.lib, E.ours, key, a->pad, a->md, a->md, NULL, 0,
                               pt, 32, pt + 32, 256, 0};

                rnd(pt, 32);
                ours[i] = base;
                ref[i] = base;
                ref[i].propq = E.ref;
                args[i] = &ours[i];
            }
            if (dir == 1) { /* default encrypts into ct; asyncpool decrypts ct into pt2 */
                for (i = 0; i < n; i++) {
                    ck_assert(op_encrypt(&ref[i]));
                    ours[i].in = ref[i].out;
                    ours[i].inlen = ref[i].outlen;
                    ours[i].out = buf + (size_t)i * (32 + 512) + 32 + 256;
                    ours[i].outlen = 256;
                }
            }
            c = snap("asym_cipher");
            run_all(dir ? op_decrypt : op_encrypt, args, n, injob, 1, 1,
                    dir ? "asyncpool decrypt" : "asyncpool encrypt");
            expect("asym_cipher", c, n, injob);
            for (i = 0; i < n; i++) {
                unsigned char *pt = buf + (size_t)i * (32 + 512);

                if (dir == 0) { /* default decrypts asyncpool's ciphertext */
                    op_enc d = ref[i];

                    d.in = ours[i].out;
                    d.inlen = ours[i].outlen;
                    d.out = pt + 32 + 256;
                    d.outlen = 256;
                    ck_assert_msg(op_decrypt(&d), "%s: default cannot decrypt #%d", a->name, i);
                    ck_assert(d.outlen == 32 && memcmp(d.out, pt, 32) == 0);
                } else {
                    ck_assert_msg(ours[i].outlen == 32 && memcmp(ours[i].out, pt, 32) == 0,
                                  "%s: asyncpool decrypted #%d wrongly", a->name, i);
                }
            }
            free(ours);
            free(ref);
            free(args);
            free(buf);
        }
    }
    EVP_PKEY_free(key);
}
END_TEST

/* ------------------------------------------------------------------ derive */

static const struct dhalg {
    const char *alg, *group;
} DHALGS[] = {
    {"EC", "P-256"}, {"EC", "P-384"}, {"X25519", NULL}, {"X448", NULL},
};

START_TEST(derive_interop)
{
    const struct dhalg *a = &DHALGS[_i];
    int injob;

    fprintf(stderr, "derive_interop: %s %s\n", a->alg, a->group ? a->group : "");
    for (injob = 1; injob >= 0; injob--) {
        int n = injob ? NJOBS : NDIRECT, i;
        op_dh *ours = calloc((size_t)n, sizeof(*ours));
        EVP_PKEY **ka = calloc((size_t)n, sizeof(EVP_PKEY *)), **kb = calloc((size_t)n, sizeof(EVP_PKEY *));
        void **args = calloc((size_t)n, sizeof(void *));
        ctr c;

        for (i = 0; i < n; i++) {
            ka[i] = ref_keygen(a->alg, a->group, 0);
            kb[i] = ref_keygen(a->alg, a->group, 0);
            ours[i].lib = E.lib;
            ours[i].propq = E.ours;
            ours[i].priv = ka[i];
            ours[i].peer = kb[i];
            args[i] = &ours[i];
        }
        c = snap("derive");
        run_all(op_derive, args, n, injob, 1, 1, "asyncpool derive");
        expect("derive", c, n, injob);
        for (i = 0; i < n; i++) {
            op_dh r = {E.lib, E.ref, kb[i], ka[i], {0}, 0, 0};

            ck_assert(op_derive(&r));
            ck_assert_msg(r.outlen > 0 && r.outlen == ours[i].outlen
                              && memcmp(r.out, ours[i].out, r.outlen) == 0,
                          "shared secrets differ (#%d)", i);
            if (i > 0) /* different peers, different secrets */
                ck_assert(memcmp(ours[i].out, ours[i - 1].out, r.outlen) != 0);
        }
        for (i = 0; i < n; i++) {
            EVP_PKEY_free(ka[i]);
            EVP_PKEY_free(kb[i]);
        }
        free(ka);
        free(kb);
        free(ours);
        free(args);
    }
}
END_TEST

/* ------------------------------------------------------------------ keygen */

static const struct kgalg {
    const char *alg, *group;
    int bits, n;
} KGALGS[] = {
    {"EC", "P-256", 0, NJOBS}, {"X25519", NULL, 0, NJOBS}, {"X448", NULL, 0, 32},
    {"ED25519", NULL, 0, NJOBS}, {"ED448", NULL, 0, 32}, {"RSA", NULL, 2048, 4},
    {"RSA-PSS", NULL, 2048, 2},
};

/* Use a key asyncpool generated with the default provider: libcrypto exports it. */
static void use_key(EVP_PKEY *k, const char *alg)
{
    if (strcmp(alg, "X25519") == 0 || strcmp(alg, "X448") == 0) {
        EVP_PKEY *peer = ref_keygen(alg, NULL, 0);
        op_dh d1 = {E.lib, E.ref, k, peer, {0}, 0, 0}, d2 = {E.lib, E.ref, peer, k, {0}, 0, 0};

        ck_assert(op_derive(&d1) && op_derive(&d2));
        ck_assert(d1.outlen == d2.outlen && memcmp(d1.out, d2.out, d1.outlen) == 0);
        EVP_PKEY_free(peer);
    } else {
        unsigned char msg[32] = "asyncpool generated this key", sig[1024];
        int ed = strncmp(alg, "ED", 2) == 0;
        op_sig s = {E.lib, E.ref, k, ed ? NULL : "SHA256", 0, -1, NULL, 0, msg, sizeof(msg),
                    sig, sizeof(sig), 0};

        ck_assert_msg(op_sign(&s), "default cannot sign with an asyncpool %s key", alg);
        ck_assert_msg(op_verify(&s) == 1, "default cannot verify with an asyncpool %s key", alg);
        s.propq = E.ours;
        ck_assert_msg(op_verify(&s) == 1, "asyncpool cannot verify with its own %s key (%s)",
                      alg, ERR_reason_error_string(s.err));
    }
}

START_TEST(keygen_interop)
{
    const struct kgalg *a = &KGALGS[_i];
    int injob;

    fprintf(stderr, "keygen_interop: %s %s\n", a->alg, a->group ? a->group : "");
    for (injob = 1; injob >= 0; injob--) {
        int n = injob ? a->n : 2, i;
        op_kg *ops = calloc((size_t)n, sizeof(*ops));
        void **args = calloc((size_t)n, sizeof(void *));
        ctr c;

        for (i = 0; i < n; i++) {
            op_kg k = {E.lib, E.ours, a->alg, a->group, a->bits, NULL, 0};

            ops[i] = k;
            args[i] = &ops[i];
        }
        c = snap("keygen");
        run_all(op_keygen, args, n, injob, 1, 1, "asyncpool keygen");
        expect("keygen", c, n, injob);
        for (i = 0; i < n; i++) {
            ck_assert(EVP_PKEY_is_a(ops[i].out, a->alg));
            use_key(ops[i].out, a->alg);
            if (i > 0)
                ck_assert_msg(EVP_PKEY_eq(ops[i].out, ops[i - 1].out) != 1,
                              "two generated keys are equal");
        }
        for (i = 0; i < n; i++)
            EVP_PKEY_free(ops[i].out);
        free(ops);
        free(args);
    }
}
END_TEST

/* ----------------------------------------------------------------- ciphers */

static const struct ciphalg {
    const char *name;
    int aead;
    size_t keylen, ivlen;
} CIPHALGS[] = {
    {"AES-128-GCM", 1, 16, 12}, {"AES-192-GCM", 1, 24, 12}, {"AES-256-GCM", 1, 32, 12},
    {"AES-128-CBC", 0, 16, 16}, {"AES-256-CBC", 0, 32, 16},
    {"ChaCha20-Poly1305", 1, 32, 12},
};

/* Sizes: far below and far above any inline threshold; chunked feeding, and odd length
 * so CBC buffers a partial block across calls. */
static const size_t SIZES[] = {100, 3 * 32768 + 13}; /* chunks of len/3+7 >= the default inline_threshold (32768) */

static void cipher_case(const struct ciphalg *a, size_t len, int injob)
{
    int n = injob ? NJOBS / 2 : NDIRECT, i;
    op_ciph *ours = calloc((size_t)n, sizeof(*ours)), *ref = calloc((size_t)n, sizeof(*ref));
    void **args = calloc((size_t)n, sizeof(void *));
    size_t stride = 64 + 16 + 3 * (len + 32);
    unsigned char *buf = calloc((size_t)n, stride);
    int big = len > 1000;
    ctr c;

    for (i = 0; i < n; i++) {
        unsigned char *b = buf + (size_t)i * stride;
        op_ciph base = {E.lib, E.ours, a->name, 1, a->aead, b, b + 32, b + 48,
                        a->ivlen, a->aead ? 16 : 0, b + 64 + 16, len, len / 3 + 7,
                        b + 64 + 16 + (len + 32), 0, {0}, 16, 0, 0};

        rnd(b, 64 + 16 + len);
        ours[i] = base;
        ref[i] = base;
        ref[i].propq = E.ref;
        ref[i].chunk = 0;
        ref[i].out = b + 64 + 16 + 2 * (len + 32);
        args[i] = &ours[i];
    }
    /* Seal with both: the outputs must be identical byte for byte. */
    c = snap("cipher");
    run_all(op_cipher, args, n, injob, 1, big, "asyncpool encrypt");
    if (big) {
        expect("cipher", c, n, injob);
    } else if (!ap_dev()) {
        ctr now = snap("cipher");

        ck_assert_msg(now.inl - c.inl >= (uint64_t)n && now.off == c.off,
                      "%zu-byte cipher calls: inline %llu->%llu offloaded %llu->%llu", len,
                      (unsigned long long)c.inl, (unsigned long long)now.inl,
                      (unsigned long long)c.off, (unsigned long long)now.off);
    }
    for (i = 0; i < n; i++) {
        ck_assert(op_cipher(&ref[i]));
        ck_assert_msg(ours[i].outlen == ref[i].outlen
                          && memcmp(ours[i].out, ref[i].out, ref[i].outlen) == 0,
                      "%s %zu: ciphertexts differ (#%d)", a->name, len, i);
        if (a->aead)
            ck_assert_msg(memcmp(ours[i].tag, ref[i].tag, 16) == 0, "%s: tags differ", a->name);
    }
    /* Open with asyncpool what default sealed, into the first buffer's space. */
    for (i = 0; i < n; i++) {
        ours[i].enc = 0;
        ours[i].in = ref[i].out;
        ours[i].inlen = ref[i].outlen;
        memcpy(ours[i].tag, ref[i].tag, 16);
    }
    c = snap("cipher");
    run_all(op_cipher, args, n, injob, 1, big, "asyncpool decrypt");
    if (big)
        expect("cipher", c, n, injob);
    for (i = 0; i < n; i++)
        ck_assert_msg(ours[i].outlen == len && memcmp(ours[i].out, ref[i].in, len) == 0,
                      "%s %zu: asyncpool decrypted #%d wrongly", a->name, len, i);
    /* (default opens asyncpool's output: the two are byte-identical, checked above.)
     * A wrong tag must fail through asyncpool too. */
    if (a->aead) {
        for (i = 0; i < n; i++)
            ours[i].tag[i % 16] ^= 0x80;
        run_all(op_cipher, args, n, injob, 0, big, "asyncpool decrypt (wrong tag)");
    }
    free(ours);
    free(ref);
    free(args);
    free(buf);
}

START_TEST(cipher_interop)
{
    const struct ciphalg *a = &CIPHALGS[_i / 2];
    size_t len = SIZES[_i % 2];

    fprintf(stderr, "cipher_interop: %s %zu\n", a->name, len);
    cipher_case(a, len, 1);
    cipher_case(a, len, 0);
}
END_TEST

#define N_OF(a) ((int)(sizeof(a) / sizeof((a)[0])))

int main(void)
{
    Suite *s;

    /* What this test checks is that each call made in a job is offloaded and gives the
     * same bytes as default: offload = always. (The default, auto, runs the cheap ones
     * inline: provider_policy tests that.) Set before any provider is loaded. */
    setenv("ASYNCPOOL_OFFLOAD", "always", 1);
    s = suite_create("provider_interop");
    TCase *tc = tcase_create("interop");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 240);
    tcase_add_loop_test(tc, sig_interop, 0, N_OF(SIGALGS));
    tcase_add_loop_test(tc, enc_interop, 0, N_OF(ENCALGS));
    tcase_add_loop_test(tc, derive_interop, 0, N_OF(DHALGS));
    tcase_add_loop_test(tc, keygen_interop, 0, N_OF(KGALGS));
    tcase_add_loop_test(tc, cipher_interop, 0, 2 * N_OF(CIPHALGS));
    suite_add_tcase(s, tc);
    return ap_run_suite(s);
}
