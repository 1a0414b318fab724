/*
 * AES-128/256 (CTR, CBC, GCM) with AES-NI and PCLMULQDQ only. There is no
 * table-driven fallback on purpose: table AES leaks the key through the cache
 * (Bernstein 2005, Osvik-Shamir-Tromer 2006). Without the instructions the
 * AES algorithms are simply not offered (mgp_cipher_algorithms).
 *
 * Round keys and GHASH powers are read from the guarded key buffer at every
 * use (memory operands), never held in locals that the compiler could spill to
 * the stack; CMake compiles this file with -O2 even in Debug builds, since at
 * -O0 every intrinsic's operands go through stack slots.
 * GHASH works on byte-reflected blocks with the "shift left by one, then
 * reduce" form from Gueron and Kounavis (Intel CLMUL white paper, rev. 2.02),
 * aggregating up to eight blocks per reduction.
 */
#include <string.h>

#include <immintrin.h>

#include "cipher.h"
#include "simd.h"

#define TARGET __attribute__((target("aes,pclmul,ssse3,sse4.1")))

int mgp_aes_available(void)
{
    return mgp_simd_aesni();
}

#define RK(k, r) _mm_load_si128((const __m128i *)(k)->rk[r])
#define DK(k, r) _mm_load_si128((const __m128i *)(k)->dk[r])
#define HP(k, i) _mm_load_si128((const __m128i *)(k)->h[i])
#define HK(k, i) _mm_load_si128((const __m128i *)(k)->hk[i])

/* ---- key schedule ---- */

TARGET static inline __m128i expand_step(__m128i key, __m128i gen)
{
    key = _mm_xor_si128(key, _mm_slli_si128(key, 4));
    key = _mm_xor_si128(key, _mm_slli_si128(key, 4));
    key = _mm_xor_si128(key, _mm_slli_si128(key, 4));
    return _mm_xor_si128(key, gen);
}

#define STORE_RK(k, i, v) _mm_store_si128((__m128i *)(k)->rk[i], (v))
#define EXP128(k, i, rcon) \
    STORE_RK(k, i, expand_step(RK(k, (i) - 1), _mm_shuffle_epi32(_mm_aeskeygenassist_si128(RK(k, (i) - 1), rcon), 0xff)))
/* AES-256: even round keys use RotWord+SubWord+rcon of the previous odd one, odd ones SubWord only. */
#define EXP256_EVEN(k, i, rcon) \
    STORE_RK(k, i, expand_step(RK(k, (i) - 2), _mm_shuffle_epi32(_mm_aeskeygenassist_si128(RK(k, (i) - 1), rcon), 0xff)))
#define EXP256_ODD(k, i) \
    STORE_RK(k, i, expand_step(RK(k, (i) - 2), _mm_shuffle_epi32(_mm_aeskeygenassist_si128(RK(k, (i) - 1), 0), 0xaa)))

static const unsigned char bswap_mask[16] __attribute__((aligned(16))) = {15, 14, 13, 12, 11, 10, 9, 8,
                                                                          7,  6,  5,  4,  3,  2,  1, 0};
#define BSWAP(x) _mm_shuffle_epi8((x), _mm_load_si128((const __m128i *)bswap_mask))

/* Shift the 256-bit product [hi:lo] left by one bit and reduce it modulo x^128 + x^7 + x^2 + x + 1. */
TARGET static inline __m128i gf_reduce(__m128i lo, __m128i mid, __m128i hi)
{
    lo = _mm_xor_si128(lo, _mm_slli_si128(mid, 8));
    hi = _mm_xor_si128(hi, _mm_srli_si128(mid, 8));
    __m128i clo = _mm_srli_epi32(lo, 31), chi = _mm_srli_epi32(hi, 31);
    lo = _mm_slli_epi32(lo, 1);
    hi = _mm_slli_epi32(hi, 1);
    __m128i cross = _mm_srli_si128(clo, 12);
    lo = _mm_or_si128(lo, _mm_slli_si128(clo, 4));
    hi = _mm_or_si128(_mm_or_si128(hi, _mm_slli_si128(chi, 4)), cross);
    __m128i a = _mm_xor_si128(_mm_xor_si128(_mm_slli_epi32(lo, 31), _mm_slli_epi32(lo, 30)), _mm_slli_epi32(lo, 25));
    __m128i carry = _mm_srli_si128(a, 4);
    lo = _mm_xor_si128(lo, _mm_slli_si128(a, 12));
    __m128i b = _mm_xor_si128(_mm_xor_si128(_mm_srli_epi32(lo, 1), _mm_srli_epi32(lo, 2)), _mm_srli_epi32(lo, 7));
    b = _mm_xor_si128(b, carry);
    return _mm_xor_si128(hi, _mm_xor_si128(lo, b));
}

