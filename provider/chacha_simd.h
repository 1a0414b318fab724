/*
 * Vectorised ChaCha20 and Poly1305 for cipher_chacha.c (ChaCha20-Poly1305).
 *
 * Keys, keystream and Poly1305's r, s and powers of r stay in the caller's
 * guarded buffers or in vector registers; these functions keep no state of
 * their own. Their stack frames may hold spilled state words: the caller wipes
 * them (mgp_chacha_burn) before it returns.
 */
#ifndef MGP_CHACHA_SIMD_H
#define MGP_CHACHA_SIMD_H

#include <stddef.h>
#include <stdint.h>

/* XOR nblocks 64-byte blocks with the IETF ChaCha20 keystream from block counter ctr (no wrap:
 * ctr + nblocks - 1 <= 2^32 - 1). AVX-512 16-way, AVX2 8-way, libsodium for short tails. */
void mgp_chacha20_xor_blocks(const unsigned char key[32], const unsigned char nonce[12], uint32_t ctr,
                             const unsigned char *in, unsigned char *out, size_t nblocks);

/* Keystream blocks 0 (Poly1305 key) and 1 (the message's first) in one pass: short messages pay
 * one vector pass's latency, not two. */
void mgp_chacha20_blocks01(const unsigned char key[32], const unsigned char nonce[12], unsigned char b0[64],
                           unsigned char b1[64]);

/* Poly1305 with AVX-512 IFMA (radix 2^44, 8 blocks per step) or AVX2 (radix 2^26, 4 blocks per
 * step); only if mgp_poly1305_vector(), else libsodium's. */
#define MGP_POLY1305_STATE_BYTES 256
int mgp_poly1305_vector(void);
void mgp_poly1305_init(void *st, const unsigned char key[32]);
void mgp_poly1305_update(void *st, const unsigned char *in, size_t len);
void mgp_poly1305_final(void *st, unsigned char tag[16]);

/* Overwrite the stack below the caller's frame, where the functions above may have spilled. */
#define MGP_CHACHA_BURN_BYTES 2048
void mgp_chacha_burn(void);

#endif
