/*
 * Poly1305 (RFC 8439, section 2.5) in radix 2^44 (limbs of 44, 44, 42 bits), so that one
 * AVX-512 IFMA multiply-add (52x52 bits) covers a limb product; 8 blocks are absorbed per
 * step, lane j multiplying by r^8 and, at the last step, by r^(8-j). Without IFMA, AVX2
 * absorbs 4 blocks per step the same way in radix 2^26 (one 32x32-bit multiply per limb
 * product), converting the accumulator and r^1..r^4 on entry and back on exit. The state - r,
 * its powers, s and the accumulator - is the caller's guarded buffer; short inputs and tails
 * use the same arithmetic in scalar code.
 */
#include <string.h>

#include <immintrin.h>

#include <memguard/memguard.h>

#include "chacha_simd.h"
#include "simd.h"

#define M44 ((UINT64_C(1) << 44) - 1)
#define M42 ((UINT64_C(1) << 42) - 1)

__extension__ typedef unsigned __int128 u128;

typedef struct poly_state {
    uint64_t pw[3][8]; /* limb i of r^(8-j) in lane j: r^8 .. r^1 */
    uint64_t h[3];     /* accumulator, partially reduced */
    uint64_t s[2];     /* the pad added at the end */
    unsigned char buf[16];
    uint32_t buflen;
    uint32_t powers; /* r^2..r^powers computed (0, 4 or 8): only once a vector step comes, short messages skip it */
} poly_state;
_Static_assert(sizeof(poly_state) <= MGP_POLY1305_STATE_BYTES, "Poly1305 state too big for its guarded slot");

static uint64_t load64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static void store64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

/* h = h * r mod 2^130 - 5, partially reduced (limbs below 2^44 + 2^14). 2^132 = 20 mod p. */
static void mul44(uint64_t h[3], uint64_t r0, uint64_t r1, uint64_t r2)
{
    uint64_t s1 = r1 * 20, s2 = r2 * 20;
    u128 d0 = (u128)h[0] * r0 + (u128)h[1] * s2 + (u128)h[2] * s1;
    u128 d1 = (u128)h[0] * r1 + (u128)h[1] * r0 + (u128)h[2] * s2;
    u128 d2 = (u128)h[0] * r2 + (u128)h[1] * r1 + (u128)h[2] * r0;
    d1 += (uint64_t)(d0 >> 44);
    d2 += (uint64_t)(d1 >> 44);
    uint64_t h0 = ((uint64_t)d0 & M44) + (uint64_t)(d2 >> 42) * 5;
    h[1] = ((uint64_t)d1 & M44) + (h0 >> 44);
    h[0] = h0 & M44;
    h[2] = (uint64_t)d2 & M42;
}

static void block1(poly_state *st, const unsigned char m[16], uint64_t hibit)
{
    uint64_t lo = load64(m), hi = load64(m + 8);
    st->h[0] += lo & M44;
    st->h[1] += (lo >> 44 | hi << 20) & M44;
    st->h[2] += hi >> 24 | hibit << 40;
    mul44(st->h, st->pw[0][7], st->pw[1][7], st->pw[2][7]);
}

/* Partial products of one multiply, split by IFMA into low and high 52 bits, carried to radix 2^44. */
#define VMUL(h0, h1, h2, r0, r1, r2, s1, s2)                                                                           \
    do {                                                                                                               \
        __m512i z = _mm512_setzero_si512();                                                                            \
        __m512i l0 = _mm512_madd52lo_epu64(_mm512_madd52lo_epu64(_mm512_madd52lo_epu64(z, h0, r0), h1, s2), h2, s1);  \
        __m512i g0 = _mm512_madd52hi_epu64(_mm512_madd52hi_epu64(_mm512_madd52hi_epu64(z, h0, r0), h1, s2), h2, s1);  \
        __m512i l1 = _mm512_madd52lo_epu64(_mm512_madd52lo_epu64(_mm512_madd52lo_epu64(z, h0, r1), h1, r0), h2, s2);  \
        __m512i g1 = _mm512_madd52hi_epu64(_mm512_madd52hi_epu64(_mm512_madd52hi_epu64(z, h0, r1), h1, r0), h2, s2);  \
        __m512i l2 = _mm512_madd52lo_epu64(_mm512_madd52lo_epu64(_mm512_madd52lo_epu64(z, h0, r2), h1, r1), h2, r0);  \
        __m512i g2 = _mm512_madd52hi_epu64(_mm512_madd52hi_epu64(_mm512_madd52hi_epu64(z, h0, r2), h1, r1), h2, r0);  \
        l1 = _mm512_add_epi64(l1, _mm512_add_epi64(_mm512_srli_epi64(l0, 44), _mm512_slli_epi64(g0, 8)));           \
        l2 = _mm512_add_epi64(l2, _mm512_add_epi64(_mm512_srli_epi64(l1, 44), _mm512_slli_epi64(g1, 8)));           \
        __m512i c = _mm512_add_epi64(_mm512_srli_epi64(l2, 42), _mm512_slli_epi64(g2, 10));                          \
        h0 = _mm512_add_epi64(_mm512_and_si512(l0, m44), _mm512_add_epi64(c, _mm512_slli_epi64(c, 2)));               \
        h1 = _mm512_add_epi64(_mm512_and_si512(l1, m44), _mm512_srli_epi64(h0, 44));                                  \
        h0 = _mm512_and_si512(h0, m44);                                                                                \
        h2 = _mm512_and_si512(l2, m42);                                                                                \
    } while (0)

