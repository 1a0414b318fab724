/*
 * Private-key DER, parsed by memguard itself. OpenSSL 3.0's own path
 * (d2i_PKCS8_PRIV_KEY_INFO + EVP_PKCS82PKEY, or d2i_PrivateKey) re-encodes
 * the key and runs the default provider's decoders, which read the DER into
 * heap buffers they free without clearing: a scan of nginx's master found the
 * PKCS#8 DER and the EC scalar there after loading (docs/tls.md). Here the
 * DER is walked in place (it is in guarded memory), every private number is
 * copied into a guarded staging buffer in the byte order OSSL_PARAM wants, and
 * the key is built with EVP_PKEY_fromdata, whose objects OpenSSL clears when
 * they are freed. mgp_der_classify says, without reading any private
 * number, what a DER private key is and whether memguard can seal that form
 * (load.c decides from it: seal, refuse, or leave to the default provider).
 */
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/objects.h>
#include <openssl/params.h>
#include <openssl/x509.h>

#include "load.h"
#include "provider.h"

/* A span of DER: [p, end). */
typedef struct {
    const unsigned char *p, *end;
} span;

/* Read one element with tag `tag` (definite length), its contents into *val; advance d. */
static bool take(span *d, unsigned char tag, span *val)
{
    if (d->end - d->p < 2 || d->p[0] != tag)
        return false;
    const unsigned char *q = d->p + 1;
    size_t len = *q++;
    if (len & 0x80) {
        size_t n = len & 0x7f;
        if (n == 0 || n > 3 || (size_t)(d->end - q) < n)
            return false;
        len = 0;
        for (size_t i = 0; i < n; i++)
            len = len << 8 | *q++;
    }
    if ((size_t)(d->end - q) < len)
        return false;
    val->p = q;
    val->end = q + len;
    d->p = q + len;
    return true;
}

static bool peek(const span *d, unsigned char tag)
{
    return d->p < d->end && d->p[0] == tag;
}

static size_t span_len(const span *s)
{
    return (size_t)(s->end - s->p);
}

/* A non-negative INTEGER, leading zero bytes dropped (it stays non-empty). */
static bool take_uint(span *d, span *v)
{
    if (!take(d, 0x02, v) || v->p == v->end || (v->p[0] & 0x80) != 0)
        return false;
    while (span_len(v) > 1 && v->p[0] == 0)
        v->p++;
    return true;
}

static bool take_small(span *d, unsigned long *out)
{
    span v;
    if (!take_uint(d, &v) || span_len(&v) > 4)
        return false;
    *out = 0;
    for (const unsigned char *q = v.p; q < v.end; q++)
        *out = *out << 8 | *q;
    return true;
}

/* ---- parameters staged in guarded memory ---- */

#define MAX_PARAMS 40

typedef struct {
    unsigned char *at, *end; /* free room in the guarded staging buffer */
    OSSL_PARAM params[MAX_PARAMS + 1];
    size_t n;
} stage;

static bool add(stage *s, OSSL_PARAM p)
{
    if (s->n >= MAX_PARAMS)
        return false;
    s->params[s->n++] = p;
    s->params[s->n] = OSSL_PARAM_construct_end();
    return true;
}

/* A big-endian DER integer as an OSSL_PARAM unsigned integer (native byte order), staged. */
static bool add_bn(stage *s, const char *name, const span *v)
{
    size_t n = span_len(v);
    if ((size_t)(s->end - s->at) < n)
        return false;
    unsigned char *dst = s->at;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    for (size_t i = 0; i < n; i++)
        dst[i] = v->p[n - 1 - i];
#else
    memcpy(dst, v->p, n);
#endif
    s->at += n;
    return add(s, OSSL_PARAM_construct_BN(name, dst, n));
}

static bool add_octets(stage *s, const char *name, const unsigned char *p, size_t n)
{
    if ((size_t)(s->end - s->at) < n)
        return false;
    memcpy(s->at, p, n);
    OSSL_PARAM prm = OSSL_PARAM_construct_octet_string(name, s->at, n);
    s->at += n;
    return add(s, prm);
}

/* ---- RSA ---- */

