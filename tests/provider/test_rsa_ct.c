/*
 * RSA private-key operations in constant time (issue 11, point 1), as outcomes: whatever a
 * ciphertext is, memguard's decryption gives what OpenSSL's default provider gives where both
 * have the same semantics, and implicit rejection gives exactly OpenSSL >= 3.2's synthetic
 * messages. Timing itself is measured by bench/bench_rsa_timing.c, not here.
 *
 *  - OAEP, PKCS#1 v1.5 with implicit rejection off, and the TLS premaster padding against the
 *    default provider, for valid ciphertexts and for every class of bad padding;
 *  - PKCS#1 v1.5 with implicit rejection (the default) against a reference written here from
 *    public primitives (raw RSA and HMAC-SHA256 of the default provider, in a plain library
 *    context), against the default provider itself when it has implicit rejection (>= 3.2), and
 *    against fixed vectors made with OpenSSL 3.5.7 (see fixed_key_pem);
 *  - the blinding pair is reused and squared after a failed decryption exactly as after a good one
 *    (the provider's blinding counters), replaced in a forked child, and 4 threads x 200 mixed
 *    decryptions are all correct.
 */
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <CUnit/CUnit.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/provider.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>

#include <memguard/memguard.h>

#include "../core/harness.h"
#include "check.h"

#define IMPLICIT_REJECTION "implicit-rejection" /* OpenSSL >= 3.2's name; 3.0's headers lack it */
#define MADE "memguard-rsa-blindings-made"
#define SQUARED "memguard-rsa-blindings-squared"

/*
 * Made with OpenSSL 3.5.7 (build/openssl35): `openssl genpkey -algorithm RSA -pkeyopt
 * rsa_keygen_bits:1024`; ciphertext 0 = `pkeyutl -encrypt -pkeyopt rsa_padding_mode:pkcs1` of
 * "a fixed vector"; 1 = 00 and 127 random bytes; 2 = `pkeyutl -encrypt -pkeyopt
 * rsa_padding_mode:none` of 00 02, 7 nonzero bytes, 00, 118 random bytes (padding too short).
 * Plaintexts: `pkeyutl -decrypt -pkeyopt rsa_padding_mode:pkcs1` (implicit rejection on):
 * 1 and 2 are its synthetic messages.
 */
