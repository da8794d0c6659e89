/*
 * provider/provider.c — the asyncpool provider's entry point: configuration, the private
 * backend library context, the algorithm tables we build from the backend's, counters,
 * and the helpers every operation file uses.
 */
#define _GNU_SOURCE
#include "ap.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/params.h>
#include <openssl/proverr.h>

#include "async_core/acore.h"
#include "offload/offload.h"

#define AP_DEFAULT_BACKEND "default"
#define AP_DEFAULT_CAPACITY 1024u
/*
 * Cipher calls with less input than this run inline even inside a job. Measured on the
 * 2-core reference machine (openssl speed -elapsed -async_jobs 32 -evp aes-128-gcm,
 * alternating inline_threshold = 0 and = 1 GiB, 3 rounds): inline won at every size up
 * to 16 KiB (16 KiB: 2.6-3.9 GB/s inline, 1.9-3.0 GB/s offloaded); offload won at
 * 32 KiB in 3/3 rounds and at 64 KiB in 3/3. A TLS record (at most 16 KiB plus
 * overhead) therefore stays inline by default. README.md has the table.
 */
#define AP_DEFAULT_INLINE_THRESHOLD 32768u

static const char *const kind_names[AP_NKINDS] = {
    "sign", "verify", "asym_cipher", "derive", "keygen", "cipher",
};
static const char *const cnt_names[AP_NCNT] = {"offloaded", "inline", "eagain", "errors"};

/* ---- errors ------------------------------------------------------------------------ */

/*
 * Our errors are raised as ERR_LIB_PROV with libcrypto's public reason codes. Our own
 * reason strings (get_reason_strings) would be loaded by libcrypto only after init
 * succeeds, and almost all our errors happen when init fails (a bad configuration): they
 * would print as "lib(129)::reason(1)".
 */
void ap_raise(const char *file, int line, const char *func, int reason, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    ERR_new();
    ERR_set_debug(file, line, func);
    ERR_vset_error(ERR_LIB_PROV, reason, fmt, ap);
    va_end(ap);
}

/* ---- helpers for the operation files ---------------------------------------------- */

