/*
 * SIGNATURE over the sealed key. Initialisation only records the digest and
 * parameters (libssl calls digest_sign_init once per candidate sigalg just to
 * ask "would this work?", so it must be cheap and never unseal). The private
 * key is unsealed only inside sign / digest_sign / digest_sign_final.
 * Verification uses the public key and never unseals.
 */
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/params.h>
#include <sodium.h>

#include "provider.h"

typedef struct sig_ctx {
    mgp_ctx *prov;
    const char *alg; /* "RSA", "ECDSA", "ED25519", "ED448" */
    bool eddsa;
    mgp_key *key;
    char *mdname;
    OSSL_PARAM *params; /* accumulated set_ctx_params, copied */
    EVP_MD_CTX *md;     /* streaming digest_sign/verify_update */
    EVP_MD *digest;     /* mdname fetched once (fetching costs ~1 us a signature) */
} sig_ctx;

static void *sig_new(void *provctx, const char *alg)
{
    sig_ctx *c = OPENSSL_zalloc(sizeof *c);
    if (c == NULL)
        return NULL;
    c->prov = provctx;
    c->alg = alg;
    c->eddsa = strncmp(alg, "ED", 2) == 0;
    return c;
}

static void sig_free(void *vctx)
{
    sig_ctx *c = vctx;
    if (c == NULL)
        return;
    mgp_key_free(c->key);
    OPENSSL_free(c->mdname);
    OSSL_PARAM_free(c->params);
    EVP_MD_CTX_free(c->md);
    EVP_MD_free(c->digest);
    OPENSSL_free(c);
}

static void *sig_dup(void *vctx)
{
    sig_ctx *c = vctx, *d = sig_new(c->prov, c->alg);
    if (d == NULL)
        return NULL;
    d->key = mgp_key_up(c->key);
    if ((c->mdname != NULL && (d->mdname = OPENSSL_strdup(c->mdname)) == NULL) ||
        (c->params != NULL && (d->params = OSSL_PARAM_dup(c->params)) == NULL) ||
        (c->md != NULL && ((d->md = EVP_MD_CTX_new()) == NULL || !EVP_MD_CTX_copy_ex(d->md, c->md)))) {
        sig_free(d);
        return NULL;
    }
    if (c->digest != NULL && EVP_MD_up_ref(c->digest) == 1) /* else fetched again when needed */
        d->digest = c->digest;
    return d;
}

static int set_params(void *vctx, const OSSL_PARAM params[])
{
    sig_ctx *c = vctx;
    if (params == NULL || params[0].key == NULL)
        return 1;
    const OSSL_PARAM *p = OSSL_PARAM_locate_const(params, OSSL_SIGNATURE_PARAM_DIGEST);
    if (p != NULL) {
        char *md = NULL;
        if (!OSSL_PARAM_get_utf8_string(p, &md, 0))
            return 0;
        OPENSSL_free(c->mdname);
        c->mdname = md;
        EVP_MD_free(c->digest);
        c->digest = NULL;
    }
    return mgp_params_merge(&c->params, params);
}

/* Record key, digest and parameters; check the digest exists, without unsealing anything. */
static int begin(sig_ctx *c, void *key, const char *mdname, const OSSL_PARAM params[], bool need_private)
{
    mgp_key *k = key;
    if (k == NULL && c->key == NULL) {
        MGP_ERR(c->prov, MGP_R_NO_KEY, "no key");
        return 0;
    }
    if (k != NULL) {
        if (need_private && !mgp_key_usable(c->prov, k))
            return 0;
        if (k->pub == NULL) {
            MGP_ERR(c->prov, MGP_R_NOT_PRIVATE, "%s", need_private ? "not a private key" : "no public key");
            return 0;
        }
        mgp_key_free(c->key);
        c->key = mgp_key_up(k);
    }
    if (mdname != NULL && *mdname != '\0') {
        if (c->eddsa) {
            MGP_ERR(c->prov, MGP_R_BAD_ARGUMENT, "%s takes no digest", c->alg);
            return 0;
        }
        EVP_MD *md = EVP_MD_fetch(c->prov->libctx, mdname, NULL);
        if (md == NULL)
            return 0;
        EVP_MD_free(c->digest);
        c->digest = md;
        OPENSSL_free(c->mdname);
        if ((c->mdname = OPENSSL_strdup(mdname)) == NULL)
            return 0;
    }
    EVP_MD_CTX_free(c->md);
    c->md = NULL;
    return set_params(c, params);
}

