/*
 * In-operation exposure (issue 11, point 4): what passes through memory memguard does not own
 * while keys are in use, and OpenSSL's secure heap that the provider sets up for it.
 *
 * The live scan: a target process (this program, re-executed with --target) loads an RSA-2048
 * and a P-256 key through memguard and signs with both in 2 threads without pause; meanwhile it
 * runs mg-keyscan on itself 20 times (a separate process reading /proc/PID/mem, as root) and
 * classifies every hit of every private component (RSA d, p, q, dP, dQ, qInv big- and
 * little-endian, windows that divide n; the EC scalar; PEM and DER) by the region it is in:
 * guarded (memguard's mappings: mlock'ed and MADV_DONTDUMP), the OpenSSL secure heap arena,
 * ordinary heap ([heap] and anonymous mappings: malloc arenas, large chunks), stack (the main and
 * the threads' stacks), other. The whole table goes to stdout.
 *
 * Assertions: with memguard's default configuration, 0 hits in the ordinary heap for the
 * components the provider keeps out of it (KEPT_OUT below); a control run of the same program
 * with memguard-secure-heap = 0 finds hits there, so the scan demonstrably sees them.
 *
 * Not under ASan (the scan reads all memory, shadow included); run with MEMGUARD_BACKEND=anonymous
 * (memfd_secret pages cannot be read, which would hide guarded hits from the table).
 *
 * Usage: test_inop MG-KEYSCAN   (OPENSSL_CONF: a configuration that loads memguard)
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/provider.h>

#include "../core/harness.h"
#include "check.h"

extern char **environ;

#define SCANS 20        /* live scans of the measured configuration */
#define CONTROL_SCANS 5 /* of the control: enough to show the scan sees the ordinary heap */
static int nscans = SCANS;

/* ---- region classes ---- */
enum { R_GUARDED, R_SECURE, R_HEAP, R_STACK, R_OTHER, R_COUNT };
static const char *const class_name[R_COUNT] = {"guarded", "secure-heap", "ordinary-heap", "stack", "other"};

/* Encodings the scan reports, without -be/-le: the columns of the table. */
static const char *const components[] = {"rsa-d",  "rsa-p", "rsa-q",   "rsa-dp",    "rsa-dq",   "rsa-qinv",
                                         "factor", "ec-priv", "ec-pad", "der-pkcs8", "der-trad", "pem"};
#define NCOMP (sizeof components / sizeof components[0])

/*
 * What the provider keeps out of the ordinary heap during operations: the components asserted to
 * have 0 hits there. p and q are not: RSA_private_encrypt builds Montgomery contexts of p and q
 * (BN_MONT_CTX copies the modulus into a BIGNUM of its own, never a secure one), so they and the
 * windows that divide n are found in the ordinary heap while an RSA operation runs
 * (docs/in-operation.md). Nor is the EC scalar: ECDSA's nonce derivation
 * (ossl_bn_gen_dsa_nonce_fixed_top) hashes the scalar, padded to 96 bytes, through an EVP SHA-512
 * context that the default provider allocates in the ordinary heap (cleared on free); a scan that
 * lands in those microseconds sees it (1 of 20 scans in a release build). Reported, not asserted.
 */
static const char *const kept_out[] = {"rsa-d", "rsa-dp", "rsa-dq", "rsa-qinv", "der-pkcs8", "der-trad", "pem"};

static int comp_index(const char *tag)
{
    char base[32];
    snprintf(base, sizeof base, "%s", tag);
    char *dash = strrchr(base, '-');
    if (dash != NULL && (strcmp(dash, "-be") == 0 || strcmp(dash, "-le") == 0))
        *dash = '\0';
    for (size_t i = 0; i < NCOMP; i++)
        if (strcmp(base, components[i]) == 0)
            return (int)i;
    return -1;
}

/* ---- the target process ---- */

struct range {
    unsigned long lo, hi;
    bool locked, dontdump;
};

static struct range maps[8192];
static size_t nmaps;

