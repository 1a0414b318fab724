/* Safe exit, panic, orderly signals and crash wiping. */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <memguard/memguard.h>

#include "harness.h"
#include "internal.h"

/* A marker that is built at run time, so the test binary's own image never contains it. */
static void make_marker(char *out, size_t n, unsigned tag)
{
    for (size_t i = 0; i < n; i++)
        out[i] = (char)('A' + (i * 7 + tag) % 26);
}

#define MARK 48

/* Occurrences of marker in the file at path; -1 if unreadable. */
static long count_in_file(const char *path, const char *marker)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return -1;
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_size == 0) {
        close(fd);
        return -1;
    }
    unsigned char *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (p == MAP_FAILED)
        return -1;
    long hits = 0;
    for (size_t i = 0; i + MARK <= (size_t)st.st_size; i++)
        if (p[i] == (unsigned char)marker[0] && memcmp(p + i, marker, MARK) == 0)
            hits++;
    munmap(p, (size_t)st.st_size);
    return hits;
}

enum crash_kind { CRASH_SEGV, CRASH_ABORT };

/* NULL, but the compiler cannot know it. */
static int *volatile null_target;

struct crash_case {
    enum crash_kind kind;
    bool catch_crashes;
};

static _Noreturn void crash_child(const struct crash_case *c)
{
    struct rlimit unlimited = {RLIM_INFINITY, RLIM_INFINITY};
    if (setrlimit(RLIMIT_CORE, &unlimited) != 0)
        _exit(40);
    if (mg_init() != MG_OK || setrlimit(RLIMIT_CORE, &unlimited) != 0) /* init lowers it; raise it back */
        _exit(41);
    if (c->catch_crashes && mg_catch_crashes() != MG_OK)
        _exit(42);
    char secret[MARK], plain[MARK];
    make_marker(secret, MARK, 1);
    make_marker(plain, MARK, 2);
    mg_buffer *b = mg_buffer_from_bytes(secret, MARK);
    if (b == NULL)
        _exit(43);
    /* Guarded pages are MADV_DONTDUMP, so a core would never show them; opt this one back in
     * so that only the crash handler's wipe can keep the secret out of the core. */
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    uintptr_t pg = (uintptr_t)mg_buffer_data(b) & ~(uintptr_t)(page - 1);
    if (madvise((void *)pg, page, MADV_DODUMP) != 0)
        _exit(44);
    /* Positive control: the same kind of marker in ordinary memory must be in the core. */
    char *heap = malloc(MARK);
    memcpy(heap, plain, MARK);
    __asm__ volatile("" ::"r"(heap) : "memory");
    if (c->kind == CRASH_SEGV)
        *null_target = 1; /* a real fault from the CPU */
    else
        abort();
    _exit(45);
}

/* Run a crash in a child working in dir; returns secret/control hit counts in its core. */
static void run_crash(const struct crash_case *c, int expect_sig, long *secret_hits, long *control_hits)
{
    char dir[] = "/tmp/mgt-core-XXXXXX";
    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
    char cwd[4096];
    CU_ASSERT_PTR_NOT_NULL_FATAL(getcwd(cwd, sizeof cwd));
    CU_ASSERT_EQUAL_FATAL(chdir(dir), 0);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0)
        crash_child(c);
    int status = 0;
    waitpid(pid, &status, 0);
    CU_ASSERT_EQUAL(chdir(cwd), 0);
    CU_ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == expect_sig);
    CU_ASSERT_TRUE(WIFSIGNALED(status) && WCOREDUMP(status));
    char core[4200];
    snprintf(core, sizeof core, "%s/core", dir);
    char secret[MARK], plain[MARK];
    make_marker(secret, MARK, 1);
    make_marker(plain, MARK, 2);
    *secret_hits = count_in_file(core, secret);
    *control_hits = count_in_file(core, plain);
    unlink(core);
    rmdir(dir);
}

