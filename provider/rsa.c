/*
 * RSA private-key operations without rebuilding an EVP_PKEY each time.
 *
 * Rebuilding the key per operation (key.c's mgp_key_with_private) made every
 * RSA-2048 signature cost ~2x: OpenSSL sets up blinding on a fresh RSA object
 * (a random r, r^e mod n and an inversion mod n, ~200 us). Blinding needs only
 * the public n and e, so here it is kept per key and refreshed like OpenSSL
 * does (squared after each use, regenerated every 32 uses and in a forked
 * child). The private parts are still unsealed for each operation, into a
 * transient RSA object with OpenSSL's own blinding off, and freed (cleared).
 *
 * Padding is applied outside the private operation: PKCS#1 v1.5 and PSS
 * signatures, OAEP and PKCS#1 v1.5 decryption. Anything else (TLS RSA key
 * exchange padding, X9.31, RSA-PSS restricted keys, multi-prime keys, unusual
 * parameters) returns MGP_RSA_SLOW_PATH and goes through the EVP path.
 *
 * The low-level RSA API is deprecated in OpenSSL 3 but present in every 3.x.
 */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/params.h>
#include <openssl/rsa.h>

#include "provider.h"

#define BLIND_USES 32 /* OpenSSL's BN_BLINDING_COUNTER */

/* One blinding pair: A = r^e and Ai = r^-1 (mod n). Not derived from the private key. */
struct blind {
    BIGNUM *A, *Ai;
    unsigned uses;
    pid_t pid;
};

struct mgp_rsa_cache {
    BIGNUM *n, *e;
    RSA *pub;            /* n and e only: for PSS encoding (it reads the modulus size) */
    size_t bytes;        /* modulus size */
    _Atomic(struct blind *) spare; /* taken with an exchange: no lock, nothing held across fork */
    _Atomic int multi_prime;       /* learned on first use: the slow path handles those */
};

static void blind_free(struct blind *b)
{
    if (b == NULL)
        return;
    BN_clear_free(b->A);
    BN_clear_free(b->Ai);
    OPENSSL_free(b);
}

void mgp_rsa_cache_free(struct mgp_rsa_cache *c)
{
    if (c == NULL)
        return;
    BN_free(c->n);
    BN_free(c->e);
    RSA_free(c->pub);
    blind_free(atomic_load(&c->spare));
    OPENSSL_free(c);
}

static struct mgp_rsa_cache *cache_of(mgp_key *k)
{
    struct mgp_rsa_cache *c = atomic_load(&k->rsa);
    if (c != NULL)
        return c;
    if ((c = OPENSSL_zalloc(sizeof *c)) == NULL)
        return NULL;
    atomic_init(&c->spare, NULL);
    atomic_init(&c->multi_prime, 0);
    BIGNUM *n = NULL, *e = NULL;
    if (EVP_PKEY_get_bn_param(k->pub, OSSL_PKEY_PARAM_RSA_N, &c->n) != 1 ||
        EVP_PKEY_get_bn_param(k->pub, OSSL_PKEY_PARAM_RSA_E, &c->e) != 1 || (c->pub = RSA_new()) == NULL ||
        (n = BN_dup(c->n)) == NULL || (e = BN_dup(c->e)) == NULL || RSA_set0_key(c->pub, n, e, NULL) != 1) {
        BN_free(n);
        BN_free(e);
        mgp_rsa_cache_free(c);
        return NULL;
    }
    c->bytes = (size_t)BN_num_bytes(c->n);
    struct mgp_rsa_cache *expected = NULL;
    if (!atomic_compare_exchange_strong(&k->rsa, &expected, c)) {
        mgp_rsa_cache_free(c); /* another thread won */
        c = expected;
    }
    return c;
}

static struct blind *blind_new(const struct mgp_rsa_cache *c, BN_CTX *bn)
{
    struct blind *b = OPENSSL_zalloc(sizeof *b);
    BIGNUM *r = BN_new();
    int ok = 0;
    if (b == NULL || r == NULL || (b->A = BN_new()) == NULL)
        goto out;
    ERR_set_mark(); /* a non-invertible r (gcd(r, n) != 1) is retried, its error dropped */
    for (int tries = 0; tries < 8 && b->Ai == NULL; tries++) {
        if (BN_priv_rand_range(r, c->n) != 1)
            break;
        BN_set_flags(r, BN_FLG_CONSTTIME);
        b->Ai = BN_mod_inverse(NULL, r, c->n, bn);
    }
    ERR_pop_to_mark();
    ok = b->Ai != NULL && BN_mod_exp(b->A, r, c->e, c->n, bn) == 1;
    b->pid = getpid();
out:
    BN_clear_free(r);
    if (!ok) {
        blind_free(b);
        return NULL;
    }
    return b;
}

