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
 * Wipe and release the memory of every live buffer. Handles stay valid but
 * dead: mg_buffer_is_alive() is false, operations fail with MG_EDEAD, and
 * mg_buffer_destroy() still frees them. Pointers from mg_buffer_data() become
 * invalid.
 */
MG_API void mg_purge(void);

typedef struct mg_stats {
    size_t live_buffers;     /* alive guarded buffers */
    size_t dead_handles;     /* purged handles not yet destroyed */
    size_t locked_bytes;     /* bytes currently mlock()ed by memguard */
    size_t unlocked_buffers; /* live buffers that could not be locked (best-effort policy) */
} mg_stats;

/* A snapshot of the library's counters (each read atomically). */
MG_API mg_stats mg_get_stats(void);

#ifdef __cplusplus
}
#endif

#endif