int ap_run(const ap_alg *a, enum ap_kind kind, int heavy, int (*fn)(void *), void *arg)
{
    ap_prov *p = a->prov;
    acore_trace t = {0, 0};
    int r;

    r = heavy ? acore_call(fn, arg, p->acore_flags, &t) : fn(arg);
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

/*
 * A property query as the backend must see it. The caller's query was written for the
 * caller's libctx; the backend uses it for its own fetches (a signature's digest) in our
 * private libctx, where there is no provider named asyncpool: "provider=asyncpool" would
 * make every such fetch fail. Clauses about "provider" are dropped, the rest (fips=yes...)
 * kept. *out gets NULL for an empty result, else a string the caller frees. Returns 0
 * only when out of memory.
 */
int ap_backend_propq(const char *propq, char **out_)
{
    char *out, *copy, *item, *save = NULL;

    *out_ = NULL;
    if (propq == NULL || *propq == '\0')
        return 1;
    if (strstr(propq, "provider") == NULL)
        return (*out_ = OPENSSL_strdup(propq)) != NULL;
    out = OPENSSL_zalloc(strlen(propq) + 1);
    copy = OPENSSL_strdup(propq);
    if (out == NULL || copy == NULL) {
        OPENSSL_free(copy);
        OPENSSL_free(out);
        return 0;
    }
    for (item = strtok_r(copy, ",", &save); item != NULL; item = strtok_r(NULL, ",", &save)) {
        if (strstr(item, "provider") != NULL)
            continue;
        if (*out != '\0')
            strcat(out, ",");
        strcat(out, item);
    }
    OPENSSL_free(copy);
    if (*out == '\0')
        OPENSSL_free(out);
    else
        *out_ = out;
    return 1;
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

/* ---- algorithm tables ------------------------------------------------------------- */

/* 1 if name is one of the colon-separated names in list (case-insensitive). */
static int names_contain(const char *list, const char *name)
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

static void free_algs(ap_prov *p, enum ap_op op)
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
static int build_op(ap_prov *p, enum ap_op op, const ap_op_desc *d)
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
            if (names_contain(ba->algorithm_names, *name))
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

/* ---- provider functions ------------------------------------------------------------ */

static OSSL_FUNC_provider_teardown_fn ap_teardown;
static OSSL_FUNC_provider_gettable_params_fn ap_gettable_params;
static OSSL_FUNC_provider_get_params_fn ap_get_params;
static OSSL_FUNC_provider_query_operation_fn ap_query_operation;
static OSSL_FUNC_provider_get_capabilities_fn ap_get_capabilities;

static const OSSL_ALGORITHM *ap_query_operation(void *provctx, int op_id, int *no_cache)
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
        if (names_contain(p->algs[AP_OP_KEYMGMT][i].algorithm_names, name))
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

static int ap_get_capabilities(void *provctx, const char *capability, OSSL_CALLBACK *cb,
                               void *arg)
{
    ap_prov *p = provctx;
    struct cap_filter f = {p, cb, arg};

    if (strcasecmp(capability, "TLS-GROUP") != 0)
        return 0;
    return OSSL_PROVIDER_get_capabilities(p->bprov, capability, cap_group_filter, &f);
}

/* Parameter names: "asyncpool.<kind>.<counter>" and "asyncpool.pool.<field>". */
#define AP_CNT_PARAMS(k)                                                           \
    OSSL_PARAM_DEFN("asyncpool." k ".offloaded", OSSL_PARAM_UNSIGNED_INTEGER, NULL, 0), \
    OSSL_PARAM_DEFN("asyncpool." k ".inline", OSSL_PARAM_UNSIGNED_INTEGER, NULL, 0),    \
    OSSL_PARAM_DEFN("asyncpool." k ".eagain", OSSL_PARAM_UNSIGNED_INTEGER, NULL, 0),    \
    OSSL_PARAM_DEFN("asyncpool." k ".errors", OSSL_PARAM_UNSIGNED_INTEGER, NULL, 0)
#define AP_POOL_PARAM(f) OSSL_PARAM_DEFN("asyncpool.pool." f, OSSL_PARAM_UNSIGNED_INTEGER, NULL, 0)

static const OSSL_PARAM gettable[] = {
    OSSL_PARAM_DEFN(OSSL_PROV_PARAM_NAME, OSSL_PARAM_UTF8_PTR, NULL, 0),
    OSSL_PARAM_DEFN(OSSL_PROV_PARAM_VERSION, OSSL_PARAM_UTF8_PTR, NULL, 0),
    OSSL_PARAM_DEFN(OSSL_PROV_PARAM_BUILDINFO, OSSL_PARAM_UTF8_PTR, NULL, 0),
    OSSL_PARAM_DEFN(OSSL_PROV_PARAM_STATUS, OSSL_PARAM_INTEGER, NULL, 0),
    AP_CNT_PARAMS("sign"), AP_CNT_PARAMS("verify"), AP_CNT_PARAMS("asym_cipher"),
    AP_CNT_PARAMS("derive"), AP_CNT_PARAMS("keygen"), AP_CNT_PARAMS("cipher"),
    AP_POOL_PARAM("workers"), AP_POOL_PARAM("depth"), AP_POOL_PARAM("submitted"),
    AP_POOL_PARAM("completed"), AP_POOL_PARAM("rejected_full"), AP_POOL_PARAM("high_water"),
    OSSL_PARAM_DEFN("asyncpool.stats", OSSL_PARAM_UTF8_STRING, NULL, 0),
    OSSL_PARAM_END,
};

static const OSSL_PARAM *ap_gettable_params(void *provctx)
{
    (void)provctx;
    return gettable;
}

/* The one-line summary printed at unload with ASYNCPOOL_STATS=1. */
static void stats_line(ap_prov *p, char *buf, size_t len)
{
    offload_stats st;
    size_t off = 0;
    int k;

    offload_get_stats(&st);
    off += snprintf(buf + off, len - off, "asyncpool:");
    for (k = 0; k < AP_NKINDS && off < len; k++)
        off += snprintf(buf + off, len - off, " %s offloaded=%llu inline=%llu eagain=%llu errors=%llu;",
                        kind_names[k],
                        (unsigned long long)atomic_load(&p->cnt[k][AP_C_OFFLOADED]),
                        (unsigned long long)atomic_load(&p->cnt[k][AP_C_INLINE]),
                        (unsigned long long)atomic_load(&p->cnt[k][AP_C_EAGAIN]),
                        (unsigned long long)atomic_load(&p->cnt[k][AP_C_ERRORS]));
    if (off < len)
        snprintf(buf + off, len - off,
                 " pool workers=%u submitted=%llu completed=%llu rejected_full=%llu high_water=%llu",
                 st.workers, (unsigned long long)st.submitted, (unsigned long long)st.completed,
                 (unsigned long long)st.rejected_full, (unsigned long long)st.high_water);
}

static int ap_get_params(void *provctx, OSSL_PARAM params[])
{
    ap_prov *p = provctx;
    OSSL_PARAM *q;
    offload_stats st;
    char name[64];
    int k, c;

    if ((q = OSSL_PARAM_locate(params, OSSL_PROV_PARAM_NAME)) != NULL
        && !OSSL_PARAM_set_utf8_ptr(q, "asyncpool"))
        return 0;
    if ((q = OSSL_PARAM_locate(params, OSSL_PROV_PARAM_VERSION)) != NULL
        && !OSSL_PARAM_set_utf8_ptr(q, ASYNCPOOL_VERSION))
        return 0;
    if ((q = OSSL_PARAM_locate(params, OSSL_PROV_PARAM_BUILDINFO)) != NULL
        && !OSSL_PARAM_set_utf8_ptr(q, "asyncpool " ASYNCPOOL_VERSION ", built with " OPENSSL_VERSION_TEXT))
        return 0;
    if ((q = OSSL_PARAM_locate(params, OSSL_PROV_PARAM_STATUS)) != NULL
        && !OSSL_PARAM_set_int(q, 1))
        return 0;
    for (k = 0; k < AP_NKINDS; k++)
        for (c = 0; c < AP_NCNT; c++) {
            snprintf(name, sizeof(name), "asyncpool.%s.%s", kind_names[k], cnt_names[c]);
            if ((q = OSSL_PARAM_locate(params, name)) != NULL
                && !OSSL_PARAM_set_uint64(q, atomic_load(&p->cnt[k][c])))
                return 0;
        }
    offload_get_stats(&st);
    {
        const struct { const char *name; uint64_t v; } pool[] = {
            {"asyncpool.pool.workers", st.workers},
            {"asyncpool.pool.depth", st.depth},
            {"asyncpool.pool.submitted", st.submitted},
            {"asyncpool.pool.completed", st.completed},
            {"asyncpool.pool.rejected_full", st.rejected_full},
            {"asyncpool.pool.high_water", st.high_water},
        };
        size_t i;

        for (i = 0; i < sizeof(pool) / sizeof(pool[0]); i++)
            if ((q = OSSL_PARAM_locate(params, pool[i].name)) != NULL
                && !OSSL_PARAM_set_uint64(q, pool[i].v))
                return 0;
    }
    if ((q = OSSL_PARAM_locate(params, "asyncpool.stats")) != NULL) {
        char line[1024];

        stats_line(p, line, sizeof(line));
        if (!OSSL_PARAM_set_utf8_string(q, line))
            return 0;
    }
    return 1;
}

/*
 * ASYNCPOOL_STATS=1: print each instance's line once, at unload, or at process exit for
 * instances still loaded then (openssl speed exits without freeing what it fetched, so
 * its providers are never torn down). Live instances are kept on a list for that.
 */
static pthread_mutex_t live_lock = PTHREAD_MUTEX_INITIALIZER;
static ap_prov *live_first; /* guarded by live_lock, linked through next_live */
static pthread_once_t atexit_once = PTHREAD_ONCE_INIT;

static int stats_wanted(void)
{
    const char *env = getenv("ASYNCPOOL_STATS");

    return env != NULL && *env != '\0' && strcmp(env, "0") != 0;
}

/* Under live_lock. */
static void print_stats_locked(ap_prov *p)
{
    char line[1024];

    if (p->stats_printed || !stats_wanted())
        return;
    p->stats_printed = 1;
    stats_line(p, line, sizeof(line));
    fprintf(stderr, "%s\n", line);
}

static void print_stats_at_exit(void)
{
    ap_prov *p;

    pthread_mutex_lock(&live_lock);
    for (p = live_first; p != NULL; p = p->next_live)
        print_stats_locked(p);
    pthread_mutex_unlock(&live_lock);
}

static void register_atexit(void)
{
    atexit(print_stats_at_exit);
}

static void live_add(ap_prov *p)
{
    pthread_mutex_lock(&live_lock);
    p->next_live = live_first;
    live_first = p;
    pthread_mutex_unlock(&live_lock);
    if (stats_wanted())
        pthread_once(&atexit_once, register_atexit);
}

static void live_remove(ap_prov *p)
{
    ap_prov **pp;

    pthread_mutex_lock(&live_lock);
    print_stats_locked(p);
    for (pp = &live_first; *pp != NULL; pp = &(*pp)->next_live)
        if (*pp == p) {
            *pp = p->next_live;
            break;
        }
    pthread_mutex_unlock(&live_lock);
}

static void worker_thread_stop(void *libctx)
{
    OPENSSL_thread_stop_ex(libctx);
}

static void worker_thread_exit(void)
{
    OPENSSL_thread_stop();
}

static void prov_free(ap_prov *p)
{
    int op;

    for (op = 0; op < AP_NOPS; op++)
        free_algs(p, op);
    if (p->bprov != NULL)
        OSSL_PROVIDER_unload(p->bprov);
    OSSL_LIB_CTX_free(p->blib);
    OPENSSL_free(p->backend_name);
    OPENSSL_free(p);
}

static void ap_teardown(void *provctx)
{
    ap_prov *p = provctx;

    live_remove(p);
    /* The workers hold per-thread state (DRBGs, ...) of our private libctx: free it on
     * each of them before the libctx goes. No request of ours is in flight: libcrypto
     * tears a provider down only when nothing refers to it any more. */
    offload_on_each_worker(worker_thread_stop, p->blib);
    OPENSSL_thread_stop_ex(p->blib);
    offload_stop();
    prov_free(p);
}

/* ---- configuration ----------------------------------------------------------------- */

static int parse_uint(const char *key, const char *v, unsigned long lo,
                      unsigned long hi, unsigned long *out)
{
    char *end;
    unsigned long n;

    if (v == NULL)
        return 1;
    errno = 0;
    n = strtoul(v, &end, 10);
    if (*v == '\0' || *v == '-' || *end != '\0' || errno != 0 || n < lo || n > hi) {
        AP_RAISE(PROV_R_INVALID_CONFIG_DATA, "%s = \"%s\": expected an integer from %lu to %lu",
                 key, v, lo, hi);
        return 0;
    }
    *out = n;
    return 1;
}

static int read_config(ap_prov *p, OSSL_FUNC_core_get_params_fn *get_params)
{
    const char *workers = NULL, *capacity = NULL, *threshold = NULL, *outside = NULL,
               *backend = NULL;
    OSSL_PARAM req[] = {
        OSSL_PARAM_utf8_ptr("workers", (char **)&workers, 0),
        OSSL_PARAM_utf8_ptr("queue_capacity", (char **)&capacity, 0),
        OSSL_PARAM_utf8_ptr("inline_threshold", (char **)&threshold, 0),
        OSSL_PARAM_utf8_ptr("outside_job", (char **)&outside, 0),
        OSSL_PARAM_utf8_ptr("backend", (char **)&backend, 0),
        OSSL_PARAM_END,
    };
    unsigned long w = 0, c = AP_DEFAULT_CAPACITY, t = AP_DEFAULT_INLINE_THRESHOLD;

    if (get_params != NULL && !get_params(p->handle, req)) {
        AP_RAISE(PROV_R_INVALID_CONFIG_DATA, "cannot read the provider's configuration");
        return 0;
    }
    if (!parse_uint("workers", workers, 0, OFFLOAD_MAX_WORKERS, &w)
        || !parse_uint("queue_capacity", capacity, 1, OFFLOAD_MAX_CAPACITY, &c)
        || !parse_uint("inline_threshold", threshold, 0, 1ul << 30, &t))
        return 0;
    if (outside == NULL || strcmp(outside, "inline") == 0) {
        p->acore_flags = 0;
    } else if (strcmp(outside, "block") == 0) {
        p->acore_flags = ACORE_BLOCK;
    } else {
        AP_RAISE(PROV_R_INVALID_CONFIG_DATA, "outside_job = \"%s\": expected inline or block", outside);
        return 0;
    }
    if (backend != NULL && (*backend == '\0' || strcmp(backend, "asyncpool") == 0)) {
        AP_RAISE(PROV_R_INVALID_CONFIG_DATA, "backend = \"%s\": name another provider", backend);
        return 0;
    }
    p->workers = (unsigned)w;
    p->capacity = (unsigned)c;
    p->inline_threshold = t;
    p->backend_name = OPENSSL_strdup(backend != NULL ? backend : AP_DEFAULT_BACKEND);
    return p->backend_name != NULL;
}

static const OSSL_DISPATCH ap_dispatch[] = {
    {OSSL_FUNC_PROVIDER_TEARDOWN, (void (*)(void))ap_teardown},
    {OSSL_FUNC_PROVIDER_GETTABLE_PARAMS, (void (*)(void))ap_gettable_params},
    {OSSL_FUNC_PROVIDER_GET_PARAMS, (void (*)(void))ap_get_params},
    {OSSL_FUNC_PROVIDER_QUERY_OPERATION, (void (*)(void))ap_query_operation},
    {OSSL_FUNC_PROVIDER_GET_CAPABILITIES, (void (*)(void))ap_get_capabilities},
    {0, NULL},
};

__attribute__((visibility("default")))
OSSL_provider_init_fn OSSL_provider_init;

int OSSL_provider_init(const OSSL_CORE_HANDLE *handle, const OSSL_DISPATCH *in,
                       const OSSL_DISPATCH **out, void **provctx)
{
    OSSL_FUNC_core_get_params_fn *get_params = NULL;
    offload_config cfg = {0};
    ap_prov *p = OPENSSL_zalloc(sizeof(*p));
    int pool_started = 0;

    if (p == NULL)
        return 0;
    p->handle = handle;
    for (; in->function_id != 0; in++) {
        switch (in->function_id) {
        case OSSL_FUNC_CORE_GET_PARAMS:
            get_params = OSSL_FUNC_core_get_params(in);
            break;
        }
    }
    if (!read_config(p, get_params))
        goto err;

    /* A fresh libctx, not a child one: a child mirrors its parent's providers,
     * asyncpool included, and our fetches would come back to us. */
    p->blib = OSSL_LIB_CTX_new();
    if (p->blib == NULL
        || (p->bprov = OSSL_PROVIDER_load(p->blib, p->backend_name)) == NULL) {
        AP_RAISE(ERR_R_INIT_FAIL, "backend = \"%s\"", p->backend_name);
        goto err;
    }
    p->bprovctx = OSSL_PROVIDER_get0_provider_ctx(p->bprov);

    cfg.workers = p->workers;
    cfg.capacity = p->capacity;
    cfg.thread_exit = worker_thread_exit;
    if (!offload_start(&cfg)) {
        AP_RAISE(ERR_R_INIT_FAIL, "workers = %u, queue_capacity = %u", p->workers,
                 p->capacity);
        goto err;
    }
    pool_started = 1;

    if (!build_op(p, AP_OP_KEYMGMT, &ap_keymgmt_desc)
        || !build_op(p, AP_OP_SIGNATURE, &ap_signature_desc)
        || !build_op(p, AP_OP_ASYM_CIPHER, &ap_asym_cipher_desc)
        || !build_op(p, AP_OP_KEYEXCH, &ap_keyexch_desc)
        || !build_op(p, AP_OP_CIPHER, &ap_cipher_desc)) {
        AP_RAISE(ERR_R_INIT_FAIL, "building the algorithm tables");
        goto err;
    }
    live_add(p);
    *out = ap_dispatch;
    *provctx = p;
    return 1;

err:
    if (pool_started)
        offload_stop();
    prov_free(p);
    return 0;
}
