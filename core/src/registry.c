/*
 * The registry of buffer handles. Handles live in slabs mapped from the
 * kernel and never unmapped, so a stale handle pointer always points at
 * readable memory: a double destroy is detected by the magic, and the
 * emergency wipe (run from signal handlers) can walk every slot with plain
 * atomic loads, no lock and no allocation.
 */
#include <errno.h>
#include <string.h>

#include "internal.h"
#include "memcall.h"

#define SLAB_BYTES (64u * 1024u)

struct mg_slab {
    struct mg_slab *next; /* immutable once published */
    size_t nslots;
    struct mg_buffer slots[];
};

static _Atomic(struct mg_slab *) slabs;
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static mg_buffer *free_list;

_Atomic size_t mg_stat_live, mg_stat_dead, mg_stat_locked_bytes, mg_stat_unlocked;

/* Map one more slab and push its slots on the free list (registry lock held). */
static int grow_locked(void)
{
    void *p = NULL;
    int rc = mg_os_map(SLAB_BYTES, &p);
    if (rc != 0)
        return rc;
    rc = mg_os_protect(p, SLAB_BYTES, MG_PROT_RW);
    if (rc != 0) {
        (void)mg_os_unmap(p, SLAB_BYTES);
        return rc;
    }
    struct mg_slab *slab = p;
    slab->nslots = (SLAB_BYTES - sizeof *slab) / sizeof(struct mg_buffer);
    for (size_t i = 0; i < slab->nslots; i++) {
        mg_buffer *b = &slab->slots[i];
        rc = pthread_mutex_init(&b->lock, NULL);
        if (rc != 0) {
            /* Keep the slots initialised so far; they are valid. */
            slab->nslots = i;
            break;
        }
        atomic_init(&b->magic, 0);
        atomic_init(&b->wipe_ptr, NULL);
        atomic_init(&b->wipe_len, 0);
        b->fork_fd = -1;
        b->next_free = free_list;
        free_list = b;
    }
    if (slab->nslots == 0)
        return -rc;
    slab->next = atomic_load(&slabs);
    atomic_store(&slabs, slab);
    return 0;
}

mg_buffer *mg_registry_acquire(void)
{
    int rc = pthread_mutex_lock(&registry_lock);
    if (rc != 0) {
        mg_fail(MG_ESYS, rc, "registry lock: %s", strerror(rc));
        return NULL;
    }
    if (free_list == NULL) {
        rc = grow_locked();
        if (rc != 0) {
            pthread_mutex_unlock(&registry_lock);
            mg_fail(MG_ENOMEM, -rc, "cannot map a handle slab: %s", strerror(-rc));
            return NULL;
        }
    }
    mg_buffer *b = free_list;
    free_list = b->next_free;
    b->next_free = NULL;
    b->alive = false;
    b->is_mutable = false;
    b->locked = false;
    b->base = NULL;
    b->layout = (struct mg_layout){0};
    atomic_store(&b->magic, MG_BUFFER_MAGIC);
    pthread_mutex_unlock(&registry_lock);
    return b;
}

void mg_registry_release(mg_buffer *b)
{
    if (pthread_mutex_lock(&registry_lock) != 0)
        return; /* cannot happen with a default mutex; leak the slot rather than corrupt the list */
    atomic_store(&b->magic, 0);
    b->next_free = free_list;
    free_list = b;
    pthread_mutex_unlock(&registry_lock);
}

void mg_registry_for_each(void (*fn)(mg_buffer *b, void *arg), void *arg)
{
    if (pthread_mutex_lock(&registry_lock) != 0)
        return;
    for (struct mg_slab *s = atomic_load(&slabs); s != NULL; s = s->next)
        for (size_t i = 0; i < s->nslots; i++)
            if (atomic_load(&s->slots[i].magic) == MG_BUFFER_MAGIC)
                fn(&s->slots[i], arg);
    pthread_mutex_unlock(&registry_lock);
}

void mg_registry_emergency_wipe(void)
{
    for (struct mg_slab *s = atomic_load(&slabs); s != NULL; s = s->next) {
        for (size_t i = 0; i < s->nslots; i++) {
            unsigned char *p = atomic_load(&s->slots[i].wipe_ptr);
            size_t len = atomic_load(&s->slots[i].wipe_len);
            if (p == NULL || len == 0)
                continue;
            /* The region may be frozen; if mprotect fails it is already gone. */
            if (mg_os_protect(p, len, MG_PROT_RW) == 0)
                mg_wipe(p, len);
        }
    }
}

mg_stats mg_get_stats(void)
{
    mg_stats s = {0};
    if (pthread_mutex_lock(&registry_lock) != 0)
        return s;
    s.live_buffers = atomic_load(&mg_stat_live);
    s.dead_handles = atomic_load(&mg_stat_dead);
    s.locked_bytes = atomic_load(&mg_stat_locked_bytes);
    s.unlocked_buffers = atomic_load(&mg_stat_unlocked);
    s.rekeys = mg_coffer_rekeys();
    pthread_mutex_unlock(&registry_lock);
    return s;
}

/* ---- fork ---- */

static void lock_slot(mg_buffer *b, void *arg)
{
    (void)arg;
    pthread_mutex_lock(&b->lock);
    b->fork_fd = -1;
    if (b->alive && b->secret) {
        /* The child must not share these pages with us: give it a copy of its own. */
        struct mg_layout *l = &b->layout;
        if (mg_os_secret_snapshot(mg_layout_inner(b->base, l), l->inner_len, &b->fork_fd) != 0)
            b->fork_fd = -1;
    }
}

void mg_registry_prefork(void)
{
    pthread_mutex_lock(&registry_lock);
    for (struct mg_slab *s = atomic_load(&slabs); s != NULL; s = s->next)
        for (size_t i = 0; i < s->nslots; i++)
            if (atomic_load(&s->slots[i].magic) == MG_BUFFER_MAGIC)
                lock_slot(&s->slots[i], NULL);
}

static void unlock_all(bool child)
{
    for (struct mg_slab *s = atomic_load(&slabs); s != NULL; s = s->next) {
        for (size_t i = 0; i < s->nslots; i++) {
            mg_buffer *b = &s->slots[i];
            if (atomic_load(&b->magic) != MG_BUFFER_MAGIC)
                continue;
            if (b->alive) {
                unsigned char *inner = mg_layout_inner(b->base, &b->layout);
                size_t len = b->layout.inner_len;
                if (child && b->secret) {
                    if (b->fork_fd < 0 || mg_os_secret_adopt(inner, len, b->fork_fd) != 0) {
                        /* Still shared with the parent: wiping or writing here would reach it. */
                        mg_os_write_stderr("memguard: cannot give a forked child its own secret memory\n");
                    }
                } else if (child && b->locked && mg_os_lock(inner, len) != 0) {
                    /* mlock is not inherited; if the child cannot re-lock, say so in the stats. */
                    b->locked = false;
                    atomic_fetch_sub(&mg_stat_locked_bytes, len);
                    atomic_fetch_add(&mg_stat_unlocked, 1);
                } else if (!child && b->fork_fd >= 0) {
                    mg_os_close(b->fork_fd);
                }
            }
            b->fork_fd = -1;
            pthread_mutex_unlock(&b->lock);
        }
    }
    pthread_mutex_unlock(&registry_lock);
}

void mg_registry_postfork_parent(void)
{
    unlock_all(false);
}

void mg_registry_postfork_child(void)
{
    unlock_all(true);
}
