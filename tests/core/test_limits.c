/*
 * RLIMIT_MEMLOCK exhaustion: run as an unprivileged user with a small limit,
 * the allocation fails with MG_EMLOCK and a message naming the limit; nothing
 * crashes, nothing already allocated is lost. (Not built under ASan, which
 * makes mlock a no-op.)
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <memguard/memguard.h>

#include "harness.h"

#define LIMIT (64 * 1024)

/* Drop to a small memlock limit and, if root, to nobody (losing CAP_IPC_LOCK). */
static void become_limited(void)
{
    struct rlimit rl = {LIMIT, LIMIT};
    if (setrlimit(RLIMIT_MEMLOCK, &rl) != 0)
        _exit(10);
    if (geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0))
        _exit(11);
}

static void do_exhaust(void *arg)
{
    (void)arg;
    become_limited();
    mg_buffer *held[64];
    size_t n = 0;
    unsigned char secret[100];
    memset(secret, 0x5c, sizeof secret);
    for (;;) {
        mg_buffer *b = mg_buffer_new(100);
        if (b == NULL)
            break;
        if (n == 64)
            _exit(12); /* the limit was not enforced */
        if (mg_buffer_copy(b, secret, sizeof secret) != MG_OK)
            _exit(13);
        held[n++] = b;
    }
    if (mg_last_error() != MG_EMLOCK)
        _exit(14);
    if (strstr(mg_last_error_message(), "RLIMIT_MEMLOCK") == NULL)
        _exit(15);
    if (n < 8 || n > LIMIT / 4096)
        _exit(16);
    /* Everything allocated before the failure is intact. */
    for (size_t i = 0; i < n; i++)
        if (!mg_buffer_equal(held[i], secret, sizeof secret))
            _exit(17);
    /* Freeing one buffer makes room for exactly one more. */
    mg_buffer_destroy(held[--n]);
    mg_buffer *again = mg_buffer_new(100);
    if (again == NULL)
        _exit(18);
    /* Bigger requests fail cleanly as well. */
    if (mg_buffer_new(LIMIT) != NULL || mg_last_error() != MG_EMLOCK)
        _exit(19);
    if (mg_buffer_from_bytes(secret, sizeof secret) != NULL || secret[0] != 0x5c)
        _exit(20); /* a failed move keeps its source */
    fprintf(stderr, "limited to %d bytes: %zu buffers, then: %s\n", LIMIT, n + 1, mg_last_error_message());
    _exit(0);
}

static void test_lock_limit_exhaustion_is_a_clean_error(void)
{
    char err[1024];
    int status = mgt_run_child(do_exhaust, NULL, err, sizeof err);
    if (!mgt_exited_ok(status))
        fprintf(stderr, "child: %s; stderr: %s\n", mgt_describe(status), err);
    else
        printf("\n    %s", err);
    CU_ASSERT_TRUE(mgt_exited_ok(status));
}

static void do_best_effort(void *arg)
{
    (void)arg;
    become_limited();
    if (mg_set_lock_policy(MG_LOCK_BEST_EFFORT) != MG_LOCK_REQUIRED)
        _exit(10);
    mg_buffer *b = NULL;
    for (int i = 0; i < 40; i++) /* more than the limit allows locked */
        if ((b = mg_buffer_new(100)) == NULL)
            _exit(11);
    mg_stats s = mg_get_stats();
    if (s.live_buffers != 40 || s.unlocked_buffers == 0 || s.locked_bytes > LIMIT)
        _exit(12);
    _exit(0);
}

static void test_best_effort_policy_counts_unlocked_buffers(void)
{
    int status = mgt_run_child(do_best_effort, NULL, NULL, 0);
    CU_ASSERT_TRUE(mgt_exited_ok(status));
}

static CU_TestInfo limits_tests[] = {
    {"lock-limit exhaustion is a clean error", test_lock_limit_exhaustion_is_a_clean_error},
    {"best-effort policy counts unlocked buffers", test_best_effort_policy_counts_unlocked_buffers},
    CU_TEST_INFO_NULL,
};

int main(void)
{
    CU_SuiteInfo suites[] = {
        {"limits", NULL, NULL, NULL, NULL, limits_tests},
        CU_SUITE_INFO_NULL,
    };
    return mgt_main(suites);
}
