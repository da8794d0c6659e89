#include "ops.h"

#include <string.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/rsa.h>

/* Remember the last error of a failed call, leave the queue empty for the next op. */
static int finish(int ok, unsigned long *err)
{
    *err = ok ? 0 : ERR_peek_last_error();
    ERR_clear_error();
    return ok;
}

static int rsa_sig_params(EVP_PKEY_CTX *pc, const op_sig *o)
{
    if (o->pad == 0)
        return 1;
    if (EVP_PKEY_CTX_set_rsa_padding(pc, o->pad) <= 0)
        return 0;
    if (o->pad == RSA_PKCS1_PSS_PADDING) {
        if (o->saltlen >= 0 && EVP_PKEY_CTX_set_rsa_pss_saltlen(pc, o->saltlen) <= 0)
            return 0;
        if (o->mgf1md != NULL && EVP_PKEY_CTX_set_rsa_mgf1_md_name(pc, o->mgf1md, NULL) <= 0)
            return 0;
    }
    return 1;
}

static int set_md(EVP_PKEY_CTX *pc, const char *md)
{
    OSSL_PARAM ps[] = {OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_DIGEST, (char *)md,
                                              strlen(md)),
                       OSSL_PARAM_END};

    return EVP_PKEY_CTX_set_params(pc, ps) > 0;
}

static int sig_common(op_sig *o, int verify)
{
    int ok = 0;

    if (o->raw) {
        EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new_from_pkey(o->lib, o->key, o->propq);

        if (pc == NULL)
            return finish(0, &o->err);
        if ((verify ? EVP_PKEY_verify_init(pc) : EVP_PKEY_sign_init(pc)) > 0
            && rsa_sig_params(pc, o)
            && (o->md == NULL || set_md(pc, o->md))) {
            if (verify)
                ok = EVP_PKEY_verify(pc, o->sig, o->siglen, o->msg, o->msglen) == 1;
            else
                ok = EVP_PKEY_sign(pc, o->sig, &o->siglen, o->msg, o->msglen) == 1;
        }
        EVP_PKEY_CTX_free(pc);
    } else {
        EVP_MD_CTX *mc = EVP_MD_CTX_new();
        EVP_PKEY_CTX *pc = NULL;

        if (mc == NULL)
            return finish(0, &o->err);
        if ((verify ? EVP_DigestVerifyInit_ex(mc, &pc, o->md, o->lib, o->propq, o->key, NULL)
                    : EVP_DigestSignInit_ex(mc, &pc, o->md, o->lib, o->propq, o->key, NULL)) == 1
            && rsa_sig_params(pc, o)) {
            if (verify)
                ok = EVP_DigestVerify(mc, o->sig, o->siglen, o->msg, o->msglen) == 1;
            else
                ok = EVP_DigestSign(mc, o->sig, &o->siglen, o->msg, o->msglen) == 1;
        }
        EVP_MD_CTX_free(mc);
    }
    return finish(ok, &o->err);
}

int op_sign(void *p)
{
    return sig_common(p, 0);
}

int op_verify(void *p)
{
    return sig_common(p, 1);
}

/* OpenSSL 3.2+; the name is spelled out so that a build against older headers still
 * asks for it when it runs on a newer libcrypto. */
#ifndef OSSL_ASYM_CIPHER_PARAM_IMPLICIT_REJECTION
#define OSSL_ASYM_CIPHER_PARAM_IMPLICIT_REJECTION "implicit-rejection"
#endif

/* Implicit rejection off, where the ctx has the switch: before 3.2 rejection is always
 * explicit, and the parameter is unknown. */
static int explicit_rejection(EVP_PKEY_CTX *pc)
{
    unsigned int off = 0;
    OSSL_PARAM ps[] = {OSSL_PARAM_uint(OSSL_ASYM_CIPHER_PARAM_IMPLICIT_REJECTION, &off),
                       OSSL_PARAM_END};

    if (OSSL_PARAM_locate_const(EVP_PKEY_CTX_settable_params(pc),
                                OSSL_ASYM_CIPHER_PARAM_IMPLICIT_REJECTION) == NULL)
        return 1;
    return EVP_PKEY_CTX_set_params(pc, ps) > 0;
}

