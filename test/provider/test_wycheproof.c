/*
 * Wycheproof: every vector file in $WYCHEPROOF_DIR runs through asyncpool inside ASYNC
 * jobs (32 in flight). "valid" vectors must pass with the file's expected output,
 * "invalid" ones must be rejected, "acceptable" ones may go either way (but if accepted,
 * the output must be the expected one). Each vector also runs through the default
 * provider outside any job, and asyncpool must behave exactly like it (same verdict,
 * same bytes): asyncpool promises the backend's behaviour.
 *
 * Where OpenSSL's default provider itself cannot match a file's verdict, the vector is
 * counted "openssl-divergent" and listed by tcId; that is allowed only for the known
 * cases in KNOWN[] below (each with its reason), so a new divergence fails the test.
 *
 * Post-quantum files (OpenSSL 3.5+): ML-KEM decapsulation with a key made from the
 * vector's seed (the encapsulation key must equal the vector's ek), ML-KEM encapsulation
 * to the vector's ek with its randomness m (the "ikme" parameter), ML-DSA verification
 * with the vector's public key and context, and ML-DSA deterministic (or, with rnd,
 * "test-entropy") signing with the seed's key, from the message or from mu. A file whose
 * algorithm the running OpenSSL's default provider lacks is listed as skipped, with the
 * version; on an OpenSSL that has it, it must run. PKCS#1 v1.5 decryption runs with implicit rejection off (OpenSSL 3.2+ has it
 * on), so that bad padding is an error as the file expects, on every 3.x.
 *
 * Exit 77 (ctest SKIP_RETURN_CODE) when the vector folder is missing.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <json-c/json.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "ops.h"
#include "ptest.h"

#define INFLIGHT 32

enum kind { K_SIG, K_DEC, K_DH, K_CIPH, K_KEMDEC, K_KEMENC, K_PQVERIFY, K_PQSIGN };

/* A post-quantum vector (kinds K_KEMDEC ... K_PQSIGN). */
typedef struct op_pq {
    const char *alg;                /* "ML-KEM-768", "ML-DSA-65", ... */
    const unsigned char *seed;      /* KEMDEC: key generation seed (d || z) */
    size_t seedlen;
    const unsigned char *ek;        /* KEMDEC: expected encapsulation key; KEMENC: the key */
    size_t eklen;
    const unsigned char *in;        /* KEMDEC: ciphertext; signatures: message or mu */
    size_t inlen;
    const unsigned char *m;         /* KEMENC: encapsulation randomness */
    size_t mlen;
    const unsigned char *ctx;       /* signatures: context string, or NULL */
    size_t ctxlen;
    const unsigned char *rnd;       /* PQSIGN: signing randomness, or NULL: deterministic */
    size_t rndlen;
    int mu;                         /* signatures: in is mu, not the message */
    const unsigned char *sig;       /* PQVERIFY: the signature */
    size_t siglen;
    EVP_PKEY *key;                  /* PQVERIFY: public key; PQSIGN: private key */
} op_pq;
enum expect { E_INVALID = 0, E_VALID = 1, E_ACCEPTABLE = 2 };

struct vec;
typedef struct vec {
    int tcid;
    int expect;
    char flags[160]; /* the vector's flags, comma separated, for reports */
    enum kind kind;
    int keyload_failed; /* the default provider could not even load the key: rejected */
    op_sig sig;
    op_enc enc;
    op_dh dh;
    op_ciph dec, encr; /* cipher: decrypt ct, and (re)encrypt msg */
    op_pq pq;
    unsigned char *exp;   /* expected output: plaintext, shared secret */
    size_t explen;
    unsigned char *expct; /* cipher: expected ciphertext */
    size_t expctlen;
    unsigned char *expctbuf; /* cipher: buffer for re-encryption output */
    /* results: [0] asyncpool in a job, [1] default outside jobs */
    int accepted[2];
    unsigned char *out[2];
    size_t outlen[2];
    unsigned long err[2];
    int fetch_failed;
    EVP_PKEY *owned[2];
    unsigned char *bufs[16];
    int nbufs;
} vec;

/* Known, explained divergences of OpenSSL 3.0's default provider from a file's verdict.
 * A vector is excused only if it matches file, flag and (if given) the predicate. */
static int iv_over_128_bytes(const struct vec *v)
{
    return v->dec.ivlen > 128; /* GCM_IV_MAX_SIZE in OpenSSL 3.0's GCM provider */
}

static const struct known {
    const char *file, *flag;
    int (*pred)(const struct vec *v);
    const char *why;
} KNOWN[] = {
    {"aes_gcm_test.json", "LongIv", iv_over_128_bytes,
     "OpenSSL's AES-GCM rejects IVs longer than 128 bytes (these are 257 bytes)"},
    {"ecdh_secp256r1_test.json", "NoCofactor", NULL,
     "OpenSSL accepts an explicit-parameter P-256 peer key that omits the cofactor"},
    {"ecdh_secp256r1_test.json", "LargeCofactor", NULL,
     "OpenSSL accepts an explicit-parameter P-256 peer key with cofactor = n"},
    {"ecdh_secp384r1_test.json", "NoCofactor", NULL,
     "OpenSSL accepts an explicit-parameter P-384 peer key that omits the cofactor"},
    {"ecdh_secp384r1_test.json", "LargeCofactor", NULL,
     "OpenSSL accepts an explicit-parameter P-384 peer key with cofactor = n"},
};

