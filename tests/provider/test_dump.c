/*
 * Non-dumpable (issue 11, point 3): a process that loaded a sealed key has PR_GET_DUMPABLE = 0;
 * another process of the same unprivileged uid can neither open its /proc/PID/mem nor
 * PTRACE_ATTACH to it (control: the same when the target is dumpable succeeds); a forked child
 * that turns dumpable back on (as nginx workers do) is made non-dumpable again by its first
 * private-key operation; abort() with RLIMIT_CORE unlimited writes no core file; with
 * memguard-dumpable = 1 it does, and the core is searched for the key's components (reported).
 *
 * Runs as root (it switches to uid 65534 and may set kernel.core_pattern to "core" for the core
 * assertions, restoring it). Not under ASan. OPENSSL_CONF: a configuration that loads memguard.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/provider.h>

#include <memguard/memguard.h>

#include "../core/harness.h"
#include "check.h"
#include "memscan.h"

static char workdir[] = "/tmp/mgt-dump-XXXXXX";
static char rsa_path[128], dumpable_conf[160];

static EVP_PKEY *load(const char *path)
{
    BIO *b = BIO_new_file(path, "r");
    EVP_PKEY *k = b != NULL ? PEM_read_bio_PrivateKey_ex(b, NULL, NULL, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    return k;
}

static int sign_once(EVP_PKEY *k)
{
    static const unsigned char msg[] = "transcript";
    unsigned char sig[512];
    size_t len = sizeof sig;
    EVP_MD_CTX *m = EVP_MD_CTX_new();
    int ok = m != NULL && EVP_DigestSignInit_ex(m, NULL, "SHA256", NULL, NULL, k, NULL) == 1 &&
             EVP_DigestSign(m, sig, &len, msg, sizeof msg) == 1;
    EVP_MD_CTX_free(m);
    return ok;
}

/* A fresh process's view: load the key through memguard (config from OPENSSL_CONF) in this child. */
static EVP_PKEY *child_load(void)
{
    if (OPENSSL_init_crypto(OPENSSL_INIT_LOAD_CONFIG, NULL) != 1)
        return NULL;
    EVP_PKEY *k = load(rsa_path);
    const OSSL_PROVIDER *p = k != NULL ? EVP_PKEY_get0_provider(k) : NULL;
    if (p == NULL || strcmp(OSSL_PROVIDER_get0_name(p), "memguard") != 0)
        return NULL;
    return k;
}

static int become_nobody(void)
{
    return setgroups(0, NULL) == 0 && setgid(65534) == 0 && setuid(65534) == 0 ? 0 : -1;
}

/*
 * Reader R (uid 65534) forks target T (uid 65534: a descendant, so Yama's ptrace_scope 1 would
 * not be what refuses). T loads the key, optionally turns dumpable back on, reports its
 * PR_GET_DUMPABLE, waits. R tries /proc/T/mem and PTRACE_ATTACH. Exit code bits: 1 T failed,
 * 2 T was dumpable, 4 mem opened and read, 8 attach succeeded, 16 errno not EACCES/EPERM.
 */
static int reader(int make_dumpable)
{
    if (become_nobody() != 0)
        return 1;
    int up[2], down[2];
    if (pipe(up) != 0 || pipe(down) != 0)
        return 1;
    pid_t t = fork();
    if (t < 0)
        return 1;
    if (t == 0) {
        close(up[0]);
        close(down[1]);
        EVP_PKEY *k = child_load();
        if (k == NULL || !sign_once(k))
            _exit(1);
        if (make_dumpable && prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) != 0)
            _exit(1);
        char d = (char)('0' + prctl(PR_GET_DUMPABLE, 0, 0, 0, 0));
        if (write(up[1], &d, 1) != 1)
            _exit(1);
        char x;
        if (read(down[0], &x, 1) < 0) /* until the reader is done (0 at EOF is fine too) */
            _exit(1);
        EVP_PKEY_free(k);
        _exit(0);
    }
    close(up[1]);
    close(down[0]);
    char d = 0;
    int rc = 0;
    if (read(up[0], &d, 1) != 1)
        rc |= 1;
    if (d == '1')
        rc |= 2;
    char path[64], buf[16];
    snprintf(path, sizeof path, "/proc/%d/mem", (int)t);
    int fd = open(path, O_RDONLY);
    if (fd >= 0) {
        /* the address of a string in our own (and, forked, T's) image */
        if (pread(fd, buf, 4, (off_t)(uintptr_t)"abcd") == 4 && memcmp(buf, "abcd", 4) == 0)
            rc |= 4;
        close(fd);
    } else if (errno != EACCES && errno != EPERM) {
        rc |= 16;
    }
    if (ptrace(PTRACE_ATTACH, t, NULL, NULL) == 0) {
        rc |= 8;
        int st;
        (void)waitpid(t, &st, 0);
        (void)ptrace(PTRACE_DETACH, t, NULL, NULL);
    } else if (errno != EPERM && errno != EACCES) {
        rc |= 16;
    }
    close(down[1]);
    int st;
    if (waitpid(t, &st, 0) != t || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        rc |= 1;
    return rc;
}

