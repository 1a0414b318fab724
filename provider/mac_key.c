/*
 * HMAC keys as EVP_PKEY: KEYMGMT and SIGNATURE "HMAC".
 *
 * EVP_PKEY_new_raw_private_key_ex(libctx, "HMAC", "provider=memguard", key, len)
 * lands in import(): the raw key is sealed in an enclave (staged through
 * guarded memory, the caller's buffer untouched) and nothing else is kept.
 * EVP_DigestSignInit unseals it into this thread's guarded scratch just long
 * enough to derive the keyed digest states into the signature context's
 * guarded slot (hmac.c). Export of the key is refused, as for private keys:
 * EVP_PKEY_get_raw_private_key is an export, and a copy exported to the
 * default provider would be kept in plaintext for the key's lifetime.
 *
 * The sealed-OSSL_PARAM key of key.c is built around a public EVP_PKEY in the
 * private library context; an HMAC key has no public half, so it gets this
 * smaller object: one enclave holding the raw key bytes.
 */
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/params.h>

#include "hmac.h"

typedef struct mac_key {
    _Atomic int refs;
    mgp_ctx *prov;
    mg_enclave *key; /* the raw key bytes, sealed; for an empty key, one sealed placeholder byte */
    size_t len;      /* the real key length (0 is a valid HMAC key) */
} mac_key;

static void *km_new(void *provctx)
{
    mac_key *k = OPENSSL_zalloc(sizeof *k);
    if (k == NULL)
        return NULL;
    atomic_init(&k->refs, 1);
    k->prov = provctx;
    return k;
}

static void km_free(void *keydata)
{
    mac_key *k = keydata;
    if (k == NULL || atomic_fetch_sub(&k->refs, 1) != 1)
        return;
    mg_enclave_free(k->key);
    OPENSSL_free(k);
}

/* Sealed keys never change after import: a duplicate shares the object. */
static void *km_dup(const void *keydata, int selection)
{
    (void)selection;
    mac_key *k = (mac_key *)(uintptr_t)keydata;
    atomic_fetch_add(&k->refs, 1);
    return k;
}

static int km_has(const void *keydata, int selection)
{
    const mac_key *k = keydata;
    if (k == NULL)
        return 0;
    if (selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY)
        return k->key != NULL;
    return 1; /* an HMAC key has no public part or parameters to lack */
}

static const OSSL_PARAM import_types[] = {
    OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_PRIV_KEY, NULL, 0),
    OSSL_PARAM_END,
};

static const OSSL_PARAM *km_import_types(int selection)
{
    return (selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) ? import_types : NULL;
}

static int km_import(void *keydata, int selection, const OSSL_PARAM params[])
{
    mac_key *k = keydata;
    if (k == NULL || !(selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY))
        return 0;
    const OSSL_PARAM *p = OSSL_PARAM_locate_const(params, OSSL_PKEY_PARAM_PRIV_KEY);
    const void *raw = NULL;
    size_t len = 0;
    if (p == NULL || !OSSL_PARAM_get_octet_string_ptr(p, &raw, &len) || (raw == NULL && len > 0)) {
        MGP_ERR(k->prov, MGP_R_NO_KEY, "HMAC import without a key");
        return 0;
    }
    if (len > MGP_MAX_SECRET) {
        MGP_ERR(k->prov, MGP_R_BAD_ARGUMENT, "HMAC key of %zu bytes (at most %d)", len, MGP_MAX_SECRET);
        return 0;
    }
    mg_enclave *e = mgp_seal_copy(raw, len);
    if (e == NULL) {
        MGP_ERR(k->prov, MGP_R_SEAL_FAILED, "%s", mg_last_error_message());
        return 0;
    }
    mg_enclave_free(k->key);
    k->key = e;
    k->len = len;
    mgp_debug(k->prov, "HMAC key of %zu bytes sealed", len);
    return 1;
}

static const OSSL_PARAM *km_export_types(int selection)
{
    (void)selection;
    return NULL;
}

static int km_export(void *keydata, int selection, OSSL_CALLBACK *cb, void *cbarg)
{
    const mac_key *k = keydata;
    (void)cb;
    (void)cbarg;
    if (k != NULL && (selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY)) {
        MGP_ERR(k->prov, MGP_R_EXPORT_REFUSED, "HMAC key export refused");
        mgp_debug(k->prov, "HMAC key export refused");
        return 0;
    }
    return k != NULL; /* nothing public to export */
}

static const OSSL_PARAM km_gettable_list[] = {
    OSSL_PARAM_int(OSSL_PKEY_PARAM_MAX_SIZE, NULL),
    OSSL_PARAM_END,
};