#define TIMES20(x) _mm512_add_epi64(_mm512_slli_epi64(x, 4), _mm512_slli_epi64(x, 2))

/* nchunks * 128 bytes, full blocks. */
__attribute__((target("avx512f,avx512ifma"))) static void blocks8(poly_state *st, const unsigned char *m,
                                                                  size_t nchunks)
{
    const __m512i m44 = _mm512_set1_epi64((long long)M44), m42 = _mm512_set1_epi64((long long)M42);
    const __m512i hibit = _mm512_set1_epi64((long long)(UINT64_C(1) << 40));
    const __m512i even = _mm512_set_epi64(14, 12, 10, 8, 6, 4, 2, 0), odd = _mm512_set_epi64(15, 13, 11, 9, 7, 5, 3, 1);
    __m512i r0 = _mm512_set1_epi64((long long)st->pw[0][0]), r1 = _mm512_set1_epi64((long long)st->pw[1][0]);
    __m512i r2 = _mm512_set1_epi64((long long)st->pw[2][0]), s1 = TIMES20(r1), s2 = TIMES20(r2);
    __m512i h0 = _mm512_zextsi128_si512(_mm_cvtsi64_si128((long long)st->h[0]));
    __m512i h1 = _mm512_zextsi128_si512(_mm_cvtsi64_si128((long long)st->h[1]));
    __m512i h2 = _mm512_zextsi128_si512(_mm_cvtsi64_si128((long long)st->h[2]));
    for (size_t i = 0; i < nchunks; i++, m += 128) {
        __m512i a = _mm512_loadu_si512(m), b = _mm512_loadu_si512(m + 64);
        __m512i lo = _mm512_permutex2var_epi64(a, even, b), hi = _mm512_permutex2var_epi64(a, odd, b);
        h0 = _mm512_add_epi64(h0, _mm512_and_si512(lo, m44));
        h1 = _mm512_add_epi64(
            h1, _mm512_and_si512(_mm512_or_si512(_mm512_srli_epi64(lo, 44), _mm512_slli_epi64(hi, 20)), m44));
        h2 = _mm512_add_epi64(h2, _mm512_or_si512(_mm512_srli_epi64(hi, 24), hibit));
        if (i + 1 == nchunks) { /* the last step: lane j by r^(8-j) */
            r0 = _mm512_loadu_si512(st->pw[0]), r1 = _mm512_loadu_si512(st->pw[1]);
            r2 = _mm512_loadu_si512(st->pw[2]), s1 = TIMES20(r1), s2 = TIMES20(r2);
        }
        VMUL(h0, h1, h2, r0, r1, r2, s1, s2);
    }
    uint64_t t0 = (uint64_t)_mm512_reduce_add_epi64(h0), t1 = (uint64_t)_mm512_reduce_add_epi64(h1);
    uint64_t t2 = (uint64_t)_mm512_reduce_add_epi64(h2);
    t1 += t0 >> 44, t0 &= M44;
    t2 += t1 >> 44, t1 &= M44;
    t0 += (t2 >> 42) * 5, t2 &= M42;
    t1 += t0 >> 44, t0 &= M44;
    st->h[0] = t0, st->h[1] = t1, st->h[2] = t2;
}

