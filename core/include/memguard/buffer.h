#ifndef MEMGUARD_BUFFER_H
#define MEMGUARD_BUFFER_H

#include <stdbool.h>
#include <stddef.h>
#include <memguard/export.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * A guarded buffer: memory mapped straight from the kernel, laid out as
 *
 *   | guard page | canary ... | data | guard page |
 *                 \___ locked, not dumped ___/
 *
 * The data ends exactly at the trailing guard page, so reading or writing one
 * byte past the end faults at once; at least MG_MIN_CANARY random bytes sit in
 * front of it and are checked when the buffer is destroyed. The data pages are
 * mlock()ed (never swapped) and MADV_DONTDUMP (left out of core dumps).
 *
 * Handles are thread-safe: every function below takes the buffer's lock.
 * A pointer from mg_buffer_data() is only valid while the buffer is alive.
 */
typedef struct mg_buffer mg_buffer;

#define MG_MIN_CANARY 32

/* Zero-filled, read-write. NULL on error (errno and mg_last_error() say why). */
MG_API MG_NODISCARD mg_buffer *mg_buffer_new(size_t size);

/* Copies size bytes from src, then wipes src. Frozen. On failure src is left untouched. */
MG_API MG_NODISCARD mg_buffer *mg_buffer_from_bytes(void *src, size_t size);

/* size bytes from the kernel's CSPRNG. Frozen. */
MG_API MG_NODISCARD mg_buffer *mg_buffer_random(size_t size);

/*
 * Read from fd directly into guarded memory. Growing buffers are re-allocated
 * in guarded memory and the old one wiped, so no copy lands in ordinary memory.
 *   _from_fd:        exactly size bytes; a short read is MG_ENODATA.
 *   _from_fd_until:  up to (not including) delim, which is consumed; or to EOF.
 *                    Reads whole blocks and seeks back when fd is seekable,
 *                    otherwise one byte at a time so nothing past delim is consumed.
 *   _from_fd_all:    everything up to EOF.
 * The result is frozen and exactly as large as what was read. Reading nothing
 * at all is MG_ENODATA. EINTR is retried.
 */
MG_API MG_NODISCARD mg_buffer *mg_buffer_from_fd(int fd, size_t size);
MG_API MG_NODISCARD mg_buffer *mg_buffer_from_fd_until(int fd, unsigned char delim);
MG_API MG_NODISCARD mg_buffer *mg_buffer_from_fd_all(int fd);

/* The data, or NULL if the buffer is dead. Not aligned beyond what size implies. */
MG_API void *mg_buffer_data(const mg_buffer *b);
/* The size given at creation, or 0 if the buffer is dead. */
MG_API size_t mg_buffer_size(const mg_buffer *b);

/* Make the data read-only (mprotect) / read-write again. Idempotent. */
MG_API int mg_buffer_freeze(mg_buffer *b);
MG_API int mg_buffer_melt(mg_buffer *b);
MG_API bool mg_buffer_is_mutable(const mg_buffer *b);
MG_API bool mg_buffer_is_alive(const mg_buffer *b);

/*
 * Copy n bytes of src into the buffer at offset 0 / off. The range must fit
 * (MG_ERANGE otherwise) and the buffer must be mutable (MG_EFROZEN). The
 * _move variants then wipe src; on any error src is left untouched.
 */
MG_API int mg_buffer_copy(mg_buffer *b, const void *src, size_t n);
MG_API int mg_buffer_copy_at(mg_buffer *b, size_t off, const void *src, size_t n);
MG_API int mg_buffer_move(mg_buffer *b, void *src, size_t n);
MG_API int mg_buffer_move_at(mg_buffer *b, size_t off, void *src, size_t n);

/* Zero the data. Allowed on a frozen buffer too: destroying a secret is always permitted. */
MG_API void mg_buffer_wipe(mg_buffer *b);
/* Overwrite the data with random bytes. Refused (mg_last_error() = MG_EFROZEN) when frozen. */
MG_API void mg_buffer_scramble(mg_buffer *b);

/* Constant-time comparison with n bytes at data. false if sizes differ or the buffer is dead. */
MG_API bool mg_buffer_equal(const mg_buffer *b, const void *data, size_t n);

/*
 * Wipe, verify the canary, unmap (which also unlocks), free the handle.
 * NULL-safe; works on purged buffers. A corrupted canary means something wrote
 * next to a secret: every live buffer is wiped and the process aborts with a
 * message on stderr (which never contains secret data).
 */
MG_API void mg_buffer_destroy(mg_buffer *b);

#ifdef __cplusplus
}
#endif

#endif