static bool cores_testable(void)
{
    /* ASan and valgrind replace core dumps with their own; /proc/sys/kernel/core_pattern
     * must write a plain file "core" in the working directory (the Debian default). */
    if (MGT_SANITIZED || getenv("MGT_UNDER_VALGRIND") != NULL)
        return false;
    FILE *f = fopen("/proc/sys/kernel/core_pattern", "r");
    char pat[128] = "";
    if (f != NULL) {
        if (fgets(pat, sizeof pat, f) == NULL)
            pat[0] = '\0';
        fclose(f);
    }
    return strcmp(pat, "core\n") == 0;
}

static void test_crash_leaves_no_secret_in_core_file(void)
{
    if (!cores_testable()) {
        printf("\n    core files not observable in this build/environment: covered by the native build\n");
        return;
    }
    const int sigs[] = {SIGSEGV, SIGABRT};
    for (int k = 0; k < 2; k++) {
        long with_secret, with_control, without_secret, without_control;
        struct crash_case caught = {(enum crash_kind)k, true}, uncaught = {(enum crash_kind)k, false};
        run_crash(&caught, sigs[k], &with_secret, &with_control);
        run_crash(&uncaught, sigs[k], &without_secret, &without_control);
        printf("\n    %s: secret in core %ld time(s) with mg_catch_crashes, %ld without; control %ld/%ld",
               k == 0 ? "SIGSEGV" : "abort()", with_secret, without_secret, with_control, without_control);
        CU_ASSERT_EQUAL(with_secret, 0);
        CU_ASSERT_TRUE(with_control > 0);    /* the scan works on this core */
        CU_ASSERT_TRUE(without_secret > 0);  /* without the handler the secret would be there */
        CU_ASSERT_TRUE(without_control > 0);
    }
    printf("\n");
}

/* ---- orderly signals ---- */

static int report_fd = -1;

static void say(const char *s)
{
    ssize_t n = write(report_fd, s, strlen(s));
    (void)n;
}

static void app_previous_handler(int sig)
{
    (void)sig;
    say("P");
}

static void user_handler(int sig)
{
    say(sig == SIGUSR1 ? "U" : "?");
}

static void wipe_hook(const void *inner, size_t len)
{
    const unsigned char *p = inner;
    unsigned char acc = 0;
    for (size_t i = 0; i < len; i++)
        acc |= p[i];
    say(acc == 0 ? "W" : "X");
}

static _Noreturn void signal_child(void *arg)
{
    report_fd = *(int *)arg;
    signal(SIGUSR1, app_previous_handler);
    int sigs[] = {SIGUSR1};
    if (mg_catch_signals(user_handler, sigs, 1) != MG_OK)
        _exit(50);
    char secret[16] = "signal secret!!";
    mg_buffer *b = mg_buffer_from_bytes(secret, 16);
    if (b == NULL)
        _exit(51);
    mg_test_set_unmap_hook(wipe_hook);
    raise(SIGUSR1);
    for (int i = 0; i < 500; i++)
        usleep(10000); /* the signal thread ends the process */
    _exit(52);
}

static void test_signal_runs_handler_chains_purges_and_exits(void)
{
    int p[2];
    CU_ASSERT_FATAL(pipe(p) == 0);
    char out[64] = "";
    pid_t pid = fork();
    if (pid == 0) {
        close(p[0]);
        signal_child(&p[1]);
    }
    close(p[1]);
    int status;
    waitpid(pid, &status, 0);
    ssize_t n = read(p[0], out, sizeof out - 1);
    out[n > 0 ? n : 0] = '\0';
    close(p[0]);
    /* Previous handler first (in signal context), then ours, then the purge wiped the buffer. */
    CU_ASSERT_STRING_EQUAL(out, "PUW");
    CU_ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGUSR1);
}

static void interrupt_child(void *arg)
{
    (void)arg;
    if (mg_catch_interrupt() != MG_OK)
        _exit(60);
    raise(SIGINT);
    for (int i = 0; i < 500; i++)
        usleep(10000);
    _exit(61);
}

static void test_catch_interrupt_ends_with_sigint(void)
{
    CU_ASSERT_TRUE(mgt_killed_by(mgt_run_child(interrupt_child, NULL, NULL, 0), SIGINT));
}