#define CLMUL_ACC(x, h, lo, mid, hi)                                                         \
    do {                                                                                     \
        (lo) = _mm_xor_si128((lo), _mm_clmulepi64_si128((x), (h), 0x00));                    \
        (hi) = _mm_xor_si128((hi), _mm_clmulepi64_si128((x), (h), 0x11));                    \
        (mid) = _mm_xor_si128((mid), _mm_xor_si128(_mm_clmulepi64_si128((x), (h), 0x01),     \
                                                   _mm_clmulepi64_si128((x), (h), 0x10)));  \
    } while (0)

TARGET static __m128i gf_mul(__m128i a, __m128i b)
{
    __m128i lo = _mm_setzero_si128(), mid = lo, hi = lo;
    CLMUL_ACC(a, b, lo, mid, hi);
    return gf_reduce(lo, mid, hi);
}

TARGET static void encrypt_block(const mgp_cipher_keys *k, const unsigned char *in, unsigned char *out)
{
    __m128i x = _mm_xor_si128(_mm_loadu_si128((const __m128i *)in), RK(k, 0));
    for (unsigned r = 1; r < k->rounds; r++)
        x = _mm_aesenc_si128(x, RK(k, r));
    _mm_storeu_si128((__m128i *)out, _mm_aesenclast_si128(x, RK(k, k->rounds)));
}

TARGET void mgp_aes_set_key(mgp_cipher_keys *k, const unsigned char *key, size_t keylen, int dec, int gcm)
{
    if (keylen == 16) {
        k->rounds = 10;
        STORE_RK(k, 0, _mm_loadu_si128((const __m128i *)key));
        EXP128(k, 1, 0x01); EXP128(k, 2, 0x02); EXP128(k, 3, 0x04); EXP128(k, 4, 0x08); EXP128(k, 5, 0x10);
        EXP128(k, 6, 0x20); EXP128(k, 7, 0x40); EXP128(k, 8, 0x80); EXP128(k, 9, 0x1b); EXP128(k, 10, 0x36);
    } else {
        k->rounds = 14;
        STORE_RK(k, 0, _mm_loadu_si128((const __m128i *)key));
        STORE_RK(k, 1, _mm_loadu_si128((const __m128i *)(key + 16)));
        EXP256_EVEN(k, 2, 0x01); EXP256_ODD(k, 3); EXP256_EVEN(k, 4, 0x02); EXP256_ODD(k, 5);
        EXP256_EVEN(k, 6, 0x04); EXP256_ODD(k, 7); EXP256_EVEN(k, 8, 0x08); EXP256_ODD(k, 9);
        EXP256_EVEN(k, 10, 0x10); EXP256_ODD(k, 11); EXP256_EVEN(k, 12, 0x20); EXP256_ODD(k, 13);
        EXP256_EVEN(k, 14, 0x40);
    }
    if (dec) {
        _mm_store_si128((__m128i *)k->dk[0], RK(k, k->rounds));
        for (unsigned r = 1; r < k->rounds; r++)
            _mm_store_si128((__m128i *)k->dk[r], _mm_aesimc_si128(RK(k, k->rounds - r)));
        _mm_store_si128((__m128i *)k->dk[k->rounds], RK(k, 0));
    }
    if (gcm) {
        /* H = E_K(0^128); its powers let GHASH fold eight blocks per reduction. */
        static const unsigned char zero[16];
        encrypt_block(k, zero, k->h[0]);
        _mm_store_si128((__m128i *)k->h[0], BSWAP(HP(k, 0)));
        for (int i = 1; i < MGP_GHASH_POWERS; i++)
            _mm_store_si128((__m128i *)k->h[i], gf_mul(HP(k, i - 1), HP(k, 0)));
        for (int i = 0; i < MGP_GHASH_POWERS; i++)
            _mm_store_si128((__m128i *)k->hk[i], _mm_xor_si128(HP(k, i), _mm_shuffle_epi32(HP(k, i), 0x4e)));
    }
}

