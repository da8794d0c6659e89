/*
 * provider/stats.c — the provider's counters: gettable/get_params and the one-line
 * summary (asyncpool.stats, and what ASYNCPOOL_STATS=1 prints).
 */
#include "ap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/params.h>

#include "offload/offload.h"

static const char *const kind_names[AP_NKINDS] = {
    "sign", "verify", "asym_cipher", "derive", "keygen", "cipher", "kem",
};
static const char *const cnt_names[AP_NCNT] = {"offloaded", "inline", "eagain", "errors"};

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
    AP_CNT_PARAMS("kem"),
    AP_POOL_PARAM("workers"), AP_POOL_PARAM("depth"), AP_POOL_PARAM("submitted"),
    AP_POOL_PARAM("completed"), AP_POOL_PARAM("rejected_full"), AP_POOL_PARAM("high_water"),
    AP_POOL_PARAM("spared"), AP_POOL_PARAM("spin_claims"),
    OSSL_PARAM_DEFN("asyncpool.dropped", OSSL_PARAM_UNSIGNED_INTEGER, NULL, 0),
    OSSL_PARAM_DEFN("asyncpool.auto.cheap_inline", OSSL_PARAM_UNSIGNED_INTEGER, NULL, 0),
    OSSL_PARAM_DEFN("asyncpool.auto.caller_runs", OSSL_PARAM_UNSIGNED_INTEGER, NULL, 0),
    OSSL_PARAM_DEFN("asyncpool.auto.load_pct", OSSL_PARAM_UNSIGNED_INTEGER, NULL, 0),
    OSSL_PARAM_DEFN("asyncpool.auto.heavy_inline", OSSL_PARAM_UNSIGNED_INTEGER, NULL, 0),
    OSSL_PARAM_DEFN("asyncpool.auto.probes", OSSL_PARAM_UNSIGNED_INTEGER, NULL, 0),
    OSSL_PARAM_DEFN("asyncpool.auto.probe_switches", OSSL_PARAM_UNSIGNED_INTEGER, NULL, 0),
    OSSL_PARAM_DEFN("asyncpool.auto.probe_gain_pct", OSSL_PARAM_UNSIGNED_INTEGER, NULL, 0),
    OSSL_PARAM_DEFN("asyncpool.emu.delayed", OSSL_PARAM_UNSIGNED_INTEGER, NULL, 0),
    OSSL_PARAM_DEFN("asyncpool.emu.ring_refused", OSSL_PARAM_UNSIGNED_INTEGER, NULL, 0),
    OSSL_PARAM_DEFN("asyncpool.emu.refused", OSSL_PARAM_UNSIGNED_INTEGER, NULL, 0),
    OSSL_PARAM_DEFN("asyncpool.emu.faults", OSSL_PARAM_UNSIGNED_INTEGER, NULL, 0),
    OSSL_PARAM_DEFN("asyncpool.stats", OSSL_PARAM_UTF8_STRING, NULL, 0),
    OSSL_PARAM_END,
};

const OSSL_PARAM *ap_gettable_params(void *provctx)
{
    (void)provctx;
    return gettable;
}

/* The one-line summary printed at unload with ASYNCPOOL_STATS=1. The emulation's
 * counters ("; emu delayed=... ring_refused=... refused=... faults=...") are added only
 * while emulation is on; with offload = auto, "; auto cheap_inline=... caller_runs=..."
 * says how many heavy calls it kept inline, and why (policy.c). */
