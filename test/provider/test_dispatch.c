/*
 * Never worse than default (DESIGN.md decision 11), on the OpenSSL this runs on:
 * - every algorithm asyncpool offers has exactly the function ids of the backend's
 *   (`default`) algorithm of the same names, for every operation we wrap;
 * - nothing was dropped for an unknown function id (the backend is the same build);
 * - the newer APIs work through asyncpool: message signatures (3.4+, Ed25519/Ed448) and
 *   opaque-key ciphers (3.5+, AES-CBC/GCM). Where the running OpenSSL lacks an API the
 *   test says so and checks the id comparison alone.
 */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include <openssl/core_dispatch.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/opensslv.h>
#include <openssl/params.h>

#include "ptest.h"

#ifndef OSSL_OP_SKEYMGMT
#define OSSL_OP_SKEYMGMT 15
#endif

static ap_env E;

static void setup(void)
{
    ck_assert_msg(ap_env_init(&E), "cannot set up the library context");
}

static void teardown(void)
{
    ap_env_free(&E);
}

static const struct {
    int id;
    const char *name;
} OPS[] = {
    {OSSL_OP_KEYMGMT, "keymgmt"},       {OSSL_OP_SIGNATURE, "signature"},
    {OSSL_OP_ASYM_CIPHER, "asym_cipher"}, {OSSL_OP_KEYEXCH, "keyexch"},
    {OSSL_OP_CIPHER, "cipher"},         {OSSL_OP_KEM, "kem"},
    {OSSL_OP_SKEYMGMT, "skeymgmt"},
};

#define MAXID 128

static void ids_of(const OSSL_DISPATCH *d, unsigned char *has)
{
    memset(has, 0, MAXID);
    for (; d->function_id != 0; d++) {
        ck_assert_msg(d->function_id > 0 && d->function_id < MAXID, "function id %d",
                      d->function_id);
        has[d->function_id] = 1;
    }
}

START_TEST(same_ids)
{
    int op = OPS[_i].id, nc = 0, n = 0;
    const OSSL_ALGORITHM *ours, *ref, *a, *r;
    unsigned char ho[MAXID], hr[MAXID];

    if (ap_dev())
        return;
    ours = OSSL_PROVIDER_query_operation(E.ap, op, &nc);
    ref = OSSL_PROVIDER_query_operation(E.dflt, op, &nc);
    for (a = ours; a != NULL && a->algorithm_names != NULL; a++, n++) {
        for (r = ref; r != NULL && r->algorithm_names != NULL; r++)
            if (strcmp(r->algorithm_names, a->algorithm_names) == 0)
                break;
        ck_assert_msg(r != NULL && r->algorithm_names != NULL,
                      "%s %s: offered by asyncpool, not by default", OPS[_i].name,
                      a->algorithm_names);
        ids_of(a->implementation, ho);
        ids_of(r->implementation, hr);
        for (int id = 1; id < MAXID; id++)
            ck_assert_msg(ho[id] == hr[id], "%s %s: function id %d %s", OPS[_i].name,
                          a->algorithm_names, id,
                          hr[id] ? "missing (default has it)" : "offered but default lacks it");
    }
    printf("%s: %d algorithms offered, ids identical to default's (OpenSSL %s)\n",
           OPS[_i].name, n, OpenSSL_version(OPENSSL_VERSION_STRING));
    if (ours != NULL)
        OSSL_PROVIDER_unquery_operation(E.ap, op, ours);
    if (ref != NULL)
        OSSL_PROVIDER_unquery_operation(E.dflt, op, ref);
}
END_TEST

START_TEST(none_dropped)
{
    if (ap_dev())
        return;
    ck_assert_msg(ap_ctr(&E, "asyncpool.dropped") == 0,
                  "asyncpool dropped %llu backend algorithms with the same OpenSSL",
                  (unsigned long long)ap_ctr(&E, "asyncpool.dropped"));
}
END_TEST

/* Message signatures (3.4+): Ed25519 and Ed448 through EVP_PKEY_sign_message_*, signed
 * by asyncpool and verified by default, and the other way round. */
#if OPENSSL_VERSION_NUMBER >= 0x30400000L
static const char *const MSGSIG[] = {"ED25519", "ED448"};
#endif