static int sign_init(void *vctx, void *key, const OSSL_PARAM params[])
{
    return begin(vctx, key, NULL, params, true);
}

static int verify_init(void *vctx, void *key, const OSSL_PARAM params[])
{
    return begin(vctx, key, NULL, params, false);
}

static int digest_sign_init(void *vctx, const char *mdname, void *key, const OSSL_PARAM params[])
{
    return begin(vctx, key, mdname, params, true);
}

static int digest_verify_init(void *vctx, const char *mdname, void *key, const OSSL_PARAM params[])
{
    return begin(vctx, key, mdname, params, false);
}

static size_t max_size(const sig_ctx *c)
{
    return (size_t)EVP_PKEY_get_size(c->key->pub);
}

/* The signature digest for a raw sign/verify of an already computed digest. */
static int set_md(EVP_PKEY_CTX *p, const char *mdname)
{
    if (mdname == NULL)
        return 1;
    OSSL_PARAM params[] = {
        OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_DIGEST, (char *)(uintptr_t)mdname, strlen(mdname)),
        OSSL_PARAM_END,
    };
    return EVP_PKEY_CTX_set_params(p, params) == 1;
}

/* The signature's digest (SHA-256 when none was given), fetched once per context. */
static const EVP_MD *digest_of(sig_ctx *c)
{
    if (c->digest == NULL)
        c->digest = EVP_MD_fetch(c->prov->libctx, c->mdname != NULL ? c->mdname : "SHA256", NULL);
    return c->digest;
}

/* ---- the operations that need the private key ---- */

struct sign_args {
    sig_ctx *c;
    unsigned char *sig;
    size_t *siglen;
    size_t sigsize;
    const unsigned char *tbs;
    size_t tbslen;
    bool digest_first; /* one-shot DigestSign over tbs; else tbs is already the digest */
};

static int do_sign(EVP_PKEY *full, void *varg)
{
    struct sign_args *a = varg;
    sig_ctx *c = a->c;
    size_t len = a->sigsize;
    int ok = 0;
    if (a->digest_first) {
        EVP_MD_CTX *m = EVP_MD_CTX_new();
        ok = m != NULL &&
             EVP_DigestSignInit_ex(m, NULL, c->mdname, c->prov->libctx, "provider=default", full, c->params) == 1 &&
             EVP_DigestSign(m, a->sig, &len, a->tbs, a->tbslen) == 1;
        EVP_MD_CTX_free(m);
    } else {
        EVP_PKEY_CTX *p = EVP_PKEY_CTX_new_from_pkey(c->prov->libctx, full, "provider=default");
        ok = p != NULL && EVP_PKEY_sign_init_ex(p, c->params) == 1 && set_md(p, c->mdname) &&
             EVP_PKEY_sign(p, a->sig, &len, a->tbs, a->tbslen) == 1;
        EVP_PKEY_CTX_free(p);
    }
    if (ok)
        *a->siglen = len;
    else
        MGP_ERR(c->prov, MGP_R_OPERATION_FAILED, "%s signature failed", c->alg);
    return ok;
}

/* ECDSA: hash here (public), then sign the digest unsealing only the scalar. */
static int ecdsa_sign(sig_ctx *c, unsigned char *sig, size_t *siglen, size_t sigsize, const unsigned char *tbs,
                      size_t tbslen, bool digest_first)
{
    unsigned char dgst[EVP_MAX_MD_SIZE];
    size_t dlen = tbslen;
    if (digest_first) {
        const EVP_MD *md = digest_of(c);
        unsigned int l = 0;
        if (md == NULL || EVP_Digest(tbs, tbslen, dgst, &l, md, NULL) != 1)
            return 0;
        tbs = dgst;
        dlen = l;
    }
    int ok = mgp_ecdsa_sign_digest(c->key, tbs, dlen, sig, siglen, sigsize);
    if (!ok)
        MGP_ERR(c->prov, MGP_R_OPERATION_FAILED, "ECDSA signature failed");
    return ok;
}

