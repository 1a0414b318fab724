/*
 * memguard's ciphers through EVP (AES-128/256-GCM, AES-256-CTR, AES-256-CBC,
 * ChaCha20-Poly1305, fetched with "provider=memguard"):
 * - an unqualified fetch - what libssl does for TLS records - still gets the
 *   default provider, so nothing that does not ask for memguard changes;
 * - published vectors (GCM spec test cases, SP 800-38A, RFC 8439) come out right;
 * - random keys, IVs, AAD and lengths up to 1 MiB, split into random update
 *   sizes, give exactly what the default provider gives, in both directions;
 * - a flipped bit anywhere fails authentication; dupctx mid-message;
 *   contexts in several threads; bad input fails cleanly with a memguard reason;
 * - after use, no copy of the key or of its AES round keys exists outside
 *   guarded memory - and a positive control finds them inside it while the
 *   context lives, and in OpenSSL's heap when the default provider is used.
 * Run with OPENSSL_CONF pointing at a configuration that loads memguard.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/provider.h>
#include <openssl/rand.h>

#include <memguard/memguard.h>

#include "../core/harness.h"
#include "memscan.h"

static const char *const names[] = {"AES-128-GCM", "AES-256-GCM", "AES-256-CTR", "AES-256-CBC", "ChaCha20-Poly1305"};
#define N_ALGS (sizeof names / sizeof names[0])

static EVP_CIPHER *fetch(const char *name, const char *provider)
{
    char q[64];
    snprintf(q, sizeof q, "provider=%s", provider);
    return EVP_CIPHER_fetch(NULL, name, q);
}

static size_t unhex(const char *s, unsigned char *out)
{
    size_t n = 0;
    for (; s[0] != '\0' && s[1] != '\0'; s += 2)
        sscanf(s, "%2hhx", &out[n++]);
    return n;
}

static int is_aead(const EVP_CIPHER *c)
{
    return (EVP_CIPHER_get_flags(c) & EVP_CIPH_FLAG_AEAD_CIPHER) != 0;
}

/* A memguard reason string is on the error queue (then clear it). */
static int memguard_error_queued(void)
{
    int found = 0;
    unsigned long e;
    const char *data;
    int flags;
    while ((e = ERR_get_error_all(NULL, NULL, NULL, &data, &flags)) != 0) {
        const char *r = ERR_reason_error_string(e);
        if (r != NULL && strstr(r, "memguard") != NULL)
            found = 1;
    }
    return found;
}

/*
 * One message through ctx: AAD and input fed in pieces of random size (split
 * != 0) or all at once. For decryption `tag` is the expected tag. Returns the
 * output length, or -1 if any step failed.
 */
static long run(const EVP_CIPHER *c, int enc, const unsigned char *key, const unsigned char *iv, size_t ivlen,
                const unsigned char *aad, size_t aadlen, const unsigned char *in, size_t len, unsigned char *out,
                unsigned char *tag, int pad, int split)
{
    EVP_CIPHER_CTX *x = EVP_CIPHER_CTX_new();
    long ret = -1;
    int outl;
    size_t total = 0;
    if (x == NULL || !EVP_CipherInit_ex2(x, c, NULL, NULL, enc, NULL))
        goto done;
    if (is_aead(c) && ivlen != (size_t)EVP_CIPHER_get_iv_length(c) &&
        EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_AEAD_SET_IVLEN, (int)ivlen, NULL) <= 0)
        goto done;
    if (!EVP_CipherInit_ex2(x, NULL, key, iv, enc, NULL) || !EVP_CIPHER_CTX_set_padding(x, pad))
        goto done;
    if (!enc && is_aead(c) && EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_AEAD_SET_TAG, 16, tag) <= 0)
        goto done;
    for (size_t off = 0; off < aadlen;) {
        size_t n = split ? 1 + (size_t)rand() % (aadlen - off) : aadlen - off;
        if (!EVP_CipherUpdate(x, NULL, &outl, aad + off, (int)n))
            goto done;
        off += n;
    }
    for (size_t off = 0; off < len;) {
        size_t n = split ? (size_t)rand() % (len - off + 1) : len - off;
        if (n > 70000)
            n = 70000 + (size_t)rand() % 1000; /* big steps too */
        if (!EVP_CipherUpdate(x, out + total, &outl, in + off, (int)n))
            goto done;
        off += n;
        total += (size_t)outl;
    }
    if (!EVP_CipherFinal_ex(x, out + total, &outl))
        goto done;
    total += (size_t)outl;
    if (enc && is_aead(c) && EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_AEAD_GET_TAG, 16, tag) <= 0)
        goto done;
    ret = (long)total;
done:
    if (ret < 0 && getenv("MGT_DEBUG") != NULL)
        ERR_print_errors_fp(stderr);
    EVP_CIPHER_CTX_free(x);
    return ret;
}

/* ---- which provider an unqualified fetch picks ---- */

static void test_unqualified_fetch_stays_on_default(void)
{
    for (size_t i = 0; i < N_ALGS; i++) {
        EVP_CIPHER *plain = EVP_CIPHER_fetch(NULL, names[i], NULL);
        EVP_CIPHER *mg = fetch(names[i], "memguard");
        CU_ASSERT_PTR_NOT_NULL_FATAL(plain);
        CU_ASSERT_PTR_NOT_NULL_FATAL(mg);
        CU_ASSERT_STRING_EQUAL(OSSL_PROVIDER_get0_name(EVP_CIPHER_get0_provider(plain)), "default");
        CU_ASSERT_STRING_EQUAL(OSSL_PROVIDER_get0_name(EVP_CIPHER_get0_provider(mg)), "memguard");
        EVP_CIPHER_free(plain);
        EVP_CIPHER_free(mg);
    }
    /* The pre-3.0 style (EVP_aes_256_gcm()) fetches implicitly with no property query, as libssl does. */
    EVP_CIPHER_CTX *x = EVP_CIPHER_CTX_new();
    unsigned char key[32] = {0}, iv[12] = {0};
    CU_ASSERT_FATAL(EVP_EncryptInit_ex(x, EVP_aes_256_gcm(), NULL, key, iv) == 1);
    CU_ASSERT_STRING_EQUAL(OSSL_PROVIDER_get0_name(EVP_CIPHER_get0_provider(EVP_CIPHER_CTX_get0_cipher(x))),
                           "default");
    CU_ASSERT_FATAL(EVP_EncryptInit_ex(x, EVP_chacha20_poly1305(), NULL, key, iv) == 1);
    CU_ASSERT_STRING_EQUAL(OSSL_PROVIDER_get0_name(EVP_CIPHER_get0_provider(EVP_CIPHER_CTX_get0_cipher(x))),
                           "default");
    EVP_CIPHER_CTX_free(x);
}

