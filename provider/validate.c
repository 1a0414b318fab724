/*
 * Key validation before sealing: a key that is sealed is a key that works. Without it, memguard
 * sealed and used RSA keys with n = 0 (a "signature" of zero bytes, reported as success), e = 1,
 * p == q or a wrong d, EC scalars of 0 or >= the order, and an 800,000-bit modulus that held the
 * key unsealed for over a minute per signature (issue 11).
 *
 * Input: the private OSSL_PARAM array exactly as the default provider exports a key pair (native
 * byte order integers). Every check is the cheapest that settles its question, in an order that
 * bounds the cost first (the modulus size before any arithmetic on it, n = p*q before anything
 * modular). Every number derived from a private value lives in a secure BN_CTX (cleared when
 * freed) with BN_FLG_CONSTTIME, and comparisons of private values are constant-time (ct_cmp,
 * eq_param): the only thing the timing of a valid key's validation depends on is its sizes.
 *
 * The reasons written to `why` name the failed relation and sizes in bits, never a number from
 * the key. The file uses only OpenSSL and its own parameters (no provider state beyond libctx), so
 * the tests can call it directly.
 */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/params.h>

#include "provider.h"

/* RSA moduli memguard seals: below 512 bits is no key; above 16384 bits is a denial of service. */
#define RSA_MIN_BITS 512
#define RSA_MAX_BITS 16384
/* The default provider exports at most 10 primes (rsa-factor1..10). */
#define RSA_MAX_PRIMES 10

static int refuse(char *why, size_t whylen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int refuse(char *why, size_t whylen, const char *fmt, ...)
{
    if (why != NULL && whylen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, whylen, fmt, ap);
        va_end(ap);
    }
    return 0;
}

static const OSSL_PARAM *uint_param(const OSSL_PARAM *params, const char *name)
{
    const OSSL_PARAM *p = OSSL_PARAM_locate_const(params, name);
    return p != NULL && p->data_type == OSSL_PARAM_UNSIGNED_INTEGER && p->data != NULL && p->data_size > 0 &&
                   p->data_size <= INT_MAX
               ? p
               : NULL;
}

/* A private integer into a BIGNUM from the secure context, flagged constant-time. NULL on failure. */
static BIGNUM *secret_bn(const OSSL_PARAM *p, BN_CTX *bn)
{
    BIGNUM *v = BN_CTX_get(bn);
    if (v == NULL || BN_native2bn(p->data, (int)p->data_size, v) == NULL)
        return NULL;
    BN_set_flags(v, BN_FLG_CONSTTIME);
    return v;
}

/* Byte i (0 = least significant) of a native-endian integer of len bytes; 0 past its end. */
static unsigned byte_at(const unsigned char *v, size_t len, size_t i)
{
    if (i >= len)
        return 0;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    return v[len - 1 - i];
#else
    return v[i];
#endif
}

/*
 * The secret native-endian integer s against the public a: -1, 0 or 1 (a return of -2 is an
 * allocation failure), in time that depends only on the two sizes. BN_cmp would stop at the first
 * differing limb, and for a range check that position says something about the secret.
 */
static int ct_cmp(const unsigned char *s, size_t slen, const BIGNUM *a)
{
    size_t alen = (size_t)BN_num_bytes(a), len = slen > alen ? slen : alen;
    unsigned char *pub = OPENSSL_zalloc(len > 0 ? len : 1); /* a is public */
    if (pub == NULL || (len > 0 && BN_bn2nativepad(a, pub, (int)len) != (int)len)) {
        OPENSSL_free(pub);
        return -2;
    }
    unsigned gt = 0, lt = 0, decided = 0; /* all-ones or zero masks */
    for (size_t i = len; i-- > 0;) {
        unsigned x = byte_at(s, slen, i), y = byte_at(pub, len, i);
        unsigned x_gt = (y - x) >> 8 & 1, x_lt = (x - y) >> 8 & 1; /* bytes: the borrow says which is larger */
        gt |= ~decided & (0u - x_gt);
        lt |= ~decided & (0u - x_lt);
        decided |= 0u - (x_gt | x_lt);
    }
    OPENSSL_free(pub);
    return (int)(gt & 1) - (int)(lt & 1);
}

