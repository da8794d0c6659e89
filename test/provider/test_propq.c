/*
 * ap_backend_propq: the caller's property query (or the backend's property definition)
 * without its "provider" clauses, as OpenSSL's grammar (property(7)) splits it: clauses
 * separated by commas, a quoted value may hold commas, a name is dropped only when it
 * is exactly "provider" (any case, with or without "?" or "-"). Malformed input fails
 * with an error on the queue and no output.
 *
 * The unit cases link provider/propq.c directly; the last test goes through the module.
 */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>

#include "ops.h"
#include "provider/ap.h"
#include "ptest.h"

static const struct ok_case {
    const char *in, *out; /* out NULL: nothing left */
} OK[] = {
    {NULL, NULL},
    {"", NULL},
    {"   ", NULL},
    /* the clause we drop, in every form the grammar allows */
    {"provider=asyncpool", NULL},
    {"?provider=asyncpool", NULL},
    {"provider!=default", NULL},
    {"-provider", NULL},
    {"- provider", NULL},
    {"provider", NULL},
    {"?provider", NULL},
    {"PROVIDER=asyncpool", NULL},
    {"Provider = asyncpool", NULL},
    {" \t? provider  =  'asyncpool'  ", NULL},
    {"provider=\"asyncpool,x\"", NULL},
    {"provider=", NULL},
    /* what stays, and where */
    {"fips=yes", "fips=yes"},
    {"fips=yes,provider=asyncpool", "fips=yes"},
    {"provider=asyncpool,fips=yes", "fips=yes"},
    {"x=1,provider=asyncpool,y=2", "x=1,y=2"},
    {" provider = asyncpool , fips=yes ", "fips=yes"},
    {"fips=yes,  ?provider=asyncpool,  -x.y", "fips=yes,-x.y"},
    {"fips=yes,provider", "fips=yes"},
    /* near misses: names that merely contain "provider" */
    {"myprovider.x=1", "myprovider.x=1"},
    {"provider.x=1", "provider.x=1"},
    {"x.provider=1", "x.provider=1"},
    {"providers=1", "providers=1"},
    {"provider_x=1", "provider_x=1"},
    {"provider2", "provider2"},
    {"?myprovider.x=1,provider=asyncpool", "?myprovider.x=1"},
    {"-providerx", "-providerx"},
    /* values that contain commas or the word, quoted either way */
    {"fips=\"provider,x\"", "fips=\"provider,x\""},
    {"fips='provider,x',provider=asyncpool", "fips='provider,x'"},
    {"?x.y=\"a,provider=b\",provider=asyncpool", "?x.y=\"a,provider=b\""},
    {"x='a \"b\", c',provider=default,y=\"it's\"", "x='a \"b\", c',y=\"it's\""},
    {"x = 'a b' , y=2", "x = 'a b',y=2"},
    {"x=provider", "x=provider"},
    /* a quote inside an unquoted value is just a character */
    {"a=b\"c,provider=asyncpool", "a=b\"c"},
    /* numbers and empty values (OpenSSL accepts "x=") */
    {"n=-5,provider=default", "n=-5"},
    {"x.y=0x1f , provider = default", "x.y=0x1f"},
    {"x=,provider=default", "x="},
};

START_TEST(filters)
{
    const struct ok_case *c = &OK[_i];
    char *out = (char *)"untouched";
    int r;

    ERR_clear_error();
    r = ap_backend_propq(c->in, &out);
    ck_assert_msg(r == 1, "[%s]: failed", c->in ? c->in : "(null)");
    ck_assert_msg(ERR_peek_error() == 0, "[%s]: error left on the queue", c->in);
    if (c->out == NULL)
        ck_assert_msg(out == NULL, "[%s]: got [%s], expected nothing", c->in, out);
    else
        ck_assert_msg(out != NULL && strcmp(out, c->out) == 0, "[%s]: got [%s], expected [%s]",
                      c->in, out ? out : "(null)", c->out);
    OPENSSL_free(out);
}
END_TEST

/* Queries OpenSSL itself rejects (crypto/property/property_parse.c): we fail too, with
 * an error naming the query, rather than guess where a clause ends. */
