/*
 * provider/config.c — the provider's parameters from its config section.
 */
#include "ap.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
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

/*
 * offload = auto (policy.c). A call estimated at 100 µs or more always goes to the
 * pool: 4x the CPU one offload costs on the 2-core reference VM when its cores are
 * idle (13.5 µs on the loop's thread + 12.1 µs on a worker, bench/results/
 * 2026-12-02-vm.md). RSA signatures and decryptions are above it, P-256 / X25519 /
 * Ed25519 calls below. Cheaper calls go to the pool while they add up to half a core
 * or more of demand (then the loop would spend half its time on them).
 */
#define AP_DEFAULT_OFFLOAD_MIN_US 100u
#define AP_DEFAULT_OFFLOAD_LOAD_PCT 50u
/*
 * offload = auto, rule 6 (probe.c): heavy calls are run the other way for half an epoch
 * now and then, and go inline while that gets more of them done. 50 ms: at the RSA-2048
 * rates of a 2-core VM (1,000-2,000 signatures/s) an epoch holds 50-100 calls, enough
 * to compare two epochs, and a clear difference is settled within a second.
 */
#define AP_DEFAULT_OFFLOAD_PROBE_MS 50u

/* "always" or "auto" into *is_auto; 0 with an error raised for anything else. */
static int parse_offload(const char *from, const char *v, int *is_auto)
{
    if (strcmp(v, "auto") == 0)
        *is_auto = 1;
    else if (strcmp(v, "always") == 0)
        *is_auto = 0;
    else {
        AP_RAISE(PROV_R_INVALID_CONFIG_DATA, "%s = \"%s\": expected always or auto", from, v);
        return 0;
    }
    return 1;
}

/*
 * A number as the README documents it: plain decimal digits, nothing else. strtoul
 * alone would also take a sign and leading white space ("+4", " 4", even "-1" wrapped
 * to a huge value), which a config value should not silently mean.
 */
static int parse_uint(const char *key, const char *v, unsigned long lo,
                      unsigned long hi, unsigned long *out)
{
    const char *d;
    unsigned long n = 0;
    int ok;

    if (v == NULL)
        return 1;
    for (d = v; *d >= '0' && *d <= '9'; d++)
        ;
    ok = d != v && *d == '\0';
    if (ok) {
        errno = 0;
        n = strtoul(v, NULL, 10); /* digits only now: errno is ERANGE or 0 */
        ok = errno == 0 && n >= lo && n <= hi;
    }
    if (!ok) {
        AP_RAISE(PROV_R_INVALID_CONFIG_DATA, "%s = \"%s\": expected an integer from %lu to %lu",
                 key, v, lo, hi);
        return 0;
    }
    *out = n;
    return 1;
}

