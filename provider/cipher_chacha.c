/*
 * ChaCha20-Poly1305 (RFC 8439, section 2.8), streamed over our vectorised ChaCha20 and
 * Poly1305 (chacha20_simd.c, poly1305_simd.c; libsodium's primitives where the CPU lacks
 * AVX2 / AVX-512 IFMA), whose whole state lives in memory we pass in: the key in the frozen
 * guarded key buffer, the Poly1305 state and keystream blocks in the guarded state buffer.
 * libsodium's one-shot AEAD cannot be streamed, and the default provider's implementation
 * would keep the key in OpenSSL's heap. Every entry point burns the stack its callees used:
 * they may spill state words there.
 */
#include <string.h>

#include <memguard/memguard.h>

#include "chacha_simd.h"
#include "cipher.h"

_Static_assert(sizeof(crypto_onetimeauth_poly1305_state) >= MGP_POLY1305_STATE_BYTES,
               "the IFMA Poly1305 state lives in the libsodium state's slot");

static const unsigned char zeros[64];

/* The choice is per process, so a state duplicated by dupctx is always read by the code that wrote it. */
static void poly_init(mgp_cipher_state *s, const unsigned char key[32])
{
    if (mgp_poly1305_vector())
        mgp_poly1305_init(&s->poly, key);
    else
        crypto_onetimeauth_poly1305_init(&s->poly, key);
}

static void poly_update(mgp_cipher_state *s, const unsigned char *in, size_t len)
{
    if (mgp_poly1305_vector())
        mgp_poly1305_update(&s->poly, in, len);
    else
        crypto_onetimeauth_poly1305_update(&s->poly, in, len);
}

static void poly_final(mgp_cipher_state *s, unsigned char tag[16])
{
    if (mgp_poly1305_vector())
        mgp_poly1305_final(&s->poly, tag);
    else
        crypto_onetimeauth_poly1305_final(&s->poly, tag);
}

void mgp_chacha_start(const mgp_cipher_keys *k, mgp_cipher_state *s, const unsigned char nonce[12])
{
    /* The one-time Poly1305 key is the first half of keystream block 0. */
    /* s->ks: block 1 ready for the message's first bytes (xor_stream at pos 0). */
    mgp_chacha20_blocks01(k->chacha, nonce, s->polykey, s->ks);
    poly_init(s, s->polykey);
    mg_wipe(s->polykey, sizeof s->polykey);
    mgp_chacha_burn();
}

void mgp_chacha_mac(mgp_cipher_state *s, const unsigned char *in, size_t len)
{
    poly_update(s, in, len);
    mgp_chacha_burn();
}

void mgp_chacha_mac_pad(mgp_cipher_state *s, uint64_t len)
{
    if (len % 16 != 0)
        poly_update(s, zeros, 16 - len % 16);
    mgp_chacha_burn();
}

/* XOR with the keystream at message offset pos; s->ks holds the block in progress (at pos 0, the
 * message's first block, from mgp_chacha_start). */
static void xor_stream(const mgp_cipher_keys *k, mgp_cipher_state *s, const unsigned char nonce[12], uint64_t pos,
                       const unsigned char *in, unsigned char *out, size_t len)
{
    size_t off = pos % 64;
    if (off != 0 || pos == 0) {
        size_t n = len < 64 - off ? len : 64 - off;
        for (size_t i = 0; i < n; i++)
            out[i] = in[i] ^ s->ks[off + i];
        in += n, out += n, len -= n, pos += n;
    }
    size_t bulk = len - len % 64;
    if (bulk > 0) {
        mgp_chacha20_xor_blocks(k->chacha, nonce, (uint32_t)(1 + pos / 64), in, out, bulk / 64);
        in += bulk, out += bulk, len -= bulk, pos += bulk;
    }
    if (len > 0) {
        mgp_chacha20_xor_blocks(k->chacha, nonce, (uint32_t)(1 + pos / 64), zeros, s->ks, 1);
        for (size_t i = 0; i < len; i++)
            out[i] = in[i] ^ s->ks[i];
    }
}

void mgp_chacha_crypt(const mgp_cipher_keys *k, mgp_cipher_state *s, const unsigned char nonce[12], uint64_t pos,
                      int enc, const unsigned char *in, unsigned char *out, size_t len)
{
    if (!enc) /* MAC the ciphertext before out (which may be in) is overwritten */
        poly_update(s, in, len);
    xor_stream(k, s, nonce, pos, in, out, len);
    if (enc)
        poly_update(s, out, len);
    mgp_chacha_burn();
}

void mgp_chacha_tag(mgp_cipher_state *s, uint64_t aadlen, uint64_t msglen, unsigned char tag[16])
{
    unsigned char lens[16];
    mgp_chacha_mac_pad(s, msglen);
    for (int i = 0; i < 8; i++) {
        lens[i] = (unsigned char)(aadlen >> (8 * i));
        lens[8 + i] = (unsigned char)(msglen >> (8 * i));
    }
    poly_update(s, lens, sizeof lens);
    poly_final(s, tag);
    mgp_chacha_burn();
}
