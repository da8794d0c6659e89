/* tls_client: a TLS load client for the demo server (or any HTTPS server).
 *
 * N concurrent connections, each: connect, full handshake (no resumption unless
 * --resume), optionally one HTTP GET, close; repeated for a duration or a count.
 * Prints handshakes/s and handshake latency p50/p99 (connect start to handshake done),
 * with a live progress line when stderr is a terminal. --async runs the client's own
 * handshakes in SSL_MODE_ASYNC jobs too (fd mode). Exit status 0 only if there was at
 * least one handshake and no failure.
 *
 * Responsiveness (--keepalive N): besides the handshake load above (--flood M is -c M,
 * and may be 0), N threads each hold one keep-alive connection, made before the flood
 * and the clock start, and send a
 * small GET on it in a loop, every --ka-interval ms (0: back to back), and record each
 * request's latency: from the time it was due to be sent (so a late send, behind a slow
 * response, counts its wait; wrk2's correction for coordinated omission) to the last byte
 * of the response. Every request due before the end is sent, after the end if it must. Prints a second line with the keep-alive p50/p99/max; the first line
 * still has the flood's handshakes/s. The keep-alive threads use blocking sockets and
 * their own SSL_CTX (never SSL_MODE_ASYNC), so the flood's event loop cannot delay them.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <openssl/async.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "apstats.h"
#include "ev.h"
#include "util.h"

#define MAX_ASYNC_FDS 4

static struct {
    const char *host;
    int port;
    int conc;
    double duration;
    long count;
    double warmup;
    int tls_min, tls_max;
    const char *ciphers, *ciphersuites;
    const char *groups;
    bool resume;
    bool async;
    bool request;
    const char *path;
    int timeout;
    int progress;   /* -1 auto (isatty), 0 off, 1 on */
    bool verbose;
    int keepalive;       /* keep-alive request threads (0: none) */
    double ka_interval;  /* ms between one thread's requests (0: back to back) */
} opt = {
    .host = "127.0.0.1", .port = 8443, .conc = 16, .tls_min = TLS1_2_VERSION,
    .request = true, .path = "/", .timeout = 10, .progress = -1, .ka_interval = 10,
};

enum cstate { C_CONNECT, C_HANDSHAKE, C_WRITE, C_READ, C_SHUTDOWN };

struct slot {
    ev_io sock_w, async_w;
    int fd;
    SSL *ssl;
    enum cstate st;
    bool active, waiting, on_retry;
    struct slot *retry_next;
    int async_fds[MAX_ASYNC_FDS];
    size_t n_async;
    uint32_t events;
    uint64_t t_start;
    size_t woff, rlen, body_start;
    long content_length;   /* -1: read to end of stream */
    char req[512];
    size_t req_len;
    char buf[4096];
};

static struct {
    uint64_t handshakes, failures, resumed, requests;
    char group[64];         /* key exchange group of the last counted handshake */
    uint64_t t0, t_measure, t_end;
    uint32_t *lat;          /* handshake latencies in microseconds */
    size_t nlat, caplat;
    long launched;
    int active;
    bool stopping;
} g;

static ev_loop *loop;
static SSL_CTX *ctx;
static SSL_SESSION *last_session;
static struct slot *retry_head;
static struct sockaddr_in peer;
static struct slot *slots;

static void slot_start(struct slot *s);
static void slot_drive(struct slot *s);

/* Duration mode counts only what completes inside [warm-up end, end): the tail of
 * connections still in flight at the end finishes but is not counted. */
static bool measuring(uint64_t now)
{
    if (opt.count > 0)
        return true;
    return now >= g.t_measure && now < g.t_end;
}