int ap_read_config(ap_prov *p, OSSL_FUNC_core_get_params_fn *get_params)
{
    const char *workers = NULL, *capacity = NULL, *threshold = NULL, *outside = NULL,
               *backend = NULL, *select_safe = NULL, *offload = NULL, *min_us = NULL,
               *load_pct = NULL, *probe_ms = NULL, *spin = NULL, *env;
    OSSL_PARAM req[] = {
        OSSL_PARAM_utf8_ptr("workers", (char **)&workers, 0),
        OSSL_PARAM_utf8_ptr("queue_capacity", (char **)&capacity, 0),
        OSSL_PARAM_utf8_ptr("inline_threshold", (char **)&threshold, 0),
        OSSL_PARAM_utf8_ptr("outside_job", (char **)&outside, 0),
        OSSL_PARAM_utf8_ptr("backend", (char **)&backend, 0),
        OSSL_PARAM_utf8_ptr("select_safe_fds", (char **)&select_safe, 0),
        OSSL_PARAM_utf8_ptr("offload", (char **)&offload, 0),
        OSSL_PARAM_utf8_ptr("offload_min_us", (char **)&min_us, 0),
        OSSL_PARAM_utf8_ptr("offload_load_pct", (char **)&load_pct, 0),
        OSSL_PARAM_utf8_ptr("offload_probe_ms", (char **)&probe_ms, 0),
        OSSL_PARAM_utf8_ptr("worker_spin_us", (char **)&spin, 0),
        OSSL_PARAM_END,
    };
    unsigned long w = 0, c = AP_DEFAULT_CAPACITY, t = AP_DEFAULT_INLINE_THRESHOLD,
                  mu = AP_DEFAULT_OFFLOAD_MIN_US, lp = AP_DEFAULT_OFFLOAD_LOAD_PCT,
                  pm = AP_DEFAULT_OFFLOAD_PROBE_MS, sp = 0;
    int is_auto = 1;

    if (get_params != NULL && !get_params(p->handle, req)) {
        AP_RAISE(PROV_R_INVALID_CONFIG_DATA, "cannot read the provider's configuration");
        return 0;
    }
    if (!parse_uint("workers", workers, 0, OFFLOAD_MAX_WORKERS, &w)
        || !parse_uint("queue_capacity", capacity, 1, OFFLOAD_MAX_CAPACITY, &c)
        || !parse_uint("inline_threshold", threshold, 0, 1ul << 30, &t)
        || !parse_uint("offload_min_us", min_us, 0, 10000000, &mu)
        || !parse_uint("offload_load_pct", load_pct, 0, 100000, &lp)
        || !parse_uint("offload_probe_ms", probe_ms, 0, 10000, &pm)
        || !parse_uint("worker_spin_us", spin, 0, OFFLOAD_MAX_SPIN_US, &sp))
        return 0;
    if ((env = getenv("ASYNCPOOL_SPIN_US")) != NULL && *env != '\0'
        && !parse_uint("ASYNCPOOL_SPIN_US", env, 0, OFFLOAD_MAX_SPIN_US, &sp))
        return 0;
    if (offload != NULL && !parse_offload("offload", offload, &is_auto))
        return 0;
    /* The environment wins over the file, as ASYNCPOOL_EMULATE does: one run of an
     * application (openssl speed, a test) can ask for always without a config of its
     * own. */
    if ((env = getenv("ASYNCPOOL_OFFLOAD")) != NULL && *env != '\0'
        && !parse_offload("ASYNCPOOL_OFFLOAD", env, &is_auto))
        return 0;
    if (outside == NULL || strcmp(outside, "inline") == 0) {
        p->acore_flags = 0;
    } else if (strcmp(outside, "block") == 0) {
        p->acore_flags = ACORE_BLOCK;
    } else {
        AP_RAISE(PROV_R_INVALID_CONFIG_DATA, "outside_job = \"%s\": expected inline or block", outside);
        return 0;
    }
    /* Applications that wait with select() (openssl speed -async_jobs) abort on an fd
     * of FD_SETSIZE or more; with this set, such a job runs its calls inline instead. */
    if (select_safe != NULL && strcmp(select_safe, "yes") == 0) {
        p->acore_flags |= ACORE_SELECT_FDS;
    } else if (select_safe != NULL && strcmp(select_safe, "no") != 0) {
        AP_RAISE(PROV_R_INVALID_CONFIG_DATA, "select_safe_fds = \"%s\": expected yes or no",
                 select_safe);
        return 0;
    }
    if (backend != NULL && (*backend == '\0' || strcmp(backend, "asyncpool") == 0)) {
        AP_RAISE(PROV_R_INVALID_CONFIG_DATA, "backend = \"%s\": name another provider", backend);
        return 0;
    }
    p->workers = (unsigned)w;
    p->capacity = (unsigned)c;
    p->spin_us = (unsigned)sp;
    p->inline_threshold = t;
    p->offload_auto = is_auto;
    p->offload_min_ns = (uint64_t)mu * 1000u;
    p->offload_load_pm = (unsigned)lp * 10u;
    ap_probe_init(&p->policy.probe, (uint64_t)pm * 1000000u);
    p->backend_name = OPENSSL_strdup(backend != NULL ? backend : AP_DEFAULT_BACKEND);
    return p->backend_name != NULL && ap_read_emulation(p, get_params);
}
