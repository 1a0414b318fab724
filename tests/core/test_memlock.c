/*
 * Locked-memory pressure (issue 11): once an enclave's needs are reserved (mg_enclave_reserve),
 * mg_enclave_with on it never fails for lack of locked memory, whatever RLIMIT_MEMLOCK leaves:
 * threads without scratch of their own wait for the shared reserve. New allocations still fail,
 * with a message that names the limit and how much more was needed.
 *
 * The limited tests run in a forked child that lowers RLIMIT_MEMLOCK (soft and hard) and, when
 * run as root, becomes nobody so that CAP_IPC_LOCK no longer bypasses the limit. They need a real
 * mlock, which ASan replaces by a no-op: under sanitizers only the tests driven by the test hook
 * (a thread without scratch of its own, as pressure leaves it) are built.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <memguard/memguard.h>

#include "harness.h"
#include "internal.h"

#define THREADS 8
#define ROUNDS 400
#define SECRET_LEN 32

static unsigned char secret[SECRET_LEN];

static void fill_secret(void)
{
    for (size_t i = 0; i < sizeof secret; i++)
        secret[i] = (unsigned char)(0xa5 ^ (i * 7));
}

static int check_plain(const void *data, size_t n, void *arg)
{
    (void)arg;
    return n == sizeof secret && memcmp(data, secret, n) == 0 ? 1 : 0;
}

/* An enclave holding `secret`; exits the child with code on failure. */
static mg_enclave *seal_secret(int code)
{
    unsigned char copy[SECRET_LEN];
    memcpy(copy, secret, sizeof copy);
    mg_enclave *e = mg_enclave_new(copy, sizeof copy);
    if (e == NULL)
        _exit(code);
    return e;
}

static void reserve_stats(unsigned long long *uses, unsigned long long *waits, unsigned *waiting, size_t *cap)
{
    mg_test_scratch_reserve_stats(uses, waits, waiting, cap);
}

/* ---- waiting and nesting, driven by the test hook (every build) ---- */

struct waiter {
    const mg_enclave *e;
    int rc;
    _Atomic int done;
};

static void *waiter_main(void *arg)
{
    struct waiter *w = arg;
    mg_test_scratch_no_own(true); /* as if RLIMIT_MEMLOCK left this thread nothing */
    w->rc = mg_enclave_with(w->e, check_plain, NULL);
    atomic_store(&w->done, 1);
    return NULL;
}

struct holder {
    const mg_enclave *e;
    struct waiter w;
    pthread_t t;
    int nested_rc;
    char nested_msg[512];
    bool saw_waiting;
    bool waiter_done_early;
};

/* Runs holding the reserve: start a second thread, see it wait, try a nested call, then let go. */
static int while_holding(const void *data, size_t n, void *arg)
{
    struct holder *h = arg;
    if (check_plain(data, n, NULL) != 1)
        return -100;
    h->w = (struct waiter){h->e, 0, 0};
    if (pthread_create(&h->t, NULL, waiter_main, &h->w) != 0)
        return -101;
    /* Until the second thread is inside the wait (bounded: 20 s, then the test fails). */
    for (int i = 0; i < 20000 && !h->saw_waiting; i++) {
        unsigned long long uses, waits;
        unsigned waiting;
        size_t cap;
        reserve_stats(&uses, &waits, &waiting, &cap);
        h->saw_waiting = waiting == 1;
        if (!h->saw_waiting)
            nanosleep(&(struct timespec){0, 1000000}, NULL);
    }
    h->waiter_done_early = atomic_load(&h->w.done) != 0;
    /* Nested use on this thread, which holds the reserve and can lock nothing else: an error, not a deadlock. */
    h->nested_rc = mg_enclave_with(h->e, check_plain, NULL);
    snprintf(h->nested_msg, sizeof h->nested_msg, "%s", mg_last_error_message());
    return 1;
}

