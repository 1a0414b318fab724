/*
 * memguard's EVP_MAC "CMAC" (AES-128-CBC, AES-256-CBC):
 *   - RFC 4493 (AES-128) and NIST SP 800-38B appendix D (AES-256) examples, through memguard and default;
 *   - identical to the default provider for random keys and messages of 0..64 KiB in random updates;
 *   - dupctx mid-stream continues independently; re-init with a NULL key restarts;
 *   - bad input gives clean errors with a memguard reason;
 *   - residue: the key, its AES round keys and the subkeys K1, K2 are never in memory outside guarded
 *     mappings while a context lives, and nowhere once it is freed (control: the default provider's
 *     CMAC leaves its round keys in the heap).
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

static EVP_MAC_CTX *cmac_ctx(const char *propq, const char *cipher, const unsigned char *key, size_t klen)
{
    EVP_MAC *m = EVP_MAC_fetch(NULL, "CMAC", propq);
    EVP_MAC_CTX *c = m != NULL ? EVP_MAC_CTX_new(m) : NULL;
    OSSL_PARAM p[] = {OSSL_PARAM_utf8_string(OSSL_MAC_PARAM_CIPHER, (char *)(uintptr_t)cipher, 0), OSSL_PARAM_END};
    EVP_MAC_free(m);
    if (c != NULL && EVP_MAC_init(c, key, klen, p) != 1) {
        EVP_MAC_CTX_free(c);
        c = NULL;
    }
    return c;
}

/* CMAC over msg, in random update sizes when split. 1 on success. */
static int cmac(const char *propq, const char *cipher, const unsigned char *key, size_t klen,
                const unsigned char *msg, size_t len, bool split, unsigned char out[16])
{
    EVP_MAC_CTX *c = cmac_ctx(propq, cipher, key, klen);
    int ok = c != NULL;
    if (ok && strcmp(propq, MG) == 0)
        ok = strcmp(OSSL_PROVIDER_get0_name(EVP_MAC_get0_provider(EVP_MAC_CTX_get0_mac(c))), "memguard") == 0;
    for (size_t at = 0; ok && at < len;) {
        size_t n = len - at;
        if (split) {
            unsigned r;
            RAND_bytes((unsigned char *)&r, sizeof r);
            size_t cap = (size_t)1 << (r % 12);
            n = r % (cap + 1) < n ? r % (cap + 1) : n;
        }
        ok = EVP_MAC_update(c, msg + at, n) == 1;
        at += n;
    }
    size_t ol = 0;
    ok = ok && EVP_MAC_final(c, out, &ol, 16) == 1 && ol == 16;
    EVP_MAC_CTX_free(c);
    return ok;
}

/* ---- known answers ---- */

static const char sp_msg[] = "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51"
                             "30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710";

static void test_rfc4493_and_sp800_38b_examples(void)
{
    static const struct {
        const char *cipher, *key;
        size_t mlen;
        const char *tag;
    } kats[] = {
        /* RFC 4493 section 4 (= SP 800-38B D.1, AES-128) */
        {"AES-128-CBC", "2b7e151628aed2a6abf7158809cf4f3c", 0, "bb1d6929e95937287fa37d129b756746"},
        {"AES-128-CBC", "2b7e151628aed2a6abf7158809cf4f3c", 16, "070a16b46b4d4144f79bdd9dd04a287c"},
        {"AES-128-CBC", "2b7e151628aed2a6abf7158809cf4f3c", 40, "dfa66747de9ae63030ca32611497c827"},
        {"AES-128-CBC", "2b7e151628aed2a6abf7158809cf4f3c", 64, "51f0bebf7e3b9d92fc49741779363cfe"},
        /* SP 800-38B D.3, AES-256 */
        {"AES-256-CBC", "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4", 0,
         "028962f61b7bf89efc6b551f4667d983"},
        {"AES-256-CBC", "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4", 16,
         "28a7023f452e8f82bd4bf28d8c37c35c"},
        {"AES-256-CBC", "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4", 40,
         "aaf3d8f1de5640c232f5b169b9c911e6"},
        {"AES-256-CBC", "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4", 64,
         "e1992190549f6ed5696a2c056c315410"},
    };
    unsigned char msg[64], key[32], tag[16], out[16];
    CU_ASSERT_FATAL(unhex(sp_msg, msg, sizeof msg) == 64);
    for (size_t i = 0; i < sizeof kats / sizeof kats[0]; i++) {
        size_t klen = unhex(kats[i].key, key, sizeof key);
        unhex(kats[i].tag, tag, sizeof tag);
        for (int split = 0; split < 2; split++) {
            CHECK(cmac(MG, kats[i].cipher, key, klen, msg, kats[i].mlen, split, out) && memcmp(out, tag, 16) == 0,
                  "memguard %s, %zu-byte message", kats[i].cipher, kats[i].mlen);
            CHECK(cmac(DF, kats[i].cipher, key, klen, msg, kats[i].mlen, split, out) && memcmp(out, tag, 16) == 0,
                  "default %s, %zu-byte message (the vector itself)", kats[i].cipher, kats[i].mlen);
        }
    }
    /* OpenSSL's other names for the ciphers fetch the same code. */
    unhex(kats[0].key, key, 16);
    CU_ASSERT(cmac(MG, "aes128", key, 16, msg, 16, false, out) && memcmp(out, "\x07\x0a\x16\xb4", 4) == 0);
    unhex(kats[4].key, key, 32);
    CU_ASSERT(cmac(MG, "2.16.840.1.101.3.4.1.42", key, 32, msg, 16, false, out) &&
              memcmp(out, "\x28\xa7\x02\x3f", 4) == 0);
}

