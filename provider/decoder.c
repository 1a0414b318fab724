/*
 * DECODERs: DER PrivateKeyInfo (every key type) and type-specific RSA, EC and
 * DSA into memguard keys, and the handles our PEM decoder hands up (load.h).
 * Listed after the default provider in openssl.cnf, these are tried first
 * (OpenSSL 3.0 walks decoders in reverse activation order), so
 * PEM_read_bio_PrivateKey (nginx), OSSL_STORE (openssl apps, s_server),
 * d2i_PrivateKey and SSL_CTX_use_PrivateKey_file produce memguard keys from
 * unchanged key files.
 *
 * Fail closed: a private key of a type we recognise always becomes a memguard
 * key, sealed or refused (load.c), never "not mine": OpenSSL's loaders would
 * otherwise fall back to libcrypto's legacy decoders and build an unprotected
 * key. "Not mine" (1 without a callback) is left for input that is not such a
 * key, and for keys memguard cannot seal when the operator allowed them
 * (memguard-unsealed-keys = allow), with a warning at every load.
 */
#include <stdio.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/core_object.h>
#include <openssl/params.h>
#include <openssl/x509.h>

#include "load.h"
#include "provider.h"

typedef struct {
    mgp_ctx *prov;
    const char *type;   /* key type this decoder produces */
    bool type_specific; /* RSA/EC/DSA traditional structure instead of PrivateKeyInfo */
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
 * NULL if the input is not a plausible DER element. If guarded memory fails,
 * the element is read into the heap (*heap set, *mg_err says why) only so that
 * the caller can tell whether it is a key to refuse; free it with
 * OPENSSL_clear_free. The caller's DER is in its own memory anyway.
 */
static unsigned char *read_element(OSSL_LIB_CTX *core_libctx, OSSL_CORE_BIO *cin, size_t *len, mg_buffer **guarded,
                                   int *mg_err)
{
    BIO *in = BIO_new_from_core_bio(core_libctx, cin);
    unsigned char *p = NULL;
    unsigned char hdr[6];
    *guarded = NULL;
    *mg_err = 0;
    *len = 0;
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
    *guarded = mg_buffer_new(hlen + body);
    if (*guarded != NULL) {
        p = mg_buffer_data(*guarded);
    } else {
        *mg_err = mg_last_error();
        if ((p = OPENSSL_malloc(hlen + body)) == NULL)
            goto out;
    }
    memcpy(p, hdr, hlen);
    size_t got = 0;
    while (got < body) {
        int n = BIO_read(in, p + hlen + got, (int)(body - got));
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    if (got != body) {
        if (*guarded != NULL)
            mg_buffer_destroy(*guarded);
        else
            OPENSSL_clear_free(p, hlen + body);
        *guarded = NULL;
        p = NULL;
        goto out;
    }
    *len = hlen + body;
out:
    BIO_free(in);
    return p;
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
    mg_buffer *guarded = NULL;
    int mg_err = 0;
    unsigned char *der = read_element(c->prov->core_libctx, cin, &len, &guarded, &mg_err);
    if (der == NULL)
        return 1;
    mgp_der_class cls;
    int rc = 1; /* not ours: let the next decoder try */
    mgp_key *k = NULL;
    if (!mgp_der_classify(der, len, c->type_specific ? c->type : NULL, &cls) || strcmp(cls.type, c->type) != 0)
        goto out;
    if (guarded == NULL) {
        k = mgp_load_refuse_memory(c->prov, c->type, mg_err, "read the key");
    } else if ((k = mgp_load_der(c->prov, &cls, c->type_specific, der, len)) == NULL && cls.unsealed != NULL &&
               c->prov->allow_unsealed) {
        mgp_load_warn_unsealed(c->type, cls.unsealed); /* every load, not once per process */
        goto out;
    }
    if (k != NULL)
        rc = mgp_hand_key(c->prov, k, data_cb, data_cbarg);
    else
        rc = 0; /* out of memory for the key object itself: an error, not "not mine" */
out:
    if (guarded != NULL)
        mg_buffer_destroy(guarded); /* wipes the DER */
    else
        OPENSSL_clear_free(der, len);
    mg_scrub(MGP_SCRUB_STACK); /* registers and callees' stack frames held the key */
    return rc;
}

int mgp_hand_over(mgp_ctx *prov, const char *type, EVP_PKEY *full, OSSL_CALLBACK *data_cb, void *data_cbarg)
{
    mgp_key *k = mgp_key_new(prov, type);
    if (k == NULL) {
        EVP_PKEY_free(full);
        return 0;
    }
    if (!mgp_key_set_from_pkey(k, full))
        mgp_key_refuse(k, mg_last_error() == MG_EMLOCK ? MGP_R_LOCKED_MEMORY : MGP_R_KEY_REFUSED,
                       "it could not be sealed: %s", mgp_key_last_failure());
    EVP_PKEY_free(full);
    return mgp_hand_key(prov, k, data_cb, data_cbarg);
}

/* OpenSSL calls this when the keymgmt it found is another provider's: our keys are never exported. */
static int export_object(void *vctx, const void *ref, size_t ref_sz, OSSL_CALLBACK *cb, void *cbarg)
{
    (void)vctx;
    (void)ref;
    (void)ref_sz;
    (void)cb;
    (void)cbarg;
    return 0;
}

/* The handles of decoder_pem.c (load.h): resolve one to its key and hand that on as a reference. */
static int handle_decode(void *vctx, OSSL_CORE_BIO *cin, int selection, OSSL_CALLBACK *data_cb, void *data_cbarg,
                         OSSL_PASSPHRASE_CALLBACK *pw_cb, void *pw_cbarg)
{
    (void)selection;
    (void)pw_cb;
    (void)pw_cbarg;
    dec_ctx *c = vctx;
    BIO *in = BIO_new_from_core_bio(c->prov->core_libctx, cin);
    unsigned char h[64];
    int n = in != NULL ? BIO_read(in, h, sizeof h) : 0;
    BIO_free(in);
    mgp_key *k = n > 0 ? mgp_handle_claim(h, (size_t)n, c->type) : NULL;
    if (k == NULL)
        return 1;
    return mgp_hand_key(c->prov, k, data_cb, data_cbarg);
}

#define DECODER_FNS(id, TYPE, TS, DECODE)                                \
    static void *id##_newctx(void *provctx)                              \
    {                                                                    \
        return dec_new(provctx, TYPE, TS);                               \
    }                                                                    \
    const OSSL_DISPATCH mgp_##id##_decoder[] = {                         \
        {OSSL_FUNC_DECODER_NEWCTX, (void (*)(void))id##_newctx},         \
        {OSSL_FUNC_DECODER_FREECTX, (void (*)(void))dec_free},           \
        {OSSL_FUNC_DECODER_DOES_SELECTION, (void (*)(void))does_selection}, \
        {OSSL_FUNC_DECODER_DECODE, (void (*)(void))DECODE},              \
        {OSSL_FUNC_DECODER_EXPORT_OBJECT, (void (*)(void))export_object}, \
        {0, NULL},                                                       \
    };
#define DECODER(id, TYPE, TS) DECODER_FNS(id, TYPE, TS, decode)
#define HANDLE_DECODER(id, TYPE) DECODER_FNS(id##_handle, TYPE, false, handle_decode)

DECODER(rsa_der_pki, "RSA", false)
DECODER(rsapss_der_pki, "RSA-PSS", false)
DECODER(ec_der_pki, "EC", false)
DECODER(ed25519_der_pki, "ED25519", false)
DECODER(ed448_der_pki, "ED448", false)
DECODER(x25519_der_pki, "X25519", false)
DECODER(x448_der_pki, "X448", false)
DECODER(rsa_der_ts, "RSA", true)
DECODER(ec_der_ts, "EC", true)
/* Types memguard cannot seal: found here only to be refused (or, if allowed, warned about). */
DECODER(dsa_der_pki, "DSA", false)
DECODER(dh_der_pki, "DH", false)
DECODER(dhx_der_pki, "DHX", false)
DECODER(sm2_der_pki, "SM2", false)
DECODER(dsa_der_ts, "DSA", true)

HANDLE_DECODER(rsa, "RSA")
HANDLE_DECODER(rsapss, "RSA-PSS")
HANDLE_DECODER(ec, "EC")
HANDLE_DECODER(ed25519, "ED25519")
HANDLE_DECODER(ed448, "ED448")
HANDLE_DECODER(x25519, "X25519")
HANDLE_DECODER(x448, "X448")
HANDLE_DECODER(dsa, "DSA")
HANDLE_DECODER(dh, "DH")
HANDLE_DECODER(dhx, "DHX")
HANDLE_DECODER(sm2, "SM2")
HANDLE_DECODER(refused, MGP_TYPE_REFUSED)
