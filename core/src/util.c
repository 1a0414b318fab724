/* Helpers on plain memory: wipe, scramble, constant-time compare and copy. */
#include <stdint.h>
#include <string.h>

#include "internal.h"
#include "memcall.h"

void mg_wipe(void *p, size_t n)
{
    if (p == NULL || n == 0)
        return;
    /* glibc >= 2.25: a zeroing the compiler may not elide (it is a barrier). */
    explicit_bzero(p, n);
}

int mg_scramble(void *p, size_t n)
{
    if (n == 0)
        return MG_OK;
    if (p == NULL)
        return mg_fail(MG_EINVAL, 0, "NULL pointer");
    int rc = mg_os_random(p, n);
    if (rc != 0)
        return mg_fail(MG_ESYS, -rc, "getrandom: %s", strerror(-rc));
    return MG_OK;
}

int mg_equal(const void *a, const void *b, size_t n)
{
    const unsigned char *x = a, *y = b;
    uint64_t d = 0;
    size_t i = 0;
    /* Word at a time, accumulating differences; never a branch on the contents. */
    for (; i + 8 <= n; i += 8) {
        uint64_t u, v;
        memcpy(&u, x + i, 8);
        memcpy(&v, y + i, 8);
        d |= u ^ v;
    }
    for (; i < n; i++)
        d |= (uint64_t)(x[i] ^ y[i]);
    /* Fold to one bit without branching: d == 0 iff ((d | -d) >> 63) == 0. */
    __asm__("" : "+r"(d)); /* keep the compiler from turning the fold into a branch */
    return (int)(1 & (((d | (0 - d)) >> 63) ^ 1));
}

void mg_copy(void *dst, const void *src, size_t n)
{
    /* memcpy's timing depends on n and alignment only, never on the bytes copied. */
    if (n > 0)
        memcpy(dst, src, n);
}

void mg_move(void *dst, void *src, size_t n)
{
    mg_copy(dst, src, n);
    mg_wipe(src, n);
}
