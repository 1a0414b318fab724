#ifndef MEMGUARD_UTIL_H
#define MEMGUARD_UTIL_H

#include <stddef.h>
#include <memguard/export.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Zero n bytes; the store is never removed by the optimiser. NULL-safe when n == 0. */
MG_API void mg_wipe(void *p, size_t n);

/* Fill n bytes from the kernel's CSPRNG (getrandom). Returns MG_OK or MG_ESYS. */
MG_API int mg_scramble(void *p, size_t n);

/*
 * 1 if the n bytes at a and b are equal, 0 otherwise. The time taken depends
 * only on n, never on the contents or on where they differ. n == 0 gives 1.
 */
MG_API int mg_equal(const void *a, const void *b, size_t n);

/* Copy n bytes in time that depends only on n. Regions must not overlap. */
MG_API void mg_copy(void *dst, const void *src, size_t n);

/* mg_copy, then wipe src. Regions must not overlap. */
MG_API void mg_move(void *dst, void *src, size_t n);

/*
 * Scrub what handling a secret can leave behind outside the buffers that held
 * it: zero `stack_bytes` of this thread's stack below the caller's frame
 * (where callees kept locals and the dynamic linker spilled registers) and, on
 * x86-64, the vector registers that memcpy and crypto code leave secrets in.
 * Call it when the code that touched a secret has returned. stack_bytes is
 * capped at 64 KiB, and at what the calling thread's stack has free below the
 * caller (less 16 KiB of headroom): a thread with a small stack gets less
 * scrubbed, never a stack overflow. The area is rounded up to 4, 8, 16, 32 or
 * 64 KiB where it fits.
 */
MG_API void mg_scrub(size_t stack_bytes);

#ifdef __cplusplus
}
#endif

#endif
