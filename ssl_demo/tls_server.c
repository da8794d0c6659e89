/* tls_server: an event-driven TLS server that uses SSL_MODE_ASYNC the way an
 * async-aware production server does, to show and test the asyncpool provider.
 *
 * One epoll loop per thread (--loops N, default 1), non-blocking sockets, a tiny
 * HTTP/1.1 responder so curl and load tools work. Three modes in one binary:
 *   async-fd  (default)  SSL_MODE_ASYNC; after SSL_ERROR_WANT_ASYNC the async fds from
 *                        SSL_get_changed_async_fds are added to / removed from epoll.
 *   async-cb  --callback SSL_MODE_ASYNC with SSL_CTX_set_async_callback: a worker thread
 *                        puts the connection on a locked ready list and wakes the loop.
 *   sync      --sync     no SSL_MODE_ASYNC, for comparison.
 *
 * Rules this file keeps (see DESIGN.md "Traps"):
 *  - a connection whose job is paused is never SSL_free'd: it is marked closing and freed
 *    once the job has finished (freeing it would leak the job inside libcrypto);
 *  - the async fd belongs to the provider: we poll it, never read it;
 *  - the async callback runs on a provider worker thread: it only takes a lock, links
 *    the connection, and writes an eventfd.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <malloc.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/async.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "apstats.h"
#include "ev.h"
#include "util.h"

#define MAX_ASYNC_FDS 4      /* asyncpool uses one; engines may use a few */
#define MAX_CERTS 4
#define REQ_MAX 8192         /* longest request head we accept */
#define DRAIN_SECONDS 5      /* how long a stopping server waits for paused jobs */

enum mode { MODE_ASYNC_FD, MODE_ASYNC_CB, MODE_SYNC };
static const char *const mode_names[] = { "async-fd", "async-cb", "sync" };

enum conn_state { ST_HANDSHAKE, ST_READ, ST_WRITE, ST_SHUTDOWN };

static struct {
    const char *host;
    int port;
    const char *cert[MAX_CERTS], *key[MAX_CERTS];
    int ncert;
    enum mode mode;
    int loops;
    int max_jobs;
    int idle_timeout;
    int tls_min, tls_max;
    const char *ciphers, *ciphersuites;
    bool verbose;
} opt = {
    .host = "127.0.0.1", .port = 8443, .mode = MODE_ASYNC_FD, .loops = 1,
    .idle_timeout = 30, .tls_min = TLS1_2_VERSION,
};

struct stats {
    uint64_t conns;          /* accepted connections */
    uint64_t handshakes;     /* completed handshakes */
    uint64_t errors;         /* connections that ended in a TLS or socket error */
    uint64_t requests;       /* HTTP responses sent */
    uint64_t pauses;         /* SSL_ERROR_WANT_ASYNC returns */
    uint64_t want_job;       /* SSL_ERROR_WANT_ASYNC_JOB returns (job pool exhausted) */
    uint64_t eagain;         /* callback mode: job paused with ASYNC_STATUS_EAGAIN */
    uint64_t deferred_frees; /* closed while paused, freed after the job finished */
    uint64_t idle_timeouts;
    uint64_t accept_errors;
    uint64_t still_paused;   /* left paused at exit (leaked on purpose, never freed) */
};

struct loop;

struct conn {
    struct loop *lp;
    ev_io sock_w;            /* the TCP socket */
    ev_io async_w;           /* every async fd of this connection (fd mode) */
    int fd;
    SSL *ssl;
    enum conn_state st;
    uint32_t sock_events;    /* interest currently registered for fd */
    bool sock_registered;
    int async_fds[MAX_ASYNC_FDS];
    size_t n_async;
    bool waiting;            /* a job is paused (last call said WANT_ASYNC) */
    bool closing;            /* free as soon as no job is paused */
    bool dead;               /* freed at the end of this event batch */
    bool on_retry;
    bool keepalive;
    struct conn *retry_next;
    struct conn *run_next;   /* a batch taken off the ready list (loop thread only) */
    struct conn *prev, *next;
    uint64_t last_active_us;
    size_t rlen;
    const char *resp;
    size_t resp_len, woff;
    char rbuf[REQ_MAX];
    /* Callback mode: written by provider worker threads, guarded by lp->ready_lock.
     * In a cache line of their own so that no load of the loop-only flags above
     * (compilers may merge adjacent bools into one wider load) covers these bytes. */
    _Alignas(64) struct {
        struct conn *next;
        bool queued;
    } ready;
};

