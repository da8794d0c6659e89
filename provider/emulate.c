/*
 * provider/emulate.c — the device emulation's settings: the emulate_* keys of the
 * provider's config section and the ASYNCPOOL_EMULATE environment variable, parsed by
 * one strict parser into an offload_emu_config (offload/emu.h does the emulating).
 *
 * Config keys (kind: sign, verify, asym_cipher, derive, keygen, cipher, kem, or all):
 *   emulate_<kind>_latency = <dur> | <dur>+-<dur> | exp:<dur> | <dur>+exp:<dur>
 *   emulate_<kind>_fail    = <rate>        emulate_<kind>_refuse = <rate>
 *   emulate_ring = N                      emulate_seed = N
 * ASYNCPOOL_EMULATE: comma-separated, no spaces:
 *   <kind>=<latency> | ring=N | fail=<kind>:<rate> | refuse=<kind>:<rate> | seed=N
 * <dur>: a decimal number and a unit, ns, us, ms or s ("0.5ms"), at most 60s.
 * <rate>: a decimal number from 0 to 1 ("0.01").
 * Precedence, per setting and kind: the environment's value for the kind, the
 * environment's `all`, the config's value for the kind, the config's `all`.
 */
#include "ap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/params.h>
#include <openssl/proverr.h>

#include "offload/offload.h"

#define NK AP_NKINDS /* index of `all` */

static const char *const kind_names[NK + 1] = {
    "sign", "verify", "asym_cipher", "derive", "keygen", "cipher", "kem", "all",
};

/* The two rates a kind has: its failure rate and its refusal rate. */
enum { R_FAIL, R_REFUSE, NRATE };

/* What one source (the config, or the environment) sets. */
struct emu_src {
    int lat_set[NK + 1], rate_set[NRATE][NK + 1], ring_set, seed_set;
    offload_emu_latency lat[NK + 1];
    double rate[NRATE][NK + 1];
    unsigned long ring;
    uint64_t seed;
};

#define LAT_GRAMMAR "expected <dur>, <dur>+-<dur>, exp:<dur> or <dur>+exp:<dur>, " \
                    "where <dur> is a number with a unit (ns, us, ms, s), at most 60s"
#define RATE_GRAMMAR "expected a rate from 0 to 1, such as 0.01"

/* A decimal number: digits, optionally a point and more digits. *end past it. */
static int parse_decimal(const char *s, const char **end, long double *out)
{
    long double v = 0, scale = 1;
    const char *d = s;

    if (*d < '0' || *d > '9')
        return 0;
    for (; *d >= '0' && *d <= '9'; d++)
        v = v * 10 + (*d - '0');
    if (*d == '.') {
        d++;
        if (*d < '0' || *d > '9')
            return 0;
        for (; *d >= '0' && *d <= '9'; d++) {
            scale /= 10;
            v += (*d - '0') * scale;
        }
    }
    *end = d;
    *out = v;
    return 1;
}

/* <dur> at *s: advances *s past it. */
static int parse_dur(const char **s, uint64_t *ns)
{
    static const struct { const char *u; long double mul; } units[] = {
        {"ns", 1}, {"us", 1e3}, {"ms", 1e6}, {"s", 1e9},
    };
    long double v;
    const char *e;
    size_t i;

    if (!parse_decimal(*s, &e, &v))
        return 0;
    for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        size_t l = strlen(units[i].u);

        if (strncmp(e, units[i].u, l) == 0) {
            v *= units[i].mul;
            if (v > (long double)OFFLOAD_EMU_MAX_NS)
                return 0;
            *ns = (uint64_t)(v + 0.5L);
            *s = e + l;
            return 1;
        }
    }
    return 0;
}

static int parse_latency(const char *s, offload_emu_latency *l)
{
    memset(l, 0, sizeof(*l));
    if (strncmp(s, "exp:", 4) == 0) {
        s += 4;
        if (!parse_dur(&s, &l->exp_mean_ns))
            return 0;
        return *s == '\0';
    }
    if (!parse_dur(&s, &l->fixed_ns))
        return 0;
    if (*s == '\0')
        return 1;
    if (strncmp(s, "+-", 2) == 0) {
        s += 2;
        if (!parse_dur(&s, &l->jitter_ns) || *s != '\0')
            return 0;
        return l->fixed_ns + l->jitter_ns <= OFFLOAD_EMU_MAX_NS;
    }
    if (strncmp(s, "+exp:", 5) == 0) {
        s += 5;
        return parse_dur(&s, &l->exp_mean_ns) && *s == '\0';
    }
    return 0;
}