static void do_wait_and_nest(void *arg)
{
    (void)arg;
    fill_secret();
    mg_enclave *e = seal_secret(10);
    if (mg_enclave_reserve(e, 0) != MG_OK)
        _exit(11);
    mg_test_scratch_no_own(true);
    struct holder h = {.e = e};
    unsigned long long uses0, waits0, uses1, waits1;
    unsigned waiting;
    size_t cap;
    reserve_stats(&uses0, &waits0, &waiting, &cap);
    int rc = mg_enclave_with(e, while_holding, &h);
    if (rc != 1) {
        fprintf(stderr, "holder: %d (%s)\n", rc, mg_last_error_message());
        _exit(12);
    }
    if (pthread_join(h.t, NULL) != 0)
        _exit(13);
    if (!h.saw_waiting || h.waiter_done_early) {
        fprintf(stderr, "second thread did not wait (waiting seen %d, done early %d)\n", h.saw_waiting,
                h.waiter_done_early);
        _exit(14);
    }
    if (h.w.rc != 1) {
        fprintf(stderr, "the waiting thread failed: %d\n", h.w.rc);
        _exit(15);
    }
    if (h.nested_rc != MG_EMLOCK || strstr(h.nested_msg, "already holds the shared reserve") == NULL) {
        fprintf(stderr, "nested: %d (%s)\n", h.nested_rc, h.nested_msg);
        _exit(16);
    }
    reserve_stats(&uses1, &waits1, &waiting, &cap);
    /* Holder and waiter both went through the reserve; exactly one of them waited. */
    if (uses1 - uses0 != 2 || waits1 - waits0 != 1 || waiting != 0) {
        fprintf(stderr, "reserve uses %llu waits %llu waiting %u\n", uses1 - uses0, waits1 - waits0, waiting);
        _exit(17);
    }
    mg_enclave_free(e);
    _exit(0);
}

static void test_a_thread_waits_for_the_reserve_and_nesting_is_an_error(void)
{
    char err[2048];
    int status = mgt_run_child(do_wait_and_nest, NULL, err, sizeof err);
    if (!mgt_exited_ok(status))
        fprintf(stderr, "child: %s; stderr: %s\n", mgt_describe(status), err);
    CU_ASSERT_TRUE(mgt_exited_ok(status));
}

/* Without a reservation, a thread that can get no scratch fails (the hook's control case). */
static void do_unreserved_fails(void *arg)
{
    (void)arg;
    fill_secret();
    mg_enclave *e = seal_secret(10);
    mg_test_scratch_no_own(true);
    if (mg_enclave_with(e, check_plain, NULL) >= 0)
        _exit(11);
    if (mg_enclave_reserve(e, 0) != MG_OK)
        _exit(12);
    if (mg_enclave_with(e, check_plain, NULL) != 1)
        _exit(13);
    _exit(0);
}

static void test_without_a_reservation_the_same_thread_fails(void)
{
    int status = mgt_run_child(do_unreserved_fails, NULL, NULL, 0);
    if (!mgt_exited_ok(status))
        fprintf(stderr, "child: %s\n", mgt_describe(status));
    CU_ASSERT_TRUE(mgt_exited_ok(status));
}

/* The reserve grows to the largest request reserved, and serves a workspace of that size. */
static int use_workspace(const void *data, size_t n, unsigned char *work, void *arg)
{
    size_t extra = *(size_t *)arg;
    if (check_plain(data, n, NULL) != 1)
        return -100;
    for (size_t i = 0; i < extra; i++)
        if (work[i] != 0)
            return -101; /* the reserve is wiped between uses */
    memset(work, 0x3c, extra);
    return 1;
}

static void do_grow(void *arg)
{
    (void)arg;
    fill_secret();
    mg_enclave *e = seal_secret(10);
    unsigned long long uses, waits;
    unsigned waiting;
    size_t cap0, cap1, cap2;
    if (mg_enclave_reserve(e, 0) != MG_OK)
        _exit(11);
    reserve_stats(&uses, &waits, &waiting, &cap0);
    size_t extra = 20000; /* larger than a thread's own area: only the reserve can serve it here */
    mg_test_scratch_no_own(true);
    if (mg_enclave_with_workspace(e, extra, use_workspace, &extra) >= 0)
        _exit(12); /* not reserved yet */
    if (mg_enclave_reserve(e, extra) != MG_OK)
        _exit(13);
    reserve_stats(&uses, &waits, &waiting, &cap1);
    if (mg_enclave_reserve(e, 100) != MG_OK) /* smaller: the reserve stays */
        _exit(14);
    reserve_stats(&uses, &waits, &waiting, &cap2);
    if (cap0 == 0 || cap1 < extra + SECRET_LEN || cap2 != cap1) {
        fprintf(stderr, "caps %zu %zu %zu\n", cap0, cap1, cap2);
        _exit(15);
    }
    for (int i = 0; i < 3; i++)
        if (mg_enclave_with_workspace(e, extra, use_workspace, &extra) != 1)
            _exit(16);
    mg_enclave_free(e);
    _exit(0);
}