static void record_latency(uint64_t us)
{
    if (g.nlat == g.caplat) {
        size_t cap = g.caplat ? g.caplat * 2 : 4096;
        uint32_t *p = realloc(g.lat, cap * sizeof(*p));

        if (p == NULL)
            die("out of memory");
        g.lat = p;
        g.caplat = cap;
    }
    g.lat[g.nlat++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

/* Keeps the newest session for --resume: with TLS 1.3 it arrives after the handshake,
 * in a ticket, which is why this is a callback and not SSL_get1_session. */
static int on_new_session(SSL *ssl, SSL_SESSION *sess)
{
    (void)ssl;
    if (last_session)
        SSL_SESSION_free(last_session);
    last_session = sess;
    return 1;   /* we keep the reference */
}

static int accept_any_chain(X509_STORE_CTX *sctx, void *arg)
{
    (void)sctx;
    (void)arg;
    return 1;
}

static bool may_launch(void)
{
    if (g.stopping)
        return false;
    if (opt.count > 0)
        return g.launched < opt.count;
    return ev_now_us() < g.t_end;
}

static void slot_sock_want(struct slot *s, uint32_t events)
{
    if (s->events == events)
        return;
    ev_mod(loop, s->fd, &s->sock_w, events);
    s->events = events;
}

static void async_fds_update(struct slot *s)
{
    OSSL_ASYNC_FD add[MAX_ASYNC_FDS], del[MAX_ASYNC_FDS];
    size_t nadd = 0, ndel = 0;

    if (!SSL_get_changed_async_fds(s->ssl, NULL, &nadd, NULL, &ndel)
        || nadd > MAX_ASYNC_FDS || ndel > MAX_ASYNC_FDS || (nadd == 0 && ndel == 0))
        return;
    SSL_get_changed_async_fds(s->ssl, add, &nadd, del, &ndel);
    for (size_t i = 0; i < ndel; i++)
        for (size_t j = 0; j < s->n_async; j++)
            if (s->async_fds[j] == del[i]) {
                ev_del(loop, del[i]);
                s->async_fds[j] = s->async_fds[--s->n_async];
                break;
            }
    for (size_t i = 0; i < nadd && s->n_async < MAX_ASYNC_FDS; i++) {
        ev_add(loop, add[i], &s->async_w, EPOLLIN);
        s->async_fds[s->n_async++] = add[i];
    }
}

/* Ends the current connection (never while a job is paused) and starts the next. */
static void slot_finish(struct slot *s, bool ok)
{
    if (!ok) {
        g.failures++;
        if (opt.verbose) {
            fprintf(stderr, "tls_client: connection failed in state %d\n", s->st);
            ERR_print_errors_fp(stderr);
        }
    }
    ERR_clear_error();
    for (size_t i = 0; i < s->n_async; i++)
        ev_del(loop, s->async_fds[i]);
    s->n_async = 0;
    if (s->fd >= 0) {
        ev_del(loop, s->fd);
        close(s->fd);
        s->fd = -1;
    }
    SSL_free(s->ssl);
    s->ssl = NULL;
    s->active = false;
    s->waiting = false;
    g.active--;
    if (may_launch())
        slot_start(s);
}

static void slot_start(struct slot *s)
{
    int one = 1;

    s->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s->fd < 0)
        die("socket: %s", strerror(errno));
    setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    s->active = true;
    g.active++;
    g.launched++;
    s->t_start = ev_now_us();
    s->st = C_CONNECT;
    s->woff = s->rlen = s->body_start = 0;
    s->content_length = -1;
    ev_add(loop, s->fd, &s->sock_w, EPOLLOUT);
    s->events = EPOLLOUT;
    if (connect(s->fd, (struct sockaddr *)&peer, sizeof(peer)) != 0
        && errno != EINPROGRESS) {
        if (opt.verbose)
            fprintf(stderr, "tls_client: connect: %s\n", strerror(errno));
        slot_finish(s, false);
    }
}

/* Returns true when the whole response is in; false = need more; sets *bad. */
static bool http_response_done(struct slot *s, bool *bad)
{
    if (s->body_start == 0) {
        char *end;

        s->buf[s->rlen] = '\0';
        end = strstr(s->buf, "\r\n\r\n");
        if (end == NULL) {
            *bad = s->rlen >= sizeof(s->buf) - 1;
            return false;
        }
        if (strncmp(s->buf, "HTTP/1.", 7) != 0 || strncmp(s->buf + 8, " 200", 4) != 0) {
            *bad = true;
            return false;
        }
        s->body_start = (size_t)(end - s->buf) + 4;
        {
            char *cl = strcasestr(s->buf, "\r\nContent-Length:");

            if (cl != NULL && cl < end)
                s->content_length = strtol(cl + 17, NULL, 10);
        }
    }
    if (s->content_length >= 0)
        return s->rlen - s->body_start >= (size_t)s->content_length;
    if (s->rlen >= sizeof(s->buf) - 1)
        s->rlen = s->body_start;   /* body without length: keep reading, drop bytes */
    return false;
}

static void slot_drive(struct slot *s)
{
    for (;;) {
        int r, err;
        bool bad = false;

        ERR_clear_error();
        switch (s->st) {
        case C_HANDSHAKE:
            r = SSL_do_handshake(s->ssl);
            break;
        case C_WRITE:
            r = SSL_write(s->ssl, s->req + s->woff, (int)(s->req_len - s->woff));
            break;
        case C_READ:
            r = SSL_read(s->ssl, s->buf + s->rlen, (int)(sizeof(s->buf) - 1 - s->rlen));
            break;
        case C_SHUTDOWN:
        default:
            r = SSL_shutdown(s->ssl);
            if (r == 0)
                r = 1;
            break;
        }
        err = r > 0 ? SSL_ERROR_NONE : SSL_get_error(s->ssl, r);
        s->waiting = err == SSL_ERROR_WANT_ASYNC;
        switch (err) {
        case SSL_ERROR_NONE:
            break;
        case SSL_ERROR_WANT_READ:
            slot_sock_want(s, EPOLLIN);
            return;
        case SSL_ERROR_WANT_WRITE:
            slot_sock_want(s, EPOLLOUT);
            return;
        case SSL_ERROR_WANT_ASYNC:
            slot_sock_want(s, 0);
            async_fds_update(s);
            return;
        case SSL_ERROR_WANT_ASYNC_JOB:
            slot_sock_want(s, 0);
            if (!s->on_retry) {
                s->on_retry = true;
                s->retry_next = retry_head;
                retry_head = s;
            }
            return;
        case SSL_ERROR_ZERO_RETURN:
            /* A response without Content-Length ends with the stream (s_server -www). */
            if (s->st == C_READ && s->body_start != 0 && s->content_length < 0) {
                g.requests++;
                slot_finish(s, true);
            } else {
                slot_finish(s, s->st == C_SHUTDOWN);
            }
            return;
        default:
            if (s->st == C_SHUTDOWN) {   /* the peer closed first: the work is done */
                slot_finish(s, true);
                return;
            }
            if (s->st == C_READ && s->body_start != 0 && s->content_length < 0) {
                g.requests++;
                slot_finish(s, true);
                return;
            }
            slot_finish(s, false);
            return;
        }

        switch (s->st) {
        case C_HANDSHAKE: {
            uint64_t now = ev_now_us();

            if (measuring(now)) {
                const char *group = SSL_group_to_name(s->ssl,
                                                      SSL_get_negotiated_group(s->ssl));

                g.handshakes++;
                if (SSL_session_reused(s->ssl))
                    g.resumed++;
                if (group != NULL)
                    snprintf(g.group, sizeof(g.group), "%s", group);
                record_latency(now - s->t_start);
            }
            s->st = opt.request ? C_WRITE : C_SHUTDOWN;
            break;
        }
        case C_WRITE:
            s->woff += (size_t)r;
            if (s->woff == s->req_len)
                s->st = C_READ;
            break;
        case C_READ:
            s->rlen += (size_t)r;
            if (http_response_done(s, &bad)) {
                g.requests++;
                s->st = C_SHUTDOWN;
            } else if (bad) {
                if (opt.verbose)
                    fprintf(stderr, "tls_client: bad HTTP response\n");
                slot_finish(s, false);
                return;
            }
            break;
        case C_SHUTDOWN:
            slot_finish(s, true);
            return;
        default:
            break;
        }
    }
}

static void on_sock(ev_loop *ev, ev_io *w, uint32_t events)
{
    struct slot *s = w->data;

    (void)ev;
    if (!s->active || s->waiting || s->on_retry)
        return;
    if (s->st == C_CONNECT) {
        int soerr = 0;
        socklen_t sl = sizeof(soerr);

        (void)events;
        getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
        if (soerr != 0) {
            if (opt.verbose)
                fprintf(stderr, "tls_client: connect: %s\n", strerror(soerr));
            slot_finish(s, false);
            return;
        }
        s->ssl = SSL_new(ctx);
        if (s->ssl == NULL)
            die("SSL_new");
        SSL_set_fd(s->ssl, s->fd);
        SSL_set_connect_state(s->ssl);
        SSL_set_tlsext_host_name(s->ssl, "localhost");
        if (opt.resume && last_session != NULL)
            SSL_set_session(s->ssl, last_session);
        s->st = C_HANDSHAKE;
    }
    slot_drive(s);
}

static void on_async_fd(ev_loop *ev, ev_io *w, uint32_t events)
{
    struct slot *s = w->data;

    (void)ev;
    (void)events;
    if (s->active && s->waiting)
        slot_drive(s);
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

    return x < y ? -1 : x > y;
}

/* p-th percentile (0..1) of n sorted latencies in microseconds, in milliseconds */
static double pct_ms(const uint32_t *lat, size_t n, double p)
{
    size_t i;

    if (n == 0)
        return 0;
    i = (size_t)(p * (double)(n - 1) + 0.5);
    return lat[i] / 1000.0;
}

static double percentile_ms(double p)
{
    return pct_ms(g.lat, g.nlat, p);
}

/* ---- keep-alive request threads (--keepalive) ------------------------------------ */

struct ka {
    pthread_t thread;
    SSL *ssl;
    int fd;
    uint32_t *lat;          /* request latencies in microseconds, measured window only */
    size_t nlat, caplat;
    uint64_t requests, failures, reconnects;
    char req[512];
    size_t req_len;
    char buf[4096];
};

static SSL_CTX *ka_ctx;
static struct ka *kas;
/* The keep-alive connections are made before the flood starts and the clock runs: each
 * thread counts itself in ka_ready once connected, then waits for ka_go (main sets
 * g.t_measure and g.t_end first; the release/acquire pair publishes them). */
static atomic_int ka_ready, ka_go;

static void ka_close(struct ka *k)
{
    if (k->ssl != NULL) {
        SSL_shutdown(k->ssl);
        SSL_free(k->ssl);
        k->ssl = NULL;
    }
    if (k->fd >= 0) {
        close(k->fd);
        k->fd = -1;
    }
}

/* Blocking connect and full handshake, with --timeout on every send and receive. */
static bool ka_connect(struct ka *k)
{
    struct timeval tv = { .tv_sec = opt.timeout };
    int one = 1;

    k->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (k->fd < 0)
        return false;
    setsockopt(k->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(k->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(k->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(k->fd, (struct sockaddr *)&peer, sizeof(peer)) != 0
        || (k->ssl = SSL_new(ka_ctx)) == NULL) {
        ka_close(k);
        return false;
    }
    SSL_set_fd(k->ssl, k->fd);
    SSL_set_tlsext_host_name(k->ssl, "localhost");
    if (SSL_connect(k->ssl) != 1) {
        ERR_clear_error();
        ka_close(k);
        return false;
    }
    return true;
}

/* One GET and its whole response. Returns 1 on success, 0 on failure; *closing is set
 * when the server said it closes the connection after this response. */
static int ka_request(struct ka *k, bool *closing)
{
    size_t off = 0, rlen = 0, body = 0;
    long clen = -1;

    *closing = false;
    while (off < k->req_len) {
        int r = SSL_write(k->ssl, k->req + off, (int)(k->req_len - off));

        if (r <= 0)
            return 0;
        off += (size_t)r;
    }
    for (;;) {
        int r = SSL_read(k->ssl, k->buf + rlen, (int)(sizeof(k->buf) - 1 - rlen));
        char *end;

        if (r <= 0)
            return 0;
        rlen += (size_t)r;
        k->buf[rlen] = '\0';
        if (body == 0) {
            char *cl;

            end = strstr(k->buf, "\r\n\r\n");
            if (end == NULL) {
                if (rlen >= sizeof(k->buf) - 1)
                    return 0;
                continue;
            }
            if (strncmp(k->buf, "HTTP/1.", 7) != 0 || strncmp(k->buf + 8, " 200", 4) != 0)
                return 0;
            *end = '\0';
            cl = strcasestr(k->buf, "\r\nContent-Length:");
            if (cl == NULL)
                return 0;   /* keep-alive needs a length */
            clen = strtol(cl + 17, NULL, 10);
            *closing = strcasestr(k->buf, "\r\nConnection: close") != NULL;
            body = (size_t)(end - k->buf) + 4;
        }
        if (rlen - body >= (size_t)clen)
            return 1;
        if (rlen >= sizeof(k->buf) - 1) {   /* a long body: keep only the header's place */
            clen -= (long)(rlen - body);
            rlen = body;
        }
    }
}

static void sleep_until_us(uint64_t t)
{
    struct timespec ts = { .tv_sec = (time_t)(t / 1000000u),
                           .tv_nsec = (long)(t % 1000000u) * 1000 };

    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

static void *ka_main(void *arg)
{
    struct ka *k = arg;
    uint64_t interval = (uint64_t)(opt.ka_interval * 1000.0);
    uint64_t next = 0, now, give_up = ev_now_us() + (uint64_t)opt.timeout * 1000000u;

    while (!ka_connect(k)) {
        k->failures++;
        if (opt.verbose)
            fprintf(stderr, "tls_client: keep-alive connect/handshake failed\n");
        if (ev_now_us() > give_up)
            break;
        sleep_until_us(ev_now_us() + 10000);
    }
    atomic_fetch_add(&ka_ready, 1);
    while (!atomic_load_explicit(&ka_go, memory_order_acquire))
        sleep_until_us(ev_now_us() + 1000);
    /* Every request due before the end is sent, late if a slow response held it up
     * (those are the samples that matter most); none is started after the end plus
     * --timeout. */
    for (;;) {
        uint64_t due, done;
        bool closing;
        int ok;

        now = ev_now_us();
        due = interval == 0 || next == 0 ? now : next;
        if (due >= g.t_end || now >= g.t_end + (uint64_t)opt.timeout * 1000000u)
            break;
        if (k->ssl == NULL && !ka_connect(k)) {
            k->failures++;
            if (opt.verbose)
                fprintf(stderr, "tls_client: keep-alive connect/handshake failed\n");
            sleep_until_us(now + 10000);
            next = 0;   /* the requests due meanwhile are lost: the failure is counted */
            continue;
        }
        if (due > now)
            sleep_until_us(due);
        next = due + interval;
        ok = ka_request(k, &closing);
        done = ev_now_us();
        if (!ok) {
            k->failures++;
            if (opt.verbose) {
                fprintf(stderr, "tls_client: keep-alive request failed\n");
                ERR_print_errors_fp(stderr);
            }
            ERR_clear_error();
            ka_close(k);
            next = 0;
            continue;
        }
        if (due >= g.t_measure && due < g.t_end) {
            uint64_t us = done - due;

            if (k->nlat == k->caplat) {
                size_t cap = k->caplat ? k->caplat * 2 : 4096;
                uint32_t *p = realloc(k->lat, cap * sizeof(*p));

                if (p == NULL)
                    die("out of memory");
                k->lat = p;
                k->caplat = cap;
            }
            k->lat[k->nlat++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
            k->requests++;
        }
        if (closing) {   /* the server ends keep-alive (nginx's keepalive_requests) */
            k->reconnects++;
            ka_close(k);
        }
    }
    ka_close(k);
    return NULL;
}

/* Starts the threads and waits (up to --timeout) until their connections are made. */
static void ka_start(void)
{
    uint64_t give_up = ev_now_us() + (uint64_t)opt.timeout * 1000000u + 500000u;

    kas = calloc((size_t)opt.keepalive, sizeof(*kas));
    if (kas == NULL)
        die("calloc");
    for (int i = 0; i < opt.keepalive; i++) {
        struct ka *k = &kas[i];

        k->fd = -1;
        k->req_len = (size_t)snprintf(k->req, sizeof(k->req),
                                      "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: tls_client\r\n"
                                      "Connection: keep-alive\r\n\r\n", opt.path, opt.host);
        if (pthread_create(&k->thread, NULL, ka_main, k) != 0)
            die("pthread_create");
    }
    while (atomic_load(&ka_ready) < opt.keepalive && ev_now_us() < give_up)
        sleep_until_us(ev_now_us() + 1000);
}

/* Joins the threads and prints the keep-alive line; returns true if all went well. */
static bool ka_finish(void)
{
    uint64_t reqs = 0, fails = 0, recon = 0;
    uint32_t *all;
    size_t n = 0;

    for (int i = 0; i < opt.keepalive; i++) {
        pthread_join(kas[i].thread, NULL);
        n += kas[i].nlat;
    }
    all = malloc((n ? n : 1) * sizeof(*all));
    if (all == NULL)
        die("out of memory");
    n = 0;
    for (int i = 0; i < opt.keepalive; i++) {
        struct ka *k = &kas[i];

        if (k->nlat)
            memcpy(all + n, k->lat, k->nlat * sizeof(*all));
        n += k->nlat;
        reqs += k->requests;
        fails += k->failures;
        recon += k->reconnects;
        free(k->lat);
    }
    qsort(all, n, sizeof(*all), cmp_u32);
    printf("tls_client: keepalive clients=%d interval_ms=%.1f requests=%llu failures=%llu "
           "reconnects=%llu req_per_s=%.1f ka_p50_ms=%.3f ka_p90_ms=%.3f ka_p99_ms=%.3f "
           "ka_max_ms=%.3f\n",
           opt.keepalive, opt.ka_interval, (unsigned long long)reqs,
           (unsigned long long)fails, (unsigned long long)recon,
           opt.duration > 0 ? (double)reqs / opt.duration : 0.0, pct_ms(all, n, 0.50),
           pct_ms(all, n, 0.90), pct_ms(all, n, 0.99), n ? all[n - 1] / 1000.0 : 0.0);
    free(all);
    free(kas);
    return reqs > 0 && fails == 0;
}

static void usage(FILE *f)
{
    fprintf(f,
        "usage: tls_client [options]\n"
        "  -H, --host ADDR       server IPv4 address (default 127.0.0.1)\n"
        "  -p, --port N          server port (default 8443)\n"
        "  -c, --concurrency N   connections in flight (default 16)\n"
        "  -d, --duration S      run for S seconds (default 5 when -n is not given)\n"
        "  -n, --count N         run exactly N connections\n"
        "  -w, --warmup S        do not count the first S seconds (duration mode)\n"
        "      --tls V           1.2 or 1.3 (default: negotiate, max 1.3)\n"
        "      --ciphers L, --ciphersuites L   TLS<=1.2 / TLS 1.3 cipher lists\n"
        "      --groups L        key exchange groups, e.g. X25519MLKEM768 (OpenSSL 3.5+)\n"
        "      --resume          resume sessions (default: full handshakes only)\n"
        "      --async           SSL_MODE_ASYNC on the client side (fd mode)\n"
        "      --no-request      handshake only, no HTTP GET\n"
        "      --path P          request path (default /)\n"
        "      --timeout S       per-connection timeout (default 10)\n"
        "      --progress, --no-progress   live line (default: when stderr is a tty)\n"
        "  -v, --verbose         print each failure\n"
        "Responsiveness (duration mode only):\n"
        "      --keepalive N     N threads, one established keep-alive connection each,\n"
        "                        sending a GET in a loop; prints their latency p50/p99\n"
        "      --flood M         the handshake load meanwhile: same as -c M; 0 = none\n"
        "      --ka-interval MS  one thread's requests are due every MS ms (default 10;\n"
        "                        0 = back to back); latency counts from the due time\n");
}

static void parse_args(int argc, char **argv)
{
    static const struct option lo[] = {
        { "host", required_argument, NULL, 'H' }, { "port", required_argument, NULL, 'p' },
        { "concurrency", required_argument, NULL, 'c' },
        { "duration", required_argument, NULL, 'd' }, { "count", required_argument, NULL, 'n' },
        { "warmup", required_argument, NULL, 'w' }, { "tls", required_argument, NULL, 'T' },
        { "ciphers", required_argument, NULL, 'x' },
        { "ciphersuites", required_argument, NULL, 'X' },
        { "groups", required_argument, NULL, 'r' },
        { "resume", no_argument, NULL, 'R' }, { "async", no_argument, NULL, 'A' },
        { "no-request", no_argument, NULL, 'N' }, { "path", required_argument, NULL, 'P' },
        { "timeout", required_argument, NULL, 't' },
        { "progress", no_argument, NULL, 'g' }, { "no-progress", no_argument, NULL, 'G' },
        { "verbose", no_argument, NULL, 'v' }, { "help", no_argument, NULL, 'h' },
        { "keepalive", required_argument, NULL, 'K' }, { "flood", required_argument, NULL, 'F' },
        { "ka-interval", required_argument, NULL, 'I' },
        { NULL, 0, NULL, 0 }
    };
    int ch;

    while ((ch = getopt_long(argc, argv, "H:p:c:d:n:w:vh", lo, NULL)) != -1) {
        switch (ch) {
        case 'H': opt.host = optarg; break;
        case 'p': opt.port = atoi(optarg); break;
        case 'c': opt.conc = atoi(optarg); break;
        case 'd': opt.duration = atof(optarg); break;
        case 'n': opt.count = atol(optarg); break;
        case 'w': opt.warmup = atof(optarg); break;
        case 'T': opt.tls_min = opt.tls_max = parse_tls_version(optarg); break;
        case 'x': opt.ciphers = optarg; break;
        case 'X': opt.ciphersuites = optarg; break;
        case 'r': opt.groups = optarg; break;
        case 'R': opt.resume = true; break;
        case 'A': opt.async = true; break;
        case 'N': opt.request = false; break;
        case 'P': opt.path = optarg; break;
        case 't': opt.timeout = atoi(optarg); break;
        case 'g': opt.progress = 1; break;
        case 'G': opt.progress = 0; break;
        case 'v': opt.verbose = true; break;
        case 'K': opt.keepalive = atoi(optarg); break;
        case 'F': opt.conc = atoi(optarg); break;
        case 'I': opt.ka_interval = atof(optarg); break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); exit(2);
        }
    }
    if (optind != argc || opt.conc < (opt.keepalive > 0 ? 0 : 1) || opt.port <= 0
        || opt.port > 65535 || opt.timeout < 1 || opt.count < 0 || opt.duration < 0
        || opt.keepalive < 0 || opt.keepalive > 1024 || opt.ka_interval < 0
        || (opt.keepalive > 0 && opt.count > 0)) {
        usage(stderr);
        exit(2);
    }
    if (opt.count == 0 && opt.duration == 0)
        opt.duration = 5;
    if (opt.count > 0)
        opt.warmup = 0;   /* a count means every connection counts */
}

/* keepalive: for the keep-alive threads (no session callback: it is not thread-safe) */
static SSL_CTX *make_ctx(bool keepalive)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

    if (ctx == NULL)
        die("SSL_CTX_new");
    if (!SSL_CTX_set_min_proto_version(ctx, opt.tls_min)
        || !SSL_CTX_set_max_proto_version(ctx, opt.tls_max))
        die("bad TLS version");
    if (opt.ciphers && SSL_CTX_set_cipher_list(ctx, opt.ciphers) != 1)
        die("bad --ciphers %s", opt.ciphers);
    if (opt.ciphersuites && SSL_CTX_set_ciphersuites(ctx, opt.ciphersuites) != 1)
        die("bad --ciphersuites %s", opt.ciphersuites);
    if (opt.groups && SSL_CTX_set1_groups_list(ctx, opt.groups) != 1)
        die("bad --groups %s", opt.groups);
    /* Test certificates on loopback: no verification. The callback replaces
     * X509_verify_cert, which SSL_VERIFY_NONE alone still runs (and ignores): chain
     * building is client CPU that would be taken from the server under test. */
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_cert_verify_callback(ctx, accept_any_chain, NULL);
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
    if (opt.resume && !keepalive) {
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT
                                            | SSL_SESS_CACHE_NO_INTERNAL_STORE);
        SSL_CTX_sess_set_new_cb(ctx, on_new_session);
    } else {
        /* Full handshakes: no cache, and ask the server for no tickets (TLS 1.2). */
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
        SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    }
    return ctx;
}

int main(int argc, char **argv)
{
    int have_ap;
    uint64_t next_progress, hard_end, now;
    bool tty, ka_ok = true;
    double secs;
    char counters[2048];

    parse_args(argc, argv);
    raise_nofile_limit();
    signal(SIGPIPE, SIG_IGN);
    tty = opt.progress == 1 || (opt.progress == -1 && isatty(STDERR_FILENO));

    memset(&peer, 0, sizeof(peer));
    peer.sin_family = AF_INET;
    peer.sin_port = htons((uint16_t)opt.port);
    if (inet_pton(AF_INET, opt.host, &peer.sin_addr) != 1)
        die("bad --host %s (IPv4 address expected)", opt.host);

    have_ap = apstats_open();
    if (opt.async && !have_ap)
        fprintf(stderr, "tls_client: asyncpool provider NOT loaded: --async jobs will "
                        "never pause\n");

    ctx = make_ctx(false);
    if (opt.keepalive > 0)
        ka_ctx = make_ctx(true);   /* never SSL_MODE_ASYNC: its threads block */
    if (opt.async)
        SSL_CTX_set_mode(ctx, SSL_MODE_ASYNC);

    loop = ev_loop_new();
    slots = calloc((size_t)(opt.conc > 0 ? opt.conc : 1), sizeof(*slots));
    if (slots == NULL)
        die("calloc");

    if (opt.keepalive > 0)
        ka_start();   /* connected before the flood starts */
    g.t0 = ev_now_us();
    g.t_measure = g.t0 + (uint64_t)(opt.warmup * 1e6);
    g.t_end = g.t_measure + (uint64_t)(opt.duration * 1e6);
    atomic_store_explicit(&ka_go, 1, memory_order_release);
    for (int i = 0; i < opt.conc; i++) {
        struct slot *s = &slots[i];

        s->fd = -1;
        s->sock_w.cb = on_sock;
        s->sock_w.data = s;
        s->async_w.cb = on_async_fd;
        s->async_w.data = s;
        s->req_len = (size_t)snprintf(s->req, sizeof(s->req),
                                      "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: tls_client\r\n"
                                      "Connection: close\r\n\r\n", opt.path, opt.host);
        if (may_launch())
            slot_start(s);
    }

    next_progress = g.t0 + 1000000u;
    hard_end = 0;
    while (g.active > 0) {
        ev_run_once(loop, retry_head ? 1 : 100);
        while (retry_head != NULL) {
            struct slot *s = retry_head;

            retry_head = s->retry_next;
            s->on_retry = false;
            slot_drive(s);
        }
        now = ev_now_us();
        if (!may_launch() && hard_end == 0)
            hard_end = now + (uint64_t)opt.timeout * 1000000u;
        /* Per-connection timeout. A paused job is never freed; it is left to finish. */
        for (int i = 0; i < opt.conc; i++) {
            struct slot *s = &slots[i];

            if (s->active && !s->waiting && !s->on_retry
                && (now - s->t_start > (uint64_t)opt.timeout * 1000000u
                    || (hard_end != 0 && now > hard_end))) {
                if (opt.verbose)
                    fprintf(stderr, "tls_client: connection timed out\n");
                g.stopping = hard_end != 0 && now > hard_end;
                slot_finish(s, false);
            }
        }
        if (tty && now >= next_progress) {
            double t = (double)(now - g.t_measure) / 1e6;

            fprintf(stderr, "\r%6.1fs  handshakes %-9llu %8.1f/s  failures %llu  in flight %d   ",
                    t, (unsigned long long)g.handshakes,
                    t > 0 ? (double)g.handshakes / t : 0.0,
                    (unsigned long long)g.failures, g.active);
            next_progress = now + 1000000u;
        }
    }
    now = ev_now_us();
    if (tty)
        fputc('\n', stderr);

    secs = opt.count > 0 ? (double)(now - g.t0) / 1e6 : opt.duration;
    qsort(g.lat, g.nlat, sizeof(*g.lat), cmp_u32);
    apstats_format(counters, sizeof(counters));
    printf("tls_client: handshakes=%llu failures=%llu resumed=%llu requests=%llu "
           "elapsed=%.2f hs_per_s=%.1f p50_ms=%.2f p99_ms=%.2f concurrency=%d async=%d "
           "group=%s%s\n",
           (unsigned long long)g.handshakes, (unsigned long long)g.failures,
           (unsigned long long)g.resumed, (unsigned long long)g.requests, secs,
           secs > 0 ? (double)g.handshakes / secs : 0.0,
           percentile_ms(0.50), percentile_ms(0.99), opt.conc, opt.async ? 1 : 0,
           g.group[0] != '\0' ? g.group : "none", opt.async ? counters : "");
    if (opt.keepalive > 0)
        ka_ok = ka_finish();

    free(g.lat);
    free(slots);
    if (last_session)
        SSL_SESSION_free(last_session);
    SSL_CTX_free(ctx);
    SSL_CTX_free(ka_ctx);
    ev_loop_free(loop);
    apstats_close();
    return g.failures == 0 && (g.handshakes > 0 || opt.conc == 0) && ka_ok ? 0 : 1;
}
