/*
 * provider/capabilities.c — the TLS-GROUP capabilities we forward from the backend.
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
 */
struct cap_filter {
    ap_prov *p;
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

static int cap_group_filter(const OSSL_PARAM params[], void *arg)
{
    struct cap_filter *f = arg;
    const OSSL_PARAM *alg = OSSL_PARAM_locate_const(params, OSSL_CAPABILITY_TLS_GROUP_ALG);
    const char *name = NULL;

    if (alg == NULL || !OSSL_PARAM_get_utf8_string_ptr(alg, &name) || !have_keymgmt(f->p, name))
        return 1; /* not ours: skip it, go on with the next */
    return f->cb(params, f->arg);
}

int ap_get_capabilities(void *provctx, const char *capability, OSSL_CALLBACK *cb,
                               void *arg)
{
    ap_prov *p = provctx;
    struct cap_filter f = {p, cb, arg};

    if (strcasecmp(capability, "TLS-GROUP") != 0)
        return 0;
    return OSSL_PROVIDER_get_capabilities(p->bprov, capability, cap_group_filter, &f);
}
