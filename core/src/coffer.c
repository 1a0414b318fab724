/*
 * The coffer: the process's 32-byte sealing key, never stored whole.
 *
 *   key = BLAKE2b-256(right) XOR left
 *
 * left and right live in one library-owned guarded buffer. Re-keying draws a
 * random r and sets right' = right ^ r, left' = left ^ H(right) ^ H(right'):
 * the key is unchanged but every stored bit is new, so a slow or partial read
 * of memory (Rowhammer/RAMBleed-style, or a cold-boot image with bit errors
 * taken across re-keys) goes stale.
 *
 * Readers (every seal/open) never take a lock: they copy the parts under a
 * sequence counter and retry if a re-key overlapped. Only writers (re-key,
 * new key on purge, fork) serialise on a mutex. So seal/open scale across
 * threads and a re-key stalls them for at most one retry.
 *
 * Re-keying runs on a timer thread every interval (500 ms by default). Why a
 * thread and not only lazily on use: a lazily re-keyed coffer stands still
 * while the process is idle, which is when a slow reader has the most time.
 * The thread costs one wake-up per interval (about 3 us of CPU: 32 random
 * bytes and two BLAKE2b) and is started on first use, so processes that never
 * seal pay nothing. After fork() the child restarts it on first use; until
 * then, and if the thread cannot be created, seal/open re-key inline once the
 * interval has passed twice.
 */
#include <errno.h>
#include <signal.h>
#include <sodium.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "memcall.h"

struct parts {
    _Atomic uint64_t left[4];
    _Atomic uint64_t right[4];
};

enum { THREAD_NONE, THREAD_RUNNING, THREAD_FAILED };

static pthread_mutex_t writer = PTHREAD_MUTEX_INITIALIZER;
static _Atomic(struct parts *) parts;
static unsigned char *wtmp; /* writer's guarded scratch: 128 bytes */
static _Atomic unsigned seq;
static _Atomic unsigned long long last_rekey_ns;
static _Atomic unsigned long long rekey_count;
static _Atomic unsigned interval_ms = 500;
static _Atomic bool retired; /* destroyed on the way out: no more seal/open */

static pthread_mutex_t timer_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t timer_cond;
static bool timer_stop;
static _Atomic int thread_state = THREAD_NONE;
static pthread_t timer_thread;
static pid_t timer_pid;

/* BLAKE2b keeps its state on the stack: overwrite that region after hashing. */
__attribute__((noinline)) static void burn_stack(void)
{
    unsigned char pad[1024];
    mg_wipe(pad, sizeof pad); /* explicit_bzero: a barrier the compiler cannot drop */
}

static void hash32(unsigned char out[32], const unsigned char in[32])
{
    crypto_generichash(out, 32, in, 32, NULL, 0);
    burn_stack();
}

static void load_words(unsigned char *dst, _Atomic uint64_t *src)
{
    for (int i = 0; i < 4; i++) {
        uint64_t w = atomic_load_explicit(&src[i], memory_order_relaxed);
        memcpy(dst + 8 * i, &w, 8);
    }
}

static void store_words(_Atomic uint64_t *dst, const unsigned char *src)
{
    for (int i = 0; i < 4; i++) {
        uint64_t w;
        memcpy(&w, src + 8 * i, 8);
        atomic_store_explicit(&dst[i], w, memory_order_relaxed);
        mg_wipe(&w, sizeof w);
    }
}