static const char fixed_key_pem[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIICdgIBADANBgkqhkiG9w0BAQEFAASCAmAwggJcAgEAAoGBAJ+DgYrEED1I6mTd\n"
    "ZKZwac9QwLoM/W+kf7cUFLhHjvQYwn9jPD6XblEMHO3ghQFFphyFxXYMpV3vlS/H\n"
    "Riikn4mY7oc7KhrwtrX2hJSqCcfVbMluJa5htDKtjmeVyFEjgER7fmXIkD0YIcuu\n"
    "g1kGe2320xPaiIksuy7OCOiBO1t9AgMBAAECgYEAgM339M2NL2+JlhkQBTYQus9C\n"
    "UPncTCJQ3szgTk26KXE03RiMtR4ifl+BnLQHspdDIxUB9ekQP2IO3Z3UEU2dZH/0\n"
    "5l5BXfGPlVHjUCFQ3aZl75kY9+7E2yT3pMA9UbNBAp4BG+GgdVXl5gdwNXRXDdCb\n"
    "mdEawTmWSJCqMkdvIQECQQDSQxN2GbyELC6VGmWoaFWJLk3djwhywnUqV/J5S+eU\n"
    "H/9lOt2/sYxHcUaHk64bs3qwXXeEq3dAypVD+i9q/+J5AkEAwjZkn3Lq0Cqsrh1u\n"
    "kWVjolWE0ZoClQ9WIuAIP7tKU5JRtTmddg9hVWA8y85wfzZP4sL1yXAoOwGUIFrK\n"
    "9VSgJQJAOGewF9WNofNsR6l+LfBXSea3EsGlJYwO/F39eRaouC7hR5nEFQGfPSch\n"
    "IYu3gEzkk91vC5Mn+aSe6E58W/rrGQJAZd0trcwSiRi49aIOSkiJl62POniy/gfL\n"
    "QAONkA/mDitim9EaW7/5Z1RQzvz6WF7eS6vCSuN+1mQfk1DLvx2h2QJAPK3g/nPJ\n"
    "99mcq/+DmUBqfnOzylqXarcDB3UXdMb26APTvvOSBmKzdmjRurAZqfk4MiSeWEXS\n"
    "j2zdpHY3mD7voQ==\n"
    "-----END PRIVATE KEY-----\n";
static const struct {
    const char *ct, *pt;
} fixed[] = {
    {
        "6b8273524ecad93cb34b8f9346373c1e8ed562b878126a04aba3a7169e41747f22e4cca9e4c142a451e51eabb6148939"
        "c8412a84c11a5e732b025795aa054aa7091da6d6bc7134b295426100a43e25d2d620bcd1298df5597771dda21e36d376"
        "f93d69f625b3ec7791ad202bac97756e4b34f4e38947ad834d3b094231afba8c",
        "6120666978656420766563746f72",
    },
    {
        "00ea973ace65e3eff047b76309dea79163025f4e2c13f5d8ddde05f0b7559cde02646b83ffd52ef96461e8c83037b77d"
        "58ce2757e207254982b70069f4ae7aabd8f2b945eb3cb7a08d6ce8b1266863167feb515448ae150a84be16588f107b5e"
        "09aa56ee20df416c6d4cf76f039023c2cefe4a5ba48743b2645a5fd1aa5a0337",
        "de8ef4241cc6f5e7aaa3e73d24c9d731200a54ab1e2f77ae6efd043b34e8884f",
    },
    {
        "865a669a00c3bb74fd6b7f3992ea421624dc493ec094c9b934c14292815bb58a7ee5ad60ea3fa711983793d019fd6f4f"
        "6ce28372745f8759540f64098cfde6d034c905b8118624098a77618f921ad871d7b1f60b2f3620b488c0a1bf1d2003cd"
        "5e8fdf3497c32598e5d1b6989788cdfe0f7731d17a1d008eb38e8c62aa071fb2",
        "cffe6caba5b38563190d5b66035eccf465099a85267f7bd535247715290d3a1ce1d1d798e7afae49c51f1983caf10673"
        "e47310dce0015f72dc4838a4a2a10259294b8e10a13314a8",
    },
};

static OSSL_LIB_CTX *plain;
static OSSL_PROVIDER *plain_deflt;
static bool default_has_ir; /* the default provider does implicit rejection (OpenSSL >= 3.2) */

enum { K1024, K2048, K3072, KFIXED, NKEYS };
static EVP_PKEY *full[NKEYS];   /* plain keys, in the plain context */
static EVP_PKEY *sealed[NKEYS]; /* the same keys loaded through memguard */

static bool is_memguard(const EVP_PKEY *k)
{
    const OSSL_PROVIDER *p = EVP_PKEY_get0_provider(k);
    return p != NULL && strcmp(OSSL_PROVIDER_get0_name(p), "memguard") == 0;
}

static EVP_PKEY *through_memguard(EVP_PKEY *k)
{
    BIO *mem = BIO_new(BIO_s_secmem());
    EVP_PKEY *out = NULL;
    if (mem != NULL && PEM_write_bio_PrivateKey(mem, k, NULL, NULL, 0, NULL, NULL) == 1)
        out = PEM_read_bio_PrivateKey(mem, NULL, NULL, NULL);
    BIO_free(mem);
    return out;
}

static EVP_PKEY *new_key(unsigned bits)
{
    EVP_PKEY *k = NULL;
    EVP_PKEY_CTX *g = EVP_PKEY_CTX_new_from_name(plain, "RSA", NULL);
    if (g == NULL || EVP_PKEY_keygen_init(g) != 1 || EVP_PKEY_CTX_set_rsa_keygen_bits(g, (int)bits) <= 0 ||
        EVP_PKEY_keygen(g, &k) != 1)
        k = NULL;
    EVP_PKEY_CTX_free(g);
    return k;
}

static int init_suite(void)
{
    plain = OSSL_LIB_CTX_new();
    if (plain == NULL || (plain_deflt = OSSL_PROVIDER_load(plain, "default")) == NULL)
        return 1;
    default_has_ir = OPENSSL_version_major() > 3 || (OPENSSL_version_major() == 3 && OPENSSL_version_minor() >= 2);
    const unsigned bits[] = {1024, 2048, 3072};
    for (int i = 0; i < KFIXED; i++)
        if ((full[i] = new_key(bits[i])) == NULL)
            return 1;
    BIO *b = BIO_new_mem_buf(fixed_key_pem, -1);
    full[KFIXED] = b != NULL ? PEM_read_bio_PrivateKey_ex(b, NULL, NULL, NULL, plain, NULL) : NULL;
    BIO_free(b);
    for (int i = 0; i < NKEYS; i++)
        if (full[i] == NULL || (sealed[i] = through_memguard(full[i])) == NULL || !is_memguard(sealed[i]))
            return 1;
    return 0;
}

static int clean_suite(void)
{
    for (int i = 0; i < NKEYS; i++) {
        EVP_PKEY_free(full[i]);
        EVP_PKEY_free(sealed[i]);
    }
    OSSL_PROVIDER_unload(plain_deflt);
    OSSL_LIB_CTX_free(plain);
    return 0;
}

/* ---- decryption through EVP, in memguard (libctx NULL, sealed key) or plain OpenSSL ---- */

enum pad { OAEP, PKCS1_IR, PKCS1_NO_IR, TLS };

struct dec_opts {
    enum pad pad;
    unsigned client_version, alt_version; /* TLS; 0: not set */
};

struct result {
    bool ok;
    size_t len;
    unsigned char out[512];
};

static struct result decrypt_with(EVP_PKEY *k, const struct dec_opts *o, const unsigned char *ct, size_t ctlen)
{
    struct result r = {false, 0, {0}};
    OSSL_LIB_CTX *libctx = is_memguard(k) ? NULL : plain;
    EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new_from_pkey(libctx, k, NULL);
    int pad = o->pad == OAEP ? RSA_PKCS1_OAEP_PADDING : o->pad == TLS ? RSA_PKCS1_WITH_TLS_PADDING : RSA_PKCS1_PADDING;
    OSSL_PARAM params[4], *p = params;
    unsigned zero = 0, cv = o->client_version, av = o->alt_version;
    if (o->pad == PKCS1_NO_IR)
        *p++ = OSSL_PARAM_construct_uint(IMPLICIT_REJECTION, &zero);
    if (cv != 0)
        *p++ = OSSL_PARAM_construct_uint(OSSL_ASYM_CIPHER_PARAM_TLS_CLIENT_VERSION, &cv);
    if (av != 0)
        *p++ = OSSL_PARAM_construct_uint(OSSL_ASYM_CIPHER_PARAM_TLS_NEGOTIATED_VERSION, &av);
    *p = OSSL_PARAM_construct_end();
    r.len = sizeof r.out;
    r.ok = pc != NULL && EVP_PKEY_decrypt_init(pc) == 1 && EVP_PKEY_CTX_set_rsa_padding(pc, pad) > 0 &&
           EVP_PKEY_CTX_set_params(pc, params) == 1 && EVP_PKEY_decrypt(pc, r.out, &r.len, ct, ctlen) == 1;
    if (!r.ok)
        r.len = 0;
    EVP_PKEY_CTX_free(pc);
    return r;
}

static bool same(const struct result *a, const struct result *b)
{
    return a->ok == b->ok && a->len == b->len && memcmp(a->out, b->out, a->len) == 0;
}

/* Raw RSA with the plain key: em = ct^d, ct = em^e (no padding). */
static bool raw(EVP_PKEY *k, bool enc, const unsigned char *in, size_t n, unsigned char *out)
{
    EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new_from_pkey(plain, k, NULL);
    size_t len = n;
    bool ok = pc != NULL && (enc ? EVP_PKEY_encrypt_init(pc) : EVP_PKEY_decrypt_init(pc)) == 1 &&
              EVP_PKEY_CTX_set_rsa_padding(pc, RSA_NO_PADDING) > 0 &&
              (enc ? EVP_PKEY_encrypt(pc, out, &len, in, n) : EVP_PKEY_decrypt(pc, out, &len, in, n)) == 1 &&
              len == n;
    EVP_PKEY_CTX_free(pc);
    return ok;
}

static size_t key_bytes(EVP_PKEY *k) { return (size_t)EVP_PKEY_get_size(k); }

static void random_nonzero(unsigned char *b, size_t n)
{
    CU_ASSERT_FATAL(RAND_bytes(b, (int)n) == 1);
    for (size_t i = 0; i < n; i++)
        b[i] = b[i] != 0 ? b[i] : 0x5a;
}

/* Encoded messages of every shape a padding check must tell apart. */
enum shape {
    VALID,        /* 00 02 PS 00 M, M of a random length */
    VALID_PS8,    /* the shortest padding allowed: the longest message */
    VALID_EMPTY,  /* the separator is the last byte: an empty message */
    BAD_BYTE0,    /* 01 02 ... */
    BAD_BYTE1,    /* 00 01 ... */
    BAD_NO_ZERO,  /* no separator */
    BAD_PS7,      /* separator after 7 padding bytes */
    BAD_RANDOM,   /* whatever a random ciphertext decrypts to */
    NSHAPES
};
static const char *const shape_names[NSHAPES] = {"valid", "valid, 8 padding bytes", "valid, empty message",
                                                 "first byte 01", "second byte 01", "no separator",
                                                 "7 padding bytes", "random"};

/* A ciphertext under k whose padded plaintext has the given shape (PKCS#1 v1.5 type 2). */
static void pkcs1_ciphertext(EVP_PKEY *k, enum shape s, unsigned char *ct, unsigned char *em)
{
    size_t n = key_bytes(k);
    unsigned char r[2];
    CU_ASSERT_FATAL(RAND_bytes(r, 2) == 1);
    if (s == BAD_RANDOM) {
        CU_ASSERT_FATAL(RAND_bytes(ct, (int)n) == 1);
        ct[0] = 0; /* below n */
        CU_ASSERT_FATAL(raw(k, false, ct, n, em));
        return;
    }
    size_t mlen = s == VALID_PS8 ? n - 11 : s == VALID_EMPTY ? 0 : (size_t)r[0] % (n - 11);
    size_t sep = n - mlen - 1;
    em[0] = 0;
    em[1] = 2;
    random_nonzero(em + 2, n - 2);
    em[sep] = 0;
    CU_ASSERT_FATAL(RAND_bytes(em + sep + 1, (int)(n - sep - 1)) == 1 || mlen == 0);
    switch (s) {
    case BAD_BYTE0: em[0] = 1; break;
    case BAD_BYTE1: em[1] = 1; break;
    case BAD_NO_ZERO: random_nonzero(em + 2, n - 2); break;
    case BAD_PS7: random_nonzero(em + 2, n - 2); em[9] = 0; break;
    default: break;
    }
    CU_ASSERT_FATAL(raw(k, true, em, n, ct));
}

/* ---- the reference implicit rejection, from public primitives of the default provider ---- */

static bool hmac_sha256(const unsigned char *key, size_t klen, const unsigned char *const *parts, const size_t *lens,
                        size_t nparts, unsigned char out[32])
{
    EVP_MAC *mac = EVP_MAC_fetch(plain, "HMAC", NULL);
    EVP_MAC_CTX *m = mac != NULL ? EVP_MAC_CTX_new(mac) : NULL;
    OSSL_PARAM p[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0), OSSL_PARAM_END};
    size_t olen = 0;
    bool ok = m != NULL && EVP_MAC_init(m, key, klen, p) == 1;
    for (size_t i = 0; ok && i < nparts; i++)
        ok = EVP_MAC_update(m, parts[i], lens[i]) == 1;
    ok = ok && EVP_MAC_final(m, out, &olen, 32) == 1 && olen == 32;
    EVP_MAC_CTX_free(m);
    EVP_MAC_free(mac);
    return ok;
}

