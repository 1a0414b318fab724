/*
 * Every way an application loads a private key ends in a memguard key - sealed, or refused with
 * memguard's reason - never in a default-provider or provider-less (legacy) key; keys memguard
 * cannot seal are refused by name, or with memguard-unsealed-keys = allow loaded by the default
 * provider with a warning at every load; and after loading, no copy of the key is left in this
 * process's memory (positive control: the same loads without memguard leave copies).
 *
 * MGT_LOAD_PRESSURE=1 (load_paths.sh runs this under a small RLIMIT_MEMLOCK as an unprivileged
 * user): a load may also fail, or give a refused key, but only with the error naming RLIMIT_MEMLOCK.
 * Run with OPENSSL_CONF pointing at a configuration that loads memguard.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/decoder.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/provider.h>
#include <openssl/ssl.h>
#include <openssl/store.h>
#include <openssl/ui.h>
#include <openssl/x509.h>

#include <memguard/memguard.h>

#include "../core/harness.h"
#include "memscan.h"

static char dir[] = "/tmp/mgt-load-XXXXXX";
static int pressure;
static const char *types[] = {"rsa", "ec", "ed"};
static const char *forms[] = {"p8", "trad", "enc"};

static void run(const char *inner)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "export OPENSSL_CONF=/dev/null; cd %s && %s", dir, inner);
    int rc = system(cmd);
    if (rc != 0)
        printf("\n    failed: %s\n", inner);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
}
#define SH(...)                                   \
    do {                                          \
        char c_[900];                             \
        snprintf(c_, sizeof c_, __VA_ARGS__);     \
        run(c_);                                  \
    } while (0)

static void path(char *out, size_t n, const char *type, const char *form)
{
    snprintf(out, n, "%s/%s.%s", dir, type, form);
}

/* The whole error queue as text (cleared). */
static void errors(char *out, size_t n)
{
    out[0] = 0;
    unsigned long e;
    const char *data;
    int flags;
    while ((e = ERR_get_error_all(NULL, NULL, NULL, &data, &flags)) != 0) {
        char one[256];
        ERR_error_string_n(e, one, sizeof one);
        size_t l = strlen(out);
        snprintf(out + l, n - l, "%s:%s\n", one, (flags & ERR_TXT_STRING) ? data : "");
    }
}

static int sign_once(EVP_PKEY *k)
{
    EVP_MD_CTX *m = EVP_MD_CTX_new();
    unsigned char sig[1024];
    size_t len = sizeof sig;
    int ok = EVP_DigestSignInit_ex(m, NULL, EVP_PKEY_is_a(k, "ED25519") ? NULL : "SHA256", NULL, NULL, k, NULL) == 1 &&
             EVP_DigestSign(m, sig, &len, (const unsigned char *)"x", 1) == 1;
    EVP_MD_CTX_free(m);
    return ok;
}

/*
 * The property for one load: a memguard key that signs; under pressure also no key, or a refused
 * one, as long as the error names RLIMIT_MEMLOCK. Never a key of another provider or of none.
 */
static void judge(const char *what, EVP_PKEY *k)
{
    char err[4096];
    const OSSL_PROVIDER *p = k != NULL ? EVP_PKEY_get0_provider(k) : NULL;
    if (k != NULL && (p == NULL || strcmp(OSSL_PROVIDER_get0_name(p), "memguard") != 0)) {
        printf("\n    %s: a key from %s", what, p == NULL ? "no provider (legacy)" : OSSL_PROVIDER_get0_name(p));
        CU_FAIL("an unprotected key came back");
        return;
    }
    int signed_ok = k != NULL && sign_once(k);
    if (!signed_ok && k != NULL) {
        /* A refused key: signing may fail before memguard is asked (no signature for the type); its
         * export always raises the refusal. */
        OSSL_PARAM *out = NULL;
        ERR_clear_error();
        if (EVP_PKEY_todata(k, EVP_PKEY_KEYPAIR, &out) == 1)
            CU_FAIL("a key that does not sign exports its private part");
        OSSL_PARAM_free(out);
    }
    errors(err, sizeof err);
    if (!signed_ok && !(pressure && strstr(err, "RLIMIT_MEMLOCK") != NULL)) {
        printf("\n    %s: %s, errors:\n%s", what, k == NULL ? "no key" : "the key does not sign", err);
        CU_FAIL("the load failed without naming RLIMIT_MEMLOCK");
    }
}

