/*
 * RSA through memguard's own private-key path (provider/rsa.c: per-key public
 * blinding, padding applied outside the private operation) against plain
 * OpenSSL: every padding, digest and parameter a caller can set either gives
 * exactly what OpenSSL gives or is handed to the EVP path, never a wrong answer.
 * Key sizes 2048/3072/4096 and a 3-prime key are covered.
 */
#include <string.h>
#include <unistd.h>

#include <CUnit/CUnit.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/provider.h>
#include <openssl/rsa.h>

#include <memguard/memguard.h>

#include "../core/harness.h"
#include "check.h"

static OSSL_LIB_CTX *plain;
static OSSL_PROVIDER *plain_deflt;

enum { K2048, K3072, K4096, K3PRIME, NKEYS };
static const struct {
    unsigned bits, primes;
} shapes[NKEYS] = {{2048, 2}, {3072, 2}, {4096, 2}, {2048, 3}};
static EVP_PKEY *full[NKEYS]; /* plain keys with their private parts */
static EVP_PKEY *sealed[NKEYS]; /* the same keys loaded from PEM through memguard */

static bool is_memguard(const EVP_PKEY *k)
{
    const OSSL_PROVIDER *p = EVP_PKEY_get0_provider(k);
    return p != NULL && strcmp(OSSL_PROVIDER_get0_name(p), "memguard") == 0;
}

/* PEM text through a memory BIO into the default library context (memguard captures it). */
static EVP_PKEY *through_memguard(EVP_PKEY *k)
{
    BIO *mem = BIO_new(BIO_s_secmem());
    EVP_PKEY *out = NULL;
    if (mem != NULL && PEM_write_bio_PrivateKey(mem, k, NULL, NULL, 0, NULL, NULL) == 1)
        out = PEM_read_bio_PrivateKey(mem, NULL, NULL, NULL);
    BIO_free(mem);
    return out;
}

static int init_suite(void)
{
    plain = OSSL_LIB_CTX_new();
    if (plain == NULL || (plain_deflt = OSSL_PROVIDER_load(plain, "default")) == NULL)
        return 1;
    for (int i = 0; i < NKEYS; i++) {
        EVP_PKEY_CTX *g = EVP_PKEY_CTX_new_from_name(plain, "RSA", NULL);
        if (g == NULL || EVP_PKEY_keygen_init(g) != 1 || EVP_PKEY_CTX_set_rsa_keygen_bits(g, (int)shapes[i].bits) <= 0 ||
            EVP_PKEY_CTX_set_rsa_keygen_primes(g, (int)shapes[i].primes) <= 0 || EVP_PKEY_keygen(g, &full[i]) != 1) {
            EVP_PKEY_CTX_free(g);
            return 1;
        }
        EVP_PKEY_CTX_free(g);
        if ((sealed[i] = through_memguard(full[i])) == NULL || !is_memguard(sealed[i]))
            return 1;
    }
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

/* A parameter set for signing: padding, salt length (as OpenSSL's API takes it), MGF1 digest. */
struct sigcase {
    const char *md;
    int pad;
    const char *saltlen; /* NULL: the default; else "digest", "max", "auto" or a number */
    const char *mgf1;    /* NULL: same as md */
    int expect_saltlen;  /* the salt length the signature must verify with exactly (-1: PKCS#1) */
};

static bool set_sig_params(EVP_PKEY_CTX *pc, const struct sigcase *c)
{
    if (c->pad != RSA_PKCS1_PSS_PADDING)
        return true;
    if (EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PSS_PADDING) <= 0)
        return false;
    if (c->saltlen != NULL) {
        char buf[16];
        OSSL_PARAM p[] = {OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_PSS_SALTLEN, buf, 0), OSSL_PARAM_END};
        snprintf(buf, sizeof buf, "%s", c->saltlen);
        p[0].data_size = strlen(buf);
        if (EVP_PKEY_CTX_set_params(pc, p) != 1)
            return false;
    }
    return c->mgf1 == NULL || EVP_PKEY_CTX_set_rsa_mgf1_md_name(pc, c->mgf1, NULL) > 0;
}

static bool sign_with(EVP_PKEY *k, OSSL_LIB_CTX *libctx, const struct sigcase *c, const void *msg, size_t n,
                      unsigned char *sig, size_t *len)
{
    EVP_MD_CTX *m = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pc = NULL;
    bool ok = m != NULL && EVP_DigestSignInit_ex(m, &pc, c->md, libctx, NULL, k, NULL) == 1 &&
              set_sig_params(pc, c) && EVP_DigestSign(m, sig, len, msg, n) == 1;
    EVP_MD_CTX_free(m);
    return ok;
}

