/*
 * provider/signature.c — RSA (PKCS#1 v1.5, PSS), ECDSA, ED25519, ED448, and what the
 * backend has of ML-DSA and SLH-DSA (3.5+), of the combined RSA and ECDSA signatures
 * with a digest (3.4+: RSA-SHA256, ECDSA-SHA384, ..., RSA-SM3) and of the pre-hash and
 * context variants of EdDSA (3.4+: ED25519ph, ED25519ctx, ED448ph).
 *
 * The combined and EdDSA variant algorithms are separate signature algorithms in the
 * backend, with names of their own: an application reaches them by fetching the name
 * (EVP_SIGNATURE_fetch(..., "RSA-SHA256", ...)) for EVP_PKEY_sign_message_init and the
 * rest. Matching "RSA" and "ECDSA" alone left them in `default`. They have the same
 * functions as the others (plus the message ones, forwarded below), use the keymgmts we
 * already offer (RSA, EC, ED25519, ED448), and on 3.0 the backend has none of them.
 *
 * sign, verify, verify_recover, digest_sign_final, digest_verify_final, the one-shot
 * digest_sign/digest_verify and (3.4+) sign_message_final/verify_message_final are
 * offloaded; a size query (NULL output) runs inline. The
 * TLS handshake signs through EVP_DigestSign, which reaches digest_sign_final (RSA,
 * ECDSA) or digest_sign (EdDSA): wrapping sign alone would offload nothing there.
 */
#include "ap.h"

#include <openssl/core_names.h>

#define OP AP_OP_SIGNATURE
#define FN(c, id, type) AP_FN((c)->alg, id, type)

/* "RSA" and "ECDSA" first, exactly: a backend algorithm is taken by the first entry that
 * matches it, and the prefixes below then see only the combined ones ("RSA-SHA2-256",
 * "ripemd160WithRSA:RSA-RIPEMD160", "ECDSA-SHA3-512", ...). */
static const char *const names[] = {"RSA", "ECDSA", "ED25519", "ED448", "ML-DSA-*", "SLH-DSA-*",
                                    "RSA-*", "ECDSA-*", "ED25519ph", "ED25519ctx", "ED448ph",
                                    NULL};

AP_DEFINE_NEWCTX_PQ(sig_newctx, OP, OSSL_FUNC_SIGNATURE_NEWCTX, OSSL_FUNC_SIGNATURE_FREECTX)
AP_DEFINE_CTX_PARAMS(sig_gettable_ctx_params, OP, OSSL_FUNC_SIGNATURE_GETTABLE_CTX_PARAMS)
AP_DEFINE_CTX_PARAMS(sig_settable_ctx_params, OP, OSSL_FUNC_SIGNATURE_SETTABLE_CTX_PARAMS)

static OSSL_FUNC_signature_freectx_fn sig_freectx;
static OSSL_FUNC_signature_dupctx_fn sig_dupctx;
static OSSL_FUNC_signature_sign_init_fn sig_sign_init;
static OSSL_FUNC_signature_sign_fn sig_sign;
static OSSL_FUNC_signature_verify_init_fn sig_verify_init;
static OSSL_FUNC_signature_verify_fn sig_verify;
static OSSL_FUNC_signature_verify_recover_init_fn sig_verify_recover_init;
static OSSL_FUNC_signature_verify_recover_fn sig_verify_recover;
static OSSL_FUNC_signature_digest_sign_init_fn sig_digest_sign_init;
static OSSL_FUNC_signature_digest_sign_update_fn sig_digest_sign_update;
static OSSL_FUNC_signature_digest_sign_final_fn sig_digest_sign_final;
static OSSL_FUNC_signature_digest_sign_fn sig_digest_sign;
static OSSL_FUNC_signature_digest_verify_init_fn sig_digest_verify_init;
static OSSL_FUNC_signature_digest_verify_update_fn sig_digest_verify_update;
static OSSL_FUNC_signature_digest_verify_final_fn sig_digest_verify_final;
static OSSL_FUNC_signature_digest_verify_fn sig_digest_verify;
static OSSL_FUNC_signature_get_ctx_params_fn sig_get_ctx_params;
static OSSL_FUNC_signature_set_ctx_params_fn sig_set_ctx_params;
static OSSL_FUNC_signature_get_ctx_md_params_fn sig_get_ctx_md_params;
static OSSL_FUNC_signature_gettable_ctx_md_params_fn sig_gettable_ctx_md_params;
static OSSL_FUNC_signature_set_ctx_md_params_fn sig_set_ctx_md_params;
static OSSL_FUNC_signature_settable_ctx_md_params_fn sig_settable_ctx_md_params;
static ap_sig_message_init_fn sig_sign_message_init, sig_verify_message_init;
static ap_sig_message_update_fn sig_sign_message_update, sig_verify_message_update;
static ap_sig_sign_message_final_fn sig_sign_message_final;
static ap_sig_verify_message_final_fn sig_verify_message_final;

