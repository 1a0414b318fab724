/*
 * ASYM_CIPHER for RSA: decryption (OAEP, PKCS#1 v1.5 with implicit rejection by default, and the
 * TLS 1.2 RSA key exchange padding with its client-version parameters) unseals the key for one
 * EVP_PKEY_decrypt, in rsa.c's constant-time path; encryption uses the public key.
 */
#include <stdint.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/params.h>
#include <openssl/rsa.h>

#include "provider.h"

/* Test hook, no secret: blinding pairs generated for the key, and pairs squared for reuse (rsa.c). */
#define MGP_ASYM_CIPHER_PARAM_BLINDINGS_MADE "memguard-rsa-blindings-made"
#define MGP_ASYM_CIPHER_PARAM_BLINDINGS_SQUARED "memguard-rsa-blindings-squared"

typedef struct {
    mgp_ctx *prov;
    mgp_key *key;
    OSSL_PARAM *params;
} ac_ctx;

static void *ac_new(void *provctx)
{
    ac_ctx *c = OPENSSL_zalloc(sizeof *c);
    if (c != NULL)
        c->prov = provctx;
    return c;
}

static void ac_free(void *vctx)
{
    ac_ctx *c = vctx;
    if (c == NULL)
        return;
    mgp_key_free(c->key);
    OSSL_PARAM_free(c->params);
    OPENSSL_free(c);
}

static void *ac_dup(void *vctx)
{
    ac_ctx *c = vctx, *d = ac_new(c->prov);
    if (d == NULL)
        return NULL;
    d->key = mgp_key_up(c->key);
    if (c->params != NULL && (d->params = OSSL_PARAM_dup(c->params)) == NULL) {
        ac_free(d);
        return NULL;
    }
    return d;
}

static int ac_set_params(void *vctx, const OSSL_PARAM params[])
{
    ac_ctx *c = vctx;
    return mgp_params_merge(&c->params, params);
}

static int ac_init(void *vctx, void *key, const OSSL_PARAM params[], bool need_private)
{
    ac_ctx *c = vctx;
    mgp_key *k = key;
    if (need_private && !mgp_key_usable(c->prov, k))
        return 0;
    if (k == NULL || k->pub == NULL) {
        MGP_ERR(c->prov, MGP_R_NOT_PRIVATE, "no usable key");
        return 0;
    }
    mgp_key_free(c->key);
    c->key = mgp_key_up(k);
    return ac_set_params(c, params);
}

static int decrypt_init(void *vctx, void *key, const OSSL_PARAM params[])
{
    return ac_init(vctx, key, params, true);
}

static int encrypt_init(void *vctx, void *key, const OSSL_PARAM params[])
{
    return ac_init(vctx, key, params, false);
}

struct dec_args {
    ac_ctx *c;
    unsigned char *out;
    size_t *outlen;
    size_t outsize;
    const unsigned char *in;
    size_t inlen;
};

static int do_decrypt(EVP_PKEY *full, void *varg)
{
    struct dec_args *a = varg;
    EVP_PKEY_CTX *p = EVP_PKEY_CTX_new_from_pkey(a->c->prov->libctx, full, "provider=default");
    size_t len = a->outsize;
    int ok = p != NULL && EVP_PKEY_decrypt_init_ex(p, a->c->params) == 1 &&
             EVP_PKEY_decrypt(p, a->out, &len, a->in, a->inlen) == 1;
    EVP_PKEY_CTX_free(p);
    if (ok)
        *a->outlen = len;
    return ok;
}

static int decrypt(void *vctx, unsigned char *out, size_t *outlen, size_t outsize, const unsigned char *in,
                   size_t inlen)
{
    ac_ctx *c = vctx;
    if (c->key == NULL)
        return 0;
    if (out == NULL) { /* the TLS padding gives a 48-byte premaster, as the default provider says */
        *outlen = mgp_rsa_pad_mode(c->params, RSA_PKCS1_PADDING) == RSA_PKCS1_WITH_TLS_PADDING
                      ? 48
                      : (size_t)EVP_PKEY_get_size(c->key->pub);
        return 1;
    }
    int rc = mgp_rsa_decrypt(c->key, c->params, in, inlen, out, outlen, outsize);
    if (rc != MGP_RSA_SLOW_PATH)
        return rc;
    struct dec_args a = {c, out, outlen, outsize, in, inlen};
    return mgp_key_with_private(c->key, do_decrypt, &a);
}

static int encrypt(void *vctx, unsigned char *out, size_t *outlen, size_t outsize, const unsigned char *in,
                   size_t inlen)
{
    ac_ctx *c = vctx;
    if (c->key == NULL)
        return 0;
    EVP_PKEY_CTX *p = EVP_PKEY_CTX_new_from_pkey(c->prov->libctx, c->key->pub, "provider=default");
    size_t len = outsize;
    int ok = p != NULL && EVP_PKEY_encrypt_init_ex(p, c->params) == 1 &&
             EVP_PKEY_encrypt(p, out, out == NULL ? outlen : &len, in, inlen) == 1;
    EVP_PKEY_CTX_free(p);
    if (ok && out != NULL)
        *outlen = len;
    return ok;
}

