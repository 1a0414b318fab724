/*
 * memguard's HMAC (EVP_MAC and HMAC EVP_PKEY), HKDF and PBKDF2:
 *   - RFC 4231 / NIST HMAC, RFC 5869 HKDF, RFC 6070 / RFC 7914 PBKDF2 vectors through memguard;
 *   - identical to the default provider for random keys and messages of 0..1 MiB in random updates;
 *   - dupctx mid-stream, re-init, threads with their own contexts and one shared key;
 *   - bad input gives clean errors with a memguard reason; raw private export refused;
 *   - routing: fetches without "provider=memguard" get the default provider (libssl's path) in
 *     either provider order: in the wrong one memguard withholds its symmetric algorithms and warns
 *     once (negative control: its asymmetric X25519 exchange does answer unqualified fetches there);
 *   - residue: the key, K^ipad, K^opad and the SHA-256 states after them are never in memory
 *     outside guarded mappings, and nowhere at all once the contexts are freed.
 * Run with OPENSSL_CONF pointing at a configuration that loads memguard after default.
 */
#define OPENSSL_SUPPRESS_DEPRECATED /* SHA256_Init: the reference padded states for the residue needles */

#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/pem.h>
#include <openssl/provider.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <memguard/memguard.h>

#include "../core/harness.h"
#include "check.h"
#include "memscan.h"

#define MG "provider=memguard"
#define DF "provider=default"

/* ---- MAC helpers ---- */

/* EVP_MAC HMAC over msg, fed in random update sizes when split. 1 on success. */
static int mac(const char *propq, const char *md, const unsigned char *key, size_t klen, const unsigned char *msg,
               size_t len, bool split, unsigned char *out, size_t *outlen)
{
    EVP_MAC *m = EVP_MAC_fetch(NULL, "HMAC", propq);
    EVP_MAC_CTX *c = m != NULL ? EVP_MAC_CTX_new(m) : NULL;
    OSSL_PARAM p[] = {OSSL_PARAM_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)(uintptr_t)md, 0), OSSL_PARAM_END};
    int ok = c != NULL && EVP_MAC_init(c, key, klen, p) == 1;
    for (size_t at = 0; ok && at < len;) {
        size_t n = len - at;
        if (split) {
            unsigned r;
            RAND_bytes((unsigned char *)&r, sizeof r);
            size_t cap = (size_t)1 << (r % 18);
            n = r % (cap + 1) < n ? r % (cap + 1) : n;
        }
        ok = EVP_MAC_update(c, msg + at, n) == 1;
        at += n;
    }
    ok = ok && EVP_MAC_final(c, out, outlen, 64) == 1;
    EVP_MAC_CTX_free(c);
    EVP_MAC_free(m);
    return ok;
}

/* EVP_DigestSign with an HMAC EVP_PKEY made in the provider propq names. */
static int pkey_mac(const char *propq, const char *md, const unsigned char *key, size_t klen, const unsigned char *msg,
                    size_t len, unsigned char *out, size_t *outlen)
{
    EVP_PKEY *k = EVP_PKEY_new_raw_private_key_ex(NULL, "HMAC", propq, key, klen);
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    *outlen = 64;
    int ok = k != NULL && c != NULL && EVP_DigestSignInit_ex(c, NULL, md, NULL, propq, k, NULL) == 1 &&
             EVP_DigestSignUpdate(c, msg, len / 2) == 1 && EVP_DigestSignUpdate(c, msg + len / 2, len - len / 2) == 1 &&
             EVP_DigestSignFinal(c, out, outlen) == 1;
    if (ok && strcmp(propq, MG) == 0)
        ok = strcmp(OSSL_PROVIDER_get0_name(EVP_PKEY_get0_provider(k)), "memguard") == 0;
    EVP_MD_CTX_free(c);
    EVP_PKEY_free(k);
    return ok;
}

/* ---- known answers ---- */

struct hmac_kat {
    const char *md, *key, *msg, *mac; /* hex; mac may be a truncation (RFC 4231 case 5) */
};

static void kat_key_msg(const struct hmac_kat *t, unsigned char *key, size_t *klen, unsigned char *msg, size_t *mlen)
{
    *klen = unhex(t->key, key, 256);
    *mlen = unhex(t->msg, msg, 256);
}

static void test_hmac_known_answers_through_memguard(void)
{
    static const char aa131[] = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                                "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                                "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    /* "Test Using Larger Than Block-Size Key - Hash Key First" */
    static const char m6[] = "54657374205573696e67204c6172676572205468616e20426c6f636b2d53697a65204b6579202d2048617368204b6579"
                             "204669727374";
    /* "This is a test using a larger than block-size key and a larger than block-size data. The key needs
     * to be hashed before being used by the HMAC algorithm." */
    static const char m7[] = "5468697320697320612074657374207573696e672061206c6172676572207468616e20626c6f636b2d73697a65206b6579"
                             "20616e642061206c6172676572207468616e20626c6f636b2d73697a6520646174612e20546865206b6579206e65656473"
                             "20746f20626520686173686564206265666f7265206265696e6720757365642062792074686520484d414320616c676f72"
                             "6974686d2e";
    static const char dd50[] = "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd";
    static const char cd50[] = "cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd";
    const struct hmac_kat kats[] = {
        /* RFC 4231, test cases 1-7 */
        {"SHA256", "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b", "4869205468657265",
         "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"},
        {"SHA512", "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b", "4869205468657265",
         "87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cdedaa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854"},
        {"SHA256", "4a656665", "7768617420646f2079612077616e7420666f72206e6f7468696e673f",
         "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"},
        {"SHA512", "4a656665", "7768617420646f2079612077616e7420666f72206e6f7468696e673f",
         "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737"},
        {"SHA256", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", dd50,
         "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"},
        {"SHA512", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", dd50,
         "fa73b0089d56a284efb0f0756c890be9b1b5dbdd8ee81a3655f83e33b2279d39bf3e848279a722c806b485a47e67c807b946a337bee8942674278859e13292fb"},
        {"SHA256", "0102030405060708090a0b0c0d0e0f10111213141516171819", cd50,
         "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"},
        {"SHA512", "0102030405060708090a0b0c0d0e0f10111213141516171819", cd50,
         "b0ba465637458c6990e5a8c5f61d4af7e576d97ff94b872de76f8050361ee3dba91ca5c11aa25eb4d679275cc5788063a5f19741120c4f2de2adebeb10a298dd"},
        {"SHA256", "0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c", "546573742057697468205472756e636174696f6e",
         "a3b6167473100ee06e0c796c2955552b"},
        {"SHA512", "0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c", "546573742057697468205472756e636174696f6e",
         "415fad6271580a531d4179bc891d87a6"},
        {"SHA256", aa131, m6, "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"},
        {"SHA512", aa131, m6,
         "80b24263c7c1a3ebb71493c1dd7be8b49b46d1f41b4aeec1121b013783f8f3526b56d037e05f2598bd0fd2215d6a1e5295e64f73f63f0aec8b915a985d786598"},
        {"SHA256", aa131, m7, "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"},
        {"SHA512", aa131, m7,
         "e37b6a775dc87dbaa4dfa9f96e5e3ffddebd71f8867289865df5a32d20cdc944b6022cac3c4982b10d5eeb55c3e4de15134676fb6de0446065c97440fa8c6a58"},
        /* NIST HMAC examples ("Sample message for keylen<blocklen") for the other digests */
        {"SHA1", "000102030405060708090a0b0c0d0e0f10111213",
         "53616d706c65206d65737361676520666f72206b65796c656e3c626c6f636b6c656e",
         "4c99ff0cb1b31bd33f8431dbaf4d17fcd356a807"},
        {"SHA224", "000102030405060708090a0b0c0d0e0f101112131415161718191a1b",
         "53616d706c65206d65737361676520666f72206b65796c656e3c626c6f636b6c656e",
         "e3d249a8cfb67ef8b7a169e9a0a599714a2cecba65999a51beb8fbbe"},
        {"SHA384", "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f",
         "53616d706c65206d65737361676520666f72206b65796c656e3c626c6f636b6c656e",
         "6eb242bdbb582ca17bebfa481b1e23211464d2b7f8c20b9ff2201637b93646af5ae9ac316e98db45d9cae773675eeed0"},
    };
    for (size_t i = 0; i < sizeof kats / sizeof kats[0]; i++) {
        unsigned char key[256], msg[256], want[64], got[64];
        size_t klen, mlen, wlen = unhex(kats[i].mac, want, sizeof want), glen = 0;
        kat_key_msg(&kats[i], key, &klen, msg, &mlen);
        CU_ASSERT_FATAL(mac(MG, kats[i].md, key, klen, msg, mlen, false, got, &glen));
        CU_ASSERT(glen >= wlen && memcmp(got, want, wlen) == 0);
        CU_ASSERT_FATAL(pkey_mac(MG, kats[i].md, key, klen, msg, mlen, got, &glen));
        CU_ASSERT(glen >= wlen && memcmp(got, want, wlen) == 0);
        if (glen < wlen || memcmp(got, want, wlen) != 0)
            fprintf(stderr, "KAT %zu (%s) differs\n", i, kats[i].md);
    }
}

