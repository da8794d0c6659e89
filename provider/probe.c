/*
 * provider/probe.c — offload = auto, rule 6: heavy calls go to the pool only while that
 * gets more of them done than running them inline does, measured in place.
 *
 * Why: rule 2 offloads every call estimated at offload_min_us or more, because keeping
 * it off the event loop lets the loop serve other connections while a worker computes
 * on another core. That pays only when there is a core for the worker. On a machine
 * whose cores are already busy (the 2-core VMs we measure on, with the TLS client on
 * the same cores), the kernel queues the woken worker on the loop's own core, the
 * worker preempts the loop there, and the other core idles while the loop waits:
 * bench/tls_sched.sh counted 512 such wake-ups a second at -c 8 with an RSA-2048
 * certificate, the loop preempted 462 times a second and 0.10 of the 2 cores idle with
 * a task queued on the other one. The offload then adds its trip and its idle and buys
 * nothing: the same server with every call inline in its job did 0.99-1.03 of the sync
 * server's handshakes/s, offloading 0.72-0.78 (bench/tls_split.sh, 5 rounds). Where a
 * core is free (RSA-4096, whose sync server leaves the client's core half idle;
 * openssl speed -async_jobs), offloading does about twice as many calls as inline.
 * No single reading tells the two apart: on both machines the workers wait on run
 * queues and the machine is busy. So it is measured: the rate of heavy calls each
 * way, in turns.
 *
 * How:
 *  - Epochs of epoch_ns (offload_probe_ms, 50 ms by default). Every heavy call counts
 *    itself in the current epoch; the first call after it has run out closes it.
 *  - The 5th epoch, then every EVERY_NEAR-th (8: 0.4 s), is a probe, half an epoch
 *    long: its heavy calls run the other way. Its rate is compared with that of the
 *    epoch just before it, run the chosen way; the ratio inline ÷ offloaded is folded
 *    into an average (a quarter of the way per probe).
 *  - Inline is chosen once the average says inline does 8% more calls (GAIN_ON), and
 *    offloading again once it no longer does more (GAIN_OFF): ties go to the pool, for
 *    the loop's responsiveness. One or two probes of a 30% lead switch it: 0.25 to
 *    0.7 s after the first heavy call.
 *  - After a sample far from both thresholds (outside 0.85-1.25) the next probe
 *    comes after 64 epochs (3.2 s) instead: a probe run the losing way costs
 *    throughput, half of its calls where offloading doubles the rate, so 0.4% of
 *    them at one half-epoch probe in 64 (a prototype with full-epoch probes, one in
 *    16, cost openssl speed -async_jobs 32 rsa2048 3%).
 *  - An epoch lasts until it has run epoch_ns and held MIN_CALLS (8) calls, so that
 *    slow calls are compared over enough of them (an RSA-4096 signature run inline
 *    takes 4.5 ms here: 8 of them take 70 ms); at 4 epochs it ends whatever it holds,
 *    and one with fewer calls than that is not counted (its probe is still run).
 *  - A lull in the demand during one epoch of a pair lowers that epoch's rate. Such a
 *    sample is what the average and the threshold are for; a server whose load is
 *    under its capacity does the same calls either way, so its average stays near 1
 *    and its calls keep going to the pool. Were it tipped into running them inline, it
 *    would lose nothing it needs: its loop has the time, and the next probes turn it
 *    back.
 */
#include "probe.h"

static int usable(uint64_t calls, uint64_t ns)
{
    return calls >= AP_PROBE_MIN_CALLS && ns > 0;
}

void ap_probe_init(ap_probe *pr, uint64_t epoch_ns)
{
    pr->epoch_ns = epoch_ns;
    atomic_store(&pr->ep_start, 0);
    atomic_store(&pr->ep_calls, 0);
    atomic_store(&pr->heavy_inline, 0);
    atomic_store(&pr->probing, 0);
    atomic_flag_clear(&pr->closing);
    pr->since = 0;
    pr->every = AP_PROBE_EVERY_FIRST;
    pr->ref_calls = 0;
    pr->ref_ns = 0;
    atomic_store(&pr->gain_pm, 1000u);
    atomic_store(&pr->probes, 0);
    atomic_store(&pr->switches, 0);
    atomic_store(&pr->inlined, 0);
}