static void sig_freectx(void *ctx)
{
    ap_ctx_free(ctx, OSSL_FUNC_SIGNATURE_FREECTX);
}

static void *sig_dupctx(void *ctx)
{
    return ap_ctx_dup(ctx, OSSL_FUNC_SIGNATURE_DUPCTX, OSSL_FUNC_SIGNATURE_FREECTX);
}

/* ---- forwarded as they are ---- */

static int sig_sign_init(void *ctx, void *key, const OSSL_PARAM params[])
{
    ap_ctx *c = ctx;

    return FN(c, OSSL_FUNC_SIGNATURE_SIGN_INIT, OSSL_FUNC_signature_sign_init_fn)(c->b, key, params);
}

static int sig_verify_init(void *ctx, void *key, const OSSL_PARAM params[])
{
    ap_ctx *c = ctx;

    return FN(c, OSSL_FUNC_SIGNATURE_VERIFY_INIT, OSSL_FUNC_signature_verify_init_fn)(c->b, key, params);
}

static int sig_verify_recover_init(void *ctx, void *key, const OSSL_PARAM params[])
{
    ap_ctx *c = ctx;

    return FN(c, OSSL_FUNC_SIGNATURE_VERIFY_RECOVER_INIT,
              OSSL_FUNC_signature_verify_recover_init_fn)(c->b, key, params);
}

static int sig_digest_sign_init(void *ctx, const char *md, void *key, const OSSL_PARAM params[])
{
    ap_ctx *c = ctx;

    return FN(c, OSSL_FUNC_SIGNATURE_DIGEST_SIGN_INIT,
              OSSL_FUNC_signature_digest_sign_init_fn)(c->b, md, key, params);
}

static int sig_digest_sign_update(void *ctx, const unsigned char *data, size_t len)
{
    ap_ctx *c = ctx;

    return FN(c, OSSL_FUNC_SIGNATURE_DIGEST_SIGN_UPDATE,
              OSSL_FUNC_signature_digest_sign_update_fn)(c->b, data, len);
}

static int sig_digest_verify_init(void *ctx, const char *md, void *key, const OSSL_PARAM params[])
{
    ap_ctx *c = ctx;

    return FN(c, OSSL_FUNC_SIGNATURE_DIGEST_VERIFY_INIT,
              OSSL_FUNC_signature_digest_verify_init_fn)(c->b, md, key, params);
}

static int sig_digest_verify_update(void *ctx, const unsigned char *data, size_t len)
{
    ap_ctx *c = ctx;

    return FN(c, OSSL_FUNC_SIGNATURE_DIGEST_VERIFY_UPDATE,
              OSSL_FUNC_signature_digest_verify_update_fn)(c->b, data, len);
}

static int sig_get_ctx_params(void *ctx, OSSL_PARAM params[])
{
    return ap_ctx_get_params(ctx, params, OSSL_FUNC_SIGNATURE_GET_CTX_PARAMS);
}

static int sig_set_ctx_params(void *ctx, const OSSL_PARAM params[])
{
    return ap_ctx_set_params(ctx, params, OSSL_FUNC_SIGNATURE_SET_CTX_PARAMS);
}