static int kdf(const char *alg, const char *propq, OSSL_PARAM *params, unsigned char *out, size_t len)
{
    EVP_KDF *k = EVP_KDF_fetch(NULL, alg, propq);
    EVP_KDF_CTX *c = k != NULL ? EVP_KDF_CTX_new(k) : NULL;
    int ok = c != NULL && EVP_KDF_derive(c, out, len, params) == 1;
    if (ok && strcmp(propq, MG) == 0)
        ok = strcmp(OSSL_PROVIDER_get0_name(EVP_KDF_get0_provider(k)), "memguard") == 0;
    EVP_KDF_CTX_free(c);
    EVP_KDF_free(k);
    return ok;
}

static int hkdf(const char *propq, const char *md, int mode, const unsigned char *ikm, size_t ikmlen,
                const unsigned char *salt, size_t saltlen, const unsigned char *info, size_t infolen,
                unsigned char *out, size_t len)
{
    OSSL_PARAM p[6], *q = p;
    *q++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)(uintptr_t)md, 0);
    *q++ = OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode);
    *q++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)(uintptr_t)ikm, ikmlen);
    if (salt != NULL)
        *q++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)(uintptr_t)salt, saltlen);
    if (info != NULL)
        *q++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)(uintptr_t)info, infolen);
    *q = OSSL_PARAM_construct_end();
    return kdf("HKDF", propq, p, out, len);
}

static int pbkdf2(const char *propq, const char *md, const unsigned char *pass, size_t passlen,
                  const unsigned char *salt, size_t saltlen, uint64_t iter, unsigned char *out, size_t len)
{
    OSSL_PARAM p[] = {
        OSSL_PARAM_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)(uintptr_t)md, 0),
        OSSL_PARAM_octet_string(OSSL_KDF_PARAM_PASSWORD, (void *)(uintptr_t)pass, passlen),
        OSSL_PARAM_octet_string(OSSL_KDF_PARAM_SALT, (void *)(uintptr_t)salt, saltlen),
        OSSL_PARAM_uint64(OSSL_KDF_PARAM_ITER, &iter),
        OSSL_PARAM_END,
    };
    return kdf("PBKDF2", propq, p, out, len);
}

/* NIST's HMAC-SHA3 examples: key 00 01 02 ..., message "Sample message for keylen<blocklen" (or = or >). */
static void test_hmac_sha3_nist_examples(void)
{
    static const struct {
        const char *md;
        char rel;
        size_t keylen;
        const char *mac;
    } t[] = {
        {"SHA3-224", '<', 28, "332cfd59347fdb8e576e77260be4aba2d6dc53117b3bfb52c6d18c04"},
        {"SHA3-224", '=', 144, "d8b733bcf66c644a12323d564e24dcf3fc75f231f3b67968359100c7"},
        {"SHA3-224", '>', 172, "078695eecc227c636ad31d063a15dd05a7e819a66ec6d8de1e193e59"},
        {"SHA3-256", '<', 32, "4fe8e202c4f058e8dddc23d8c34e467343e23555e24fc2f025d598f558f67205"},
        {"SHA3-256", '=', 136, "68b94e2e538a9be4103bebb5aa016d47961d4d1aa906061313b557f8af2c3faa"},
        {"SHA3-256", '>', 168, "9bcf2c238e235c3ce88404e813bd2f3a97185ac6f238c63d6229a00b07974258"},
        {"SHA3-384", '<', 48,
         "d588a3c51f3f2d906e8298c1199aa8ff6296218127f6b38a90b6afe2c5617725bc99987f79b22a557b6520db710b7f42"},
        {"SHA3-384", '=', 104,
         "a27d24b592e8c8cbf6d4ce6fc5bf62d8fc98bf2d486640d9eb8099e24047837f5f3bffbe92dcce90b4ed5b1e7e44fa90"},
        {"SHA3-384", '>', 152,
         "e5ae4c739f455279368ebf36d4f5354c95aa184c899d3870e460ebc288ef1f9470053f73f7c6da2a71bcaec38ce7d6ac"},
        {"SHA3-512", '<', 64,
         "4efd629d6c71bf86162658f29943b1c308ce27cdfa6db0d9c3ce81763f9cbce5f7ebe9868031db1a8f8eb7b6b95e5c5e"
         "3f657a8996c86a2f6527e307f0213196"},
        {"SHA3-512", '=', 72,
         "544e257ea2a3e5ea19a590e6a24b724ce6327757723fe2751b75bf007d80f6b360744bf1b7a88ea585f9765b47911976"
         "d3191cf83c039f5ffab0d29cc9d9b6da"},
        {"SHA3-512", '>', 136,
         "5f464f5e5b7848e3885e49b2c385f0694985d0e38966242dc4a5fe3fea4b37d46b65ceced5dcf59438dd840bab22269f"
         "0ba7febdb9fcf74602a35666b2a32915"},
    };
    unsigned char key[172], want[64], got[64];
    for (size_t i = 0; i < sizeof key; i++)
        key[i] = (unsigned char)i;
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        char msg[64];
        size_t wl = unhex(t[i].mac, want, sizeof want), gl = 0;
        int ml = snprintf(msg, sizeof msg, "Sample message for keylen%cblocklen", t[i].rel);
        for (int split = 0; split < 2; split++) {
            CHECK(mac(MG, t[i].md, key, t[i].keylen, (const unsigned char *)msg, (size_t)ml, split, got, &gl) &&
                      gl == wl && memcmp(got, want, wl) == 0,
                  "memguard EVP_MAC HMAC-%s, key %zu bytes", t[i].md, t[i].keylen);
            CHECK(mac(DF, t[i].md, key, t[i].keylen, (const unsigned char *)msg, (size_t)ml, split, got, &gl) &&
                      gl == wl && memcmp(got, want, wl) == 0,
                  "default HMAC-%s, key %zu bytes (the vector itself)", t[i].md, t[i].keylen);
        }
        CHECK(pkey_mac(MG, t[i].md, key, t[i].keylen, (const unsigned char *)msg, (size_t)ml, got, &gl) && gl == wl &&
                  memcmp(got, want, wl) == 0,
              "memguard HMAC EVP_PKEY with %s, key %zu bytes", t[i].md, t[i].keylen);
    }
}

