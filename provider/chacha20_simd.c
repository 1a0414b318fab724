/*
 * ChaCha20 (RFC 8439) keystream XOR, 16 blocks at a time with AVX-512 and 8 with AVX2: each
 * vector lane is one block, so the 16 state words are 16 registers. The key is broadcast
 * from the guarded key buffer straight into registers; nothing key-derived is written to
 * memory except the output (and, on AVX2 with its 16 registers, spills the caller burns).
 */
#include <string.h>

#include <immintrin.h>
#include <sodium.h>

#include <memguard/memguard.h>

#include "chacha_simd.h"
#include "simd.h"

static uint32_t load32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* "expand 32-byte k" */
#define SIGMA0 0x61707865u
#define SIGMA1 0x3320646eu
#define SIGMA2 0x79622d32u
#define SIGMA3 0x6b206574u

/* One quarter round on four state vectors, with the width's add/xor/rotate. */
#define QR(ADD, XOR, ROT, a, b, c, d)                                                                                  \
    do {                                                                                                               \
        a = ADD(a, b), d = ROT(XOR(d, a), 16);                                                                         \
        c = ADD(c, d), b = ROT(XOR(b, c), 12);                                                                         \
        a = ADD(a, b), d = ROT(XOR(d, a), 8);                                                                          \
        c = ADD(c, d), b = ROT(XOR(b, c), 7);                                                                          \
    } while (0)

#define DOUBLE_ROUND(ADD, XOR, ROT, x)                                                                                 \
    do {                                                                                                               \
        QR(ADD, XOR, ROT, x[0], x[4], x[8], x[12]);                                                                    \
        QR(ADD, XOR, ROT, x[1], x[5], x[9], x[13]);                                                                    \
        QR(ADD, XOR, ROT, x[2], x[6], x[10], x[14]);                                                                   \
        QR(ADD, XOR, ROT, x[3], x[7], x[11], x[15]);                                                                   \
        QR(ADD, XOR, ROT, x[0], x[5], x[10], x[15]);                                                                   \
        QR(ADD, XOR, ROT, x[1], x[6], x[11], x[12]);                                                                   \
        QR(ADD, XOR, ROT, x[2], x[7], x[8], x[13]);                                                                    \
        QR(ADD, XOR, ROT, x[3], x[4], x[9], x[14]);                                                                    \
    } while (0)

/* ---- AVX-512: 16 blocks ---- */

#define ADD16(a, b) _mm512_add_epi32(a, b)
#define XOR16(a, b) _mm512_xor_si512(a, b)
#define ROT16(a, n) _mm512_rol_epi32(a, n)

__attribute__((target("avx512f"))) static __m512i init16(const unsigned char key[32], const unsigned char nonce[12],
                                                         uint32_t ctr, int i)
{
    switch (i) {
    case 0: return _mm512_set1_epi32((int)SIGMA0);
    case 1: return _mm512_set1_epi32((int)SIGMA1);
    case 2: return _mm512_set1_epi32((int)SIGMA2);
    case 3: return _mm512_set1_epi32((int)SIGMA3);
    case 12:
        return _mm512_add_epi32(_mm512_set1_epi32((int)ctr),
                                _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0));
    case 13:
    case 14:
    case 15: return _mm512_set1_epi32((int)load32(nonce + 4 * (i - 13)));
    default: return _mm512_set1_epi32((int)load32(key + 4 * (i - 4)));
    }
}

/* Blocks 4L+k (L = 0..3) from u0..u3 (words 0-3, 4-7, 8-11, 12-15 of block 4L+k in 128-bit lane L). */
__attribute__((target("avx512f"), always_inline)) static inline void out16(__m512i u0, __m512i u1, __m512i u2,
                                                                           __m512i u3, const unsigned char *in,
                                                                           unsigned char *out, size_t k, size_t n)
{
    __m512i p0 = _mm512_shuffle_i32x4(u0, u1, 0x44), p1 = _mm512_shuffle_i32x4(u2, u3, 0x44);
    __m512i p2 = _mm512_shuffle_i32x4(u0, u1, 0xee), p3 = _mm512_shuffle_i32x4(u2, u3, 0xee);
#define OUT16(l, v)                                                                                                    \
    if (4 * (l) + k < n)                                                                                               \
    _mm512_storeu_si512(out + 64 * (4 * (l) + k), _mm512_xor_si512(_mm512_loadu_si512(in + 64 * (4 * (l) + k)), v))
    OUT16(0, _mm512_shuffle_i32x4(p0, p1, 0x88));
    OUT16(1, _mm512_shuffle_i32x4(p0, p1, 0xdd));
    OUT16(2, _mm512_shuffle_i32x4(p2, p3, 0x88));
    OUT16(3, _mm512_shuffle_i32x4(p2, p3, 0xdd));
#undef OUT16
}