static int run(int (*fn)(int), int arg)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0)
        _exit(fn(arg));
    int st;
    if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st))
        return -1;
    return WEXITSTATUS(st);
}

static void test_same_uid_cannot_read_or_attach(void)
{
    int rc = run(reader, 0);
    CHECK(rc >= 0 && (rc & 1) == 0, "the target (uid 65534) failed to load or sign (%d)", rc);
    CHECK((rc & 2) == 0, "a process holding a sealed key is dumpable");
    CHECK((rc & 4) == 0, "a process of the same uid read its /proc/PID/mem");
    CHECK((rc & 8) == 0, "a process of the same uid attached with ptrace");
    CHECK((rc & 16) == 0, "refused with an errno other than EACCES/EPERM");
    /* Control: the same reader against a target that made itself dumpable again succeeds at both. */
    rc = run(reader, 1);
    CHECK(rc >= 0 && (rc & 1) == 0 && (rc & 2) != 0, "control target not dumpable (%d)", rc);
    CHECK((rc & 4) != 0 && (rc & 8) != 0, "control: a dumpable same-uid target could not be read/attached (%d): "
                                          "the check above proves nothing", rc);
}

/* Load, fork; the child turns dumpable on (nginx), signs once: 0 if it is non-dumpable again. */
static int fork_reassert(int unused)
{
    (void)unused;
    EVP_PKEY *k = child_load();
    if (k == NULL || prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != 0)
        return 1;
    pid_t c = fork();
    if (c == 0) {
        if (prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) != 0 || prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != 1)
            _exit(2);
        if (!sign_once(k))
            _exit(3);
        _exit(prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) == 0 ? 0 : 4);
    }
    int st;
    if (c < 0 || waitpid(c, &st, 0) != c || !WIFEXITED(st))
        return 5;
    return WEXITSTATUS(st);
}

static void test_forked_child_made_nondumpable_again(void)
{
    int rc = run(fork_reassert, 0);
    CHECK(rc == 0, "fork + PR_SET_DUMPABLE 1 + one signature: %s (%d)",
          rc == 4 ? "the child stayed dumpable" : rc == 1 ? "the parent was not non-dumpable after load" : "failed", rc);
}

/* ---- core files ---- */

static atomic_int stop_signing;

static void *signer(void *k)
{
    while (!atomic_load(&stop_signing))
        if (!sign_once(k))
            return NULL;
    return NULL;
}

/* In dir: load, raise RLIMIT_CORE (as worker_rlimit_core does), sign in a second thread, abort. */
static int crash_in(int which)
{
    char d[200];
    snprintf(d, sizeof d, "%s/%s", workdir, which ? "core-dumpable" : "core-default");
    if (which && setenv("OPENSSL_CONF", dumpable_conf, 1) != 0)
        return 1;
    if (mkdir(d, 0700) != 0 || chdir(d) != 0)
        return 1;
    EVP_PKEY *k = child_load();
    struct rlimit rl = {RLIM_INFINITY, RLIM_INFINITY};
    if (k == NULL || setrlimit(RLIMIT_CORE, &rl) != 0)
        return 1;
    pthread_t th;
    if (pthread_create(&th, NULL, signer, k) != 0)
        return 1;
    usleep(200000);
    abort();
}

/* The core file in dir ("core" or "core.PID"), or empty. */
static int find_core(const char *dir, char *out, size_t cap)
{
    DIR *dd = opendir(dir);
    if (dd == NULL)
        return 0;
    struct dirent *e;
    int n = 0;
    while ((e = readdir(dd)) != NULL)
        if (strncmp(e->d_name, "core", 4) == 0) {
            if ((size_t)snprintf(out, cap, "%s/%.*s", dir, (int)(cap / 2), e->d_name) < cap)
                n++;
        }
    closedir(dd);
    return n;
}