/* Verify with the plain key, the salt length checked exactly (not "auto"), so a wrong one is caught. */
static bool verifies(EVP_PKEY *k, const struct sigcase *c, const void *msg, size_t n, const unsigned char *sig,
                     size_t len)
{
    EVP_MD_CTX *m = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pc = NULL;
    bool ok = m != NULL && EVP_DigestVerifyInit_ex(m, &pc, c->md, plain, NULL, k, NULL) == 1;
    if (ok && c->pad == RSA_PKCS1_PSS_PADDING)
        ok = EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PSS_PADDING) > 0 &&
             EVP_PKEY_CTX_set_rsa_pss_saltlen(pc, c->expect_saltlen) > 0 &&
             (c->mgf1 == NULL || EVP_PKEY_CTX_set_rsa_mgf1_md_name(pc, c->mgf1, NULL) > 0);
    ok = ok && EVP_DigestVerify(m, sig, len, msg, n) == 1;
    EVP_MD_CTX_free(m);
    ERR_clear_error();
    return ok;
}

static void test_signatures_match_plain_openssl_for_every_parameter_set(void)
{
    /* k = 256 bytes for RSA-2048: "max" = k - hLen - 2. */
    const struct sigcase cases[] = {
        {"SHA1", RSA_PKCS1_PADDING, NULL, NULL, -1},
        {"SHA224", RSA_PKCS1_PADDING, NULL, NULL, -1},
        {"SHA256", RSA_PKCS1_PADDING, NULL, NULL, -1},
        {"SHA384", RSA_PKCS1_PADDING, NULL, NULL, -1},
        {"SHA512", RSA_PKCS1_PADDING, NULL, NULL, -1},
        {"SHA3-256", RSA_PKCS1_PADDING, NULL, NULL, -1},   /* no DigestInfo table entry: EVP path */
        {"SHA512-256", RSA_PKCS1_PADDING, NULL, NULL, -1}, /* likewise */
        {"SHA256", RSA_PKCS1_PSS_PADDING, "digest", NULL, 32},
        {"SHA256", RSA_PKCS1_PSS_PADDING, "max", NULL, 256 - 32 - 2},
        {"SHA256", RSA_PKCS1_PSS_PADDING, "auto", NULL, 256 - 32 - 2},
        {"SHA256", RSA_PKCS1_PSS_PADDING, NULL, NULL, 256 - 32 - 2}, /* OpenSSL's default for signing */
        {"SHA256", RSA_PKCS1_PSS_PADDING, "0", NULL, 0},
        {"SHA256", RSA_PKCS1_PSS_PADDING, "20", "SHA1", 20},
        {"SHA384", RSA_PKCS1_PSS_PADDING, "digest", "SHA256", 48},
        {"SHA512", RSA_PKCS1_PSS_PADDING, "digest", NULL, 64},
    };
    static const char msg[] = "one message, signed under every parameter set";
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct sigcase *c = &cases[i];
        unsigned char sig[512], ref[512];
        size_t len = sizeof sig, rlen = sizeof ref;
        const char *pad = c->pad == RSA_PKCS1_PADDING ? "PKCS#1" : "PSS";
        if (!CHECK(sign_with(sealed[K2048], NULL, c, msg, sizeof msg, sig, &len), "%s %s saltlen=%s: signing failed",
                   c->md, pad, c->saltlen != NULL ? c->saltlen : "(default)")) {
            ERR_clear_error();
            continue;
        }
        CHECK(len == 256, "%s %s: signature of %zu bytes", c->md, pad, len);
        CHECK(verifies(full[K2048], c, msg, sizeof msg, sig, len),
              "%s %s saltlen=%s mgf1=%s: does not verify with exactly these parameters", c->md, pad,
              c->saltlen != NULL ? c->saltlen : "(default)", c->mgf1 != NULL ? c->mgf1 : c->md);
        if (c->pad == RSA_PKCS1_PADDING) /* deterministic: byte for byte what plain OpenSSL makes */
            CHECK(sign_with(full[K2048], plain, c, msg, sizeof msg, ref, &rlen) && rlen == len &&
                      memcmp(ref, sig, len) == 0,
                  "%s PKCS#1: the signature differs from plain OpenSSL's", c->md);
    }
}

