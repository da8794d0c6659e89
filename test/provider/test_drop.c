/*
 * The drop path (DESIGN.md decision 11): a backend algorithm with a function that
 * asyncpool cannot forward faithfully (a dispatch id this build does not know, as a
 * newer OpenSSL would add) is not offered at all, is counted in asyncpool.dropped, and
 * is named on stderr with ASYNCPOOL_DEBUG=1; the backend's other algorithms are offered
 * as usual.
 *
 * provider/tables.c is linked in directly and fed a fake backend: a built-in provider
 * (OSSL_PROVIDER_add_builtin) in a private library context, whose algorithms carry
 * the ids chosen here. The operation description is the test's own, so the ids it
 * "knows" are fixed whatever OpenSSL's headers say.
 */
#define _GNU_SOURCE
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/core_dispatch.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/provider.h>

#include "provider/ap.h"
#include "ptest.h"

/* The ids our fake operation knows. */
enum { FN_NEW = 1, FN_FREE = 2, FN_GET = 3 };
/* Ids it does not know: one inside the per-algorithm table, one beyond it. */
#define FN_UNKNOWN 9
#define FN_TOO_BIG (AP_MAXFN + 5)

static void fake_fn(void)
{
}

static const OSSL_DISPATCH good_impl[] = {
    {FN_NEW, fake_fn}, {FN_FREE, fake_fn}, {FN_GET, fake_fn}, {0, NULL},
};
/* A backend function without a counterpart in our description: must be dropped. */
static const OSSL_DISPATCH unknown_impl[] = {
    {FN_NEW, fake_fn}, {FN_UNKNOWN, fake_fn}, {FN_FREE, fake_fn}, {0, NULL},
};
/* An id past AP_MAXFN: must be dropped, not written past ap_alg.fn. */
static const OSSL_DISPATCH too_big_impl[] = {
    {FN_NEW, fake_fn}, {FN_TOO_BIG, fake_fn}, {0, NULL},
};
/* Missing a function we know is fine: we leave it out as well. */
static const OSSL_DISPATCH partial_impl[] = {
    {FN_NEW, fake_fn}, {0, NULL},
};

static const OSSL_ALGORITHM fake_algs[] = {
    {"FAKE-GOOD:1.2.3.4", "provider=fake,fips=no", good_impl, "a complete one"},
    {"FAKE-NEWER", "provider=fake", unknown_impl, NULL},
    {"FAKE-FAR", "provider=fake", too_big_impl, NULL},
    {"FAKE-PARTIAL", "provider=fake", partial_impl, NULL},
    {"NOT-TAKEN", "provider=fake", unknown_impl, NULL}, /* not in our names: ignored */
    {NULL, NULL, NULL, NULL},
};

static const OSSL_ALGORITHM *fake_query(void *provctx, int op, int *no_cache)
{
    (void)provctx;
    *no_cache = 0;
    return op == OSSL_OP_KEYMGMT ? fake_algs : NULL;
}

static const OSSL_DISPATCH fake_dispatch[] = {
    {OSSL_FUNC_PROVIDER_QUERY_OPERATION, (void (*)(void))fake_query},
    {0, NULL},
};

static int fake_init(const OSSL_CORE_HANDLE *handle, const OSSL_DISPATCH *in,
                     const OSSL_DISPATCH **out, void **provctx)
{
    (void)handle;
    (void)in;
    *out = fake_dispatch;
    *provctx = (void *)fake_algs;
    return 1;
}

static const char *const names[] = {"FAKE-*", NULL};
static const ap_fn_desc fns[] = {
    {FN_NEW, AP_DIRECT, NULL, NULL},
    {FN_FREE, AP_DIRECT, NULL, NULL},
    {FN_GET, AP_DIRECT, NULL, NULL},
    {0, AP_WRAP, NULL, NULL},
};
static const ap_op_desc desc = {OSSL_OP_KEYMGMT, "keymgmt", names, fns};

static const OSSL_DISPATCH *find_fn(const OSSL_DISPATCH *d, int id)
{
    for (; d->function_id != 0; d++)
        if (d->function_id == id)
            return d;
    return NULL;
}

/* Build the fake operation's table; stderr (the debug lines) goes to a file, read back
 * into dbg. */