static int ac_get_params(void *vctx, OSSL_PARAM params[])
{
    ac_ctx *c = vctx;
    if (c->key == NULL)
        return 0;
    EVP_PKEY_CTX *p = EVP_PKEY_CTX_new_from_pkey(c->prov->libctx, c->key->pub, "provider=default");
    int ok = p != NULL && EVP_PKEY_encrypt_init_ex(p, c->params) == 1 && EVP_PKEY_CTX_get_params(p, params) == 1;
    EVP_PKEY_CTX_free(p);
    /* Ours whatever the default provider knows: implicit rejection is on unless set to 0. */
    OSSL_PARAM *ir = OSSL_PARAM_locate(params, MGP_ASYM_CIPHER_PARAM_IMPLICIT_REJECTION);
    if (ok && ir != NULL) {
        const OSSL_PARAM *set = OSSL_PARAM_locate_const(c->params, MGP_ASYM_CIPHER_PARAM_IMPLICIT_REJECTION);
        unsigned v = 1;
        ok = (set == NULL || OSSL_PARAM_get_uint(set, &v)) && OSSL_PARAM_set_uint(ir, v != 0);
    }
    OSSL_PARAM *made = OSSL_PARAM_locate(params, MGP_ASYM_CIPHER_PARAM_BLINDINGS_MADE),
               *squared = OSSL_PARAM_locate(params, MGP_ASYM_CIPHER_PARAM_BLINDINGS_SQUARED);
    if (ok && (made != NULL || squared != NULL)) {
        uint64_t m = 0, s = 0;
        ok = mgp_rsa_blinding_counts(c->key, &m, &s) && (made == NULL || OSSL_PARAM_set_uint64(made, m)) &&
             (squared == NULL || OSSL_PARAM_set_uint64(squared, s));
    }
    return ok;
}

/* OpenSSL 3.0's lists plus implicit rejection (3.2+), whatever the default provider in use lists. */
static const OSSL_PARAM settable[] = {
    OSSL_PARAM_utf8_string(OSSL_ASYM_CIPHER_PARAM_OAEP_DIGEST, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_ASYM_CIPHER_PARAM_OAEP_DIGEST_PROPS, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_ASYM_CIPHER_PARAM_PAD_MODE, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_ASYM_CIPHER_PARAM_MGF1_DIGEST, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_ASYM_CIPHER_PARAM_MGF1_DIGEST_PROPS, NULL, 0),
    OSSL_PARAM_octet_string(OSSL_ASYM_CIPHER_PARAM_OAEP_LABEL, NULL, 0),
    OSSL_PARAM_uint(OSSL_ASYM_CIPHER_PARAM_TLS_CLIENT_VERSION, NULL),
    OSSL_PARAM_uint(OSSL_ASYM_CIPHER_PARAM_TLS_NEGOTIATED_VERSION, NULL),
    OSSL_PARAM_uint(MGP_ASYM_CIPHER_PARAM_IMPLICIT_REJECTION, NULL),
    OSSL_PARAM_END,
};

static const OSSL_PARAM gettable[] = {
    OSSL_PARAM_utf8_string(OSSL_ASYM_CIPHER_PARAM_OAEP_DIGEST, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_ASYM_CIPHER_PARAM_PAD_MODE, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_ASYM_CIPHER_PARAM_MGF1_DIGEST, NULL, 0),
    OSSL_PARAM_DEFN(OSSL_ASYM_CIPHER_PARAM_OAEP_LABEL, OSSL_PARAM_OCTET_PTR, NULL, 0),
    OSSL_PARAM_uint(OSSL_ASYM_CIPHER_PARAM_TLS_CLIENT_VERSION, NULL),
    OSSL_PARAM_uint(OSSL_ASYM_CIPHER_PARAM_TLS_NEGOTIATED_VERSION, NULL),
    OSSL_PARAM_uint(MGP_ASYM_CIPHER_PARAM_IMPLICIT_REJECTION, NULL),
    OSSL_PARAM_uint64(MGP_ASYM_CIPHER_PARAM_BLINDINGS_MADE, NULL),
    OSSL_PARAM_uint64(MGP_ASYM_CIPHER_PARAM_BLINDINGS_SQUARED, NULL),
    OSSL_PARAM_END,
};

static const OSSL_PARAM *ac_settable(void *vctx, void *provctx)
{
    (void)vctx;
    (void)provctx;
    return settable;
}

static const OSSL_PARAM *ac_gettable(void *vctx, void *provctx)
{
    (void)vctx;
    (void)provctx;
    return gettable;
}

const OSSL_DISPATCH mgp_rsa_asym_cipher[] = {
    {OSSL_FUNC_ASYM_CIPHER_NEWCTX, (void (*)(void))ac_new},
    {OSSL_FUNC_ASYM_CIPHER_FREECTX, (void (*)(void))ac_free},
    {OSSL_FUNC_ASYM_CIPHER_DUPCTX, (void (*)(void))ac_dup},
    {OSSL_FUNC_ASYM_CIPHER_DECRYPT_INIT, (void (*)(void))decrypt_init},
    {OSSL_FUNC_ASYM_CIPHER_DECRYPT, (void (*)(void))decrypt},
    {OSSL_FUNC_ASYM_CIPHER_ENCRYPT_INIT, (void (*)(void))encrypt_init},
    {OSSL_FUNC_ASYM_CIPHER_ENCRYPT, (void (*)(void))encrypt},
    {OSSL_FUNC_ASYM_CIPHER_GET_CTX_PARAMS, (void (*)(void))ac_get_params},
    {OSSL_FUNC_ASYM_CIPHER_GETTABLE_CTX_PARAMS, (void (*)(void))ac_gettable},
    {OSSL_FUNC_ASYM_CIPHER_SET_CTX_PARAMS, (void (*)(void))ac_set_params},
    {OSSL_FUNC_ASYM_CIPHER_SETTABLE_CTX_PARAMS, (void (*)(void))ac_settable},
    {0, NULL},
};