static void test_catch_signals_refuses_empty_and_uncatchable_lists(void)
{
    int none[1] = {0};
    CU_ASSERT_EQUAL(mg_catch_signals(NULL, none, 0), MG_EINVAL);
    CU_ASSERT_EQUAL(mg_catch_signals(NULL, NULL, 3), MG_EINVAL);
    int kill9[] = {SIGKILL};
    CU_ASSERT_EQUAL(mg_catch_signals(NULL, kill9, 1), MG_EINVAL);
    int segv[] = {SIGSEGV};
    CU_ASSERT_EQUAL(mg_catch_signals(NULL, segv, 1), MG_EINVAL);
    int bogus[] = {SIGUSR2, 1000};
    CU_ASSERT_EQUAL(mg_catch_signals(NULL, bogus, 2), MG_EINVAL);
    /* Nothing was installed by the refused calls. */
    struct sigaction sa;
    CU_ASSERT_EQUAL(sigaction(SIGUSR2, NULL, &sa), 0);
    CU_ASSERT_TRUE(sa.sa_handler == SIG_DFL);
}

/* ---- exit and panic ---- */

static void exit_child(void *arg)
{
    report_fd = *(int *)arg;
    char secret[16] = "exit secret!!!!";
    mg_buffer *b = mg_buffer_from_bytes(secret, 16);
    mg_enclave *e = mg_enclave_random(16);
    if (b == NULL || e == NULL)
        _exit(70);
    mg_test_set_unmap_hook(wipe_hook);
    mg_safe_exit(3);
}

static void test_safe_exit_wipes_then_exits_with_code(void)
{
    int p[2];
    CU_ASSERT_FATAL(pipe(p) == 0);
    int status = mgt_run_child(exit_child, &p[1], NULL, 0);
    close(p[1]);
    char out[16] = "";
    ssize_t n = read(p[0], out, sizeof out - 1);
    out[n > 0 ? n : 0] = '\0';
    close(p[0]);
    CU_ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 3);
    CU_ASSERT_STRING_EQUAL(out, "W"); /* the one user buffer, wiped before unmapping */
}

static void panic_child(void *arg)
{
    (void)arg;
    char secret[16] = "panic secret!!!";
    mg_buffer *b = mg_buffer_from_bytes(secret, 16);
    if (b == NULL)
        _exit(80);
    mg_safe_panic("the application gave up");
}

static void test_safe_panic_aborts_with_message_and_no_secret(void)
{
    char err[512];
    int status = mgt_run_child(panic_child, NULL, err, sizeof err);
    CU_ASSERT_TRUE(mgt_killed_by(status, SIGABRT));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "the application gave up"));
    CU_ASSERT_PTR_NULL(strstr(err, "panic secret"));
}

static void after_exit_child(void *arg)
{
    (void)arg;
    mg_enclave *e = mg_enclave_random(16);
    if (e == NULL)
        _exit(90);
    mg_safe_exit(0);
}

static void test_nothing_opens_after_safe_exit_started(void)
{
    /* mg_safe_exit destroys the key before atexit handlers run; the child exits 0 cleanly. */
    CU_ASSERT_TRUE(mgt_exited_ok(mgt_run_child(after_exit_child, NULL, NULL, 0)));
}

static CU_TestInfo lifecycle_tests[] = {
    {"a crash leaves no secret in the core file", test_crash_leaves_no_secret_in_core_file},
    {"a caught signal runs the handler, chains, purges, exits", test_signal_runs_handler_chains_purges_and_exits},
    {"mg_catch_interrupt ends with SIGINT", test_catch_interrupt_ends_with_sigint},
    {"catch_signals refuses empty and uncatchable lists", test_catch_signals_refuses_empty_and_uncatchable_lists},
    {"safe exit wipes, then exits with the code", test_safe_exit_wipes_then_exits_with_code},
    {"safe panic aborts with the message and no secret", test_safe_panic_aborts_with_message_and_no_secret},
    {"safe exit with enclaves alive exits cleanly", test_nothing_opens_after_safe_exit_started},
    CU_TEST_INFO_NULL,
};

int main(void)
{
    CU_SuiteInfo suites[] = {
        {"lifecycle", NULL, NULL, NULL, NULL, lifecycle_tests},
        CU_SUITE_INFO_NULL,
    };
    return mgt_main(suites);
}
