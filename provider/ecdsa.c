/*
 * ECDSA and ECDH without rebuilding an EVP_PKEY per operation. The curve group
 * is public and built once per key; for each signature or derivation only the
 * private scalar is unsealed (into guarded scratch), loaded into a secure
 * BIGNUM (and, for ECDSA, a transient EC_KEY), used, and cleared. This skips
 * ~9 us of group construction per operation on P-256 (docs/provider.md). The low-level EC_KEY API is
 * deprecated in OpenSSL 3 but present in every 3.x; it runs in the provider's
 * private library context.
 */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/obj_mac.h>
#include <openssl/objects.h>

#include "provider.h"

/* The key's curve, built on first use and shared by all threads (read-only afterwards). */
static const EC_GROUP *group_of(mgp_key *k)
{
    EC_GROUP *g = atomic_load(&k->ec_group);
    if (g != NULL)
        return g;
    char name[64];
    size_t len = 0;
    if (EVP_PKEY_get_utf8_string_param(k->pub, OSSL_PKEY_PARAM_GROUP_NAME, name, sizeof name, &len) != 1)
        return NULL;
    int nid = OBJ_txt2nid(name);
    if (nid == NID_undef)
        nid = EC_curve_nist2nid(name);
    g = nid != NID_undef ? EC_GROUP_new_by_curve_name_ex(k->prov->libctx, NULL, nid) : NULL;
    if (g == NULL)
        return NULL;
    EC_GROUP *expected = NULL;
    if (!atomic_compare_exchange_strong(&k->ec_group, &expected, g)) {
        EC_GROUP_free(g); /* another thread won */
        g = expected;
    }
    return g;
}

struct ecdsa_args {
    const EC_GROUP *group;
    OSSL_LIB_CTX *libctx;
    const unsigned char *dgst;
    size_t dlen;
    unsigned char *sig;
    unsigned int siglen;
};

/*
 * The scalar goes into a secure BIGNUM; EC_KEY_set_private_key copies it with BN_dup, which keeps
 * a secure number secure, so the transient EC_KEY's copy is in the secure heap too, and both are
 * cleared on free. The nonce k and its inverse are OpenSSL's own BN_secure_new numbers. What stays
 * in ordinary heap is the scratch of ECDSA_sign's own BN_CTX (nonce derivation, k*G, r*d): taking
 * the nonce out of ECDSA_sign (ECDSA_sign_setup) would give up its hedged, digest-bound nonce.
 */
static int sign_with_scalar(const unsigned char *val, size_t len, unsigned char *work, void *varg)
{
    (void)work;
    struct ecdsa_args *a = varg;
    BIGNUM *d = BN_secure_new();
    EC_KEY *ek = EC_KEY_new_ex(a->libctx, NULL);
    int ok = d != NULL && ek != NULL && BN_native2bn(val, (int)len, d) != NULL;
    if (ok)
        BN_set_flags(d, BN_FLG_CONSTTIME);
    ok = ok && EC_KEY_set_group(ek, a->group) == 1 && EC_KEY_set_private_key(ek, d) == 1 &&
         ECDSA_sign(0, a->dgst, (int)a->dlen, a->sig, &a->siglen, ek) == 1;
    BN_clear_free(d);
    EC_KEY_free(ek); /* clears the private key */
    return ok;
}

int mgp_ecdsa_sign_digest(mgp_key *k, const unsigned char *dgst, size_t dlen, unsigned char *sig, size_t *siglen,
                          size_t sigsize)
{
    const EC_GROUP *g = group_of(k);
    if (g == NULL || sigsize < (size_t)EVP_PKEY_get_size(k->pub))
        return 0;
    struct ecdsa_args a = {g, k->prov->libctx, dgst, dlen, sig, 0};
    if (!mgp_key_with_param(k, OSSL_PKEY_PARAM_PRIV_KEY, 0, sign_with_scalar, &a))
        return 0;
    *siglen = a.siglen;
    return 1;
}

