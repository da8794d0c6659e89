/*
 * TLS data integrity with every record offloaded.
 *
 * Client and server SSL objects in one process, over a socketpair, both with
 * SSL_MODE_ASYNC, in a library context whose asyncpool has inline_threshold = 0, so that
 * every record's encryption and decryption pauses its job and runs on a worker. Both
 * sides stream megabytes of a known pseudo-random sequence at each other in random-sized
 * writes and reads, retrying exactly the call that returned SSL_ERROR_WANT_ASYNC (as an
 * application must), and every byte received is checked. TLS 1.3 (AES-GCM, ChaCha20)
 * and TLS 1.2 (AES-GCM through EVP_Cipher with the TLS1 AAD, ChaCha20).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <check.h>
#include <openssl/err.h>
#include <openssl/provider.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "ptest.h"

/* Bytes each way: 2 MiB, 256 KiB under valgrind (same assertions). */
#define STREAM ((size_t)(ap_valgrind() ? 256u << 10 : 2u << 20))

static OSSL_LIB_CTX *lib;
static OSSL_PROVIDER *prov;
static EVP_PKEY *key;
static X509 *cert;

/* The byte at position i of direction d: cheap, position-addressable, not periodic. */
static unsigned char stream_byte(int d, size_t i)
{
    uint64_t x = (i + 1) * 0x9E3779B97F4A7C15ull ^ (uint64_t)(d + 1) * 0xD1B54A32D192ED03ull;

    x ^= x >> 29;
    x *= 0xBF58476D1CE4E5B9ull;
    x ^= x >> 32;
    return (unsigned char)x;
}

static uint64_t counter(const char *name)
{
    uint64_t v = 0;
    OSSL_PARAM p[] = {OSSL_PARAM_uint64(name, &v), OSSL_PARAM_END};

    ck_assert_msg(OSSL_PROVIDER_get_params(prov, p), "cannot read %s", name);
    return v;
}

static void setup(void)
{
    char path[] = "/tmp/ap_tls_integrity_XXXXXX";
    int fd = mkstemp(path);
    FILE *f;
    X509_NAME *name;

    ck_assert_int_ge(fd, 0);
    f = fdopen(fd, "w");
    fprintf(f, "openssl_conf = init\n[init]\nproviders = provs\nalg_section = algs\n"
               "[provs]\ndefault = dflt\nasyncpool = ap\n[dflt]\nactivate = 1\n"
               "[ap]\nactivate = 1\ninline_threshold = 0\n"
               "[algs]\ndefault_properties = ?provider=asyncpool\n");
    fclose(f);
    lib = OSSL_LIB_CTX_new();
    ck_assert_msg(OSSL_LIB_CTX_load_config(lib, path), "config with inline_threshold = 0");
    unlink(path);
    prov = OSSL_PROVIDER_load(lib, "asyncpool"); /* a reference for get_params */
    ck_assert_msg(prov != NULL, "asyncpool not loaded (OPENSSL_MODULES?)");

    key = EVP_PKEY_Q_keygen(lib, NULL, "EC", "P-256");
    ck_assert_ptr_nonnull(key);
    cert = X509_new_ex(lib, NULL);
    X509_set_version(cert, X509_VERSION_3);
    ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
    X509_gmtime_adj(X509_getm_notBefore(cert), -60);
    X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
    name = X509_get_subject_name(cert);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"localhost", -1,
                               -1, 0);
    X509_set_issuer_name(cert, name);
    X509_set_pubkey(cert, key);
    ck_assert_int_gt(X509_sign(cert, key, EVP_sha256()), 0);
}

static void teardown(void)
{
    X509_free(cert);
    EVP_PKEY_free(key);
    OSSL_PROVIDER_unload(prov);
    OSSL_LIB_CTX_free(lib);
}

struct side {
    SSL *ssl;
    int fd;
    int handshaken;
    size_t sent, rcvd;
    /* The call that returned SSL_ERROR_WANT_ASYNC ('h'andshake, 'w'rite, 'r'ead): the
     * only call we may make next. */
    int async_op;
    int wpending; /* wbuf/wlen hold a write not yet accepted: retry it unchanged */
    int turn;
    size_t wlen, rlen;
    unsigned char wbuf[65536], rbuf[40000];
    int dir; /* direction index of what this side sends */
    int pauses;
};