static ap_prov *build(OSSL_LIB_CTX *lib, int debug, char *dbg, size_t dbglen)
{
    ap_prov *p = calloc(1, sizeof(*p));
    FILE *tmp = tmpfile();
    int saved = dup(STDERR_FILENO), ok;
    size_t n;

    ck_assert(p != NULL && tmp != NULL && saved >= 0);
    p->bprov = OSSL_PROVIDER_load(lib, "fake");
    ck_assert_msg(p->bprov != NULL, "cannot load the fake backend");
    if (debug)
        setenv("ASYNCPOOL_DEBUG", "1", 1);
    else
        unsetenv("ASYNCPOOL_DEBUG");
    fflush(stderr);
    dup2(fileno(tmp), STDERR_FILENO);
    ok = ap_build_op(p, AP_OP_KEYMGMT, &desc);
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    rewind(tmp);
    n = fread(dbg, 1, dbglen - 1, tmp);
    dbg[n] = '\0';
    fclose(tmp);
    ck_assert_msg(ok, "ap_build_op failed");
    return p;
}

static void release(ap_prov *p)
{
    ap_free_algs(p, AP_OP_KEYMGMT);
    OSSL_PROVIDER_unload(p->bprov);
    free(p);
}

START_TEST(dropped_not_offered)
{
    OSSL_LIB_CTX *lib = OSSL_LIB_CTX_new();
    char dbg[4096];
    ap_prov *p;
    const OSSL_ALGORITHM *a;
    int no_cache;

    ck_assert(lib != NULL && OSSL_PROVIDER_add_builtin(lib, "fake", fake_init) == 1);
    p = build(lib, 0, dbg, sizeof(dbg));
    /* Offered: the complete one and the one missing a function we know. */
    ck_assert_int_eq(p->nalg[AP_OP_KEYMGMT], 2);
    a = ap_query_operation(p, OSSL_OP_KEYMGMT, &no_cache);
    ck_assert_str_eq(a[0].algorithm_names, "FAKE-GOOD:1.2.3.4");
    ck_assert_str_eq(a[0].property_definition, "provider=asyncpool,fips=no");
    ck_assert_str_eq(a[0].algorithm_description, "a complete one");
    ck_assert_ptr_nonnull(find_fn(a[0].implementation, FN_GET));
    ck_assert_str_eq(a[1].algorithm_names, "FAKE-PARTIAL");
    ck_assert_ptr_null(find_fn(a[1].implementation, FN_FREE));
    ck_assert_ptr_null(a[2].algorithm_names);
    /* Not offered, and counted: FAKE-NEWER and FAKE-FAR; NOT-TAKEN was never ours. */
    ck_assert_uint_eq(p->dropped, 2);
    ck_assert_msg(dbg[0] == '\0', "debug output without ASYNCPOOL_DEBUG: %s", dbg);
    release(p);
    OSSL_LIB_CTX_free(lib);
}
END_TEST

START_TEST(dropped_named_with_debug)
{
    OSSL_LIB_CTX *lib = OSSL_LIB_CTX_new();
    char dbg[4096], want[128];
    ap_prov *p;

    ck_assert(lib != NULL && OSSL_PROVIDER_add_builtin(lib, "fake", fake_init) == 1);
    p = build(lib, 1, dbg, sizeof(dbg));
    ck_assert_uint_eq(p->dropped, 2);
    snprintf(want, sizeof(want), "keymgmt FAKE-NEWER not offered: backend function id %d ",
             FN_UNKNOWN);
    ck_assert_msg(strstr(dbg, want) != NULL, "no line \"%s\" in: %s", want, dbg);
    snprintf(want, sizeof(want), "keymgmt FAKE-FAR not offered: backend function id %d ",
             FN_TOO_BIG);
    ck_assert_msg(strstr(dbg, want) != NULL, "no line \"%s\" in: %s", want, dbg);
    ck_assert_msg(strstr(dbg, "NOT-TAKEN") == NULL && strstr(dbg, "FAKE-GOOD") == NULL,
                  "a line for an algorithm that was not dropped: %s", dbg);
    release(p);
    OSSL_LIB_CTX_free(lib);
}
END_TEST

/* Through the module: the real backend has no algorithm we cannot forward (the build's
 * headers know every id of the OpenSSL it runs on), so asyncpool.dropped is 0 there;
 * what a newer OpenSSL would drop is the fake's job above. */
START_TEST(module_dropped_param)
{
    ap_env e;

    ck_assert(ap_env_init(&e));
    if (!ap_dev())
        ck_assert_uint_eq(ap_ctr(&e, "asyncpool.dropped"), 0);
    ap_env_free(&e);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("provider_drop");
    TCase *tc = tcase_create("drop");

    tcase_add_test(tc, dropped_not_offered);
    tcase_add_test(tc, dropped_named_with_debug);
    tcase_add_test(tc, module_dropped_param);
    suite_add_tcase(s, tc);
    return ap_run_suite(s);
}
