/*
 * memguard's SKEYMGMT (OpenSSL >= 3.5, EVP_SKEY): built and run only where CMake finds 3.5's
 * declarations (MGP_HAVE_SKEYMGMT); on 3.0 the provider compiles the code out and this test is
 * not registered. Against a real OpenSSL 3.5 it proves:
 *   - memguard's ciphers (AES-128/256-GCM, AES-256-CTR, AES-256-CBC, ChaCha20-Poly1305) keyed
 *     from a memguard EVP_SKEY (EVP_CipherInit_SKEY) give the default provider's bytes with the
 *     same raw key, both ways; memguard's MACs (HMAC, KMAC, CMAC) likewise (EVP_MAC_init_SKEY);
 *   - a generated key (EVP_SKEY_generate) works and is never seen;
 *   - the key does not leave: raw access, export, moving it to the default provider, and using it
 *     with the default provider's cipher all fail;
 *   - bad imports (AES key of 24 bytes, empty secret, wrong parameter) fail cleanly;
 *   - residue: after use, the raw key is nowhere outside guarded memory (control: the default
 *     provider's EVP_SKEY holds it in the heap).
 * Run with OPENSSL_CONF pointing at a configuration that loads memguard after default.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/provider.h>
#include <openssl/rand.h>

#include <memguard/memguard.h>

#include "../core/harness.h"
#include "check.h"
#include "memscan.h"

#define MG "provider=memguard"
#define DF "provider=default"

static size_t rnd(size_t n)
{
    unsigned r;
    RAND_bytes((unsigned char *)&r, sizeof r);
    return n == 0 ? 0 : r % n;
}

static EVP_SKEY *skey_of(const char *type, const unsigned char *key, size_t len, const char *propq)
{
    return EVP_SKEY_import_raw_key(NULL, type, (unsigned char *)(uintptr_t)key, len, propq);
}

static bool from_memguard(const EVP_SKEY *k)
{
    const char *p = k != NULL ? EVP_SKEY_get0_provider_name(k) : NULL;
    return p != NULL && strcmp(p, "memguard") == 0;
}

/* ---- ciphers ---- */

static const struct {
    const char *name, *type;
    size_t keylen, ivlen;
    bool aead;
} ciphers[] = {
    {"AES-256-GCM", "AES", 32, 12, true},    {"AES-128-GCM", "AES", 16, 12, true},
    {"AES-256-CTR", "AES", 32, 16, false},   {"AES-256-CBC", "AES", 32, 16, false},
    {"ChaCha20-Poly1305", "GENERIC-SECRET", 32, 12, true},
};

/*
 * One pass of cipher ci over in (len bytes) into out; with an EVP_SKEY (memguard) or a raw key
 * (default). AEAD: aad of 13 bytes, tag written (enc) or checked (dec). Output length, or -1.
 */
static int crypt(size_t ci, EVP_SKEY *skey, const unsigned char *rawkey, const unsigned char *iv, int enc,
                 const unsigned char *in, size_t len, unsigned char *out, unsigned char tag[16])
{
    EVP_CIPHER *c = EVP_CIPHER_fetch(NULL, ciphers[ci].name, skey != NULL ? MG : DF);
    EVP_CIPHER_CTX *x = EVP_CIPHER_CTX_new();
    static const unsigned char aad[13] = "header bytes";
    int n = 0, m = 0, ok = c != NULL && x != NULL;
    if (ok && skey != NULL)
        ok = EVP_CipherInit_SKEY(x, c, skey, iv, ciphers[ci].ivlen, enc, NULL) == 1;
    else if (ok)
        ok = EVP_CipherInit_ex2(x, c, rawkey, iv, enc, NULL) == 1;
    if (ok && ciphers[ci].aead) {
        ok = EVP_CipherUpdate(x, NULL, &n, aad, sizeof aad) == 1;
        if (ok && !enc)
            ok = EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_AEAD_SET_TAG, 16, tag) == 1;
    }
    ok = ok && EVP_CipherUpdate(x, out, &n, in, (int)len) == 1 && EVP_CipherFinal_ex(x, out + n, &m) == 1;
    if (ok && ciphers[ci].aead && enc)
        ok = EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_AEAD_GET_TAG, 16, tag) == 1;
    EVP_CIPHER_CTX_free(x);
    EVP_CIPHER_free(c);
    return ok ? n + m : -1;
}

