/*
 * bench_cipher: memguard's ciphers against the default provider's, through
 * EVP, in one run. One library context holds both providers (default, then
 * memguard - the conf/memguard.cnf order); each side fetches its cipher with
 * "provider=default" or "provider=memguard".
 *
 * One operation is what a TLS record layer does per record: a reused context
 * already holding the key is re-initialised with a new IV, fed 13 bytes of
 * AAD, the message, final, and the tag read back. Rows run NBATCH interleaved
 * batches (memguard, default, default, memguard, ...), each about 20 ms, and
 * print the median time per operation and the ratio memguard / default.
 *
 * The last rows price the designs that were not chosen (docs/symmetric.md):
 * unsealing the key from an enclave per call, and melting/freezing the key
 * buffer around every call; and a fresh context per message.
 *
 * Usage: bench_cipher [--quick] [MODULE]. Exits 0 whatever the numbers; 1 if
 * a call fails.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/provider.h>

#include <memguard/memguard.h>

#include "harness.h"

#ifndef BENCH_PROVIDER_MODULE
#define BENCH_PROVIDER_MODULE ""
#endif

static OSSL_LIB_CTX *lib;

static _Noreturn void die(const char *what)
{
    fprintf(stderr, "bench_cipher: %s failed\n", what);
    ERR_print_errors_fp(stderr);
    exit(1);
}

/* ---- one record ---- */

typedef struct side {
    EVP_CIPHER_CTX *ctx;
    int aead, enc;
    unsigned char iv[16], *in, *out, tag[16];
    size_t len;
} side;

static void record(side *s)
{
    int l1, l2;
    if (s->enc)
        s->iv[11]++; /* a new nonce per record, as TLS 1.3's sequence-number XOR */
    if (!EVP_CipherInit_ex2(s->ctx, NULL, NULL, s->iv, s->enc, NULL))
        die("init");
    static const unsigned char aad[13] = {23, 3, 3};
    if (s->aead && !EVP_CipherUpdate(s->ctx, NULL, &l1, aad, 13))
        die("AAD");
    if (!s->enc && s->aead && EVP_CIPHER_CTX_ctrl(s->ctx, EVP_CTRL_AEAD_SET_TAG, 16, s->tag) <= 0)
        die("set tag");
    if (!EVP_CipherUpdate(s->ctx, s->out, &l1, s->in, (int)s->len))
        die("update");
    if (!EVP_CipherFinal_ex(s->ctx, s->out + l1, &l2))
        die("final");
    if (s->enc && s->aead && EVP_CIPHER_CTX_ctrl(s->ctx, EVP_CTRL_AEAD_GET_TAG, 16, s->tag) <= 0)
        die("get tag");
}

static void side_init(side *s, const char *alg, const char *prov, int enc, size_t len, const unsigned char *key)
{
    char q[64];
    snprintf(q, sizeof q, "provider=%s", prov);
    EVP_CIPHER *c = EVP_CIPHER_fetch(lib, alg, q);
    if (c == NULL)
        die(alg);
    memset(s, 0, sizeof *s);
    s->ctx = EVP_CIPHER_CTX_new();
    s->aead = (EVP_CIPHER_get_flags(c) & EVP_CIPH_FLAG_AEAD_CIPHER) != 0;
    s->enc = enc;
    s->len = len;
    s->in = calloc(1, len + 32);
    s->out = calloc(1, len + 32);
    if (s->ctx == NULL || s->in == NULL || s->out == NULL || !EVP_CipherInit_ex2(s->ctx, c, key, s->iv, enc, NULL))
        die("context");
    /* loaded by path, memguard is named by its path */
    if (strstr(OSSL_PROVIDER_get0_name(EVP_CIPHER_get0_provider(EVP_CIPHER_CTX_get0_cipher(s->ctx))), prov) == NULL)
        die("provider check");
    EVP_CIPHER_free(c);
}

static void side_free(side *s)
{
    EVP_CIPHER_CTX_free(s->ctx);
    free(s->in);
    free(s->out);
}

static void op_record(void *arg)
{
    record(arg);
}

static void row(const char *alg, int enc, size_t len, double target)
{
    unsigned char key[32];
    for (int i = 0; i < 32; i++)
        key[i] = (unsigned char)(i * 37 + 1);
    side m, d;
    side_init(&m, alg, "memguard", enc, len, key);
    side_init(&d, alg, "default", enc, len, key);
    if (!enc) { /* a valid record to decrypt, made by the default side */
        side e;
        side_init(&e, alg, "default", 1, len, key);
        record(&e);
        memcpy(m.in, e.out, len), memcpy(d.in, e.out, len);
        memcpy(m.tag, e.tag, 16), memcpy(d.tag, e.tag, 16);
        memcpy(m.iv, e.iv, 16), memcpy(d.iv, e.iv, 16); /* decryption repeats this one record */
        side_free(&e);
    }
    record(&m), record(&d);
    if (memcmp(m.out, d.out, len) != 0 || (m.aead && enc && memcmp(m.tag, d.tag, 16) != 0))
        die("cross-check (memguard and default disagree)");
    double tm, td;
    bench_compare(op_record, &m, op_record, &d, &tm, &td);
    char label[64];
    snprintf(label, sizeof label, "%s %s", alg, enc ? "encrypt" : "decrypt");
    bench_ratio_row(32, 7, label, len, tm, td, target);
    side_free(&m);
    side_free(&d);
}

