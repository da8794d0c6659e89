/*
 * provider/compat.h — dispatch ids and function shapes that OpenSSL 3.0's headers lack.
 *
 * asyncpool must forward every function the backend has, whatever OpenSSL it was built
 * against (DESIGN.md decision 11): a module built on 3.0 and loaded into 3.5 meets the
 * 3.4/3.5 ids at run time. Dispatch ids are part of OpenSSL's stable ABI, so defining
 * the missing ones here, with the same numbers, is what a newer header would do. The
 * function shapes are our own typedefs (ap_*), used on every version, so that the code
 * reads the same whichever header is present.
 */
#ifndef ASYNCPOOL_COMPAT_H
#define ASYNCPOOL_COMPAT_H

#include <stddef.h>

#include <openssl/core.h>
#include <openssl/core_dispatch.h>

/* Operations: OSSL_OP_KEM is in 3.0; opaque symmetric keys came with 3.5. */
#ifndef OSSL_OP_SKEYMGMT
#define OSSL_OP_SKEYMGMT 15
#endif

/* Cipher: pipelines and opaque-key init (3.5). */
#ifndef OSSL_FUNC_CIPHER_PIPELINE_ENCRYPT_INIT
#define OSSL_FUNC_CIPHER_PIPELINE_ENCRYPT_INIT 15
#define OSSL_FUNC_CIPHER_PIPELINE_DECRYPT_INIT 16
#define OSSL_FUNC_CIPHER_PIPELINE_UPDATE 17
#define OSSL_FUNC_CIPHER_PIPELINE_FINAL 18
#endif
#ifndef OSSL_FUNC_CIPHER_ENCRYPT_SKEY_INIT
#define OSSL_FUNC_CIPHER_ENCRYPT_SKEY_INIT 19
#define OSSL_FUNC_CIPHER_DECRYPT_SKEY_INIT 20
#endif

/* Keymgmt: generation parameters read back (3.4), import/export types by selection
 * (3.2). */
#ifndef OSSL_FUNC_KEYMGMT_GEN_GET_PARAMS
#define OSSL_FUNC_KEYMGMT_GEN_GET_PARAMS 15
#define OSSL_FUNC_KEYMGMT_GEN_GETTABLE_PARAMS 16
#endif
#ifndef OSSL_FUNC_KEYMGMT_IMPORT_TYPES_EX
#define OSSL_FUNC_KEYMGMT_IMPORT_TYPES_EX 45
#define OSSL_FUNC_KEYMGMT_EXPORT_TYPES_EX 46
#endif

/* Signature: key types and message signatures (3.4). */
#ifndef OSSL_FUNC_SIGNATURE_QUERY_KEY_TYPES
#define OSSL_FUNC_SIGNATURE_QUERY_KEY_TYPES 26
#endif
#ifndef OSSL_FUNC_SIGNATURE_SIGN_MESSAGE_INIT
#define OSSL_FUNC_SIGNATURE_SIGN_MESSAGE_INIT 27
#define OSSL_FUNC_SIGNATURE_SIGN_MESSAGE_UPDATE 28
#define OSSL_FUNC_SIGNATURE_SIGN_MESSAGE_FINAL 29
#define OSSL_FUNC_SIGNATURE_VERIFY_MESSAGE_INIT 30
#define OSSL_FUNC_SIGNATURE_VERIFY_MESSAGE_UPDATE 31
#define OSSL_FUNC_SIGNATURE_VERIFY_MESSAGE_FINAL 32
#endif

/* Key exchange: derive straight into an opaque symmetric key (3.6: ECDH). */
#ifndef OSSL_FUNC_KEYEXCH_DERIVE_SKEY
#define OSSL_FUNC_KEYEXCH_DERIVE_SKEY 11
#endif

/* KEM: authenticated encapsulation (3.2). */
#ifndef OSSL_FUNC_KEM_AUTH_ENCAPSULATE_INIT
#define OSSL_FUNC_KEM_AUTH_ENCAPSULATE_INIT 12
#define OSSL_FUNC_KEM_AUTH_DECAPSULATE_INIT 13
#endif

/* Opaque symmetric key management (3.5). */
#ifndef OSSL_FUNC_SKEYMGMT_FREE
#define OSSL_FUNC_SKEYMGMT_FREE 1
#define OSSL_FUNC_SKEYMGMT_IMPORT 2
#define OSSL_FUNC_SKEYMGMT_EXPORT 3
#define OSSL_FUNC_SKEYMGMT_GENERATE 4
#define OSSL_FUNC_SKEYMGMT_GET_KEY_ID 5
#define OSSL_FUNC_SKEYMGMT_IMP_SETTABLE_PARAMS 6
#define OSSL_FUNC_SKEYMGMT_GEN_SETTABLE_PARAMS 7
#endif

/* The shapes of those functions (core_dispatch.h of 3.5). */
typedef int ap_cipher_pipeline_init_fn(void *cctx, const unsigned char *key, size_t keylen,
                                       size_t numpipes, const unsigned char **iv,
                                       size_t ivlen, const OSSL_PARAM params[]);
typedef int ap_cipher_pipeline_update_fn(void *cctx, size_t numpipes, unsigned char **out,
                                         size_t *outl, const size_t *outsize,
                                         const unsigned char **in, const size_t *inl);
typedef int ap_cipher_pipeline_final_fn(void *cctx, size_t numpipes, unsigned char **out,
                                        size_t *outl, const size_t *outsize);
typedef int ap_cipher_skey_init_fn(void *cctx, void *skeydata, const unsigned char *iv,
                                   size_t ivlen, const OSSL_PARAM params[]);
typedef const OSSL_PARAM *ap_keymgmt_types_ex_fn(void *provctx, int selection);
typedef int ap_sig_message_init_fn(void *ctx, void *provkey, const OSSL_PARAM params[]);
typedef int ap_sig_message_update_fn(void *ctx, const unsigned char *in, size_t inlen);
typedef int ap_sig_sign_message_final_fn(void *ctx, unsigned char *sig, size_t *siglen,
                                         size_t sigsize);
typedef int ap_sig_verify_message_final_fn(void *ctx);
typedef int ap_kem_auth_init_fn(void *ctx, void *provkey, void *authkey,
                                const OSSL_PARAM params[]);
typedef const OSSL_PARAM *ap_skm_settable_fn(void *provctx);
typedef void *ap_skm_import_fn(void *provctx, int selection, const OSSL_PARAM params[]);
typedef void *ap_skm_generate_fn(void *provctx, const OSSL_PARAM params[]);
/* core_dispatch.h of 3.6: import is the skeymgmt's of the exchange's own provider and
 * provctx its provctx; the backend only hands both back to import. */
typedef void *ap_keyexch_derive_skey_fn(void *ctx, const char *key_type, void *provctx,
                                        ap_skm_import_fn *import, size_t keylen,
                                        const OSSL_PARAM params[]);

#endif