void mgp_aes_encrypt_block(const mgp_cipher_keys *k, const unsigned char in[16], unsigned char out[16])
{
    encrypt_block(k, in, out);
}

/* ---- counters ---- */

typedef struct counter {
    uint64_t hi, lo; /* the counter block as a 128-bit big-endian number */
    int inc32;
} counter;

static counter counter_load(const unsigned char c[16], int inc32)
{
    counter t = {0, 0, inc32};
    for (int i = 0; i < 8; i++) {
        t.hi = t.hi << 8 | c[i];
        t.lo = t.lo << 8 | c[8 + i];
    }
    return t;
}

static void counter_store(const counter *t, unsigned char c[16])
{
    for (int i = 0; i < 8; i++) {
        c[7 - i] = (unsigned char)(t->hi >> (8 * i));
        c[15 - i] = (unsigned char)(t->lo >> (8 * i));
    }
}

/* The counter block j steps ahead, as an AES input. */
TARGET static inline __m128i counter_block(const counter *t, uint64_t j)
{
    uint64_t lo, hi = t->hi;
    if (t->inc32) {
        lo = (t->lo & 0xffffffff00000000u) | ((t->lo + j) & 0xffffffffu);
    } else {
        lo = t->lo + j;
        hi += lo < t->lo;
    }
    return _mm_set_epi64x((long long)__builtin_bswap64(lo), (long long)__builtin_bswap64(hi));
}

static void counter_advance(counter *t, uint64_t n)
{
    if (t->inc32) {
        t->lo = (t->lo & 0xffffffff00000000u) | ((t->lo + n) & 0xffffffffu);
    } else {
        uint64_t lo = t->lo + n;
        t->hi += lo < t->lo;
        t->lo = lo;
    }
}

/* Eight blocks through all rounds, each round key loaded once from guarded memory. */
#define ROUND8(op, key)                                                                                     \
    do {                                                                                                    \
        __m128i rk_ = (key);                                                                                \
        b0 = op(b0, rk_); b1 = op(b1, rk_); b2 = op(b2, rk_); b3 = op(b3, rk_);                             \
        b4 = op(b4, rk_); b5 = op(b5, rk_); b6 = op(b6, rk_); b7 = op(b7, rk_);                             \
    } while (0)
#define ENC8(k)                                                       \
    do {                                                              \
        ROUND8(_mm_xor_si128, RK(k, 0));                              \
        for (unsigned r_ = 1; r_ < (k)->rounds; r_++)                 \
            ROUND8(_mm_aesenc_si128, RK(k, r_));                      \
        ROUND8(_mm_aesenclast_si128, RK(k, (k)->rounds));             \
    } while (0)
#define LOADU(p) _mm_loadu_si128((const __m128i *)(p))
#define STOREU(p, v) _mm_storeu_si128((__m128i *)(p), (v))

