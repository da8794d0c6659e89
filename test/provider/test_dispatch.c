/*
 * Never worse than default (DESIGN.md decision 11), on the OpenSSL this runs on:
 * - every algorithm asyncpool offers has exactly the function ids of the backend's
 *   (`default`) algorithm of the same names, for every operation we wrap;
 * - nothing was dropped for an unknown function id (the backend is the same build);
 * - the newer APIs work through asyncpool: message signatures (3.4+, Ed25519/Ed448, and
 *   every combined signature algorithm the backend has: RSA-SHA256, ECDSA-SHA384, ...,
 *   and the EdDSA variants ED25519ph/ctx, ED448ph), offloaded in jobs, both ways with
 *   default, the same bytes where the signature is deterministic; and opaque-key ciphers
 *   (3.5+, AES-CBC/GCM). Where the running OpenSSL lacks an API the test says so and
 *   checks the id comparison alone.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/core_dispatch.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/opensslv.h>
#include <openssl/params.h>

#include "ops.h"
#include "ptest.h"

#ifndef OSSL_OP_SKEYMGMT
#define OSSL_OP_SKEYMGMT 15
#endif

static ap_env E;

static void setup(void)
{
    ck_assert_msg(ap_env_init(&E), "cannot set up the library context");
}

static void teardown(void)
{
    ap_env_free(&E);
}

static const struct {
    int id;
    const char *name;
} OPS[] = {
    {OSSL_OP_KEYMGMT, "keymgmt"},       {OSSL_OP_SIGNATURE, "signature"},
    {OSSL_OP_ASYM_CIPHER, "asym_cipher"}, {OSSL_OP_KEYEXCH, "keyexch"},
    {OSSL_OP_CIPHER, "cipher"},         {OSSL_OP_KEM, "kem"},
    {OSSL_OP_SKEYMGMT, "skeymgmt"},
};

#define MAXID 128

static void ids_of(const OSSL_DISPATCH *d, unsigned char *has)
{
    memset(has, 0, MAXID);
    for (; d->function_id != 0; d++) {
        ck_assert_msg(d->function_id > 0 && d->function_id < MAXID, "function id %d",
                      d->function_id);
        has[d->function_id] = 1;
    }
}

START_TEST(same_ids)
{
    int op = OPS[_i].id, nc = 0, n = 0;
    const OSSL_ALGORITHM *ours, *ref, *a, *r;
    unsigned char ho[MAXID], hr[MAXID];

    if (ap_dev())
        return;
    ours = OSSL_PROVIDER_query_operation(E.ap, op, &nc);
    ref = OSSL_PROVIDER_query_operation(E.dflt, op, &nc);
    for (a = ours; a != NULL && a->algorithm_names != NULL; a++, n++) {
        for (r = ref; r != NULL && r->algorithm_names != NULL; r++)
            if (strcmp(r->algorithm_names, a->algorithm_names) == 0)
                break;
        ck_assert_msg(r != NULL && r->algorithm_names != NULL,
                      "%s %s: offered by asyncpool, not by default", OPS[_i].name,
                      a->algorithm_names);
        ids_of(a->implementation, ho);
        ids_of(r->implementation, hr);
        for (int id = 1; id < MAXID; id++)
            ck_assert_msg(ho[id] == hr[id], "%s %s: function id %d %s", OPS[_i].name,
                          a->algorithm_names, id,
                          hr[id] ? "missing (default has it)" : "offered but default lacks it");
    }
    printf("%s: %d algorithms offered, ids identical to default's (OpenSSL %s)\n",
           OPS[_i].name, n, OpenSSL_version(OPENSSL_VERSION_STRING));
    if (ours != NULL)
        OSSL_PROVIDER_unquery_operation(E.ap, op, ours);
    if (ref != NULL)
        OSSL_PROVIDER_unquery_operation(E.dflt, op, ref);
}
END_TEST

START_TEST(none_dropped)
{
    if (ap_dev())
        return;
    ck_assert_msg(ap_ctr(&E, "asyncpool.dropped") == 0,
                  "asyncpool dropped %llu backend algorithms with the same OpenSSL",
                  (unsigned long long)ap_ctr(&E, "asyncpool.dropped"));
}
END_TEST

/* Message signatures (3.4+): Ed25519 and Ed448 through EVP_PKEY_sign_message_*, signed
 * by asyncpool and verified by default, and the other way round. */