struct loop {
    int id;
    ev_loop *ev;
    SSL_CTX *ctx;
    int lfd;
    ev_io listen_w;
    bool listen_paused;
    int wakefd;              /* eventfd: stop requests and callback-mode completions */
    ev_io wake_w;
    int sigfd;               /* loop 0 only: SIGINT/SIGTERM */
    ev_io sig_w;
    /* Callback mode: workers push here. A mutex, not a lock-free stack, because a
     * connection can be freed by the loop and must then be unlinked safely. */
    pthread_mutex_t ready_lock;
    struct conn *ready_head;
    struct conn *retry_head; /* resume on the next iteration (EAGAIN, WANT_ASYNC_JOB) */
    struct conn *conns;
    size_t nconns;
    /* Set by the signal-handling loop, read by every loop. Relaxed is enough: the
     * eventfd write that follows is the wake-up, and the flag carries no other data. */
    atomic_bool stop;
    struct stats st;
    pthread_t thread;
};

static struct loop *loops;
static char resp_keepalive[256], resp_close[256];
static size_t resp_keepalive_len, resp_close_len;
static const char body[] = "hello from asyncpool ssl_demo\n";

static void conn_drive(struct conn *c);
static void conn_close(struct conn *c);

/* ---- socket interest and async fds ------------------------------------------------ */

static void sock_want(struct conn *c, uint32_t events)
{
    if (!c->sock_registered || c->sock_events == events)
        return;
    ev_mod(c->lp->ev, c->fd, &c->sock_w, events);
    c->sock_events = events;
}

static void sock_unregister(struct conn *c)
{
    if (!c->sock_registered)
        return;
    ev_del(c->lp->ev, c->fd);
    c->sock_registered = false;
}

/* Mirrors the WAIT_CTX's fd set into epoll. asyncpool keeps one stable eventfd per
 * connection, so this adds it on the first pause and then finds no change. */
static void async_fds_update(struct conn *c)
{
    OSSL_ASYNC_FD add[MAX_ASYNC_FDS], del[MAX_ASYNC_FDS];
    size_t nadd = 0, ndel = 0;

    if (!SSL_get_changed_async_fds(c->ssl, NULL, &nadd, NULL, &ndel))
        return;
    if (nadd > MAX_ASYNC_FDS || ndel > MAX_ASYNC_FDS) {
        fprintf(stderr, "tls_server: too many async fds (%zu added)\n", nadd);
        abort();
    }
    if (nadd == 0 && ndel == 0)
        return;
    SSL_get_changed_async_fds(c->ssl, add, &nadd, del, &ndel);
    for (size_t i = 0; i < ndel; i++) {
        for (size_t j = 0; j < c->n_async; j++) {
            if (c->async_fds[j] == del[i]) {
                ev_del(c->lp->ev, del[i]);
                c->async_fds[j] = c->async_fds[--c->n_async];
                break;
            }
        }
    }
    for (size_t i = 0; i < nadd; i++) {
        if (c->n_async == MAX_ASYNC_FDS)
            abort();
        ev_add(c->lp->ev, add[i], &c->async_w, EPOLLIN);
        c->async_fds[c->n_async++] = add[i];
    }
}

/* ---- connection lifetime --------------------------------------------------------- */

static void conn_destroy(void *arg)
{
    struct conn *c = arg;
    struct loop *lp = c->lp;

    SSL_free(c->ssl);   /* also frees the WAIT_CTX; the provider closes its eventfd */
    if (opt.mode == MODE_ASYNC_CB) {
        /* Only now: a worker may still have been inside on_async_callback for c until
         * SSL_free (freeing the WAIT_CTX waits for a callback in progress, and none
         * starts after), so c may have been linked after conn_free ran. */
        pthread_mutex_lock(&lp->ready_lock);
        if (c->ready.queued) {
            struct conn **pp = &lp->ready_head;

            while (*pp != c)
                pp = &(*pp)->ready.next;
            *pp = c->ready.next;
            c->ready.queued = false;
        }
        pthread_mutex_unlock(&lp->ready_lock);
    }
    free(c);
}

