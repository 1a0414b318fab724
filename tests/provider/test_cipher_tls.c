/*
 * TLS record mode of memguard's AEADs (EVP_CTRL_AEAD_SET_IV_FIXED + EVP_CTRL_AEAD_TLS1_AAD + EVP_Cipher
 * on a whole record, as libssl drives them): records sealed by memguard are byte for byte the default
 * provider's, each side opens the other's, the explicit IV / nonce advances per record, and a record
 * with one flipped bit is refused and wiped from the output.
 */
#include <string.h>

#include <CUnit/CUnit.h>
#include <openssl/evp.h>
#include <openssl/provider.h>
#include <openssl/rand.h>

#include "../core/harness.h"
#include "check.h"

#include <memguard/memguard.h>

static OSSL_LIB_CTX *plain;
static OSSL_PROVIDER *plain_deflt;

static int init_suite(void)
{
    plain = OSSL_LIB_CTX_new();
    return plain == NULL || (plain_deflt = OSSL_PROVIDER_load(plain, "default")) == NULL;
}

static int clean_suite(void)
{
    OSSL_PROVIDER_unload(plain_deflt);
    OSSL_LIB_CTX_free(plain);
    return 0;
}

enum { EXPLICIT = 8, TAG = 16, MAXREC = 16384 + EXPLICIT + TAG };

struct side {
    EVP_CIPHER *cipher;
    EVP_CIPHER_CTX *ctx;
};

static bool open_side(struct side *s, OSSL_LIB_CTX *libctx, const char *name, const char *props, int enc,
                      const unsigned char *key, unsigned char *fixed_iv, size_t fixed_len)
{
    s->cipher = EVP_CIPHER_fetch(libctx, name, props);
    s->ctx = EVP_CIPHER_CTX_new();
    return s->cipher != NULL && s->ctx != NULL && EVP_CipherInit_ex2(s->ctx, s->cipher, key, NULL, enc, NULL) == 1 &&
           EVP_CIPHER_CTX_ctrl(s->ctx, EVP_CTRL_AEAD_SET_IV_FIXED, (int)fixed_len, fixed_iv) > 0;
}

static void close_side(struct side *s)
{
    EVP_CIPHER_CTX_free(s->ctx);
    EVP_CIPHER_free(s->cipher);
}

/* One record through EVP_Cipher, in place: returns EVP_Cipher's result (record or payload length, or <= 0). */
static int record(struct side *s, bool gcm, bool enc, uint64_t seq, unsigned char *buf, size_t plen)
{
    unsigned char aad[13];
    for (int i = 0; i < 8; i++)
        aad[i] = (unsigned char)(seq >> (56 - 8 * i));
    aad[8] = 23; /* application data */
    aad[9] = 3;
    aad[10] = 3;
    size_t len = plen + (gcm ? EXPLICIT : 0) + (enc ? 0 : TAG); /* what libssl writes into the AAD */
    aad[11] = (unsigned char)(len >> 8);
    aad[12] = (unsigned char)len;
    int pad = EVP_CIPHER_CTX_ctrl(s->ctx, EVP_CTRL_AEAD_TLS1_AAD, sizeof aad, aad);
    if (pad != TAG)
        return -100;
    size_t total = plen + (gcm ? EXPLICIT : 0) + TAG;
    return EVP_Cipher(s->ctx, buf, buf, (unsigned)total);
}

/*
 * GCM takes a 4-byte fixed IV (the 8-byte explicit part starts random, in each implementation), so
 * its records are compared by opening them on the other side; ChaCha20-Poly1305's nonce is the fixed
 * 12 bytes XOR the sequence number, so its records must also be byte for byte the same.
 */