#if OPENSSL_VERSION_NUMBER >= 0x30400000L
static const char *const MSGSIG[] = {"ED25519", "ED448"};
#endif

START_TEST(message_signature)
{
#if OPENSSL_VERSION_NUMBER >= 0x30400000L
    static const unsigned char msg[] = "never worse than default";
    const char *alg = MSGSIG[_i];
    const char *sides[2][2] = {{E.ours, E.ref}, {E.ref, E.ours}};
    uint64_t before = ap_opctr(&E, "sign", "inline");

    for (int s = 0; s < 2; s++) {
        EVP_PKEY *key = NULL;
        EVP_PKEY_CTX *kc = EVP_PKEY_CTX_new_from_name(E.lib, alg, sides[s][0]);
        EVP_PKEY_CTX *sc = NULL, *vc = NULL;
        EVP_SIGNATURE *ss = EVP_SIGNATURE_fetch(E.lib, alg, sides[s][0]);
        EVP_SIGNATURE *vs = EVP_SIGNATURE_fetch(E.lib, alg, sides[s][1]);
        unsigned char sig[256];
        size_t siglen = sizeof(sig);

        ck_assert(kc != NULL && ss != NULL && vs != NULL);
        ck_assert(EVP_PKEY_keygen_init(kc) == 1 && EVP_PKEY_generate(kc, &key) == 1);
        sc = EVP_PKEY_CTX_new_from_pkey(E.lib, key, sides[s][0]);
        vc = EVP_PKEY_CTX_new_from_pkey(E.lib, key, sides[s][1]);
        ck_assert_msg(EVP_PKEY_sign_message_init(sc, ss, NULL) == 1,
                      "%s: sign_message_init via %s", alg, sides[s][0]);
        ck_assert_msg(EVP_PKEY_sign(sc, sig, &siglen, msg, sizeof(msg)) == 1, "%s: sign", alg);
        ck_assert_msg(EVP_PKEY_verify_message_init(vc, vs, NULL) == 1,
                      "%s: verify_message_init via %s", alg, sides[s][1]);
        ck_assert_msg(EVP_PKEY_verify(vc, sig, siglen, msg, sizeof(msg)) == 1, "%s: verify", alg);
        EVP_PKEY_CTX_free(vc);
        vc = EVP_PKEY_CTX_new_from_pkey(E.lib, key, sides[s][1]);
        sig[0] ^= 1;
        ck_assert(EVP_PKEY_verify_message_init(vc, vs, NULL) == 1);
        ck_assert_msg(EVP_PKEY_verify(vc, sig, siglen, msg, sizeof(msg)) != 1,
                      "%s: a bad signature verified", alg);
        ERR_clear_error();
        EVP_PKEY_CTX_free(sc);
        EVP_PKEY_CTX_free(vc);
        EVP_PKEY_CTX_free(kc);
        EVP_SIGNATURE_free(ss);
        EVP_SIGNATURE_free(vs);
        EVP_PKEY_free(key);
    }
    if (!ap_dev())
        ck_assert_msg(ap_opctr(&E, "sign", "inline") > before,
                      "%s: asyncpool's sign was not used", alg);
#else
    printf("message signatures: not available on this OpenSSL (built with %s)\n",
           OPENSSL_VERSION_TEXT);
#endif
}
END_TEST

