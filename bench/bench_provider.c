/*
 * bench_provider: the cost of memguard.so per private-key operation, measured
 * through EVP against the same keys in a plain OpenSSL library context, in one
 * run so that the ratios are comparable.
 *
 * Two library contexts: one configured exactly like conf/memguard.cnf's
 * provider section (default first, then memguard, loaded with
 * OSSL_LIB_CTX_load_config from a file written to a temporary directory), and
 * one with the default provider only. Keys are generated once in the plain
 * context and written as PEM; both contexts read the same PEM files. Before
 * timing, the memguard side's keys are checked to be held by the memguard
 * provider (and its operations to run in it), and every row's result is
 * verified.
 *
 * Every row runs NBATCH batches of N operations on each side, interleaved
 * (memguard, plain, plain, memguard, ...); N is calibrated per operation so
 * that one batch takes about 30 ms (3 ms with --quick). A row shows the median
 * time per operation and the ratio memguard / plain.
 *
 * Usage: bench_provider [--quick] [MODULE]
 *   MODULE   path of memguard.so (default: the one built with this benchmark)
 *   --quick  about 10x fewer iterations (a smoke run; numbers are noisier).
 *
 * Exits 0 whatever the numbers are (it is a benchmark, not a test); 1 if an
 * operation or the set-up fails, 2 on a bad argument.
 */
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/pem.h>
#include <openssl/provider.h>
#include <openssl/rsa.h>

#include "harness.h"

#ifndef BENCH_PROVIDER_MODULE
#define BENCH_PROVIDER_MODULE ""
#endif

/* The performance targets (see README.md): memguard / plain time per operation. */
#define TARGET_ECX 1.00
#define TARGET_P256 1.25
#define TARGET_RSA 1.25

static bool quick;

/* ---- failure: a benchmark whose calls fail measures nothing ---- */

static char workdir[PATH_MAX];
static char conf_path[PATH_MAX + 32];

enum { KEY_RSA, KEY_P256, KEY_P384, KEY_ED25519, KEY_X25519, NKEYS };

static struct keyfile {
    const char *label; /* as printed */
    const char *file;  /* in workdir */
    char path[PATH_MAX + 32];
} keyfiles[NKEYS] = {
    {"RSA-2048", "rsa2048.pem", ""}, {"EC P-256", "p256.pem", ""}, {"EC P-384", "p384.pem", ""},
    {"Ed25519", "ed25519.pem", ""},  {"X25519", "x25519.pem", ""},
};

/* Remove the temporary directory on every exit, including failures. */
static void cleanup(void)
{
    if (workdir[0] == '\0')
        return;
    for (int i = 0; i < NKEYS; i++)
        if (keyfiles[i].path[0] != '\0')
            unlink(keyfiles[i].path);
    if (conf_path[0] != '\0')
        unlink(conf_path);
    rmdir(workdir);
    workdir[0] = '\0';
}

static _Noreturn void die(const char *what)
{
    fprintf(stderr, "bench_provider: %s failed\n", what);
    ERR_print_errors_fp(stderr);
    exit(1);
}

/* ---- the two library contexts ---- */

/* conf/memguard.cnf's provider section, with the module given by absolute path. */
static void write_config(const char *module)
{
    snprintf(conf_path, sizeof conf_path, "%s/memguard.cnf", workdir);
    FILE *fp = fopen(conf_path, "w");
    if (fp == NULL)
        die("creating the configuration file");
    fprintf(fp,
            "openssl_conf = memguard_init\n"
            "\n"
            "[memguard_init]\n"
            "providers = memguard_providers\n"
            "\n"
            "[memguard_providers]\n"
            "# Order matters: default first, memguard after it (see conf/memguard.cnf).\n"
            "default = memguard_default_sect\n"
            "memguard = memguard_sect\n"
            "\n"
            "[memguard_default_sect]\n"
            "activate = 1\n"
            "\n"
            "[memguard_sect]\n"
            "module = %s\n"
            "activate = 1\n",
            module);
    if (fclose(fp) != 0)
        die("writing the configuration file");
}

static const char *provider_name(const OSSL_PROVIDER *p)
{
    return p != NULL ? OSSL_PROVIDER_get0_name(p) : "(none)";
}

/* ---- keys ---- */