/* EVP_PKEY_sign over a digest (the path libssl does not take, but applications do). */
static void test_raw_sign_of_a_digest_and_without_digest(void)
{
    unsigned char dgst[32], sig[256], ref[256];
    for (size_t i = 0; i < sizeof dgst; i++)
        dgst[i] = (unsigned char)(i * 7 + 1);
    const char *mds[] = {"SHA256", NULL}; /* NULL: no DigestInfo, the bytes are padded as given */
    for (size_t i = 0; i < 2; i++) {
        size_t len = sizeof sig, rlen = sizeof ref;
        EVP_PKEY_CTX *a = EVP_PKEY_CTX_new_from_pkey(NULL, sealed[K2048], NULL);
        EVP_PKEY_CTX *b = EVP_PKEY_CTX_new_from_pkey(plain, full[K2048], NULL);
        bool ok = a != NULL && b != NULL && EVP_PKEY_sign_init(a) == 1 && EVP_PKEY_sign_init(b) == 1 &&
                  (mds[i] == NULL || (EVP_PKEY_CTX_set_signature_md(a, EVP_sha256()) > 0 &&
                                      EVP_PKEY_CTX_set_signature_md(b, EVP_sha256()) > 0)) &&
                  EVP_PKEY_sign(a, sig, &len, dgst, sizeof dgst) == 1 &&
                  EVP_PKEY_sign(b, ref, &rlen, dgst, sizeof dgst) == 1;
        CHECK(ok && len == rlen && memcmp(sig, ref, len) == 0, "raw sign (%s): differs from plain OpenSSL",
              mds[i] != NULL ? mds[i] : "no digest");
        /* A digest of the wrong length is refused, as OpenSSL refuses it. */
        if (mds[i] != NULL) {
            len = sizeof sig;
            CHECK(EVP_PKEY_sign(a, sig, &len, dgst, 20) != 1, "a 20-byte input was signed as a SHA-256 digest");
        }
        EVP_PKEY_CTX_free(a);
        EVP_PKEY_CTX_free(b);
        ERR_clear_error();
    }
}

struct deccase {
    int pad;
    const char *md, *mgf1;
    const char *label;
};

/* Set: PKCS#1 v1.5 decryptions through memguard turn implicit rejection off (it is on by default). */
static bool no_implicit_rejection;

static bool set_dec_params(EVP_PKEY_CTX *pc, const struct deccase *c)
{
    if (EVP_PKEY_CTX_set_rsa_padding(pc, c->pad) <= 0)
        return false;
    if (c->pad == RSA_PKCS1_PADDING && no_implicit_rejection) {
        unsigned zero = 0;
        OSSL_PARAM p[] = {OSSL_PARAM_uint("implicit-rejection", &zero), OSSL_PARAM_END};
        return EVP_PKEY_CTX_set_params(pc, p) == 1;
    }
    if (c->pad != RSA_PKCS1_OAEP_PADDING)
        return true;
    if ((c->md != NULL && EVP_PKEY_CTX_set_rsa_oaep_md_name(pc, c->md, NULL) <= 0) ||
        (c->mgf1 != NULL && EVP_PKEY_CTX_set_rsa_mgf1_md_name(pc, c->mgf1, NULL) <= 0))
        return false;
    if (c->label != NULL) {
        size_t n = strlen(c->label);
        void *l = OPENSSL_memdup(c->label, n); /* the context takes ownership */
        if (l == NULL || EVP_PKEY_CTX_set0_rsa_oaep_label(pc, l, (int)n) <= 0) {
            OPENSSL_free(l);
            return false;
        }
    }
    return true;
}

static bool rsa_crypt(EVP_PKEY *k, OSSL_LIB_CTX *libctx, bool enc, const struct deccase *c, const unsigned char *in,
                  size_t inlen, unsigned char *out, size_t *outlen)
{
    EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new_from_pkey(libctx, k, NULL);
    bool ok = pc != NULL && (enc ? EVP_PKEY_encrypt_init(pc) : EVP_PKEY_decrypt_init(pc)) == 1 &&
              set_dec_params(pc, c) &&
              (enc ? EVP_PKEY_encrypt(pc, out, outlen, in, inlen) : EVP_PKEY_decrypt(pc, out, outlen, in, inlen)) == 1;
    EVP_PKEY_CTX_free(pc);
    return ok;
}