/* Only for a connection whose job is not paused. */
static void conn_free(struct conn *c)
{
    struct loop *lp = c->lp;

    if (c->dead)
        return;
    c->dead = true;
    /* Deregister the async fds before SSL_free closes them, so epoll never holds an fd
     * number the kernel may hand out again. */
    for (size_t i = 0; i < c->n_async; i++)
        ev_del(lp->ev, c->async_fds[i]);
    c->n_async = 0;
    sock_unregister(c);
    close(c->fd);
    if (c->on_retry) {
        struct conn **pp = &lp->retry_head;

        while (*pp != c)
            pp = &(*pp)->retry_next;
        *pp = c->retry_next;
        c->on_retry = false;
    }
    if (c->prev)
        c->prev->next = c->next;
    else
        lp->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    lp->nconns--;
    /* Other events of this batch may still point at c's watchers. */
    ev_defer(lp->ev, conn_destroy, c);
}

/* Ends a connection: now, or when its paused job has finished. */
static void conn_close(struct conn *c)
{
    if (c->dead)
        return;
    if (SSL_waiting_for_async(c->ssl)) {
        if (!c->closing) {
            c->closing = true;
            c->lp->st.deferred_frees++;
        }
        /* The socket is of no more use; the async fd (or callback) stays armed so the
         * job can be resumed to its end. */
        sock_unregister(c);
        return;
    }
    conn_free(c);
}

static void retry_later(struct conn *c)
{
    if (c->on_retry)
        return;
    c->on_retry = true;
    c->retry_next = c->lp->retry_head;
    c->lp->retry_head = c;
}

/* ---- HTTP ------------------------------------------------------------------------ */

/* Returns true once a whole request head is buffered and the response is chosen. */
static bool http_parse(struct conn *c)
{
    char *end;

    c->rbuf[c->rlen] = '\0';
    end = strstr(c->rbuf, "\r\n\r\n");
    if (end == NULL)
        return false;
    *end = '\0';
    /* HTTP/1.1 keeps the connection unless told otherwise; 1.0 closes unless told. */
    c->keepalive = strstr(c->rbuf, "HTTP/1.0") == NULL;
    if (strcasestr(c->rbuf, "\nConnection: close"))
        c->keepalive = false;
    else if (strcasestr(c->rbuf, "\nConnection: keep-alive"))
        c->keepalive = true;
    c->resp = c->keepalive ? resp_keepalive : resp_close;
    c->resp_len = c->keepalive ? resp_keepalive_len : resp_close_len;
    c->woff = 0;
    c->rlen = 0;    /* pipelined requests are not supported: curl and wrk do not send them */
    return true;
}

/* ---- the state machine ----------------------------------------------------------- */

static void conn_drive(struct conn *c)
{
    struct loop *lp = c->lp;

    while (!c->dead) {
        int r, err;

        ERR_clear_error();   /* SSL_get_error reads this thread's queue first */
        switch (c->st) {
        case ST_HANDSHAKE:
            r = SSL_do_handshake(c->ssl);
            break;
        case ST_READ:
            r = SSL_read(c->ssl, c->rbuf + c->rlen, (int)(sizeof(c->rbuf) - 1 - c->rlen));
            break;
        case ST_WRITE:
            r = SSL_write(c->ssl, c->resp + c->woff, (int)(c->resp_len - c->woff));
            break;
        case ST_SHUTDOWN:
        default:
            r = SSL_shutdown(c->ssl);
            if (r == 0)
                r = 1;  /* our close_notify is out; we do not wait for the peer's */
            break;
        }
        err = r > 0 ? SSL_ERROR_NONE : SSL_get_error(c->ssl, r);
        c->waiting = err == SSL_ERROR_WANT_ASYNC;

        if (c->closing) {
            /* Resumed only so that the job could finish. */
            if (!SSL_waiting_for_async(c->ssl))
                conn_free(c);
            else if (opt.mode == MODE_ASYNC_FD)
                async_fds_update(c);
            else if (err == SSL_ERROR_WANT_ASYNC_JOB)
                retry_later(c);
            return;
        }

        switch (err) {
        case SSL_ERROR_NONE:
            break;
        case SSL_ERROR_WANT_READ:
            sock_want(c, EPOLLIN);
            return;
        case SSL_ERROR_WANT_WRITE:
            sock_want(c, EPOLLOUT);
            return;
        case SSL_ERROR_WANT_ASYNC:
            lp->st.pauses++;
            /* Nothing to do on the socket until the job resumes. EPOLLERR/EPOLLHUP are
             * still reported: that is how we learn the peer vanished meanwhile. */
            sock_want(c, 0);
            if (opt.mode == MODE_ASYNC_FD)
                async_fds_update(c);
            return;
        case SSL_ERROR_WANT_ASYNC_JOB:
            /* The per-thread job pool (--max-jobs) is exhausted: not an error, try again
             * after other jobs have had a chance to finish. */
            lp->st.want_job++;
            sock_want(c, 0);
            retry_later(c);
            return;
        case SSL_ERROR_ZERO_RETURN:
            conn_close(c);
            return;
        default:
            /* An abrupt end between requests is a normal client habit, not an error. */
            if (!(c->st == ST_READ && c->rlen == 0) && c->st != ST_SHUTDOWN) {
                lp->st.errors++;
                if (opt.verbose) {
                    fprintf(stderr, "tls_server: conn fd %d state %d: SSL error %d\n",
                            c->fd, c->st, err);
                    ERR_print_errors_fp(stderr);
                }
            }
            ERR_clear_error();
            conn_close(c);
            return;
        }

        /* r > 0: the call completed. */
        switch (c->st) {
        case ST_HANDSHAKE:
            lp->st.handshakes++;
            c->st = ST_READ;
            break;
        case ST_READ:
            c->rlen += (size_t)r;
            if (http_parse(c)) {
                c->st = ST_WRITE;
            } else if (c->rlen >= sizeof(c->rbuf) - 1) {
                lp->st.errors++;     /* request head too long */
                c->st = ST_SHUTDOWN;
            }
            break;
        case ST_WRITE:
            c->woff += (size_t)r;
            if (c->woff == c->resp_len) {
                lp->st.requests++;
                c->st = c->keepalive ? ST_READ : ST_SHUTDOWN;
            }
            break;
        case ST_SHUTDOWN:
            conn_close(c);
            return;
        }
    }
}