/* ---- equivalence ---- */

static void test_cmac_matches_default_for_random_keys_and_splits(void)
{
    static unsigned char msg[64 * 1024 + 17];
    const char *ciphers[] = {"AES-128-CBC", "AES-256-CBC"};
    unsigned char key[32], a[16], b[16];
    /* every length around the block boundaries, then random ones up to 64 KiB */
    for (size_t len = 0; len <= 70; len++) {
        RAND_bytes(key, sizeof key);
        RAND_bytes(msg, (int)len + 1);
        const char *ci = ciphers[len % 2];
        size_t kl = len % 2 ? 32 : 16;
        CHECK(cmac(MG, ci, key, kl, msg, len, true, a) && cmac(DF, ci, key, kl, msg, len, false, b) &&
                  memcmp(a, b, 16) == 0,
              "%s, %zu bytes", ci, len);
    }
    for (int i = 0; i < 60; i++) {
        unsigned r;
        RAND_bytes((unsigned char *)&r, sizeof r);
        size_t len = i == 0 ? 64 * 1024 : r % (64 * 1024 + 1);
        RAND_bytes(key, sizeof key);
        RAND_bytes(msg, (int)len + 1);
        const char *ci = ciphers[i % 2];
        size_t kl = i % 2 ? 32 : 16;
        CHECK(cmac(MG, ci, key, kl, msg, len, true, a) && cmac(DF, ci, key, kl, msg, len, true, b) &&
                  memcmp(a, b, 16) == 0,
              "%s, %zu bytes", ci, len);
    }
}

/* ---- contexts ---- */

static void test_dupctx_mid_stream_and_reinit(void)
{
    unsigned char key[32], msg[300], t1[16], t2[16], want1[16], want2[16];
    size_t ol;
    RAND_bytes(key, sizeof key);
    RAND_bytes(msg, sizeof msg);
    CU_ASSERT_FATAL(cmac(DF, "AES-256-CBC", key, 32, msg, 300, false, want1));
    CU_ASSERT_FATAL(cmac(DF, "AES-256-CBC", key, 32, msg, 150, false, want2));
    EVP_MAC_CTX *c = cmac_ctx(MG, "AES-256-CBC", key, 32);
    CU_ASSERT_FATAL(c != NULL);
    CU_ASSERT(EVP_MAC_update(c, msg, 101) == 1); /* mid-block, with a held-back partial block */
    EVP_MAC_CTX *d = EVP_MAC_CTX_dup(c);
    CU_ASSERT_FATAL(d != NULL);
    CU_ASSERT(EVP_MAC_update(c, msg + 101, 199) == 1 && EVP_MAC_final(c, t1, &ol, 16) == 1);
    CU_ASSERT(EVP_MAC_update(d, msg + 101, 49) == 1 && EVP_MAC_final(d, t2, &ol, 16) == 1);
    CU_ASSERT(memcmp(t1, want1, 16) == 0);
    CU_ASSERT(memcmp(t2, want2, 16) == 0);
    EVP_MAC_CTX_free(d);
    /* A NULL key re-initialises with the same key: how many messages are MACed with one context. */
    for (int i = 0; i < 3; i++) {
        CU_ASSERT(EVP_MAC_init(c, NULL, 0, NULL) == 1 && EVP_MAC_update(c, msg, 150) == 1 &&
                  EVP_MAC_final(c, t1, &ol, 16) == 1 && memcmp(t1, want2, 16) == 0);
    }
    size_t size = EVP_MAC_CTX_get_mac_size(c);
    CU_ASSERT(size == 16);
    EVP_MAC_CTX_free(c);
}

