/* tls_hostile: misbehaving TLS clients, to check that the demo server survives them.
 *
 *   tls_hostile -p PORT garbage N      N connections that send random bytes, then close
 *   tls_hostile -p PORT abort N        N connections that send a real ClientHello and
 *                                      reset the connection a moment later, while the
 *                                      server's handshake job is likely paused
 *   tls_hostile -p PORT halfopen N S   N connections that send half a ClientHello and
 *                                      then nothing, held for S seconds, then reset
 * Exit status 0 when every connection could be opened.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>
#include <openssl/ssl.h>

#include "util.h"

static struct sockaddr_in peer;

static int connect_blocking(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0)
        die("socket: %s", strerror(errno));
    if (connect(fd, (struct sockaddr *)&peer, sizeof(peer)) != 0) {
        fprintf(stderr, "tls_hostile: connect: %s\n", strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

/* close() after SO_LINGER {1, 0} sends a RST: the peer sees an error, not an EOF. */
static void reset_close(int fd)
{
    struct linger lg = { .l_onoff = 1, .l_linger = 0 };

    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(fd);
}

/* A genuine ClientHello, produced by libssl into a memory BIO. */
static size_t client_hello(unsigned char *out, size_t cap)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL *ssl = ctx ? SSL_new(ctx) : NULL;
    BIO *rb = BIO_new(BIO_s_mem()), *wb = BIO_new(BIO_s_mem());
    int n;

    if (ssl == NULL || rb == NULL || wb == NULL)
        die("tls_hostile: SSL setup");
    SSL_set_bio(ssl, rb, wb);
    SSL_set_connect_state(ssl);
    (void)SSL_do_handshake(ssl);   /* writes the ClientHello, then wants to read */
    n = BIO_read(wb, out, (int)cap);
    if (n <= 0)
        die("tls_hostile: no ClientHello");
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    return (size_t)n;
}

static void sleep_us(long us)
{
    struct timespec ts = { .tv_sec = us / 1000000, .tv_nsec = (us % 1000000) * 1000 };

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

int main(int argc, char **argv)
{
    const char *mode;
    long n, hold = 0, failed = 0;
    int port;
    unsigned char hello[2048];
    size_t hello_len;

    if (argc < 5 || strcmp(argv[1], "-p") != 0) {
        fprintf(stderr, "usage: tls_hostile -p PORT garbage|abort|halfopen N [SECONDS]\n");
        return 2;
    }
    port = atoi(argv[2]);
    mode = argv[3];
    n = atol(argv[4]);
    if (argc > 5)
        hold = atol(argv[5]);
    raise_nofile_limit();
    memset(&peer, 0, sizeof(peer));
    peer.sin_family = AF_INET;
    peer.sin_port = htons((uint16_t)port);
    inet_pton(AF_INET, "127.0.0.1", &peer.sin_addr);
    hello_len = client_hello(hello, sizeof(hello));

    if (strcmp(mode, "garbage") == 0) {
        for (long i = 0; i < n; i++) {
            unsigned char junk[512];
            int fd = connect_blocking();

            if (fd < 0) {
                failed++;
                continue;
            }
            RAND_bytes(junk, sizeof(junk));
            /* Every other one looks like a TLS record header, to get past the first
             * length checks and into the parser. */
            if (i % 2) {
                junk[0] = 0x16; junk[1] = 0x03; junk[2] = 0x01;
            }
            (void)!write(fd, junk, sizeof(junk));
            if (i % 3 == 0)
                reset_close(fd);
            else
                close(fd);
        }
    } else if (strcmp(mode, "abort") == 0) {
        for (long i = 0; i < n; i++) {
            int fd = connect_blocking();

            if (fd < 0) {
                failed++;
                continue;
            }
            (void)!write(fd, hello, hello_len);
            /* 0..2 ms: long enough for the server to read the hello and start signing
             * (an RSA-2048 signature takes about 1 ms here), short enough to be gone
             * before it finishes. */
            sleep_us(rand() % 2000);
            reset_close(fd);
        }
    } else if (strcmp(mode, "halfopen") == 0) {
        int *fds = calloc((size_t)n, sizeof(*fds));

        if (fds == NULL)
            die("calloc");
        for (long i = 0; i < n; i++) {
            fds[i] = connect_blocking();
            if (fds[i] < 0) {
                failed++;
                continue;
            }
            /* Half a record: the server reads it and waits for the rest. */
            (void)!write(fds[i], hello, hello_len / 2);
        }
        printf("tls_hostile: %ld half-open connections held for %ld s\n", n - failed, hold);
        fflush(stdout);
        sleep_us(hold * 1000000L);
        for (long i = 0; i < n; i++)
            if (fds[i] >= 0)
                reset_close(fds[i]);
        free(fds);
    } else {
        fprintf(stderr, "tls_hostile: unknown mode %s\n", mode);
        return 2;
    }
    printf("tls_hostile: %s %ld connections, %ld failed to connect\n", mode, n, failed);
    return failed == 0 ? 0 : 1;
}
