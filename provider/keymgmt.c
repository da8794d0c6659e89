/*
 * provider/keymgmt.c — RSA, RSA-PSS, EC, X25519, X448, ED25519, ED448, and what the
 * backend has of ML-KEM, the hybrid ML-KEM TLS groups, ML-DSA and SLH-DSA (3.5+).
 *
 * Our keys are the backend's own keydata objects: every function that takes only keydata
 * (free, has, match, import, export, ...) is the backend's, used as it is. Key generation
 * is offloaded; its context is an ap_ctx around the backend's genctx. A provider that
 * offers a signature must offer the keymgmt of the same key type: libcrypto exports a
 * key into the signature provider's keymgmt.
 */
#include "ap.h"

#define OP AP_OP_KEYMGMT

static const char *const names[] = {
    "RSA", "RSA-PSS", "EC", "X25519", "X448", "ED25519", "ED448",
    "ML-KEM-*", "X25519MLKEM768", "X448MLKEM1024", "SecP256r1MLKEM768", "SecP384r1MLKEM1024",
    "ML-DSA-*", "SLH-DSA-*", NULL,
};

/* new(provctx): the backend's keydata, unwrapped. */
static void *km_new(void *provctx, int slot)
{
    const ap_alg *a = ap_slot_alg(provctx, OP, slot);

    return AP_FN(a, OSSL_FUNC_KEYMGMT_NEW, OSSL_FUNC_keymgmt_new_fn)(a->prov->bprovctx);
}
#define KM_NEW_FN_(unused, i)                                                      \
    static void *km_new_##i(void *p) { return km_new(p, i); }
AP_EXPAND_SLOTS(KM_NEW_FN_, ~)
AP_SLOT_TABLE(km_new)

static void *km_gen_init(void *provctx, int slot, int selection, const OSSL_PARAM params[])
{
    const ap_alg *a = ap_slot_alg(provctx, OP, slot);
    void *b = AP_FN(a, OSSL_FUNC_KEYMGMT_GEN_INIT, OSSL_FUNC_keymgmt_gen_init_fn)(
        a->prov->bprovctx, selection, params);
    ap_ctx *c = ap_ctx_wrap(a, b, OSSL_FUNC_KEYMGMT_GEN_CLEANUP);

    if (c != NULL)
        c->selection = selection;
    return c;
}
#define KM_GEN_INIT_FN_(unused, i)                                                 \
    static void *km_gen_init_##i(void *p, int sel, const OSSL_PARAM params[])      \
    { return km_gen_init(p, i, sel, params); }
AP_EXPAND_SLOTS(KM_GEN_INIT_FN_, ~)
AP_SLOT_TABLE(km_gen_init)

AP_DEFINE_CTX_PARAMS(km_gen_settable_params, OP, OSSL_FUNC_KEYMGMT_GEN_SETTABLE_PARAMS)
AP_DEFINE_CTX_PARAMS(km_gen_gettable_params, OP, OSSL_FUNC_KEYMGMT_GEN_GETTABLE_PARAMS)
AP_DEFINE_PROV_PARAMS(km_gettable_params, OP, OSSL_FUNC_KEYMGMT_GETTABLE_PARAMS)
AP_DEFINE_PROV_PARAMS(km_settable_params, OP, OSSL_FUNC_KEYMGMT_SETTABLE_PARAMS)

static OSSL_FUNC_keymgmt_gen_set_template_fn km_gen_set_template;
static OSSL_FUNC_keymgmt_gen_set_params_fn km_gen_set_params;
static int km_gen_get_params(void *genctx, OSSL_PARAM params[]);
static OSSL_FUNC_keymgmt_gen_fn km_gen;
static OSSL_FUNC_keymgmt_gen_cleanup_fn km_gen_cleanup;

static int km_gen_set_template(void *genctx, void *templ)
{
    ap_ctx *c = genctx;

    return AP_FN(c->alg, OSSL_FUNC_KEYMGMT_GEN_SET_TEMPLATE,
                 OSSL_FUNC_keymgmt_gen_set_template_fn)(c->b, templ);
}

static int km_gen_set_params(void *genctx, const OSSL_PARAM params[])
{
    return ap_ctx_set_params(genctx, params, OSSL_FUNC_KEYMGMT_GEN_SET_PARAMS);
}

