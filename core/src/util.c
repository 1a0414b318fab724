/* Helpers on plain memory: wipe, scramble, constant-time compare and copy. */
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
    const volatile unsigned char *x = a;
    const volatile unsigned char *y = b;
    unsigned char d = 0;
    for (size_t i = 0; i < n; i++)
        d |= (unsigned char)(x[i] ^ y[i]);
    /* 1 iff d == 0, without a branch on d. */
    return (int)(1 & ((unsigned)(d - 1) >> 8));
}

void mg_copy(void *dst, const void *src, size_t n)
{
    volatile unsigned char *d = dst;
    const volatile unsigned char *s = src;
    for (size_t i = 0; i < n; i++)
        d[i] = s[i];
}

void mg_move(void *dst, void *src, size_t n)
{
    mg_copy(dst, src, n);
    mg_wipe(src, n);
}
