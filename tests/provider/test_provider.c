/*
 * The provider through the OpenSSL API, the way applications use it: keys
 * read by every loading path (PEM_read_bio_PrivateKey as nginx does,
 * OSSL_STORE as the openssl apps do, SSL_CTX_use_PrivateKey_file, d2i of
 * DER PKCS#8) come out as memguard keys, and d2i consumes exactly the key;
 * their private part cannot be exported while the public part can; what they
 * sign, decrypt and derive interoperates with plain OpenSSL; keys that never
 * went through memguard stay on the default provider; keys generated inside
 * memguard are sealed from birth; one key serves many threads and forked
 * children; bad input fails cleanly; a TLS 1.2/1.3 handshake in process works
 * with them; and threads that used them can still exit after the provider is
 * unloaded.
 *
 * Reference keys are generated in a separate library context that has only
 * the default provider, written to a private temporary directory, and wiped
 * from disk at the end. Run with OPENSSL_CONF pointing at a configuration
 * that loads memguard (default first, memguard after it).
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/conf.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/pem.h>
#include <openssl/provider.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/ssl.h>
#include <openssl/store.h>
#include <openssl/x509.h>

#include <memguard/memguard.h>

#include "../core/harness.h"
#include "check.h"


/* ---- the reference keys (plain library context, default provider only) ---- */

static OSSL_LIB_CTX *plain;
static OSSL_PROVIDER *plain_deflt;
static char workdir[] = "/tmp/mgt-provider-XXXXXX";

enum { K_RSA, K_EC, K_ED25519, K_X25519, K_COUNT };

struct refkey {
    const char *type; /* EVP_PKEY_is_a name */
    const char *file; /* file name stem */
    const char *md;   /* digest for signatures; NULL for EdDSA (and X25519, which does not sign) */
    int id;           /* EVP_PKEY_RSA, ... for d2i_PrivateKey_ex */
    bool has_cert;
    EVP_PKEY *full;      /* the plain key, with its private part */
    EVP_PKEY *pub;       /* its public part alone, plain */
    EVP_PKEY *other;     /* an unrelated plain key of the same type (negative controls, peers) */
    EVP_PKEY *other_pub; /* its public part alone */
    X509 *cert;          /* self-signed with full, plain */
    char pem[96], der[96], crt[96], trad[96];
};

static struct refkey keys[K_COUNT] = {
    [K_RSA] = {.type = "RSA", .file = "rsa", .md = "SHA256", .id = EVP_PKEY_RSA, .has_cert = true},
    [K_EC] = {.type = "EC", .file = "ec", .md = "SHA256", .id = EVP_PKEY_EC, .has_cert = true},
    [K_ED25519] = {.type = "ED25519", .file = "ed25519", .id = EVP_PKEY_ED25519, .has_cert = true},
    [K_X25519] = {.type = "X25519", .file = "x25519", .id = EVP_PKEY_X25519},
};

/*
 * Extra files: an encrypted PKCS#8 of the EC key, the unrelated EC key, a legacy-encrypted
 * ("Proc-Type: 4,ENCRYPTED") traditional RSA key, and the RSA key and certificate in one file,
 * in both orders (one file for ssl_certificate and ssl_certificate_key).
 */
static char enc_pem[96], other_ec_pem[96], legacy_enc_pem[96], crt_key_pem[96], key_crt_pem[96];
static const char right_pass[] = "correct horse battery staple";

static char created[32][96];
static size_t n_created;

static const char *path_for(char *dst, size_t n, const char *name)
{
    snprintf(dst, n, "%s/%s", workdir, name);
    if (n_created < sizeof created / sizeof created[0])
        snprintf(created[n_created++], sizeof created[0], "%s", dst);
    return dst;
}

/* Overwrite a file with zeros before unlinking it: it held a private key. */
static void wipe_file(const char *path)
{
    int fd = open(path, O_WRONLY);
    if (fd >= 0) {
        struct stat st;
        if (fstat(fd, &st) == 0) {
            static const char zeros[4096];
            off_t left = st.st_size;
            while (left > 0) {
                size_t chunk = left < (off_t)sizeof zeros ? (size_t)left : sizeof zeros;
                ssize_t w = write(fd, zeros, chunk);
                if (w <= 0)
                    break;
                left -= w;
            }
            (void)fsync(fd);
        }
        close(fd);
    }
    unlink(path);
}

/* The whole file in malloc'd memory; the caller wipes and frees it. */
static unsigned char *slurp(const char *path, size_t *len)
{
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    unsigned char *buf = malloc(65536);
    size_t n = buf != NULL ? fread(buf, 1, 65536, f) : 0;
    fclose(f);
    *len = n;
    return buf;
}

static void burn(unsigned char *buf, size_t len)
{
    if (buf != NULL) {
        mg_wipe(buf, len);
        free(buf);
    }
}

static EVP_PKEY *public_copy(EVP_PKEY *k, OSSL_LIB_CTX *libctx)
{
    unsigned char *der = NULL;
    int n = i2d_PUBKEY(k, &der);
    const unsigned char *p = der;
    EVP_PKEY *pub = n > 0 ? d2i_PUBKEY_ex(NULL, &p, n, libctx, NULL) : NULL;
    OPENSSL_free(der);
    return pub;
}

static EVP_PKEY *plain_keygen(const char *type)
{
    if (strcmp(type, "RSA") == 0)
        return EVP_PKEY_Q_keygen(plain, NULL, "RSA", (size_t)2048);
    if (strcmp(type, "EC") == 0)
        return EVP_PKEY_Q_keygen(plain, NULL, "EC", "P-256");
    return EVP_PKEY_Q_keygen(plain, NULL, type);
}

static X509 *self_signed(EVP_PKEY *k, long serial)
{
    X509 *x = X509_new_ex(plain, NULL);
    X509_NAME *name = X509_NAME_new();
    bool ok = x != NULL && name != NULL && X509_set_version(x, X509_VERSION_3) == 1 &&
              ASN1_INTEGER_set(X509_get_serialNumber(x), serial) == 1 &&
              X509_gmtime_adj(X509_getm_notBefore(x), -3600) != NULL &&
              X509_gmtime_adj(X509_getm_notAfter(x), 2 * 86400) != NULL &&
              X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"localhost", -1, -1,
                                         0) == 1 &&
              X509_set_subject_name(x, name) == 1 && X509_set_issuer_name(x, name) == 1 &&
              X509_set_pubkey(x, k) == 1 &&
              X509_sign(x, k, EVP_PKEY_is_a(k, "ED25519") ? NULL : EVP_sha256()) > 0;
    X509_NAME_free(name);
    if (!ok) {
        X509_free(x);
        return NULL;
    }
    return x;
}

enum wform {
    W_PKCS8_PEM,
    W_TRAD_PEM,
    W_PKCS8_DER,
    W_ENC_PKCS8_PEM,
    W_LEGACY_ENC_PEM,
    W_CERT_PEM,
    W_CERT_KEY,
    W_KEY_CERT
};

static bool write_to(const char *path, enum wform form, EVP_PKEY *k, X509 *x)
{
    BIO *b = BIO_new_file(path, "w");
    if (b == NULL)
        return false;
    int ok = 0;
    switch (form) {
    case W_PKCS8_PEM:
        ok = PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL);
        break;
    case W_TRAD_PEM:
        ok = PEM_write_bio_PrivateKey_traditional(b, k, NULL, NULL, 0, NULL, NULL);
        break;
    case W_PKCS8_DER:
        ok = i2d_PKCS8PrivateKey_bio(b, k, NULL, NULL, 0, NULL, NULL);
        break;
    case W_ENC_PKCS8_PEM:
        ok = PEM_write_bio_PKCS8PrivateKey(b, k, EVP_aes_256_cbc(), right_pass, (int)strlen(right_pass), NULL,
                                           NULL);
        break;
    case W_LEGACY_ENC_PEM:
        ok = PEM_write_bio_PrivateKey_traditional(b, k, EVP_aes_256_cbc(), (const unsigned char *)right_pass,
                                                  (int)strlen(right_pass), NULL, NULL);
        break;
    case W_CERT_PEM:
        ok = PEM_write_bio_X509(b, x);
        break;
    case W_CERT_KEY:
        ok = PEM_write_bio_X509(b, x) && PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL);
        break;
    case W_KEY_CERT:
        ok = PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL) && PEM_write_bio_X509(b, x);
        break;
    }
    BIO_free(b);
    return ok == 1;
}

static bool setup(void)
{
    if (mkdtemp(workdir) == NULL)
        return false;
    plain = OSSL_LIB_CTX_new();
    plain_deflt = plain != NULL ? OSSL_PROVIDER_load(plain, "default") : NULL;
    if (plain_deflt == NULL)
        return false;
    for (int t = 0; t < K_COUNT; t++) {
        struct refkey *r = &keys[t];
        char name[64];
        r->full = plain_keygen(r->type);
        r->other = plain_keygen(r->type);
        if (r->full == NULL || r->other == NULL)
            return false;
        r->pub = public_copy(r->full, plain);
        r->other_pub = public_copy(r->other, plain);
        if (r->pub == NULL || r->other_pub == NULL)
            return false;
        snprintf(name, sizeof name, "%s.pem", r->file);
        if (!write_to(path_for(r->pem, sizeof r->pem, name), W_PKCS8_PEM, r->full, NULL))
            return false;
        snprintf(name, sizeof name, "%s.p8.der", r->file);
        if (!write_to(path_for(r->der, sizeof r->der, name), W_PKCS8_DER, r->full, NULL))
            return false;
        if (t == K_RSA || t == K_EC) {
            snprintf(name, sizeof name, "%s.trad.pem", r->file);
            if (!write_to(path_for(r->trad, sizeof r->trad, name), W_TRAD_PEM, r->full, NULL))
                return false;
        }
        if (r->has_cert) {
            r->cert = self_signed(r->full, t + 1);
            snprintf(name, sizeof name, "%s.crt", r->file);
            if (r->cert == NULL ||
                !write_to(path_for(r->crt, sizeof r->crt, name), W_CERT_PEM, NULL, r->cert))
                return false;
        }
    }
    const struct refkey *rsa = &keys[K_RSA];
    return write_to(path_for(enc_pem, sizeof enc_pem, "ec.enc.pem"), W_ENC_PKCS8_PEM, keys[K_EC].full,
                    NULL) &&
           write_to(path_for(other_ec_pem, sizeof other_ec_pem, "ec-other.pem"), W_PKCS8_PEM,
                    keys[K_EC].other, NULL) &&
           write_to(path_for(legacy_enc_pem, sizeof legacy_enc_pem, "rsa.legacy-enc.pem"), W_LEGACY_ENC_PEM,
                    rsa->full, NULL) &&
           write_to(path_for(crt_key_pem, sizeof crt_key_pem, "rsa.crt+key.pem"), W_CERT_KEY, rsa->full,
                    rsa->cert) &&
           write_to(path_for(key_crt_pem, sizeof key_crt_pem, "rsa.key+crt.pem"), W_KEY_CERT, rsa->full,
                    rsa->cert);
}