static int km_gen_get_params(void *genctx, OSSL_PARAM params[])
{
    return ap_ctx_get_params(genctx, params, OSSL_FUNC_KEYMGMT_GEN_GET_PARAMS);
}

/* import_types_ex/export_types_ex(provctx, selection), OpenSSL 3.2+. */
static const OSSL_PARAM *km_types_ex(void *provctx, int slot, int id, int selection)
{
    const ap_alg *a = ap_slot_alg(provctx, OP, slot);

    return AP_FN(a, id, ap_keymgmt_types_ex_fn)(a->prov->bprovctx, selection);
}
#define KM_TYPES_EX_FN_(name, id, i)                                               \
    static const OSSL_PARAM *name##_##i(void *p, int sel) { return km_types_ex(p, i, id, sel); }
AP_EXPAND_SLOTS(KM_TYPES_EX_FN_, km_import_types_ex, OSSL_FUNC_KEYMGMT_IMPORT_TYPES_EX)
AP_SLOT_TABLE(km_import_types_ex)
AP_EXPAND_SLOTS(KM_TYPES_EX_FN_, km_export_types_ex, OSSL_FUNC_KEYMGMT_EXPORT_TYPES_EX)
AP_SLOT_TABLE(km_export_types_ex)

static void km_gen_cleanup(void *genctx)
{
    ap_ctx_free(genctx, OSSL_FUNC_KEYMGMT_GEN_CLEANUP);
}

struct gen_args {
    ap_ctx *c;
    OSSL_CALLBACK *cb; /* progress callback: called on the worker when offloaded */
    void *cbarg;
    void *key;
};

static int do_gen(void *p)
{
    struct gen_args *a = p;

    a->key = AP_FN(a->c->alg, OSSL_FUNC_KEYMGMT_GEN, OSSL_FUNC_keymgmt_gen_fn)(a->c->b, a->cb,
                                                                             a->cbarg);
    return a->key != NULL;
}

/*
 * Only generating key material is heavy. Parameter generation for a named group (what
 * libssl's EVP_PKEY_paramgen does for X25519 or P-256 before every key share) only
 * records the group name: offloading it would cost each TLS handshake a pause for
 * nothing.
 */
static void *km_gen(void *genctx, OSSL_CALLBACK *cb, void *cbarg)
{
    struct gen_args a = {.c = genctx, .cb = cb, .cbarg = cbarg};
    int heavy = (a.c->selection & OSSL_KEYMGMT_SELECT_KEYPAIR) != 0;

    ap_run(a.c->alg, AP_K_KEYGEN, heavy, 0, do_gen, &a);
    return a.key;
}

#define W(id, f) {OSSL_FUNC_KEYMGMT_##id, AP_WRAP, (ap_fn)(f), NULL}
#define S(id, f) {OSSL_FUNC_KEYMGMT_##id, AP_SLOT, NULL, f##_slots}
#define D(id) {OSSL_FUNC_KEYMGMT_##id, AP_DIRECT, NULL, NULL}
static const ap_fn_desc fns[] = {
    S(NEW, km_new),
    S(GEN_INIT, km_gen_init),
    W(GEN_SET_TEMPLATE, km_gen_set_template),
    W(GEN_SET_PARAMS, km_gen_set_params),
    S(GEN_SETTABLE_PARAMS, km_gen_settable_params),
    W(GEN_GET_PARAMS, km_gen_get_params),
    S(GEN_GETTABLE_PARAMS, km_gen_gettable_params),
    W(GEN, km_gen),
    W(GEN_CLEANUP, km_gen_cleanup),
    D(LOAD),
    D(FREE),
    D(GET_PARAMS),
    S(GETTABLE_PARAMS, km_gettable_params),
    D(SET_PARAMS),
    S(SETTABLE_PARAMS, km_settable_params),
    D(QUERY_OPERATION_NAME),
    D(HAS),
    D(VALIDATE),
    D(MATCH),
    D(IMPORT),
    D(IMPORT_TYPES),
    D(EXPORT),
    D(EXPORT_TYPES),
    S(IMPORT_TYPES_EX, km_import_types_ex),
    S(EXPORT_TYPES_EX, km_export_types_ex),
    D(DUP),
    {0, AP_WRAP, NULL, NULL},
};

const ap_op_desc ap_keymgmt_desc = {OSSL_OP_KEYMGMT, "keymgmt", names, fns};
