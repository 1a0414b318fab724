/*
 * Locked-memory pressure through the provider (issue 11): with RLIMIT_MEMLOCK small, a key that
 * memguard loads serves every operation in every thread; a key it cannot serve is refused at load
 * with a message naming RLIMIT_MEMLOCK. Never a usable key whose operations fail at random.
 *
 * Each run is a forked child that lowers RLIMIT_MEMLOCK (soft and hard), becomes nobody when run
 * as root (CAP_IPC_LOCK ignores the limit), and only then reads OPENSSL_CONF and loads the key,
 * from PEM text made beforehand by another child (the parent never initialises OpenSSL, so no
 * child inherits a loaded provider or locked memory). 8 threads then sign 400 times in all, and
 * every signature is verified; RSA also decrypts 400 times (the operation with the most workspace).
 *
 * For RSA-2048 and P-256: the limit is raised 4 KiB at a time from 4 KiB until the key loads;
 * every level below must refuse it with the RLIMIT_MEMLOCK message, and at the first level that
 * loads (and at 64 and 128 KiB, where 8-103 of 400 signatures used to fail) all 400 signatures
 * must succeed.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CUnit/CUnit.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/provider.h>
#include <openssl/rsa.h>

#include "../core/harness.h"
#include "check.h"

#define THREADS 8
#define SIGNATURES 400
#define STEP_KIB 4
#define SCAN_MAX_KIB 128

/* Child exit codes. */
enum { SERVED = 0, LOAD_FAILED = 20, NOT_MEMGUARD = 21, REFUSED = 22, RANDOM_FAILURES = 23, SETUP = 24 };

enum { RSA2048, P256, NKEYS };
static const char *const names[NKEYS] = {"RSA-2048", "P-256"};
static char pem[NKEYS][8192];

/* ---- key generation, in a child of its own ---- */

static EVP_PKEY *generate(OSSL_LIB_CTX *ctx, int which)
{
    EVP_PKEY_CTX *g = EVP_PKEY_CTX_new_from_name(ctx, which == RSA2048 ? "RSA" : "EC", NULL);
    EVP_PKEY *k = NULL;
    int ok = g != NULL && EVP_PKEY_keygen_init(g) == 1 &&
             (which == RSA2048 ? EVP_PKEY_CTX_set_rsa_keygen_bits(g, 2048) > 0
                               : EVP_PKEY_CTX_set_group_name(g, "P-256") > 0) &&
             EVP_PKEY_keygen(g, &k) == 1;
    EVP_PKEY_CTX_free(g);
    if (!ok) {
        EVP_PKEY_free(k);
        return NULL;
    }
    return k;
}

/* PEM (PKCS#8) of a fresh key of each kind, made by a child without memguard. 0 on success. */
static int make_keys(void)
{
    int fd[2];
    if (pipe(fd) != 0)
        return -1;
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        close(fd[0]);
        unsetenv("OPENSSL_CONF"); /* a plain default provider makes them */
        OSSL_LIB_CTX *ctx = OSSL_LIB_CTX_new();
        if (ctx == NULL || OSSL_PROVIDER_load(ctx, "default") == NULL)
            _exit(1);
        for (int i = 0; i < NKEYS; i++) {
            EVP_PKEY *k = generate(ctx, i);
            BIO *b = BIO_new(BIO_s_mem());
            if (k == NULL || b == NULL || PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL) != 1)
                _exit(2);
            char *data;
            long len = BIO_get_mem_data(b, &data);
            if (len <= 0 || len >= (long)sizeof pem[0])
                _exit(3);
            uint32_t n = (uint32_t)len;
            if (write(fd[1], &n, sizeof n) != (ssize_t)sizeof n || write(fd[1], data, n) != (ssize_t)n)
                _exit(4);
            BIO_free(b);
            EVP_PKEY_free(k);
        }
        _exit(0);
    }
    close(fd[1]);
    int rc = 0;
    for (int i = 0; i < NKEYS && rc == 0; i++) {
        uint32_t n = 0;
        size_t got = 0;
        rc = read(fd[0], &n, sizeof n) == (ssize_t)sizeof n && n < sizeof pem[i] ? 0 : -1;
        while (rc == 0 && got < n) {
            ssize_t r = read(fd[0], pem[i] + got, n - got);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0)
                rc = -1;
            else
                got += (size_t)r;
        }
        if (rc == 0)
            pem[i][n] = '\0';
    }
    close(fd[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    return rc == 0 && mgt_exited_ok(status) ? 0 : -1;
}

/* ---- one run under a limit (in the child) ---- */

struct run {
    int which;
    unsigned limit_kib;
};

struct signer {
    EVP_PKEY *key;
    bool rsa;
    int index;
    int signed_ok, verified, failed, decrypted;
};

/*
 * RSA decryption asks for the most workspace (rsa.c: 3 * |n| plus the unpadding's scratch, for every
 * padding; PKCS#1 v1.5's implicit rejection keeps its HMAC state there too): encrypt to the key,
 * decrypt, compare; OAEP and PKCS#1 v1.5 in turn.
 */
static bool decrypts(EVP_PKEY *key, const unsigned char *msg, size_t len, int padding)
{
    unsigned char ct[512], pt[512];
    size_t ctlen = sizeof ct, ptlen = sizeof pt;
    EVP_PKEY_CTX *e = EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL);
    bool ok = e != NULL && EVP_PKEY_encrypt_init(e) == 1 &&
              EVP_PKEY_CTX_set_rsa_padding(e, padding) > 0 &&
              EVP_PKEY_encrypt(e, ct, &ctlen, msg, len) == 1 && EVP_PKEY_decrypt_init(e) == 1 &&
              EVP_PKEY_CTX_set_rsa_padding(e, padding) > 0 &&
              EVP_PKEY_decrypt(e, pt, &ptlen, ct, ctlen) == 1 && ptlen == len && memcmp(pt, msg, len) == 0;
    EVP_PKEY_CTX_free(e);
    return ok;
}

