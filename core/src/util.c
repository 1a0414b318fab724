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

#define SCRUB_MAX (64 * 1024)

/*
 * Zero n bytes of stack below the caller's frame; noinline so that the area is below it. One
 * function per size: the frame is as large as the area (stack probes touch every page of it), and
 * threads with small stacks (stunnel's are 64 KiB) must only get what fits.
 */
#define SCRUB_FN(kib)                                                                                 \
    __attribute__((noinline)) static void scrub_##kib(void)                                          \
    {                                                                                                 \
        unsigned char area[(kib) * 1024];                                                             \
        mg_wipe(area, sizeof area);                                                                   \
        __asm__ __volatile__("" : : "r"(area) : "memory");                                          \
    }
SCRUB_FN(4)
SCRUB_FN(8)
SCRUB_FN(16)
SCRUB_FN(32)
SCRUB_FN(64)

/* Headroom left below the scrubbed area: scrub's own frames, a signal handler's. */
#define SCRUB_MARGIN (16 * 1024)

/* How much stack is free below the caller, or 0 if unknown (the thread's bounds are cached). */
static size_t stack_room(void)
{
    static _Thread_local uintptr_t low; /* 1: asked, unknown */
    if (low == 0 && mg_os_stack_low(&low) != 0)
        low = 1;
    uintptr_t here = (uintptr_t)__builtin_frame_address(0);
    if (low <= 1 || here <= low + SCRUB_MARGIN)
        return 0;
    return here - low - SCRUB_MARGIN;
}

/* The smallest area that covers n and fits in the room below us; else the largest that fits. */
static void scrub_stack(size_t n)
{
    static void (*const fns[])(void) = {scrub_4, scrub_8, scrub_16, scrub_32, scrub_64};
    size_t room = stack_room();
    if (room == 0)
        room = 4096; /* bounds unknown: a page, which every thread has to spare */
    int pick = -1;
    for (int i = 0; i < 5; i++) {
        size_t size = (size_t)4096 << i;
        if (size > room)
            break;
        pick = i;
        if (size >= n)
            break;
    }
    if (pick >= 0)
        fns[pick]();
}

#if defined(__x86_64__)
/*
 * Vector registers are caller-saved and hold whatever memcpy or a cipher last
 * put there; the dynamic linker's lazy binding (xsave) and signal delivery
 * copy them to the stack. vzeroall clears ymm0-15; AVX-512 registers 16-31
 * (which glibc's evex memcpy uses) are cleared one by one.
 */
__attribute__((target("avx"))) static void clear_avx(void)
{
    __asm__ __volatile__("vzeroall" ::: "memory");
}

__attribute__((target("avx512f"))) static void clear_avx512_high(void)
{
    __asm__ __volatile__("vpxord %%zmm16, %%zmm16, %%zmm16\n\tvpxord %%zmm17, %%zmm17, %%zmm17\n\t"
                         "vpxord %%zmm18, %%zmm18, %%zmm18\n\tvpxord %%zmm19, %%zmm19, %%zmm19\n\t"
                         "vpxord %%zmm20, %%zmm20, %%zmm20\n\tvpxord %%zmm21, %%zmm21, %%zmm21\n\t"
                         "vpxord %%zmm22, %%zmm22, %%zmm22\n\tvpxord %%zmm23, %%zmm23, %%zmm23\n\t"
                         "vpxord %%zmm24, %%zmm24, %%zmm24\n\tvpxord %%zmm25, %%zmm25, %%zmm25\n\t"
                         "vpxord %%zmm26, %%zmm26, %%zmm26\n\tvpxord %%zmm27, %%zmm27, %%zmm27\n\t"
                         "vpxord %%zmm28, %%zmm28, %%zmm28\n\tvpxord %%zmm29, %%zmm29, %%zmm29\n\t"
                         "vpxord %%zmm30, %%zmm30, %%zmm30\n\tvpxord %%zmm31, %%zmm31, %%zmm31\n\t"
                         "vzeroupper" ::: "memory");
}

void mg_clear_registers(void)
{
    if (__builtin_cpu_supports("avx512f"))
        clear_avx512_high();
    if (__builtin_cpu_supports("avx"))
        clear_avx();
    else
        __asm__ __volatile__("pxor %%xmm0, %%xmm0\n\tpxor %%xmm1, %%xmm1\n\tpxor %%xmm2, %%xmm2\n\t"
                             "pxor %%xmm3, %%xmm3\n\tpxor %%xmm4, %%xmm4\n\tpxor %%xmm5, %%xmm5\n\t"
                             "pxor %%xmm6, %%xmm6\n\tpxor %%xmm7, %%xmm7\n\tpxor %%xmm8, %%xmm8\n\t"
                             "pxor %%xmm9, %%xmm9\n\tpxor %%xmm10, %%xmm10\n\tpxor %%xmm11, %%xmm11\n\t"
                             "pxor %%xmm12, %%xmm12\n\tpxor %%xmm13, %%xmm13\n\tpxor %%xmm14, %%xmm14\n\t"
                             "pxor %%xmm15, %%xmm15" ::: "memory");
}
#else
void mg_clear_registers(void)
{
}
#endif

void mg_scrub(size_t stack_bytes)
{
    mg_clear_registers();
    if (stack_bytes > 0) /* the frame costs stack probes: not for register-only calls */
        scrub_stack(stack_bytes > SCRUB_MAX ? SCRUB_MAX : stack_bytes);
}
