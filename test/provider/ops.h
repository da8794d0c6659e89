/*
 * One crypto operation as a job function: each takes a pointer to its op struct, so the
 * same code runs inside an ASYNC job (ap_run_jobs) or directly, with "our" property
 * query or the reference one. Kept small: job functions run on a 32 KiB fibre stack.
 * Each records the last OpenSSL error it saw (lib/reason) and clears the queue.
 */
#ifndef AP_OPS_H
#define AP_OPS_H

#include <stddef.h>

#include <openssl/evp.h>

typedef struct op_sig {
    OSSL_LIB_CTX *lib;
    const char *propq;
    EVP_PKEY *key;
    const char *md; /* NULL for EdDSA */
    int pad;        /* 0, RSA_PKCS1_PADDING or RSA_PKCS1_PSS_PADDING */
    int saltlen;    /* PSS salt length when pad is PSS; -1: default */
    const char *mgf1md; /* PSS MGF1 digest, NULL: same as md */
    int raw;        /* EVP_PKEY_sign/verify on msg as a digest, not EVP_DigestSign */
    const unsigned char *msg;
    size_t msglen;
    unsigned char *sig;
    size_t siglen; /* in: capacity for sign; in: length for verify */
    unsigned long err;
} op_sig;
int op_sign(void *p);
int op_verify(void *p); /* 1 valid, 0 not */

typedef struct op_enc {
    OSSL_LIB_CTX *lib;
    const char *propq;
    EVP_PKEY *key;
    int pad;           /* RSA_PKCS1_PADDING or RSA_PKCS1_OAEP_PADDING */
    const char *oaepmd, *mgf1md; /* OAEP digests, NULL: defaults */
    const unsigned char *label;
    size_t labellen;
    const unsigned char *in;
    size_t inlen;
    unsigned char *out;
    size_t outlen; /* in: capacity */
    unsigned long err;
} op_enc;
int op_encrypt(void *p);
int op_decrypt(void *p);
/* op_decrypt, but bad PKCS#1 v1.5 padding is an error on every 3.x: implicit rejection
 * (since 3.2: a substitute message instead of an error) is turned off. */
int op_decrypt_explicit(void *p);

typedef struct op_dh {
    OSSL_LIB_CTX *lib;
    const char *propq;
    EVP_PKEY *priv, *peer;
    unsigned char out[160];
    size_t outlen;
    unsigned long err;
} op_dh;
int op_derive(void *p);

typedef struct op_kg {
    OSSL_LIB_CTX *lib;
    const char *propq;
    const char *alg;   /* "RSA", "EC", "X25519", ... */
    const char *group; /* EC curve or NULL */
    int bits;          /* RSA bits or 0 */
    EVP_PKEY *out;
    unsigned long err;
} op_kg;
int op_keygen(void *p);

typedef struct op_ciph {
    OSSL_LIB_CTX *lib;
    const char *propq;
    const char *name; /* "AES-128-GCM", ... */
    int enc;
    int aead;
    const unsigned char *key, *iv, *aad;
    size_t ivlen, aadlen; /* ivlen: set explicitly if not the cipher's default */
    const unsigned char *in;
    size_t inlen;
    size_t chunk; /* feed input in pieces of this size; 0: all at once */
    unsigned char *out; /* capacity >= inlen + 32 */
    size_t outlen;
    unsigned char tag[16];
    size_t taglen; /* AEAD: tag to produce (enc) or check (dec) */
    int fetch_failed; /* the cipher is not offered under propq */
    unsigned long err;
} op_ciph;
int op_cipher(void *p);

#endif
