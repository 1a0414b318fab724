/*
 * DECODERs: DER PrivateKeyInfo (every key type) and type-specific RSA and EC
 * ("RSA PRIVATE KEY", "EC PRIVATE KEY") into sealed keys. Listed after the
 * default provider in openssl.cnf, these are tried first (OpenSSL 3.0 walks
 * decoders in reverse activation order), so PEM_read_bio_PrivateKey (nginx),
 * OSSL_STORE (openssl apps, s_server) and SSL_CTX_use_PrivateKey_file produce
 * memguard keys from unchanged key files.
 *
 * Contract with OpenSSL's decoder loop: calling the object callback ends the
 * search even if construction then fails, so the key is built completely
 * first; anything we cannot handle returns 1 without a callback ("not mine"),
 * and the default provider's decoder gets its turn.
 */
#include <string.h>

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/core_object.h>
#include <openssl/params.h>
#include <openssl/x509.h>

#include "provider.h"

typedef struct {
    mgp_ctx *prov;
    const char *type;   /* key type this decoder produces */
    bool type_specific; /* RSA/EC traditional structure instead of PrivateKeyInfo */
} dec_ctx;

static void *dec_new(void *provctx, const char *type, bool ts)
{
    dec_ctx *c = OPENSSL_zalloc(sizeof *c);
    if (c != NULL) {
        c->prov = provctx;
        c->type = type;
        c->type_specific = ts;
    }
    return c;
}

static void dec_free(void *vctx)
{
    OPENSSL_free(vctx);
}

static int does_selection(void *provctx, int selection)
{
    (void)provctx;
    /* Only private keys are ours; public keys and parameters stay with the default provider. */
    return selection == 0 || (selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) != 0;
}

/* Read the whole input into guarded memory; *len gets the size. NULL on error or empty input. */
static mg_buffer *read_all(OSSL_LIB_CTX *core_libctx, OSSL_CORE_BIO *cin, size_t *len)
{
    BIO *in = BIO_new_from_core_bio(core_libctx, cin);
    if (in == NULL)
        return NULL;
    size_t cap = 4096 - MG_MIN_CANARY, used = 0;
    mg_buffer *b = mg_buffer_new(cap);
    while (b != NULL) {
        if (used == cap) {
            mg_buffer *nb = cap < (1u << 24) ? mg_buffer_new(cap * 2) : NULL;
            if (nb == NULL || mg_buffer_copy(nb, mg_buffer_data(b), used) != MG_OK) {
                mg_buffer_destroy(nb);
                mg_buffer_destroy(b);
                b = NULL;
                break;
            }
            mg_buffer_destroy(b);
            b = nb;
            cap *= 2;
        }
        int n = BIO_read(in, (unsigned char *)mg_buffer_data(b) + used, (int)(cap - used));
        if (n <= 0)
            break;
        used += (size_t)n;
    }
    BIO_free(in);
    if (b != NULL && used == 0) {
        mg_buffer_destroy(b);
        b = NULL;
    }
    *len = used;
    return b;
}

static int decode(void *vctx, OSSL_CORE_BIO *cin, int selection, OSSL_CALLBACK *data_cb, void *data_cbarg,
                  OSSL_PASSPHRASE_CALLBACK *pw_cb, void *pw_cbarg)
{
    (void)pw_cb;
    (void)pw_cbarg;
    dec_ctx *c = vctx;
    if (!does_selection(c->prov, selection))
        return 1;
    size_t len = 0;
    mg_buffer *der = read_all(c->prov->core_libctx, cin, &len);
    if (der == NULL)
        return 1;
    const unsigned char *p = mg_buffer_data(der);
    EVP_PKEY *full = NULL;
    if (c->type_specific) {
        int id = strcmp(c->type, "RSA") == 0 ? EVP_PKEY_RSA : EVP_PKEY_EC;
        full = d2i_PrivateKey_ex(id, NULL, &p, (long)len, c->prov->libctx, "provider=default");
    } else {
        PKCS8_PRIV_KEY_INFO *p8 = d2i_PKCS8_PRIV_KEY_INFO(NULL, &p, (long)len);
        if (p8 != NULL)
            full = EVP_PKCS82PKEY_ex(p8, c->prov->libctx, "provider=default");
        PKCS8_PRIV_KEY_INFO_free(p8);
    }
    mg_buffer_destroy(der); /* wipes the DER */
    if (full == NULL || !EVP_PKEY_is_a(full, c->type)) {
        EVP_PKEY_free(full);
        return 1; /* not ours: let the next decoder try */
    }
    mgp_key *k = mgp_key_new(c->prov, c->type);
    int ok = k != NULL && mgp_key_set_from_pkey(k, full);
    EVP_PKEY_free(full);
    if (!ok) {
        mgp_key_free(k);
        return 1;
    }
    mgp_debug(c->prov, "sealed a %s private key", c->type);
    int objtype = OSSL_OBJECT_PKEY;
    OSSL_PARAM params[] = {
        OSSL_PARAM_int(OSSL_OBJECT_PARAM_TYPE, &objtype),
        OSSL_PARAM_utf8_string(OSSL_OBJECT_PARAM_DATA_TYPE, (char *)(uintptr_t)c->type, strlen(c->type)),
        OSSL_PARAM_octet_string(OSSL_OBJECT_PARAM_REFERENCE, &k, sizeof k),
        OSSL_PARAM_END,
    };
    int rc = data_cb(params, data_cbarg);
    mgp_debug(c->prov, "handed the %s key to OpenSSL: %s", c->type, rc ? "accepted" : "refused");
    mgp_key_free(k); /* NULL if the keymgmt's load took it */
    return rc;
}

#define DECODER(id, TYPE, TS)                                          \
    static void *id##_newctx(void *provctx)                            \
    {                                                                  \
        return dec_new(provctx, TYPE, TS);                             \
    }                                                                  \
    const OSSL_DISPATCH mgp_##id##_decoder[] = {                       \
        {OSSL_FUNC_DECODER_NEWCTX, (void (*)(void))id##_newctx},       \
        {OSSL_FUNC_DECODER_FREECTX, (void (*)(void))dec_free},         \
        {OSSL_FUNC_DECODER_DOES_SELECTION, (void (*)(void))does_selection}, \
        {OSSL_FUNC_DECODER_DECODE, (void (*)(void))decode},            \
        {0, NULL},                                                     \
    };

DECODER(rsa_der_pki, "RSA", false)
DECODER(rsapss_der_pki, "RSA-PSS", false)
DECODER(ec_der_pki, "EC", false)
DECODER(ed25519_der_pki, "ED25519", false)
DECODER(ed448_der_pki, "ED448", false)
DECODER(x25519_der_pki, "X25519", false)
DECODER(x448_der_pki, "X448", false)
DECODER(rsa_der_ts, "RSA", true)
DECODER(ec_der_ts, "EC", true)