/* ---- the designs not chosen ---- */

static int noop(const void *data, size_t size, void *arg)
{
    (void)data, (void)size, (void)arg;
    return 0;
}

static void op_unseal(void *arg)
{
    if (mg_enclave_with(arg, noop, NULL) != 0)
        die("mg_enclave_with");
}

static void op_melt_freeze(void *arg)
{
    if (mg_buffer_melt(arg) != MG_OK || mg_buffer_freeze(arg) != MG_OK)
        die("melt/freeze");
}

typedef struct fresh {
    EVP_CIPHER *c;
    unsigned char key[32], iv[12], buf[64 + 16];
} fresh;

static void op_fresh(void *arg)
{
    fresh *f = arg;
    int l1, l2;
    EVP_CIPHER_CTX *x = EVP_CIPHER_CTX_new();
    if (x == NULL || !EVP_EncryptInit_ex2(x, f->c, f->key, f->iv, NULL) ||
        !EVP_EncryptUpdate(x, f->buf, &l1, f->buf, 64) || !EVP_EncryptFinal_ex(x, f->buf + l1, &l2))
        die("fresh context");
    EVP_CIPHER_CTX_free(x);
}

int main(int argc, char **argv)
{
    const char *module = BENCH_PROVIDER_MODULE;
    bench_timing.batch_ns = 20e6;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0)
            bench_timing.batch_ns = 2e6;
        else if (argv[i][0] != '-')
            module = argv[i];
        else
            return fprintf(stderr, "usage: bench_cipher [--quick] [MODULE]\n"), 2;
    }
    bench_timing.calib_ns = bench_timing.batch_ns / 4;
    if (mg_init() != MG_OK)
        die("mg_init");
    lib = OSSL_LIB_CTX_new();
    if (lib == NULL || OSSL_PROVIDER_load(lib, "default") == NULL || OSSL_PROVIDER_load(lib, module) == NULL)
        die("loading the providers");

    printf("bench_cipher (%s build, %s): median of %d interleaved batches per row\n", BENCH_BUILD_TYPE,
           OpenSSL_version(OPENSSL_VERSION), BENCH_NBATCH);
    printf("one op = re-init with a new IV + 13 B AAD + update + final + tag, on a reused context\n\n");
    printf("%-32s %9s %13s %13s %8s\n", "operation", "size", "memguard", "default", "ratio");
    static const size_t sizes[] = {64, 1024, 16384};
    const char *aeads[] = {"AES-256-GCM", "ChaCha20-Poly1305"};
    for (int a = 0; a < 2; a++)
        for (int s = 0; s < 3; s++)
            row(aeads[a], 1, sizes[s], sizes[s] == 64 ? 1.5 : sizes[s] == 16384 ? 1.25 : 0);
    row("AES-256-GCM", 0, 64, 0); /* a small record opened: SET_TAG per record */
    row("ChaCha20-Poly1305", 0, 64, 0);
    row("AES-256-GCM", 0, 16384, 0);
    row("AES-128-GCM", 1, 16384, 0);
    row("AES-256-CTR", 1, 16384, 0);
    row("AES-256-CBC", 1, 16384, 0);

    printf("\ndesigns not chosen (added cost per call; update and final are two calls per record)\n");
    unsigned char k[32] = {1};
    mg_enclave *e = mg_enclave_new(k, sizeof k);
    mg_buffer *b = mg_buffer_new(1024);
    if (e == NULL || b == NULL)
        die("enclave/buffer");
    double t1, t2;
    bench_compare(op_unseal, e, op_melt_freeze, b, &t1, &t2);
    printf("  unseal a 32 B key per call (mg_enclave_with)      %8.0f ns\n", t1);
    printf("  melt + freeze the key buffer per call (2 mprotect) %8.0f ns\n", t2);
    mg_enclave_free(e);
    mg_buffer_destroy(b);

    fresh fm = {0}, fd = {0};
    fm.c = EVP_CIPHER_fetch(lib, "AES-256-GCM", "provider=memguard");
    fd.c = EVP_CIPHER_fetch(lib, "AES-256-GCM", "provider=default");
    if (fm.c == NULL || fd.c == NULL)
        die("fetch");
    bench_compare(op_fresh, &fm, op_fresh, &fd, &t1, &t2);
    printf("  a fresh context per 64 B message (new+key+free)    %8.0f ns vs %.0f ns default (%.2fx)\n", t1, t2,
           t1 / t2);
    EVP_CIPHER_free(fm.c);
    EVP_CIPHER_free(fd.c);
    return 0;
}
