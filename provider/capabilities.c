/*
 * provider/capabilities.c — the TLS-GROUP and TLS-SIGALG capabilities we forward from
 * the backend.
 */
#include "ap.h"

#include <strings.h>

#include <openssl/core_names.h>
#include <openssl/params.h>

/*
 * TLS-GROUP capabilities: the backend's, for the groups whose keymgmt we offer. libssl
 * keeps a group only when the provider that declares it is also the provider of the
 * keymgmt it fetches for it (ssl/t1_lib.c add_provider_groups). Our keymgmt is the
 * preferred one, so without these declarations libssl silently drops X25519 and the EC
 * groups, and a TLS 1.3 handshake falls back to an ffdhe group that we do not offload.
 * The hybrid ML-KEM groups of 3.5 (X25519MLKEM768, ...) are kept by the same rule.
 *
 * TLS-SIGALG (3.5: ML-DSA): libssl keeps a provider-declared signature algorithm by the
 * same rule, on the keymgmt it names (ssl/t1_lib.c add_provider_sigalgs): the
 * keytype parameter if present, else the signature name, else the sigalg name. 3.5's
 * default declares only the sigalg name ("ML-DSA-65"), so the rule must be libssl's,
 * all three steps: filtering on the keytype alone dropped every ML-DSA sigalg, and a
 * server could not load an ML-DSA certificate ("unknown certificate type"). On 3.0
 * the backend declares none and this returns nothing.
 */
#ifndef OSSL_CAPABILITY_TLS_SIGALG_KEYTYPE
#define OSSL_CAPABILITY_TLS_SIGALG_KEYTYPE "tls-sigalg-keytype"
#define OSSL_CAPABILITY_TLS_SIGALG_SIG_NAME "tls-sigalg-sig-name"
#define OSSL_CAPABILITY_TLS_SIGALG_NAME "tls-sigalg-name"
#endif
struct cap_filter {
    ap_prov *p;
    const char *const *keys; /* the parameters naming the keymgmt, first present wins */
    OSSL_CALLBACK *cb;
    void *arg;
};

static int have_keymgmt(const ap_prov *p, const char *name)
{
    int i;

    for (i = 0; i < p->nalg[AP_OP_KEYMGMT]; i++)
        if (ap_names_contain(p->algs[AP_OP_KEYMGMT][i].algorithm_names, name))
            return 1;
    return 0;
}

static int cap_filter_cb(const OSSL_PARAM params[], void *arg)
{
    struct cap_filter *f = arg;
    const OSSL_PARAM *alg = NULL;
    const char *name = NULL;
    const char *const *k;

    for (k = f->keys; *k != NULL && alg == NULL; k++)
        alg = OSSL_PARAM_locate_const(params, *k);
    if (alg == NULL || !OSSL_PARAM_get_utf8_string_ptr(alg, &name) || !have_keymgmt(f->p, name))
        return 1; /* not ours: skip it, go on with the next */
    return f->cb(params, f->arg);
}

int ap_get_capabilities(void *provctx, const char *capability, OSSL_CALLBACK *cb,
                               void *arg)
{
    static const char *const group_keys[] = {OSSL_CAPABILITY_TLS_GROUP_ALG, NULL};
    static const char *const sigalg_keys[] = {OSSL_CAPABILITY_TLS_SIGALG_KEYTYPE,
                                              OSSL_CAPABILITY_TLS_SIGALG_SIG_NAME,
                                              OSSL_CAPABILITY_TLS_SIGALG_NAME, NULL};
    ap_prov *p = provctx;
    struct cap_filter f = {p, NULL, cb, arg};

    if (strcasecmp(capability, "TLS-GROUP") == 0)
        f.keys = group_keys;
    else if (strcasecmp(capability, "TLS-SIGALG") == 0)
        f.keys = sigalg_keys;
    else
        return 0;
    return OSSL_PROVIDER_get_capabilities(p->bprov, capability, cap_filter_cb, &f);
}
