/* mg_purge: every buffer wiped and released; handles dead but valid. */
#include <string.h>

#include <memguard/memguard.h>

#include "harness.h"
#include "internal.h"

#define N 50

static size_t hook_calls, hook_nonzero;
static void count_hook(const void *inner, size_t len)
{
    const unsigned char *p = inner;
    unsigned char acc = 0;
    for (size_t i = 0; i < len; i++)
        acc |= p[i];
    hook_calls++;
    if (acc != 0)
        hook_nonzero++;
}

static void test_purge_wipes_and_kills_every_buffer(void)
{
    mg_buffer *bufs[N];
    for (int i = 0; i < N; i++) {
        static unsigned char secret[N * 97];
        memset(secret, 0x40 + i, sizeof secret);
        bufs[i] = (i % 2) ? mg_buffer_from_bytes(secret, (size_t)(i + 1) * 97) /* frozen */
                          : mg_buffer_new((size_t)(i + 1) * 97);
        CU_ASSERT_PTR_NOT_NULL_FATAL(bufs[i]);
        if (i % 2 == 0)
            mg_buffer_scramble(bufs[i]);
    }
    CU_ASSERT_EQUAL(mg_get_stats().live_buffers, N);
    hook_calls = hook_nonzero = 0;
    mg_test_set_unmap_hook(count_hook);
    mg_purge();
    mg_test_set_unmap_hook(NULL);
    CU_ASSERT_EQUAL(hook_calls, N);
    CU_ASSERT_EQUAL(hook_nonzero, 0);
    mg_stats s = mg_get_stats();
    CU_ASSERT_EQUAL(s.live_buffers, 0);
    CU_ASSERT_EQUAL(s.dead_handles, N);
    CU_ASSERT_EQUAL(s.locked_bytes, 0);
    for (int i = 0; i < N; i++)
        mg_buffer_destroy(bufs[i]);
    CU_ASSERT_EQUAL(mg_get_stats().dead_handles, 0);
}

static void test_dead_handles_fail_cleanly(void)
{
    mg_buffer *b = mg_buffer_new(32);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    mg_purge();
    unsigned char x[4] = {1, 2, 3, 4};
    CU_ASSERT_FALSE(mg_buffer_is_alive(b));
    CU_ASSERT_FALSE(mg_buffer_is_mutable(b));
    CU_ASSERT_PTR_NULL(mg_buffer_data(b));
    CU_ASSERT_EQUAL(mg_last_error(), MG_EDEAD);
    CU_ASSERT_EQUAL(mg_buffer_size(b), 0);
    CU_ASSERT_EQUAL(mg_buffer_copy(b, x, 4), MG_EDEAD);
    CU_ASSERT_EQUAL(mg_buffer_copy_at(b, 1, x, 1), MG_EDEAD);
    CU_ASSERT_EQUAL(mg_buffer_move(b, x, 4), MG_EDEAD);
    CU_ASSERT_EQUAL(x[0], 1); /* a refused move keeps its source */
    CU_ASSERT_EQUAL(mg_buffer_freeze(b), MG_EDEAD);
    CU_ASSERT_EQUAL(mg_buffer_melt(b), MG_EDEAD);
    CU_ASSERT_FALSE(mg_buffer_equal(b, x, 0));
    mg_buffer_wipe(b);
    CU_ASSERT_EQUAL(mg_last_error(), MG_EDEAD);
    mg_buffer_scramble(b);
    CU_ASSERT_EQUAL(mg_last_error(), MG_EDEAD);
    mg_purge(); /* purging again is harmless */
    mg_buffer_destroy(b);
}

static void test_library_works_after_purge(void)
{
    mg_purge();
    mg_buffer *b = mg_buffer_new(10);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    CU_ASSERT_EQUAL(mg_buffer_copy(b, "0123456789", 10), MG_OK);
    CU_ASSERT_TRUE(mg_buffer_equal(b, "0123456789", 10));
    mg_buffer_destroy(b);
}

/* mg_purge_count(): one more per purge, nothing else moves it; a buffer made after the last purge is alive. */
static void test_purge_count_counts_purges(void)
{
    unsigned long long before = mg_purge_count();
    mg_buffer *b = mg_buffer_new(64);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    mg_buffer_destroy(mg_buffer_new(16)); /* creating and destroying buffers is not a purge */
    CU_ASSERT_EQUAL(mg_purge_count(), before);
    CU_ASSERT_TRUE(mg_buffer_is_alive(b));
    mg_purge();
    CU_ASSERT_EQUAL(mg_purge_count(), before + 1);
    CU_ASSERT_FALSE(mg_buffer_is_alive(b)); /* the count moved, and so did the buffer's state */
    mg_purge();
    CU_ASSERT_EQUAL(mg_purge_count(), before + 2);
    mg_buffer_destroy(b);
}

static CU_TestInfo purge_tests[] = {
    {"purge wipes and kills every buffer", test_purge_wipes_and_kills_every_buffer},
    {"dead handles fail cleanly", test_dead_handles_fail_cleanly},
    {"the library works after a purge", test_library_works_after_purge},
    {"mg_purge_count counts purges and nothing else", test_purge_count_counts_purges},
    CU_TEST_INFO_NULL,
};

int main(void)
{
    CU_SuiteInfo suites[] = {
        {"purge", NULL, NULL, NULL, NULL, purge_tests},
        CU_SUITE_INFO_NULL,
    };
    return mgt_main(suites);
}
