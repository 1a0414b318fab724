/*
 * After loading keys from PEM files through memguard and using them, this
 * process's readable memory holds no copy of any private component: RSA d, p,
 * q, dP, dQ, qInv; the EC scalar; the Ed25519/X25519 private key - searched in
 * big-endian (DER, OpenSSL's wire form) and little-endian (BIGNUM limbs) form.
 * Positive control: the same key loaded without memguard IS found, so a scan
 * that finds nothing means something.
 *
 * The test never holds a component in the clear: `openssl pkey -text` runs in
 * a child process, and its hex is turned into needles XOR-masked with random
 * bytes; the scanner unmasks byte by byte while comparing.
 * Run with OPENSSL_CONF pointing at a configuration that loads memguard.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/provider.h>

#include <memguard/memguard.h>

#include "../core/harness.h"
#include "memscan.h"

#define WINDOW 24 /* bytes compared per needle: a window from the middle of each component */

static memscan_needle needles[64];
static size_t n_needles;
static char workdir[] = "/tmp/mgt-residue-XXXXXX";

static int hexval(int c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Add BE and LE windows of a component given as bytes; wipes the bytes. */
static void add_component(const char *name, unsigned char *v, size_t n)
{
    /* Drop the DER sign byte. */
    while (n > 0 && v[0] == 0) {
        memmove(v, v + 1, --n);
    }
    if (n < WINDOW + 4 || n_needles + 2 > sizeof needles / sizeof needles[0]) {
        mg_wipe(v, n);
        return;
    }
    size_t mid = (n - WINDOW) / 2;
    for (int le = 0; le < 2; le++) {
        char label[48];
        snprintf(label, sizeof label, "%s (%s)", name, le ? "little-endian" : "big-endian");
        /* little-endian: the same bytes counted from the other end, reversed */
        if (!memscan_needle_init(&needles[n_needles++], label, le ? v + n - mid - WINDOW : v + mid, WINDOW, le))
            abort();
    }
    mg_wipe(v, n);
}

/* Parse `openssl pkey -text -noout` (run in a child process) into needles. */
static int needles_from(const char *keyfile)
{
    static const char *fields[] = {"privateExponent:", "prime1:", "prime2:", "exponent1:",
                                   "exponent2:",       "coefficient:", "priv:"};
    char cmd[512];
    snprintf(cmd, sizeof cmd, "OPENSSL_CONF=/dev/null openssl pkey -in %s -text -noout", keyfile);
    FILE *p = popen(cmd, "r");
    if (p == NULL)
        return 0;
    char line[256];
    unsigned char val[1024];
    size_t vlen = 0;
    const char *cur = NULL;
    size_t before = n_needles;
    while (fgets(line, sizeof line, p) != NULL) {
        if (line[0] != ' ') {
            if (cur != NULL)
                add_component(cur, val, vlen);
            cur = NULL;
            vlen = 0;
            for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
                if (strncmp(line, fields[i], strlen(fields[i])) == 0)
                    cur = fields[i];
        } else if (cur != NULL) {
            for (char *c = line; *c != '\0'; c++) {
                if (hexval(c[0]) >= 0 && hexval(c[1]) >= 0 && vlen < sizeof val) {
                    val[vlen++] = (unsigned char)(hexval(c[0]) << 4 | hexval(c[1]));
                    c++;
                }
            }
        }
        mg_wipe(line, sizeof line);
    }
    if (cur != NULL)
        add_component(cur, val, vlen);
    mg_wipe(val, sizeof val);
    pclose(p);
    return n_needles > before;
}

static EVP_PKEY *load(const char *path, OSSL_LIB_CTX *libctx)
{
    BIO *b = BIO_new_file(path, "r");
    EVP_PKEY *k = b != NULL ? PEM_read_bio_PrivateKey_ex(b, NULL, NULL, NULL, libctx, NULL) : NULL;
    BIO_free(b);
    return k;
}

/* Use the key the way a server does: sign (or derive) many times. */
static int use(EVP_PKEY *k, const char *type)
{
    static const unsigned char msg[] = "handshake transcript hash stand-in";
    for (int i = 0; i < 20; i++) {
        if (strcmp(type, "X25519") == 0) {
            EVP_PKEY *peer = EVP_PKEY_Q_keygen(NULL, NULL, "X25519");
            EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_pkey(NULL, k, NULL);
            unsigned char secret[32];
            size_t len = sizeof secret;
            int ok = c != NULL && EVP_PKEY_derive_init(c) == 1 && EVP_PKEY_derive_set_peer(c, peer) == 1 &&
                     EVP_PKEY_derive(c, secret, &len) == 1;
            EVP_PKEY_CTX_free(c);
            EVP_PKEY_free(peer);
            mg_wipe(secret, sizeof secret);
            if (!ok)
                return 0;
            continue;
        }
        EVP_MD_CTX *m = EVP_MD_CTX_new();
        unsigned char sig[1024];
        size_t len = sizeof sig;
        const char *md = strcmp(type, "ED25519") == 0 ? NULL : "SHA256";
        int ok = EVP_DigestSignInit_ex(m, NULL, md, NULL, NULL, k, NULL) == 1 &&
                 EVP_DigestSign(m, sig, &len, msg, sizeof msg) == 1;
        EVP_MD_CTX_free(m);
        if (!ok)
            return 0;
    }
    return 1;
}

static const char *types[][2] = {
    {"RSA", "-algorithm RSA -pkeyopt rsa_keygen_bits:2048"},
    {"EC", "-algorithm EC -pkeyopt ec_paramgen_curve:P-256"},
    {"ED25519", "-algorithm ED25519"},
    {"X25519", "-algorithm X25519"},
};

static void test_no_private_component_in_memory_after_use(void)
{
    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(workdir));
    size_t start[5];
    char path[4][128];
    for (int t = 0; t < 4; t++) {
        snprintf(path[t], sizeof path[t], "%s/%s.pem", workdir, types[t][0]);
        char cmd[512];
        snprintf(cmd, sizeof cmd, "OPENSSL_CONF=/dev/null openssl genpkey %s -out %s 2>/dev/null", types[t][1], path[t]);
        CU_ASSERT_EQUAL_FATAL(system(cmd), 0);
        start[t] = n_needles;
        CU_ASSERT_FATAL(needles_from(path[t]));
    }
    start[4] = n_needles;

    /* Through memguard: load, check where the key lives, use it, keep it loaded. */
    EVP_PKEY *keys[4];
    for (int t = 0; t < 4; t++) {
        keys[t] = load(path[t], NULL);
        CU_ASSERT_PTR_NOT_NULL_FATAL(keys[t]);
        const OSSL_PROVIDER *prov = EVP_PKEY_get0_provider(keys[t]);
        CU_ASSERT_TRUE_FATAL(prov != NULL && strcmp(OSSL_PROVIDER_get0_name(prov), "memguard") == 0);
        CU_ASSERT_TRUE(use(keys[t], types[t][0]));
    }
    CU_ASSERT_FATAL(memscan_run(needles, n_needles));
    size_t total = 0;
    printf("\n");
    for (int t = 0; t < 4; t++) {
        for (size_t k = start[t]; k < start[t + 1]; k++) {
            size_t hits = needles[k].guarded + needles[k].elsewhere;
            printf("    memguard %-8s %-36s %zu\n", types[t][0], needles[k].name, hits);
            total += hits;
        }
    }
    CU_ASSERT_EQUAL(total, 0);

    /* Control: the same keys loaded without memguard are found by the same scan. */
    OSSL_LIB_CTX *plain = OSSL_LIB_CTX_new();
    OSSL_PROVIDER *deflt = OSSL_PROVIDER_load(plain, "default");
    EVP_PKEY *plain_keys[4];
    for (int t = 0; t < 4; t++) {
        plain_keys[t] = load(path[t], plain);
        CU_ASSERT_PTR_NOT_NULL_FATAL(plain_keys[t]);
    }
    CU_ASSERT_FATAL(memscan_run(needles, n_needles));
    for (int t = 0; t < 4; t++) {
        size_t found = memscan_total(needles, start[t], start[t + 1], true) +
                       memscan_total(needles, start[t], start[t + 1], false);
        printf("    without memguard: %-8s components found %zu times\n", types[t][0], found);
        CU_ASSERT_TRUE(found > 0);
    }
    for (int t = 0; t < 4; t++) {
        EVP_PKEY_free(plain_keys[t]);
        EVP_PKEY_free(keys[t]);
        unlink(path[t]);
    }
    OSSL_PROVIDER_unload(deflt);
    OSSL_LIB_CTX_free(plain);
    rmdir(workdir);
}

static CU_TestInfo residue_tests[] = {
    {"no private component in memory after loading and using keys",
     test_no_private_component_in_memory_after_use},
    CU_TEST_INFO_NULL,
};

int main(void)
{
    if (getenv("OPENSSL_CONF") == NULL) {
        fprintf(stderr, "set OPENSSL_CONF to a configuration that loads memguard\n");
        return 2;
    }
    CU_SuiteInfo suites[] = {
        {"residue", NULL, NULL, NULL, NULL, residue_tests},
        CU_SUITE_INFO_NULL,
    };
    return mgt_main(suites);
}
