/*
 * The offloaded functions and the calls a job makes, each with its checks.
 *
 * Every offloaded function returns a value computed from its input (mix()), so a
 * result that belongs to another call, or to nobody, is caught. The raising one adds
 * exactly one OpenSSL error whose code, data, file, line and function the caller
 * checks after the job resumes. The mark cases are checked against the same sequence
 * run inline (work_init_reference), whatever this OpenSSL makes of a mark.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>

#include "offload/offload.h"
#include "soak.h"
#include "test/core/util.h"

#define MARK_REASON 70
#define PRE_REASON 71

int mix_of(uint32_t in)
{
    return mix(in);
}

static void spend(const struct wargs *a)
{
    if (a->us == 0)
        return;
    if (a->spin) {
        uint64_t end = now_ns() + (uint64_t)a->us * 1000u;

        while (now_ns() < end)
            ;
    } else {
        sleep_us(a->us);
    }
}

int work(void *arg)
{
    struct wargs *a = arg;

    a->ran_on_worker = offload_in_worker();
    spend(a);
    return mix(a->in);
}

static int work_raise(void *arg)
{
    struct wargs *a = arg;

    a->ran_on_worker = offload_in_worker();
    spend(a);
    a->raise_line = __LINE__ + 1; /* the line of the ERR_raise_data below */
    ERR_raise_data(ERR_LIB_USER, a->reason, "soak %08x", (unsigned)a->in);
    return 0;
}

void plan_call(struct call_plan *c, uint32_t *rng, int allow_prov)
{
    uint32_t r = rnd(rng) % 100, t = rnd(rng) % 100;

    memset(c, 0, sizeof(*c));
    c->in = rnd(rng);
    if (r < 55)
        c->kind = K_PLAIN;
    else if (r < 72)
        c->kind = K_RAISE;
    else if (r < 80)
        c->kind = K_MARK_PRE;
    else if (r < 92)
        c->kind = K_MARK_EMPTY;
    else if (r < 95)
        c->kind = K_BLOCKED;
    else
        c->kind = allow_prov ? K_PROV : K_PLAIN;
    c->raise = rnd(rng) & 1;
    /* Most calls are quick; some spin a little, some sleep (a worker busy for a
     * while: the queue fills up behind it). */
    if (t < 55) {
        c->us = 0;
    } else if (t < 85) {
        c->us = 5 + rnd(rng) % 45;
        c->spin = 1;
    } else {
        c->us = 50 + rnd(rng) % (c->kind == K_BLOCKED ? 100 : 350);
    }
}

#define FAIL(j, what, a, b)                                                                \
    do {                                                                                   \
        (j)->fail = (what);                                                                \
        (j)->fail_call = (j)->cur_call;                                                    \
        (j)->fail_a = (long)(a);                                                           \
        (j)->fail_b = (long)(b);                                                           \
        return 0;                                                                          \
    } while (0)

static void tally(const acore_trace *t)
{
    COUNT(calls, 1);
    COUNT(calls_offloaded, (unsigned)t->offloaded);
    COUNT(eagain, t->eagain);
}

/* The one error work_raise left, popped and checked; nothing else queued. */
static int check_raised(const struct wargs *a, struct jctx *j)
{
    const char *file = NULL, *func = NULL, *data = NULL;
    int line = 0, flags = 0;
    unsigned long e = ERR_get_error_all(&file, &line, &func, &data, &flags);
    char want[32];

    if (ERR_GET_LIB(e) != ERR_LIB_USER || ERR_GET_REASON(e) != a->reason)
        FAIL(j, "wrong error code after a raising call (got, want reason)", e, a->reason);
    if (file == NULL || strcmp(file, __FILE__) != 0 || func == NULL
        || strcmp(func, "work_raise") != 0 || line != a->raise_line)
        FAIL(j, "wrong error origin (line got, want)", line, a->raise_line);
    snprintf(want, sizeof(want), "soak %08x", (unsigned)a->in);
    if (!(flags & ERR_TXT_STRING) || data == NULL || strcmp(data, want) != 0)
        FAIL(j, "wrong error data (flags, input)", flags, a->in);
    if (ERR_peek_error() != 0)
        FAIL(j, "more than the raised error on the queue (extra)", ERR_peek_error(), 0);
    COUNT(errors_checked, 1);
    return 1;
}

/* ---- marks ----------------------------------------------------------------------- */

struct mark_outcome {
    int set_ret, pop_ret, nleft;
    unsigned long first, last;  /* oldest and newest queued after the call */
    unsigned long left[3];      /* what stays after ERR_pop_to_mark() */
};

typedef int invoke_fn(int (*fn)(void *), void *arg, acore_trace *t);

static int invoke_inline(int (*fn)(void *), void *arg, acore_trace *t)
{
    memset(t, 0, sizeof(*t));
    return fn(arg);
}

static int invoke_acore(int (*fn)(void *), void *arg, acore_trace *t)
{
    return acore_call(fn, arg, 0, t);
}

/* pre: an error queued before the mark; raise: the call raises. Returns the call's
 * result; the queue is empty afterwards. */
