/* Helpers on plain memory: wipe, scramble, constant-time equal/copy/move. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <memguard/memguard.h>

#include "harness.h"

#if defined(__has_include)
#if __has_include(<valgrind/memcheck.h>)
#include <valgrind/memcheck.h>
#define MGT_HAVE_MEMCHECK 1
#endif
#endif

static void test_equal_on_equal_unequal_and_empty(void)
{
    unsigned char a[64], b[64];
    for (int i = 0; i < 64; i++)
        a[i] = b[i] = (unsigned char)i;
    CU_ASSERT_EQUAL(mg_equal(a, b, 64), 1);
    CU_ASSERT_EQUAL(mg_equal(a, b, 0), 1);
    CU_ASSERT_EQUAL(mg_equal(NULL, NULL, 0), 1);
    for (int i = 0; i < 64; i++) {
        for (int bit = 0; bit < 8; bit++) {
            b[i] ^= (unsigned char)(1 << bit);
            CU_ASSERT_EQUAL(mg_equal(a, b, 64), 0);
            CU_ASSERT_EQUAL(mg_equal(a, b, (size_t)i + 1), 0);
            CU_ASSERT_EQUAL(mg_equal(a, b, (size_t)i), 1); /* prefix before the flip */
            b[i] ^= (unsigned char)(1 << bit);
        }
    }
}

static void test_copy_and_move(void)
{
    unsigned char src[33], dst[33] = {0};
    for (int i = 0; i < 33; i++)
        src[i] = (unsigned char)(0xf0 ^ i);
    mg_copy(dst, src, 33);
    CU_ASSERT_EQUAL(memcmp(dst, src, 33), 0);
    unsigned char keep[33];
    memcpy(keep, src, 33);
    memset(dst, 0, sizeof dst);
    mg_move(dst, src, 33);
    CU_ASSERT_EQUAL(memcmp(dst, keep, 33), 0);
    unsigned char zero[33] = {0};
    CU_ASSERT_EQUAL(memcmp(src, zero, 33), 0);
    mg_copy(dst, src, 0); /* empty is fine */
}

static void test_wipe_and_scramble(void)
{
    unsigned char buf[100];
    memset(buf, 0xee, sizeof buf);
    mg_wipe(buf, 50);
    CU_ASSERT_EQUAL(buf[0], 0);
    CU_ASSERT_EQUAL(buf[49], 0);
    CU_ASSERT_EQUAL(buf[50], 0xee);
    mg_wipe(NULL, 0);
    CU_ASSERT_EQUAL(mg_scramble(buf, sizeof buf), MG_OK);
    unsigned char zero[100] = {0};
    CU_ASSERT_NOT_EQUAL(memcmp(buf, zero, 100), 0);
    CU_ASSERT_EQUAL(mg_scramble(NULL, 0), MG_OK);
    CU_ASSERT_EQUAL(mg_scramble(NULL, 5), MG_EINVAL);
}

/*
 * Under valgrind memcheck, secret bytes marked undefined make any branch or
 * address that depends on them an error ("conditional jump depends on
 * uninitialised value"), failing the run via --error-exitcode. Natively this
 * checks only the results.
 */
static void test_helpers_do_not_branch_on_secret_data(void)
{
    unsigned char a[48], b[48], out[48];
    CU_ASSERT_EQUAL_FATAL(mg_scramble(a, sizeof a), MG_OK);
    memcpy(b, a, sizeof b);
    b[47] ^= 1;
#ifdef MGT_HAVE_MEMCHECK
    VALGRIND_MAKE_MEM_UNDEFINED(a, sizeof a);
    VALGRIND_MAKE_MEM_UNDEFINED(b, sizeof b);
#endif
    int eq1 = mg_equal(a, b, sizeof a);
    int eq2 = mg_equal(a, a, sizeof a);
    mg_copy(out, a, sizeof a);
#ifdef MGT_HAVE_MEMCHECK
    /* Declassify only the results, which are public. */
    VALGRIND_MAKE_MEM_DEFINED(&eq1, sizeof eq1);
    VALGRIND_MAKE_MEM_DEFINED(&eq2, sizeof eq2);
    VALGRIND_MAKE_MEM_DEFINED(a, sizeof a);
    VALGRIND_MAKE_MEM_DEFINED(out, sizeof out);
#endif
    CU_ASSERT_EQUAL(eq1, 0);
    CU_ASSERT_EQUAL(eq2, 1);
    CU_ASSERT_EQUAL(memcmp(out, a, sizeof a), 0);
}

/* ---- mg_scrub: nothing a callee left on the stack survives ---- */

static unsigned char pattern[32];

