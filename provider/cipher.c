/*
 * provider/cipher.c — AES-128/192/256-GCM, AES-128/256-CBC, ChaCha20-Poly1305.
 *
 * update and cipher are offloaded when their input is at least inline_threshold bytes;
 * below it, and for final (one block at most), they run inline: a thread hop costs more
 * than AES-NI on a small record. The TLS parameters libssl sets (TLS1 AAD, fixed IV, IV
 * generation) pass through set_ctx_params to the backend unchanged.
 * No AES-CTR or AES-ECB: the DRBG fetches those with the default properties, and a pause
 * inside the DRBG would let another fibre touch the unlocked per-thread DRBG.
 */
#include "ap.h"

#define OP AP_OP_CIPHER

static const char *const names[] = {
    "AES-128-GCM", "AES-192-GCM", "AES-256-GCM", "AES-128-CBC", "AES-256-CBC",
    "ChaCha20-Poly1305", NULL,
};

AP_DEFINE_NEWCTX(ciph_newctx, OP, OSSL_FUNC_CIPHER_NEWCTX, OSSL_FUNC_CIPHER_FREECTX)
AP_DEFINE_PROV_PARAMS(ciph_gettable_params, OP, OSSL_FUNC_CIPHER_GETTABLE_PARAMS)
AP_DEFINE_CTX_PARAMS(ciph_gettable_ctx_params, OP, OSSL_FUNC_CIPHER_GETTABLE_CTX_PARAMS)
AP_DEFINE_CTX_PARAMS(ciph_settable_ctx_params, OP, OSSL_FUNC_CIPHER_SETTABLE_CTX_PARAMS)

static OSSL_FUNC_cipher_freectx_fn ciph_freectx;
static OSSL_FUNC_cipher_dupctx_fn ciph_dupctx;
static OSSL_FUNC_cipher_encrypt_init_fn ciph_encrypt_init;
static OSSL_FUNC_cipher_decrypt_init_fn ciph_decrypt_init;
static OSSL_FUNC_cipher_update_fn ciph_update;
static OSSL_FUNC_cipher_final_fn ciph_final;
static OSSL_FUNC_cipher_cipher_fn ciph_cipher;
static OSSL_FUNC_cipher_get_ctx_params_fn ciph_get_ctx_params;
static OSSL_FUNC_cipher_set_ctx_params_fn ciph_set_ctx_params;
static ap_cipher_skey_init_fn ciph_encrypt_skey_init, ciph_decrypt_skey_init;
static ap_cipher_pipeline_init_fn ciph_pipeline_encrypt_init, ciph_pipeline_decrypt_init;
static ap_cipher_pipeline_update_fn ciph_pipeline_update;
static ap_cipher_pipeline_final_fn ciph_pipeline_final;

static void ciph_freectx(void *ctx)
{
    ap_ctx_free(ctx, OSSL_FUNC_CIPHER_FREECTX);
}

static void *ciph_dupctx(void *ctx)
{
    return ap_ctx_dup(ctx, OSSL_FUNC_CIPHER_DUPCTX, OSSL_FUNC_CIPHER_FREECTX);
}

static int ciph_encrypt_init(void *ctx, const unsigned char *key, size_t keylen,
                             const unsigned char *iv, size_t ivlen, const OSSL_PARAM params[])
{
    ap_ctx *c = ctx;

    return AP_FN(c->alg, OSSL_FUNC_CIPHER_ENCRYPT_INIT, OSSL_FUNC_cipher_encrypt_init_fn)(
        c->b, key, keylen, iv, ivlen, params);
}

static int ciph_decrypt_init(void *ctx, const unsigned char *key, size_t keylen,
                             const unsigned char *iv, size_t ivlen, const OSSL_PARAM params[])
{
    ap_ctx *c = ctx;

    return AP_FN(c->alg, OSSL_FUNC_CIPHER_DECRYPT_INIT, OSSL_FUNC_cipher_decrypt_init_fn)(
        c->b, key, keylen, iv, ivlen, params);
}

/* Opaque-key init (3.5): skeydata is the backend's own, made by our skeymgmt
 * (skeymgmt.c), which hands out the backend's keys unwrapped. */
static int ciph_encrypt_skey_init(void *ctx, void *skeydata, const unsigned char *iv,
                                  size_t ivlen, const OSSL_PARAM params[])
{
    ap_ctx *c = ctx;

    return AP_FN(c->alg, OSSL_FUNC_CIPHER_ENCRYPT_SKEY_INIT, ap_cipher_skey_init_fn)(
        c->b, skeydata, iv, ivlen, params);
}