static EVP_PKEY *by_bio(const char *file)
{
    BIO *b = BIO_new_file(file, "r");
    EVP_PKEY *k = b != NULL ? PEM_read_bio_PrivateKey(b, NULL, NULL, (void *)"secret") : NULL;
    BIO_free(b);
    return k;
}

static EVP_PKEY *by_file(const char *file)
{
    FILE *f = fopen(file, "r");
    EVP_PKEY *k = f != NULL ? PEM_read_PrivateKey(f, NULL, NULL, (void *)"secret") : NULL;
    if (f != NULL)
        fclose(f);
    return k;
}

static EVP_PKEY *by_decoder(const char *file, const char *input)
{
    EVP_PKEY *k = NULL;
    BIO *b = BIO_new_file(file, "r");
    OSSL_DECODER_CTX *d = OSSL_DECODER_CTX_new_for_pkey(&k, input, NULL, NULL, EVP_PKEY_KEYPAIR, NULL, NULL);
    if (d != NULL)
        OSSL_DECODER_CTX_set_passphrase(d, (const unsigned char *)"secret", 6);
    if (b == NULL || d == NULL || OSSL_DECODER_from_bio(d, b) != 1) {
        EVP_PKEY_free(k);
        k = NULL;
    }
    OSSL_DECODER_CTX_free(d);
    BIO_free(b);
    return k;
}

static EVP_PKEY *by_store(const char *uri, bool ui)
{
    UI_METHOD *m = ui ? UI_UTIL_wrap_read_pem_callback(NULL, 0) : NULL; /* PEM_def_callback: uses userdata */
    OSSL_STORE_CTX *s = OSSL_STORE_open(uri, m, ui ? (void *)"secret" : NULL, NULL, NULL);
    EVP_PKEY *k = NULL;
    while (s != NULL && k == NULL && !OSSL_STORE_eof(s)) {
        OSSL_STORE_INFO *i = OSSL_STORE_load(s);
        if (i != NULL && OSSL_STORE_INFO_get_type(i) == OSSL_STORE_INFO_PKEY)
            k = OSSL_STORE_INFO_get1_PKEY(i);
        OSSL_STORE_INFO_free(i);
    }
    OSSL_STORE_close(s);
    UI_destroy_method(m);
    return k;
}

static EVP_PKEY *by_der(const char *file, int type)
{
    FILE *f = fopen(file, "rb");
    unsigned char buf[8192];
    size_t n = f != NULL ? fread(buf, 1, sizeof buf, f) : 0;
    if (f != NULL)
        fclose(f);
    const unsigned char *p = buf;
    EVP_PKEY *k = type == EVP_PKEY_NONE ? d2i_AutoPrivateKey(NULL, &p, (long)n) : d2i_PrivateKey(type, NULL, &p, (long)n);
    OPENSSL_cleanse(buf, sizeof buf);
    return k;
}

/* SSL_CTX_use_PrivateKey_file: success must mean a memguard key; failure must name RLIMIT_MEMLOCK. */
static void by_ssl(const char *what, const char *file, int filetype)
{
    SSL_CTX *c = SSL_CTX_new(TLS_server_method());
    SSL_CTX_set_default_passwd_cb_userdata(c, (void *)"secret");
    int ok = SSL_CTX_use_PrivateKey_file(c, file, filetype);
    EVP_PKEY *k = ok ? SSL_CTX_get0_privatekey(c) : NULL;
    if (ok)
        judge(what, k);
    else if (pressure) {
        /* libssl may reject a refused key before memguard is asked ("unknown certificate type"): the
         * same file through PEM/d2i must then give a refused memguard key naming RLIMIT_MEMLOCK. */
        ERR_clear_error();
        EVP_PKEY *again = filetype == SSL_FILETYPE_PEM ? by_bio(file) : by_der(file, EVP_PKEY_NONE);
        judge(what, again);
        EVP_PKEY_free(again);
    } else {
        char err[4096];
        errors(err, sizeof err);
        {
            printf("\n    %s: failed:\n%s", what, err);
            CU_FAIL("SSL_CTX_use_PrivateKey_file failed without naming RLIMIT_MEMLOCK");
        }
    }
    SSL_CTX_free(c);
}