void ap_probe_close(ap_probe *pr, uint64_t calls, uint64_t ns)
{
    int inl = atomic_load_explicit(&pr->heavy_inline, memory_order_relaxed);

    if (atomic_load_explicit(&pr->probing, memory_order_relaxed)) {
        atomic_store_explicit(&pr->probing, 0, memory_order_relaxed);
        atomic_fetch_add_explicit(&pr->probes, 1, memory_order_relaxed);
        pr->since = 0;
        if (usable(calls, ns) && usable(pr->ref_calls, pr->ref_ns)) {
            /* rate inline ÷ rate offloaded = (ci / ni) ÷ (co / no), in permille; the
             * probe ran the way that is not chosen. In double: the products of counts
             * and nanoseconds would overflow 64 bits with long epochs of short calls,
             * and integer division would round small quotients away. */
            double ci = (double)(inl ? pr->ref_calls : calls), ni = (double)(inl ? pr->ref_ns : ns);
            double co = (double)(inl ? calls : pr->ref_calls), no = (double)(inl ? ns : pr->ref_ns);
            double rd = ci * no / (ni * co) * 1000.0;
            int64_t r = rd > 4000.0 ? 4000 : (int64_t)(rd + 0.5);
            int64_t g = atomic_load_explicit(&pr->gain_pm, memory_order_relaxed);

            g += (r - g) / 4;
            atomic_store_explicit(&pr->gain_pm, (unsigned)g, memory_order_relaxed);
            if (!inl && g >= AP_PROBE_GAIN_ON) {
                atomic_store_explicit(&pr->heavy_inline, 1, memory_order_relaxed);
                atomic_fetch_add_explicit(&pr->switches, 1, memory_order_relaxed);
            } else if (inl && g < AP_PROBE_GAIN_OFF) {
                atomic_store_explicit(&pr->heavy_inline, 0, memory_order_relaxed);
                atomic_fetch_add_explicit(&pr->switches, 1, memory_order_relaxed);
            }
            /* Probe often only while this sample is near the thresholds: one far from
             * them (inline at half the rate, say) would cost more than it can tell. */
            pr->every = r >= AP_PROBE_NEAR_LO && r <= AP_PROBE_NEAR_HI ? AP_PROBE_EVERY_NEAR
                                                                       : AP_PROBE_EVERY_FAR;
        }
        return;
    }
    if (++pr->since >= pr->every) {
        pr->ref_calls = calls;
        pr->ref_ns = ns;
        atomic_store_explicit(&pr->probing, 1, memory_order_relaxed);
    }
}

/* Has the epoch that began at start run out at now_ns? Not if it began after now_ns:
 * another thread, whose clock reading came later, has closed the one before it since
 * this call read the clock (now_ns - start would wrap to a huge span). */
static int epoch_over(ap_probe *pr, uint64_t start, uint64_t now_ns)
{
    uint64_t ran = now_ns - start;
    uint64_t len = atomic_load_explicit(&pr->probing, memory_order_relaxed) ? pr->epoch_ns / 2
                                                                            : pr->epoch_ns;

    return now_ns >= start && ran >= len
           && (atomic_load_explicit(&pr->ep_calls, memory_order_relaxed) >= AP_PROBE_MIN_CALLS
               || ran >= AP_PROBE_MAX_EPOCHS * pr->epoch_ns);
}

int ap_probe_call(ap_probe *pr, uint64_t now_ns)
{
    uint64_t start;

    if (pr->epoch_ns == 0)
        return 0;
    start = atomic_load_explicit(&pr->ep_start, memory_order_relaxed);
    if (start == 0) {
        /* The first heavy call opens the first epoch; of racing first calls, one sets
         * its start. */
        uint64_t zero = 0;

        atomic_compare_exchange_strong_explicit(&pr->ep_start, &zero, now_ns,
                                                memory_order_relaxed, memory_order_relaxed);
    } else if (epoch_over(pr, start, now_ns)
               && !atomic_flag_test_and_set_explicit(&pr->closing, memory_order_acquire)) {
        /* Re-read under the flag: another closer may have closed this epoch already. */
        start = atomic_load_explicit(&pr->ep_start, memory_order_relaxed);
        if (epoch_over(pr, start, now_ns)) {
            uint64_t calls = atomic_exchange_explicit(&pr->ep_calls, 0, memory_order_relaxed);

            atomic_store_explicit(&pr->ep_start, now_ns, memory_order_relaxed);
            ap_probe_close(pr, calls, now_ns - start);
        }
        atomic_flag_clear_explicit(&pr->closing, memory_order_release);
    }
    atomic_fetch_add_explicit(&pr->ep_calls, 1, memory_order_relaxed);
    if (atomic_load_explicit(&pr->heavy_inline, memory_order_relaxed)
        ^ atomic_load_explicit(&pr->probing, memory_order_relaxed)) {
        atomic_fetch_add_explicit(&pr->inlined, 1, memory_order_relaxed);
        return 1;
    }
    return 0;
}