/* A pair for this operation: the spare one if it is fresh enough, else a new one. */
static struct blind *blind_take(struct mgp_rsa_cache *c, BN_CTX *bn)
{
    struct blind *b = atomic_exchange(&c->spare, NULL);
    if (b != NULL && (b->uses >= BLIND_USES || b->pid != getpid())) {
        blind_free(b); /* a forked child must not repeat its parent's sequence */
        b = NULL;
    }
    return b != NULL ? b : blind_new(c, bn);
}

/* Advance the pair (square both) and offer it to the next operation. */
static void blind_give_back(struct mgp_rsa_cache *c, struct blind *b, BN_CTX *bn)
{
    if (++b->uses >= BLIND_USES || BN_mod_sqr(b->A, b->A, c->n, bn) != 1 || BN_mod_sqr(b->Ai, b->Ai, c->n, bn) != 1) {
        blind_free(b);
        return;
    }
    blind_free(atomic_exchange(&c->spare, b)); /* two threads racing: keep one */
}

/* ---- the private operation on unsealed parameters ---- */

/* What to do with the result y (|n| bytes, in guarded workspace) before it is wiped. */
typedef int (*finish_fn)(const unsigned char *y, size_t len, void *arg);

struct priv_op {
    struct mgp_rsa_cache *c;
    const BIGNUM *x; /* blinded input, < n */
    const BIGNUM *Ai;
    BN_CTX *bn;
    finish_fn finish;
    void *arg;
    bool multi_prime;
};

static BIGNUM *param_bn(const OSSL_PARAM *params, const char *name)
{
    const OSSL_PARAM *p = OSSL_PARAM_locate_const(params, name);
    if (p == NULL || p->data_type != OSSL_PARAM_UNSIGNED_INTEGER)
        return NULL;
    BIGNUM *v = BN_native2bn(p->data, (int)p->data_size, NULL);
    if (v != NULL)
        BN_set_flags(v, BN_FLG_CONSTTIME);
    return v;
}

/* Runs inside the enclave: work holds 2 * |n| bytes of guarded memory. */
static int private_op(const OSSL_PARAM *params, unsigned char *work, void *varg)
{
    struct priv_op *o = varg;
    size_t k = o->c->bytes;
    if (OSSL_PARAM_locate_const(params, OSSL_PKEY_PARAM_RSA_FACTOR3) != NULL) {
        o->multi_prime = true;
        return 0;
    }
    BIGNUM *d = param_bn(params, OSSL_PKEY_PARAM_RSA_D), *p = param_bn(params, OSSL_PKEY_PARAM_RSA_FACTOR1),
           *q = param_bn(params, OSSL_PKEY_PARAM_RSA_FACTOR2), *dp = param_bn(params, OSSL_PKEY_PARAM_RSA_EXPONENT1),
           *dq = param_bn(params, OSSL_PKEY_PARAM_RSA_EXPONENT2),
           *qinv = param_bn(params, OSSL_PKEY_PARAM_RSA_COEFFICIENT1);
    BIGNUM *n = BN_dup(o->c->n), *e = BN_dup(o->c->e), *y = BN_new();
    RSA *rsa = RSA_new();
    int ok = 0;
    if (rsa == NULL || y == NULL || d == NULL || p == NULL || q == NULL || dp == NULL || dq == NULL || qinv == NULL || n == NULL ||
        e == NULL)
        goto out;
    /* RSA takes ownership one group at a time; clear what it did not take if a step fails. */
    if (RSA_set0_key(rsa, n, e, d) != 1)
        goto out;
    n = e = d = NULL;
    if (RSA_set0_factors(rsa, p, q) != 1)
        goto out;
    p = q = NULL;
    if (RSA_set0_crt_params(rsa, dp, dq, qinv) != 1)
        goto out;
    dp = dq = qinv = NULL;
    /* Our blinding replaces OpenSSL's (which is what costs ~200 us on a fresh object). */
    RSA_set_flags(rsa, RSA_FLAG_NO_BLINDING);
    unsigned char *in = work, *out = work + k;
    ok = BN_bn2binpad(o->x, in, (int)k) == (int)k &&
         RSA_private_encrypt((int)k, in, out, rsa, RSA_NO_PADDING) == (int)k && BN_bin2bn(out, (int)k, y) != NULL &&
         BN_mod_mul(y, y, o->Ai, o->c->n, o->bn) == 1 && BN_bn2binpad(y, out, (int)k) == (int)k &&
         o->finish(out, k, o->arg);
out:
    BN_clear_free(y); /* for a decryption, the padded plaintext */
    RSA_free(rsa); /* clears d, p, q, dP, dQ, qInv and the Montgomery contexts built from them */
    BN_clear_free(d);
    BN_clear_free(p);
    BN_clear_free(q);
    BN_clear_free(dp);
    BN_clear_free(dq);
    BN_clear_free(qinv);
    BN_free(n);
    BN_free(e);
    return ok;
}

