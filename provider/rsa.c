/*
 * RSA private-key operations without rebuilding an EVP_PKEY each time, in constant time.
 *
 * Rebuilding the key per operation (key.c's mgp_key_with_private) made every RSA-2048 signature
 * cost ~2x: OpenSSL sets up blinding on a fresh RSA object (a random r, r^e mod n and an inversion
 * mod n, ~200 us). Blinding needs only the public n and e, so here it is kept per key and refreshed
 * like OpenSSL does (squared after each use, regenerated every 32 uses and in a forked child). The
 * private parts are unsealed for each operation into secure-heap BIGNUMs of a transient RSA object
 * with OpenSSL's own blinding off (its constant-time CRT does the exponentiation), and cleared.
 *
 * Timing (issue 11): whatever the ciphertext, a decryption does the same work. The blinding pair is
 * given back and squared whether or not the padding is right (the old code dropped it on a bad
 * padding, and the next decryption paid ~240 us for a new one: a Bleichenbacher oracle).
 * Blinding and unblinding are Montgomery multiplications (A and Ai are kept as A*R, Ai*R mod n).
 * The padding checks are written here without branches or early exits on secret data, on the
 * padded plaintext in guarded workspace; the verdict is a mask, and the error for a bad padding
 * is raised at the end at the same cost as its removal on success (report_verdict).
 * PKCS#1 v1.5 decryption does implicit rejection by default (as OpenSSL >= 3.2: a bad padding
 * yields a synthetic message derived from d and the ciphertext, never an error), switched off with
 * "implicit-rejection" = 0. The TLS 1.2 premaster padding returns a random premaster on any
 * failure, as the default provider does.
 *
 * Anything outside what is implemented here (X9.31, RSA-PSS restricted keys, property queries,
 * ciphertexts that are not |n| bytes) returns MGP_RSA_SLOW_PATH and goes through the EVP path.
 *
 * The low-level RSA API is deprecated in OpenSSL 3 but present in every 3.x.
 */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>

#include "hmac.h"
#include "provider.h"


#define BLIND_USES 32   /* OpenSSL's BN_BLINDING_COUNTER */
#define SPARES 4        /* pairs kept per key: two or more threads each find one without a lock */
#define PKCS1_PAD 11    /* 00 02, at least 8 padding bytes, 00 */
#define TLS_PREMASTER 48 /* SSL_MAX_MASTER_KEY_LENGTH */
#define LEN_TRIES 128   /* candidate lengths of the synthetic message (OpenSSL's MAX_LEN_GEN_TRIES) */
#define MAX_PRIMES 10   /* RSA_MAX_PRIME_NUM */

/* ---- constant-time helpers: all-ones / all-zero masks, no branches ---- */

/* Keeps the compiler from turning a mask back into a branch. */
static inline size_t ct_barrier(size_t v)
{
    __asm__("" : "+r"(v));
    return v;
}
static inline size_t ct_msb(size_t a) { return 0 - (a >> (sizeof a * CHAR_BIT - 1)); }
static inline size_t ct_is_zero(size_t a) { return ct_msb(~a & (a - 1)); }
static inline size_t ct_eq(size_t a, size_t b) { return ct_is_zero(a ^ b); }
static inline size_t ct_lt(size_t a, size_t b) { return ct_msb(a ^ ((a ^ b) | ((a - b) ^ b))); }
static inline size_t ct_ge(size_t a, size_t b) { return ~ct_lt(a, b); }
static inline size_t ct_sel(size_t m, size_t a, size_t b)
{
    m = ct_barrier(m);
    return (m & a) | (~m & b);
}
static inline unsigned char ct_sel8(size_t m, unsigned char a, unsigned char b)
{
    return (unsigned char)ct_sel(m, a, b);
}

/*
 * The message of mlen bytes ends b[0..n) and starts at or after b[from]. Shift it down to b[from]
 * in log2(n) passes over the whole buffer (which passes move it depends on mlen, the memory
 * accesses do not), then copy n - from bytes to out, each kept from out unless good and i < mlen.
 */
static void ct_deliver(unsigned char *b, size_t n, size_t from, size_t mlen, size_t good, unsigned char *out)
{
    size_t max = n - from, shift = max - mlen;
    for (size_t s = 1; s < max; s <<= 1) {
        size_t m = ~ct_is_zero(shift & s);
        for (size_t i = from; i + s < n; i++)
            b[i] = ct_sel8(m, b[i + s], b[i]);
    }
    for (size_t i = 0; i < max; i++)
        out[i] = ct_sel8(good & ct_lt(i, mlen), b[from + i], out[i]);
}

