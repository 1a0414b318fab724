/*
 * Keys are validated before sealing (issue 11, point 6): a key memguard seals is a key that works.
 *
 * Bad keys are built here from chosen integers (a small DER writer below, and OSSL_PARAM arrays
 * shaped exactly as the default provider exports a key pair) and loaded through memguard in every
 * way that reaches sealing: EVP_PKEY_fromdata with "provider=memguard" (keymgmt import), and
 * PEM_read_bio_PrivateKey / d2i_AutoPrivateKey / d2i_PrivateKey (memguard's decoders, through
 * OPENSSL_CONF). Each must give no usable key: the load fails, or the loaded memguard key fails
 * every private-key operation; memguard's reason reaches the error queue, and no error text holds a
 * number from the key. The validator itself (provider/validate.c, compiled in) is also called
 * directly, for the exact reason of every case. Valid keys of every type are accepted and give
 * what the default provider gives.
 *
 * `test_validate --cost` prints what validation costs (not a test: timing belongs in bench/).
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <CUnit/CUnit.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/encoder.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/provider.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <memguard/memguard.h>

#include "../../provider/provider.h"
#include "../core/harness.h"
#include "check.h"
#ifndef MG_SANITIZED
#include "memscan.h"
#endif

static OSSL_LIB_CTX *plain; /* default provider only: reference keys and operations */
static OSSL_PROVIDER *plain_deflt;
static mgp_ctx vctx; /* what mgp_validate_private reads of the provider: libctx */

/* Every error text seen from a refused key, checked at the end against the base keys' numbers. */
static char seen_errors[1 << 16];
static size_t seen_len;

/* ---- a small DER writer ---- */

typedef struct {
    unsigned char *p;
    size_t n;
} blob;

static blob b_raw(const void *p, size_t n)
{
    blob b = {OPENSSL_malloc(n > 0 ? n : 1), n};
    if (b.p == NULL)
        abort();
    if (n > 0)
        memcpy(b.p, p, n);
    return b;
}

static void b_free(blob *b)
{
    OPENSSL_clear_free(b->p, b->n);
    b->p = NULL;
    b->n = 0;
}

/* a || b (both consumed). */
static blob b_cat(blob a, blob b)
{
    blob r = {OPENSSL_malloc(a.n + b.n + 1), a.n + b.n};
    if (r.p == NULL)
        abort();
    memcpy(r.p, a.p, a.n);
    memcpy(r.p + a.n, b.p, b.n);
    b_free(&a);
    b_free(&b);
    return r;
}

/* tag, definite length, contents (consumed). */
static blob tlv(unsigned char tag, blob c)
{
    unsigned char h[5];
    size_t hn = 0;
    h[hn++] = tag;
    if (c.n < 0x80) {
        h[hn++] = (unsigned char)c.n;
    } else if (c.n < 0x100) {
        h[hn++] = 0x81;
        h[hn++] = (unsigned char)c.n;
    } else if (c.n < 0x10000) {
        h[hn++] = 0x82;
        h[hn++] = (unsigned char)(c.n >> 8);
        h[hn++] = (unsigned char)c.n;
    } else {
        h[hn++] = 0x83;
        h[hn++] = (unsigned char)(c.n >> 16);
        h[hn++] = (unsigned char)(c.n >> 8);
        h[hn++] = (unsigned char)c.n;
    }
    return b_cat(b_raw(h, hn), c);
}

static blob d_int(const BIGNUM *v)
{
    size_t n = (size_t)BN_num_bytes(v);
    unsigned char *buf = OPENSSL_zalloc(n + 1);
    if (buf == NULL)
        abort();
    BN_bn2bin(v, buf + 1);
    size_t skip = n > 0 && (buf[1] & 0x80) == 0 ? 1 : 0; /* a zero byte in front only if the top bit is set */
    if (n == 0)
        skip = 0; /* INTEGER 0 is one zero byte */
    blob r = tlv(0x02, b_raw(buf + skip, n + 1 - skip));
    OPENSSL_clear_free(buf, n + 1);
    return r;
}

static blob d_small(unsigned long v)
{
    BIGNUM *b = BN_new();
    if (b == NULL || BN_set_word(b, v) != 1)
        abort();
    blob r = d_int(b);
    BN_free(b);
    return r;
}

static blob d_oid_nid(int nid)
{
    const ASN1_OBJECT *o = OBJ_nid2obj(nid);
    unsigned char *der = NULL;
    int n = o != NULL ? i2d_ASN1_OBJECT(o, &der) : -1;
    if (n <= 0)
        abort();
    blob r = b_raw(der, (size_t)n);
    OPENSSL_free(der);
    return r;
}

static blob empty(void)
{
    return b_raw("", 0);
}

/* PKCS#8 PrivateKeyInfo around a private key, with the algorithm identifier's contents given. */
static blob pkcs8(blob alg_contents, blob key)
{
    return tlv(0x30, b_cat(b_cat(d_small(0), tlv(0x30, alg_contents)), tlv(0x04, key)));
}

/* ---- a key to load: what the default provider exports, and its DER ---- */

typedef struct {
    const char *type;   /* memguard's key type name */
    OSSL_PARAM *params; /* private parameters, as EVP_PKEY_todata(EVP_PKEY_KEYPAIR) gives them */
    blob pkcs8;         /* PrivateKeyInfo */
    blob trad;          /* RSAPrivateKey / ECPrivateKey, or empty */
    bool params_only;   /* the case lives in params only (an Ed/X public key: memguard's DER parser derives its own) */
} keyspec;

static void ks_free(keyspec *ks)
{
    OSSL_PARAM_free(ks->params);
    b_free(&ks->pkcs8);
    b_free(&ks->trad);
}

/* ---- RSA from its numbers ---- */

#define MAXP 3
typedef struct {
    BIGNUM *n, *e, *d, *p[MAXP], *dp[MAXP], *t[MAXP - 1];
    size_t primes;
    bool no_crt, no_d;
} rsa_num;

static BIGNUM *bn_dup(const BIGNUM *a)
{
    BIGNUM *r = a != NULL ? BN_dup(a) : NULL;
    if (a != NULL && r == NULL)
        abort();
    return r;
}

static void rsa_free(rsa_num *r)
{
    BN_clear_free(r->n);
    BN_clear_free(r->e);
    BN_clear_free(r->d);
    for (size_t i = 0; i < MAXP; i++) {
        BN_clear_free(r->p[i]);
        BN_clear_free(r->dp[i]);
        if (i < MAXP - 1)
            BN_clear_free(r->t[i]);
    }
    memset(r, 0, sizeof *r);
}

static rsa_num rsa_copy(const rsa_num *a)
{
    rsa_num r = {bn_dup(a->n), bn_dup(a->e), bn_dup(a->d), {NULL}, {NULL}, {NULL}, a->primes, a->no_crt, a->no_d};
    for (size_t i = 0; i < MAXP; i++) {
        r.p[i] = bn_dup(a->p[i]);
        r.dp[i] = bn_dup(a->dp[i]);
        if (i < MAXP - 1)
            r.t[i] = bn_dup(a->t[i]);
    }
    return r;
}

/* Recompute n, d and the CRT values from the primes and e (whatever they are). */
static void rsa_derive(rsa_num *r)
{
    BN_CTX *c = BN_CTX_new();
    BIGNUM *lambda = BN_new(), *pm1 = BN_new(), *g = BN_new(), *prod = BN_new();
    if (c == NULL || lambda == NULL || pm1 == NULL || g == NULL || prod == NULL)
        abort();
    BN_one(r->n);
    BN_one(lambda);
    for (size_t i = 0; i < r->primes; i++) {
        BN_mul(r->n, r->n, r->p[i], c);
        BN_copy(pm1, r->p[i]);
        BN_sub_word(pm1, 1);
        BN_gcd(g, lambda, pm1, c);
        BN_mul(lambda, lambda, pm1, c);
        BN_div(lambda, NULL, lambda, g, c);
    }
    ERR_set_mark();
    if (BN_mod_inverse(r->d, r->e, lambda, c) == NULL)
        BN_set_word(r->d, 3);
    for (size_t i = 0; i < r->primes; i++) {
        BN_copy(pm1, r->p[i]);
        BN_sub_word(pm1, 1);
        BN_mod(r->dp[i], r->d, pm1, c);
    }
    if (BN_mod_inverse(r->t[0], r->p[1], r->p[0], c) == NULL)
        BN_one(r->t[0]);
    BN_copy(prod, r->p[0]);
    for (size_t i = 2; i < r->primes; i++) {
        BN_mul(prod, prod, r->p[i - 1], c);
        if (BN_mod_inverse(r->t[i - 1], prod, r->p[i], c) == NULL)
            BN_one(r->t[i - 1]);
    }
    ERR_pop_to_mark();
    BN_clear_free(lambda);
    BN_clear_free(pm1);
    BN_clear_free(g);
    BN_clear_free(prod);
    BN_CTX_free(c);
}