/* RSA: hash here, then the fast path (rsa.c) unless it declines the parameters. */
static int rsa_sign(sig_ctx *c, unsigned char *sig, size_t *siglen, size_t sigsize, const unsigned char *tbs,
                    size_t tbslen, bool digest_first)
{
    unsigned char dgst[EVP_MAX_MD_SIZE];
    if (digest_first) {
        if (c->mdname == NULL)
            return MGP_RSA_SLOW_PATH;
        const EVP_MD *md = digest_of(c);
        unsigned int l = 0;
        if (md == NULL || EVP_Digest(tbs, tbslen, dgst, &l, md, NULL) != 1)
            return MGP_RSA_SLOW_PATH;
        tbs = dgst;
        tbslen = l;
    }
    return mgp_rsa_sign(c->key, c->mdname != NULL ? digest_of(c) : NULL, c->params, tbs, tbslen, sig, siglen,
                        sigsize);
}

static int run_sign(sig_ctx *c, unsigned char *sig, size_t *siglen, size_t sigsize, const unsigned char *tbs,
                    size_t tbslen, bool digest_first)
{
    if (c->key == NULL)
        return 0;
    if (sig == NULL) { /* size query: nothing secret needed */
        *siglen = max_size(c);
        return 1;
    }
    if (strcmp(c->alg, "ECDSA") == 0)
        return ecdsa_sign(c, sig, siglen, sigsize, tbs, tbslen, digest_first);
    if (strcmp(c->alg, "RSA") == 0) {
        int rc = rsa_sign(c, sig, siglen, sigsize, tbs, tbslen, digest_first);
        if (rc != MGP_RSA_SLOW_PATH)
            return rc;
    }
    struct sign_args a = {c, sig, siglen, sigsize, tbs, tbslen, digest_first};
    return mgp_key_with_private(c->key, do_sign, &a);
}

static int sign(void *vctx, unsigned char *sig, size_t *siglen, size_t sigsize, const unsigned char *tbs, size_t tbslen)
{
    return run_sign(vctx, sig, siglen, sigsize, tbs, tbslen, false);
}

/*
 * Ed25519 through libsodium: the 32-byte seed is unsealed into guarded scratch,
 * libsodium's secret key (seed | public key) is assembled in guarded workspace
 * beside it, and nothing is handed to OpenSSL. Signatures are the same bytes
 * (Ed25519 is deterministic), at about half the cost of rebuilding an EVP_PKEY.
 */
struct ed_args {
    const unsigned char *pub;
    const unsigned char *tbs;
    size_t tbslen;
    unsigned char *sig;
};

static int ed25519_with_seed(const unsigned char *seed, size_t len, unsigned char *work, void *varg)
{
    struct ed_args *a = varg;
    if (len != crypto_sign_SEEDBYTES)
        return 0;
    memcpy(work, seed, 32);
    memcpy(work + 32, a->pub, 32);
    return crypto_sign_detached(a->sig, NULL, a->tbs, a->tbslen, work) == 0;
}

static int ed25519_sign(sig_ctx *c, unsigned char *sig, size_t *siglen, size_t sigsize, const unsigned char *tbs,
                        size_t tbslen)
{
    unsigned char pub[32];
    size_t publen = sizeof pub;
    if (sigsize < crypto_sign_BYTES || EVP_PKEY_get_raw_public_key(c->key->pub, pub, &publen) != 1 || publen != 32)
        return 0;
    struct ed_args a = {pub, tbs, tbslen, sig};
    if (!mgp_key_with_param(c->key, OSSL_PKEY_PARAM_PRIV_KEY, crypto_sign_SECRETKEYBYTES, ed25519_with_seed, &a))
        return 0;
    *siglen = crypto_sign_BYTES;
    return 1;
}

static int digest_sign(void *vctx, unsigned char *sig, size_t *siglen, size_t sigsize, const unsigned char *tbs,
                       size_t tbslen)
{
    sig_ctx *c = vctx;
    if (sig != NULL && c->key != NULL && strcmp(c->alg, "ED25519") == 0)
        return ed25519_sign(c, sig, siglen, sigsize, tbs, tbslen);
    return run_sign(vctx, sig, siglen, sigsize, tbs, tbslen, true);
}