static int sig_get_ctx_md_params(void *ctx, OSSL_PARAM params[])
{
    return ap_ctx_get_params(ctx, params, OSSL_FUNC_SIGNATURE_GET_CTX_MD_PARAMS);
}

static int sig_set_ctx_md_params(void *ctx, const OSSL_PARAM params[])
{
    return ap_ctx_set_params(ctx, params, OSSL_FUNC_SIGNATURE_SET_CTX_MD_PARAMS);
}

static const OSSL_PARAM *sig_gettable_ctx_md_params(void *ctx)
{
    ap_ctx *c = ctx;

    return c == NULL ? NULL : FN(c, OSSL_FUNC_SIGNATURE_GETTABLE_CTX_MD_PARAMS,
                                 OSSL_FUNC_signature_gettable_ctx_md_params_fn)(c->b);
}

static const OSSL_PARAM *sig_settable_ctx_md_params(void *ctx)
{
    ap_ctx *c = ctx;

    return c == NULL ? NULL : FN(c, OSSL_FUNC_SIGNATURE_SETTABLE_CTX_MD_PARAMS,
                                 OSSL_FUNC_signature_settable_ctx_md_params_fn)(c->b);
}

/* Message signatures (3.4+): init and update forwarded, final offloaded below. */
static int sig_sign_message_init(void *ctx, void *key, const OSSL_PARAM params[])
{
    ap_ctx *c = ctx;

    return FN(c, OSSL_FUNC_SIGNATURE_SIGN_MESSAGE_INIT, ap_sig_message_init_fn)(c->b, key,
                                                                               params);
}

static int sig_sign_message_update(void *ctx, const unsigned char *in, size_t inlen)
{
    ap_ctx *c = ctx;

    return FN(c, OSSL_FUNC_SIGNATURE_SIGN_MESSAGE_UPDATE, ap_sig_message_update_fn)(c->b, in,
                                                                                   inlen);
}

static int sig_verify_message_init(void *ctx, void *key, const OSSL_PARAM params[])
{
    ap_ctx *c = ctx;

    return FN(c, OSSL_FUNC_SIGNATURE_VERIFY_MESSAGE_INIT, ap_sig_message_init_fn)(c->b, key,
                                                                                 params);
}

static int sig_verify_message_update(void *ctx, const unsigned char *in, size_t inlen)
{
    ap_ctx *c = ctx;

    return FN(c, OSSL_FUNC_SIGNATURE_VERIFY_MESSAGE_UPDATE, ap_sig_message_update_fn)(c->b, in,
                                                                                     inlen);
}

/* ---- offloaded ---- */

/* One argument block serves every heavy signature call: the thunks read what they need.
 * It lives on the caller's (fibre's) stack for the duration of the call. */
struct sig_args {
    ap_ctx *c;
    unsigned char *out;
    size_t *outlen;
    size_t outsize;
    const unsigned char *in;
    size_t inlen;
    const unsigned char *sig;
    size_t siglen;
};

static int do_sign(void *p)
{
    struct sig_args *a = p;

    return FN(a->c, OSSL_FUNC_SIGNATURE_SIGN, OSSL_FUNC_signature_sign_fn)(
        a->c->b, a->out, a->outlen, a->outsize, a->in, a->inlen);
}

static int sig_sign(void *ctx, unsigned char *sig, size_t *siglen, size_t sigsize,
                    const unsigned char *tbs, size_t tbslen)
{
    struct sig_args a = {.c = ctx, .out = sig, .outlen = siglen, .outsize = sigsize,
                         .in = tbs, .inlen = tbslen};

    if (sig == NULL)
        return do_sign(&a);
    return ap_run(a.c->alg, AP_K_SIGN, 1, sigsize, do_sign, &a);
}

static int do_verify(void *p)
{
    struct sig_args *a = p;

    return FN(a->c, OSSL_FUNC_SIGNATURE_VERIFY, OSSL_FUNC_signature_verify_fn)(
        a->c->b, a->sig, a->siglen, a->in, a->inlen);
}