/* Writer side of the sequence lock (writer mutex held). */
static void write_begin(void)
{
    unsigned s = atomic_load_explicit(&seq, memory_order_relaxed);
    atomic_store_explicit(&seq, s + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
}

static void write_end(void)
{
    unsigned s = atomic_load_explicit(&seq, memory_order_relaxed);
    atomic_store_explicit(&seq, s + 1, memory_order_release);
    atomic_store(&last_rekey_ns, mg_os_now_ns());
}

/* A fresh random key (writer mutex held). */
static int new_key_locked(struct parts *p)
{
    int rc = mg_os_random(wtmp, 64);
    if (rc != 0)
        return rc;
    write_begin();
    store_words(p->left, wtmp);
    store_words(p->right, wtmp + 32);
    write_end();
    mg_wipe(wtmp, 64);
    return 0;
}

/* Re-mask the parts; the key stays the same (writer mutex held). */
static int rekey_locked(struct parts *p)
{
    unsigned char *r = wtmp, *cur = wtmp + 32, *hc = wtmp + 64, *hn = wtmp + 96;
    int rc = mg_os_random(r, 32);
    if (rc != 0)
        return rc;
    load_words(cur, p->right);
    hash32(hc, cur);
    for (int i = 0; i < 32; i++)
        cur[i] ^= r[i];
    hash32(hn, cur);
    load_words(r, p->left); /* r is spent: reuse it for left */
    for (int i = 0; i < 32; i++)
        r[i] ^= (unsigned char)(hc[i] ^ hn[i]);
    write_begin();
    store_words(p->right, cur);
    store_words(p->left, r);
    write_end();
    mg_wipe(wtmp, 128);
    atomic_fetch_add(&rekey_count, 1);
    return 0;
}

/* Create the coffer on first use. Returns the parts or NULL (error recorded). */
static struct parts *ensure_parts(void)
{
    struct parts *p = atomic_load_explicit(&parts, memory_order_acquire);
    if (p != NULL)
        return p;
    if (mg_ensure_init() != MG_OK)
        return NULL;
    pthread_mutex_lock(&writer);
    p = atomic_load(&parts);
    if (p == NULL) {
        mg_buffer *pb = mg_buffer_new_internal(sizeof(struct parts));
        mg_buffer *wb = pb != NULL ? mg_buffer_new_internal(128) : NULL;
        if (wb == NULL) {
            mg_buffer_destroy(pb);
            pthread_mutex_unlock(&writer);
            return NULL;
        }
        p = mg_buffer_data(pb); /* end-aligned 64 bytes: 8-byte aligned words */
        wtmp = mg_buffer_data(wb);
        int rc = new_key_locked(p);
        if (rc != 0) {
            mg_buffer_destroy(pb);
            mg_buffer_destroy(wb);
            pthread_mutex_unlock(&writer);
            mg_fail(MG_ESYS, -rc, "getrandom: %s", strerror(-rc));
            return NULL;
        }
        atomic_store_explicit(&parts, p, memory_order_release);
    }
    pthread_mutex_unlock(&writer);
    return p;
}

int mg_coffer_key(unsigned char key[MG_KEY_BYTES], unsigned char tmp[MG_COFFER_TMP_BYTES])
{
    struct parts *p = ensure_parts();
    if (p == NULL)
        return mg_last_error();
    if (atomic_load_explicit(&retired, memory_order_relaxed))
        return mg_fail(MG_EDEAD, 0, "the process key was destroyed (the process is exiting)");
    for (;;) {
        unsigned s1 = atomic_load_explicit(&seq, memory_order_acquire);
        if (s1 & 1u) {
            sched_yield(); /* a writer is mid-update: a few hundred nanoseconds */
            continue;
        }
        load_words(tmp, p->left);
        load_words(tmp + 32, p->right);
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&seq, memory_order_relaxed) == s1)
            break;
    }
    hash32(key, tmp + 32);
    for (int i = 0; i < MG_KEY_BYTES; i++)
        key[i] ^= tmp[i];
    mg_wipe(tmp, MG_COFFER_TMP_BYTES);
    return MG_OK;
}

void mg_coffer_new_key(void)
{
    struct parts *p = atomic_load(&parts);
    if (p == NULL)
        return; /* no key yet: the first one will be fresh anyway */
    pthread_mutex_lock(&writer);
    int rc = new_key_locked(p);
    pthread_mutex_unlock(&writer);
    /* Without randomness there is no new key, and keeping the old one would leave
     * purged enclaves openable: stop here. */
    if (rc != 0)
        mg_safe_panic("memguard: cannot draw a new process key during purge");
}

void mg_coffer_destroy(void)
{
    struct parts *p = atomic_load(&parts);
    atomic_store(&retired, true);
    if (p == NULL)
        return;
    static const unsigned char zero[64];
    pthread_mutex_lock(&writer);
    write_begin();
    store_words(p->left, zero);
    store_words(p->right, zero + 32);
    write_end();
    pthread_mutex_unlock(&writer);
}

int mg_rekey(void)
{
    struct parts *p = ensure_parts();
    if (p == NULL)
        return mg_last_error();
    pthread_mutex_lock(&writer);
    int rc = rekey_locked(p);
    pthread_mutex_unlock(&writer);
    return rc == 0 ? MG_OK : mg_fail(MG_ESYS, -rc, "getrandom: %s", strerror(-rc));
}

/* ---- the re-key timer ---- */

static void *timer_main(void *arg)
{
    (void)arg;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL); /* signals belong to the application's threads */
    pthread_mutex_lock(&timer_lock);
    while (!timer_stop) {
        unsigned ms = atomic_load(&interval_ms);
        if (ms == 0) {
            pthread_cond_wait(&timer_cond, &timer_lock);
            continue;
        }
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += ms / 1000;
        until.tv_nsec += (long)(ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        int rc = pthread_cond_timedwait(&timer_cond, &timer_lock, &until);
        if (timer_stop || rc != ETIMEDOUT)
            continue;
        pthread_mutex_unlock(&timer_lock);
        struct parts *p = atomic_load(&parts);
        pthread_mutex_lock(&writer);
        /* Interval set to 0 meanwhile: mg_set_rekey_interval promises no re-key after it returns. */
        if (p != NULL && atomic_load(&interval_ms) != 0)
            (void)rekey_locked(p); /* a failed getrandom: try again next tick */
        pthread_mutex_unlock(&writer);
        pthread_mutex_lock(&timer_lock);
    }
    pthread_mutex_unlock(&timer_lock);
    return NULL;
}

