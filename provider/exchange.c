/* KEYEXCH (ECDH, X25519, X448): derive unseals our key; the peer's key is public. */
#include <openssl/core_names.h>
#include <openssl/params.h>
#include <sodium.h>
#include <string.h>

#include "provider.h"

typedef struct {
    mgp_ctx *prov;
    const char *alg;
    mgp_key *key;
    mgp_key *peer;
    const mgp_key *peer_checked; /* the key that peer was compared with (peer_matches) */
    OSSL_PARAM *params;
} ex_ctx;

static void *ex_new(void *provctx, const char *alg)
{
    ex_ctx *c = OPENSSL_zalloc(sizeof *c);
    if (c != NULL) {
        c->prov = provctx;
        c->alg = alg;
    }
    return c;
}

static void ex_free(void *vctx)
{
    ex_ctx *c = vctx;
    if (c == NULL)
        return;
    mgp_key_free(c->key);
    mgp_key_free(c->peer);
    OSSL_PARAM_free(c->params);
    OPENSSL_free(c);
}

static void *ex_dup(void *vctx)
{
    ex_ctx *c = vctx, *d = ex_new(c->prov, c->alg);
    if (d == NULL)
        return NULL;
    d->key = mgp_key_up(c->key);
    d->peer = mgp_key_up(c->peer);
    d->peer_checked = c->peer_checked;
    if (c->params != NULL && (d->params = OSSL_PARAM_dup(c->params)) == NULL) {
        ex_free(d);
        return NULL;
    }
    return d;
}

static int ex_set_params(void *vctx, const OSSL_PARAM params[])
{
    ex_ctx *c = vctx;
    return mgp_params_merge(&c->params, params);
}

/*
 * Whether peer may be used with key, decided as the default provider decides it, so that memguard
 * is no weaker than what it replaces. ECDH: the two keys' groups must be equal under EC_GROUP_cmp
 * (the default's ecdh_match_params); here EVP_PKEY_parameters_eq on the two public keys, both held by
 * the default provider's EC keymgmt in our library context, whose match function is that same
 * EC_GROUP_cmp. Decoding the peer's point on our curve is not enough: a point of another curve can
 * lie on ours as well (the brainpool r1/t1 twins share points; any y^2 = x^3 + a'x + b' can be drawn
 * through one of our points), and the default refuses such a peer with "mismatching domain
 * parameters". An explicit-parameter copy of our own curve compares equal, as in the default.
 * X25519/X448: the key types must be the same (the default compares key lengths); small-order
 * points are refused at derive, as the default refuses them there. A peer memguard refused at load
 * is refused here, as every other use of it is. Returns 1, or 0 with the error raised.
 */
static int peer_matches(const ex_ctx *c, const mgp_key *key, const mgp_key *peer)
{
    if (peer != NULL && peer->refusal != NULL) { /* every use of a refused key fails, this one too */
        MGP_ERR(c->prov, peer->refusal_reason, "the peer's %s key was refused at load: %s", peer->type, peer->refusal);
        return 0;
    }
    if (peer == NULL || peer->pub == NULL) {
        MGP_ERR(c->prov, MGP_R_BAD_ARGUMENT, "the peer has no public key");
        return 0;
    }
    if (strcmp(peer->type, key->type) != 0) {
        MGP_ERR(c->prov, MGP_R_BAD_ARGUMENT, "a %s peer for a %s key", peer->type, key->type);
        return 0;
    }
    if (strcmp(key->type, "EC") == 0 && EVP_PKEY_parameters_eq(key->pub, peer->pub) != 1) {
        MGP_ERR(c->prov, MGP_R_BAD_ARGUMENT,
                "mismatching domain parameters: the peer's key is not on this key's curve");
        return 0;
    }
    return 1;
}

static int ex_init(void *vctx, void *key, const OSSL_PARAM params[])
{
    ex_ctx *c = vctx;
    mgp_key *k = key;
    if (!mgp_key_usable(c->prov, k))
        return 0;
    /* A peer accepted for an earlier key is accepted for this one only if it would be set now. */
    if (c->peer != NULL && c->peer_checked != k && !peer_matches(c, k, c->peer))
        return 0;
    mgp_key_free(c->key);
    c->key = mgp_key_up(k);
    if (c->peer != NULL)
        c->peer_checked = k;
    return ex_set_params(c, params);
}

static int ex_set_peer(void *vctx, void *peer)
{
    ex_ctx *c = vctx;
    mgp_key *p = peer;
    if (c->key == NULL) {
        MGP_ERR(c->prov, MGP_R_BAD_ARGUMENT, "the peer is set after the key (derive_init)");
        return 0;
    }
    if (!peer_matches(c, c->key, p))
        return 0;
    mgp_key_free(c->peer);
    c->peer = mgp_key_up(p);
    c->peer_checked = c->key;
    return 1;
}

struct derive_args {
    ex_ctx *c;
    unsigned char *secret;
    size_t *secretlen;
    size_t outlen;
};

static int do_derive(EVP_PKEY *full, void *varg)
{
    struct derive_args *a = varg;
    EVP_PKEY_CTX *p = EVP_PKEY_CTX_new_from_pkey(a->c->prov->libctx, full, "provider=default");
    size_t len = a->outlen;
    /* The caller's EVP layer validated the peer already (or chose not to): do not pay twice. */
    int ok = p != NULL && EVP_PKEY_derive_init_ex(p, a->c->params) == 1 &&
             EVP_PKEY_derive_set_peer_ex(p, a->c->peer->pub, 0) == 1 &&
             EVP_PKEY_derive(p, a->secret, a->secret == NULL ? a->secretlen : &len) == 1;
    EVP_PKEY_CTX_free(p);
    if (ok && a->secret != NULL)
        *a->secretlen = len;
    return ok;
}

