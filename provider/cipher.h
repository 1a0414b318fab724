/*
 * Symmetric ciphers (issue 6): shared between cipher.c (the OpenSSL glue) and
 * the primitives in cipher_aes.c / cipher_chacha.c.
 *
 * Everything key-equivalent - AES round keys, GCM's hash key H and its powers,
 * the ChaCha20 key, GHASH/Poly1305 accumulators, the tag mask and partial
 * keystream blocks - lives in two guarded buffers per context (struct
 * mgp_cipher_keys, frozen between re-keys; struct mgp_cipher_state, read-write).
 * The primitives take pointers into those buffers and never copy the key
 * schedule to memory of their own (no locals holding round keys).
 */
#ifndef MGP_CIPHER_H
#define MGP_CIPHER_H

#include <stddef.h>
#include <stdint.h>

#include <sodium.h>

#define MGP_AES_MAX_ROUNDS 14
#define MGP_GHASH_POWERS 8 /* H^1..H^8: GHASH aggregates 8 blocks per reduction */

/* Frozen after the key is set. 16-byte aligned (the buffer size is a multiple of 64). */
typedef struct mgp_cipher_keys {
    unsigned char rk[MGP_AES_MAX_ROUNDS + 1][16] __attribute__((aligned(16))); /* encryption round keys */
    unsigned char dk[MGP_AES_MAX_ROUNDS + 1][16] __attribute__((aligned(16))); /* decryption (CBC only) */
    unsigned char h[MGP_GHASH_POWERS][16] __attribute__((aligned(16)));        /* H^(i+1), byte-reflected */
    unsigned char hk[MGP_GHASH_POWERS][16] __attribute__((aligned(16)));       /* hi^lo halves, for Karatsuba */
    unsigned char chacha[32];                                                  /* ChaCha20-Poly1305 key */
    unsigned rounds;
} mgp_cipher_keys;

/* Read-write, per message. */
typedef struct mgp_cipher_state {
    unsigned char xi[16] __attribute__((aligned(16))); /* GHASH accumulator, byte-reflected */
    unsigned char ekj0[16] __attribute__((aligned(16))); /* E_K(J0): the GCM tag mask */
    unsigned char ks[64] __attribute__((aligned(16)));   /* current keystream block (CTR/GCM 16, ChaCha 64) */
    unsigned char cbuf[16] __attribute__((aligned(16))); /* partial GCM ciphertext block awaiting GHASH */
    crypto_onetimeauth_poly1305_state poly;            /* ChaCha20-Poly1305 MAC state (keyed) */
    unsigned char polykey[64];                         /* block 0 of the ChaCha keystream, wiped after use */
} mgp_cipher_state;

/* ---- AES with AES-NI and PCLMULQDQ (cipher_aes.c); call nothing else unless mgp_aes_available() ---- */
int mgp_aes_available(void);
/* Round keys (and decryption keys when dec, GHASH powers when gcm) from a 16- or 32-byte key. */
void mgp_aes_set_key(mgp_cipher_keys *k, const unsigned char *key, size_t keylen, int dec, int gcm);
void mgp_aes_encrypt_block(const mgp_cipher_keys *k, const unsigned char in[16], unsigned char out[16]);
/* CTR over nblocks full blocks; ctr is the counter block, advanced. inc32: GCM's 32-bit counter. */
void mgp_aes_ctr(const mgp_cipher_keys *k, unsigned char ctr[16], int inc32, const unsigned char *in,
                 unsigned char *out, size_t nblocks);
void mgp_aes_cbc_encrypt(const mgp_cipher_keys *k, unsigned char iv[16], const unsigned char *in, unsigned char *out,
                         size_t nblocks);
void mgp_aes_cbc_decrypt(const mgp_cipher_keys *k, unsigned char iv[16], const unsigned char *in, unsigned char *out,
                         size_t nblocks);
/* GHASH nblocks full blocks into xi. */
void mgp_ghash(const mgp_cipher_keys *k, unsigned char xi[16], const unsigned char *in, size_t nblocks);
/* GCM bulk: CTR (32-bit counter) and GHASH over the ciphertext, stitched. */
void mgp_gcm_encrypt(const mgp_cipher_keys *k, unsigned char ctr[16], unsigned char xi[16], const unsigned char *in,
                     unsigned char *out, size_t nblocks);
void mgp_gcm_decrypt(const mgp_cipher_keys *k, unsigned char ctr[16], unsigned char xi[16], const unsigned char *in,
                     unsigned char *out, size_t nblocks);
/* CMAC (cmac.c): the subkeys K1, K2 from L = E_K(0), and the CBC-MAC over full blocks. */
void mgp_cmac_subkeys(const mgp_cipher_keys *k, unsigned char k1[16], unsigned char k2[16]);
void mgp_cmac_blocks(const mgp_cipher_keys *k, unsigned char x[16], const unsigned char *in, size_t nblocks);
/* tag = byte-reflect(xi) ^ ekj0 */
void mgp_gcm_tag(const unsigned char xi[16], const unsigned char ekj0[16], unsigned char tag[16]);


/* ---- ChaCha20-Poly1305, RFC 8439, from libsodium primitives (cipher_chacha.c) ---- */
/* Poly1305 key from keystream block 0, MAC state initialised. */
void mgp_chacha_start(const mgp_cipher_keys *k, mgp_cipher_state *s, const unsigned char nonce[12]);
/* Feed the MAC (AAD, or zero padding to a 16-byte boundary after len bytes). */
void mgp_chacha_mac(mgp_cipher_state *s, const unsigned char *in, size_t len);
void mgp_chacha_mac_pad(mgp_cipher_state *s, uint64_t len);
/* Encrypt or decrypt len bytes at message offset pos (keystream blocks from counter 1), MAC the ciphertext. */
void mgp_chacha_crypt(const mgp_cipher_keys *k, mgp_cipher_state *s, const unsigned char nonce[12], uint64_t pos,
                      int enc, const unsigned char *in, unsigned char *out, size_t len);
/* Pad, lengths, tag. */
void mgp_chacha_tag(mgp_cipher_state *s, uint64_t aadlen, uint64_t msglen, unsigned char tag[16]);
/* RFC 8439: the 32-bit block counter starts at 1 for the message. */
#define MGP_CHACHA_MAX_MSG (((uint64_t)1 << 32) - 1) * 64

#endif