static const char *const rsa_factor[] = {
    OSSL_PKEY_PARAM_RSA_FACTOR1, OSSL_PKEY_PARAM_RSA_FACTOR2, OSSL_PKEY_PARAM_RSA_FACTOR3,
    OSSL_PKEY_PARAM_RSA_FACTOR4, OSSL_PKEY_PARAM_RSA_FACTOR5, OSSL_PKEY_PARAM_RSA_FACTOR6,
    OSSL_PKEY_PARAM_RSA_FACTOR7, OSSL_PKEY_PARAM_RSA_FACTOR8, OSSL_PKEY_PARAM_RSA_FACTOR9,
    OSSL_PKEY_PARAM_RSA_FACTOR10,
};
static const char *const rsa_exponent[] = {
    OSSL_PKEY_PARAM_RSA_EXPONENT1, OSSL_PKEY_PARAM_RSA_EXPONENT2, OSSL_PKEY_PARAM_RSA_EXPONENT3,
    OSSL_PKEY_PARAM_RSA_EXPONENT4, OSSL_PKEY_PARAM_RSA_EXPONENT5, OSSL_PKEY_PARAM_RSA_EXPONENT6,
    OSSL_PKEY_PARAM_RSA_EXPONENT7, OSSL_PKEY_PARAM_RSA_EXPONENT8, OSSL_PKEY_PARAM_RSA_EXPONENT9,
    OSSL_PKEY_PARAM_RSA_EXPONENT10,
};
static const char *const rsa_coefficient[] = {
    OSSL_PKEY_PARAM_RSA_COEFFICIENT1, OSSL_PKEY_PARAM_RSA_COEFFICIENT2, OSSL_PKEY_PARAM_RSA_COEFFICIENT3,
    OSSL_PKEY_PARAM_RSA_COEFFICIENT4, OSSL_PKEY_PARAM_RSA_COEFFICIENT5, OSSL_PKEY_PARAM_RSA_COEFFICIENT6,
    OSSL_PKEY_PARAM_RSA_COEFFICIENT7, OSSL_PKEY_PARAM_RSA_COEFFICIENT8, OSSL_PKEY_PARAM_RSA_COEFFICIENT9,
};

/* RSAPrivateKey (RFC 8017 A.1.2), including other-prime infos. n and e are returned for RSA-PSS. */
static bool parse_rsa(span body, stage *s, span *n_out, span *e_out)
{
    span seq, v;
    unsigned long version;
    if (!take(&body, 0x30, &seq) || body.p != body.end || !take_small(&seq, &version) || version > 1)
        return false;
    static const char *const first[] = {OSSL_PKEY_PARAM_RSA_N, OSSL_PKEY_PARAM_RSA_E, OSSL_PKEY_PARAM_RSA_D,
                                        OSSL_PKEY_PARAM_RSA_FACTOR1, OSSL_PKEY_PARAM_RSA_FACTOR2,
                                        OSSL_PKEY_PARAM_RSA_EXPONENT1, OSSL_PKEY_PARAM_RSA_EXPONENT2,
                                        OSSL_PKEY_PARAM_RSA_COEFFICIENT1};
    for (size_t i = 0; i < sizeof first / sizeof first[0]; i++) {
        if (!take_uint(&seq, &v) || !add_bn(s, first[i], &v))
            return false;
        if (i == 0)
            *n_out = v;
        else if (i == 1)
            *e_out = v;
    }
    if (version == 1) { /* OtherPrimeInfos: prime r_i, exponent d_i, coefficient t_i */
        span others, info;
        if (!take(&seq, 0x30, &others))
            return false;
        for (size_t i = 2; others.p != others.end; i++) {
            if (i >= sizeof rsa_factor / sizeof rsa_factor[0] || !take(&others, 0x30, &info))
                return false;
            if (!take_uint(&info, &v) || !add_bn(s, rsa_factor[i], &v) || !take_uint(&info, &v) ||
                !add_bn(s, rsa_exponent[i], &v) || !take_uint(&info, &v) || !add_bn(s, rsa_coefficient[i - 1], &v))
                return false;
        }
    }
    return seq.p == seq.end;
}

/* ---- EC ---- */

/* The curve named by a DER OBJECT IDENTIFIER element (tag included). NID_undef if unknown. */
static int curve_nid(const span *oid_tlv)
{
    const unsigned char *p = oid_tlv->p;
    ASN1_OBJECT *o = d2i_ASN1_OBJECT(NULL, &p, (long)span_len(oid_tlv));
    int nid = o != NULL ? OBJ_obj2nid(o) : NID_undef;
    ASN1_OBJECT_free(o);
    return nid;
}