static const OSSL_PARAM *km_gettable(void *provctx)
{
    (void)provctx;
    return km_gettable_list;
}

static int km_get_params(void *keydata, OSSL_PARAM params[])
{
    const mac_key *k = keydata;
    if (k != NULL && OSSL_PARAM_locate(params, OSSL_PKEY_PARAM_PRIV_KEY) != NULL) {
        MGP_ERR(k->prov, MGP_R_EXPORT_REFUSED, "HMAC key export refused");
        return 0;
    }
    return 1; /* max-size depends on the digest chosen at signing: left unset, as the default provider does */
}

static int cmp_inner(const void *a, size_t alen, void *arg)
{
    mg_buffer *b = arg;
    return mg_buffer_equal(b, a, alen) ? 1 : 0;
}

static int km_match(const void *a, const void *b, int selection)
{
    const mac_key *x = a, *y = b;
    if (x == NULL || y == NULL)
        return 0;
    /* EVP_PKEY_eq asks for the public key when has() says both have one: an HMAC key's identity is its secret. */
    if (!(selection & OSSL_KEYMGMT_SELECT_KEYPAIR))
        return 1;
    if (x->key == NULL || y->key == NULL || x->len != y->len)
        return 0;
    if (x == y)
        return 1;
    /* Both unsealed into guarded memory (one scratch, one frozen buffer), compared in constant time. */
    mg_buffer *bx = mg_enclave_open(x->key);
    if (bx == NULL) {
        MGP_ERR(x->prov, MGP_R_UNSEAL_FAILED, "%s", mg_last_error_message());
        return 0;
    }
    int rc = mg_enclave_with(y->key, cmp_inner, bx);
    mg_buffer_destroy(bx);
    return rc == 1;
}

#define FN(id, f) {id, (void (*)(void))(f)}

const OSSL_DISPATCH mgp_hmac_keymgmt[] = {
    FN(OSSL_FUNC_KEYMGMT_NEW, km_new),
    FN(OSSL_FUNC_KEYMGMT_FREE, km_free),
    FN(OSSL_FUNC_KEYMGMT_DUP, km_dup),
    FN(OSSL_FUNC_KEYMGMT_HAS, km_has),
    FN(OSSL_FUNC_KEYMGMT_MATCH, km_match),
    FN(OSSL_FUNC_KEYMGMT_IMPORT, km_import),
    FN(OSSL_FUNC_KEYMGMT_IMPORT_TYPES, km_import_types),
    FN(OSSL_FUNC_KEYMGMT_EXPORT, km_export),
    FN(OSSL_FUNC_KEYMGMT_EXPORT_TYPES, km_export_types),
    FN(OSSL_FUNC_KEYMGMT_GETTABLE_PARAMS, km_gettable),
    FN(OSSL_FUNC_KEYMGMT_GET_PARAMS, km_get_params),
    {0, NULL},
};

/* ---- SIGNATURE "HMAC": EVP_DigestSign* with a sealed HMAC key ---- */

typedef struct sig_ctx {
    mgp_ctx *prov;
    mac_key *key;
    mgp_hmac *h; /* NULL until keyed */
    bool done;   /* final happened: update or final again is a caller's bug */
} sig_ctx;

static void *sig_new(void *provctx, const char *propq)
{
    (void)propq;
    sig_ctx *c = OPENSSL_zalloc(sizeof *c);
    if (c != NULL)
        c->prov = provctx;
    return c;
}

static void sig_free(void *vctx)
{
    sig_ctx *c = vctx;
    if (c == NULL)
        return;
    mgp_hmac_free(c->h);
    km_free(c->key);
    OPENSSL_free(c);
}

/* EVP_DigestSignFinal finalises a duplicate (unless EVP_MD_CTX_FLAG_FINALISE): one per signature. */
static void *sig_dup(void *vctx)
{
    const sig_ctx *c = vctx;
    sig_ctx *d = sig_new(c->prov, NULL);
    if (d == NULL)
        return NULL;
    d->done = c->done;
    if (c->key != NULL)
        d->key = km_dup(c->key, 0);
    if (c->h != NULL && (d->h = mgp_hmac_dup(c->h)) == NULL) {
        MGP_ERR(c->prov, MGP_R_OPERATION_FAILED, "no guarded memory for the MAC state: %s", mg_last_error_message());
        sig_free(d);
        return NULL;
    }
    return d;
}

struct keying {
    mgp_hmac *h;
    const mgp_hmac_md *md;
    size_t len;
};