/* ---- watchers ------------------------------------------------------------------- */

static void on_sock(ev_loop *ev, ev_io *w, uint32_t events)
{
    struct conn *c = w->data;

    (void)ev;
    if (c->dead)
        return;
    c->last_active_us = ev_now_us();
    if (c->waiting || c->on_retry) {
        /* Only the same SSL call may continue a paused job, and it is the job's
         * completion that triggers it. A hangup here means the peer vanished while the
         * job was paused: the connection is freed when the job is done. */
        if (events & (EPOLLERR | EPOLLHUP))
            conn_close(c);
        return;
    }
    conn_drive(c);
}

/* fd mode: the provider wrote the connection's eventfd. */
static void on_async_fd(ev_loop *ev, ev_io *w, uint32_t events)
{
    struct conn *c = w->data;

    (void)ev;
    (void)events;
    if (c->dead || !c->waiting)
        return;
    conn_drive(c);  /* the same SSL call again resumes the job */
}

/* Callback mode. Runs on a provider worker thread: tiny and thread-safe. */
static int on_async_callback(SSL *ssl, void *arg)
{
    struct conn *c = arg;
    struct loop *lp = c->lp;
    uint64_t one = 1;

    (void)ssl;
    pthread_mutex_lock(&lp->ready_lock);
    if (!c->ready.queued) {
        c->ready.queued = true;
        c->ready.next = lp->ready_head;
        lp->ready_head = c;
    }
    pthread_mutex_unlock(&lp->ready_lock);
    /* Cannot fail short of the 2^64-2 counter limit; a lost wake-up would be caught by
     * the loop's periodic ready-list check anyway. */
    if (write(lp->wakefd, &one, sizeof(one)) < 0)
        return 0;
    return 1;
}

static void run_ready_list(struct loop *lp)
{
    struct conn *list;

    /* Relink the batch through run_next, which only this thread touches: once the lock
     * is released a worker may queue c again (a space wake-up after an EAGAIN) and
     * rewrite c->ready.next while we walk. */
    pthread_mutex_lock(&lp->ready_lock);
    list = lp->ready_head;
    lp->ready_head = NULL;
    for (struct conn *c = list; c != NULL; c = c->ready.next) {
        c->ready.queued = false;
        c->run_next = c->ready.next;
    }
    pthread_mutex_unlock(&lp->ready_lock);

    while (list != NULL) {
        struct conn *c = list;
        int status = ASYNC_STATUS_OK;

        list = c->run_next;
        if (c->dead || !c->waiting)
            continue;
        if (SSL_get_async_status(c->ssl, &status) && status == ASYNC_STATUS_EAGAIN) {
            /* The pool's queue was full: resuming now would only fill it again. */
            lp->st.eagain++;
            retry_later(c);
            continue;
        }
        conn_drive(c);
    }
}