static void test_info_params_match_default(void)
{
    for (size_t i = 0; i < N_ALGS; i++) {
        EVP_CIPHER *d = fetch(names[i], "default"), *m = fetch(names[i], "memguard");
        CU_ASSERT_PTR_NOT_NULL_FATAL(m);
        CU_ASSERT_EQUAL(EVP_CIPHER_get_mode(m), EVP_CIPHER_get_mode(d));
        CU_ASSERT_EQUAL(EVP_CIPHER_get_key_length(m), EVP_CIPHER_get_key_length(d));
        CU_ASSERT_EQUAL(EVP_CIPHER_get_iv_length(m), EVP_CIPHER_get_iv_length(d));
        CU_ASSERT_EQUAL(EVP_CIPHER_get_block_size(m), EVP_CIPHER_get_block_size(d));
        const unsigned long f = EVP_CIPH_FLAG_AEAD_CIPHER | EVP_CIPH_CUSTOM_IV;
        CU_ASSERT_EQUAL(EVP_CIPHER_get_flags(m) & f, EVP_CIPHER_get_flags(d) & f);
        CU_ASSERT_PTR_NOT_NULL(EVP_CIPHER_gettable_ctx_params(m));
        CU_ASSERT_PTR_NOT_NULL(EVP_CIPHER_settable_ctx_params(m));
        int aead = is_aead(m);
        CU_ASSERT_EQUAL(OSSL_PARAM_locate_const(EVP_CIPHER_settable_ctx_params(m), OSSL_CIPHER_PARAM_AEAD_TAG) != NULL,
                        aead);
        EVP_CIPHER_free(d);
        EVP_CIPHER_free(m);
    }
}

/* ---- known answers ---- */

struct kat {
    const char *alg, *key, *iv, *aad, *pt, *ct, *tag;
    int pad;
};

static const char tc_p64[] = "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
                             "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255";
static const char tc_p60[] = "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
                             "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39";
static const char tc_aad[] = "feedfacedeadbeeffeedfacedeadbeefabaddad2";
static const char sp_pt[] = "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51"
                            "30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710";
static const char sp_key256[] = "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4";

static const struct kat kats[] = {
    /* The Galois/Counter Mode of Operation (McGrew, Viega), appendix B: test cases 1-6, 13-16. */
    {"AES-128-GCM", "00000000000000000000000000000000", "000000000000000000000000", "", "", "",
     "58e2fccefa7e3061367f1d57a4e7455a", 1},
    {"AES-128-GCM", "00000000000000000000000000000000", "000000000000000000000000", "",
     "00000000000000000000000000000000", "0388dace60b6a392f328c2b971b2fe78", "ab6e47d42cec13bdf53a67b21257bddf", 1},
    {"AES-128-GCM", "feffe9928665731c6d6a8f9467308308", "cafebabefacedbaddecaf888", "", tc_p64,
     "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e"
     "21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091473f5985",
     "4d5c2af327cd64a62cf35abd2ba6fab4", 1},
    {"AES-128-GCM", "feffe9928665731c6d6a8f9467308308", "cafebabefacedbaddecaf888", tc_aad, tc_p60,
     "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e"
     "21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091",
     "5bc94fbc3221a5db94fae95ae7121a47", 1},
    {"AES-128-GCM", "feffe9928665731c6d6a8f9467308308", "cafebabefacedbad", tc_aad, tc_p60, /* 64-bit IV */
     "61353b4c2806934a777ff51fa22a4755699b2a714fcdc6f83766e5f97b6c7423"
     "73806900e49f24b22b097544d4896b424989b5e1ebac0f07c23f4598",
     "3612d2e79e3b0785561be14aaca2fccb", 1},
    {"AES-128-GCM", "feffe9928665731c6d6a8f9467308308", /* 480-bit IV */
     "9313225df88406e555909c5aff5269aa6a7a9538534f7da1e4c303d2a318a728"
     "c3c0c95156809539fcf0e2429a6b525416aedbf5a0de6a57a637b39b",
     tc_aad, tc_p60,
     "8ce24998625615b603a033aca13fb894be9112a5c3a211a8ba262a3cca7e2ca7"
     "01e4a9a4fba43c90ccdcb281d48c7c6fd62875d2aca417034c34aee5",
     "619cc5aefffe0bfa462af43c1699d050", 1},
    {"AES-256-GCM", "0000000000000000000000000000000000000000000000000000000000000000", "000000000000000000000000",
     "", "", "", "530f8afbc74536b9a963b4f1c4cb738b", 1},
    {"AES-256-GCM", "0000000000000000000000000000000000000000000000000000000000000000", "000000000000000000000000",
     "", "00000000000000000000000000000000", "cea7403d4d606b6e074ec5d3baf39d18", "d0d1c8a799996bf0265b98b5d48ab919",
     1},
    {"AES-256-GCM", "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308", "cafebabefacedbaddecaf888",
     "", tc_p64,
     "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
     "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad",
     "b094dac5d93471bdec1a502270e3cc6c", 1},
    {"AES-256-GCM", "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308", "cafebabefacedbaddecaf888",
     tc_aad, tc_p60,
     "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
     "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
     "76fc6ece0f4e1768cddf8853bb2d551b", 1},
    /* NIST SP 800-38A, F.5.5 (CTR-AES256.Encrypt) and F.2.5 (CBC-AES256.Encrypt, no padding). */
    {"AES-256-CTR", sp_key256, "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff", "", sp_pt,
     "601ec313775789a5b7a7f504bbf3d228f443e3ca4d62b59aca84e990cacaf5c5"
     "2b0930daa23de94ce87017ba2d84988ddfc9c58db67aada613c2dd08457941a6",
     "", 1},
    {"AES-256-CBC", sp_key256, "000102030405060708090a0b0c0d0e0f", "", sp_pt,
     "f58c4c04d6e5f1ba779eabfb5f7bfbd69cfc4e967edb808d679f777bc6702c7d"
     "39f23369a9d9bacfa530e26304231461b2eb05e2c39be9fcda6c19078c6a9d1b",
     "", 0},
    /* RFC 8439, 2.8.2. */
    {"ChaCha20-Poly1305", "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f",
     "070000004041424344454647", "50515253c0c1c2c3c4c5c6c7",
     "4c616469657320616e642047656e746c656d656e206f662074686520636c6173"
     "73206f66202739393a204966204920636f756c64206f6666657220796f75206f"
     "6e6c79206f6e652074697020666f7220746865206675747572652c2073756e73"
     "637265656e20776f756c642062652069742e",
     "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d6"
     "3dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b36"
     "92ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc"
     "3ff4def08e4b7a9de576d26586cec64b6116",
     "1ae10b594f09e26a7e902ecbd0600691", 1},
};