static rsa_num rsa_from_primes(BIGNUM *const *p, size_t primes, unsigned long e)
{
    rsa_num r = {BN_new(), BN_new(), BN_new(), {NULL}, {NULL}, {NULL}, primes, false, false};
    BN_set_word(r.e, e);
    for (size_t i = 0; i < primes; i++) {
        r.p[i] = bn_dup(p[i]);
        r.dp[i] = BN_new();
        if (i > 0)
            r.t[i - 1] = BN_new();
    }
    rsa_derive(&r);
    return r;
}

static rsa_num rsa_from_pkey(EVP_PKEY *k)
{
    static const char *fac[] = {"rsa-factor1", "rsa-factor2", "rsa-factor3"};
    static const char *exp[] = {"rsa-exponent1", "rsa-exponent2", "rsa-exponent3"};
    static const char *coe[] = {"rsa-coefficient1", "rsa-coefficient2"};
    rsa_num r = {NULL, NULL, NULL, {NULL}, {NULL}, {NULL}, 0, false, false};
    if (EVP_PKEY_get_bn_param(k, "n", &r.n) != 1 || EVP_PKEY_get_bn_param(k, "e", &r.e) != 1 ||
        EVP_PKEY_get_bn_param(k, "d", &r.d) != 1)
        abort();
    while (r.primes < MAXP && EVP_PKEY_get_bn_param(k, fac[r.primes], &r.p[r.primes]) == 1) {
        if (EVP_PKEY_get_bn_param(k, exp[r.primes], &r.dp[r.primes]) != 1 ||
            (r.primes > 0 && EVP_PKEY_get_bn_param(k, coe[r.primes - 1], &r.t[r.primes - 1]) != 1))
            abort();
        r.primes++;
    }
    ERR_clear_error();
    return r;
}

static blob rsa_der(const rsa_num *r)
{
    blob b = b_cat(b_cat(b_cat(d_small(r->primes > 2), d_int(r->n)), d_int(r->e)), d_int(r->d));
    b = b_cat(b_cat(b, d_int(r->p[0])), d_int(r->p[1]));
    b = b_cat(b_cat(b_cat(b, d_int(r->dp[0])), d_int(r->dp[1])), d_int(r->t[0]));
    if (r->primes > 2) {
        blob others = empty();
        for (size_t i = 2; i < r->primes; i++)
            others = b_cat(others, tlv(0x30, b_cat(b_cat(d_int(r->p[i]), d_int(r->dp[i])), d_int(r->t[i - 1]))));
        b = b_cat(b, tlv(0x30, others));
    }
    return tlv(0x30, b);
}

static OSSL_PARAM *build(OSSL_PARAM_BLD *bld)
{
    OSSL_PARAM *p = bld != NULL ? OSSL_PARAM_BLD_to_param(bld) : NULL;
    OSSL_PARAM_BLD_free(bld);
    if (p == NULL)
        abort();
    return p;
}

static keyspec rsa_spec(const char *type, const rsa_num *r)
{
    static const char *fac[] = {"rsa-factor1", "rsa-factor2", "rsa-factor3"};
    static const char *exp[] = {"rsa-exponent1", "rsa-exponent2", "rsa-exponent3"};
    static const char *coe[] = {"rsa-coefficient1", "rsa-coefficient2"};
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM_BLD_push_BN(bld, "n", r->n);
    OSSL_PARAM_BLD_push_BN(bld, "e", r->e);
    if (!r->no_d)
        OSSL_PARAM_BLD_push_BN(bld, "d", r->d);
    for (size_t i = 0; i < r->primes && !r->no_crt; i++) {
        OSSL_PARAM_BLD_push_BN(bld, fac[i], r->p[i]);
        OSSL_PARAM_BLD_push_BN(bld, exp[i], r->dp[i]);
        if (i > 0)
            OSSL_PARAM_BLD_push_BN(bld, coe[i - 1], r->t[i - 1]);
    }
    static const unsigned char rsa_oid[] = {0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7,
                                            0x0d, 0x01, 0x01, 0x01, 0x05, 0x00};
    static const unsigned char pss_oid[] = {0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a};
    bool pss = strcmp(type, "RSA-PSS") == 0;
    keyspec ks = {type, build(bld), {NULL, 0}, {NULL, 0}, false};
    ks.pkcs8 = pkcs8(pss ? b_raw(pss_oid, sizeof pss_oid) : b_raw(rsa_oid, sizeof rsa_oid), rsa_der(r));
    ks.trad = pss ? empty() : rsa_der(r);
    return ks;
}

/* ---- EC and ECX from their bytes ---- */

/* scalar: big-endian, any length; pub: encoded point or NULL. */
static keyspec ec_spec(int nid, const BIGNUM *scalar, const unsigned char *pub, size_t publen)
{
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM_BLD_push_utf8_string(bld, "group", OBJ_nid2sn(nid), 0);
    OSSL_PARAM_BLD_push_BN(bld, "priv", scalar);
    if (pub != NULL)
        OSSL_PARAM_BLD_push_octet_string(bld, "pub", pub, publen);
    EC_GROUP *g = EC_GROUP_new_by_curve_name_ex(plain, NULL, nid);
    size_t olen = (size_t)BN_num_bytes(EC_GROUP_get0_order(g)), slen = (size_t)BN_num_bytes(scalar);
    size_t len = slen > olen ? slen : olen;
    unsigned char *s = OPENSSL_zalloc(len);
    BN_bn2binpad(scalar, s, (int)len);
    EC_GROUP_free(g);
    /* ECPrivateKey: version 1, privateKey, [0] curve (traditional form only), [1] public key */
    blob pubpart = pub != NULL ? tlv(0xa1, tlv(0x03, b_cat(b_raw("", 1), b_raw(pub, publen)))) : empty();
    blob head = b_cat(d_small(1), tlv(0x04, b_raw(s, len)));
    blob trad = tlv(0x30, b_cat(b_cat(b_raw(head.p, head.n), tlv(0xa0, d_oid_nid(nid))), b_raw(pubpart.p, pubpart.n)));
    blob inner = tlv(0x30, b_cat(head, pubpart));
    static const unsigned char ec_oid[] = {0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01};
    keyspec ks = {"EC", build(bld), pkcs8(b_cat(b_raw(ec_oid, sizeof ec_oid), d_oid_nid(nid)), inner), trad, false};
    OPENSSL_clear_free(s, len);
    return ks;
}

static keyspec ecx_spec(const char *type, const unsigned char *priv, size_t len, const unsigned char *pub,
                        size_t publen)
{
    static const struct {
        const char *type;
        unsigned char last;
    } oids[] = {{"X25519", 0x6e}, {"X448", 0x6f}, {"ED25519", 0x70}, {"ED448", 0x71}};
    unsigned char oid[5] = {0x06, 0x03, 0x2b, 0x65, 0};
    for (size_t i = 0; i < 4; i++)
        if (strcmp(oids[i].type, type) == 0)
            oid[4] = oids[i].last;
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM_BLD_push_octet_string(bld, "priv", priv, len);
    if (pub != NULL)
        OSSL_PARAM_BLD_push_octet_string(bld, "pub", pub, publen);
    keyspec ks = {type, build(bld), pkcs8(b_raw(oid, sizeof oid), tlv(0x04, b_raw(priv, len))), empty(), pub != NULL};
    return ks;
}

/* ---- loading through memguard ---- */

enum { VIA_FROMDATA, VIA_PEM_PKCS8, VIA_D2I_PKCS8, VIA_PEM_TRAD, VIA_D2I_TRAD, NVIA };
static const char *const via_name[NVIA] = {"EVP_PKEY_fromdata(provider=memguard)", "PEM_read_bio_PrivateKey (PKCS#8)",
                                           "d2i_AutoPrivateKey (PKCS#8)", "PEM_read_bio_PrivateKey (traditional)",
                                           "d2i_PrivateKey (traditional)"};

static EVP_PKEY *from_pem(const char *label, const blob *der)
{
    BIO *b = BIO_new(BIO_s_mem());
    EVP_PKEY *k = NULL;
    if (b != NULL && PEM_write_bio(b, label, "", der->p, (long)der->n) > 0)
        k = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
    BIO_free(b);
    return k;
}

