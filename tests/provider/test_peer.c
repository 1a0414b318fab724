/*
 * Peer keys in key exchange are judged by memguard exactly as the default provider judges them
 * (issue 11, point 7): every peer the default provider accepts gives the same shared secret through
 * memguard, and every peer it refuses, memguard refuses too, at the same stage (key import,
 * set_peer or derive).
 *
 * For each curve memguard seals a key on (P-256, P-384, P-521, secp256k1, every brainpool curve)
 * and for X25519/X448, a sealed key (read through memguard's decoders) is run against a list of
 * crafted peers, along every memguard code path (plain ECDH on the per-key curve; the generic
 * path with an X9.63 KDF and with cofactor mode; X25519 on libsodium; X448), with the peer set by
 * EVP_PKEY_derive_set_peer and by EVP_PKEY_derive_set_peer_ex with validate_peer 0 and 1, and
 * with peer keys held by the default provider and by memguard (imported with provider=memguard).
 * The reference is the same private key and the same peer in a library context that has only the
 * default provider.
 *
 * The dangerous peers are those whose point also lies on our curve while their group is another:
 * decoding the point on our curve accepts them, the default provider refuses them with
 * "mismatching domain parameters". Every crafted point is computed here, at run time, from the
 * curve parameters (see the comments at each construction); nothing is a stored constant except
 * the well-known small-order X25519/X448 u-coordinates, which are checked to be of small order.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/provider.h>

#include <memguard/memguard.h>

#include "../core/harness.h"
#include "check.h"

static OSSL_LIB_CTX *plain; /* the default provider only: the reference */

/* ---- outcomes ---- */

/* How far a derivation got: the stage that refused the peer, or OK. */
enum stage { ST_IMPORT, ST_SET_PEER, ST_DERIVE, ST_OK };
static const char *const stage_name[] = {"refused at import", "refused at set_peer", "refused at derive", "derived"};

/* The code paths: memguard's plain ECDH (fast path), the generic path with X9.63 KDF, with cofactor mode. */
enum path { PATH_PLAIN, PATH_KDF, PATH_COFACTOR };
static const char *const path_name[] = {"plain", "X9.63 KDF", "cofactor mode"};

/* How the peer is set: set_peer_ex(validate 0), set_peer_ex(validate 1), set_peer (validates). */
static const char *const how_name[] = {"set_peer_ex(0)", "set_peer_ex(1)", "set_peer"};

struct outcome {
    enum stage st;
    unsigned char secret[160];
    size_t len;
    char provider[32]; /* which provider ran the exchange */
};

static void derive_outcome(EVP_PKEY *mine, OSSL_LIB_CTX *lib, EVP_PKEY *peer, int how, enum path path,
                           struct outcome *o)
{
    memset(o, 0, sizeof *o);
    o->st = ST_IMPORT;
    if (peer == NULL)
        return;
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_pkey(lib, mine, NULL);
    bool ok = c != NULL && EVP_PKEY_derive_init(c) == 1;
    if (ok && path == PATH_KDF)
        ok = EVP_PKEY_CTX_set_ecdh_kdf_type(c, EVP_PKEY_ECDH_KDF_X9_63) == 1 &&
             EVP_PKEY_CTX_set_ecdh_kdf_md(c, EVP_sha256()) == 1 && EVP_PKEY_CTX_set_ecdh_kdf_outlen(c, 40) == 1;
    if (ok && path == PATH_COFACTOR)
        ok = EVP_PKEY_CTX_set_ecdh_cofactor_mode(c, 1) == 1;
    CHECK(ok, "derive_init (%s) failed", path_name[path]);
    const OSSL_PROVIDER *prov = c != NULL ? EVP_PKEY_CTX_get0_provider(c) : NULL;
    snprintf(o->provider, sizeof o->provider, "%s", prov != NULL ? OSSL_PROVIDER_get0_name(prov) : "(none)");
    o->st = ST_SET_PEER;
    int r = !ok ? 0 : how == 2 ? EVP_PKEY_derive_set_peer(c, peer) : EVP_PKEY_derive_set_peer_ex(c, peer, how);
    if (r == 1) {
        o->st = ST_DERIVE;
        size_t len = sizeof o->secret;
        if (EVP_PKEY_derive(c, o->secret, &len) == 1) {
            o->st = ST_OK;
            o->len = len;
        }
    }
    EVP_PKEY_CTX_free(c);
    ERR_clear_error();
}

/* ---- the keys ---- */

static const char *provider_of(const EVP_PKEY *k)
{
    const OSSL_PROVIDER *p = k != NULL ? EVP_PKEY_get0_provider(k) : NULL;
    return p != NULL ? OSSL_PROVIDER_get0_name(p) : "(none)";
}

/* A fresh key of type/curve made by the plain side (*full) and read back through memguard's decoders. */
static EVP_PKEY *sealed_key(const char *type, const char *curve, EVP_PKEY **full)
{
    *full = curve != NULL ? EVP_PKEY_Q_keygen(plain, NULL, type, curve) : EVP_PKEY_Q_keygen(plain, NULL, type);
    BIO *b = BIO_new(BIO_s_mem());
    EVP_PKEY *k = NULL;
    if (*full != NULL && b != NULL && PEM_write_bio_PrivateKey(b, *full, NULL, NULL, 0, NULL, NULL) == 1)
        k = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
    BIO_free(b); /* a memory BIO's buffer: test keys only */
    return k;
}

/* A public key from params, by the provider named in propq, in lib; NULL if the import is refused. */
static EVP_PKEY *import_peer(OSSL_LIB_CTX *lib, const char *propq, const char *type, const OSSL_PARAM *params)
{
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_name(lib, type, propq);
    EVP_PKEY *k = NULL;
    if (c == NULL || EVP_PKEY_fromdata_init(c) != 1 ||
        EVP_PKEY_fromdata(c, &k, EVP_PKEY_PUBLIC_KEY, (OSSL_PARAM *)(uintptr_t)params) != 1)
        k = NULL;
    EVP_PKEY_CTX_free(c);
    ERR_clear_error();
    return k;
}