/*
 * y = x^d mod n with blinding; x is |n| big-endian bytes; finish(y) runs while
 * y is still in guarded workspace. Returns 1, 0, or MGP_RSA_SLOW_PATH for
 * multi-prime keys.
 */
static int blinded_private(mgp_key *k, struct mgp_rsa_cache *c, const unsigned char *x_in, finish_fn finish,
                           void *arg)
{
    BN_CTX *bn = BN_CTX_new();
    BIGNUM *x = BN_new();
    struct blind *b = NULL;
    int rc = 0;
    if (bn == NULL || x == NULL || BN_bin2bn(x_in, (int)c->bytes, x) == NULL)
        goto out;
    if (BN_ucmp(x, c->n) >= 0) {
        MGP_ERR(k->prov, MGP_R_BAD_ARGUMENT, "input too large for the RSA modulus");
        goto out;
    }
    if ((b = blind_take(c, bn)) == NULL || BN_mod_mul(x, x, b->A, c->n, bn) != 1)
        goto out;
    struct priv_op o = {c, x, b->Ai, bn, finish, arg, false};
    rc = mgp_key_with_params(k, 2 * c->bytes, private_op, &o);
    if (o.multi_prime) {
        atomic_store(&c->multi_prime, 1);
        rc = MGP_RSA_SLOW_PATH;
        goto out;
    }
    if (rc != 1)
        goto out;
    blind_give_back(c, b, bn);
    b = NULL;
out:
    blind_free(b);
    BN_clear_free(x);
    BN_CTX_free(bn);
    return rc;
}

/* ---- parameters: the fast path takes only what it fully understands ---- */

/* A pad mode given as an integer or as a name. */
static int pad_mode(const OSSL_PARAM *params, int dflt)
{
    static const struct {
        const char *name;
        int id;
    } modes[] = {
        {OSSL_PKEY_RSA_PAD_MODE_NONE, RSA_NO_PADDING},  {OSSL_PKEY_RSA_PAD_MODE_PKCSV15, RSA_PKCS1_PADDING},
        {OSSL_PKEY_RSA_PAD_MODE_OAEP, RSA_PKCS1_OAEP_PADDING}, {OSSL_PKEY_RSA_PAD_MODE_X931, RSA_X931_PADDING},
        {OSSL_PKEY_RSA_PAD_MODE_PSS, RSA_PKCS1_PSS_PADDING},
    };
    const OSSL_PARAM *p = OSSL_PARAM_locate_const(params, OSSL_PKEY_PARAM_PAD_MODE);
    if (p == NULL)
        return dflt;
    int id;
    if (p->data_type == OSSL_PARAM_UTF8_STRING) {
        for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++)
            if (strcmp(p->data, modes[i].name) == 0)
                return modes[i].id;
        return -1;
    }
    return OSSL_PARAM_get_int(p, &id) ? id : -1;
}

static bool only_known_params(const OSSL_PARAM *params, const char *const *known)
{
    for (const OSSL_PARAM *p = params; p != NULL && p->key != NULL; p++) {
        bool found = false;
        for (const char *const *k = known; *k != NULL && !found; k++)
            found = strcmp(p->key, *k) == 0;
        if (!found)
            return false;
    }
    return true;
}

static EVP_MD *fetch_md(mgp_key *k, const OSSL_PARAM *params, const char *name, const char *dflt)
{
    const OSSL_PARAM *p = OSSL_PARAM_locate_const(params, name);
    const char *mdname = dflt;
    if (p != NULL && (p->data_type != OSSL_PARAM_UTF8_STRING || (mdname = p->data) == NULL))
        return NULL;
    return EVP_MD_fetch(k->prov->libctx, mdname, NULL);
}

/* ---- signatures ---- */