static int is_known(const char *file, const vec *v)
{
    size_t i;

    for (i = 0; i < sizeof(KNOWN) / sizeof(KNOWN[0]); i++)
        if (strcmp(file, KNOWN[i].file) == 0 && strstr(v->flags, KNOWN[i].flag) != NULL
            && (KNOWN[i].pred == NULL || KNOWN[i].pred(v)))
            return 1;
    return 0;
}

static ap_env E;

static const char *jstr(json_object *o, const char *k)
{
    json_object *v;

    return json_object_object_get_ex(o, k, &v) ? json_object_get_string(v) : NULL;
}

static int jint(json_object *o, const char *k, int dflt)
{
    json_object *v;

    return json_object_object_get_ex(o, k, &v) ? json_object_get_int(v) : dflt;
}

static unsigned char *hexbuf(vec *v, const char *hex, size_t *len)
{
    unsigned char *b;

    *len = 0;
    if (hex == NULL || (b = ap_unhex(hex, len)) == NULL)
        return NULL;
    if (v != NULL && v->nbufs < 16)
        v->bufs[v->nbufs++] = b;
    return b;
}

static unsigned char *scratch(vec *v, size_t n)
{
    unsigned char *b = calloc(1, n + 64);

    if (b != NULL && v->nbufs < 16)
        v->bufs[v->nbufs++] = b;
    return b;
}

/* A key from hex DER, loaded by the default provider: a SubjectPublicKeyInfo, or
 * (priv) a PKCS#8 private key. */
static EVP_PKEY *load_der(const char *hex, int priv)
{
    size_t len;
    unsigned char *der = hex ? ap_unhex(hex, &len) : NULL;
    const unsigned char *p = der;
    EVP_PKEY *k = NULL;

    if (der != NULL)
        k = priv ? d2i_AutoPrivateKey_ex(NULL, &p, (long)len, E.lib, E.ref)
                 : d2i_PUBKEY_ex(NULL, &p, (long)len, E.lib, E.ref);
    free(der);
    ERR_clear_error();
    return k;
}

/* EC private key from a raw scalar (may carry a leading zero byte). */
static EVP_PKEY *load_ec_priv(const char *curve, const char *hex)
{
    const char *group = strcmp(curve, "secp256r1") == 0 ? "P-256"
                        : strcmp(curve, "secp384r1") == 0 ? "P-384"
                        : strcmp(curve, "secp521r1") == 0 ? "P-521" : curve;
    BIGNUM *d = NULL;
    OSSL_PARAM_BLD *b = OSSL_PARAM_BLD_new();
    OSSL_PARAM *ps = NULL;
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_name(E.lib, "EC", E.ref);
    EVP_PKEY *k = NULL;

    if (BN_hex2bn(&d, hex) > 0 && b != NULL
        && OSSL_PARAM_BLD_push_utf8_string(b, OSSL_PKEY_PARAM_GROUP_NAME, group, 0)
        && OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_PRIV_KEY, d)
        && (ps = OSSL_PARAM_BLD_to_param(b)) != NULL && c != NULL
        && EVP_PKEY_fromdata_init(c) > 0)
        EVP_PKEY_fromdata(c, &k, EVP_PKEY_KEYPAIR, ps);
    EVP_PKEY_CTX_free(c);
    OSSL_PARAM_free(ps);
    OSSL_PARAM_BLD_free(b);
    BN_free(d);
    ERR_clear_error();
    return k;
}

static EVP_PKEY *load_raw(const char *alg, const char *hex, int priv)
{
    size_t len;
    unsigned char *raw = hex ? ap_unhex(hex, &len) : NULL;
    EVP_PKEY *k = NULL;

    if (raw != NULL)
        k = priv ? EVP_PKEY_new_raw_private_key_ex(E.lib, alg, E.ref, raw, len)
                 : EVP_PKEY_new_raw_public_key_ex(E.lib, alg, E.ref, raw, len);
    free(raw);
    ERR_clear_error();
    return k;
}

/* ---------------------------------------------------- post-quantum operations */

/* The ML-KEM key made from seed under propq, or NULL if the seed is refused. */
static EVP_PKEY *mlkem_from_seed(const op_pq *o, const char *propq)
{
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_name(E.lib, o->alg, propq);
    OSSL_PARAM ps[] = {OSSL_PARAM_octet_string("seed", (void *)o->seed, o->seedlen),
                       OSSL_PARAM_END};
    EVP_PKEY *k = NULL;

    if (c == NULL || EVP_PKEY_keygen_init(c) != 1 || EVP_PKEY_CTX_set_params(c, ps) != 1
        || EVP_PKEY_generate(c, &k) != 1)
        k = NULL;
    EVP_PKEY_CTX_free(c);
    return k;
}

/* Decapsulate: key from the seed (checked against ek), then K into out. */
static int pq_kem_decaps(op_pq *o, const char *propq, unsigned char *out, size_t *outlen,
                         unsigned long *err)
{
    EVP_PKEY *k = mlkem_from_seed(o, propq);
    EVP_PKEY_CTX *c = k != NULL ? EVP_PKEY_CTX_new_from_pkey(E.lib, k, propq) : NULL;
    unsigned char *pub = NULL;
    size_t publen = 0;
    int ok = c != NULL && EVP_PKEY_decapsulate_init(c, NULL) == 1
             && EVP_PKEY_decapsulate(c, out, outlen, o->in, o->inlen) == 1;

    /* The key must be the vector's: a wrong ek is wrong output, not a rejection. */
    if (ok && o->ek != NULL
        && ((publen = EVP_PKEY_get1_encoded_public_key(k, &pub)) != o->eklen
            || memcmp(pub, o->ek, publen) != 0))
        *outlen = (size_t)-1;
    OPENSSL_free(pub);
    *err = ERR_peek_last_error();
    ERR_clear_error();
    EVP_PKEY_CTX_free(c);
    EVP_PKEY_free(k);
    return ok;
}

