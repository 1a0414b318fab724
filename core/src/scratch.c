/*
 * Scratch memory for short-lived plaintext (a derived key, an opened enclave).
 *
 * Each thread owns one pre-guarded, pre-locked area, taken from a pool on its
 * first use and returned to the pool when the thread exits, so the hot path
 * (mg_enclave_with) costs no system call and no lock. Larger requests, and
 * nested use on the same thread, get the shared reserve (below) if it is free
 * at that moment and large enough, else a temporary guarded buffer.
 * Areas are wiped after every use; they are library-owned registry buffers,
 * so the crash handler wipes them too.
 *
 * Under locked-memory pressure (RLIMIT_MEMLOCK) a thread may get neither its
 * own area nor a temporary buffer. For that case there is one shared reserve,
 * made by mg_scratch_reserve (mg_enclave_reserve) when a long-lived secret is
 * loaded and sized for the largest request reserved: such a thread takes the
 * reserve, waiting on a condition variable while another thread has it. So an
 * operation on a reserved secret never fails for lack of locked memory: it
 * waits its turn instead. The reserve is a registry buffer like the areas.
 */
#include <stdio.h>
#include <stdlib.h>

#include "internal.h"

/* A 16 KiB stream chunk plus key and coffer working space. */
#define SCRATCH_CAP (16384 + 128)

enum { KIND_AREA, KIND_TEMPORARY, KIND_RESERVE };

/* One cache line each: a thread's in_use flag must not share a line with another thread's area. */
struct __attribute__((aligned(64))) mg_scratch {
    mg_buffer *buf;
    unsigned char *p;
    bool in_use;
    unsigned char kind; /* KIND_*: only KIND_AREA is released on the fast path */
    size_t cap;
    pthread_t owner;
    struct mg_scratch *next_all;
    struct mg_scratch *next_free;
};

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static struct mg_scratch *all_areas, *free_areas;
static _Atomic size_t n_free; /* length of free_areas, readable without the lock */
static pthread_key_t area_key;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;
static bool key_ok;
static _Thread_local struct mg_scratch *mine;

/*
 * A thread that could not get an area (mlock refused it) tries again only once
 * an area is pooled or at least an area's worth of locked memory was released
 * since: otherwise every operation would pay a failing mmap/mlock/munmap.
 */
static _Thread_local bool area_failed;
static _Thread_local size_t area_failed_locked;
static _Thread_local bool test_no_own; /* test hook: this thread gets no area and no temporary buffer */

/*
 * The shared reserve. Lock order: scratch pool -> reserve -> registry (fork.c);
 * no buffer is created or destroyed with reserve_lock held.
 */
static pthread_mutex_t reserve_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t reserve_cond = PTHREAD_COND_INITIALIZER;
static struct mg_scratch *reserve; /* NULL until the first reservation */
static bool reserve_busy;
static pthread_t reserve_owner;
static _Atomic unsigned long long reserve_uses, reserve_waits;
static _Atomic unsigned reserve_waiting; /* threads in the wait now (test hook) */

static void give_back(void *v)
{
    struct mg_scratch *s = v;
    pthread_mutex_lock(&pool_lock);
    s->in_use = false;
    s->next_free = free_areas;
    free_areas = s;
    atomic_fetch_add(&n_free, 1);
    pthread_mutex_unlock(&pool_lock);
}

static void make_key(void)
{
    key_ok = pthread_key_create(&area_key, give_back) == 0;
}

static struct mg_scratch *new_area(size_t cap, unsigned char kind)
{
    struct mg_scratch *s = aligned_alloc(64, sizeof *s);
    if (s != NULL)
        *s = (struct mg_scratch){0};
    if (s == NULL) {
        mg_fail(MG_ENOMEM, 0, "scratch handle");
        return NULL;
    }
    /* A multiple of 16 keeps the end-aligned data 16-byte aligned. */
    s->cap = (cap + 15) & ~(size_t)15;
    s->buf = mg_buffer_new_internal(s->cap);
    if (s->buf == NULL) {
        free(s);
        return NULL;
    }
    s->p = mg_buffer_data(s->buf);
    s->kind = kind;
    return s;
}

static void free_area(struct mg_scratch *s)
{
    mg_buffer_destroy(s->buf); /* wipes it */
    free(s);
}