struct sealed {
    const char *type; /* "EC", "X25519", "X448" */
    const char *curve;
    EVP_PKEY *k;    /* memguard's */
    EVP_PKEY *full; /* the same key, plain */
};

static int checked_peers; /* peers compared, reported at the end so that a run shows its size */

/*
 * Run one peer (given as key parameters) against the sealed key on every path and every way of
 * setting it, with the peer held by the default provider and by memguard, and compare with the
 * plain side: the same stage and the same secret, whoever holds the peer (memguard's keymgmt
 * validates a peer it holds with the default provider's public check, as set_peer_ex(1) asks).
 */
static void compare_peer(const struct sealed *s, const char *what, const char *peer_type, const OSSL_PARAM *params,
                         enum stage expect)
{
    const bool ec = strcmp(s->type, "EC") == 0;
    EVP_PKEY *ref_peer = import_peer(plain, NULL, peer_type, params);
    EVP_PKEY *def_peer = import_peer(NULL, "provider=default", peer_type, params);
    EVP_PKEY *mg_peer = import_peer(NULL, "provider=memguard", peer_type, params);
    CHECK(def_peer == NULL || strcmp(provider_of(def_peer), "default") == 0, "%s: default-provider peer is %s's",
          what, provider_of(def_peer));
    CHECK(mg_peer == NULL || strcmp(provider_of(mg_peer), "memguard") == 0, "%s: memguard peer is %s's", what,
          provider_of(mg_peer));
    CHECK((ref_peer == NULL) == (def_peer == NULL) && (ref_peer == NULL) == (mg_peer == NULL),
          "%s %s: peer import: plain %s, default %s, memguard %s", s->curve, what, ref_peer ? "ok" : "refused",
          def_peer ? "ok" : "refused", mg_peer ? "ok" : "refused");
    checked_peers++;
    for (enum path path = PATH_PLAIN; path <= (ec ? PATH_COFACTOR : PATH_PLAIN); path++) {
        for (int how = 0; how < 3; how++) {
            struct outcome ref, viadef, viamg;
            derive_outcome(s->full, plain, ref_peer, how, path, &ref);
            derive_outcome(s->k, NULL, def_peer, how, path, &viadef);
            derive_outcome(s->k, NULL, mg_peer, how, path, &viamg);
            /* expect is the stage without validation; validation may refuse a peer earlier, at set_peer. */
            CHECK(ref.st == expect || (how != 0 && expect == ST_DERIVE && ref.st == ST_SET_PEER),
                  "%s %s (%s, %s): the default provider %s, the test expects it %s", s->curve, what, path_name[path],
                  how_name[how], stage_name[ref.st], stage_name[expect]);
            CHECK((def_peer == NULL || strcmp(viadef.provider, "memguard") == 0) &&
                      (mg_peer == NULL || strcmp(viamg.provider, "memguard") == 0),
                  "%s %s: the exchange ran in %s / %s, not memguard", s->curve, what, viadef.provider, viamg.provider);
            const struct outcome *mine[2] = {&viadef, &viamg};
            for (int m = 0; m < 2; m++) {
                const struct outcome *o = mine[m];
                bool same_stage = o->st == ref.st;
                bool same_secret = o->st != ST_OK || (o->len == ref.len && memcmp(o->secret, ref.secret, ref.len) == 0);
                CHECK(same_stage && same_secret,
                      "%s %s (%s, %s, peer held by %s): memguard %s, the default provider %s%s", s->curve, what,
                      path_name[path], how_name[how], m == 0 ? "default" : "memguard", stage_name[o->st],
                      stage_name[ref.st], o->st == ST_OK && ref.st == ST_OK ? " (secrets differ)" : "");
            }
            OPENSSL_cleanse(&ref, sizeof ref);
            OPENSSL_cleanse(&viadef, sizeof viadef);
            OPENSSL_cleanse(&viamg, sizeof viamg);
        }
    }
    EVP_PKEY_free(ref_peer);
    EVP_PKEY_free(def_peer);
    EVP_PKEY_free(mg_peer);
}

/* ---- EC peer parameters ---- */

/* A named-curve public key: group name and encoded point. */
static OSSL_PARAM *named_params(const char *curve, const unsigned char *pub, size_t publen)
{
    OSSL_PARAM_BLD *b = OSSL_PARAM_BLD_new();
    OSSL_PARAM *p = NULL;
    if (b != NULL && OSSL_PARAM_BLD_push_utf8_string(b, OSSL_PKEY_PARAM_GROUP_NAME, curve, 0) == 1 &&
        OSSL_PARAM_BLD_push_octet_string(b, OSSL_PKEY_PARAM_PUB_KEY, pub, publen) == 1)
        p = OSSL_PARAM_BLD_to_param(b);
    OSSL_PARAM_BLD_free(b);
    return p;
}

/* An explicit-parameter public key over GF(p): y^2 = x^3 + ax + b, generator gen of order n (cofactor h or none). */
struct explicit_curve {
    const BIGNUM *p, *a, *b, *n, *h;
    const unsigned char *gen;
    size_t genlen;
};

static OSSL_PARAM *explicit_params(const struct explicit_curve *e, const unsigned char *pub, size_t publen)
{
    OSSL_PARAM_BLD *b = OSSL_PARAM_BLD_new();
    OSSL_PARAM *p = NULL;
    if (b != NULL && OSSL_PARAM_BLD_push_utf8_string(b, OSSL_PKEY_PARAM_EC_FIELD_TYPE, SN_X9_62_prime_field, 0) == 1 &&
        OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_EC_P, e->p) == 1 &&
        OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_EC_A, e->a) == 1 &&
        OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_EC_B, e->b) == 1 &&
        OSSL_PARAM_BLD_push_octet_string(b, OSSL_PKEY_PARAM_EC_GENERATOR, e->gen, e->genlen) == 1 &&
        OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_EC_ORDER, e->n) == 1 &&
        (e->h == NULL || OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_EC_COFACTOR, e->h) == 1) &&
        OSSL_PARAM_BLD_push_octet_string(b, OSSL_PKEY_PARAM_PUB_KEY, pub, publen) == 1)
        p = OSSL_PARAM_BLD_to_param(b);
    OSSL_PARAM_BLD_free(b);
    return p;
}