static unsigned seed = 12345;

static size_t rnd_size(size_t max)
{
    seed = seed * 1103515245u + 12345u;
    return 1 + (seed >> 8) % max;
}

/* One call on one side. Returns 2 if it made progress, 1 if it must wait, 0 on error. */
static int step(struct side *s)
{
    int r, err, op;

    if (s->async_op != 0) {
        /* Resume only when the provider says so (its fd is readable). */
        OSSL_ASYNC_FD fd;
        size_t nfds = 1;
        struct pollfd p = {.events = POLLIN};

        if (!SSL_get_all_async_fds(s->ssl, NULL, &nfds) || nfds != 1
            || !SSL_get_all_async_fds(s->ssl, &fd, &nfds))
            return 0;
        p.fd = fd;
        if (poll(&p, 1, 0) != 1)
            return 1;
        op = s->async_op;
    } else if (!s->handshaken) {
        op = 'h';
    } else {
        s->turn ^= 1;
        op = (s->turn || s->rcvd >= STREAM) && s->sent < STREAM ? 'w' : 'r';
        if (op == 'r' && s->rcvd >= STREAM)
            return 1;
    }
    if (op == 'w' && !s->wpending) {
        size_t i;

        s->wlen = rnd_size(sizeof(s->wbuf));
        if (s->wlen > STREAM - s->sent)
            s->wlen = STREAM - s->sent;
        for (i = 0; i < s->wlen; i++)
            s->wbuf[i] = stream_byte(s->dir, s->sent + i);
        s->wpending = 1;
    }
    if (op == 'r' && s->async_op == 0)
        s->rlen = rnd_size(sizeof(s->rbuf));

    r = op == 'h' ? SSL_do_handshake(s->ssl)
        : op == 'w' ? SSL_write(s->ssl, s->wbuf, (int)s->wlen)
                    : SSL_read(s->ssl, s->rbuf, (int)s->rlen);
    err = SSL_get_error(s->ssl, r);
    switch (err) {
    case SSL_ERROR_NONE:
        s->async_op = 0;
        if (op == 'h') {
            s->handshaken = 1;
        } else if (op == 'w') {
            s->sent += (size_t)r;
            s->wpending = 0;
        } else {
            int i;

            for (i = 0; i < r; i++)
                ck_assert_msg(s->rbuf[i] == stream_byte(!s->dir, s->rcvd + (size_t)i),
                              "byte %zu of direction %d is wrong", s->rcvd + (size_t)i,
                              !s->dir);
            s->rcvd += (size_t)r;
        }
        return 2;
    case SSL_ERROR_WANT_ASYNC:
        s->async_op = op;
        s->pauses++;
        return 1;
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
        /* Not a paused job: other calls may come in between (a write stays wpending and
         * is retried later with the same buffer). */
        s->async_op = 0;
        return 1;
    default:
        ap_dump_errors("TLS");
        return 0;
    }
}

/* Wait for something to do: the socket, or either side's async fd. */
static void wait_any(struct side *a, struct side *b)
{
    struct pollfd p[8];
    int n = 0, k;
    struct side *sides[2] = {a, b};

    for (k = 0; k < 2; k++) {
        OSSL_ASYNC_FD fds[2];
        size_t nfds = 0, i;

        p[n].fd = sides[k]->fd;
        p[n].events = POLLIN | (sides[k]->wpending ? POLLOUT : 0);
        n++;
        if (SSL_waiting_for_async(sides[k]->ssl) && SSL_get_all_async_fds(sides[k]->ssl, NULL, &nfds)
            && nfds <= 2 && SSL_get_all_async_fds(sides[k]->ssl, fds, &nfds))
            for (i = 0; i < nfds; i++) {
                p[n].fd = fds[i];
                p[n].events = POLLIN;
                n++;
            }
    }
    poll(p, (nfds_t)n, 1000);
}