/* Free the reference objects (the files stay). */
static void free_reference_keys(void)
{
    for (int t = 0; t < K_COUNT; t++) {
        EVP_PKEY_free(keys[t].full);
        EVP_PKEY_free(keys[t].pub);
        EVP_PKEY_free(keys[t].other);
        EVP_PKEY_free(keys[t].other_pub);
        X509_free(keys[t].cert);
        keys[t].full = keys[t].pub = keys[t].other = keys[t].other_pub = NULL;
        keys[t].cert = NULL;
    }
    OSSL_PROVIDER_unload(plain_deflt);
    OSSL_LIB_CTX_free(plain);
    plain_deflt = NULL;
    plain = NULL;
}

static void teardown(void)
{
    for (size_t i = 0; i < n_created; i++)
        wipe_file(created[i]);
    rmdir(workdir);
    free_reference_keys();
}

/* ---- helpers over the API ---- */

static const char *provider_of(const EVP_PKEY *k)
{
    const OSSL_PROVIDER *p = k != NULL ? EVP_PKEY_get0_provider(k) : NULL;
    return p != NULL ? OSSL_PROVIDER_get0_name(p) : "(none)";
}

static bool is_memguard(const EVP_PKEY *k)
{
    return strcmp(provider_of(k), "memguard") == 0;
}

static int pass_cb(char *buf, int size, int rwflag, void *u)
{
    (void)rwflag;
    const char *pw = u;
    int n = (int)strlen(pw);
    if (n > size)
        return -1;
    memcpy(buf, pw, (size_t)n);
    return n;
}

/* nginx's way (ngx_ssl_load_certificate_key): PEM_read_bio_PrivateKey on a file BIO. */
static EVP_PKEY *load_pem(const char *path, const char *pass)
{
    BIO *b = BIO_new_file(path, "r");
    EVP_PKEY *k =
        b != NULL ? PEM_read_bio_PrivateKey(b, NULL, pass != NULL ? pass_cb : NULL, (void *)(uintptr_t)pass)
                  : NULL;
    BIO_free(b);
    return k;
}

/* The openssl apps' way (load_key_certs_crls): OSSL_STORE on a file: URI. */
static EVP_PKEY *load_store(const char *path)
{
    char uri[128];
    snprintf(uri, sizeof uri, "file:%s", path);
    OSSL_STORE_CTX *s = OSSL_STORE_open(uri, NULL, NULL, NULL, NULL);
    EVP_PKEY *k = NULL;
    if (s == NULL)
        return NULL;
    (void)OSSL_STORE_expect(s, OSSL_STORE_INFO_PKEY);
    while (k == NULL && !OSSL_STORE_eof(s)) {
        OSSL_STORE_INFO *info = OSSL_STORE_load(s);
        if (info == NULL)
            break;
        if (OSSL_STORE_INFO_get_type(info) == OSSL_STORE_INFO_PKEY)
            k = OSSL_STORE_INFO_get1_PKEY(info);
        OSSL_STORE_INFO_free(info);
    }
    OSSL_STORE_close(s);
    return k;
}

static EVP_PKEY *load_der(const char *path, int id)
{
    size_t n;
    unsigned char *der = slurp(path, &n);
    const unsigned char *p = der;
    EVP_PKEY *k = NULL;
    if (der != NULL && n > 0)
        k = id == EVP_PKEY_NONE ? d2i_AutoPrivateKey(NULL, &p, (long)n)
                                : d2i_PrivateKey_ex(id, NULL, &p, (long)n, NULL, NULL);
    burn(der, n);
    return k;
}

enum pad { PAD_DEFAULT, PAD_PSS };

/* EVP_DigestSign with k (NULL libctx for memguard keys, plain for reference keys). */
static bool sign_msg(EVP_PKEY *k, OSSL_LIB_CTX *libctx, const char *md, enum pad pad, const void *msg,
                     size_t n, unsigned char *sig, size_t *siglen)
{
    EVP_MD_CTX *m = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pc = NULL;
    bool ok = m != NULL && EVP_DigestSignInit_ex(m, &pc, md, libctx, NULL, k, NULL) == 1 &&
              (pad == PAD_DEFAULT || (EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PSS_PADDING) > 0 &&
                                      EVP_PKEY_CTX_set_rsa_pss_saltlen(pc, RSA_PSS_SALTLEN_DIGEST) > 0)) &&
              EVP_DigestSign(m, sig, siglen, msg, n) == 1;
    EVP_MD_CTX_free(m);
    return ok;
}

/* Verification with a plain key in the plain context (saltlen "digest" is checked exactly on verify). */
static bool verify_msg(EVP_PKEY *pub, const char *md, enum pad pad, const void *msg, size_t n,
                       const unsigned char *sig, size_t siglen)
{
    EVP_MD_CTX *m = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pc = NULL;
    bool ok = m != NULL && EVP_DigestVerifyInit_ex(m, &pc, md, plain, NULL, pub, NULL) == 1 &&
              (pad == PAD_DEFAULT || (EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PSS_PADDING) > 0 &&
                                      EVP_PKEY_CTX_set_rsa_pss_saltlen(pc, RSA_PSS_SALTLEN_DIGEST) > 0)) &&
              EVP_DigestVerify(m, sig, siglen, msg, n) == 1;
    EVP_MD_CTX_free(m);
    ERR_clear_error(); /* a failed verification leaves errors behind; callers only want the answer */
    return ok;
}

/* Sign with the memguard key, verify with the plain public key. */
static bool signs_for(EVP_PKEY *mg, const struct refkey *r, EVP_PKEY *pub)
{
    static const char msg[] = "signed through a sealed key";
    unsigned char sig[512];
    size_t len = sizeof sig;
    return sign_msg(mg, NULL, r->md, PAD_DEFAULT, msg, sizeof msg, sig, &len) &&
           verify_msg(pub, r->md, PAD_DEFAULT, msg, sizeof msg, sig, len);
}

static const int capture_types[] = {K_RSA, K_EC, K_ED25519};
#define N_CAPTURE (sizeof capture_types / sizeof capture_types[0])

/* A captured key: memguard, of the right type, with the right public part. */
static void expect_captured(EVP_PKEY *k, const struct refkey *r, const char *how)
{
    if (!CHECK(k != NULL, "%s: %s gave no key", r->type, how))
        return;
    CHECK(is_memguard(k), "%s: %s gave a key of provider \"%s\", not memguard", r->type, how, provider_of(k));
    CHECK(EVP_PKEY_is_a(k, r->type), "%s: %s gave a key of another type", r->type, how);
    CHECK(EVP_PKEY_eq(k, r->pub) == 1, "%s: %s gave a key whose public part differs", r->type, how);
}

/* ---- 1. capture through every loading path ---- */

static void test_pem_read_bio_privatekey_captures(void)
{
    for (size_t i = 0; i < N_CAPTURE; i++) {
        const struct refkey *r = &keys[capture_types[i]];
        EVP_PKEY *k = load_pem(r->pem, NULL);
        expect_captured(k, r, "PEM_read_bio_PrivateKey (PKCS#8)");
        EVP_PKEY_free(k);
        if (r->trad[0] != '\0') {
            k = load_pem(r->trad, NULL);
            expect_captured(k, r, "PEM_read_bio_PrivateKey (traditional)");
            EVP_PKEY_free(k);
        }
    }
    /* The key and its certificate in one file, in either order. */
    EVP_PKEY *k = load_pem(crt_key_pem, NULL);
    expect_captured(k, &keys[K_RSA], "PEM_read_bio_PrivateKey (certificate, then key)");
    EVP_PKEY_free(k);
    BIO *b = BIO_new_file(key_crt_pem, "r");
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    k = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
    expect_captured(k, &keys[K_RSA], "PEM_read_bio_PrivateKey (key, then certificate)");
    /* The input is left just past the key: the certificate that follows still reads. */
    X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);
    CHECK(x != NULL && X509_cmp(x, keys[K_RSA].cert) == 0, "the certificate after the key did not read");
    X509_free(x);
    BIO_free(b);
    EVP_PKEY_free(k);
    ERR_clear_error();
}

static void test_ossl_store_captures(void)
{
    for (size_t i = 0; i < N_CAPTURE; i++) {
        const struct refkey *r = &keys[capture_types[i]];
        EVP_PKEY *k = load_store(r->pem);
        expect_captured(k, r, "OSSL_STORE file: (PEM)");
        EVP_PKEY_free(k);
        k = load_store(r->der);
        expect_captured(k, r, "OSSL_STORE file: (DER)");
        EVP_PKEY_free(k);
    }
}

