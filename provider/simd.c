/* The cap on memguard's vector code paths (simd.h). */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h> /* secure_getenv: _GNU_SOURCE, set for the whole build */
#include <strings.h>

#include "simd.h"

static _Atomic int cap = -1; /* -1: not read yet */

static int from_environment(void)
{
    static const char *const names[] = {"none", "aesni", "avx2", "avx512"};
    const char *v = secure_getenv("MEMGUARD_SIMD");
    if (v == NULL || *v == '\0')
        return MGP_SIMD_AVX512;
    for (int i = 0; i < (int)(sizeof names / sizeof names[0]); i++)
        if (strcasecmp(v, names[i]) == 0)
            return i;
    fprintf(stderr, "memguard: MEMGUARD_SIMD=%s is not one of avx512, avx2, aesni, none; ignored\n", v);
    return MGP_SIMD_AVX512;
}

int mgp_simd_cap(void)
{
    int c = atomic_load_explicit(&cap, memory_order_relaxed);
    if (c < 0) { /* two threads may both read the environment: they store the same value */
        c = from_environment();
        atomic_store_explicit(&cap, c, memory_order_relaxed);
    }
    return c;
}

void mgp_simd_set_cap(int c)
{
    atomic_store_explicit(&cap, c, memory_order_relaxed);
}

int mgp_simd_aesni(void)
{
    __builtin_cpu_init();
    return mgp_simd_cap() >= MGP_SIMD_AESNI && __builtin_cpu_supports("aes") && __builtin_cpu_supports("pclmul") &&
           __builtin_cpu_supports("ssse3") && __builtin_cpu_supports("sse4.1");
}

int mgp_simd_chacha_width(void)
{
    if (mgp_simd_cap() >= MGP_SIMD_AVX512 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl"))
        return 16;
    if (mgp_simd_cap() >= MGP_SIMD_AVX2 && __builtin_cpu_supports("avx2"))
        return 8;
    return 0;
}

int mgp_simd_poly1305(void)
{
    if (mgp_simd_cap() >= MGP_SIMD_AVX512 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512ifma"))
        return 2;
    if (mgp_simd_cap() >= MGP_SIMD_AVX2 && __builtin_cpu_supports("avx2"))
        return 1;
    return 0;
}

#define AES0 "AES: not offered (no AES-NI)"
#define AES1 "AES: AES-NI"
#define CHACHA0 "ChaCha20: libsodium"
#define CHACHA1 "ChaCha20: AVX2, 8 blocks"
#define CHACHA2 "ChaCha20: AVX-512, 16 blocks"
#define POLY0 "Poly1305: libsodium"
#define POLY1 "Poly1305: AVX2, 4 blocks"
#define POLY2 "Poly1305: AVX-512 IFMA, 8 blocks"
#define WITH(a, c) {a "; " c "; " POLY0, a "; " c "; " POLY1, a "; " c "; " POLY2}
#define ROW(a) {WITH(a, CHACHA0), WITH(a, CHACHA1), WITH(a, CHACHA2)}

const char *mgp_simd_describe(void)
{
    static const char *const text[2][3][3] = {ROW(AES0), ROW(AES1)};
    int w = mgp_simd_chacha_width();
    return text[mgp_simd_aesni() != 0][w == 16 ? 2 : w == 8 ? 1 : 0][mgp_simd_poly1305()];
}