/* ---- bad input ---- */

static void test_bad_input_gives_clean_errors(void)
{
    unsigned char key[32] = {1}, out[16];
    size_t ol;
    EVP_MAC *m = EVP_MAC_fetch(NULL, "CMAC", MG);
    CU_ASSERT_FATAL(m != NULL);
    EVP_MAC_CTX *c = EVP_MAC_CTX_new(m);
    CU_ASSERT_FATAL(c != NULL);
    CU_ASSERT(EVP_MAC_init(c, key, 16, NULL) == 0 && memguard_error()); /* no cipher */
    CU_ASSERT(EVP_MAC_update(c, key, 4) == 0 && memguard_error());      /* update before init */
    CU_ASSERT(EVP_MAC_final(c, out, &ol, 16) == 0);
    ERR_clear_error();
    const char *bad[] = {"AES-192-CBC", "AES-128-ECB", "AES-256-GCM", "DES-EDE3-CBC", "nonsense"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        OSSL_PARAM p[] = {OSSL_PARAM_utf8_string(OSSL_MAC_PARAM_CIPHER, (char *)(uintptr_t)bad[i], 0), OSSL_PARAM_END};
        CHECK(EVP_MAC_init(c, key, 16, p) == 0 && memguard_error(), "cipher %s refused", bad[i]);
    }
    OSSL_PARAM p128[] = {OSSL_PARAM_utf8_string(OSSL_MAC_PARAM_CIPHER, "AES-128-CBC", 0), OSSL_PARAM_END};
    OSSL_PARAM p256[] = {OSSL_PARAM_utf8_string(OSSL_MAC_PARAM_CIPHER, "AES-256-CBC", 0), OSSL_PARAM_END};
    CU_ASSERT(EVP_MAC_init(c, key, 32, p128) == 0 && memguard_error()); /* wrong key length */
    CU_ASSERT(EVP_MAC_init(c, key, 15, p128) == 0 && memguard_error());
    CU_ASSERT(EVP_MAC_init(c, key, 0, p128) == 0 && memguard_error());
    CU_ASSERT(EVP_MAC_init(c, NULL, 0, p128) == 0 && memguard_error()); /* never keyed */
    CU_ASSERT(EVP_MAC_init(c, key, 16, p128) == 1);
    CU_ASSERT(EVP_MAC_final(c, out, &ol, 15) == 0); /* output too small (EVP or memguard says so) */
    ERR_clear_error();
    CU_ASSERT(EVP_MAC_final(c, out, &ol, 16) == 1);
    CU_ASSERT(EVP_MAC_final(c, out, &ol, 16) == 0 && memguard_error()); /* final twice */
    CU_ASSERT(EVP_MAC_update(c, key, 1) == 0 && memguard_error());      /* update after final */
    CU_ASSERT(EVP_MAC_init(c, NULL, 0, p256) == 0 && memguard_error()); /* cipher changed, no new key */
    CU_ASSERT(EVP_MAC_init(c, key, 32, p256) == 1 && EVP_MAC_update(c, key, 32) == 1 &&
              EVP_MAC_final(c, out, &ol, 16) == 1);
    EVP_MAC_CTX_free(c);
    EVP_MAC_free(m);
}

/* The memory scans read every mapping, ASan's shadow included: they run in the other builds. */
#ifndef MG_SANITIZED
/* ---- residue ---- */

/* FIPS 197 key expansion, the textbook way, for the needles (computed in guarded memory). */
static unsigned char sbox_at(unsigned char x)
{
    /* multiplicative inverse in GF(2^8), then the affine map: slow and obvious is the point */
    unsigned char inv = 0;
    for (unsigned y = 1; y < 256 && x != 0; y++) {
        unsigned a = x, b = y, p = 0;
        for (int i = 0; i < 8; i++, b >>= 1) {
            if (b & 1)
                p ^= a;
            a = (a << 1) ^ ((a & 0x80) ? 0x11b : 0);
        }
        if (p == 1) {
            inv = (unsigned char)y;
            break;
        }
    }
    unsigned char s = 0x63;
    for (int i = 0; i < 8; i++) {
        unsigned bit = ((inv >> i) ^ (inv >> ((i + 4) % 8)) ^ (inv >> ((i + 5) % 8)) ^ (inv >> ((i + 6) % 8)) ^
                        (inv >> ((i + 7) % 8))) & 1;
        s ^= (unsigned char)(bit << i);
    }
    return s;
}

