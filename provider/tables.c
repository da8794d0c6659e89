/*
 * provider/tables.c — the algorithm tables we build from the backend's (one dispatch
 * table per algorithm, from its operation's description) and query_operation.
 */
#include "ap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/opensslv.h>

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

/* 1 if one of the backend algorithm's names matches our entry: a name, or a prefix
 * ending in '*'. */
static int names_match(const char *list, const char *want)
{
    size_t n = strlen(want);

    if (n == 0 || want[n - 1] != '*')
        return ap_names_contain(list, want);
    while (list != NULL && *list != '\0') {
        if (strncasecmp(list, want, n - 1) == 0)
            return 1;
        list = strchr(list, ':');
        list = list != NULL ? list + 1 : NULL;
    }
    return 0;
}

/* 1 if d says how to forward function id. */
static int known_fn(const ap_op_desc *d, int id)
{
    const ap_fn_desc *f;

    for (f = d->fns; f->id != 0; f++)
        if (f->id == id)
            return 1;
    return 0;
}

/*
 * The first function of the backend's implementation that we cannot forward (an id
 * this build does not know, from a newer OpenSSL), or 0. Such an algorithm is not
 * offered at all (DESIGN.md decision 11): offering it without that function would make
 * libcrypto fail where `default` succeeds; not offering it makes libcrypto take
 * `default`'s.
 */
static int unknown_fn(const ap_op_desc *d, const OSSL_DISPATCH *impl)
{
    for (; impl->function_id != 0; impl++)
        if (impl->function_id <= 0 || impl->function_id >= AP_MAXFN
            || !known_fn(d, impl->function_id))
            return impl->function_id;
    return 0;
}

static int debug_wanted(void)
{
    const char *env = getenv("ASYNCPOOL_DEBUG");

    return env != NULL && *env != '\0' && strcmp(env, "0") != 0;
}

/* Take the algorithms named in d from the backend and build ours. A backend algorithm
 * is taken once, by the first entry that matches it. */
int ap_build_op(ap_prov *p, enum ap_op op, const ap_op_desc *d)
{
    int no_cache = 0, n = 0, ok = 0;
    const OSSL_ALGORITHM *b = OSSL_PROVIDER_query_operation(p->bprov, d->op_id, &no_cache);
    const OSSL_ALGORITHM *ba;
    size_t nb = 0;
    unsigned char *taken = NULL;

    p->algs[op] = OPENSSL_zalloc((AP_SLOTS + 1) * sizeof(OSSL_ALGORITHM));
    for (ba = b; ba != NULL && ba->algorithm_names != NULL; ba++)
        nb++;
    taken = OPENSSL_zalloc(nb + 1);
    if (p->algs[op] == NULL || taken == NULL)
        goto end;
    for (const char *const *name = d->names; nb > 0 && *name != NULL; name++) {
        for (size_t i = 0; i < nb; i++) {
            const OSSL_DISPATCH *f;
            int bad;

            ba = &b[i];
            if (taken[i] || !names_match(ba->algorithm_names, *name))
                continue;
            taken[i] = 1;
            if ((bad = unknown_fn(d, ba->implementation)) != 0) {
                p->dropped++;
                if (debug_wanted())
                    fprintf(stderr, "asyncpool: %s %s not offered: backend function id %d "
                            "is unknown to this build (built with " OPENSSL_VERSION_TEXT ")\n",
                            d->name, ba->algorithm_names, bad);
                continue;
            }
            if (n == AP_SLOTS) {
                /* Refuse the load rather than silently leave out an algorithm. */
                AP_RAISE(ERR_R_INIT_FAIL, "the backend has more than %d %s algorithms "
                         "for asyncpool (first left over: %s): raise AP_SLOTS", AP_SLOTS,
                         d->name, ba->algorithm_names);
                goto end;
            }

            ap_alg *a = &p->alg[op][n];
            OSSL_ALGORITHM *out = &p->algs[op][n];

            a->prov = p;
            for (f = ba->implementation; f->function_id != 0; f++)
                a->fn[f->function_id] = f->function;
            a->disp = build_dispatch(a, d->fns, n);
            out->algorithm_names = OPENSSL_strdup(ba->algorithm_names);
            out->property_definition = our_properties(ba->property_definition);
            out->algorithm_description = ba->algorithm_description != NULL
                                             ? OPENSSL_strdup(ba->algorithm_description) : NULL;
            out->implementation = a->disp;
            if (a->disp == NULL || out->algorithm_names == NULL
                || out->property_definition == NULL)
                goto end;
            n++;
        }
    }
    p->nalg[op] = n;
    ok = 1;
end:
    OPENSSL_free(taken);
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
    case OSSL_OP_KEM:
        return p->algs[AP_OP_KEM];
    case OSSL_OP_SKEYMGMT:
        return p->algs[AP_OP_SKEYMGMT];
    }
    return NULL;
}
