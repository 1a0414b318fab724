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
#include <stdio.h>
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

/*
 * Read exactly one DER element (tag, definite length, contents) into guarded
 * memory: d2i callers expect the input to advance past the key and no further.
 * NULL if the input is not a plausible DER element.
 */
static mg_buffer *read_element(OSSL_LIB_CTX *core_libctx, OSSL_CORE_BIO *cin, size_t *len)
{
    BIO *in = BIO_new_from_core_bio(core_libctx, cin);
    mg_buffer *b = NULL;
    unsigned char hdr[6];
    if (in == NULL || BIO_read(in, hdr, 2) != 2 || (hdr[0] & 0x1f) == 0x1f)
        goto out; /* empty input, or a multi-byte tag: not a key */
    size_t hlen = 2, body;
    if (hdr[1] < 0x80) {
        body = hdr[1];
    } else {
        size_t n = hdr[1] & 0x7f;
        if (n == 0 || n > 4 || BIO_read(in, hdr + 2, (int)n) != (int)n)
            goto out; /* indefinite or absurd length */
        body = 0;
        for (size_t i = 0; i < n; i++)
            body = body << 8 | hdr[2 + i];
        hlen += n;
    }
    if (body == 0 || body > (1u << 20))
        goto out;
    b = mg_buffer_new(hlen + body);
    if (b == NULL)
        goto out;
    unsigned char *p = mg_buffer_data(b);
    memcpy(p, hdr, hlen);
    size_t got = 0;
    while (got < body) {
        int n = BIO_read(in, p + hlen + got, (int)(body - got));
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    if (got != body) {
        mg_buffer_destroy(b);
        b = NULL;
    }
out:
    BIO_free(in);
    *len = b != NULL ? hlen + body : 0;
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
    mg_buffer *der = read_element(c->prov->core_libctx, cin, &len);
    if (der == NULL)
        return 1;
    EVP_PKEY *full = mgp_der_to_pkey(c->prov, c->type, c->type_specific, mg_buffer_data(der), len);
    /* A key of our type that we cannot seal (explicit curve parameters, SM2, ...) is not silently unprotected. */
    static _Atomic int warned;
    const unsigned char *d = mg_buffer_data(der);
    bool mine = c->type_specific ? mgp_der_is_type_specific(c->type, d, len)
                                 : mgp_der_pkcs8_type(d, len) != NULL && strcmp(mgp_der_pkcs8_type(d, len), c->type) == 0;
    if (full == NULL && mine && atomic_exchange(&warned, 1) == 0)
        fprintf(stderr,
                "memguard-provider: WARNING: a %s private key in a form memguard does not support (for example "
                "explicit curve parameters) is left to the default provider, NOT sealed\n",
                c->type);
    mg_buffer_destroy(der); /* wipes the DER */
    int rc = 1; /* not ours: let the next decoder try */
    if (full != NULL && EVP_PKEY_is_a(full, c->type))
        rc = mgp_hand_over(c->prov, c->type, full, data_cb, data_cbarg);
    else
        EVP_PKEY_free(full);
    mg_scrub(MGP_SCRUB_STACK); /* registers and callees' stack frames held the key */
    return rc;
}

int mgp_hand_over(mgp_ctx *prov, const char *type, EVP_PKEY *full, OSSL_CALLBACK *data_cb, void *data_cbarg)
{
    mgp_key *k = mgp_key_new(prov, type);
    int ok = k != NULL && mgp_key_set_from_pkey(k, full);
    EVP_PKEY_free(full);
    if (!ok) {
        mgp_key_free(k);
        return 1;
    }
    mgp_debug(prov, "sealed a %s private key", type);
    int objtype = OSSL_OBJECT_PKEY;
    OSSL_PARAM params[] = {
        OSSL_PARAM_int(OSSL_OBJECT_PARAM_TYPE, &objtype),
        OSSL_PARAM_utf8_string(OSSL_OBJECT_PARAM_DATA_TYPE, (char *)(uintptr_t)type, strlen(type)),
        OSSL_PARAM_octet_string(OSSL_OBJECT_PARAM_REFERENCE, &k, sizeof k),
        OSSL_PARAM_END,
    };
    int rc = data_cb(params, data_cbarg);
    mgp_debug(prov, "handed the %s key to OpenSSL: %s", type, rc ? "accepted" : "refused");
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