static void test_ssl_ctx_use_privatekey_file_captures(void)
{
    for (size_t i = 0; i < N_CAPTURE; i++) {
        const struct refkey *r = &keys[capture_types[i]];
        SSL_CTX *c = SSL_CTX_new(TLS_server_method());
        CU_ASSERT_PTR_NOT_NULL_FATAL(c);
        CHECK(SSL_CTX_use_certificate_file(c, r->crt, SSL_FILETYPE_PEM) == 1, "%s: use_certificate_file",
              r->type);
        CHECK(SSL_CTX_use_PrivateKey_file(c, r->pem, SSL_FILETYPE_PEM) == 1, "%s: use_PrivateKey_file",
              r->type);
        CHECK(SSL_CTX_check_private_key(c) == 1, "%s: SSL_CTX_check_private_key", r->type);
        expect_captured(SSL_CTX_get0_privatekey(c), r, "SSL_CTX_use_PrivateKey_file");
        SSL_CTX_free(c);
        ERR_clear_error();
    }
    /* One file holding the certificate and the key (either order), as servers are often configured. */
    const char *combined[] = {crt_key_pem, key_crt_pem};
    for (size_t i = 0; i < 2; i++) {
        SSL_CTX *c = SSL_CTX_new(TLS_server_method());
        CU_ASSERT_PTR_NOT_NULL_FATAL(c);
        CHECK(SSL_CTX_use_certificate_chain_file(c, combined[i]) == 1 &&
                  SSL_CTX_use_PrivateKey_file(c, combined[i], SSL_FILETYPE_PEM) == 1 &&
                  SSL_CTX_check_private_key(c) == 1,
              "%s: certificate and key from one file", combined[i]);
        expect_captured(SSL_CTX_get0_privatekey(c), &keys[K_RSA],
                        "SSL_CTX_use_PrivateKey_file (combined file)");
        SSL_CTX_free(c);
        ERR_clear_error();
    }
    /* Control: the check above is a real comparison (a key not matching the certificate fails). */
    SSL_CTX *c = SSL_CTX_new(TLS_server_method());
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CHECK(SSL_CTX_use_certificate_file(c, keys[K_EC].crt, SSL_FILETYPE_PEM) == 1, "EC: use_certificate_file");
    CHECK(SSL_CTX_use_PrivateKey_file(c, other_ec_pem, SSL_FILETYPE_PEM) != 1,
          "a private key that does not match the certificate was accepted");
    SSL_CTX_free(c);
    ERR_clear_error();
}

static void test_der_pkcs8_captures(void)
{
    for (size_t i = 0; i < N_CAPTURE; i++) {
        const struct refkey *r = &keys[capture_types[i]];
        EVP_PKEY *k = load_der(r->der, EVP_PKEY_NONE);
        expect_captured(k, r, "d2i_AutoPrivateKey (PKCS#8 DER)");
        EVP_PKEY_free(k);
        k = load_der(r->der, r->id);
        expect_captured(k, r, "d2i_PrivateKey_ex (PKCS#8 DER)");
        EVP_PKEY_free(k);
    }
    /* The RSA key's traditional (PKCS#1) DER, as i2d_PrivateKey writes it. */
    unsigned char *trad = NULL;
    int tlen = i2d_PrivateKey(keys[K_RSA].full, &trad);
    CU_ASSERT_FATAL(tlen > 0);
    const unsigned char *p = trad;
    EVP_PKEY *k = d2i_PrivateKey_ex(EVP_PKEY_RSA, NULL, &p, tlen, NULL, NULL);
    expect_captured(k, &keys[K_RSA], "d2i_PrivateKey_ex (traditional RSA DER)");
    EVP_PKEY_free(k);
    OPENSSL_clear_free(trad, (size_t)tlen);
}

/*
 * d2i_* advance *pp to just past the object they parsed: callers walk buffers of several objects
 * and reject trailing garbage by comparing *pp with the end. Through memguard the same must hold.
 */
static void test_der_d2i_consumes_exactly_the_key(void)
{
    for (size_t i = 0; i < N_CAPTURE; i++) {
        const struct refkey *r = &keys[capture_types[i]];
        size_t n;
        unsigned char *der = slurp(r->der, &n);
        CU_ASSERT_FATAL(der != NULL && n > 0 && n + 16 <= 65536);
        memset(der + n, 0x30, 16); /* trailing bytes: another SEQUENCE could start here */
        for (int how = 0; how < 3; how++) {
            const unsigned char *p = der;
            EVP_PKEY *k = how == 0   ? d2i_AutoPrivateKey(NULL, &p, (long)n + 16)
                          : how == 1 ? d2i_PrivateKey_ex(r->id, NULL, &p, (long)n + 16, NULL, NULL)
                                     : d2i_PrivateKey_ex(r->id, NULL, &p, (long)n + 16, plain, NULL);
            const char *what = how == 0   ? "d2i_AutoPrivateKey"
                               : how == 1 ? "d2i_PrivateKey_ex"
                                          : "d2i_PrivateKey_ex (control: plain context)";
            if (how < 2)
                expect_captured(k, r, what);
            else
                CHECK(k != NULL, "%s: %s gave no key", r->type, what);
            CHECK(p == der + n, "%s: %s consumed %td bytes of a %zu-byte key followed by 16 other bytes",
                  r->type, what, p - der, n);
            EVP_PKEY_free(k);
        }
        burn(der, n + 16);
        ERR_clear_error();
    }
}

/* ---- 2. private export refused, public export works ---- */

static void test_private_export_refused_public_export_works(void)
{
    for (int t = 0; t < K_COUNT; t++) {
        const struct refkey *r = &keys[t];
        EVP_PKEY *k = load_pem(r->pem, NULL);
        if (!CHECK(k != NULL && is_memguard(k), "%s: not loaded through memguard", r->type))
            continue;
        ERR_clear_error();

        OSSL_PARAM *params = NULL;
        CHECK(EVP_PKEY_todata(k, EVP_PKEY_KEYPAIR, &params) != 1, "%s: EVP_PKEY_todata(KEYPAIR) succeeded",
              r->type);
        OSSL_PARAM_free(params); /* NULL unless the refusal failed */
        params = NULL;

        BIO *out = BIO_new(BIO_s_mem());
        CU_ASSERT_PTR_NOT_NULL_FATAL(out);
        CHECK(PEM_write_bio_PrivateKey(out, k, NULL, NULL, 0, NULL, NULL) != 1,
              "%s: PEM_write_bio_PrivateKey succeeded", r->type);
        CHECK(PEM_write_bio_PKCS8PrivateKey(out, k, EVP_aes_256_cbc(), right_pass, (int)strlen(right_pass),
                                            NULL, NULL) != 1,
              "%s: PEM_write_bio_PKCS8PrivateKey (encrypted) succeeded", r->type);
        char *data = NULL;
        long len = BIO_get_mem_data(out, &data);
        CHECK(len <= 0 || memmem(data, (size_t)len, "PRIVATE KEY", 11) == NULL,
              "%s: a private key PEM was written", r->type);
        if (len > 0)
            mg_wipe(data, (size_t)len);
        BIO_free(out);
        unsigned char *der = NULL;
        int dlen = i2d_PrivateKey(k, &der);
        CHECK(dlen <= 0, "%s: i2d_PrivateKey gave %d bytes", r->type, dlen);
        if (dlen > 0)
            OPENSSL_clear_free(der, (size_t)dlen);

        /* The private component is not readable as a parameter either. */
        if (t == K_RSA || t == K_EC) {
            BIGNUM *bn = NULL;
            const char *name = t == K_RSA ? OSSL_PKEY_PARAM_RSA_D : OSSL_PKEY_PARAM_PRIV_KEY;
            CHECK(EVP_PKEY_get_bn_param(k, name, &bn) != 1, "%s: EVP_PKEY_get_bn_param(%s) succeeded",
                  r->type, name);
            BN_clear_free(bn);
        } else {
            unsigned char raw[64];
            size_t rlen = sizeof raw;
            CHECK(EVP_PKEY_get_raw_private_key(k, raw, &rlen) != 1,
                  "%s: EVP_PKEY_get_raw_private_key succeeded", r->type);
            mg_wipe(raw, sizeof raw);
        }
        ERR_clear_error();

        /* Public export works, carries nothing private, and is the reference key's public part. */
        CHECK(EVP_PKEY_todata(k, EVP_PKEY_PUBLIC_KEY, &params) == 1, "%s: EVP_PKEY_todata(PUBLIC) failed",
              r->type);
        if (params != NULL) {
            CHECK(OSSL_PARAM_locate(params, OSSL_PKEY_PARAM_RSA_D) == NULL &&
                      OSSL_PARAM_locate(params, OSSL_PKEY_PARAM_PRIV_KEY) == NULL,
                  "%s: the public export carries a private parameter", r->type);
            EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new_from_name(plain, r->type, NULL);
            EVP_PKEY *rebuilt = NULL;
            CHECK(pc != NULL && EVP_PKEY_fromdata_init(pc) == 1 &&
                      EVP_PKEY_fromdata(pc, &rebuilt, EVP_PKEY_PUBLIC_KEY, params) == 1 &&
                      EVP_PKEY_eq(rebuilt, r->pub) == 1,
                  "%s: the exported public parameters are not the reference public key", r->type);
            EVP_PKEY_free(rebuilt);
            EVP_PKEY_CTX_free(pc);
            OSSL_PARAM_free(params);
        }
        unsigned char *mine = NULL, *theirs = NULL;
        int mlen = i2d_PUBKEY(k, &mine), tlen = i2d_PUBKEY(r->pub, &theirs);
        CHECK(mlen > 0 && mlen == tlen && memcmp(mine, theirs, (size_t)mlen) == 0,
              "%s: i2d_PUBKEY differs from the reference (%d vs %d bytes)", r->type, mlen, tlen);
        OPENSSL_free(mine);
        OPENSSL_free(theirs);
        /* Both argument orders: OpenSSL compares in the first key's provider when it can export there. */
        CHECK(EVP_PKEY_eq(k, r->pub) == 1, "%s: EVP_PKEY_eq(memguard key, plain public copy) != 1", r->type);
        CHECK(EVP_PKEY_eq(r->pub, k) == 1, "%s: EVP_PKEY_eq(plain public copy, memguard key) != 1", r->type);
        CHECK(EVP_PKEY_eq(k, r->other_pub) != 1, "%s: EVP_PKEY_eq(memguard key, unrelated key) == 1",
              r->type);
        CHECK(EVP_PKEY_eq(r->other_pub, k) != 1, "%s: EVP_PKEY_eq(unrelated key, memguard key) == 1",
              r->type);
        EVP_PKEY_free(k);
        ERR_clear_error();
    }
}

/* ---- 3. interoperability with plain OpenSSL ---- */

