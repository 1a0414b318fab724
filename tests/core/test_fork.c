/* fork(): children keep working with what the parent sealed, with memory and key parts of their own. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <memguard/memguard.h>

#include "harness.h"
#include "internal.h"

static const unsigned char plain[24] = "the parent's sealed key";

static int matches(const void *data, size_t n, void *arg)
{
    (void)arg;
    return n == sizeof plain && memcmp(data, plain, n) == 0;
}

struct child_args {
    const mg_enclave *e;
    mg_buffer *held;             /* a buffer the parent allocated before fork */
    unsigned char parent_parts[64];
};

/* Exit codes say which property failed. */
static void child_body(void *arg)
{
    struct child_args *a = arg;
    if (mg_enclave_with(a->e, matches, NULL) != 1)
        _exit(10);
    mg_buffer *b = mg_enclave_open(a->e);
    if (b == NULL || !mg_buffer_equal(b, plain, sizeof plain))
        _exit(11);
    mg_buffer_destroy(b);
    /* Memory locked in the parent is locked again here (mlock is not inherited). */
    if (!MGT_SANITIZED) {
        mgt_mapping m = mgt_mapping_of(mg_buffer_data(a->held));
        if (!m.found || m.locked_kb == 0)
            _exit(12);
    }
    /* New enclaves work in the child too. */
    unsigned char v[4] = {1, 2, 3, 4};
    mg_enclave *mine = mg_enclave_new(v, 4);
    if (mine == NULL)
        _exit(13);
    mg_enclave_free(mine);
    _exit(0);
}

static atomic_bool stop_rekey;
static void *rekeyer(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop_rekey)) {
        (void)mg_rekey();
        usleep(50);
    }
    return NULL;
}

static void test_fork_then_open_in_child_100_times_while_parent_rekeys(void)
{
    unsigned char src[sizeof plain];
    memcpy(src, plain, sizeof src);
    struct child_args a = {mg_enclave_new(src, sizeof src), mg_buffer_new(100), {0}};
    CU_ASSERT_PTR_NOT_NULL_FATAL(a.e);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a.held);
    CU_ASSERT_EQUAL(mg_set_rekey_interval(1), MG_OK);
    pthread_t t;
    CU_ASSERT_FATAL(pthread_create(&t, NULL, rekeyer, NULL) == 0);
    int runs = getenv("MGT_UNDER_VALGRIND") != NULL ? 20 : 100;
    int failures = 0;
    for (int i = 0; i < runs; i++) {
        int status = mgt_run_child(child_body, &a, NULL, 0);
        if (!mgt_exited_ok(status)) {
            if (failures++ < 3)
                fprintf(stderr, "child %d: %s\n", i, mgt_describe(status));
        }
    }
    atomic_store(&stop_rekey, true);
    pthread_join(t, NULL);
    CU_ASSERT_EQUAL(mg_set_rekey_interval(500), MG_OK);
    CU_ASSERT_EQUAL(failures, 0);
    /* The parent is unaffected. */
    CU_ASSERT_EQUAL(mg_enclave_with(a.e, matches, NULL), 1);
    mg_buffer_destroy(a.held);
    mg_enclave_free((mg_enclave *)(uintptr_t)a.e);
}

static void child_parts(void *arg)
{
    struct child_args *a = arg;
    unsigned char mine[64];
    mg_test_coffer_parts(mine);
    /* Same key (enclaves open), different stored bits in both halves. */
    bool differs = memcmp(mine, a->parent_parts, 32) != 0 && memcmp(mine + 32, a->parent_parts + 32, 32) != 0;
    _exit(differs && mg_enclave_with(a->e, matches, NULL) == 1 ? 0 : 20);
}