static void write_pem(OSSL_LIB_CTX *plain, struct keyfile *kf, EVP_PKEY *k)
{
    snprintf(kf->path, sizeof kf->path, "%s/%s", workdir, kf->file);
    BIO *b = BIO_new_file(kf->path, "w");
    if (b == NULL || PEM_write_bio_PrivateKey_ex(b, k, NULL, NULL, 0, NULL, NULL, plain, NULL) != 1)
        die("writing a PEM key");
    BIO_free(b);
}

static EVP_PKEY *read_pem(OSSL_LIB_CTX *lib, const struct keyfile *kf)
{
    BIO *b = BIO_new_file(kf->path, "r");
    EVP_PKEY *k = b != NULL ? PEM_read_bio_PrivateKey_ex(b, NULL, NULL, NULL, lib, NULL) : NULL;
    BIO_free(b);
    if (k == NULL) {
        fprintf(stderr, "bench_provider: reading %s (%s)\n", kf->path, kf->label);
        die("PEM_read_bio_PrivateKey_ex");
    }
    return k;
}

/* A fixed peer public key, built in lib from its encoded form (as libssl builds a peer's key share). */
static EVP_PKEY *peer_in(OSSL_LIB_CTX *lib, const char *type, const char *group, const unsigned char *pub,
                         size_t publen)
{
    if (group == NULL) {
        EVP_PKEY *k = EVP_PKEY_new_raw_public_key_ex(lib, type, NULL, pub, publen);
        if (k == NULL)
            die("EVP_PKEY_new_raw_public_key_ex (peer)");
        return k;
    }
    EVP_PKEY *k = NULL;
    EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new_from_name(lib, type, NULL);
    OSSL_PARAM params[] = {
        OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, (char *)(uintptr_t)group, 0),
        OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_PUB_KEY, (void *)(uintptr_t)pub, publen),
        OSSL_PARAM_END,
    };
    if (pc == NULL || EVP_PKEY_fromdata_init(pc) != 1 ||
        EVP_PKEY_fromdata(pc, &k, EVP_PKEY_PUBLIC_KEY, params) != 1)
        die("EVP_PKEY_fromdata (peer)");
    EVP_PKEY_CTX_free(pc);
    return k;
}

/* ---- the operations ---- */

/* What a TLS 1.3 server signs in CertificateVerify: 64 spaces, the context string, a NUL, a hash. */
static unsigned char tbs[64 + 33 + 1 + 32];
/* An RSA-OAEP (SHA-256) ciphertext of `secret`, made with the plain public key. */
static const unsigned char secret[48] = "pre-master secret stand-in, forty-eight bytes!!";
static unsigned char ciphertext[256];
static size_t ciphertext_len;

enum kind { SIGN, DECRYPT, DERIVE };

struct row_def {
    const char *name;
    int key; /* KEY_* */
    enum kind kind;
    const char *md; /* signature digest, or the OAEP digest; NULL for EdDSA */
    int pad;        /* RSA padding mode, 0 if not RSA */
};

static const struct row_def rows[] = {
    {"RSA-2048 sign PSS SHA-256", KEY_RSA, SIGN, "SHA256", RSA_PKCS1_PSS_PADDING},
    {"RSA-2048 sign PKCS#1 v1.5 SHA-256", KEY_RSA, SIGN, "SHA256", RSA_PKCS1_PADDING},
    {"RSA-2048 decrypt OAEP SHA-256", KEY_RSA, DECRYPT, "SHA256", RSA_PKCS1_OAEP_PADDING},
    {"ECDSA P-256 sign SHA-256", KEY_P256, SIGN, "SHA256", 0},
    {"ECDSA P-384 sign SHA-384", KEY_P384, SIGN, "SHA384", 0},
    {"Ed25519 sign", KEY_ED25519, SIGN, NULL, 0},
    {"X25519 derive", KEY_X25519, DERIVE, NULL, 0},
    {"ECDH P-256 derive", KEY_P256, DERIVE, NULL, 0},
};
#define NROWS (sizeof rows / sizeof rows[0])