/* The public point k*G, uncompressed, staged (public data, but derived here from the scalar). */
static bool add_ec_public(mgp_ctx *prov, stage *s, int nid, const span *scalar)
{
    EC_GROUP *g = EC_GROUP_new_by_curve_name_ex(prov->libctx, NULL, nid);
    EC_POINT *pt = g != NULL ? EC_POINT_new(g) : NULL;
    BIGNUM *k = BN_secure_new();
    BN_CTX *bn = BN_CTX_secure_new_ex(prov->libctx);
    bool ok = false;
    if (pt == NULL || k == NULL || bn == NULL || BN_bin2bn(scalar->p, (int)span_len(scalar), k) == NULL)
        goto out;
    BN_set_flags(k, BN_FLG_CONSTTIME);
    if (EC_POINT_mul(g, pt, k, NULL, NULL, bn) != 1)
        goto out;
    size_t n = EC_POINT_point2oct(g, pt, POINT_CONVERSION_UNCOMPRESSED, s->at, (size_t)(s->end - s->at), bn);
    if (n == 0)
        goto out;
    OSSL_PARAM prm = OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, s->at, n);
    s->at += n;
    ok = add(s, prm);
out:
    BN_clear_free(k);
    BN_CTX_free(bn);
    EC_POINT_free(pt);
    EC_GROUP_free(g);
    return ok;
}

/* ECPrivateKey (RFC 5915); the curve from its [0] or from PKCS#8's algorithm parameters. */
static bool parse_ec(mgp_ctx *prov, span body, const span *alg_curve, stage *s, char *group, size_t groupsize)
{
    span seq, priv, tagged, curve = {NULL, NULL}, pub = {NULL, NULL};
    unsigned long version;
    if (!take(&body, 0x30, &seq) || body.p != body.end || !take_small(&seq, &version) || version != 1 ||
        !take(&seq, 0x04, &priv) || span_len(&priv) == 0)
        return false;
    if (peek(&seq, 0xa0)) {
        if (!take(&seq, 0xa0, &tagged) || !peek(&tagged, 0x06))
            return false; /* explicit curve parameters: left to the default provider */
        curve.p = tagged.p;
        curve.end = tagged.end;
    }
    if (peek(&seq, 0xa1)) {
        span bits;
        if (!take(&seq, 0xa1, &tagged) || !take(&tagged, 0x03, &bits) || span_len(&bits) < 2 || bits.p[0] != 0)
            return false;
        pub.p = bits.p + 1;
        pub.end = bits.end;
    }
    if (seq.p != seq.end)
        return false;
    if (curve.p == NULL) {
        if (alg_curve == NULL || alg_curve->p == NULL)
            return false;
        curve = *alg_curve;
    }
    int nid = curve_nid(&curve);
    const char *name = nid != NID_undef ? OBJ_nid2sn(nid) : NULL;
    if (name == NULL || strlen(name) >= groupsize)
        return false;
    strcpy(group, name);
    if (!add(s, OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, group, 0)) ||
        !add_bn(s, OSSL_PKEY_PARAM_PRIV_KEY, &priv))
        return false;
    return pub.p != NULL ? add_octets(s, OSSL_PKEY_PARAM_PUB_KEY, pub.p, span_len(&pub))
                         : add_ec_public(prov, s, nid, &priv);
}

/* ---- PKCS#8 ---- */

static const struct {
    const char *type;
    unsigned char oid[11];
    size_t len;
    size_t raw; /* ECX: raw private key length */
} algs[] = {
    {"RSA", {0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01}, 9, 0},
    {"RSA-PSS", {0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a}, 9, 0},
    {"EC", {0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01}, 7, 0},
    {"X25519", {0x2b, 0x65, 0x6e}, 3, 32},
    {"X448", {0x2b, 0x65, 0x6f}, 3, 56},
    {"ED25519", {0x2b, 0x65, 0x70}, 3, 32},
    {"ED448", {0x2b, 0x65, 0x71}, 3, 57},
};

/* DER header size and writer for a definite length (minimal encoding). */
static size_t hdr_len(size_t len)
{
    return len < 0x80 ? 2 : len < 0x100 ? 3 : 4;
}

static unsigned char *put_hdr(unsigned char *w, unsigned char tag, size_t len)
{
    *w++ = tag;
    if (len >= 0x100) {
        *w++ = 0x82;
        *w++ = (unsigned char)(len >> 8);
    } else if (len >= 0x80) {
        *w++ = 0x81;
    }
    *w++ = (unsigned char)len;
    return w;
}