static void check_algorithm(const char *name, bool gcm, size_t keylen)
{
    unsigned char key[32], iv[12];
    size_t ivlen = gcm ? 4 : 12;
    CU_ASSERT_FATAL(RAND_bytes(key, (int)keylen) == 1 && RAND_bytes(iv, sizeof iv) == 1);
    struct side mg_enc = {NULL, NULL}, ref_enc = {NULL, NULL}, mg_dec = {NULL, NULL}, ref_dec = {NULL, NULL};
    bool ok = open_side(&mg_enc, NULL, name, "provider=memguard", 1, key, iv, ivlen) &&
              open_side(&ref_enc, plain, name, NULL, 1, key, iv, ivlen) &&
              open_side(&mg_dec, NULL, name, "provider=memguard", 0, key, iv, ivlen) &&
              open_side(&ref_dec, plain, name, NULL, 0, key, iv, ivlen);
    if (!CHECK(ok, "%s: cannot set up TLS record contexts", name))
        goto out;
    static unsigned char a[MAXREC], b[MAXREC], payload[16384];
    const size_t sizes[] = {0, 1, 15, 16, 17, 100, 1024, 16384};
    uint64_t seq = 0;
    size_t lead = gcm ? EXPLICIT : 0;
    for (int round = 0; round < 2; round++) {
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++, seq++) {
            size_t plen = sizes[i], total = plen + lead + TAG;
            CU_ASSERT_FATAL(RAND_bytes(payload, (int)(plen > 0 ? plen : 1)) == 1);
            memset(a, 0, total);
            memset(b, 0, total);
            memcpy(a + lead, payload, plen);
            memcpy(b + lead, payload, plen);
            int ra = record(&mg_enc, gcm, true, seq, a, plen), rb = record(&ref_enc, gcm, true, seq, b, plen);
            CHECK(ra == (int)total && rb == (int)total, "%s: sealing a %zu-byte record returned %d (default: %d)", name,
                  plen, ra, rb);
            if (!gcm)
                CHECK(memcmp(a, b, total) == 0, "%s: record %llu (%zu bytes) differs from the default provider's",
                      name, (unsigned long long)seq, plen);
            /* Each side opens the other's record: memguard's b, the default provider's a. */
            unsigned char tmp[MAXREC];
            memcpy(tmp, a, total);
            memcpy(a, b, total);
            memcpy(b, tmp, total);
            mg_wipe(tmp, total);
            int da = record(&mg_dec, gcm, false, seq, a, plen), db = record(&ref_dec, gcm, false, seq, b, plen);
            int expect = gcm ? (int)total : (int)plen; /* what the default provider reports (libssl relies on it) */
            CHECK(da == expect && memcmp(a + lead, payload, plen) == 0,
                  "%s: memguard did not open the default provider's %zu-byte record (returned %d)", name, plen, da);
            CHECK(db == expect && memcmp(b + lead, payload, plen) == 0,
                  "%s: the default provider did not open memguard's %zu-byte record (returned %d)", name, plen, db);
        }
    }
    /* One flipped bit in the ciphertext or the tag: refused, and nothing of the payload is released. */
    size_t plen = 100, total = plen + lead + TAG;
    for (int where = 0; where < 2; where++) {
        memset(a, 0x41, total);
        CU_ASSERT_FATAL(record(&ref_enc, gcm, true, seq, a, plen) == (int)total);
        a[where == 0 ? lead + 10 : total - 1] ^= 0x04;
        int r = record(&mg_dec, gcm, false, seq, a, plen);
        size_t leaked = 0;
        for (size_t j = lead; j < lead + plen; j++)
            leaked += a[j] == 0x41;
        CHECK(r <= 0, "%s: a record with a flipped %s bit was accepted", name, where == 0 ? "ciphertext" : "tag");
        CHECK(leaked < 8, "%s: %zu plaintext bytes of a refused record were left in the output", name, leaked);
        seq++;
    }
out:
    close_side(&mg_enc);
    close_side(&ref_enc);
    close_side(&mg_dec);
    close_side(&ref_dec);
}

static void test_aes_128_gcm_records(void)
{
    check_algorithm("AES-128-GCM", true, 16);
}

static void test_aes_256_gcm_records(void)
{
    check_algorithm("AES-256-GCM", true, 32);
}