/* NULL when the load failed (or the path does not apply: *applies = false). */
static EVP_PKEY *load_via(int via, const keyspec *ks, bool *applies)
{
    *applies = via == VIA_FROMDATA || !ks->params_only;
    EVP_PKEY *k = NULL;
    if (!*applies)
        return NULL;
    const unsigned char *p;
    bool ec = strcmp(ks->type, "EC") == 0;
    switch (via) {
    case VIA_FROMDATA: {
        EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_name(NULL, ks->type, "provider=memguard");
        if (c == NULL || EVP_PKEY_fromdata_init(c) != 1 || EVP_PKEY_fromdata(c, &k, EVP_PKEY_KEYPAIR, ks->params) != 1)
            k = NULL;
        EVP_PKEY_CTX_free(c);
        break;
    }
    case VIA_PEM_PKCS8:
        k = from_pem("PRIVATE KEY", &ks->pkcs8);
        break;
    case VIA_D2I_PKCS8:
        p = ks->pkcs8.p;
        k = d2i_AutoPrivateKey(NULL, &p, (long)ks->pkcs8.n);
        break;
    case VIA_PEM_TRAD:
        if ((*applies = ks->trad.n > 0))
            k = from_pem(ec ? "EC PRIVATE KEY" : "RSA PRIVATE KEY", &ks->trad);
        break;
    case VIA_D2I_TRAD:
        p = ks->trad.p;
        if ((*applies = ks->trad.n > 0))
            k = d2i_PrivateKey(ec ? EVP_PKEY_EC : EVP_PKEY_RSA, NULL, &p, (long)ks->trad.n);
        break;
    }
    return k;
}

static bool is_memguard(const EVP_PKEY *k)
{
    const OSSL_PROVIDER *p = EVP_PKEY_get0_provider(k);
    return p != NULL && strcmp(OSSL_PROVIDER_get0_name(p), "memguard") == 0;
}

/* Drain the error queue into text: "reason: data | ..." (also kept for the secrecy check). */
static void take_errors(char *out, size_t cap)
{
    size_t used = 0;
    out[0] = '\0';
    const char *data;
    int flags;
    unsigned long e;
    while ((e = ERR_get_error_all(NULL, NULL, NULL, &data, &flags)) != 0) {
        const char *r = ERR_reason_error_string(e);
        int n = snprintf(out + used, cap - used, "%s: %s | ", r != NULL ? r : "(no reason)",
                         (flags & ERR_TXT_STRING) ? data : "");
        if (n > 0 && (size_t)n < cap - used)
            used += (size_t)n;
    }
    size_t room = sizeof seen_errors - seen_len;
    if (used + 1 < room) {
        memcpy(seen_errors + seen_len, out, used);
        seen_len += used;
        seen_errors[seen_len++] = '\n';
        seen_errors[seen_len] = '\0';
    }
}

static const unsigned char msg[] = "memguard validates keys before it seals them";

static EVP_PKEY *peer_for(const char *type, EVP_PKEY *like)
{
    if (strcmp(type, "EC") == 0) {
        char group[64];
        if (EVP_PKEY_get_utf8_string_param(like, "group", group, sizeof group, NULL) != 1)
            return NULL;
        return EVP_PKEY_Q_keygen(plain, NULL, "EC", group);
    }
    return EVP_PKEY_Q_keygen(plain, NULL, type);
}

static bool is_x(const char *type)
{
    return strcmp(type, "X25519") == 0 || strcmp(type, "X448") == 0;
}

/* A signature of msg (SHA-256 where a digest applies). */
static bool sign(EVP_PKEY *k, const char *type, unsigned char *sig, size_t *len)
{
    EVP_MD_CTX *m = EVP_MD_CTX_new();
    const char *md = strncmp(type, "ED", 2) == 0 ? NULL : "SHA256";
    bool ok = m != NULL && EVP_DigestSignInit_ex(m, NULL, md, NULL, NULL, k, NULL) == 1 &&
              EVP_DigestSign(m, sig, len, msg, sizeof msg) == 1;
    EVP_MD_CTX_free(m);
    return ok;
}

static bool derive(EVP_PKEY *k, EVP_PKEY *peer, unsigned char *out, size_t *len)
{
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_pkey(NULL, k, NULL);
    bool ok = c != NULL && EVP_PKEY_derive_init(c) == 1 && EVP_PKEY_derive_set_peer(c, peer) == 1 &&
              EVP_PKEY_derive(c, out, len) == 1;
    EVP_PKEY_CTX_free(c);
    return ok;
}

/* Raw RSA decryption of a small value: any success means the key is usable. */
static bool rsa_decrypts(EVP_PKEY *k)
{
    int bytes = EVP_PKEY_get_size(k);
    if (bytes <= 0 || bytes > 2048)
        return false;
    unsigned char in[2048] = {0}, out[2048];
    in[bytes - 1] = 2;
    size_t outlen = sizeof out;
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_pkey(NULL, k, NULL);
    bool ok = c != NULL && EVP_PKEY_decrypt_init(c) == 1 && EVP_PKEY_CTX_set_rsa_padding(c, RSA_NO_PADDING) == 1 &&
              EVP_PKEY_decrypt(c, out, &outlen, in, (size_t)bytes) == 1;
    EVP_PKEY_CTX_free(c);
    return ok;
}

/* Whether any private-key operation succeeds with k. */
static bool any_private_op(EVP_PKEY *k, const char *type)
{
    unsigned char out[1024];
    size_t len = sizeof out;
    if (is_x(type)) {
        EVP_PKEY *peer = EVP_PKEY_Q_keygen(plain, NULL, type);
        bool ok = peer != NULL && derive(k, peer, out, &len);
        EVP_PKEY_free(peer);
        return ok;
    }
    if (sign(k, type, out, &len))
        return true;
    return strncmp(type, "RSA", 3) == 0 && rsa_decrypts(k);
}

/* Digits of a hex or decimal run longer than this in an error text would be a number from the key. */
#define MAX_DIGIT_RUN 12

static bool has_long_digit_run(const char *s)
{
    size_t run = 0;
    for (; *s != '\0'; s++) {
        run = isxdigit((unsigned char)*s) ? run + 1 : 0;
        if (run > MAX_DIGIT_RUN)
            return true;
    }
    return false;
}

/*
 * ks must give no usable key by any path. why: memguard's reason, expected in the error queue
 * where memguard is the one that refuses (NULL where OpenSSL's own import refuses the numbers first,
 * before memguard sees them: then any error will do). direct: the validator's own reason.
 */
/* Whether the default provider's own import takes these numbers (newer OpenSSL refuses some itself). */
static bool default_imports(const keyspec *ks)
{
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_name(plain, ks->type, NULL);
    EVP_PKEY *k = NULL;
    bool ok = c != NULL && EVP_PKEY_fromdata_init(c) == 1 &&
              EVP_PKEY_fromdata(c, &k, EVP_PKEY_KEYPAIR, ks->params) == 1;
    EVP_PKEY_free(k);
    EVP_PKEY_CTX_free(c);
    ERR_clear_error();
    return ok;
}

static void expect_refused(const char *label, keyspec ks, const char *direct, const char *why, bool openssl_first)
{
    char text[4096];
    char got[256] = "";
    openssl_first = openssl_first || !default_imports(&ks); /* then any error will do, memguard's or OpenSSL's */
    ERR_clear_error();
    CHECK(mgp_validate_private(&vctx, ks.type, ks.params, got, sizeof got) == 0 && strstr(got, direct) != NULL,
          "%s: the validator says \"%s\", expected \"%s\"", label, got, direct);
    CHECK(!has_long_digit_run(got), "%s: the reason holds a number: \"%s\"", label, got);
    for (int via = 0; via < NVIA; via++) {
        bool applies;
        ERR_clear_error();
        EVP_PKEY *k = load_via(via, &ks, &applies);
        if (!applies)
            continue;
        if (k == NULL) {
            take_errors(text, sizeof text);
            /* (EVP_PKEY_fromdata: when the default provider's import refuses the numbers, memguard's import
             * returns 0 without an error of its own; keymgmt.c, reported) */
            CHECK(text[0] != '\0' || (openssl_first && via == VIA_FROMDATA),
                  "%s via %s: the load failed without an error", label, via_name[via]);
            if (!openssl_first)
                CHECK(strstr(text, why) != NULL && strstr(text, "memguard") != NULL,
                      "%s via %s: the load failed, but memguard's reason \"%s\" is not in the queue: %s", label,
                      via_name[via], why, text);
            continue;
        }
        /* Loaded: it must be a memguard key that refuses every use (a refused key), never a usable one. */
        char used[4096];
        take_errors(text, sizeof text);
        bool mine = is_memguard(k);
        CHECK(mine, "%s via %s: loaded as a key of provider %s, not memguard's refused key", label, via_name[via],
              EVP_PKEY_get0_provider(k) != NULL ? OSSL_PROVIDER_get0_name(EVP_PKEY_get0_provider(k)) : "(legacy)");
        if (mine) {
            CHECK(!any_private_op(k, ks.type), "%s via %s: the key is usable", label, via_name[via]);
            take_errors(used, sizeof used);
            /* memguard's reason at the load (the decoder keeps the queue) and "invalid" again at every use;
             * numbers OpenSSL's import refused leave at most a public key, whose use fails as such */
            CHECK(strstr(used, "memguard") != NULL && (openssl_first || strstr(used, "invalid") != NULL),
                  "%s via %s: its use failed without memguard's \"invalid\": %s", label, via_name[via], used);
            /* PEM_read_bio_PrivateKey empties the queue after a load that succeeds, and a refused key's text
             * does not repeat the reason yet (load.c, reported): there only "invalid" is required. */
            bool pem = via == VIA_PEM_PKCS8 || via == VIA_PEM_TRAD;
            if (!openssl_first && !pem)
                CHECK(strstr(text, why) != NULL || strstr(used, why) != NULL,
                      "%s via %s: memguard's reason \"%s\" reached the queue neither at load (%s) nor at use (%s)",
                      label, via_name[via], why, text, used);
        }
        EVP_PKEY_free(k);
    }
    ks_free(&ks);
}