static struct mg_scratch *thread_area(void)
{
    if (mine != NULL)
        return mine;
    if (test_no_own)
        return NULL;
    if (area_failed && atomic_load(&n_free) == 0 &&
        atomic_load(&mg_stat_locked_bytes) + SCRATCH_CAP > area_failed_locked)
        return NULL;
    pthread_once(&key_once, make_key);
    if (!key_ok)
        return NULL;
    pthread_mutex_lock(&pool_lock);
    struct mg_scratch *s = free_areas;
    if (s != NULL) {
        free_areas = s->next_free;
        atomic_fetch_sub(&n_free, 1);
    } else {
        s = new_area(SCRATCH_CAP, KIND_AREA);
        if (s != NULL) {
            s->next_all = all_areas;
            all_areas = s;
        }
    }
    pthread_mutex_unlock(&pool_lock);
    if (s == NULL) {
        area_failed = true;
        area_failed_locked = atomic_load(&mg_stat_locked_bytes);
        return NULL;
    }
    area_failed = false;
    s->owner = pthread_self();
    pthread_setspecific(area_key, s);
    if (mg_crash_catching())
        (void)mg_altstack_ensure(); /* so a stack overflow in this thread still wipes */
    mine = s;
    return s;
}

/* Take the reserve for len bytes: at once if free (wait = false), else wait for it. NULL if not possible. */
static struct mg_scratch *take_reserve(size_t len, bool wait, bool *self_holds)
{
    pthread_t self = pthread_self();
    struct mg_scratch *got = NULL;
    *self_holds = false;
    pthread_mutex_lock(&reserve_lock);
    bool waited = false;
    while (wait && reserve != NULL && reserve_busy && !pthread_equal(reserve_owner, self) && len <= reserve->cap) {
        if (!waited)
            atomic_fetch_add(&reserve_waiting, 1);
        waited = true;
        pthread_cond_wait(&reserve_cond, &reserve_lock);
    }
    if (waited)
        atomic_fetch_sub(&reserve_waiting, 1);
    if (reserve != NULL && reserve_busy && pthread_equal(reserve_owner, self)) {
        *self_holds = true;
    } else if (reserve != NULL && !reserve_busy && len <= reserve->cap) {
        reserve_busy = true;
        reserve_owner = self;
        got = reserve;
    }
    pthread_mutex_unlock(&reserve_lock);
    if (got != NULL) {
        atomic_fetch_add(&reserve_uses, 1);
        if (waited)
            atomic_fetch_add(&reserve_waits, 1);
    }
    return got;
}

static void give_reserve(void)
{
    pthread_mutex_lock(&reserve_lock);
    reserve_busy = false;
    pthread_cond_signal(&reserve_cond); /* each release wakes one waiter, who takes it or passes it on */
    pthread_mutex_unlock(&reserve_lock);
}

/*
 * The temporary buffer failed and the reserve (if any) is smaller than len: say that instead of the
 * allocation's message, for a request larger than what was reserved is a bug of the reserving code.
 */
static void note_too_large(size_t len)
{
    pthread_mutex_lock(&reserve_lock);
    size_t cap = reserve != NULL ? reserve->cap : 0;
    pthread_mutex_unlock(&reserve_lock);
    if (cap == 0)
        return; /* nothing was reserved: the allocation's own message stands */
    mg_fail(mg_last_error(), 0,
            "a request of %zu bytes exceeds the %zu-byte shared reserve (mg_enclave_reserve reserved less than its "
            "caller uses), and RLIMIT_MEMLOCK leaves no other locked memory", len, cap);
}

/* Not this thread's area: the reserve if it is free now, a temporary buffer, or the reserve after a wait. */
static unsigned char *acquire_slow(size_t len, mg_scratch **token)
{
    bool self_holds;
    struct mg_scratch *t = take_reserve(len, false, &self_holds);
    if (t == NULL && !test_no_own) {
        t = new_area(len, KIND_TEMPORARY);
        if (t != NULL)
            t->in_use = true;
    }
    if (t == NULL && !self_holds)
        t = take_reserve(len, true, &self_holds);
    if (t == NULL) {
        if (self_holds)
            mg_fail(MG_EMLOCK, 0,
                    "no locked scratch for a nested request of %zu bytes: this thread already holds the shared "
                    "reserve (RLIMIT_MEMLOCK leaves it no memory of its own)", len);
        else if (test_no_own)
            mg_fail(MG_EMLOCK, 0, "no locked scratch for %zu bytes (test hook: none of its own) and no reserve that "
                    "large", len);
        else
            note_too_large(len);
        return NULL;
    }
    *token = t;
    return t->p;
}