/* An unsigned INTEGER element (a zero byte in front if the top bit is set). */
static unsigned char *put_uint(unsigned char *w, const span *v)
{
    bool pad = (v->p[0] & 0x80) != 0;
    w = put_hdr(w, 0x02, span_len(v) + pad);
    if (pad)
        *w++ = 0;
    memcpy(w, v->p, span_len(v));
    return w + span_len(v);
}

static size_t uint_len(const span *v)
{
    size_t n = span_len(v) + ((v->p[0] & 0x80) != 0);
    return hdr_len(n) + n;
}

/* For RSA-PSS with parameters: let OpenSSL parse the (public) restrictions from a SubjectPublicKeyInfo. */
static EVP_PKEY *pss_restrictions(mgp_ctx *prov, const span *alg_tlv, const span *n, const span *e)
{
    /* SEQUENCE { AlgorithmIdentifier, BIT STRING { 00, SEQUENCE { INTEGER n, INTEGER e } } } */
    size_t rsapub = uint_len(n) + uint_len(e);
    size_t bits = 1 + hdr_len(rsapub) + rsapub;
    size_t total = span_len(alg_tlv) + hdr_len(bits) + bits;
    if (total > 0xffff)
        return NULL;
    unsigned char *der = OPENSSL_malloc(hdr_len(total) + total), *w = der;
    if (der == NULL)
        return NULL;
    w = put_hdr(w, 0x30, total);
    memcpy(w, alg_tlv->p, span_len(alg_tlv));
    w += span_len(alg_tlv);
    w = put_hdr(w, 0x03, bits);
    *w++ = 0;
    w = put_hdr(w, 0x30, rsapub);
    w = put_uint(w, n);
    w = put_uint(w, e);
    const unsigned char *p = der;
    EVP_PKEY *pub = d2i_PUBKEY_ex(NULL, &p, (long)(w - der), prov->libctx, "provider=default");
    OPENSSL_free(der); /* public data only */
    return pub;
}

const char *mgp_der_pkcs8_type(const unsigned char *der, size_t len)
{
    span in = {der, der + len}, seq, alg, oid;
    unsigned long version;
    if (!take(&in, 0x30, &seq) || !take_small(&seq, &version) || !take(&seq, 0x30, &alg) || !take(&alg, 0x06, &oid))
        return NULL;
    for (size_t i = 0; i < sizeof algs / sizeof algs[0]; i++)
        if (span_len(&oid) == algs[i].len && memcmp(oid.p, algs[i].oid, algs[i].len) == 0)
            return algs[i].type;
    return NULL;
}

bool mgp_der_is_type_specific(const char *type, const unsigned char *der, size_t len)
{
    span in = {der, der + len}, seq, v;
    if (!take(&in, 0x30, &seq) || !take(&seq, 0x02, &v))
        return false;
    return peek(&seq, strcmp(type, "EC") == 0 ? 0x04 : 0x02); /* ECPrivateKey: OCTET STRING; RSA: INTEGER n */
}

EVP_PKEY *mgp_der_to_pkey(mgp_ctx *prov, const char *type, bool type_specific, const unsigned char *der, size_t len)
{
    int mg_err;
    return mgp_der_parse(prov, type, type_specific, der, len, &mg_err);
}