/* Whether the private parameter given equals the value want (both private), in constant time. */
static int eq_param(const OSSL_PARAM *given, const BIGNUM *want)
{
    size_t n = given->data_size;
    unsigned char *buf = OPENSSL_secure_zalloc(n);
    int eq = buf != NULL && BN_bn2nativepad(want, buf, (int)n) == (int)n && CRYPTO_memcmp(buf, given->data, n) == 0;
    OPENSSL_secure_clear_free(buf, n);
    return eq;
}

/* ---- RSA ---- */

static const char *const factor_names[RSA_MAX_PRIMES] = {
    OSSL_PKEY_PARAM_RSA_FACTOR1, OSSL_PKEY_PARAM_RSA_FACTOR2, OSSL_PKEY_PARAM_RSA_FACTOR3,
    OSSL_PKEY_PARAM_RSA_FACTOR4, OSSL_PKEY_PARAM_RSA_FACTOR5, OSSL_PKEY_PARAM_RSA_FACTOR6,
    OSSL_PKEY_PARAM_RSA_FACTOR7, OSSL_PKEY_PARAM_RSA_FACTOR8, OSSL_PKEY_PARAM_RSA_FACTOR9,
    OSSL_PKEY_PARAM_RSA_FACTOR10,
};
static const char *const exponent_names[RSA_MAX_PRIMES] = {
    OSSL_PKEY_PARAM_RSA_EXPONENT1, OSSL_PKEY_PARAM_RSA_EXPONENT2, OSSL_PKEY_PARAM_RSA_EXPONENT3,
    OSSL_PKEY_PARAM_RSA_EXPONENT4, OSSL_PKEY_PARAM_RSA_EXPONENT5, OSSL_PKEY_PARAM_RSA_EXPONENT6,
    OSSL_PKEY_PARAM_RSA_EXPONENT7, OSSL_PKEY_PARAM_RSA_EXPONENT8, OSSL_PKEY_PARAM_RSA_EXPONENT9,
    OSSL_PKEY_PARAM_RSA_EXPONENT10,
};
static const char *const coefficient_names[RSA_MAX_PRIMES - 1] = {
    OSSL_PKEY_PARAM_RSA_COEFFICIENT1, OSSL_PKEY_PARAM_RSA_COEFFICIENT2, OSSL_PKEY_PARAM_RSA_COEFFICIENT3,
    OSSL_PKEY_PARAM_RSA_COEFFICIENT4, OSSL_PKEY_PARAM_RSA_COEFFICIENT5, OSSL_PKEY_PARAM_RSA_COEFFICIENT6,
    OSSL_PKEY_PARAM_RSA_COEFFICIENT7, OSSL_PKEY_PARAM_RSA_COEFFICIENT8, OSSL_PKEY_PARAM_RSA_COEFFICIENT9,
};

/* Which private parameters the key has: primes (factors), CRT exponents and coefficients. */
struct rsa_parts {
    const OSSL_PARAM *d, *factor[RSA_MAX_PRIMES], *exponent[RSA_MAX_PRIMES], *coefficient[RSA_MAX_PRIMES - 1];
    size_t primes, exponents, coefficients;
};

static size_t count_present(const OSSL_PARAM *params, const char *const *names, size_t max, const OSSL_PARAM **out)
{
    size_t n = 0;
    while (n < max && (out[n] = uint_param(params, names[n])) != NULL)
        n++;
    return n;
}