/*
 * Combined signature algorithms (3.4+): one signature algorithm per key type and digest
 * ("RSA-SHA256", "ECDSA-SHA384", ...; "ED25519ph", "ED25519ctx", "ED448ph" for EdDSA),
 * used through EVP_PKEY_sign_message_* / verify_message_* or the one-shot
 * EVP_PKEY_sign/verify after a message init. Every one the backend has must be offered
 * by asyncpool, on keys generated by asyncpool, and in jobs the sign (one-shot, and
 * sign_message_final after streamed updates) and verify (one-shot, and
 * verify_message_final) are offloaded. default verifies what asyncpool signs and the
 * other way round; RSA PKCS#1 v1.5, ECDSA with RFC 6979 nonces and EdDSA are
 * deterministic: the same bytes as default's.
 */
#if OPENSSL_VERSION_NUMBER >= 0x30400000L
#define CJOBS 4

typedef struct op_csig {
    const char *propq, *alg;
    EVP_PKEY *key;
    int stream;    /* message_update in two pieces, then message_final */
    int rfc6979;   /* ECDSA: deterministic nonces ("nonce-type" 1) */
    const unsigned char *ctxstr; /* ED25519ctx: a context string, else NULL */
    unsigned char *sig; /* heap: CSIGMAX bytes */
    size_t siglen;
    int rc; /* the first EVP call's return value that was not 1, or 1 */
} op_csig;
#define CSIGMAX 1024

static const unsigned char CMSG[] = "asyncpool: combined signature algorithms, both ways";

static int cstep(op_csig *s, int r)
{
    if (s->rc == 1)
        s->rc = r;
    return r == 1;
}

/* sign_message_init's parameters for s (ps must hold 3). */
static const OSSL_PARAM *csig_params(op_csig *s, OSSL_PARAM *ps, unsigned *nonce)
{
    OSSL_PARAM *p = ps;

    *nonce = 1;
    if (s->rfc6979)
        *p++ = OSSL_PARAM_construct_uint("nonce-type", nonce);
    if (s->ctxstr != NULL)
        *p++ = OSSL_PARAM_construct_octet_string("context-string", (void *)s->ctxstr,
                                                 strlen((const char *)s->ctxstr));
    *p = OSSL_PARAM_construct_end();
    return p == ps ? NULL : ps;
}

static int op_csign(void *p)
{
    op_csig *s = p;
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_pkey(E.lib, s->key, s->propq);
    EVP_SIGNATURE *sa = EVP_SIGNATURE_fetch(E.lib, s->alg, s->propq);
    OSSL_PARAM ps[3];
    unsigned nonce;
    int ok;

    s->rc = 1;
    s->siglen = CSIGMAX;
    ok = cstep(s, c != NULL && sa != NULL)
         && cstep(s, EVP_PKEY_sign_message_init(c, sa, csig_params(s, ps, &nonce)));
    if (ok && s->stream)
        ok = cstep(s, EVP_PKEY_sign_message_update(c, CMSG, 7))
             && cstep(s, EVP_PKEY_sign_message_update(c, CMSG + 7, sizeof(CMSG) - 7))
             && cstep(s, EVP_PKEY_sign_message_final(c, s->sig, &s->siglen));
    else if (ok)
        ok = cstep(s, EVP_PKEY_sign(c, s->sig, &s->siglen, CMSG, sizeof(CMSG)));
    EVP_SIGNATURE_free(sa);
    EVP_PKEY_CTX_free(c);
    ERR_clear_error();
    return ok;
}

static int op_cverify(void *p)
{
    op_csig *s = p;
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_pkey(E.lib, s->key, s->propq);
    EVP_SIGNATURE *sa = EVP_SIGNATURE_fetch(E.lib, s->alg, s->propq);
    OSSL_PARAM ps[3];
    unsigned nonce;
    int ok;

    s->rc = 1;
    ok = cstep(s, c != NULL && sa != NULL)
         && cstep(s, EVP_PKEY_verify_message_init(c, sa, csig_params(s, ps, &nonce)));
    if (ok && s->stream)
        ok = cstep(s, EVP_PKEY_CTX_set_signature(c, s->sig, s->siglen))
             && cstep(s, EVP_PKEY_verify_message_update(c, CMSG, 9))
             && cstep(s, EVP_PKEY_verify_message_update(c, CMSG + 9, sizeof(CMSG) - 9))
             && cstep(s, EVP_PKEY_verify_message_final(c));
    else if (ok)
        ok = cstep(s, EVP_PKEY_verify(c, s->sig, s->siglen, CMSG, sizeof(CMSG)));
    EVP_SIGNATURE_free(sa);
    EVP_PKEY_CTX_free(c);
    ERR_clear_error();
    return ok;
}

