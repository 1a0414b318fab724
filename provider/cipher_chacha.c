/*
 * ChaCha20-Poly1305 (RFC 8439, section 2.8) streamed over libsodium's
 * primitives, whose whole state lives in memory we pass in: the key in the
 * frozen guarded key buffer, the Poly1305 state and keystream blocks in the
 * guarded state buffer. libsodium's one-shot AEAD cannot be streamed, and the
 * default provider's implementation would keep the key in OpenSSL's heap.
 */
#include <string.h>

#include <memguard/memguard.h>

#include "cipher.h"

static const unsigned char zeros[64];

void mgp_chacha_start(const mgp_cipher_keys *k, mgp_cipher_state *s, const unsigned char nonce[12])
{
    /* The one-time Poly1305 key is the first half of keystream block 0. */
    crypto_stream_chacha20_ietf(s->polykey, sizeof s->polykey, nonce, k->chacha);
    crypto_onetimeauth_poly1305_init(&s->poly, s->polykey);
    mg_wipe(s->polykey, sizeof s->polykey);
}

void mgp_chacha_mac(mgp_cipher_state *s, const unsigned char *in, size_t len)
{
    crypto_onetimeauth_poly1305_update(&s->poly, in, len);
}

void mgp_chacha_mac_pad(mgp_cipher_state *s, uint64_t len)
{
    if (len % 16 != 0)
        crypto_onetimeauth_poly1305_update(&s->poly, zeros, 16 - len % 16);
}

/* XOR with the keystream at message offset pos; s->ks holds the block in progress. */
static void xor_stream(const mgp_cipher_keys *k, mgp_cipher_state *s, const unsigned char nonce[12], uint64_t pos,
                       const unsigned char *in, unsigned char *out, size_t len)
{
    size_t off = pos % 64;
    if (off != 0) {
        size_t n = len < 64 - off ? len : 64 - off;
        for (size_t i = 0; i < n; i++)
            out[i] = in[i] ^ s->ks[off + i];
        in += n, out += n, len -= n, pos += n;
    }
    size_t bulk = len - len % 64;
    if (bulk > 0) {
        crypto_stream_chacha20_ietf_xor_ic(out, in, bulk, nonce, (uint32_t)(1 + pos / 64), k->chacha);
        in += bulk, out += bulk, len -= bulk, pos += bulk;
    }
    if (len > 0) {
        crypto_stream_chacha20_ietf_xor_ic(s->ks, zeros, 64, nonce, (uint32_t)(1 + pos / 64), k->chacha);
        for (size_t i = 0; i < len; i++)
            out[i] = in[i] ^ s->ks[i];
    }
}

void mgp_chacha_crypt(const mgp_cipher_keys *k, mgp_cipher_state *s, const unsigned char nonce[12], uint64_t pos,
                      int enc, const unsigned char *in, unsigned char *out, size_t len)
{
    if (!enc) /* MAC the ciphertext before out (which may be in) is overwritten */
        crypto_onetimeauth_poly1305_update(&s->poly, in, len);
    xor_stream(k, s, nonce, pos, in, out, len);
    if (enc)
        crypto_onetimeauth_poly1305_update(&s->poly, out, len);
}

void mgp_chacha_tag(mgp_cipher_state *s, uint64_t aadlen, uint64_t msglen, unsigned char tag[16])
{
    unsigned char lens[16];
    mgp_chacha_mac_pad(s, msglen);
    for (int i = 0; i < 8; i++) {
        lens[i] = (unsigned char)(aadlen >> (8 * i));
        lens[8 + i] = (unsigned char)(msglen >> (8 * i));
    }
    crypto_onetimeauth_poly1305_update(&s->poly, lens, sizeof lens);
    crypto_onetimeauth_poly1305_final(&s->poly, tag);
}