/* Streaming: hash here (nothing secret), unseal only at final to sign the digest. */
static int digest_update(void *vctx, const unsigned char *data, size_t datalen)
{
    sig_ctx *c = vctx;
    if (c->eddsa) {
        MGP_ERR(c->prov, MGP_R_UNSUPPORTED, "%s signs in one shot only", c->alg);
        return 0;
    }
    if (c->md == NULL) {
        const EVP_MD *md = digest_of(c);
        c->md = EVP_MD_CTX_new();
        int ok = md != NULL && c->md != NULL && EVP_DigestInit_ex2(c->md, md, NULL) == 1;
        if (!ok)
            return 0;
        if (c->mdname == NULL && (c->mdname = OPENSSL_strdup("SHA256")) == NULL)
            return 0;
    }
    return EVP_DigestUpdate(c->md, data, datalen) == 1;
}

/* The digest of everything streamed so far (of nothing, if nothing was). */
static int finish_digest(sig_ctx *c, unsigned char dgst[EVP_MAX_MD_SIZE], unsigned int *dlen)
{
    if (c->md == NULL && !digest_update(c, NULL, 0))
        return 0;
    return EVP_DigestFinal_ex(c->md, dgst, dlen) == 1;
}

static int digest_sign_final(void *vctx, unsigned char *sig, size_t *siglen, size_t sigsize)
{
    sig_ctx *c = vctx;
    if (sig == NULL)
        return run_sign(c, NULL, siglen, sigsize, NULL, 0, false);
    unsigned char dgst[EVP_MAX_MD_SIZE];
    unsigned int dlen = 0;
    return finish_digest(c, dgst, &dlen) && run_sign(c, sig, siglen, sigsize, dgst, dlen, false);
}

/* ---- verification: the public key only ---- */

static int verify(void *vctx, const unsigned char *sig, size_t siglen, const unsigned char *tbs, size_t tbslen)
{
    sig_ctx *c = vctx;
    EVP_PKEY_CTX *p = EVP_PKEY_CTX_new_from_pkey(c->prov->libctx, c->key->pub, "provider=default");
    int ok = p != NULL && EVP_PKEY_verify_init_ex(p, c->params) == 1 && set_md(p, c->mdname) &&
             EVP_PKEY_verify(p, sig, siglen, tbs, tbslen) == 1;
    EVP_PKEY_CTX_free(p);
    return ok;
}

static int digest_verify(void *vctx, const unsigned char *sig, size_t siglen, const unsigned char *tbs, size_t tbslen)
{
    sig_ctx *c = vctx;
    EVP_MD_CTX *m = EVP_MD_CTX_new();
    int ok = m != NULL &&
             EVP_DigestVerifyInit_ex(m, NULL, c->mdname, c->prov->libctx, "provider=default", c->key->pub, c->params) ==
                 1 &&
             EVP_DigestVerify(m, sig, siglen, tbs, tbslen) == 1;
    EVP_MD_CTX_free(m);
    return ok;
}

static int digest_verify_final(void *vctx, const unsigned char *sig, size_t siglen)
{
    sig_ctx *c = vctx;
    unsigned char dgst[EVP_MAX_MD_SIZE];
    unsigned int dlen = 0;
    return finish_digest(c, dgst, &dlen) && verify(c, sig, siglen, dgst, dlen);
}

/* ---- parameters: delegated to the default implementation's view of the public key ---- */

static int get_params(void *vctx, OSSL_PARAM params[])
{
    sig_ctx *c = vctx;
    if (c->key == NULL)
        return 0;
    /* algorithm-id, digest, pad mode...: all derive from public data, so ask a verify context. */
    EVP_MD_CTX *m = EVP_MD_CTX_new();
    EVP_PKEY_CTX *p = NULL;
    int ok = m != NULL &&
             EVP_DigestVerifyInit_ex(m, &p, c->mdname, c->prov->libctx, "provider=default", c->key->pub, c->params) ==
                 1 &&
             EVP_PKEY_CTX_get_params(p, params) == 1;
    EVP_MD_CTX_free(m);
    return ok;
}