/* The key type a combined algorithm signs with, from its names; NULL if it is not a
 * combined algorithm of a key type asyncpool holds. */
static const char *combined_keytype(const char *names)
{
    static const struct {
        const char *prefix, *keytype;
    } K[] = {{"RSA-", "RSA"}, {"ECDSA-", "EC"}, {"ED25519ph", "ED25519"},
             {"ED25519ctx", "ED25519"}, {"ED448ph", "ED448"}};

    for (const char *n = names; n != NULL && *n != '\0';) {
        for (size_t k = 0; k < sizeof(K) / sizeof(K[0]); k++)
            if (strncmp(n, K[k].prefix, strlen(K[k].prefix)) == 0)
                return K[k].keytype;
        n = strchr(n, ':');
        n = n != NULL ? n + 1 : NULL;
    }
    return NULL;
}

/* The first name in a colon-separated list, into buf. */
static const char *first_name(const char *names, char *buf, size_t len)
{
    size_t n = strcspn(names, ":");

    snprintf(buf, len, "%.*s", (int)(n < len ? n : len - 1), names);
    return buf;
}

/* 1 if want is one of the colon-separated names (case-insensitive). */
static int listed(const char *names, const char *want)
{
    size_t n = strlen(want);

    for (const char *p = names; p != NULL && *p != '\0';) {
        if (strncasecmp(p, want, n) == 0 && (p[n] == ':' || p[n] == '\0'))
            return 1;
        p = strchr(p, ':');
        p = p != NULL ? p + 1 : NULL;
    }
    return 0;
}

/*
 * Whether alg signs in pieces (sign_message_update, then final): asked of default,
 * outside a job; asyncpool must answer the same (3.5's EdDSA variants sign in one shot
 * only and refuse the update).
 */
static int combined_streams(const char *alg, EVP_PKEY *key, int ec,
                            const unsigned char *ctxstr)
{
    op_csig s[2];

    for (int side = 0; side < 2; side++) {
        s[side] = (op_csig){.propq = side == 0 ? E.ours : E.ref, .alg = alg, .key = key,
                            .stream = 1, .rfc6979 = ec, .ctxstr = ctxstr,
                            .sig = malloc(CSIGMAX)};
        ck_assert_ptr_nonnull(s[side].sig);
        op_csign(&s[side]);
        free(s[side].sig);
    }
    ck_assert_msg(s[0].rc == s[1].rc, "%s: streamed sign returned %d through asyncpool, %d "
                  "through default", alg, s[0].rc, s[1].rc);
    return s[1].rc == 1;
}

static void check_jobs(const char *alg, const char *what, const ap_jobstats *st)
{
    ck_assert_msg(st->lost_wakeup == 0 && st->multi_fd == 0 && st->fd_changes == 0,
                  "%s %s: async protocol (lost wake-ups %d, multi-fd %d, fd changes %d)", alg,
                  what, st->lost_wakeup, st->multi_fd, st->fd_changes);
}

/* Sign and verify with one combined algorithm, in jobs through asyncpool and outside
 * them through default. */
