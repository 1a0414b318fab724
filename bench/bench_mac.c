/*
 * bench_mac: memguard's HMAC, CMAC, KMAC, HMAC EVP_PKEY and KDFs against the default
 * provider's, through EVP, in one run. One library context holds both
 * providers (default, then memguard - the conf/memguard.cnf order); each side
 * fetches with "provider=default" or "provider=memguard".
 *
 * Rows run NBATCH interleaved batches (memguard, default, default, memguard,
 * ...), each about 20 ms, and print the median time per operation and the
 * ratio memguard / default. Every row is cross-checked first: both sides must
 * produce the same bytes.
 *
 * Usage: bench_mac [--quick] [MODULE]. Exits 0 whatever the numbers; 1 if a
 * call fails.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/provider.h>

#include <memguard/memguard.h>

#include "harness.h"

#ifndef BENCH_PROVIDER_MODULE
#define BENCH_PROVIDER_MODULE ""
#endif

static OSSL_LIB_CTX *lib;

static _Noreturn void die(const char *what)
{
    fprintf(stderr, "bench_mac: %s failed\n", what);
    ERR_print_errors_fp(stderr);
    exit(1);
}

/* The bench harness's rows, in this report's columns. */
static void print_row(const char *label, size_t len, double tm, double td, double target)
{
    bench_ratio_row(44, 6, label, len, tm, td, target);
}

/* ---- one side of a row ---- */

typedef struct side {
    const char *prov;
    EVP_MAC *mac;
    EVP_MAC_CTX *ctx;
    EVP_PKEY *pkey;
    unsigned char key[32], *msg, out[64];
    size_t len, outl;
} side;

static const unsigned char bench_key[32] = {0x4b, 0x65, 0x79, 0x21, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
                                            13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28};

static OSSL_PARAM sha256[] = {OSSL_PARAM_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0), OSSL_PARAM_END};

static void side_init(side *s, const char *prov, size_t len)
{
    char q[64];
    snprintf(q, sizeof q, "provider=%s", prov);
    memset(s, 0, sizeof *s);
    s->prov = prov;
    s->len = len;
    memcpy(s->key, bench_key, sizeof s->key);
    s->msg = calloc(1, len + 1);
    s->mac = EVP_MAC_fetch(lib, "HMAC", q);
    s->ctx = s->mac != NULL ? EVP_MAC_CTX_new(s->mac) : NULL;
    s->pkey = EVP_PKEY_new_raw_private_key_ex(lib, "HMAC", q, s->key, sizeof s->key);
    if (s->msg == NULL || s->ctx == NULL || s->pkey == NULL || EVP_MAC_init(s->ctx, s->key, sizeof s->key, sha256) != 1)
        die("context");
    for (size_t i = 0; i < len; i++)
        s->msg[i] = (unsigned char)(i * 131);
    /* loaded by path, memguard is named by its path */
    if (strstr(OSSL_PROVIDER_get0_name(EVP_MAC_get0_provider(s->mac)), prov) == NULL ||
        strstr(OSSL_PROVIDER_get0_name(EVP_PKEY_get0_provider(s->pkey)), prov) == NULL)
        die("provider check");
}

static void side_free(side *s)
{
    EVP_MAC_CTX_free(s->ctx);
    EVP_MAC_free(s->mac);
    EVP_PKEY_free(s->pkey);
    free(s->msg);
}

/* A reused context that holds the key: re-init (no key), update, final. */
static void op_reinit(void *arg)
{
    side *s = arg;
    if (EVP_MAC_init(s->ctx, NULL, 0, NULL) != 1 || EVP_MAC_update(s->ctx, s->msg, s->len) != 1 ||
        EVP_MAC_final(s->ctx, s->out, &s->outl, sizeof s->out) != 1)
        die("HMAC re-init");
}

/* A fresh context per message: new, init with the key, update, final, free. */
static void op_fresh(void *arg)
{
    side *s = arg;
    EVP_MAC_CTX *c = EVP_MAC_CTX_new(s->mac);
    if (c == NULL || EVP_MAC_init(c, s->key, sizeof s->key, sha256) != 1 || EVP_MAC_update(c, s->msg, s->len) != 1 ||
        EVP_MAC_final(c, s->out, &s->outl, sizeof s->out) != 1)
        die("HMAC fresh");
    EVP_MAC_CTX_free(c);
}

/* Update only, on a context that stays mid-message: the bulk rate. */
static void op_update(void *arg)
{
    side *s = arg;
    if (EVP_MAC_update(s->ctx, s->msg, s->len) != 1)
        die("HMAC update");
}

