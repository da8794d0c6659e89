/*
 * Provider configuration: an invalid value in the asyncpool section makes loading fail
 * with an error on the queue that names the offending key; valid values are honoured
 * (the positive control, so "always fails" cannot pass). Each Check test runs in its own
 * process, which matters: the pool is process-wide and the first load sizes it.
 */
#define _GNU_SOURCE
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/provider.h>

#include "ops.h"
#include "ptest.h"

/* All errors on the queue as text (cleared). */
static void drain_errors(char *buf, size_t cap)
{
    unsigned long e;
    const char *data;
    int flags;

    buf[0] = '\0';
    while ((e = ERR_get_error_all(NULL, NULL, NULL, &data, &flags)) != 0) {
        char one[256];

        ERR_error_string_n(e, one, sizeof(one));
        strncat(buf, one, cap - strlen(buf) - 1);
        if (flags & ERR_TXT_STRING) {
            strncat(buf, " : ", cap - strlen(buf) - 1);
            strncat(buf, data, cap - strlen(buf) - 1);
        }
        strncat(buf, " | ", cap - strlen(buf) - 1);
    }
}

static const struct bad {
    const char *key, *value;
} BAD[] = {
    {"workers", "banana"},        {"workers", "-1"},          {"workers", "100000"},
    {"workers", "4x"},            {"queue_capacity", "0"},    {"queue_capacity", "-1"},
    {"queue_capacity", "banana"}, {"inline_threshold", "lots"}, {"outside_job", "sometimes"},
    /* The README documents plain decimal digits: no sign, no white space. The config
     * parser trims white space around a value, so it only reaches us quoted. */
    {"workers", "+4"},            {"workers", "\" 4\""},       {"workers", "\"4 \""},
    {"queue_capacity", "+64"},    {"inline_threshold", "\"\t100\""}, {"workers", "\"\""},
    {"offload", "sometimes"},     {"offload", "\"\""},        {"offload_min_us", "-5"},
    {"offload_min_us", "10000001"}, {"offload_load_pct", "half"},
    {"offload_probe_ms", "-1"},   {"offload_probe_ms", "10001"}, {"offload_probe_ms", "50ms"},
    {"worker_spin_us", "-1"},     {"worker_spin_us", "1000001"}, {"worker_spin_us", "50us"},
};

/* Does this libcrypto report a provider that fails to activate from a config file?
 * (OpenSSL 3.0 does not: load_config returns 1 with an empty queue, even for a module
 * that does not exist.) Calibrates the test below instead of assuming. */
static int conf_reports_activation_errors(void)
{
    OSSL_LIB_CTX *lib = OSSL_LIB_CTX_new();
    char errs[1024];
    int rc;
    char path[] = "/tmp/ap-conf-XXXXXX";
    int fd = mkstemp(path);
    FILE *f = fdopen(fd, "w");

    fprintf(f, "openssl_conf = i\n[i]\nproviders = p\n[p]\nbogus = b\n[b]\n"
               "module = /nonexistent/bogus.so\nactivate = 1\n");
    fclose(f);
    ERR_clear_error();
    rc = OSSL_LIB_CTX_load_config(lib, path);
    drain_errors(errs, sizeof(errs));
    unlink(path);
    OSSL_LIB_CTX_free(lib);
    return rc != 1 || errs[0] != '\0';
}

/* Activated from the config file: asyncpool must not be active afterwards; and where
 * libcrypto passes activation errors on, the error must name the key. */
START_TEST(bad_value_activate)
{
    char body[128], errs[4096];
    OSSL_LIB_CTX *lib = OSSL_LIB_CTX_new();
    const char *path;
    int rc, reports = conf_reports_activation_errors();

    if (ap_dev())
        return;
    snprintf(body, sizeof(body), "%s = %s\n", BAD[_i].key, BAD[_i].value);
    path = ap_write_conf(body, 1);
    ERR_clear_error();
    rc = OSSL_LIB_CTX_load_config(lib, path);
    drain_errors(errs, sizeof(errs));
    fprintf(stderr, "activate, %s = %s: load_config=%d, errors: %s%s\n", BAD[_i].key,
            BAD[_i].value, rc, errs,
            reports ? "" : " (this libcrypto drops config activation errors)");
    ck_assert_msg(!OSSL_PROVIDER_available(lib, "asyncpool"),
                  "%s = %s: asyncpool loaded and active", BAD[_i].key, BAD[_i].value);
    if (reports)
        ck_assert_msg(strcasestr(errs, BAD[_i].key) != NULL,
                      "%s = %s: no error naming the key: %s", BAD[_i].key, BAD[_i].value, errs);
    unlink(path);
    OSSL_LIB_CTX_free(lib);
}
END_TEST