static void test_hkdf_rfc5869_known_answers(void)
{
    const struct {
        const char *ikm, *salt, *info, *prk, *okm;
        size_t len;
    } t[] = {
        {"0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b", "000102030405060708090a0b0c", "f0f1f2f3f4f5f6f7f8f9",
         "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5",
         "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865", 42},
        {"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f303132333435"
         "363738393a3b3c3d3e3f404142434445464748494a4b4c4d4e4f",
         "606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f808182838485868788898a8b8c8d8e8f909192939495"
         "969798999a9b9c9d9e9fa0a1a2a3a4a5a6a7a8a9aaabacadaeaf",
         "b0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5"
         "e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff",
         "06a6b88c5853361a06104c9ceb35b45cef760014904671014a193f40c15fc244",
         "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c59045a99cac7827271cb41c65e590e09da3275600c2f09b8"
         "367793a9aca3db71cc30c58179ec3e87c14c01d5c1f3434f1d87",
         82},
        {"0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b", "", "",
         "19ef24a32c717b167f33a91d6f648bdf96596776afdb6377ac434c1c293ccb04",
         "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8", 42},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        unsigned char ikm[128], salt[128], info[128], prk[32], okm[128], got[128];
        size_t ikmlen = unhex(t[i].ikm, ikm, sizeof ikm), saltlen = unhex(t[i].salt, salt, sizeof salt),
               infolen = unhex(t[i].info, info, sizeof info);
        unhex(t[i].prk, prk, sizeof prk);
        unhex(t[i].okm, okm, sizeof okm);
        CU_ASSERT_FATAL(hkdf(MG, "SHA256", EVP_KDF_HKDF_MODE_EXTRACT_AND_EXPAND, ikm, ikmlen, salt, saltlen, info,
                             infolen, got, t[i].len));
        CU_ASSERT(memcmp(got, okm, t[i].len) == 0);
        CU_ASSERT_FATAL(hkdf(MG, "SHA256", EVP_KDF_HKDF_MODE_EXTRACT_ONLY, ikm, ikmlen, salt, saltlen, NULL, 0, got, 32));
        CU_ASSERT(memcmp(got, prk, 32) == 0);
        CU_ASSERT_FATAL(hkdf(MG, "SHA256", EVP_KDF_HKDF_MODE_EXPAND_ONLY, prk, 32, NULL, 0, info, infolen, got, t[i].len));
        CU_ASSERT(memcmp(got, okm, t[i].len) == 0);
    }
}

static void test_pbkdf2_rfc6070_rfc7914_known_answers(void)
{
    const struct {
        const char *md, *pass, *salt;
        size_t passlen, saltlen;
        uint64_t iter;
        const char *dk;
    } t[] = {
        {"SHA1", "password", "salt", 8, 4, 1, "0c60c80f961f0e71f3a9b524af6012062fe037a6"},
        {"SHA1", "password", "salt", 8, 4, 2, "ea6c014dc72d6f8ccd1ed92ace1d41f0d8de8957"},
        {"SHA1", "password", "salt", 8, 4, 4096, "4b007901b765489abead49d926f721d065a429c1"},
        {"SHA1", "passwordPASSWORDpassword", "saltSALTsaltSALTsaltSALTsaltSALTsalt", 24, 36, 4096,
         "3d2eec4fe41c849b80c8d83662c0e44a8b291a964cf2f07038"},
        {"SHA1", "pass\0word", "sa\0lt", 9, 5, 4096, "56fa6aa75548099dcc37d7f03425e0c3"},
        {"SHA256", "passwd", "salt", 6, 4, 1,
         "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc49ca9cccf179b645991664b39d77ef317c71b845b1e30bd509112041d3a19783"},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        unsigned char want[64], got[64];
        size_t n = unhex(t[i].dk, want, sizeof want);
        CU_ASSERT_FATAL(pbkdf2(MG, t[i].md, (const unsigned char *)t[i].pass, t[i].passlen,
                               (const unsigned char *)t[i].salt, t[i].saltlen, t[i].iter, got, n));
        CU_ASSERT(memcmp(got, want, n) == 0);
    }
}

/* ---- identical to the default provider ---- */

static const char *const digests[] = {"SHA1",     "SHA224",   "SHA256",   "SHA384",  "SHA512",
                                      "SHA3-224", "SHA3-256", "SHA3-384", "SHA3-512"};

static size_t rnd(size_t bound)
{
    uint64_t r;
    RAND_bytes((unsigned char *)&r, sizeof r);
    return bound == 0 ? 0 : (size_t)(r % bound);
}

static void test_hmac_matches_default_for_random_keys_and_splits(void)
{
    const size_t big = 1u << 20;
    unsigned char *msg = malloc(big);
    CU_ASSERT_FATAL(msg != NULL && RAND_bytes(msg, (int)big) == 1);
    static const size_t fixed[] = {0, 1, 55, 56, 63, 64, 65, 111, 112, 127, 128, 129, 1000, 16384, 1u << 20};
    for (size_t d = 0; d < sizeof digests / sizeof digests[0]; d++) {
        for (size_t i = 0; i < sizeof fixed / sizeof fixed[0] + 6; i++) {
            size_t len = i < sizeof fixed / sizeof fixed[0] ? fixed[i] : rnd(big + 1);
            unsigned char key[300], a[64], b[64];
            size_t klen = i == 0 ? 0 : rnd(sizeof key + 1), al = 0, bl = 0; /* empty, short, block-sized, longer */
            RAND_bytes(key, sizeof key);
            CU_ASSERT_FATAL(mac(DF, digests[d], key, klen, msg, len, false, a, &al));
            CU_ASSERT_FATAL(mac(MG, digests[d], key, klen, msg, len, true, b, &bl));
            CU_ASSERT(al == bl && memcmp(a, b, al) == 0);
            if (len <= 16384) { /* the EVP_PKEY path is the same engine: a lighter sweep */
                CU_ASSERT_FATAL(pkey_mac(MG, digests[d], key, klen, msg, len, b, &bl));
                CU_ASSERT(al == bl && memcmp(a, b, al) == 0);
            }
        }
    }
    free(msg);
}

static void test_kdfs_match_default_for_random_inputs(void)
{
    for (int i = 0; i < 40; i++) {
        const char *md = digests[rnd(sizeof digests / sizeof digests[0])];
        unsigned char ikm[200], salt[100], info[100], a[600], b[600];
        size_t ikmlen = 1 + rnd(sizeof ikm), saltlen = rnd(sizeof salt), infolen = rnd(sizeof info), len = 1 + rnd(600);
        RAND_bytes(ikm, sizeof ikm);
        RAND_bytes(salt, sizeof salt);
        RAND_bytes(info, sizeof info);
        CU_ASSERT_FATAL(hkdf(DF, md, 0, ikm, ikmlen, salt, saltlen, info, infolen, a, len));
        CU_ASSERT_FATAL(hkdf(MG, md, 0, ikm, ikmlen, salt, saltlen, info, infolen, b, len));
        CU_ASSERT(memcmp(a, b, len) == 0);
        uint64_t iter = 1 + rnd(50);
        CU_ASSERT_FATAL(pbkdf2(DF, md, ikm, ikmlen, salt, saltlen, iter, a, len));
        CU_ASSERT_FATAL(pbkdf2(MG, md, ikm, ikmlen, salt, saltlen, iter, b, len));
        CU_ASSERT(memcmp(a, b, len) == 0);
    }
}

/* ---- contexts ---- */

static EVP_MAC_CTX *mac_ctx(const char *propq, const char *md, const unsigned char *key, size_t klen)
{
    EVP_MAC *m = EVP_MAC_fetch(NULL, "HMAC", propq);
    EVP_MAC_CTX *c = m != NULL ? EVP_MAC_CTX_new(m) : NULL;
    OSSL_PARAM p[] = {OSSL_PARAM_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)(uintptr_t)md, 0), OSSL_PARAM_END};
    EVP_MAC_free(m); /* the context keeps its own reference */
    if (c != NULL && EVP_MAC_init(c, key, klen, p) != 1) {
        EVP_MAC_CTX_free(c);
        c = NULL;
    }
    return c;
}