/* ---- per-key public state and blinding ---- */

/* One blinding pair, in Montgomery form: A = r^e * R and Ai = r^-1 * R (mod n). Not derived from the key. */
struct blind {
    BIGNUM *A, *Ai;
    unsigned uses;
    pid_t pid;
};

struct mgp_rsa_cache {
    BIGNUM *n, *e;
    RSA *pub;          /* n and e only: for PSS encoding (it reads the modulus size) */
    BN_MONT_CTX *mont; /* of n: blinding and unblinding are Montgomery multiplications */
    size_t bytes;      /* modulus size */
    _Atomic(struct blind *) spare[SPARES]; /* taken and given with atomics: no lock, nothing held across fork */
    _Atomic uint64_t made, squared;        /* pairs generated, pairs squared for reuse (test hook) */
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
    BN_MONT_CTX_free(c->mont);
    for (int i = 0; i < SPARES; i++)
        blind_free(atomic_load(&c->spare[i]));
    OPENSSL_free(c);
}

static struct mgp_rsa_cache *cache_of(mgp_key *k)
{
    struct mgp_rsa_cache *c = atomic_load(&k->rsa);
    if (c != NULL)
        return c;
    if ((c = OPENSSL_zalloc(sizeof *c)) == NULL)
        return NULL;
    for (int i = 0; i < SPARES; i++)
        atomic_init(&c->spare[i], NULL);
    atomic_init(&c->made, 0);
    atomic_init(&c->squared, 0);
    BIGNUM *n = NULL, *e = NULL;
    BN_CTX *bn = BN_CTX_new();
    if (bn == NULL || EVP_PKEY_get_bn_param(k->pub, OSSL_PKEY_PARAM_RSA_N, &c->n) != 1 ||
        EVP_PKEY_get_bn_param(k->pub, OSSL_PKEY_PARAM_RSA_E, &c->e) != 1 ||
        !BN_is_odd(c->n) /* Montgomery arithmetic needs it; validate.c refuses such keys before this */ ||
        (c->pub = RSA_new()) == NULL ||
        (n = BN_dup(c->n)) == NULL || (e = BN_dup(c->e)) == NULL || RSA_set0_key(c->pub, n, e, NULL) != 1 ||
        (c->mont = BN_MONT_CTX_new()) == NULL || BN_MONT_CTX_set(c->mont, c->n, bn) != 1) {
        BN_CTX_free(bn);
        BN_free(n);
        BN_free(e);
        mgp_rsa_cache_free(c);
        return NULL;
    }
    BN_CTX_free(bn);
    c->bytes = (size_t)BN_num_bytes(c->n);
    struct mgp_rsa_cache *expected = NULL;
    if (!atomic_compare_exchange_strong(&k->rsa, &expected, c)) {
        mgp_rsa_cache_free(c); /* another thread won */
        c = expected;
    }
    return c;
}

static struct blind *blind_new(struct mgp_rsa_cache *c, BN_CTX *bn)
{
    struct blind *b = OPENSSL_zalloc(sizeof *b);
    BIGNUM *r = BN_secure_new();
    int ok = 0, inverted = 0;
    if (b == NULL || r == NULL || (b->A = BN_secure_new()) == NULL || (b->Ai = BN_secure_new()) == NULL)
        goto out;
    ERR_set_mark(); /* a non-invertible r (gcd(r, n) != 1, or 0) is retried, its error dropped */
    for (int tries = 0; tries < 8 && !inverted; tries++) {
        if (BN_priv_rand_range(r, c->n) != 1)
            break;
        BN_set_flags(r, BN_FLG_CONSTTIME); /* the inversion and r^e take their constant-time paths */
        inverted = BN_mod_inverse(b->Ai, r, c->n, bn) != NULL;
    }
    ERR_pop_to_mark();
    ok = inverted && BN_mod_exp_mont(b->A, r, c->e, c->n, bn, c->mont) == 1 &&
         BN_to_montgomery(b->A, b->A, c->mont, bn) == 1 && BN_to_montgomery(b->Ai, b->Ai, c->mont, bn) == 1;
    b->pid = getpid();
out:
    BN_clear_free(r);
    if (!ok) {
        blind_free(b);
        return NULL;
    }
    atomic_fetch_add(&c->made, 1);
    return b;
}