static void compare_named(const struct sealed *s, const char *what, const char *curve, const unsigned char *pub,
                          size_t publen, enum stage expect)
{
    OSSL_PARAM *p = named_params(curve, pub, publen);
    CU_ASSERT_FATAL(p != NULL);
    compare_peer(s, what, "EC", p, expect);
    OSSL_PARAM_free(p);
}

static void compare_explicit(const struct sealed *s, const char *what, const struct explicit_curve *e,
                             const unsigned char *pub, size_t publen, enum stage expect)
{
    OSSL_PARAM *p = explicit_params(e, pub, publen);
    CU_ASSERT_FATAL(p != NULL);
    compare_peer(s, what, "EC", p, expect);
    OSSL_PARAM_free(p);
}

/* Our curve, as numbers. */
struct curve {
    EC_GROUP *g;
    BIGNUM *p, *a, *b, *n, *h;
    unsigned char gen[1 + 2 * 66];
    size_t genlen;
    size_t field; /* bytes */
};

static bool curve_load(struct curve *c, const char *name, BN_CTX *bn)
{
    memset(c, 0, sizeof *c);
    int nid = OBJ_txt2nid(name);
    if (nid == NID_undef)
        nid = EC_curve_nist2nid(name);
    c->g = EC_GROUP_new_by_curve_name_ex(plain, NULL, nid);
    c->p = BN_new();
    c->a = BN_new();
    c->b = BN_new();
    c->n = BN_dup(c->g != NULL ? EC_GROUP_get0_order(c->g) : NULL);
    c->h = BN_dup(c->g != NULL ? EC_GROUP_get0_cofactor(c->g) : NULL);
    if (c->g == NULL || c->p == NULL || c->a == NULL || c->b == NULL || c->n == NULL || c->h == NULL ||
        EC_GROUP_get_curve(c->g, c->p, c->a, c->b, bn) != 1)
        return false;
    c->genlen = EC_POINT_point2oct(c->g, EC_GROUP_get0_generator(c->g), POINT_CONVERSION_UNCOMPRESSED, c->gen,
                                   sizeof c->gen, bn);
    c->field = (size_t)(EC_GROUP_get_degree(c->g) + 7) / 8;
    return c->genlen == 1 + 2 * c->field;
}

static void curve_free(struct curve *c)
{
    EC_GROUP_free(c->g);
    BN_free(c->p);
    BN_free(c->a);
    BN_free(c->b);
    BN_free(c->n);
    BN_free(c->h);
}

/* The uncompressed encoding 04 || x || y of (x, y). */
static size_t encode_xy(const struct curve *c, const BIGNUM *x, const BIGNUM *y, unsigned char *out)
{
    out[0] = 0x04;
    if (BN_bn2binpad(x, out + 1, (int)c->field) < 0 || BN_bn2binpad(y, out + 1 + c->field, (int)c->field) < 0)
        return 0;
    return 1 + 2 * c->field;
}

/* A random point of curve (a fresh key's public point), as (x, y) and uncompressed. */
static size_t random_point(const char *curve, const struct curve *c, BIGNUM *x, BIGNUM *y, unsigned char *out,
                           BN_CTX *bn)
{
    EVP_PKEY *k = EVP_PKEY_Q_keygen(plain, NULL, "EC", curve);
    size_t len = 0;
    EC_POINT *pt = EC_POINT_new(c->g);
    if (k == NULL || pt == NULL ||
        EVP_PKEY_get_octet_string_param(k, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, out, 1 + 2 * 66, &len) != 1 ||
        EC_POINT_oct2point(c->g, pt, out, len, bn) != 1 || EC_POINT_get_affine_coordinates(c->g, pt, x, y, bn) != 1)
        len = 0;
    EC_POINT_free(pt);
    EVP_PKEY_free(k);
    return len;
}

/*
 * b' = y^2 - x^3 - a'x (mod p): the b that puts (x, y) on y^2 = x^3 + a'x + b'.
 */
static bool b_through(const struct curve *c, const BIGNUM *a2, const BIGNUM *x, const BIGNUM *y, BIGNUM *b2,
                      BN_CTX *bn)
{
    BN_CTX_start(bn);
    BIGNUM *t = BN_CTX_get(bn), *u = BN_CTX_get(bn);
    bool ok = u != NULL && BN_mod_sqr(t, y, c->p, bn) == 1 && BN_mod_sqr(u, x, c->p, bn) == 1 &&
              BN_mod_mul(u, u, x, c->p, bn) == 1 && BN_mod_sub(t, t, u, c->p, bn) == 1 &&
              BN_mod_mul(u, a2, x, c->p, bn) == 1 && BN_mod_sub(b2, t, u, c->p, bn) == 1;
    BN_CTX_end(bn);
    return ok;
}

/* Whether (x, y) is on y^2 = x^3 + a x + b over c's field, checked by OpenSSL on a group of its own. */
static bool on_curve(const struct curve *c, const BIGNUM *a, const BIGNUM *b, const BIGNUM *x, const BIGNUM *y,
                     BN_CTX *bn)
{
    EC_GROUP *g = EC_GROUP_new_curve_GFp(c->p, a, b, bn);
    EC_POINT *pt = g != NULL ? EC_POINT_new(g) : NULL;
    bool ok = pt != NULL && EC_POINT_set_affine_coordinates(g, pt, x, y, bn) == 1; /* checks the curve equation */
    EC_POINT_free(pt);
    EC_GROUP_free(g);
    ERR_clear_error();
    return ok;
}