/* Encapsulate to ek with randomness m: c || K into out. */
static int pq_kem_encaps(op_pq *o, const char *propq, unsigned char *out, size_t *outlen,
                         unsigned long *err)
{
    EVP_PKEY_CTX *kc = EVP_PKEY_CTX_new_from_name(E.lib, o->alg, propq), *c = NULL;
    OSSL_PARAM kp[] = {OSSL_PARAM_octet_string("pub", (void *)o->ek, o->eklen), OSSL_PARAM_END};
    OSSL_PARAM ep[] = {OSSL_PARAM_octet_string("ikme", (void *)o->m, o->mlen), OSSL_PARAM_END};
    EVP_PKEY *k = NULL;
    size_t ctlen = *outlen, klen;
    int ok = kc != NULL && EVP_PKEY_fromdata_init(kc) == 1
             && EVP_PKEY_fromdata(kc, &k, EVP_PKEY_PUBLIC_KEY, kp) == 1
             && (c = EVP_PKEY_CTX_new_from_pkey(E.lib, k, propq)) != NULL
             && EVP_PKEY_encapsulate_init(c, ep) == 1
             && EVP_PKEY_encapsulate(c, NULL, &ctlen, NULL, &klen) == 1
             && ctlen + klen <= *outlen
             && EVP_PKEY_encapsulate(c, out, &ctlen, out + ctlen, &klen) == 1;

    *outlen = ok ? ctlen + klen : 0;
    *err = ERR_peek_last_error();
    ERR_clear_error();
    EVP_PKEY_CTX_free(c);
    EVP_PKEY_CTX_free(kc);
    EVP_PKEY_free(k);
    return ok;
}

/* The signature parameters of a vector: context string, mu input, and for signing
 * deterministic or the given randomness. */
static void pq_sig_params(const op_pq *o, int sign, OSSL_PARAM *ps, int *one)
{
    int n = 0;

    if (o->ctx != NULL)
        ps[n++] = OSSL_PARAM_construct_octet_string("context-string", (void *)o->ctx,
                                                    o->ctxlen);
    if (o->mu)
        ps[n++] = OSSL_PARAM_construct_int("mu", one);
    if (sign && o->rnd != NULL)
        ps[n++] = OSSL_PARAM_construct_octet_string("test-entropy", (void *)o->rnd,
                                                    o->rndlen);
    else if (sign)
        ps[n++] = OSSL_PARAM_construct_int("deterministic", one);
    ps[n] = OSSL_PARAM_construct_end();
}

/* One-shot sign or verify (EVP_DigestSign/Verify, no digest: the ML-DSA way). */
static int pq_sig(op_pq *o, int sign, const char *propq, unsigned char *out, size_t *outlen,
                  unsigned long *err)
{
    EVP_MD_CTX *mc = EVP_MD_CTX_new();
    OSSL_PARAM ps[4];
    int one = 1, ok;

    pq_sig_params(o, sign, ps, &one);
    if (sign)
        ok = mc != NULL && EVP_DigestSignInit_ex(mc, NULL, NULL, E.lib, propq, o->key, ps) == 1
             && EVP_DigestSign(mc, out, outlen, o->in, o->inlen) == 1;
    else
        ok = mc != NULL
             && EVP_DigestVerifyInit_ex(mc, NULL, NULL, E.lib, propq, o->key, ps) == 1
             && EVP_DigestVerify(mc, o->sig, o->siglen, o->in, o->inlen) == 1;
    *err = ERR_peek_last_error();
    ERR_clear_error();
    EVP_MD_CTX_free(mc);
    return ok;
}

/* Output buffers of post-quantum vectors: an ML-DSA-87 signature is 4627 bytes. */
#define PQ_OUT 8192

/* Run one vector with the given property query; fills results slot r. */
static int run_vec(vec *v, const char *propq, int r)
{
    int ok = 0;

    if (v->keyload_failed)
        return 0;
    switch (v->kind) {
    case K_SIG:
        v->sig.propq = propq;
        ok = op_verify(&v->sig) == 1;
        v->err[r] = v->sig.err;
        break;
    case K_DEC:
        v->enc.propq = propq;
        v->enc.out = v->out[r];
        v->enc.outlen = 1024;
        /* The file expects an error for bad padding, not 3.2+'s substitute message. */
        ok = op_decrypt_explicit(&v->enc);
        v->outlen[r] = v->enc.outlen;
        v->err[r] = v->enc.err;
        break;
    case K_DH:
        v->dh.propq = propq;
        ok = op_derive(&v->dh);
        if (ok) {
            memcpy(v->out[r], v->dh.out, v->dh.outlen);
            v->outlen[r] = v->dh.outlen;
        }
        v->err[r] = v->dh.err;
        break;
    case K_CIPH:
        v->dec.propq = propq;
        v->dec.out = v->out[r];
        ok = op_cipher(&v->dec);
        v->fetch_failed = v->dec.fetch_failed;
        v->outlen[r] = v->dec.outlen;
        v->err[r] = v->dec.err;
        /* A vector that decrypts must also encrypt to the same ciphertext and tag. */
        if (ok && v->expect != E_INVALID) {
            v->encr.propq = propq;
            if (!op_cipher(&v->encr) || v->encr.outlen != v->expctlen
                || memcmp(v->encr.out, v->expct, v->expctlen) != 0
                || (v->encr.aead && memcmp(v->encr.tag, v->dec.tag, v->dec.taglen) != 0))
                v->outlen[r] = (size_t)-1; /* mark: output wrong */
        }
        break;
    case K_KEMDEC:
    case K_KEMENC:
    case K_PQVERIFY:
    case K_PQSIGN:
        v->outlen[r] = PQ_OUT;
        ok = v->kind == K_KEMDEC   ? pq_kem_decaps(&v->pq, propq, v->out[r], &v->outlen[r],
                                                   &v->err[r])
             : v->kind == K_KEMENC ? pq_kem_encaps(&v->pq, propq, v->out[r], &v->outlen[r],
                                                   &v->err[r])
                                   : pq_sig(&v->pq, v->kind == K_PQSIGN, propq, v->out[r],
                                            &v->outlen[r], &v->err[r]);
        break;
    }
    v->accepted[r] = ok;
    return ok;
}

