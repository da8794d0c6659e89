#define _GNU_SOURCE
#include "ptest.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/params.h>

static int env_flag(const char *name)
{
    const char *v = getenv(name);

    return v != NULL && *v != '\0' && strcmp(v, "0") != 0;
}

int ap_dev(void)
{
    return env_flag("AP_PTEST_DEV");
}

int ap_valgrind(void)
{
    return env_flag("AP_UNDER_VALGRIND");
}

void ap_dump_errors(const char *what)
{
    unsigned long e;
    const char *data, *file, *func;
    int line, flags;
    char buf[256];

    while ((e = ERR_get_error_all(&file, &line, &func, &data, &flags)) != 0) {
        ERR_error_string_n(e, buf, sizeof(buf));
        fprintf(stderr, "  [%s] %s (%s:%d %s) %s\n", what, buf, file, line, func,
                (flags & ERR_TXT_STRING) ? data : "");
    }
}

int ap_env_init(ap_env *e)
{
    memset(e, 0, sizeof(*e));
    e->ref = "provider=default";
    e->ours = ap_dev() ? "provider=default" : "provider=asyncpool";
    /* For investigation only: another query for "our" side (e.g. "?provider=asyncpool"). */
    if (getenv("AP_PTEST_OURS") != NULL && *getenv("AP_PTEST_OURS") != '\0')
        e->ours = getenv("AP_PTEST_OURS");
    if ((e->lib = OSSL_LIB_CTX_new()) == NULL)
        return 0;
    if ((e->dflt = OSSL_PROVIDER_load(e->lib, "default")) == NULL) {
        ap_dump_errors("load default");
        return 0;
    }
    if (!ap_dev() && (e->ap = OSSL_PROVIDER_load(e->lib, "asyncpool")) == NULL) {
        fprintf(stderr, "cannot load asyncpool (OPENSSL_MODULES=%s)\n",
                getenv("OPENSSL_MODULES") ? getenv("OPENSSL_MODULES") : "(unset)");
        ap_dump_errors("load asyncpool");
        return 0;
    }
    return 1;
}

const char *ap_write_conf(const char *body, int activate)
{
    static char path[64];
    FILE *f;
    int fd;

    strcpy(path, "/tmp/ap-conf-XXXXXX");
    fd = mkstemp(path);
    ck_assert(fd >= 0);
    f = fdopen(fd, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f,
            "openssl_conf = openssl_init\n[openssl_init]\nproviders = provider_sect\n"
            "[provider_sect]\ndefault = default_sect\nasyncpool = asyncpool_sect\n"
            "[default_sect]\nactivate = 1\n[asyncpool_sect]\n%s%s\n",
            activate ? "activate = 1\n" : "", body);
    fclose(f);
    return path;
}

void ap_env_free(ap_env *e)
{
    if (e->ap != NULL)
        OSSL_PROVIDER_unload(e->ap);
    if (e->dflt != NULL)
        OSSL_PROVIDER_unload(e->dflt);
    OSSL_LIB_CTX_free(e->lib);
    memset(e, 0, sizeof(*e));
}

uint64_t ap_ctr(const ap_env *e, const char *name)
{
    uint64_t v = UINT64_MAX;
    OSSL_PARAM p[2];

    if (e->ap == NULL)
        return UINT64_MAX;
    p[0] = OSSL_PARAM_construct_uint64(name, &v);
    p[1] = OSSL_PARAM_construct_end();
    if (!OSSL_PROVIDER_get_params(e->ap, p) || !OSSL_PARAM_modified(&p[0]))
        return UINT64_MAX;
    return v;
}

uint64_t ap_opctr(const ap_env *e, const char *op, const char *kind)
{
    char name[96];

    snprintf(name, sizeof(name), "asyncpool.%s.%s", op, kind);
    return ap_ctr(e, name);
}

unsigned char *ap_unhex(const char *hex, size_t *len)
{
    size_t n = strlen(hex), i;
    unsigned char *out;

    if (n % 2 != 0)
        return NULL;
    out = malloc(n / 2 + 1); /* +1: a valid pointer for empty strings */
    if (out == NULL)
        return NULL;
    for (i = 0; i < n / 2; i++) {
        unsigned v;

        if (sscanf(hex + 2 * i, "%2x", &v) != 1) {
            free(out);
            return NULL;
        }
        out[i] = (unsigned char)v;
    }
    *len = n / 2;
    return out;
}

void ap_run_direct(int (*fn)(void *), void **args, int n, int *rets)
{
    int i;

    for (i = 0; i < n; i++)
        rets[i] = fn(args[i]);
}

/* What ASYNC_start_job copies into the job: the function and its argument. */
struct tramp {
    int (*fn)(void *);
    void *arg;
};

static int tramp_fn(void *p)
{
    const struct tramp *t = p;

    return t->fn(t->arg);
}

struct slot {
    ASYNC_JOB *job;
    ASYNC_WAIT_CTX *w;
    int idx;    /* which args[] entry; -1 when free */
    int paused; /* waiting for its fd */
    OSSL_ASYNC_FD fd; /* fd registered with epoll for this WAIT_CTX, -1 if none */
};