/* Needles from `openssl pkey -text` (in a child process): BE and LE 24-byte windows of each component. */
static memscan_needle needles[16];
static size_t n_needles;

static int hexval(int c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static void add_component(const char *name, unsigned char *v, size_t n)
{
    while (n > 0 && v[0] == 0)
        memmove(v, v + 1, --n);
    if (n >= 28 && n_needles + 2 <= sizeof needles / sizeof needles[0]) {
        size_t mid = (n - 24) / 2;
        char label[48];
        snprintf(label, sizeof label, "%s BE", name);
        (void)memscan_needle_init(&needles[n_needles++], label, v + mid, 24, false);
        snprintf(label, sizeof label, "%s LE", name);
        (void)memscan_needle_init(&needles[n_needles++], label, v + n - mid - 24, 24, true);
    }
    mg_wipe(v, n);
}

static bool needles_from_key(void)
{
    static const char *fields[] = {"privateExponent:", "prime1:", "prime2:", "exponent1:", "exponent2:",
                                   "coefficient:"};
    char cmd[256];
    snprintf(cmd, sizeof cmd, "OPENSSL_CONF=/dev/null openssl pkey -in %s -text -noout", rsa_path);
    FILE *p = popen(cmd, "r");
    if (p == NULL)
        return false;
    char line[256];
    unsigned char val[1024];
    size_t vlen = 0;
    const char *cur = NULL;
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
            for (char *c = line; *c != '\0'; c++)
                if (hexval(c[0]) >= 0 && hexval(c[1]) >= 0 && vlen < sizeof val) {
                    val[vlen++] = (unsigned char)(hexval(c[0]) << 4 | hexval(c[1]));
                    c++;
                }
        }
        mg_wipe(line, sizeof line);
    }
    if (cur != NULL)
        add_component(cur, val, vlen);
    mg_wipe(val, sizeof val);
    return pclose(p) == 0 && n_needles == 12;
}

/* Count each needle in the file; prints the counts; total returned (-1 on a read error). */
static long scan_core(const char *path)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return -1;
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_size <= 0) {
        close(fd);
        return -1;
    }
    unsigned char *buf = malloc((size_t)st.st_size);
    ssize_t got = buf != NULL ? read(fd, buf, (size_t)st.st_size) : -1;
    close(fd);
    if (got != st.st_size) {
        free(buf);
        return -1;
    }
    long total = 0;
    printf("\n    core file %s: %lld bytes\n", path, (long long)st.st_size);
    for (size_t k = 0; k < n_needles; k++) {
        long hits = 0;
        for (size_t i = 0; i + needles[k].len <= (size_t)got; i++) {
            size_t j = 0;
            while (j < needles[k].len && buf[i + j] == (unsigned char)(needles[k].masked[j] ^ needles[k].mask[j]))
                j++;
            hits += j == needles[k].len;
        }
        printf("    %-28s %ld\n", needles[k].name, hits);
        total += hits;
    }
    mg_wipe(buf, (size_t)got);
    free(buf);
    return total;
}

static char saved_pattern[256];
static bool pattern_changed;

/* core_pattern must be a plain name for the core to land in the child's directory. */
static bool core_pattern_ready(void)
{
    FILE *f = fopen("/proc/sys/kernel/core_pattern", "r");
    if (f == NULL || fgets(saved_pattern, sizeof saved_pattern, f) == NULL) {
        if (f != NULL)
            fclose(f);
        return false;
    }
    fclose(f);
    saved_pattern[strcspn(saved_pattern, "\n")] = '\0';
    if (strncmp(saved_pattern, "core", 4) == 0 && strchr(saved_pattern, '/') == NULL &&
        strchr(saved_pattern, '|') == NULL && strchr(saved_pattern, '%') == NULL)
        return true;
    f = fopen("/proc/sys/kernel/core_pattern", "w");
    if (f == NULL || fputs("core", f) < 0 || fclose(f) != 0) {
        printf("\n    core_pattern is '%s' and cannot be set to 'core' here: core assertions NOT RUN\n", saved_pattern);
        return false;
    }
    pattern_changed = true;
    printf("\n    core_pattern was '%s': set to 'core' for this test\n", saved_pattern);
    return true;
}