static void combined_one(const char *alg, const char *keytype, EVP_PKEY *key)
{
    int ec = strcmp(keytype, "EC") == 0;
    /* Every combined algorithm of 3.4-3.6 is deterministic (PKCS#1 v1.5, RFC 6979 ECDSA,
     * EdDSA); an RSA-PSS one, should a backend have it, would not be. */
    int det = strstr(alg, "PSS") == NULL;
    const unsigned char *ctxstr = strstr(alg, "ctx") != NULL ? (const unsigned char *)"ap"
                                                             : NULL;
    int streams = combined_streams(alg, key, ec, ctxstr);
    op_csig s[CJOBS], ref;
    void *args[CJOBS];
    int rets[CJOBS];
    ap_jobstats st;
    uint64_t sb = ap_opctr(&E, "sign", "offloaded"), vb;

    /* asyncpool signs in jobs, half one-shot, half streamed where the algorithm streams:
     * all offloaded (sign, or sign_message_final). */
    for (int i = 0; i < CJOBS; i++) {
        s[i] = (op_csig){.propq = E.ours, .alg = alg, .key = key, .stream = streams && i % 2,
                         .rfc6979 = ec, .ctxstr = ctxstr, .sig = malloc(CSIGMAX)};
        ck_assert_ptr_nonnull(s[i].sig);
        args[i] = &s[i];
    }
    ck_assert_msg(ap_run_jobs(op_csign, args, CJOBS, CJOBS, rets, &st), "%s: job loop", alg);
    check_jobs(alg, "sign", &st);
    for (int i = 0; i < CJOBS; i++)
        ck_assert_msg(rets[i] == 1, "%s: sign #%d (%s) through asyncpool returned %d", alg, i,
                      s[i].stream ? "streamed" : "one-shot", s[i].rc);
    if (!ap_dev())
        ck_assert_msg(ap_opctr(&E, "sign", "offloaded") - sb >= CJOBS,
                      "%s: %d signs in jobs, sign.offloaded %llu -> %llu", alg, CJOBS,
                      (unsigned long long)sb,
                      (unsigned long long)ap_opctr(&E, "sign", "offloaded"));
    /* default verifies them, both ways of calling. */
    for (int i = 0; i < CJOBS; i++) {
        s[i].propq = E.ref;
        ck_assert_msg(op_cverify(&s[i]) == 1, "%s: default rejects asyncpool's signature #%d "
                      "(rc %d)", alg, i, s[i].rc);
    }
    /* default signs (one-shot); where the signature is deterministic, the same bytes. */
    ref = (op_csig){.propq = E.ref, .alg = alg, .key = key, .rfc6979 = ec, .ctxstr = ctxstr,
                    .sig = malloc(CSIGMAX)};
    ck_assert_ptr_nonnull(ref.sig);
    ck_assert_msg(op_csign(&ref) == 1, "%s: default's sign returned %d", alg, ref.rc);
    for (int i = 0; det && i < CJOBS; i++)
        ck_assert_msg(s[i].siglen == ref.siglen && memcmp(s[i].sig, ref.sig, ref.siglen) == 0,
                      "%s: deterministic signature #%d differs from default's", alg, i);
    /* asyncpool verifies default's signature in jobs, one-shot and streamed, offloaded;
     * then a flipped bit fails, in a job too. */
    vb = ap_opctr(&E, "verify", "offloaded");
    for (int i = 0; i < CJOBS; i++) {
        memcpy(s[i].sig, ref.sig, ref.siglen);
        s[i].siglen = ref.siglen;
        s[i].propq = E.ours;
        if (i == CJOBS - 1)
            s[i].sig[ref.siglen / 2] ^= 0x10;
    }
    ck_assert_msg(ap_run_jobs(op_cverify, args, CJOBS, CJOBS, rets, &st), "%s: job loop", alg);
    check_jobs(alg, "verify", &st);
    for (int i = 0; i < CJOBS - 1; i++)
        ck_assert_msg(rets[i] == 1, "%s: asyncpool rejects default's signature #%d (%s, rc %d)",
                      alg, i, s[i].stream ? "streamed" : "one-shot", s[i].rc);
    ck_assert_msg(rets[CJOBS - 1] != 1, "%s: a bad signature verified", alg);
    if (!ap_dev())
        ck_assert_msg(ap_opctr(&E, "verify", "offloaded") - vb >= CJOBS,
                      "%s: %d verifies in jobs, verify.offloaded %llu -> %llu", alg, CJOBS,
                      (unsigned long long)vb,
                      (unsigned long long)ap_opctr(&E, "verify", "offloaded"));
    printf("  %s: %d signs and %d verifies offloaded (%s), default agrees both ways%s\n",
           alg, CJOBS, CJOBS, streams ? "one-shot and streamed" : "one-shot only, as default",
           det ? ", same bytes" : "");
    for (int i = 0; i < CJOBS; i++)
        free(s[i].sig);
    free(ref.sig);
}
#endif