/* One side of a row: a library context, its copy of the key, and where the result goes. */
struct side {
    const char *who;
    OSSL_LIB_CTX *lib;
    EVP_PKEY *keys[NKEYS];
    EVP_PKEY *peer_x25519, *peer_p256;
    const struct row_def *row;
    const char *op_provider; /* with want_provider: the provider that ran the last operation */
    bool want_provider;
    unsigned char out[512];
    size_t outlen;
};

static void note_provider(struct side *s, const EVP_PKEY_CTX *pc)
{
    if (s->want_provider)
        s->op_provider = provider_name(EVP_PKEY_CTX_get0_provider(pc));
}

/*
 * Sign the way libssl does (tls_construct_cert_verify): a fresh EVP_MD_CTX,
 * EVP_DigestSignInit_ex, the RSA padding and PSS salt length on its
 * EVP_PKEY_CTX, a size query, then the one-shot EVP_DigestSign.
 */
static int op_sign(struct side *s)
{
    const struct row_def *r = s->row;
    EVP_MD_CTX *m = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pc = NULL;
    size_t len = 0;
    int ok = m != NULL && EVP_DigestSignInit_ex(m, &pc, r->md, s->lib, NULL, s->keys[r->key], NULL) == 1 &&
             (r->pad == 0 || EVP_PKEY_CTX_set_rsa_padding(pc, r->pad) == 1) &&
             (r->pad != RSA_PKCS1_PSS_PADDING ||
              EVP_PKEY_CTX_set_rsa_pss_saltlen(pc, RSA_PSS_SALTLEN_DIGEST) == 1) &&
             EVP_DigestSign(m, NULL, &len, tbs, sizeof tbs) == 1 && len <= sizeof s->out &&
             EVP_DigestSign(m, s->out, &len, tbs, sizeof tbs) == 1;
    if (ok) {
        s->outlen = len;
        note_provider(s, pc);
    }
    EVP_MD_CTX_free(m);
    return ok;
}

/* Decrypt the way an application does: a context from the key, OAEP + digest, size query, decrypt. */
static int op_decrypt(struct side *s)
{
    const struct row_def *r = s->row;
    EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new_from_pkey(s->lib, s->keys[r->key], NULL);
    size_t len = 0;
    int ok = pc != NULL && EVP_PKEY_decrypt_init(pc) == 1 && EVP_PKEY_CTX_set_rsa_padding(pc, r->pad) == 1 &&
             EVP_PKEY_CTX_set_rsa_oaep_md_name(pc, r->md, NULL) == 1 &&
             EVP_PKEY_decrypt(pc, NULL, &len, ciphertext, ciphertext_len) == 1 && len <= sizeof s->out &&
             EVP_PKEY_decrypt(pc, s->out, &len, ciphertext, ciphertext_len) == 1;
    if (ok) {
        s->outlen = len;
        note_provider(s, pc);
    }
    EVP_PKEY_CTX_free(pc);
    return ok;
}

/*
 * Derive the way libssl does (ssl_derive): a context from our key,
 * EVP_PKEY_derive_init, EVP_PKEY_derive_set_peer (which validates the peer),
 * a size query, then the derivation.
 */
static int op_derive(struct side *s)
{
    const struct row_def *r = s->row;
    EVP_PKEY *peer = r->key == KEY_X25519 ? s->peer_x25519 : s->peer_p256;
    EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new_from_pkey(s->lib, s->keys[r->key], NULL);
    size_t len = 0;
    int ok = pc != NULL && EVP_PKEY_derive_init(pc) == 1 && EVP_PKEY_derive_set_peer(pc, peer) == 1 &&
             EVP_PKEY_derive(pc, NULL, &len) == 1 && len <= sizeof s->out &&
             EVP_PKEY_derive(pc, s->out, &len) == 1;
    if (ok) {
        s->outlen = len;
        note_provider(s, pc);
    }
    EVP_PKEY_CTX_free(pc);
    return ok;
}

static int op_once(struct side *s)
{
    switch (s->row->kind) {
    case SIGN:
        return op_sign(s);
    case DECRYPT:
        return op_decrypt(s);
    case DERIVE:
        return op_derive(s);
    }
    return 0;
}

static void op_n(struct side *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!op_once(s)) {
            fprintf(stderr, "bench_provider: %s: %s\n", s->who, s->row->name);
            die("the operation");
        }
    }
}

/* One batch of n operations, for the bench harness. */
static void op_batch(void *s, size_t n)
{
    op_n(s, n);
}