TARGET static void ctr_blocks(const mgp_cipher_keys *k, counter *t, const unsigned char *in, unsigned char *out,
                              size_t n)
{
    for (; n >= 8; n -= 8, in += 128, out += 128) {
        __m128i b0 = counter_block(t, 0), b1 = counter_block(t, 1), b2 = counter_block(t, 2),
                b3 = counter_block(t, 3), b4 = counter_block(t, 4), b5 = counter_block(t, 5),
                b6 = counter_block(t, 6), b7 = counter_block(t, 7);
        counter_advance(t, 8);
        ENC8(k);
        STOREU(out, _mm_xor_si128(b0, LOADU(in)));
        STOREU(out + 16, _mm_xor_si128(b1, LOADU(in + 16)));
        STOREU(out + 32, _mm_xor_si128(b2, LOADU(in + 32)));
        STOREU(out + 48, _mm_xor_si128(b3, LOADU(in + 48)));
        STOREU(out + 64, _mm_xor_si128(b4, LOADU(in + 64)));
        STOREU(out + 80, _mm_xor_si128(b5, LOADU(in + 80)));
        STOREU(out + 96, _mm_xor_si128(b6, LOADU(in + 96)));
        STOREU(out + 112, _mm_xor_si128(b7, LOADU(in + 112)));
    }
    if (n > 0) {
        /* The last 1-7 blocks side by side too: one at a time would wait on each block's 14-round
           latency (a 64-byte TLS record is exactly this case). Unused blocks are simply dropped. */
        __m128i b0 = counter_block(t, 0), b1 = counter_block(t, 1), b2 = counter_block(t, 2),
                b3 = counter_block(t, 3), b4 = counter_block(t, 4), b5 = counter_block(t, 5),
                b6 = counter_block(t, 6), b7 = counter_block(t, 7);
        counter_advance(t, n);
        ENC8(k);
        STOREU(out, _mm_xor_si128(b0, LOADU(in)));
        if (n > 1)
            STOREU(out + 16, _mm_xor_si128(b1, LOADU(in + 16)));
        if (n > 2)
            STOREU(out + 32, _mm_xor_si128(b2, LOADU(in + 32)));
        if (n > 3)
            STOREU(out + 48, _mm_xor_si128(b3, LOADU(in + 48)));
        if (n > 4)
            STOREU(out + 64, _mm_xor_si128(b4, LOADU(in + 64)));
        if (n > 5)
            STOREU(out + 80, _mm_xor_si128(b5, LOADU(in + 80)));
        if (n > 6)
            STOREU(out + 96, _mm_xor_si128(b6, LOADU(in + 96)));
        (void)b7;
    }
}

void mgp_aes_ctr(const mgp_cipher_keys *k, unsigned char ctr[16], int inc32, const unsigned char *in,
                 unsigned char *out, size_t nblocks)
{
    counter t = counter_load(ctr, inc32);
    ctr_blocks(k, &t, in, out, nblocks);
    counter_store(&t, ctr);
}

/* ---- CBC ---- */

TARGET void mgp_aes_cbc_encrypt(const mgp_cipher_keys *k, unsigned char iv[16], const unsigned char *in,
                                unsigned char *out, size_t nblocks)
{
    __m128i c = LOADU(iv);
    for (; nblocks > 0; nblocks--, in += 16, out += 16) {
        c = _mm_xor_si128(_mm_xor_si128(c, LOADU(in)), RK(k, 0));
        for (unsigned r = 1; r < k->rounds; r++)
            c = _mm_aesenc_si128(c, RK(k, r));
        c = _mm_aesenclast_si128(c, RK(k, k->rounds));
        STOREU(out, c);
    }
    STOREU(iv, c);
}

TARGET void mgp_aes_cbc_decrypt(const mgp_cipher_keys *k, unsigned char iv[16], const unsigned char *in,
                                unsigned char *out, size_t nblocks)
{
    __m128i prev = LOADU(iv);
    for (; nblocks >= 8; nblocks -= 8, in += 128, out += 128) {
        /* Every ciphertext block is loaded before anything is stored: in == out is allowed. */
        __m128i c0 = LOADU(in), c1 = LOADU(in + 16), c2 = LOADU(in + 32), c3 = LOADU(in + 48),
                c4 = LOADU(in + 64), c5 = LOADU(in + 80), c6 = LOADU(in + 96), c7 = LOADU(in + 112);
        __m128i b0 = c0, b1 = c1, b2 = c2, b3 = c3, b4 = c4, b5 = c5, b6 = c6, b7 = c7;
        ROUND8(_mm_xor_si128, DK(k, 0));
        for (unsigned r = 1; r < k->rounds; r++)
            ROUND8(_mm_aesdec_si128, DK(k, r));
        ROUND8(_mm_aesdeclast_si128, DK(k, k->rounds));
        STOREU(out, _mm_xor_si128(b0, prev));
        STOREU(out + 16, _mm_xor_si128(b1, c0));
        STOREU(out + 32, _mm_xor_si128(b2, c1));
        STOREU(out + 48, _mm_xor_si128(b3, c2));
        STOREU(out + 64, _mm_xor_si128(b4, c3));
        STOREU(out + 80, _mm_xor_si128(b5, c4));
        STOREU(out + 96, _mm_xor_si128(b6, c5));
        STOREU(out + 112, _mm_xor_si128(b7, c6));
        prev = c7;
    }
    for (; nblocks > 0; nblocks--, in += 16, out += 16) {
        __m128i c = LOADU(in);
        __m128i x = _mm_xor_si128(c, DK(k, 0));
        for (unsigned r = 1; r < k->rounds; r++)
            x = _mm_aesdec_si128(x, DK(k, r));
        x = _mm_aesdeclast_si128(x, DK(k, k->rounds));
        STOREU(out, _mm_xor_si128(x, prev));
        prev = c;
    }
    STOREU(iv, prev);
}