/* n blocks (1..16) from counter ctr; blocks past n are computed and dropped. Named variables,
 * not arrays: 16 state vectors fit AVX-512's 32 registers, so no state word is spilled. */
__attribute__((target("avx512f"))) static void chacha_x16(const unsigned char key[32], const unsigned char nonce[12],
                                                          uint32_t ctr, const unsigned char *in, unsigned char *out,
                                                          size_t n)
{
#define V(i) __m512i x##i = init16(key, nonce, ctr, i)
    V(0); V(1); V(2); V(3); V(4); V(5); V(6); V(7); V(8); V(9); V(10); V(11); V(12); V(13); V(14); V(15);
#undef V
    for (int r = 0; r < 10; r++) {
        QR(ADD16, XOR16, ROT16, x0, x4, x8, x12);
        QR(ADD16, XOR16, ROT16, x1, x5, x9, x13);
        QR(ADD16, XOR16, ROT16, x2, x6, x10, x14);
        QR(ADD16, XOR16, ROT16, x3, x7, x11, x15);
        QR(ADD16, XOR16, ROT16, x0, x5, x10, x15);
        QR(ADD16, XOR16, ROT16, x1, x6, x11, x12);
        QR(ADD16, XOR16, ROT16, x2, x7, x8, x13);
        QR(ADD16, XOR16, ROT16, x3, x4, x9, x14);
    }
    /* Reload the inputs rather than keep 16 more vectors alive (they would be spilled to the stack). */
    __asm__ __volatile__("" ::: "memory");
#define V(i) x##i = _mm512_add_epi32(x##i, init16(key, nonce, ctr, i))
    V(0); V(1); V(2); V(3); V(4); V(5); V(6); V(7); V(8); V(9); V(10); V(11); V(12); V(13); V(14); V(15);
#undef V
    /* Transpose: group g's u_k, 128-bit lane L, holds words 4g..4g+3 of block 4L+k. */
#define GROUP(g, a0, a1, a2, a3)                                                                                       \
    __m512i g##lo01 = _mm512_unpacklo_epi32(a0, a1), g##hi01 = _mm512_unpackhi_epi32(a0, a1);                          \
    __m512i g##lo23 = _mm512_unpacklo_epi32(a2, a3), g##hi23 = _mm512_unpackhi_epi32(a2, a3);                          \
    __m512i g##u0 = _mm512_unpacklo_epi64(g##lo01, g##lo23), g##u1 = _mm512_unpackhi_epi64(g##lo01, g##lo23);          \
    __m512i g##u2 = _mm512_unpacklo_epi64(g##hi01, g##hi23), g##u3 = _mm512_unpackhi_epi64(g##hi01, g##hi23)
    GROUP(a, x0, x1, x2, x3);
    GROUP(b, x4, x5, x6, x7);
    GROUP(c, x8, x9, x10, x11);
    GROUP(d, x12, x13, x14, x15);
#undef GROUP
    out16(au0, bu0, cu0, du0, in, out, 0, n);
    out16(au1, bu1, cu1, du1, in, out, 1, n);
    out16(au2, bu2, cu2, du2, in, out, 2, n);
    out16(au3, bu3, cu3, du3, in, out, 3, n);
}

/* ---- AVX2: 8 blocks ---- */

#define ADD8(a, b) _mm256_add_epi32(a, b)
#define XOR8(a, b) _mm256_xor_si256(a, b)
__attribute__((target("avx2"))) static inline __m256i rot8x(__m256i a, int n)
{
    /* 16- and 8-bit rotations are byte shuffles; the others shift. */
    if (n == 16)
        return _mm256_shuffle_epi8(a, _mm256_set_epi8(13, 12, 15, 14, 9, 8, 11, 10, 5, 4, 7, 6, 1, 0, 3, 2, 13, 12, 15,
                                                      14, 9, 8, 11, 10, 5, 4, 7, 6, 1, 0, 3, 2));
    if (n == 8)
        return _mm256_shuffle_epi8(a, _mm256_set_epi8(14, 13, 12, 15, 10, 9, 8, 11, 6, 5, 4, 7, 2, 1, 0, 3, 14, 13, 12,
                                                      15, 10, 9, 8, 11, 6, 5, 4, 7, 2, 1, 0, 3));
    return _mm256_or_si256(_mm256_slli_epi32(a, n), _mm256_srli_epi32(a, 32 - n));
}
#define ROT8(a, n) rot8x(a, n)