static void test_known_answers(void)
{
    for (size_t i = 0; i < sizeof kats / sizeof kats[0]; i++) {
        const struct kat *t = &kats[i];
        unsigned char key[32], iv[64], aad[32], pt[128], ct[128], tag[16], out[160], otag[16];
        size_t klen = unhex(t->key, key), ivlen = unhex(t->iv, iv), alen = unhex(t->aad, aad),
               plen = unhex(t->pt, pt), clen = unhex(t->ct, ct);
        unhex(t->tag, tag);
        CU_ASSERT_EQUAL_FATAL(plen, clen);
        (void)klen;
        for (int split = 0; split < 2; split++) {
            EVP_CIPHER *c = fetch(t->alg, "memguard");
            CU_ASSERT_PTR_NOT_NULL_FATAL(c);
            long n = run(c, 1, key, iv, ivlen, aad, alen, pt, plen, out, otag, t->pad, split);
            CU_ASSERT_EQUAL(n, (long)clen);
            CU_ASSERT(n >= 0 && memcmp(out, ct, clen) == 0);
            if (is_aead(c))
                CU_ASSERT(memcmp(otag, tag, 16) == 0);
            n = run(c, 0, key, iv, ivlen, aad, alen, ct, clen, out, tag, t->pad, split);
            CU_ASSERT_EQUAL(n, (long)plen);
            CU_ASSERT(n >= 0 && memcmp(out, pt, plen) == 0);
            if (n < 0 || memcmp(out, pt, plen) != 0)
                printf("\n    KAT %zu (%s) failed\n", i, t->alg);
            EVP_CIPHER_free(c);
        }
    }
}

/* ---- same results as the default provider ---- */

static int differential(const char *name, size_t len, size_t ivlen, size_t aadlen, int pad)
{
    EVP_CIPHER *m = fetch(name, "memguard"), *d = fetch(name, "default");
    unsigned char key[32], iv[128], aad[512], tag_m[16], tag_d[16];
    unsigned char *pt = malloc(len + 16), *ct_m = malloc(len + 32), *ct_d = malloc(len + 32),
                  *back = malloc(len + 32);
    int ok = m != NULL && d != NULL && pt != NULL && ct_m != NULL && ct_d != NULL && back != NULL &&
             RAND_bytes(key, sizeof key) == 1 && RAND_bytes(iv, sizeof iv) == 1 &&
             RAND_bytes(aad, sizeof aad) == 1 && (len == 0 || RAND_bytes(pt, (int)len) == 1);
    if (ok) {
        if (!is_aead(m))
            aadlen = 0;
        long a = run(m, 1, key, iv, ivlen, aad, aadlen, pt, len, ct_m, tag_m, pad, 1);
        long b = run(d, 1, key, iv, ivlen, aad, aadlen, pt, len, ct_d, tag_d, pad, 1);
        ok = a >= 0 && a == b && memcmp(ct_m, ct_d, (size_t)a) == 0 &&
             (!is_aead(m) || memcmp(tag_m, tag_d, 16) == 0);
        /* Each decrypts what the other encrypted. */
        long c = ok ? run(m, 0, key, iv, ivlen, aad, aadlen, ct_d, (size_t)b, back, tag_d, pad, 1) : -1;
        ok = ok && c == (long)len && memcmp(back, pt, len) == 0;
        long e = ok ? run(d, 0, key, iv, ivlen, aad, aadlen, ct_m, (size_t)a, back, tag_m, pad, 1) : -1;
        ok = ok && e == (long)len && memcmp(back, pt, len) == 0;
        if (!ok)
            printf("\n    %s len %zu ivlen %zu aad %zu pad %d: %ld %ld %ld %ld\n", name, len, ivlen, aadlen, pad, a,
                   b, c, e);
    }
    free(pt), free(ct_m), free(ct_d), free(back);
    EVP_CIPHER_free(m);
    EVP_CIPHER_free(d);
    return ok;
}

static void test_same_as_default_provider(void)
{
    static const size_t lens[] = {0, 1, 15, 16, 17, 63, 64, 65, 127, 128, 129, 255, 1000, 4099, 16384, 65543, 1 << 20};
    srand(1234);
    for (size_t a = 0; a < N_ALGS; a++) {
        size_t ivlen = strstr(names[a], "GCM") || strstr(names[a], "Poly") ? 12 : 16;
        for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
            size_t len = lens[i];
            int cbc = strcmp(names[a], "AES-256-CBC") == 0;
            CU_ASSERT(differential(names[a], len, ivlen, (size_t)rand() % 300, 1));
            if (cbc)
                CU_ASSERT(differential(names[a], len - len % 16, ivlen, 0, 0)); /* padding off */
        }
        for (int r = 0; r < 20; r++) /* random lengths and AAD sizes */
            CU_ASSERT(differential(names[a], (size_t)rand() % 70000, ivlen, (size_t)rand() % 512, 1));
    }
    /* GCM IVs other than 96 bits (J0 derived through GHASH). */
    static const size_t ivlens[] = {1, 8, 13, 16, 60, 128};
    for (size_t i = 0; i < sizeof ivlens / sizeof ivlens[0]; i++) {
        CU_ASSERT(differential("AES-256-GCM", 1000, ivlens[i], 20, 1));
        CU_ASSERT(differential("AES-128-GCM", 77, ivlens[i], 0, 1));
    }
}

/* ---- authentication ---- */