/*
 * An order-3 point on a curve of our field through our point (x, y): P has order 3 on
 * y^2 = x^3 + a'x + b' exactly when x is a root of the 3-division polynomial
 * psi3 = 3x^4 + 6a'x^2 + 12b'x - a'^2. With b' = y^2 - x^3 - a'x (the curve goes through P) this is
 * (a' + 3x^2)^2 = 12 x y^2, so a' = -3x^2 + y*sqrt(12x), which exists when 12x is a square mod p.
 * On such a curve an implementation that multiplied on the peer's curve would return (d mod 3)*P:
 * the scalar modulo 3, the first step of an invalid-curve attack. Returns whether 12x was a square.
 */
static bool order3_curve(const struct curve *c, const BIGNUM *x, const BIGNUM *y, BIGNUM *a2, BIGNUM *b2, BN_CTX *bn)
{
    BN_CTX_start(bn);
    BIGNUM *t = BN_CTX_get(bn), *s = BN_CTX_get(bn), *twelve = BN_CTX_get(bn);
    bool ok = twelve != NULL && BN_set_word(twelve, 12) == 1 && BN_mod_mul(t, twelve, x, c->p, bn) == 1 &&
              BN_kronecker(t, c->p, bn) == 1 && BN_mod_sqrt(s, t, c->p, bn) != NULL &&
              BN_mod_mul(s, s, y, c->p, bn) == 1 && BN_mod_sqr(t, x, c->p, bn) == 1 && BN_mul_word(t, 3) == 1 &&
              BN_mod_sub(a2, s, t, c->p, bn) == 1 && b_through(c, a2, x, y, b2, bn);
    BN_CTX_end(bn);
    ERR_clear_error();
    return ok;
}

/* 3*P is the point at infinity on y^2 = x^3 + a'x + b' (the construction above did what it claims). */
static bool has_order3(const struct curve *c, const BIGNUM *a2, const BIGNUM *b2, const BIGNUM *x, const BIGNUM *y,
                       BN_CTX *bn)
{
    EC_GROUP *g = EC_GROUP_new_curve_GFp(c->p, a2, b2, bn);
    EC_POINT *pt = g != NULL ? EC_POINT_new(g) : NULL, *r = g != NULL ? EC_POINT_new(g) : NULL;
    BIGNUM *three = BN_new();
    bool ok = r != NULL && three != NULL && BN_set_word(three, 3) == 1 &&
              EC_POINT_set_affine_coordinates(g, pt, x, y, bn) == 1 && !EC_POINT_is_at_infinity(g, pt) &&
              EC_POINT_mul(g, r, NULL, pt, three, bn) == 1 && EC_POINT_is_at_infinity(g, r);
    BN_free(three);
    EC_POINT_free(r);
    EC_POINT_free(pt);
    EC_GROUP_free(g);
    return ok;
}

/* The curves memguard seals EC keys on, with their brainpool twin (same field, another curve). */
static const struct {
    const char *name, *twin;
} ec_curves[] = {
    {"P-256", NULL},
    {"P-384", NULL},
    {"P-521", NULL},
    {"secp256k1", NULL},
    {"brainpoolP160r1", "brainpoolP160t1"},
    {"brainpoolP160t1", "brainpoolP160r1"},
    {"brainpoolP192r1", "brainpoolP192t1"},
    {"brainpoolP192t1", "brainpoolP192r1"},
    {"brainpoolP224r1", "brainpoolP224t1"},
    {"brainpoolP224t1", "brainpoolP224r1"},
    {"brainpoolP256r1", "brainpoolP256t1"},
    {"brainpoolP256t1", "brainpoolP256r1"},
    {"brainpoolP320r1", "brainpoolP320t1"},
    {"brainpoolP320t1", "brainpoolP320r1"},
    {"brainpoolP384r1", "brainpoolP384t1"},
    {"brainpoolP384t1", "brainpoolP384r1"},
    {"brainpoolP512r1", "brainpoolP512t1"},
    {"brainpoolP512t1", "brainpoolP512r1"},
};
#define NCURVES (sizeof ec_curves / sizeof ec_curves[0])

/*
 * The brainpool twins rNNN and tNNN share the prime p; tNNN is rNNN's isomorphic image with a = -3.
 * A point lies on both when y^2 = x^3 + a_r x + b_r = x^3 + a_t x + b_t, i.e. at the one x with
 * (a_r - a_t) x = b_t - b_r, and when x^3 + a_r x + b_r is a square there. Then (x, +-y) is a point
 * of both curves: of prime order on each, a valid peer on the twin that also decodes on ours.
 * For 160 and 320 bits that value is not a square: the twins share no point, and the test says so.
 */
static bool shared_twin_point(const struct curve *ours, const struct curve *twin, BIGNUM *x, BIGNUM *y, BN_CTX *bn)
{
    BN_CTX_start(bn);
    BIGNUM *t = BN_CTX_get(bn), *u = BN_CTX_get(bn);
    bool ok = u != NULL && BN_cmp(ours->p, twin->p) == 0 && BN_mod_sub(t, twin->b, ours->b, ours->p, bn) == 1 &&
              BN_mod_sub(u, ours->a, twin->a, ours->p, bn) == 1 && BN_mod_inverse(u, u, ours->p, bn) != NULL &&
              BN_mod_mul(x, t, u, ours->p, bn) == 1 && BN_mod_sqr(t, x, ours->p, bn) == 1 &&
              BN_mod_add(t, t, ours->a, ours->p, bn) == 1 && BN_mod_mul(t, t, x, ours->p, bn) == 1 &&
              BN_mod_add(t, t, ours->b, ours->p, bn) == 1 && BN_kronecker(t, ours->p, bn) == 1 &&
              BN_mod_sqrt(y, t, ours->p, bn) != NULL;
    BN_CTX_end(bn);
    ERR_clear_error();
    return ok;
}

/* The brainpool sizes whose twins share a point (computed once with the formula above). */
static bool twins_share_a_point(const char *name)
{
    return strstr(name, "P160") == NULL && strstr(name, "P320") == NULL;
}