/* ks is accepted by the validator and by every path, and what it does equals the default provider's. */
static void expect_accepted(const char *label, keyspec ks, EVP_PKEY *ref)
{
    char got[256] = "?";
    CHECK(mgp_validate_private(&vctx, ks.type, ks.params, got, sizeof got) == 1 && got[0] == '\0',
          "%s: the validator refused it: \"%s\"", label, got);
    EVP_PKEY *peer = is_x(ks.type) || strcmp(ks.type, "EC") == 0 ? peer_for(ks.type, ref) : NULL;
    for (int via = 0; via < NVIA; via++) {
        bool applies;
        ERR_clear_error();
        EVP_PKEY *k = load_via(via, &ks, &applies);
        if (!applies)
            continue;
        if (!CHECK(k != NULL && is_memguard(k), "%s via %s: not loaded as a memguard key", label, via_name[via])) {
            EVP_PKEY_free(k);
            continue;
        }
        unsigned char a[1024], b[1024];
        size_t alen = sizeof a, blen = sizeof b;
        if (is_x(ks.type) || (peer != NULL && strcmp(ks.type, "EC") == 0)) {
            CHECK(derive(k, peer, a, &alen) && derive(ref, peer, b, &blen) && alen == blen && memcmp(a, b, alen) == 0,
                  "%s via %s: the shared secret differs from the default provider's", label, via_name[via]);
        }
        if (!is_x(ks.type)) {
            alen = sizeof a;
            CHECK(sign(k, ks.type, a, &alen), "%s via %s: cannot sign", label, via_name[via]);
            EVP_MD_CTX *m = EVP_MD_CTX_new();
            const char *md = strncmp(ks.type, "ED", 2) == 0 ? NULL : "SHA256";
            CHECK(m != NULL && EVP_DigestVerifyInit_ex(m, NULL, md, plain, NULL, ref, NULL) == 1 &&
                      EVP_DigestVerify(m, a, alen, msg, sizeof msg) == 1,
                  "%s via %s: the default provider does not verify its signature", label, via_name[via]);
            EVP_MD_CTX_free(m);
        }
        EVP_PKEY_free(k);
    }
    EVP_PKEY_free(peer);
    ks_free(&ks);
}

/* ---- the keys ---- */

static EVP_PKEY *rsa2048, *p256;
static rsa_num base;       /* rsa2048's numbers */
static BIGNUM *p256_order; /* P-256's group order */

static EVP_PKEY *gen_rsa(const char *type, int bits, int primes)
{
    EVP_PKEY_CTX *g = EVP_PKEY_CTX_new_from_name(plain, type, NULL);
    EVP_PKEY *k = NULL;
    if (g == NULL || EVP_PKEY_keygen_init(g) != 1 || EVP_PKEY_CTX_set_rsa_keygen_bits(g, bits) <= 0 ||
        EVP_PKEY_CTX_set_rsa_keygen_primes(g, primes) <= 0 || EVP_PKEY_keygen(g, &k) != 1)
        k = NULL;
    EVP_PKEY_CTX_free(g);
    return k;
}

static int init_suite(void)
{
    plain = OSSL_LIB_CTX_new();
    if (plain == NULL || (plain_deflt = OSSL_PROVIDER_load(plain, "default")) == NULL)
        return 1;
    vctx.libctx = plain;
    if ((rsa2048 = gen_rsa("RSA", 2048, 2)) == NULL || (p256 = EVP_PKEY_Q_keygen(plain, NULL, "EC", "P-256")) == NULL)
        return 1;
    base = rsa_from_pkey(rsa2048);
    EC_GROUP *g = EC_GROUP_new_by_curve_name_ex(plain, NULL, NID_X9_62_prime256v1);
    p256_order = g != NULL ? BN_dup(EC_GROUP_get0_order(g)) : NULL;
    EC_GROUP_free(g);
    return base.primes == 2 && p256_order != NULL ? 0 : 1;
}

static int clean_suite(void)
{
    EVP_PKEY_free(rsa2048);
    EVP_PKEY_free(p256);
    rsa_free(&base);
    BN_free(p256_order);
    OSSL_PROVIDER_unload(plain_deflt);
    OSSL_LIB_CTX_free(plain);
    return 0;
}

/* ---- valid keys ---- */

/* The key the default provider made, through memguard: its own export, OpenSSL's PEM, and our DER. */
static void accept_generated(const char *label, EVP_PKEY *k, const char *type)
{
    CU_ASSERT_PTR_NOT_NULL_FATAL(k);
    OSSL_PARAM *exported = NULL;
    char got[256] = "?";
    CHECK(EVP_PKEY_todata(k, EVP_PKEY_KEYPAIR, &exported) == 1 &&
              mgp_validate_private(&vctx, type, exported, got, sizeof got) == 1,
          "%s: the validator refused the default provider's own export: \"%s\"", label, got);
    OSSL_PARAM_free(exported);
    /* OpenSSL's own PKCS#8 PEM, as a key file on disk would be. */
    BIO *b = BIO_new(BIO_s_mem());
    EVP_PKEY *loaded = NULL;
    if (b != NULL && PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL) == 1)
        loaded = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
    BIO_free(b);
    CHECK(loaded != NULL && is_memguard(loaded), "%s: OpenSSL's PEM of it is not loaded as a memguard key", label);
    unsigned char sig[1024];
    size_t len = sizeof sig;
    if (loaded != NULL && !is_x(type))
        CHECK(sign(loaded, type, sig, &len), "%s: the key from OpenSSL's PEM cannot sign", label);
    EVP_PKEY_free(loaded);
}

static void test_valid_rsa_keys_of_every_size_are_accepted_and_sign_as_openssl(void)
{
    static const struct {
        const char *type;
        int bits, primes;
    } shapes[] = {{"RSA", 1024, 2}, {"RSA", 2048, 2}, {"RSA", 3072, 2}, {"RSA", 4096, 2},
                  {"RSA", 2048, 3}, {"RSA-PSS", 2048, 2}};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        char label[64];
        snprintf(label, sizeof label, "%s-%d (%d primes)", shapes[i].type, shapes[i].bits, shapes[i].primes);
        EVP_PKEY *k = i == 1 ? EVP_PKEY_dup(rsa2048) : gen_rsa(shapes[i].type, shapes[i].bits, shapes[i].primes);
        accept_generated(label, k, shapes[i].type);
        rsa_num r = rsa_from_pkey(k);
        CU_ASSERT_EQUAL(r.primes, (size_t)shapes[i].primes);
        expect_accepted(label, rsa_spec(shapes[i].type, &r), k);
        rsa_free(&r);
        EVP_PKEY_free(k);
    }
}

static keyspec ec_spec_of(EVP_PKEY *k, int nid, bool with_pub)
{
    BIGNUM *priv = NULL;
    unsigned char pub[200];
    size_t publen = 0;
    if (EVP_PKEY_get_bn_param(k, "priv", &priv) != 1 ||
        EVP_PKEY_get_octet_string_param(k, "pub", pub, sizeof pub, &publen) != 1)
        abort();
    keyspec ks = ec_spec(nid, priv, with_pub ? pub : NULL, publen);
    BN_clear_free(priv);
    return ks;
}