static void expand_key256(const unsigned char key[32], unsigned char w[240])
{
    unsigned char rcon = 1;
    memcpy(w, key, 32);
    for (int i = 8; i < 60; i++) {
        unsigned char t[4];
        memcpy(t, w + 4 * (i - 1), 4);
        if (i % 8 == 0) {
            unsigned char r = t[0];
            t[0] = sbox_at(t[1]) ^ rcon, t[1] = sbox_at(t[2]), t[2] = sbox_at(t[3]), t[3] = sbox_at(r);
            rcon = (unsigned char)((rcon << 1) ^ ((rcon & 0x80) ? 0x1b : 0));
        } else if (i % 8 == 4) {
            for (int j = 0; j < 4; j++)
                t[j] = sbox_at(t[j]);
        }
        for (int j = 0; j < 4; j++)
            w[4 * i + j] = w[4 * (i - 8) + j] ^ t[j];
    }
}

#define WINDOW 16

static memscan_needle needles[40];
static size_t n_needles;

static void add_needle(const unsigned char *v)
{
    char name[16];
    snprintf(name, sizeof name, "needle %zu", n_needles);
    CU_ASSERT_FATAL(n_needles < sizeof needles / sizeof needles[0] &&
                    memscan_needle_init(&needles[n_needles++], name, v, WINDOW, false));
}

static size_t total(size_t first, size_t last, bool guarded)
{
    return memscan_total(needles, first, last, guarded);
}

/* Needles: round keys 0..14 of key (0-1 are the key itself), then K1 and K2. */
static void cmac_needles(const unsigned char *key, bool subkeys)
{
    mg_buffer *b = mg_buffer_new(240 + 48);
    CU_ASSERT_FATAL(b != NULL);
    unsigned char *w = mg_buffer_data(b), *l = w + 240, *k1 = l + 16, *k2 = l + 32;
    expand_key256(key, w);
    for (int r = 0; r < 15; r++)
        add_needle(w + 16 * r);
    if (subkeys) { /* L = E_K(0): one block of memguard's AES-256-CBC with a zero IV */
        EVP_CIPHER *ci = EVP_CIPHER_fetch(NULL, "AES-256-CBC", MG);
        EVP_CIPHER_CTX *cc = EVP_CIPHER_CTX_new();
        static const unsigned char zero[16];
        int n = 0;
        CU_ASSERT_FATAL(ci != NULL && cc != NULL && EVP_EncryptInit_ex2(cc, ci, key, zero, NULL) == 1 &&
                        EVP_CIPHER_CTX_set_padding(cc, 0) == 1 && EVP_EncryptUpdate(cc, l, &n, zero, 16) == 1 &&
                        n == 16);
        EVP_CIPHER_CTX_free(cc);
        EVP_CIPHER_free(ci);
        for (int i = 0; i < 16; i++)
            k1[i] = (unsigned char)(l[i] << 1 | (i < 15 ? l[i + 1] >> 7 : 0));
        k1[15] ^= (l[0] & 0x80) ? 0x87 : 0;
        for (int i = 0; i < 16; i++)
            k2[i] = (unsigned char)(k1[i] << 1 | (i < 15 ? k1[i + 1] >> 7 : 0));
        k2[15] ^= (k1[0] & 0x80) ? 0x87 : 0;
        add_needle(k1);
        add_needle(k2);
    }
    mg_buffer_destroy(b);
}