static void test_child_gets_coffer_parts_of_its_own(void)
{
    unsigned char src[sizeof plain];
    memcpy(src, plain, sizeof src);
    struct child_args a = {mg_enclave_new(src, sizeof src), NULL, {0}};
    CU_ASSERT_PTR_NOT_NULL_FATAL(a.e);
    CU_ASSERT_EQUAL(mg_set_rekey_interval(0), MG_OK); /* hold the parent's parts still */
    mg_test_coffer_parts(a.parent_parts);
    int status = mgt_run_child(child_parts, &a, NULL, 0);
    CU_ASSERT_TRUE(mgt_exited_ok(status));
    unsigned char now[64];
    mg_test_coffer_parts(now);
    CU_ASSERT_EQUAL(memcmp(now, a.parent_parts, 64), 0); /* the child's re-key did not touch ours */
    CU_ASSERT_EQUAL(mg_set_rekey_interval(500), MG_OK);
    mg_enclave_free((mg_enclave *)(uintptr_t)a.e);
}

struct busy {
    mg_buffer *b;
    atomic_bool stop;
};

static void *hammer(void *arg)
{
    struct busy *bz = arg;
    unsigned char v[16] = {0};
    while (!atomic_load(&bz->stop)) {
        (void)mg_buffer_copy(bz->b, v, sizeof v);
        v[0]++;
        mg_enclave *e = mg_enclave_random(32);
        mg_enclave_free(e);
    }
    return NULL;
}

static void child_uses_everything(void *arg)
{
    struct busy *bz = arg;
    unsigned char v[16] = {7};
    if (mg_buffer_copy(bz->b, v, sizeof v) != MG_OK || !mg_buffer_equal(bz->b, v, sizeof v))
        _exit(30);
    mg_enclave *e = mg_enclave_random(64);
    mg_buffer *o = e != NULL ? mg_enclave_open(e) : NULL;
    if (o == NULL)
        _exit(31);
    mg_buffer_destroy(o);
    mg_enclave_free(e);
    mg_purge();
    fputs("child-ok\n", stderr);
    _exit(0);
}

/*
 * Under valgrind the child's exit runs a leak check, which counts what the
 * parent's other threads had allocated at the moment of fork (those threads
 * do not exist in the child) as lost and exits 97. There, success is the
 * child's own word.
 */
static bool child_succeeded(int status, const char *err)
{
    if (mgt_exited_ok(status))
        return strstr(err, "child-ok") != NULL;
    return getenv("MGT_UNDER_VALGRIND") != NULL && WIFEXITED(status) && WEXITSTATUS(status) == 97 &&
           strstr(err, "child-ok") != NULL;
}

/* Forking while other threads hold the library's locks must not deadlock the child. */
static void test_fork_while_threads_use_the_library(void)
{
    struct busy bz = {mg_buffer_new(16), false};
    CU_ASSERT_PTR_NOT_NULL_FATAL(bz.b);
    pthread_t t[3];
    for (int i = 0; i < 3; i++)
        CU_ASSERT_FATAL(pthread_create(&t[i], NULL, hammer, &bz) == 0);
    int bad = 0, runs = getenv("MGT_UNDER_VALGRIND") != NULL ? 10 : 50;
    for (int i = 0; i < runs; i++) {
        char err[256];
        int status = mgt_run_child(child_uses_everything, &bz, err, sizeof err);
        if (!child_succeeded(status, err) && bad++ < 3)
            fprintf(stderr, "child %d: %s\n", i, mgt_describe(status));
    }
    atomic_store(&bz.stop, true);
    for (int i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT_TRUE(mg_buffer_is_alive(bz.b)); /* the children's purges did not reach us */
    mg_buffer_destroy(bz.b);
}

static CU_TestInfo fork_tests[] = {
    {"fork then open in the child, 100 times, while the parent re-keys",
     test_fork_then_open_in_child_100_times_while_parent_rekeys},
    {"the child gets coffer parts of its own", test_child_gets_coffer_parts_of_its_own},
    {"fork while threads use the library", test_fork_while_threads_use_the_library},
    CU_TEST_INFO_NULL,
};

int main(void)
{
    CU_SuiteInfo suites[] = {
        {"fork", NULL, NULL, NULL, NULL, fork_tests},
        CU_SUITE_INFO_NULL,
    };
    return mgt_main(suites);
}