static void test_valid_ec_keys_on_every_curve_are_accepted_and_work_as_openssl(void)
{
    static const struct {
        const char *name;
        int nid;
    } curves[] = {{"P-256", NID_X9_62_prime256v1}, {"P-384", NID_secp384r1}, {"P-521", NID_secp521r1},
                  {"secp256k1", NID_secp256k1}};
    for (size_t i = 0; i < sizeof curves / sizeof curves[0]; i++) {
        EVP_PKEY *k = EVP_PKEY_Q_keygen(plain, NULL, "EC", curves[i].name);
        accept_generated(curves[i].name, k, "EC");
        char label[64];
        snprintf(label, sizeof label, "%s with its public point", curves[i].name);
        expect_accepted(label, ec_spec_of(k, curves[i].nid, true), k);
        snprintf(label, sizeof label, "%s without a public point", curves[i].name);
        expect_accepted(label, ec_spec_of(k, curves[i].nid, false), k);
        EVP_PKEY_free(k);
    }
}

static keyspec ecx_spec_of(EVP_PKEY *k, const char *type, bool with_pub)
{
    unsigned char priv[64], pub[64];
    size_t privlen = sizeof priv, publen = sizeof pub;
    if (EVP_PKEY_get_raw_private_key(k, priv, &privlen) != 1 || EVP_PKEY_get_raw_public_key(k, pub, &publen) != 1)
        abort();
    keyspec ks = ecx_spec(type, priv, privlen, with_pub ? pub : NULL, publen);
    OPENSSL_cleanse(priv, sizeof priv);
    return ks;
}

static void test_valid_ed_and_x_keys_are_accepted_and_work_as_openssl(void)
{
    static const char *types[] = {"ED25519", "ED448", "X25519", "X448"};
    for (size_t i = 0; i < 4; i++) {
        EVP_PKEY *k = EVP_PKEY_Q_keygen(plain, NULL, types[i]);
        accept_generated(types[i], k, types[i]);
        expect_accepted(types[i], ecx_spec_of(k, types[i], true), k);
        expect_accepted(types[i], ecx_spec_of(k, types[i], false), k);
        EVP_PKEY_free(k);
    }
}

/* ---- bad RSA keys ---- */

static void test_rsa_modulus_out_of_bounds_is_refused(void)
{
    rsa_num r = rsa_copy(&base);
    BN_zero(r.n);
    expect_refused("n = 0", rsa_spec("RSA", &r), "RSA: modulus of 0 bits", "RSA: modulus of 0 bits", false);
    BN_one(r.n);
    expect_refused("n = 1", rsa_spec("RSA", &r), "RSA: modulus of 1 bits", "RSA: modulus of 1 bits", false);
    rsa_free(&r);

    /* A real 511-bit key: 256- and 255-bit primes whose product has 511 bits. */
    BIGNUM *pq[2] = {BN_new(), BN_new()};
    rsa_num small;
    do {
        CU_ASSERT_FATAL(BN_generate_prime_ex(pq[0], 256, 0, NULL, NULL, NULL) == 1 &&
                        BN_generate_prime_ex(pq[1], 255, 0, NULL, NULL, NULL) == 1);
        small = rsa_from_primes(pq, 2, 65537);
        if (BN_num_bits(small.n) == 511)
            break;
        rsa_free(&small);
    } while (1);
    expect_refused("a 511-bit key", rsa_spec("RSA", &small), "RSA: modulus of 511 bits",
                   "RSA: modulus of 511 bits", false);
    /* The same construction at 512 bits is a key (the bound is inclusive). */
    rsa_free(&small);
    BN_clear_free(pq[0]);
    BN_clear_free(pq[1]);
}

/* An 800,000-bit modulus: refused from its size alone (the test only asserts that the load returns). */
static void test_rsa_huge_modulus_is_refused_before_any_arithmetic(void)
{
    rsa_num r = rsa_copy(&base);
    CU_ASSERT_FATAL(BN_rand(r.n, 800000, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ODD) == 1);
    expect_refused("an 800000-bit modulus", rsa_spec("RSA", &r), "RSA: modulus of 800000 bits",
                   "RSA: modulus of 800000 bits", false);
    rsa_free(&r);
}

static void test_rsa_bad_public_exponent_is_refused(void)
{
    rsa_num r = rsa_copy(&base);
    BN_one(r.e);
    expect_refused("e = 1", rsa_spec("RSA", &r), "RSA: public exponent e <= 1", "e <= 1", false);
    BN_set_word(r.e, 65536);
    expect_refused("e even", rsa_spec("RSA", &r), "RSA: public exponent e is even", "e is even", false);
    BN_copy(r.e, r.n);
    expect_refused("e = n", rsa_spec("RSA", &r), "RSA: public exponent e >= n", "e >= n", false);
    rsa_free(&r);
}

static void test_rsa_bad_private_exponent_is_refused(void)
{
    rsa_num r = rsa_copy(&base);
    BN_zero(r.d);
    expect_refused("d = 0", rsa_spec("RSA", &r), "RSA: private exponent d out of range", "d out of range", false);
    BN_copy(r.d, r.n);
    expect_refused("d = n", rsa_spec("RSA", &r), "RSA: private exponent d out of range", "d out of range", false);
    rsa_free(&r);

    /* d + 2 with the CRT values of the right d: caught by e*d (first) and the CRT check. */
    r = rsa_copy(&base);
    BN_add_word(r.d, 2);
    expect_refused("wrong d", rsa_spec("RSA", &r), "RSA: e*d != 1 (mod lambda(n))", "e*d != 1", false);
    /* d + 2 with CRT values consistent with it: only e*d = 1 (mod lambda) can catch it. */
    BN_CTX *c = BN_CTX_new();
    for (size_t i = 0; i < 2; i++) {
        BIGNUM *pm1 = BN_dup(r.p[i]);
        BN_sub_word(pm1, 1);
        BN_mod(r.dp[i], r.d, pm1, c);
        BN_free(pm1);
    }
    BN_CTX_free(c);
    expect_refused("wrong d, CRT consistent with it", rsa_spec("RSA", &r), "RSA: e*d != 1 (mod lambda(n))",
                   "e*d != 1", false);
    rsa_free(&r);
}

static void test_rsa_inconsistent_factors_are_refused(void)
{
    rsa_num r = rsa_copy(&base);
    BN_add_word(r.n, 1);
    expect_refused("n off by one", rsa_spec("RSA", &r), "RSA: modulus n is even", "n is even", false);
    BN_add_word(r.n, 1);
    expect_refused("n off by two", rsa_spec("RSA", &r), "RSA: n != p*q", "n != p*q", false);
    rsa_free(&r);

    /* p == q: n = p^2, everything else computed from it. */
    BIGNUM *pp[2] = {base.p[0], base.p[0]};
    r = rsa_from_primes(pp, 2, 65537);
    expect_refused("p == q", rsa_spec("RSA", &r), "RSA: p == q", "p == q", false);
    rsa_free(&r);
}

static void test_rsa_inconsistent_crt_values_are_refused(void)
{
    rsa_num r = rsa_copy(&base);
    BN_add_word(r.dp[0], 1);
    expect_refused("dP wrong", rsa_spec("RSA", &r), "RSA: dP != d mod (p-1)", "dP != d mod (p-1)", false);
    rsa_free(&r);
    r = rsa_copy(&base);
    BN_add_word(r.dp[1], 1);
    expect_refused("dQ wrong", rsa_spec("RSA", &r), "RSA: dQ != d mod (q-1)", "dQ != d mod (q-1)", false);
    rsa_free(&r);
    r = rsa_copy(&base);
    BN_add_word(r.t[0], 1);
    expect_refused("qInv wrong", rsa_spec("RSA", &r), "RSA: qInv*q != 1 (mod p)", "qInv*q != 1 (mod p)", false);
    rsa_free(&r);
    /* qInv + p: the right residue, not the canonical value the CRT code expects. */
    r = rsa_copy(&base);
    BN_add(r.t[0], r.t[0], r.p[0]);
    expect_refused("qInv + p", rsa_spec("RSA", &r), "RSA: qInv*q != 1 (mod p)", "qInv*q != 1 (mod p)", false);
    rsa_free(&r);
}