static int mark_sequence(int pre, int raise, struct wargs *a, invoke_fn *inv,
                         acore_trace *t, struct mark_outcome *o)
{
    unsigned long e;
    int ret;

    memset(o, 0, sizeof(*o));
    a->reason = MARK_REASON;
    if (pre)
        ERR_raise_data(ERR_LIB_USER, PRE_REASON, "queued before the mark");
    o->set_ret = ERR_set_mark();
    ret = inv(raise ? work_raise : work, a, t);
    o->first = ERR_peek_error();
    o->last = ERR_peek_last_error();
    o->pop_ret = ERR_pop_to_mark();
    while ((e = ERR_get_error()) != 0) {
        if (o->nleft < 3)
            o->left[o->nleft] = e;
        o->nleft++;
    }
    return ret;
}

static struct mark_outcome reference[2][2]; /* [pre][raise], run inline */

void work_init_reference(void)
{
    int pre, raise;

    ERR_clear_error();
    for (pre = 0; pre < 2; pre++)
        for (raise = 0; raise < 2; raise++) {
            struct wargs a = {.in = 1};
            acore_trace t;

            mark_sequence(pre, raise, &a, invoke_inline, &t, &reference[pre][raise]);
        }
}

static int same_outcome(const struct mark_outcome *x, const struct mark_outcome *y)
{
    int i;

    if (x->set_ret != y->set_ret || x->pop_ret != y->pop_ret || x->nleft != y->nleft
        || x->first != y->first || x->last != y->last)
        return 0;
    for (i = 0; i < x->nleft && i < 3; i++)
        if (x->left[i] != y->left[i])
            return 0;
    return 1;
}

static int do_marks(const struct call_plan *c, struct jctx *j)
{
    struct wargs a = {.in = c->in, .us = c->us, .spin = c->spin};
    struct mark_outcome o;
    const struct mark_outcome *ref;
    acore_trace t;
    int pre = c->kind == K_MARK_PRE, ret;

    ret = mark_sequence(pre, c->raise, &a, invoke_acore, &t, &o);
    tally(&t);
    ref = &reference[pre][c->raise];
    if (ret != (c->raise ? 0 : mix(c->in)))
        FAIL(j, "wrong result under a mark (got, want)", ret, c->raise ? 0 : mix(c->in));
    if (t.offloaded != a.ran_on_worker)
        FAIL(j, "trace.offloaded disagrees with where the call ran (trace, worker)",
             t.offloaded, a.ran_on_worker);
    if (o.set_ret != ref->set_ret || o.pop_ret != ref->pop_ret)
        FAIL(j, "ERR_set_mark/ERR_pop_to_mark results differ from inline (set, pop)",
             o.set_ret, o.pop_ret);
    if (o.first != ref->first || o.last != ref->last)
        FAIL(j, "errors queued after the call differ from inline (oldest, newest)", o.first,
             o.last);
    if (!same_outcome(&o, ref))
        FAIL(j, "errors left after ERR_pop_to_mark differ from inline (count, inline)",
             o.nleft, ref->nleft);
    COUNT(marks_checked, 1);
    return 1;
}

/* A job's whole work in the fork thread and its children: one plain call, counted. */
int job_plain_call(void *arg)
{
    struct wargs *a = arg;
    acore_trace t;

    a->got = acore_call(work, a, 0, &t);
    a->offloaded = t.offloaded;
    a->err = ERR_peek_error();
    tally(&t);
    return a->got == mix(a->in) && t.offloaded == a->ran_on_worker && a->err == 0;
}

/* ---- one call ------------------------------------------------------------------------ */

int do_call(const struct call_plan *c, struct jctx *j)
{
    struct wargs a = {.in = c->in, .us = c->us, .spin = c->spin};
    acore_trace t;
    int ret, r;

    if (ERR_peek_error() != 0)
        FAIL(j, "errors queued when a call began", ERR_peek_error(), 0);
    switch (c->kind) {
    case K_PLAIN:
    case K_BLOCKED:
        if (c->kind == K_BLOCKED)
            ASYNC_block_pause();
        ret = acore_call(work, &a, 0, &t);
        if (c->kind == K_BLOCKED) {
            ASYNC_unblock_pause();
            COUNT(blocked_calls, 1);
            j->blocked = 1;
        }
        tally(&t);
        if (ret != mix(c->in))
            FAIL(j, "wrong result (got, want)", ret, mix(c->in));
        if (t.offloaded != a.ran_on_worker)
            FAIL(j, "trace.offloaded disagrees with where the call ran (trace, worker)",
                 t.offloaded, a.ran_on_worker);
        if (ERR_peek_error() != 0)
            FAIL(j, "an error appeared after a quiet call", ERR_peek_error(), 0);
        return 1;
    case K_RAISE:
        a.reason = 1 + (int)(c->in % 64);
        ret = acore_call(work_raise, &a, 0, &t);
        tally(&t);
        if (ret != 0)
            FAIL(j, "raising call returned (got)", ret, 0);
        if (t.offloaded != a.ran_on_worker)
            FAIL(j, "trace.offloaded disagrees with where the call ran (trace, worker)",
                 t.offloaded, a.ran_on_worker);
        return check_raised(&a, j);
    case K_MARK_PRE:
    case K_MARK_EMPTY:
        return do_marks(c, j);
    case K_PROV:
        r = prov_call_in_job(c->in, j);
        if (r >= 0)
            return r;
        /* No shared libctx open right now: a plain call instead. */
        {
            struct call_plan p = *c;

            p.kind = K_PLAIN;
            return do_call(&p, j);
        }
    }
    FAIL(j, "unknown call kind", c->kind, 0);
}