static void test_dupctx_mid_stream_continues_independently(void)
{
    unsigned char key[40], msg[3000], a[64], b[64], ref[64];
    size_t al = 0, bl = 0, rl = 0;
    RAND_bytes(key, sizeof key);
    RAND_bytes(msg, sizeof msg);
    EVP_MAC_CTX *c = mac_ctx(MG, "SHA256", key, sizeof key);
    CU_ASSERT_FATAL(c != NULL && EVP_MAC_update(c, msg, 1000) == 1);
    EVP_MAC_CTX *d = EVP_MAC_CTX_dup(c);
    CU_ASSERT_FATAL(d != NULL);
    /* The original takes one tail, the duplicate another; each equals a one-go MAC of its message. */
    CU_ASSERT(EVP_MAC_update(c, msg + 1000, 2000) == 1 && EVP_MAC_final(c, a, &al, sizeof a) == 1);
    CU_ASSERT(EVP_MAC_update(d, msg + 2000, 1000) == 1 && EVP_MAC_final(d, b, &bl, sizeof b) == 1);
    CU_ASSERT_FATAL(mac(DF, "SHA256", key, sizeof key, msg, 3000, false, ref, &rl));
    CU_ASSERT(al == rl && memcmp(a, ref, rl) == 0);
    unsigned char alt[2000];
    memcpy(alt, msg, 1000);
    memcpy(alt + 1000, msg + 2000, 1000);
    CU_ASSERT_FATAL(mac(DF, "SHA256", key, sizeof key, alt, 2000, false, ref, &rl));
    CU_ASSERT(bl == rl && memcmp(b, ref, rl) == 0);
    /* Re-initialising with no key starts a new message under the same key. */
    CU_ASSERT(EVP_MAC_init(c, NULL, 0, NULL) == 1 && EVP_MAC_update(c, msg, 3000) == 1 &&
              EVP_MAC_final(c, a, &al, sizeof a) == 1);
    CU_ASSERT_FATAL(mac(DF, "SHA256", key, sizeof key, msg, 3000, false, ref, &rl));
    CU_ASSERT(memcmp(a, ref, rl) == 0);
    EVP_MAC_CTX_free(c);
    EVP_MAC_CTX_free(d);

    /* The EVP_PKEY path: copy an EVP_MD_CTX mid-stream (signature dupctx). */
    EVP_PKEY *k = EVP_PKEY_new_raw_private_key_ex(NULL, "HMAC", MG, key, sizeof key);
    EVP_MD_CTX *s = EVP_MD_CTX_new(), *t = EVP_MD_CTX_new();
    CU_ASSERT_FATAL(k != NULL && s != NULL && t != NULL);
    CU_ASSERT_FATAL(EVP_DigestSignInit_ex(s, NULL, "SHA256", NULL, MG, k, NULL) == 1 &&
                    EVP_DigestSignUpdate(s, msg, 1000) == 1 && EVP_MD_CTX_copy_ex(t, s) == 1);
    al = bl = sizeof a;
    CU_ASSERT(EVP_DigestSignUpdate(s, msg + 1000, 2000) == 1 && EVP_DigestSignFinal(s, a, &al) == 1);
    CU_ASSERT(EVP_DigestSignUpdate(t, msg + 2000, 1000) == 1 && EVP_DigestSignFinal(t, b, &bl) == 1);
    CU_ASSERT_FATAL(mac(DF, "SHA256", key, sizeof key, msg, 3000, false, ref, &rl));
    CU_ASSERT(al == rl && memcmp(a, ref, rl) == 0);
    CU_ASSERT_FATAL(mac(DF, "SHA256", key, sizeof key, alt, 2000, false, ref, &rl));
    CU_ASSERT(bl == rl && memcmp(b, ref, rl) == 0);
    EVP_MD_CTX_free(s);
    EVP_MD_CTX_free(t);
    EVP_PKEY_free(k);
}

#define THREADS 4
#define ROUNDS 150

struct worker {
    EVP_PKEY *shared; /* memguard HMAC key, shared by every thread */
    const unsigned char *shared_key;
    int failures;
};

static void *work(void *arg)
{
    struct worker *w = arg;
    unsigned char key[48], msg[4096], a[64], b[64];
    size_t al = 0, bl = 0;
    RAND_bytes(key, sizeof key);
    EVP_MAC_CTX *own = mac_ctx(MG, "SHA512", key, sizeof key);
    if (own == NULL)
        w->failures++;
    for (int i = 0; own != NULL && i < ROUNDS; i++) {
        size_t len = rnd(sizeof msg);
        RAND_bytes(msg, sizeof msg);
        if (EVP_MAC_init(own, NULL, 0, NULL) != 1 || EVP_MAC_update(own, msg, len) != 1 ||
            EVP_MAC_final(own, a, &al, sizeof a) != 1 || !mac(DF, "SHA512", key, sizeof key, msg, len, false, b, &bl) ||
            al != bl || memcmp(a, b, al) != 0)
            w->failures++;
        EVP_MD_CTX *s = EVP_MD_CTX_new();
        al = sizeof a;
        if (s == NULL || EVP_DigestSignInit_ex(s, NULL, "SHA256", NULL, MG, w->shared, NULL) != 1 ||
            EVP_DigestSign(s, a, &al, msg, len) != 1 || !mac(DF, "SHA256", w->shared_key, 32, msg, len, false, b, &bl) ||
            al != bl || memcmp(a, b, al) != 0)
            w->failures++;
        EVP_MD_CTX_free(s);
    }
    EVP_MAC_CTX_free(own);
    return NULL;
}

static void test_threads_with_own_contexts_and_one_shared_key(void)
{
    unsigned char key[32];
    RAND_bytes(key, sizeof key);
    EVP_PKEY *shared = EVP_PKEY_new_raw_private_key_ex(NULL, "HMAC", MG, key, sizeof key);
    CU_ASSERT_FATAL(shared != NULL);
    pthread_t t[THREADS];
    struct worker w[THREADS];
    for (int i = 0; i < THREADS; i++) {
        w[i] = (struct worker){shared, key, 0};
        CU_ASSERT_FATAL(pthread_create(&t[i], NULL, work, &w[i]) == 0);
    }
    for (int i = 0; i < THREADS; i++) {
        CU_ASSERT(pthread_join(t[i], NULL) == 0);
        CU_ASSERT(w[i].failures == 0);
    }
    EVP_PKEY_free(shared);
}

/* ---- bad input ---- */