/* The PRF of the implicit-rejection draft: blocks HMAC(kdk, BE16(i) || label || BE16(bits)). */
static bool prf(const unsigned char kdk[32], const char *label, unsigned char *out, size_t len)
{
    for (size_t i = 0; i * 32 < len; i++) {
        unsigned char ib[2] = {(unsigned char)(i >> 8), (unsigned char)i};
        unsigned char bits[2] = {(unsigned char)((len * 8) >> 8), (unsigned char)(len * 8)};
        const unsigned char *parts[] = {ib, (const unsigned char *)label, bits};
        size_t lens[] = {2, strlen(label), 2};
        unsigned char block[32];
        if (!hmac_sha256(kdk, 32, parts, lens, 3, block))
            return false;
        memcpy(out + i * 32, block, len - i * 32 < 32 ? len - i * 32 : 32);
    }
    return true;
}

/* What PKCS#1 v1.5 decryption with implicit rejection must return for ct (em = its raw decryption). */
static struct result reference_ir(EVP_PKEY *k, const unsigned char *ct, const unsigned char *em)
{
    struct result r = {true, 0, {0}};
    size_t n = key_bytes(k), sep = 0;
    for (size_t i = 2; i < n && sep == 0; i++)
        if (em[i] == 0)
            sep = i;
    if (em[0] == 0 && em[1] == 2 && sep >= 10) {
        r.len = n - sep - 1;
        memcpy(r.out, em + sep + 1, r.len);
        return r;
    }
    BIGNUM *d = NULL;
    unsigned char dbytes[512], dhash[32], kdk[32], msg[512], lens[256];
    unsigned int hl = 0;
    const unsigned char *parts[] = {ct};
    size_t plen[] = {n};
    r.ok = EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_RSA_D, &d) == 1 && BN_bn2binpad(d, dbytes, (int)n) == (int)n &&
           EVP_Digest(dbytes, n, dhash, &hl, EVP_sha256(), NULL) == 1 && hmac_sha256(dhash, 32, parts, plen, 1, kdk) &&
           prf(kdk, "message", msg, n) && prf(kdk, "length", lens, sizeof lens);
    BN_clear_free(d);
    OPENSSL_cleanse(dbytes, sizeof dbytes);
    size_t max = n - 10, mask = 1;
    while (mask < max) /* the smallest 2^j - 1 not below max */
        mask = mask << 1 | 1;
    size_t len = 0;
    for (size_t i = 0; i < 128; i++) {
        size_t c = ((size_t)lens[2 * i] << 8 | lens[2 * i + 1]) & mask;
        if (c < max)
            len = c;
    }
    r.len = len;
    memcpy(r.out, msg + n - len, len);
    return r;
}