static void test_ciphers_with_skey_match_default(void)
{
    static unsigned char in[5000], a[5016], b[5016], back[5016];
    for (size_t ci = 0; ci < sizeof ciphers / sizeof ciphers[0]; ci++) {
        for (int round = 0; round < 8; round++) {
            unsigned char key[32], iv[16], ta[16], tb[16];
            size_t len = round == 0 ? 0 : rnd(sizeof in + 1);
            RAND_bytes(key, sizeof key);
            RAND_bytes(iv, sizeof iv);
            RAND_bytes(in, sizeof in);
            EVP_SKEY *k = skey_of(ciphers[ci].type, key, ciphers[ci].keylen, MG);
            CHECK(from_memguard(k), "%s key of %zu bytes imported by memguard", ciphers[ci].type, ciphers[ci].keylen);
            int na = crypt(ci, k, NULL, iv, 1, in, len, a, ta);
            int nb = crypt(ci, NULL, key, iv, 1, in, len, b, tb);
            CHECK(na >= 0 && na == nb && memcmp(a, b, (size_t)na) == 0 &&
                      (!ciphers[ci].aead || memcmp(ta, tb, 16) == 0),
                  "%s, %zu bytes: memguard with an EVP_SKEY equals default with the raw key", ciphers[ci].name, len);
            /* and back: memguard decrypts the default provider's output with the same EVP_SKEY */
            int nd = crypt(ci, k, NULL, iv, 0, b, (size_t)(nb > 0 ? nb : 0), back, tb);
            CHECK(nd == (int)len && memcmp(back, in, len) == 0, "%s, %zu bytes: decrypted with the EVP_SKEY",
                  ciphers[ci].name, len);
            if (ciphers[ci].aead && len > 0) { /* a flipped bit fails the tag */
                b[rnd((size_t)nb)] ^= 1;
                CHECK(crypt(ci, k, NULL, iv, 0, b, (size_t)nb, back, tb) < 0, "%s: tampered ciphertext refused",
                      ciphers[ci].name);
                ERR_clear_error();
            }
            EVP_SKEY_free(k);
        }
    }
}

/* ---- MACs ---- */

static size_t mac_with(const char *alg, const OSSL_PARAM *params, EVP_SKEY *skey, const unsigned char *rawkey,
                       size_t keylen, const unsigned char *msg, size_t len, unsigned char out[64])
{
    EVP_MAC *m = EVP_MAC_fetch(NULL, alg, skey != NULL ? MG : DF);
    EVP_MAC_CTX *c = m != NULL ? EVP_MAC_CTX_new(m) : NULL;
    size_t ol = 0;
    int ok = c != NULL &&
             (skey != NULL ? EVP_MAC_init_SKEY(c, skey, params) : EVP_MAC_init(c, rawkey, keylen, params)) == 1 &&
             EVP_MAC_update(c, msg, len) == 1 && EVP_MAC_final(c, out, &ol, 64) == 1;
    /* re-init with no key keeps the EVP_SKEY's key (the trampoline passes NULL through) */
    unsigned char again[64];
    size_t al = 0;
    ok = ok && EVP_MAC_init(c, NULL, 0, NULL) == 1 && EVP_MAC_update(c, msg, len) == 1 &&
         EVP_MAC_final(c, again, &al, 64) == 1 && al == ol && memcmp(again, out, ol) == 0;
    EVP_MAC_CTX_free(c);
    EVP_MAC_free(m);
    return ok ? ol : 0;
}

static void test_macs_with_skey_match_default(void)
{
    OSSL_PARAM sha256[] = {OSSL_PARAM_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0), OSSL_PARAM_END};
    OSSL_PARAM sha3[] = {OSSL_PARAM_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA3-256", 0), OSSL_PARAM_END};
    OSSL_PARAM aes[] = {OSSL_PARAM_utf8_string(OSSL_MAC_PARAM_CIPHER, "AES-256-CBC", 0), OSSL_PARAM_END};
    OSSL_PARAM custom[] = {OSSL_PARAM_octet_string(OSSL_MAC_PARAM_CUSTOM, "skey", 4), OSSL_PARAM_END};
    const struct {
        const char *alg, *type;
        const OSSL_PARAM *params;
        size_t keylen;
    } macs[] = {
        {"HMAC", "GENERIC-SECRET", sha256, 40},   {"HMAC", "GENERIC-SECRET", sha3, 17},
        {"KMAC-256", "GENERIC-SECRET", custom, 32}, {"KMAC-128", "GENERIC-SECRET", NULL, 64},
        {"CMAC", "AES", aes, 32},                 {"CMAC", "GENERIC-SECRET", aes, 32},
    };
    static unsigned char msg[3000];
    for (size_t i = 0; i < sizeof macs / sizeof macs[0]; i++) {
        unsigned char key[64], a[64], b[64];
        size_t len = rnd(sizeof msg + 1);
        RAND_bytes(key, sizeof key);
        RAND_bytes(msg, sizeof msg);
        EVP_SKEY *k = skey_of(macs[i].type, key, macs[i].keylen, MG);
        size_t na = mac_with(macs[i].alg, macs[i].params, k, NULL, 0, msg, len, a);
        size_t nb = mac_with(macs[i].alg, macs[i].params, NULL, key, macs[i].keylen, msg, len, b);
        CHECK(from_memguard(k) && na > 0 && na == nb && memcmp(a, b, na) == 0,
              "%s with a %s EVP_SKEY equals default with the raw key (%zu-byte message)", macs[i].alg, macs[i].type,
              len);
        EVP_SKEY_free(k);
    }
}

