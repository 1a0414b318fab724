#include "harness.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

int mgt_run_child(void (*fn)(void *arg), void *arg, char *capture, size_t capture_len)
{
    int pipefd[2] = {-1, -1};
    if (capture != NULL && pipe(pipefd) != 0)
        return -1;
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        struct rlimit none = {0, 0};
        (void)setrlimit(RLIMIT_CORE, &none);
        if (capture != NULL) {
            close(pipefd[0]);
            if (dup2(pipefd[1], STDERR_FILENO) < 0)
                _exit(120);
        }
        fn(arg);
        _exit(0);
    }
    if (capture != NULL) {
        close(pipefd[1]);
        size_t got = 0;
        while (got + 1 < capture_len) {
            ssize_t n = read(pipefd[0], capture + got, capture_len - 1 - got);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                break;
            got += (size_t)n;
        }
        capture[got] = '\0';
        close(pipefd[0]);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    return status;
}

bool mgt_killed_by(int status, int sig)
{
    return status != -1 && WIFSIGNALED(status) && WTERMSIG(status) == sig;
}

bool mgt_exited_ok(int status)
{
    return status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

const char *mgt_describe(int status)
{
    static char text[64];
    if (status == -1)
        snprintf(text, sizeof text, "fork/wait failed");
    else if (WIFSIGNALED(status))
        snprintf(text, sizeof text, "killed by signal %d", WTERMSIG(status));
    else
        snprintf(text, sizeof text, "exit status %d", WEXITSTATUS(status));
    return text;
}

mgt_mapping mgt_mapping_of(const void *addr)
{
    mgt_mapping m = {0};
    FILE *f = fopen("/proc/self/smaps", "r");
    if (f == NULL)
        return m;
    char line[512];
    bool in = false;
    unsigned long a = (unsigned long)addr;
    while (fgets(line, sizeof line, f) != NULL) {
        unsigned long lo, hi;
        char perms[8];
        /* A mapping header line: "lo-hi perms offset dev inode [path]". */
        if (sscanf(line, "%lx-%lx %7s ", &lo, &hi, perms) == 3 && strchr(line, '-') < strchr(line, ' ')) {
            if (m.found)
                break;
            in = a >= lo && a < hi;
            if (in) {
                m.found = true;
                snprintf(m.perms, sizeof m.perms, "%s", perms);
            }
            continue;
        }
        if (!in)
            continue;
        size_t kb;
        if (sscanf(line, "Locked: %zu kB", &kb) == 1)
            m.locked_kb = kb;
        else if (strncmp(line, "VmFlags:", 8) == 0)
            snprintf(m.vmflags, sizeof m.vmflags, "%.*s", (int)sizeof m.vmflags - 1, line + 8);
    }
    fclose(f);
    return m;
}

bool mgt_has_vmflag(const mgt_mapping *m, const char *flag)
{
    char padded[8];
    snprintf(padded, sizeof padded, " %s ", flag);
    char flags[136];
    snprintf(flags, sizeof flags, " %s", m->vmflags);
    /* Turn the trailing newline into a separator. */
    char *nl = strchr(flags, '\n');
    if (nl != NULL)
        *nl = ' ';
    return strstr(flags, padded) != NULL;
}

int mgt_main(CU_SuiteInfo *suites)
{
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 2;
    if (CU_register_suites(suites) != CUE_SUCCESS) {
        fprintf(stderr, "suite registration failed: %s\n", CU_get_error_msg());
        CU_cleanup_registry();
        return 2;
    }
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
    unsigned run = CU_get_number_of_tests_run();
    CU_cleanup_registry();
    if (run == 0) {
        fprintf(stderr, "no test ran\n");
        return 2;
    }
    return failed == 0 ? 0 : 1;
}