static void test_ec_peers(void)
{
    BN_CTX *bn = BN_CTX_new();
    BIGNUM *x = BN_new(), *y = BN_new(), *a2 = BN_new(), *b2 = BN_new(), *t = BN_new();
    CU_ASSERT_FATAL(bn != NULL && x != NULL && y != NULL && a2 != NULL && b2 != NULL && t != NULL);
    for (size_t i = 0; i < NCURVES; i++) {
        const char *name = ec_curves[i].name;
        struct sealed s = {"EC", name, NULL, NULL};
        struct curve c;
        s.k = sealed_key("EC", name, &s.full);
        if (!CHECK(s.k != NULL && strcmp(provider_of(s.k), "memguard") == 0, "%s: not sealed by memguard", name) ||
            !CHECK(curve_load(&c, name, bn), "%s: curve parameters", name)) {
            EVP_PKEY_free(s.k);
            EVP_PKEY_free(s.full);
            continue;
        }
        unsigned char pub[1 + 2 * 66 + 2], enc[1 + 2 * 66 + 2];
        size_t publen;

        /* Valid peers on our curve, uncompressed: accepted, the same secret. */
        for (int n = 0; n < 3; n++) {
            publen = random_point(name, &c, x, y, pub, bn);
            CU_ASSERT_FATAL(publen == 1 + 2 * c.field);
            compare_named(&s, "a fresh peer", name, pub, publen, ST_OK);
        }
        /* The last one compressed (02/03 || x) and hybrid (06/07 || x || y): the same point, accepted. */
        enc[0] = (unsigned char)(0x02 | BN_is_odd(y));
        memcpy(enc + 1, pub + 1, c.field);
        compare_named(&s, "a compressed point", name, enc, 1 + c.field, ST_OK);
        memcpy(enc, pub, publen);
        enc[0] = (unsigned char)(0x06 | BN_is_odd(y));
        compare_named(&s, "a hybrid-encoded point", name, enc, publen, ST_OK);
        enc[0] = (unsigned char)(0x06 | !BN_is_odd(y)); /* hybrid with the wrong parity bit */
        compare_named(&s, "a hybrid point with the wrong y parity", name, enc, publen, ST_IMPORT);

        /* Wrong encodings and lengths. */
        compare_named(&s, "an uncompressed point one byte short", name, pub, publen - 1, ST_IMPORT);
        memcpy(enc, pub, publen);
        enc[publen] = 0;
        compare_named(&s, "an uncompressed point with a byte more", name, enc, publen + 1, ST_IMPORT);
        compare_named(&s, "x || y without a prefix", name, pub + 1, publen - 1, ST_IMPORT);
        enc[0] = 0x05;
        compare_named(&s, "prefix 05", name, enc, publen, ST_IMPORT);
        compare_named(&s, "prefix 04 with x only", name, pub, 1 + c.field, ST_IMPORT);
        compare_named(&s, "an empty key", name, pub, 0, ST_IMPORT);

        /* Off the curve: y + 1; and an x with no y (compressed, x^3 + ax + b not a square). */
        CU_ASSERT_FATAL(BN_add_word(y, 1) == 1 && BN_mod(y, y, c.p, bn) == 1 && encode_xy(&c, x, y, enc) == publen);
        CHECK(!on_curve(&c, c.a, c.b, x, y, bn), "%s: y + 1 stayed on the curve", name);
        compare_named(&s, "a point off the curve", name, enc, publen, ST_IMPORT);
        CU_ASSERT_FATAL(BN_sub_word(y, 1) == 1);
        for (int tries = 0; tries < 64; tries++) { /* half of all x have no point; 64 misses would be a 2^-64 event */
            CU_ASSERT_FATAL(BN_priv_rand_range(t, c.p) == 1);
            BN_CTX_start(bn);
            BIGNUM *r = BN_CTX_get(bn);
            bool square = r != NULL && BN_mod_sqr(r, t, c.p, bn) == 1 && BN_mod_add(r, r, c.a, c.p, bn) == 1 &&
                          BN_mod_mul(r, r, t, c.p, bn) == 1 && BN_mod_add(r, r, c.b, c.p, bn) == 1 &&
                          BN_kronecker(r, c.p, bn) != -1;
            BN_CTX_end(bn);
            if (square)
                continue;
            enc[0] = 0x02;
            CU_ASSERT_FATAL(BN_bn2binpad(t, enc + 1, (int)c.field) == (int)c.field);
            compare_named(&s, "a compressed x with no point", name, enc, 1 + c.field, ST_IMPORT);
            break;
        }
        /* The point at infinity (its one-byte encoding): no shared x. */
        enc[0] = 0x00;
        compare_named(&s, "the point at infinity", name, enc, 1, ST_DERIVE);

        /* Our point on an explicit-parameter copy of our own curve: the default takes it as our curve. */
        struct explicit_curve same = {c.p, c.a, c.b, c.n, c.h, c.gen, c.genlen};
        compare_explicit(&s, "our point on an explicit copy of our curve", &same, pub, publen, ST_OK);
        struct explicit_curve nocof = {c.p, c.a, c.b, c.n, NULL, c.gen, c.genlen};
        compare_explicit(&s, "our point on an explicit copy without cofactor", &nocof, pub, publen, ST_OK);
        /* The same curve with another generator (2G): a different group for EC_GROUP_cmp. */
        {
            EC_POINT *g2 = EC_POINT_new(c.g);
            unsigned char gen2[1 + 2 * 66];
            size_t gen2len = 0;
            if (g2 != NULL && EC_POINT_dbl(c.g, g2, EC_GROUP_get0_generator(c.g), bn) == 1)
                gen2len = EC_POINT_point2oct(c.g, g2, POINT_CONVERSION_UNCOMPRESSED, gen2, sizeof gen2, bn);
            EC_POINT_free(g2);
            CU_ASSERT_FATAL(gen2len == c.genlen);
            struct explicit_curve other_gen = {c.p, c.a, c.b, c.n, c.h, gen2, gen2len};
            compare_explicit(&s, "our point, our curve, generator 2G", &other_gen, pub, publen, ST_SET_PEER);
        }

        /*
         * A modified a: y^2 = x^3 + (a+1)x + b' with b' chosen so that our point P = (x, y) lies on
         * it (b' = y^2 - x^3 - (a+1)x), P as its generator with our order claimed. P decodes on our
         * curve, so "does the point decode" accepts the peer; its group is another.
         */
        CU_ASSERT_FATAL(BN_copy(a2, c.a) != NULL && BN_add_word(a2, 1) == 1 && BN_mod(a2, a2, c.p, bn) == 1 &&
                        b_through(&c, a2, x, y, b2, bn));
        CHECK(on_curve(&c, a2, b2, x, y, bn) && on_curve(&c, c.a, c.b, x, y, bn),
              "%s: the point is not on both curves", name);
        struct explicit_curve moda = {c.p, a2, b2, c.n, NULL, pub, publen};
        compare_explicit(&s, "our point on y^2 = x^3 + (a+1)x + b'", &moda, pub, publen, ST_SET_PEER);

        /* The same with a generator of order 3 (see order3_curve); try fresh points until 12x is a square. */
        bool made = false;
        for (int tries = 0; tries < 64 && !made; tries++) {
            publen = random_point(name, &c, x, y, pub, bn);
            CU_ASSERT_FATAL(publen == 1 + 2 * c.field);
            made = order3_curve(&c, x, y, a2, b2, bn);
        }
        if (CHECK(made && has_order3(&c, a2, b2, x, y, bn), "%s: no order-3 curve through our point", name)) {
            BIGNUM *three = BN_new();
            CU_ASSERT_FATAL(three != NULL && BN_set_word(three, 3) == 1);
            struct explicit_curve low = {c.p, a2, b2, three, NULL, pub, publen};
            compare_explicit(&s, "our point as an order-3 generator of another curve", &low, pub, publen, ST_SET_PEER);
            BN_free(three);
        }

        /* Another named curve of the same size, and one of another size. */
        const char *other = strcmp(name, "P-384") == 0 ? "P-256" : "P-384";
        struct curve oc;
        CU_ASSERT_FATAL(curve_load(&oc, other, bn));
        publen = random_point(other, &oc, x, y, pub, bn);
        compare_named(&s, "a peer on another curve", other, pub, publen, ST_SET_PEER);
        curve_free(&oc);

        /* The brainpool twin: a point on both curves, given as a peer on the twin. */
        if (ec_curves[i].twin != NULL) {
            struct curve tc;
            CU_ASSERT_FATAL(curve_load(&tc, ec_curves[i].twin, bn));
            bool shared = shared_twin_point(&c, &tc, x, y, bn);
            CHECK(shared == twins_share_a_point(name), "%s and %s: a shared point %s", name, ec_curves[i].twin,
                  shared ? "exists (the test expects none)" : "does not exist");
            if (shared) {
                CHECK(on_curve(&c, c.a, c.b, x, y, bn) && on_curve(&tc, tc.a, tc.b, x, y, bn),
                      "%s: the shared point is not on both twins", name);
                publen = encode_xy(&c, x, y, pub);
                compare_named(&s, "a point of the twin curve that also lies on ours", ec_curves[i].twin, pub, publen,
                              ST_SET_PEER);
                CU_ASSERT_FATAL(BN_sub(y, c.p, y) == 1); /* the other one, -P */
                publen = encode_xy(&c, x, y, pub);
                compare_named(&s, "the twin's shared point, negated", ec_curves[i].twin, pub, publen, ST_SET_PEER);
            }
            /* A random point of the twin (almost surely not on ours). */
            publen = random_point(ec_curves[i].twin, &tc, x, y, pub, bn);
            compare_named(&s, "a random point of the twin curve", ec_curves[i].twin, pub, publen, ST_SET_PEER);
            curve_free(&tc);
        }

        curve_free(&c);
        EVP_PKEY_free(s.k);
        EVP_PKEY_free(s.full);
    }
    BN_free(x);
    BN_free(y);
    BN_free(a2);
    BN_free(b2);
    BN_free(t);
    BN_CTX_free(bn);
}