/* dec: 0 encrypt, 1 decrypt, 2 decrypt with explicit PKCS#1 v1.5 rejection. */
static int enc_common(op_enc *o, int dec)
{
    EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new_from_pkey(o->lib, o->key, o->propq);
    int ok = 0;

    if (pc == NULL)
        return finish(0, &o->err);
    if ((dec ? EVP_PKEY_decrypt_init(pc) : EVP_PKEY_encrypt_init(pc)) > 0
        && EVP_PKEY_CTX_set_rsa_padding(pc, o->pad) > 0
        && (o->oaepmd == NULL || EVP_PKEY_CTX_set_rsa_oaep_md_name(pc, o->oaepmd, NULL) > 0)
        && (o->mgf1md == NULL || EVP_PKEY_CTX_set_rsa_mgf1_md_name(pc, o->mgf1md, NULL) > 0)
        && (dec != 2 || o->pad != RSA_PKCS1_PADDING || explicit_rejection(pc))) {
        ok = 1;
        if (o->labellen > 0) {
            unsigned char *l = OPENSSL_memdup(o->label, o->labellen);

            ok = l != NULL && EVP_PKEY_CTX_set0_rsa_oaep_label(pc, l, (int)o->labellen) > 0;
            if (!ok)
                OPENSSL_free(l);
        }
        if (ok)
            ok = (dec ? EVP_PKEY_decrypt(pc, o->out, &o->outlen, o->in, o->inlen)
                      : EVP_PKEY_encrypt(pc, o->out, &o->outlen, o->in, o->inlen)) == 1;
    }
    EVP_PKEY_CTX_free(pc);
    return finish(ok, &o->err);
}

int op_encrypt(void *p)
{
    return enc_common(p, 0);
}

int op_decrypt(void *p)
{
    return enc_common(p, 1);
}

int op_decrypt_explicit(void *p)
{
    return enc_common(p, 2);
}

int op_derive(void *p)
{
    op_dh *o = p;
    EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new_from_pkey(o->lib, o->priv, o->propq);
    int ok = 0;

    o->outlen = sizeof(o->out);
    if (pc != NULL && EVP_PKEY_derive_init(pc) > 0 && EVP_PKEY_derive_set_peer(pc, o->peer) > 0)
        ok = EVP_PKEY_derive(pc, o->out, &o->outlen) == 1;
    EVP_PKEY_CTX_free(pc);
    return finish(ok, &o->err);
}

int op_keygen(void *p)
{
    op_kg *o = p;
    EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new_from_name(o->lib, o->alg, o->propq);
    int ok = 0;

    if (pc != NULL && EVP_PKEY_keygen_init(pc) > 0
        && (o->group == NULL || EVP_PKEY_CTX_set_group_name(pc, o->group) > 0)
        && (o->bits == 0 || EVP_PKEY_CTX_set_rsa_keygen_bits(pc, o->bits) > 0))
        ok = EVP_PKEY_generate(pc, &o->out) == 1;
    EVP_PKEY_CTX_free(pc);
    return finish(ok, &o->err);
}

int op_cipher(void *p)
{
    op_ciph *o = p;
    EVP_CIPHER *c = EVP_CIPHER_fetch(o->lib, o->name, o->propq);
    EVP_CIPHER_CTX *cc = EVP_CIPHER_CTX_new();
    size_t off = 0, step = o->chunk ? o->chunk : o->inlen;
    int ok = 0, n = 0;

    o->outlen = 0;
    o->fetch_failed = c == NULL;
    if (c == NULL || cc == NULL)
        goto end;
    if (!EVP_CipherInit_ex2(cc, c, NULL, NULL, o->enc, NULL))
        goto end;
    if (o->aead && o->ivlen != (size_t)EVP_CIPHER_get_iv_length(c)) {
        OSSL_PARAM ps[] = {OSSL_PARAM_size_t(OSSL_CIPHER_PARAM_AEAD_IVLEN, &o->ivlen),
                           OSSL_PARAM_END};

        if (!EVP_CIPHER_CTX_set_params(cc, ps))
            goto end;
    }
    if (!EVP_CipherInit_ex2(cc, NULL, o->key, o->iv, o->enc, NULL))
        goto end;
    if (!o->aead && !EVP_CIPHER_CTX_set_padding(cc, 1))
        goto end;
    if (o->aead && o->aadlen > 0 && !EVP_CipherUpdate(cc, NULL, &n, o->aad, (int)o->aadlen))
        goto end;
    if (o->aead && !o->enc && !EVP_CIPHER_CTX_ctrl(cc, EVP_CTRL_AEAD_SET_TAG, (int)o->taglen,
                                                   o->tag))
        goto end;
    if (step == 0)
        step = 1;
    while (off < o->inlen) {
        size_t m = o->inlen - off < step ? o->inlen - off : step;

        if (!EVP_CipherUpdate(cc, o->out + o->outlen, &n, o->in + off, (int)m))
            goto end;
        o->outlen += (size_t)n;
        off += m;
    }
    if (!EVP_CipherFinal_ex(cc, o->out + o->outlen, &n))
        goto end;
    o->outlen += (size_t)n;
    if (o->aead && o->enc
        && !EVP_CIPHER_CTX_ctrl(cc, EVP_CTRL_AEAD_GET_TAG, (int)o->taglen, o->tag))
        goto end;
    ok = 1;
end:
    EVP_CIPHER_CTX_free(cc);
    EVP_CIPHER_free(c);
    return finish(ok, &o->err);
}