START_TEST(combined_signatures)
{
#if OPENSSL_VERSION_NUMBER >= 0x30400000L
    /* Present in every 3.4+ default: their absence would mean the listing is wrong. */
    static const char *const MUST[] = {"RSA-SHA256", "RSA-SHA512", "ECDSA-SHA256",
                                       "ECDSA-SHA384"};
    int nc = 0, n = 0, must = 0;
    const OSSL_ALGORITHM *ref = OSSL_PROVIDER_query_operation(E.dflt, OSSL_OP_SIGNATURE, &nc);
    EVP_PKEY *keys[3] = {NULL, NULL, NULL};
    static const char *const KT[3] = {"RSA", "EC", "ED25519"};

    ck_assert(ASYNC_init_thread(CJOBS, CJOBS));
    /* Keys generated by asyncpool: held by its keymgmt. */
    for (int k = 0; k < 3; k++) {
        op_kg kg = {E.lib, E.ours, KT[k], k == 1 ? "P-256" : NULL, k == 0 ? 2048 : 0, NULL, 0};

        ck_assert_msg(op_keygen(&kg), "%s: keygen through asyncpool", KT[k]);
        keys[k] = kg.out;
    }
    for (const OSSL_ALGORITHM *r = ref; r != NULL && r->algorithm_names != NULL; r++) {
        const char *kt = combined_keytype(r->algorithm_names);
        char name[64];
        EVP_SIGNATURE *sa;
        EVP_PKEY *key = NULL, *k448 = NULL;

        if (kt == NULL)
            continue;
        first_name(r->algorithm_names, name, sizeof(name));
        for (size_t m = 0; m < sizeof(MUST) / sizeof(MUST[0]); m++)
            must += listed(r->algorithm_names, MUST[m]);
        sa = EVP_SIGNATURE_fetch(E.lib, name, E.ours);
        ck_assert_msg(sa != NULL && (ap_dev() || strcmp(OSSL_PROVIDER_get0_name(
                                         EVP_SIGNATURE_get0_provider(sa)), "asyncpool") == 0),
                      "%s (%s): default has it, asyncpool does not offer it", name,
                      r->algorithm_names);
        EVP_SIGNATURE_free(sa);
        if (strcmp(kt, "ED448") == 0) {
            op_kg kg = {E.lib, E.ours, "ED448", NULL, 0, NULL, 0};

            ck_assert_msg(op_keygen(&kg), "ED448: keygen through asyncpool");
            key = k448 = kg.out;
        } else {
            key = keys[strcmp(kt, "RSA") == 0 ? 0 : strcmp(kt, "EC") == 0 ? 1 : 2];
        }
        combined_one(name, kt, key);
        EVP_PKEY_free(k448);
        n++;
    }
    if (ref != NULL)
        OSSL_PROVIDER_unquery_operation(E.dflt, OSSL_OP_SIGNATURE, ref);
    for (int k = 0; k < 3; k++)
        EVP_PKEY_free(keys[k]);
    ASYNC_cleanup_thread();
    ck_assert_msg(must == (int)(sizeof(MUST) / sizeof(MUST[0])),
                  "default lacks some of RSA-SHA256, RSA-SHA512, ECDSA-SHA256, ECDSA-SHA384");
    printf("combined signatures: %d algorithms of default signed and verified through "
           "asyncpool, offloaded in jobs, both ways (OpenSSL %s)\n", n,
           OpenSSL_version(OPENSSL_VERSION_STRING));
#else
    printf("combined signatures: not available on this OpenSSL (built with %s)\n",
           OPENSSL_VERSION_TEXT);
#endif
}
END_TEST

