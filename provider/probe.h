/*
 * provider/probe.h — offload = auto, rule 6: does offloading the heavy calls pay here,
 * now? Measured, not assumed: time is cut into epochs; now and then one epoch runs the
 * heavy calls the other way, and the calls started in it are compared with those of
 * the epoch before. See probe.c for the rule and its figures.
 *
 * Pure logic over counters and a clock the caller passes in, without OpenSSL, so that a
 * unit test can feed it any sequence (test/provider/test_probe.c).
 *
 * Ownership: one ap_probe per provider instance (in ap_policy_state). Any thread making
 * a heavy call counts it (ap_probe_call). Whichever thread first sees an epoch run out
 * closes it, under the `closing` flag; the fields marked "closer" are touched only
 * under that flag. The flag's acquire / release order one closer's writes before the
 * next closer's reads; the rest is relaxed: a call counted in the next epoch, or decided
 * on the previous epoch's way, changes nothing that matters.
 */
#ifndef AP_PROBE_H
#define AP_PROBE_H

#include <stdatomic.h>
#include <stdint.h>

/* Rule 6 is for calls estimated under this. A longer call is not run inline by it: the
 * kernel moves a thread queued behind another one to an idle core once it has waited
 * longer than its migration cost (0.5 ms by default), so the worker of a long call
 * does not keep the loop off a core for long, and its trip is a few % of the call.
 * Measured on the 2-core VM with the client beside the server (bench/tls_split.sh,
 * auto against auto without rule 6): RSA-2048 (130-300 µs) did 1.30x the handshakes at
 * -c 8 with rule 6 (inline); RSA-3072 (1.5 ms) and RSA-4096 (3.6 ms) did best
 * offloaded, where rule 6 could only cost its probes. */
#define AP_PROBE_MAX_COST_NS 500000u

#define AP_PROBE_MIN_CALLS 8     /* an epoch lasts until it holds this many calls, */
#define AP_PROBE_MAX_EPOCHS 4    /* or this many epochs; then, short of them, it is not
                                  * counted */
#define AP_PROBE_GAIN_ON 1080    /* permille: inline is chosen once it does 8% more calls */
#define AP_PROBE_GAIN_OFF 1000   /* and offloading again once it no longer does more */
#define AP_PROBE_NEAR_LO 850     /* while the gain is within [850, 1250] permille, */
#define AP_PROBE_NEAR_HI 1250
#define AP_PROBE_EVERY_FIRST 4   /* the first probe follows 4 epochs, */
#define AP_PROBE_EVERY_NEAR 8    /* then every 8th epoch; */
#define AP_PROBE_EVERY_FAR 64    /* outside it, every 64th */

typedef struct ap_probe {
    uint64_t epoch_ns;               /* set once at load; 0: rule 6 is off */
    atomic_uint_fast64_t ep_start;   /* CLOCK_MONOTONIC ns the epoch began; 0: none yet */
    atomic_uint_fast64_t ep_calls;   /* heavy calls started in it */
    atomic_int heavy_inline;         /* the chosen way: 1 inline, 0 offload */
    atomic_int probing;              /* this epoch runs the other way */
    atomic_flag closing;             /* held by the thread closing an epoch */
    unsigned since;                  /* closer: epochs since the last probe */
    unsigned every;                  /* closer: probe after this many */
    uint64_t ref_calls, ref_ns;      /* closer: the epoch just before the probe */
    atomic_uint gain_pm;             /* EWMA of inline calls/s ÷ offloaded calls/s,
                                      * permille; written by the closer, read by stats */
    atomic_uint_fast64_t probes;     /* probe epochs closed */
    atomic_uint_fast64_t switches;   /* changes of the chosen way */
    atomic_uint_fast64_t inlined;    /* heavy calls run inline (chosen or probing) */
} ap_probe;

/* epoch_ns 0 turns rule 6 off: every heavy call is offloaded. */
void ap_probe_init(ap_probe *pr, uint64_t epoch_ns);

/* A heavy call starts at now_ns: counts it, closes the epoch if it has run out, and
 * returns 1 if the call should run inline, 0 if it should go to the pool. */
int ap_probe_call(ap_probe *pr, uint64_t now_ns);

/* The closing step alone, for tests: folds a closed epoch of `calls` calls lasting
 * `ns` into the state, as ap_probe_call does when it wins the flag. */
void ap_probe_close(ap_probe *pr, uint64_t calls, uint64_t ns);

#endif