static void test_any_flipped_bit_fails(void)
{
    const char *aeads[] = {"AES-128-GCM", "AES-256-GCM", "ChaCha20-Poly1305"};
    for (size_t a = 0; a < 3; a++) {
        EVP_CIPHER *m = fetch(aeads[a], "memguard");
        unsigned char key[32], iv[12], aad[24], pt[70], ct[70], tag[16], out[80];
        CU_ASSERT_FATAL(RAND_bytes(key, 32) == 1 && RAND_bytes(iv, 12) == 1 && RAND_bytes(aad, 24) == 1 &&
                        RAND_bytes(pt, 70) == 1);
        CU_ASSERT_FATAL(run(m, 1, key, iv, 12, aad, 24, pt, 70, ct, tag, 1, 0) == 70);
        CU_ASSERT(run(m, 0, key, iv, 12, aad, 24, ct, 70, out, tag, 1, 0) == 70);
        int rejected = 0, tried = 0;
        for (size_t bit = 0; bit < 8 * (70 + 16 + 24); bit += 7) {
            unsigned char *p = bit < 560 ? ct + bit / 8 : bit < 688 ? tag + (bit - 560) / 8 : aad + (bit - 688) / 8;
            p[0] ^= (unsigned char)(1u << (bit % 8));
            rejected += run(m, 0, key, iv, 12, aad, 24, ct, 70, out, tag, 1, 1) < 0;
            p[0] ^= (unsigned char)(1u << (bit % 8));
            tried++;
        }
        CU_ASSERT_EQUAL(rejected, tried);
        CU_ASSERT(memguard_error_queued()); /* "authentication tag mismatch" */
        /* A truncated message fails too. */
        CU_ASSERT(run(m, 0, key, iv, 12, aad, 24, ct, 69, out, tag, 1, 0) < 0);
        ERR_clear_error();
        EVP_CIPHER_free(m);
    }
}

/* ---- dupctx ---- */

static void test_dup_mid_message(void)
{
    for (size_t a = 0; a < N_ALGS; a++) {
        EVP_CIPHER *m = fetch(names[a], "memguard");
        unsigned char key[32], iv[16], pt[3000], whole[3100], o1[3100], o2[3100], t0[16], t1[16], t2[16];
        CU_ASSERT_FATAL(RAND_bytes(key, 32) == 1 && RAND_bytes(iv, 16) == 1 && RAND_bytes(pt, sizeof pt) == 1);
        size_t ivlen = (size_t)EVP_CIPHER_get_iv_length(m);
        long n = run(m, 1, key, iv, ivlen, pt, is_aead(m) ? 13 : 0, pt, sizeof pt, whole, t0, 1, 0);
        CU_ASSERT_FATAL(n > 0);
        EVP_CIPHER_CTX *x = EVP_CIPHER_CTX_new(), *y = EVP_CIPHER_CTX_new();
        int l1, l2, f1, f2;
        CU_ASSERT_FATAL(EVP_EncryptInit_ex2(x, m, key, iv, NULL) == 1);
        if (is_aead(m))
            CU_ASSERT(EVP_EncryptUpdate(x, NULL, &l1, pt, 13) == 1);
        CU_ASSERT_FATAL(EVP_EncryptUpdate(x, o1, &l1, pt, 1001) == 1); /* mid-block */
        CU_ASSERT_FATAL(EVP_CIPHER_CTX_copy(y, x) == 1);
        memcpy(o2, o1, (size_t)l1);
        l2 = l1;
        int a1, a2;
        CU_ASSERT(EVP_EncryptUpdate(x, o1 + l1, &a1, pt + 1001, 1999) == 1);
        CU_ASSERT(EVP_EncryptUpdate(y, o2 + l2, &a2, pt + 1001, 1999) == 1);
        l1 += a1, l2 += a2;
        CU_ASSERT(EVP_EncryptFinal_ex(x, o1 + l1, &f1) == 1);
        CU_ASSERT(EVP_EncryptFinal_ex(y, o2 + l2, &f2) == 1);
        CU_ASSERT_EQUAL(l1 + f1, n);
        CU_ASSERT_EQUAL(l2 + f2, n);
        CU_ASSERT(memcmp(o1, whole, (size_t)n) == 0 && memcmp(o2, whole, (size_t)n) == 0);
        if (is_aead(m)) {
            CU_ASSERT(EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_AEAD_GET_TAG, 16, t1) == 1);
            CU_ASSERT(EVP_CIPHER_CTX_ctrl(y, EVP_CTRL_AEAD_GET_TAG, 16, t2) == 1);
            CU_ASSERT(memcmp(t1, t0, 16) == 0 && memcmp(t2, t0, 16) == 0);
        }
        EVP_CIPHER_CTX_free(x);
        EVP_CIPHER_CTX_free(y);
        EVP_CIPHER_free(m);
    }
}

/* ---- threads ---- */

static void *thread_body(void *arg)
{
    unsigned seed = (unsigned)(size_t)arg;
    int ok = 1;
    for (int i = 0; i < 40 && ok; i++) {
        const char *name = names[rand_r(&seed) % N_ALGS];
        size_t ivlen = strstr(name, "GCM") || strstr(name, "Poly") ? 12 : 16;
        ok = differential(name, (size_t)rand_r(&seed) % 20000, ivlen, (size_t)rand_r(&seed) % 64, 1);
    }
    return ok ? arg : NULL;
}

static void test_contexts_in_threads(void)
{
    pthread_t t[6];
    for (size_t i = 0; i < 6; i++)
        CU_ASSERT_FATAL(pthread_create(&t[i], NULL, thread_body, (void *)(i + 1)) == 0);
    for (size_t i = 0; i < 6; i++) {
        void *r;
        CU_ASSERT(pthread_join(t[i], &r) == 0);
        CU_ASSERT_PTR_EQUAL(r, (void *)(i + 1));
    }
}

/* ---- bad input ---- */

