/* Declarations shared by the core's source files; not installed. */
#ifndef MG_INTERNAL_H
#define MG_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <memguard/memguard.h>

#include "layout.h"

#if defined(__GNUC__) || defined(__clang__)
#define MG_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define MG_PRINTF(f, a)
#endif

/* ---- errors (error.c) ---- */
/* Record code (and errno) for this thread; returns code for `return mg_fail(...)`. */
int mg_fail(int code, int sys_errno, const char *fmt, ...) MG_PRINTF(3, 4);

/* ---- initialisation (init.c) ---- */
/* 0 when the library is ready, else MG_EINIT (recorded). */
int mg_ensure_init(void);
size_t mg_page_size(void);
/* The process's random canary pattern: at least page + MG_MIN_CANARY bytes. */
const unsigned char *mg_canary_pattern(void);
mg_lock_policy mg_lock_policy_get(void);

/* ---- buffers and registry (buffer.c, registry.c) ---- */
#define MG_BUFFER_MAGIC UINT64_C(0x6d672d6275666672) /* "mg-buffr" */

struct mg_buffer {
    _Atomic uint64_t magic;  /* MG_BUFFER_MAGIC while the handle is valid */
    pthread_mutex_t lock;    /* guards every field below */
    struct mg_layout layout;
    unsigned char *base;     /* start of the mapping (leading guard page) */
    bool alive;
    bool is_mutable;
    bool locked;             /* mlock succeeded */
    bool busy;               /* a read(2) is filling it without the lock */
    bool mapped_dead;        /* purged while busy: wiped, PROT_NONE, unmap pending */
    /* Published for the lock-free emergency wipe: the inner region, or NULL. */
    _Atomic(unsigned char *) wipe_ptr;
    _Atomic size_t wipe_len;
    struct mg_buffer *next_free; /* registry free list (under the registry lock) */
};

/* A fresh handle (dead, magic set) from the registry, or NULL (ENOMEM recorded). */
mg_buffer *mg_registry_acquire(void);
/* Return a handle whose memory is already released. */
void mg_registry_release(mg_buffer *b);
/* Call fn on every valid handle, holding the registry lock. */
void mg_registry_for_each(void (*fn)(mg_buffer *b, void *arg), void *arg);
/*
 * Wipe every published region without taking any lock or allocating:
 * usable from a signal handler or on a fatal error path.
 */
void mg_registry_emergency_wipe(void);

/* Counters (registry.c). */
extern _Atomic size_t mg_stat_live, mg_stat_dead, mg_stat_locked_bytes, mg_stat_unlocked;

/*
 * Wipe and release the memory of a live buffer (lock held); with keep_mapping
 * the wiped mapping stays, PROT_NONE, until destroy. Returns false if the
 * canary was corrupted.
 */
bool mg_buffer_teardown_locked(mg_buffer *b, bool keep_mapping);
/* Report a corrupted canary: wipe everything, message, abort. */
_Noreturn void mg_canary_failure(void);

/* Test hook: called with the inner region just before it is unmapped. */
typedef void (*mg_unmap_hook_fn)(const void *inner, size_t len);
void mg_test_set_unmap_hook(mg_unmap_hook_fn fn);

#endif