static void test_decryption_recovers_plaintext_and_rejects_tampering(void)
{
    const struct deccase cases[] = {
        {RSA_PKCS1_OAEP_PADDING, NULL, NULL, NULL},
        {RSA_PKCS1_OAEP_PADDING, "SHA256", NULL, NULL},
        {RSA_PKCS1_OAEP_PADDING, "SHA256", "SHA1", NULL},
        {RSA_PKCS1_OAEP_PADDING, "SHA512", NULL, "a label binds the ciphertext to its use"},
        {RSA_PKCS1_PADDING, NULL, NULL, NULL},
    };
    static const unsigned char msg[] = "forty-eight bytes of a premaster secret, or so";
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct deccase *c = &cases[i];
        const char *what = c->pad == RSA_PKCS1_PADDING ? "PKCS#1 v1.5" : c->md != NULL ? c->md : "OAEP SHA-1";
        unsigned char ct[256], pt[256];
        size_t ctlen = sizeof ct, ptlen = sizeof pt;
        CU_ASSERT_FATAL(rsa_crypt(full[K2048], plain, true, c, msg, sizeof msg, ct, &ctlen));
        CHECK(rsa_crypt(sealed[K2048], NULL, false, c, ct, ctlen, pt, &ptlen) && ptlen == sizeof msg &&
                  memcmp(pt, msg, ptlen) == 0,
              "%s: memguard did not recover the plaintext", what);
        mg_wipe(pt, sizeof pt);
        /* One flipped bit in the ciphertext: the padding check must fail (PKCS#1 v1.5: with implicit
         * rejection off; with it on, a synthetic message comes back instead, tested in test_rsa_ct). */
        ct[ctlen / 2] ^= 0x10;
        ptlen = sizeof pt;
        no_implicit_rejection = true;
        CHECK(!rsa_crypt(sealed[K2048], NULL, false, c, ct, ctlen, pt, &ptlen), "%s: a tampered ciphertext decrypted",
              what);
        no_implicit_rejection = false;
        CHECK(ERR_peek_error() != 0, "%s: a failed decryption left no error", what);
        ERR_clear_error();
        if (c->pad == RSA_PKCS1_PADDING) {
            ptlen = sizeof pt;
            CHECK(rsa_crypt(sealed[K2048], NULL, false, c, ct, ctlen, pt, &ptlen) &&
                      (ptlen != sizeof msg || memcmp(pt, msg, ptlen) != 0),
                  "PKCS#1 v1.5 with implicit rejection: a tampered ciphertext failed or gave the plaintext");
            ERR_clear_error();
        }
        ct[ctlen / 2] ^= 0x10;
        /* An output buffer too small for the message fails instead of overflowing. */
        ptlen = 8;
        CHECK(!rsa_crypt(sealed[K2048], NULL, false, c, ct, ctlen, pt, &ptlen), "%s: decrypted into 8 bytes", what);
        ERR_clear_error();
        mg_wipe(pt, sizeof pt);
        /* A wrong label or digest must not decrypt: the parameters reach the operation. */
        if (c->label != NULL) {
            struct deccase wrong = *c;
            wrong.label = "another label";
            ptlen = sizeof pt;
            CHECK(!rsa_crypt(sealed[K2048], NULL, false, &wrong, ct, ctlen, pt, &ptlen),
                  "OAEP: decrypted under the wrong label");
            ERR_clear_error();
        }
    }
    /* A "ciphertext" >= n is refused cleanly. */
    unsigned char big[256], pt[256];
    memset(big, 0xff, sizeof big);
    size_t ptlen = sizeof pt;
    const struct deccase oaep = {RSA_PKCS1_OAEP_PADDING, NULL, NULL, NULL};
    CHECK(!rsa_crypt(sealed[K2048], NULL, false, &oaep, big, sizeof big, pt, &ptlen), "a value >= n was decrypted");
    CHECK(ERR_peek_error() != 0, "no error for a value >= n");
    ERR_clear_error();
}