static void test_bad_input_fails_cleanly(void)
{
    unsigned char key[32] = {1}, iv[16] = {2}, buf[64] = {0}, tag[16];
    int outl;
    EVP_CIPHER *gcm = fetch("AES-256-GCM", "memguard"), *cc = fetch("ChaCha20-Poly1305", "memguard"),
               *cbc = fetch("AES-256-CBC", "memguard");
    EVP_CIPHER_CTX *x = EVP_CIPHER_CTX_new();
    ERR_clear_error();

    /* Wrong key length. */
    CU_ASSERT(EVP_EncryptInit_ex2(x, gcm, NULL, NULL, NULL) == 1);
    CU_ASSERT(EVP_CIPHER_CTX_set_key_length(x, 16) <= 0);
    CU_ASSERT(memguard_error_queued());
    /* Wrong IV lengths: none for GCM, not 96 bits for ChaCha20-Poly1305. */
    CU_ASSERT(EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_AEAD_SET_IVLEN, 0, NULL) <= 0);
    CU_ASSERT(EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_AEAD_SET_IVLEN, 129, NULL) <= 0);
    ERR_clear_error();
    CU_ASSERT(EVP_EncryptInit_ex2(x, cc, NULL, NULL, NULL) == 1);
    CU_ASSERT(EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_AEAD_SET_IVLEN, 8, NULL) <= 0);
    CU_ASSERT(memguard_error_queued());
    /* Update before any key. */
    CU_ASSERT(EVP_EncryptUpdate(x, buf, &outl, buf, 16) == 0);
    CU_ASSERT(memguard_error_queued());

    /* Tag: before final, wrong lengths, from a decryption, missing on decrypt. */
    CU_ASSERT_FATAL(EVP_EncryptInit_ex2(x, gcm, key, iv, NULL) == 1);
    CU_ASSERT(EVP_EncryptUpdate(x, buf, &outl, buf, 20) == 1);
    CU_ASSERT(EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_AEAD_GET_TAG, 16, tag) <= 0);
    CU_ASSERT(memguard_error_queued());
    CU_ASSERT(EVP_EncryptFinal_ex(x, buf, &outl) == 1);
    CU_ASSERT(EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_AEAD_GET_TAG, 16, tag) == 1);
    CU_ASSERT(EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_AEAD_GET_TAG, 17, tag) <= 0);
    /* Update and final after final. */
    CU_ASSERT(EVP_EncryptUpdate(x, buf, &outl, buf, 16) == 0);
    CU_ASSERT(EVP_EncryptFinal_ex(x, buf, &outl) == 0);
    CU_ASSERT(memguard_error_queued());
    /* AAD after data. */
    CU_ASSERT_FATAL(EVP_EncryptInit_ex2(x, NULL, NULL, iv, NULL) == 1);
    CU_ASSERT(EVP_EncryptUpdate(x, buf, &outl, buf, 5) == 1);
    CU_ASSERT(EVP_EncryptUpdate(x, NULL, &outl, buf, 5) == 0);
    CU_ASSERT(memguard_error_queued());
    /* Decrypt: no tag set, tag of a bad length, a tag on an encrypting context. */
    CU_ASSERT_FATAL(EVP_DecryptInit_ex2(x, gcm, key, iv, NULL) == 1);
    CU_ASSERT(EVP_DecryptUpdate(x, buf, &outl, buf, 16) == 1);
    CU_ASSERT(EVP_DecryptFinal_ex(x, buf, &outl) == 0);
    CU_ASSERT(memguard_error_queued());
    CU_ASSERT(EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_AEAD_SET_TAG, 3, tag) <= 0);
    CU_ASSERT(EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_AEAD_SET_TAG, 17, tag) <= 0);
    ERR_clear_error();
    CU_ASSERT_FATAL(EVP_EncryptInit_ex2(x, gcm, key, iv, NULL) == 1);
    CU_ASSERT(EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_AEAD_SET_TAG, 16, tag) <= 0);
    /* TLS record mode is refused, not half-done. */
    unsigned char tlsaad[13] = {0};
    CU_ASSERT(EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_AEAD_TLS1_AAD, 13, tlsaad) <= 0);
    CU_ASSERT(memguard_error_queued());

    /* CBC: a partial block with padding off, a corrupted padding, a short ciphertext. */
    CU_ASSERT_FATAL(EVP_EncryptInit_ex2(x, cbc, key, iv, NULL) == 1);
    EVP_CIPHER_CTX_set_padding(x, 0);
    CU_ASSERT(EVP_EncryptUpdate(x, buf, &outl, buf, 20) == 1);
    CU_ASSERT(EVP_EncryptFinal_ex(x, buf + outl, &outl) == 0);
    CU_ASSERT(memguard_error_queued());
    unsigned char ct[32];
    int n1 = 0, n2 = 0;
    CU_ASSERT_FATAL(EVP_EncryptInit_ex2(x, cbc, key, iv, NULL) == 1);
    EVP_CIPHER_CTX_set_padding(x, 1); /* EVP keeps the no-padding flag across re-initialisation */
    CU_ASSERT(EVP_EncryptUpdate(x, ct, &n1, buf, 20) == 1 && EVP_EncryptFinal_ex(x, ct + n1, &n2) == 1);
    CU_ASSERT_EQUAL(n1 + n2, 32);
    ct[31] ^= 0x5a; /* the last block decrypts to garbage: its padding is wrong (with overwhelming odds) */
    CU_ASSERT_FATAL(EVP_DecryptInit_ex2(x, cbc, key, iv, NULL) == 1);
    EVP_CIPHER_CTX_set_padding(x, 1);
    CU_ASSERT(EVP_DecryptUpdate(x, buf, &n1, ct, 32) == 1);
    CU_ASSERT(EVP_DecryptFinal_ex(x, buf + n1, &n2) == 0);
    CU_ASSERT(memguard_error_queued());
    CU_ASSERT_FATAL(EVP_DecryptInit_ex2(x, cbc, key, iv, NULL) == 1);
    CU_ASSERT(EVP_DecryptUpdate(x, buf, &n1, ct, 20) == 1);
    CU_ASSERT(EVP_DecryptFinal_ex(x, buf + n1, &n2) == 0);
    CU_ASSERT(memguard_error_queued());

    EVP_CIPHER_CTX_free(x);
    EVP_CIPHER_free(gcm);
    EVP_CIPHER_free(cc);
    EVP_CIPHER_free(cbc);
}

/* The memory scans read every mapping, ASan's shadow included: they run in the other builds. */
#ifndef MG_SANITIZED
/* ---- memory residue ---- */