unsigned char *mg_scratch_acquire(size_t len, mg_scratch **token)
{
    if (len <= SCRATCH_CAP) {
        struct mg_scratch *s = thread_area();
        if (s != NULL && !s->in_use) {
            s->in_use = true;
            *token = s;
            return s->p;
        }
    }
    return acquire_slow(len, token);
}

void mg_scratch_release(mg_scratch *s, size_t used)
{
    mg_wipe(s->p, used);
    if (s->kind == KIND_AREA) {
        s->in_use = false;
        return;
    }
    if (s->kind == KIND_RESERVE) {
        give_reserve();
        return;
    }
    free_area(s);
}

int mg_scratch_reserve(size_t len)
{
    if (mg_ensure_init() != MG_OK)
        return MG_EINIT;
    pthread_mutex_lock(&reserve_lock);
    bool enough = reserve != NULL && reserve->cap >= len;
    pthread_mutex_unlock(&reserve_lock);
    if (enough)
        return MG_OK;
    struct mg_scratch *n = new_area(len, KIND_RESERVE);
    if (n == NULL)
        return mg_last_error(); /* buffer.c's message says which limit and how much */
    pthread_t self = pthread_self();
    struct mg_scratch *old = NULL;
    int rc = MG_OK;
    pthread_mutex_lock(&reserve_lock);
    while (reserve != NULL && reserve_busy && !pthread_equal(reserve_owner, self) && reserve->cap < len)
        pthread_cond_wait(&reserve_cond, &reserve_lock);
    if (reserve != NULL && reserve->cap >= len) {
        old = n; /* another thread grew it meanwhile */
    } else if (reserve != NULL && reserve_busy) {
        old = n;
        rc = mg_fail(MG_EMLOCK, 0, "cannot grow the shared scratch reserve while this thread is using it");
    } else {
        old = reserve;
        reserve = n;
    }
    pthread_cond_broadcast(&reserve_cond); /* waiters for a larger reserve look again */
    pthread_mutex_unlock(&reserve_lock);
    if (old != NULL)
        free_area(old);
    return rc;
}

/* ---- test hooks ---- */

void mg_test_scratch_no_own(bool on)
{
    if (on && mine != NULL) {
        give_back(mine);
        pthread_setspecific(area_key, NULL);
        mine = NULL;
    }
    test_no_own = on;
}

void mg_test_scratch_reserve_stats(unsigned long long *uses, unsigned long long *waits, unsigned *waiting,
                                   size_t *cap)
{
    *uses = atomic_load(&reserve_uses);
    *waits = atomic_load(&reserve_waits);
    *waiting = atomic_load(&reserve_waiting);
    pthread_mutex_lock(&reserve_lock);
    *cap = reserve != NULL ? reserve->cap : 0;
    pthread_mutex_unlock(&reserve_lock);
}

/* ---- fork ---- */

void mg_scratch_prefork(void)
{
    pthread_mutex_lock(&pool_lock);
    pthread_mutex_lock(&reserve_lock);
}

void mg_scratch_postfork_parent(void)
{
    pthread_mutex_unlock(&reserve_lock);
    pthread_mutex_unlock(&pool_lock);
}

void mg_scratch_postfork_child(void)
{
    /* Other threads' areas are orphans here: wipe what they held and pool them. */
    pthread_t self = pthread_self();
    for (struct mg_scratch *s = all_areas; s != NULL; s = s->next_all) {
        if (s == mine || pthread_equal(s->owner, self))
            continue;
        bool pooled = false;
        for (struct mg_scratch *f = free_areas; f != NULL; f = f->next_free)
            pooled |= f == s;
        if (pooled)
            continue;
        mg_wipe(s->p, SCRATCH_CAP);
        s->in_use = false;
        s->next_free = free_areas;
        free_areas = s;
        atomic_fetch_add(&n_free, 1);
    }
    /* The reserve too, unless this thread holds it (fork from inside mg_enclave_with). */
    if (reserve != NULL && reserve_busy && !pthread_equal(reserve_owner, self)) {
        mg_wipe(reserve->p, reserve->cap);
        reserve_busy = false;
    }
    /* The parent's waiters do not exist here: a fresh condition variable. */
    pthread_cond_init(&reserve_cond, NULL);
    pthread_mutex_unlock(&reserve_lock);
    pthread_mutex_unlock(&pool_lock);
}

/* A libmemguard.so that is dlclose()d must not leave a TLS destructor pointing into unmapped code. */
__attribute__((destructor)) static void delete_key(void)
{
    if (key_ok) {
        pthread_key_delete(area_key);
        key_ok = false;
    }
}