static void stats_line(ap_prov *p, char *buf, size_t len)
{
    offload_stats st;
    offload_emu_stats es;
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
        off += snprintf(buf + off, len - off, " dropped=%u;", p->dropped);
    if (off < len)
        off += snprintf(buf + off, len - off,
                 " pool workers=%u submitted=%llu completed=%llu rejected_full=%llu high_water=%llu",
                 st.workers, (unsigned long long)st.submitted, (unsigned long long)st.completed,
                 (unsigned long long)st.rejected_full, (unsigned long long)st.high_water);
    if (p->spin_us > 0 && off < len)
        off += snprintf(buf + off, len - off, " spin_claims=%llu",
                        (unsigned long long)st.spin_claims);
    if (p->offload_auto && off < len)
        off += snprintf(buf + off, len - off,
                        "; auto cheap_inline=%llu caller_runs=%llu spared=%llu heavy_inline=%llu"
                        " probes=%llu probe_switches=%llu probe_gain_pct=%u",
                        (unsigned long long)atomic_load(&p->policy.cheap_inline),
                        (unsigned long long)atomic_load(&p->policy.caller_runs),
                        (unsigned long long)st.spared,
                        (unsigned long long)atomic_load(&p->policy.probe.inlined),
                        (unsigned long long)atomic_load(&p->policy.probe.probes),
                        (unsigned long long)atomic_load(&p->policy.probe.switches),
                        atomic_load(&p->policy.probe.gain_pm) / 10u);
    offload_emu_get_stats(&es);
    if (es.on && off < len)
        snprintf(buf + off, len - off,
                 "; emu delayed=%llu ring_refused=%llu refused=%llu faults=%llu",
                 (unsigned long long)es.delayed, (unsigned long long)es.ring_refused,
                 (unsigned long long)es.refused, (unsigned long long)es.faults);
}

int ap_get_params(void *provctx, OSSL_PARAM params[])
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
            {"asyncpool.pool.spared", st.spared},
            {"asyncpool.pool.spin_claims", st.spin_claims},
        };
        size_t i;

        for (i = 0; i < sizeof(pool) / sizeof(pool[0]); i++)
            if ((q = OSSL_PARAM_locate(params, pool[i].name)) != NULL
                && !OSSL_PARAM_set_uint64(q, pool[i].v))
                return 0;
    }
    if ((q = OSSL_PARAM_locate(params, "asyncpool.dropped")) != NULL
        && !OSSL_PARAM_set_uint64(q, p->dropped))
        return 0;
    {
        const struct { const char *name; uint64_t v; } pol[] = {
            {"asyncpool.auto.cheap_inline", atomic_load(&p->policy.cheap_inline)},
            {"asyncpool.auto.caller_runs", atomic_load(&p->policy.caller_runs)},
            {"asyncpool.auto.load_pct", atomic_load(&p->policy.load_pm) / 10u},
            {"asyncpool.auto.heavy_inline", atomic_load(&p->policy.probe.inlined)},
            {"asyncpool.auto.probes", atomic_load(&p->policy.probe.probes)},
            {"asyncpool.auto.probe_switches", atomic_load(&p->policy.probe.switches)},
            {"asyncpool.auto.probe_gain_pct", atomic_load(&p->policy.probe.gain_pm) / 10u},
        };
        size_t i;

        for (i = 0; i < sizeof(pol) / sizeof(pol[0]); i++)
            if ((q = OSSL_PARAM_locate(params, pol[i].name)) != NULL
                && !OSSL_PARAM_set_uint64(q, pol[i].v))
                return 0;
    }
    {
        offload_emu_stats es;
        size_t i;

        offload_emu_get_stats(&es);
        const struct { const char *name; uint64_t v; } emu[] = {
            {"asyncpool.emu.delayed", es.delayed},
            {"asyncpool.emu.ring_refused", es.ring_refused},
            {"asyncpool.emu.refused", es.refused},
            {"asyncpool.emu.faults", es.faults},
        };

        for (i = 0; i < sizeof(emu) / sizeof(emu[0]); i++)
            if ((q = OSSL_PARAM_locate(params, emu[i].name)) != NULL
                && !OSSL_PARAM_set_uint64(q, emu[i].v))
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

int ap_stats_wanted(void)
{
    const char *env = getenv("ASYNCPOOL_STATS");

    return env != NULL && *env != '\0' && strcmp(env, "0") != 0;
}

void ap_stats_print(ap_prov *p)
{
    char line[1024];

    stats_line(p, line, sizeof(line));
    fprintf(stderr, "%s\n", line);
}