static const OSSL_PARAM *settable_for(mgp_ctx *prov, const char *alg)
{
    EVP_SIGNATURE *s = EVP_SIGNATURE_fetch(prov->libctx, alg, "provider=default");
    const OSSL_PARAM *p = EVP_SIGNATURE_settable_ctx_params(s);
    EVP_SIGNATURE_free(s);
    return p;
}

static const OSSL_PARAM *gettable_for(mgp_ctx *prov, const char *alg)
{
    EVP_SIGNATURE *s = EVP_SIGNATURE_fetch(prov->libctx, alg, "provider=default");
    const OSSL_PARAM *p = EVP_SIGNATURE_gettable_ctx_params(s);
    EVP_SIGNATURE_free(s);
    return p;
}

#define SIGNATURE(id, ALG)                                                                               \
    static void *id##_newctx(void *provctx, const char *propq)                                           \
    {                                                                                                    \
        (void)propq;                                                                                     \
        return sig_new(provctx, ALG);                                                                    \
    }                                                                                                    \
    static const OSSL_PARAM *id##_settable(void *vctx, void *provctx)                                    \
    {                                                                                                    \
        (void)vctx;                                                                                      \
        return settable_for(provctx, ALG);                                                               \
    }                                                                                                    \
    static const OSSL_PARAM *id##_gettable(void *vctx, void *provctx)                                    \
    {                                                                                                    \
        (void)vctx;                                                                                      \
        return gettable_for(provctx, ALG);                                                               \
    }                                                                                                    \
    const OSSL_DISPATCH mgp_##id##_signature[] = {                                                       \
        {OSSL_FUNC_SIGNATURE_NEWCTX, (void (*)(void))id##_newctx},                                       \
        {OSSL_FUNC_SIGNATURE_FREECTX, (void (*)(void))sig_free},                                         \
        {OSSL_FUNC_SIGNATURE_DUPCTX, (void (*)(void))sig_dup},                                           \
        {OSSL_FUNC_SIGNATURE_SIGN_INIT, (void (*)(void))sign_init},                                      \
        {OSSL_FUNC_SIGNATURE_SIGN, (void (*)(void))sign},                                                \
        {OSSL_FUNC_SIGNATURE_VERIFY_INIT, (void (*)(void))verify_init},                                  \
        {OSSL_FUNC_SIGNATURE_VERIFY, (void (*)(void))verify},                                            \
        {OSSL_FUNC_SIGNATURE_DIGEST_SIGN_INIT, (void (*)(void))digest_sign_init},                        \
        {OSSL_FUNC_SIGNATURE_DIGEST_SIGN_UPDATE, (void (*)(void))digest_update},                         \
        {OSSL_FUNC_SIGNATURE_DIGEST_SIGN_FINAL, (void (*)(void))digest_sign_final},                      \
        {OSSL_FUNC_SIGNATURE_DIGEST_SIGN, (void (*)(void))digest_sign},                                  \
        {OSSL_FUNC_SIGNATURE_DIGEST_VERIFY_INIT, (void (*)(void))digest_verify_init},                    \
        {OSSL_FUNC_SIGNATURE_DIGEST_VERIFY_UPDATE, (void (*)(void))digest_update},                       \
        {OSSL_FUNC_SIGNATURE_DIGEST_VERIFY_FINAL, (void (*)(void))digest_verify_final},                  \
        {OSSL_FUNC_SIGNATURE_DIGEST_VERIFY, (void (*)(void))digest_verify},                              \
        {OSSL_FUNC_SIGNATURE_GET_CTX_PARAMS, (void (*)(void))get_params},                                \
        {OSSL_FUNC_SIGNATURE_GETTABLE_CTX_PARAMS, (void (*)(void))id##_gettable},                        \
        {OSSL_FUNC_SIGNATURE_SET_CTX_PARAMS, (void (*)(void))set_params},                                \
        {OSSL_FUNC_SIGNATURE_SETTABLE_CTX_PARAMS, (void (*)(void))id##_settable},                        \
        {0, NULL},                                                                                       \
    };

SIGNATURE(rsa, "RSA")
SIGNATURE(ecdsa, "ECDSA")
SIGNATURE(ed25519, "ED25519")
SIGNATURE(ed448, "ED448")