/* FIPS 197 key expansion, the textbook way, for the needles (computed in guarded memory). */
static const unsigned char sbox[256] = {
    0x63, 0x7c, 0x77, 0x7b, 0xf2, 0x6b, 0x6f, 0xc5, 0x30, 0x01, 0x67, 0x2b, 0xfe, 0xd7, 0xab, 0x76, 0xca, 0x82, 0xc9,
    0x7d, 0xfa, 0x59, 0x47, 0xf0, 0xad, 0xd4, 0xa2, 0xaf, 0x9c, 0xa4, 0x72, 0xc0, 0xb7, 0xfd, 0x93, 0x26, 0x36, 0x3f,
    0xf7, 0xcc, 0x34, 0xa5, 0xe5, 0xf1, 0x71, 0xd8, 0x31, 0x15, 0x04, 0xc7, 0x23, 0xc3, 0x18, 0x96, 0x05, 0x9a, 0x07,
    0x12, 0x80, 0xe2, 0xeb, 0x27, 0xb2, 0x75, 0x09, 0x83, 0x2c, 0x1a, 0x1b, 0x6e, 0x5a, 0xa0, 0x52, 0x3b, 0xd6, 0xb3,
    0x29, 0xe3, 0x2f, 0x84, 0x53, 0xd1, 0x00, 0xed, 0x20, 0xfc, 0xb1, 0x5b, 0x6a, 0xcb, 0xbe, 0x39, 0x4a, 0x4c, 0x58,
    0xcf, 0xd0, 0xef, 0xaa, 0xfb, 0x43, 0x4d, 0x33, 0x85, 0x45, 0xf9, 0x02, 0x7f, 0x50, 0x3c, 0x9f, 0xa8, 0x51, 0xa3,
    0x40, 0x8f, 0x92, 0x9d, 0x38, 0xf5, 0xbc, 0xb6, 0xda, 0x21, 0x10, 0xff, 0xf3, 0xd2, 0xcd, 0x0c, 0x13, 0xec, 0x5f,
    0x97, 0x44, 0x17, 0xc4, 0xa7, 0x7e, 0x3d, 0x64, 0x5d, 0x19, 0x73, 0x60, 0x81, 0x4f, 0xdc, 0x22, 0x2a, 0x90, 0x88,
    0x46, 0xee, 0xb8, 0x14, 0xde, 0x5e, 0x0b, 0xdb, 0xe0, 0x32, 0x3a, 0x0a, 0x49, 0x06, 0x24, 0x5c, 0xc2, 0xd3, 0xac,
    0x62, 0x91, 0x95, 0xe4, 0x79, 0xe7, 0xc8, 0x37, 0x6d, 0x8d, 0xd5, 0x4e, 0xa9, 0x6c, 0x56, 0xf4, 0xea, 0x65, 0x7a,
    0xae, 0x08, 0xba, 0x78, 0x25, 0x2e, 0x1c, 0xa6, 0xb4, 0xc6, 0xe8, 0xdd, 0x74, 0x1f, 0x4b, 0xbd, 0x8b, 0x8a, 0x70,
    0x3e, 0xb5, 0x66, 0x48, 0x03, 0xf6, 0x0e, 0x61, 0x35, 0x57, 0xb9, 0x86, 0xc1, 0x1d, 0x9e, 0xe1, 0xf8, 0x98, 0x11,
    0x69, 0xd9, 0x8e, 0x94, 0x9b, 0x1e, 0x87, 0xe9, 0xce, 0x55, 0x28, 0xdf, 0x8c, 0xa1, 0x89, 0x0d, 0xbf, 0xe6, 0x42,
    0x68, 0x41, 0x99, 0x2d, 0x0f, 0xb0, 0x54, 0xbb, 0x16};

static void expand_key256(const unsigned char key[32], unsigned char w[240])
{
    static const unsigned char rcon[8] = {0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80};
    memcpy(w, key, 32);
    for (int i = 8; i < 60; i++) {
        unsigned char t[4];
        memcpy(t, w + 4 * (i - 1), 4);
        if (i % 8 == 0) {
            unsigned char r = t[0];
            t[0] = sbox[t[1]] ^ rcon[i / 8 - 1];
            t[1] = sbox[t[2]];
            t[2] = sbox[t[3]];
            t[3] = sbox[r];
        } else if (i % 8 == 4) {
            for (int j = 0; j < 4; j++)
                t[j] = sbox[t[j]];
        }
        for (int j = 0; j < 4; j++)
            w[4 * i + j] = w[4 * (i - 8) + j] ^ t[j];
    }
}

#define WINDOW 16
static memscan_needle needles[20];
static size_t n_needles;

static void add_needle(const unsigned char *v)
{
    char name[16];
    snprintf(name, sizeof name, "round key %zu", n_needles);
    CU_ASSERT_FATAL(n_needles < sizeof needles / sizeof needles[0] &&
                    memscan_needle_init(&needles[n_needles++], name, v, WINDOW, false));
}

/* Hits of all needles, in guarded memory and everywhere else. */
static void scan(size_t *guarded, size_t *elsewhere)
{
    CU_ASSERT_FATAL(memscan_run(needles, n_needles));
    *guarded = memscan_total(needles, 0, n_needles, true);
    *elsewhere = memscan_total(needles, 0, n_needles, false);
}

static void use_cipher(const EVP_CIPHER *c, const unsigned char *key, EVP_CIPHER_CTX **keep)
{
    unsigned char iv[16] = {9}, pt[4096], out[4200], tag[16];
    int l1, l2;
    CU_ASSERT_FATAL(RAND_bytes(pt, sizeof pt) == 1);
    EVP_CIPHER_CTX *x = EVP_CIPHER_CTX_new();
    CU_ASSERT_FATAL(EVP_EncryptInit_ex2(x, c, key, iv, NULL) == 1);
    for (int i = 0; i < 20; i++) {
        iv[0] = (unsigned char)i;
        CU_ASSERT(EVP_EncryptInit_ex2(x, NULL, NULL, iv, NULL) == 1);
        if (is_aead(c))
            CU_ASSERT(EVP_EncryptUpdate(x, NULL, &l1, pt, 13) == 1);
        CU_ASSERT(EVP_EncryptUpdate(x, out, &l1, pt, 1000 + i) == 1);
        CU_ASSERT(EVP_EncryptFinal_ex(x, out + l1, &l2) == 1);
        if (is_aead(c))
            CU_ASSERT(EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_AEAD_GET_TAG, 16, tag) == 1);
    }
    *keep = x;
}