static void test_the_reserve_grows_to_the_largest_request(void)
{
    char err[1024];
    int status = mgt_run_child(do_grow, NULL, err, sizeof err);
    if (!mgt_exited_ok(status))
        fprintf(stderr, "child: %s; stderr: %s\n", mgt_describe(status), err);
    CU_ASSERT_TRUE(mgt_exited_ok(status));
}

#if !MGT_SANITIZED
/* ---- real RLIMIT_MEMLOCK pressure ---- */

#define LIMIT_KIB 48

/* Lower both limits, then (as root) become nobody: root's CAP_IPC_LOCK ignores RLIMIT_MEMLOCK. */
static void become_limited(void)
{
    struct rlimit rl = {LIMIT_KIB * 1024, LIMIT_KIB * 1024};
    if (setrlimit(RLIMIT_MEMLOCK, &rl) != 0)
        _exit(90);
    if (geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0))
        _exit(91);
    if (geteuid() == 0)
        _exit(92);
}

/* Lock every page the limit still allows with small buffers; returns how many. */
static size_t exhaust(mg_buffer **held, size_t cap)
{
    size_t n = 0;
    for (;;) {
        mg_buffer *b = mg_buffer_new(100);
        if (b == NULL)
            break;
        if (n == cap)
            _exit(93); /* the limit is not enforced */
        held[n++] = b;
    }
    if (mg_last_error() != MG_EMLOCK)
        _exit(94);
    return n;
}

struct worker {
    const mg_enclave *e;
    int ok, failed;
    int first_error;
    char message[512];
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    for (int i = 0; i < ROUNDS; i++) {
        int rc = mg_enclave_with(w->e, check_plain, NULL);
        if (rc == 1) {
            w->ok++;
        } else {
            if (w->failed++ == 0) {
                w->first_error = rc;
                snprintf(w->message, sizeof w->message, "%s", mg_last_error_message());
            }
        }
    }
    return NULL;
}

static void do_threads_under_pressure(void *arg)
{
    bool reserve = *(bool *)arg;
    fill_secret();
    become_limited();
    mg_enclave *e = seal_secret(10);
    if (reserve && mg_enclave_reserve(e, 0) != MG_OK) {
        fprintf(stderr, "reserve: %s\n", mg_last_error_message());
        _exit(11);
    }
    mg_buffer *held[LIMIT_KIB];
    size_t n = exhaust(held, LIMIT_KIB);
    unsigned long long uses0, waits0, uses1, waits1;
    unsigned waiting;
    size_t cap;
    reserve_stats(&uses0, &waits0, &waiting, &cap);
    struct worker w[THREADS];
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++) {
        w[i] = (struct worker){.e = e};
        if (pthread_create(&t[i], NULL, worker_main, &w[i]) != 0)
            _exit(12);
    }
    int ok = 0, failed = 0;
    for (int i = 0; i < THREADS; i++) {
        if (pthread_join(t[i], NULL) != 0)
            _exit(13);
        ok += w[i].ok;
        failed += w[i].failed;
    }
    reserve_stats(&uses1, &waits1, &waiting, &cap);
    fprintf(stderr, "%d of %d operations succeeded, %d failed; reserve used %llu times, waited for %llu times\n",
            ok, THREADS * ROUNDS, failed, uses1 - uses0, waits1 - waits0);
    for (int i = 0; i < THREADS; i++)
        if (w[i].failed > 0) {
            fprintf(stderr, "first failure: %d: %s\n", w[i].first_error, w[i].message);
            break;
        }
    if (failed != 0 || ok != THREADS * ROUNDS)
        _exit(14);
    /* The worker threads could lock nothing of their own: they all went through the reserve. */
    if (uses1 - uses0 < (unsigned long long)THREADS * ROUNDS)
        _exit(15);
    /* Meanwhile a new allocation still fails, cleanly. */
    if (mg_buffer_new(100) != NULL || mg_last_error() != MG_EMLOCK)
        _exit(16);
    for (size_t i = 0; i < n; i++)
        mg_buffer_destroy(held[i]);
    mg_enclave_free(e);
    _exit(0);
}