static void *signer_main(void *arg)
{
    struct signer *s = arg;
    for (int i = 0; i < SIGNATURES / THREADS; i++) {
        unsigned char msg[64], sig[512];
        size_t siglen = sizeof sig;
        snprintf((char *)msg, sizeof msg, "thread %d message %d", s->index, i);
        EVP_MD_CTX *m = EVP_MD_CTX_new();
        int ok = m != NULL && EVP_DigestSignInit_ex(m, NULL, "SHA256", NULL, NULL, s->key, NULL) == 1 &&
                 EVP_DigestSign(m, sig, &siglen, msg, sizeof msg) == 1;
        EVP_MD_CTX_free(m);
        if (!ok) {
            if (s->failed++ == 0)
                ERR_print_errors_fp(stderr);
            ERR_clear_error();
            continue;
        }
        s->signed_ok++;
        m = EVP_MD_CTX_new();
        if (m != NULL && EVP_DigestVerifyInit_ex(m, NULL, "SHA256", NULL, NULL, s->key, NULL) == 1 &&
            EVP_DigestVerify(m, sig, siglen, msg, sizeof msg) == 1)
            s->verified++;
        EVP_MD_CTX_free(m);
        if (s->rsa && decrypts(s->key, msg, sizeof msg, i % 2 ? RSA_PKCS1_PADDING : RSA_PKCS1_OAEP_PADDING)) {
            s->decrypted++;
        } else if (s->rsa) {
            if (s->failed++ == 0)
                ERR_print_errors_fp(stderr);
            ERR_clear_error();
        }
    }
    return NULL;
}

/* The process's locked memory as the kernel counts it against RLIMIT_MEMLOCK, or -1. */
static long vmlck_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;
    while (f != NULL && fgets(line, sizeof line, f) != NULL)
        if (sscanf(line, "VmLck: %ld kB", &kib) == 1)
            break;
    if (f != NULL)
        fclose(f);
    return kib;
}

static void run_limited(void *arg)
{
    const struct run *r = arg;
    struct rlimit rl = {(rlim_t)r->limit_kib * 1024, (rlim_t)r->limit_kib * 1024};
    if (setrlimit(RLIMIT_MEMLOCK, &rl) != 0)
        _exit(SETUP);
    if (geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0))
        _exit(SETUP);
    if (geteuid() == 0)
        _exit(SETUP); /* still privileged: the limit would not apply */
    /* Only now does OpenSSL read OPENSSL_CONF and load memguard. */
    BIO *b = BIO_new_mem_buf(pem[r->which], -1);
    EVP_PKEY *key = b != NULL ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    if (key == NULL) {
        ERR_print_errors_fp(stderr);
        _exit(LOAD_FAILED);
    }
    const OSSL_PROVIDER *p = EVP_PKEY_get0_provider(key);
    if (p == NULL || strcmp(OSSL_PROVIDER_get0_name(p), "memguard") != 0)
        _exit(NOT_MEMGUARD); /* fail open: the key went to another provider */
    struct signer s[THREADS];
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++) {
        s[i] = (struct signer){.key = key, .rsa = r->which == RSA2048, .index = i};
        if (pthread_create(&t[i], NULL, signer_main, &s[i]) != 0)
            _exit(SETUP);
    }
    int ok = 0, verified = 0, failed = 0, decrypted = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        ok += s[i].signed_ok;
        verified += s[i].verified;
        failed += s[i].failed;
        decrypted += s[i].decrypted;
    }
    fprintf(stderr, "%s at %u KiB: %d signed, %d verified, %d decrypted, %d failed (VmLck %ld KiB)\n",
            names[r->which], r->limit_kib, ok, verified, decrypted, failed, vmlck_kib());
    EVP_PKEY_free(key);
    if (failed == 0 && verified == SIGNATURES && decrypted == (r->which == RSA2048 ? SIGNATURES : 0))
        _exit(SERVED);
    _exit(ok == 0 ? REFUSED : RANDOM_FAILURES);
}

