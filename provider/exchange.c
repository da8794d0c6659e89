/*
 * provider/exchange.c — ECDH, X25519, X448. derive is offloaded; a size query (NULL
 * output) runs inline. derive_skey (OpenSSL 3.6+, ECDH) is offloaded too.
 */
#include "ap.h"

#define OP AP_OP_KEYEXCH

static const char *const names[] = {"ECDH", "X25519", "X448", NULL};

AP_DEFINE_NEWCTX(kex_newctx, OP, OSSL_FUNC_KEYEXCH_NEWCTX, OSSL_FUNC_KEYEXCH_FREECTX)
AP_DEFINE_CTX_PARAMS(kex_gettable_ctx_params, OP, OSSL_FUNC_KEYEXCH_GETTABLE_CTX_PARAMS)
AP_DEFINE_CTX_PARAMS(kex_settable_ctx_params, OP, OSSL_FUNC_KEYEXCH_SETTABLE_CTX_PARAMS)

static OSSL_FUNC_keyexch_freectx_fn kex_freectx;
static OSSL_FUNC_keyexch_dupctx_fn kex_dupctx;
static OSSL_FUNC_keyexch_init_fn kex_init;
static OSSL_FUNC_keyexch_set_peer_fn kex_set_peer;
static OSSL_FUNC_keyexch_derive_fn kex_derive;
static ap_keyexch_derive_skey_fn kex_derive_skey;
static OSSL_FUNC_keyexch_get_ctx_params_fn kex_get_ctx_params;
static OSSL_FUNC_keyexch_set_ctx_params_fn kex_set_ctx_params;

static void kex_freectx(void *ctx)
{
    ap_ctx_free(ctx, OSSL_FUNC_KEYEXCH_FREECTX);
}

static void *kex_dupctx(void *ctx)
{
    return ap_ctx_dup(ctx, OSSL_FUNC_KEYEXCH_DUPCTX, OSSL_FUNC_KEYEXCH_FREECTX);
}

static int kex_init(void *ctx, void *key, const OSSL_PARAM params[])
{
    ap_ctx *c = ctx;

    return AP_FN(c->alg, OSSL_FUNC_KEYEXCH_INIT, OSSL_FUNC_keyexch_init_fn)(c->b, key, params);
}

static int kex_set_peer(void *ctx, void *peer)
{
    ap_ctx *c = ctx;

    return AP_FN(c->alg, OSSL_FUNC_KEYEXCH_SET_PEER, OSSL_FUNC_keyexch_set_peer_fn)(c->b, peer);
}

static int kex_get_ctx_params(void *ctx, OSSL_PARAM params[])
{
    return ap_ctx_get_params(ctx, params, OSSL_FUNC_KEYEXCH_GET_CTX_PARAMS);
}

static int kex_set_ctx_params(void *ctx, const OSSL_PARAM params[])
{
    return ap_ctx_set_params(ctx, params, OSSL_FUNC_KEYEXCH_SET_CTX_PARAMS);
}

struct derive_args {
    ap_ctx *c;
    unsigned char *secret;
    size_t *secretlen;
    size_t outlen;
};

static int do_derive(void *p)
{
    struct derive_args *a = p;

    return AP_FN(a->c->alg, OSSL_FUNC_KEYEXCH_DERIVE, OSSL_FUNC_keyexch_derive_fn)(
        a->c->b, a->secret, a->secretlen, a->outlen);
}

static int kex_derive(void *ctx, unsigned char *secret, size_t *secretlen, size_t outlen)
{
    struct derive_args a = {.c = ctx, .secret = secret, .secretlen = secretlen, .outlen = outlen};

    if (secret == NULL)
        return do_derive(&a);
    return ap_run(a.c->alg, AP_K_DERIVE, 1, outlen, do_derive, &a);
}

/*
 * derive_skey (3.6+): libcrypto calls it only when the skeymgmt it derives into is the
 * exchange's own provider's, so import and provctx are our skeymgmt's import and our
 * provctx, and the backend only hands both back to import (ecdh_exch.c): forwarded
 * as they are, our skeymgmt makes the key. Not run here: no OpenSSL 3.6 to test on;
 * the signature and the calling rule are those of OpenSSL master (3.6) core_dispatch.h
 * and crypto/evp/exchange.c.
 */
struct derive_skey_args {
    ap_ctx *c;
    const char *key_type;
    void *provctx;
    ap_skm_import_fn *import;
    size_t keylen;
    const OSSL_PARAM *params;
    void *key;
};

static int do_derive_skey(void *p)
{
    struct derive_skey_args *a = p;

    a->key = AP_FN(a->c->alg, OSSL_FUNC_KEYEXCH_DERIVE_SKEY, ap_keyexch_derive_skey_fn)(
        a->c->b, a->key_type, a->provctx, a->import, a->keylen, a->params);
    return a->key != NULL;
}

static void *kex_derive_skey(void *ctx, const char *key_type, void *provctx,
                             ap_skm_import_fn *import, size_t keylen,
                             const OSSL_PARAM params[])
{
    struct derive_skey_args a = {.c = ctx, .key_type = key_type, .provctx = provctx,
                                 .import = import, .keylen = keylen, .params = params};

    ap_run(a.c->alg, AP_K_DERIVE, 1, keylen, do_derive_skey, &a);
    return a.key;
}

#define W(id, f) {OSSL_FUNC_KEYEXCH_##id, AP_WRAP, (ap_fn)(f), NULL}
#define S(id, f) {OSSL_FUNC_KEYEXCH_##id, AP_SLOT, NULL, f##_slots}
static const ap_fn_desc fns[] = {
    S(NEWCTX, kex_newctx),
    W(FREECTX, kex_freectx),
    W(DUPCTX, kex_dupctx),
    W(INIT, kex_init),
    W(SET_PEER, kex_set_peer),
    W(DERIVE, kex_derive),
    W(DERIVE_SKEY, kex_derive_skey),
    W(GET_CTX_PARAMS, kex_get_ctx_params),
    S(GETTABLE_CTX_PARAMS, kex_gettable_ctx_params),
    W(SET_CTX_PARAMS, kex_set_ctx_params),
    S(SETTABLE_CTX_PARAMS, kex_settable_ctx_params),
    {0, AP_WRAP, NULL, NULL},
};

const ap_op_desc ap_keyexch_desc = {OSSL_OP_KEYEXCH, "keyexch", names, fns};