static int ciph_decrypt_skey_init(void *ctx, void *skeydata, const unsigned char *iv,
                                  size_t ivlen, const OSSL_PARAM params[])
{
    ap_ctx *c = ctx;

    return AP_FN(c->alg, OSSL_FUNC_CIPHER_DECRYPT_SKEY_INIT, ap_cipher_skey_init_fn)(
        c->b, skeydata, iv, ivlen, params);
}

/* Pipelines (3.5): forwarded as they are, inline (a backend that has them is an
 * accelerator of its own). */
static int ciph_pipeline_encrypt_init(void *ctx, const unsigned char *key, size_t keylen,
                                      size_t numpipes, const unsigned char **iv, size_t ivlen,
                                      const OSSL_PARAM params[])
{
    ap_ctx *c = ctx;

    return AP_FN(c->alg, OSSL_FUNC_CIPHER_PIPELINE_ENCRYPT_INIT, ap_cipher_pipeline_init_fn)(
        c->b, key, keylen, numpipes, iv, ivlen, params);
}

static int ciph_pipeline_decrypt_init(void *ctx, const unsigned char *key, size_t keylen,
                                      size_t numpipes, const unsigned char **iv, size_t ivlen,
                                      const OSSL_PARAM params[])
{
    ap_ctx *c = ctx;

    return AP_FN(c->alg, OSSL_FUNC_CIPHER_PIPELINE_DECRYPT_INIT, ap_cipher_pipeline_init_fn)(
        c->b, key, keylen, numpipes, iv, ivlen, params);
}

static int ciph_pipeline_update(void *ctx, size_t numpipes, unsigned char **out, size_t *outl,
                                const size_t *outsize, const unsigned char **in,
                                const size_t *inl)
{
    ap_ctx *c = ctx;

    return AP_FN(c->alg, OSSL_FUNC_CIPHER_PIPELINE_UPDATE, ap_cipher_pipeline_update_fn)(
        c->b, numpipes, out, outl, outsize, in, inl);
}

static int ciph_pipeline_final(void *ctx, size_t numpipes, unsigned char **out, size_t *outl,
                               const size_t *outsize)
{
    ap_ctx *c = ctx;

    return AP_FN(c->alg, OSSL_FUNC_CIPHER_PIPELINE_FINAL, ap_cipher_pipeline_final_fn)(
        c->b, numpipes, out, outl, outsize);
}

static int ciph_get_ctx_params(void *ctx, OSSL_PARAM params[])
{
    return ap_ctx_get_params(ctx, params, OSSL_FUNC_CIPHER_GET_CTX_PARAMS);
}

static int ciph_set_ctx_params(void *ctx, const OSSL_PARAM params[])
{
    return ap_ctx_set_params(ctx, params, OSSL_FUNC_CIPHER_SET_CTX_PARAMS);
}

struct ciph_args {
    ap_ctx *c;
    int id; /* OSSL_FUNC_CIPHER_UPDATE or _CIPHER: both have one shape */
    unsigned char *out;
    size_t *outl;
    size_t outsize;
    const unsigned char *in;
    size_t inl;
};

static int do_update(void *p)
{
    struct ciph_args *a = p;

    return AP_FN(a->c->alg, a->id, OSSL_FUNC_cipher_update_fn)(a->c->b, a->out, a->outl,
                                                              a->outsize, a->in, a->inl);
}

/* Below the threshold: a direct call and a per-context count, nothing else. This is the
 * path of every TLS record and of the synchronous path's small buffers, where a few
 * dozen instructions are measurable (bench/sync_overhead.sh). */
static inline int inline_call(ap_ctx *c, int r)
{
    if (++c->inline_pending == AP_INLINE_BATCH)
        ap_flush_inline(c);
    if (r <= 0)
        atomic_fetch_add_explicit(&c->alg->prov->cnt[AP_K_CIPHER][AP_C_ERRORS], 1,
                                  memory_order_relaxed);
    return r;
}

/* At or above the threshold: the call goes to the pool (kept out of line so that the
 * inline path stays a compare, a count and a call). */
static __attribute__((noinline)) int offload_update(ap_ctx *c, int id, unsigned char *out,
                                                    size_t *outl, size_t outsize,
                                                    const unsigned char *in, size_t inl)
{
    struct ciph_args a = {.c = c, .id = id, .out = out, .outl = outl, .outsize = outsize,
                          .in = in, .inl = inl};

    return ap_run(c->alg, AP_K_CIPHER, 1, inl, do_update, &a);
}

