/*
 * provider/asym_cipher.c — RSA encryption (PKCS#1 v1.5, OAEP). encrypt and decrypt are
 * offloaded; a size query (NULL output) runs inline.
 */
#include "ap.h"

#define OP AP_OP_ASYM_CIPHER

static const char *const names[] = {"RSA", NULL};

AP_DEFINE_NEWCTX(asym_newctx, OP, OSSL_FUNC_ASYM_CIPHER_NEWCTX, OSSL_FUNC_ASYM_CIPHER_FREECTX)
AP_DEFINE_CTX_PARAMS(asym_gettable_ctx_params, OP, OSSL_FUNC_ASYM_CIPHER_GETTABLE_CTX_PARAMS)
AP_DEFINE_CTX_PARAMS(asym_settable_ctx_params, OP, OSSL_FUNC_ASYM_CIPHER_SETTABLE_CTX_PARAMS)

static OSSL_FUNC_asym_cipher_freectx_fn asym_freectx;
static OSSL_FUNC_asym_cipher_dupctx_fn asym_dupctx;
static OSSL_FUNC_asym_cipher_encrypt_init_fn asym_encrypt_init;
static OSSL_FUNC_asym_cipher_encrypt_fn asym_encrypt;
static OSSL_FUNC_asym_cipher_decrypt_init_fn asym_decrypt_init;
static OSSL_FUNC_asym_cipher_decrypt_fn asym_decrypt;
static OSSL_FUNC_asym_cipher_get_ctx_params_fn asym_get_ctx_params;
static OSSL_FUNC_asym_cipher_set_ctx_params_fn asym_set_ctx_params;

static void asym_freectx(void *ctx)
{
    ap_ctx_free(ctx, OSSL_FUNC_ASYM_CIPHER_FREECTX);
}

static void *asym_dupctx(void *ctx)
{
    return ap_ctx_dup(ctx, OSSL_FUNC_ASYM_CIPHER_DUPCTX, OSSL_FUNC_ASYM_CIPHER_FREECTX);
}

static int asym_encrypt_init(void *ctx, void *key, const OSSL_PARAM params[])
{
    ap_ctx *c = ctx;

    return AP_FN(c->alg, OSSL_FUNC_ASYM_CIPHER_ENCRYPT_INIT,
                 OSSL_FUNC_asym_cipher_encrypt_init_fn)(c->b, key, params);
}

static int asym_decrypt_init(void *ctx, void *key, const OSSL_PARAM params[])
{
    ap_ctx *c = ctx;

    return AP_FN(c->alg, OSSL_FUNC_ASYM_CIPHER_DECRYPT_INIT,
                 OSSL_FUNC_asym_cipher_decrypt_init_fn)(c->b, key, params);
}

static int asym_get_ctx_params(void *ctx, OSSL_PARAM params[])
{
    return ap_ctx_get_params(ctx, params, OSSL_FUNC_ASYM_CIPHER_GET_CTX_PARAMS);
}

static int asym_set_ctx_params(void *ctx, const OSSL_PARAM params[])
{
    return ap_ctx_set_params(ctx, params, OSSL_FUNC_ASYM_CIPHER_SET_CTX_PARAMS);
}

struct asym_args {
    ap_ctx *c;
    int id; /* OSSL_FUNC_ASYM_CIPHER_ENCRYPT or _DECRYPT: both have one shape */
    unsigned char *out;
    size_t *outlen;
    size_t outsize;
    const unsigned char *in;
    size_t inlen;
};

static int do_crypt(void *p)
{
    struct asym_args *a = p;

    return AP_FN(a->c->alg, a->id, OSSL_FUNC_asym_cipher_encrypt_fn)(a->c->b, a->out, a->outlen,
                                                                    a->outsize, a->in, a->inlen);
}

static int crypt(void *ctx, int id, unsigned char *out, size_t *outlen, size_t outsize,
                 const unsigned char *in, size_t inlen)
{
    struct asym_args a = {.c = ctx, .id = id, .out = out, .outlen = outlen, .outsize = outsize,
                          .in = in, .inlen = inlen};

    if (out == NULL)
        return do_crypt(&a);
    return ap_run(a.c->alg, AP_K_ASYM, 1, inlen, do_crypt, &a);
}

static int asym_encrypt(void *ctx, unsigned char *out, size_t *outlen, size_t outsize,
                        const unsigned char *in, size_t inlen)
{
    return crypt(ctx, OSSL_FUNC_ASYM_CIPHER_ENCRYPT, out, outlen, outsize, in, inlen);
}

static int asym_decrypt(void *ctx, unsigned char *out, size_t *outlen, size_t outsize,
                        const unsigned char *in, size_t inlen)
{
    return crypt(ctx, OSSL_FUNC_ASYM_CIPHER_DECRYPT, out, outlen, outsize, in, inlen);
}

#define W(id, f) {OSSL_FUNC_ASYM_CIPHER_##id, AP_WRAP, (ap_fn)(f), NULL}
#define S(id, f) {OSSL_FUNC_ASYM_CIPHER_##id, AP_SLOT, NULL, f##_slots}
static const ap_fn_desc fns[] = {
    S(NEWCTX, asym_newctx),
    W(FREECTX, asym_freectx),
    W(DUPCTX, asym_dupctx),
    W(ENCRYPT_INIT, asym_encrypt_init),
    W(ENCRYPT, asym_encrypt),
    W(DECRYPT_INIT, asym_decrypt_init),
    W(DECRYPT, asym_decrypt),
    W(GET_CTX_PARAMS, asym_get_ctx_params),
    S(GETTABLE_CTX_PARAMS, asym_gettable_ctx_params),
    W(SET_CTX_PARAMS, asym_set_ctx_params),
    S(SETTABLE_CTX_PARAMS, asym_settable_ctx_params),
    {0, AP_WRAP, NULL, NULL},
};

const ap_op_desc ap_asym_cipher_desc = {OSSL_OP_ASYM_CIPHER, "asym_cipher", names, fns};
