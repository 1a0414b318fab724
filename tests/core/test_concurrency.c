/* Several threads create, use and destroy buffers while another purges. */
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <memguard/memguard.h>

#include "harness.h"

#define WORKERS 6

static atomic_bool stop;
static atomic_size_t ops, dead_seen, wrong;

static int iterations(void)
{
    return getenv("MGT_UNDER_VALGRIND") != NULL ? 300 : 4000;
}

static void *worker(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg * 2654435761u;
    int n = iterations();
    for (int i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        size_t size = 1 + (seed >> 8) % 9000;
        unsigned char pattern[64];
        memset(pattern, (int)(seed >> 24), sizeof pattern);
        mg_buffer *b = mg_buffer_new(size);
        if (b == NULL) {
            atomic_fetch_add(&wrong, 1);
            continue;
        }
        size_t len = size < sizeof pattern ? size : sizeof pattern;
        /* Every operation either works or reports the purge; nothing else is acceptable. */
        int rc = MG_OK;
        for (int round = 0; round < 8 && rc == MG_OK; round++)
            rc = mg_buffer_copy(b, pattern, len);
        if (rc == MG_OK) {
            bool eq = mg_buffer_equal(b, pattern, len) || len != size;
            if (!eq && mg_buffer_is_alive(b))
                atomic_fetch_add(&wrong, 1);
            rc = mg_buffer_freeze(b);
            if (rc == MG_OK && mg_buffer_copy(b, pattern, 1) != MG_EFROZEN && mg_buffer_is_alive(b))
                atomic_fetch_add(&wrong, 1);
        }
        if (rc == MG_EDEAD)
            atomic_fetch_add(&dead_seen, 1);
        else if (rc != MG_OK)
            atomic_fetch_add(&wrong, 1);
        mg_buffer_wipe(b);
        mg_buffer_destroy(b);
        atomic_fetch_add(&ops, 1);
    }
    return NULL;
}

static void *purger(void *arg)
{
    (void)arg;
    size_t purges = 0;
    while (!atomic_load(&stop)) {
        mg_purge();
        purges++;
        sched_yield();
    }
    return (void *)purges;
}

static void test_threads_create_use_destroy_while_purging(void)
{
    pthread_t w[WORKERS], p;
    CU_ASSERT_FATAL(pthread_create(&p, NULL, purger, NULL) == 0);
    for (uintptr_t i = 0; i < WORKERS; i++)
        CU_ASSERT_FATAL(pthread_create(&w[i], NULL, worker, (void *)(i + 1)) == 0);
    for (int i = 0; i < WORKERS; i++)
        pthread_join(w[i], NULL);
    atomic_store(&stop, true);
    void *purges;
    pthread_join(p, &purges);
    printf("\n    %zu buffers, %zu purges, %zu operations saw a purge\n", atomic_load(&ops), (size_t)purges,
           atomic_load(&dead_seen));
    CU_ASSERT_EQUAL(atomic_load(&ops), (size_t)WORKERS * (size_t)iterations());
    CU_ASSERT_EQUAL(atomic_load(&wrong), 0);
    CU_ASSERT_TRUE((size_t)purges > 0);
    mg_stats s = mg_get_stats();
    CU_ASSERT_EQUAL(s.live_buffers, 0);
    CU_ASSERT_EQUAL(s.dead_handles, 0);
    CU_ASSERT_EQUAL(s.locked_bytes, 0);
}

static void *shared_user(void *arg)
{
    mg_buffer *b = arg;
    unsigned char v[16];
    for (int i = 0; i < iterations(); i++) {
        memset(v, i & 0xff, sizeof v);
        if (mg_buffer_melt(b) == MG_OK && mg_buffer_copy(b, v, sizeof v) == MG_OK)
            (void)mg_buffer_equal(b, v, sizeof v);
        (void)mg_buffer_freeze(b);
    }
    return NULL;
}

static void test_threads_sharing_one_buffer_stay_consistent(void)
{
    mg_buffer *b = mg_buffer_new(16);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        CU_ASSERT_FATAL(pthread_create(&t[i], NULL, shared_user, b) == 0);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    CU_ASSERT_TRUE(mg_buffer_is_alive(b));
    CU_ASSERT_FALSE(mg_buffer_is_mutable(b));
    mg_buffer_destroy(b);
}

static CU_TestInfo concurrency_tests[] = {
    {"threads create, use, destroy while another purges", test_threads_create_use_destroy_while_purging},
    {"threads sharing one buffer stay consistent", test_threads_sharing_one_buffer_stay_consistent},
    CU_TEST_INFO_NULL,
};

int main(void)
{
    CU_SuiteInfo suites[] = {
        {"concurrency", NULL, NULL, NULL, NULL, concurrency_tests},
        CU_SUITE_INFO_NULL,
    };
    return mgt_main(suites);
}