static bool read_smaps(void)
{
    FILE *f = fopen("/proc/self/smaps", "re");
    if (f == NULL)
        return false;
    char line[512];
    nmaps = 0;
    while (fgets(line, sizeof line, f) != NULL) {
        unsigned long lo, hi;
        if (strncmp(line, "VmFlags:", 8) == 0) {
            if (nmaps > 0) {
                maps[nmaps - 1].locked = strstr(line, " lo") != NULL;
                maps[nmaps - 1].dontdump = strstr(line, " dd") != NULL;
            }
        } else if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' ') &&
                   nmaps < sizeof maps / sizeof maps[0]) {
            maps[nmaps++] = (struct range){lo, hi, false, false};
        }
    }
    return fclose(f) == 0 && nmaps > 0;
}

static const struct range *range_of(unsigned long a)
{
    for (size_t i = 0; i < nmaps; i++)
        if (a >= maps[i].lo && a < maps[i].hi)
            return &maps[i];
    return NULL;
}

/* The secure heap arena of this process, found as secheap.c finds it; {0,0} if there is none. */
static struct range arena;

static void find_arena(void)
{
    if (!CRYPTO_secure_malloc_initialized())
        return;
    void *probe = OPENSSL_secure_malloc(16);
    if (probe != NULL && CRYPTO_secure_allocated(probe) && read_smaps()) {
        const struct range *r = range_of((unsigned long)probe);
        if (r != NULL)
            arena = *r;
    }
    OPENSSL_secure_free(probe);
}

static struct range thread_stack[2];
static atomic_int stop;
static atomic_long ops[2];
static atomic_int failed;
static EVP_PKEY *keys[2];

static void record_stack(int t)
{
    pthread_attr_t a;
    void *addr;
    size_t size;
    if (pthread_getattr_np(pthread_self(), &a) == 0) {
        if (pthread_attr_getstack(&a, &addr, &size) == 0)
            thread_stack[t] = (struct range){(unsigned long)addr, (unsigned long)addr + size, false, false};
        pthread_attr_destroy(&a);
    }
}

static int sign_once(EVP_PKEY *k)
{
    static const unsigned char msg[] = "a TLS handshake transcript, standing in";
    unsigned char sig[512];
    size_t len = sizeof sig;
    EVP_MD_CTX *m = EVP_MD_CTX_new();
    int ok = m != NULL && EVP_DigestSignInit_ex(m, NULL, "SHA256", NULL, NULL, k, NULL) == 1 &&
             EVP_DigestSign(m, sig, &len, msg, sizeof msg) == 1;
    EVP_MD_CTX_free(m);
    return ok;
}

static void *signer(void *arg)
{
    int t = (int)(intptr_t)arg;
    record_stack(t);
    /* The scanner shares the machine's cores with both signers: let it run first. */
    if (setpriority(PRIO_PROCESS, (id_t)gettid(), 19) != 0) {
        atomic_store(&failed, 1);
        return NULL;
    }
    while (!atomic_load(&stop)) {
        for (int k = 0; k < 2; k++) {
            if (!sign_once(keys[(k + t) % 2])) {
                atomic_store(&failed, 1);
                return NULL;
            }
        }
        atomic_fetch_add(&ops[t], 2);
    }
    return NULL;
}

static int classify(unsigned long lo, const char *path)
{
    if (arena.hi != 0 && lo >= arena.lo && lo < arena.hi)
        return R_SECURE;
    for (int t = 0; t < 2; t++)
        if (lo >= thread_stack[t].lo && lo < thread_stack[t].hi)
            return R_STACK;
    if (strcmp(path, "[stack]") == 0)
        return R_STACK;
    const struct range *r = range_of(lo);
    if ((r != NULL && r->locked && r->dontdump) || strstr(path, "secretmem") != NULL)
        return R_GUARDED;
    if (strcmp(path, "[heap]") == 0 || strcmp(path, "[anon]") == 0 || path[0] == '\0')
        return R_HEAP;
    return R_OTHER;
}

static long hits[SCANS][R_COUNT][NCOMP];