struct ecdh_args {
    const mgp_ctx *prov;
    const EC_GROUP *group;
    OSSL_LIB_CTX *libctx;
    const EC_POINT *peer;
    unsigned char *secret;
    size_t len;
};

/*
 * The shared point d*peer and its x coordinate, as OpenSSL's ECDH (ossl_ecdh_simple_compute_key)
 * computes them, but with every intermediate in secure memory: the scalar, the BN_CTX scratch of
 * the multiplication and the shared x all come from OpenSSL's secure heap when it is set up, and
 * are cleared on release. No transient EC_KEY: it would hold one more copy of the scalar.
 */
static int derive_with_scalar(const unsigned char *val, size_t len, unsigned char *work, void *varg)
{
    (void)work;
    struct ecdh_args *a = varg;
    BN_CTX *bn = BN_CTX_secure_new_ex(a->libctx);
    EC_POINT *shared = EC_POINT_new(a->group);
    BIGNUM *d = NULL, *x = NULL;
    int ok = 0;
    if (bn == NULL || shared == NULL)
        goto out;
    BN_CTX_start(bn);
    d = BN_CTX_get(bn);
    x = BN_CTX_get(bn);
    if (x == NULL || BN_native2bn(val, (int)len, d) == NULL)
        goto out;
    BN_set_flags(d, BN_FLG_CONSTTIME);
    /* The point at infinity (a peer of small order, or the peer at infinity) has no x: refused. */
    ok = EC_POINT_mul(a->group, shared, NULL, a->peer, d, bn) == 1 &&
         EC_POINT_get_affine_coordinates(a->group, shared, x, NULL, bn) == 1 &&
         BN_bn2binpad(x, a->secret, (int)a->len) == (int)a->len;
    if (!ok)
        MGP_ERR(a->prov, MGP_R_OPERATION_FAILED, "ECDH failed (the shared point is the point at infinity?)");
out:
    if (x != NULL) {
        BN_clear(d);
        BN_clear(x);
    }
    EC_POINT_clear_free(shared);
    if (bn != NULL)
        BN_CTX_end(bn);
    BN_CTX_free(bn); /* a secure context clears its numbers as it frees them */
    if (!ok)
        OPENSSL_cleanse(a->secret, a->len);
    return ok;
}

int mgp_ecdh_derive(mgp_key *k, const EVP_PKEY *peer, unsigned char *secret, size_t *secretlen, size_t outlen)
{
    const EC_GROUP *g = group_of(k);
    /* Cofactor > 1: whether to multiply by it is the key's and the context's choice; the generic path has both. */
    if (g == NULL || !BN_is_one(EC_GROUP_get0_cofactor(g)))
        return -1;
    size_t len = ((size_t)EC_GROUP_get_degree(g) + 7) / 8;
    if (outlen < len) {
        MGP_ERR(k->prov, MGP_R_BAD_ARGUMENT, "ECDH output buffer of %zu bytes, %zu needed", outlen, len);
        return 0;
    }
    /*
     * The peer's point, decoded on our curve. That the peer's group IS our group was settled when
     * the peer was set (exchange.c, peer_matches: EC_GROUP_cmp as the default provider does);
     * decoding alone would accept a point of another curve that happens to lie on ours too.
     */
    unsigned char enc[1 + 2 * 66];
    size_t enclen = 0;
    EC_POINT *p = EC_POINT_new(g);
    int ok = p != NULL &&
             EVP_PKEY_get_octet_string_param(peer, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, enc, sizeof enc, &enclen) == 1 &&
             EC_POINT_oct2point(g, p, enc, enclen, NULL) == 1;
    if (!ok) {
        EC_POINT_free(p);
        MGP_ERR(k->prov, MGP_R_BAD_ARGUMENT, "the peer's public key is not a point of this key's curve");
        return 0;
    }
    struct ecdh_args a = {k->prov, g, k->prov->libctx, p, secret, len};
    ok = mgp_key_with_param(k, OSSL_PKEY_PARAM_PRIV_KEY, 0, derive_with_scalar, &a);
    EC_POINT_free(p);
    if (ok)
        *secretlen = len;
    return ok;
}