static void test_no_key_or_schedule_outside_guarded_memory(void)
{
    /* The key only ever exists in guarded memory here, so any copy elsewhere came from the library. */
    mg_buffer *key = mg_buffer_random(32), *ref = mg_buffer_new(240);
    CU_ASSERT_FATAL(key != NULL && ref != NULL);
    unsigned char *w = mg_buffer_data(ref);
    expand_key256(mg_buffer_data(key), w);
    for (int i = 0; i < 15; i++) /* round keys 0-1 are the key itself */
        add_needle(w + 16 * i);
    mg_buffer_destroy(ref);

    const char *algs[] = {"AES-256-GCM", "AES-256-CTR", "AES-256-CBC", "ChaCha20-Poly1305"};
    EVP_CIPHER_CTX *live[4];
    for (int a = 0; a < 4; a++) {
        EVP_CIPHER *c = fetch(algs[a], "memguard");
        CU_ASSERT_PTR_NOT_NULL_FATAL(c);
        use_cipher(c, mg_buffer_data(key), &live[a]);
        EVP_CIPHER_free(c);
    }
    size_t guarded, elsewhere;
    scan(&guarded, &elsewhere);
    printf("\n    contexts alive: %zu hits in guarded memory, %zu elsewhere\n", guarded, elsewhere);
    CU_ASSERT_EQUAL(elsewhere, 0);
    /* Control: the scan does see the schedules where they are (3 AES contexts + our own key buffer). */
    CU_ASSERT(guarded >= 15 * 3);

    for (int a = 0; a < 4; a++)
        EVP_CIPHER_CTX_free(live[a]);
    scan(&guarded, &elsewhere);
    printf("    contexts freed: %zu hits in guarded memory (the test's own key), %zu elsewhere\n", guarded, elsewhere);
    CU_ASSERT_EQUAL(elsewhere, 0);
    CU_ASSERT(guarded <= 2); /* only the test's key buffer (round keys 0 and 1) */

    /* Control: the default provider keeps the schedule in ordinary memory, and the scan finds it. */
    EVP_CIPHER *d = fetch("AES-256-GCM", "default");
    EVP_CIPHER_CTX *x;
    use_cipher(d, mg_buffer_data(key), &x);
    scan(&guarded, &elsewhere);
    printf("    default provider: %zu hits outside guarded memory\n", elsewhere);
    CU_ASSERT(elsewhere >= 13);
    EVP_CIPHER_CTX_free(x);
    EVP_CIPHER_free(d);
    mg_buffer_destroy(key);
}

#endif

/* ---- the vector ChaCha20 / Poly1305 themselves, against libsodium ---- */
#include <sodium.h>

#include "../../provider/chacha_simd.h"
#include "../../provider/simd.h"

/* mgp_chacha20_xor_blocks and _blocks01 against libsodium at the counter edges; the mismatches.
 * A message of 256 GiB would be needed to reach the last block counter through EVP; the keystream
 * function is called there directly, with every tail length a 16-, 8- or 1-block pass can leave. */
static int chacha_mismatches(const unsigned char *in, const unsigned char key[32], const unsigned char nonce[12])
{
    enum { MAXB = 40 };
    static unsigned char want[64 * MAXB], got[64 * MAXB + 1];
    unsigned char b0[64], b1[64];
    int bad = 0;
    for (size_t n = 1; n <= MAXB; n++) {
        /* the last blocks before the counter wraps (RFC 8439's limit), and the 2^31 sign edge */
        uint32_t starts[] = {(uint32_t)(UINT32_MAX - n + 1), UINT32_C(0x7ffffff0), 1};
        for (size_t i = 0; i < sizeof starts / sizeof starts[0]; i++) {
            CU_ASSERT_FATAL(crypto_stream_chacha20_ietf_xor_ic(want, in, 64 * n, nonce, starts[i], key) == 0);
            memset(got, 0, sizeof got);
            mgp_chacha20_xor_blocks(key, nonce, starts[i], in, got, n);
            bad += memcmp(got, want, 64 * n) != 0 || got[64 * n] != 0; /* nothing written past n blocks */
        }
    }
    mgp_chacha20_blocks01(key, nonce, b0, b1);
    CU_ASSERT_FATAL(crypto_stream_chacha20_ietf(want, 128, nonce, key) == 0);
    bad += memcmp(b0, want, 64) != 0 || memcmp(b1, want + 64, 64) != 0;
    return bad;
}

/* The provider (its own copy of simd.c) reports the paths MEMGUARD_SIMD leaves it, in "memguard-simd". */
static void test_provider_reports_its_code_paths(void)
{
    OSSL_PROVIDER *p = OSSL_PROVIDER_load(NULL, "memguard");
    CU_ASSERT_FATAL(p != NULL);
    char *paths = NULL; /* points into the provider's constant text */
    OSSL_PARAM q[] = {OSSL_PARAM_utf8_ptr("memguard-simd", &paths, 0), OSSL_PARAM_END};
    CU_ASSERT_FATAL(OSSL_PROVIDER_get_params(p, q) == 1 && paths != NULL);
    printf("    memguard-simd: %s\n", paths);
    /* the same answer as this process's copy, which reads the same MEMGUARD_SIMD */
    CU_ASSERT_STRING_EQUAL(paths, mgp_simd_describe());
    const char *cap = getenv("MEMGUARD_SIMD");
    if (cap != NULL && strcmp(cap, "avx2") == 0 && __builtin_cpu_supports("avx2"))
        CU_ASSERT(strstr(paths, "ChaCha20: AVX2") != NULL && strstr(paths, "Poly1305: AVX2") != NULL);
    if (cap != NULL && strcmp(cap, "aesni") == 0)
        CU_ASSERT(strstr(paths, "ChaCha20: libsodium") != NULL && strstr(paths, "Poly1305: libsodium") != NULL);
    if (cap != NULL && strcmp(cap, "none") == 0)
        CU_ASSERT(strstr(paths, "AES: not offered") != NULL);
    OSSL_PROVIDER_unload(p);
}

/*
 * mgp_poly1305 against libsodium for every length to 1100 bytes (whole vector steps, single
 * blocks, a short last block), fed in three random pieces; then limbs at their largest: all-0xff
 * messages under keys whose r has every allowed bit set. The mismatches.
 */
static int poly_mismatches(const unsigned char *in, size_t max)
{
    static unsigned char st[MGP_POLY1305_STATE_BYTES] __attribute__((aligned(16)));
    static unsigned char ones[1100];
    unsigned char key[32], tag[16], ref[16], cuts[2];
    int bad = 0;
    memset(ones, 0xff, sizeof ones);
    for (int pass = 0; pass < 2; pass++) {
        const unsigned char *msg = pass == 0 ? in : ones;
        for (size_t len = 0; len <= 1100 && len <= max; len++) {
            CU_ASSERT_FATAL(RAND_bytes(key, sizeof key) == 1 && RAND_bytes(cuts, sizeof cuts) == 1);
            if (pass == 1)
                memset(key, 0xff, 16); /* clamped to r's largest value */
            size_t c1 = len == 0 ? 0 : cuts[0] * 5 % (len + 1);
            size_t c2 = c1 + (len - c1 == 0 ? 0 : (size_t)cuts[1] * 5 % (len - c1 + 1));
            mgp_poly1305_init(st, key);
            mgp_poly1305_update(st, msg, c1);
            mgp_poly1305_update(st, msg + c1, c2 - c1);
            mgp_poly1305_update(st, msg + c2, len - c2);
            mgp_poly1305_final(st, tag);
            CU_ASSERT_FATAL(crypto_onetimeauth_poly1305(ref, msg, len, key) == 0);
            bad += memcmp(tag, ref, 16) != 0;
        }
    }
    return bad;
}

