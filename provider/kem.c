/*
 * provider/kem.c — what the backend has of ML-KEM and the hybrid ML-KEM TLS groups
 * (X25519MLKEM768, SecP256r1MLKEM768, X448MLKEM1024, ...; OpenSSL 3.5+). On 3.0 the
 * backend has none of them, and this file offers nothing.
 *
 * encapsulate and decapsulate are offloaded; a size query (NULL output) runs inline.
 * A TLS 1.3 handshake with a hybrid group reaches them through libssl's
 * EVP_PKEY_encapsulate (server) and EVP_PKEY_decapsulate (client).
 */
#include "ap.h"

#define OP AP_OP_KEM

static const char *const names[] = {
    "ML-KEM-*", "X25519MLKEM768", "X448MLKEM1024", "SecP256r1MLKEM768", "SecP384r1MLKEM1024",
    NULL,
};

AP_DEFINE_NEWCTX(kem_newctx, OP, OSSL_FUNC_KEM_NEWCTX, OSSL_FUNC_KEM_FREECTX)
AP_DEFINE_CTX_PARAMS(kem_gettable_ctx_params, OP, OSSL_FUNC_KEM_GETTABLE_CTX_PARAMS)
AP_DEFINE_CTX_PARAMS(kem_settable_ctx_params, OP, OSSL_FUNC_KEM_SETTABLE_CTX_PARAMS)

static OSSL_FUNC_kem_freectx_fn kem_freectx;
static OSSL_FUNC_kem_dupctx_fn kem_dupctx;
static OSSL_FUNC_kem_encapsulate_init_fn kem_encapsulate_init;
static OSSL_FUNC_kem_encapsulate_fn kem_encapsulate;
static OSSL_FUNC_kem_decapsulate_init_fn kem_decapsulate_init;
static OSSL_FUNC_kem_decapsulate_fn kem_decapsulate;
static ap_kem_auth_init_fn kem_auth_encapsulate_init, kem_auth_decapsulate_init;
static OSSL_FUNC_kem_get_ctx_params_fn kem_get_ctx_params;
static OSSL_FUNC_kem_set_ctx_params_fn kem_set_ctx_params;

static void kem_freectx(void *ctx)
{
    ap_ctx_free(ctx, OSSL_FUNC_KEM_FREECTX);
}

static void *kem_dupctx(void *ctx)
{
    return ap_ctx_dup(ctx, OSSL_FUNC_KEM_DUPCTX, OSSL_FUNC_KEM_FREECTX);
}

static int kem_encapsulate_init(void *ctx, void *key, const OSSL_PARAM params[])
{
    ap_ctx *c = ctx;

    return AP_FN(c->alg, OSSL_FUNC_KEM_ENCAPSULATE_INIT, OSSL_FUNC_kem_encapsulate_init_fn)(
        c->b, key, params);
}

static int kem_decapsulate_init(void *ctx, void *key, const OSSL_PARAM params[])
{
    ap_ctx *c = ctx;

    return AP_FN(c->alg, OSSL_FUNC_KEM_DECAPSULATE_INIT, OSSL_FUNC_kem_decapsulate_init_fn)(
        c->b, key, params);
}

static int kem_auth_encapsulate_init(void *ctx, void *key, void *authkey,
                                     const OSSL_PARAM params[])
{
    ap_ctx *c = ctx;

    return AP_FN(c->alg, OSSL_FUNC_KEM_AUTH_ENCAPSULATE_INIT, ap_kem_auth_init_fn)(
        c->b, key, authkey, params);
}

static int kem_auth_decapsulate_init(void *ctx, void *key, void *authkey,
                                     const OSSL_PARAM params[])
{
    ap_ctx *c = ctx;

    return AP_FN(c->alg, OSSL_FUNC_KEM_AUTH_DECAPSULATE_INIT, ap_kem_auth_init_fn)(
        c->b, key, authkey, params);
}

static int kem_get_ctx_params(void *ctx, OSSL_PARAM params[])
{
    return ap_ctx_get_params(ctx, params, OSSL_FUNC_KEM_GET_CTX_PARAMS);
}

static int kem_set_ctx_params(void *ctx, const OSSL_PARAM params[])
{
    return ap_ctx_set_params(ctx, params, OSSL_FUNC_KEM_SET_CTX_PARAMS);
}

/* One argument block for both heavy calls, on the caller's (fibre's) stack. */
struct kem_args {
    ap_ctx *c;
    unsigned char *out;
    size_t *outlen;
    unsigned char *secret;     /* encapsulate */
    size_t *secretlen;
    const unsigned char *in;   /* decapsulate */
    size_t inlen;
};

static int do_encapsulate(void *p)
{
    struct kem_args *a = p;

    return AP_FN(a->c->alg, OSSL_FUNC_KEM_ENCAPSULATE, OSSL_FUNC_kem_encapsulate_fn)(
        a->c->b, a->out, a->outlen, a->secret, a->secretlen);
}

static int kem_encapsulate(void *ctx, unsigned char *out, size_t *outlen, unsigned char *secret,
                           size_t *secretlen)
{
    struct kem_args a = {.c = ctx, .out = out, .outlen = outlen, .secret = secret,
                         .secretlen = secretlen};

    if (out == NULL)
        return do_encapsulate(&a);
    return ap_run(a.c->alg, AP_K_KEM, 1, 0, do_encapsulate, &a);
}

static int do_decapsulate(void *p)
{
    struct kem_args *a = p;

    return AP_FN(a->c->alg, OSSL_FUNC_KEM_DECAPSULATE, OSSL_FUNC_kem_decapsulate_fn)(
        a->c->b, a->out, a->outlen, a->in, a->inlen);
}

static int kem_decapsulate(void *ctx, unsigned char *out, size_t *outlen,
                           const unsigned char *in, size_t inlen)
{
    struct kem_args a = {.c = ctx, .out = out, .outlen = outlen, .in = in, .inlen = inlen};

    if (out == NULL)
        return do_decapsulate(&a);
    return ap_run(a.c->alg, AP_K_KEM, 1, inlen, do_decapsulate, &a);
}

#define W(id, f) {OSSL_FUNC_KEM_##id, AP_WRAP, (ap_fn)(f), NULL}
#define S(id, f) {OSSL_FUNC_KEM_##id, AP_SLOT, NULL, f##_slots}
static const ap_fn_desc fns[] = {
    S(NEWCTX, kem_newctx),
    W(FREECTX, kem_freectx),
    W(DUPCTX, kem_dupctx),
    W(ENCAPSULATE_INIT, kem_encapsulate_init),
    W(ENCAPSULATE, kem_encapsulate),
    W(DECAPSULATE_INIT, kem_decapsulate_init),
    W(DECAPSULATE, kem_decapsulate),
    W(AUTH_ENCAPSULATE_INIT, kem_auth_encapsulate_init),
    W(AUTH_DECAPSULATE_INIT, kem_auth_decapsulate_init),
    W(GET_CTX_PARAMS, kem_get_ctx_params),
    S(GETTABLE_CTX_PARAMS, kem_gettable_ctx_params),
    W(SET_CTX_PARAMS, kem_set_ctx_params),
    S(SETTABLE_CTX_PARAMS, kem_settable_ctx_params),
    {0, AP_WRAP, NULL, NULL},
};

const ap_op_desc ap_kem_desc = {OSSL_OP_KEM, "kem", names, fns};
