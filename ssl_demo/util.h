/* Small helpers shared by the demo programs. */
#ifndef SSL_DEMO_UTIL_H
#define SSL_DEMO_UTIL_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>

#include <openssl/err.h>

/* Prints the message and OpenSSL's error queue, then exits: for setup failures only. */
static inline void die(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    ERR_print_errors_fp(stderr);
    exit(2);
}

/* A load test opens many sockets; the default soft limit (often 1024) is too low. */
static inline void raise_nofile_limit(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static inline int parse_tls_version(const char *s)
{
    if (s == NULL)
        return 0;
    if (s[0] == '1' && s[1] == '.' && s[2] == '2' && s[3] == '\0')
        return 0x0303; /* TLS1_2_VERSION */
    if (s[0] == '1' && s[1] == '.' && s[2] == '3' && s[3] == '\0')
        return 0x0304; /* TLS1_3_VERSION */
    die("bad TLS version '%s' (want 1.2 or 1.3)", s);
    return 0;
}

#endif