static void restore_core_pattern(void)
{
    if (!pattern_changed)
        return;
    FILE *f = fopen("/proc/sys/kernel/core_pattern", "w");
    if (f == NULL || fputs(saved_pattern, f) < 0 || fclose(f) != 0)
        fprintf(stderr, "could not restore core_pattern '%s'\n", saved_pattern);
    pattern_changed = false;
}

static void test_core_files(void)
{
    CU_ASSERT_FATAL(needles_from_key());
    bool ready = core_pattern_ready();
    CHECK(ready, "core_pattern cannot be used: the core file assertions did not run");
    if (!ready)
        return;
    char dir[200], core[300];
    int st = 0;
    /* Default: non-dumpable, so no core even with RLIMIT_CORE unlimited. */
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0)
        _exit(crash_in(0));
    CU_ASSERT_FATAL(pid > 0 && waitpid(pid, &st, 0) == pid);
    snprintf(dir, sizeof dir, "%s/core-default", workdir);
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT, "the default child did not abort: %s", mgt_describe(st));
    CHECK(!WCOREDUMP(st) && find_core(dir, core, sizeof core) == 0, "a non-dumpable process wrote a core file");
    /* memguard-dumpable = 1: the core is written; what it holds is reported. */
    fflush(stdout);
    pid = fork();
    if (pid == 0)
        _exit(crash_in(1));
    CU_ASSERT_FATAL(pid > 0 && waitpid(pid, &st, 0) == pid);
    snprintf(dir, sizeof dir, "%s/core-dumpable", workdir);
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT, "the dumpable child did not abort: %s", mgt_describe(st));
    bool have = WCOREDUMP(st) && find_core(dir, core, sizeof core) == 1;
    CHECK(have, "memguard-dumpable = 1: no core file (the control of the assertion above)");
    if (have) {
        long found = scan_core(core);
        CHECK(found >= 0, "cannot read %s", core);
        printf("    memguard-dumpable = 1: %ld windows of RSA components in the core (aborted while signing)\n",
               found);
        unlink(core);
    }
    restore_core_pattern();
}

static void test_prepare(void)
{
    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(workdir));
    CU_ASSERT_FATAL(chmod(workdir, 0755) == 0);
    snprintf(rsa_path, sizeof rsa_path, "%s/rsa.pem", workdir);
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "OPENSSL_CONF=/dev/null openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out %s 2>/dev/null "
             "&& chmod 644 %s && cp %s %s/dumpable.cnf && printf '\\nmemguard-dumpable = 1\\n' >> %s/dumpable.cnf",
             rsa_path, rsa_path, getenv("OPENSSL_CONF"), workdir, workdir);
    CU_ASSERT_EQUAL_FATAL(system(cmd), 0);
    snprintf(dumpable_conf, sizeof dumpable_conf, "%s/dumpable.cnf", workdir);
    FILE *f = fopen("/proc/sys/fs/suid_dumpable", "r");
    int sd = -1;
    CU_ASSERT_FATAL(f != NULL && fscanf(f, "%d", &sd) == 1);
    fclose(f);
    /* With suid_dumpable 1 the kernel dumps non-dumpable processes too: the premise of the core test. */
    CHECK(sd == 0, "fs.suid_dumpable = %d: non-dumpable processes would still dump core", sd);
}

static void test_cleanup(void)
{
    restore_core_pattern();
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s", workdir);
    CU_ASSERT_EQUAL(system(cmd), 0);
}

static CU_TestInfo dump_tests[] = {
    {"prepare", test_prepare},
    {"same uid: no /proc/PID/mem, no PTRACE_ATTACH (control: dumpable target)", test_same_uid_cannot_read_or_attach},
    {"forked child with dumpable turned on: non-dumpable again after one operation",
     test_forked_child_made_nondumpable_again},
    {"abort with RLIMIT_CORE unlimited: no core; memguard-dumpable = 1: core, scanned", test_core_files},
    {"cleanup", test_cleanup},
    CU_TEST_INFO_NULL,
};

int main(void)
{
    if (getenv("OPENSSL_CONF") == NULL || geteuid() != 0) {
        fprintf(stderr, "run as root with OPENSSL_CONF set to a configuration that loads memguard\n");
        return 2;
    }
    CU_SuiteInfo suites[] = {
        {"dump", NULL, NULL, NULL, NULL, dump_tests},
        CU_SUITE_INFO_NULL,
    };
    return mgt_main(suites);
}