static void test_every_load_path_gives_a_memguard_key(void)
{
    static const int der_type[] = {EVP_PKEY_RSA, EVP_PKEY_EC, EVP_PKEY_ED25519};
    char f[256], what[300], uri[300];
    for (size_t t = 0; t < 3; t++) {
        for (size_t m = 0; m < 3; m++) {
            if (t == 2 && m == 1)
                continue; /* Ed25519 has no traditional form */
            path(f, sizeof f, types[t], forms[m]);
            EVP_PKEY *k;
#define TRY(label, expr)                                                                                      \
    do {                                                                                                      \
        snprintf(what, sizeof what, "%s %s: %s", types[t], forms[m], label);                                  \
        k = (expr);                                                                                           \
        judge(what, k);                                                                                       \
        EVP_PKEY_free(k);                                                                                     \
    } while (0)
            TRY("PEM_read_bio_PrivateKey", by_bio(f));
            TRY("PEM_read_PrivateKey (FILE)", by_file(f));
            TRY("OSSL_DECODER from PEM", by_decoder(f, "PEM"));
            TRY("OSSL_STORE, path, UI method", by_store(f, true));
            snprintf(uri, sizeof uri, "file:%s", f);
            TRY("OSSL_STORE, file: URI, UI method", by_store(uri, true));
            if (m != 2) /* without a passphrase source an encrypted key cannot load at all */
                TRY("OSSL_STORE, path, no UI", by_store(f, false));
            snprintf(what, sizeof what, "%s %s: SSL_CTX_use_PrivateKey_file PEM", types[t], forms[m]);
            by_ssl(what, f, SSL_FILETYPE_PEM);
        }
        for (size_t m = 0; m < 2; m++) {
            if (t == 2 && m == 1)
                continue;
            snprintf(f, sizeof f, "%s/%s.%s.der", dir, types[t], forms[m]);
            EVP_PKEY *k;
            const char *form = m == 0 ? "p8 DER" : "trad DER";
            snprintf(what, sizeof what, "%s %s: d2i_PrivateKey", types[t], form);
            k = by_der(f, der_type[t]);
            judge(what, k);
            EVP_PKEY_free(k);
            snprintf(what, sizeof what, "%s %s: d2i_AutoPrivateKey", types[t], form);
            k = by_der(f, EVP_PKEY_NONE);
            judge(what, k);
            EVP_PKEY_free(k);
            snprintf(what, sizeof what, "%s %s: OSSL_DECODER from DER", types[t], form);
            k = by_decoder(f, "DER");
            judge(what, k);
            EVP_PKEY_free(k);
            snprintf(what, sizeof what, "%s %s: SSL_CTX_use_PrivateKey_file ASN1", types[t], form);
            by_ssl(what, f, SSL_FILETYPE_ASN1);
        }
    }
}

/* ---- keys memguard cannot seal ---- */

static int count_in(const char *file, const char *needle)
{
    FILE *f = fopen(file, "r");
    char line[2048];
    int n = 0;
    while (f != NULL && fgets(line, sizeof line, f) != NULL)
        n += strstr(line, needle) != NULL;
    if (f != NULL)
        fclose(f);
    return n;
}