int mgp_poly1305_vector(void)
{
    return mgp_simd_poly1305() != 0;
}

/* ---- AVX2: radix 2^26, 4 blocks per step ---- */

#define M26 ((UINT64_C(1) << 26) - 1)

/* Radix 2^44 (partially reduced) to 26-bit limbs: carried first, so that limbs 0 and 1 fit 44 bits. */
static void to26(uint64_t t0, uint64_t t1, uint64_t t2, uint64_t l[5])
{
    uint64_t c = t1 >> 44;
    t1 &= M44, t2 += c;
    c = t2 >> 42, t2 &= M42, t0 += c * 5;
    c = t0 >> 44, t0 &= M44, t1 += c;
    c = t1 >> 44, t1 &= M44, t2 += c; /* t2 may reach 2^42: its top bit lands in l[4] */
    l[0] = t0 & M26;
    l[1] = (t0 >> 26) | (t1 & 0xff) << 18;
    l[2] = (t1 >> 8) & M26;
    l[3] = (t1 >> 34) | (t2 & 0xffff) << 10;
    l[4] = t2 >> 16;
}

/* 26-bit limbs (each below 2^32) back to radix 2^44, partially reduced. */
static void from26(const uint64_t l[5], uint64_t h[3])
{
    uint64_t t0 = l[0] + (l[1] << 26);
    uint64_t t1 = (t0 >> 44) + (l[2] << 8) + (l[3] << 34);
    uint64_t t2 = (t1 >> 44) + (l[4] << 16);
    t0 &= M44, t1 &= M44;
    uint64_t c = t2 >> 42;
    t2 &= M42, t0 += c * 5;
    h[0] = t0 & M44, h[1] = t1 + (t0 >> 44), h[2] = t2;
}

/* h = h * r in each lane, 26-bit limbs; s = 5r. Limbs in: below 2^27; out: below 2^26 (+ a carry in h1). */
#define VMUL26(h, r, s)                                                                                                \
    do {                                                                                                               \
        __m256i d0 = _mm256_add_epi64(                                                                                 \
            _mm256_add_epi64(_mm256_mul_epu32(h[0], r[0]), _mm256_mul_epu32(h[1], s[4])),                              \
            _mm256_add_epi64(_mm256_add_epi64(_mm256_mul_epu32(h[2], s[3]), _mm256_mul_epu32(h[3], s[2])),             \
                             _mm256_mul_epu32(h[4], s[1])));                                                           \
        __m256i d1 = _mm256_add_epi64(                                                                                 \
            _mm256_add_epi64(_mm256_mul_epu32(h[0], r[1]), _mm256_mul_epu32(h[1], r[0])),                              \
            _mm256_add_epi64(_mm256_add_epi64(_mm256_mul_epu32(h[2], s[4]), _mm256_mul_epu32(h[3], s[3])),             \
                             _mm256_mul_epu32(h[4], s[2])));                                                           \
        __m256i d2 = _mm256_add_epi64(                                                                                 \
            _mm256_add_epi64(_mm256_mul_epu32(h[0], r[2]), _mm256_mul_epu32(h[1], r[1])),                              \
            _mm256_add_epi64(_mm256_add_epi64(_mm256_mul_epu32(h[2], r[0]), _mm256_mul_epu32(h[3], s[4])),             \
                             _mm256_mul_epu32(h[4], s[3])));                                                           \
        __m256i d3 = _mm256_add_epi64(                                                                                 \
            _mm256_add_epi64(_mm256_mul_epu32(h[0], r[3]), _mm256_mul_epu32(h[1], r[2])),                              \
            _mm256_add_epi64(_mm256_add_epi64(_mm256_mul_epu32(h[2], r[1]), _mm256_mul_epu32(h[3], r[0])),             \
                             _mm256_mul_epu32(h[4], s[4])));                                                           \
        __m256i d4 = _mm256_add_epi64(                                                                                 \
            _mm256_add_epi64(_mm256_mul_epu32(h[0], r[4]), _mm256_mul_epu32(h[1], r[3])),                              \
            _mm256_add_epi64(_mm256_add_epi64(_mm256_mul_epu32(h[2], r[2]), _mm256_mul_epu32(h[3], r[1])),             \
                             _mm256_mul_epu32(h[4], r[0])));                                                           \
        __m256i c;                                                                                                     \
        c = _mm256_srli_epi64(d0, 26), d0 = _mm256_and_si256(d0, m26), d1 = _mm256_add_epi64(d1, c);                   \
        c = _mm256_srli_epi64(d1, 26), d1 = _mm256_and_si256(d1, m26), d2 = _mm256_add_epi64(d2, c);                   \
        c = _mm256_srli_epi64(d2, 26), d2 = _mm256_and_si256(d2, m26), d3 = _mm256_add_epi64(d3, c);                   \
        c = _mm256_srli_epi64(d3, 26), d3 = _mm256_and_si256(d3, m26), d4 = _mm256_add_epi64(d4, c);                   \
        c = _mm256_srli_epi64(d4, 26), d4 = _mm256_and_si256(d4, m26);                                                 \
        d0 = _mm256_add_epi64(d0, _mm256_add_epi64(c, _mm256_slli_epi64(c, 2)));                                       \
        c = _mm256_srli_epi64(d0, 26), d0 = _mm256_and_si256(d0, m26), d1 = _mm256_add_epi64(d1, c);                   \
        h[0] = d0, h[1] = d1, h[2] = d2, h[3] = d3, h[4] = d4;                                                         \
    } while (0)