static const char *cur_propq;

static int job_vec(void *p)
{
    vec *v = p;

    return run_vec(v, cur_propq, 0);
}

/* ------------------------------------------------------------- file parsers */

static int expect_of(const char *res)
{
    if (res == NULL)
        return -1;
    if (strcmp(res, "valid") == 0)
        return E_VALID;
    if (strcmp(res, "invalid") == 0)
        return E_INVALID;
    if (strcmp(res, "acceptable") == 0)
        return E_ACCEPTABLE;
    return -1;
}

/* Common per-test fields; returns 0 on a malformed entry. */
static int vec_init(vec *v, json_object *t)
{
    json_object *fl;
    size_t i;

    memset(v, 0, sizeof(*v));
    v->tcid = jint(t, "tcId", -1);
    v->expect = expect_of(jstr(t, "result"));
    if (json_object_object_get_ex(t, "flags", &fl) && json_object_is_type(fl, json_type_array)) {
        for (i = 0; i < json_object_array_length(fl); i++) {
            const char *f = json_object_get_string(json_object_array_get_idx(fl, i));

            if (i > 0)
                strncat(v->flags, ",", sizeof(v->flags) - strlen(v->flags) - 1);
            strncat(v->flags, f, sizeof(v->flags) - strlen(v->flags) - 1);
        }
    }
    v->out[0] = scratch(v, 1024);
    v->out[1] = scratch(v, 1024);
    return v->tcid >= 0 && v->expect >= 0 && v->out[0] && v->out[1];
}

typedef struct file_ctx {
    const char *schema, *algorithm;
    json_object *group;
    EVP_PKEY *gkey; /* group key, owned by the file loop */
} file_ctx;

static int parse_sig(vec *v, json_object *t, file_ctx *f)
{
    const char *sha = jstr(f->group, "sha");
    size_t n;

    v->kind = K_SIG;
    v->keyload_failed = f->gkey == NULL;
    v->sig.lib = E.lib;
    v->sig.key = f->gkey;
    v->sig.saltlen = -1;
    v->sig.msg = hexbuf(v, jstr(t, "msg"), &v->sig.msglen);
    v->sig.sig = hexbuf(v, jstr(t, "sig"), &n);
    v->sig.siglen = n;
    if (strstr(f->schema, "eddsa") != NULL) {
        v->sig.md = NULL;
    } else {
        v->sig.md = sha;
        if (sha == NULL)
            return 0;
    }
    if (strstr(f->schema, "rsassa_pkcs1") != NULL)
        v->sig.pad = RSA_PKCS1_PADDING;
    if (strstr(f->schema, "rsassa_pss") != NULL) {
        v->sig.pad = RSA_PKCS1_PSS_PADDING;
        v->sig.saltlen = jint(f->group, "sLen", -1);
        v->sig.mgf1md = jstr(f->group, "mgfSha");
    }
    return v->sig.msg != NULL && v->sig.sig != NULL;
}

static int parse_dec(vec *v, json_object *t, file_ctx *f)
{
    v->kind = K_DEC;
    v->keyload_failed = f->gkey == NULL;
    v->enc.lib = E.lib;
    v->enc.key = f->gkey;
    v->enc.in = hexbuf(v, jstr(t, "ct"), &v->enc.inlen);
    v->exp = hexbuf(v, jstr(t, "msg"), &v->explen);
    if (strstr(f->schema, "oaep") != NULL) {
        v->enc.pad = RSA_PKCS1_OAEP_PADDING;
        v->enc.oaepmd = jstr(f->group, "sha");
        v->enc.mgf1md = jstr(f->group, "mgfSha");
        v->enc.label = hexbuf(v, jstr(t, "label"), &v->enc.labellen);
        if (v->enc.label == NULL)
            return 0;
    } else {
        v->enc.pad = RSA_PKCS1_PADDING;
    }
    return v->enc.in != NULL && v->exp != NULL;
}

static int parse_dh(vec *v, json_object *t, file_ctx *f)
{
    v->kind = K_DH;
    v->dh.lib = E.lib;
    if (strstr(f->schema, "xdh") != NULL) {
        v->owned[0] = load_raw("X25519", jstr(t, "private"), 1);
        v->owned[1] = load_raw("X25519", jstr(t, "public"), 0);
    } else {
        const char *curve = jstr(f->group, "curve"), *enc = jstr(f->group, "encoding");

        if (curve == NULL || enc == NULL || strcmp(enc, "asn") != 0)
            return 0; /* only DER public keys are handled; fail loudly on others */
        v->owned[0] = load_ec_priv(curve, jstr(t, "private"));
        v->owned[1] = load_der(jstr(t, "public"), 0);
    }
    v->dh.priv = v->owned[0];
    v->dh.peer = v->owned[1];
    v->keyload_failed = v->owned[0] == NULL || v->owned[1] == NULL;
    v->exp = hexbuf(v, jstr(t, "shared"), &v->explen);
    return v->exp != NULL;
}