/* The arithmetic checks, once the shape is known to be right (n, e public; the rest private). */
static int rsa_arithmetic(const struct rsa_parts *k, const BIGNUM *n, const BIGNUM *e, BN_CTX *bn, char *why,
                          size_t whylen)
{
    BIGNUM *p[RSA_MAX_PRIMES], *pm1[RSA_MAX_PRIMES];
    BIGNUM *d = secret_bn(k->d, bn), *t = BN_CTX_get(bn), *prod = BN_CTX_get(bn), *lambda = BN_CTX_get(bn),
           *g = BN_CTX_get(bn);
    if (d == NULL || t == NULL || prod == NULL || lambda == NULL || g == NULL)
        return refuse(why, whylen, "RSA: out of memory while validating");
    for (size_t i = 0; i < k->primes; i++) {
        if ((p[i] = secret_bn(k->factor[i], bn)) == NULL || (pm1[i] = BN_CTX_get(bn)) == NULL)
            return refuse(why, whylen, "RSA: out of memory while validating");
        BN_set_flags(pm1[i], BN_FLG_CONSTTIME);
    }

    /* The primes: each > 1, pairwise distinct, and their product is n. This bounds every prime by n. */
    for (size_t i = 0; i < k->primes; i++) {
        if (BN_cmp(p[i], BN_value_one()) <= 0)
            return refuse(why, whylen, "RSA: prime factor %zu is < 2", i + 1);
        for (size_t j = 0; j < i; j++)
            if (BN_cmp(p[i], p[j]) == 0) /* for a valid key they differ in the top limb: no timing to speak of */
                return i == 1 ? refuse(why, whylen, "RSA: p == q")
                              : refuse(why, whylen, "RSA: prime factors %zu and %zu are equal", j + 1, i + 1);
    }
    if (BN_copy(prod, p[0]) == NULL)
        return refuse(why, whylen, "RSA: out of memory while validating");
    for (size_t i = 1; i < k->primes; i++)
        if (BN_mul(prod, prod, p[i], bn) != 1)
            return refuse(why, whylen, "RSA: out of memory while validating");
    if (BN_cmp(prod, n) != 0) /* equal: prod is n, public; unequal: the key is refused */
        return k->primes == 2 ? refuse(why, whylen, "RSA: n != p*q")
                              : refuse(why, whylen, "RSA: n != the product of its %zu primes", k->primes);

    /* lambda(n) = lcm(p_i - 1); e*d = 1 (mod lambda(n)). BN_gcd and BN_div are constant-time in OpenSSL 3. */
    for (size_t i = 0; i < k->primes; i++)
        if (BN_copy(pm1[i], p[i]) == NULL || BN_sub_word(pm1[i], 1) != 1)
            return refuse(why, whylen, "RSA: out of memory while validating");
    if (BN_copy(lambda, pm1[0]) == NULL)
        return refuse(why, whylen, "RSA: out of memory while validating");
    BN_set_flags(lambda, BN_FLG_CONSTTIME);
    for (size_t i = 1; i < k->primes; i++)
        if (BN_gcd(g, lambda, pm1[i], bn) != 1 || BN_mul(lambda, lambda, pm1[i], bn) != 1 ||
            BN_div(lambda, NULL, lambda, g, bn) != 1)
            return refuse(why, whylen, "RSA: out of memory while validating");
    if (BN_mod_mul(t, e, d, lambda, bn) != 1)
        return refuse(why, whylen, "RSA: out of memory while validating");
    if (!BN_is_one(t))
        return refuse(why, whylen, "RSA: e*d != 1 (mod lambda(n))");

    /* CRT exponents: d_i = d mod (p_i - 1), exactly (memguard's CRT and OpenSSL's take them as given). */
    for (size_t i = 0; i < k->primes; i++) {
        if (BN_mod(t, d, pm1[i], bn) != 1)
            return refuse(why, whylen, "RSA: out of memory while validating");
        if (!eq_param(k->exponent[i], t))
            return i == 0   ? refuse(why, whylen, "RSA: dP != d mod (p-1)")
                   : i == 1 ? refuse(why, whylen, "RSA: dQ != d mod (q-1)")
                            : refuse(why, whylen, "RSA: CRT exponent %zu != d mod (r-1)", i + 1);
    }

    /*
     * CRT coefficients, exactly the canonical inverses: qInv = q^-1 mod p, and for a further prime
     * r_i, t_i = (r_1 * ... * r_(i-1))^-1 mod r_i (RFC 8017; OpenSSL's multi-prime layout).
     * BN_mod_inverse's "no inverse" error is dropped: the reason is ours to give.
     */
    for (size_t i = 1; i < k->primes; i++) {
        const BIGNUM *mod = i == 1 ? p[0] : p[i];
        const BIGNUM *of = i == 1 ? p[1] : prod;
        if (i >= 2 && (BN_copy(prod, p[0]) == NULL || BN_mul(prod, prod, p[1], bn) != 1))
            return refuse(why, whylen, "RSA: out of memory while validating");
        for (size_t j = 2; i >= 2 && j < i; j++)
            if (BN_mul(prod, prod, p[j], bn) != 1)
                return refuse(why, whylen, "RSA: out of memory while validating");
        BN_set_flags(prod, BN_FLG_CONSTTIME);
        ERR_set_mark();
        BIGNUM *inv = BN_mod_inverse(t, of, mod, bn);
        ERR_pop_to_mark();
        if (inv == NULL || !eq_param(k->coefficient[i - 1], t))
            return i == 1 ? refuse(why, whylen, "RSA: qInv*q != 1 (mod p)")
                          : refuse(why, whylen, "RSA: CRT coefficient %zu is not the inverse of the primes before it",
                                   i);
    }

    /*
     * The primes are probably prime: 2^(p-1) = 1 (mod p), one constant-time exponentiation per prime.
     * Everything above holds for a composite "prime" too, and such a key signs wrongly in a way that
     * hands a factor of n to anyone holding one signature (gcd(s^e - m, n)). Only a key built that way
     * on purpose passes the checks above, so one Fermat test is enough to catch a broken generator;
     * the full test (BN_check_prime, 64 Miller-Rabin rounds, as RSA_check_key) measured 42 ms for
     * RSA-2048 and 333 ms for RSA-4096 per load, against 0.7 ms and 5 ms for this (test_validate --cost).
     */
    BIGNUM *two = BN_CTX_get(bn);
    if (two == NULL || BN_set_word(two, 2) != 1)
        return refuse(why, whylen, "RSA: out of memory while validating");
    for (size_t i = 0; i < k->primes; i++) {
        if (BN_mod_exp_mont_consttime(t, two, pm1[i], p[i], bn, NULL) != 1)
            return refuse(why, whylen, "RSA: out of memory while validating");
        if (!BN_is_one(t))
            return refuse(why, whylen, "RSA: prime factor %zu (%d bits) is not prime", i + 1, BN_num_bits(p[i]));
    }
    return 1;
}

