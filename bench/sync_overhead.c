/*
 * sync_overhead — what asyncpool's synchronous path (no async job: the call runs inline)
 * costs on top of the default provider, in a form a noisy machine cannot blur: run it
 * under callgrind (bench/sync_overhead.sh does) and compare instructions per operation.
 *
 * usage: sync_overhead OP PROPQ N
 *   OP     rsa2048-sign ecdsap256-sign ecdhp256-derive x25519-derive ed25519-sign
 *          gcm-16 gcm-1024 gcm-16384
 *   PROPQ  "provider=default" or "provider=asyncpool"
 *   N      operations inside measure(), the only function callgrind collects
 *          (--toggle-collect=measure); key generation and warm-up are outside it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/provider.h>

struct op {
    const char *name;
    EVP_PKEY_CTX *pctx;
    EVP_CIPHER_CTX *cctx;
    EVP_MD_CTX *mctx;
    unsigned char buf[16384 + 64], out[16384 + 64];
    size_t len;
    int kind; /* 0 sign, 1 derive, 2 cipher, 3 one-shot digest sign (EdDSA) */
};

static int once(struct op *o)
{
    size_t outlen = sizeof(o->out);
    int outl;

    switch (o->kind) {
    case 0:
        return EVP_PKEY_sign(o->pctx, o->out, &outlen, o->buf, 32) > 0;
    case 1:
        return EVP_PKEY_derive(o->pctx, o->out, &outlen) > 0;
    case 3:
        return EVP_DigestSign(o->mctx, o->out, &outlen, o->buf, 32) > 0;
    default:
        return EVP_EncryptUpdate(o->cctx, o->out, &outl, o->buf, (int)o->len) > 0;
    }
}

/* The measured loop: callgrind collects this function only. */
__attribute__((noinline)) static int measure(struct op *o, long n)
{
    long i;
    int ok = 1;

    for (i = 0; i < n; i++)
        ok &= once(o);
    return ok;
}

static EVP_PKEY *keygen(OSSL_LIB_CTX *lib, const char *alg, const char *arg)
{
    if (strcmp(alg, "RSA") == 0)
        return EVP_PKEY_Q_keygen(lib, "provider=default", "RSA", (size_t)2048);
    if (arg != NULL)
        return EVP_PKEY_Q_keygen(lib, "provider=default", alg, arg);
    return EVP_PKEY_Q_keygen(lib, "provider=default", alg);
}

int main(int argc, char **argv)
{
    OSSL_LIB_CTX *lib = OSSL_LIB_CTX_new();
    struct op *o = calloc(1, sizeof(*o));
    const char *opname, *propq;
    EVP_PKEY *key = NULL, *peer = NULL;
    long n;
    int i;

    if (argc != 4) {
        fprintf(stderr, "usage: %s OP PROPQ N\n", argv[0]);
        return 2;
    }
    opname = argv[1];
    propq = argv[2];
    n = atol(argv[3]);
    if (lib == NULL || OSSL_PROVIDER_load(lib, "default") == NULL
        || (strstr(propq, "asyncpool") != NULL && OSSL_PROVIDER_load(lib, "asyncpool") == NULL))
        goto err;
    o->name = opname;
    memset(o->buf, 0x5a, sizeof(o->buf));

    if (strcmp(opname, "rsa2048-sign") == 0 || strcmp(opname, "ecdsap256-sign") == 0
        || strcmp(opname, "ed25519-sign") == 0) {
        key = opname[0] == 'r' ? keygen(lib, "RSA", NULL)
              : opname[0] == 'e' && opname[1] == 'c' ? keygen(lib, "EC", "P-256")
                                                     : keygen(lib, "ED25519", NULL);
        o->kind = 0;
        if (key == NULL || (o->pctx = EVP_PKEY_CTX_new_from_pkey(lib, key, propq)) == NULL)
            goto err;
        if (opname[1] == 'd') { /* ed25519: one-shot EVP_DigestSign over 32 bytes */
            EVP_PKEY_CTX_free(o->pctx);
            o->pctx = NULL;
            o->kind = 3;
            if ((o->mctx = EVP_MD_CTX_new()) == NULL
                || EVP_DigestSignInit_ex(o->mctx, NULL, NULL, lib, propq, key, NULL) <= 0)
                goto err;
        } else if (EVP_PKEY_sign_init(o->pctx) <= 0) {
            goto err;
        }
    } else if (strcmp(opname, "ecdhp256-derive") == 0 || strcmp(opname, "x25519-derive") == 0) {
        int ec = opname[0] == 'e';

        key = ec ? keygen(lib, "EC", "P-256") : keygen(lib, "X25519", NULL);
        peer = ec ? keygen(lib, "EC", "P-256") : keygen(lib, "X25519", NULL);
        o->kind = 1;
        if (key == NULL || peer == NULL
            || (o->pctx = EVP_PKEY_CTX_new_from_pkey(lib, key, propq)) == NULL
            || EVP_PKEY_derive_init(o->pctx) <= 0 || EVP_PKEY_derive_set_peer(o->pctx, peer) <= 0)
            goto err;
    } else if (strncmp(opname, "gcm-", 4) == 0) {
        EVP_CIPHER *c = EVP_CIPHER_fetch(lib, "AES-128-GCM", propq);
        static const unsigned char k[16], iv[12];

        o->kind = 2;
        o->len = (size_t)atol(opname + 4);
        o->cctx = EVP_CIPHER_CTX_new();
        if (c == NULL || o->len == 0 || o->len > 16384 || o->cctx == NULL
            || !EVP_EncryptInit_ex2(o->cctx, c, k, iv, NULL))
            goto err;
        EVP_CIPHER_free(c);
    } else {
        fprintf(stderr, "unknown OP %s\n", opname);
        return 2;
    }
    for (i = 0; i < 3; i++) /* warm-up: lazy initialisation stays outside measure() */
        if (!once(o))
            goto err;
    i = measure(o, n);
    printf("%s %s n=%ld ok=%d\n", opname, propq, n, i);
    EVP_PKEY_CTX_free(o->pctx);
    EVP_CIPHER_CTX_free(o->cctx);
    EVP_MD_CTX_free(o->mctx);
    EVP_PKEY_free(key);
    EVP_PKEY_free(peer);
    free(o);
    OSSL_LIB_CTX_free(lib);
    return i ? 0 : 1;
err:
    ERR_print_errors_fp(stderr);
    return 1;
}