static void test_signatures_verify_with_the_plain_key(void)
{
    static const char msg[] = "interop: made by memguard, checked by plain OpenSSL";
    static const char other[] = "interop: made by memguard, checked by plain OpenSSL!";
    struct {
        int t;
        enum pad pad;
        const char *what;
        bool deterministic;
    } cases[] = {
        {K_RSA, PAD_DEFAULT, "RSA PKCS#1 v1.5 SHA-256", true},
        {K_RSA, PAD_PSS, "RSA-PSS SHA-256 saltlen=digest", false},
        {K_EC, PAD_DEFAULT, "ECDSA P-256 SHA-256", false},
        {K_ED25519, PAD_DEFAULT, "Ed25519", true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct refkey *r = &keys[cases[i].t];
        EVP_PKEY *k = load_pem(r->pem, NULL);
        if (!CHECK(k != NULL && is_memguard(k), "%s: not loaded through memguard", cases[i].what))
            continue;
        unsigned char sig[512], ref[512];
        size_t len = sizeof sig, rlen = sizeof ref;
        if (CHECK(sign_msg(k, NULL, r->md, cases[i].pad, msg, sizeof msg, sig, &len), "%s: signing failed",
                  cases[i].what)) {
            CHECK(verify_msg(r->pub, r->md, cases[i].pad, msg, sizeof msg, sig, len),
                  "%s: the signature does not verify with the plain key", cases[i].what);
            CHECK(!verify_msg(r->pub, r->md, cases[i].pad, other, sizeof other, sig, len),
                  "%s: the signature verifies for another message", cases[i].what);
            CHECK(!verify_msg(r->other_pub, r->md, cases[i].pad, msg, sizeof msg, sig, len),
                  "%s: the signature verifies with an unrelated key", cases[i].what);
            if (cases[i].pad == PAD_PSS)
                CHECK(!verify_msg(r->pub, r->md, PAD_DEFAULT, msg, sizeof msg, sig, len),
                      "%s: the padding parameter was ignored (verifies as PKCS#1 v1.5)", cases[i].what);
            if (cases[i].deterministic)
                CHECK(sign_msg(r->full, plain, r->md, cases[i].pad, msg, sizeof msg, ref, &rlen) &&
                          rlen == len && memcmp(ref, sig, len) == 0,
                      "%s: the signature differs from plain OpenSSL's (a deterministic scheme)",
                      cases[i].what);
        }
        /* A signature by plain OpenSSL verifies through the memguard key object (public part). */
        rlen = sizeof ref;
        EVP_MD_CTX *m = EVP_MD_CTX_new();
        EVP_PKEY_CTX *pc = NULL;
        CHECK(sign_msg(r->full, plain, r->md, cases[i].pad, msg, sizeof msg, ref, &rlen) && m != NULL &&
                  EVP_DigestVerifyInit_ex(m, &pc, r->md, NULL, NULL, k, NULL) == 1 &&
                  (cases[i].pad == PAD_DEFAULT ||
                   (EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PSS_PADDING) > 0 &&
                    EVP_PKEY_CTX_set_rsa_pss_saltlen(pc, RSA_PSS_SALTLEN_DIGEST) > 0)) &&
                  EVP_DigestVerify(m, ref, rlen, (const unsigned char *)msg, sizeof msg) == 1,
              "%s: a plain signature does not verify with the memguard key", cases[i].what);
        EVP_MD_CTX_free(m);
        EVP_PKEY_free(k);
        ERR_clear_error();
    }
}

static void test_rsa_oaep_decrypts_what_plain_encrypted(void)
{
    EVP_PKEY *k = load_pem(keys[K_RSA].pem, NULL);
    CU_ASSERT_FATAL(k != NULL && is_memguard(k));
    static const unsigned char msg[] = "a premaster-secret-sized message for OAEP";
    const char *mds[] = {NULL, "SHA256"}; /* OAEP's default (SHA-1) and SHA-256 */
    for (size_t i = 0; i < 2; i++) {
        unsigned char ct[256], pt[256];
        size_t ctlen = sizeof ct, ptlen = sizeof pt;
        EVP_PKEY_CTX *e = EVP_PKEY_CTX_new_from_pkey(plain, keys[K_RSA].pub, NULL);
        bool enc = e != NULL && EVP_PKEY_encrypt_init(e) == 1 &&
                   EVP_PKEY_CTX_set_rsa_padding(e, RSA_PKCS1_OAEP_PADDING) > 0 &&
                   (mds[i] == NULL || EVP_PKEY_CTX_set_rsa_oaep_md_name(e, mds[i], NULL) > 0) &&
                   EVP_PKEY_encrypt(e, ct, &ctlen, msg, sizeof msg) == 1;
        EVP_PKEY_CTX_free(e);
        CU_ASSERT_FATAL(enc);
        EVP_PKEY_CTX *d = EVP_PKEY_CTX_new_from_pkey(NULL, k, NULL);
        bool dec = d != NULL && EVP_PKEY_decrypt_init(d) == 1 &&
                   EVP_PKEY_CTX_set_rsa_padding(d, RSA_PKCS1_OAEP_PADDING) > 0 &&
                   (mds[i] == NULL || EVP_PKEY_CTX_set_rsa_oaep_md_name(d, mds[i], NULL) > 0) &&
                   EVP_PKEY_decrypt(d, pt, &ptlen, ct, ctlen) == 1;
        EVP_PKEY_CTX_free(d);
        CHECK(dec && ptlen == sizeof msg && memcmp(pt, msg, sizeof msg) == 0,
              "OAEP (%s): memguard did not recover the plaintext", mds[i] != NULL ? mds[i] : "SHA-1");
        mg_wipe(pt, sizeof pt);
        /* Control: a wrong OAEP digest must not decrypt (the parameter reaches the operation). */
        if (mds[i] != NULL) {
            ptlen = sizeof pt;
            d = EVP_PKEY_CTX_new_from_pkey(NULL, k, NULL);
            dec = d != NULL && EVP_PKEY_decrypt_init(d) == 1 &&
                  EVP_PKEY_CTX_set_rsa_padding(d, RSA_PKCS1_OAEP_PADDING) > 0 &&
                  EVP_PKEY_decrypt(d, pt, &ptlen, ct, ctlen) == 1;
            EVP_PKEY_CTX_free(d);
            CHECK(!dec, "OAEP: decryption with the wrong digest succeeded");
            mg_wipe(pt, sizeof pt);
        }
        ERR_clear_error();
    }
    EVP_PKEY_free(k);
}

/* derive(mine, peer public) in libctx into out. */
static bool derive(EVP_PKEY *mine, EVP_PKEY *peer, OSSL_LIB_CTX *libctx, unsigned char *out, size_t *len)
{
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_pkey(libctx, mine, NULL);
    bool ok = c != NULL && EVP_PKEY_derive_init(c) == 1 && EVP_PKEY_derive_set_peer(c, peer) == 1 &&
              EVP_PKEY_derive(c, out, len) == 1;
    EVP_PKEY_CTX_free(c);
    return ok;
}

static void test_key_agreement_agrees_with_plain(void)
{
    const int types[] = {K_EC, K_X25519};
    for (size_t i = 0; i < 2; i++) {
        const struct refkey *r = &keys[types[i]];
        EVP_PKEY *k = load_pem(r->pem, NULL);
        if (!CHECK(k != NULL && is_memguard(k), "%s: not loaded through memguard", r->type))
            continue;
        /* Peer: the unrelated plain key. memguard derives with its public part, plain with ours. */
        unsigned char a[128], b[128];
        size_t alen = sizeof a, blen = sizeof b;
        bool ok_a = derive(k, r->other_pub, NULL, a, &alen);
        bool ok_b = derive(r->other, r->pub, plain, b, &blen);
        CHECK(ok_a, "%s: derive through memguard failed", r->type);
        CU_ASSERT_FATAL(ok_b);
        CHECK(ok_a && alen == blen && memcmp(a, b, alen) == 0, "%s: the derived secrets differ", r->type);
        /* And with a peer given as a full plain key pair (its private part is not used). */
        alen = sizeof a;
        CHECK(derive(k, r->other, NULL, a, &alen) && alen == blen && memcmp(a, b, alen) == 0,
              "%s: derive with a full plain peer key differs", r->type);
        mg_wipe(a, sizeof a);
        mg_wipe(b, sizeof b);
        EVP_PKEY_free(k);
        ERR_clear_error();
    }
}

/* A fresh EC key of curve, made by the plain side and read back through memguard's decoders. */
static EVP_PKEY *sealed_ec_key(const char *curve, EVP_PKEY **full)
{
    *full = EVP_PKEY_Q_keygen(plain, NULL, "EC", curve);
    BIO *b = BIO_new(BIO_s_mem());
    EVP_PKEY *k = NULL;
    if (*full != NULL && b != NULL && PEM_write_bio_PrivateKey(b, *full, NULL, NULL, 0, NULL, NULL) == 1)
        k = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
    BIO_free(b); /* a memory BIO's buffer: test keys only */
    return k;
}

/* ECDH derive with options: kdf (X9.63 with SHA-256, 48 bytes) and/or cofactor mode. */
static bool derive_opts(EVP_PKEY *mine, EVP_PKEY *peer, OSSL_LIB_CTX *libctx, bool kdf, bool cofactor,
                        unsigned char *out, size_t *len)
{
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_pkey(libctx, mine, NULL);
    bool ok = c != NULL && EVP_PKEY_derive_init(c) == 1;
    if (ok && cofactor)
        ok = EVP_PKEY_CTX_set_ecdh_cofactor_mode(c, 1) == 1;
    if (ok && kdf)
        ok = EVP_PKEY_CTX_set_ecdh_kdf_type(c, EVP_PKEY_ECDH_KDF_X9_63) == 1 &&
             EVP_PKEY_CTX_set_ecdh_kdf_md(c, EVP_sha256()) == 1 && EVP_PKEY_CTX_set_ecdh_kdf_outlen(c, 48) == 1;
    ok = ok && EVP_PKEY_derive_set_peer(c, peer) == 1 && EVP_PKEY_derive(c, out, len) == 1;
    EVP_PKEY_CTX_free(c);
    return ok;
}

/*
 * ECDH on every curve memguard seals, against many peers: plain ECDH takes memguard's per-key curve
 * path (only the scalar unsealed), KDF and cofactor options the generic one; both must give the
 * plain side's bytes. A short output buffer and a peer of another curve fail cleanly.
 */