static int sig_verify(void *ctx, const unsigned char *sig, size_t siglen,
                      const unsigned char *tbs, size_t tbslen)
{
    struct sig_args a = {.c = ctx, .sig = sig, .siglen = siglen, .in = tbs, .inlen = tbslen};

    return ap_run(a.c->alg, AP_K_VERIFY, 1, siglen, do_verify, &a);
}

static int do_verify_recover(void *p)
{
    struct sig_args *a = p;

    return FN(a->c, OSSL_FUNC_SIGNATURE_VERIFY_RECOVER, OSSL_FUNC_signature_verify_recover_fn)(
        a->c->b, a->out, a->outlen, a->outsize, a->sig, a->siglen);
}

static int sig_verify_recover(void *ctx, unsigned char *rout, size_t *routlen, size_t routsize,
                              const unsigned char *sig, size_t siglen)
{
    struct sig_args a = {.c = ctx, .out = rout, .outlen = routlen, .outsize = routsize,
                         .sig = sig, .siglen = siglen};

    if (rout == NULL)
        return do_verify_recover(&a);
    return ap_run(a.c->alg, AP_K_VERIFY, 1, siglen, do_verify_recover, &a);
}

static int do_digest_sign_final(void *p)
{
    struct sig_args *a = p;

    return FN(a->c, OSSL_FUNC_SIGNATURE_DIGEST_SIGN_FINAL, OSSL_FUNC_signature_digest_sign_final_fn)(
        a->c->b, a->out, a->outlen, a->outsize);
}

static int sig_digest_sign_final(void *ctx, unsigned char *sig, size_t *siglen, size_t sigsize)
{
    struct sig_args a = {.c = ctx, .out = sig, .outlen = siglen, .outsize = sigsize};

    if (sig == NULL)
        return do_digest_sign_final(&a);
    return ap_run(a.c->alg, AP_K_SIGN, 1, sigsize, do_digest_sign_final, &a);
}

static int do_digest_sign(void *p)
{
    struct sig_args *a = p;

    return FN(a->c, OSSL_FUNC_SIGNATURE_DIGEST_SIGN, OSSL_FUNC_signature_digest_sign_fn)(
        a->c->b, a->out, a->outlen, a->outsize, a->in, a->inlen);
}

static int sig_digest_sign(void *ctx, unsigned char *sig, size_t *siglen, size_t sigsize,
                           const unsigned char *tbs, size_t tbslen)
{
    struct sig_args a = {.c = ctx, .out = sig, .outlen = siglen, .outsize = sigsize,
                         .in = tbs, .inlen = tbslen};

    if (sig == NULL)
        return do_digest_sign(&a);
    return ap_run(a.c->alg, AP_K_SIGN, 1, sigsize, do_digest_sign, &a);
}

static int do_digest_verify_final(void *p)
{
    struct sig_args *a = p;

    return FN(a->c, OSSL_FUNC_SIGNATURE_DIGEST_VERIFY_FINAL,
              OSSL_FUNC_signature_digest_verify_final_fn)(a->c->b, a->sig, a->siglen);
}

static int sig_digest_verify_final(void *ctx, const unsigned char *sig, size_t siglen)
{
    struct sig_args a = {.c = ctx, .sig = sig, .siglen = siglen};

    return ap_run(a.c->alg, AP_K_VERIFY, 1, siglen, do_digest_verify_final, &a);
}

static int do_digest_verify(void *p)
{
    struct sig_args *a = p;

    return FN(a->c, OSSL_FUNC_SIGNATURE_DIGEST_VERIFY, OSSL_FUNC_signature_digest_verify_fn)(
        a->c->b, a->sig, a->siglen, a->in, a->inlen);
}

static int sig_digest_verify(void *ctx, const unsigned char *sig, size_t siglen,
                             const unsigned char *tbs, size_t tbslen)
{
    struct sig_args a = {.c = ctx, .sig = sig, .siglen = siglen, .in = tbs, .inlen = tbslen};

    return ap_run(a.c->alg, AP_K_VERIFY, 1, siglen, do_digest_verify, &a);
}