/* ---- checks before timing ---- */

static bool verify_sig(OSSL_LIB_CTX *plain, EVP_PKEY *pub, const struct row_def *r, const unsigned char *sig,
                       size_t siglen)
{
    EVP_MD_CTX *m = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pc = NULL;
    bool ok = m != NULL && EVP_DigestVerifyInit_ex(m, &pc, r->md, plain, NULL, pub, NULL) == 1 &&
              (r->pad == 0 || EVP_PKEY_CTX_set_rsa_padding(pc, r->pad) == 1) &&
              (r->pad != RSA_PKCS1_PSS_PADDING ||
               EVP_PKEY_CTX_set_rsa_pss_saltlen(pc, RSA_PSS_SALTLEN_DIGEST) == 1) &&
              EVP_DigestVerify(m, sig, siglen, tbs, sizeof tbs) == 1;
    EVP_MD_CTX_free(m);
    return ok;
}

static _Noreturn void check_failed(const struct row_def *r, const char *why)
{
    fprintf(stderr, "bench_provider: check of \"%s\" failed: %s\n", r->name, why);
    ERR_print_errors_fp(stderr);
    exit(1);
}

/* Run once on each side, check who ran it and that the results are right. */
static void check_row(OSSL_LIB_CTX *plain, struct side *mg, struct side *pl)
{
    const struct row_def *r = mg->row;
    struct side *sides[2] = {mg, pl};
    static const char *const want[2] = {"memguard", "default"};
    for (int i = 0; i < 2; i++) {
        struct side *s = sides[i];
        ERR_clear_error();
        s->want_provider = true;
        s->op_provider = NULL;
        if (!op_once(s)) {
            fprintf(stderr, "bench_provider: %s side: ", s->who);
            check_failed(r, "the operation failed");
        }
        s->want_provider = false;
        if (s->op_provider == NULL || strcmp(s->op_provider, want[i]) != 0) {
            fprintf(stderr, "bench_provider: %s side: the operation ran in provider %s, not %s\n", s->who,
                    s->op_provider != NULL ? s->op_provider : "(unknown)", want[i]);
            check_failed(r, "wrong provider");
        }
        unsigned long e = ERR_peek_error();
        if (e != 0) {
            char buf[256];
            ERR_error_string_n(e, buf, sizeof buf);
            printf("  note: %s side of \"%s\" succeeded but left an error on the queue: %s\n", s->who,
                   r->name, buf);
            ERR_clear_error();
        }
    }
    switch (r->kind) {
    case SIGN:
        for (int i = 0; i < 2; i++)
            if (!verify_sig(plain, pl->keys[r->key], r, sides[i]->out, sides[i]->outlen)) {
                fprintf(stderr, "bench_provider: %s side: ", sides[i]->who);
                check_failed(r, "the signature does not verify");
            }
        /* Deterministic schemes must give the very same signature on both sides. */
        if ((r->key == KEY_ED25519 || r->pad == RSA_PKCS1_PADDING) &&
            (mg->outlen != pl->outlen || memcmp(mg->out, pl->out, mg->outlen) != 0))
            check_failed(r, "deterministic signatures differ between the two sides");
        break;
    case DECRYPT:
        for (int i = 0; i < 2; i++)
            if (sides[i]->outlen != sizeof secret || memcmp(sides[i]->out, secret, sizeof secret) != 0) {
                fprintf(stderr, "bench_provider: %s side: ", sides[i]->who);
                check_failed(r, "wrong plaintext");
            }
        break;
    case DERIVE: {
        static const unsigned char zero[64];
        if (mg->outlen != pl->outlen || mg->outlen == 0 || memcmp(mg->out, pl->out, mg->outlen) != 0)
            check_failed(r, "the two sides derived different secrets");
        if (mg->outlen <= sizeof zero && memcmp(mg->out, zero, mg->outlen) == 0)
            check_failed(r, "the derived secret is all zeros");
        break;
    }
    }
}

/* ---- output ---- */

static void print_header_row(void)
{
    printf("%-34s | %10s | %10s | %6s | %10s | %s\n", "operation (median per op)", "memguard", "plain",
           "ratio", "added", "IQR mg/plain");
    printf("%.34s-+-%.10s-+-%.10s-+-%.6s-+-%.10s-+-%s\n", "----------------------------------", "----------",
           "----------", "------", "----------", "------------");
}