static void on_wake(ev_loop *ev, ev_io *w, uint32_t events)
{
    struct loop *lp = w->data;
    uint64_t v;

    (void)ev;
    (void)events;
    if (read(lp->wakefd, &v, sizeof(v)) < 0 && errno != EAGAIN)
        die("tls_server: read(eventfd): %s", strerror(errno));
    if (opt.mode == MODE_ASYNC_CB)
        run_ready_list(lp);
}

/* SIGUSR1: one line with the heap bytes in use, for leak checks on a running server.
 * Bytes the allocator holds in use, not RSS: glibc keeps freed memory in its per-thread
 * arenas, so RSS moves with the peak of open connections, not with leaks. */
static void print_memory(void)
{
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
    struct mallinfo2 mi = mallinfo2();

    printf("tls_server: memory heap_in_use=%zu\n", mi.uordblks + mi.hblkhd);
#else
    printf("tls_server: memory heap_in_use=unknown\n");
#endif
    fflush(stdout);
}

static void on_signal(ev_loop *ev, ev_io *w, uint32_t events)
{
    struct loop *lp = w->data;
    struct signalfd_siginfo si;
    uint64_t one = 1;

    (void)ev;
    (void)events;
    (void)lp;
    if (read(lp->sigfd, &si, sizeof(si)) != sizeof(si))
        return;
    if (si.ssi_signo == SIGUSR1) {
        print_memory();
        return;
    }
    for (int i = 0; i < opt.loops; i++) {
        atomic_store_explicit(&loops[i].stop, true, memory_order_relaxed);
        if (write(loops[i].wakefd, &one, sizeof(one)) < 0)
            die("tls_server: write(eventfd): %s", strerror(errno));
    }
}

