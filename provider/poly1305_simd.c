/*
 * Poly1305 (RFC 8439, section 2.5) in radix 2^44 (limbs of 44, 44, 42 bits), so that one
 * AVX-512 IFMA multiply-add (52x52 bits) covers a limb product; 8 blocks are absorbed per
 * step, lane j multiplying by r^8 and, at the last step, by r^(8-j). The state - r, its
 * powers, s and the accumulator - is the caller's guarded buffer; short inputs and tails use
 * the same arithmetic in scalar code.
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
    uint32_t powers; /* r^2..r^8 computed: only once 128 bytes arrive, short messages skip it */
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

int mgp_poly1305_ifma(void)
{
    return mgp_simd_ifma();
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

/* pw[.][8-k] = r^k for k = 2..8, each from the one before it, in place in the guarded state. */
static void make_powers(poly_state *st)
{
    for (int k = 2; k <= 8; k++) {
        uint64_t t[3] = {st->pw[0][9 - k], st->pw[1][9 - k], st->pw[2][9 - k]};
        mul44(t, st->pw[0][7], st->pw[1][7], st->pw[2][7]);
        st->pw[0][8 - k] = t[0], st->pw[1][8 - k] = t[1], st->pw[2][8 - k] = t[2];
        mg_wipe(t, sizeof t);
    }
    st->powers = 1;
}

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
    if (len >= 128) {
        if (!st->powers)
            make_powers(st);
        blocks8(st, in, len / 128);
        in += len - len % 128, len %= 128;
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