/* A pair for this operation: a spare one if it is fresh enough, else a new one. */
static struct blind *blind_take(struct mgp_rsa_cache *c, BN_CTX *bn)
{
    struct blind *b = NULL;
    for (int i = 0; i < SPARES && b == NULL; i++)
        if (atomic_load(&c->spare[i]) != NULL)
            b = atomic_exchange(&c->spare[i], NULL);
    if (b != NULL && (b->uses >= BLIND_USES || b->pid != getpid())) {
        blind_free(b); /* a forked child must not repeat its parent's sequence */
        b = NULL;
    }
    return b != NULL ? b : blind_new(c, bn);
}

/* Advance the pair (square both, staying in Montgomery form) and offer it to the next operation. */
static void blind_give_back(struct mgp_rsa_cache *c, struct blind *b, BN_CTX *bn)
{
    if (++b->uses >= BLIND_USES || BN_mod_mul_montgomery(b->A, b->A, b->A, c->mont, bn) != 1 ||
        BN_mod_mul_montgomery(b->Ai, b->Ai, b->Ai, c->mont, bn) != 1) {
        blind_free(b);
        return;
    }
    atomic_fetch_add(&c->squared, 1);
    for (int i = 0; i < SPARES; i++) {
        struct blind *expected = NULL;
        if (atomic_compare_exchange_strong(&c->spare[i], &expected, b))
            return;
    }
    blind_free(b); /* every slot taken by other threads' pairs */
}

int mgp_rsa_blinding_counts(mgp_key *k, uint64_t *made, uint64_t *squared)
{
    struct mgp_rsa_cache *c = k != NULL ? atomic_load(&k->rsa) : NULL;
    *made = c != NULL ? atomic_load(&c->made) : 0;
    *squared = c != NULL ? atomic_load(&c->squared) : 0;
    return 1;
}

/* ---- the private operation on unsealed parameters ---- */

/*
 * What to do with the result em (|n| bytes in guarded workspace, writable) before it is wiped:
 * d is the private exponent (for the implicit-rejection key), scratch has the size the caller
 * asked for, also guarded. Returns 1 if it ran (a padding verdict is the callee's business), 0 on
 * an internal failure (error raised).
 */
typedef int (*finish_fn)(unsigned char *em, size_t len, const BIGNUM *d, unsigned char *scratch, void *arg);

struct priv_op {
    struct mgp_rsa_cache *c;
    const BIGNUM *x; /* blinded input, < n */
    const BIGNUM *Ai;
    BN_CTX *bn;
    finish_fn finish;
    void *arg;
};

/* A private integer from the unsealed blob, in the secure heap, used in constant time; NULL if absent. */
static BIGNUM *param_bn(const OSSL_PARAM *params, const char *name)
{
    const OSSL_PARAM *p = OSSL_PARAM_locate_const(params, name);
    if (p == NULL || p->data_type != OSSL_PARAM_UNSIGNED_INTEGER || p->data_size > INT_MAX)
        return NULL;
    BIGNUM *v = BN_secure_new();
    if (v != NULL && BN_native2bn(p->data, (int)p->data_size, v) == NULL) {
        BN_clear_free(v);
        return NULL;
    }
    if (v != NULL)
        BN_set_flags(v, BN_FLG_CONSTTIME);
    return v;
}

/* Primes beyond p and q (multi-prime keys): moved into rsa; 1 if none or all taken. */
static int set_extra_primes(RSA *rsa, const OSSL_PARAM *params)
{
    BIGNUM *r[MAX_PRIMES - 2] = {NULL}, *d[MAX_PRIMES - 2] = {NULL}, *t[MAX_PRIMES - 2] = {NULL};
    int n = 0, ok = 1;
    char name[32];
    for (; n < MAX_PRIMES - 2; n++) {
        snprintf(name, sizeof name, "rsa-factor%d", n + 3);
        if (OSSL_PARAM_locate_const(params, name) == NULL)
            break;
        r[n] = param_bn(params, name);
        snprintf(name, sizeof name, "rsa-exponent%d", n + 3);
        d[n] = param_bn(params, name);
        snprintf(name, sizeof name, "rsa-coefficient%d", n + 2);
        t[n] = param_bn(params, name);
        if (r[n] == NULL || d[n] == NULL || t[n] == NULL) {
            n++;
            ok = 0;
            break;
        }
    }
    if (ok && n > 0 && RSA_set0_multi_prime_params(rsa, r, d, t, n) == 1)
        return 1; /* rsa owns them now */
    for (int i = 0; i < n; i++) {
        BN_clear_free(r[i]);
        BN_clear_free(d[i]);
        BN_clear_free(t[i]);
    }
    return ok && n == 0;
}

