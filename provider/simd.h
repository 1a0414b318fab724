/*
 * Which of memguard's own vector code paths may run (cipher_aes.c, chacha20_simd.c,
 * poly1305_simd.c): each needs its CPU feature, and all are capped by MEMGUARD_SIMD in the
 * environment, read once per process - as OPENSSL_ia32cap lowers OpenSSL's - so that the narrower
 * paths and the fallbacks can be run, and tested, on a machine that has the widest:
 *
 *   MEMGUARD_SIMD=avx512  everything the CPU has (the default)
 *   MEMGUARD_SIMD=avx2    no AVX-512: ChaCha20 8 blocks at a time, Poly1305 4
 *   MEMGUARD_SIMD=aesni   no AVX2 either: ChaCha20 and Poly1305 from libsodium
 *   MEMGUARD_SIMD=none    no AES-NI either: AES ciphers and CMAC are not offered, as on a CPU
 *                         without AES-NI
 *
 * It only ever lowers what the CPU has; ignored in setuid programs (secure_getenv).
 */
#ifndef MGP_SIMD_H
#define MGP_SIMD_H

enum { MGP_SIMD_NONE, MGP_SIMD_AESNI, MGP_SIMD_AVX2, MGP_SIMD_AVX512 };

int mgp_simd_cap(void);
/* Tests that compile the vector code in: lower (or restore) the cap for this copy of it. */
void mgp_simd_set_cap(int cap);

/* What may run now: the CPU's feature under the cap. */
int mgp_simd_aesni(void);        /* AES-NI + PCLMULQDQ (+ SSSE3, SSE4.1): AES ciphers and CMAC */
int mgp_simd_chacha_width(void); /* ChaCha20 blocks per vector pass: 16 (AVX-512VL), 8 (AVX2), 0 (libsodium) */
int mgp_simd_poly1305(void);     /* Poly1305 blocks: 2 AVX-512 IFMA (8 at a time), 1 AVX2 (4), 0 libsodium */
/* The paths in words, for the provider parameter "memguard-simd" and the debug log. */
const char *mgp_simd_describe(void);

#endif
