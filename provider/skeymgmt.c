/*
 * provider/skeymgmt.c — opaque symmetric key management (OpenSSL 3.5+): what the
 * backend has (AES, GENERIC-SECRET in `default`).
 *
 * EVP_CipherInit_SKEY hands our cipher a key that belongs to our skeymgmt: libcrypto
 * imports a key made elsewhere into the cipher provider's skeymgmt of the same name, so
 * without one of ours the opaque-key API fails on our ciphers where `default` succeeds.
 * Like keymgmt, our keys are the backend's own keydata: the functions that take only
 * keydata (free, export, get_key_id) are the backend's; those that take a provctx are
 * per-slot trampolines that pass the backend's. Nothing here is heavy.
 * On 3.0 the backend has no such operation, and this file offers nothing.
 */
#include "ap.h"

#define OP AP_OP_SKEYMGMT

static const char *const names[] = {"AES", "GENERIC-SECRET", NULL};

static void *skm_import(void *provctx, int slot, int selection, const OSSL_PARAM params[])
{
    const ap_alg *a = ap_slot_alg(provctx, OP, slot);

    return AP_FN(a, OSSL_FUNC_SKEYMGMT_IMPORT, ap_skm_import_fn)(a->prov->bprovctx, selection,
                                                               params);
}
#define SKM_IMPORT_FN_(unused, i)                                                  \
    static void *skm_import_##i(void *p, int sel, const OSSL_PARAM params[])       \
    { return skm_import(p, i, sel, params); }
AP_EXPAND_SLOTS(SKM_IMPORT_FN_, ~)
AP_SLOT_TABLE(skm_import)

static void *skm_generate(void *provctx, int slot, const OSSL_PARAM params[])
{
    const ap_alg *a = ap_slot_alg(provctx, OP, slot);

    return AP_FN(a, OSSL_FUNC_SKEYMGMT_GENERATE, ap_skm_generate_fn)(a->prov->bprovctx,
                                                                   params);
}
#define SKM_GENERATE_FN_(unused, i)                                                \
    static void *skm_generate_##i(void *p, const OSSL_PARAM params[])              \
    { return skm_generate(p, i, params); }
AP_EXPAND_SLOTS(SKM_GENERATE_FN_, ~)
AP_SLOT_TABLE(skm_generate)

AP_DEFINE_PROV_PARAMS(skm_imp_settable_params, OP, OSSL_FUNC_SKEYMGMT_IMP_SETTABLE_PARAMS)
AP_DEFINE_PROV_PARAMS(skm_gen_settable_params, OP, OSSL_FUNC_SKEYMGMT_GEN_SETTABLE_PARAMS)

#define S(id, f) {OSSL_FUNC_SKEYMGMT_##id, AP_SLOT, NULL, f##_slots}
#define D(id) {OSSL_FUNC_SKEYMGMT_##id, AP_DIRECT, NULL, NULL}
static const ap_fn_desc fns[] = {
    D(FREE),
    S(IMPORT, skm_import),
    D(EXPORT),
    S(GENERATE, skm_generate),
    D(GET_KEY_ID),
    S(IMP_SETTABLE_PARAMS, skm_imp_settable_params),
    S(GEN_SETTABLE_PARAMS, skm_gen_settable_params),
    {0, AP_WRAP, NULL, NULL},
};

const ap_op_desc ap_skeymgmt_desc = {OSSL_OP_SKEYMGMT, "skeymgmt", names, fns};
