/*
 * provider/tables.c — the algorithm tables we build from the backend's (one dispatch
 * table per algorithm, from its operation's description) and query_operation.
 */
#include "ap.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

/* 1 if name is one of the colon-separated names in list (case-insensitive). */
int ap_names_contain(const char *list, const char *name)
{
    size_t n = strlen(name);

    while (list != NULL && *list != '\0') {
        const char *end = strchr(list, ':');
        size_t len = end != NULL ? (size_t)(end - list) : strlen(list);

        if (len == n && strncasecmp(list, name, n) == 0)
            return 1;
        list = end != NULL ? end + 1 : NULL;
    }
    return 0;
}

/* "provider=asyncpool" plus the backend's other properties (e.g. fips=yes): the same
 * clause filter as for queries going the other way. */
static char *our_properties(const char *backend_props)
{
    static const char ours[] = "provider=asyncpool";
    char *rest, *out;
    size_t len;

    if (!ap_backend_propq(backend_props, &rest))
        return NULL;
    len = sizeof(ours) + (rest != NULL ? 1 + strlen(rest) : 0);
    if ((out = OPENSSL_malloc(len)) != NULL)
        snprintf(out, len, "%s%s%s", ours, rest != NULL ? "," : "", rest != NULL ? rest : "");
    OPENSSL_free(rest);
    return out;
}

static OSSL_DISPATCH *build_dispatch(const ap_alg *a, const ap_fn_desc *fns, int slot)
{
    size_t n = 0, i = 0;
    const ap_fn_desc *f;
    OSSL_DISPATCH *d;

    for (f = fns; f->id != 0; f++)
        n++;
    d = OPENSSL_zalloc((n + 1) * sizeof(*d));
    if (d == NULL)
        return NULL;
    for (f = fns; f->id != 0; f++) {
        if (!AP_HAS(a, f->id))
            continue; /* the backend lacks it: so do we, so that behaviour matches */
        d[i].function_id = f->id;
        d[i].function = f->how == AP_WRAP ? f->fn
                        : f->how == AP_SLOT ? f->slots[slot]
                                            : a->fn[f->id];
        i++;
    }
    return d; /* zero-filled tail terminates it */
}

void ap_free_algs(ap_prov *p, enum ap_op op)
{
    int i;

    for (i = 0; p->algs[op] != NULL && p->algs[op][i].algorithm_names != NULL; i++) {
        OPENSSL_free((char *)p->algs[op][i].algorithm_names);
        OPENSSL_free((char *)p->algs[op][i].property_definition);
        OPENSSL_free((char *)p->algs[op][i].algorithm_description);
    }
    OPENSSL_free(p->algs[op]);
    p->algs[op] = NULL;
    for (i = 0; i < AP_SLOTS; i++) {
        OPENSSL_free(p->alg[op][i].disp);
        p->alg[op][i].disp = NULL;
    }
}

/* Take the algorithms named in d from the backend and build ours. */
int ap_build_op(ap_prov *p, enum ap_op op, const ap_op_desc *d)
{
    int no_cache = 0, n = 0, ok = 0;
    const OSSL_ALGORITHM *b = OSSL_PROVIDER_query_operation(p->bprov, d->op_id, &no_cache);
    const char *const *name;
    const OSSL_ALGORITHM *ba;

    p->algs[op] = OPENSSL_zalloc((AP_SLOTS + 1) * sizeof(OSSL_ALGORITHM));
    if (p->algs[op] == NULL)
        goto end;
    for (name = d->names; b != NULL && *name != NULL && n < AP_SLOTS; name++) {
        for (ba = b; ba->algorithm_names != NULL; ba++)
            if (ap_names_contain(ba->algorithm_names, *name))
                break;
        if (ba->algorithm_names == NULL)
            continue; /* this backend does not have it; offer what it has */

        ap_alg *a = &p->alg[op][n];
        OSSL_ALGORITHM *out = &p->algs[op][n];
        const OSSL_DISPATCH *f;

        a->prov = p;
        for (f = ba->implementation; f->function_id != 0; f++)
            if (f->function_id > 0 && f->function_id < AP_MAXFN)
                a->fn[f->function_id] = f->function;
        a->disp = build_dispatch(a, d->fns, n);
        out->algorithm_names = OPENSSL_strdup(ba->algorithm_names);
        out->property_definition = our_properties(ba->property_definition);
        out->algorithm_description = ba->algorithm_description != NULL
                                         ? OPENSSL_strdup(ba->algorithm_description) : NULL;
        out->implementation = a->disp;
        if (a->disp == NULL || out->algorithm_names == NULL || out->property_definition == NULL)
            goto end;
        n++;
    }
    p->nalg[op] = n;
    ok = 1;
end:
    if (b != NULL)
        OSSL_PROVIDER_unquery_operation(p->bprov, d->op_id, b);
    return ok;
}

const OSSL_ALGORITHM *ap_query_operation(void *provctx, int op_id, int *no_cache)
{
    ap_prov *p = provctx;

    *no_cache = 0;
    switch (op_id) {
    case OSSL_OP_KEYMGMT:
        return p->algs[AP_OP_KEYMGMT];
    case OSSL_OP_SIGNATURE:
        return p->algs[AP_OP_SIGNATURE];
    case OSSL_OP_ASYM_CIPHER:
        return p->algs[AP_OP_ASYM_CIPHER];
    case OSSL_OP_KEYEXCH:
        return p->algs[AP_OP_KEYEXCH];
    case OSSL_OP_CIPHER:
        return p->algs[AP_OP_CIPHER];
    }
    return NULL;
}