static void conn_new(struct loop *lp, int fd)
{
    struct conn *c = calloc(1, sizeof(*c));
    int one = 1;

    if (c == NULL || (c->ssl = SSL_new(lp->ctx)) == NULL) {
        lp->st.errors++;
        free(c);
        close(fd);
        ERR_clear_error();
        return;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->lp = lp;
    c->fd = fd;
    c->sock_w.cb = on_sock;
    c->sock_w.data = c;
    c->async_w.cb = on_async_fd;
    c->async_w.data = c;
    c->last_active_us = ev_now_us();
    SSL_set_fd(c->ssl, fd);
    SSL_set_accept_state(c->ssl);
    if (opt.mode == MODE_ASYNC_CB && !SSL_set_async_callback_arg(c->ssl, c))
        die("SSL_set_async_callback_arg");
    c->next = lp->conns;
    if (lp->conns)
        lp->conns->prev = c;
    lp->conns = c;
    lp->nconns++;
    lp->st.conns++;
    ev_add(lp->ev, fd, &c->sock_w, EPOLLIN);
    c->sock_events = EPOLLIN;
    c->sock_registered = true;
}

static void on_accept(ev_loop *ev, ev_io *w, uint32_t events)
{
    struct loop *lp = w->data;

    (void)events;
    /* A bounded batch keeps established connections from starving. */
    for (int i = 0; i < 64; i++) {
        int fd = accept4(lp->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (fd >= 0) {
            conn_new(lp, fd);
            continue;
        }
        if (errno == EINTR || errno == ECONNABORTED)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return;
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
            /* Out of descriptors: stop listening for a moment instead of spinning on a
             * level-triggered listener; the periodic tick re-enables it. */
            lp->st.accept_errors++;
            ev_mod(ev, lp->lfd, &lp->listen_w, 0);
            lp->listen_paused = true;
            return;
        }
        die("tls_server: accept4: %s", strerror(errno));
    }
}

/* ---- loops ---------------------------------------------------------------------- */

static int make_listener(int port)
{
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    int one = 1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    if (fd < 0)
        die("socket: %s", strerror(errno));
    if (inet_pton(AF_INET, opt.host, &sa.sin_addr) != 1)
        die("bad --host %s (IPv4 address expected)", opt.host);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    /* Each loop has its own listener on the same port; the kernel spreads accepts. */
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
        die("bind %s:%d: %s", opt.host, port, strerror(errno));
    if (listen(fd, 4096) != 0)
        die("listen: %s", strerror(errno));
    return fd;
}

static void periodic(struct loop *lp, uint64_t now)
{
    if (lp->listen_paused && lp->lfd >= 0) {
        ev_mod(lp->ev, lp->lfd, &lp->listen_w, EPOLLIN);
        lp->listen_paused = false;
    }
    if (opt.idle_timeout > 0) {
        uint64_t limit = (uint64_t)opt.idle_timeout * 1000000u;
        struct conn *c = lp->conns;

        while (c != NULL) {
            struct conn *next = c->next;

            if (!c->closing && !c->waiting && now - c->last_active_us > limit) {
                lp->st.idle_timeouts++;
                conn_close(c);
            }
            c = next;
        }
    }
    /* Callback mode: never rely on a single eventfd write alone. */
    if (opt.mode == MODE_ASYNC_CB)
        run_ready_list(lp);
}

static void begin_stop(struct loop *lp)
{
    struct conn *c = lp->conns;

    if (lp->lfd >= 0) {
        ev_del(lp->ev, lp->lfd);
        close(lp->lfd);
        lp->lfd = -1;
    }
    while (c != NULL) {
        struct conn *next = c->next;

        conn_close(c);
        c = next;
    }
}

static void *loop_run(void *arg)
{
    struct loop *lp = arg;
    uint64_t next_tick = ev_now_us() + 1000000u, deadline = 0;
    bool stopping = false;

    if (opt.max_jobs > 0 && !ASYNC_init_thread((size_t)opt.max_jobs, 0))
        die("ASYNC_init_thread");
    for (;;) {
        uint64_t now;

        /* Retries are resumed after a short wait so a full queue is not hammered. */
        ev_run_once(lp->ev, lp->retry_head ? 1 : (stopping ? 50 : 1000));
        if (lp->retry_head) {
            struct conn *list = lp->retry_head;

            lp->retry_head = NULL;
            while (list != NULL) {
                struct conn *c = list;

                list = c->retry_next;
                c->on_retry = false;
                conn_drive(c);
            }
        }
        now = ev_now_us();
        if (!stopping && atomic_load_explicit(&lp->stop, memory_order_relaxed)) {
            stopping = true;
            deadline = now + DRAIN_SECONDS * 1000000u;
            begin_stop(lp);
        }
        if (now >= next_tick) {
            periodic(lp, now);
            next_tick = now + 1000000u;
        }
        if (stopping) {
            ev_run_once(lp->ev, 0);      /* run the deferred frees of begin_stop */
            if (lp->nconns == 0)
                break;
            if (now > deadline) {
                /* Freeing them would leak their jobs inside libcrypto anyway, and
                 * could crash the worker that still holds them. Report, do not free. */
                lp->st.still_paused = lp->nconns;
                break;
            }
        }
    }
    return NULL;
}

static SSL_CTX *make_ctx(void)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

    if (ctx == NULL)
        die("SSL_CTX_new");
    if (!SSL_CTX_set_min_proto_version(ctx, opt.tls_min)
        || !SSL_CTX_set_max_proto_version(ctx, opt.tls_max))
        die("bad TLS version range");
    for (int i = 0; i < opt.ncert; i++) {
        if (SSL_CTX_use_certificate_chain_file(ctx, opt.cert[i]) != 1)
            die("cannot load certificate %s", opt.cert[i]);
        if (SSL_CTX_use_PrivateKey_file(ctx, opt.key[i], SSL_FILETYPE_PEM) != 1)
            die("cannot load key %s", opt.key[i]);
        if (SSL_CTX_check_private_key(ctx) != 1)
            die("key %s does not match certificate %s", opt.key[i], opt.cert[i]);
    }
    if (opt.ciphers && SSL_CTX_set_cipher_list(ctx, opt.ciphers) != 1)
        die("bad --ciphers %s", opt.ciphers);
    if (opt.ciphersuites && SSL_CTX_set_ciphersuites(ctx, opt.ciphersuites) != 1)
        die("bad --ciphersuites %s", opt.ciphersuites);
    /* Resumption uses tickets only: the server keeps no per-session state, so memory
     * stays flat however many clients come and go. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
    /* RELEASE_BUFFERS: an idle or half-open connection holds no 16 KiB record buffers,
     * which matters when hundreds of them sit there. */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE
                          | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
    if (opt.mode != MODE_SYNC)
        SSL_CTX_set_mode(ctx, SSL_MODE_ASYNC);
    if (opt.mode == MODE_ASYNC_CB && !SSL_CTX_set_async_callback(ctx, on_async_callback))
        die("SSL_CTX_set_async_callback");
    return ctx;
}