/* Opaque-key ciphers (3.5+): EVP_CipherInit_SKEY through asyncpool's cipher gives what
 * default's gives with the raw key. */
#if OPENSSL_VERSION_NUMBER >= 0x30500000L
static const char *const SKEYCIPH[] = {"AES-128-CBC", "AES-256-GCM"};
#endif

START_TEST(skey_cipher)
{
#if OPENSSL_VERSION_NUMBER >= 0x30500000L
    const char *name = SKEYCIPH[_i];
    EVP_CIPHER *ours = EVP_CIPHER_fetch(E.lib, name, E.ours);
    EVP_CIPHER *ref = EVP_CIPHER_fetch(E.lib, name, E.ref);
    unsigned char key[32], iv[16], in[64], out1[96], out2[96];
    int l1 = 0, l2 = 0, f = 0;
    size_t klen;
    EVP_SKEY *skey;
    EVP_CIPHER_CTX *c1 = EVP_CIPHER_CTX_new(), *c2 = EVP_CIPHER_CTX_new();

    ck_assert(ours != NULL && ref != NULL && c1 != NULL && c2 != NULL);
    klen = (size_t)EVP_CIPHER_get_key_length(ours);
    memset(key, 0x42, sizeof(key));
    memset(iv, 0x24, sizeof(iv));
    memset(in, 0x5a, sizeof(in));
    /* libcrypto requires the key's skeymgmt and the cipher to come from one provider
     * (evp_cipher_init_skey_internal): an application that prefers asyncpool gets both
     * from us, so we must offer the skeymgmt too. */
    skey = EVP_SKEY_import_raw_key(E.lib, "AES", key, klen, E.ours);
    ck_assert_msg(skey != NULL, "EVP_SKEY_import_raw_key");
    if (EVP_CipherInit_SKEY(c1, ours, skey, iv, (size_t)EVP_CIPHER_get_iv_length(ours), 1,
                            NULL) != 1) {
        ap_dump_errors("EVP_CipherInit_SKEY");
        ck_abort_msg("%s: EVP_CipherInit_SKEY through asyncpool failed", name);
    }
    ck_assert(EVP_EncryptUpdate(c1, out1, &l1, in, sizeof(in)) == 1);
    ck_assert(EVP_EncryptFinal_ex(c1, out1 + l1, &f) == 1);
    l1 += f;
    ck_assert(EVP_EncryptInit_ex2(c2, ref, key, iv, NULL) == 1);
    ck_assert(EVP_EncryptUpdate(c2, out2, &l2, in, sizeof(in)) == 1);
    ck_assert(EVP_EncryptFinal_ex(c2, out2 + l2, &f) == 1);
    l2 += f;
    ck_assert_int_eq(l1, l2);
    ck_assert_msg(memcmp(out1, out2, (size_t)l1) == 0, "%s: ciphertexts differ", name);
    EVP_SKEY_free(skey);
    EVP_CIPHER_CTX_free(c1);
    EVP_CIPHER_CTX_free(c2);
    EVP_CIPHER_free(ours);
    EVP_CIPHER_free(ref);
#else
    printf("opaque-key ciphers: not available on this OpenSSL (built with %s)\n",
           OPENSSL_VERSION_TEXT);
#endif
}
END_TEST

int main(void)
{
    Suite *s = suite_create("provider_dispatch");
    TCase *tc = tcase_create("dispatch");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_loop_test(tc, same_ids, 0, (int)(sizeof(OPS) / sizeof(OPS[0])));
    tcase_add_test(tc, none_dropped);
    tcase_add_loop_test(tc, message_signature, 0, 2);
    tcase_add_test(tc, combined_signatures);
    tcase_add_loop_test(tc, skey_cipher, 0, 2);
    suite_add_tcase(s, tc);
    return ap_run_suite(s);
}