static const char *const BAD[] = {
    "fips=\"unterminated",
    "fips='yes\",x=1",
    "?x=\"a,provider=b",
    "=yes",
    ",fips=yes",
    "fips=yes,",
    "fips=yes,,x=1",
    "1x=2",
    "x=1 y=2",
    "x!y",
    "?-x",
    "-?x",
    "-x=1",
    "x='a'b",
    "x.=1",
    "x..y=1",
    "x.1=2",
    "_x=1",
    "x=\x01",
    "x=caf\xc3\xa9",
};

START_TEST(rejects)
{
    const char *in = BAD[_i];
    char *out = (char *)"untouched";
    unsigned long e;
    const char *data = NULL;
    int flags = 0;

    ERR_clear_error();
    ck_assert_msg(ap_backend_propq(in, &out) == 0, "[%s]: accepted as [%s]", in,
                  out ? out : "(null)");
    ck_assert_msg(out == NULL, "[%s]: output set on failure", in);
    e = ERR_get_error_all(NULL, NULL, NULL, &data, &flags);
    ck_assert_msg(e != 0, "[%s]: no error on the queue", in);
    ck_assert_msg(ERR_GET_LIB(e) == ERR_LIB_PROV, "[%s]: error library %d", in, ERR_GET_LIB(e));
    ck_assert_msg((flags & ERR_TXT_STRING) && strstr(data, "property query") != NULL,
                  "[%s]: error text does not say what was wrong: %s", in,
                  (flags & ERR_TXT_STRING) ? data : "(none)");
    ERR_clear_error();
}
END_TEST

/*
 * Through the module: a caller's query whose optional clause holds a quoted comma and
 * the word "provider". libcrypto accepts it for the caller's fetch; asyncpool hands the
 * rest to the backend, which fetches its digest with it. Cut in the wrong place, the
 * backend gets an unterminated quote: OpenSSL 3.0's fetch still succeeds, but leaves
 * "no matching string delimiter" on the caller's queue after a successful sign.
 */
START_TEST(quoted_comma_through_module)
{
    static const char query[] = "provider=asyncpool,?x.y=\"a,provider=b\"";
    ap_env e;
    unsigned char msg[32] = {5}, sig[128];
    size_t siglen = sizeof(sig);
    op_kg k;
    op_sig v;
    EVP_MD_CTX *mc;
    char err[256] = "";
    int ok;

    if (ap_dev())
        return;
    ck_assert_msg(ap_env_init(&e), "setup failed");
    k = (op_kg){e.lib, e.ref, "EC", "P-256", 0, NULL, 0};
    ck_assert(op_keygen(&k));
    ck_assert_ptr_nonnull(mc = EVP_MD_CTX_new());
    ERR_clear_error();
    ok = EVP_DigestSignInit_ex(mc, NULL, "SHA256", e.lib, query, k.out, NULL) == 1
         && EVP_DigestSign(mc, sig, &siglen, msg, sizeof(msg)) == 1;
    if (ERR_peek_error() != 0)
        ERR_error_string_n(ERR_peek_error(), err, sizeof(err));
    ap_dump_errors("quoted comma");
    ck_assert_msg(ok, "sign with [%s] failed", query);
    ck_assert_msg(err[0] == '\0', "sign with [%s] left an error on the queue: %s", query, err);
    v = (op_sig){e.lib, e.ref, k.out, "SHA256", 0, -1, NULL, 0, msg, sizeof(msg), sig, siglen, 0};
    ck_assert_msg(op_verify(&v) == 1, "default rejects the signature");
    EVP_MD_CTX_free(mc);
    EVP_PKEY_free(k.out);
    ap_env_free(&e);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("provider_propq");
    TCase *tc = tcase_create("propq");

    tcase_add_loop_test(tc, filters, 0, (int)(sizeof(OK) / sizeof(OK[0])));
    tcase_add_loop_test(tc, rejects, 0, (int)(sizeof(BAD) / sizeof(BAD[0])));
    tcase_add_test(tc, quoted_comma_through_module);
    suite_add_tcase(s, tc);
    return ap_run_suite(s);
}