static int parse_ciph(vec *v, json_object *t, file_ctx *f)
{
    static char names[3][32];
    int ks = jint(f->group, "keySize", 0), aead = strstr(f->schema, "aead") != NULL;
    const char *name;
    op_ciph base = {0};
    size_t msglen, taglen = 0;
    unsigned char *tag = NULL;

    v->kind = K_CIPH;
    if (strcmp(f->algorithm, "CHACHA20-POLY1305") == 0) {
        name = "ChaCha20-Poly1305";
    } else {
        int slot = ks == 128 ? 0 : ks == 192 ? 1 : 2;

        snprintf(names[slot], sizeof(names[slot]), "AES-%d-%s", ks, aead ? "GCM" : "CBC");
        name = names[slot];
    }
    base.lib = E.lib;
    base.name = name;
    base.aead = aead;
    base.key = hexbuf(v, jstr(t, "key"), &msglen);
    base.iv = hexbuf(v, jstr(t, "iv"), &base.ivlen);
    if (aead) {
        base.aad = hexbuf(v, jstr(t, "aad"), &base.aadlen);
        tag = hexbuf(v, jstr(t, "tag"), &taglen);
        if (tag == NULL || base.aad == NULL || taglen > 16)
            return 0;
    }
    v->exp = hexbuf(v, jstr(t, "msg"), &v->explen);
    v->expct = hexbuf(v, jstr(t, "ct"), &v->expctlen);
    if (base.key == NULL || base.iv == NULL || v->exp == NULL || v->expct == NULL)
        return 0;
    base.taglen = taglen;
    if (tag != NULL)
        memcpy(base.tag, tag, taglen);
    v->dec = base;
    v->dec.enc = 0;
    v->dec.in = v->expct;
    v->dec.inlen = v->expctlen;
    v->encr = base;
    v->encr.enc = 1;
    v->encr.in = v->exp;
    v->encr.inlen = v->explen;
    v->encr.out = scratch(v, v->explen + 32);
    v->out[0] = scratch(v, v->expctlen + 32); /* plaintexts can exceed 1024 bytes */
    v->out[1] = scratch(v, v->expctlen + 32);
    return v->encr.out != NULL && v->out[1] != NULL;
}

/* ML-KEM decapsulation (mlkem_test_schema): seed, ek (may be absent), c, K. */
static int parse_kemdec(vec *v, json_object *t, file_ctx *f)
{
    v->kind = K_KEMDEC;
    v->pq.alg = jstr(f->group, "parameterSet");
    v->pq.seed = hexbuf(v, jstr(t, "seed"), &v->pq.seedlen);
    v->pq.ek = hexbuf(v, jstr(t, "ek"), &v->pq.eklen);
    v->pq.in = hexbuf(v, jstr(t, "c"), &v->pq.inlen);
    v->exp = hexbuf(v, jstr(t, "K"), &v->explen);
    return v->pq.alg != NULL && v->pq.seed != NULL && v->pq.in != NULL && v->exp != NULL;
}

/* ML-KEM encapsulation (mlkem_encaps_test_schema): m, ek; expected c || K. */
static int parse_kemenc(vec *v, json_object *t, file_ctx *f)
{
    size_t clen, klen;
    unsigned char *c, *k;

    v->kind = K_KEMENC;
    v->pq.alg = jstr(f->group, "parameterSet");
    v->pq.m = hexbuf(v, jstr(t, "m"), &v->pq.mlen);
    v->pq.ek = hexbuf(v, jstr(t, "ek"), &v->pq.eklen);
    c = hexbuf(v, jstr(t, "c"), &clen);
    k = hexbuf(v, jstr(t, "K"), &klen);
    if (v->pq.alg == NULL || v->pq.m == NULL || v->pq.ek == NULL || c == NULL || k == NULL
        || (v->exp = scratch(v, clen + klen)) == NULL)
        return 0;
    memcpy(v->exp, c, clen);
    memcpy(v->exp + clen, k, klen);
    v->explen = clen + klen;
    return 1;
}

/* ML-DSA (mldsa_verify_schema, mldsa_sign_seed_schema): msg or mu, ctx, sig, rnd. */
static int parse_pqsig(vec *v, json_object *t, file_ctx *f)
{
    const char *msg = jstr(t, "msg");
    size_t siglen;
    unsigned char *sig;

    v->kind = strstr(f->schema, "verify") != NULL ? K_PQVERIFY : K_PQSIGN;
    v->pq.alg = f->algorithm;
    v->pq.key = f->gkey;
    v->keyload_failed = f->gkey == NULL;
    v->pq.mu = msg == NULL;
    v->pq.in = hexbuf(v, msg != NULL ? msg : jstr(t, "mu"), &v->pq.inlen);
    v->pq.ctx = hexbuf(v, jstr(t, "ctx"), &v->pq.ctxlen);
    v->pq.rnd = hexbuf(v, jstr(t, "rnd"), &v->pq.rndlen);
    sig = hexbuf(v, jstr(t, "sig"), &siglen);
    if (v->kind == K_PQVERIFY) {
        v->pq.sig = sig;
        v->pq.siglen = siglen;
    } else {
        v->exp = sig;
        v->explen = siglen;
    }
    return v->pq.in != NULL && sig != NULL;
}