/* Configured but not activated: OSSL_PROVIDER_load must fail with the error. */
START_TEST(bad_value_load)
{
    char body[128], errs[4096];
    OSSL_LIB_CTX *lib = OSSL_LIB_CTX_new();
    OSSL_PROVIDER *p;
    const char *path;

    if (ap_dev())
        return;
    snprintf(body, sizeof(body), "%s = %s\n", BAD[_i].key, BAD[_i].value);
    path = ap_write_conf(body, 0);
    ck_assert_msg(OSSL_LIB_CTX_load_config(lib, path) == 1, "config without activate rejected");
    ERR_clear_error();
    p = OSSL_PROVIDER_load(lib, "asyncpool");
    drain_errors(errs, sizeof(errs));
    fprintf(stderr, "load, %s = %s: provider=%p, errors: %s\n", BAD[_i].key, BAD[_i].value,
            (void *)p, errs);
    ck_assert_msg(p == NULL, "%s = %s: OSSL_PROVIDER_load succeeded", BAD[_i].key, BAD[_i].value);
    ck_assert_msg(strcasestr(errs, BAD[_i].key) != NULL,
                  "%s = %s: no error naming the key: %s", BAD[_i].key, BAD[_i].value, errs);
    unlink(path);
    OSSL_LIB_CTX_free(lib);
}
END_TEST

static uint64_t ctr(OSSL_PROVIDER *p, const char *name)
{
    ap_env e = {0};

    e.ap = p;
    return ap_ctr(&e, name);
}

/* Positive control: valid values load and take effect. */
START_TEST(good_values)
{
    OSSL_LIB_CTX *lib = OSSL_LIB_CTX_new();
    OSSL_PROVIDER *p;
    const char *path;
    op_kg k = {lib, "provider=default", "EC", "P-256", 0, NULL, 0};
    unsigned char msg[32] = {1}, sig[128], key[16] = {2}, iv[12] = {3}, pt[100] = {4}, ct[140];
    op_sig s = {lib, "provider=asyncpool", NULL, "SHA256", 0, -1, NULL, 1, msg, 32, sig, 128, 0};
    op_ciph c = {0};
    void *args[1] = {&c};
    int ret = 0;
    uint64_t o0;

    if (ap_dev())
        return;
    path = ap_write_conf("workers = 3\nqueue_capacity = 64\ninline_threshold = 0\n"
                      "outside_job = block\n", 1);
    ck_assert_msg(OSSL_LIB_CTX_load_config(lib, path) == 1, "valid config rejected");
    unlink(path);
    ck_assert(OSSL_PROVIDER_available(lib, "asyncpool"));
    p = OSSL_PROVIDER_load(lib, "asyncpool"); /* a reference to the active one */
    ck_assert_ptr_nonnull(p);
    ck_assert_msg(ctr(p, "asyncpool.pool.workers") == 3, "workers = 3 not honoured (%llu)",
                  (unsigned long long)ctr(p, "asyncpool.pool.workers"));
    /* outside_job = block: a sign outside any job is offloaded */
    ck_assert(op_keygen(&k));
    s.key = k.out;
    o0 = ctr(p, "asyncpool.sign.offloaded");
    ck_assert(op_sign(&s));
    ck_assert_msg(ctr(p, "asyncpool.sign.offloaded") > o0, "outside_job = block not honoured");
    /* inline_threshold = 0: a 100-byte cipher update in a job is offloaded */
    c.lib = lib;
    c.propq = "provider=asyncpool";
    c.name = "AES-128-GCM";
    c.enc = 1;
    c.aead = 1;
    c.key = key;
    c.iv = iv;
    c.ivlen = 12;
    c.in = pt;
    c.inlen = sizeof(pt);
    c.out = ct;
    c.taglen = 16;
    ck_assert(ASYNC_init_thread(1, 1));
    o0 = ctr(p, "asyncpool.cipher.offloaded");
    ck_assert(ap_run_jobs(op_cipher, args, 1, 1, &ret, NULL) && ret == 1);
    ck_assert_msg(ctr(p, "asyncpool.cipher.offloaded") > o0, "inline_threshold = 0 not honoured");
    ASYNC_cleanup_thread();
    EVP_PKEY_free(k.out);
    OSSL_PROVIDER_unload(p);
    OSSL_LIB_CTX_free(lib);
}
END_TEST

/* The shipped config ($ASYNCPOOL_CONF) loads and activates asyncpool. */
START_TEST(shipped_config)
{
    OSSL_LIB_CTX *lib = OSSL_LIB_CTX_new();
    const char *path = getenv("ASYNCPOOL_CONF");

    if (ap_dev())
        return;
    ck_assert_msg(path != NULL, "ASYNCPOOL_CONF not set");
    ck_assert_msg(OSSL_LIB_CTX_load_config(lib, path) == 1, "%s does not load", path);
    ck_assert(OSSL_PROVIDER_available(lib, "asyncpool"));
    ck_assert(OSSL_PROVIDER_available(lib, "default"));
    OSSL_LIB_CTX_free(lib);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("provider_config");
    TCase *tc = tcase_create("config");
    int n = (int)(sizeof(BAD) / sizeof(BAD[0]));

    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, bad_value_activate, 0, n);
    tcase_add_loop_test(tc, bad_value_load, 0, n);
    tcase_add_test(tc, good_values);
    tcase_add_test(tc, shipped_config);
    suite_add_tcase(s, tc);
    return ap_run_suite(s);
}