/* One mg-keyscan run on this process; adds its region rows to hits[scan]. False if it failed. */
static bool keyscan_once(const char *keyscan, const char *keyfile, int scan)
{
    int fd[2];
    if (pipe(fd) != 0)
        return false;
    char pid[16];
    snprintf(pid, sizeof pid, "%d", (int)getpid());
    char prog[512], key[512], tsv[] = "--tsv";
    snprintf(prog, sizeof prog, "%s", keyscan);
    snprintf(key, sizeof key, "%s", keyfile);
    char *argv[] = {prog, tsv, key, pid, NULL};
    posix_spawn_file_actions_t fa;
    pid_t child;
    bool ok = posix_spawn_file_actions_init(&fa) == 0 && posix_spawn_file_actions_adddup2(&fa, fd[1], 1) == 0 &&
              posix_spawn_file_actions_addclose(&fa, fd[0]) == 0 &&
              posix_spawn(&child, prog, &fa, NULL, argv, environ) == 0;
    posix_spawn_file_actions_destroy(&fa);
    close(fd[1]);
    if (!ok) {
        close(fd[0]);
        return false;
    }
    FILE *f = fdopen(fd[0], "r");
    char line[4096];
    bool summary = false;
    while (f != NULL && fgets(line, sizeof line, f) != NULL) {
        line[strcspn(line, "\n")] = '\0';
        if (strncmp(line, "summary\t", 8) == 0)
            summary = true;
        if (strncmp(line, "region\t", 7) != 0)
            continue;
        /* region PID START-END PERMS PATH TAG=N,... */
        char *save = NULL, *fields[6] = {0};
        int nf = 0;
        for (char *tok = strtok_r(line, "\t", &save); tok != NULL && nf < 6; tok = strtok_r(NULL, "\t", &save))
            fields[nf++] = tok;
        if (nf < 5)
            continue;
        const char *path = nf == 6 ? fields[4] : "";
        const char *tags = nf == 6 ? fields[5] : fields[4];
        int cls = classify(strtoul(fields[2], NULL, 16), path);
        char *s2 = NULL, *t = strdup(tags);
        for (char *kv = strtok_r(t, ",", &s2); kv != NULL; kv = strtok_r(NULL, ",", &s2)) {
            char *eq = strchr(kv, '=');
            if (eq == NULL)
                continue;
            *eq = '\0';
            int c = comp_index(kv);
            if (c >= 0)
                hits[scan][cls][c] += strtol(eq + 1, NULL, 10);
        }
        free(t);
    }
    if (f != NULL)
        fclose(f);
    int status;
    /* exit 0: nothing found, 1: found; both are results */
    return waitpid(child, &status, 0) == child && WIFEXITED(status) && WEXITSTATUS(status) <= 1 && summary;
}