/* Missing CRT values (n, e, d only): memguard's fast path needs them, so the key is refused. */
static void test_rsa_without_crt_values_is_refused(void)
{
    rsa_num r = rsa_copy(&base);
    r.no_crt = true;
    keyspec ks = rsa_spec("RSA", &r);
    char got[256];
    CHECK(mgp_validate_private(&vctx, "RSA", ks.params, got, sizeof got) == 0 && strstr(got, "memguard needs") != NULL,
          "n, e, d only: the validator says \"%s\"", got);
    bool applies;
    ERR_clear_error();
    EVP_PKEY *k = load_via(VIA_FROMDATA, &ks, &applies);
    char text[4096];
    take_errors(text, sizeof text);
    CHECK(k == NULL && strstr(text, "CRT") != NULL, "n, e, d only: loaded, or no reason: %s", text);
    EVP_PKEY_free(k);
    ks_free(&ks);

    /* Without d, the default provider's import keeps only n and e: a public key, which signs nothing. */
    r.no_crt = false;
    r.no_d = true;
    ks = rsa_spec("RSA", &r);
    k = load_via(VIA_FROMDATA, &ks, &applies);
    CHECK(k == NULL || !any_private_op(k, "RSA"), "no d: the key is usable");
    EVP_PKEY_free(k);
    ks_free(&ks);
    ERR_clear_error();
    rsa_free(&r);
}

static void test_rsa_three_primes_valid_accepted_bad_third_prime_refused(void)
{
    EVP_PKEY *k = gen_rsa("RSA", 2048, 3);
    CU_ASSERT_PTR_NOT_NULL_FATAL(k);
    rsa_num good = rsa_from_pkey(k);
    CU_ASSERT_EQUAL_FATAL(good.primes, 3);
    expect_accepted("3 primes", rsa_spec("RSA", &good), k);

    /* The third prime changed, n not: the product is wrong. */
    rsa_num r = rsa_copy(&good);
    BN_add_word(r.p[2], 2);
    expect_refused("3 primes, third changed", rsa_spec("RSA", &r), "RSA: n != the product of its 3 primes",
                   "product of its 3 primes", false);
    rsa_free(&r);

    /* A composite third "prime" with n, d and every CRT value consistent with it: only primality catches it. */
    BN_CTX *c = BN_CTX_new();
    BIGNUM *pm1 = BN_new(), *g = BN_new(), *e = BN_new();
    BN_set_word(e, 65537);
    r = rsa_copy(&good);
    for (;;) {
        BN_add_word(r.p[2], 2);
        BN_copy(pm1, r.p[2]);
        BN_sub_word(pm1, 1);
        BN_gcd(g, pm1, e, c);
        if (BN_check_prime(r.p[2], c, NULL) == 0 && BN_is_one(g))
            break;
    }
    rsa_derive(&r);
    expect_refused("3 primes, third composite", rsa_spec("RSA", &r), "RSA: prime factor 3", "is not prime", false);
    rsa_free(&r);

    r = rsa_copy(&good);
    BN_add_word(r.dp[2], 1);
    expect_refused("3 primes, third CRT exponent wrong", rsa_spec("RSA", &r), "RSA: CRT exponent 3",
                   "CRT exponent 3", false);
    rsa_free(&r);
    r = rsa_copy(&good);
    BN_add_word(r.t[1], 1);
    expect_refused("3 primes, second coefficient wrong", rsa_spec("RSA", &r), "RSA: CRT coefficient 2",
                   "CRT coefficient 2", false);
    rsa_free(&r);
    BN_free(pm1);
    BN_free(g);
    BN_free(e);
    BN_CTX_free(c);
    rsa_free(&good);
    EVP_PKEY_free(k);
}

/* A composite p in a 2-prime key, consistent otherwise: a signature would reveal q (gcd(s^e - m, n)). */
static void test_rsa_composite_prime_is_refused(void)
{
    BIGNUM *pq[2] = {BN_dup(base.p[0]), BN_dup(base.p[1])};
    BN_CTX *c = BN_CTX_new();
    BIGNUM *pm1 = BN_new(), *g = BN_new(), *e = BN_new();
    BN_set_word(e, 65537);
    for (;;) {
        BN_add_word(pq[0], 2);
        BN_copy(pm1, pq[0]);
        BN_sub_word(pm1, 1);
        BN_gcd(g, pm1, e, c);
        if (BN_check_prime(pq[0], c, NULL) == 0 && BN_is_one(g))
            break;
    }
    rsa_num r = rsa_from_primes(pq, 2, 65537);
    expect_refused("composite p", rsa_spec("RSA", &r), "RSA: prime factor 1", "is not prime", false);
    rsa_free(&r);
    BN_clear_free(pq[0]);
    BN_clear_free(pq[1]);
    BN_free(pm1);
    BN_free(g);
    BN_free(e);
    BN_CTX_free(c);
}

static void test_rsa_pss_bad_key_is_refused(void)
{
    rsa_num r = rsa_copy(&base);
    BN_add_word(r.n, 2);
    expect_refused("RSA-PSS, n off by two", rsa_spec("RSA-PSS", &r), "RSA: n != p*q", "n != p*q", false);
    rsa_free(&r);
}

/* ---- bad EC keys ---- */

static void point_bytes(int nid, const BIGNUM *k, unsigned char *out, size_t *len)
{
    EC_GROUP *g = EC_GROUP_new_by_curve_name_ex(plain, NULL, nid);
    EC_POINT *pt = EC_POINT_new(g);
    if (g == NULL || pt == NULL || EC_POINT_mul(g, pt, k, NULL, NULL, NULL) != 1 ||
        (*len = EC_POINT_point2oct(g, pt, POINT_CONVERSION_UNCOMPRESSED, out, 200, NULL)) == 0)
        abort();
    EC_POINT_free(pt);
    EC_GROUP_free(g);
}

static void test_ec_scalar_out_of_range_is_refused(void)
{
    const int nid = NID_X9_62_prime256v1;
    BIGNUM *s = BN_new();
    BN_zero(s);
    expect_refused("EC scalar 0", ec_spec(nid, s, NULL, 0), "EC: private scalar is 0", "scalar is 0", false);
    BN_copy(s, p256_order);
    expect_refused("EC scalar = order", ec_spec(nid, s, NULL, 0), "EC: private scalar >= group order",
                   ">= group order", false);
    /* order + 1 with the public point it really gives (G): only the range check catches it. */
    BN_add_word(s, 1);
    unsigned char g[200];
    size_t glen;
    point_bytes(nid, BN_value_one(), g, &glen);
    expect_refused("EC scalar = order + 1 (pub G)", ec_spec(nid, s, g, glen), "EC: private scalar >= group order",
                   ">= group order", false);
    BN_zero(s);
    BN_set_bit(s, 256);
    BN_sub_word(s, 1);
    expect_refused("EC scalar = 2^256 - 1", ec_spec(nid, s, NULL, 0), "EC: private scalar >= group order",
                   ">= group order", false);
    BN_free(s);
}

static void test_ec_wrong_public_point_is_refused(void)
{
    const int nid = NID_X9_62_prime256v1;
    BIGNUM *priv = NULL;
    CU_ASSERT_FATAL(EVP_PKEY_get_bn_param(p256, "priv", &priv) == 1);
    unsigned char pt[200];
    size_t len;
    BIGNUM *other = BN_dup(priv);
    BN_add_word(other, 1);
    point_bytes(nid, other, pt, &len); /* (k+1)*G: on the curve, not ours */
    expect_refused("EC pub != scalar*G", ec_spec(nid, priv, pt, len), "EC: public point != scalar*G",
                   "public point != scalar*G", false);
    /* Off the curve: OpenSSL's import refuses to decode it before memguard sees it. */
    point_bytes(nid, priv, pt, &len);
    pt[len - 1] ^= 1;
    expect_refused("EC pub off the curve", ec_spec(nid, priv, pt, len), "EC: the public point does not decode",
                   NULL, true);
    BN_clear_free(priv);
    BN_clear_free(other);
}

/* ---- bad Ed/X keys ---- */

static void test_ecx_wrong_lengths_are_refused(void)
{
    unsigned char key[64];
    memset(key, 0x5a, sizeof key);
    /* OpenSSL's import refuses these lengths before memguard: the validator says why on its own. */
    expect_refused("Ed25519 31 bytes", ecx_spec("ED25519", key, 31, NULL, 0), "ED25519: private key of 248 bits",
                   NULL, true);
    expect_refused("Ed25519 33 bytes", ecx_spec("ED25519", key, 33, NULL, 0), "ED25519: private key of 264 bits",
                   NULL, true);
    expect_refused("X448 55 bytes", ecx_spec("X448", key, 55, NULL, 0), "X448: private key of 440 bits", NULL, true);
    expect_refused("Ed448 56 bytes", ecx_spec("ED448", key, 56, NULL, 0), "ED448: private key of 448 bits", NULL,
                   true);
    EVP_PKEY *k = EVP_PKEY_Q_keygen(plain, NULL, "ED25519");
    unsigned char pub[32];
    size_t publen = sizeof pub;
    CU_ASSERT_FATAL(EVP_PKEY_get_raw_public_key(k, pub, &publen) == 1);
    expect_refused("Ed25519 public key of 31 bytes", ecx_spec("ED25519", key, 32, pub, 31),
                   "ED25519: public key of 248 bits", NULL, true);
    EVP_PKEY_free(k);
}