/* DigestInfo prefixes (RFC 8017, section 9.2, note 1). */
static const unsigned char *digest_info(int nid, size_t *len)
{
    static const unsigned char sha1[] = {0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e,
                                         0x03, 0x02, 0x1a, 0x05, 0x00, 0x04, 0x14};
#define SHA2(last, dlen)                                                                                  \
    {0x30, (unsigned char)(0x11 + (dlen)), 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, \
     0x02, (last),                     0x05, 0x00, 0x04, (dlen)}
    static const unsigned char sha224[] = SHA2(0x04, 28), sha256[] = SHA2(0x01, 32), sha384[] = SHA2(0x02, 48),
                               sha512[] = SHA2(0x03, 64);
#undef SHA2
    switch (nid) {
    case NID_sha1: *len = sizeof sha1; return sha1;
    case NID_sha224: *len = sizeof sha224; return sha224;
    case NID_sha256: *len = sizeof sha256; return sha256;
    case NID_sha384: *len = sizeof sha384; return sha384;
    case NID_sha512: *len = sizeof sha512; return sha512;
    default: return NULL;
    }
}

static int salt_length(const OSSL_PARAM *params, int *saltlen)
{
    const OSSL_PARAM *p = OSSL_PARAM_locate_const(params, OSSL_SIGNATURE_PARAM_PSS_SALTLEN);
    *saltlen = RSA_PSS_SALTLEN_AUTO; /* OpenSSL's default for signing: as long as fits */
    if (p == NULL)
        return 1;
    if (p->data_type == OSSL_PARAM_UTF8_STRING) {
        if (strcmp(p->data, "digest") == 0)
            *saltlen = RSA_PSS_SALTLEN_DIGEST;
        else if (strcmp(p->data, "max") == 0)
            *saltlen = RSA_PSS_SALTLEN_MAX;
        else if (strcmp(p->data, "auto") == 0)
            *saltlen = RSA_PSS_SALTLEN_AUTO;
        else
            return 0; /* a number as text, or something new: the EVP path parses it */
        return 1;
    }
    return OSSL_PARAM_get_int(p, saltlen) && *saltlen >= RSA_PSS_SALTLEN_MAX;
}

struct copy_out {
    unsigned char *sig;
};

static int copy_signature(const unsigned char *y, size_t len, void *arg)
{
    memcpy(((struct copy_out *)arg)->sig, y, len);
    return 1;
}

int mgp_rsa_sign(mgp_key *k, const EVP_MD *md, const OSSL_PARAM *params, const unsigned char *tbs, size_t tbslen,
                 unsigned char *sig, size_t *siglen, size_t sigsize)
{
    static const char *const known[] = {OSSL_SIGNATURE_PARAM_DIGEST, OSSL_SIGNATURE_PARAM_PAD_MODE,
                                        OSSL_SIGNATURE_PARAM_PSS_SALTLEN, OSSL_SIGNATURE_PARAM_MGF1_DIGEST, NULL};
    if (strcmp(k->type, "RSA") != 0 || md == NULL || !only_known_params(params, known))
        return MGP_RSA_SLOW_PATH;
    int mode = pad_mode(params, RSA_PKCS1_PADDING), saltlen = 0;
    if ((mode != RSA_PKCS1_PADDING && mode != RSA_PKCS1_PSS_PADDING) ||
        (mode == RSA_PKCS1_PSS_PADDING && !salt_length(params, &saltlen)))
        return MGP_RSA_SLOW_PATH;
    struct mgp_rsa_cache *c = cache_of(k);
    if (c == NULL || atomic_load(&c->multi_prime))
        return MGP_RSA_SLOW_PATH;
    EVP_MD *mgf1 = NULL;
    unsigned char *em = NULL;
    size_t plen = 0;
    const unsigned char *prefix = digest_info(EVP_MD_get_type(md), &plen);
    int rc = MGP_RSA_SLOW_PATH;
    /* The EVP path gives the exact errors for wrong digest lengths and unusual digests. */
    if (tbslen != (size_t)EVP_MD_get_size(md) || (mode == RSA_PKCS1_PADDING && prefix == NULL))
        goto out;
    if (sigsize < c->bytes) {
        MGP_ERR(k->prov, MGP_R_BAD_ARGUMENT, "signature buffer too small");
        rc = 0;
        goto out;
    }
    if ((em = OPENSSL_malloc(c->bytes)) == NULL) {
        rc = 0;
        goto out;
    }
    int padded;
    if (mode == RSA_PKCS1_PADDING) {
        unsigned char t[19 + EVP_MAX_MD_SIZE];
        memcpy(t, prefix, plen);
        memcpy(t + plen, tbs, tbslen);
        padded = RSA_padding_add_PKCS1_type_1(em, (int)c->bytes, t, (int)(plen + tbslen));
    } else {
        if ((mgf1 = fetch_md(k, params, OSSL_SIGNATURE_PARAM_MGF1_DIGEST, EVP_MD_get0_name(md))) == NULL)
            goto out;
        padded = RSA_padding_add_PKCS1_PSS_mgf1(c->pub, em, tbs, md, mgf1, saltlen);
    }
    if (padded != 1) {
        MGP_ERR(k->prov, MGP_R_OPERATION_FAILED, "RSA signature encoding failed");
        rc = 0;
        goto out;
    }
    struct copy_out co = {sig};
    rc = blinded_private(k, c, em, copy_signature, &co);
    if (rc == 1)
        *siglen = c->bytes;
out:
    OPENSSL_free(em); /* the encoded digest: public once signed */
    EVP_MD_free(mgf1);
    return rc;
}