/* The child's exit code (-1 if it did not exit) and its stderr. */
static int run_at(int which, unsigned limit_kib, char *err, size_t errlen)
{
    struct run r = {which, limit_kib};
    int status = mgt_run_child(run_limited, &r, err, errlen);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Refusal for lack of locked memory: the load fails, or every use fails, and the message names the limit. */
static bool refused_for_memlock(int code, const char *err)
{
    if (code != LOAD_FAILED && code != REFUSED)
        return false;
    /* A line of memguard's own that names the limit (not the provider's secure-heap warning). */
    for (const char *at = err; at != NULL && *at != '\0';) {
        const char *end = strchr(at, '\n');
        size_t len = end != NULL ? (size_t)(end - at) : strlen(at);
        char line[2048];
        snprintf(line, sizeof line, "%.*s", (int)(len < sizeof line ? len : sizeof line - 1), at);
        if (strstr(line, "RLIMIT_MEMLOCK") != NULL && strstr(line, "secure heap") == NULL)
            return true;
        at = end != NULL ? end + 1 : NULL;
    }
    return false;
}

static void scan(int which)
{
    char err[16384];
    unsigned kib;
    for (kib = STEP_KIB; kib <= SCAN_MAX_KIB; kib += STEP_KIB) {
        int code = run_at(which, kib, err, sizeof err);
        if (code == SERVED) {
            printf("\n    %s: refused below %u KiB, served from %u KiB: %s", names[which], kib, kib, err);
            break;
        }
        if (!CHECK(refused_for_memlock(code, err), "%s at %u KiB: exit %d; neither served nor refused with the "
                   "RLIMIT_MEMLOCK message (its stderr follows)", names[which], kib, code)) {
            fprintf(stderr, "\n%s\n", err);
            return;
        }
        if (kib == STEP_KIB || kib + STEP_KIB > SCAN_MAX_KIB)
            printf("\n    %s at %u KiB refused: %.400s", names[which], kib,
                   strstr(err, "REFUSED") != NULL ? strstr(err, "REFUSED") : err);
    }
    CHECK(kib <= SCAN_MAX_KIB, "%s never loaded up to %u KiB", names[which], SCAN_MAX_KIB);
}

static void served_at(int which, unsigned kib)
{
    char err[16384];
    int code = run_at(which, kib, err, sizeof err);
    if (!CHECK(code == SERVED, "%s at %u KiB: exit %d (23: some signatures failed; its stderr follows)", names[which],
               kib, code))
        fprintf(stderr, "\n%s\n", err);
    else
        printf("\n    %s", err);
}

static void test_rsa_is_refused_or_served_at_every_level(void)
{
    scan(RSA2048);
}

static void test_p256_is_refused_or_served_at_every_level(void)
{
    scan(P256);
}

static void test_rsa_at_64_and_128_kib(void)
{
    served_at(RSA2048, 64);
    served_at(RSA2048, 128);
}

static void test_p256_at_64_and_128_kib(void)
{
    served_at(P256, 64);
    served_at(P256, 128);
}

static int init_suite(void)
{
    return make_keys() == 0 ? 0 : 1;
}

static CU_TestInfo memlock_tests[] = {
    {"RSA-2048: refused with the RLIMIT_MEMLOCK message, or 400 of 400 signed (8 threads)",
     test_rsa_is_refused_or_served_at_every_level},
    {"P-256: refused with the RLIMIT_MEMLOCK message, or 400 of 400 signed (8 threads)",
     test_p256_is_refused_or_served_at_every_level},
    {"RSA-2048 at 64 and 128 KiB: 400 of 400 signed and verified", test_rsa_at_64_and_128_kib},
    {"P-256 at 64 and 128 KiB: 400 of 400 signed and verified", test_p256_at_64_and_128_kib},
    CU_TEST_INFO_NULL,
};

int main(void)
{
    CU_SuiteInfo suites[] = {
        {"provider.memlock", init_suite, NULL, NULL, NULL, memlock_tests},
        CU_SUITE_INFO_NULL,
    };
    return mgt_main(suites);
}