static void test_ecx_mismatched_public_key_is_refused(void)
{
    static const char *types[] = {"ED25519", "X25519", "ED448", "X448"};
    for (size_t i = 0; i < 4; i++) {
        EVP_PKEY *a = EVP_PKEY_Q_keygen(plain, NULL, types[i]), *b = EVP_PKEY_Q_keygen(plain, NULL, types[i]);
        unsigned char priv[64], pub[64];
        size_t privlen = sizeof priv, publen = sizeof pub;
        CU_ASSERT_FATAL(EVP_PKEY_get_raw_private_key(a, priv, &privlen) == 1 &&
                        EVP_PKEY_get_raw_public_key(b, pub, &publen) == 1);
        char label[64], direct[96];
        snprintf(label, sizeof label, "%s with another key's public key", types[i]);
        snprintf(direct, sizeof direct, "%s: public key != the one derived", types[i]);
        /* Only EVP_PKEY_fromdata carries the public key (memguard's DER parser derives its own). */
        keyspec ks = ecx_spec(types[i], priv, privlen, pub, publen);
        char got[256];
        CHECK(mgp_validate_private(&vctx, ks.type, ks.params, got, sizeof got) == 0 && strstr(got, direct) != NULL,
              "%s: the validator says \"%s\"", label, got);
        bool applies;
        ERR_clear_error();
        EVP_PKEY *k = load_via(VIA_FROMDATA, &ks, &applies);
        char text[4096];
        take_errors(text, sizeof text);
        CHECK(k == NULL && strstr(text, "public key != the one derived") != NULL && strstr(text, "memguard") != NULL,
              "%s: loaded, or without memguard's reason: %s", label, text);
        EVP_PKEY_free(k);
        ks_free(&ks);
        OPENSSL_cleanse(priv, sizeof priv);
        EVP_PKEY_free(a);
        EVP_PKEY_free(b);
    }
}

/* ---- no secret in any error ---- */

static bool contains_ci(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (; *hay != '\0'; hay++)
        if (strncasecmp(hay, needle, n) == 0)
            return true;
    return false;
}

static void test_no_error_text_holds_a_number_of_the_key(void)
{
    CU_ASSERT_FATAL(seen_len > 0); /* the refusals above ran and their texts were kept */
    const BIGNUM *secrets[] = {base.p[0], base.p[1], base.d, base.dp[0], base.dp[1], base.t[0]};
    for (size_t i = 0; i < sizeof secrets / sizeof secrets[0]; i++) {
        char *hex = BN_bn2hex(secrets[i]), *dec = BN_bn2dec(secrets[i]);
        CU_ASSERT_FATAL(hex != NULL && dec != NULL && strlen(hex) > 32);
        /* any 16-digit window of the number, in hex (either case) or decimal */
        for (size_t at = 0; at + 16 <= strlen(hex); at += 8) {
            char w[17];
            memcpy(w, hex + at, 16);
            w[16] = '\0';
            CHECK(!contains_ci(seen_errors, w), "component %zu appears (hex) in an error text", i);
        }
        for (size_t at = 0; at + 16 <= strlen(dec); at += 8) {
            char w[17];
            memcpy(w, dec + at, 16);
            w[16] = '\0';
            CHECK(strstr(seen_errors, w) == NULL, "component %zu appears (decimal) in an error text", i);
        }
        OPENSSL_clear_free(hex, strlen(hex));
        OPENSSL_clear_free(dec, strlen(dec));
    }
    /* Nor any other long number: sizes in bits are the only numbers a reason gives. */
    char line[4096];
    const char *at = seen_errors;
    while (*at != '\0') {
        size_t n = strcspn(at, "\n");
        size_t m = n < sizeof line - 1 ? n : sizeof line - 1;
        memcpy(line, at, m);
        line[m] = '\0';
        CHECK(!has_long_digit_run(line), "an error text holds a long number: %s", line);
        at += n + (at[n] == '\n');
    }
}

#ifndef MG_SANITIZED
/*
 * libcrypto's allocations go through a quarantine: a freed block is kept, untouched, for the next
 * QUARANTINE frees before it is really freed. Without it the allocator hands a block that was freed
 * uncleared straight to the next allocation of its size, which overwrites the copy before the scan
 * can see it (measured: a validator that freed its comparison buffer without clearing it passed).
 */
#include <malloc.h>
#define QUARANTINE 8192
static void *quarantined[QUARANTINE];
static size_t q_next;

static void *q_malloc(size_t n, const char *file, int line)
{
    (void)file;
    (void)line;
    return malloc(n);
}

static void q_free(void *p, const char *file, int line)
{
    (void)file;
    (void)line;
    if (p == NULL)
        return;
    free(quarantined[q_next]); /* the oldest: its contents were seen by any scan since it was freed */
    quarantined[q_next] = p;
    q_next = (q_next + 1) % QUARANTINE;
}

static void *q_realloc(void *p, size_t n, const char *file, int line)
{
    void *r = malloc(n > 0 ? n : 1);
    if (r != NULL && p != NULL) {
        size_t old = malloc_usable_size(p);
        memcpy(r, p, old < n ? old : n);
        q_free(p, file, line);
    }
    return r;
}

/* After the validator returns, no copy of a private value is left in memory. */
static void test_validation_leaves_no_private_value_in_memory(void)
{
    EVP_PKEY *rsa = gen_rsa("RSA", 2048, 2), *ec = EVP_PKEY_Q_keygen(plain, NULL, "EC", "P-256"),
             *x = EVP_PKEY_Q_keygen(plain, NULL, "X25519");
    CU_ASSERT_FATAL(rsa != NULL && ec != NULL && x != NULL);
    static const char *rsa_names[] = {"d", "rsa-factor1", "rsa-factor2", "rsa-exponent1", "rsa-exponent2",
                                      "rsa-coefficient1"};
    memscan_needle nd[16];
    size_t nn = 0;
    unsigned char buf[600];
    /* Needles: a 24-byte window from the middle of each value, in both byte orders (masked). */
    for (size_t i = 0; i < 6; i++) {
        BIGNUM *v = NULL;
        CU_ASSERT_FATAL(EVP_PKEY_get_bn_param(rsa, rsa_names[i], &v) == 1);
        int n = BN_bn2bin(v, buf);
        BN_clear_free(v);
        CU_ASSERT_FATAL(memscan_needle_init(&nd[nn++], rsa_names[i], buf + n / 2 - 12, 24, false) &&
                        memscan_needle_init(&nd[nn++], rsa_names[i], buf + n / 2 - 12, 24, true));
    }
    BIGNUM *v = NULL;
    CU_ASSERT_FATAL(EVP_PKEY_get_bn_param(ec, "priv", &v) == 1);
    BN_bn2binpad(v, buf, 32);
    BN_clear_free(v);
    CU_ASSERT_FATAL(memscan_needle_init(&nd[nn++], "EC scalar", buf + 4, 24, false) &&
                    memscan_needle_init(&nd[nn++], "EC scalar", buf + 4, 24, true));
    size_t len = 32;
    CU_ASSERT_FATAL(EVP_PKEY_get_raw_private_key(x, buf, &len) == 1);
    CU_ASSERT_FATAL(memscan_needle_init(&nd[nn++], "X25519 key", buf + 4, 24, false));
    mg_wipe(buf, sizeof buf);

    /* The parameters in guarded memory (as key.c's export callback has them: the exporter's array). */
    OSSL_PARAM *params[3] = {NULL, NULL, NULL};
    CU_ASSERT_FATAL(EVP_PKEY_todata(rsa, EVP_PKEY_KEYPAIR, &params[0]) == 1 &&
                    EVP_PKEY_todata(ec, EVP_PKEY_KEYPAIR, &params[1]) == 1 &&
                    EVP_PKEY_todata(x, EVP_PKEY_KEYPAIR, &params[2]) == 1);
    mg_buffer *g = mg_buffer_new(8192);
    CU_ASSERT_PTR_NOT_NULL_FATAL(g);
    unsigned char *at = mg_buffer_data(g);
    OSSL_PARAM copies[3][24];
    for (int k = 0; k < 3; k++) {
        size_t i = 0;
        for (const OSSL_PARAM *p = params[k]; p->key != NULL && i < 23; p++, i++) {
            copies[k][i] = *p;
            if (p->data != NULL) {
                size_t n = p->data_size + (p->data_type == OSSL_PARAM_UTF8_STRING); /* and its NUL */
                memcpy(at, p->data, n);
                OPENSSL_cleanse(p->data, p->data_size); /* OSSL_PARAM_free does not clear everything in 3.0 */
                copies[k][i].data = at;
                at += n;
            }
        }
        copies[k][i] = OSSL_PARAM_construct_end();
    }
    EVP_PKEY_free(rsa); /* OpenSSL clears the keys' private parts */
    EVP_PKEY_free(ec);
    EVP_PKEY_free(x);
    /* Every copy counts, in guarded memory too (OpenSSL's secure heap is locked and not dumped, as
     * memguard's buffers are): after validation there must be exactly the copies there were before. */
    size_t before[16], elsewhere = 0;
    CU_ASSERT_FATAL(memscan_run(nd, nn));
    for (size_t i = 0; i < nn; i++) {
        before[i] = nd[i].guarded + nd[i].elsewhere;
        elsewhere += nd[i].elsewhere;
    }
    CHECK(elsewhere == 0, "%zu copies outside guarded memory before validation", elsewhere);
    CHECK(memscan_total(nd, 0, nn, true) > 0, "the scan does not even find the guarded copy (positive control)");
    /* One scan after each validation: a copy left by one is not overwritten by the next. */
    char why[256];
    static const char *types[] = {"RSA", "EC", "X25519"};
    for (int k = 0; k < 3; k++) {
        CHECK(mgp_validate_private(&vctx, types[k], copies[k], why, sizeof why) == 1, "%s refused: %s", types[k],
              why);
        CU_ASSERT_FATAL(memscan_run(nd, nn));
        for (size_t i = 0; i < nn; i++)
            CHECK(nd[i].guarded + nd[i].elsewhere == before[i],
                  "after %s: %s: %zu copies before validation, %zu after (%zu outside guarded memory)", types[k],
                  nd[i].name, before[i], nd[i].guarded + nd[i].elsewhere, nd[i].elsewhere);
    }
    for (int k = 0; k < 3; k++)
        OSSL_PARAM_free(params[k]);
    mg_buffer_destroy(g);
}
#endif