static void usage(FILE *f)
{
    fprintf(f,
        "usage: tls_server --cert FILE --key FILE [--cert FILE --key FILE] [options]\n"
        "  -p, --port N          listen port on --host (default 8443; 0 = any free port)\n"
        "  -H, --host ADDR       IPv4 address to listen on (default 127.0.0.1)\n"
        "      --sync            no SSL_MODE_ASYNC (comparison mode)\n"
        "      --callback        SSL_MODE_ASYNC with the async callback instead of fds\n"
        "  -l, --loops N         event loops (threads), default 1\n"
        "      --max-jobs N      ASYNC job pool size per loop (default unlimited)\n"
        "      --idle-timeout S  close idle connections after S seconds (default 30, 0=never)\n"
        "      --tls-min V, --tls-max V   1.2 or 1.3 (default 1.2..1.3)\n"
        "      --ciphers L, --ciphersuites L   TLS<=1.2 / TLS 1.3 cipher lists\n"
        "  -v, --verbose         print each connection error\n"
        "Prints 'listening on HOST:PORT' when ready; SIGINT/SIGTERM stop it with a summary;\n"
        "SIGUSR1 prints 'memory heap_in_use=BYTES' (bytes malloc holds in use).\n");
}

static void parse_args(int argc, char **argv)
{
    static const struct option lo[] = {
        { "port", required_argument, NULL, 'p' }, { "host", required_argument, NULL, 'H' },
        { "cert", required_argument, NULL, 'c' }, { "key", required_argument, NULL, 'k' },
        { "sync", no_argument, NULL, 'S' }, { "callback", no_argument, NULL, 'C' },
        { "loops", required_argument, NULL, 'l' }, { "max-jobs", required_argument, NULL, 'j' },
        { "idle-timeout", required_argument, NULL, 'i' },
        { "tls-min", required_argument, NULL, 'm' }, { "tls-max", required_argument, NULL, 'M' },
        { "ciphers", required_argument, NULL, 'x' },
        { "ciphersuites", required_argument, NULL, 'X' },
        { "verbose", no_argument, NULL, 'v' }, { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    int ch, nkey = 0;

    while ((ch = getopt_long(argc, argv, "p:H:l:vh", lo, NULL)) != -1) {
        switch (ch) {
        case 'p': opt.port = atoi(optarg); break;
        case 'H': opt.host = optarg; break;
        case 'c':
            if (opt.ncert == MAX_CERTS)
                die("too many --cert");
            opt.cert[opt.ncert++] = optarg;
            break;
        case 'k':
            if (nkey == MAX_CERTS)
                die("too many --key");
            opt.key[nkey++] = optarg;
            break;
        case 'S': opt.mode = MODE_SYNC; break;
        case 'C': opt.mode = MODE_ASYNC_CB; break;
        case 'l': opt.loops = atoi(optarg); break;
        case 'j': opt.max_jobs = atoi(optarg); break;
        case 'i': opt.idle_timeout = atoi(optarg); break;
        case 'm': opt.tls_min = parse_tls_version(optarg); break;
        case 'M': opt.tls_max = parse_tls_version(optarg); break;
        case 'x': opt.ciphers = optarg; break;
        case 'X': opt.ciphersuites = optarg; break;
        case 'v': opt.verbose = true; break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); exit(2);
        }
    }
    if (opt.ncert == 0 || opt.ncert != nkey || optind != argc || opt.loops < 1
        || opt.loops > 64 || opt.port < 0 || opt.port > 65535) {
        usage(stderr);
        exit(2);
    }
}

int main(int argc, char **argv)
{
    SSL_CTX *ctx;
    sigset_t sigs;
    struct stats tot = { 0 };
    int have_ap, port;
    char counters[2048];

    parse_args(argc, argv);
    raise_nofile_limit();
    signal(SIGPIPE, SIG_IGN);   /* a vanished peer must give EPIPE, not kill us */
    /* Block the stop signals in every thread; loop 0 reads them from a signalfd. */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);

    resp_keepalive_len = (size_t)snprintf(resp_keepalive, sizeof(resp_keepalive),
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
        "Connection: keep-alive\r\n\r\n%s", sizeof(body) - 1, body);
    resp_close_len = (size_t)snprintf(resp_close, sizeof(resp_close),
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
        "Connection: close\r\n\r\n%s", sizeof(body) - 1, body);

    have_ap = apstats_open();
    if (!have_ap)
        fprintf(stderr, "tls_server: asyncpool provider NOT loaded: crypto runs "
                        "synchronously in the configured provider (set OPENSSL_CONF and "
                        "OPENSSL_MODULES to use it)\n");
    ctx = make_ctx();

    loops = calloc((size_t)opt.loops, sizeof(*loops));
    if (loops == NULL)
        die("calloc");
    port = opt.port;
    for (int i = 0; i < opt.loops; i++) {
        struct loop *lp = &loops[i];

        lp->id = i;
        lp->ctx = ctx;
        lp->ev = ev_loop_new();
        lp->lfd = make_listener(port);
        if (port == 0) {
            struct sockaddr_in sa;
            socklen_t sl = sizeof(sa);

            getsockname(lp->lfd, (struct sockaddr *)&sa, &sl);
            port = ntohs(sa.sin_port);
        }
        lp->listen_w.cb = on_accept;
        lp->listen_w.data = lp;
        ev_add(lp->ev, lp->lfd, &lp->listen_w, EPOLLIN);
        lp->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (lp->wakefd < 0)
            die("eventfd: %s", strerror(errno));
        lp->wake_w.cb = on_wake;
        lp->wake_w.data = lp;
        ev_add(lp->ev, lp->wakefd, &lp->wake_w, EPOLLIN);
        pthread_mutex_init(&lp->ready_lock, NULL);
        atomic_init(&lp->stop, false);
        lp->sigfd = -1;
    }
    loops[0].sigfd = signalfd(-1, &sigs, SFD_NONBLOCK | SFD_CLOEXEC);
    if (loops[0].sigfd < 0)
        die("signalfd: %s", strerror(errno));
    loops[0].sig_w.cb = on_signal;
    loops[0].sig_w.data = &loops[0];
    ev_add(loops[0].ev, loops[0].sigfd, &loops[0].sig_w, EPOLLIN);

    printf("tls_server: listening on %s:%d mode=%s loops=%d provider=%s\n", opt.host, port,
           mode_names[opt.mode], opt.loops, have_ap ? "asyncpool" : "absent");
    fflush(stdout);

    for (int i = 1; i < opt.loops; i++)
        if (pthread_create(&loops[i].thread, NULL, loop_run, &loops[i]) != 0)
            die("pthread_create");
    loop_run(&loops[0]);
    for (int i = 1; i < opt.loops; i++)
        pthread_join(loops[i].thread, NULL);

    for (int i = 0; i < opt.loops; i++) {
        struct stats *s = &loops[i].st;

        tot.conns += s->conns;
        tot.handshakes += s->handshakes;
        tot.errors += s->errors;
        tot.requests += s->requests;
        tot.pauses += s->pauses;
        tot.want_job += s->want_job;
        tot.eagain += s->eagain;
        tot.deferred_frees += s->deferred_frees;
        tot.idle_timeouts += s->idle_timeouts;
        tot.accept_errors += s->accept_errors;
        tot.still_paused += s->still_paused;
    }
    apstats_format(counters, sizeof(counters));
    printf("tls_server: summary mode=%s loops=%d conns=%llu handshakes=%llu errors=%llu "
           "requests=%llu pauses=%llu want_job=%llu eagain=%llu deferred_frees=%llu "
           "idle_timeouts=%llu accept_errors=%llu still_paused=%llu%s\n",
           mode_names[opt.mode], opt.loops,
           (unsigned long long)tot.conns, (unsigned long long)tot.handshakes,
           (unsigned long long)tot.errors, (unsigned long long)tot.requests,
           (unsigned long long)tot.pauses, (unsigned long long)tot.want_job,
           (unsigned long long)tot.eagain, (unsigned long long)tot.deferred_frees,
           (unsigned long long)tot.idle_timeouts, (unsigned long long)tot.accept_errors,
           (unsigned long long)tot.still_paused, counters);
    fflush(stdout);

    if (tot.still_paused != 0) {
        /* Paused jobs still reference the loops and the SSL_CTX: leave them be. */
        return 1;
    }
    for (int i = 0; i < opt.loops; i++) {
        if (loops[i].sigfd >= 0)
            close(loops[i].sigfd);
        close(loops[i].wakefd);
        pthread_mutex_destroy(&loops[i].ready_lock);
        ev_loop_free(loops[i].ev);
    }
    free(loops);
    SSL_CTX_free(ctx);
    apstats_close();
    return 0;
}