/* Post-quantum vectors need larger output buffers than vec_init's. */
static int pq_bufs(vec *v)
{
    v->out[0] = scratch(v, PQ_OUT);
    v->out[1] = scratch(v, PQ_OUT);
    return v->out[0] != NULL && v->out[1] != NULL;
}

/* An ML-DSA key from its seed (groups that give no PKCS#8), by the default provider. */
static EVP_PKEY *mldsa_from_seed(const char *alg, const char *hex)
{
    size_t len;
    unsigned char *seed = hex != NULL ? ap_unhex(hex, &len) : NULL;
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_name(E.lib, alg, E.ref);
    OSSL_PARAM ps[] = {OSSL_PARAM_octet_string("seed", seed, len), OSSL_PARAM_END};
    EVP_PKEY *k = NULL;

    if (seed == NULL || c == NULL || EVP_PKEY_keygen_init(c) != 1
        || EVP_PKEY_CTX_set_params(c, ps) != 1 || EVP_PKEY_generate(c, &k) != 1)
        k = NULL;
    EVP_PKEY_CTX_free(c);
    free(seed);
    ERR_clear_error();
    return k;
}

/* The group's key, loaded by the default provider; NULL if it cannot be loaded. */
static EVP_PKEY *group_key(file_ctx *f)
{
    if (strstr(f->schema, "mldsa_sign") != NULL && jstr(f->group, "privateKeyPkcs8") == NULL)
        return mldsa_from_seed(f->algorithm, jstr(f->group, "privateSeed"));
    if (strstr(f->schema, "rsaes_") != NULL || strstr(f->schema, "mldsa_sign") != NULL)
        return load_der(jstr(f->group, "privateKeyPkcs8"), 1);
    if (strstr(f->schema, "_verify_") != NULL)
        return load_der(jstr(f->group, "publicKeyDer"), 0);
    return NULL;
}

/* ------------------------------------------------------------------ verdicts */

static int output_ok(const vec *v, int r)
{
    if (v->kind == K_SIG || v->kind == K_PQVERIFY)
        return 1;
    if (v->outlen[r] == (size_t)-1)
        return 0;
    return v->outlen[r] == v->explen && memcmp(v->out[r], v->exp, v->explen) == 0;
}

/* Does result slot r satisfy the file's verdict? */
static int meets(const vec *v, int r)
{
    switch (v->expect) {
    case E_VALID:
        return v->accepted[r] && output_ok(v, r);
    case E_INVALID:
        return !v->accepted[r];
    default:
        return !v->accepted[r] || output_ok(v, r);
    }
}

static int same(const vec *v)
{
    if (v->accepted[0] != v->accepted[1])
        return 0;
    if (v->accepted[0] && v->kind != K_SIG && v->kind != K_PQVERIFY
        && (v->outlen[0] != v->outlen[1]
            || (v->outlen[0] != (size_t)-1 && memcmp(v->out[0], v->out[1], v->outlen[0]) != 0)))
        return 0;
    return 1;
}

static void vec_free(vec *v)
{
    int i;

    for (i = 0; i < v->nbufs; i++)
        free(v->bufs[i]);
    EVP_PKEY_free(v->owned[0]);
    EVP_PKEY_free(v->owned[1]);
}

static const char *OFFERED_CIPHERS[] = {"AES-128-GCM", "AES-192-GCM", "AES-256-GCM",
                                        "AES-128-CBC", "AES-256-CBC", "ChaCha20-Poly1305"};

static int offered(const char *name)
{
    size_t i;

    for (i = 0; i < sizeof(OFFERED_CIPHERS) / sizeof(OFFERED_CIPHERS[0]); i++)
        if (strcmp(name, OFFERED_CIPHERS[i]) == 0)
            return 1;
    return 0;
}

static const char *op_of(const char *schema)
{
    if (strstr(schema, "mlkem_"))
        return "kem";
    if (strstr(schema, "mldsa_sign"))
        return "sign";
    if (strstr(schema, "_verify_"))
        return "verify";
    if (strstr(schema, "rsaes_"))
        return "asym_cipher";
    if (strstr(schema, "ecdh") || strstr(schema, "xdh"))
        return "derive";
    return "cipher";
}

/* The post-quantum algorithm a file is about, or NULL for the others. */
static const char *pq_algorithm(const file_ctx *f, json_object *groups)
{
    if (strncmp(f->schema, "mldsa_", 6) == 0)
        return f->algorithm;
    if (strncmp(f->schema, "mlkem_", 6) == 0 && json_object_array_length(groups) > 0)
        return jstr(json_object_array_get_idx(groups, 0), "parameterSet");
    return NULL;
}

static int have_pq(const char *alg)
{
    EVP_KEM *k = EVP_KEM_fetch(E.lib, alg, E.ref);
    EVP_SIGNATURE *s = k == NULL ? EVP_SIGNATURE_fetch(E.lib, alg, E.ref) : NULL;
    int have = k != NULL || s != NULL;

    EVP_KEM_free(k);
    EVP_SIGNATURE_free(s);
    ERR_clear_error();
    return have;
}

