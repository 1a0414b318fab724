/* The guarded-buffer API: contents, states, bounds, locking, wiping. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <memguard/memguard.h>

#include "harness.h"
#include "internal.h" /* mg_test_set_unmap_hook */

static bool all_zero(const void *p, size_t n)
{
    const unsigned char *c = p;
    unsigned char acc = 0;
    for (size_t i = 0; i < n; i++)
        acc |= c[i];
    return acc == 0;
}

static void test_new_buffer_is_zeroed_mutable_and_sized(void)
{
    size_t sizes[] = {1, 32, 4064, 4096, 4097, 65536 + 3};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        mg_buffer *b = mg_buffer_new(sizes[i]);
        CU_ASSERT_PTR_NOT_NULL_FATAL(b);
        CU_ASSERT_EQUAL(mg_buffer_size(b), sizes[i]);
        CU_ASSERT_TRUE(mg_buffer_is_alive(b));
        CU_ASSERT_TRUE(mg_buffer_is_mutable(b));
        CU_ASSERT_TRUE(all_zero(mg_buffer_data(b), sizes[i]));
        /* The data ends exactly at a page boundary (the trailing guard). */
        uintptr_t end = (uintptr_t)mg_buffer_data(b) + sizes[i];
        CU_ASSERT_EQUAL(end % (uintptr_t)sysconf(_SC_PAGESIZE), 0);
        mg_buffer_destroy(b);
    }
}

static void test_bad_sizes_fail_cleanly(void)
{
    size_t sizes[] = {0, SIZE_MAX, SIZE_MAX - 1, SIZE_MAX - 4096 * 3, SIZE_MAX / 2};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        errno = 0;
        mg_buffer *b = mg_buffer_new(sizes[i]);
        CU_ASSERT_PTR_NULL(b);
        CU_ASSERT_NOT_EQUAL(errno, 0);
        CU_ASSERT_TRUE(mg_last_error() == MG_EINVAL || mg_last_error() == MG_ENOMEM);
        mg_buffer_destroy(b); /* NULL-safe */
    }
    CU_ASSERT_PTR_NULL(mg_buffer_random(0));
    CU_ASSERT_EQUAL(mg_last_error(), MG_EINVAL);
    char x = 'x';
    CU_ASSERT_PTR_NULL(mg_buffer_from_bytes(&x, 0));
    CU_ASSERT_EQUAL(x, 'x'); /* a failed call loses nothing */
    CU_ASSERT_PTR_NULL(mg_buffer_from_bytes(NULL, 4));
    CU_ASSERT_EQUAL(mg_last_error(), MG_EINVAL);
}

static void test_from_bytes_copies_wipes_source_and_freezes(void)
{
    unsigned char src[100];
    unsigned char ref[100];
    for (int i = 0; i < 100; i++)
        src[i] = ref[i] = (unsigned char)(i * 7 + 1);
    mg_buffer *b = mg_buffer_from_bytes(src, sizeof src);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    CU_ASSERT_TRUE(all_zero(src, sizeof src));
    CU_ASSERT_EQUAL(memcmp(mg_buffer_data(b), ref, sizeof ref), 0);
    CU_ASSERT_FALSE(mg_buffer_is_mutable(b));
    CU_ASSERT_TRUE(mg_buffer_equal(b, ref, sizeof ref));
    mg_buffer_destroy(b);
}

static void test_random_buffers_differ_and_are_frozen(void)
{
    mg_buffer *a = mg_buffer_random(64), *b = mg_buffer_random(64);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    CU_ASSERT_FALSE(mg_buffer_is_mutable(a));
    CU_ASSERT_NOT_EQUAL(memcmp(mg_buffer_data(a), mg_buffer_data(b), 64), 0);
    CU_ASSERT_FALSE(all_zero(mg_buffer_data(a), 64));
    mg_buffer_destroy(a);
    mg_buffer_destroy(b);
}

