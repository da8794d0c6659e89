/*
 * Post-quantum interop (OpenSSL 3.5+): ML-KEM and the hybrid ML-KEM groups (KEM), ML-DSA
 * and SLH-DSA (message signatures). What asyncpool produces default accepts and the
 * other way round, inside ASYNC jobs (offloaded: the kem/sign/verify/keygen counters
 * must grow) and outside (inline); with fixed randomness (ML-KEM seed and ikme,
 * deterministic signatures) the same bytes as default; and where default refuses
 * (streamed ML-DSA/SLH-DSA signing, exporting an EC hybrid private key on 3.5) the same
 * refusal. On an OpenSSL without an algorithm (3.0) its test prints "not available on
 * this OpenSSL" and passes: the algorithm does not exist there.
 */
#define _POSIX_C_SOURCE 200809L /* setenv */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/opensslv.h>
#include <openssl/params.h>

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
    EVP_PKEY *pub;  /* encapsulate to: a public key made in the encapsulating provider */
    EVP_PKEY *priv; /* decapsulate with: a key pair of the decapsulating provider */
    const unsigned char *ikme; /* fixed encapsulation randomness (ML-KEM), or NULL */
    unsigned char *ct; /* 2 KiB, heap: job functions run on a 32 KiB fibre stack */
    size_t ctlen;
    /* X448MLKEM1024's secret is 56 + 32 bytes */
    unsigned char secret[128], secret2[128];
    size_t secretlen, secret2len;
} op_kem;

