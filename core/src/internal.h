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
mg_backend mg_backend_get(void);

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
    bool internal;           /* library-owned (coffer, scratch): skipped by purge, wiped on crash */
    bool secret;             /* inner pages come from memfd_secret */
    int fork_fd;             /* secretmem snapshot taken for the child of a fork, or -1 */
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
/* Fork: lock everything (and snapshot secretmem pages) / unlock; child re-locks memory. */
void mg_registry_prefork(void);
void mg_registry_postfork_parent(void);
void mg_registry_postfork_child(void);

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

/*
 * Held access for the library's own compound operations (seal, open): the
 * buffer's lock is held between these calls, so a purge cannot unmap it.
 */
mg_buffer *mg_buffer_new_held(size_t size);         /* new, mutable, lock held */
int mg_buffer_hold(mg_buffer *b);                   /* lock, MG_OK only if alive */
unsigned char *mg_buffer_data_held(mg_buffer *b);
size_t mg_buffer_size_held(mg_buffer *b);
void mg_buffer_release(mg_buffer *b, bool freeze);  /* optionally freeze, unlock */
void mg_buffer_destroy_held(mg_buffer *b);          /* destroy, lock held */

/* A library-owned guarded buffer: mutable, skipped by mg_purge, wiped on crash. */
mg_buffer *mg_buffer_new_internal(size_t size);

/* ---- coffer (coffer.c) ---- */
#define MG_KEY_BYTES 32
/* Space a caller lends mg_coffer_key for its working copies. */
#define MG_COFFER_TMP_BYTES 64
/* Derive the process key into key (guarded memory), using tmp (guarded) as scratch. */
int mg_coffer_key(unsigned char key[MG_KEY_BYTES], unsigned char tmp[MG_COFFER_TMP_BYTES]);
/* Replace the key by a fresh random one (purge). */
void mg_coffer_new_key(void);
/* Re-mask the parts if the interval has passed and no re-key thread does it. */
void mg_coffer_tick(void);
/* Fork support: lock / unlock the coffer's writer side; in the child, re-key its parts. */
void mg_coffer_prefork(void);
void mg_coffer_postfork_parent(void);
void mg_coffer_postfork_child(void);

/* Wipe the parts and retire the coffer: later seal/open fail (exit paths). */
void mg_coffer_destroy(void);
/* Test hook: copy the stored parts (left | right). */
void mg_test_coffer_parts(unsigned char out[64]);

/* ---- lifecycle (lifecycle.c, fork.c) ---- */
void mg_exit_wipe(void);
int mg_altstack_ensure(void);
bool mg_crash_catching(void);
int mg_fork_handlers_install(void);

/* ---- enclaves (enclave.c) ---- */
/* Seal size bytes of src into a new enclave without touching src. */
mg_enclave *mg_enclave_seal_copy(const void *src, size_t size);
/* Test hook: the sealed bytes of e (nonce | tag | ciphertext). */
unsigned char *mg_test_enclave_bytes(mg_enclave *e, size_t *len);

/* ---- scratch (scratch.c): pre-guarded, pre-locked memory for short-lived plaintext ---- */
typedef struct mg_scratch mg_scratch;
/* At least len bytes of guarded, zeroed memory, 16-byte aligned; NULL on error (recorded). */
unsigned char *mg_scratch_acquire(size_t len, mg_scratch **token);
/* Wipe the first used bytes and give the scratch back. */
void mg_scratch_release(mg_scratch *token, size_t used);
/*
 * Make sure the shared reserve holds at least len bytes (mg_enclave_reserve): a thread that can
 * get no scratch of its own waits for it. MG_OK, or the allocation's error (MG_EMLOCK, recorded).
 */
int mg_scratch_reserve(size_t len);
/* Test hooks: on: this thread gives back its area and gets no area or temporary buffer (only the
 * reserve), as under RLIMIT_MEMLOCK pressure; the reserve's uses, waits, threads waiting now, size. */
void mg_test_scratch_no_own(bool on);
void mg_test_scratch_reserve_stats(unsigned long long *uses, unsigned long long *waits, unsigned *waiting,
                                   size_t *cap);
void mg_scratch_prefork(void);
void mg_scratch_postfork_parent(void);
void mg_scratch_postfork_child(void);
unsigned long long mg_coffer_rekeys(void);

/* Test hook: called with the inner region just before it is unmapped. */
typedef void (*mg_unmap_hook_fn)(const void *inner, size_t len);
void mg_test_set_unmap_hook(mg_unmap_hook_fn fn);

/* Zero the vector registers (util.c): after decrypting a secret, they hold pieces of it. */
void mg_clear_registers(void);

#endif