/* Runs inside the enclave: work holds 3 * |n| bytes plus the finish step's scratch, all guarded. */
static int private_op(const OSSL_PARAM *params, unsigned char *work, void *varg)
{
    struct priv_op *o = varg;
    size_t k = o->c->bytes;
    BIGNUM *d = param_bn(params, OSSL_PKEY_PARAM_RSA_D), *p = param_bn(params, OSSL_PKEY_PARAM_RSA_FACTOR1),
           *q = param_bn(params, OSSL_PKEY_PARAM_RSA_FACTOR2), *dp = param_bn(params, OSSL_PKEY_PARAM_RSA_EXPONENT1),
           *dq = param_bn(params, OSSL_PKEY_PARAM_RSA_EXPONENT2),
           *qinv = param_bn(params, OSSL_PKEY_PARAM_RSA_COEFFICIENT1);
    BIGNUM *n = BN_dup(o->c->n), *e = BN_dup(o->c->e), *y = BN_secure_new();
    const BIGNUM *dref = d;
    RSA *rsa = RSA_new();
    int ok = 0;
    if (rsa == NULL || y == NULL || d == NULL || p == NULL || q == NULL || dp == NULL || dq == NULL ||
        qinv == NULL || n == NULL || e == NULL)
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
    if (!set_extra_primes(rsa, params))
        goto out;
    /* Our blinding replaces OpenSSL's (which is what costs ~200 us on a fresh object). */
    RSA_set_flags(rsa, RSA_FLAG_NO_BLINDING);
    unsigned char *in = work, *out = work + k, *em = work + 2 * k;
    BN_set_flags(y, BN_FLG_CONSTTIME);
    ok = BN_bn2binpad(o->x, in, (int)k) == (int)k &&
         RSA_private_encrypt((int)k, in, out, rsa, RSA_NO_PADDING) == (int)k && BN_bin2bn(out, (int)k, y) != NULL &&
         BN_mod_mul_montgomery(y, y, o->Ai, o->c->mont, o->bn) == 1 && BN_bn2binpad(y, em, (int)k) == (int)k;
    ok = ok && o->finish(em, k, dref, work + 3 * k, o->arg);
out:
    BN_clear_free(y); /* for a decryption, the padded plaintext */
    RSA_free(rsa);    /* clears d, p, q, dP, dQ, qInv and the Montgomery contexts built from them */
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
 * y = x^d mod n with blinding; x is |n| big-endian bytes; finish(y) runs while y is still in
 * guarded workspace (with `scratch` more bytes of it). The pair is given back whenever the
 * exponentiation ran: finish's verdict on the padding never reaches this function.
 */
static int blinded_private(mgp_key *k, struct mgp_rsa_cache *c, const unsigned char *x_in, size_t scratch,
                           finish_fn finish, void *arg)
{
    BN_CTX *bn = BN_CTX_secure_new();
    BIGNUM *x = BN_secure_new();
    struct blind *b = NULL;
    int rc = 0;
    if (bn == NULL || x == NULL || BN_bin2bn(x_in, (int)c->bytes, x) == NULL)
        goto out;
    if (BN_ucmp(x, c->n) >= 0) { /* public: anyone can compare the ciphertext with n */
        MGP_ERR(k->prov, MGP_R_BAD_ARGUMENT, "input too large for the RSA modulus");
        goto out;
    }
    if ((b = blind_take(c, bn)) == NULL || BN_mod_mul_montgomery(x, x, b->A, c->mont, bn) != 1)
        goto out;
    struct priv_op o = {c, x, b->Ai, bn, finish, arg};
    rc = mgp_key_with_params(k, 3 * c->bytes + scratch, private_op, &o);
    /* OpenSSL's exponentiation (RSAZ) copies dP and dQ into its stack frames and leaves them there
     * (provider.inop found them between operations): clear the stack below us and the registers. */
    mg_scrub(MGP_SCRUB_STACK);
    if (rc == 1) {
        blind_give_back(c, b, bn);
        b = NULL;
    }
out:
    blind_free(b);
    BN_clear_free(x);
    BN_CTX_free(bn);
    return rc;
}

/* ---- parameters: the fast path takes only what it fully understands ---- */

int mgp_rsa_pad_mode(const OSSL_PARAM *params, int dflt)
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

static int copy_signature(unsigned char *y, size_t len, const BIGNUM *d, unsigned char *scratch, void *arg)
{
    (void)d;
    (void)scratch;
    memcpy(arg, y, len);
    return 1;
}

int mgp_rsa_sign(mgp_key *k, const EVP_MD *md, const OSSL_PARAM *params, const unsigned char *tbs, size_t tbslen,
                 unsigned char *sig, size_t *siglen, size_t sigsize)
{
    static const char *const known[] = {OSSL_SIGNATURE_PARAM_DIGEST, OSSL_SIGNATURE_PARAM_PAD_MODE,
                                        OSSL_SIGNATURE_PARAM_PSS_SALTLEN, OSSL_SIGNATURE_PARAM_MGF1_DIGEST, NULL};
    if (strcmp(k->type, "RSA") != 0 || md == NULL || !only_known_params(params, known))
        return MGP_RSA_SLOW_PATH;
    int mode = mgp_rsa_pad_mode(params, RSA_PKCS1_PADDING), saltlen = 0;
    if ((mode != RSA_PKCS1_PADDING && mode != RSA_PKCS1_PSS_PADDING) ||
        (mode == RSA_PKCS1_PSS_PADDING && !salt_length(params, &saltlen)))
        return MGP_RSA_SLOW_PATH;
    struct mgp_rsa_cache *c = cache_of(k);
    if (c == NULL)
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
    rc = blinded_private(k, c, em, 0, copy_signature, sig);
    if (rc == 1)
        *siglen = c->bytes;
out:
    OPENSSL_free(em); /* the encoded digest: public once signed */
    EVP_MD_free(mgf1);
    return rc;
}

/* ---- decryption ---- */

enum dec_mode { DEC_OAEP, DEC_PKCS1, DEC_PKCS1_IR, DEC_TLS };

struct dec {
    mgp_key *k;
    enum dec_mode mode;
    const unsigned char *ct; /* the ciphertext, |n| bytes: input of the implicit-rejection key */
    unsigned char *out;
    size_t outsize, *outlen;
    const EVP_MD *mgf1;
    unsigned char lhash[EVP_MAX_MD_SIZE]; /* OAEP: hash of the label (public) */
    size_t hlen;
    unsigned client_version, alt_version; /* TLS */
    size_t good;                          /* the verdict, a mask: all ones if the padding was right */
};

/* Guarded scratch the finish step needs beyond the padded plaintext (its layouts below). */
/* The HMAC state of implicit rejection lives here too (mgp_hmac_in), 64-byte aligned after the SHA-256
 * state: in the reserved workspace, so that decryption needs no new locked memory (provider.memlock). */
static size_t dec_scratch(size_t k)
{
    return 2 * k + 2 * LEN_TRIES + 3 * SHA256_DIGEST_LENGTH + sizeof(SHA256_CTX) + 64 + MGP_SLOT_SIZE + 64;
}

/* RFC 8017 7.1.2: 00 || maskedSeed || maskedDB, DB = lHash || 00..00 || 01 || M. */
static int unpad_oaep(struct dec *u, const unsigned char *em, size_t k, unsigned char *scratch)
{
    size_t h = u->hlen, dblen = k - h - 1;
    unsigned char *seed = scratch, *db = scratch + EVP_MAX_MD_SIZE;
    if (PKCS1_MGF1(seed, (long)h, em + 1 + h, (long)dblen, u->mgf1) != 0)
        return 0;
    for (size_t i = 0; i < h; i++)
        seed[i] ^= em[1 + i];
    if (PKCS1_MGF1(db, (long)dblen, seed, (long)h, u->mgf1) != 0)
        return 0;
    for (size_t i = 0; i < dblen; i++)
        db[i] ^= em[1 + h + i];
    size_t good = ct_is_zero(em[0]) & ct_is_zero((size_t)(unsigned)CRYPTO_memcmp(db, u->lhash, h));
    size_t found = 0, stray = 0, one = 0;
    for (size_t i = h; i < dblen; i++) {
        size_t zero = ct_is_zero(db[i]), is_one = ct_eq(db[i], 1);
        one = ct_sel(~found & is_one, i, one);
        stray |= ~found & ~zero & ~is_one;
        found |= is_one;
    }
    size_t mlen = dblen - one - 1;
    good &= found & ~stray & ct_ge(u->outsize, mlen);
    ct_deliver(db, dblen, h + 1, mlen, good, u->out);
    *u->outlen = ct_sel(good, mlen, *u->outlen);
    u->good = good;
    return 1;
}

/* 16 big-endian bits. */
static void be16(unsigned char *b, size_t v)
{
    b[0] = (unsigned char)(v >> 8);
    b[1] = (unsigned char)v;
}

/* The implicit-rejection PRF: len bytes of HMAC(kdk, i || label || bits(len)) for i = 0, 1, ... */
static void ir_prf(mgp_hmac *h, const char *label, unsigned char *out, size_t len, unsigned char *block)
{
    unsigned char head[2], tail[2];
    be16(tail, len * 8);
    for (size_t pos = 0, i = 0; pos < len; pos += SHA256_DIGEST_LENGTH, i++) {
        mgp_hmac_restart(h);
        be16(head, i);
        mgp_hmac_update(h, head, 2);
        mgp_hmac_update(h, (const unsigned char *)label, strlen(label));
        mgp_hmac_update(h, tail, 2);
        mgp_hmac_final(h, block);
        size_t n = len - pos < SHA256_DIGEST_LENGTH ? len - pos : SHA256_DIGEST_LENGTH;
        memcpy(out + pos, block, n);
    }
}

/*
 * The synthetic message of implicit rejection (the algorithm of OpenSSL >= 3.2, so that both give
 * the same bytes): KDK = HMAC-SHA256(key SHA-256(d as |n| bytes), ciphertext); the message is the
 * last L bytes of PRF(KDK, "message"), L the last of 128 candidates from PRF(KDK, "length") masked
 * to the bit length of |n| - 10 that is below |n| - 10. Everything in guarded scratch.
 */
static int ir_synthetic(const struct dec *u, const BIGNUM *d, size_t k, unsigned char *synth, size_t *synlen,
                        unsigned char *scratch)
{
    unsigned char *lens = scratch, *key = lens + 2 * LEN_TRIES, *kdk = key + SHA256_DIGEST_LENGTH,
                  *block = kdk + SHA256_DIGEST_LENGTH, *dpad = block + SHA256_DIGEST_LENGTH;
    /* The SHA-256 state follows dpad (|n| bytes), 16-byte aligned (dec_scratch leaves room for it). */
    SHA256_CTX *sha = (SHA256_CTX *)(((uintptr_t)(dpad + k) + 15) & ~(uintptr_t)15);
    const mgp_hmac_md *md = mgp_hmac_md_by_name("SHA256");
    mgp_hmac *h = mgp_hmac_in((void *)(((uintptr_t)(sha + 1) + 63) & ~(uintptr_t)63));
    int ok = md != NULL && h != NULL && BN_bn2binpad(d, dpad, (int)k) == (int)k && SHA256_Init(sha) == 1 &&
             SHA256_Update(sha, dpad, k) == 1 && SHA256_Final(key, sha) == 1;
    OPENSSL_cleanse(dpad, k);
    OPENSSL_cleanse(sha, sizeof *sha);
    if (ok) {
        mgp_hmac_set_key(h, md, key, SHA256_DIGEST_LENGTH);
        mgp_hmac_update(h, u->ct, k);
        mgp_hmac_final(h, kdk);
        mgp_hmac_set_key(h, md, kdk, SHA256_DIGEST_LENGTH);
        ir_prf(h, "message", synth, k, block);
        ir_prf(h, "length", lens, 2 * LEN_TRIES, block);
        size_t max = k - 2 - 8, mask = max;
        for (size_t s = 1; s < sizeof mask * CHAR_BIT; s <<= 1)
            mask |= mask >> s;
        size_t len = 0;
        for (size_t i = 0; i < LEN_TRIES; i++) {
            size_t cand = (((size_t)lens[2 * i] << 8) | lens[2 * i + 1]) & mask;
            len = ct_sel(ct_lt(cand, max), cand, len);
        }
        *synlen = len;
    }
    mgp_hmac_free(h);
    OPENSSL_cleanse(key, 3 * SHA256_DIGEST_LENGTH);
    if (!ok)
        MGP_ERR(u->k->prov, MGP_R_OPERATION_FAILED, "RSA decryption: implicit rejection key failed");
    return ok;
}

/* RFC 8017 7.2.2: 00 || 02 || PS (>= 8 nonzero bytes) || 00 || M; with implicit rejection, never a failure. */
static int unpad_pkcs1(struct dec *u, unsigned char *em, size_t k, const BIGNUM *d, unsigned char *scratch)
{
    size_t good = ct_is_zero(em[0]) & ct_eq(em[1], 2), found = 0, zero_at = 0;
    for (size_t i = 2; i < k; i++) {
        size_t zero = ct_is_zero(em[i]);
        zero_at = ct_sel(~found & zero, i, zero_at);
        found |= zero;
    }
    good &= ct_ge(zero_at, 2 + 8); /* also false when there is no zero byte (zero_at stays 0) */
    size_t mlen = k - zero_at - 1;
    if (u->mode == DEC_PKCS1) {
        good &= ct_ge(u->outsize, mlen);
        ct_deliver(em, k, PKCS1_PAD, mlen, good, u->out);
        *u->outlen = ct_sel(good, mlen, *u->outlen);
        u->good = good;
        return 1;
    }
    unsigned char *synth = scratch;
    size_t synlen = 0;
    if (!ir_synthetic(u, d, k, synth, &synlen, scratch + k))
        return 0;
    /* Both candidates start at or after byte 11; pick one byte by byte, then move it as above. */
    for (size_t i = 0; i < k; i++)
        synth[i] = ct_sel8(good, em[i], synth[i]);
    mlen = ct_sel(good, mlen, synlen);
    ct_deliver(synth, k, PKCS1_PAD, mlen, ~(size_t)0, u->out);
    *u->outlen = mlen;
    u->good = ~(size_t)0; /* nothing to report, whatever the padding was */
    return 1;
}

/* TLS 1.2 RSA key exchange (RFC 5246 7.4.7.1): a bad padding or version yields a random premaster. */
static int unpad_tls(struct dec *u, const unsigned char *em, size_t k, unsigned char *scratch)
{
    unsigned char *rnd = scratch;
    if (RAND_priv_bytes_ex(u->k->prov->libctx, rnd, TLS_PREMASTER, 0) != 1) {
        MGP_ERR(u->k->prov, MGP_R_OPERATION_FAILED, "RSA decryption: no random premaster");
        return 0;
    }
    size_t v = k - TLS_PREMASTER, good = ct_is_zero(em[0]) & ct_eq(em[1], 2);
    for (size_t i = 2; i < v - 1; i++)
        good &= ~ct_is_zero(em[i]);
    good &= ct_is_zero(em[v - 1]);
    size_t version = ct_eq(em[v], (u->client_version >> 8) & 0xff) & ct_eq(em[v + 1], u->client_version & 0xff);
    /* The negotiated version instead, for clients with the rollback bug (libssl passes it only then). */
    if (u->alt_version > 0)
        version |= ct_eq(em[v], (u->alt_version >> 8) & 0xff) & ct_eq(em[v + 1], u->alt_version & 0xff);
    good &= version;
    for (size_t i = 0; i < TLS_PREMASTER; i++)
        u->out[i] = ct_sel8(good, em[v + i], rnd[i]);
    *u->outlen = TLS_PREMASTER;
    u->good = ~(size_t)0; /* success whatever happened: the handshake's Finished check decides */
    return 1;
}

static int unpad(unsigned char *em, size_t len, const BIGNUM *d, unsigned char *scratch, void *arg)
{
    struct dec *u = arg;
    switch (u->mode) {
    case DEC_OAEP: return unpad_oaep(u, em, len, scratch);
    case DEC_TLS: return unpad_tls(u, em, len, scratch);
    default: return unpad_pkcs1(u, em, len, d, scratch);
    }
}

/*
 * The verdict of an OAEP or plain PKCS#1 decryption reaches the caller as its return value, as it
 * does with OpenSSL; what must not differ is the work around it. The error is always raised,
 * above a mark, and then either the mark is dropped (failure: the error stays) or the queue is
 * popped back to it (success). Both walk the same one entry, and popping keeps the entry's data
 * buffer for reuse, so neither frees; the verdict picks which of the two is called. This is the
 * nearest the public API comes to OpenSSL's internal err_clear_last_constant_time.
 */
static int report_verdict(mgp_key *k, size_t good)
{
    static int (*const settle[2])(void) = {ERR_clear_last_mark, ERR_pop_to_mark};
    size_t ok = ct_barrier(good & 1);
    ERR_set_mark();
    MGP_ERR(k->prov, MGP_R_OPERATION_FAILED, "RSA decryption failed");
    settle[ok]();
    return (int)ok;
}

static bool get_uint(const OSSL_PARAM *params, const char *name, unsigned *v, bool *present)
{
    const OSSL_PARAM *p = OSSL_PARAM_locate_const(params, name);
    *present = p != NULL;
    return p == NULL || OSSL_PARAM_get_uint(p, v);
}

int mgp_rsa_decrypt(mgp_key *k, const OSSL_PARAM *params, const unsigned char *in, size_t inlen, unsigned char *out,
                    size_t *outlen, size_t outsize)
{
    static const char *const known[] = {OSSL_ASYM_CIPHER_PARAM_PAD_MODE,
                                        OSSL_ASYM_CIPHER_PARAM_OAEP_DIGEST,
                                        OSSL_ASYM_CIPHER_PARAM_MGF1_DIGEST,
                                        OSSL_ASYM_CIPHER_PARAM_OAEP_LABEL,
                                        MGP_ASYM_CIPHER_PARAM_IMPLICIT_REJECTION,
                                        OSSL_ASYM_CIPHER_PARAM_TLS_CLIENT_VERSION,
                                        OSSL_ASYM_CIPHER_PARAM_TLS_NEGOTIATED_VERSION,
                                        NULL};
    if (strcmp(k->type, "RSA") != 0 || !only_known_params(params, known))
        return MGP_RSA_SLOW_PATH;
    int pad = mgp_rsa_pad_mode(params, RSA_PKCS1_PADDING);
    if (pad != RSA_PKCS1_PADDING && pad != RSA_PKCS1_OAEP_PADDING && pad != RSA_PKCS1_WITH_TLS_PADDING)
        return MGP_RSA_SLOW_PATH;
    struct mgp_rsa_cache *c = cache_of(k);
    /* Wrong ciphertext lengths and moduli too large for the PRF's 16-bit length: the EVP path, as OpenSSL does. */
    if (c == NULL || inlen != c->bytes || c->bytes * 8 > 0xffff || c->bytes < PKCS1_PAD + TLS_PREMASTER)
        return MGP_RSA_SLOW_PATH;
    struct dec u = {.k = k, .ct = in, .out = out, .outsize = outsize, .outlen = outlen, .good = 0};
    size_t need = pad == RSA_PKCS1_WITH_TLS_PADDING ? TLS_PREMASTER : c->bytes;
    if (outsize < need) { /* public: the default provider refuses the same sizes */
        MGP_ERR(k->prov, MGP_R_BAD_ARGUMENT, "output buffer of %zu bytes, %zu needed", outsize, need);
        return 0;
    }
    EVP_MD *md = NULL, *mgf1 = NULL;
    int rc = 0;
    bool present = false;
    if (pad == RSA_PKCS1_PADDING) {
        unsigned ir = 1;
        if (!get_uint(params, MGP_ASYM_CIPHER_PARAM_IMPLICIT_REJECTION, &ir, &present)) {
            MGP_ERR(k->prov, MGP_R_BAD_ARGUMENT, "implicit-rejection must be an unsigned integer");
            return 0;
        }
        u.mode = ir != 0 ? DEC_PKCS1_IR : DEC_PKCS1;
    } else if (pad == RSA_PKCS1_WITH_TLS_PADDING) {
        u.mode = DEC_TLS;
        if (!get_uint(params, OSSL_ASYM_CIPHER_PARAM_TLS_CLIENT_VERSION, &u.client_version, &present) ||
            u.client_version == 0 ||
            !get_uint(params, OSSL_ASYM_CIPHER_PARAM_TLS_NEGOTIATED_VERSION, &u.alt_version, &present)) {
            MGP_ERR(k->prov, MGP_R_BAD_ARGUMENT, "TLS padding without a valid client version");
            return 0;
        }
    } else {
        u.mode = DEC_OAEP;
        const OSSL_PARAM *l = OSSL_PARAM_locate_const(params, OSSL_ASYM_CIPHER_PARAM_OAEP_LABEL);
        if (l != NULL && l->data_type != OSSL_PARAM_OCTET_STRING)
            return MGP_RSA_SLOW_PATH;
        unsigned int hl = 0;
        if ((md = fetch_md(k, params, OSSL_ASYM_CIPHER_PARAM_OAEP_DIGEST, "SHA1")) == NULL ||
            (mgf1 = fetch_md(k, params, OSSL_ASYM_CIPHER_PARAM_MGF1_DIGEST, EVP_MD_get0_name(md))) == NULL ||
            EVP_Digest(l != NULL && l->data != NULL ? l->data : "", l != NULL ? l->data_size : 0, u.lhash, &hl, md, NULL) != 1) {
            rc = MGP_RSA_SLOW_PATH;
            goto out;
        }
        u.hlen = hl;
        u.mgf1 = mgf1;
        if (c->bytes < 2 * u.hlen + 2) { /* public: the key is too small for this digest */
            MGP_ERR(k->prov, MGP_R_OPERATION_FAILED, "RSA decryption failed: key too small for OAEP with %s",
                    EVP_MD_get0_name(md));
            goto out;
        }
    }
    rc = blinded_private(k, c, in, dec_scratch(c->bytes), unpad, &u);
    if (rc == 1)
        rc = report_verdict(k, u.good);
out:
    EVP_MD_free(md);
    EVP_MD_free(mgf1);
    return rc;
}