static EVP_PKEY *load(const char *path)
{
    BIO *b = BIO_new_file(path, "r");
    EVP_PKEY *k = b != NULL ? PEM_read_bio_PrivateKey_ex(b, NULL, NULL, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    return k;
}

/* --target KEYSCAN RSA.PEM EC.PEM LABEL: the measured process. Exit 0 when every scan ran. */
static int target(const char *keyscan, const char *rsa, const char *ec, const char *label)
{
    if ((keys[0] = load(rsa)) == NULL || (keys[1] = load(ec)) == NULL) {
        fprintf(stderr, "target: cannot load the keys\n");
        return 2;
    }
    for (int k = 0; k < 2; k++) {
        const OSSL_PROVIDER *p = EVP_PKEY_get0_provider(keys[k]);
        if (p == NULL || strcmp(OSSL_PROVIDER_get0_name(p), "memguard") != 0) {
            fprintf(stderr, "target: key %d not held by memguard\n", k);
            return 2;
        }
    }
    find_arena();
    pthread_t th[2];
    pthread_attr_t attr;
    if (pthread_attr_init(&attr) != 0 || pthread_attr_setstacksize(&attr, 512 * 1024) != 0)
        return 2;
    for (int t = 0; t < 2; t++)
        if (pthread_create(&th[t], &attr, signer, (void *)(intptr_t)t) != 0)
            return 2;
    pthread_attr_destroy(&attr);
    while ((atomic_load(&ops[0]) < 20 || atomic_load(&ops[1]) < 20) && !atomic_load(&failed))
        usleep(1000);
    bool ok = !atomic_load(&failed);
    for (int s = 0; s < nscans && ok; s++) {
        ok = read_smaps() && keyscan_once(keyscan, rsa, s) && keyscan_once(keyscan, ec, s);
        if (!ok)
            fprintf(stderr, "target: scan %d failed\n", s + 1);
    }
    atomic_store(&stop, 1);
    for (int t = 0; t < 2; t++)
        pthread_join(th[t], NULL);
    ok = ok && !atomic_load(&failed);
    long nops = atomic_load(&ops[0]) + atomic_load(&ops[1]);
    printf("\n  [%s] secure heap arena: %s", label, arena.hi != 0 ? "" : "none\n");
    if (arena.hi != 0)
        printf("%lu KiB (%s)\n", (arena.hi - arena.lo) >> 10,
               arena.locked && arena.dontdump ? "mlock'ed, MADV_DONTDUMP" : "NOT both locked and dontdump");
    printf("  [%s] %d live scans while 2 threads signed (RSA-2048 PKCS#1 SHA-256, ECDSA P-256): %ld signatures\n",
           label, nscans, nops);
    printf("  [%s] copies found per scan, by region (BE and LE together; factor = windows that divide n):\n", label);
    printf("  %-5s %-13s", "scan", "region");
    for (size_t c = 0; c < NCOMP; c++)
        printf(" %9s", components[c]);
    printf("\n");
    for (int s = 0; s < nscans; s++)
        for (int r = 0; r < R_COUNT; r++) {
            printf("  %-5d %-13s", s + 1, class_name[r]);
            for (size_t c = 0; c < NCOMP; c++)
                printf(" %9ld", hits[s][r][c]);
            printf("\n");
        }
    /* Machine-readable totals for the parent: total REGION COMPONENT HITS SCANS_WITH_HITS */
    for (int r = 0; r < R_COUNT; r++)
        for (size_t c = 0; c < NCOMP; c++) {
            long sum = 0, with = 0;
            for (int s = 0; s < nscans; s++) {
                sum += hits[s][r][c];
                with += hits[s][r][c] > 0;
            }
            printf("total %s %s %ld %ld\n", class_name[r], components[c], sum, with);
        }
    EVP_PKEY_free(keys[0]);
    EVP_PKEY_free(keys[1]);
    return ok ? 0 : 1;
}

/* ---- the test driver ---- */

static const char *keyscan_path;
static char workdir[] = "/tmp/mgt-inop-XXXXXX";
static char rsa_path[128], ec_path[128];

struct totals {
    long sum[R_COUNT][NCOMP], with[R_COUNT][NCOMP];
};

/* Write OPENSSL_CONF plus extra lines (in memguard's section, the file's last) to path. */
static bool write_conf(const char *path, const char *extra)
{
    const char *base = getenv("OPENSSL_CONF");
    FILE *in = base != NULL ? fopen(base, "r") : NULL, *out = fopen(path, "w");
    bool ok = in != NULL && out != NULL;
    char line[1024];
    while (ok && fgets(line, sizeof line, in) != NULL)
        ok = fputs(line, out) >= 0;
    ok = ok && fprintf(out, "\n%s\n", extra) >= 0;
    if (in != NULL)
        fclose(in);
    if (out != NULL)
        ok = fclose(out) == 0 && ok;
    return ok;
}

/* Run this program as --target with the given configuration; its table goes to our stdout. */
static bool run_target(const char *conf, const char *label, int scans, struct totals *t)
{
    memset(t, 0, sizeof *t);
    int fd[2];
    if (pipe(fd) != 0)
        return false;
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0)
        return false;
    if (pid == 0) {
        close(fd[0]);
        if (dup2(fd[1], 1) < 0 || setenv("OPENSSL_CONF", conf, 1) != 0 || setenv("MEMGUARD_BACKEND", "anonymous", 1) != 0)
            _exit(3);
        char n[16];
        snprintf(n, sizeof n, "%d", scans);
        execl("/proc/self/exe", "test_inop", "--target", keyscan_path, rsa_path, ec_path, label, n, (char *)NULL);
        _exit(4);
    }
    close(fd[1]);
    FILE *f = fdopen(fd[0], "r");
    char line[2048];
    while (f != NULL && fgets(line, sizeof line, f) != NULL) {
        char region[32], comp[32];
        long sum, with;
        if (sscanf(line, "total %31s %31s %ld %ld", region, comp, &sum, &with) == 4) {
            for (int r = 0; r < R_COUNT; r++)
                for (size_t c = 0; c < NCOMP; c++)
                    if (strcmp(region, class_name[r]) == 0 && strcmp(comp, components[c]) == 0) {
                        t->sum[r][c] = sum;
                        t->with[r][c] = with;
                    }
            continue;
        }
        fputs(line, stdout);
    }
    if (f != NULL)
        fclose(f);
    int status;
    return waitpid(pid, &status, 0) == pid && mgt_exited_ok(status);
}

