/*
 * emu_probe — makes N heavy calls through asyncpool, one after the other on one thread,
 * and prints which of them the emulated device failed: the replay test's subject.
 *
 *   usage: emu_probe N inline|job|both [sign|verify]
 * Loads providers from OPENSSL_CONF (the asyncpool config), signs (or verifies) with a
 * P-256 key, N times: outside any job (inline), inside an ASYNC job (offloaded, the job
 * paused and resumed through its fd), or alternating. Prints
 *   seq=<N characters, '1' failed, '0' succeeded>
 *   failed=<count> faults=<asyncpool.emu.faults> reason_ok=<1 if every failure carried
 *   "emulated device failure" on this thread's error queue>
 *   elapsed_ms=<wall time of the N calls>
 * Exit status 0 unless setup fails.
 */
#define _POSIX_C_SOURCE 200809L
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/async.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/provider.h>

static EVP_PKEY *key;
static unsigned char sig[128];
static size_t siglen;
static const unsigned char msg[] = "emulated device";
static int do_verify;

static int one_call(void)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int ok;

    if (md == NULL)
        return 0;
    if (do_verify) {
        ok = EVP_DigestVerifyInit_ex(md, NULL, "SHA256", NULL, NULL, key, NULL) == 1
             && EVP_DigestVerify(md, sig, siglen, msg, sizeof(msg)) == 1;
    } else {
        size_t l = sizeof(sig);

        ok = EVP_DigestSignInit_ex(md, NULL, "SHA256", NULL, NULL, key, NULL) == 1
             && EVP_DigestSign(md, sig, &l, msg, sizeof(msg)) == 1;
    }
    EVP_MD_CTX_free(md);
    return ok;
}

static int job_fn(void *arg)
{
    (void)arg;
    return one_call();
}

/* One call inside an ASYNC job; waits on the job's fds while it is paused. */
static int call_in_job(void)
{
    ASYNC_WAIT_CTX *w = ASYNC_WAIT_CTX_new();
    ASYNC_JOB *job = NULL;
    int ret = 0, r;

    if (w == NULL)
        return 0;
    while ((r = ASYNC_start_job(&job, w, &ret, job_fn, NULL, 0)) == ASYNC_PAUSE) {
        OSSL_ASYNC_FD fds[4];
        size_t n = 0, i;
        struct pollfd p[4];

        if (!ASYNC_WAIT_CTX_get_all_fds(w, NULL, &n) || n > 4
            || !ASYNC_WAIT_CTX_get_all_fds(w, fds, &n))
            break;
        for (i = 0; i < n; i++) {
            p[i].fd = fds[i];
            p[i].events = POLLIN;
        }
        if (n > 0)
            (void)poll(p, n, 1000);
    }
    ASYNC_WAIT_CTX_free(w);
    return r == ASYNC_FINISH ? ret : 0;
}

static double now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

int main(int argc, char **argv)
{
    long n, i, failed = 0;
    const char *mode;
    char *seq;
    int reason_ok = 1;
    uint64_t faults = 0;
    OSSL_PROVIDER *ap;
    OSSL_PARAM params[2];
    double t0;

    if (argc < 3) {
        fprintf(stderr, "usage: emu_probe N inline|job|both [sign|verify]\n");
        return 2;
    }
    n = atol(argv[1]);
    mode = argv[2];
    do_verify = argc > 3 && strcmp(argv[3], "verify") == 0;
    if (n <= 0 || (seq = calloc((size_t)n + 1, 1)) == NULL)
        return 2;
    if (!OSSL_PROVIDER_available(NULL, "asyncpool")
        || (ap = OSSL_PROVIDER_load(NULL, "asyncpool")) == NULL) {
        fprintf(stderr, "emu_probe: asyncpool is not loaded\n");
        ERR_print_errors_fp(stderr);
        return 1;
    }
    /* The key, and for verify the signature, made by the default provider: setup must
     * not draw from the emulation. */
    key = EVP_PKEY_Q_keygen(NULL, "provider=default", "EC", "P-256");
    if (key == NULL) {
        ERR_print_errors_fp(stderr);
        return 1;
    }
    if (do_verify) {
        EVP_MD_CTX *md = EVP_MD_CTX_new();

        siglen = sizeof(sig);
        if (md == NULL
            || EVP_DigestSignInit_ex(md, NULL, "SHA256", NULL, "provider=default", key,
                                     NULL) != 1
            || EVP_DigestSign(md, sig, &siglen, msg, sizeof(msg)) != 1) {
            ERR_print_errors_fp(stderr);
            return 1;
        }
        EVP_MD_CTX_free(md);
    }
    ERR_clear_error();
    t0 = now_ms();
    for (i = 0; i < n; i++) {
        int in_job = strcmp(mode, "job") == 0 || (strcmp(mode, "both") == 0 && (i & 1));
        int ok = in_job ? call_in_job() : one_call();

        seq[i] = ok ? '0' : '1';
        if (!ok) {
            const char *data = NULL;
            int flags = 0, found = 0;

            failed++;
            while (ERR_get_error_all(NULL, NULL, NULL, &data, &flags) != 0)
                if ((flags & ERR_TXT_STRING) && data != NULL
                    && strstr(data, "emulated device failure") != NULL)
                    found = 1;
            reason_ok &= found;
        }
        ERR_clear_error();
    }
    printf("seq=%s\n", seq);
    params[0] = OSSL_PARAM_construct_uint64("asyncpool.emu.faults", &faults);
    params[1] = OSSL_PARAM_construct_end();
    if (!OSSL_PROVIDER_get_params(ap, params))
        return 1;
    printf("failed=%ld faults=%llu reason_ok=%d\n", failed, (unsigned long long)faults,
           reason_ok);
    printf("elapsed_ms=%.1f\n", now_ms() - t0);
    free(seq);
    EVP_PKEY_free(key);
    OSSL_PROVIDER_unload(ap);
    return 0;
}