/* ---- generated keys, and the key staying in ---- */

static void test_generated_key_works_and_stays_sealed(void)
{
    size_t bits = 32;
    OSSL_PARAM p[] = {OSSL_PARAM_size_t(OSSL_SKEY_PARAM_KEY_LENGTH, &bits), OSSL_PARAM_END};
    EVP_SKEY *k = EVP_SKEY_generate(NULL, "AES", MG, p);
    CU_ASSERT_FATAL(from_memguard(k));
    unsigned char in[777], ct[800], back[800], iv[16] = {1}, tag[16];
    RAND_bytes(in, sizeof in);
    int n = crypt(0, k, NULL, iv, 1, in, sizeof in, ct, tag);
    CU_ASSERT(n == (int)sizeof in && crypt(0, k, NULL, iv, 0, ct, (size_t)n, back, tag) == n &&
              memcmp(back, in, sizeof in) == 0);
    const unsigned char *raw = NULL;
    size_t rl = 0;
    CU_ASSERT(EVP_SKEY_get0_raw_key(k, &raw, &rl) != 1 && raw == NULL);
    ERR_clear_error();
    EVP_SKEY_free(k);
    size_t odd = 24;
    OSSL_PARAM q[] = {OSSL_PARAM_size_t(OSSL_SKEY_PARAM_KEY_LENGTH, &odd), OSSL_PARAM_END};
    CU_ASSERT(EVP_SKEY_generate(NULL, "AES", MG, q) == NULL); /* memguard's AES is 128 or 256 */
    ERR_clear_error();
}

static int count_params(const OSSL_PARAM params[], void *arg)
{
    for (const OSSL_PARAM *p = params; p != NULL && p->key != NULL; p++)
        (*(int *)arg)++;
    return 1;
}

static void test_key_does_not_leave(void)
{
    unsigned char key[32];
    RAND_bytes(key, sizeof key);
    EVP_SKEY *k = skey_of("AES", key, 32, MG);
    CU_ASSERT_FATAL(from_memguard(k));
    const unsigned char *raw = NULL;
    size_t rl = 0;
    CU_ASSERT(EVP_SKEY_get0_raw_key(k, &raw, &rl) != 1);
    int seen = 0;
    CU_ASSERT(EVP_SKEY_export(k, OSSL_SKEYMGMT_SELECT_SECRET_KEY, count_params, &seen) != 1 && seen == 0);
    OSSL_PROVIDER *deflt = OSSL_PROVIDER_load(NULL, "default");
    CU_ASSERT_FATAL(deflt != NULL);
    EVP_SKEY *moved = EVP_SKEY_to_provider(k, NULL, deflt, NULL);
    CU_ASSERT(moved == NULL); /* it would need the raw bytes */
    EVP_SKEY_free(moved);
    /* the default provider's cipher cannot take it either */
    EVP_CIPHER *c = EVP_CIPHER_fetch(NULL, "AES-256-GCM", DF);
    EVP_CIPHER_CTX *x = EVP_CIPHER_CTX_new();
    unsigned char iv[12] = {0};
    CU_ASSERT(c != NULL && x != NULL && EVP_CipherInit_SKEY(x, c, k, iv, sizeof iv, 1, NULL) != 1);
    EVP_CIPHER_CTX_free(x);
    EVP_CIPHER_free(c);
    OSSL_PROVIDER_unload(deflt);
    ERR_clear_error();
    EVP_SKEY_free(k);
}

