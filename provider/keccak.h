/*
 * Keccak-f[1600] and the sponge around it (FIPS 202), for KMAC (kmac.c).
 *
 * OpenSSL 3.0 exports no Keccak whose state could live in memory we choose:
 * its digest contexts are allocated in the ordinary heap. This one works on a
 * state the caller owns (a guarded slot). Keccak-f is a permutation, so every
 * intermediate state of a keyed computation can be run backwards to the keyed
 * state: the whole state is key-equivalent, and so are the lanes the
 * permutation keeps in registers and stack spills while it runs. Callers clear
 * both (mg_scrub) when a keyed computation returns.
 */
#ifndef MGP_KECCAK_H
#define MGP_KECCAK_H

#include <stddef.h>
#include <stdint.h>

typedef struct mgp_keccak {
    uint64_t a[25]; /* lane (x, y) at a[x + 5y], value as a little-endian number */
} mgp_keccak;

/* The 24-round permutation, in place. */
void mgp_keccak_f1600(mgp_keccak *s);

/*
 * Sponge with a rate of `rate` bytes (a multiple of 8, below 200): *pos is how
 * many bytes of the current block have been absorbed or squeezed. absorb XORs
 * len bytes in, permuting at every full block; pad finishes the input with the
 * domain-separation bits `suffix` (0x04 for cSHAKE, 0x06 for SHA-3, 0x1f for
 * SHAKE) and the final 1 bit, permutes, and leaves *pos at 0 for squeeze.
 */
void mgp_keccak_absorb(mgp_keccak *s, size_t rate, size_t *pos, const unsigned char *in, size_t len);
void mgp_keccak_pad(mgp_keccak *s, size_t rate, size_t *pos, unsigned char suffix);
void mgp_keccak_squeeze(mgp_keccak *s, size_t rate, size_t *pos, unsigned char *out, size_t len);

/* SP 800-185 encodings of a number (up to 2^64 - 1): at most 9 bytes written, the count returned. */
size_t mgp_left_encode(unsigned char out[9], uint64_t x);
size_t mgp_right_encode(unsigned char out[9], uint64_t x);

#endif