/* EVP_DigestSign with an HMAC EVP_PKEY (the sealed key on memguard's side), one-shot. */
static void op_sign(void *arg)
{
    side *s = arg;
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    char q[64];
    snprintf(q, sizeof q, "provider=%s", s->prov);
    s->outl = sizeof s->out;
    if (c == NULL || EVP_DigestSignInit_ex(c, NULL, "SHA256", lib, q, s->pkey, NULL) != 1 ||
        EVP_DigestSign(c, s->out, &s->outl, s->msg, s->len) != 1)
        die("DigestSign");
    EVP_MD_CTX_free(c);
}

typedef struct kdf_side {
    EVP_KDF *kdf;
    int pbkdf2;
    unsigned char out[32];
} kdf_side;

static void op_kdf(void *arg)
{
    kdf_side *k = arg;
    static unsigned char ikm[32] = {1, 2, 3}, salt[16] = {4, 5, 6}, info[16] = {7, 8, 9};
    uint64_t iter = 1000;
    OSSL_PARAM hk[] = {
        OSSL_PARAM_utf8_string(OSSL_KDF_PARAM_DIGEST, "SHA256", 0),
        OSSL_PARAM_octet_string(OSSL_KDF_PARAM_KEY, ikm, sizeof ikm),
        OSSL_PARAM_octet_string(OSSL_KDF_PARAM_SALT, salt, sizeof salt),
        OSSL_PARAM_octet_string(OSSL_KDF_PARAM_INFO, info, sizeof info),
        OSSL_PARAM_END,
    };
    OSSL_PARAM pb[] = {
        OSSL_PARAM_utf8_string(OSSL_KDF_PARAM_DIGEST, "SHA256", 0),
        OSSL_PARAM_octet_string(OSSL_KDF_PARAM_PASSWORD, ikm, sizeof ikm),
        OSSL_PARAM_octet_string(OSSL_KDF_PARAM_SALT, salt, sizeof salt),
        OSSL_PARAM_uint64(OSSL_KDF_PARAM_ITER, &iter),
        OSSL_PARAM_END,
    };
    EVP_KDF_CTX *c = EVP_KDF_CTX_new(k->kdf);
    if (c == NULL || EVP_KDF_derive(c, k->out, sizeof k->out, k->pbkdf2 ? pb : hk) != 1)
        die("KDF");
    EVP_KDF_CTX_free(c);
}

static void mac_row(const char *label, bench_op_fn op, size_t len, double target)
{
    side m, d;
    side_init(&m, "memguard", len);
    side_init(&d, "default", len);
    if (op != op_update) {
        op(&m), op(&d);
        if (m.outl != d.outl || memcmp(m.out, d.out, m.outl) != 0)
            die("cross-check (memguard and default disagree)");
    }
    double tm, td;
    bench_compare(op, &m, op, &d, &tm, &td);
    print_row(label, len, tm, td, target);
    if (op == op_update)
        printf("%-44s %8s %9.0f MB/s %6.0f MB/s\n", "  (update throughput)", "", (double)len * 1e3 / tm,
               (double)len * 1e3 / td);
    side_free(&m);
    side_free(&d);
}

static void kdf_row(const char *alg, int pbkdf2, const char *label)
{
    kdf_side m = {EVP_KDF_fetch(lib, alg, "provider=memguard"), pbkdf2, {0}};
    kdf_side d = {EVP_KDF_fetch(lib, alg, "provider=default"), pbkdf2, {0}};
    if (m.kdf == NULL || d.kdf == NULL)
        die(alg);
    op_kdf(&m), op_kdf(&d);
    if (memcmp(m.out, d.out, sizeof m.out) != 0)
        die("KDF cross-check");
    double tm, td;
    bench_compare(op_kdf, &m, op_kdf, &d, &tm, &td);
    print_row(label, 32, tm, td, 0);
    EVP_KDF_free(m.kdf);
    EVP_KDF_free(d.kdf);
}

