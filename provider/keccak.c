/*
 * Keccak-f[1600] and its sponge (FIPS 202), on a caller-owned state.
 *
 * The permutation keeps the 25 lanes in locals: two rounds per loop pass, the
 * state alternating between the a.. and e.. sets of lanes, and each row of
 * the new state computed from five rho-pi-rotated lanes (b0..b4) as soon as
 * they exist. The compiler spills lanes to the stack; kmac.c clears that stack
 * when a keyed computation returns (keccak.h).
 */
#include <string.h>

#include "keccak.h"

#define ROL(x, n) (((x) << (n)) | ((x) >> ((64 - (n)) & 63)))

/* Round constants: FIPS 202, 3.2.5 (the rc LFSR, evaluated); any wrong bit fails every KAT in test_kmac. */
static const uint64_t round_constants[24] = {
    UINT64_C(0x0000000000000001), UINT64_C(0x0000000000008082),
    UINT64_C(0x800000000000808a), UINT64_C(0x8000000080008000),
    UINT64_C(0x000000000000808b), UINT64_C(0x0000000080000001),
    UINT64_C(0x8000000080008081), UINT64_C(0x8000000000008009),
    UINT64_C(0x000000000000008a), UINT64_C(0x0000000000000088),
    UINT64_C(0x0000000080008009), UINT64_C(0x000000008000000a),
    UINT64_C(0x000000008000808b), UINT64_C(0x800000000000008b),
    UINT64_C(0x8000000000008089), UINT64_C(0x8000000000008003),
    UINT64_C(0x8000000000008002), UINT64_C(0x8000000000000080),
    UINT64_C(0x000000000000800a), UINT64_C(0x800000008000000a),
    UINT64_C(0x8000000080008081), UINT64_C(0x8000000000008080),
    UINT64_C(0x0000000080000001), UINT64_C(0x8000000080008008),
};

/* chi on one row of five rotated lanes, into E's lanes i..m */
#define CHI(E, i, j, k, l, m)                                                                                          \
    E##i = b0 ^ (~b1 & b2);                                                                                            \
    E##j = b1 ^ (~b2 & b3);                                                                                            \
    E##k = b2 ^ (~b3 & b4);                                                                                            \
    E##l = b3 ^ (~b4 & b0);                                                                                            \
    E##m = b4 ^ (~b0 & b1)

/*
 * One round from lanes A.. to lanes E..: theta's column parities (c) and
 * their combination (d), then per output row y the five lanes that rho and
 * pi move there (output lane (x, y) takes input lane (x', y') with x = y' and
 * y = 2x' + 3y' mod 5, rotated by rho's offset for (x', y')), chi, and iota.
 */