static void test_eight_threads_on_a_reserved_enclave_never_fail(void)
{
    char err[4096];
    bool reserve = true;
    int status = mgt_run_child(do_threads_under_pressure, &reserve, err, sizeof err);
    if (!mgt_exited_ok(status))
        fprintf(stderr, "child: %s; stderr: %s\n", mgt_describe(status), err);
    else
        printf("\n    %s", err);
    CU_ASSERT_TRUE(mgt_exited_ok(status));
}

/* The control: the same run without a reservation fails (so the test above measures the reserve). */
static void test_without_the_reservation_threads_fail(void)
{
    char err[4096];
    bool reserve = false;
    int status = mgt_run_child(do_threads_under_pressure, &reserve, err, sizeof err);
    CU_ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 14);
    if (!(WIFEXITED(status) && WEXITSTATUS(status) == 14))
        fprintf(stderr, "child: %s; stderr: %s\n", mgt_describe(status), err);
}

/* The message: which limit (soft and hard, KiB), what memguard holds, how much more was needed. */
static void do_message(void *arg)
{
    (void)arg;
    fill_secret();
    become_limited();
    mg_enclave *e = seal_secret(10);
    mg_buffer *held[LIMIT_KIB];
    size_t n = exhaust(held, LIMIT_KIB);
    char want[256];
    size_t locked_kib = (mg_get_stats().locked_bytes + 1023) / 1024;
    const char *msg = mg_last_error_message();
    snprintf(want, sizeof want,
             "RLIMIT_MEMLOCK is %d KiB (hard %d KiB); %zu KiB already locked by memguard, 4 KiB more needed", LIMIT_KIB,
             LIMIT_KIB, locked_kib);
    if (strstr(msg, want) == NULL || strstr(msg, "LimitMEMLOCK=") == NULL || strstr(msg, "ulimit -l") == NULL) {
        fprintf(stderr, "message: %s\nwanted: %s\n", msg, want);
        _exit(11);
    }
    /* A reservation that cannot be locked fails the same way, with its own size: 20 KiB for 20000 bytes. */
    if (mg_enclave_reserve(e, 20000) != MG_EMLOCK)
        _exit(12);
    msg = mg_last_error_message();
    snprintf(want, sizeof want, "already locked by memguard, 20 KiB more needed");
    if (strstr(msg, "RLIMIT_MEMLOCK is 48 KiB (hard 48 KiB)") == NULL || strstr(msg, want) == NULL) {
        fprintf(stderr, "reserve message: %s\n", msg);
        _exit(13);
    }
    fprintf(stderr, "%s\n", msg);
    for (size_t i = 0; i < n; i++)
        mg_buffer_destroy(held[i]);
    mg_enclave_free(e);
    _exit(0);
}

static void test_the_error_names_the_limit_and_what_is_needed(void)
{
    char err[2048];
    int status = mgt_run_child(do_message, NULL, err, sizeof err);
    if (!mgt_exited_ok(status))
        fprintf(stderr, "child: %s; stderr: %s\n", mgt_describe(status), err);
    else
        printf("\n    %s", err);
    CU_ASSERT_TRUE(mgt_exited_ok(status));
}
#endif

static CU_TestInfo memlock_tests[] = {
    {"a thread waits for the reserve; nesting is an error",
     test_a_thread_waits_for_the_reserve_and_nesting_is_an_error},
    {"without a reservation the same thread fails", test_without_a_reservation_the_same_thread_fails},
    {"the reserve grows to the largest request", test_the_reserve_grows_to_the_largest_request},
#if !MGT_SANITIZED
    {"8 threads on a reserved enclave never fail", test_eight_threads_on_a_reserved_enclave_never_fail},
    {"without the reservation threads fail", test_without_the_reservation_threads_fail},
    {"the error names the limit and what is needed", test_the_error_names_the_limit_and_what_is_needed},
#endif
    CU_TEST_INFO_NULL,
};

int main(void)
{
    CU_SuiteInfo suites[] = {
        {"memlock", NULL, NULL, NULL, NULL, memlock_tests},
        CU_SUITE_INFO_NULL,
    };
    return mgt_main(suites);
}