static bool cond_ready;

/* The timer waits on CLOCK_MONOTONIC so that setting the wall clock cannot stall re-keying. */
static void init_cond(void)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&timer_cond, &ca);
    pthread_condattr_destroy(&ca);
    cond_ready = true;
}

static void start_timer(void)
{
    pthread_mutex_lock(&timer_lock);
    if (atomic_load(&thread_state) == THREAD_NONE) {
        if (!cond_ready)
            init_cond();
        timer_stop = false;
        int rc = pthread_create(&timer_thread, NULL, timer_main, NULL);
        atomic_store(&thread_state, rc == 0 ? THREAD_RUNNING : THREAD_FAILED);
        timer_pid = getpid();
    }
    pthread_mutex_unlock(&timer_lock);
}

void mg_coffer_tick(void)
{
    unsigned ms = atomic_load_explicit(&interval_ms, memory_order_relaxed);
    if (ms == 0)
        return;
    if (atomic_load_explicit(&thread_state, memory_order_relaxed) == THREAD_NONE)
        start_timer();
    unsigned long long now = mg_os_now_ns(), last = atomic_load_explicit(&last_rekey_ns, memory_order_relaxed);
    if (now - last < 2ull * ms * 1000000ull)
        return;
    /* The timer is late or absent (just forked, or no thread): re-key inline, once. */
    struct parts *p = atomic_load(&parts);
    if (p != NULL && pthread_mutex_trylock(&writer) == 0) {
        if (atomic_load(&interval_ms) != 0 && mg_os_now_ns() - atomic_load(&last_rekey_ns) >= 2ull * ms * 1000000ull)
            (void)rekey_locked(p);
        pthread_mutex_unlock(&writer);
    }
}

int mg_set_rekey_interval(unsigned ms)
{
    int rc = mg_ensure_init();
    if (rc != MG_OK)
        return rc;
    atomic_store(&interval_ms, ms);
    pthread_mutex_lock(&timer_lock);
    if (atomic_load(&thread_state) == THREAD_RUNNING)
        pthread_cond_signal(&timer_cond);
    pthread_mutex_unlock(&timer_lock);
    /* A re-key already under way finishes before we return; one not yet under way sees the new
     * interval (0: none). valgrind.core.fork caught a tick landing just after interval 0. */
    pthread_mutex_lock(&writer);
    pthread_mutex_unlock(&writer);
    return MG_OK;
}

unsigned long long mg_coffer_rekeys(void)
{
    return atomic_load(&rekey_count);
}

/* A library that is dlclose()d (the provider) must not leave its thread running. */
__attribute__((destructor)) static void stop_timer(void)
{
    pthread_mutex_lock(&timer_lock);
    bool join = atomic_load(&thread_state) == THREAD_RUNNING && timer_pid == getpid();
    timer_stop = true;
    if (join)
        pthread_cond_signal(&timer_cond);
    pthread_mutex_unlock(&timer_lock);
    if (join)
        pthread_join(timer_thread, NULL);
    atomic_store(&thread_state, THREAD_NONE);
}

/* ---- fork ---- */

void mg_coffer_prefork(void)
{
    pthread_mutex_lock(&timer_lock);
    pthread_mutex_lock(&writer);
}

void mg_coffer_postfork_parent(void)
{
    pthread_mutex_unlock(&writer);
    pthread_mutex_unlock(&timer_lock);
}

void mg_coffer_postfork_child(void)
{
    /* The timer thread did not survive fork; start a new one on first use. */
    atomic_store(&thread_state, THREAD_NONE);
    timer_stop = false;
    if (cond_ready)
        init_cond(); /* the parent's waiter does not exist here */
    /* Give the child parts of its own, so parent and child never hold the same bits. */
    struct parts *p = atomic_load(&parts);
    if (p != NULL)
        (void)rekey_locked(p);
    pthread_mutex_unlock(&writer);
    pthread_mutex_unlock(&timer_lock);
}

/* Test hook: a copy of the stored parts (left | right), to see re-keying happen. */
void mg_test_coffer_parts(unsigned char out[64])
{
    struct parts *p = ensure_parts();
    if (p == NULL)
        return;
    pthread_mutex_lock(&writer);
    load_words(out, p->left);
    load_words(out + 32, p->right);
    pthread_mutex_unlock(&writer);
}