static void test_vector_code_matches_libsodium_at_counter_edges(void)
{
    static unsigned char in[64 * 40];
    unsigned char key[32], nonce[12];
    _Static_assert(sizeof in >= 1100, "the Poly1305 sweep reads 1100 bytes of input");
    CU_ASSERT_FATAL(RAND_bytes(key, sizeof key) == 1 && RAND_bytes(nonce, sizeof nonce) == 1);
    CU_ASSERT_FATAL(RAND_bytes(in, sizeof in) == 1);
    /* Every ChaCha20 path this CPU can run - 16-way AVX-512, 8-way AVX2, libsodium - whatever the
       cap the suite runs under (MEMGUARD_SIMD), by lowering this copy's cap in turn (simd.h). */
    const struct {
        int cap;
        const char *path;
        bool cpu_can;
    } paths[] = {
        {MGP_SIMD_AVX512, "16-way AVX-512", __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl")},
        {MGP_SIMD_AVX2, "8-way AVX2", __builtin_cpu_supports("avx2")},
        {MGP_SIMD_AESNI, "libsodium", true},
    };
    int initial = mgp_simd_cap();
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        if (!paths[i].cpu_can) {
            printf("    ChaCha20 %s: this CPU cannot run it\n", paths[i].path);
            continue;
        }
        mgp_simd_set_cap(paths[i].cap);
        int bad = chacha_mismatches(in, key, nonce);
        CU_ASSERT_EQUAL(bad, 0);
        printf("    ChaCha20 %s: %d mismatches with libsodium\n", paths[i].path, bad);
    }
    mgp_simd_set_cap(initial);

    /* Each vector Poly1305 this CPU can run (under any MEMGUARD_SIMD cap), against libsodium's. */
    const struct {
        int cap;
        const char *path;
        bool cpu_can;
    } polys[] = {
        {MGP_SIMD_AVX512, "AVX-512 IFMA, 8 blocks", __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512ifma")},
        {MGP_SIMD_AVX2, "AVX2, 4 blocks", __builtin_cpu_supports("avx2")},
    };
    for (size_t i = 0; i < sizeof polys / sizeof polys[0]; i++) {
        if (!polys[i].cpu_can) {
            printf("    Poly1305 %s: this CPU cannot run it\n", polys[i].path);
            continue;
        }
        mgp_simd_set_cap(polys[i].cap);
        CU_ASSERT_FATAL(mgp_poly1305_vector());
        int bad = poly_mismatches(in, sizeof in);
        CU_ASSERT_EQUAL(bad, 0);
        printf("    Poly1305 %s: %d mismatches with libsodium\n", polys[i].path, bad);
    }
    mgp_simd_set_cap(initial);
}

/* ---- MEMGUARD_SIMD=none: as on a CPU without AES-NI ---- */

/* memguard offers no AES (ciphers or CMAC) - it has no table-based AES - and all the rest still works. */
static void test_without_aes_ni_only_aes_is_withheld(void)
{
    for (size_t i = 0; i < N_ALGS; i++) {
        EVP_CIPHER *c = fetch(names[i], "memguard");
        bool aes = strncmp(names[i], "AES", 3) == 0;
        CU_ASSERT((c == NULL) == aes);
        if (c == NULL && aes)
            printf("    %s: not offered\n", names[i]);
        EVP_CIPHER_free(c);
    }
    ERR_clear_error();
    EVP_MAC *cmac = EVP_MAC_fetch(NULL, "CMAC", "provider=memguard"), *hmac = EVP_MAC_fetch(NULL, "HMAC", "provider=memguard"),
            *kmac = EVP_MAC_fetch(NULL, "KMAC-256", "provider=memguard");
    CU_ASSERT(cmac == NULL && hmac != NULL && kmac != NULL);
    EVP_MAC_free(cmac);
    EVP_MAC_free(hmac);
    EVP_MAC_free(kmac);
    ERR_clear_error();
    /* ChaCha20-Poly1305, all from libsodium here, equals the default provider and survives dupctx. */
    static const size_t lens[] = {0, 1, 63, 64, 65, 1000, 4096, 65537};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++)
        CU_ASSERT(differential("ChaCha20-Poly1305", lens[i], 12, 1 + lens[i] % 40, 1));
}

static CU_TestInfo without_aes_ni_tests[] = {
    {"without AES-NI only the AES algorithms are withheld", test_without_aes_ni_only_aes_is_withheld},
    {"the provider reports its code paths", test_provider_reports_its_code_paths},
    {"vector ChaCha20/Poly1305 match libsodium at counter edges", test_vector_code_matches_libsodium_at_counter_edges},
    CU_TEST_INFO_NULL,
};

static CU_TestInfo cipher_tests[] = {
    {"unqualified fetch stays on the default provider", test_unqualified_fetch_stays_on_default},
    {"cipher info params match the default provider", test_info_params_match_default},
    {"known answers (GCM spec, SP 800-38A, RFC 8439)", test_known_answers},
    {"same output as the default provider, 0..1 MiB, random splits", test_same_as_default_provider},
    {"any flipped bit fails authentication", test_any_flipped_bit_fails},
    {"dupctx mid-message", test_dup_mid_message},
    {"contexts in six threads", test_contexts_in_threads},
    {"bad input fails cleanly", test_bad_input_fails_cleanly},
#ifndef MG_SANITIZED
    {"no key or AES schedule outside guarded memory", test_no_key_or_schedule_outside_guarded_memory},
#endif
    {"vector ChaCha20/Poly1305 match libsodium at counter edges", test_vector_code_matches_libsodium_at_counter_edges},
    {"the provider reports its code paths", test_provider_reports_its_code_paths},
    CU_TEST_INFO_NULL,
};

int main(void)
{
    if (getenv("OPENSSL_CONF") == NULL) {
        fprintf(stderr, "set OPENSSL_CONF to a configuration that loads memguard\n");
        return 2;
    }
    /* MEMGUARD_SIMD=none (simd.h) makes the provider behave as on a CPU without AES-NI. */
    const char *simd = getenv("MEMGUARD_SIMD");
    bool no_aes = simd != NULL && strcmp(simd, "none") == 0;
    CU_SuiteInfo suites[] = {
        {no_aes ? "cipher without AES-NI" : "cipher", NULL, NULL, NULL, NULL, no_aes ? without_aes_ni_tests : cipher_tests},
        CU_SUITE_INFO_NULL,
    };
    return mgt_main(suites);
}