/* Returns the number of failures in this file (or 1 if it cannot be handled). */
static int run_file(const char *dir, const char *fname)
{
    char path[4096];
    json_object *root, *groups;
    file_ctx f = {0};
    vec *vs = NULL;
    void **args = NULL;
    int *rets = NULL;
    int nv = 0, cap = 0, fails = 0, i, g;
    int c_valid = 0, c_invalid = 0, c_acc_yes = 0, c_acc_no = 0, c_keyload = 0, c_div = 0,
        c_unoffered = 0, c_run = 0;
    ap_jobstats st;
    const char *op;
    uint64_t off0, off1;
    EVP_PKEY **gkeys = NULL;
    int ngroups;
    const char *pqalg;

    snprintf(path, sizeof(path), "%s/%s", dir, fname);
    if ((root = json_object_from_file(path)) == NULL) {
        fprintf(stderr, "FAIL %s: cannot parse JSON\n", fname);
        return 1;
    }
    f.schema = jstr(root, "schema");
    f.algorithm = jstr(root, "algorithm");
    if (f.schema == NULL || f.algorithm == NULL
        || !json_object_object_get_ex(root, "testGroups", &groups)) {
        fprintf(stderr, "FAIL %s: no schema/algorithm/testGroups\n", fname);
        json_object_put(root);
        return 1;
    }
    if ((pqalg = pq_algorithm(&f, groups)) != NULL && !have_pq(pqalg)) {
        /* Only where default lacks the algorithm: where it has it, we must run it. */
        printf("wycheproof %-42s skipped: %s is not in this OpenSSL (%s)\n", fname, pqalg,
               OpenSSL_version(OPENSSL_VERSION_STRING));
        json_object_put(root);
        return 0;
    }
    ngroups = (int)json_object_array_length(groups);
    gkeys = calloc((size_t)ngroups + 1, sizeof(EVP_PKEY *));
    for (g = 0; g < ngroups; g++) {
        json_object *tests;
        int (*parse)(vec *, json_object *, file_ctx *);
        const char *s = f.schema;

        f.group = json_object_array_get_idx(groups, g);
        if (strstr(s, "mlkem_encaps"))
            parse = parse_kemenc;
        else if (strstr(s, "mlkem_"))
            parse = parse_kemdec;
        else if (strstr(s, "mldsa_"))
            parse = parse_pqsig;
        else if (strstr(s, "ind_cpa") || strstr(s, "aead"))
            parse = parse_ciph;
        else if (strstr(s, "ecdh") || strstr(s, "xdh"))
            parse = parse_dh;
        else if (strstr(s, "rsaes_"))
            parse = parse_dec;
        else if (strstr(s, "_verify_"))
            parse = parse_sig;
        else {
            fprintf(stderr, "FAIL %s: schema %s not handled by this test\n", fname, s);
            fails++;
            break;
        }
        f.gkey = gkeys[g] = group_key(&f);
        if (!json_object_object_get_ex(f.group, "tests", &tests))
            continue;
        for (i = 0; i < (int)json_object_array_length(tests); i++) {
            if (nv == cap) {
                cap = cap ? 2 * cap : 256;
                vs = realloc(vs, (size_t)cap * sizeof(*vs));
            }
            if (!vec_init(&vs[nv], json_object_array_get_idx(tests, i))
                || !parse(&vs[nv], json_object_array_get_idx(tests, i), &f)
                || (vs[nv].kind >= K_KEMDEC && !pq_bufs(&vs[nv]))) {
                fprintf(stderr, "FAIL %s: tcId %d: cannot parse the vector\n", fname,
                        vs[nv].tcid);
                fails++;
            }
            nv++;
        }
    }

    /* asyncpool, inside jobs */
    op = op_of(f.schema);
    off0 = ap_opctr(&E, op, "offloaded");
    args = calloc((size_t)nv + 1, sizeof(void *));
    rets = calloc((size_t)nv + 1, sizeof(int));
    for (i = 0; i < nv; i++)
        args[i] = &vs[i];
    cur_propq = E.ours;
    if (!ap_run_jobs(job_vec, args, nv, INFLIGHT, rets, &st)) {
        fprintf(stderr, "FAIL %s: the job loop failed\n", fname);
        fails++;
    }
    if (st.multi_fd || st.fd_changes || st.undrained) {
        fprintf(stderr, "FAIL %s: async protocol: multi_fd=%d fd_changes=%d undrained=%d\n",
                fname, st.multi_fd, st.fd_changes, st.undrained);
        fails++;
    }
    off1 = ap_opctr(&E, op, "offloaded");
    /* the default provider, outside jobs */
    for (i = 0; i < nv; i++) {
        int fetch_failed = vs[i].fetch_failed;

        run_vec(&vs[i], E.ref, 1);
        vs[i].fetch_failed = fetch_failed;
    }

    for (i = 0; i < nv; i++) {
        vec *v = &vs[i];
        int m0, m1;

        if (v->kind == K_CIPH && v->fetch_failed) {
            c_unoffered++;
            if (offered(v->dec.name)) {
                fprintf(stderr, "FAIL %s tcId %d: asyncpool does not offer %s\n", fname,
                        v->tcid, v->dec.name);
                fails++;
            }
            continue;
        }
        c_run++;
        if (v->keyload_failed)
            c_keyload++;
        m0 = meets(v, 0);
        m1 = meets(v, 1);
        if (!same(v)) {
            char e0[128], e1[128];

            ERR_error_string_n(v->err[0], e0, sizeof(e0));
            ERR_error_string_n(v->err[1], e1, sizeof(e1));
            fprintf(stderr,
                    "FAIL %s tcId %d [%s]: asyncpool %s, default %s (asyncpool err %s; default "
                    "err %s)\n",
                    fname, v->tcid, v->flags, v->accepted[0] ? "accepts" : "rejects",
                    v->accepted[1] ? "accepts" : "rejects", e0, e1);
            fails++;
            continue;
        }
        if (!m0) {
            if (!m1 && is_known(fname, v)) {
                c_div++;
                fprintf(stderr, "  %s tcId %d [%s]: file says %s, OpenSSL %s (known divergence)\n",
                        fname, v->tcid, v->flags,
                        v->expect == E_VALID ? "valid" : v->expect == E_INVALID ? "invalid"
                                                                                 : "acceptable",
                        v->accepted[1] ? "accepts" : "rejects");
                continue;
            }
            fprintf(stderr, "FAIL %s tcId %d [%s]: expected %s, asyncpool %s%s (default: %s)\n",
                    fname, v->tcid, v->flags,
                    v->expect == E_VALID ? "valid" : v->expect == E_INVALID ? "invalid"
                                                                             : "acceptable",
                    v->accepted[0] ? "accepts" : "rejects",
                    v->accepted[0] && !output_ok(v, 0) ? " with wrong output" : "",
                    m1 ? "meets the verdict" : "same");
            fails++;
            continue;
        }
        if (v->expect == E_VALID)
            c_valid++;
        else if (v->expect == E_INVALID)
            c_invalid++;
        else if (v->accepted[0])
            c_acc_yes++;
        else
            c_acc_no++;
    }
    printf("wycheproof %-42s vectors=%d run=%d valid_passed=%d invalid_rejected=%d "
           "acceptable_accepted=%d acceptable_rejected=%d keyload_rejected=%d "
           "openssl_divergent=%d not_offered=%d failures=%d",
           fname, nv, c_run, c_valid, c_invalid, c_acc_yes, c_acc_no, c_keyload, c_div,
           c_unoffered, fails);
    if (!ap_dev())
        printf(" %s_offloaded=+%llu", op, (unsigned long long)(off1 - off0));
    printf(" max_paused=%d\n", st.max_paused);
    if (c_run == 0) {
        fprintf(stderr, "FAIL %s: no vector ran\n", fname);
        fails++;
    }
    /* Asymmetric vectors that reached asyncpool ran in jobs: they must have been offloaded. */
    if (!ap_dev() && strcmp(op, "cipher") != 0 && off1 - off0 == 0) {
        fprintf(stderr, "FAIL %s: nothing was offloaded\n", fname);
        fails++;
    }
    fflush(stdout);
    for (i = 0; i < nv; i++)
        vec_free(&vs[i]);
    for (g = 0; g < ngroups; g++)
        EVP_PKEY_free(gkeys[g]);
    free(gkeys);
    free(vs);
    free(args);
    free(rets);
    json_object_put(root);
    return fails;
}