static int readable(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};

    return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

/* After a pause: note the WAIT_CTX's fd, register it. Returns 0 if the slot must be
 * resumed right away (no fd to wait on). */
static int watch(int ep, struct slot *s, int si, ap_jobstats *st)
{
    OSSL_ASYNC_FD fds[4];
    size_t nfds = 0;

    if (!ASYNC_WAIT_CTX_get_all_fds(s->w, NULL, &nfds))
        nfds = 0;
    if (nfds == 0) {
        st->no_fd_pauses++;
        return 0;
    }
    if (nfds > 1)
        st->multi_fd++;
    if (nfds > 4)
        nfds = 4;
    ASYNC_WAIT_CTX_get_all_fds(s->w, fds, &nfds);
    if (s->fd != fds[0]) {
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)si};

        if (s->fd >= 0) {
            st->fd_changes++;
            epoll_ctl(ep, EPOLL_CTL_DEL, s->fd, NULL);
        }
        s->fd = fds[0];
        if (epoll_ctl(ep, EPOLL_CTL_ADD, s->fd, &ev) != 0) {
            /* already registered (fd number reused) */
            epoll_ctl(ep, EPOLL_CTL_MOD, s->fd, &ev);
        }
    }
    return 1;
}

int ap_run_jobs(int (*fn)(void *), void **args, int n, int inflight, int *rets,
                ap_jobstats *st)
{
    struct slot *slots = calloc((size_t)inflight, sizeof(*slots));
    struct epoll_event *evs = calloc((size_t)inflight, sizeof(*evs));
    ap_jobstats dummy;
    int ep = epoll_create1(EPOLL_CLOEXEC), next = 0, done = 0, npaused = 0, ok = 1, i;

    if (st == NULL)
        st = &dummy;
    memset(st, 0, sizeof(*st));
    if (slots == NULL || evs == NULL || ep < 0) {
        ok = 0;
        goto end;
    }
    for (i = 0; i < inflight; i++) {
        slots[i].idx = -1;
        slots[i].fd = -1;
        if ((slots[i].w = ASYNC_WAIT_CTX_new()) == NULL) {
            ok = 0;
            goto end;
        }
    }

    while (done < n) {
        int si, k, nev, progressed = 0;

        /* Start or resume every slot that can run now. */
        for (si = 0; si < inflight; si++) {
            struct slot *s = &slots[si];
            struct tramp t;
            int r, ret = 0;

            if (s->paused)
                continue;
            if (s->idx < 0) {
                if (next >= n)
                    continue;
                s->idx = next++;
            }
            t.fn = fn;
            t.arg = args[s->idx];
            r = ASYNC_start_job(&s->job, s->w, &ret, tramp_fn, &t, sizeof(t));
            progressed = 1;
            if (r == ASYNC_FINISH) {
                rets[s->idx] = ret;
                s->idx = -1;
                s->job = NULL;
                done++;
                if (s->fd >= 0 && readable(s->fd))
                    st->undrained++;
            } else if (r == ASYNC_PAUSE) {
                st->pauses++;
                if (watch(ep, s, si, st)) {
                    s->paused = 1;
                    npaused++;
                    if (npaused > st->max_paused)
                        st->max_paused = npaused;
                }
            } else if (r == ASYNC_NO_JOBS) {
                if (s->job == NULL) { /* not started: give the index back */
                    next--;
                    s->idx = -1;
                }
            } else {
                fprintf(stderr, "ap_run_jobs: ASYNC_start_job failed (%d)\n", r);
                ap_dump_errors("ASYNC_start_job");
                ok = 0;
                goto end;
            }
        }
        if (done >= n)
            break;
        if (npaused == 0) {
            if (!progressed) {
                fprintf(stderr, "ap_run_jobs: no progress possible\n");
                ok = 0;
                goto end;
            }
            continue;
        }
        /* Wait for wake-ups. A long silence with jobs paused means a lost wake-up. */
        do
            nev = epoll_wait(ep, evs, inflight, 30000);
        while (nev < 0 && errno == EINTR);
        if (nev <= 0) {
            fprintf(stderr, "ap_run_jobs: %d jobs paused, no fd readable for 30 s\n", npaused);
            st->lost_wakeup++;
            ok = 0;
            goto end;
        }
        for (k = 0; k < nev; k++) {
            struct slot *s = &slots[evs[k].data.u32];

            if (s->paused) {
                s->paused = 0;
                npaused--;
            }
        }
    }
end:
    if (slots != NULL) {
        for (i = 0; i < inflight; i++)
            ASYNC_WAIT_CTX_free(slots[i].w); /* jobs still paused (failure) leak */
    }
    if (ep >= 0)
        close(ep);
    free(slots);
    free(evs);
    return ok;
}

int ap_run_suite(Suite *s)
{
    SRunner *sr = srunner_create(s);
    int nf;

    srunner_run_all(sr, CK_NORMAL);
    nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    return nf == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