START_TEST(message_signature)
{
#if OPENSSL_VERSION_NUMBER >= 0x30400000L
    static const unsigned char msg[] = "never worse than default";
    const char *alg = MSGSIG[_i];
    const char *sides[2][2] = {{E.ours, E.ref}, {E.ref, E.ours}};
    uint64_t before = ap_opctr(&E, "sign", "inline");

    for (int s = 0; s < 2; s++) {
        EVP_PKEY *key = NULL;
        EVP_PKEY_CTX *kc = EVP_PKEY_CTX_new_from_name(E.lib, alg, sides[s][0]);
        EVP_PKEY_CTX *sc = NULL, *vc = NULL;
        EVP_SIGNATURE *ss = EVP_SIGNATURE_fetch(E.lib, alg, sides[s][0]);
        EVP_SIGNATURE *vs = EVP_SIGNATURE_fetch(E.lib, alg, sides[s][1]);
        unsigned char sig[256];
        size_t siglen = sizeof(sig);

        ck_assert(kc != NULL && ss != NULL && vs != NULL);
        ck_assert(EVP_PKEY_keygen_init(kc) == 1 && EVP_PKEY_generate(kc, &key) == 1);
        sc = EVP_PKEY_CTX_new_from_pkey(E.lib, key, sides[s][0]);
        vc = EVP_PKEY_CTX_new_from_pkey(E.lib, key, sides[s][1]);
        ck_assert_msg(EVP_PKEY_sign_message_init(sc, ss, NULL) == 1,
                      "%s: sign_message_init via %s", alg, sides[s][0]);
        ck_assert_msg(EVP_PKEY_sign(sc, sig, &siglen, msg, sizeof(msg)) == 1, "%s: sign", alg);
        ck_assert_msg(EVP_PKEY_verify_message_init(vc, vs, NULL) == 1,
                      "%s: verify_message_init via %s", alg, sides[s][1]);
        ck_assert_msg(EVP_PKEY_verify(vc, sig, siglen, msg, sizeof(msg)) == 1, "%s: verify", alg);
        EVP_PKEY_CTX_free(vc);
        vc = EVP_PKEY_CTX_new_from_pkey(E.lib, key, sides[s][1]);
        sig[0] ^= 1;
        ck_assert(EVP_PKEY_verify_message_init(vc, vs, NULL) == 1);
        ck_assert_msg(EVP_PKEY_verify(vc, sig, siglen, msg, sizeof(msg)) != 1,
                      "%s: a bad signature verified", alg);
        ERR_clear_error();
        EVP_PKEY_CTX_free(sc);
        EVP_PKEY_CTX_free(vc);
        EVP_PKEY_CTX_free(kc);
        EVP_SIGNATURE_free(ss);
        EVP_SIGNATURE_free(vs);
        EVP_PKEY_free(key);
    }
    if (!ap_dev())
        ck_assert_msg(ap_opctr(&E, "sign", "inline") > before,
                      "%s: asyncpool's sign was not used", alg);
#else
    printf("message signatures: not available on this OpenSSL (built with %s)\n",
           OPENSSL_VERSION_TEXT);
#endif
}
END_TEST

/* Opaque-key ciphers (3.5+): EVP_CipherInit_SKEY through asyncpool's cipher gives what
 * default's gives with the raw key. */
#if OPENSSL_VERSION_NUMBER >= 0x30500000L
static const char *const SKEYCIPH[] = {"AES-128-CBC", "AES-256-GCM"};
#endif

START_TEST(skey_cipher)
{
#if OPENSSL_VERSION_NUMBER >= 0x30500000L
    const char *name = SKEYCIPH[_i];
    EVP_CIPHER *ours = EVP_CIPHER_fetch(E.lib, name, E.ours);
    EVP_CIPHER *ref = EVP_CIPHER_fetch(E.lib, name, E.ref);
    unsigned char key[32], iv[16], in[64], out1[96], out2[96];
    int l1 = 0, l2 = 0, f = 0;
    size_t klen;
    EVP_SKEY *skey;
    EVP_CIPHER_CTX *c1 = EVP_CIPHER_CTX_new(), *c2 = EVP_CIPHER_CTX_new();

    ck_assert(ours != NULL && ref != NULL && c1 != NULL && c2 != NULL);
    klen = (size_t)EVP_CIPHER_get_key_length(ours);
    memset(key, 0x42, sizeof(key));
    memset(iv, 0x24, sizeof(iv));
    memset(in, 0x5a, sizeof(in));
    /* libcrypto requires the key's skeymgmt and the cipher to come from one provider
     * (evp_cipher_init_skey_internal): an application that prefers asyncpool gets both
     * from us, so we must offer the skeymgmt too. */
    skey = EVP_SKEY_import_raw_key(E.lib, "AES", key, klen, E.ours);
    ck_assert_msg(skey != NULL, "EVP_SKEY_import_raw_key");
    if (EVP_CipherInit_SKEY(c1, ours, skey, iv, (size_t)EVP_CIPHER_get_iv_length(ours), 1,
                            NULL) != 1) {
        ap_dump_errors("EVP_CipherInit_SKEY");
        ck_abort_msg("%s: EVP_CipherInit_SKEY through asyncpool failed", name);
    }
    ck_assert(EVP_EncryptUpdate(c1, out1, &l1, in, sizeof(in)) == 1);
    ck_assert(EVP_EncryptFinal_ex(c1, out1 + l1, &f) == 1);
    l1 += f;
    ck_assert(EVP_EncryptInit_ex2(c2, ref, key, iv, NULL) == 1);
    ck_assert(EVP_EncryptUpdate(c2, out2, &l2, in, sizeof(in)) == 1);
    ck_assert(EVP_EncryptFinal_ex(c2, out2 + l2, &f) == 1);
    l2 += f;
    ck_assert_int_eq(l1, l2);
    ck_assert_msg(memcmp(out1, out2, (size_t)l1) == 0, "%s: ciphertexts differ", name);
    EVP_SKEY_free(skey);
    EVP_CIPHER_CTX_free(c1);
    EVP_CIPHER_CTX_free(c2);
    EVP_CIPHER_free(ours);
    EVP_CIPHER_free(ref);
#else
    printf("opaque-key ciphers: not available on this OpenSSL (built with %s)\n",
           OPENSSL_VERSION_TEXT);
#endif
}
END_TEST

int main(void)
{
    Suite *s = suite_create("provider_dispatch");
    TCase *tc = tcase_create("dispatch");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_loop_test(tc, same_ids, 0, (int)(sizeof(OPS) / sizeof(OPS[0])));
    tcase_add_test(tc, none_dropped);
    tcase_add_loop_test(tc, message_signature, 0, 2);
    tcase_add_loop_test(tc, skey_cipher, 0, 2);
    suite_add_tcase(s, tc);
    return ap_run_suite(s);
}