#define ROUND(A, E, rc)                                                                                                \
    do {                                                                                                               \
        c0 = A##00 ^ A##05 ^ A##10 ^ A##15 ^ A##20;                                                                    \
        c1 = A##01 ^ A##06 ^ A##11 ^ A##16 ^ A##21;                                                                    \
        c2 = A##02 ^ A##07 ^ A##12 ^ A##17 ^ A##22;                                                                    \
        c3 = A##03 ^ A##08 ^ A##13 ^ A##18 ^ A##23;                                                                    \
        c4 = A##04 ^ A##09 ^ A##14 ^ A##19 ^ A##24;                                                                    \
        d0 = c4 ^ ROL(c1, 1);                                                                                          \
        d1 = c0 ^ ROL(c2, 1);                                                                                          \
        d2 = c1 ^ ROL(c3, 1);                                                                                          \
        d3 = c2 ^ ROL(c4, 1);                                                                                          \
        d4 = c3 ^ ROL(c0, 1);                                                                                          \
        b0 = A##00 ^ d0, b1 = ROL(A##06 ^ d1, 44), b2 = ROL(A##12 ^ d2, 43);                                           \
        b3 = ROL(A##18 ^ d3, 21), b4 = ROL(A##24 ^ d4, 14);                                                            \
        CHI(E, 00, 01, 02, 03, 04);                                                                                    \
        E##00 ^= (rc);                                                                                                 \
        b0 = ROL(A##03 ^ d3, 28), b1 = ROL(A##09 ^ d4, 20), b2 = ROL(A##10 ^ d0, 3);                                   \
        b3 = ROL(A##16 ^ d1, 45), b4 = ROL(A##22 ^ d2, 61);                                                            \
        CHI(E, 05, 06, 07, 08, 09);                                                                                    \
        b0 = ROL(A##01 ^ d1, 1), b1 = ROL(A##07 ^ d2, 6), b2 = ROL(A##13 ^ d3, 25);                                    \
        b3 = ROL(A##19 ^ d4, 8), b4 = ROL(A##20 ^ d0, 18);                                                             \
        CHI(E, 10, 11, 12, 13, 14);                                                                                    \
        b0 = ROL(A##04 ^ d4, 27), b1 = ROL(A##05 ^ d0, 36), b2 = ROL(A##11 ^ d1, 10);                                  \
        b3 = ROL(A##17 ^ d2, 15), b4 = ROL(A##23 ^ d3, 56);                                                            \
        CHI(E, 15, 16, 17, 18, 19);                                                                                    \
        b0 = ROL(A##02 ^ d2, 62), b1 = ROL(A##08 ^ d3, 55), b2 = ROL(A##14 ^ d4, 39);                                  \
        b3 = ROL(A##15 ^ d0, 41), b4 = ROL(A##21 ^ d1, 2);                                                             \
        CHI(E, 20, 21, 22, 23, 24);                                                                                    \
    } while (0)

#define LANES(P)                                                                                                       \
    P##00, P##01, P##02, P##03, P##04, P##05, P##06, P##07, P##08, P##09, P##10, P##11, P##12, P##13, P##14, P##15,    \
        P##16, P##17, P##18, P##19, P##20, P##21, P##22, P##23, P##24

void mgp_keccak_f1600(mgp_keccak *s)
{
    uint64_t LANES(a), LANES(e), b0, b1, b2, b3, b4, c0, c1, c2, c3, c4, d0, d1, d2, d3, d4;
    uint64_t *st = s->a;
    a00 = st[0], a01 = st[1], a02 = st[2], a03 = st[3], a04 = st[4];
    a05 = st[5], a06 = st[6], a07 = st[7], a08 = st[8], a09 = st[9];
    a10 = st[10], a11 = st[11], a12 = st[12], a13 = st[13], a14 = st[14];
    a15 = st[15], a16 = st[16], a17 = st[17], a18 = st[18], a19 = st[19];
    a20 = st[20], a21 = st[21], a22 = st[22], a23 = st[23], a24 = st[24];
    for (int r = 0; r < 24; r += 2) {
        ROUND(a, e, round_constants[r]);
        ROUND(e, a, round_constants[r + 1]);
    }
    st[0] = a00, st[1] = a01, st[2] = a02, st[3] = a03, st[4] = a04;
    st[5] = a05, st[6] = a06, st[7] = a07, st[8] = a08, st[9] = a09;
    st[10] = a10, st[11] = a11, st[12] = a12, st[13] = a13, st[14] = a14;
    st[15] = a15, st[16] = a16, st[17] = a17, st[18] = a18, st[19] = a19;
    st[20] = a20, st[21] = a21, st[22] = a22, st[23] = a23, st[24] = a24;
}

static uint64_t load_le64(const unsigned char *p)
{
    uint64_t v;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy(&v, p, 8);
#else
    v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
#endif
    return v;
}

static void store_le64(unsigned char *p, uint64_t v)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy(p, &v, 8);
#else
    for (int i = 0; i < 8; i++, v >>= 8)
        p[i] = (unsigned char)v;
#endif
}

/* Byte i of the state (0 <= i < 200), in FIPS 202's byte order. */
static void xor_byte(mgp_keccak *s, size_t i, unsigned char b)
{
    s->a[i / 8] ^= (uint64_t)b << (8 * (i % 8));
}

static unsigned char get_byte(const mgp_keccak *s, size_t i)
{
    return (unsigned char)(s->a[i / 8] >> (8 * (i % 8)));
}

void mgp_keccak_absorb(mgp_keccak *s, size_t rate, size_t *pos, const unsigned char *in, size_t len)
{
    size_t p = *pos;
    /* finish a started lane byte by byte, then whole lanes, then the tail */
    while (len > 0 && p % 8 != 0) {
        xor_byte(s, p++, *in++), len--;
        if (p == rate)
            mgp_keccak_f1600(s), p = 0;
    }
    while (len >= 8) {
        s->a[p / 8] ^= load_le64(in);
        p += 8, in += 8, len -= 8;
        if (p == rate)
            mgp_keccak_f1600(s), p = 0;
    }
    while (len > 0) /* fewer than 8 bytes: the block cannot fill up */
        xor_byte(s, p++, *in++), len--;
    *pos = p;
}

void mgp_keccak_pad(mgp_keccak *s, size_t rate, size_t *pos, unsigned char suffix)
{
    xor_byte(s, *pos, suffix);
    xor_byte(s, rate - 1, 0x80);
    mgp_keccak_f1600(s);
    *pos = 0;
}

void mgp_keccak_squeeze(mgp_keccak *s, size_t rate, size_t *pos, unsigned char *out, size_t len)
{
    size_t p = *pos;
    while (len > 0) {
        if (p == rate)
            mgp_keccak_f1600(s), p = 0;
        if (p % 8 == 0 && len >= 8) {
            store_le64(out, s->a[p / 8]);
            p += 8, out += 8, len -= 8;
        } else {
            *out++ = get_byte(s, p++), len--;
        }
    }
    *pos = p;
}

/* x as n big-endian bytes, n the fewest that hold it (at least one). */
static size_t be_bytes(unsigned char *out, uint64_t x)
{
    size_t n = 1;
    while (n < 8 && (x >> (8 * n)) != 0)
        n++;
    for (size_t i = 0; i < n; i++)
        out[i] = (unsigned char)(x >> (8 * (n - 1 - i)));
    return n;
}

size_t mgp_left_encode(unsigned char out[9], uint64_t x)
{
    size_t n = be_bytes(out + 1, x);
    out[0] = (unsigned char)n;
    return n + 1;
}

size_t mgp_right_encode(unsigned char out[9], uint64_t x)
{
    size_t n = be_bytes(out, x);
    out[n] = (unsigned char)n;
    return n + 1;
}