static int validate_rsa(mgp_ctx *prov, const OSSL_PARAM *params, char *why, size_t whylen)
{
    const OSSL_PARAM *pn = uint_param(params, OSSL_PKEY_PARAM_RSA_N), *pe = uint_param(params, OSSL_PKEY_PARAM_RSA_E);
    if (pn == NULL || pe == NULL)
        return refuse(why, whylen, "RSA: the modulus n or the public exponent e is missing");
    struct rsa_parts k = {uint_param(params, OSSL_PKEY_PARAM_RSA_D), {NULL}, {NULL}, {NULL}, 0, 0, 0};
    k.primes = count_present(params, factor_names, RSA_MAX_PRIMES, k.factor);
    k.exponents = count_present(params, exponent_names, RSA_MAX_PRIMES, k.exponent);
    k.coefficients = count_present(params, coefficient_names, RSA_MAX_PRIMES - 1, k.coefficient);
    if (k.d == NULL && k.primes == 0 && k.exponents == 0 && k.coefficients == 0 &&
        OSSL_PARAM_locate_const(params, OSSL_PKEY_PARAM_RSA_D) == NULL)
        return 1; /* no private part at all: a public key imported as a pair (a peer); nothing secret to check */

    BIGNUM *n = BN_native2bn(pn->data, (int)pn->data_size, NULL), *e = BN_native2bn(pe->data, (int)pe->data_size, NULL);
    BN_CTX *bn = BN_CTX_secure_new_ex(prov != NULL ? prov->libctx : NULL);
    int ok = 0;
    if (n == NULL || e == NULL || bn == NULL) {
        refuse(why, whylen, "RSA: out of memory while validating");
        goto out;
    }
    /* First, before anything costs more than reading n: its size. */
    int bits = BN_num_bits(n);
    if (bits < RSA_MIN_BITS || bits > RSA_MAX_BITS) {
        refuse(why, whylen, "RSA: modulus of %d bits (memguard accepts %d to %d)", bits, RSA_MIN_BITS, RSA_MAX_BITS);
        goto out;
    }
    if (!BN_is_odd(n)) { /* no product of odd primes; and Montgomery arithmetic mod n needs it odd */
        refuse(why, whylen, "RSA: modulus n is even");
        goto out;
    }
    if (BN_cmp(e, BN_value_one()) <= 0) {
        refuse(why, whylen, "RSA: public exponent e <= 1");
        goto out;
    }
    if (!BN_is_odd(e)) {
        refuse(why, whylen, "RSA: public exponent e is even");
        goto out;
    }
    if (BN_cmp(e, n) >= 0) {
        refuse(why, whylen, "RSA: public exponent e >= n");
        goto out;
    }
    if (k.d == NULL) {
        refuse(why, whylen, "RSA: the private exponent d is missing");
        goto out;
    }
    if (k.primes < 2 || k.exponents != k.primes || k.coefficients != k.primes - 1) {
        refuse(why, whylen,
               "RSA: the key has %zu primes, %zu CRT exponents and %zu CRT coefficients; memguard needs all of "
               "them (p, q, dP, dQ, qInv at least) for its private-key operations",
               k.primes, k.exponents, k.coefficients);
        goto out;
    }
    /* 1 < d < n, compared without a secret-dependent branch. */
    int lo = ct_cmp(k.d->data, k.d->data_size, BN_value_one()), hi = ct_cmp(k.d->data, k.d->data_size, n);
    if (lo == -2 || hi == -2) {
        refuse(why, whylen, "RSA: out of memory while validating");
        goto out;
    }
    if (lo <= 0 || hi >= 0) {
        refuse(why, whylen, "RSA: private exponent d out of range (1 < d < n)");
        goto out;
    }
    BN_CTX_start(bn);
    ok = rsa_arithmetic(&k, n, e, bn, why, whylen);
    BN_CTX_end(bn);
out:
    BN_free(n); /* public */
    BN_free(e);
    BN_CTX_free(bn); /* clears every value the context held */
    return ok;
}