/* ---- PKCS#1 v1.5 ---- */

static void test_pkcs1_implicit_rejection_matches_reference_and_default(void)
{
    const struct dec_opts ir = {PKCS1_IR, 0, 0};
    for (int ki = K1024; ki <= K3072; ki++) {
        int bad = 0, vs_default = 0, synthetic = 0;
        for (int round = 0; round < 6; round++)
            for (int s = 0; s < NSHAPES; s++) {
                unsigned char ct[512], em[512];
                pkcs1_ciphertext(full[ki], (enum shape)s, ct, em);
                size_t n = key_bytes(full[ki]);
                struct result m = decrypt_with(sealed[ki], &ir, ct, n), ref = reference_ir(full[ki], ct, em);
                if (!CHECK(m.ok && same(&m, &ref), "%zu-bit key, %s: memguard (ok %d, %zu bytes) differs from the "
                           "reference (%zu bytes)", n * 8, shape_names[s], m.ok, m.len, ref.len))
                    bad++;
                synthetic += s > VALID_EMPTY;
                if (default_has_ir) {
                    struct result d = decrypt_with(full[ki], &ir, ct, n);
                    vs_default += !same(&m, &d);
                }
                /* Never an error on the queue: implicit rejection does not say that it happened. */
                CHECK(ERR_peek_error() == 0, "%s: implicit rejection left an error", shape_names[s]);
                ERR_clear_error();
            }
        CHECK(bad == 0 && vs_default == 0 && synthetic > 0, "key %d: %d differ from the reference, %d from the "
              "default provider", ki, bad, vs_default);
    }
}

static void test_pkcs1_fixed_vectors_from_openssl_35(void)
{
    const struct dec_opts ir = {PKCS1_IR, 0, 0}, no_ir = {PKCS1_NO_IR, 0, 0};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
        unsigned char ct[128], pt[128];
        size_t n = unhex(fixed[i].ct, ct, sizeof ct), plen = unhex(fixed[i].pt, pt, sizeof pt);
        CU_ASSERT_FATAL(n == 128);
        struct result m = decrypt_with(sealed[KFIXED], &ir, ct, n);
        CHECK(m.ok && m.len == plen && memcmp(m.out, pt, plen) == 0, "vector %zu: not OpenSSL 3.5.7's output", i);
        /* The reference agrees with the vectors too, so it is the same algorithm, not just ours twice. */
        unsigned char em[128];
        CU_ASSERT_FATAL(raw(full[KFIXED], false, ct, n, em));
        struct result ref = reference_ir(full[KFIXED], ct, em);
        CHECK(ref.len == plen && memcmp(ref.out, pt, plen) == 0, "vector %zu: the reference disagrees", i);
        /* Implicit rejection off: the valid one decrypts, the two invalid ones fail. */
        struct result off = decrypt_with(sealed[KFIXED], &no_ir, ct, n);
        CHECK(off.ok == (i == 0) && (i != 0 || same(&off, &m)), "vector %zu without implicit rejection: ok=%d", i,
              off.ok);
        ERR_clear_error();
    }
}

