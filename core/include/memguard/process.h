#ifndef MEMGUARD_PROCESS_H
#define MEMGUARD_PROCESS_H

#include <stdbool.h>
#include <stddef.h>
#include <memguard/export.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Initialise the library. Every other function does this on first use, so
 * calling it is optional; it is idempotent and thread-safe. It:
 *   - initialises libsodium and draws the process's canary,
 *   - sets the *soft* RLIMIT_CORE to 0, so a crash writes no core file
 *     (the hard limit is untouched: `ulimit -c unlimited` can raise it again).
 * Returns MG_OK or MG_EINIT.
 */
MG_API int mg_init(void);

/*
 * Opt-in: mark the process non-dumpable (prctl PR_SET_DUMPABLE 0): no core
 * files, and other processes of the same user can no longer ptrace it or
 * read /proc/PID/mem. Note: it is reset by execve, and nginx workers turn it
 * back on; per-page MADV_DONTDUMP protects guarded memory regardless.
 */
MG_API int mg_set_nondumpable(void);

/*
 * What to do when mlock fails (RLIMIT_MEMLOCK exhausted, no CAP_IPC_LOCK).
 * MG_LOCK_REQUIRED (default): the allocation fails with MG_EMLOCK.
 * MG_LOCK_BEST_EFFORT: the allocation succeeds unlocked (swappable) and
 * mg_stats().unlocked_buffers counts it. Returns the previous policy.
 */
typedef enum mg_lock_policy { MG_LOCK_REQUIRED = 0, MG_LOCK_BEST_EFFORT = 1 } mg_lock_policy;
MG_API mg_lock_policy mg_set_lock_policy(mg_lock_policy policy);

/*
 * Where guarded pages come from.
 * MG_BACKEND_ANON (default): private anonymous memory, mlock()ed, MADV_DONTDUMP.
 * MG_BACKEND_SECRETMEM: memfd_secret(2) pages, removed from the kernel's
 *   direct map: reads through /proc/PID/mem, process_vm_readv and ptrace fail
 *   even for root. Counts against RLIMIT_MEMLOCK; unavailable under valgrind
 *   and on kernels without it (secretmem.enable=0).
 * Applies to buffers allocated afterwards. The environment variable
 * MEMGUARD_BACKEND=secretmem selects it at initialisation.
 * Returns MG_OK, or MG_ENOTSUP (the anonymous backend stays active, and
 * mg_last_error_message() says why).
 */
typedef enum mg_backend { MG_BACKEND_ANON = 0, MG_BACKEND_SECRETMEM = 1 } mg_backend;
MG_API int mg_set_backend(mg_backend backend);
MG_API mg_backend mg_get_backend(void);
MG_API const char *mg_backend_name(mg_backend backend);

/*
 * Wipe and release the memory of every live buffer. Handles stay valid but
 * dead: mg_buffer_is_alive() is false, operations fail with MG_EDEAD, and
 * mg_buffer_destroy() still frees them. Pointers from mg_buffer_data() become
 * invalid. The process key is replaced, so every enclave sealed before the
 * purge can no longer be opened (MG_EAUTH).
 */
MG_API void mg_purge(void);

/*
 * How many purges have begun in this process: read without a lock. While it is
 * unchanged since a buffer was seen alive, no purge has touched the buffer, so
 * code that makes many calls on one buffer can check liveness once and then
 * compare this counter (the memguard provider's ciphers do). A purge that
 * starts after the comparison is the same race as one that starts after
 * mg_buffer_data() returned.
 */
MG_API unsigned long long mg_purge_count(void);

typedef struct mg_stats {
    size_t live_buffers;     /* alive guarded buffers */
    size_t dead_handles;     /* purged handles not yet destroyed */
    size_t locked_bytes;     /* bytes currently mlock()ed by memguard */
    size_t unlocked_buffers; /* live buffers that could not be locked (best-effort policy) */
    unsigned long long rekeys; /* coffer re-keys so far */
} mg_stats;

/* A snapshot of the library's counters (each read atomically). */
MG_API mg_stats mg_get_stats(void);

#ifdef __cplusplus
}
#endif

#endif