static void test_copy_and_move_respect_bounds(void)
{
    mg_buffer *b = mg_buffer_new(16);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    unsigned char src[32];
    memset(src, 0xab, sizeof src);
    CU_ASSERT_EQUAL(mg_buffer_copy(b, src, 17), MG_ERANGE);
    CU_ASSERT_EQUAL(mg_buffer_copy_at(b, 10, src, 7), MG_ERANGE);
    CU_ASSERT_EQUAL(mg_buffer_copy_at(b, 17, src, 0), MG_ERANGE);
    CU_ASSERT_EQUAL(mg_buffer_copy_at(b, SIZE_MAX, src, 2), MG_ERANGE);
    CU_ASSERT_EQUAL(mg_buffer_copy_at(b, 2, src, SIZE_MAX), MG_ERANGE);
    CU_ASSERT_EQUAL(mg_buffer_move(b, src, 17), MG_ERANGE);
    CU_ASSERT_EQUAL(src[0], 0xab); /* a refused move leaves the source alone */
    CU_ASSERT_TRUE(all_zero(mg_buffer_data(b), 16));
    CU_ASSERT_EQUAL(mg_buffer_copy(b, NULL, 4), MG_EINVAL);
    CU_ASSERT_EQUAL(mg_buffer_copy(NULL, src, 4), MG_EINVAL);

    CU_ASSERT_EQUAL(mg_buffer_copy_at(b, 10, src, 6), MG_OK);
    unsigned char *d = mg_buffer_data(b);
    CU_ASSERT_EQUAL(d[9], 0);
    CU_ASSERT_EQUAL(d[10], 0xab);
    CU_ASSERT_EQUAL(d[15], 0xab);

    unsigned char m[4] = {1, 2, 3, 4};
    CU_ASSERT_EQUAL(mg_buffer_move_at(b, 0, m, 4), MG_OK);
    CU_ASSERT_TRUE(all_zero(m, 4));
    CU_ASSERT_EQUAL(d[0], 1);
    CU_ASSERT_EQUAL(d[3], 4);
    CU_ASSERT_EQUAL(mg_buffer_copy_at(b, 16, src, 0), MG_OK); /* empty copy at the end */
    mg_buffer_destroy(b);
}

static void test_frozen_buffer_refuses_writes_through_api(void)
{
    mg_buffer *b = mg_buffer_new(8);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    CU_ASSERT_EQUAL(mg_buffer_freeze(b), MG_OK);
    CU_ASSERT_EQUAL(mg_buffer_freeze(b), MG_OK); /* idempotent */
    CU_ASSERT_FALSE(mg_buffer_is_mutable(b));
    unsigned char src[8] = {9, 9, 9, 9, 9, 9, 9, 9};
    CU_ASSERT_EQUAL(mg_buffer_copy(b, src, 8), MG_EFROZEN);
    CU_ASSERT_EQUAL(mg_buffer_move(b, src, 8), MG_EFROZEN);
    CU_ASSERT_EQUAL(src[0], 9);
    mg_buffer_scramble(b);
    CU_ASSERT_EQUAL(mg_last_error(), MG_EFROZEN);
    CU_ASSERT_TRUE(all_zero(mg_buffer_data(b), 8));
    /* "r--p", or "r--s" with the memfd_secret backend */
    mgt_mapping m = mgt_mapping_of(mg_buffer_data(b));
    CU_ASSERT_EQUAL(strncmp(m.perms, "r--", 3), 0);
    CU_ASSERT_EQUAL(mg_buffer_melt(b), MG_OK);
    CU_ASSERT_EQUAL(mg_buffer_copy(b, src, 8), MG_OK);
    m = mgt_mapping_of(mg_buffer_data(b));
    CU_ASSERT_EQUAL(strncmp(m.perms, "rw-", 3), 0);
    mg_buffer_destroy(b);
}

static void test_wipe_zeroes_even_frozen_and_keeps_state(void)
{
    unsigned char src[40];
    memset(src, 0x77, sizeof src);
    mg_buffer *b = mg_buffer_from_bytes(src, sizeof src); /* frozen */
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    mg_buffer_wipe(b);
    CU_ASSERT_TRUE(all_zero(mg_buffer_data(b), 40));
    CU_ASSERT_FALSE(mg_buffer_is_mutable(b));
    CU_ASSERT_EQUAL(strncmp(mgt_mapping_of(mg_buffer_data(b)).perms, "r--", 3), 0);
    mg_buffer_destroy(b);
}

static void test_scramble_changes_contents(void)
{
    mg_buffer *b = mg_buffer_new(64);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    mg_buffer_scramble(b);
    CU_ASSERT_FALSE(all_zero(mg_buffer_data(b), 64));
    mg_buffer_destroy(b);
}

