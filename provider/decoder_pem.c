/*
 * DECODER "DER" from input=pem for private-key PEM only. OpenSSL's own PEM to
 * DER step frees the decoded DER (the whole private key) without wiping it;
 * this one decodes base64 into guarded memory and wipes it once the next
 * decoder has consumed it. It claims only the labels below; certificates,
 * public keys, parameters and legacy "Proc-Type: 4,ENCRYPTED" keys return
 * "not mine", and the default provider's decoder handles them as before.
 *
 * It reads exactly one PEM block, line by line, so the input position after a
 * success is just past the END line (files holding a key and certificates
 * keep working); on "not mine" OpenSSL rewinds the input for the next decoder.
 */
#include <string.h>

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/core_object.h>
#include <openssl/err.h>
#include <openssl/params.h>
#include <openssl/x509.h>
#include <sodium.h>

#include "provider.h"

#define LINE_MAX_LEN 1024
#define BODY_MAX (1u << 20)

static const struct label {
    const char *pem;
    const char *structure;
    const char *type; /* NULL: any */
} labels[] = {
    {"PRIVATE KEY", MGP_STRUCT_PKI, NULL},
    {"ENCRYPTED PRIVATE KEY", MGP_STRUCT_PKI, NULL}, /* decrypted here (decrypt_pkcs8) */
    {"RSA PRIVATE KEY", MGP_STRUCT_TS, "RSA"},
    {"EC PRIVATE KEY", MGP_STRUCT_TS, "EC"},
};

static void *pem_newctx(void *provctx)
{
    return provctx; /* no per-call state */
}

static void pem_freectx(void *vctx)
{
    (void)vctx;
}

static const struct label *match_begin(const char *line, size_t len)
{
    static const char begin[] = "-----BEGIN ";
    if (len < sizeof begin - 1 || memcmp(line, begin, sizeof begin - 1) != 0)
        return NULL;
    for (size_t i = 0; i < sizeof labels / sizeof labels[0]; i++) {
        size_t l = strlen(labels[i].pem);
        const char *at = line + sizeof begin - 1;
        if (len >= sizeof begin - 1 + l + 5 && memcmp(at, labels[i].pem, l) == 0 && memcmp(at + l, "-----", 5) == 0)
            return &labels[i];
    }
    return NULL;
}

/* Length without the trailing CR/LF. */
static size_t chomp(const char *s, size_t n)
{
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r'))
        n--;
    return n;
}

/*
 * An EncryptedPrivateKeyInfo (PKCS#8, PBES2 or PKCS#12 PBE) decrypted straight
 * into guarded memory: OpenSSL's own decoder would decrypt into a heap buffer
 * and hand it to decoders that copy it again. The passphrase is asked into a
 * guarded buffer too. NULL on a wrong passphrase or an unknown scheme (the
 * default provider's decoder then tries, and reports the error).
 */
static mg_buffer *decrypt_pkcs8(mgp_ctx *prov, const unsigned char *der, size_t len, size_t *outlen,
                                OSSL_PASSPHRASE_CALLBACK *pw_cb, void *pw_cbarg)
{
    const unsigned char *p = der;
    X509_SIG *epki = d2i_X509_SIG(NULL, &p, (long)len);
    mg_buffer *pass = mg_buffer_new(1024), *out = NULL;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    const X509_ALGOR *alg = NULL;
    const ASN1_OCTET_STRING *ct = NULL;
    size_t passlen = 0;
    int n = 0, fin = 0;
    if (epki == NULL || pass == NULL || ctx == NULL || pw_cb == NULL || p != der + len)
        goto fail;
    X509_SIG_get0(epki, &alg, &ct);
    if (!pw_cb(mg_buffer_data(pass), mg_buffer_size(pass), &passlen, NULL, pw_cbarg) ||
        passlen > mg_buffer_size(pass) || ct->length <= 0)
        goto fail;
    ERR_set_mark(); /* a wrong passphrase leaves errors the default decoder will report itself */
    int ok = EVP_PBE_CipherInit_ex(alg->algorithm, mg_buffer_data(pass), (int)passlen, alg->parameter, ctx, 0,
                                   prov->libctx, NULL) == 1 &&
             (out = mg_buffer_new((size_t)ct->length + EVP_MAX_BLOCK_LENGTH)) != NULL &&
             EVP_CipherUpdate(ctx, mg_buffer_data(out), &n, ct->data, ct->length) == 1 &&
             EVP_CipherFinal_ex(ctx, (unsigned char *)mg_buffer_data(out) + n, &fin) == 1;
    ERR_pop_to_mark();
    if (!ok)
        goto fail;
    *outlen = (size_t)n + (size_t)fin;
    mg_buffer_destroy(pass);
    EVP_CIPHER_CTX_free(ctx); /* clears the derived key */
    X509_SIG_free(epki);
    return out;
fail:
    mg_buffer_destroy(out);
    mg_buffer_destroy(pass);
    EVP_CIPHER_CTX_free(ctx);
    X509_SIG_free(epki);
    return NULL;
}