/* A callee that leaves 4 KiB of "secret" pattern in its dead stack frame. */
__attribute__((noinline)) static void deposit(void)
{
    volatile unsigned char area[4096];
    for (size_t i = 0; i < sizeof area; i++)
        area[i] = pattern[i % sizeof pattern];
}

/* Occurrences of the pattern in the n bytes of stack just below `top`. */
__attribute__((noinline)) static size_t count_below(const unsigned char *top, size_t n)
{
    size_t found = 0;
    const unsigned char *start = (const unsigned char *)((uintptr_t)(top - n) & ~(uintptr_t)7);
    for (const unsigned char *p = start; p + sizeof pattern <= top; p += 8)
        if (memcmp(p, pattern, sizeof pattern) == 0)
            found++;
    return found;
}

static void test_scrub_clears_dead_stack_frames(void)
{
#ifdef MG_SANITIZED
    printf("\n    skipped under ASan (dead frames live in its fake stack)");
    return;
#endif
    if (getenv("MGT_UNDER_VALGRIND") != NULL) {
        printf("\n    skipped under valgrind (reads below the stack pointer are errors there)");
        return;
    }
    CU_ASSERT_FATAL(mg_scramble(pattern, sizeof pattern) == MG_OK);
    unsigned char top_marker = 0;
    const unsigned char *top = &top_marker;
    deposit();
    size_t before = count_below(top, 16384);
    CU_ASSERT(before > 0); /* control: the scan sees what a callee left */
    deposit();
    mg_scrub(16384);
    size_t after = count_below(top, 16384);
    printf("\n    pattern copies below the frame: %zu left by a callee, %zu after mg_scrub", before, after);
    CU_ASSERT_EQUAL(after, 0);
    mg_scrub(1u << 30); /* an absurd size is capped, not a crash */
}

/*
 * A thread with a small stack (stunnel's are 64 KiB) asking for the largest scrub: mg_scrub must
 * fit it in the room left, not run off the end of the stack (it did, from deep in a TLS handshake),
 * and still clear what a callee left just below.
 */
struct small_stack_run {
    size_t before, after;
};

static void *small_stack_thread(void *arg)
{
    struct small_stack_run *r = arg;
    unsigned char top_marker = 0;
    const unsigned char *top = &top_marker;
    deposit();
    r->before = count_below(top, 8192);
    deposit();
    mg_scrub(64 * 1024);
    r->after = count_below(top, 8192);
    return NULL;
}

static void small_stack_child(void *arg)
{
    (void)arg;
    pthread_attr_t a;
    pthread_t t;
    struct small_stack_run r = {0, 0};
    if (pthread_attr_init(&a) != 0 || pthread_attr_setstacksize(&a, 64 * 1024) != 0 ||
        pthread_create(&t, &a, small_stack_thread, &r) != 0 || pthread_join(t, NULL) != 0)
        _exit(2);
    _exit(r.before > 0 && r.after == 0 ? 0 : 3);
}

static void test_scrub_fits_a_small_thread_stack(void)
{
#ifdef MG_SANITIZED
    printf("\n    skipped under ASan (dead frames live in its fake stack)");
    return;
#endif
    if (getenv("MGT_UNDER_VALGRIND") != NULL) {
        printf("\n    skipped under valgrind (reads below the stack pointer are errors there)");
        return;
    }
    CU_ASSERT_FATAL(mg_scramble(pattern, sizeof pattern) == MG_OK);
    int st = mgt_run_child(small_stack_child, NULL, NULL, 0);
    printf("\n    64 KiB thread stack, mg_scrub(64 KiB): %s",
           WIFEXITED(st) ? (WEXITSTATUS(st) == 0 ? "returned, callee's pattern cleared" : "returned, pattern left")
                         : "killed (stack overflow)");
    CU_ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static CU_TestInfo util_tests[] = {
    {"equal on equal, unequal and empty inputs", test_equal_on_equal_unequal_and_empty},
    {"copy and move (move wipes the source)", test_copy_and_move},
    {"wipe and scramble", test_wipe_and_scramble},
    {"helpers do not branch on secret data (memcheck)", test_helpers_do_not_branch_on_secret_data},
    {"mg_scrub clears what dead callee frames left on the stack", test_scrub_clears_dead_stack_frames},
    {"mg_scrub fits a 64 KiB thread stack and still clears below", test_scrub_fits_a_small_thread_stack},
    CU_TEST_INFO_NULL,
};

int main(void)
{
    CU_SuiteInfo suites[] = {
        {"util", NULL, NULL, NULL, NULL, util_tests},
        CU_SUITE_INFO_NULL,
    };
    return mgt_main(suites);
}