/* ---- X25519 / X448 ---- */

static OSSL_PARAM *raw_params(const unsigned char *pub, size_t len)
{
    OSSL_PARAM_BLD *b = OSSL_PARAM_BLD_new();
    OSSL_PARAM *p = NULL;
    if (b != NULL && OSSL_PARAM_BLD_push_octet_string(b, OSSL_PKEY_PARAM_PUB_KEY, pub, len) == 1)
        p = OSSL_PARAM_BLD_to_param(b);
    OSSL_PARAM_BLD_free(b);
    return p;
}

static void compare_raw(const struct sealed *s, const char *what, const char *peer_type, const unsigned char *pub,
                        size_t len, enum stage expect)
{
    OSSL_PARAM *p = raw_params(pub, len);
    CU_ASSERT_FATAL(p != NULL);
    compare_peer(s, what, peer_type, p, expect);
    OSSL_PARAM_free(p);
}

/* value (big-endian hex, up to the key size) as a little-endian u-coordinate of len bytes. */
static void u_le(const char *hex, unsigned char *out, size_t len)
{
    unsigned char be[64] = {0};
    size_t n = unhex(hex, be, sizeof be);
    memset(out, 0, len);
    for (size_t i = 0; i < n && i < len; i++)
        out[i] = be[n - 1 - i];
}

/* u + k for a little-endian u of len bytes (carry across; wraps at 2^(8 len)). */
static void u_add(unsigned char *u, size_t len, unsigned k)
{
    for (size_t i = 0; i < len && k != 0; i++) {
        unsigned v = u[i] + k;
        u[i] = (unsigned char)v;
        k = v >> 8;
    }
}

/*
 * Every point of small order on Curve25519 and its twin, as u-coordinates (RFC 7748 section 6.1 and
 * the libsodium/Bernstein lists): 0 and 1, two points of order 8, p-1 (order 2), and the
 * non-canonical encodings p and p+1 (= 0 and 1). Each also with bit 255 set, which X25519 ignores.
 * All of them give the all-zero shared secret that both implementations refuse.
 */