__attribute__((target("avx2"))) static uint64_t hsum(__m256i v)
{
    __m128i x = _mm_add_epi64(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    return (uint64_t)_mm_cvtsi128_si64(x) + (uint64_t)_mm_extract_epi64(x, 1);
}

/*
 * nchunks * 64 bytes, full blocks. The loads put blocks 0, 2, 1, 3 of a chunk in lanes 0..3,
 * so the last step multiplies the lanes by r^4, r^2, r^3, r^1.
 */
__attribute__((target("avx2"))) static void blocks4(poly_state *st, const unsigned char *m, size_t nchunks)
{
    const __m256i m26 = _mm256_set1_epi64x((long long)M26), hibit = _mm256_set1_epi64x(1 << 24);
    uint64_t p[4][5], l[5];
    for (int k = 1; k <= 4; k++) /* r^k */
        to26(st->pw[0][8 - k], st->pw[1][8 - k], st->pw[2][8 - k], p[k - 1]);
    __m256i r[5], s[5], h[5];
    to26(st->h[0], st->h[1], st->h[2], l);
    for (int i = 0; i < 5; i++) {
        r[i] = _mm256_set1_epi64x((long long)p[3][i]);
        s[i] = _mm256_add_epi64(r[i], _mm256_slli_epi64(r[i], 2));
        h[i] = _mm256_set_epi64x(0, 0, 0, (long long)l[i]);
    }
    for (size_t n = 0; n < nchunks; n++, m += 64) {
        __m256i a = _mm256_loadu_si256((const __m256i *)(const void *)m);
        __m256i b = _mm256_loadu_si256((const __m256i *)(const void *)(m + 32));
        __m256i lo = _mm256_unpacklo_epi64(a, b), hi = _mm256_unpackhi_epi64(a, b);
        h[0] = _mm256_add_epi64(h[0], _mm256_and_si256(lo, m26));
        h[1] = _mm256_add_epi64(h[1], _mm256_and_si256(_mm256_srli_epi64(lo, 26), m26));
        h[2] = _mm256_add_epi64(h[2],
                                _mm256_and_si256(_mm256_or_si256(_mm256_srli_epi64(lo, 52), _mm256_slli_epi64(hi, 12)), m26));
        h[3] = _mm256_add_epi64(h[3], _mm256_and_si256(_mm256_srli_epi64(hi, 14), m26));
        h[4] = _mm256_add_epi64(h[4], _mm256_or_si256(_mm256_srli_epi64(hi, 40), hibit));
        if (n + 1 == nchunks) /* the last step: lanes by r^4, r^2, r^3, r^1 */
            for (int i = 0; i < 5; i++) {
                r[i] = _mm256_set_epi64x((long long)p[0][i], (long long)p[2][i], (long long)p[1][i], (long long)p[3][i]);
                s[i] = _mm256_add_epi64(r[i], _mm256_slli_epi64(r[i], 2));
            }
        VMUL26(h, r, s);
    }
    for (int i = 0; i < 5; i++)
        l[i] = hsum(h[i]);
    from26(l, st->h);
    mg_wipe(p, sizeof p);
    mg_wipe(l, sizeof l);
}

void mgp_poly1305_init(void *vst, const unsigned char key[32])
{
    poly_state *st = vst;
    uint64_t lo = load64(key) & UINT64_C(0x0ffffffc0fffffff), hi = load64(key + 8) & UINT64_C(0x0ffffffc0ffffffc);
    st->pw[0][7] = lo & M44, st->pw[1][7] = (lo >> 44 | hi << 20) & M44, st->pw[2][7] = hi >> 24;
    st->powers = 0;
    st->h[0] = st->h[1] = st->h[2] = 0;
    st->s[0] = load64(key + 16), st->s[1] = load64(key + 24);
    st->buflen = 0;
}

/* pw[.][8-k] = r^k for k = 2..upto, each from the one before it, in place in the guarded state. */
static void make_powers(poly_state *st, uint32_t upto)
{
    for (uint32_t k = st->powers < 2 ? 2 : st->powers + 1; k <= upto; k++) {
        uint64_t t[3] = {st->pw[0][9 - k], st->pw[1][9 - k], st->pw[2][9 - k]};
        mul44(t, st->pw[0][7], st->pw[1][7], st->pw[2][7]);
        st->pw[0][8 - k] = t[0], st->pw[1][8 - k] = t[1], st->pw[2][8 - k] = t[2];
        mg_wipe(t, sizeof t);
    }
    if (upto > st->powers)
        st->powers = upto;
}

/* Below this, AVX2's set-up (r^2..r^4, converting them and the accumulator) costs more than it saves. */
#define AVX2_MIN 256

void mgp_poly1305_update(void *vst, const unsigned char *in, size_t len)
{
    poly_state *st = vst;
    if (st->buflen > 0) {
        size_t n = len < 16u - st->buflen ? len : 16u - st->buflen;
        memcpy(st->buf + st->buflen, in, n);
        st->buflen += (uint32_t)n, in += n, len -= n;
        if (st->buflen < 16)
            return;
        block1(st, st->buf, 1);
        st->buflen = 0;
    }
    int path = mgp_simd_poly1305();
    if (len >= 128 && path == 2) {
        make_powers(st, 8);
        blocks8(st, in, len / 128);
        in += len - len % 128, len %= 128;
    } else if (len >= AVX2_MIN && path == 1) {
        make_powers(st, 4);
        blocks4(st, in, len / 64);
        in += len - len % 64, len %= 64;
    }
    for (; len >= 16; in += 16, len -= 16)
        block1(st, in, 1);
    if (len > 0) {
        memcpy(st->buf, in, len);
        st->buflen = (uint32_t)len;
    }
}

void mgp_poly1305_final(void *vst, unsigned char tag[16])
{
    poly_state *st = vst;
    if (st->buflen > 0) { /* a short last block: a 1 byte after it, no 2^128 bit */
        st->buf[st->buflen] = 1;
        memset(st->buf + st->buflen + 1, 0, 15 - st->buflen);
        block1(st, st->buf, 0);
    }
    uint64_t h0 = st->h[0], h1 = st->h[1], h2 = st->h[2], c;
    c = h1 >> 44, h1 &= M44, h2 += c;
    c = h2 >> 42, h2 &= M42, h0 += c * 5;
    c = h0 >> 44, h0 &= M44, h1 += c;
    c = h1 >> 44, h1 &= M44, h2 += c;
    c = h2 >> 42, h2 &= M42, h0 += c * 5;
    c = h0 >> 44, h0 &= M44, h1 += c;
    /* h - p = h + 5 - 2^130: taken, without a branch, when it is not negative. */
    uint64_t g0 = h0 + 5, g1, g2;
    c = g0 >> 44, g0 &= M44;
    g1 = h1 + c, c = g1 >> 44, g1 &= M44;
    g2 = h2 + c - (UINT64_C(1) << 42);
    uint64_t take = (g2 >> 63) - 1;
    h0 = (h0 & ~take) | (g0 & take);
    h1 = (h1 & ~take) | (g1 & take);
    h2 = (h2 & ~take) | (g2 & take);
    uint64_t lo = h0 + (h1 << 44), hi = (h1 >> 20) + (h2 << 24);
    u128 t = (u128)lo + st->s[0];
    store64(tag, (uint64_t)t);
    store64(tag + 8, hi + st->s[1] + (uint64_t)(t >> 64));
    mg_wipe(st, sizeof *st);
}
