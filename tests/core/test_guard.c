/* Death tests: the guard pages, the canary and freezing stop stray accesses. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <memguard/memguard.h>

#include "harness.h"

#define MAX_SIZE 8193

/* Reads store into this so no optimiser (compiler or valgrind's JIT) drops them. */
static volatile unsigned char sink;

struct stray {
    size_t size;
    long offset; /* from the start of the data */
    bool write;
    bool destroy_after;
};

static void do_stray(void *arg)
{
    const struct stray *s = arg;
    if (s->destroy_after && freopen("/dev/null", "w", stderr) == NULL) /* 8193 identical messages help nobody */
        _exit(5);
    mg_buffer *b = mg_buffer_new(s->size);
    if (b == NULL)
        _exit(3);
    volatile unsigned char *p = mg_buffer_data(b);
    if (s->write)
        p[s->offset] = (unsigned char)(p[s->offset] ^ 0x5a);
    else
        sink = p[s->offset];
    if (s->destroy_after)
        mg_buffer_destroy(b);
}

/*
 * Every size natively and under ASan. Under valgrind (MGT_UNDER_VALGRIND) a
 * fork costs ~100x more, so it samples: every size up to 300, the sizes around
 * each page boundary, and a stride between them.
 */
static size_t next_size(size_t size)
{
    static int sampled = -1;
    if (sampled < 0)
        sampled = getenv("MGT_UNDER_VALGRIND") != NULL;
    if (!sampled || size < 300)
        return size + 1;
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t in_page = size % page;
    if (in_page >= page - MG_MIN_CANARY - 2 || in_page < 2)
        return size + 1;
    size_t next = size + 211;
    size_t boundary = size - in_page + page - MG_MIN_CANARY - 2;
    return next < boundary ? next : boundary;
}

/* Run one stray access per size in its own child; count sizes whose child did not die of sig. */
static size_t count_survivors(long (*offset_of)(size_t size), bool write, bool destroy_after, int sig)
{
    size_t bad = 0;
    for (size_t size = 1; size <= MAX_SIZE; size = next_size(size)) {
        struct stray s = {size, offset_of(size), write, destroy_after};
        int status = mgt_run_child(do_stray, &s, NULL, 0);
        if (!mgt_killed_by(status, sig)) {
            if (bad++ < 5)
                fprintf(stderr, "size %zu offset %ld: %s\n", size, s.offset, mgt_describe(status));
        }
    }
    return bad;
}

static long one_past_end(size_t size)
{
    return (long)size;
}

static long one_before_start(size_t size)
{
    (void)size;
    return -1;
}

static void test_overflow_by_one_byte_faults_for_every_size(void)
{
    CU_ASSERT_EQUAL(count_survivors(one_past_end, true, false, SIGSEGV), 0);
}

static void test_overread_by_one_byte_faults_for_every_size(void)
{
    CU_ASSERT_EQUAL(count_survivors(one_past_end, false, false, SIGSEGV), 0);
}

/* One byte before the data is the canary: the write itself succeeds, destroy catches it. */
static void test_underflow_by_one_byte_aborts_at_destroy_for_every_size(void)
{
    CU_ASSERT_EQUAL(count_survivors(one_before_start, true, true, SIGABRT), 0);
}

/* Past the canary lies the leading guard page. */
static void test_access_to_leading_guard_page_faults(void)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t sizes[] = {1, 31, 32, 33, page - 33, page - 32, page - 1, page, page + 1, 3 * page};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t size = sizes[i];
        /* The canary plus data fill whole pages; one byte before them is the guard. */
        size_t inner = (size + MG_MIN_CANARY + page - 1) / page * page;
        long off = -(long)(inner - size) - 1;
        struct stray r = {size, off, false, false};
        int status = mgt_run_child(do_stray, &r, NULL, 0);
        CU_ASSERT_TRUE(mgt_killed_by(status, SIGSEGV));
        /* ...and the byte just after that gap is readable canary: the layout is exact. */
        struct stray ok = {size, off + 1, false, false};
        status = mgt_run_child(do_stray, &ok, NULL, 0);
        CU_ASSERT_TRUE(mgt_exited_ok(status));
    }
}

static void do_trailing_guard_far(void *arg)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    mg_buffer *b = mg_buffer_new(100);
    volatile unsigned char *p = mg_buffer_data(b);
    (void)arg;
    sink = p[100 + page - 1]; /* last byte of the trailing guard page */
}

static void test_last_byte_of_trailing_guard_page_faults(void)
{
    CU_ASSERT_TRUE(mgt_killed_by(mgt_run_child(do_trailing_guard_far, NULL, NULL, 0), SIGSEGV));
}

static void do_write_frozen(void *arg)
{
    size_t size = *(size_t *)arg;
    mg_buffer *b = mg_buffer_random(size); /* frozen */
    if (b == NULL || mg_buffer_is_mutable(b))
        _exit(3);
    volatile unsigned char *p = mg_buffer_data(b);
    p[size / 2] = 1;
}