/* update's rare cases, out of line: the call goes to the pool, or the context's batch of
 * inline calls is full and goes to the shared counter first. */
static __attribute__((noinline)) int update_slow(ap_ctx *c, unsigned char *out, size_t *outl,
                                                 size_t outsize, const unsigned char *in,
                                                 size_t inl)
{
    if (inl >= c->threshold)
        return offload_update(c, OSSL_FUNC_CIPHER_UPDATE, out, outl, outsize, in, inl);
    ap_flush_inline(c);
    return AP_FN(c->alg, OSSL_FUNC_CIPHER_UPDATE, OSSL_FUNC_cipher_update_fn)(c->b, out, outl,
                                                                             outsize, in, inl);
}

/* The hottest path of all (every small EVP_EncryptUpdate): a compare, a count and a tail
 * call to the backend, no stack frame. Its rare failures are not counted as errors; tag
 * failures, the ones that matter, come from final and cipher, which count them. */
static int ciph_update(void *ctx, unsigned char *out, size_t *outl, size_t outsize,
                       const unsigned char *in, size_t inl)
{
    ap_ctx *c = ctx;

    if (__builtin_expect(inl >= c->threshold || ++c->inline_pending == AP_INLINE_BATCH, 0))
        return update_slow(c, out, outl, outsize, in, inl);
    return AP_FN(c->alg, OSSL_FUNC_CIPHER_UPDATE, OSSL_FUNC_cipher_update_fn)(c->b, out, outl,
                                                                             outsize, in, inl);
}

static int ciph_cipher(void *ctx, unsigned char *out, size_t *outl, size_t outsize,
                       const unsigned char *in, size_t inl)
{
    ap_ctx *c = ctx;

    if (inl < c->threshold)
        return inline_call(c, AP_FN(c->alg, OSSL_FUNC_CIPHER_CIPHER, OSSL_FUNC_cipher_cipher_fn)(
                                  c->b, out, outl, outsize, in, inl));
    return offload_update(c, OSSL_FUNC_CIPHER_CIPHER, out, outl, outsize, in, inl);
}

static int ciph_final(void *ctx, unsigned char *out, size_t *outl, size_t outsize)
{
    ap_ctx *c = ctx;

    return inline_call(c, AP_FN(c->alg, OSSL_FUNC_CIPHER_FINAL, OSSL_FUNC_cipher_final_fn)(
                              c->b, out, outl, outsize));
}

#define W(id, f) {OSSL_FUNC_CIPHER_##id, AP_WRAP, (ap_fn)(f), NULL}
#define S(id, f) {OSSL_FUNC_CIPHER_##id, AP_SLOT, NULL, f##_slots}
#define D(id) {OSSL_FUNC_CIPHER_##id, AP_DIRECT, NULL, NULL}
static const ap_fn_desc fns[] = {
    S(NEWCTX, ciph_newctx),
    W(FREECTX, ciph_freectx),
    W(DUPCTX, ciph_dupctx),
    W(ENCRYPT_INIT, ciph_encrypt_init),
    W(DECRYPT_INIT, ciph_decrypt_init),
    W(UPDATE, ciph_update),
    W(FINAL, ciph_final),
    W(CIPHER, ciph_cipher),
    D(GET_PARAMS),
    W(GET_CTX_PARAMS, ciph_get_ctx_params),
    W(SET_CTX_PARAMS, ciph_set_ctx_params),
    S(GETTABLE_PARAMS, ciph_gettable_params),
    S(GETTABLE_CTX_PARAMS, ciph_gettable_ctx_params),
    S(SETTABLE_CTX_PARAMS, ciph_settable_ctx_params),
    W(ENCRYPT_SKEY_INIT, ciph_encrypt_skey_init),
    W(DECRYPT_SKEY_INIT, ciph_decrypt_skey_init),
    W(PIPELINE_ENCRYPT_INIT, ciph_pipeline_encrypt_init),
    W(PIPELINE_DECRYPT_INIT, ciph_pipeline_decrypt_init),
    W(PIPELINE_UPDATE, ciph_pipeline_update),
    W(PIPELINE_FINAL, ciph_pipeline_final),
    {0, AP_WRAP, NULL, NULL},
};

const ap_op_desc ap_cipher_desc = {OSSL_OP_CIPHER, "cipher", names, fns};