/*
 * X25519 through libsodium: the 32-byte private key is unsealed into guarded scratch and
 * multiplied there; no EVP_PKEY holding it is built in OpenSSL's heap. RFC 7748 clamps the scalar
 * in both libraries, and both refuse a shared secret of all zeros (a small-order peer point), so
 * the results and failures are OpenSSL's.
 */
/* libsodium's scalar multiplication keeps about 1 KiB of field elements on the stack. */
#define X25519_SCRUB_STACK 4096

struct x25519_args {
    const unsigned char *peer;
    unsigned char *secret;
};

static int x25519_with_key(const unsigned char *priv, size_t len, unsigned char *work, void *varg)
{
    (void)work;
    const struct x25519_args *a = varg;
    return len == crypto_scalarmult_curve25519_SCALARBYTES &&
           crypto_scalarmult_curve25519(a->secret, priv, a->peer) == 0;
}

static int x25519_derive(ex_ctx *c, unsigned char *secret, size_t *secretlen, size_t outlen)
{
    unsigned char peer[32];
    size_t peerlen = sizeof peer;
    if (outlen < crypto_scalarmult_curve25519_BYTES) {
        MGP_ERR(c->prov, MGP_R_BAD_ARGUMENT, "X25519 output buffer of %zu bytes, 32 needed", outlen);
        return 0;
    }
    if (EVP_PKEY_get_raw_public_key(c->peer->pub, peer, &peerlen) != 1 || peerlen != sizeof peer) {
        MGP_ERR(c->prov, MGP_R_BAD_ARGUMENT, "the peer's key is not an X25519 public key");
        return 0;
    }
    struct x25519_args a = {peer, secret};
    int ok = mgp_key_with_param(c->key, OSSL_PKEY_PARAM_PRIV_KEY, 0, x25519_with_key, &a);
    mg_scrub(X25519_SCRUB_STACK); /* libsodium's field elements, on the stack below us */
    if (!ok) {
        mg_wipe(secret, crypto_scalarmult_curve25519_BYTES);
        MGP_ERR(c->prov, MGP_R_OPERATION_FAILED, "X25519 derivation failed (a small-order peer key?)");
        return 0;
    }
    *secretlen = crypto_scalarmult_curve25519_BYTES;
    return 1;
}

static int ex_derive(void *vctx, unsigned char *secret, size_t *secretlen, size_t outlen)
{
    ex_ctx *c = vctx;
    if (c->key == NULL || c->peer == NULL || c->peer_checked != c->key) {
        MGP_ERR(c->prov, MGP_R_BAD_ARGUMENT, "key and peer must be set");
        return 0;
    }
    if (secret == NULL && c->params == NULL) {
        /* Size query: the shared secret's size is public (field size, or 32/56 for X25519/X448). */
        int bits = EVP_PKEY_get_bits(c->key->pub);
        if (bits > 0) {
            *secretlen = strcmp(c->alg, "X25519") == 0 ? 32 : strcmp(c->alg, "X448") == 0 ? 56 : ((size_t)bits + 7) / 8;
            return 1;
        }
    }
    if (secret != NULL && c->params == NULL && strcmp(c->alg, "X25519") == 0)
        return x25519_derive(c, secret, secretlen, outlen);
    /* Plain ECDH (no parameters: no KDF, no cofactor option): the per-key curve, only the scalar unsealed. */
    if (secret != NULL && c->params == NULL && strcmp(c->alg, "ECDH") == 0) {
        int rc = mgp_ecdh_derive(c->key, c->peer->pub, secret, secretlen, outlen);
        if (rc >= 0)
            return rc;
    }
    struct derive_args a = {c, secret, secretlen, outlen};
    return mgp_key_with_private(c->key, do_derive, &a);
}

#define EXCHANGE(id, ALG)                                                      \
    static void *id##_newctx(void *provctx)                                    \
    {                                                                          \
        return ex_new(provctx, ALG);                                           \
    }                                                                          \
    static const OSSL_PARAM *id##_settable(void *vctx, void *provctx)          \
    {                                                                          \
        (void)vctx;                                                            \
        mgp_ctx *prov = provctx;                                               \
        EVP_KEYEXCH *x = EVP_KEYEXCH_fetch(prov->libctx, ALG, "provider=default"); \
        const OSSL_PARAM *p = EVP_KEYEXCH_settable_ctx_params(x);              \
        EVP_KEYEXCH_free(x);                                                   \
        return p;                                                              \
    }                                                                          \
    const OSSL_DISPATCH mgp_##id##_exchange[] = {                              \
        {OSSL_FUNC_KEYEXCH_NEWCTX, (void (*)(void))id##_newctx},               \
        {OSSL_FUNC_KEYEXCH_FREECTX, (void (*)(void))ex_free},                  \
        {OSSL_FUNC_KEYEXCH_DUPCTX, (void (*)(void))ex_dup},                    \
        {OSSL_FUNC_KEYEXCH_INIT, (void (*)(void))ex_init},                     \
        {OSSL_FUNC_KEYEXCH_SET_PEER, (void (*)(void))ex_set_peer},             \
        {OSSL_FUNC_KEYEXCH_DERIVE, (void (*)(void))ex_derive},                 \
        {OSSL_FUNC_KEYEXCH_SET_CTX_PARAMS, (void (*)(void))ex_set_params},     \
        {OSSL_FUNC_KEYEXCH_SETTABLE_CTX_PARAMS, (void (*)(void))id##_settable}, \
        {0, NULL},                                                             \
    };

EXCHANGE(ecdh, "ECDH")
EXCHANGE(x25519, "X25519")
EXCHANGE(x448, "X448")
