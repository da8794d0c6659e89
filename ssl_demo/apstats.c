#include "apstats.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <openssl/core.h>
#include <openssl/params.h>
#include <openssl/provider.h>

static OSSL_PROVIDER *ap_prov;

/* kem: ML-KEM and the hybrid groups (OpenSSL 3.5+); a build without it leaves the
 * counter unmodified, and it is not printed. */
static const char *const ops[] = { "sign", "verify", "asym_cipher", "derive", "keygen",
                                   "cipher", "kem" };
static const char *const kinds[] = { "offloaded", "inline", "eagain", "errors" };
static const char *const pool[] = { "workers", "depth", "submitted", "completed",
                                    "rejected_full", "high_water" };
/* Device emulation (README "Emulating an accelerator"); 0 when it is off. */
static const char *const emu[] = { "delayed", "ring_refused", "refused", "faults" };
/* offload = auto's decisions (README "Which calls go to the pool"); absent from builds
 * before it, then not printed. */
static const char *const autoc[] = { "cheap_inline", "caller_runs", "load_pct", "heavy_inline",
                                      "probes", "probe_switches", "probe_gain_pct" };

#define N_OPS (sizeof(ops) / sizeof(ops[0]))
#define N_KINDS (sizeof(kinds) / sizeof(kinds[0]))
#define N_POOL (sizeof(pool) / sizeof(pool[0]))
#define N_EMU (sizeof(emu) / sizeof(emu[0]))
#define N_AUTO (sizeof(autoc) / sizeof(autoc[0]))
#define N_COUNTERS (N_OPS * N_KINDS + N_POOL + N_EMU + N_AUTO)

int apstats_open(void)
{
    if (ap_prov != NULL)
        return 1;
    /* Only take a handle on a provider the configuration already activated: loading
     * it here would activate it without the config's default_properties, and its
     * counters would then say nothing about the run. */
    if (!OSSL_PROVIDER_available(NULL, "asyncpool"))
        return 0;
    ap_prov = OSSL_PROVIDER_load(NULL, "asyncpool");
    return ap_prov != NULL;
}

void apstats_close(void)
{
    if (ap_prov != NULL)
        OSSL_PROVIDER_unload(ap_prov);
    ap_prov = NULL;
}

void apstats_format(char *buf, size_t len)
{
    char names[N_COUNTERS][48];
    uint64_t vals[N_COUNTERS];
    OSSL_PARAM params[N_COUNTERS + 1];
    size_t n = 0, off = 0;

    buf[0] = '\0';
    if (ap_prov == NULL) {
        snprintf(buf, len, " provider=absent");
        return;
    }
    for (size_t o = 0; o < N_OPS; o++)
        for (size_t k = 0; k < N_KINDS; k++, n++)
            snprintf(names[n], sizeof(names[n]), "asyncpool.%s.%s", ops[o], kinds[k]);
    for (size_t p = 0; p < N_POOL; p++, n++)
        snprintf(names[n], sizeof(names[n]), "asyncpool.pool.%s", pool[p]);
    for (size_t e = 0; e < N_EMU; e++, n++)
        snprintf(names[n], sizeof(names[n]), "asyncpool.emu.%s", emu[e]);
    for (size_t a = 0; a < N_AUTO; a++, n++)
        snprintf(names[n], sizeof(names[n]), "asyncpool.auto.%s", autoc[a]);
    for (size_t i = 0; i < n; i++) {
        vals[i] = 0;
        params[i] = OSSL_PARAM_construct_uint64(names[i], &vals[i]);
    }
    params[n] = OSSL_PARAM_construct_end();

    off += (size_t)snprintf(buf, len, " provider=asyncpool");
    if (!OSSL_PROVIDER_get_params(ap_prov, params)) {
        snprintf(buf + off, len - off, " counters=unavailable");
        return;
    }
    for (size_t i = 0; i < n && off < len; i++) {
        /* A counter this provider build does not know stays unmodified: skip it
         * rather than print a zero that was never measured. */
        if (!OSSL_PARAM_modified(&params[i]))
            continue;
        off += (size_t)snprintf(buf + off, len - off, " %s=%llu",
                                names[i] + strlen("asyncpool."),
                                (unsigned long long)vals[i]);
    }
}