static const char *const x25519_small[] = {
    "00",
    "01",
    "00b8495f16056286fdb1329ceb8d09da6ac49ff1fae35616aeb8413b7c7aebe0",
    "57119fd0dd4e22d8868e1c58c45c44045bef839c55b1d0b1248c50a3bc959c5f",
    "7fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffec", /* p - 1 */
    "7fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffed", /* p */
    "7fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffee", /* p + 1 */
};

/* Curve448's small-order points: 0, 1, p-1 (order 2, 4), and the non-canonical p and p+1. */
#define X448_P                                                                                                  \
    "fffffffffffffffffffffffffffffffffffffffffffffffffffffffe"                                                  \
    "ffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
static const char *const x448_small[] = {
    "00",
    "01",
    "fffffffffffffffffffffffffffffffffffffffffffffffffffffffefffffffffffffffffffffffffffffffffffffffffffffffffffffffe",
    X448_P,
    "ffffffffffffffffffffffffffffffffffffffffffffffffffffffff00000000000000000000000000000000000000000000000000000000",
};

/* The raw public key of a fresh plain key of type (len bytes). */
static bool fresh_raw(const char *type, unsigned char *pub, size_t len)
{
    EVP_PKEY *k = EVP_PKEY_Q_keygen(plain, NULL, type);
    size_t got = len;
    bool ok = k != NULL && EVP_PKEY_get_raw_public_key(k, pub, &got) == 1 && got == len;
    EVP_PKEY_free(k);
    return ok;
}

static void test_ecx_peers(void)
{
    static const struct {
        const char *type, *other;
        size_t len;
        const char *const *small;
        size_t nsmall;
    } kinds[] = {
        {"X25519", "X448", 32, x25519_small, sizeof x25519_small / sizeof x25519_small[0]},
        {"X448", "X25519", 56, x448_small, sizeof x448_small / sizeof x448_small[0]},
    };
    for (size_t i = 0; i < 2; i++) {
        const char *type = kinds[i].type;
        size_t len = kinds[i].len;
        struct sealed s = {type, type, NULL, NULL};
        s.k = sealed_key(type, NULL, &s.full);
        if (!CHECK(s.k != NULL && strcmp(provider_of(s.k), "memguard") == 0, "%s: not sealed by memguard", type)) {
            EVP_PKEY_free(s.k);
            EVP_PKEY_free(s.full);
            continue;
        }
        unsigned char pub[64], u[64];
        char what[96];
        for (int n = 0; n < 3; n++) {
            CU_ASSERT_FATAL(fresh_raw(type, pub, len));
            compare_raw(&s, "a fresh peer", type, pub, len, ST_OK);
        }
        /* Small order: the shared secret would be all zeros; refused at derive. */
        for (size_t j = 0; j < kinds[i].nsmall; j++) {
            u_le(kinds[i].small[j], u, len);
            snprintf(what, sizeof what, "small-order u #%zu", j);
            compare_raw(&s, what, type, u, len, ST_DERIVE);
            if (len == 32) {
                u[31] |= 0x80;
                snprintf(what, sizeof what, "small-order u #%zu with bit 255 set", j);
                compare_raw(&s, what, type, u, len, ST_DERIVE);
            }
        }
        /* Non-canonical encodings of ordinary points (u >= p, reduced by both): accepted, the same secret. */
        u_le(len == 32 ? "7fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffed" : X448_P, u, len);
        u_add(u, len, 2);
        for (unsigned k = 2; k < (len == 32 ? 19u : 4u); k++, u_add(u, len, 1)) {
            snprintf(what, sizeof what, "p + %u (non-canonical %u)", k, k);
            compare_raw(&s, what, type, u, len, ST_OK);
        }
        if (len == 32) {
            CU_ASSERT_FATAL(fresh_raw(type, pub, len));
            pub[31] |= 0x80;
            compare_raw(&s, "a fresh peer with bit 255 set", type, pub, len, ST_OK);
        } else {
            memset(u, 0xff, len); /* 2^448 - 1 = p + 2^224 */
            compare_raw(&s, "2^448 - 1 (non-canonical)", type, u, len, ST_OK);
        }
        /* Wrong lengths, and a key of the other type. */
        CU_ASSERT_FATAL(fresh_raw(type, pub, len));
        compare_raw(&s, "a key one byte short", type, pub, len - 1, ST_IMPORT);
        pub[len] = 9;
        compare_raw(&s, "a key one byte long", type, pub, len + 1, ST_IMPORT);
        compare_raw(&s, "an empty key", type, pub, 0, ST_IMPORT);
        size_t olen = len == 32 ? 56 : 32;
        CU_ASSERT_FATAL(fresh_raw(kinds[i].other, pub, olen));
        compare_raw(&s, "a key of the other curve", kinds[i].other, pub, olen, ST_SET_PEER);
        EVP_PKEY_free(s.k);
        EVP_PKEY_free(s.full);
    }
}

/* An EC key's peer of another key type (X25519), and the reverse: refused when the peer is set. */
static void test_peer_of_another_type(void)
{
    struct sealed s = {"EC", "P-256", NULL, NULL};
    s.k = sealed_key("EC", "P-256", &s.full);
    CU_ASSERT_FATAL(s.k != NULL && strcmp(provider_of(s.k), "memguard") == 0);
    unsigned char pub[32];
    CU_ASSERT_FATAL(fresh_raw("X25519", pub, sizeof pub));
    compare_raw(&s, "an X25519 key as the peer", "X25519", pub, sizeof pub, ST_SET_PEER);
    EVP_PKEY_free(s.k);
    EVP_PKEY_free(s.full);

    struct sealed x = {"X25519", "X25519", NULL, NULL};
    x.k = sealed_key("X25519", NULL, &x.full);
    CU_ASSERT_FATAL(x.k != NULL && strcmp(provider_of(x.k), "memguard") == 0);
    EVP_PKEY *ec = EVP_PKEY_Q_keygen(plain, NULL, "EC", "P-256");
    unsigned char enc[65];
    size_t enclen = 0;
    CU_ASSERT_FATAL(ec != NULL && EVP_PKEY_get_octet_string_param(ec, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, enc,
                                                                  sizeof enc, &enclen) == 1);
    compare_named(&x, "a P-256 key as the peer", "P-256", enc, enclen, ST_SET_PEER);
    EVP_PKEY_free(ec);
    EVP_PKEY_free(x.k);
    EVP_PKEY_free(x.full);
}