/* ---- GHASH and GCM ---- */

/* Karatsuba: three carry-less multiplications per block; the middle term is fixed up once. */
#define KARATSUBA_ACC(x, i, lo, mid, hi)                                                                    \
    do {                                                                                                   \
        (lo) = _mm_xor_si128((lo), _mm_clmulepi64_si128((x), HP(k, i), 0x00));                             \
        (hi) = _mm_xor_si128((hi), _mm_clmulepi64_si128((x), HP(k, i), 0x11));                             \
        (mid) = _mm_xor_si128((mid), _mm_clmulepi64_si128(_mm_xor_si128((x), _mm_shuffle_epi32((x), 0x4e)), \
                                                          HK(k, i), 0x00));                                 \
    } while (0)

/* y = (y ^ X1)·H^n ^ X2·H^(n-1) ^ ... ^ Xn·H, one reduction for up to eight blocks. */
TARGET static inline __m128i ghash_n(const mgp_cipher_keys *k, __m128i y, const unsigned char *in, unsigned n)
{
    __m128i lo = _mm_setzero_si128(), mid = lo, hi = lo;
    __m128i x = _mm_xor_si128(BSWAP(LOADU(in)), y);
    KARATSUBA_ACC(x, n - 1, lo, mid, hi);
    for (unsigned j = 1; j < n; j++) {
        x = BSWAP(LOADU(in + 16 * j));
        KARATSUBA_ACC(x, n - 1 - j, lo, mid, hi);
    }
    mid = _mm_xor_si128(mid, _mm_xor_si128(lo, hi));
    return gf_reduce(lo, mid, hi);
}

TARGET static inline __m128i ghash_blocks(const mgp_cipher_keys *k, __m128i y, const unsigned char *in, size_t n)
{
    for (; n >= 8; n -= 8, in += 128)
        y = ghash_n(k, y, in, 8);
    if (n > 0)
        y = ghash_n(k, y, in, (unsigned)n);
    return y;
}

TARGET void mgp_ghash(const mgp_cipher_keys *k, unsigned char xi[16], const unsigned char *in, size_t nblocks)
{
    __m128i y = ghash_blocks(k, _mm_load_si128((const __m128i *)xi), in, nblocks);
    _mm_store_si128((__m128i *)xi, y);
}

TARGET void mgp_gcm_encrypt(const mgp_cipher_keys *k, unsigned char ctr[16], unsigned char xi[16],
                            const unsigned char *in, unsigned char *out, size_t nblocks)
{
    counter t = counter_load(ctr, 1);
    __m128i y = _mm_load_si128((const __m128i *)xi);
    for (; nblocks >= 8; nblocks -= 8, in += 128, out += 128) {
        __m128i b0 = counter_block(&t, 0), b1 = counter_block(&t, 1), b2 = counter_block(&t, 2),
                b3 = counter_block(&t, 3), b4 = counter_block(&t, 4), b5 = counter_block(&t, 5),
                b6 = counter_block(&t, 6), b7 = counter_block(&t, 7);
        counter_advance(&t, 8);
        ENC8(k);
        b0 = _mm_xor_si128(b0, LOADU(in)), b1 = _mm_xor_si128(b1, LOADU(in + 16));
        b2 = _mm_xor_si128(b2, LOADU(in + 32)), b3 = _mm_xor_si128(b3, LOADU(in + 48));
        b4 = _mm_xor_si128(b4, LOADU(in + 64)), b5 = _mm_xor_si128(b5, LOADU(in + 80));
        b6 = _mm_xor_si128(b6, LOADU(in + 96)), b7 = _mm_xor_si128(b7, LOADU(in + 112));
        STOREU(out, b0), STOREU(out + 16, b1), STOREU(out + 32, b2), STOREU(out + 48, b3);
        STOREU(out + 64, b4), STOREU(out + 80, b5), STOREU(out + 96, b6), STOREU(out + 112, b7);
        /* GHASH re-reads the ciphertext from out: hashing from the eight registers instead is a
           little faster but makes the compiler spill partial products X·H^i - from which H^i can be
           divided out - to the ordinary stack. */
        y = ghash_n(k, y, out, 8);
    }
    if (nblocks > 0) {
        ctr_blocks(k, &t, in, out, nblocks);
        y = ghash_n(k, y, out, (unsigned)nblocks);
    }
    _mm_store_si128((__m128i *)xi, y);
    counter_store(&t, ctr);
}