static void print_summary(const char *label, const struct totals *t, int scans)
{
    printf("  [%s] over %d scans: total copies (scans with any)\n  %-13s", label, scans, "region");
    for (size_t c = 0; c < NCOMP; c++)
        printf(" %9s", components[c]);
    printf("\n");
    for (int r = 0; r < R_COUNT; r++) {
        printf("  %-13s", class_name[r]);
        for (size_t c = 0; c < NCOMP; c++) {
            char cell[24];
            snprintf(cell, sizeof cell, "%ld(%ld)", t->sum[r][c], t->with[r][c]);
            printf(" %9s", cell);
        }
        printf("\n");
    }
}

static bool is_kept_out(const char *comp)
{
    /* OpenSSL 3.5's AVX-512 RSAZ exponentiation (rsaz_exp_x2.c) copies dP and dQ into a heap buffer
     * of its own (cleared on free); 3.0's keeps them on the stack. Reported there, not asserted. */
    if ((strcmp(comp, "rsa-dp") == 0 || strcmp(comp, "rsa-dq") == 0) && OpenSSL_version_num() >= 0x30100000L)
        return false;
    for (size_t i = 0; i < sizeof kept_out / sizeof kept_out[0]; i++)
        if (strcmp(comp, kept_out[i]) == 0)
            return true;
    return false;
}

static void test_live_scan_by_region(void)
{
    char conf_default[160], conf_noheap[160];
    snprintf(conf_default, sizeof conf_default, "%s/default.cnf", workdir);
    snprintf(conf_noheap, sizeof conf_noheap, "%s/no-secure-heap.cnf", workdir);
    CU_ASSERT_FATAL(write_conf(conf_default, "") && write_conf(conf_noheap, "memguard-secure-heap = 0"));

    static struct totals with_heap, control;
    CU_ASSERT_FATAL(run_target(conf_default, "memguard, default configuration", SCANS, &with_heap));
    print_summary("memguard, default configuration", &with_heap, SCANS);
    CU_ASSERT_FATAL(run_target(conf_noheap, "control: memguard-secure-heap = 0", CONTROL_SCANS, &control));
    print_summary("control: memguard-secure-heap = 0", &control, CONTROL_SCANS);

    long kept_heap = 0, control_heap = 0, secure_used = 0;
    for (size_t c = 0; c < NCOMP; c++) {
        if (is_kept_out(components[c])) {
            CHECK(with_heap.sum[R_HEAP][c] == 0, "%s: %ld copies in the ordinary heap over %d scans", components[c],
                  with_heap.sum[R_HEAP][c], SCANS);
            kept_heap += with_heap.sum[R_HEAP][c];
        }
        control_heap += control.sum[R_HEAP][c];
        secure_used += with_heap.sum[R_SECURE][c];
    }
    /* The scan sees the ordinary heap: without the secure heap, operations' values are found there. */
    CHECK(control_heap > 0, "the control found no copy in the ordinary heap: the scan proves nothing");
    /* And the secure heap is where they went: found there, in the live scans, while operations ran. */
    CHECK(secure_used > 0, "no copy in the secure heap arena: operations did not use it, or the scan missed it");
    printf("  ordinary-heap copies of kept-out components: %ld (control, all components: %ld)\n", kept_heap,
           control_heap);
}

/* ---- the secure heap itself ---- */