/* ---- EC ---- */

static int validate_ec(mgp_ctx *prov, const OSSL_PARAM *params, char *why, size_t whylen)
{
    const OSSL_PARAM *ppriv = OSSL_PARAM_locate_const(params, OSSL_PKEY_PARAM_PRIV_KEY);
    const OSSL_PARAM *ppub = OSSL_PARAM_locate_const(params, OSSL_PKEY_PARAM_PUB_KEY);
    if (ppriv == NULL)
        return 1; /* a public key imported as a pair (a peer): nothing secret to check */
    if (uint_param(params, OSSL_PKEY_PARAM_PRIV_KEY) != ppriv)
        return refuse(why, whylen, "EC: the private scalar is not an unsigned integer");
    if (OSSL_PARAM_locate_const(params, OSSL_PKEY_PARAM_GROUP_NAME) == NULL)
        return refuse(why, whylen, "EC: the key has no named curve");
    OSSL_LIB_CTX *libctx = prov != NULL ? prov->libctx : NULL;
    EC_GROUP *grp = EC_GROUP_new_from_params(params, libctx, NULL);
    BN_CTX *bn = BN_CTX_secure_new_ex(libctx);
    EC_POINT *pub = NULL, *want = NULL;
    BIGNUM *zero = BN_new();
    int ok = 0;
    if (grp == NULL) {
        refuse(why, whylen, "EC: unknown curve");
        goto out;
    }
    const BIGNUM *order = EC_GROUP_get0_order(grp);
    if (bn == NULL || zero == NULL || order == NULL || BN_is_zero(order)) {
        refuse(why, whylen, "EC: out of memory while validating");
        goto out;
    }
    BN_zero(zero);
    /* 1 <= scalar < order, without a secret-dependent branch. */
    int lo = ct_cmp(ppriv->data, ppriv->data_size, zero), hi = ct_cmp(ppriv->data, ppriv->data_size, order);
    if (lo == -2 || hi == -2) {
        refuse(why, whylen, "EC: out of memory while validating");
        goto out;
    }
    if (lo <= 0) {
        refuse(why, whylen, "EC: private scalar is 0");
        goto out;
    }
    if (hi >= 0) {
        refuse(why, whylen, "EC: private scalar >= group order (%d bits)", BN_num_bits(order));
        goto out;
    }
    if (ppub == NULL) {
        ok = 1; /* memguard derives the point itself (der.c), or keeps the key without one */
        goto out;
    }
    /* The public point: decodes, lies on the curve, and is scalar*G. */
    BN_CTX_start(bn);
    BIGNUM *k = secret_bn(ppriv, bn);
    if (k == NULL || (pub = EC_POINT_new(grp)) == NULL || (want = EC_POINT_new(grp)) == NULL) {
        refuse(why, whylen, "EC: out of memory while validating");
        goto end;
    }
    ERR_set_mark(); /* a point that does not decode raises OpenSSL's error: the reason is ours to give */
    int decoded = ppub->data_type == OSSL_PARAM_OCTET_STRING && ppub->data != NULL &&
                  EC_POINT_oct2point(grp, pub, ppub->data, ppub->data_size, bn) == 1;
    ERR_pop_to_mark();
    if (!decoded)
        refuse(why, whylen, "EC: the public point does not decode to a point on the curve");
    else if (EC_POINT_is_on_curve(grp, pub, bn) != 1)
        refuse(why, whylen, "EC: the public point is not on the curve");
    else if (EC_POINT_mul(grp, want, k, NULL, NULL, bn) != 1)
        refuse(why, whylen, "EC: cannot compute scalar*G");
    else if (EC_POINT_cmp(grp, pub, want, bn) != 0)
        refuse(why, whylen, "EC: public point != scalar*G");
    else
        ok = 1;
end:
    BN_CTX_end(bn);
out:
    EC_POINT_free(pub); /* public points */
    EC_POINT_free(want);
    BN_free(zero);
    BN_CTX_free(bn);
    EC_GROUP_free(grp);
    return ok;
}