static void test_ecdh_curves_peers_and_options(void)
{
    const char *curves[] = {"P-256", "P-384", "P-521", "secp256k1"};
    EVP_PKEY *other = EVP_PKEY_Q_keygen(plain, NULL, "EC", "P-384");
    CU_ASSERT_FATAL(other != NULL);
    for (size_t i = 0; i < sizeof curves / sizeof curves[0]; i++) {
        EVP_PKEY *full = NULL, *k = sealed_ec_key(curves[i], &full);
        if (!CHECK(k != NULL && is_memguard(k), "%s: not loaded through memguard", curves[i])) {
            EVP_PKEY_free(full);
            EVP_PKEY_free(k);
            continue;
        }
        size_t field = (size_t)(EVP_PKEY_get_bits(k) + 7) / 8;
        for (int n = 0; n < 12; n++) {
            EVP_PKEY *peer = EVP_PKEY_Q_keygen(plain, NULL, "EC", curves[i]);
            CU_ASSERT_FATAL(peer != NULL);
            unsigned char a[128], b[128];
            size_t alen = sizeof a, blen = sizeof b;
            bool kdf = n % 4 == 1, cof = n % 4 == 2 || n % 4 == 3;
            CHECK(derive_opts(k, peer, NULL, kdf, cof, a, &alen) && derive_opts(peer, full, plain, kdf, cof, b, &blen) &&
                      alen == blen && alen == (kdf ? 48 : field) && memcmp(a, b, alen) == 0,
                  "%s: peer %d (kdf %d, cofactor %d): memguard and plain disagree", curves[i], n, kdf, cof);
            if (n == 0) { /* one byte short of the field size */
                EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_pkey(NULL, k, NULL);
                size_t shortlen = field - 1;
                CHECK(c != NULL && EVP_PKEY_derive_init(c) == 1 && EVP_PKEY_derive_set_peer(c, peer) == 1 &&
                          EVP_PKEY_derive(c, a, &shortlen) != 1,
                      "%s: a %zu-byte buffer for a %zu-byte secret was accepted", curves[i], field - 1, field);
                EVP_PKEY_CTX_free(c);
                ERR_clear_error();
            }
            mg_wipe(a, sizeof a);
            mg_wipe(b, sizeof b);
            EVP_PKEY_free(peer);
        }
        if (strcmp(curves[i], "P-384") != 0) { /* a peer of another curve: refused, no secret */
            unsigned char a[128];
            size_t alen = sizeof a;
            CHECK(!derive(k, other, NULL, a, &alen), "%s: derived with a P-384 peer", curves[i]);
            ERR_clear_error();
        }
        EVP_PKEY_free(k);
        EVP_PKEY_free(full);
    }
    EVP_PKEY_free(other);
}

/*
 * X25519 against many peers (memguard computes it with libsodium in guarded scratch; the bytes
 * must be OpenSSL's), a small-order peer point refused by both sides, and a short buffer refused.
 */
static void test_x25519_peers_and_small_order_points(void)
{
    EVP_PKEY *full = EVP_PKEY_Q_keygen(plain, NULL, "X25519");
    BIO *b = BIO_new(BIO_s_mem());
    EVP_PKEY *k = NULL;
    if (full != NULL && b != NULL && PEM_write_bio_PrivateKey(b, full, NULL, NULL, 0, NULL, NULL) == 1)
        k = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
    BIO_free(b);
    CU_ASSERT_FATAL(k != NULL && is_memguard(k));
    for (int n = 0; n < 20; n++) {
        EVP_PKEY *peer = EVP_PKEY_Q_keygen(plain, NULL, "X25519");
        CU_ASSERT_FATAL(peer != NULL);
        unsigned char x[64], y[64];
        size_t xl = sizeof x, yl = sizeof y;
        CHECK(derive(k, peer, NULL, x, &xl) && derive(peer, full, plain, y, &yl) && xl == 32 && yl == 32 &&
                  memcmp(x, y, 32) == 0,
              "X25519 peer %d: memguard and plain disagree", n);
        if (n == 0) {
            EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_pkey(NULL, k, NULL);
            size_t shortlen = 31;
            CU_ASSERT(c != NULL && EVP_PKEY_derive_init(c) == 1 && EVP_PKEY_derive_set_peer(c, peer) == 1 &&
                      EVP_PKEY_derive(c, x, &shortlen) != 1);
            EVP_PKEY_CTX_free(c);
            ERR_clear_error();
        }
        mg_wipe(x, sizeof x);
        mg_wipe(y, sizeof y);
        EVP_PKEY_free(peer);
    }
    /* u = 0 and u = 1 are points of small order: the shared secret would be all zeros. */
    for (unsigned char u = 0; u < 2; u++) {
        unsigned char pub[32] = {u}, x[64];
        size_t xl = sizeof x;
        EVP_PKEY *bad = EVP_PKEY_new_raw_public_key_ex(plain, "X25519", NULL, pub, sizeof pub);
        CU_ASSERT_FATAL(bad != NULL);
        bool mine = derive(k, bad, NULL, x, &xl);
        xl = sizeof x;
        bool theirs = derive(full, bad, plain, x, &xl);
        CHECK(!mine && !theirs, "small-order point u=%u: memguard %s, plain %s", u, mine ? "derived" : "refused",
              theirs ? "derived" : "refused");
        ERR_clear_error();
        EVP_PKEY_free(bad);
    }
    EVP_PKEY_free(k);
    EVP_PKEY_free(full);
}

/* ---- 4. keys that never went through memguard stay on the default provider ---- */

static void test_other_keys_stay_default(void)
{
    static const char msg[] = "a key of the default provider";
    EVP_PKEY *gen = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    CU_ASSERT_PTR_NOT_NULL_FATAL(gen);
    CHECK(strcmp(provider_of(gen), "default") == 0,
          "EVP_PKEY_Q_keygen(EC P-256) gave a key of provider \"%s\"", provider_of(gen));
    EVP_PKEY *gen_pub = public_copy(gen, plain);
    unsigned char sig[512];
    size_t len = sizeof sig;
    CHECK(gen_pub != NULL && sign_msg(gen, NULL, "SHA256", PAD_DEFAULT, msg, sizeof msg, sig, &len) &&
              verify_msg(gen_pub, "SHA256", PAD_DEFAULT, msg, sizeof msg, sig, len),
          "a generated default EC key does not sign");
    /* Its private part exports as usual: it is not sealed. */
    OSSL_PARAM *params = NULL;
    CHECK(EVP_PKEY_todata(gen, EVP_PKEY_KEYPAIR, &params) == 1, "a default key's private export failed");
    for (OSSL_PARAM *p = params; p != NULL && p->key != NULL; p++)
        if (p->data != NULL)
            mg_wipe(p->data, p->data_size);
    OSSL_PARAM_free(params);
    EVP_PKEY_free(gen_pub);
    EVP_PKEY_free(gen);

    /* A raw Ed25519 private key. */
    unsigned char raw[32];
    CU_ASSERT_FATAL(RAND_bytes_ex(plain, raw, sizeof raw, 0) == 1);
    EVP_PKEY *ed = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, raw, sizeof raw);
    mg_wipe(raw, sizeof raw);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ed);
    CHECK(strcmp(provider_of(ed), "default") == 0,
          "EVP_PKEY_new_raw_private_key gave a key of provider \"%s\"", provider_of(ed));
    EVP_PKEY *ed_pub = public_copy(ed, plain);
    len = sizeof sig;
    CHECK(ed_pub != NULL && sign_msg(ed, NULL, NULL, PAD_DEFAULT, msg, sizeof msg, sig, &len) &&
              verify_msg(ed_pub, NULL, PAD_DEFAULT, msg, sizeof msg, sig, len),
          "a raw Ed25519 key does not sign");
    EVP_PKEY_free(ed_pub);
    EVP_PKEY_free(ed);

    /* EVP_PKEY_fromdata with no property query, from the reference RSA key's parameters. */
    params = NULL;
    CU_ASSERT_FATAL(EVP_PKEY_todata(keys[K_RSA].full, EVP_PKEY_KEYPAIR, &params) == 1);
    EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
    EVP_PKEY *fd = NULL;
    CHECK(pc != NULL && EVP_PKEY_fromdata_init(pc) == 1 &&
              EVP_PKEY_fromdata(pc, &fd, EVP_PKEY_KEYPAIR, params) == 1,
          "EVP_PKEY_fromdata(RSA) failed");
    for (OSSL_PARAM *p = params; p->key != NULL; p++)
        if (p->data != NULL)
            mg_wipe(p->data, p->data_size);
    OSSL_PARAM_free(params);
    EVP_PKEY_CTX_free(pc);
    if (fd != NULL) {
        CHECK(strcmp(provider_of(fd), "default") == 0, "EVP_PKEY_fromdata gave a key of provider \"%s\"",
              provider_of(fd));
        CHECK(signs_for(fd, &keys[K_RSA], keys[K_RSA].pub), "a fromdata RSA key does not sign");
    }
    EVP_PKEY_free(fd);
    ERR_clear_error();
}

/* ---- 5. keys generated inside memguard are sealed from birth ---- */

static void test_keygen_in_memguard_seals_from_birth(void)
{
    const int types[] = {K_EC, K_ED25519, K_RSA};
    for (size_t i = 0; i < 3; i++) {
        const struct refkey *r = &keys[types[i]];
        EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new_from_name(NULL, r->type, "provider=memguard");
        EVP_PKEY *k = NULL;
        bool ok = pc != NULL && EVP_PKEY_keygen_init(pc) == 1 &&
                  (types[i] != K_EC || EVP_PKEY_CTX_set_group_name(pc, "P-256") > 0) &&
                  (types[i] != K_RSA || EVP_PKEY_CTX_set_rsa_keygen_bits(pc, 2048) > 0) &&
                  EVP_PKEY_generate(pc, &k) == 1;
        EVP_PKEY_CTX_free(pc);
        if (!CHECK(ok && k != NULL, "%s: key generation in memguard failed", r->type))
            continue;
        CHECK(is_memguard(k), "%s: generated key is of provider \"%s\"", r->type, provider_of(k));
        CHECK(EVP_PKEY_is_a(k, r->type), "%s: generated key of another type", r->type);
        if (types[i] == K_RSA)
            CHECK(EVP_PKEY_get_bits(k) == 2048, "RSA: generated %d bits, asked for 2048",
                  EVP_PKEY_get_bits(k));
        if (types[i] == K_EC) {
            char group[64] = "";
            CHECK(EVP_PKEY_get_group_name(k, group, sizeof group, NULL) == 1 &&
                      strcmp(group, "prime256v1") == 0,
                  "EC: generated on group \"%s\", asked for P-256", group);
        }
        EVP_PKEY *pub = public_copy(k, plain);
        CHECK(pub != NULL && signs_for(k, r, pub), "%s: the generated key does not sign", r->type);
        CHECK(pub != NULL && EVP_PKEY_eq(pub, r->pub) != 1, "%s: the generated key is the reference key",
              r->type);
        EVP_PKEY_free(pub);
        OSSL_PARAM *params = NULL;
        CHECK(EVP_PKEY_todata(k, EVP_PKEY_KEYPAIR, &params) != 1,
              "%s: private export of a generated key worked", r->type);
        OSSL_PARAM_free(params);
        BIO *out = BIO_new(BIO_s_mem());
        CHECK(out != NULL && PEM_write_bio_PrivateKey(out, k, NULL, NULL, 0, NULL, NULL) != 1,
              "%s: PEM_write_bio_PrivateKey of a generated key worked", r->type);
        char *data = NULL;
        long len = out != NULL ? BIO_get_mem_data(out, &data) : 0;
        if (len > 0)
            mg_wipe(data, (size_t)len);
        BIO_free(out);
        EVP_PKEY_free(k);
        ERR_clear_error();
    }
}