static void test_larger_and_multi_prime_keys(void)
{
    static const char msg[] = "larger keys take the same path";
    static const unsigned char secret[] = "a message for OAEP";
    for (int i = K3072; i < NKEYS; i++) {
        const struct sigcase pss = {"SHA256", RSA_PKCS1_PSS_PADDING, "digest", NULL, 32};
        const struct sigcase pkcs1 = {"SHA256", RSA_PKCS1_PADDING, NULL, NULL, -1};
        unsigned char sig[512], ct[512], pt[512];
        size_t len = sizeof sig;
        CHECK(sign_with(sealed[i], NULL, &pss, msg, sizeof msg, sig, &len) &&
                  verifies(full[i], &pss, msg, sizeof msg, sig, len),
              "RSA-%u (%u primes): PSS signature fails", shapes[i].bits, shapes[i].primes);
        len = sizeof sig;
        CHECK(sign_with(sealed[i], NULL, &pkcs1, msg, sizeof msg, sig, &len) &&
                  verifies(full[i], &pkcs1, msg, sizeof msg, sig, len),
              "RSA-%u (%u primes): PKCS#1 signature fails", shapes[i].bits, shapes[i].primes);
        const struct deccase oaep = {RSA_PKCS1_OAEP_PADDING, "SHA256", NULL, NULL};
        size_t ctlen = sizeof ct, ptlen = sizeof pt;
        CHECK(rsa_crypt(full[i], plain, true, &oaep, secret, sizeof secret, ct, &ctlen) &&
                  rsa_crypt(sealed[i], NULL, false, &oaep, ct, ctlen, pt, &ptlen) && ptlen == sizeof secret &&
                  memcmp(pt, secret, ptlen) == 0,
              "RSA-%u (%u primes): OAEP decryption fails", shapes[i].bits, shapes[i].primes);
        mg_wipe(pt, sizeof pt);
        ERR_clear_error();
    }
}

/* Blinding pairs are reused 32 times, then replaced: 100 signatures cross three replacements. */
static void test_signatures_stay_valid_across_blinding_refreshes(void)
{
    const struct sigcase c = {"SHA256", RSA_PKCS1_PADDING, NULL, NULL, -1};
    int bad = 0;
    for (int i = 0; i < 100; i++) {
        char msg[32];
        int n = snprintf(msg, sizeof msg, "message %d", i);
        unsigned char sig[256], ref[256];
        size_t len = sizeof sig, rlen = sizeof ref;
        if (!sign_with(sealed[K2048], NULL, &c, msg, (size_t)n, sig, &len) ||
            !sign_with(full[K2048], plain, &c, msg, (size_t)n, ref, &rlen) || len != rlen || memcmp(sig, ref, len) != 0)
            bad++;
    }
    CHECK(bad == 0, "%d of 100 signatures differ from plain OpenSSL's", bad);
    ERR_clear_error();
}

static void child_signs_after_fork(void *arg)
{
    (void)arg;
    const struct sigcase c = {"SHA256", RSA_PKCS1_PADDING, NULL, NULL, -1};
    for (int i = 0; i < 40; i++) {
        unsigned char sig[256], ref[256];
        size_t len = sizeof sig, rlen = sizeof ref;
        if (!sign_with(sealed[K2048], NULL, &c, "after fork", 10, sig, &len) ||
            !sign_with(full[K2048], plain, &c, "after fork", 10, ref, &rlen) || len != rlen ||
            memcmp(sig, ref, len) != 0)
            _exit(10);
    }
}

static void test_forked_child_signs_correctly(void)
{
    const struct sigcase c = {"SHA256", RSA_PKCS1_PADDING, NULL, NULL, -1};
    unsigned char sig[256];
    size_t len = sizeof sig;
    CU_ASSERT_FATAL(sign_with(sealed[K2048], NULL, &c, "warm", 4, sig, &len)); /* the parent has a blinding pair */
    int status = mgt_run_child(child_signs_after_fork, NULL, NULL, 0);
    CHECK(mgt_exited_ok(status), "child: %s (10: a signature was wrong)", mgt_describe(status));
}

static CU_TestInfo tests[] = {
    {"signatures match plain OpenSSL for every digest, padding, salt length and MGF1",
     test_signatures_match_plain_openssl_for_every_parameter_set},
    {"EVP_PKEY_sign of a digest, and without a digest, matches plain OpenSSL",
     test_raw_sign_of_a_digest_and_without_digest},
    {"OAEP (digests, MGF1, label) and PKCS#1 v1.5 decrypt; tampering and small buffers fail",
     test_decryption_recovers_plaintext_and_rejects_tampering},
    {"RSA-3072, RSA-4096 and a 3-prime key sign and decrypt", test_larger_and_multi_prime_keys},
    {"100 signatures across blinding refreshes are all correct", test_signatures_stay_valid_across_blinding_refreshes},
    {"a forked child signs correctly with the parent's key", test_forked_child_signs_correctly},
    CU_TEST_INFO_NULL,
};

int main(void)
{
    CU_SuiteInfo suites[] = {
        {"rsa", init_suite, clean_suite, NULL, NULL, tests},
        CU_SUITE_INFO_NULL,
    };
    return mgt_main(suites);
}
