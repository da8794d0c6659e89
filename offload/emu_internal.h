/*
 * offload/emu_internal.h — the hooks between the pool (offload.c) and the device
 * emulation (emu.c). Private to offload/.
 */
#ifndef ASYNCPOOL_OFFLOAD_EMU_INTERNAL_H
#define ASYNCPOOL_OFFLOAD_EMU_INTERNAL_H

#include "offload.h"

/* request->emu_.flags_ */
#define EMU_F_ON 0x1u   /* went through the emulated device */
#define EMU_F_RING 0x2u /* holds a ring slot until done() */
#define EMU_F_FAIL 0x4u /* the device fails it: run() is not called */

/* ---- emu.c, called by offload.c ---------------------------------------------------- */

/* Under pool.mu, first reference: take c (NULL: none) as the pool's emulation. */
void emu_configure_(const offload_emu_config *c);
/* Under pool.mu: 1 if c (NULL: none) asks for the emulation the pool runs with. */
int emu_same_(const offload_emu_config *c);
/* Under pool.mu, last reference, after the timer thread is joined: emulation off. */
void emu_reset_(void);

/* In offload_submit, inside the gate, with emulation on: OFFLOAD_OK (req's emu_ set;
 * a ring slot reserved if EMU_F_RING) or OFFLOAD_FULL (ring full, or refused by
 * injection). */
int emu_admit_(offload_req *req);
/* The queue refused req after emu_admit_ said OK: give its ring slot back. */
void emu_unadmit_(offload_req *req);
/* 1 if the emulated ring is on and full. */
int emu_ring_full_(void);
/* 1 if the last OFFLOAD_FULL this thread got was an injected refusal; clears it. */
int emu_take_injected_(void);
/* A waiter was registered for an injected refusal: have the timer thread wake one
 * waiter, as if a slot had freed. */
void emu_credit_(void);

/* On a worker that dequeued req (EMU_F_ON set), holding its busy lock: run it (unless
 * it fails), then park it on the timer or complete it. */
void emu_run_(offload_req *req);

/* Timer thread, under pool.mu: start (1 on success; no-op when emulation is off),
 * stop (completes every parked request at once, then joins). */
int emu_timer_start_(void);
void emu_timer_stop_(void);

/* fork: prepare takes busy (after the workers' busy locks), then lock (after
 * deq_lock); parent releases; child aborts every parked request and resets. */
void emu_fork_lock_busy_(void);
void emu_fork_lock_(void);
void emu_fork_parent_(void);
void emu_fork_child_(void);

/* ---- offload.c, called by emu.c ---------------------------------------------------- */

/* Count a completion (before done(), like a worker's). */
void offload_count_completed_(void);
/* A slot freed (a ring slot, or an injection credit): wake a waiter if any. seq_cst
 * read of the waiter count, to pair with offload_wait_space's registration. */
void offload_space_freed_(void);
/* Mark the calling thread as one of the pool's (offload_in_worker). */
void offload_mark_pool_thread_(void);
/* Run the configured thread_exit hook, if any. */
void offload_thread_exit_(void);

#endif
