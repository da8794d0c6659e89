/*
 * provider/ctx.c — the helpers every operation file uses: running a call (inline or
 * through async_core, counted), operation contexts (ap_ctx) and the generic forwards
 * for newctx, parameter tables and get/set_params.
 */
#include "ap.h"

#include <openssl/async.h>
#include <openssl/crypto.h>
#include <openssl/err.h>

#include "async_core/acore.h"
#include "offload/emu.h"

int ap_run(const ap_alg *a, enum ap_kind kind, int heavy, size_t size, int (*fn)(void *),
           void *arg)
{
    ap_prov *p = a->prov;
    acore_trace t = {0, 0};
    unsigned flags = p->acore_flags | ACORE_CLASS(ap_emu_class(kind));
    int r;

    if (!heavy)
        r = fn(arg);
    /* offload = auto decides only where a call would be offloaded (in a job, or with
     * outside_job = block), never for ciphers (inline_threshold is their rule), and
     * not while an accelerator is emulated (the user tests the device). */
    else if (p->offload_auto && kind != AP_K_CIPHER && !offload_emu_enabled()
             && ((flags & ACORE_BLOCK) != 0 || ASYNC_get_current_job() != NULL))
        r = ap_run_auto(a, kind, flags, size, fn, arg, &t);
    else
        r = acore_call(fn, arg, flags, &t);
    atomic_fetch_add_explicit(&p->cnt[kind][t.offloaded ? AP_C_OFFLOADED : AP_C_INLINE], 1,
                              memory_order_relaxed);
    if (t.eagain != 0)
        atomic_fetch_add_explicit(&p->cnt[kind][AP_C_EAGAIN], t.eagain, memory_order_relaxed);
    if (r <= 0)
        atomic_fetch_add_explicit(&p->cnt[kind][AP_C_ERRORS], 1, memory_order_relaxed);
    return r;
}

void *ap_ctx_wrap(const ap_alg *a, void *b, int freectx_id)
{
    ap_ctx *c;

    if (b == NULL)
        return NULL;
    c = OPENSSL_zalloc(sizeof(*c));
    if (c == NULL) {
        AP_FN(a, freectx_id, ap_free_fn)(b);
        ERR_raise(ERR_LIB_PROV, ERR_R_MALLOC_FAILURE);
        return NULL;
    }
    c->alg = a;
    c->b = b;
    c->threshold = a->prov->inline_threshold;
    return c;
}

void ap_flush_inline(ap_ctx *c)
{
    if (c->inline_pending == 0)
        return;
    atomic_fetch_add_explicit(&c->alg->prov->cnt[AP_K_CIPHER][AP_C_INLINE], c->inline_pending,
                              memory_order_relaxed);
    c->inline_pending = 0;
}

void ap_ctx_free(void *ctx, int freectx_id)
{
    ap_ctx *c = ctx;

    if (c == NULL)
        return;
    ap_flush_inline(c);
    AP_FN(c->alg, freectx_id, ap_free_fn)(c->b);
    OPENSSL_free(c);
}

void *ap_ctx_dup(void *ctx, int dupctx_id, int freectx_id)
{
    ap_ctx *c = ctx;

    if (c == NULL || !AP_HAS(c->alg, dupctx_id))
        return NULL;
    return ap_ctx_wrap(c->alg, AP_FN(c->alg, dupctx_id, ap_dup_fn)(c->b), freectx_id);
}

void *ap_newctx(void *provctx, enum ap_op op, int slot, int newctx_id, int freectx_id,
                int with_propq, const char *propq)
{
    const ap_alg *a = ap_slot_alg(provctx, op, slot);
    void *b;

    if (with_propq) {
        char *bq = NULL;

        if (!ap_backend_propq(propq, &bq))
            return NULL;
        b = AP_FN(a, newctx_id, ap_new_pq_fn)(a->prov->bprovctx, bq);
        OPENSSL_free(bq);
    } else
        b = AP_FN(a, newctx_id, ap_new_fn)(a->prov->bprovctx);
    return ap_ctx_wrap(a, b, freectx_id);
}

const OSSL_PARAM *ap_ctx_params_table(void *ctx, void *provctx, enum ap_op op, int slot, int id)
{
    ap_ctx *c = ctx;
    const ap_alg *a = c != NULL ? c->alg : ap_slot_alg(provctx, op, slot);

    if (!AP_HAS(a, id))
        return NULL;
    return AP_FN(a, id, ap_ctx_tbl_fn)(c != NULL ? c->b : NULL,
                                                            a->prov->bprovctx);
}

const OSSL_PARAM *ap_prov_params_table(void *provctx, enum ap_op op, int slot, int id)
{
    const ap_alg *a = ap_slot_alg(provctx, op, slot);

    if (!AP_HAS(a, id))
        return NULL;
    return AP_FN(a, id, ap_prov_tbl_fn)(a->prov->bprovctx);
}

int ap_ctx_get_params(void *ctx, OSSL_PARAM params[], int id)
{
    ap_ctx *c = ctx;

    return AP_FN(c->alg, id, ap_get_fn)(c->b, params);
}

int ap_ctx_set_params(void *ctx, const OSSL_PARAM params[], int id)
{
    ap_ctx *c = ctx;

    return AP_FN(c->alg, id, ap_set_fn)(c->b, params);
}