static void test_chacha20_poly1305_records(void)
{
    check_algorithm("ChaCha20-Poly1305", false, 32);
}

/* GCM with a 4-byte fixed IV: the 8-byte explicit part starts random and counts up; the peer reads it. */
static void test_gcm_explicit_iv_counts_up(void)
{
    unsigned char key[16], fixed[4], a[EXPLICIT + 64 + TAG], first[EXPLICIT];
    CU_ASSERT_FATAL(RAND_bytes(key, sizeof key) == 1 && RAND_bytes(fixed, sizeof fixed) == 1);
    struct side enc = {NULL, NULL}, dec = {NULL, NULL};
    CU_ASSERT_FATAL(open_side(&enc, NULL, "AES-128-GCM", "provider=memguard", 1, key, fixed, sizeof fixed) &&
                    open_side(&dec, plain, "AES-128-GCM", NULL, 0, key, fixed, sizeof fixed));
    for (uint64_t seq = 0; seq < 3; seq++) {
        memset(a, 0x55, sizeof a);
        CU_ASSERT_FATAL(record(&enc, true, true, seq, a, 64) == (int)sizeof a);
        if (seq == 0)
            memcpy(first, a, EXPLICIT);
        else
            CHECK(a[EXPLICIT - 1] == (unsigned char)(first[EXPLICIT - 1] + seq) || a[EXPLICIT - 2] != first[EXPLICIT - 2],
                  "record %llu: the explicit IV did not count up", (unsigned long long)seq);
        CHECK(record(&dec, true, false, seq, a, 64) == (int)sizeof a, "record %llu: the default provider cannot open it",
              (unsigned long long)seq);
    }
    close_side(&enc);
    close_side(&dec);
}

static void test_bad_tls_parameters_fail_cleanly(void)
{
    unsigned char key[32] = {0}, iv[12] = {0}, aad[13] = {0};
    EVP_CIPHER *c = EVP_CIPHER_fetch(NULL, "AES-256-GCM", "provider=memguard");
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    CU_ASSERT_FATAL(c != NULL && ctx != NULL && EVP_EncryptInit_ex2(ctx, c, key, NULL, NULL) == 1);
    CHECK(EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_IV_FIXED, 7, iv) <= 0, "a 7-byte fixed IV was accepted");
    CHECK(EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_TLS1_AAD, 12, aad) <= 0, "a 12-byte TLS AAD was accepted");
    CHECK(EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_TLS1_AAD, 13, aad) <= 0,
          "a GCM record length shorter than its explicit IV was accepted");
    aad[12] = 40;
    CHECK(EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_TLS1_AAD, 13, aad) == TAG, "a valid TLS AAD was refused");
    unsigned char rec[48] = {0};
    CHECK(EVP_Cipher(ctx, rec, rec, sizeof rec) <= 0, "a record was sealed without a fixed IV");
    CHECK(EVP_Cipher(ctx, rec, rec, 10) <= 0, "a record shorter than explicit IV + tag was processed");
    ERR_clear_error();
    EVP_CIPHER_CTX_free(ctx);
    EVP_CIPHER_free(c);
}

static CU_TestInfo tests[] = {
    {"AES-128-GCM TLS records equal the default provider's and open both ways", test_aes_128_gcm_records},
    {"AES-256-GCM TLS records equal the default provider's and open both ways", test_aes_256_gcm_records},
    {"ChaCha20-Poly1305 TLS records equal the default provider's and open both ways", test_chacha20_poly1305_records},
    {"GCM with a 4-byte fixed IV: the explicit IV counts up and the peer opens it", test_gcm_explicit_iv_counts_up},
    {"bad TLS parameters and short records fail cleanly", test_bad_tls_parameters_fail_cleanly},
    CU_TEST_INFO_NULL,
};

int main(void)
{
    CU_SuiteInfo suites[] = {
        {"cipher-tls", init_suite, clean_suite, NULL, NULL, tests},
        CU_SUITE_INFO_NULL,
    };
    return mgt_main(suites);
}