static int cmpstr(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(void)
{
    static const char *REQUIRED[] = {
        "aes_cbc_pkcs5_test.json", "aes_gcm_test.json", "chacha20_poly1305_test.json",
        "ecdh_secp256r1_test.json", "ecdh_secp384r1_test.json",
        "ecdsa_secp256r1_sha256_test.json", "ecdsa_secp384r1_sha384_test.json",
        "ed25519_test.json", "rsa_oaep_2048_sha256_mgf1sha256_test.json",
        "rsa_pkcs1_2048_test.json", "rsa_pss_2048_sha256_mgf1_32_test.json",
        "rsa_signature_2048_sha256_test.json", "x25519_test.json"};
    const char *dir = getenv("WYCHEPROOF_DIR");
    struct stat sb;
    DIR *d;
    struct dirent *de;
    char *names[256];
    int n = 0, i, fails = 0;
    size_t r;

    /* Asymmetric vectors run in jobs must be offloaded (checked below): offload =
     * always. The default, auto, runs cheap calls inline (provider_policy tests it). */
    setenv("ASYNCPOOL_OFFLOAD", "always", 1);
    if (dir == NULL || stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        printf("SKIPPED: Wycheproof vectors not found (WYCHEPROOF_DIR=%s); this test did NOT "
               "run\n", dir ? dir : "(unset)");
        return 77;
    }
    if (!ap_env_init(&E) || !ASYNC_init_thread(INFLIGHT, INFLIGHT)) {
        fprintf(stderr, "FAIL: setup\n");
        return 1;
    }
    if (ap_dev())
        printf("DEVELOPMENT MODE: 'asyncpool' is the default provider\n");
    if ((d = opendir(dir)) == NULL)
        return 1;
    while ((de = readdir(d)) != NULL && n < 256) {
        size_t l = strlen(de->d_name);

        if (l > 5 && strcmp(de->d_name + l - 5, ".json") == 0)
            names[n++] = strdup(de->d_name);
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof(names[0]), cmpstr);
    for (r = 0; r < sizeof(REQUIRED) / sizeof(REQUIRED[0]); r++) {
        int found = 0;

        for (i = 0; i < n; i++)
            found |= strcmp(names[i], REQUIRED[r]) == 0;
        if (!found) {
            fprintf(stderr, "FAIL: %s missing from %s\n", REQUIRED[r], dir);
            fails++;
        }
    }
    for (i = 0; i < n; i++) {
        fails += run_file(dir, names[i]);
        free(names[i]);
    }
    for (r = 0; r < sizeof(KNOWN) / sizeof(KNOWN[0]); r++)
        printf("known divergence: %s %s: %s\n", KNOWN[r].file, KNOWN[r].flag, KNOWN[r].why);
    printf("wycheproof: %d files, %d failures\n", n, fails);
    ASYNC_cleanup_thread();
    ap_env_free(&E);
    return fails == 0 && n > 0 ? 0 : 1;
}