static void test_bad_imports_fail_cleanly(void)
{
    unsigned char key[64] = {3};
    CU_ASSERT(skey_of("AES", key, 24, MG) == NULL);
    CU_ASSERT(skey_of("AES", key, 0, MG) == NULL);
    CU_ASSERT(skey_of("AES", key, 64, MG) == NULL);
    ERR_clear_error();
    /* the secret under a name that is not "raw-bytes" */
    OSSL_PARAM wrong[] = {OSSL_PARAM_octet_string("not-raw-bytes", key, 32), OSSL_PARAM_END};
    CU_ASSERT(EVP_SKEY_import(NULL, "GENERIC-SECRET", MG, OSSL_SKEYMGMT_SELECT_SECRET_KEY, wrong) == NULL);
    unsigned long e = ERR_peek_last_error();
    const char *r = e != 0 ? ERR_reason_error_string(e) : NULL;
    CHECK(r != NULL && strncmp(r, "memguard:", 9) == 0, "a memguard reason, got %s", r != NULL ? r : "none");
    ERR_clear_error();
}

/* ---- residue ---- */

static void test_no_raw_key_outside_guarded_memory(void)
{
    memscan_needle needles[4];
    mg_buffer *kb = mg_buffer_random(32), *cb = mg_buffer_random(32);
    CU_ASSERT_FATAL(kb != NULL && cb != NULL);
    for (int i = 0; i < 2; i++)
        CU_ASSERT_FATAL(memscan_needle_init(&needles[i], "memguard key", (unsigned char *)mg_buffer_data(kb) + 16 * i,
                                            16, false));
    for (int i = 0; i < 2; i++)
        CU_ASSERT_FATAL(memscan_needle_init(&needles[2 + i], "default key", (unsigned char *)mg_buffer_data(cb) + 16 * i,
                                            16, false));
    EVP_SKEY *k = skey_of("GENERIC-SECRET", mg_buffer_data(kb), 32, MG);
    EVP_SKEY *ctl = skey_of("GENERIC-SECRET", mg_buffer_data(cb), 32, DF);
    CU_ASSERT_FATAL(from_memguard(k) && ctl != NULL);
    mg_buffer_destroy(kb);
    mg_buffer_destroy(cb);
    static unsigned char msg[1000], ct[1100];
    unsigned char out[64], iv[12] = {0}, tag[16];
    OSSL_PARAM sha256[] = {OSSL_PARAM_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0), OSSL_PARAM_END};
    for (int i = 0; i < 10; i++) {
        CU_ASSERT(mac_with("HMAC", sha256, k, NULL, 0, msg, sizeof msg, out) == 32);
        CU_ASSERT(mac_with("KMAC-256", NULL, k, NULL, 0, msg, sizeof msg, out) == 64);
        CU_ASSERT(crypt(4, k, NULL, iv, 1, msg, sizeof msg, ct, tag) == (int)sizeof msg);
    }
    mg_scrub(64 * 1024);
    CU_ASSERT_FATAL(memscan_run(needles, 4));
    fprintf(stderr, "\n  keys live: memguard EVP_SKEY guarded %zu, elsewhere %zu; default EVP_SKEY (control) "
                    "guarded %zu, elsewhere %zu\n",
            memscan_total(needles, 0, 2, true), memscan_total(needles, 0, 2, false),
            memscan_total(needles, 2, 4, true), memscan_total(needles, 2, 4, false));
    CU_ASSERT(memscan_total(needles, 0, 2, false) == 0);
    CU_ASSERT(memscan_total(needles, 2, 4, false) > 0);
    EVP_SKEY_free(k);
    EVP_SKEY_free(ctl);
}

static CU_TestInfo skey_tests[] = {
    {"ciphers keyed by a memguard EVP_SKEY equal the default provider", test_ciphers_with_skey_match_default},
    {"MACs keyed by a memguard EVP_SKEY equal the default provider", test_macs_with_skey_match_default},
    {"a generated key works and its bytes are never shown", test_generated_key_works_and_stays_sealed},
    {"the key does not leave memguard", test_key_does_not_leave},
    {"bad imports fail cleanly", test_bad_imports_fail_cleanly},
    {"no raw key outside guarded memory", test_no_raw_key_outside_guarded_memory},
    CU_TEST_INFO_NULL,
};

int main(void)
{
    if (getenv("OPENSSL_CONF") == NULL) {
        fprintf(stderr, "set OPENSSL_CONF to a configuration that loads memguard after default\n");
        return 2;
    }
    fprintf(stderr, "%s\n", OpenSSL_version(OPENSSL_VERSION));
    CU_SuiteInfo suites[] = {
        {"skey", NULL, NULL, NULL, NULL, skey_tests},
        CU_SUITE_INFO_NULL,
    };
    return mgt_main(suites);
}