static void test_unsealable_keys_are_refused_by_name_or_warned_at_every_load(void)
{
    static const char *const files[][2] = {{"dsa.p8", "DSA"}, {"dsa.trad", "DSA"}, {"ecx.trad", "explicit"},
                                           {"dh.p8", "DH"}};
    char f[256], err[4096];
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        path(f, sizeof f, files[i][0], "");
        f[strlen(f) - 1] = 0; /* path() adds ".": drop it */
        EVP_PKEY *k = by_bio(f);
        const OSSL_PROVIDER *p = k != NULL ? EVP_PKEY_get0_provider(k) : NULL;
        CU_ASSERT_TRUE(k != NULL && p != NULL && strcmp(OSSL_PROVIDER_get0_name(p), "memguard") == 0);
        CU_ASSERT_TRUE(k == NULL || !sign_once(k));
        ERR_clear_error(); /* the loader drops what was raised at load; export and matching raise the refusal */
        OSSL_PARAM *out = NULL;
        CU_ASSERT_TRUE(k == NULL || EVP_PKEY_todata(k, EVP_PKEY_KEYPAIR, &out) != 1);
        OSSL_PARAM_free(out);
        errors(err, sizeof err);
        if (strstr(err, files[i][1]) == NULL || strstr(err, "memguard-unsealed-keys = allow") == NULL)
            printf("\n    %s: errors after use:\n%s", files[i][0], err);
        CU_ASSERT_PTR_NOT_NULL(strstr(err, files[i][1]));
        CU_ASSERT_PTR_NOT_NULL(strstr(err, "memguard-unsealed-keys = allow"));
        EVP_PKEY_free(k);
        /* DER too (d2i_AutoPrivateKey): refused, not decoded by libcrypto's legacy code. */
        if (strcmp(files[i][0], "dsa.p8") == 0) {
            char d[300];
            snprintf(d, sizeof d, "%s.der", f);
            k = by_der(d, EVP_PKEY_NONE);
            p = k != NULL ? EVP_PKEY_get0_provider(k) : NULL;
            CU_ASSERT_TRUE(k != NULL && p != NULL && strcmp(OSSL_PROVIDER_get0_name(p), "memguard") == 0);
            EVP_PKEY_free(k);
            ERR_clear_error();
        }
    }
    /* memguard-unsealed-keys = allow, in a library context of its own: default's key, one warning per load. */
    char cnf[256], log[256], cmd[600];
    snprintf(cnf, sizeof cnf, "%s/allow.cnf", dir);
    snprintf(log, sizeof log, "%s/stderr.log", dir);
    snprintf(cmd, sizeof cmd, "sed 's/^activate = 1$/activate = 1/' %s > %s && echo 'memguard-unsealed-keys = allow' >> %s",
             getenv("OPENSSL_CONF"), cnf, cnf);
    CU_ASSERT_EQUAL_FATAL(system(cmd), 0);
    OSSL_LIB_CTX *ctx = OSSL_LIB_CTX_new();
    CU_ASSERT_FATAL(ctx != NULL && OSSL_LIB_CTX_load_config(ctx, cnf) == 1);
    fflush(stderr);
    int saved = dup(2);
    CU_ASSERT_FATAL(saved >= 0 && freopen(log, "w", stderr) != NULL);
    path(f, sizeof f, "dsa", "p8");
    for (int i = 0; i < 2; i++) {
        BIO *b = BIO_new_file(f, "r");
        EVP_PKEY *k = PEM_read_bio_PrivateKey_ex(b, NULL, NULL, NULL, ctx, NULL);
        const OSSL_PROVIDER *p = k != NULL ? EVP_PKEY_get0_provider(k) : NULL;
        CU_ASSERT_TRUE(p != NULL && strcmp(OSSL_PROVIDER_get0_name(p), "default") == 0);
        EVP_PKEY_free(k);
        BIO_free(b);
    }
    fflush(stderr);
    CU_ASSERT_FATAL(dup2(saved, 2) == 2);
    close(saved);
    CU_ASSERT_EQUAL(count_in(log, "WARNING: DSA private key"), 2);
    OSSL_LIB_CTX_free(ctx);
    ERR_clear_error();
}

/* ---- residue ---- */

static memscan_needle needles[64];
static size_t n_needles;