/* ---- 6. one key, many threads ---- */

#define THREADS 8

static int sign_rounds(void)
{
    return getenv("MGT_UNDER_VALGRIND") != NULL ? 25 : 200;
}

struct shared {
    EVP_PKEY *key;
    const struct refkey *r;
    atomic_int signed_ok, sign_failed, verify_failed;
};

static void *signer(void *arg)
{
    struct shared *s = arg;
    int rounds = sign_rounds();
    for (int i = 0; i < rounds; i++) {
        char msg[64];
        int n = snprintf(msg, sizeof msg, "thread %p round %d", (void *)&msg, i);
        unsigned char sig[512];
        size_t len = sizeof sig;
        if (!sign_msg(s->key, NULL, s->r->md, PAD_DEFAULT, msg, (size_t)n, sig, &len)) {
            atomic_fetch_add(&s->sign_failed, 1);
            ERR_clear_error();
            continue;
        }
        if (!verify_msg(s->r->pub, s->r->md, PAD_DEFAULT, msg, (size_t)n, sig, len))
            atomic_fetch_add(&s->verify_failed, 1);
        else
            atomic_fetch_add(&s->signed_ok, 1);
    }
    ERR_clear_error();
    return NULL;
}

static void test_threads_share_one_key(void)
{
    const int types[] = {K_RSA, K_EC};
    for (size_t i = 0; i < 2; i++) {
        struct shared s = {load_pem(keys[types[i]].pem, NULL), &keys[types[i]], 0, 0, 0};
        if (!CHECK(s.key != NULL && is_memguard(s.key), "%s: not loaded through memguard", s.r->type))
            continue;
        pthread_t th[THREADS];
        for (int t = 0; t < THREADS; t++)
            CU_ASSERT_FATAL(pthread_create(&th[t], NULL, signer, &s) == 0);
        for (int t = 0; t < THREADS; t++)
            pthread_join(th[t], NULL);
        printf("\n    %s: %d signatures from %d threads, %d sign failures, %d bad signatures", s.r->type,
               atomic_load(&s.signed_ok), THREADS, atomic_load(&s.sign_failed),
               atomic_load(&s.verify_failed));
        CHECK(atomic_load(&s.sign_failed) == 0, "%s: %d signatures failed", s.r->type,
              atomic_load(&s.sign_failed));
        CHECK(atomic_load(&s.verify_failed) == 0, "%s: %d signatures did not verify", s.r->type,
              atomic_load(&s.verify_failed));
        CHECK(atomic_load(&s.signed_ok) == THREADS * sign_rounds(), "%s: %d of %d signatures", s.r->type,
              atomic_load(&s.signed_ok), THREADS * sign_rounds());
        EVP_PKEY_free(s.key);
    }
}

/* ---- 7. fork ---- */

struct fork_args {
    EVP_PKEY *key;
    const struct refkey *r;
};

/* In the child: 20 signatures with the parent's sealed key, each verified. Exit code says what failed. */
static void child_signs(void *arg)
{
    struct fork_args *a = arg;
    static const char msg[] = "signed in a forked child";
    for (int i = 0; i < 20; i++) {
        unsigned char sig[512];
        size_t len = sizeof sig;
        if (!sign_msg(a->key, NULL, a->r->md, PAD_DEFAULT, msg, sizeof msg, sig, &len))
            _exit(10);
        if (!verify_msg(a->r->pub, a->r->md, PAD_DEFAULT, msg, sizeof msg, sig, len))
            _exit(11);
    }
}

static void test_forked_children_sign_parent_keeps_signing(void)
{
    const int types[] = {K_EC, K_RSA};
    for (size_t i = 0; i < 2; i++) {
        struct fork_args a = {load_pem(keys[types[i]].pem, NULL), &keys[types[i]]};
        if (!CHECK(a.key != NULL && is_memguard(a.key), "%s: not loaded through memguard", a.r->type))
            continue;
        int child_failures = 0, parent_failures = 0;
        for (int round = 0; round < 10; round++) {
            int status = mgt_run_child(child_signs, &a, NULL, 0);
            if (!mgt_exited_ok(status) && child_failures++ == 0)
                CHECK(false, "%s: child %d: %s (10: sign failed, 11: verify failed)", a.r->type, round,
                      mgt_describe(status));
            if (!signs_for(a.key, a.r, a.r->pub))
                parent_failures++;
        }
        CHECK(child_failures == 0, "%s: %d of 10 children failed", a.r->type, child_failures);
        CHECK(parent_failures == 0, "%s: the parent failed to sign after %d of 10 forks", a.r->type,
              parent_failures);
        EVP_PKEY_free(a.key);
        ERR_clear_error();
    }
}

/* ---- 8. bad input ---- */

enum bad_mode { BAD_PEM, BAD_PEM_PASS, BAD_DER_AUTO, BAD_DER_TYPED };

struct bad_input {
    const char *what;
    enum bad_mode mode;
    const unsigned char *data;
    size_t len;
    int id;           /* for BAD_DER_TYPED */
    const char *pass; /* for BAD_PEM_PASS */
};

/* In a child, so that a crash is reported as such. 0: NULL with an error queued; 1: a key; 2: no error. */
static void child_bad_input(void *arg)
{
    const struct bad_input *b = arg;
    ERR_clear_error();
    EVP_PKEY *k = NULL;
    const unsigned char *p = b->data;
    BIO *bio = NULL;
    switch (b->mode) {
    case BAD_PEM:
    case BAD_PEM_PASS:
        bio = BIO_new_mem_buf(b->data, (int)b->len);
        k = bio != NULL ? PEM_read_bio_PrivateKey(bio, NULL, b->mode == BAD_PEM_PASS ? pass_cb : NULL,
                                                  (void *)(uintptr_t)b->pass)
                        : NULL;
        BIO_free(bio);
        break;
    case BAD_DER_AUTO:
        k = d2i_AutoPrivateKey(NULL, &p, (long)b->len);
        break;
    case BAD_DER_TYPED:
        k = d2i_PrivateKey_ex(b->id, NULL, &p, (long)b->len, NULL, NULL);
        break;
    }
    if (k != NULL) {
        fprintf(stderr, "%s: got a key of type %s from provider %s\n", b->what, EVP_PKEY_get0_type_name(k),
                provider_of(k));
        _exit(1);
    }
    if (ERR_peek_error() == 0)
        _exit(2);
}

static void expect_clean_failure(const struct bad_input *b)
{
    char out[1024];
    int status = mgt_run_child(child_bad_input, (void *)(uintptr_t)b, out, sizeof out);
    const char *why = mgt_exited_ok(status)                           ? ""
                      : WIFEXITED(status) && WEXITSTATUS(status) == 1 ? "a key came back"
                      : WIFEXITED(status) && WEXITSTATUS(status) == 2 ? "NULL but nothing on the error queue"
                                                                      : mgt_describe(status);
    CHECK(mgt_exited_ok(status), "%s: %s %s", b->what, why, out);
}

/* Replace every base64 character at column col of the body lines (after the BEGIN line) by another one. */
static void flip_base64(unsigned char *pem, size_t len, size_t col)
{
    unsigned char *line = memchr(pem, '\n', len);
    while (line != NULL && (size_t)(line + 1 - pem) < len) {
        line++;
        if (*line == '-')
            break; /* END line */
        unsigned char *nl = memchr(line, '\n', len - (size_t)(line - pem));
        if (nl == NULL || (size_t)(nl - line) <= col)
            break;
        line[col] = line[col] == 'A' ? 'g' : 'A';
        line = nl;
    }
}