static void test_equal_is_exact(void)
{
    unsigned char v[5] = {1, 2, 3, 4, 5};
    mg_buffer *b = mg_buffer_new(5);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    CU_ASSERT_EQUAL(mg_buffer_copy(b, v, 5), MG_OK);
    CU_ASSERT_TRUE(mg_buffer_equal(b, v, 5));
    CU_ASSERT_FALSE(mg_buffer_equal(b, v, 4));
    v[4] ^= 0x80;
    CU_ASSERT_FALSE(mg_buffer_equal(b, v, 5));
    v[4] ^= 0x80;
    v[0] ^= 1;
    CU_ASSERT_FALSE(mg_buffer_equal(b, v, 5));
    CU_ASSERT_FALSE(mg_buffer_equal(b, NULL, 5));
    CU_ASSERT_FALSE(mg_buffer_equal(NULL, v, 5));
    mg_buffer_destroy(b);
}

static void test_data_is_locked_and_not_dumped(void)
{
    size_t sizes[] = {1, 4096, 3 * 4096 + 5};
    for (size_t i = 0; i < 3; i++) {
        mg_buffer *b = mg_buffer_new(sizes[i]);
        CU_ASSERT_PTR_NOT_NULL_FATAL(b);
        mgt_mapping m = mgt_mapping_of(mg_buffer_data(b));
        CU_ASSERT_TRUE_FATAL(m.found);
        CU_ASSERT_TRUE(mgt_has_vmflag(&m, "dd"));
        if (!MGT_SANITIZED) {
            size_t pages = (sizes[i] + MG_MIN_CANARY + 4095) / 4096;
            CU_ASSERT_TRUE(mgt_has_vmflag(&m, "lo"));
            CU_ASSERT_TRUE(m.locked_kb >= pages * 4);
        }
        /* The guard pages on either side are inaccessible. */
        const unsigned char *d = mg_buffer_data(b);
        mgt_mapping after = mgt_mapping_of(d + sizes[i]);
        CU_ASSERT_TRUE(after.found);
        CU_ASSERT_STRING_EQUAL(after.perms, "---p");
        mg_stats s = mg_get_stats();
        CU_ASSERT_TRUE(s.live_buffers >= 1);
        if (!MGT_SANITIZED)
            CU_ASSERT_TRUE(s.locked_bytes >= sizes[i]);
        mg_buffer_destroy(b);
    }
}

/* The unmap hook sees the inner region (canary + data) just before munmap. */
static bool hook_saw_zero;
static size_t hook_calls;
static void check_zero_hook(const void *inner, size_t len)
{
    hook_calls++;
    hook_saw_zero = all_zero(inner, len);
}

static void test_destroy_wipes_before_unmapping(void)
{
    unsigned char secret[300];
    memset(secret, 0xc3, sizeof secret);
    mg_buffer *b = mg_buffer_from_bytes(secret, sizeof secret); /* frozen: destroy must melt to wipe */
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    hook_calls = 0;
    hook_saw_zero = false;
    mg_test_set_unmap_hook(check_zero_hook);
    mg_buffer_destroy(b);
    mg_test_set_unmap_hook(NULL);
    CU_ASSERT_EQUAL(hook_calls, 1);
    CU_ASSERT_TRUE(hook_saw_zero);
}

static void test_error_text_is_clear(void)
{
    CU_ASSERT_PTR_NULL(mg_buffer_new(0));
    CU_ASSERT_EQUAL(mg_last_error(), MG_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(mg_last_error_message(), "size 0"));
    for (int c = MG_EINIT; c <= MG_OK; c++)
        CU_ASSERT_STRING_NOT_EQUAL(mg_strerror(c), "unknown memguard error");
    CU_ASSERT_STRING_EQUAL(mg_strerror(-999), "unknown memguard error");
}

static void test_core_dumps_disabled_softly_at_init(void)
{
    CU_ASSERT_EQUAL(mg_init(), MG_OK);
    struct rlimit rl;
    CU_ASSERT_EQUAL_FATAL(getrlimit(RLIMIT_CORE, &rl), 0);
    CU_ASSERT_EQUAL(rl.rlim_cur, 0);
    /* The hard limit is left alone, so the soft one can be raised again. */
    if (rl.rlim_max > 0) {
        struct rlimit up = {rl.rlim_max < 4096 ? rl.rlim_max : 4096, rl.rlim_max};
        CU_ASSERT_EQUAL(setrlimit(RLIMIT_CORE, &up), 0);
        struct rlimit zero = {0, rl.rlim_max};
        CU_ASSERT_EQUAL(setrlimit(RLIMIT_CORE, &zero), 0);
    }
}

static void do_nondumpable(void *arg)
{
    (void)arg;
    if (prctl(PR_GET_DUMPABLE) != 1)
        _exit(3);
    if (mg_set_nondumpable() != MG_OK)
        _exit(4);
    _exit(prctl(PR_GET_DUMPABLE) == 0 ? 0 : 5);
}