/*
 * A key memguard refused at load (here: an ECPrivateKey whose public point is not its scalar times G)
 * stays a memguard key whose every use fails: being set as a peer is such a use.
 */
static void test_refused_key_is_no_peer(void)
{
    EVP_PKEY *a = EVP_PKEY_Q_keygen(plain, NULL, "EC", "P-256"), *b = EVP_PKEY_Q_keygen(plain, NULL, "EC", "P-256");
    CU_ASSERT_FATAL(a != NULL && b != NULL);
    /* a's scalar with b's public point, as PKCS#8 through the plain side's encoder. */
    BIGNUM *d = NULL;
    unsigned char q[65];
    size_t qlen = 0;
    CU_ASSERT_FATAL(EVP_PKEY_get_bn_param(a, OSSL_PKEY_PARAM_PRIV_KEY, &d) == 1 &&
                    EVP_PKEY_get_octet_string_param(b, OSSL_PKEY_PARAM_PUB_KEY, q, sizeof q, &qlen) == 1);
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM *prm = NULL;
    if (bld != NULL && OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) == 1 &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, d) == 1 &&
        OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, q, qlen) == 1)
        prm = OSSL_PARAM_BLD_to_param(bld);
    OSSL_PARAM_BLD_free(bld);
    BN_clear_free(d);
    EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new_from_name(plain, "EC", NULL);
    EVP_PKEY *mixed = NULL;
    CU_ASSERT_FATAL(prm != NULL && pc != NULL && EVP_PKEY_fromdata_init(pc) == 1 &&
                    EVP_PKEY_fromdata(pc, &mixed, EVP_PKEY_KEYPAIR, prm) == 1);
    OSSL_PARAM_free(prm);
    EVP_PKEY_CTX_free(pc);
    BIO *bio = BIO_new(BIO_s_mem());
    EVP_PKEY *refused = NULL;
    if (bio != NULL && PEM_write_bio_PrivateKey(bio, mixed, NULL, NULL, 0, NULL, NULL) == 1)
        refused = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
    BIO_free(bio);
    ERR_clear_error();
    CU_ASSERT_FATAL(refused != NULL);
    CHECK(strcmp(provider_of(refused), "memguard") == 0, "the refused key is %s's", provider_of(refused));
    struct sealed s = {"EC", "P-256", NULL, NULL};
    s.k = sealed_key("EC", "P-256", &s.full);
    CU_ASSERT_FATAL(s.k != NULL && strcmp(provider_of(s.k), "memguard") == 0);
    for (int how = 0; how < 3; how++) {
        EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_pkey(NULL, s.k, NULL);
        CU_ASSERT_FATAL(c != NULL && EVP_PKEY_derive_init(c) == 1);
        int r = how == 2 ? EVP_PKEY_derive_set_peer(c, refused) : EVP_PKEY_derive_set_peer_ex(c, refused, how);
        /* The error says why: the refusal, not some later symptom of it. */
        const char *data = NULL;
        int flags = 0;
        unsigned long e = ERR_peek_last_error_data(&data, &flags);
        bool says = e != 0 && data != NULL && (flags & ERR_TXT_STRING) && strstr(data, "refused at load") != NULL;
        CHECK(r != 1 && says, "a refused key as the peer (%s): set_peer %s; error: %s", how_name[how],
              r == 1 ? "accepted it" : "refused it", data != NULL ? data : "(none)");
        ERR_clear_error();
        EVP_PKEY_CTX_free(c);
    }
    EVP_PKEY_free(s.k);
    EVP_PKEY_free(s.full);
    EVP_PKEY_free(refused);
    EVP_PKEY_free(mixed);
    EVP_PKEY_free(a);
    EVP_PKEY_free(b);
}

/* The last test prints how many peers were compared, so that a run that compared none is visible. */
static void test_peers_were_compared(void)
{
    printf("\n  %d peers compared with the default provider\n", checked_peers);
    CHECK(checked_peers > 400, "only %d peers compared", checked_peers);
}

static CU_TestInfo peer_tests[] = {
    {"EC peers on every sealed curve: same secret when the default accepts, refused when it refuses", test_ec_peers},
    {"X25519/X448 peers: small-order, non-canonical and wrong-length keys as the default provider", test_ecx_peers},
    {"a peer of another key type is refused when it is set", test_peer_of_another_type},
    {"a key memguard refused at load is refused as a peer", test_refused_key_is_no_peer},
    {"the peers above were compared", test_peers_were_compared},
    CU_TEST_INFO_NULL,
};

int main(void)
{
    if (getenv("OPENSSL_CONF") == NULL) {
        fprintf(stderr, "set OPENSSL_CONF to a configuration that loads memguard\n");
        return 2;
    }
    if (OSSL_PROVIDER_available(NULL, "memguard") != 1) {
        fprintf(stderr, "the memguard provider is not loaded by %s\n", getenv("OPENSSL_CONF"));
        ERR_print_errors_fp(stderr);
        return 2;
    }
    plain = OSSL_LIB_CTX_new();
    OSSL_PROVIDER *deflt = plain != NULL ? OSSL_PROVIDER_load(plain, "default") : NULL;
    if (deflt == NULL) {
        fprintf(stderr, "cannot make the plain library context\n");
        return 2;
    }
    CU_SuiteInfo suites[] = {
        {"peer", NULL, NULL, NULL, NULL, peer_tests},
        CU_SUITE_INFO_NULL,
    };
    int rc = mgt_main(suites);
    OSSL_PROVIDER_unload(deflt);
    OSSL_LIB_CTX_free(plain);
    return rc;
}
