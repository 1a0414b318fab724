/*
 * Authenticated encryption of application data with a key held in an
 * enclave. The key is unsealed into guarded scratch memory by
 * mg_enclave_with and exists in the clear only inside the callback.
 */
#include <sodium.h>
#include <string.h>

#include "internal.h"

#define TAG 16

struct aead_call {
    mg_aead_alg alg;
    bool seal;
    unsigned char *out;
    size_t *out_len;
    const unsigned char *in;
    size_t in_len;
    const unsigned char *ad;
    size_t ad_len;
};

static size_t nonce_size(mg_aead_alg alg)
{
    return alg == MG_AEAD_AES256GCM ? crypto_aead_aes256gcm_NPUBBYTES : crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
}

bool mg_aead_available(mg_aead_alg alg)
{
    if (mg_ensure_init() != MG_OK)
        return false;
    if (alg == MG_AEAD_XCHACHA20POLY1305)
        return true;
    return alg == MG_AEAD_AES256GCM && crypto_aead_aes256gcm_is_available();
}

/* libsodium aborts the process past these; we refuse instead. */
static size_t max_message(mg_aead_alg alg)
{
    unsigned long long m = alg == MG_AEAD_AES256GCM ? crypto_aead_aes256gcm_MESSAGEBYTES_MAX
                                                    : crypto_aead_xchacha20poly1305_ietf_MESSAGEBYTES_MAX;
    return m > SIZE_MAX ? SIZE_MAX : (size_t)m;
}

size_t mg_aead_overhead(mg_aead_alg alg)
{
    return nonce_size(alg) + TAG;
}

static int run(const void *key, size_t key_len, unsigned char *staging, void *arg)
{
    struct aead_call *c = arg;
    if (key_len != 32)
        return mg_fail(MG_EINVAL, 0, "the key enclave holds %zu bytes; a 32-byte key is needed", key_len);
    size_t nl = nonce_size(c->alg);
    int bad;
    unsigned long long n = 0;
    if (c->seal) {
        /* out = nonce | ciphertext | tag */
        randombytes_buf(c->out, nl);
        if (c->alg == MG_AEAD_AES256GCM)
            bad = crypto_aead_aes256gcm_encrypt(c->out + nl, &n, c->in, c->in_len, c->ad, c->ad_len, NULL, c->out, key);
        else
            bad = crypto_aead_xchacha20poly1305_ietf_encrypt(c->out + nl, &n, c->in, c->in_len, c->ad, c->ad_len,
                                                             NULL, c->out, key);
        *c->out_len = nl + (size_t)n;
        return bad ? mg_fail(MG_ESYS, 0, "encryption failed") : MG_OK;
    }
    /* libsodium zeroes its output on a bad tag: decrypt into guarded staging, publish only on success. */
    if (c->alg == MG_AEAD_AES256GCM)
        bad = crypto_aead_aes256gcm_decrypt(staging, &n, NULL, c->in + nl, c->in_len - nl, c->ad, c->ad_len, c->in,
                                            key);
    else
        bad = crypto_aead_xchacha20poly1305_ietf_decrypt(staging, &n, NULL, c->in + nl, c->in_len - nl, c->ad,
                                                         c->ad_len, c->in, key);
    if (bad)
        return mg_fail(MG_EAUTH, 0, "message does not authenticate");
    mg_copy(c->out, staging, (size_t)n);
    *c->out_len = (size_t)n;
    return MG_OK;
}

static int check(const mg_enclave *key, mg_aead_alg alg, const unsigned char *out, size_t *out_len,
                 const void *in, size_t in_len, const void *ad, size_t ad_len)
{
    if (key == NULL || out_len == NULL || (in == NULL && in_len > 0) || (ad == NULL && ad_len > 0) ||
        (out == NULL))
        return mg_fail(MG_EINVAL, 0, "NULL argument");
    if (alg != MG_AEAD_XCHACHA20POLY1305 && alg != MG_AEAD_AES256GCM)
        return mg_fail(MG_EINVAL, 0, "unknown algorithm %d", (int)alg);
    if (!mg_aead_available(alg))
        return mg_fail(MG_ENOTSUP, 0, "AES-256-GCM needs AES-NI and PCLMUL, which this CPU lacks");
    return MG_OK;
}

int mg_aead_seal(const mg_enclave *key, mg_aead_alg alg, unsigned char *out, size_t out_cap, size_t *out_len,
                 const void *msg, size_t msg_len, const void *ad, size_t ad_len)
{
    int rc = check(key, alg, out, out_len, msg, msg_len, ad, ad_len);
    if (rc != MG_OK)
        return rc;
    if (msg_len > max_message(alg) || msg_len > SIZE_MAX - mg_aead_overhead(alg))
        return mg_fail(MG_ERANGE, 0, "a %zu-byte message is over the algorithm's limit", msg_len);
    size_t need = msg_len + mg_aead_overhead(alg);
    if (out_cap < need)
        return mg_fail(MG_ERANGE, 0, "output needs %zu bytes, has %zu", need, out_cap);
    struct aead_call c = {alg, true, out, out_len, msg, msg_len, ad, ad_len};
    return mg_enclave_with_workspace(key, 0, run, &c);
}

int mg_aead_open(const mg_enclave *key, mg_aead_alg alg, unsigned char *out, size_t out_cap, size_t *out_len,
                 const void *in, size_t in_len, const void *ad, size_t ad_len)
{
    int rc = check(key, alg, out, out_len, in, in_len, ad, ad_len);
    if (rc != MG_OK)
        return rc;
    if (in_len < mg_aead_overhead(alg))
        return mg_fail(MG_EAUTH, 0, "message of %zu bytes is shorter than nonce and tag", in_len);
    size_t need = in_len - mg_aead_overhead(alg);
    if (need > max_message(alg))
        return mg_fail(MG_ERANGE, 0, "a %zu-byte message is over the algorithm's limit", need);
    if (out_cap < need)
        return mg_fail(MG_ERANGE, 0, "output needs %zu bytes, has %zu", need, out_cap);
    struct aead_call c = {alg, false, out, out_len, in, in_len, ad, ad_len};
    return mg_enclave_with_workspace(key, need, run, &c);
}