static int pem_decode(void *vctx, OSSL_CORE_BIO *cin, int selection, OSSL_CALLBACK *data_cb, void *data_cbarg,
                      OSSL_PASSPHRASE_CALLBACK *pw_cb, void *pw_cbarg)
{
    mgp_ctx *prov = vctx;
    if (selection != 0 && !(selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY))
        return 1;
    BIO *in = BIO_new_from_core_bio(prov->core_libctx, cin);
    mg_buffer *line_buf = mg_buffer_new(LINE_MAX_LEN);
    mg_buffer *body = mg_buffer_new(16384 - MG_MIN_CANARY);
    mg_buffer *der = NULL;
    int rc = 1; /* "not mine" unless we get all the way */
    if (in == NULL || line_buf == NULL || body == NULL)
        goto out;
    char *line = mg_buffer_data(line_buf);
    const struct label *lab = NULL;
    /* Find the BEGIN line; anything before it (comments, other text) is skipped, as OpenSSL does. */
    for (int lines = 0; lab == NULL && lines < 10000; lines++) {
        int n = BIO_gets(in, line, LINE_MAX_LEN);
        if (n <= 0)
            goto out;
        if (strncmp(line, "-----BEGIN ", 11) == 0) {
            lab = match_begin(line, chomp(line, (size_t)n));
            if (lab == NULL)
                goto out; /* a certificate or another object: not ours */
        }
    }
    if (lab == NULL)
        goto out;
    size_t used = 0, cap = mg_buffer_size(body);
    char end_line[64];
    int end_len = snprintf(end_line, sizeof end_line, "-----END %s-----", lab->pem);
    for (;;) {
        int n = BIO_gets(in, line, LINE_MAX_LEN);
        if (n <= 0)
            goto out; /* truncated: let the default decoder report it */
        size_t len = chomp(line, (size_t)n);
        if (len == (size_t)end_len && memcmp(line, end_line, len) == 0)
            break;
        if (memchr(line, ':', len) != NULL)
            goto out; /* RFC 1421 headers (legacy encryption): the default decoder's job */
        if (used + len > cap) {
            if (cap * 2 > BODY_MAX)
                goto out;
            mg_buffer *bigger = mg_buffer_new(cap * 2);
            if (bigger == NULL || mg_buffer_copy(bigger, mg_buffer_data(body), used) != MG_OK) {
                mg_buffer_destroy(bigger);
                goto out;
            }
            mg_buffer_destroy(body);
            body = bigger;
            cap *= 2;
        }
        memcpy((char *)mg_buffer_data(body) + used, line, len);
        used += len;
    }
    der = mg_buffer_new(used / 4 * 3 + 3);
    size_t der_len = 0;
    const char *b64_end = NULL;
    if (der == NULL ||
        sodium_base642bin(mg_buffer_data(der), mg_buffer_size(der), mg_buffer_data(body), used, " \t", &der_len,
                          &b64_end, sodium_base64_VARIANT_ORIGINAL) != 0 ||
        b64_end != (const char *)mg_buffer_data(body) + used || der_len == 0)
        goto out;
    mgp_debug(prov, "decoded a \"%s\" PEM block in guarded memory", lab->pem);
    if (strcmp(lab->pem, "ENCRYPTED PRIVATE KEY") == 0) {
        size_t plain_len = 0;
        mg_buffer *plain = decrypt_pkcs8(prov, mg_buffer_data(der), der_len, &plain_len, pw_cb, pw_cbarg);
        if (plain == NULL)
            goto out;
        mg_buffer_destroy(der);
        der = plain;
        der_len = plain_len;
        mgp_debug(prov, "decrypted the PKCS#8 key in guarded memory");
    }
    OSSL_PARAM params[4];
    size_t i = 0;
    if (lab->type != NULL)
        params[i++] = OSSL_PARAM_construct_utf8_string(OSSL_OBJECT_PARAM_DATA_TYPE, (char *)(uintptr_t)lab->type, 0);
    params[i++] =
        OSSL_PARAM_construct_utf8_string(OSSL_OBJECT_PARAM_DATA_STRUCTURE, (char *)(uintptr_t)lab->structure, 0);
    params[i++] = OSSL_PARAM_construct_octet_string(OSSL_OBJECT_PARAM_DATA, mg_buffer_data(der), der_len);
    params[i] = OSSL_PARAM_construct_end();
    rc = data_cb(params, data_cbarg);
out:
    BIO_free(in);
    mg_buffer_destroy(line_buf); /* every buffer is wiped on destroy */
    mg_buffer_destroy(body);
    mg_buffer_destroy(der);
    /* The key passed through registers and callees' stack frames (including the dynamic linker's). */
    mg_scrub(MGP_SCRUB_STACK);
    return rc;
}

static int pem_does_selection(void *provctx, int selection)
{
    (void)provctx;
    return selection == 0 || (selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) != 0;
}

const OSSL_DISPATCH mgp_pem_to_der_decoder[] = {
    {OSSL_FUNC_DECODER_NEWCTX, (void (*)(void))pem_newctx},
    {OSSL_FUNC_DECODER_FREECTX, (void (*)(void))pem_freectx},
    {OSSL_FUNC_DECODER_DOES_SELECTION, (void (*)(void))pem_does_selection},
    {OSSL_FUNC_DECODER_DECODE, (void (*)(void))pem_decode},
    {0, NULL},
};