static void test_pkcs1_without_implicit_rejection_matches_default(void)
{
    /* The default provider without implicit rejection: 3.0 always, >= 3.2 with the same parameter. */
    const struct dec_opts no_ir = {PKCS1_NO_IR, 0, 0};
    int bad = 0;
    for (int ki = K1024; ki <= K3072; ki++)
        for (int round = 0; round < 4; round++)
            for (int s = 0; s < NSHAPES; s++) {
                unsigned char ct[512], em[512];
                pkcs1_ciphertext(full[ki], (enum shape)s, ct, em);
                size_t n = key_bytes(full[ki]);
                struct result m = decrypt_with(sealed[ki], &no_ir, ct, n);
                bool failed_with_error = !m.ok && ERR_peek_error() != 0;
                ERR_clear_error();
                struct result d = decrypt_with(full[ki], &no_ir, ct, n);
                ERR_clear_error();
                bad += !CHECK(same(&m, &d) && m.ok == (s <= VALID_EMPTY) && (m.ok || failed_with_error),
                              "%zu-bit, %s: memguard ok=%d len=%zu, default ok=%d len=%zu", n * 8, shape_names[s],
                              m.ok, m.len, d.ok, d.len);
            }
    CHECK(bad == 0, "%d outcomes differ", bad);
}

static void test_implicit_rejection_parameter_is_settable_and_gettable(void)
{
    EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new_from_pkey(NULL, sealed[K2048], NULL);
    unsigned v = 7, zero = 0;
    OSSL_PARAM get[] = {OSSL_PARAM_construct_uint(IMPLICIT_REJECTION, &v), OSSL_PARAM_END};
    OSSL_PARAM set[] = {OSSL_PARAM_construct_uint(IMPLICIT_REJECTION, &zero), OSSL_PARAM_END};
    CU_ASSERT_FATAL(pc != NULL && EVP_PKEY_decrypt_init(pc) == 1);
    CHECK(EVP_PKEY_CTX_get_params(pc, get) == 1 && v == 1, "implicit rejection is not on by default (%u)", v);
    CHECK(OSSL_PARAM_locate_const(EVP_PKEY_CTX_settable_params(pc), IMPLICIT_REJECTION) != NULL &&
              OSSL_PARAM_locate_const(EVP_PKEY_CTX_gettable_params(pc), IMPLICIT_REJECTION) != NULL,
          "implicit-rejection is not listed as settable and gettable");
    v = 7;
    CHECK(EVP_PKEY_CTX_set_params(pc, set) == 1 && EVP_PKEY_CTX_get_params(pc, get) == 1 && v == 0,
          "implicit rejection set to 0 reads back as %u", v);
    EVP_PKEY_CTX_free(pc);
    ERR_clear_error();
}

/* ---- OAEP ---- */

static void test_oaep_matches_default(void)
{
    const struct dec_opts o = {OAEP, 0, 0};
    int bad = 0;
    for (int ki = K1024; ki <= K3072; ki++) {
        size_t n = key_bytes(full[ki]);
        for (int i = 0; i < 40; i++) {
            unsigned char msg[64], ct[512], em[512];
            size_t mlen = (size_t)i % sizeof msg, ctlen = sizeof ct;
            CU_ASSERT_FATAL(RAND_bytes(msg, sizeof msg) == 1);
            EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new_from_pkey(plain, full[ki], NULL);
            CU_ASSERT_FATAL(pc != NULL && EVP_PKEY_encrypt_init(pc) == 1 &&
                            EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_OAEP_PADDING) > 0 &&
                            EVP_PKEY_encrypt(pc, ct, &ctlen, msg, mlen) == 1);
            EVP_PKEY_CTX_free(pc);
            /* Valid; then one flipped bit in the ciphertext; then a corrupted byte of the encoded message. */
            for (int v = 0; v < 3; v++) {
                if (v == 1)
                    ct[(size_t)i * 5 % n] ^= 0x04;
                if (v == 2) {
                    ct[(size_t)i * 5 % n] ^= 0x04;
                    CU_ASSERT_FATAL(raw(full[ki], false, ct, n, em));
                    em[(size_t)i % 3 == 0 ? 0 : 1 + (size_t)i * 7 % (n - 1)] ^= 0x01;
                    CU_ASSERT_FATAL(raw(full[ki], true, em, n, ct));
                }
                struct result m = decrypt_with(sealed[ki], &o, ct, n);
                bool errored = !m.ok && ERR_peek_error() != 0;
                ERR_clear_error();
                struct result d = decrypt_with(full[ki], &o, ct, n);
                ERR_clear_error();
                bad += !CHECK(same(&m, &d) && m.ok == (v == 0) && (m.ok || errored) &&
                                  (!m.ok || (m.len == mlen && memcmp(m.out, msg, mlen) == 0)),
                              "%zu-bit OAEP case %d/%d: memguard ok=%d, default ok=%d", n * 8, i, v, m.ok, d.ok);
            }
        }
    }
    CHECK(bad == 0, "%d OAEP outcomes differ", bad);
}