static void test_bad_input_gives_clean_errors(void)
{
    unsigned char key[32] = {1}, out[64];
    size_t outl;
    EVP_MAC *m = EVP_MAC_fetch(NULL, "HMAC", MG);
    CU_ASSERT_FATAL(m != NULL);
    EVP_MAC_CTX *c = EVP_MAC_CTX_new(m);
    CU_ASSERT_FATAL(c != NULL);
    /* No digest; a digest whose state we cannot place in guarded memory; update/final before init. */
    CU_ASSERT(EVP_MAC_init(c, key, sizeof key, NULL) == 0 && memguard_error());
    OSSL_PARAM other[] = {OSSL_PARAM_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA512-256", 0), OSSL_PARAM_END};
    CU_ASSERT(EVP_MAC_init(c, key, sizeof key, other) == 0 && memguard_error());
    OSSL_PARAM shake[] = {OSSL_PARAM_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHAKE128", 0), OSSL_PARAM_END};
    CU_ASSERT(EVP_MAC_init(c, key, sizeof key, shake) == 0 && memguard_error()); /* an XOF: not for HMAC */
    CU_ASSERT(EVP_MAC_update(c, key, 1) == 0 && memguard_error());
    OSSL_PARAM sha256[] = {OSSL_PARAM_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA2-256", 0), OSSL_PARAM_END};
    CU_ASSERT(EVP_MAC_init(c, NULL, 0, sha256) == 0 && memguard_error()); /* no key yet */
    /* An absurd key length is refused before anything is read from the pointer. */
    CU_ASSERT(EVP_MAC_init(c, key, (size_t)1 << 40, sha256) == 0 && memguard_error());
    /* Final twice, update after final; output too small. */
    CU_ASSERT_FATAL(EVP_MAC_init(c, key, sizeof key, sha256) == 1 && EVP_MAC_update(c, key, 5) == 1);
    CU_ASSERT(EVP_MAC_final(c, out, &outl, 16) == 0);
    ERR_clear_error();
    CU_ASSERT(EVP_MAC_final(c, out, &outl, sizeof out) == 1 && outl == 32);
    CU_ASSERT(EVP_MAC_final(c, out, &outl, sizeof out) == 0 && memguard_error());
    CU_ASSERT(EVP_MAC_update(c, key, 1) == 0 && memguard_error());
    /* TLS's CBC record MAC option is not ours. */
    size_t tls = 100;
    OSSL_PARAM tlsp[] = {OSSL_PARAM_size_t(OSSL_MAC_PARAM_TLS_DATA_SIZE, &tls), OSSL_PARAM_END};
    CU_ASSERT(EVP_MAC_CTX_set_params(c, tlsp) == 0 && memguard_error());
    EVP_MAC_CTX_free(c);
    EVP_MAC_free(m);

    /* EVP_PKEY: absurd key, no digest, unsupported digest; final twice through the MD_CTX. */
    unsigned char *huge = calloc(1, 70000);
    CU_ASSERT_FATAL(huge != NULL);
    CU_ASSERT(EVP_PKEY_new_raw_private_key_ex(NULL, "HMAC", MG, huge, 70000) == NULL);
    ERR_clear_error();
    free(huge);
    EVP_PKEY *k = EVP_PKEY_new_raw_private_key_ex(NULL, "HMAC", MG, key, sizeof key);
    CU_ASSERT_FATAL(k != NULL);
    EVP_MD_CTX *s = EVP_MD_CTX_new();
    CU_ASSERT(EVP_DigestSignInit_ex(s, NULL, "BLAKE2B-512", NULL, MG, k, NULL) == 0 && memguard_error());
    EVP_MD_CTX_free(s);
    s = EVP_MD_CTX_new();
    EVP_MD_CTX_set_flags(s, EVP_MD_CTX_FLAG_FINALISE); /* final on the context itself, no internal dup */
    outl = sizeof out;
    CU_ASSERT_FATAL(EVP_DigestSignInit_ex(s, NULL, "SHA256", NULL, MG, k, NULL) == 1 &&
                    EVP_DigestSignUpdate(s, key, 3) == 1 && EVP_DigestSignFinal(s, out, &outl) == 1);
    /* Refused by memguard; OpenSSL >= 3.4 refuses a finalised context in EVP before the provider sees it. */
    bool evp_checks = OpenSSL_version_num() >= 0x30400000L;
    outl = sizeof out;
    CU_ASSERT(EVP_DigestSignFinal(s, out, &outl) == 0 && (memguard_error() || evp_checks));
    CU_ASSERT(EVP_DigestSignUpdate(s, key, 3) == 0 && (memguard_error() || evp_checks));
    EVP_MD_CTX_free(s);
    EVP_PKEY_free(k);

    /* KDFs: missing key, unsupported digest, HKDF extract of the wrong size, expand beyond 255 blocks,
     * PBKDF2 with zero iterations, and SP 800-132 minimums when asked for (pkcs5 = 0). */
    unsigned char big[255 * 32 + 1];
    EVP_KDF *kd = EVP_KDF_fetch(NULL, "HKDF", MG);
    EVP_KDF_CTX *kc = EVP_KDF_CTX_new(kd);
    OSSL_PARAM nokey[] = {OSSL_PARAM_utf8_string(OSSL_KDF_PARAM_DIGEST, "SHA256", 0), OSSL_PARAM_END};
    CU_ASSERT(EVP_KDF_derive(kc, out, 32, nokey) == 0 && memguard_error());
    EVP_KDF_CTX_free(kc);
    EVP_KDF_free(kd);
    CU_ASSERT(hkdf(MG, "SM3", 0, key, 32, NULL, 0, NULL, 0, out, 32) == 0 && memguard_error());
    CU_ASSERT(hkdf(MG, "SHA256", EVP_KDF_HKDF_MODE_EXTRACT_ONLY, key, 32, NULL, 0, NULL, 0, out, 31) == 0 &&
              memguard_error());
    CU_ASSERT(hkdf(MG, "SHA256", 0, key, 32, NULL, 0, NULL, 0, big, sizeof big) == 0 && memguard_error());
    CU_ASSERT(hkdf(MG, "SHA256", 0, key, 32, NULL, 0, NULL, 0, big, sizeof big - 1) == 1);
    CU_ASSERT(pbkdf2(MG, "SHA256", key, 32, key, 16, 0, out, 32) == 0 && memguard_error());
    int zero = 0;
    uint64_t few = 10;
    OSSL_PARAM strict[] = {
        OSSL_PARAM_utf8_string(OSSL_KDF_PARAM_DIGEST, "SHA256", 0),
        OSSL_PARAM_octet_string(OSSL_KDF_PARAM_PASSWORD, key, 8),
        OSSL_PARAM_octet_string(OSSL_KDF_PARAM_SALT, key, 16),
        OSSL_PARAM_uint64(OSSL_KDF_PARAM_ITER, &few),
        OSSL_PARAM_int(OSSL_KDF_PARAM_PKCS5, &zero),
        OSSL_PARAM_END,
    };
    CU_ASSERT(kdf("PBKDF2", MG, strict, out, 32) == 0 && memguard_error());
}

static void test_private_key_export_is_refused(void)
{
    unsigned char key[32], raw[64];
    RAND_bytes(key, sizeof key);
    EVP_PKEY *k = EVP_PKEY_new_raw_private_key_ex(NULL, "HMAC", MG, key, sizeof key);
    CU_ASSERT_FATAL(k != NULL);
    size_t n = sizeof raw;
    CU_ASSERT(EVP_PKEY_get_raw_private_key(k, raw, &n) == 0);
    unsigned long e = ERR_peek_last_error();
    CU_ASSERT(e != 0 && ERR_reason_error_string(e) != NULL &&
              strstr(ERR_reason_error_string(e), "export refused") != NULL);
    ERR_clear_error();
    n = 0;
    CU_ASSERT(EVP_PKEY_get_raw_private_key(k, NULL, &n) == 0); /* not even the length */
    ERR_clear_error();
    OSSL_PARAM *params = NULL;
    CU_ASSERT(EVP_PKEY_todata(k, EVP_PKEY_KEYPAIR, &params) == 0 && params == NULL);
    ERR_clear_error();
    /* Equality compares the sealed keys (in guarded memory), without exporting them. */
    EVP_PKEY *same = EVP_PKEY_new_raw_private_key_ex(NULL, "HMAC", MG, key, sizeof key);
    key[0] ^= 1;
    EVP_PKEY *other = EVP_PKEY_new_raw_private_key_ex(NULL, "HMAC", MG, key, sizeof key);
    CU_ASSERT(EVP_PKEY_eq(k, same) == 1);
    CU_ASSERT(EVP_PKEY_eq(k, other) != 1);
    ERR_clear_error();
    EVP_PKEY_free(k);
    EVP_PKEY_free(same);
    EVP_PKEY_free(other);
}

/* ---- routing: who answers a fetch that does not ask for memguard ---- */

static const char *prov_of(const OSSL_PROVIDER *p)
{
    return p != NULL ? OSSL_PROVIDER_get0_name(p) : "(none)";
}

/* Everything libssl and ordinary applications fetch without a property query: count non-default answers. */
static int unqualified_not_default(OSSL_LIB_CTX *ctx, bool verbose)
{
    int bad = 0;
    const char *who[9];
    EVP_MAC *m = EVP_MAC_fetch(ctx, "HMAC", NULL);
    EVP_KDF *h = EVP_KDF_fetch(ctx, "HKDF", NULL), *p = EVP_KDF_fetch(ctx, "PBKDF2", NULL),
            *t = EVP_KDF_fetch(ctx, "TLS13-KDF", NULL);
    EVP_SIGNATURE *s = EVP_SIGNATURE_fetch(ctx, "HMAC", NULL);
    EVP_KEYMGMT *km = EVP_KEYMGMT_fetch(ctx, "HMAC", NULL);
    unsigned char key[32] = {7}, out[64];
    EVP_PKEY *k = EVP_PKEY_new_raw_private_key_ex(ctx, "HMAC", NULL, key, sizeof key);
    /* libssl's TLS 1.3 finished MAC: an HMAC EVP_PKEY and EVP_DigestSign with its propq (NULL). */
    EVP_MD_CTX *mc = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pc = NULL;
    size_t ol = sizeof out;
    int signed_ok = k != NULL && EVP_DigestSignInit_ex(mc, &pc, "SHA256", ctx, NULL, k, NULL) == 1 &&
                    EVP_DigestSign(mc, out, &ol, key, 5) == 1;
    who[0] = prov_of(m != NULL ? EVP_MAC_get0_provider(m) : NULL);
    who[1] = prov_of(h != NULL ? EVP_KDF_get0_provider(h) : NULL);
    who[2] = prov_of(p != NULL ? EVP_KDF_get0_provider(p) : NULL);
    who[3] = prov_of(t != NULL ? EVP_KDF_get0_provider(t) : NULL);
    who[4] = prov_of(s != NULL ? EVP_SIGNATURE_get0_provider(s) : NULL);
    who[5] = prov_of(km != NULL ? EVP_KEYMGMT_get0_provider(km) : NULL);
    who[6] = prov_of(k != NULL ? EVP_PKEY_get0_provider(k) : NULL);
    who[7] = signed_ok && pc != NULL ? prov_of(EVP_PKEY_CTX_get0_provider(pc)) : "(failed)";
    who[8] = "default";
    if (ctx == NULL) { /* the legacy entry points use the default library context only */
        EVP_PKEY *l = EVP_PKEY_new_mac_key(EVP_PKEY_HMAC, NULL, key, sizeof key);
        who[8] = prov_of(l != NULL ? EVP_PKEY_get0_provider(l) : NULL);
        EVP_PKEY_free(l);
    }
    for (int i = 0; i < 9; i++)
        bad += strcmp(who[i], "default") != 0;
    if (verbose || bad)
        fprintf(stderr, "  unqualified: MAC %s, HKDF %s, PBKDF2 %s, TLS13-KDF %s, SIGNATURE %s, KEYMGMT %s, "
                        "raw HMAC key %s, DigestSign %s, EVP_PKEY_new_mac_key %s\n",
                who[0], who[1], who[2], who[3], who[4], who[5], who[6], who[7], who[8]);
    EVP_MD_CTX_free(mc);
    EVP_PKEY_free(k);
    EVP_KEYMGMT_free(km);
    EVP_SIGNATURE_free(s);
    EVP_KDF_free(t);
    EVP_KDF_free(p);
    EVP_KDF_free(h);
    EVP_MAC_free(m);
    ERR_clear_error();
    return bad;
}

static char cnf_dir[] = "/tmp/mgt-mac-XXXXXX";

/* A library context configured with the two providers in the given order and names. */
static OSSL_LIB_CTX *ctx_with(const char *first, const char *second, const char *mgname)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s-%s.cnf", cnf_dir, first, second);
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return NULL;
    fprintf(f,
            "openssl_conf = openssl_init\n[openssl_init]\nproviders = provider_sect\n[provider_sect]\n"
            "%s = %s_sect\n%s = %s_sect\n[default_sect]\nactivate = 1\n[%s_sect]\nmodule = %s\nactivate = 1\n",
            first, first, second, second, mgname, MGT_PROVIDER_MODULE);
    fclose(f);
    OSSL_LIB_CTX *ctx = OSSL_LIB_CTX_new();
    if (ctx != NULL && OSSL_LIB_CTX_load_config(ctx, path) != 1) {
        OSSL_LIB_CTX_free(ctx);
        ctx = NULL;
    }
    unlink(path);
    return ctx;
}

static bool memguard_in(OSSL_LIB_CTX *ctx, const char *name)
{
    EVP_MAC *m = EVP_MAC_fetch(ctx, "HMAC", MG);
    bool ok = m != NULL && strcmp(OSSL_PROVIDER_get0_name(EVP_MAC_get0_provider(m)), name) == 0;
    EVP_MAC_free(m);
    ERR_clear_error();
    return ok;
}

static void test_unqualified_fetches_get_the_default_provider(void)
{
    CU_ASSERT_FATAL(mkdtemp(cnf_dir) != NULL);
    /* 1. This process, configured by OPENSSL_CONF (the generated memguard-test.cnf). */
    fprintf(stderr, "\n  OPENSSL_CONF (default, memguard):\n");
    CU_ASSERT(unqualified_not_default(NULL, true) == 0);

    /* 2. Fresh contexts in the shipped order, after each way memguard's methods could be cached first. */
    for (int prime = 0; prime < 4; prime++) {
        OSSL_LIB_CTX *ctx = ctx_with("default", "memguard", "memguard");
        CU_ASSERT_FATAL(ctx != NULL && memguard_in(ctx, "memguard"));
        unsigned char key[32] = {3}, out[64];
        size_t ol = sizeof out;
        if (prime == 1) { /* a memguard-qualified fetch of everything first */
            EVP_MAC_free(EVP_MAC_fetch(ctx, "HMAC", MG));
            EVP_KDF_free(EVP_KDF_fetch(ctx, "HKDF", MG));
            EVP_SIGNATURE_free(EVP_SIGNATURE_fetch(ctx, "HMAC", MG));
            EVP_KEYMGMT_free(EVP_KEYMGMT_fetch(ctx, "HMAC", MG));
        } else if (prime == 2) { /* a memguard key signing with a NULL propq: OpenSSL's fetch-from-provider path */
            EVP_PKEY *k = EVP_PKEY_new_raw_private_key_ex(ctx, "HMAC", MG, key, sizeof key);
            EVP_MD_CTX *mc = EVP_MD_CTX_new();
            CU_ASSERT(k != NULL && EVP_DigestSignInit_ex(mc, NULL, "SHA256", ctx, NULL, k, NULL) == 1 &&
                      EVP_DigestSign(mc, out, &ol, key, 3) == 1);
            EVP_MD_CTX_free(mc);
            EVP_PKEY_free(k);
        } else if (prime == 3) { /* a server loading its PEM key through memguard's decoders first */
            EVP_PKEY *ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
            BIO *b = BIO_new(BIO_s_mem());
            CU_ASSERT_FATAL(ec != NULL && b != NULL && PEM_write_bio_PrivateKey(b, ec, NULL, NULL, 0, NULL, NULL) == 1);
            EVP_PKEY *loaded = PEM_read_bio_PrivateKey_ex(b, NULL, NULL, NULL, ctx, NULL);
            CU_ASSERT(loaded != NULL && strcmp(prov_of(EVP_PKEY_get0_provider(loaded)), "memguard") == 0);
            EVP_PKEY_free(loaded);
            EVP_PKEY_free(ec);
            BIO_free(b);
        }
        fprintf(stderr, "  fresh context, default then memguard, priming %d:\n", prime);
        CU_ASSERT(unqualified_not_default(ctx, true) == 0);
        OSSL_LIB_CTX_free(ctx);
    }

    /* 3. The provider's name does not matter ("aaa" sorts before "default")... */
    OSSL_LIB_CTX *ctx = ctx_with("default", "aaa", "aaa");
    CU_ASSERT_FATAL(ctx != NULL && memguard_in(ctx, "aaa"));
    fprintf(stderr, "  default then memguard named aaa:\n");
    CU_ASSERT(unqualified_not_default(ctx, true) == 0);
    OSSL_LIB_CTX_free(ctx);
    /* ...the order does: memguard activated first would answer the unqualified fetches, so it withholds
       its symmetric algorithms and says so once on stderr. */
    char errpath[300];
    snprintf(errpath, sizeof errpath, "%s/stderr", cnf_dir);
    int saved = dup(2), fd = open(errpath, O_RDWR | O_CREAT | O_TRUNC, 0600);
    CU_ASSERT_FATAL(saved >= 0 && fd >= 0 && dup2(fd, 2) == 2);
    ctx = ctx_with("memguard", "default", "memguard");
    CU_ASSERT_FATAL(ctx != NULL);
    int wrong = unqualified_not_default(ctx, false);
    bool qualified = memguard_in(ctx, "memguard");
    EVP_CIPHER *ci = EVP_CIPHER_fetch(ctx, "AES-256-GCM", NULL), *cq = EVP_CIPHER_fetch(ctx, "AES-256-GCM", MG);
    /* The negative control: an unguarded (asymmetric) operation shows the order really is wrong. */
    EVP_KEYEXCH *kx = EVP_KEYEXCH_fetch(ctx, "X25519", NULL);
    /* The asymmetric side is untouched: its algorithms stay offered, and loading a key works (in this order
       OpenSSL tries the default provider's decoders first, so the key is not captured: docs/provider.md). */
    EVP_KEYMGMT *ecm = EVP_KEYMGMT_fetch(ctx, "EC", MG);
    EVP_PKEY *ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    BIO *b = BIO_new(BIO_s_mem());
    CU_ASSERT_FATAL(ec != NULL && b != NULL && PEM_write_bio_PrivateKey(b, ec, NULL, NULL, 0, NULL, NULL) == 1);
    EVP_PKEY *loaded = PEM_read_bio_PrivateKey_ex(b, NULL, NULL, NULL, ctx, NULL);
    unqualified_not_default(ctx, false); /* a second round: the warning must not repeat */
    fflush(stderr);
    CU_ASSERT_FATAL(dup2(saved, 2) == 2);
    close(saved);
    char text[2048] = "";
    ssize_t got = pread(fd, text, sizeof text - 1, 0);
    close(fd);
    unlink(errpath);
    const char *warn = "memguard: listed before the default provider in openssl.cnf; symmetric algorithms disabled";
    const char *at = got > 0 ? strstr(text, warn) : NULL;
    fprintf(stderr, "  memguard BEFORE default (the wrong order): %s", got > 0 ? text : "(no warning)\n");
    unqualified_not_default(ctx, true);
    CU_ASSERT(wrong == 0);                            /* every unqualified symmetric fetch: default */
    CU_ASSERT(!qualified);                            /* withheld, not just deprioritised */
    CU_ASSERT(ci != NULL && strcmp(prov_of(EVP_CIPHER_get0_provider(ci)), "default") == 0 && cq == NULL);
    CU_ASSERT(at != NULL && strstr(at + 1, warn) == NULL); /* said once */
    CU_ASSERT(kx != NULL && strcmp(prov_of(EVP_KEYEXCH_get0_provider(kx)), "memguard") == 0);
    CU_ASSERT(ecm != NULL && loaded != NULL);
    EVP_KEYMGMT_free(ecm);
    EVP_PKEY_free(loaded);
    EVP_PKEY_free(ec);
    BIO_free(b);
    EVP_KEYEXCH_free(kx);
    EVP_CIPHER_free(ci);
    EVP_CIPHER_free(cq);
    OSSL_LIB_CTX_free(ctx);
    ERR_clear_error();

    /* 4. Programs that load the providers themselves: the order of OSSL_PROVIDER_load decides the same way. */
    for (int memguard_first = 0; memguard_first < 2; memguard_first++) {
        OSSL_LIB_CTX *pc = OSSL_LIB_CTX_new();
        CU_ASSERT_FATAL(pc != NULL);
        OSSL_PROVIDER *p1 = OSSL_PROVIDER_load(pc, memguard_first ? MGT_PROVIDER_MODULE : "default");
        OSSL_PROVIDER *p2 = OSSL_PROVIDER_load(pc, memguard_first ? "default" : MGT_PROVIDER_MODULE);
        CU_ASSERT_FATAL(p1 != NULL && p2 != NULL);
        saved = dup(2);
        int null = open("/dev/null", O_WRONLY);
        CU_ASSERT_FATAL(saved >= 0 && null >= 0 && dup2(null, 2) == 2); /* the expected warning */
        EVP_MAC *m = EVP_MAC_fetch(pc, "HMAC", MG);
        int bad = unqualified_not_default(pc, false);
        fflush(stderr);
        CU_ASSERT_FATAL(dup2(saved, 2) == 2);
        close(saved);
        close(null);
        fprintf(stderr, "  OSSL_PROVIDER_load order %s: memguard's HMAC %s, unqualified fetches not on default: %d\n",
                memguard_first ? "memguard, default" : "default, memguard", m != NULL ? "offered" : "withheld", bad);
        CU_ASSERT(bad == 0);
        CU_ASSERT((m != NULL) == !memguard_first);
        EVP_MAC_free(m);
        OSSL_PROVIDER_unload(p2);
        OSSL_PROVIDER_unload(p1);
        OSSL_LIB_CTX_free(pc);
        ERR_clear_error();
    }
    rmdir(cnf_dir);
}

/* The memory scans read every mapping, ASan's shadow included: they run in the other builds. */
#ifndef MG_SANITIZED
/* ---- residue ---- */

#define WINDOW 24

static memscan_needle needles[32];
static size_t n_needles;

/* A window of v (from off) as a needle; the plain bytes stay in the caller's guarded buffer. */
static void add_needle(const char *name, const unsigned char *v, size_t off)
{
    CU_ASSERT_FATAL(n_needles < sizeof needles / sizeof needles[0] &&
                    memscan_needle_init(&needles[n_needles++], name, v + off, WINDOW, false));
}

/* 32-bit words of a SHA-256 chaining value as big-endian bytes (the digest's own byte order). */
static void words_be(const SHA256_CTX *c, unsigned char *out)
{
    for (int i = 0; i < 8; i++)
        for (int j = 0; j < 4; j++)
            out[4 * i + j] = (unsigned char)(c->h[i] >> (24 - 8 * j));
}

/*
 * Needles for an HMAC-SHA256 key of 40 bytes: the key, K^ipad, K^opad, and the SHA-256 states after
 * absorbing each (as the struct holds them, and big-endian). Computed in guarded memory.
 */
static void hmac_needles(const char *who, const unsigned char *key)
{
    mg_buffer *b = mg_buffer_new(64 + 2 * sizeof(SHA256_CTX) + 64);
    CU_ASSERT_FATAL(b != NULL);
    unsigned char *blk = mg_buffer_data(b), *be = blk + 64 + 2 * sizeof(SHA256_CTX);
    SHA256_CTX *ci = (SHA256_CTX *)(void *)(blk + 64), *co = ci + 1;
    char name[48];
    snprintf(name, sizeof name, "%s key", who);
    add_needle(name, key, 8);
    for (int pad = 0; pad < 2; pad++) {
        SHA256_CTX *c = pad == 0 ? ci : co;
        for (int i = 0; i < 64; i++)
            blk[i] = (unsigned char)((i < 40 ? key[i] : 0) ^ (pad == 0 ? 0x36 : 0x5c));
        snprintf(name, sizeof name, "%s K^%s", who, pad == 0 ? "ipad" : "opad");
        add_needle(name, blk, 8);
        SHA256_Init(c);
        SHA256_Update(c, blk, 64);
        snprintf(name, sizeof name, "%s SHA-256 state after K^%s", who, pad == 0 ? "ipad" : "opad");
        add_needle(name, (const unsigned char *)c->h, 4);
        words_be(c, be);
        snprintf(name, sizeof name, "%s SHA-256 state after K^%s (BE)", who, pad == 0 ? "ipad" : "opad");
        add_needle(name, be, 4);
    }
    mg_buffer_destroy(b);
}

static size_t sum(size_t first, size_t last, bool guarded)
{
    return memscan_total(needles, first, last, guarded);
}

static void report(const char *when, size_t first, size_t last)
{
    fprintf(stderr, "  %s:\n", when);
    for (size_t k = first; k < last; k++)
        fprintf(stderr, "    %-55s guarded %zu, elsewhere %zu\n", needles[k].name, needles[k].guarded,
                needles[k].elsewhere);
}

static void test_no_key_or_padded_state_outside_guarded_memory(void)
{
    n_needles = 0;
    /* Keys live in guarded buffers in this test too, so that the test itself leaves no copy behind. */
    mg_buffer *k1 = mg_buffer_random(40), *k2 = mg_buffer_random(40), *k3 = mg_buffer_random(40),
              *ikm = mg_buffer_random(40), *pass = mg_buffer_random(40);
    CU_ASSERT_FATAL(k1 != NULL && k2 != NULL && k3 != NULL && ikm != NULL && pass != NULL);
    hmac_needles("EVP_MAC", mg_buffer_data(k1));
    hmac_needles("EVP_PKEY", mg_buffer_data(k2));
    size_t ours = n_needles;
    add_needle("HKDF key", mg_buffer_data(ikm), 8);
    add_needle("PBKDF2 password", mg_buffer_data(pass), 8);
    size_t kdfs = n_needles;
    hmac_needles("default provider (control)", mg_buffer_data(k3));

    static unsigned char msg[5000];
    RAND_bytes(msg, sizeof msg);
    unsigned char out[64];
    size_t ol;
    /* Use everything, and leave an EVP_MAC and a DigestSign context mid-message. */
    EVP_MAC_CTX *c = mac_ctx(MG, "SHA256", mg_buffer_data(k1), 40);
    CU_ASSERT_FATAL(c != NULL);
    for (int i = 0; i < 20; i++)
        CU_ASSERT(EVP_MAC_init(c, NULL, 0, NULL) == 1 && EVP_MAC_update(c, msg, sizeof msg) == 1 &&
                  EVP_MAC_final(c, out, &ol, sizeof out) == 1);
    CU_ASSERT(EVP_MAC_init(c, NULL, 0, NULL) == 1 && EVP_MAC_update(c, msg, 100) == 1);
    EVP_PKEY *pk = EVP_PKEY_new_raw_private_key_ex(NULL, "HMAC", MG, mg_buffer_data(k2), 40);
    CU_ASSERT_FATAL(pk != NULL);
    EVP_MD_CTX *s = EVP_MD_CTX_new();
    for (int i = 0; i < 20; i++) {
        ol = sizeof out;
        CU_ASSERT(EVP_DigestSignInit_ex(s, NULL, "SHA256", NULL, MG, pk, NULL) == 1 &&
                  EVP_DigestSign(s, out, &ol, msg, sizeof msg) == 1);
    }
    CU_ASSERT(EVP_DigestSignInit_ex(s, NULL, "SHA256", NULL, MG, pk, NULL) == 1 &&
              EVP_DigestSignUpdate(s, msg, 100) == 1);
    unsigned char okm[64];
    for (int i = 0; i < 5; i++) {
        CU_ASSERT(hkdf(MG, "SHA256", 0, mg_buffer_data(ikm), 40, msg, 16, msg, 16, okm, sizeof okm));
        CU_ASSERT(pbkdf2(MG, "SHA256", mg_buffer_data(pass), 40, msg, 16, 100, okm, sizeof okm));
    }
    /* The positive control: the default provider's HMAC, live, keeps its padded states in the heap. */
    EVP_MAC_CTX *ctl = mac_ctx(DF, "SHA256", mg_buffer_data(k3), 40);
    CU_ASSERT_FATAL(ctl != NULL && EVP_MAC_update(ctl, msg, 100) == 1);
    mg_buffer_destroy(k1);
    mg_buffer_destroy(k2);
    mg_buffer_destroy(k3);
    mg_buffer_destroy(ikm);
    mg_buffer_destroy(pass);

    CU_ASSERT_FATAL(memscan_run(needles, n_needles));
    report("contexts live", 0, n_needles);
    CU_ASSERT(sum(0, kdfs, false) == 0);              /* nothing of ours outside guarded memory */
    /* Needles per key: 0 key, 1 K^ipad, 2-3 state after it, 4 K^opad, 5-6 state after it. */
    CU_ASSERT(needles[2].guarded > 0 && needles[5].guarded > 0); /* the live EVP_MAC's states, in its slot */
    CU_ASSERT(needles[9].guarded > 0 && needles[12].guarded > 0); /* and the DigestSign context's */
    CU_ASSERT(sum(kdfs, n_needles, false) > 0);       /* the control: the scan does see heap states */

    EVP_MAC_CTX_free(c);
    EVP_MD_CTX_free(s);
    EVP_PKEY_free(pk);
    EVP_MAC_CTX_free(ctl);
    CU_ASSERT_FATAL(memscan_run(needles, n_needles));
    report("contexts and keys freed", 0, ours + 2);
    CU_ASSERT(sum(0, kdfs, false) + sum(0, kdfs, true) == 0); /* nowhere at all */
}

#endif

static CU_TestInfo kat_tests[] = {
    {"HMAC RFC 4231 and NIST vectors through EVP_MAC and EVP_PKEY", test_hmac_known_answers_through_memguard},
    {"HMAC-SHA3 NIST examples (key below, at and above the rate)", test_hmac_sha3_nist_examples},
    {"HKDF RFC 5869 vectors, all three modes", test_hkdf_rfc5869_known_answers},
    {"PBKDF2 RFC 6070 and RFC 7914 vectors", test_pbkdf2_rfc6070_rfc7914_known_answers},
    CU_TEST_INFO_NULL,
};

static CU_TestInfo equivalence_tests[] = {
    {"HMAC equals the default provider: random keys, 0..1 MiB, random splits",
     test_hmac_matches_default_for_random_keys_and_splits},
    {"HKDF and PBKDF2 equal the default provider for random inputs", test_kdfs_match_default_for_random_inputs},
    CU_TEST_INFO_NULL,
};

static CU_TestInfo context_tests[] = {
    {"dupctx mid-stream continues independently; re-init restarts", test_dupctx_mid_stream_continues_independently},
    {"threads with their own contexts and one shared key", test_threads_with_own_contexts_and_one_shared_key},
    CU_TEST_INFO_NULL,
};

static CU_TestInfo error_tests[] = {
    {"bad input gives clean memguard errors", test_bad_input_gives_clean_errors},
    {"raw private key export is refused", test_private_key_export_is_refused},
    CU_TEST_INFO_NULL,
};

static CU_TestInfo routing_tests[] = {
    {"fetches without provider=memguard get default, in either provider order", test_unqualified_fetches_get_the_default_provider},
    CU_TEST_INFO_NULL,
};

#ifndef MG_SANITIZED
static CU_TestInfo residue_tests[] = {
    {"no key or padded HMAC state outside guarded memory", test_no_key_or_padded_state_outside_guarded_memory},
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
        {"errors", NULL, NULL, NULL, NULL, error_tests},
        {"routing", NULL, NULL, NULL, NULL, routing_tests},
#ifndef MG_SANITIZED
        {"residue", NULL, NULL, NULL, NULL, residue_tests},
#endif
        CU_SUITE_INFO_NULL,
    };
    return mgt_main(suites);
}