static int do_sign_message_final(void *p)
{
    struct sig_args *a = p;

    return FN(a->c, OSSL_FUNC_SIGNATURE_SIGN_MESSAGE_FINAL, ap_sig_sign_message_final_fn)(
        a->c->b, a->out, a->outlen, a->outsize);
}

static int sig_sign_message_final(void *ctx, unsigned char *sig, size_t *siglen, size_t sigsize)
{
    struct sig_args a = {.c = ctx, .out = sig, .outlen = siglen, .outsize = sigsize};

    if (sig == NULL)
        return do_sign_message_final(&a);
    return ap_run(a.c->alg, AP_K_SIGN, 1, sigsize, do_sign_message_final, &a);
}

/* The signature to check was given through set_ctx_params before. */
static int do_verify_message_final(void *p)
{
    struct sig_args *a = p;

    return FN(a->c, OSSL_FUNC_SIGNATURE_VERIFY_MESSAGE_FINAL, ap_sig_verify_message_final_fn)(
        a->c->b);
}

static int sig_verify_message_final(void *ctx)
{
    struct sig_args a = {.c = ctx};

    return ap_run(a.c->alg, AP_K_VERIFY, 1, 0, do_verify_message_final, &a);
}

#define W(id, f) {OSSL_FUNC_SIGNATURE_##id, AP_WRAP, (ap_fn)(f), NULL}
#define D(id) {OSSL_FUNC_SIGNATURE_##id, AP_DIRECT, NULL, NULL}
#define S(id, f) {OSSL_FUNC_SIGNATURE_##id, AP_SLOT, NULL, f##_slots}
static const ap_fn_desc fns[] = {
    S(NEWCTX, sig_newctx),
    W(FREECTX, sig_freectx),
    W(DUPCTX, sig_dupctx),
    W(SIGN_INIT, sig_sign_init),
    W(SIGN, sig_sign),
    W(VERIFY_INIT, sig_verify_init),
    W(VERIFY, sig_verify),
    W(VERIFY_RECOVER_INIT, sig_verify_recover_init),
    W(VERIFY_RECOVER, sig_verify_recover),
    W(DIGEST_SIGN_INIT, sig_digest_sign_init),
    W(DIGEST_SIGN_UPDATE, sig_digest_sign_update),
    W(DIGEST_SIGN_FINAL, sig_digest_sign_final),
    W(DIGEST_SIGN, sig_digest_sign),
    W(DIGEST_VERIFY_INIT, sig_digest_verify_init),
    W(DIGEST_VERIFY_UPDATE, sig_digest_verify_update),
    W(DIGEST_VERIFY_FINAL, sig_digest_verify_final),
    W(DIGEST_VERIFY, sig_digest_verify),
    W(GET_CTX_PARAMS, sig_get_ctx_params),
    S(GETTABLE_CTX_PARAMS, sig_gettable_ctx_params),
    W(SET_CTX_PARAMS, sig_set_ctx_params),
    S(SETTABLE_CTX_PARAMS, sig_settable_ctx_params),
    W(GET_CTX_MD_PARAMS, sig_get_ctx_md_params),
    W(GETTABLE_CTX_MD_PARAMS, sig_gettable_ctx_md_params),
    W(SET_CTX_MD_PARAMS, sig_set_ctx_md_params),
    W(SETTABLE_CTX_MD_PARAMS, sig_settable_ctx_md_params),
    D(QUERY_KEY_TYPES), /* (void): the backend's list, as it is */
    W(SIGN_MESSAGE_INIT, sig_sign_message_init),
    W(SIGN_MESSAGE_UPDATE, sig_sign_message_update),
    W(SIGN_MESSAGE_FINAL, sig_sign_message_final),
    W(VERIFY_MESSAGE_INIT, sig_verify_message_init),
    W(VERIFY_MESSAGE_UPDATE, sig_verify_message_update),
    W(VERIFY_MESSAGE_FINAL, sig_verify_message_final),
    {0, AP_WRAP, NULL, NULL},
};

const ap_op_desc ap_signature_desc = {OSSL_OP_SIGNATURE, "signature", names, fns};