static void run_stream(int version, const char *ciphers, const char *suites)
{
    SSL_CTX *sctx = SSL_CTX_new_ex(lib, NULL, TLS_server_method());
    SSL_CTX *cctx = SSL_CTX_new_ex(lib, NULL, TLS_client_method());
    static struct side cli, srv;
    int sv[2], guard = 0;
    uint64_t off0 = counter("asyncpool.cipher.offloaded");

    ck_assert_ptr_nonnull(sctx);
    ck_assert_ptr_nonnull(cctx);
    ck_assert(SSL_CTX_use_certificate(sctx, cert) && SSL_CTX_use_PrivateKey(sctx, key));
    SSL_CTX_set_min_proto_version(sctx, version);
    SSL_CTX_set_max_proto_version(sctx, version);
    SSL_CTX_set_min_proto_version(cctx, version);
    SSL_CTX_set_max_proto_version(cctx, version);
    if (ciphers != NULL)
        ck_assert(SSL_CTX_set_cipher_list(cctx, ciphers));
    if (suites != NULL)
        ck_assert(SSL_CTX_set_ciphersuites(cctx, suites));
    SSL_CTX_set_mode(sctx, SSL_MODE_ASYNC);
    SSL_CTX_set_mode(cctx, SSL_MODE_ASYNC);
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);

    memset(&cli, 0, sizeof(cli));
    memset(&srv, 0, sizeof(srv));
    cli.ssl = SSL_new(cctx);
    srv.ssl = SSL_new(sctx);
    cli.fd = sv[0];
    srv.fd = sv[1];
    cli.dir = 0;
    srv.dir = 1;
    SSL_set_fd(cli.ssl, sv[0]);
    SSL_set_fd(srv.ssl, sv[1]);
    SSL_set_connect_state(cli.ssl);
    SSL_set_accept_state(srv.ssl);

    while (cli.rcvd < STREAM || srv.rcvd < STREAM) {
        int rc = step(&cli), rs = step(&srv);

        ck_assert(rc != 0 && rs != 0);
        ck_assert_msg(++guard < 5000000, "no progress: cli sent %zu rcvd %zu, srv sent %zu rcvd %zu",
                      cli.sent, cli.rcvd, srv.sent, srv.rcvd);
        if (rc != 2 && rs != 2)
            wait_any(&cli, &srv);
    }
    ck_assert_uint_eq(cli.rcvd, STREAM);
    ck_assert_uint_eq(srv.rcvd, STREAM);
    ck_assert_msg(cli.pauses > 0 && srv.pauses > 0, "jobs never paused (cli %d, srv %d)",
                  cli.pauses, srv.pauses);
    /* Every record is at least one offloaded cipher call on each side. */
    ck_assert_msg(counter("asyncpool.cipher.offloaded") - off0 >= 2 * (STREAM / 16384),
                  "cipher offloaded only %llu times",
                  (unsigned long long)(counter("asyncpool.cipher.offloaded") - off0));
    SSL_free(cli.ssl);
    SSL_free(srv.ssl);
    close(sv[0]);
    close(sv[1]);
    SSL_CTX_free(sctx);
    SSL_CTX_free(cctx);
}

START_TEST(tls13_aes_gcm)
{
    run_stream(TLS1_3_VERSION, NULL, "TLS_AES_128_GCM_SHA256");
}
END_TEST

START_TEST(tls13_chacha)
{
    run_stream(TLS1_3_VERSION, NULL, "TLS_CHACHA20_POLY1305_SHA256");
}
END_TEST

START_TEST(tls12_aes_gcm)
{
    run_stream(TLS1_2_VERSION, "ECDHE-ECDSA-AES256-GCM-SHA384", NULL);
}
END_TEST

START_TEST(tls12_chacha)
{
    run_stream(TLS1_2_VERSION, "ECDHE-ECDSA-CHACHA20-POLY1305", NULL);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("tls_integrity");
    TCase *tc = tcase_create("stream");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, tls13_aes_gcm);
    tcase_add_test(tc, tls13_chacha);
    tcase_add_test(tc, tls12_aes_gcm);
    tcase_add_test(tc, tls12_chacha);
    suite_add_tcase(s, tc);
    return ap_run_suite(s);
}