/* ---- TLS 1.2 premaster ---- */

/* A TLS premaster ciphertext: 00 02 PS 00 || version || 46 random bytes, possibly spoiled. */
static void tls_ciphertext(EVP_PKEY *k, unsigned version, int spoil, unsigned char *ct, unsigned char *premaster)
{
    size_t n = key_bytes(k);
    unsigned char em[512];
    em[0] = 0;
    em[1] = 2;
    random_nonzero(em + 2, n - 2);
    em[n - 49] = 0;
    CU_ASSERT_FATAL(RAND_bytes(em + n - 48, 48) == 1);
    em[n - 48] = (unsigned char)(version >> 8);
    em[n - 47] = (unsigned char)version;
    if (spoil == 1)
        em[1] = 1; /* bad block type */
    if (spoil == 2)
        em[n - 49] = 0x33; /* no separator before the premaster */
    if (spoil == 3)
        em[5] = 0; /* a zero inside the padding */
    memcpy(premaster, em + n - 48, 48);
    CU_ASSERT_FATAL(raw(k, true, em, n, ct));
}

static void test_tls_premaster_matches_default_and_falls_back_to_random(void)
{
    const unsigned TLS12 = 0x0303, TLS11 = 0x0302;
    struct {
        unsigned in_ct, client, alt;
        int spoil;
        bool valid;
        const char *what;
    } cases[] = {
        {TLS12, TLS12, 0, 0, true, "good"},
        {TLS11, TLS12, 0, 0, false, "version differs from the client's"},
        {TLS11, TLS12, TLS11, 0, true, "the negotiated version, allowed (rollback bug workaround)"},
        {0x0301, TLS12, TLS11, 0, false, "neither version"},
        {TLS12, TLS12, 0, 1, false, "bad block type"},
        {TLS12, TLS12, 0, 2, false, "no separator"},
        {TLS12, TLS12, 0, 3, false, "zero in the padding"},
    };
    for (int ki = K1024; ki <= K3072; ki++)
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            unsigned char ct[512], premaster[48];
            size_t n = key_bytes(full[ki]);
            tls_ciphertext(full[ki], cases[i].in_ct, cases[i].spoil, ct, premaster);
            const struct dec_opts o = {TLS, cases[i].client, cases[i].alt};
            struct result m1 = decrypt_with(sealed[ki], &o, ct, n), m2 = decrypt_with(sealed[ki], &o, ct, n),
                          d = decrypt_with(full[ki], &o, ct, n);
            CHECK(m1.ok && m2.ok && m1.len == 48 && m2.len == 48 && ERR_peek_error() == 0,
                  "%s: not a 48-byte success", cases[i].what);
            if (cases[i].valid)
                CHECK(memcmp(m1.out, premaster, 48) == 0 && same(&m1, &d) && same(&m1, &m2),
                      "%zu-bit, %s: the premaster differs from the default provider's", n * 8, cases[i].what);
            else /* random each time: never the encrypted bytes, never twice the same */
                CHECK(memcmp(m1.out, premaster, 48) != 0 && memcmp(m1.out, m2.out, 48) != 0 && d.ok && d.len == 48,
                      "%zu-bit, %s: the fallback is not a fresh random premaster", n * 8, cases[i].what);
            ERR_clear_error();
        }
    /* No client version at all is the caller's mistake: an error, as in the default provider. */
    unsigned char ct[512], premaster[48];
    tls_ciphertext(full[K2048], TLS12, 0, ct, premaster);
    const struct dec_opts none = {TLS, 0, 0};
    struct result m = decrypt_with(sealed[K2048], &none, ct, 256);
    bool raised = memguard_error();
    struct result d = decrypt_with(full[K2048], &none, ct, 256);
    CHECK(!m.ok && !d.ok && raised, "TLS padding without a client version: memguard ok=%d default ok=%d", m.ok, d.ok);
    ERR_clear_error();
    /* The size query says 48, as the default provider does (libssl allocates that much). */
    EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new_from_pkey(NULL, sealed[K2048], NULL);
    size_t len = 0;
    CHECK(pc != NULL && EVP_PKEY_decrypt_init(pc) == 1 &&
              EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_WITH_TLS_PADDING) > 0 &&
              EVP_PKEY_decrypt(pc, NULL, &len, ct, 256) == 1 && len == 48,
          "TLS size query: %zu", len);
    EVP_PKEY_CTX_free(pc);
}

/* ---- blinding: the same whatever the padding ---- */

static bool blinding_counts(EVP_PKEY *k, uint64_t *made, uint64_t *squared)
{
    EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new_from_pkey(NULL, k, NULL);
    OSSL_PARAM p[] = {OSSL_PARAM_construct_uint64(MADE, made), OSSL_PARAM_construct_uint64(SQUARED, squared),
                      OSSL_PARAM_END};
    bool ok = pc != NULL && EVP_PKEY_decrypt_init(pc) == 1 && EVP_PKEY_CTX_get_params(pc, p) == 1 &&
              OSSL_PARAM_modified(&p[0]) && OSSL_PARAM_modified(&p[1]);
    EVP_PKEY_CTX_free(pc);
    return ok;
}