static int op_encaps(void *p)
{
    op_kem *k = p;
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_pkey(E.lib, k->pub, k->propq);
    OSSL_PARAM ps[] = {OSSL_PARAM_octet_string("ikme", (void *)k->ikme, 32), OSSL_PARAM_END};
    int ok = c != NULL && EVP_PKEY_encapsulate_init(c, k->ikme != NULL ? ps : NULL) == 1;

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
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_pkey(E.lib, k->priv, k->propq);
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

/*
 * key's public key, made anew in the provider propq selects: what a TLS peer does with
 * the key share it receives. Private keys do not cross providers here: OpenSSL 3.5
 * cannot export the private key of an EC hybrid (SecP256r1MLKEM768, SecP384r1MLKEM1024:
 * the EC private key is an integer, the hybrid's export wants octets), so default with
 * itself as the only other provider fails the same way; kem_key_export checks that we
 * match it there.
 */
static EVP_PKEY *pub_in(EVP_PKEY *key, const char *name, const char *propq)
{
    unsigned char *enc = NULL;
    size_t len = EVP_PKEY_get1_encoded_public_key(key, &enc);
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_name(E.lib, name, propq);
    OSSL_PARAM ps[] = {OSSL_PARAM_octet_string("pub", enc, len), OSSL_PARAM_END};
    EVP_PKEY *out = NULL;

    if (len == 0 || c == NULL || EVP_PKEY_fromdata_init(c) != 1
        || EVP_PKEY_fromdata(c, &out, EVP_PKEY_PUBLIC_KEY, ps) != 1)
        ap_dump_errors(name);
    EVP_PKEY_CTX_free(c);
    OPENSSL_free(enc);
    return out;
}

START_TEST(kem_interop)
{
    const char *name = KEMS[_i % 6];
    int injob = _i / 6, n = injob ? 8 : 2;
    EVP_KEM *kem = EVP_KEM_fetch(E.lib, name, E.ref);
    op_kg kg[2][8];
    op_kem k[8];
    void *args[8];
    uint64_t before;

    /* Skipped only where default lacks it; where default has it, so must we. */
    if (!available("KEM", kem != NULL, name))
        return;
    EVP_KEM_free(kem);
    ck_assert_msg((kem = EVP_KEM_fetch(E.lib, name, E.ours)) != NULL, "%s: not offered", name);
    EVP_KEM_free(kem);
    /* Key pairs on both sides; ours offloaded in jobs. */
    for (int side = 0; side < 2; side++) {
        before = ap_opctr(&E, "keygen", "offloaded");
        for (int i = 0; i < n; i++) {
            kg[side][i] = (op_kg){E.lib, side == 0 ? E.ours : E.ref, name, NULL, 0, NULL, 0};
            args[i] = &kg[side][i];
        }
        run_all(op_kg_run, args, n, injob && side == 0, "keygen");
        if (injob && side == 0)
            expect_offloaded("keygen", before, n);
    }
    for (int dir = 0; dir < 2; dir++) {
        /* dir 0: we encapsulate to default's key, default decapsulates; dir 1: the
         * other way round. */
        const char *enc = dir == 0 ? E.ours : E.ref, *dec = dir == 0 ? E.ref : E.ours;
        op_kg *dk = kg[dir == 0 ? 1 : 0];

        for (int i = 0; i < n; i++) {
            k[i] = (op_kem){.propq = enc, .pub = pub_in(dk[i].out, name, enc),
                            .priv = dk[i].out, .ct = malloc(2048)};
            ck_assert_msg(k[i].pub != NULL, "%s: public key into %s", name, enc);
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
            EVP_PKEY_free(k[i].pub);
        }
    }
    for (int side = 0; side < 2; side++)
        for (int i = 0; i < n; i++)
            EVP_PKEY_free(kg[side][i].out);
}
END_TEST

/* Exporting a key pair (what libcrypto does to use a key with another provider's
 * operation) succeeds or fails for our keys exactly as for default's: on 3.5 it fails
 * for the EC hybrids, in default too. */
START_TEST(kem_key_export)
{
    const char *name = KEMS[_i];
    EVP_KEM *kem = EVP_KEM_fetch(E.lib, name, E.ref);
    int got[2];

    if (!available("KEM", kem != NULL, name))
        return;
    EVP_KEM_free(kem);
    for (int side = 0; side < 2; side++) {
        op_kg kg = {E.lib, side == 0 ? E.ours : E.ref, name, NULL, 0, NULL, 0};
        OSSL_PARAM *ps = NULL;

        ck_assert_msg(op_keygen(&kg), "%s: keygen", name);
        got[side] = EVP_PKEY_todata(kg.out, EVP_PKEY_KEYPAIR, &ps);
        OSSL_PARAM_free(ps);
        EVP_PKEY_free(kg.out);
        ERR_clear_error();
    }
    ck_assert_msg(got[0] == got[1], "%s: key pair export: ours %d, default %d", name, got[0],
                  got[1]);
}
END_TEST

/* ML-KEM with fixed randomness (a key from a seed, encapsulation with "ikme") gives
 * the same bytes through asyncpool, offloaded, as through default. */
START_TEST(mlkem_deterministic)
{
    static const char *const ML[] = {"ML-KEM-512", "ML-KEM-768", "ML-KEM-1024"};
    const char *name = ML[_i];
    EVP_KEM *kem = EVP_KEM_fetch(E.lib, name, E.ref);
    unsigned char seed[64], ikme[32];
    EVP_PKEY *key[2] = {NULL, NULL};
    op_kem k[2];
    void *arg;
    int ret;
    uint64_t before;

    if (!available("KEM", kem != NULL, name))
        return;
    EVP_KEM_free(kem);
    for (size_t i = 0; i < sizeof(seed); i++)
        seed[i] = (unsigned char)(i * 7 + 1);
    memset(ikme, 0x5a, sizeof(ikme));
    for (int side = 0; side < 2; side++) {
        const char *pq = side == 0 ? E.ours : E.ref;
        EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_name(E.lib, name, pq);
        OSSL_PARAM ps[] = {OSSL_PARAM_octet_string("seed", seed, sizeof(seed)), OSSL_PARAM_END};

        ck_assert(c != NULL && EVP_PKEY_keygen_init(c) == 1
                  && EVP_PKEY_CTX_set_params(c, ps) == 1 && EVP_PKEY_generate(c, &key[side]) == 1);
        EVP_PKEY_CTX_free(c);
        k[side] = (op_kem){.propq = pq, .pub = key[side], .priv = key[side], .ikme = ikme,
                           .ct = malloc(2048)};
        ck_assert_ptr_nonnull(k[side].ct);
    }
    ck_assert_msg(EVP_PKEY_eq(key[0], key[1]) == 1, "%s: keys from one seed differ", name);
    before = ap_opctr(&E, "kem", "offloaded");
    arg = &k[0];
    ck_assert(ap_run_jobs(op_encaps, &arg, 1, INFLIGHT, &ret, NULL) && ret == 1);
    expect_offloaded("kem", before, 1);
    ck_assert(op_encaps(&k[1]) == 1);
    ck_assert_msg(k[0].ctlen == k[1].ctlen && memcmp(k[0].ct, k[1].ct, k[0].ctlen) == 0
                  && k[0].secretlen == k[1].secretlen
                  && memcmp(k[0].secret, k[1].secret, k[0].secretlen) == 0,
                  "%s: encapsulation with fixed ikme differs from default's", name);
    for (int side = 0; side < 2; side++) {
        free(k[side].ct);
        EVP_PKEY_free(key[side]);
    }
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
    int stream;        /* sign_message_update in pieces, then final */
    int deterministic; /* the "deterministic" signature parameter */
    int rc;            /* the first EVP call's return value that was not 1, or 1 */
} op_msig;

static const unsigned char MSG[] = "asyncpool: post-quantum message signatures, both ways";

/* rc gets r unless an earlier call already failed; returns r == 1. */
static int step(op_msig *s, int r)
{
    if (s->rc == 1)
        s->rc = r;
    return r == 1;
}

static int op_msign(void *p)
{
    op_msig *s = p;
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_pkey(E.lib, s->key, s->propq);
    EVP_SIGNATURE *sa = EVP_SIGNATURE_fetch(E.lib, s->alg, s->propq);
    int det = 1;
    OSSL_PARAM ps[] = {OSSL_PARAM_int("deterministic", &det), OSSL_PARAM_END};
    int ok;

    s->rc = 1;
    s->siglen = 50000;
    ok = step(s, c != NULL && sa != NULL)
         && step(s, EVP_PKEY_sign_message_init(c, sa, s->deterministic ? ps : NULL));
    if (ok && s->stream)
        ok = step(s, EVP_PKEY_sign_message_update(c, MSG, 10))
             && step(s, EVP_PKEY_sign_message_update(c, MSG + 10, sizeof(MSG) - 10))
             && step(s, EVP_PKEY_sign_message_final(c, s->sig, &s->siglen));
    else if (ok)
        ok = step(s, EVP_PKEY_sign(c, s->sig, &s->siglen, MSG, sizeof(MSG)));
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
    int ok;

    s->rc = 1;
    ok = step(s, c != NULL && sa != NULL) && step(s, EVP_PKEY_verify_message_init(c, sa, NULL));
    if (ok && s->stream)
        ok = step(s, EVP_PKEY_CTX_set_signature(c, s->sig, s->siglen))
             && step(s, EVP_PKEY_verify_message_update(c, MSG, sizeof(MSG)))
             && step(s, EVP_PKEY_verify_message_final(c));
    else if (ok)
        ok = step(s, EVP_PKEY_verify(c, s->sig, s->siglen, MSG, sizeof(MSG)));
    EVP_SIGNATURE_free(sa);
    EVP_PKEY_CTX_free(c);
    ERR_clear_error();
    return ok;
}

/*
 * Streaming (sign_message_update, then final) where default streams, and otherwise the
 * same refusal as default's: OpenSSL 3.5's ML-DSA and SLH-DSA sign in one shot only
 * (EVP_PKEY_sign_message_update returns -2, "provider signature not supported").
 * Returns 1 if default streams name.
 */
static int stream_parity(const char *name, EVP_PKEY *key)
{
    op_msig s[2];
    void *arg = &s[0];
    int ret;

    for (int side = 0; side < 2; side++) {
        s[side] = (op_msig){.propq = side == 0 ? E.ours : E.ref, .alg = name, .key = key,
                            .sig = malloc(50000), .stream = 1};
        ck_assert_ptr_nonnull(s[side].sig);
    }
    ck_assert(ap_run_jobs(op_msign, &arg, 1, INFLIGHT, &ret, NULL));
    op_msign(&s[1]);
    ck_assert_msg(s[0].rc == s[1].rc, "%s: streamed sign returned %d through asyncpool, %d "
                  "through default", name, s[0].rc, s[1].rc);
    free(s[0].sig);
    free(s[1].sig);
    return s[1].rc == 1;
}

/* A deterministic signature is the same bytes through asyncpool (offloaded) as through
 * default. */
static void deterministic_parity(const char *name, EVP_PKEY *key)
{
    op_msig s[2];
    void *arg = &s[0];
    int ret;
    uint64_t before = ap_opctr(&E, "sign", "offloaded");

    for (int side = 0; side < 2; side++) {
        s[side] = (op_msig){.propq = side == 0 ? E.ours : E.ref, .alg = name, .key = key,
                            .sig = malloc(50000), .deterministic = 1};
        ck_assert_ptr_nonnull(s[side].sig);
    }
    ck_assert(ap_run_jobs(op_msign, &arg, 1, INFLIGHT, &ret, NULL));
    op_msign(&s[1]);
    ck_assert_msg(s[0].rc == s[1].rc, "%s: deterministic sign returned %d through asyncpool, "
                  "%d through default", name, s[0].rc, s[1].rc);
    if (s[1].rc == 1) {
        expect_offloaded("sign", before, 1);
        ck_assert_msg(s[0].siglen == s[1].siglen
                      && memcmp(s[0].sig, s[1].sig, s[0].siglen) == 0,
                      "%s: deterministic signatures differ from default's", name);
    }
    free(s[0].sig);
    free(s[1].sig);
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
        int n = injob ? (slow ? 2 : 8) : 1, streams;
        op_kg kg = {E.lib, E.ref, name, NULL, 0, NULL, 0};
        op_msig s[8];
        void *args[8];
        uint64_t sb, vb;

        ck_assert_msg(op_keygen(&kg), "%s: reference keygen", name);
        streams = stream_parity(name, kg.out);
        /* The SLH-DSA "s" sets take seconds per signature: the "f" sets run the same
         * code on the same parameters and stand for them here. */
        if (!injob && !(slow && name[strlen(name) - 1] == 's'))
            deterministic_parity(name, kg.out);
        for (int dir = 0; dir < 2; dir++) {
            const char *sg = dir == 0 ? E.ours : E.ref, *vf = dir == 0 ? E.ref : E.ours;

            for (int i = 0; i < n; i++) {
                s[i] = (op_msig){.propq = sg, .alg = name, .key = kg.out,
                                 .sig = malloc(50000), .stream = streams && i % 2 && !slow};
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
    Suite *s;

    /* What this test checks is that each call made in a job is offloaded and gives the
     * same bytes as default: offload = always. (The default, auto, runs the cheap ones
     * inline: provider_policy tests that.) Set before any provider is loaded. */
    setenv("ASYNCPOOL_OFFLOAD", "always", 1);
    s = suite_create("provider_pq");
    TCase *tc = tcase_create("pq");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, kem_interop, 0, 12);
    tcase_add_loop_test(tc, kem_key_export, 0, 6);
    tcase_add_loop_test(tc, mlkem_deterministic, 0, 3);
    tcase_add_loop_test(tc, sig_interop, 0, 2 * NPQSIGS);
    suite_add_tcase(s, tc);
    return ap_run_suite(s);
}