static void test_secure_heap_set_up_and_relocked_after_fork(void)
{
    /* This process loaded memguard through OPENSSL_CONF at start (main). */
    CU_ASSERT_FATAL(CRYPTO_secure_malloc_initialized());
    find_arena();
    CU_ASSERT_FATAL(arena.hi != 0);
    CHECK(arena.hi - arena.lo == (1ul << 20), "arena of %lu bytes, 1 MiB expected by default", arena.hi - arena.lo);
    CHECK(arena.locked && arena.dontdump, "arena locked %d, dontdump %d", arena.locked, arena.dontdump);
    BIGNUM *b = BN_secure_new();
    CU_ASSERT_FATAL(b != NULL && BN_set_word(b, 12345) == 1);
    BN_clear_free(b);
    /* A region this process locks itself: after fork the kernel drops its lock (the premise). */
    long pg = sysconf(_SC_PAGESIZE);
    unsigned char *own = mmap(NULL, (size_t)pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CU_ASSERT_FATAL(own != MAP_FAILED && mlock(own, (size_t)pg) == 0);
    fflush(stdout);
    pid_t pid = fork();
    CU_ASSERT_FATAL(pid >= 0);
    if (pid == 0) {
        int rc = 0;
        if (!read_smaps())
            _exit(9);
        const struct range *a = range_of(arena.lo), *o = range_of((unsigned long)own);
        if (a == NULL || !a->locked)
            rc |= 1; /* the arena is not locked in the child */
        if (a == NULL || !a->dontdump)
            rc |= 2;
        if (o == NULL || o->locked)
            rc |= 4; /* the premise failed: fork kept a lock */
        _exit(rc);
    }
    int status;
    CU_ASSERT_FATAL(waitpid(pid, &status, 0) == pid && WIFEXITED(status));
    int rc = WEXITSTATUS(status);
    CHECK((rc & 4) == 0, "a region locked before fork is still locked in the child: the test's premise is wrong");
    CHECK((rc & 1) == 0, "the secure heap arena is not locked in the forked child");
    CHECK((rc & 2) == 0, "the secure heap arena is not MADV_DONTDUMP in the forked child");
    munlock(own, (size_t)pg);
    munmap(own, (size_t)pg);
}

/* Run `openssl list -providers` with conf; its stderr and stdout in out. Exit status returned. */
static int openssl_list(const char *conf, char *out, size_t cap, bool as_nobody, rlim_t memlock)
{
    int fd[2];
    if (pipe(fd) != 0)
        return -1;
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        close(fd[0]);
        if (dup2(fd[1], 1) < 0 || dup2(fd[1], 2) < 0 || setenv("OPENSSL_CONF", conf, 1) != 0)
            _exit(120);
        if (as_nobody) {
            struct rlimit rl = {memlock, memlock};
            if (setrlimit(RLIMIT_MEMLOCK, &rl) != 0 || setgroups(0, NULL) != 0 || setgid(65534) != 0 ||
                setuid(65534) != 0)
                _exit(121);
        }
        execlp("openssl", "openssl", "list", "-providers", (char *)NULL);
        _exit(122);
    }
    close(fd[1]);
    size_t n = 0;
    ssize_t r;
    while (n + 1 < cap && (r = read(fd[0], out + n, cap - 1 - n)) > 0)
        n += (size_t)r;
    out[n] = '\0';
    close(fd[0]);
    int status;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
        return -1;
    return WEXITSTATUS(status);
}