/* ---- decryption ---- */

struct unpad {
    mgp_key *k;
    int mode;
    unsigned char *out;
    size_t outsize, *outlen;
    const EVP_MD *md, *mgf1;
    const unsigned char *label;
    size_t labellen;
};

/* Runs on the padded plaintext in guarded workspace: only the message leaves it. */
static int unpad(const unsigned char *em, size_t len, void *arg)
{
    struct unpad *u = arg;
    int n = u->mode == RSA_PKCS1_OAEP_PADDING
                ? RSA_padding_check_PKCS1_OAEP_mgf1(u->out, (int)u->outsize, em, (int)len, (int)len, u->label,
                                                    (int)u->labellen, u->md, u->mgf1)
                : RSA_padding_check_PKCS1_type_2(u->out, (int)u->outsize, em, (int)len, (int)len);
    if (n < 0) {
        MGP_ERR(u->k->prov, MGP_R_OPERATION_FAILED, "RSA decryption failed");
        return 0;
    }
    *u->outlen = (size_t)n;
    return 1;
}

int mgp_rsa_decrypt(mgp_key *k, const OSSL_PARAM *params, const unsigned char *in, size_t inlen, unsigned char *out,
                    size_t *outlen, size_t outsize)
{
    static const char *const known[] = {OSSL_ASYM_CIPHER_PARAM_PAD_MODE, OSSL_ASYM_CIPHER_PARAM_OAEP_DIGEST,
                                        OSSL_ASYM_CIPHER_PARAM_MGF1_DIGEST, OSSL_ASYM_CIPHER_PARAM_OAEP_LABEL, NULL};
    if (strcmp(k->type, "RSA") != 0 || !only_known_params(params, known))
        return MGP_RSA_SLOW_PATH;
    int mode = pad_mode(params, RSA_PKCS1_PADDING);
    if (mode != RSA_PKCS1_PADDING && mode != RSA_PKCS1_OAEP_PADDING)
        return MGP_RSA_SLOW_PATH;
    struct mgp_rsa_cache *c = cache_of(k);
    if (c == NULL || atomic_load(&c->multi_prime) || inlen != c->bytes || outsize > INT_MAX)
        return MGP_RSA_SLOW_PATH; /* wrong lengths: the EVP path reports them as OpenSSL does */
    struct unpad u = {k, mode, out, outsize, outlen, NULL, NULL, NULL, 0};
    EVP_MD *md = NULL, *mgf1 = NULL;
    int rc = MGP_RSA_SLOW_PATH;
    if (mode == RSA_PKCS1_OAEP_PADDING) {
        const OSSL_PARAM *l = OSSL_PARAM_locate_const(params, OSSL_ASYM_CIPHER_PARAM_OAEP_LABEL);
        if (l != NULL && (l->data_type != OSSL_PARAM_OCTET_STRING || l->data_size > INT_MAX))
            goto out;
        if (l != NULL) {
            u.label = l->data;
            u.labellen = l->data_size;
        }
        if ((md = fetch_md(k, params, OSSL_ASYM_CIPHER_PARAM_OAEP_DIGEST, "SHA1")) == NULL ||
            (mgf1 = fetch_md(k, params, OSSL_ASYM_CIPHER_PARAM_MGF1_DIGEST, EVP_MD_get0_name(md))) == NULL)
            goto out;
        u.md = md;
        u.mgf1 = mgf1;
    }
    rc = blinded_private(k, c, in, unpad, &u);
out:
    EVP_MD_free(md);
    EVP_MD_free(mgf1);
    return rc;
}