static void test_nondumpable_is_opt_in(void)
{
    CU_ASSERT_EQUAL(prctl(PR_GET_DUMPABLE), 1); /* using the library did not change it */
    CU_ASSERT_TRUE(mgt_exited_ok(mgt_run_child(do_nondumpable, NULL, NULL, 0)));
}

/* MEMGUARD_BACKEND=secretmem selects memfd_secret where it works and falls back cleanly where not. */
static void test_backend_is_selected_or_falls_back_cleanly(void)
{
    const char *env = getenv("MEMGUARD_BACKEND");
    bool want_secret = env != NULL && strcmp(env, "secretmem") == 0;
    mg_backend active = mg_get_backend();
    int rc = mg_set_backend(MG_BACKEND_SECRETMEM);
    bool available = rc == MG_OK;
    if (!available) {
        CU_ASSERT_EQUAL(rc, MG_ENOTSUP);
        CU_ASSERT_PTR_NOT_NULL(strstr(mg_last_error_message(), "memfd_secret unavailable"));
        CU_ASSERT_EQUAL(mg_get_backend(), MG_BACKEND_ANON);
    }
    printf("\n    memfd_secret %s here; active backend: %s\n", available ? "works" : "is unavailable",
           mg_backend_name(active));
    CU_ASSERT_EQUAL(active, want_secret && available ? MG_BACKEND_SECRETMEM : MG_BACKEND_ANON);
    if (available) {
        /* Secret memory: not even this process can read it through /proc/self/mem. */
        mg_buffer *b = mg_buffer_new(10);
        CU_ASSERT_PTR_NOT_NULL_FATAL(b);
        CU_ASSERT_EQUAL(mg_buffer_copy(b, "0123456789", 10), MG_OK);
        int fd = open("/proc/self/mem", O_RDONLY);
        CU_ASSERT_FATAL(fd >= 0);
        char got[10];
        errno = 0;
        CU_ASSERT_EQUAL(pread(fd, got, 10, (off_t)(uintptr_t)mg_buffer_data(b)), -1);
        CU_ASSERT_EQUAL(errno, EIO);
        close(fd);
        CU_ASSERT_TRUE(mg_buffer_equal(b, "0123456789", 10));
        mgt_mapping m = mgt_mapping_of(mg_buffer_data(b));
        CU_ASSERT_TRUE(mgt_has_vmflag(&m, "lo"));
        CU_ASSERT_TRUE(mgt_has_vmflag(&m, "dd"));
        mg_buffer_destroy(b);
    }
    CU_ASSERT_EQUAL(mg_set_backend(active), MG_OK);
    CU_ASSERT_EQUAL(mg_set_backend((mg_backend)7), MG_EINVAL);
}

static CU_TestInfo buffer_tests[] = {
    {"new buffer is zeroed, mutable, sized, end-aligned", test_new_buffer_is_zeroed_mutable_and_sized},
    {"bad sizes fail cleanly", test_bad_sizes_fail_cleanly},
    {"from_bytes copies, wipes the source, freezes", test_from_bytes_copies_wipes_source_and_freezes},
    {"random buffers differ and are frozen", test_random_buffers_differ_and_are_frozen},
    {"copy and move respect bounds", test_copy_and_move_respect_bounds},
    {"frozen buffer refuses writes through the API", test_frozen_buffer_refuses_writes_through_api},
    {"wipe zeroes even a frozen buffer", test_wipe_zeroes_even_frozen_and_keeps_state},
    {"scramble changes contents", test_scramble_changes_contents},
    {"equal is exact", test_equal_is_exact},
    {"data is locked and not dumped; guards inaccessible", test_data_is_locked_and_not_dumped},
    {"destroy wipes before unmapping", test_destroy_wipes_before_unmapping},
    {"error text is clear", test_error_text_is_clear},
    {"core dumps disabled (soft limit) at init", test_core_dumps_disabled_softly_at_init},
    {"non-dumpable is opt-in", test_nondumpable_is_opt_in},
    {"backend is selected or falls back cleanly", test_backend_is_selected_or_falls_back_cleanly},
    CU_TEST_INFO_NULL,
};

int main(void)
{
    CU_SuiteInfo suites[] = {
        {"buffer", NULL, NULL, NULL, NULL, buffer_tests},
        CU_SUITE_INFO_NULL,
    };
    return mgt_main(suites);
}