static int hexval(int c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/*
 * Windows of RSA's d, p, q, dP, dQ, qInv and the P-256 scalar (from `openssl pkey -text` in a
 * child), big- and little-endian. The EC key's DER (138 bytes) is below the size the freed-heap
 * scrubbing reaches, so its copies are the ones a leaky path leaves.
 */
static void needles_for(const char *file, size_t min)
{
    static const char *fields[] = {"privateExponent:", "prime1:", "prime2:", "exponent1:", "exponent2:",
                                   "coefficient:", "priv:"};
    char cmd[512];
    snprintf(cmd, sizeof cmd, "OPENSSL_CONF=/dev/null openssl pkey -in %s/%s -text -noout", dir, file);
    FILE *p = popen(cmd, "r");
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    char line[256];
    unsigned char v[600];
    size_t n = 0;
    bool on = false;
    for (;;) {
        char *got = fgets(line, sizeof line, p);
        if (got == NULL || line[0] != ' ') {
            while (n > 0 && v[0] == 0)
                memmove(v, v + 1, --n);
            if (on && n >= min)
                for (int le = 0; le < 2; le++)
                    CU_ASSERT_FATAL(memscan_needle_init(&needles[n_needles++], le ? "RSA component (LE)" : "RSA component (BE)",
                                                        v + (n - 24) / 2, 24, le));
            mg_wipe(v, sizeof v);
            n = 0;
            on = false;
            for (size_t i = 0; got != NULL && i < sizeof fields / sizeof fields[0]; i++)
                on |= strncmp(line, fields[i], strlen(fields[i])) == 0;
            if (got == NULL)
                break;
            continue;
        }
        for (char *c = line; c[0] != 0 && c[1] != 0; c++)
            if (hexval(c[0]) >= 0 && hexval(c[1]) >= 0 && n < sizeof v) {
                v[n++] = (unsigned char)(hexval(c[0]) << 4 | hexval(c[1]));
                c++;
            }
    }
    mg_wipe(line, sizeof line);
    pclose(p);
}

static size_t scan(void)
{
    CU_ASSERT_FATAL(memscan_run(needles, n_needles));
    return memscan_total(needles, 0, n_needles, false) + memscan_total(needles, 0, n_needles, true);
}

static void test_no_copy_of_the_key_after_any_load(void)
{
    needles_for("rsa.p8", 64);
    CU_ASSERT_EQUAL_FATAL(n_needles, 12);
    needles_for("ec.p8", 30);
    CU_ASSERT_EQUAL_FATAL(n_needles, 14);
    char f[256];
    /* Each load path, the key freed after use; then one scan for all. */
    const char *files[] = {"rsa.p8", "rsa.enc", "rsa.lenc", "rsa.preamble", "rsa.certfirst", "rsa.keyfirst",
                           "ec.p8",  "ec.enc",  "ec.lenc",  "ec.preamble",  "ec.certfirst",  "ec.keyfirst"};
    EVP_PKEY *held[48];
    size_t nh = 0;
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(f, sizeof f, "%s/%s", dir, files[i]);
        held[nh++] = by_store(f, true);
        held[nh++] = by_bio(f);
        if (strstr(files[i], "enc") == NULL)
            held[nh++] = by_store(f, false);
    }
    for (size_t i = 0; i < nh; i++) {
        CU_ASSERT_PTR_NOT_NULL(held[i]);
        const OSSL_PROVIDER *p = held[i] != NULL ? EVP_PKEY_get0_provider(held[i]) : NULL;
        CU_ASSERT_TRUE(p != NULL && strcmp(OSSL_PROVIDER_get0_name(p), "memguard") == 0);
        if (held[i] != NULL)
            CU_ASSERT_TRUE(sign_once(held[i]));
    }
    size_t with = scan();
    printf("\n    copies of RSA/EC private components after %zu memguard loads: %zu\n", nh, with);
    CU_ASSERT_EQUAL(with, 0);
    /* Control: OSSL_STORE and PEM_read_bio without memguard leave copies the same scan finds. */
    OSSL_LIB_CTX *plain = OSSL_LIB_CTX_new();
    OSSL_PROVIDER *d = OSSL_PROVIDER_load(plain, "default");
    snprintf(f, sizeof f, "%s/rsa.enc", dir);
    BIO *b = BIO_new_file(f, "r");
    EVP_PKEY *ctl = PEM_read_bio_PrivateKey_ex(b, NULL, NULL, (void *)"secret", plain, NULL);
    BIO_free(b);
    CU_ASSERT_PTR_NOT_NULL(ctl);
    size_t without = scan();
    printf("    the same key loaded without memguard: %zu\n", without);
    CU_ASSERT_TRUE(without > 0);
    EVP_PKEY_free(ctl);
    for (size_t i = 0; i < nh; i++)
        EVP_PKEY_free(held[i]);
    OSSL_PROVIDER_unload(d);
    OSSL_LIB_CTX_free(plain);
}

static int setup(void)
{
    if (mkdtemp(dir) == NULL || chmod(dir, 0755) != 0)
        return 1;
    return 0;
}