/* ---- cost (not a test) ---- */

static double now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void cost_of(const char *label, EVP_PKEY *k, const char *type, int runs)
{
    OSSL_PARAM *params = NULL;
    if (EVP_PKEY_todata(k, EVP_PKEY_KEYPAIR, &params) != 1)
        abort();
    double t[256], tp[256], tf[256];
    char why[256];
    for (int i = 0; i < runs; i++) {
        double a = now_us();
        if (mgp_validate_private(&vctx, type, params, why, sizeof why) != 1)
            abort();
        t[i] = now_us() - a;
        tp[i] = tf[i] = 0;
        if (strcmp(type, "RSA") == 0) { /* the primality part alone */
            BN_CTX *c = BN_CTX_secure_new_ex(plain);
            BIGNUM *p = NULL, *q = NULL;
            EVP_PKEY_get_bn_param(k, "rsa-factor1", &p);
            EVP_PKEY_get_bn_param(k, "rsa-factor2", &q);
            BN_set_flags(p, BN_FLG_CONSTTIME);
            BN_set_flags(q, BN_FLG_CONSTTIME);
            a = now_us();
            if (BN_check_prime(p, c, NULL) != 1 || BN_check_prime(q, c, NULL) != 1)
                abort();
            tp[i] = now_us() - a;
            /* what validate.c does instead: one Fermat test per prime */
            BIGNUM *two = BN_new(), *y = BN_new(), *pm1 = BN_dup(p), *qm1 = BN_dup(q);
            BN_set_word(two, 2);
            BN_sub_word(pm1, 1);
            BN_sub_word(qm1, 1);
            BN_set_flags(pm1, BN_FLG_CONSTTIME);
            BN_set_flags(qm1, BN_FLG_CONSTTIME);
            a = now_us();
            if (BN_mod_exp_mont_consttime(y, two, pm1, p, c, NULL) != 1 || !BN_is_one(y) ||
                BN_mod_exp_mont_consttime(y, two, qm1, q, c, NULL) != 1 || !BN_is_one(y))
                abort();
            tf[i] = now_us() - a;
            BN_free(two);
            BN_free(y);
            BN_clear_free(pm1);
            BN_clear_free(qm1);
            BN_clear_free(p);
            BN_clear_free(q);
            BN_CTX_free(c);
        }
    }
    qsort(t, (size_t)runs, sizeof t[0], cmp_double);
    qsort(tp, (size_t)runs, sizeof tp[0], cmp_double);
    qsort(tf, (size_t)runs, sizeof tf[0], cmp_double);
    printf("%-10s validation median %9.1f us (min %9.1f, max %9.1f, %d runs)", label, t[runs / 2], t[0],
           t[runs - 1], runs);
    if (tp[runs / 2] > 0)
        printf("; the primes: Fermat base 2 (what it does) %.1f us, BN_check_prime (not done) %.1f us", tf[runs / 2],
               tp[runs / 2]);
    printf("\n");
    OSSL_PARAM_free(params);
}

static int cost(void)
{
    if (init_suite() != 0)
        return 1;
    EVP_PKEY *r4096 = gen_rsa("RSA", 4096, 2);
    cost_of("RSA-2048", rsa2048, "RSA", 51);
    cost_of("RSA-4096", r4096, "RSA", 21);
    cost_of("P-256", p256, "EC", 201);
    EVP_PKEY *ed = EVP_PKEY_Q_keygen(plain, NULL, "ED25519");
    cost_of("Ed25519", ed, "ED25519", 201);
    EVP_PKEY_free(ed);
    EVP_PKEY_free(r4096);
    clean_suite();
    return 0;
}

static CU_TestInfo tests[] = {
    {"valid RSA keys of every size are accepted and sign as OpenSSL",
     test_valid_rsa_keys_of_every_size_are_accepted_and_sign_as_openssl},
    {"valid EC keys on every curve are accepted and work as OpenSSL",
     test_valid_ec_keys_on_every_curve_are_accepted_and_work_as_openssl},
    {"valid Ed/X keys are accepted and work as OpenSSL", test_valid_ed_and_x_keys_are_accepted_and_work_as_openssl},
    {"RSA modulus out of bounds is refused", test_rsa_modulus_out_of_bounds_is_refused},
    {"RSA huge modulus is refused before any arithmetic", test_rsa_huge_modulus_is_refused_before_any_arithmetic},
    {"RSA bad public exponent is refused", test_rsa_bad_public_exponent_is_refused},
    {"RSA bad private exponent is refused", test_rsa_bad_private_exponent_is_refused},
    {"RSA inconsistent factors are refused", test_rsa_inconsistent_factors_are_refused},
    {"RSA inconsistent CRT values are refused", test_rsa_inconsistent_crt_values_are_refused},
    {"RSA without CRT values is refused", test_rsa_without_crt_values_is_refused},
    {"RSA 3 primes: valid accepted, bad third prime refused",
     test_rsa_three_primes_valid_accepted_bad_third_prime_refused},
    {"RSA composite prime is refused", test_rsa_composite_prime_is_refused},
    {"RSA-PSS bad key is refused", test_rsa_pss_bad_key_is_refused},
    {"EC scalar out of range is refused", test_ec_scalar_out_of_range_is_refused},
    {"EC wrong public point is refused", test_ec_wrong_public_point_is_refused},
    {"Ed/X wrong lengths are refused", test_ecx_wrong_lengths_are_refused},
    {"Ed/X mismatched public key is refused", test_ecx_mismatched_public_key_is_refused},
    {"no error text holds a number of the key", test_no_error_text_holds_a_number_of_the_key},
#ifndef MG_SANITIZED
    {"validation leaves no private value in memory", test_validation_leaves_no_private_value_in_memory},
#endif
    CU_TEST_INFO_NULL,
};

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--cost") == 0)
        return cost();
#ifndef MG_SANITIZED
    if (CRYPTO_set_mem_functions(q_malloc, q_realloc, q_free) != 1) { /* before libcrypto's first allocation */
        fprintf(stderr, "cannot install the allocation quarantine\n");
        return 2;
    }
#endif
    if (getenv("OPENSSL_CONF") == NULL) {
        fprintf(stderr, "set OPENSSL_CONF to a configuration that loads memguard\n");
        return 2;
    }
    CU_SuiteInfo suites[] = {
        {"validate", init_suite, clean_suite, NULL, NULL, tests},
        CU_SUITE_INFO_NULL,
    };
    return mgt_main(suites);
}