static int parse_rate(const char *s, double *r)
{
    long double v;
    const char *e;

    if (!parse_decimal(s, &e, &v) || *e != '\0' || v > 1)
        return 0;
    *r = (double)v;
    return 1;
}

static int parse_u64(const char *s, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    const char *d = s;

    if (*d == '\0')
        return 0;
    for (; *d != '\0'; d++) {
        if (*d < '0' || *d > '9' || v > (UINT64_MAX - (uint64_t)(*d - '0')) / 10)
            return 0;
        v = v * 10 + (uint64_t)(*d - '0');
    }
    if (v > max)
        return 0;
    *out = v;
    return 1;
}

static int kind_index(const char *name, size_t len)
{
    int k;

    for (k = 0; k <= NK; k++)
        if (strlen(kind_names[k]) == len && strncmp(kind_names[k], name, len) == 0)
            return k;
    return -1;
}

/* ---- the config section ------------------------------------------------------------ */

static int read_conf(ap_prov *p, OSSL_FUNC_core_get_params_fn *get_params, struct emu_src *src)
{
    /* The settings of a kind: its latency, then its rates in R_* order. */
    enum { LAT, NSET = 1 + NRATE };
    static const char *const set_names[NSET] = {"latency", "fail", "refuse"};
    char names[NK + 1][NSET][40];
    const char *vals[NK + 1][NSET] = {{NULL}};
    const char *ring = NULL, *seed = NULL;
    OSSL_PARAM req[(NK + 1) * NSET + 3];
    int k, s, r, i = 0;

    for (k = 0; k <= NK; k++)
        for (s = 0; s < NSET; s++) {
            snprintf(names[k][s], sizeof(names[k][s]), "emulate_%s_%s", kind_names[k],
                     set_names[s]);
            req[i++] = OSSL_PARAM_construct_utf8_ptr(names[k][s], (char **)&vals[k][s], 0);
        }
    req[i++] = OSSL_PARAM_construct_utf8_ptr("emulate_ring", (char **)&ring, 0);
    req[i++] = OSSL_PARAM_construct_utf8_ptr("emulate_seed", (char **)&seed, 0);
    req[i] = OSSL_PARAM_construct_end();
    if (get_params == NULL)
        return 1;
    if (!get_params(p->handle, req)) {
        AP_RAISE(PROV_R_INVALID_CONFIG_DATA, "cannot read the provider's configuration");
        return 0;
    }
    for (k = 0; k <= NK; k++) {
        if (vals[k][LAT] != NULL) {
            if (!parse_latency(vals[k][LAT], &src->lat[k])) {
                AP_RAISE(PROV_R_INVALID_CONFIG_DATA, "%s = \"%s\": " LAT_GRAMMAR,
                         names[k][LAT], vals[k][LAT]);
                return 0;
            }
            src->lat_set[k] = 1;
        }
        for (r = 0; r < NRATE; r++) {
            const char *v = vals[k][1 + r];

            if (v == NULL)
                continue;
            if (!parse_rate(v, &src->rate[r][k])) {
                AP_RAISE(PROV_R_INVALID_CONFIG_DATA, "%s = \"%s\": " RATE_GRAMMAR,
                         names[k][1 + r], v);
                return 0;
            }
            src->rate_set[r][k] = 1;
        }
    }
    if (ring != NULL) {
        uint64_t v;

        if (!parse_u64(ring, OFFLOAD_MAX_CAPACITY, &v)) {
            AP_RAISE(PROV_R_INVALID_CONFIG_DATA,
                     "emulate_ring = \"%s\": expected an integer from 0 (no ring) to %u",
                     ring, OFFLOAD_MAX_CAPACITY);
            return 0;
        }
        src->ring = (unsigned long)v;
        src->ring_set = 1;
    }
    if (seed != NULL) {
        if (!parse_u64(seed, UINT64_MAX, &src->seed)) {
            AP_RAISE(PROV_R_INVALID_CONFIG_DATA,
                     "emulate_seed = \"%s\": expected an integer from 0 to 2^64-1", seed);
            return 0;
        }
        src->seed_set = 1;
    }
    return 1;
}

/* ---- ASYNCPOOL_EMULATE ---------------------------------------------------------------- */

static int env_bad(const char *item, const char *why)
{
    AP_RAISE(PROV_R_INVALID_CONFIG_DATA, "ASYNCPOOL_EMULATE item \"%s\": %s", item, why);
    return 0;
}