static void do_write_frozen_after_freeze(void *arg)
{
    (void)arg;
    mg_buffer *b = mg_buffer_new(64);
    if (b == NULL || mg_buffer_freeze(b) != MG_OK)
        _exit(3);
    volatile unsigned char *p = mg_buffer_data(b);
    p[0] = 1;
}

static void do_write_after_melt(void *arg)
{
    (void)arg;
    mg_buffer *b = mg_buffer_new(64);
    if (b == NULL || mg_buffer_freeze(b) != MG_OK || mg_buffer_melt(b) != MG_OK)
        _exit(3);
    volatile unsigned char *p = mg_buffer_data(b);
    p[0] = 1;
    mg_buffer_destroy(b);
}

static void test_write_to_frozen_buffer_faults(void)
{
    size_t sizes[] = {1, 4096, 10000};
    for (size_t i = 0; i < 3; i++)
        CU_ASSERT_TRUE(mgt_killed_by(mgt_run_child(do_write_frozen, &sizes[i], NULL, 0), SIGSEGV));
    CU_ASSERT_TRUE(mgt_killed_by(mgt_run_child(do_write_frozen_after_freeze, NULL, NULL, 0), SIGSEGV));
    /* The control: after melt the same write is fine. */
    CU_ASSERT_TRUE(mgt_exited_ok(mgt_run_child(do_write_after_melt, NULL, NULL, 0)));
}

static const char secret_text[] = "TOPSECRET-0123456789";

static void do_corrupt_canary_with_secret(void *arg)
{
    (void)arg;
    char s[sizeof secret_text];
    memcpy(s, secret_text, sizeof s);
    mg_buffer *b = mg_buffer_from_bytes(s, sizeof s - 1);
    mg_buffer *other = mg_buffer_from_bytes((char[]){"OTHER-SECRET"}, 12);
    if (b == NULL || other == NULL || mg_buffer_melt(b) != MG_OK)
        _exit(3);
    unsigned char *p = mg_buffer_data(b);
    p[-MG_MIN_CANARY] ^= 1; /* the first canary byte, not just the nearest */
    mg_buffer_destroy(b);
    _exit(4); /* not reached if the corruption is caught */
}

static void test_corrupted_canary_aborts_with_clear_message_and_no_secret(void)
{
    char err[2048];
    int status = mgt_run_child(do_corrupt_canary_with_secret, NULL, err, sizeof err);
    CU_ASSERT_TRUE(mgt_killed_by(status, SIGABRT));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "canary"));
    CU_ASSERT_PTR_NULL(strstr(err, "TOPSECRET"));
    CU_ASSERT_PTR_NULL(strstr(err, "OTHER-SECRET"));
}

static void do_double_destroy(void *arg)
{
    (void)arg;
    mg_buffer *b = mg_buffer_new(8);
    mg_buffer_destroy(b);
    mg_buffer_destroy(b);
}

static void test_double_destroy_aborts(void)
{
    char err[512];
    int status = mgt_run_child(do_double_destroy, NULL, err, sizeof err);
    CU_ASSERT_TRUE(mgt_killed_by(status, SIGABRT));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "already destroyed"));
}

static void do_use_after_destroy(void *arg)
{
    (void)arg;
    mg_buffer *b = mg_buffer_new(8);
    volatile unsigned char *p = mg_buffer_data(b);
    mg_buffer_destroy(b);
    sink = p[0];
}

static void test_reading_destroyed_memory_faults(void)
{
    CU_ASSERT_TRUE(mgt_killed_by(mgt_run_child(do_use_after_destroy, NULL, NULL, 0), SIGSEGV));
}

static CU_TestInfo guard_tests[] = {
    {"overflow by one byte faults (sizes 1..8193)", test_overflow_by_one_byte_faults_for_every_size},
    {"overread by one byte faults (sizes 1..8193)", test_overread_by_one_byte_faults_for_every_size},
    {"underflow by one byte aborts at destroy (sizes 1..8193)", test_underflow_by_one_byte_aborts_at_destroy_for_every_size},
    {"access to the leading guard page faults", test_access_to_leading_guard_page_faults},
    {"last byte of the trailing guard page faults", test_last_byte_of_trailing_guard_page_faults},
    {"write to a frozen buffer faults", test_write_to_frozen_buffer_faults},
    {"corrupted canary aborts, message has no secret", test_corrupted_canary_aborts_with_clear_message_and_no_secret},
    {"double destroy aborts", test_double_destroy_aborts},
    {"reading destroyed memory faults", test_reading_destroyed_memory_faults},
    CU_TEST_INFO_NULL,
};

int main(void)
{
    CU_SuiteInfo suites[] = {
        {"guard", NULL, NULL, NULL, NULL, guard_tests},
        CU_SUITE_INFO_NULL,
    };
    return mgt_main(suites);
}