static void test_bad_input_fails_cleanly(void)
{
    size_t rsa_len, ec_len, ec_der_len, crt_len, enc_len, legacy_len;
    unsigned char *rsa = slurp(keys[K_RSA].pem, &rsa_len), *ec = slurp(keys[K_EC].pem, &ec_len);
    unsigned char *ec_der = slurp(keys[K_EC].der, &ec_der_len), *enc = slurp(enc_pem, &enc_len);
    unsigned char *legacy = slurp(legacy_enc_pem, &legacy_len);
    CU_ASSERT_FATAL(rsa != NULL && ec != NULL && ec_der != NULL && enc != NULL && legacy != NULL);

    /* Truncated: the first half (no END line), and the first 300 bytes closed with an END line. */
    unsigned char cut[512];
    int cut_len = snprintf((char *)cut, sizeof cut, "%.300s\n-----END PRIVATE KEY-----\n", (const char *)rsa);
    /* Flipped base64 characters in every line, and an invalid character in the body. */
    unsigned char *flipped = malloc(ec_len), *invalid = malloc(ec_len);
    CU_ASSERT_FATAL(flipped != NULL && invalid != NULL);
    memcpy(flipped, ec, ec_len);
    flip_base64(flipped, ec_len, 5);
    memcpy(invalid, ec, ec_len);
    invalid[ec_len / 2] = '*';
    /* Garbage: random bytes, and random base64 between valid BEGIN/END lines. */
    unsigned char garbage[2000], armoured[400];
    CU_ASSERT_FATAL(RAND_bytes_ex(plain, garbage, sizeof garbage, 0) == 1);
    unsigned char rnd[150];
    CU_ASSERT_FATAL(RAND_bytes_ex(plain, rnd, sizeof rnd, 0) == 1);
    int alen = snprintf((char *)armoured, sizeof armoured, "-----BEGIN PRIVATE KEY-----\n");
    alen += EVP_EncodeBlock(armoured + alen, rnd, 48);
    alen +=
        snprintf((char *)armoured + alen, sizeof armoured - (size_t)alen, "\n-----END PRIVATE KEY-----\n");
    /* DER of the wrong type: a certificate, and an EC PKCS#8 asked for as RSA. */
    unsigned char *crt_der = NULL;
    crt_len = (size_t)i2d_X509(keys[K_RSA].cert, &crt_der);
    CU_ASSERT_FATAL(crt_der != NULL);

    const struct bad_input cases[] = {
        {"empty input", BAD_PEM, (const unsigned char *)"", 0, 0, NULL},
        {"truncated PEM (first half)", BAD_PEM, rsa, rsa_len / 2, 0, NULL},
        {"truncated PEM (300 bytes + END line)", BAD_PEM, cut, (size_t)cut_len, 0, NULL},
        {"PEM with flipped base64 characters", BAD_PEM, flipped, ec_len, 0, NULL},
        {"PEM with an invalid base64 character", BAD_PEM, invalid, ec_len, 0, NULL},
        {"garbage bytes as PEM", BAD_PEM, garbage, sizeof garbage, 0, NULL},
        {"random base64 in a PRIVATE KEY PEM", BAD_PEM, armoured, (size_t)alen, 0, NULL},
        {"garbage bytes as DER (d2i_AutoPrivateKey)", BAD_DER_AUTO, garbage, sizeof garbage, 0, NULL},
        {"garbage bytes as DER (d2i_PrivateKey_ex RSA)", BAD_DER_TYPED, garbage, sizeof garbage, EVP_PKEY_RSA,
         NULL},
        {"a certificate as DER private key (d2i_AutoPrivateKey)", BAD_DER_AUTO, crt_der, crt_len, 0, NULL},
        {"an EC PKCS#8 DER asked for as RSA (d2i_PrivateKey_ex)", BAD_DER_TYPED, ec_der, ec_der_len,
         EVP_PKEY_RSA, NULL},
        {"an EC PKCS#8 DER asked for as Ed25519 (d2i_PrivateKey_ex)", BAD_DER_TYPED, ec_der, ec_der_len,
         EVP_PKEY_ED25519, NULL},
        {"truncated PKCS#8 DER", BAD_DER_AUTO, ec_der, ec_der_len / 2, 0, NULL},
        {"encrypted PKCS#8 with a wrong passphrase", BAD_PEM_PASS, enc, enc_len, 0, "wrong passphrase"},
        {"encrypted PKCS#8 with an empty passphrase", BAD_PEM_PASS, enc, enc_len, 0, ""},
        {"legacy-encrypted RSA PEM with a wrong passphrase", BAD_PEM_PASS, legacy, legacy_len, 0, "wrong"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect_clean_failure(&cases[i]);

    /* The right passphrase gives the sealed key. */
    ERR_clear_error();
    EVP_PKEY *k = load_pem(enc_pem, right_pass);
    expect_captured(k, &keys[K_EC], "encrypted PKCS#8 with the right passphrase");
    if (k != NULL)
        CHECK(signs_for(k, &keys[K_EC], keys[K_EC].pub), "the key from an encrypted PKCS#8 does not sign");
    EVP_PKEY_free(k);
    k = load_pem(legacy_enc_pem, right_pass);
    expect_captured(k, &keys[K_RSA], "legacy-encrypted RSA PEM with the right passphrase");
    EVP_PKEY_free(k);
    ERR_clear_error();

    OPENSSL_free(crt_der);
    mg_wipe(cut, sizeof cut);
    burn(flipped, ec_len);
    burn(invalid, ec_len);
    burn(rsa, rsa_len);
    burn(ec, ec_len);
    burn(ec_der, ec_der_len);
    burn(enc, enc_len);
    burn(legacy, legacy_len);
}

/* ---- 9. TLS in process ---- */

/* Drive both ends over a BIO pair until both finish the handshake. */
static bool handshake(SSL *client, SSL *server)
{
    bool cdone = false, sdone = false;
    for (int i = 0; i < 200 && !(cdone && sdone); i++) {
        SSL *ends[2] = {client, server};
        bool *done[2] = {&cdone, &sdone};
        for (int e = 0; e < 2; e++) {
            if (*done[e])
                continue;
            int rc = SSL_do_handshake(ends[e]);
            if (rc == 1) {
                *done[e] = true;
                continue;
            }
            int err = SSL_get_error(ends[e], rc);
            if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE)
                return false;
        }
    }
    return cdone && sdone;
}

struct tls_case {
    int t;
    int version;
    const char *cipher12; /* TLS 1.2 cipher list, NULL for the default */
    const char *what;
};

static void run_tls(const struct tls_case *tc)
{
    const struct refkey *r = &keys[tc->t];
    EVP_PKEY *k = load_pem(r->pem, NULL);
    if (!CHECK(k != NULL && is_memguard(k), "%s: not loaded through memguard", tc->what))
        return;
    SSL_CTX *sctx = SSL_CTX_new(TLS_server_method()), *cctx = SSL_CTX_new(TLS_client_method());
    CU_ASSERT_FATAL(sctx != NULL && cctx != NULL);
    bool setup_ok = SSL_CTX_use_certificate(sctx, r->cert) == 1 && SSL_CTX_use_PrivateKey(sctx, k) == 1 &&
                    SSL_CTX_check_private_key(sctx) == 1 &&
                    SSL_CTX_set_min_proto_version(sctx, tc->version) == 1 &&
                    SSL_CTX_set_max_proto_version(sctx, tc->version) == 1 &&
                    SSL_CTX_set_min_proto_version(cctx, tc->version) == 1 &&
                    SSL_CTX_set_max_proto_version(cctx, tc->version) == 1 &&
                    X509_STORE_add_cert(SSL_CTX_get_cert_store(cctx), r->cert) == 1 &&
                    (tc->cipher12 == NULL || SSL_CTX_set_cipher_list(cctx, tc->cipher12) == 1);
    SSL_CTX_set_verify(cctx, SSL_VERIFY_PEER, NULL);
    EVP_PKEY_free(k); /* the SSL_CTX holds it */
    CHECK(setup_ok, "%s: SSL_CTX setup failed", tc->what);
    SSL *client = SSL_new(cctx), *server = SSL_new(sctx);
    BIO *cbio = NULL, *sbio = NULL;
    CU_ASSERT_FATAL(client != NULL && server != NULL && BIO_new_bio_pair(&cbio, 0, &sbio, 0) == 1);
    SSL_set_bio(client, cbio, cbio);
    SSL_set_bio(server, sbio, sbio);
    SSL_set_connect_state(client);
    SSL_set_accept_state(server);
    bool hs = handshake(client, server);
    if (CHECK(hs, "%s: handshake failed", tc->what)) {
        CHECK(SSL_version(client) == tc->version, "%s: negotiated %s", tc->what, SSL_get_version(client));
        CHECK(SSL_get_verify_result(client) == X509_V_OK && SSL_get0_peer_certificate(client) != NULL,
              "%s: the client did not verify the server (%ld)", tc->what, SSL_get_verify_result(client));
        CHECK(is_memguard(SSL_get_privatekey(server)), "%s: the server's key is of provider \"%s\"", tc->what,
              provider_of(SSL_get_privatekey(server)));
        if (tc->cipher12 != NULL)
            CHECK(strcmp(SSL_get_cipher_name(client), tc->cipher12) == 0, "%s: negotiated cipher %s",
                  tc->what, SSL_get_cipher_name(client));
        /* Application data both ways. */
        char buf[16] = "";
        CHECK(SSL_write(client, "ping", 4) == 4 && SSL_read(server, buf, sizeof buf) == 4 &&
                  memcmp(buf, "ping", 4) == 0,
              "%s: client to server data", tc->what);
        CHECK(SSL_write(server, "pong", 4) == 4 && SSL_read(client, buf, sizeof buf) == 4 &&
                  memcmp(buf, "pong", 4) == 0,
              "%s: server to client data", tc->what);
    }
    SSL_free(client);
    SSL_free(server);
    SSL_CTX_free(cctx);
    SSL_CTX_free(sctx);
    ERR_clear_error();
}

static void test_tls13_handshake(void)
{
    const struct tls_case cases[] = {
        {K_RSA, TLS1_3_VERSION, NULL, "TLS 1.3, RSA-2048"},
        {K_EC, TLS1_3_VERSION, NULL, "TLS 1.3, P-256"},
        {K_ED25519, TLS1_3_VERSION, NULL, "TLS 1.3, Ed25519"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        run_tls(&cases[i]);
}

static void test_tls12_handshake(void)
{
    const struct tls_case cases[] = {
        {K_RSA, TLS1_2_VERSION, NULL, "TLS 1.2, RSA-2048 (ECDHE-RSA)"},
        {K_RSA, TLS1_2_VERSION, "AES128-GCM-SHA256", "TLS 1.2, RSA-2048 (RSA key exchange)"},
        {K_EC, TLS1_2_VERSION, NULL, "TLS 1.2, P-256 (ECDHE-ECDSA)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        run_tls(&cases[i]);
}

/* ---- 10. unloading the provider while threads that used it are alive ---- */

/*
 * A worker thread that used a memguard key stays alive, idle, while the provider goes away; then
 * it exits. Thread exit runs the thread-specific-data destructors registered during its work.
 */
struct idle_worker {
    EVP_PKEY *key;
    OSSL_LIB_CTX *libctx; /* where the worker's operation runs */
    bool thread_stop_ex;  /* call OPENSSL_thread_stop_ex(libctx) before going idle, as OpenSSL asks */
    bool signed_ok;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int stage; /* 1: worker idle; 2: worker may exit */
};

static void *idle_worker_main(void *arg)
{
    struct idle_worker *w = arg;
    static const char msg[] = "a worker's signature";
    unsigned char sig[512];
    size_t len = sizeof sig;
    EVP_MD_CTX *m = EVP_MD_CTX_new();
    w->signed_ok = m != NULL &&
                   EVP_DigestSignInit_ex(m, NULL, "SHA256", w->libctx, NULL, w->key, NULL) == 1 &&
                   EVP_DigestSign(m, sig, &len, (const unsigned char *)msg, sizeof msg) == 1;
    EVP_MD_CTX_free(m);
    if (w->thread_stop_ex)
        OPENSSL_thread_stop_ex(w->libctx);
    pthread_mutex_lock(&w->lock);
    w->stage = 1;
    pthread_cond_broadcast(&w->cond);
    while (w->stage != 2)
        pthread_cond_wait(&w->cond, &w->lock);
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

/* Start the worker and wait until it has signed and gone idle. */
static bool start_idle_worker(struct idle_worker *w, pthread_t *t)
{
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->cond, NULL);
    if (pthread_create(t, NULL, idle_worker_main, w) != 0)
        return false;
    pthread_mutex_lock(&w->lock);
    while (w->stage != 1)
        pthread_cond_wait(&w->cond, &w->lock);
    pthread_mutex_unlock(&w->lock);
    return w->signed_ok;
}

static void release_idle_worker(struct idle_worker *w, pthread_t t)
{
    pthread_mutex_lock(&w->lock);
    w->stage = 2;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
    pthread_join(t, NULL); /* a crash in the worker's exit kills the (child) process here */
}

/* In a child: the worker signs with a memguard key, OPENSSL_cleanup() unloads everything, the worker exits.
 */
static void child_cleanup_then_worker_exits(void *arg)
{
    (void)arg;
    /*
     * The reference keys inherited from the parent cache exports into memguard's key management
     * (EVP_PKEY_eq, derive_set_peer), which would keep the provider alive through OPENSSL_cleanup():
     * free them, so that the cleanup really unloads the module as it does in an application.
     */
    free_reference_keys();
    struct idle_worker w = {.key = load_pem(keys[K_EC].pem, NULL)};
    if (w.key == NULL || !is_memguard(w.key))
        _exit(10);
    pthread_t t;
    if (!start_idle_worker(&w, &t))
        _exit(11);
    EVP_PKEY_free(w.key);
    OPENSSL_cleanup(); /* deregisters OpenSSL's own thread handlers, frees the providers, unloads memguard.so
                        */
    release_idle_worker(&w, t);
}

static void test_worker_exits_after_openssl_cleanup(void)
{
    int status = mgt_run_child(child_cleanup_then_worker_exits, NULL, NULL, 0);
    CHECK(mgt_exited_ok(status),
          "a thread that signed with a memguard key, exiting after OPENSSL_cleanup(): %s (10: not captured, "
          "11: "
          "no signature)",
          mgt_describe(status));
}

/* The module named for "memguard" by OPENSSL_CONF (openssl_conf -> providers -> memguard -> module). */
static bool memguard_module(char *out, size_t n)
{
    CONF *conf = NCONF_new_ex(plain, NULL);
    long eline = 0;
    bool ok = false;
    if (conf != NULL && NCONF_load(conf, getenv("OPENSSL_CONF"), &eline) == 1) {
        const char *init = NCONF_get_string(conf, NULL, "openssl_conf");
        const char *provs = init != NULL ? NCONF_get_string(conf, init, "providers") : NULL;
        const char *sect = provs != NULL ? NCONF_get_string(conf, provs, "memguard") : NULL;
        const char *module = sect != NULL ? NCONF_get_string(conf, sect, "module") : NULL;
        if (module != NULL && (size_t)snprintf(out, n, "%s", module) < n)
            ok = true;
    }
    NCONF_free(conf);
    ERR_clear_error();
    return ok;
}

struct private_ctx_args {
    const char *module; /* NULL: the control, default provider only */
};

/*
 * In a child: an application library context loads the providers, a worker signs in it and calls
 * OPENSSL_thread_stop_ex(ctx) as OpenSSL requires of threads before their context is freed; the
 * context is freed (memguard's instance in it is torn down); the worker exits.
 */
static void child_private_ctx_freed_then_worker_exits(void *arg)
{
    const struct private_ctx_args *a = arg;
    OSSL_LIB_CTX *ctx = OSSL_LIB_CTX_new();
    OSSL_PROVIDER *deflt = ctx != NULL ? OSSL_PROVIDER_load(ctx, "default") : NULL;
    OSSL_PROVIDER *mg = a->module != NULL && deflt != NULL ? OSSL_PROVIDER_load(ctx, a->module) : NULL;
    if (deflt == NULL || (a->module != NULL && mg == NULL))
        _exit(10);
    BIO *b = BIO_new_file(keys[K_EC].pem, "r");
    struct idle_worker w = {.libctx = ctx, .thread_stop_ex = true};
    w.key = b != NULL ? PEM_read_bio_PrivateKey_ex(b, NULL, NULL, NULL, ctx, NULL) : NULL;
    BIO_free(b);
    if (w.key == NULL || EVP_PKEY_get0_provider(w.key) != (a->module != NULL ? mg : deflt))
        _exit(11);
    pthread_t t;
    if (!start_idle_worker(&w, &t))
        _exit(12);
    EVP_PKEY_free(w.key);
    OSSL_PROVIDER_unload(mg);
    OSSL_PROVIDER_unload(deflt);
    OSSL_LIB_CTX_free(ctx);
    release_idle_worker(&w, t);
}

static void test_worker_exits_after_its_context_is_freed(void)
{
    char module[512];
    CU_ASSERT_FATAL(CHECK(memguard_module(module, sizeof module), "no memguard module named in %s",
                          getenv("OPENSSL_CONF")));
    /* Control: the scenario is sound with OpenSSL alone. */
    struct private_ctx_args control = {NULL}, with_memguard = {module};
    int status = mgt_run_child(child_private_ctx_freed_then_worker_exits, &control, NULL, 0);
    CHECK(mgt_exited_ok(status), "control (default provider only): %s", mgt_describe(status));
    status = mgt_run_child(child_private_ctx_freed_then_worker_exits, &with_memguard, NULL, 0);
    CHECK(mgt_exited_ok(status),
          "a thread that signed with a memguard key and called OPENSSL_thread_stop_ex, exiting after its "
          "library context was freed: %s (10: load, 11: not captured, 12: no signature)",
          mgt_describe(status));
}

static CU_TestInfo capture_tests[] = {
    {"PEM_read_bio_PrivateKey (nginx) gives memguard keys", test_pem_read_bio_privatekey_captures},
    {"OSSL_STORE_open file: (openssl apps) gives memguard keys", test_ossl_store_captures},
    {"SSL_CTX_use_PrivateKey_file + check_private_key gives memguard keys",
     test_ssl_ctx_use_privatekey_file_captures},
    {"d2i_AutoPrivateKey / d2i_PrivateKey_ex on PKCS#8 DER give memguard keys", test_der_pkcs8_captures},
    {"d2i through memguard consumes exactly the key's DER (trailing bytes left)",
     test_der_d2i_consumes_exactly_the_key},
    CU_TEST_INFO_NULL,
};

static CU_TestInfo export_tests[] = {
    {"private export refused; public export works and EVP_PKEY_eq holds",
     test_private_export_refused_public_export_works},
    CU_TEST_INFO_NULL,
};

static CU_TestInfo interop_tests[] = {
    {"PKCS#1, PSS, ECDSA, Ed25519 signatures verify with the plain key",
     test_signatures_verify_with_the_plain_key},
    {"RSA OAEP decryption recovers what the plain public key encrypted",
     test_rsa_oaep_decrypts_what_plain_encrypted},
    {"ECDH P-256 and X25519 agree with the plain side", test_key_agreement_agrees_with_plain},
    {"ECDH on P-256/384/521 and secp256k1, many peers, KDF and cofactor options", test_ecdh_curves_peers_and_options},
    {"X25519 with many peers; small-order points and short buffers refused", test_x25519_peers_and_small_order_points},
    CU_TEST_INFO_NULL,
};

static CU_TestInfo default_tests[] = {
    {"keygen, raw and fromdata keys without a property query stay default", test_other_keys_stay_default},
    CU_TEST_INFO_NULL,
};

static CU_TestInfo keygen_tests[] = {
    {"EC, Ed25519, RSA generated in memguard sign and refuse private export",
     test_keygen_in_memguard_seals_from_birth},
    CU_TEST_INFO_NULL,
};

static CU_TestInfo concurrency_tests[] = {
    {"8 threads x 200 signatures with one shared key (RSA, P-256)", test_threads_share_one_key},
    CU_TEST_INFO_NULL,
};

static CU_TestInfo fork_tests[] = {
    {"10 forks: the child signs 20 times, the parent keeps signing",
     test_forked_children_sign_parent_keeps_signing},
    CU_TEST_INFO_NULL,
};

static CU_TestInfo bad_input_tests[] = {
    {"bad input gives NULL with an error; the right passphrase gives a key", test_bad_input_fails_cleanly},
    CU_TEST_INFO_NULL,
};

static CU_TestInfo tls_tests[] = {
    {"TLS 1.3 handshake over a BIO pair with a memguard server key", test_tls13_handshake},
    {"TLS 1.2 handshake over a BIO pair with a memguard server key", test_tls12_handshake},
    CU_TEST_INFO_NULL,
};

static CU_TestInfo unload_tests[] = {
    {"a thread that used a memguard key exits cleanly after OPENSSL_cleanup()",
     test_worker_exits_after_openssl_cleanup},
    {"a thread that used a memguard key exits cleanly after its library context is freed",
     test_worker_exits_after_its_context_is_freed},
    CU_TEST_INFO_NULL,
};

int main(void)
{
    if (getenv("OPENSSL_CONF") == NULL) {
        fprintf(stderr, "set OPENSSL_CONF to a configuration that loads memguard\n");
        return 2;
    }
    if (OSSL_PROVIDER_available(NULL, "memguard") != 1) {
        fprintf(stderr, "the memguard provider is not loaded by %s\n", getenv("OPENSSL_CONF"));
        ERR_print_errors_fp(stderr);
        return 2;
    }
    if (!setup()) {
        fprintf(stderr, "setup failed (reference keys in %s)\n", workdir);
        ERR_print_errors_fp(stderr);
        teardown();
        return 2;
    }
    CU_SuiteInfo suites[] = {
        {"capture", NULL, NULL, NULL, NULL, capture_tests},
        {"export", NULL, NULL, NULL, NULL, export_tests},
        {"interop", NULL, NULL, NULL, NULL, interop_tests},
        {"default provider", NULL, NULL, NULL, NULL, default_tests},
        {"keygen", NULL, NULL, NULL, NULL, keygen_tests},
        {"concurrency", NULL, NULL, NULL, NULL, concurrency_tests},
        {"fork", NULL, NULL, NULL, NULL, fork_tests},
        {"bad input", NULL, NULL, NULL, NULL, bad_input_tests},
        {"tls", NULL, NULL, NULL, NULL, tls_tests},
        {"unload", NULL, NULL, NULL, NULL, unload_tests},
        CU_SUITE_INFO_NULL,
    };
    int rc = mgt_main(suites);
    teardown();
    return rc;
}