static void test_setting_values(void)
{
    static const struct {
        const char *value;
        bool good;
        const char *says; /* in the output, with memguard-debug = 1 */
    } cases[] = {
        {"0", true, "left alone"},          {"64K", true, "secure heap: 65536 bytes"},
        {"2M", true, "secure heap: 2097152 bytes"}, {"16384", true, "secure heap: 16384 bytes"},
        {"1000", false, "memguard-secure-heap = 1000: use a power of two"},
        {"3M", false, "memguard-secure-heap = 3M: use a power of two"},
        {"8k", false, "memguard-secure-heap = 8k: use a power of two"},
        {"-1", false, "memguard-secure-heap = -1: use a power of two"},
        {"x", false, "memguard-secure-heap = x: use a power of two"},
        {"2G", false, "memguard-secure-heap = 2G: use a power of two"},
        {"99999999999999999999", false, "use a power of two"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char conf[160], extra[128], out[8192];
        snprintf(conf, sizeof conf, "%s/value%zu.cnf", workdir, i);
        snprintf(extra, sizeof extra, "memguard-secure-heap = %s\nmemguard-debug = 1", cases[i].value);
        CU_ASSERT_FATAL(write_conf(conf, extra));
        int rc = openssl_list(conf, out, sizeof out, false, 0);
        CHECK(rc == 0, "openssl list exited %d for %s", rc, cases[i].value);
        CHECK(strstr(out, cases[i].says) != NULL, "memguard-secure-heap = %s: no \"%s\" in:\n%s", cases[i].value,
              cases[i].says, out);
        /* A bad value is a configuration error: the provider loads and refuses every private key (provider.c). */
        bool refused = strstr(out, "configuration error: memguard-secure-heap") != NULL &&
                       strstr(out, "every private key is refused") != NULL;
        CHECK(refused == !cases[i].good, "memguard-secure-heap = %s: %s", cases[i].value,
              refused ? "refused, should be taken" : "taken, should be a configuration error");
    }
}

/* RLIMIT_MEMLOCK too small for the arena, unprivileged: the provider loads and says so loudly. */
static void test_unlocked_arena_said_loudly(void)
{
    char conf[160], out[8192];
    snprintf(conf, sizeof conf, "%s/memlock.cnf", workdir);
    CU_ASSERT_FATAL(write_conf(conf, "memguard-debug = 1"));
    /* 256 KiB: enough for memguard's own start, not for a 1 MiB arena */
    int rc = openssl_list(conf, out, sizeof out, true, 256 * 1024);
    CHECK(rc == 0, "openssl list as uid 65534 exited %d:\n%s", rc, out);
    CHECK(strstr(out, "memguard enclave key provider") != NULL, "the provider did not load:\n%s", out);
    CHECK(strstr(out, "WARNING: OpenSSL's secure heap (1048576 bytes) could not be locked in RAM: RLIMIT_MEMLOCK is "
                      "262144 bytes") != NULL,
          "no warning naming RLIMIT_MEMLOCK:\n%s", out);
    CHECK(strstr(out, "NOT locked in RAM") != NULL, "the debug line does not say the arena is unlocked:\n%s", out);
    /* Control: with the limit raised, no warning. */
    rc = openssl_list(conf, out, sizeof out, true, 8u << 20);
    CHECK(rc == 0 && strstr(out, "could not be locked") == NULL && strstr(out, "secure heap: 1048576 bytes, locked") != NULL &&
              strstr(out, ", locked") != NULL,
          "with an 8 MiB limit:\n%s", out);
}

static void make_keys(void)
{
    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(workdir));
    CU_ASSERT_FATAL(chmod(workdir, 0755) == 0);
    snprintf(rsa_path, sizeof rsa_path, "%s/rsa.pem", workdir);
    snprintf(ec_path, sizeof ec_path, "%s/ec.pem", workdir);
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "OPENSSL_CONF=/dev/null openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out %s 2>/dev/null && "
             "OPENSSL_CONF=/dev/null openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out %s 2>/dev/null",
             rsa_path, ec_path);
    CU_ASSERT_EQUAL_FATAL(system(cmd), 0);
}

static void remove_workdir(void)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s", workdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", workdir);
}

static void test_prepare(void)
{
    make_keys();
}

static void test_cleanup(void)
{
    remove_workdir();
}

static CU_TestInfo inop_tests[] = {
    {"prepare keys", test_prepare},
    {"secure heap set up at load, locked again in a forked child", test_secure_heap_set_up_and_relocked_after_fork},
    {"memguard-secure-heap values: sizes taken, bad values refused", test_setting_values},
    {"arena that cannot be locked: provider loads, warning names RLIMIT_MEMLOCK", test_unlocked_arena_said_loudly},
    {"live scan while signing in 2 threads: hits by region, with control", test_live_scan_by_region},
    {"cleanup", test_cleanup},
    CU_TEST_INFO_NULL,
};

int main(int argc, char **argv)
{
    if (argc == 7 && strcmp(argv[1], "--target") == 0) {
        nscans = atoi(argv[6]);
        if (nscans < 1 || nscans > SCANS)
            return 2;
        return target(argv[2], argv[3], argv[4], argv[5]);
    }
    if (argc != 2 || getenv("OPENSSL_CONF") == NULL) {
        fprintf(stderr, "usage: OPENSSL_CONF=memguard-test.cnf %s MG-KEYSCAN\n", argv[0]);
        return 2;
    }
    keyscan_path = argv[1];
    if (OPENSSL_init_crypto(OPENSSL_INIT_LOAD_CONFIG, NULL) != 1 || !OSSL_PROVIDER_available(NULL, "memguard")) {
        fprintf(stderr, "memguard is not loaded through OPENSSL_CONF\n");
        return 2;
    }
    CU_SuiteInfo suites[] = {
        {"inop", NULL, NULL, NULL, NULL, inop_tests},
        CU_SUITE_INFO_NULL,
    };
    return mgt_main(suites);
}