static void test_no_key_schedule_or_subkeys_outside_guarded_memory(void)
{
    n_needles = 0;
    mg_buffer *k = mg_buffer_random(32), *kc = mg_buffer_random(32);
    CU_ASSERT_FATAL(k != NULL && kc != NULL);
    cmac_needles(mg_buffer_data(k), true);
    size_t ours = n_needles;
    cmac_needles(mg_buffer_data(kc), false);
    /* Computing the needles (test code at -O0, one block of memguard AES-256-CBC for L) leaves fragments
       in dead stack frames and vector registers; clear them
       before memguard runs, so that whatever the scan finds afterwards came from the CMAC path. */
    mg_scrub(64 * 1024);
    static unsigned char msg[5000];
    RAND_bytes(msg, sizeof msg);
    unsigned char out[16];
    size_t ol;
    /* Use it, and leave a context mid-message (with a held-back block) and a duplicate alive. */
    EVP_MAC_CTX *c = cmac_ctx(MG, "AES-256-CBC", mg_buffer_data(k), 32);
    CU_ASSERT_FATAL(c != NULL);
    for (int i = 0; i < 20; i++)
        CU_ASSERT(EVP_MAC_init(c, NULL, 0, NULL) == 1 && EVP_MAC_update(c, msg, sizeof msg) == 1 &&
                  EVP_MAC_final(c, out, &ol, sizeof out) == 1);
    CU_ASSERT(EVP_MAC_init(c, NULL, 0, NULL) == 1 && EVP_MAC_update(c, msg, 100) == 1);
    EVP_MAC_CTX *d = EVP_MAC_CTX_dup(c);
    CU_ASSERT_FATAL(d != NULL);
    /* The control: the default provider's CMAC, live, keeps its key schedule in the heap. */
    EVP_MAC_CTX *ctl = cmac_ctx(DF, "AES-256-CBC", mg_buffer_data(kc), 32);
    CU_ASSERT_FATAL(ctl != NULL && EVP_MAC_update(ctl, msg, 100) == 1);
    mg_buffer_destroy(k);
    mg_buffer_destroy(kc);

    CU_ASSERT_FATAL(memscan_run(needles, n_needles));
    fprintf(stderr, "\n  contexts live: memguard round keys + K1/K2: guarded %zu, elsewhere %zu; "
                    "default provider (control) round keys: guarded %zu, elsewhere %zu\n",
            total(0, ours, true), total(0, ours, false), total(ours, n_needles, true),
            total(ours, n_needles, false));
    CU_ASSERT(total(0, ours, false) == 0);          /* nothing of ours outside guarded memory */
    CU_ASSERT(needles[7].guarded >= 2);             /* a middle round key, in both contexts' slots */
    CU_ASSERT(needles[15].guarded >= 2 && needles[16].guarded >= 2); /* K1, K2 likewise */
    CU_ASSERT(total(ours, n_needles, false) > 0);   /* the control: the scan does see heap schedules */

    EVP_MAC_CTX_free(c);
    EVP_MAC_CTX_free(d);
    EVP_MAC_CTX_free(ctl);
    CU_ASSERT_FATAL(memscan_run(needles, n_needles));
    fprintf(stderr, "  contexts freed: memguard round keys + K1/K2: guarded %zu, elsewhere %zu\n",
            total(0, ours, true), total(0, ours, false));
    CU_ASSERT(total(0, ours, false) + total(0, ours, true) == 0); /* nowhere at all */
}

#endif

static CU_TestInfo kat_tests[] = {
    {"RFC 4493 and SP 800-38B examples (AES-128, AES-256)", test_rfc4493_and_sp800_38b_examples},
    CU_TEST_INFO_NULL,
};

static CU_TestInfo equivalence_tests[] = {
    {"CMAC equals the default provider: random keys, 0..64 KiB, random splits",
     test_cmac_matches_default_for_random_keys_and_splits},
    CU_TEST_INFO_NULL,
};

static CU_TestInfo context_tests[] = {
    {"dupctx mid-stream continues independently; re-init restarts", test_dupctx_mid_stream_and_reinit},
    {"bad input gives clean memguard errors", test_bad_input_gives_clean_errors},
    CU_TEST_INFO_NULL,
};

#ifndef MG_SANITIZED
static CU_TestInfo residue_tests[] = {
    {"no key, round key or K1/K2 outside guarded memory", test_no_key_schedule_or_subkeys_outside_guarded_memory},
    CU_TEST_INFO_NULL,
};
#endif

int main(void)
{
    if (getenv("OPENSSL_CONF") == NULL) {
        fprintf(stderr, "set OPENSSL_CONF to a configuration that loads memguard after default\n");
        return 2;
    }
    CU_SuiteInfo suites[] = {
        {"kat", NULL, NULL, NULL, NULL, kat_tests},
        {"equivalence", NULL, NULL, NULL, NULL, equivalence_tests},
        {"contexts", NULL, NULL, NULL, NULL, context_tests},
#ifndef MG_SANITIZED
        {"residue", NULL, NULL, NULL, NULL, residue_tests},
#endif
        CU_SUITE_INFO_NULL,
    };
    return mgt_main(suites);
}
