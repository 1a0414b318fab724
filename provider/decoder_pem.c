/*
 * DECODER "DER" from input=pem, for private-key PEM. It does everything itself
 * in guarded memory - base64 to DER, decryption of an ENCRYPTED PRIVATE KEY,
 * parsing, validation and sealing (load.c) - and hands up only a one-shot
 * handle to the sealed (or refused) key, never the key's DER: OpenSSL's own
 * PEM step, its store code (OSSL_STORE's file loader decodes whatever octets
 * the PEM level gives it) and its DER decoders copy DER into heap buffers
 * freed without wiping. Certificates, public keys and parameters are "not
 * mine", and the default provider's decoder handles them as before.
 *
 * It reads exactly one PEM block, line by line, so the input position after a
 * success is just past the END line (files holding a key and certificates, or
 * several keys, keep working); on "not mine" OpenSSL rewinds the input for the
 * next decoder. Any preamble before BEGIN is skipped, however long, as
 * OpenSSL does.
 */
#include <stdio.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/core_object.h>
#include <openssl/err.h>
#include <openssl/params.h>
#include <openssl/x509.h>
#include <sodium.h>

#include "load.h"
#include "provider.h"

#define CHUNK 1024          /* one BIO_gets: a line, or part of a longer one */
#define DER_START (4096 - 2 * MG_MIN_CANARY)
#define DER_MAX (1u << 20)

static void *pem_newctx(void *provctx)
{
    return provctx; /* no per-call state */
}

static void pem_freectx(void *vctx)
{
    (void)vctx;
}

/* Length without the trailing CR/LF. */
static size_t chomp(const char *s, size_t n)
{
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r'))
        n--;
    return n;
}

/* The label of a BEGIN line ("-----BEGIN X-----"), copied into label; false if it is not one. */
static bool begin_label(const char *line, size_t len, char *label, size_t size)
{
    static const char begin[] = "-----BEGIN ";
    size_t b = sizeof begin - 1;
    if (len < b + 5 || memcmp(line, begin, b) != 0 || memcmp(line + len - 5, "-----", 5) != 0 ||
        len - b - 5 >= size)
        return false;
    memcpy(label, line + b, len - b - 5);
    label[len - b - 5] = 0;
    return true;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* Traditional labels memguard reads: "RSA PRIVATE KEY" -> "RSA". NULL for others. */
static const char *ts_type_of(const char *label)
{
    static const char *const types[] = {"RSA", "EC", "DSA"};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        size_t n = strlen(types[i]);
        if (strncmp(label, types[i], n) == 0 && strcmp(label + n, " PRIVATE KEY") == 0)
            return types[i];
    }
    return NULL;
}

/* Read the rest of the block up to its END line without keeping it (no guarded memory to put it in). */
static void skip_block(BIO *in, const char *end_line, size_t end_len)
{
    char line[CHUNK];
    bool at_start = true;
    for (;;) {
        int n = BIO_gets(in, line, sizeof line);
        if (n <= 0)
            break;
        bool starts = at_start;
        at_start = line[n - 1] == '\n';
        if (starts && chomp(line, (size_t)n) == end_len && memcmp(line, end_line, end_len) == 0)
            break;
    }
    OPENSSL_cleanse(line, sizeof line); /* base64 of the key */
}

/*
 * An EncryptedPrivateKeyInfo (PKCS#8, PBES2 or PKCS#12 PBE) decrypted straight
 * into guarded memory: OpenSSL's own decoder would decrypt into a heap buffer
 * and hand it to decoders that copy it again. The passphrase is asked into a
 * guarded buffer too. NULL on a wrong passphrase or an unknown scheme (the
 * default provider's decoder then tries, and reports the error), or with
 * *mg_err set when guarded memory failed.
 */