EVP_PKEY *mgp_der_parse(mgp_ctx *prov, const char *type, bool type_specific, const unsigned char *der, size_t len,
                        int *mg_err)
{
    *mg_err = 0;
    span in = {der, der + len}, body = in, alg_params = {NULL, NULL}, alg_tlv = {NULL, NULL};
    size_t raw = 0;
    if (!type_specific) {
        span seq, alg, oid, key;
        unsigned long version;
        if (!take(&in, 0x30, &seq) || in.p != in.end || !take_small(&seq, &version) || version > 1)
            return NULL;
        alg_tlv.p = seq.p;
        if (!take(&seq, 0x30, &alg) || !take(&alg, 0x06, &oid))
            return NULL;
        alg_tlv.end = seq.p;
        alg_params = alg; /* what follows the OID: curve OID, PSS parameters, or nothing/NULL */
        size_t i = 0;
        while (i < sizeof algs / sizeof algs[0] &&
               !(strcmp(algs[i].type, type) == 0 && span_len(&oid) == algs[i].len &&
                 memcmp(oid.p, algs[i].oid, algs[i].len) == 0))
            i++;
        if (i == sizeof algs / sizeof algs[0] || !take(&seq, 0x04, &key))
            return NULL; /* another type: another decoder's */
        raw = algs[i].raw;
        body = key;
        /* [0] attributes and [1] public key (version 1) may follow; neither is needed. */
    }
    mg_buffer *buf = mg_buffer_new(2 * len + 512);
    if (buf == NULL) {
        *mg_err = mg_last_error(); /* the caller names the limit (load.c) */
        return NULL;
    }
    stage s = {mg_buffer_data(buf), (unsigned char *)mg_buffer_data(buf) + mg_buffer_size(buf), {{0}}, 0};
    s.params[0] = OSSL_PARAM_construct_end();
    char group[64];
    span n = {NULL, NULL}, e = {NULL, NULL};
    EVP_PKEY *pss = NULL, *full = NULL;
    OSSL_PARAM *pss_params = NULL;
    bool ok;
    if (strcmp(type, "RSA") == 0 || strcmp(type, "RSA-PSS") == 0) {
        ok = parse_rsa(body, &s, &n, &e);
        if (ok && strcmp(type, "RSA-PSS") == 0 && alg_params.p != alg_params.end && !peek(&alg_params, 0x05)) {
            /* restricted RSA-PSS: the digest, MGF1 digest and salt length come from the parameters */
            ok = (pss = pss_restrictions(prov, &alg_tlv, &n, &e)) != NULL &&
                 EVP_PKEY_todata(pss, EVP_PKEY_PUBLIC_KEY, &pss_params) == 1;
            for (OSSL_PARAM *p = pss_params; ok && p->key != NULL; p++)
                if (strcmp(p->key, OSSL_PKEY_PARAM_RSA_N) != 0 && strcmp(p->key, OSSL_PKEY_PARAM_RSA_E) != 0)
                    ok = add(&s, *p);
        }
    } else if (strcmp(type, "EC") == 0) {
        span curve = alg_params;
        ok = parse_ec(prov, body, type_specific ? NULL : &curve, &s, group, sizeof group);
    } else {
        span inner;
        ok = raw != 0 && take(&body, 0x04, &inner) && body.p == body.end && span_len(&inner) == raw &&
             add_octets(&s, OSSL_PKEY_PARAM_PRIV_KEY, inner.p, raw);
    }
    if (ok) {
        EVP_PKEY_CTX *pctx = EVP_PKEY_CTX_new_from_name(prov->libctx, type, "provider=default");
        if (pctx == NULL || EVP_PKEY_fromdata_init(pctx) != 1 ||
            EVP_PKEY_fromdata(pctx, &full, EVP_PKEY_KEYPAIR, s.params) != 1)
            full = NULL;
        EVP_PKEY_CTX_free(pctx);
    }
    OSSL_PARAM_free(pss_params); /* public values */
    EVP_PKEY_free(pss);
    mg_buffer_destroy(buf); /* wipes the staged private numbers */
    return full;
}

/* ---- classification (load.c) ---- */

/* Algorithm OIDs of private keys memguard cannot seal, so that it can refuse them by name. */
static const struct {
    const char *type;
    unsigned char oid[9];
    size_t len;
} unsealable[] = {
    {"DSA", {0x2a, 0x86, 0x48, 0xce, 0x38, 0x04, 0x01}, 7}, /* id-dsa */
    {"DSA", {0x2a, 0x86, 0x48, 0xce, 0x38, 0x04, 0x03}, 7}, /* dsaWithSHA1: libcrypto's legacy code reads it as DSA */
    {"DSA", {0x2b, 0x0e, 0x03, 0x02, 0x0c}, 5},             /* dsa (OIW), likewise */
    {"DSA", {0x2b, 0x0e, 0x03, 0x02, 0x0d}, 5},             /* dsaWithSHA (OIW) */
    {"DSA", {0x2b, 0x0e, 0x03, 0x02, 0x1b}, 5},             /* dsaWithSHA1 (OIW) */
    {"DH", {0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x03, 0x01}, 9}, /* dhKeyAgreement */
    {"DHX", {0x2a, 0x86, 0x48, 0xce, 0x3e, 0x02, 0x01}, 7},            /* dhpublicnumber */
    {"SM2", {0x2a, 0x81, 0x1c, 0xcf, 0x55, 0x01, 0x82, 0x2d}, 8},      /* 1.2.156.10197.1.301 */
};

static bool count_uints(span seq, size_t want)
{
    span v;
    for (size_t i = 0; i < want; i++)
        if (!take(&seq, 0x02, &v))
            return false;
    return seq.p == seq.end;
}