/* A valid ciphertext (OAEP or PKCS#1 v1.5) of msg under k, and an invalid one beside it. */
static void valid_and_invalid(EVP_PKEY *k, int pad, const unsigned char *msg, size_t mlen, unsigned char *good,
                              unsigned char *bad)
{
    size_t n = key_bytes(k), len = n;
    EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new_from_pkey(plain, k, NULL);
    CU_ASSERT_FATAL(pc != NULL && EVP_PKEY_encrypt_init(pc) == 1 && EVP_PKEY_CTX_set_rsa_padding(pc, pad) > 0 &&
                    EVP_PKEY_encrypt(pc, good, &len, msg, mlen) == 1 && len == n);
    EVP_PKEY_CTX_free(pc);
    unsigned char em[512];
    CU_ASSERT_FATAL(raw(k, false, good, n, em));
    em[1] ^= 0x40; /* OAEP: a corrupted seed; PKCS#1: a wrong block type */
    CU_ASSERT_FATAL(raw(k, true, em, n, bad));
}

static void test_blinding_pair_is_reused_and_squared_after_a_failed_decryption(void)
{
    /* A key of its own, so that the counts start at zero: 64 decryptions alternate good and bad. */
    EVP_PKEY *fk = new_key(2048), *sk = fk != NULL ? through_memguard(fk) : NULL;
    CU_ASSERT_FATAL(sk != NULL && is_memguard(sk));
    static const unsigned char msg[] = "blinding must not care about padding";
    unsigned char good[256], bad[256];
    const struct dec_opts modes[] = {{OAEP, 0, 0}, {PKCS1_NO_IR, 0, 0}, {PKCS1_IR, 0, 0}};
    const int pads[] = {RSA_PKCS1_OAEP_PADDING, RSA_PKCS1_PADDING, RSA_PKCS1_PADDING};
    uint64_t made = 0, squared = 0;
    CHECK(blinding_counts(sk, &made, &squared) && made == 0 && squared == 0, "a fresh key has counts %llu/%llu",
          (unsigned long long)made, (unsigned long long)squared);
    for (int mi = 0; mi < 3; mi++) {
        valid_and_invalid(fk, pads[mi], msg, sizeof msg, good, bad);
        for (int i = 0; i < 32; i++) {
            uint64_t m0 = 0, s0 = 0, m1 = 0, s1 = 0;
            CU_ASSERT_FATAL(blinding_counts(sk, &m0, &s0));
            struct result r = decrypt_with(sk, &modes[mi], i % 2 == 0 ? good : bad, 256);
            ERR_clear_error();
            CU_ASSERT_FATAL(blinding_counts(sk, &m1, &s1));
            CHECK(r.ok == (i % 2 == 0 || modes[mi].pad == PKCS1_IR), "mode %d, decryption %d: ok=%d", mi, i, r.ok);
            /* Use 1 of each pair is made fresh, uses 1..31 squared after, the 32nd retires it: wherever a bad
             * ciphertext falls, it must count exactly as a good one. */
            uint64_t pos = (uint64_t)(mi * 32 + i) % 32;
            CHECK(m1 - m0 == (pos == 0) && s1 - s0 == (pos != 31),
                  "mode %d, decryption %d (%s): %llu pairs made, %llu squared", mi, i, i % 2 ? "bad" : "good",
                  (unsigned long long)(m1 - m0), (unsigned long long)(s1 - s0));
        }
    }
    CHECK(blinding_counts(sk, &made, &squared) && made == 3 && squared == 93,
          "after 96 decryptions: %llu pairs made, %llu squared (expected 3, 93)", (unsigned long long)made,
          (unsigned long long)squared);
    EVP_PKEY_free(sk);
    EVP_PKEY_free(fk);
}

static uint64_t parent_made;

static void child_decrypts_with_fresh_blinding(void *arg)
{
    (void)arg;
    static const unsigned char msg[] = "after fork";
    unsigned char good[256], bad[256];
    const struct dec_opts o = {OAEP, 0, 0};
    valid_and_invalid(full[K2048], RSA_PKCS1_OAEP_PADDING, msg, sizeof msg, good, bad);
    uint64_t m = 0, s = 0;
    for (int i = 0; i < 4; i++) {
        struct result r = decrypt_with(sealed[K2048], &o, i % 2 ? bad : good, 256);
        if (r.ok != (i % 2 == 0) || (r.ok && (r.len != sizeof msg || memcmp(r.out, msg, sizeof msg) != 0)))
            _exit(10);
        /* The parent's spare pair must not be used here: the first decryption makes a new one, then it is reused. */
        if (!blinding_counts(sealed[K2048], &m, &s) || m != parent_made + 1)
            _exit(11);
    }
}