/* ---- Ed25519, Ed448, X25519, X448 ---- */

static int validate_ecx(mgp_ctx *prov, const char *type, size_t keylen, const OSSL_PARAM *params, char *why,
                        size_t whylen)
{
    const OSSL_PARAM *ppriv = OSSL_PARAM_locate_const(params, OSSL_PKEY_PARAM_PRIV_KEY);
    const OSSL_PARAM *ppub = OSSL_PARAM_locate_const(params, OSSL_PKEY_PARAM_PUB_KEY);
    if (ppriv == NULL)
        return 1; /* a public key imported as a pair (a peer) */
    if (ppriv->data_type != OSSL_PARAM_OCTET_STRING || ppriv->data == NULL)
        return refuse(why, whylen, "%s: the private key is not an octet string", type);
    if (ppriv->data_size != keylen)
        return refuse(why, whylen, "%s: private key of %zu bits (must be %zu)", type, ppriv->data_size * 8,
                      keylen * 8);
    if (ppub == NULL)
        return 1;
    if (ppub->data_type != OSSL_PARAM_OCTET_STRING || ppub->data == NULL || ppub->data_size != keylen)
        return refuse(why, whylen, "%s: public key of %zu bits (must be %zu)", type, ppub->data_size * 8,
                      keylen * 8);
    /* Derive the public key from the private one (the default provider clears its copy when freed). */
    EVP_PKEY *pk = EVP_PKEY_new_raw_private_key_ex(prov != NULL ? prov->libctx : NULL, type, "provider=default",
                                                   ppriv->data, keylen);
    unsigned char derived[57];
    size_t dlen = sizeof derived;
    int ok = pk != NULL && EVP_PKEY_get_raw_public_key(pk, derived, &dlen) == 1 && dlen == keylen;
    EVP_PKEY_free(pk);
    if (!ok)
        return refuse(why, whylen, "%s: cannot derive the public key", type);
    if (memcmp(derived, ppub->data, keylen) != 0) /* public values */
        return refuse(why, whylen, "%s: public key != the one derived from the private key", type);
    return 1;
}

int mgp_validate_private(mgp_ctx *prov, const char *type, const OSSL_PARAM *params, char *why, size_t whylen)
{
    if (why != NULL && whylen > 0)
        why[0] = '\0';
    if (type == NULL || params == NULL)
        return refuse(why, whylen, "no key type or parameters");
    if (strcmp(type, "RSA") == 0 || strcmp(type, "RSA-PSS") == 0)
        return validate_rsa(prov, params, why, whylen);
    if (strcmp(type, "EC") == 0)
        return validate_ec(prov, params, why, whylen);
    static const struct {
        const char *type;
        size_t len;
    } ecx[] = {{"ED25519", 32}, {"X25519", 32}, {"ED448", 57}, {"X448", 56}};
    for (size_t i = 0; i < sizeof ecx / sizeof ecx[0]; i++)
        if (strcmp(type, ecx[i].type) == 0)
            return validate_ecx(prov, type, ecx[i].len, params, why, whylen);
    return refuse(why, whylen, "%s: memguard cannot validate this key type", type);
}
