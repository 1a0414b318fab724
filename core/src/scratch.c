/*
 * Scratch memory for short-lived plaintext (a derived key, an opened enclave).
 *
 * Each thread owns one pre-guarded, pre-locked area, taken from a pool on its
 * first use and returned to the pool when the thread exits, so the hot path
 * (mg_enclave_with) costs no system call and no lock. Larger requests, and
 * nested use on the same thread, get a temporary guarded buffer instead.
 * Areas are wiped after every use; they are library-owned registry buffers,
 * so the crash handler wipes them too.
 */
#include <stdlib.h>

#include "internal.h"

/* A 16 KiB stream chunk plus key and coffer working space. */
#define SCRATCH_CAP (16384 + 128)

/* One cache line each: a thread's in_use flag must not share a line with another thread's area. */
struct __attribute__((aligned(64))) mg_scratch {
    mg_buffer *buf;
    unsigned char *p;
    bool in_use;
    bool temporary;
    pthread_t owner;
    struct mg_scratch *next_all;
    struct mg_scratch *next_free;
};

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static struct mg_scratch *all_areas, *free_areas;
static pthread_key_t area_key;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;
static bool key_ok;
static _Thread_local struct mg_scratch *mine;

static void give_back(void *v)
{
    struct mg_scratch *s = v;
    pthread_mutex_lock(&pool_lock);
    s->in_use = false;
    s->next_free = free_areas;
    free_areas = s;
    pthread_mutex_unlock(&pool_lock);
}

static void make_key(void)
{
    key_ok = pthread_key_create(&area_key, give_back) == 0;
}

static struct mg_scratch *new_area(size_t cap, bool temporary)
{
    struct mg_scratch *s = aligned_alloc(64, sizeof *s);
    if (s != NULL)
        *s = (struct mg_scratch){0};
    if (s == NULL) {
        mg_fail(MG_ENOMEM, 0, "scratch handle");
        return NULL;
    }
    /* A multiple of 16 keeps the end-aligned data 16-byte aligned. */
    s->buf = mg_buffer_new_internal((cap + 15) & ~(size_t)15);
    if (s->buf == NULL) {
        free(s);
        return NULL;
    }
    s->p = mg_buffer_data(s->buf);
    s->temporary = temporary;
    return s;
}

static struct mg_scratch *thread_area(void)
{
    if (mine != NULL)
        return mine;
    pthread_once(&key_once, make_key);
    if (!key_ok)
        return NULL;
    pthread_mutex_lock(&pool_lock);
    struct mg_scratch *s = free_areas;
    if (s != NULL) {
        free_areas = s->next_free;
    } else {
        s = new_area(SCRATCH_CAP, false);
        if (s != NULL) {
            s->next_all = all_areas;
            all_areas = s;
        }
    }
    pthread_mutex_unlock(&pool_lock);
    if (s == NULL)
        return NULL;
    s->owner = pthread_self();
    pthread_setspecific(area_key, s);
    if (mg_crash_catching())
        (void)mg_altstack_ensure(); /* so a stack overflow in this thread still wipes */
    mine = s;
    return s;
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
    struct mg_scratch *t = new_area(len, true);
    if (t == NULL)
        return NULL;
    t->in_use = true;
    *token = t;
    return t->p;
}

void mg_scratch_release(mg_scratch *s, size_t used)
{
    mg_wipe(s->p, used);
    if (s->temporary) {
        mg_buffer_destroy(s->buf);
        free(s);
        return;
    }
    s->in_use = false;
}

/* ---- fork ---- */

void mg_scratch_prefork(void)
{
    pthread_mutex_lock(&pool_lock);
}

void mg_scratch_postfork_parent(void)
{
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
    }
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
