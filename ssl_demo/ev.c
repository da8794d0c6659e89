#define _GNU_SOURCE
#include "ev.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define EV_BATCH 256

struct deferred {
    void (*fn)(void *);
    void *arg;
};

struct ev_loop {
    int epfd;
    struct epoll_event events[EV_BATCH];
    struct deferred *defer;
    size_t ndefer, capdefer;
};

static void ev_fatal(const char *what)
{
    fprintf(stderr, "ev: %s: %s\n", what, strerror(errno));
    abort();
}

ev_loop *ev_loop_new(void)
{
    ev_loop *loop = calloc(1, sizeof(*loop));

    if (loop == NULL)
        ev_fatal("calloc");
    loop->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (loop->epfd < 0)
        ev_fatal("epoll_create1");
    return loop;
}

void ev_loop_free(ev_loop *loop)
{
    if (loop == NULL)
        return;
    close(loop->epfd);
    free(loop->defer);
    free(loop);
}

static void ev_ctl(ev_loop *loop, int op, int fd, ev_io *w, uint32_t events)
{
    struct epoll_event ev = { .events = events, .data.ptr = w };

    if (epoll_ctl(loop->epfd, op, fd, &ev) != 0)
        ev_fatal(op == EPOLL_CTL_ADD ? "epoll_ctl(ADD)" : "epoll_ctl(MOD)");
}

void ev_add(ev_loop *loop, int fd, ev_io *w, uint32_t events)
{
    ev_ctl(loop, EPOLL_CTL_ADD, fd, w, events);
}

void ev_mod(ev_loop *loop, int fd, ev_io *w, uint32_t events)
{
    ev_ctl(loop, EPOLL_CTL_MOD, fd, w, events);
}

void ev_del(ev_loop *loop, int fd)
{
    /* ENOENT/EBADF: the fd was never added or is already closed; both harmless here. */
    if (epoll_ctl(loop->epfd, EPOLL_CTL_DEL, fd, NULL) != 0
        && errno != ENOENT && errno != EBADF)
        ev_fatal("epoll_ctl(DEL)");
}

void ev_defer(ev_loop *loop, void (*fn)(void *), void *arg)
{
    if (loop->ndefer == loop->capdefer) {
        size_t cap = loop->capdefer ? loop->capdefer * 2 : 64;
        struct deferred *d = realloc(loop->defer, cap * sizeof(*d));

        if (d == NULL)
            ev_fatal("realloc");
        loop->defer = d;
        loop->capdefer = cap;
    }
    loop->defer[loop->ndefer].fn = fn;
    loop->defer[loop->ndefer].arg = arg;
    loop->ndefer++;
}

int ev_run_once(ev_loop *loop, int timeout_ms)
{
    int n = epoll_wait(loop->epfd, loop->events, EV_BATCH, timeout_ms);

    if (n < 0) {
        if (errno != EINTR)
            ev_fatal("epoll_wait");
        n = 0;
    }
    for (int i = 0; i < n; i++) {
        ev_io *w = loop->events[i].data.ptr;

        w->cb(loop, w, loop->events[i].events);
    }
    /* A deferred function may defer more; the index loop picks those up as well. */
    for (size_t i = 0; i < loop->ndefer; i++)
        loop->defer[i].fn(loop->defer[i].arg);
    loop->ndefer = 0;
    return n;
}

uint64_t ev_now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}