/* Runs inside mg_enclave_with: the key is in this thread's guarded scratch. */
static int key_state(const void *raw, size_t n, void *arg)
{
    struct keying *kg = arg;
    (void)n;
    mgp_hmac_set_key(kg->h, kg->md, raw, kg->len);
    return 1;
}

static int sig_digest_sign_init(void *vctx, const char *mdname, void *vkey, const OSSL_PARAM params[])
{
    sig_ctx *c = vctx;
    (void)params;
    mac_key *k = vkey != NULL ? vkey : c->key;
    if (k == NULL || k->key == NULL) {
        MGP_ERR(c->prov, MGP_R_NO_KEY, "no HMAC key");
        return 0;
    }
    const mgp_hmac_md *md = mgp_hmac_md_by_name(mdname);
    if (md == NULL) {
        MGP_ERR(c->prov, mdname == NULL ? MGP_R_BAD_ARGUMENT : MGP_R_UNSUPPORTED,
                "HMAC digest %s: memguard offers " MGP_HMAC_DIGESTS,
                mdname != NULL ? mdname : "(none given)");
        return 0;
    }
    if (c->h == NULL && (c->h = mgp_hmac_new()) == NULL) {
        MGP_ERR(c->prov, MGP_R_OPERATION_FAILED, "no guarded memory for the MAC state: %s", mg_last_error_message());
        return 0;
    }
    if (!mgp_hmac_alive(c->h)) {
        MGP_ERR(c->prov, MGP_R_UNSEAL_FAILED, "the MAC state was purged");
        return 0;
    }
    struct keying kg = {c->h, md, k->len};
    int rc = mg_enclave_with(k->key, key_state, &kg);
    if (rc != 1) {
        MGP_ERR(c->prov, MGP_R_UNSEAL_FAILED, "%s", mg_strerror(rc));
        return 0;
    }
    if (k != c->key) {
        km_dup(k, 0);
        km_free(c->key);
        c->key = k;
    }
    c->done = false;
    return 1;
}

static int ready(sig_ctx *c, const char *what)
{
    if (c->h == NULL || c->done) {
        MGP_ERR(c->prov, MGP_R_BAD_ARGUMENT, "HMAC %s %s", what, c->h == NULL ? "before init" : "after final");
        return 0;
    }
    if (!mgp_hmac_alive(c->h)) {
        MGP_ERR(c->prov, MGP_R_UNSEAL_FAILED, "the MAC state was purged");
        return 0;
    }
    return 1;
}

static int sig_digest_sign_update(void *vctx, const unsigned char *data, size_t len)
{
    sig_ctx *c = vctx;
    if (!ready(c, "update"))
        return 0;
    if (data == NULL && len > 0) {
        MGP_ERR(c->prov, MGP_R_BAD_ARGUMENT, "no input");
        return 0;
    }
    mgp_hmac_update(c->h, data, len);
    return 1;
}

static int sig_digest_sign_final(void *vctx, unsigned char *sig, size_t *siglen, size_t sigsize)
{
    sig_ctx *c = vctx;
    if (c->h == NULL || mgp_hmac_get_md(c->h) == NULL) {
        MGP_ERR(c->prov, MGP_R_BAD_ARGUMENT, "HMAC final before init");
        return 0;
    }
    size_t n = mgp_hmac_md_size(mgp_hmac_get_md(c->h));
    if (sig == NULL) { /* the size query */
        *siglen = n;
        return 1;
    }
    if (!ready(c, "final"))
        return 0;
    if (sigsize < n) {
        MGP_ERR(c->prov, MGP_R_BAD_ARGUMENT, "HMAC output buffer of %zu bytes, %zu needed", sigsize, n);
        return 0;
    }
    mgp_hmac_final(c->h, sig);
    *siglen = n;
    c->done = true;
    return 1;
}

const OSSL_DISPATCH mgp_hmac_signature[] = {
    FN(OSSL_FUNC_SIGNATURE_NEWCTX, sig_new),
    FN(OSSL_FUNC_SIGNATURE_FREECTX, sig_free),
    FN(OSSL_FUNC_SIGNATURE_DUPCTX, sig_dup),
    FN(OSSL_FUNC_SIGNATURE_DIGEST_SIGN_INIT, sig_digest_sign_init),
    FN(OSSL_FUNC_SIGNATURE_DIGEST_SIGN_UPDATE, sig_digest_sign_update),
    FN(OSSL_FUNC_SIGNATURE_DIGEST_SIGN_FINAL, sig_digest_sign_final),
    {0, NULL},
};