/* Another EVP_MAC (CMAC, KMAC): a reused context, re-initialised without the key per message (as for HMAC above). */
static void other_mac_row(const char *alg, const OSSL_PARAM *params, const char *label, size_t len, double target)
{
    side m, d;
    side *both[2] = {&m, &d};
    side_init(&m, "memguard", len);
    side_init(&d, "default", len);
    for (int i = 0; i < 2; i++) {
        side *s = both[i];
        char q[64];
        snprintf(q, sizeof q, "provider=%s", s->prov);
        EVP_MAC_CTX_free(s->ctx);
        EVP_MAC_free(s->mac);
        s->mac = EVP_MAC_fetch(lib, alg, q);
        s->ctx = s->mac != NULL ? EVP_MAC_CTX_new(s->mac) : NULL;
        if (s->ctx == NULL || EVP_MAC_init(s->ctx, s->key, 32, params) != 1)
            die(alg);
        op_reinit(s);
    }
    if (m.outl == 0 || m.outl != d.outl || memcmp(m.out, d.out, m.outl) != 0)
        die("cross-check (memguard and default disagree)");
    double tm, td;
    bench_compare(op_reinit, &m, op_reinit, &d, &tm, &td);
    print_row(label, len, tm, td, target);
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

static void op_fence(void *arg)
{
    if (mg_buffer_melt(arg) != MG_OK || mg_buffer_freeze(arg) != MG_OK)
        die("melt/freeze");
}

static void op_buffer(void *arg)
{
    (void)arg;
    mg_buffer *b = mg_buffer_new(1024);
    if (b == NULL)
        die("mg_buffer_new");
    mg_buffer_destroy(b);
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
            return fprintf(stderr, "usage: bench_mac [--quick] [MODULE]\n"), 2;
    }
    bench_timing.calib_ns = bench_timing.batch_ns / 4;
    if (mg_init() != MG_OK)
        die("mg_init");
    lib = OSSL_LIB_CTX_new();
    if (lib == NULL || OSSL_PROVIDER_load(lib, "default") == NULL || OSSL_PROVIDER_load(lib, module) == NULL)
        die("loading the providers");

    printf("bench_mac (%s build, %s): median of %d interleaved batches per row\n", BENCH_BUILD_TYPE,
           OpenSSL_version(OPENSSL_VERSION), BENCH_NBATCH);
    printf("HMAC-SHA256 unless said otherwise; the same 32 B key on both sides\n\n");
    printf("%-44s %8s %12s %12s %7s\n", "operation", "size", "memguard", "default", "ratio");
    mac_row("EVP_MAC re-init + update + final", op_reinit, 64, 1.5);
    mac_row("EVP_MAC re-init + update + final", op_reinit, 16384, 1.25);
    mac_row("EVP_MAC new + init(key) + update + final", op_fresh, 64, 0);
    mac_row("EVP_MAC new + init(key) + update + final", op_fresh, 16384, 0);
    mac_row("EVP_MAC update only", op_update, 16384, 0);
    mac_row("EVP_DigestSign, HMAC EVP_PKEY (init + sign)", op_sign, 64, 0);
    mac_row("EVP_DigestSign, HMAC EVP_PKEY (init + sign)", op_sign, 16384, 0);
    OSSL_PARAM aes[] = {OSSL_PARAM_utf8_string(OSSL_MAC_PARAM_CIPHER, "AES-256-CBC", 0), OSSL_PARAM_END};
    OSSL_PARAM custom[] = {OSSL_PARAM_octet_string(OSSL_MAC_PARAM_CUSTOM, "bench", 5), OSSL_PARAM_END};
    for (size_t len = 64; len <= 16384; len *= 256)
        other_mac_row("CMAC", aes, "CMAC-AES-256 EVP_MAC re-init + update + final", len, len <= 64 ? 1.5 : 1.25);
    OSSL_PARAM sha3[] = {OSSL_PARAM_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA3-256", 0), OSSL_PARAM_END};
    for (size_t len = 64; len <= 16384; len *= 256)
        other_mac_row("HMAC", sha3, "HMAC-SHA3-256 EVP_MAC re-init + update + final", len, 0);
    for (size_t len = 64; len <= 16384; len *= 256)
        other_mac_row("KMAC-128", custom, "KMAC-128 EVP_MAC re-init + update + final", len, 0);
    for (size_t len = 64; len <= 16384; len *= 256)
        other_mac_row("KMAC-256", custom, "KMAC-256 EVP_MAC re-init + update + final", len, 0);
    kdf_row("HKDF", 0, "HKDF-SHA256 derive (new ctx + params)");
    kdf_row("PBKDF2", 1, "PBKDF2-HMAC-SHA256, 1000 iterations");

    printf("\ndesigns not chosen (added cost; an HMAC message is 3 calls: init, update, final)\n");
    unsigned char k[32] = {1};
    mg_enclave *e = mg_enclave_new(k, sizeof k);
    mg_buffer *b = mg_buffer_new(1024);
    if (e == NULL || b == NULL)
        die("enclave/buffer");
    double t1, t2;
    bench_compare(op_unseal, e, op_fence, b, &t1, &t2);
    printf("  unseal a 32 B key per call (mg_enclave_with)           %8.0f ns\n", t1);
    printf("  state PROT_NONE between calls: melt + freeze per call  %8.0f ns\n", t2);
    bench_compare(op_buffer, NULL, op_buffer, NULL, &t1, &t2);
    printf("  one guarded mapping per context (mg_buffer new+destroy) %7.0f ns (slots avoid it)\n", t1);
    mg_enclave_free(e);
    mg_buffer_destroy(b);
    return 0;
}