static void test_make_keys(void)
{
    SH("openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out %s%s 2>/dev/null", "rsa.p8", "");
    SH("openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out %s%s", "ec.p8", "");
    SH("openssl genpkey -algorithm ED25519 -out %s%s", "ed.p8", "");
    SH("openssl rsa -in rsa.p8 -traditional -out %s%s 2>/dev/null", "rsa.trad", "");
    SH("openssl ec -in ec.p8 -out %s%s 2>/dev/null", "ec.trad", "");
    for (size_t t = 0; t < 3; t++) {
        char in[64], out[64];
        snprintf(in, sizeof in, "%s.p8", types[t]);
        snprintf(out, sizeof out, "%s.enc", types[t]);
        SH("openssl pkcs8 -topk8 -in %s -passout pass:secret -out %s", in, out);
        snprintf(out, sizeof out, "%s.p8.der", types[t]);
        SH("openssl pkey -in %s -outform DER -out %s", in, out);
    }
    SH("openssl rsa -in rsa.trad -outform DER -traditional -out %s%s 2>/dev/null", "rsa.trad.der", "");
    /* Traditional PEM with RFC 1421 encryption (Proc-Type: 4,ENCRYPTED; DEK-Info). */
    SH("openssl rsa -in rsa.p8 -traditional -aes256 -passout pass:secret -out %s%s 2>/dev/null", "rsa.lenc", "");
    SH("openssl ec -in ec.p8 -aes256 -passout pass:secret -out %s%s 2>/dev/null", "ec.lenc", "");
    SH("openssl ec -in ec.trad -outform DER -out %s%s 2>/dev/null", "ec.trad.der", "");
    SH("openssl genpkey -genparam -algorithm DSA -pkeyopt dsa_paramgen_bits:2048 -out dsap.pem%s%s", "", "");
    SH("openssl genpkey -paramfile dsap.pem -out %s%s && openssl dsa -in dsa.p8 -out dsa.trad 2>/dev/null", "dsa.p8", "");
    SH("openssl pkey -in %s -outform DER -out %s", "dsa.p8", "dsa.p8.der");
    SH("openssl ecparam -name prime256v1 -param_enc explicit -genkey -noout -out %s%s", "ecx.trad", "");
    SH("openssl genpkey -algorithm DH -pkeyopt group:ffdhe2048 -out %s%s", "dh.p8", "");
    /* A 20,000-line preamble; a certificate before and after the key. */
    SH("(seq 1 20000 | sed 's/^/preamble line /'; cat rsa.p8) > %s%s", "rsa.preamble", "");
    SH("openssl req -new -x509 -key rsa.p8 -subj /CN=t -days 2 -out %s%s", "rsa.crt", "");
    SH("cat rsa.crt rsa.p8 > %s && cat rsa.p8 rsa.crt > %s", "rsa.certfirst", "rsa.keyfirst");
    SH("(seq 1 20000 | sed 's/^/preamble line /'; cat ec.p8) > %s%s", "ec.preamble", "");
    SH("openssl req -new -x509 -key ec.p8 -subj /CN=t -days 2 -out %s%s", "ec.crt", "");
    SH("cat ec.crt ec.p8 > %s && cat ec.p8 ec.crt > %s", "ec.certfirst", "ec.keyfirst");
}

static int teardown(void)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) != 0;
}

static CU_TestInfo load_tests[] = {
    {"test keys are made", test_make_keys},
    {"every load path gives a memguard key (or, under memlock pressure, fails naming RLIMIT_MEMLOCK)",
     test_every_load_path_gives_a_memguard_key},
    {"DSA, explicit-curve EC, DH are refused by name; with allow, default's key and a warning per load",
     test_unsealable_keys_are_refused_by_name_or_warned_at_every_load},
    {"no copy of the key after OSSL_STORE (with/without UI), encrypted PKCS#8, long preamble, cert+key",
     test_no_copy_of_the_key_after_any_load},
    CU_TEST_INFO_NULL,
};

static CU_TestInfo pressure_tests[] = {
    {"test keys are made", test_make_keys},
    {"every load path gives a memguard key or fails naming RLIMIT_MEMLOCK", test_every_load_path_gives_a_memguard_key},
    CU_TEST_INFO_NULL,
};

int main(void)
{
    pressure = getenv("MGT_LOAD_PRESSURE") != NULL;
    CU_SuiteInfo suites[] = {
        {"load", setup, teardown, NULL, NULL, pressure ? pressure_tests : load_tests},
        CU_SUITE_INFO_NULL,
    };
    return mgt_main(suites);
}
