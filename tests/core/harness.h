/* Shared by the core test suites: death tests, /proc/self/smaps, CUnit main. */
#ifndef MGT_HARNESS_H
#define MGT_HARNESS_H

#include <stdbool.h>
#include <stddef.h>

#include <CUnit/Basic.h>

#if defined(MG_SANITIZED)
#define MGT_SANITIZED 1 /* ASan ignores mlock: lock assertions do not apply */
#else
#define MGT_SANITIZED 0
#endif

/*
 * Run fn(arg) in a forked child with core dumps off; the child _exit(0)s if
 * fn returns. Returns the wait status, or -1 if fork/waitpid failed.
 * With capture != NULL, the child's stderr is collected there (NUL-terminated).
 */
int mgt_run_child(void (*fn)(void *arg), void *arg, char *capture, size_t capture_len);

bool mgt_killed_by(int status, int sig);
bool mgt_exited_ok(int status);
const char *mgt_describe(int status);

/* Facts about the mapping holding addr, from /proc/self/smaps. */
typedef struct {
    bool found;
    size_t locked_kb;
    char perms[8];
    char vmflags[128];
} mgt_mapping;
mgt_mapping mgt_mapping_of(const void *addr);
bool mgt_has_vmflag(const mgt_mapping *m, const char *flag);

/* Register the NULL-terminated suites, run them, return the process exit code. */
int mgt_main(CU_SuiteInfo *suites);

#endif