static mg_buffer *decrypt_pkcs8(mgp_ctx *prov, const unsigned char *der, size_t len, size_t *outlen,
                                OSSL_PASSPHRASE_CALLBACK *pw_cb, void *pw_cbarg, int *mg_err)
{
    const unsigned char *p = der;
    X509_SIG *epki = d2i_X509_SIG(NULL, &p, (long)len);
    mg_buffer *pass = mg_buffer_new(1024), *out = NULL;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    const X509_ALGOR *alg = NULL;
    const ASN1_OCTET_STRING *ct = NULL;
    size_t passlen = 0;
    int n = 0, fin = 0;
    *mg_err = 0;
    if (pass == NULL)
        *mg_err = mg_last_error();
    if (epki == NULL || pass == NULL || ctx == NULL || pw_cb == NULL || p != der + len)
        goto fail;
    X509_SIG_get0(epki, &alg, &ct);
    if (!pw_cb(mg_buffer_data(pass), mg_buffer_size(pass), &passlen, NULL, pw_cbarg) ||
        passlen > mg_buffer_size(pass) || ct->length <= 0)
        goto fail;
    ERR_set_mark(); /* a wrong passphrase leaves errors the default decoder will report itself */
    int init = EVP_PBE_CipherInit_ex(alg->algorithm, mg_buffer_data(pass), (int)passlen, alg->parameter, ctx, 0,
                                     prov->libctx, NULL) == 1;
    if (init && (out = mg_buffer_new((size_t)ct->length + EVP_MAX_BLOCK_LENGTH)) == NULL)
        *mg_err = mg_last_error();
    int ok = out != NULL && EVP_CipherUpdate(ctx, mg_buffer_data(out), &n, ct->data, ct->length) == 1 &&
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

/* The base64 body (up to the END line) decoded into guarded memory; NULL on malformed input or no memory. */
static mg_buffer *read_body(BIO *in, const char *end_line, size_t end_len, size_t *der_len, bool *headers,
                            bool *malformed, int *mg_err)
{
    mg_buffer *lb = mg_buffer_new(CHUNK + 4), *der = mg_buffer_new(DER_START);
    *der_len = 0;
    *headers = false;
    *malformed = false;
    *mg_err = 0;
    if (lb == NULL || der == NULL) {
        *mg_err = mg_last_error();
        mg_buffer_destroy(lb);
        mg_buffer_destroy(der);
        skip_block(in, end_line, end_len);
        return NULL;
    }
    char *line = mg_buffer_data(lb);
    size_t carry = 0; /* base64 characters of an incomplete quad, kept at the start of line */
    bool at_start = true, first = true, done = false;
    while (!done) {
        int n = BIO_gets(in, line + carry, CHUNK);
        if (n <= 0)
            break; /* truncated */
        char *chunk = line + carry;
        bool starts = at_start;
        at_start = chunk[n - 1] == '\n';
        size_t len = chomp(chunk, (size_t)n);
        if (starts && len == end_len && memcmp(chunk, end_line, end_len) == 0) {
            done = true;
            break;
        }
        if (starts && first && memchr(chunk, ':', len) != NULL) {
            *headers = true; /* RFC 1421 headers (Proc-Type: 4,ENCRYPTED): decrypted by the default provider */
            break;
        }
        first = false;
        size_t w = carry;
        for (size_t i = 0; i < len; i++)
            if (chunk[i] != ' ' && chunk[i] != '\t' && chunk[i] != '\r' && chunk[i] != '\n')
                line[w++] = chunk[i];
        size_t whole = w / 4 * 4, room = mg_buffer_size(der) - *der_len;
        if (whole / 4 * 3 > room) {
            size_t cap = mg_buffer_size(der) * 2;
            mg_buffer *bigger = cap <= DER_MAX ? mg_buffer_new(cap) : NULL;
            if (bigger == NULL || mg_buffer_copy(bigger, mg_buffer_data(der), *der_len) != MG_OK) {
                *mg_err = bigger == NULL && cap <= DER_MAX ? mg_last_error() : 0;
                *malformed = *mg_err == 0;
                mg_buffer_destroy(bigger);
                break;
            }
            mg_buffer_destroy(der);
            der = bigger;
        }
        size_t got = 0;
        const char *stop = NULL;
        if (whole > 0 && (sodium_base642bin((unsigned char *)mg_buffer_data(der) + *der_len,
                                            mg_buffer_size(der) - *der_len, line, whole, NULL, &got, &stop,
                                            sodium_base64_VARIANT_ORIGINAL) != 0 ||
                          stop != line + whole)) {
            *malformed = true;
            break;
        }
        *der_len += got;
        memmove(line, line + whole, w - whole);
        carry = w - whole;
    }
    if (!done || carry != 0 || *der_len == 0) {
        if (!done && !*headers && *mg_err != 0)
            skip_block(in, end_line, end_len);
        if (!*headers && *mg_err == 0)
            *malformed = true;
        mg_buffer_destroy(der);
        der = NULL;
    }
    mg_buffer_destroy(lb); /* wipes the base64 */
    return der;
}

static int pem_decode(void *vctx, OSSL_CORE_BIO *cin, int selection, OSSL_CALLBACK *data_cb, void *data_cbarg,
                      OSSL_PASSPHRASE_CALLBACK *pw_cb, void *pw_cbarg)
{
    mgp_ctx *prov = vctx;
    if (selection != 0 && !(selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY))
        return 1;
    BIO *in = BIO_new_from_core_bio(prov->core_libctx, cin);
    char pre[CHUNK], label[80];
    mg_buffer *der = NULL;
    mgp_key *k = NULL;
    int rc = 1; /* "not mine" unless it is a private key */
    if (in == NULL)
        goto out;
    /* The BEGIN line, at the start of a line; the preamble before it (any length) is public text. */
    bool at_start = true, found = false;
    while (!found) {
        int n = BIO_gets(in, pre, sizeof pre);
        if (n <= 0)
            goto out;
        bool starts = at_start;
        at_start = pre[n - 1] == '\n';
        if (starts && strncmp(pre, "-----BEGIN ", 11) == 0) {
            if (!at_start || !begin_label(pre, chomp(pre, (size_t)n), label, sizeof label))
                goto out; /* not a BEGIN line we can read: OpenSSL's decoder will say what is wrong */
            found = true;
        }
    }
    if (!ends_with(label, "PRIVATE KEY"))
        goto out; /* a certificate, a public key, parameters: not ours */
    const char *ts = ts_type_of(label);
    bool pkcs8 = strcmp(label, "PRIVATE KEY") == 0, encrypted = strcmp(label, "ENCRYPTED PRIVATE KEY") == 0;
    char end_line[96];
    int end_len = snprintf(end_line, sizeof end_line, "-----END %s-----", label);
    if (ts == NULL && !pkcs8 && !encrypted) {
        /* A label we do not know (legacy code would read "RSA-PSS PRIVATE KEY" without any provider). */
        skip_block(in, end_line, (size_t)end_len);
        if (prov->allow_unsealed) {
            mgp_load_warn_unsealed("a", label);
            goto out;
        }
        if ((k = mgp_key_new(prov, MGP_TYPE_REFUSED)) != NULL)
            mgp_key_refuse(k, MGP_R_UNSEALED_TYPE,
                           "a PEM block labelled \"%s\", which memguard cannot read or seal; set "
                           "memguard-unsealed-keys = allow to leave such keys, unprotected, to the default provider",
                           label);
        goto hand;
    }
    size_t der_len = 0;
    bool headers, malformed;
    int mg_err;
    der = read_body(in, end_line, (size_t)end_len, &der_len, &headers, &malformed, &mg_err);
    if (der == NULL) {
        if (mg_err != 0)
            k = mgp_load_refuse_memory(prov, ts != NULL ? ts : MGP_TYPE_REFUSED, mg_err, "decode the PEM key");
        else if (headers || malformed)
            goto out; /* legacy encryption, or broken PEM: the default provider's decoder decrypts or reports it */
        goto hand;
    }
    mgp_debug(prov, "decoded a \"%s\" PEM block in guarded memory", label);
    if (encrypted) {
        size_t plain_len = 0;
        mg_buffer *plain = decrypt_pkcs8(prov, mg_buffer_data(der), der_len, &plain_len, pw_cb, pw_cbarg, &mg_err);
        if (plain == NULL) {
            if (mg_err == 0)
                goto out; /* wrong passphrase or another scheme: the default decoder tries and reports */
            k = mgp_load_refuse_memory(prov, MGP_TYPE_REFUSED, mg_err, "decrypt the key");
            goto hand;
        }
        mg_buffer_destroy(der);
        der = plain;
        der_len = plain_len;
        mgp_debug(prov, "decrypted the PKCS#8 key in guarded memory");
    }
    mgp_der_class cls;
    if (!mgp_der_classify(mg_buffer_data(der), der_len, ts, &cls)) {
        if (cls.unsealed == NULL)
            goto out; /* not a private key at all: the default decoder reports it (nobody can build a key) */
        if (prov->allow_unsealed) {
            mgp_load_warn_unsealed("a", "PKCS#8 of an algorithm memguard does not know");
            goto out;
        }
        if ((k = mgp_key_new(prov, MGP_TYPE_REFUSED)) != NULL)
            mgp_key_refuse(k, MGP_R_UNSEALED_TYPE,
                           "%s; set memguard-unsealed-keys = allow to leave such keys to the default provider",
                           cls.unsealed);
        goto hand;
    }
    k = mgp_load_der(prov, &cls, ts != NULL, mg_buffer_data(der), der_len);
    if (k == NULL && cls.unsealed != NULL && prov->allow_unsealed) {
        /* Left to the default provider's decoders; ours at the DER level print the warning, once per load. */
        mgp_debug(prov, "a %s key (%s) left to the default provider", cls.type, cls.unsealed);
        goto out;
    }
hand:
    rc = k != NULL ? mgp_hand_handle(prov, k, data_cb, data_cbarg) : 0;
out:
    BIO_free(in);
    mg_buffer_destroy(der); /* wiped on destroy */
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