/* An EC key's curve from a parameters element (OID, explicit SEQUENCE, or nothing). */
static void ec_curve(const span *params, mgp_der_class *out)
{
    if (params->p == NULL || params->p == params->end || peek(params, 0x05)) {
        out->unsealed = "no named curve"; /* implicitlyCA or absent: nothing memguard can build */
        return;
    }
    if (!peek(params, 0x06)) {
        out->unsealed = "explicit curve parameters";
        return;
    }
    span tlv = *params, oid;
    if (!take(&tlv, 0x06, &oid)) {
        out->type = NULL;
        return;
    }
    span whole = {params->p, oid.end};
    int nid = curve_nid(&whole);
    if (nid == NID_sm2) {
        out->type = "SM2";
        out->unsealed = "a key on the SM2 curve";
    } else if (nid == NID_undef || OBJ_nid2sn(nid) == NULL) {
        out->unsealed = "an unknown named curve";
    }
}

/* ECPrivateKey: its own [0] parameters win over PKCS#8's. */
static void classify_ec(span body, const span *alg_params, mgp_der_class *out)
{
    span seq, v, tagged = {NULL, NULL};
    out->type = "EC";
    if (!take(&body, 0x30, &seq) || !take(&seq, 0x02, &v) || !take(&seq, 0x04, &v)) {
        out->type = alg_params != NULL ? "EC" : NULL; /* PKCS#8 said EC: a malformed EC key, still ours */
        out->malformed = true;
        return;
    }
    if (peek(&seq, 0xa0) && !take(&seq, 0xa0, &tagged)) {
        out->malformed = true;
        return;
    }
    if (tagged.p != NULL)
        ec_curve(&tagged, out);
    else if (alg_params != NULL)
        ec_curve(alg_params, out);
    else
        out->unsealed = "no named curve";
}

bool mgp_der_classify(const unsigned char *der, size_t len, const char *ts_type, mgp_der_class *out)
{
    span in = {der, der + len}, seq, v;
    out->type = NULL;
    out->unsealed = NULL;
    out->malformed = false;
    if (ts_type != NULL) {
        /* Traditional forms are told apart by shape: RSA 9 INTEGERs, DSA 6, EC version 1 + OCTET STRING. */
        if (!take(&in, 0x30, &seq) || in.p != in.end)
            return false;
        span probe = seq;
        if (strcmp(ts_type, "EC") == 0) {
            if (!take(&probe, 0x02, &v) || !peek(&probe, 0x04))
                return false;
            classify_ec((span){der, der + len}, NULL, out);
        } else if (strcmp(ts_type, "DSA") == 0) {
            if (!count_uints(probe, 6))
                return false;
            out->type = "DSA";
            out->unsealed = "a DSA key";
        } else if (strcmp(ts_type, "RSA") == 0 || strcmp(ts_type, "RSA-PSS") == 0) {
            unsigned long version;
            span rest = probe;
            if (!take_small(&rest, &version) || version > 1)
                return false;
            for (int i = 0; i < 8; i++)
                if (!take(&rest, 0x02, &v))
                    return false;
            if (!(rest.p == rest.end || (version == 1 && peek(&rest, 0x30))))
                return false;
            out->type = ts_type;
        } else {
            return false;
        }
        return out->type != NULL;
    }
    span alg, oid, key;
    unsigned long version;
    if (!take(&in, 0x30, &seq) || in.p != in.end || !take_small(&seq, &version) || version > 1 ||
        !take(&seq, 0x30, &alg) || !take(&alg, 0x06, &oid) || !take(&seq, 0x04, &key))
        return false;
    for (size_t i = 0; i < sizeof algs / sizeof algs[0]; i++)
        if (span_len(&oid) == algs[i].len && memcmp(oid.p, algs[i].oid, algs[i].len) == 0)
            out->type = algs[i].type;
    for (size_t i = 0; out->type == NULL && i < sizeof unsealable / sizeof unsealable[0]; i++)
        if (span_len(&oid) == unsealable[i].len && memcmp(oid.p, unsealable[i].oid, unsealable[i].len) == 0) {
            out->type = unsealable[i].type;
            out->unsealed = strcmp(out->type, "SM2") == 0 ? "an SM2 key" : strcmp(out->type, "DSA") == 0 ? "a DSA key"
                                                                                                          : "a DH key";
        }
    if (out->type == NULL)
        out->unsealed = "a PKCS#8 key of an algorithm memguard does not know"; /* well-formed, but whose? */
    if (out->type != NULL && strcmp(out->type, "EC") == 0)
        classify_ec(key, &alg, out);
    return out->type != NULL;
}