static double time_row(const char *name, const bench_sample *m, const bench_sample *p)
{
    char tm[32], tp[32], td[32];
    bench_fmt_time(tm, sizeof tm, m->med);
    bench_fmt_time(tp, sizeof tp, p->med);
    double d = m->med - p->med;
    bench_fmt_time(td + 1, sizeof td - 1, d < 0 ? -d : d);
    td[0] = d < 0 ? '-' : '+';
    double ratio = m->med / p->med;
    printf("%-34s | %10s | %10s | %5.2fx | %10s | %4.1f%% / %4.1f%%\n", name, tm, tp, ratio, td, bench_spread(m),
           bench_spread(p));
    fflush(stdout);
    return ratio;
}

static void usage(const char *argv0)
{
    fprintf(stderr, "usage: %s [--quick] [MODULE]\n  MODULE: path of memguard.so (default: %s)\n", argv0,
            BENCH_PROVIDER_MODULE[0] != '\0' ? BENCH_PROVIDER_MODULE : "none compiled in");
}

int main(int argc, char **argv)
{
    const char *module_arg = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            quick = true;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(argv[0]);
            return 0;
        } else if (argv[i][0] != '-' && module_arg == NULL) {
            module_arg = argv[i];
        } else {
            usage(argv[0]);
            return 2;
        }
    }
    bench_timing.batch_ns = quick ? 3e6 : 30e6;
    bench_timing.calib_ns = quick ? 0.5e6 : 5e6;

    if (module_arg == NULL)
        module_arg = BENCH_PROVIDER_MODULE;
    if (module_arg[0] == '\0') {
        usage(argv[0]);
        return 2;
    }
    /* The configuration wants an absolute path (a bare name would be looked up in OpenSSL's modulesdir). */
    char module[PATH_MAX];
    if (realpath(module_arg, module) == NULL) {
        fprintf(stderr, "bench_provider: the provider module %s: ", module_arg);
        perror(NULL);
        return 1;
    }

    /* Nothing here uses the default library context; keep OPENSSL_CONF out of the process anyway. */
    if (OPENSSL_init_crypto(OPENSSL_INIT_NO_LOAD_CONFIG, NULL) != 1)
        die("OPENSSL_init_crypto");

    const char *tmp = getenv("TMPDIR");
    snprintf(workdir, sizeof workdir, "%s/bench_provider.XXXXXX",
             tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
    if (mkdtemp(workdir) == NULL) {
        workdir[0] = '\0';
        perror("bench_provider: mkdtemp");
        return 1;
    }
    atexit(cleanup);
    write_config(module);

    /* The memguard context, configured from the file; the plain one with the default provider only. */
    OSSL_LIB_CTX *mglib = OSSL_LIB_CTX_new();
    if (mglib == NULL || OSSL_LIB_CTX_load_config(mglib, conf_path) != 1)
        die("OSSL_LIB_CTX_load_config (the memguard configuration)");
    if (OSSL_PROVIDER_available(mglib, "memguard") != 1 || OSSL_PROVIDER_available(mglib, "default") != 1)
        die("activating default and memguard from the configuration");
    OSSL_LIB_CTX *plain = OSSL_LIB_CTX_new();
    OSSL_PROVIDER *plain_default = plain != NULL ? OSSL_PROVIDER_load(plain, "default") : NULL;
    if (plain_default == NULL)
        die("loading the default provider into the plain context");

    /* Keys: generated once in the plain context, written as PKCS#8 PEM. */
    EVP_PKEY *gen[NKEYS];
    gen[KEY_RSA] = EVP_PKEY_Q_keygen(plain, NULL, "RSA", (size_t)2048);
    gen[KEY_P256] = EVP_PKEY_Q_keygen(plain, NULL, "EC", "P-256");
    gen[KEY_P384] = EVP_PKEY_Q_keygen(plain, NULL, "EC", "P-384");
    gen[KEY_ED25519] = EVP_PKEY_Q_keygen(plain, NULL, "ED25519");
    gen[KEY_X25519] = EVP_PKEY_Q_keygen(plain, NULL, "X25519");
    for (int i = 0; i < NKEYS; i++) {
        if (gen[i] == NULL)
            die("key generation");
        write_pem(plain, &keyfiles[i], gen[i]);
        EVP_PKEY_free(gen[i]);
    }

    /* The fixed peers: their encoded public keys, rebuilt in each context. */
    EVP_PKEY *px = EVP_PKEY_Q_keygen(plain, NULL, "X25519");
    EVP_PKEY *pe = EVP_PKEY_Q_keygen(plain, NULL, "EC", "P-256");
    unsigned char *px_pub = NULL, *pe_pub = NULL;
    size_t px_len = px != NULL ? EVP_PKEY_get1_encoded_public_key(px, &px_pub) : 0;
    size_t pe_len = pe != NULL ? EVP_PKEY_get1_encoded_public_key(pe, &pe_pub) : 0;
    if (px_len == 0 || pe_len == 0)
        die("peer key generation");
    EVP_PKEY_free(px);
    EVP_PKEY_free(pe);

    struct side mg = {.who = "memguard", .lib = mglib}, pl = {.who = "plain", .lib = plain};
    struct side *sides[2] = {&mg, &pl};
    for (int s = 0; s < 2; s++) {
        for (int i = 0; i < NKEYS; i++)
            sides[s]->keys[i] = read_pem(sides[s]->lib, &keyfiles[i]);
        sides[s]->peer_x25519 = peer_in(sides[s]->lib, "X25519", NULL, px_pub, px_len);
        sides[s]->peer_p256 = peer_in(sides[s]->lib, "EC", "P-256", pe_pub, pe_len);
    }
    OPENSSL_free(px_pub);
    OPENSSL_free(pe_pub);
    for (int i = 0; i < NKEYS; i++) {
        const char *m = provider_name(EVP_PKEY_get0_provider(mg.keys[i]));
        const char *p = provider_name(EVP_PKEY_get0_provider(pl.keys[i]));
        if (strcmp(m, "memguard") != 0 || strcmp(p, "default") != 0) {
            fprintf(stderr, "bench_provider: %s: memguard side held by %s, plain side by %s\n",
                    keyfiles[i].label, m, p);
            die("checking that the memguard context's keys are memguard keys");
        }
    }

    /* The OAEP ciphertext, made with the plain context's public key. */
    memset(tbs, ' ', 64);
    memcpy(tbs + 64, "TLS 1.3, server CertificateVerify", 33);
    tbs[97] = 0;
    for (int i = 0; i < 32; i++)
        tbs[98 + i] = (unsigned char)(0xa5 ^ (i * 7));
    {
        EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new_from_pkey(plain, pl.keys[KEY_RSA], NULL);
        ciphertext_len = sizeof ciphertext;
        if (pc == NULL || EVP_PKEY_encrypt_init(pc) != 1 ||
            EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_OAEP_PADDING) != 1 ||
            EVP_PKEY_CTX_set_rsa_oaep_md_name(pc, "SHA256", NULL) != 1 ||
            EVP_PKEY_encrypt(pc, ciphertext, &ciphertext_len, secret, sizeof secret) != 1)
            die("the OAEP encryption of the test secret");
        EVP_PKEY_CTX_free(pc);
    }

    /* Provider identities, for the header. */
    char *mg_version = NULL, *mg_build = NULL;
    {
        OSSL_PROVIDER *p = OSSL_PROVIDER_load(mglib, "memguard"); /* already active: just a reference */
        OSSL_PARAM q[] = {
            OSSL_PARAM_utf8_ptr(OSSL_PROV_PARAM_VERSION, &mg_version, 0),
            OSSL_PARAM_utf8_ptr(OSSL_PROV_PARAM_BUILDINFO, &mg_build, 0),
            OSSL_PARAM_END,
        };
        if (p == NULL || OSSL_PROVIDER_get_params(p, q) != 1)
            die("OSSL_PROVIDER_get_params (memguard)");
        printf("bench_provider: %s, memguard provider %s (%s)\n", OpenSSL_version(OPENSSL_VERSION),
               mg_version != NULL ? mg_version : "?", mg_build != NULL ? mg_build : "?");
        OSSL_PROVIDER_unload(p);
    }
    printf("benchmark: %s build (%s), %ld CPUs online; module %s\n", BENCH_BUILD_TYPE, BENCH_COMPILER,
           sysconf(_SC_NPROCESSORS_ONLN), module);
    bench_print_conditions(quick);
    printf("memguard: OSSL_LIB_CTX_load_config of conf/memguard.cnf's provider section (default, then "
           "memguard);\n"
           "plain: a library context with the default provider only; both read the same PEM (PKCS#8) keys\n");
    printf(
        "keys: %d of %d in the memguard context are held by provider \"memguard\", in the plain context by "
        "\"default\"\n",
        NKEYS, NKEYS);
    printf("peers (fixed public keys): X25519 held by %s / %s, P-256 by %s / %s (memguard / plain context)\n",
           provider_name(EVP_PKEY_get0_provider(mg.peer_x25519)),
           provider_name(EVP_PKEY_get0_provider(pl.peer_x25519)),
           provider_name(EVP_PKEY_get0_provider(mg.peer_p256)),
           provider_name(EVP_PKEY_get0_provider(pl.peer_p256)));

    for (size_t r = 0; r < NROWS; r++) {
        mg.row = pl.row = &rows[r];
        check_row(plain, &mg, &pl);
    }
    printf(
        "checks: every row ran in provider memguard / default on its two sides; signatures verify with the\n"
        "  public key in the plain context (PKCS#1 v1.5 and Ed25519 signatures identical on both sides), "
        "OAEP\n"
        "  decrypts to the secret, both sides derive the same shared secrets\n");
    printf("ratio = memguard / plain time per op (lower is better); added = memguard - plain\n\n");
    print_header_row();

    double ratio[NROWS];
    for (size_t r = 0; r < NROWS; r++) {
        bench_sample ms, ps;
        mg.row = pl.row = &rows[r];
        bench_measure_pair(op_batch, &mg, op_batch, &pl, &ms, &ps);
        ratio[r] = time_row(rows[r].name, &ms, &ps);
    }

    printf("\nload average (1 min) at end: %.2f\n", bench_loadavg());
    printf("per op, both sides: sign = EVP_MD_CTX_new + EVP_DigestSignInit_ex (+ RSA padding/salt length) + "
           "size\n"
           "  query + EVP_DigestSign + free; decrypt = EVP_PKEY_CTX_new_from_pkey + decrypt_init + "
           "padding/OAEP\n"
           "  digest + size query + EVP_PKEY_decrypt + free; derive = EVP_PKEY_CTX_new_from_pkey + "
           "derive_init +\n"
           "  derive_set_peer (validates the peer) + size query + EVP_PKEY_derive + free\n\n");

    /* Rows 0-2 RSA, 3 P-256, 5 Ed25519, 6 X25519. */
    printf("target: Ed25519 sign <= %.2fx plain (%.2fx): %s\n", TARGET_ECX, ratio[5],
           bench_verdict(ratio[5], TARGET_ECX));
    printf("target: X25519 derive <= %.2fx plain (%.2fx): %s\n", TARGET_ECX, ratio[6],
           bench_verdict(ratio[6], TARGET_ECX));
    printf("target: ECDSA P-256 sign <= %.2fx plain (%.2fx): %s\n", TARGET_P256, ratio[3],
           bench_verdict(ratio[3], TARGET_P256));
    double rsa_worst = ratio[0];
    for (int i = 1; i < 3; i++)
        if (ratio[i] > rsa_worst)
            rsa_worst = ratio[i];
    printf(
        "target: RSA-2048 <= %.2fx plain (PSS sign %.2fx, PKCS#1 v1.5 sign %.2fx, OAEP decrypt %.2fx): %s\n",
        TARGET_RSA, ratio[0], ratio[1], ratio[2], bench_verdict(rsa_worst, TARGET_RSA));

    for (int s = 0; s < 2; s++) {
        for (int i = 0; i < NKEYS; i++)
            EVP_PKEY_free(sides[s]->keys[i]);
        EVP_PKEY_free(sides[s]->peer_x25519);
        EVP_PKEY_free(sides[s]->peer_p256);
    }
    OSSL_PROVIDER_unload(plain_default);
    OSSL_LIB_CTX_free(plain);
    OSSL_LIB_CTX_free(mglib);
    return 0;
}