static void test_forked_child_makes_its_own_blinding_pair(void)
{
    static const unsigned char msg[] = "warm";
    unsigned char good[256], bad[256];
    const struct dec_opts o = {OAEP, 0, 0};
    valid_and_invalid(full[K2048], RSA_PKCS1_OAEP_PADDING, msg, sizeof msg, good, bad);
    struct result r = decrypt_with(sealed[K2048], &o, good, 256);
    uint64_t s = 0;
    CU_ASSERT_FATAL(r.ok && blinding_counts(sealed[K2048], &parent_made, &s));
    int status = mgt_run_child(child_decrypts_with_fresh_blinding, NULL, NULL, 0);
    CHECK(mgt_exited_ok(status), "child: %s (10: a wrong result, 11: the parent's blinding pair was used)",
          mgt_describe(status));
}

/* ---- threads ---- */

struct job {
    const unsigned char *ct;
    struct dec_opts o;
    struct result expect; /* TLS failure: any 48 bytes but the encrypted premaster */
    bool tls_bad;
    unsigned char premaster[48];
};
#define NJOBS 8
static struct job jobs[NJOBS];

static void *thread_decrypts(void *arg)
{
    long bad = 0;
    unsigned seed = (unsigned)(uintptr_t)arg;
    for (int i = 0; i < 200; i++) {
        seed = seed * 1103515245u + 12345u;
        const struct job *j = &jobs[(seed >> 16) % NJOBS];
        struct result r = decrypt_with(sealed[K2048], &j->o, j->ct, 256);
        ERR_clear_error();
        bad += j->tls_bad ? !(r.ok && r.len == 48 && memcmp(r.out, j->premaster, 48) != 0) : !same(&r, &j->expect);
    }
    return (void *)bad;
}

static void test_four_threads_of_mixed_decryptions_are_all_correct(void)
{
    static unsigned char cts[NJOBS][256];
    static const unsigned char msg[] = "threads";
    unsigned char em[256];
    valid_and_invalid(full[K2048], RSA_PKCS1_OAEP_PADDING, msg, sizeof msg, cts[0], cts[1]);
    valid_and_invalid(full[K2048], RSA_PKCS1_PADDING, msg, sizeof msg, cts[2], cts[3]);
    memcpy(cts[4], cts[3], 256);
    memcpy(cts[5], cts[2], 256);
    tls_ciphertext(full[K2048], 0x0303, 0, cts[6], jobs[6].premaster);
    tls_ciphertext(full[K2048], 0x0303, 1, cts[7], jobs[7].premaster);
    const struct dec_opts opts[NJOBS] = {{OAEP, 0, 0},     {OAEP, 0, 0},        {PKCS1_NO_IR, 0, 0},
                                         {PKCS1_NO_IR, 0, 0}, {PKCS1_IR, 0, 0},  {PKCS1_IR, 0, 0},
                                         {TLS, 0x0303, 0},  {TLS, 0x0303, 0}};
    for (int i = 0; i < NJOBS; i++) {
        jobs[i].ct = cts[i];
        jobs[i].o = opts[i];
        jobs[i].tls_bad = i == 7;
        if (opts[i].pad == PKCS1_IR) {
            CU_ASSERT_FATAL(raw(full[K2048], false, cts[i], 256, em));
            jobs[i].expect = reference_ir(full[K2048], cts[i], em);
        } else {
            jobs[i].expect = decrypt_with(full[K2048], &opts[i], cts[i], 256);
        }
        ERR_clear_error();
    }
    CU_ASSERT_FATAL(jobs[0].expect.ok && !jobs[1].expect.ok && jobs[6].expect.ok);
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        CU_ASSERT_FATAL(pthread_create(&t[i], NULL, thread_decrypts, (void *)(uintptr_t)(i + 1)) == 0);
    long bad = 0;
    for (int i = 0; i < 4; i++) {
        void *r = NULL;
        CU_ASSERT_FATAL(pthread_join(t[i], &r) == 0);
        bad += (long)r;
    }
    CHECK(bad == 0, "%ld of 800 decryptions in 4 threads were wrong", bad);
}

static CU_TestInfo tests[] = {
    {"PKCS#1 v1.5 implicit rejection equals the reference (and the default provider where it has it)",
     test_pkcs1_implicit_rejection_matches_reference_and_default},
    {"PKCS#1 v1.5 implicit rejection reproduces OpenSSL 3.5.7's fixed vectors", test_pkcs1_fixed_vectors_from_openssl_35},
    {"PKCS#1 v1.5 without implicit rejection: every outcome equals the default provider's",
     test_pkcs1_without_implicit_rejection_matches_default},
    {"implicit-rejection is on by default, settable and gettable", test_implicit_rejection_parameter_is_settable_and_gettable},
    {"OAEP: valid and invalid ciphertexts give the default provider's outcome", test_oaep_matches_default},
    {"TLS premaster: the default's bytes when valid, a fresh random 48 bytes otherwise, never an error",
     test_tls_premaster_matches_default_and_falls_back_to_random},
    {"the blinding pair is reused and squared after a failed decryption as after a good one",
     test_blinding_pair_is_reused_and_squared_after_a_failed_decryption},
    {"a forked child makes its own blinding pair and decrypts correctly", test_forked_child_makes_its_own_blinding_pair},
    {"4 threads x 200 mixed decryptions are all correct", test_four_threads_of_mixed_decryptions_are_all_correct},
    CU_TEST_INFO_NULL,
};

int main(void)
{
    CU_SuiteInfo suites[] = {
        {"rsa_ct", init_suite, clean_suite, NULL, NULL, tests},
        CU_SUITE_INFO_NULL,
    };
    return mgt_main(suites);
}