/* One item "key=value" (NUL-terminated copy). */
static int env_item(char *item, struct emu_src *src)
{
    char *eq = strchr(item, '='), *val, *colon;
    int k;

    if (eq == NULL || eq == item)
        return env_bad(item, "expected <kind>=<latency>, ring=N, fail=<kind>:<rate>, "
                             "refuse=<kind>:<rate> or seed=N");
    *eq = '\0';
    val = eq + 1;
    if (strcmp(item, "ring") == 0) {
        uint64_t v;

        *eq = '=';
        if (src->ring_set)
            return env_bad(item, "ring given twice");
        if (!parse_u64(val, OFFLOAD_MAX_CAPACITY, &v))
            return env_bad(item, "expected ring=N, N from 0 (no ring) to 16777216");
        src->ring = (unsigned long)v;
        src->ring_set = 1;
        return 1;
    }
    if (strcmp(item, "seed") == 0) {
        *eq = '=';
        if (src->seed_set)
            return env_bad(item, "seed given twice");
        if (!parse_u64(val, UINT64_MAX, &src->seed))
            return env_bad(item, "expected seed=N, N from 0 to 2^64-1");
        src->seed_set = 1;
        return 1;
    }
    if (strcmp(item, "fail") == 0 || strcmp(item, "refuse") == 0) {
        int r = item[0] == 'f' ? R_FAIL : R_REFUSE;
        double v;

        *eq = '=';
        colon = strchr(val, ':');
        k = colon != NULL ? kind_index(val, (size_t)(colon - val)) : -1;
        if (k < 0)
            return env_bad(item, "expected fail=<kind>:<rate> or refuse=<kind>:<rate>, "
                                 "kind one of sign, verify, asym_cipher, derive, keygen, "
                                 "cipher, kem, all");
        if (!parse_rate(colon + 1, &v))
            return env_bad(item, RATE_GRAMMAR);
        if (src->rate_set[r][k])
            return env_bad(item, "this kind's rate given twice");
        src->rate[r][k] = v;
        src->rate_set[r][k] = 1;
        return 1;
    }
    k = kind_index(item, strlen(item));
    *eq = '=';
    if (k < 0)
        return env_bad(item, "unknown key: expected a kind (sign, verify, asym_cipher, "
                             "derive, keygen, cipher, kem, all), ring, fail, refuse or seed");
    if (src->lat_set[k])
        return env_bad(item, "this kind's latency given twice");
    if (!parse_latency(val, &src->lat[k]))
        return env_bad(item, LAT_GRAMMAR);
    src->lat_set[k] = 1;
    return 1;
}

static int read_env(struct emu_src *src)
{
    const char *env = getenv("ASYNCPOOL_EMULATE");
    char *copy, *item, *next;
    int ok = 1;

    if (env == NULL || *env == '\0')
        return 1;
    copy = OPENSSL_strdup(env);
    if (copy == NULL)
        return 0;
    for (item = copy; ok && item != NULL; item = next) {
        next = strchr(item, ',');
        if (next != NULL)
            *next++ = '\0';
        if (*item == '\0')
            ok = env_bad(item, "empty item (items are separated by single commas, "
                               "no spaces)");
        else
            ok = env_item(item, src);
    }
    OPENSSL_free(copy);
    return ok;
}

/* ---- resolution ------------------------------------------------------------------- */

int ap_read_emulation(ap_prov *p, OSSL_FUNC_core_get_params_fn *get_params)
{
    struct emu_src conf, env;
    const struct emu_src *order[2] = {&env, &conf};
    offload_emu_config *e = &p->emu;
    int k, i, r;

    memset(&conf, 0, sizeof(conf));
    memset(&env, 0, sizeof(env));
    memset(e, 0, sizeof(*e));
    if (!read_conf(p, get_params, &conf) || !read_env(&env))
        return 0;
    for (k = 0; k < NK; k++) {
        offload_emu_class *c = &e->cls[ap_emu_class(k)];
        double *rate[NRATE] = {&c->fail, &c->refuse};
        int lat = 0, got[NRATE] = {0};

        for (i = 0; i < 4; i++) {
            const struct emu_src *s = order[i / 2];
            int kk = (i % 2) ? NK : k;

            if (!lat && s->lat_set[kk]) {
                c->lat = s->lat[kk];
                lat = 1;
            }
            for (r = 0; r < NRATE; r++)
                if (!got[r] && s->rate_set[r][kk]) {
                    *rate[r] = s->rate[r][kk];
                    got[r] = 1;
                }
        }
    }
    e->ring = (unsigned)(env.ring_set ? env.ring : conf.ring);
    e->seed = env.seed_set ? env.seed : conf.seed;
    return 1;
}