TARGET void mgp_gcm_decrypt(const mgp_cipher_keys *k, unsigned char ctr[16], unsigned char xi[16],
                            const unsigned char *in, unsigned char *out, size_t nblocks)
{
    counter t = counter_load(ctr, 1);
    __m128i y = _mm_load_si128((const __m128i *)xi);
    for (; nblocks >= 8; nblocks -= 8, in += 128, out += 128) {
        y = ghash_n(k, y, in, 8); /* before out is written: in == out is allowed */
        __m128i b0 = counter_block(&t, 0), b1 = counter_block(&t, 1), b2 = counter_block(&t, 2),
                b3 = counter_block(&t, 3), b4 = counter_block(&t, 4), b5 = counter_block(&t, 5),
                b6 = counter_block(&t, 6), b7 = counter_block(&t, 7);
        counter_advance(&t, 8);
        ENC8(k);
        STOREU(out, _mm_xor_si128(b0, LOADU(in)));
        STOREU(out + 16, _mm_xor_si128(b1, LOADU(in + 16)));
        STOREU(out + 32, _mm_xor_si128(b2, LOADU(in + 32)));
        STOREU(out + 48, _mm_xor_si128(b3, LOADU(in + 48)));
        STOREU(out + 64, _mm_xor_si128(b4, LOADU(in + 64)));
        STOREU(out + 80, _mm_xor_si128(b5, LOADU(in + 80)));
        STOREU(out + 96, _mm_xor_si128(b6, LOADU(in + 96)));
        STOREU(out + 112, _mm_xor_si128(b7, LOADU(in + 112)));
    }
    if (nblocks > 0) {
        y = ghash_n(k, y, in, (unsigned)nblocks);
        ctr_blocks(k, &t, in, out, nblocks);
    }
    _mm_store_si128((__m128i *)xi, y);
    counter_store(&t, ctr);
}

void mgp_gcm_tag(const unsigned char xi[16], const unsigned char ekj0[16], unsigned char tag[16])
{
    for (int i = 0; i < 16; i++)
        tag[i] = xi[15 - i] ^ ekj0[i];
}

/* ---- CMAC (NIST SP 800-38B, RFC 4493) ---- */

/* x = E_K(x ^ M_i) over nblocks full blocks; x is the guarded chaining value. */
TARGET void mgp_cmac_blocks(const mgp_cipher_keys *k, unsigned char x[16], const unsigned char *in, size_t nblocks)
{
    __m128i c = LOADU(x);
    for (; nblocks > 0; nblocks--, in += 16) {
        c = _mm_xor_si128(_mm_xor_si128(c, LOADU(in)), RK(k, 0));
        for (unsigned r = 1; r < k->rounds; r++)
            c = _mm_aesenc_si128(c, RK(k, r));
        c = _mm_aesenclast_si128(c, RK(k, k->rounds));
    }
    STOREU(x, c);
}

/* Multiplication by x in GF(2^128) (SP 800-38B's "dbl"), in place, without branching on the key. */
static void cmac_dbl(unsigned char b[16])
{
    unsigned char carry = (unsigned char)(0x87 & -(b[0] >> 7));
    for (int i = 0; i < 15; i++)
        b[i] = (unsigned char)(b[i] << 1 | b[i + 1] >> 7);
    b[15] = (unsigned char)(b[15] << 1) ^ carry;
}

void mgp_cmac_subkeys(const mgp_cipher_keys *k, unsigned char k1[16], unsigned char k2[16])
{
    static const unsigned char zero[16];
    encrypt_block(k, zero, k1); /* L = E_K(0^128), written straight into the guarded K1 slot */
    cmac_dbl(k1);
    memcpy(k2, k1, 16);
    cmac_dbl(k2);
}
