/*
 * offload/timing.h — the two helpers every waiting loop here uses: a monotonic clock
 * in nanoseconds and the CPU's spin-wait hint. Static inline: offload/, async_core/ and
 * provider/ each include it, and the clock is read on paths that time single calls.
 */
#ifndef AP_OFFLOAD_TIMING_H
#define AP_OFFLOAD_TIMING_H

#include <stdint.h>
#include <time.h>

/* CLOCK_MONOTONIC in ns (a vDSO call, no system call). */
static inline uint64_t mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* One turn of a spin-wait: tells the CPU (and a hypervisor that watches for it) that
 * this thread is waiting. */
static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

#endif