__attribute__((target("avx2"))) static __m256i init8(const unsigned char key[32], const unsigned char nonce[12],
                                                     uint32_t ctr, int i)
{
    switch (i) {
    case 0: return _mm256_set1_epi32((int)SIGMA0);
    case 1: return _mm256_set1_epi32((int)SIGMA1);
    case 2: return _mm256_set1_epi32((int)SIGMA2);
    case 3: return _mm256_set1_epi32((int)SIGMA3);
    case 12: return _mm256_add_epi32(_mm256_set1_epi32((int)ctr), _mm256_set_epi32(7, 6, 5, 4, 3, 2, 1, 0));
    case 13:
    case 14:
    case 15: return _mm256_set1_epi32((int)load32(nonce + 4 * (i - 13)));
    default: return _mm256_set1_epi32((int)load32(key + 4 * (i - 4)));
    }
}

/* n blocks (1..8) from counter ctr. Inlined into an AVX2 and an AVX-512VL function: with VL's 32
 * registers nothing is spilled, with plain AVX2's 16 state words are (the caller burns them). */
__attribute__((target("avx2"), always_inline)) static inline void x8_body(const unsigned char key[32],
                                                                         const unsigned char nonce[12], uint32_t ctr,
                                                                         const unsigned char *in, unsigned char *out,
                                                                         size_t n, unsigned char *out1)
{
#define V(i) __m256i x##i = init8(key, nonce, ctr, i)
    V(0); V(1); V(2); V(3); V(4); V(5); V(6); V(7); V(8); V(9); V(10); V(11); V(12); V(13); V(14); V(15);
#undef V
    for (int r = 0; r < 10; r++) {
        QR(ADD8, XOR8, ROT8, x0, x4, x8, x12);
        QR(ADD8, XOR8, ROT8, x1, x5, x9, x13);
        QR(ADD8, XOR8, ROT8, x2, x6, x10, x14);
        QR(ADD8, XOR8, ROT8, x3, x7, x11, x15);
        QR(ADD8, XOR8, ROT8, x0, x5, x10, x15);
        QR(ADD8, XOR8, ROT8, x1, x6, x11, x12);
        QR(ADD8, XOR8, ROT8, x2, x7, x8, x13);
        QR(ADD8, XOR8, ROT8, x3, x4, x9, x14);
    }
    __asm__ __volatile__("" ::: "memory");
#define V(i) x##i = _mm256_add_epi32(x##i, init8(key, nonce, ctr, i))
    V(0); V(1); V(2); V(3); V(4); V(5); V(6); V(7); V(8); V(9); V(10); V(11); V(12); V(13); V(14); V(15);
#undef V
#define GROUP(g, a0, a1, a2, a3)                                                                                       \
    __m256i g##lo01 = _mm256_unpacklo_epi32(a0, a1), g##hi01 = _mm256_unpackhi_epi32(a0, a1);                          \
    __m256i g##lo23 = _mm256_unpacklo_epi32(a2, a3), g##hi23 = _mm256_unpackhi_epi32(a2, a3);                          \
    __m256i g##u0 = _mm256_unpacklo_epi64(g##lo01, g##lo23), g##u1 = _mm256_unpackhi_epi64(g##lo01, g##lo23);          \
    __m256i g##u2 = _mm256_unpacklo_epi64(g##hi01, g##hi23), g##u3 = _mm256_unpackhi_epi64(g##hi01, g##hi23)
    GROUP(a, x0, x1, x2, x3);
    GROUP(b, x4, x5, x6, x7);
    GROUP(c, x8, x9, x10, x11);
    GROUP(d, x12, x13, x14, x15);
#undef GROUP
    /* 128-bit lane L of group g's u_k is words 4g..4g+3 of block 4L+k. */
#define OUT8(k, u0, u1, u2, u3)                                                                                        \
    do {                                                                                                               \
        if ((k) < n) {                                                                                                 \
            const unsigned char *i0 = in + 64 * (k);                                                                   \
            unsigned char *o0 = (k) == 1 && out1 != NULL ? out1 : out + 64 * (k);                                     \
            _mm256_storeu_si256((__m256i *)(void *)o0,                                                                 \
                                _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(const void *)i0),                \
                                                 _mm256_permute2x128_si256(u0, u1, 0x20)));                            \
            _mm256_storeu_si256((__m256i *)(void *)(o0 + 32),                                                          \
                                _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(const void *)(i0 + 32)),         \
                                                 _mm256_permute2x128_si256(u2, u3, 0x20)));                            \
        }                                                                                                              \
        if (4 + (k) < n) {                                                                                             \
            const unsigned char *i1 = in + 64 * (4 + (k));                                                             \
            unsigned char *o1 = out + 64 * (4 + (k));                                                                  \
            _mm256_storeu_si256((__m256i *)(void *)o1,                                                                 \
                                _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(const void *)i1),                \
                                                 _mm256_permute2x128_si256(u0, u1, 0x31)));                            \
            _mm256_storeu_si256((__m256i *)(void *)(o1 + 32),                                                          \
                                _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(const void *)(i1 + 32)),         \
                                                 _mm256_permute2x128_si256(u2, u3, 0x31)));                            \
        }                                                                                                              \
    } while (0)
    OUT8(0u, au0, bu0, cu0, du0);
    OUT8(1u, au1, bu1, cu1, du1);
    OUT8(2u, au2, bu2, cu2, du2);
    OUT8(3u, au3, bu3, cu3, du3);
#undef OUT8
}

__attribute__((target("avx2"))) static void chacha_x8(const unsigned char key[32], const unsigned char nonce[12],
                                                      uint32_t ctr, const unsigned char *in, unsigned char *out,
                                                      size_t n, unsigned char *out1)
{
    x8_body(key, nonce, ctr, in, out, n, out1);
}

/* Short tails on AVX-512 machines: a 16-block pass costs twice the latency-bound 8-block one. */
__attribute__((target("avx2,avx512f,avx512vl"))) static void chacha_x8vl(const unsigned char key[32],
                                                                         const unsigned char nonce[12], uint32_t ctr,
                                                                         const unsigned char *in, unsigned char *out,
                                                                         size_t n, unsigned char *out1)
{
    x8_body(key, nonce, ctr, in, out, n, out1);
}

/* Even one block: libsodium 1.0.18 computes short tails one block at a time in scalar code (~130 ns
 * a block here), slower than a whole 8-block pass. */
#define VECTOR_TAIL_MIN 1

void mgp_chacha20_xor_blocks(const unsigned char key[32], const unsigned char nonce[12], uint32_t ctr,
                             const unsigned char *in, unsigned char *out, size_t nblocks)
{
    size_t width = (size_t)mgp_simd_chacha_width();
    int avx512 = width == 16;
    while (width != 0 && nblocks >= VECTOR_TAIL_MIN) {
        size_t n = nblocks < width ? nblocks : width;
        if (n > 8)
            chacha_x16(key, nonce, ctr, in, out, n);
        else if (avx512)
            chacha_x8vl(key, nonce, ctr, in, out, n, NULL);
        else
            chacha_x8(key, nonce, ctr, in, out, n, NULL);
        ctr += (uint32_t)n, in += 64 * n, out += 64 * n, nblocks -= n;
    }
    if (nblocks > 0)
        crypto_stream_chacha20_ietf_xor_ic(out, in, 64 * nblocks, nonce, ctr, key);
}

void mgp_chacha20_blocks01(const unsigned char key[32], const unsigned char nonce[12], unsigned char b0[64],
                           unsigned char b1[64])
{
    static const unsigned char zeros[128];
    int width = mgp_simd_chacha_width();
    if (width == 16) {
        chacha_x8vl(key, nonce, 0, zeros, b0, 2, b1);
    } else if (width == 8) {
        chacha_x8(key, nonce, 0, zeros, b0, 2, b1);
    } else {
        crypto_stream_chacha20_ietf_xor_ic(b0, zeros, 64, nonce, 0, key);
        crypto_stream_chacha20_ietf_xor_ic(b1, zeros, 64, nonce, 1, key);
    }
}

__attribute__((noinline)) void mgp_chacha_burn(void)
{
    unsigned char area[MGP_CHACHA_BURN_BYTES];
    mg_wipe(area, sizeof area);
    __asm__ __volatile__("" : : "r"(area) : "memory");
}
