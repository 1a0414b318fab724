/*
 * KEYMGMT for every key type, over the sealed key. Public parts and domain
 * parameters import, export and compare normally (certificate/key matching,
 * `openssl pkey -pubout`, EVP_PKEY_eq); export of the private key is refused,
 * because OpenSSL would otherwise copy it into a default-provider key and
 * keep it for the key's lifetime (evp_pkey_export_to_provider's cache).
 *
 * A refused key (mgp_key.refusal) answers has() = 1 for every selection: if it
 * said "no private key", PEM_read_bio_PrivateKey and d2i_PrivateKey would
 * discard it and build an unprotected key with libcrypto's legacy decoders.
 * Matching and export fail with its refusal, so SSL_CTX_use_PrivateKey and
 * X509_check_private_key fail at server start with memguard's reason.
 */
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/params.h>

#include "load.h"
#include "provider.h"

static void km_free(void *keydata)
{
    mgp_key_free(keydata);
}

static int km_has(const void *keydata, int selection)
{
    const mgp_key *k = keydata;
    if (k == NULL)
        return 0;
    if (k->refusal != NULL)
        return 1;
    int ok = 1;
    if (selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY)
        ok &= k->priv != NULL;
    if (selection & (OSSL_KEYMGMT_SELECT_PUBLIC_KEY | OSSL_KEYMGMT_SELECT_ALL_PARAMETERS))
        ok &= k->pub != NULL;
    return ok;
}

/* Sealed keys never change after creation, so a duplicate can share the object. */
static void *km_dup(const void *keydata, int selection)
{
    (void)selection;
    return mgp_key_up((mgp_key *)(uintptr_t)keydata);
}

static int km_match(const void *a, const void *b, int selection)
{
    const mgp_key *x = a, *y = b;
    for (const mgp_key *k = x; k != NULL; k = k == x ? y : NULL)
        if (k->refusal != NULL) {
            MGP_ERR(k->prov, k->refusal_reason, "%s key refused at load: %s", k->type, k->refusal);
            return 0;
        }
    if (x == NULL || y == NULL || x->pub == NULL || y->pub == NULL)
        return 0;
    if (selection & OSSL_KEYMGMT_SELECT_KEYPAIR)
        return EVP_PKEY_eq(x->pub, y->pub) == 1;
    if (selection & OSSL_KEYMGMT_SELECT_ALL_PARAMETERS)
        return EVP_PKEY_parameters_eq(x->pub, y->pub) == 1;
    return 1;
}

/*
 * EVP_PKEY_check and friends, and EVP_PKEY_derive_set_peer_ex(validate = 1) on a peer that
 * memguard holds: the public part is checked by the default provider, as it checks its own keys;
 * the private part and the pair were validated before sealing (validate.c), and a refused key is
 * never valid.
 */
static int km_validate(const void *keydata, int selection, int checktype)
{
    const mgp_key *k = keydata;
    if (k == NULL)
        return 0;
    if (k->refusal != NULL) {
        MGP_ERR(k->prov, k->refusal_reason, "%s key refused at load: %s", k->type, k->refusal);
        return 0;
    }
    if ((selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) && k->priv == NULL)
        return 0;
    if (!(selection & (OSSL_KEYMGMT_SELECT_PUBLIC_KEY | OSSL_KEYMGMT_SELECT_ALL_PARAMETERS)))
        return 1;
    if (k->pub == NULL)
        return 0;
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_pkey(k->prov->libctx, k->pub, "provider=default");
    int ok = 0;
    if (c != NULL) {
        if (selection & OSSL_KEYMGMT_SELECT_PUBLIC_KEY)
            ok = (checktype == OSSL_KEYMGMT_VALIDATE_QUICK_CHECK ? EVP_PKEY_public_check_quick(c)
                                                                 : EVP_PKEY_public_check(c)) == 1;
        else
            ok = EVP_PKEY_param_check(c) == 1;
    }
    EVP_PKEY_CTX_free(c);
    return ok;
}

static int km_import(void *keydata, int selection, const OSSL_PARAM params[])
{
    mgp_key *k = keydata;
    if (k == NULL)
        return 0;
    EVP_PKEY_CTX *pctx = EVP_PKEY_CTX_new_from_name(k->prov->libctx, k->type, "provider=default");
    EVP_PKEY *pk = NULL;
    int ok = 0;
    if (pctx == NULL || EVP_PKEY_fromdata_init(pctx) != 1)
        goto out;
    bool want_private = (selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) != 0;
    /* openssl#21596: an import may be labelled private without carrying a private key. */
    if (want_private && EVP_PKEY_fromdata(pctx, &pk, EVP_PKEY_KEYPAIR, (OSSL_PARAM *)(uintptr_t)params) == 1) {
        ok = mgp_key_set_from_pkey(k, pk);
        goto out;
    }
    /* A private part that does not import must not quietly become a public-only key. */
    if (want_private && (OSSL_PARAM_locate_const(params, OSSL_PKEY_PARAM_PRIV_KEY) != NULL ||
                         OSSL_PARAM_locate_const(params, OSSL_PKEY_PARAM_RSA_D) != NULL ||
                         OSSL_PARAM_locate_const(params, OSSL_PKEY_PARAM_RSA_FACTOR1) != NULL)) {
        MGP_ERR(k->prov, MGP_R_INVALID_KEY, "the %s private key does not import: its numbers are refused", k->type);
        goto out;
    }
    int sel = (selection & OSSL_KEYMGMT_SELECT_PUBLIC_KEY) || want_private ? EVP_PKEY_PUBLIC_KEY
                                                                             : EVP_PKEY_KEY_PARAMETERS;
    if (EVP_PKEY_fromdata(pctx, &pk, sel, (OSSL_PARAM *)(uintptr_t)params) == 1) {
        EVP_PKEY_free(k->pub);
        k->pub = pk;
        pk = NULL;
        ok = 1;
    }
out:
    EVP_PKEY_free(pk);
    EVP_PKEY_CTX_free(pctx);
    return ok;
}

static int km_export(void *keydata, int selection, OSSL_CALLBACK *cb, void *cbarg)
{
    mgp_key *k = keydata;
    if (k != NULL && k->refusal != NULL) {
        MGP_ERR(k->prov, k->refusal_reason, "%s key refused at load: %s", k->type, k->refusal);
        return 0;
    }
    if (k == NULL || k->pub == NULL)
        return 0;
    if (selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) {
        mgp_debug(k->prov, "refused to export a sealed %s private key (selection %#x)", k->type, selection);
        MGP_ERR(k->prov, MGP_R_EXPORT_REFUSED, "private key of type %s", k->type);
        return 0;
    }
    int sel = (selection & OSSL_KEYMGMT_SELECT_PUBLIC_KEY) ? EVP_PKEY_PUBLIC_KEY : EVP_PKEY_KEY_PARAMETERS;
    OSSL_PARAM *params = NULL;
    if (EVP_PKEY_todata(k->pub, sel, &params) != 1)
        return 0;
    int ok = cb(params, cbarg);
    OSSL_PARAM_free(params);
    return ok;
}

static int km_get_params(void *keydata, OSSL_PARAM params[])
{
    mgp_key *k = keydata;
    if (k == NULL || k->pub == NULL)
        return 0;
    /* Everything asked of a key (bits, max-size, group, pub, default digest) is public. */
    return EVP_PKEY_get_params(k->pub, params);
}

static const OSSL_PARAM *gettable_for(mgp_ctx *prov, const char *type)
{
    EVP_KEYMGMT *km = EVP_KEYMGMT_fetch(prov->libctx, type, "provider=default");
    const OSSL_PARAM *p = EVP_KEYMGMT_gettable_params(km); /* a static table of the default provider */
    EVP_KEYMGMT_free(km);
    return p;
}

/* ---- key generation: a generated private key is sealed from birth ---- */

struct gen_ctx {
    mgp_ctx *prov;
    const char *type;
    int selection;
    OSSL_PARAM *params;
};

static void *gen_init_for(void *provctx, const char *type, int selection, const OSSL_PARAM params[])
{
    struct gen_ctx *g = OPENSSL_zalloc(sizeof *g);
    if (g == NULL)
        return NULL;
    g->prov = provctx;
    g->type = type;
    g->selection = selection;
    if (params != NULL && params[0].key != NULL && (g->params = OSSL_PARAM_dup(params)) == NULL) {
        OPENSSL_free(g);
        return NULL;
    }
    return g;
}

static int gen_set_params(void *genctx, const OSSL_PARAM params[])
{
    struct gen_ctx *g = genctx;
    return mgp_params_merge(&g->params, params);
}

static void *gen(void *genctx, OSSL_CALLBACK *cb, void *cbarg)
{
    (void)cb;
    (void)cbarg;
    struct gen_ctx *g = genctx;
    EVP_PKEY_CTX *pctx = EVP_PKEY_CTX_new_from_name(g->prov->libctx, g->type, "provider=default");
    EVP_PKEY *full = NULL;
    mgp_key *k = NULL;
    if (pctx == NULL || EVP_PKEY_keygen_init(pctx) != 1 ||
        (g->params != NULL && EVP_PKEY_CTX_set_params(pctx, g->params) != 1) || EVP_PKEY_generate(pctx, &full) != 1) {
        MGP_ERR(g->prov, MGP_R_OPERATION_FAILED, "key generation for %s failed", g->type);
        goto out;
    }
    k = mgp_key_new(g->prov, g->type);
    if (k != NULL && !mgp_key_set_from_pkey(k, full)) {
        mgp_key_free(k);
        k = NULL;
    }
out:
    EVP_PKEY_free(full);
    EVP_PKEY_CTX_free(pctx);
    return k;
}

static void gen_cleanup(void *genctx)
{
    struct gen_ctx *g = genctx;
    if (g == NULL)
        return;
    OSSL_PARAM_free(g->params);
    OPENSSL_free(g);
}

static const OSSL_PARAM *gen_settable_for(mgp_ctx *prov, const char *type)
{
    EVP_KEYMGMT *km = EVP_KEYMGMT_fetch(prov->libctx, type, "provider=default");
    const OSSL_PARAM *p = EVP_KEYMGMT_gen_settable_params(km);
    EVP_KEYMGMT_free(km);
    return p;
}

/* ---- import/export type tables ---- */

static const OSSL_PARAM rsa_param_types[] = {
    OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_N, NULL, 0),
    OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_E, NULL, 0),
    OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_D, NULL, 0),
    OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_FACTOR1, NULL, 0),
    OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_FACTOR2, NULL, 0),
    OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_EXPONENT1, NULL, 0),
    OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_EXPONENT2, NULL, 0),
    OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_COEFFICIENT1, NULL, 0),
    OSSL_PARAM_END,
};

static const OSSL_PARAM ec_param_types[] = {
    OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_EC_ENCODING, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT, NULL, 0),
    OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_PUB_KEY, NULL, 0),
    OSSL_PARAM_BN(OSSL_PKEY_PARAM_PRIV_KEY, NULL, 0),
    OSSL_PARAM_END,
};

static const OSSL_PARAM ecx_param_types[] = {
    OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_PUB_KEY, NULL, 0),
    OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_PRIV_KEY, NULL, 0),
    OSSL_PARAM_END,
};

/* One dispatch table per key type; `name` is the canonical type, `table` its import/export types. */
#define KEYMGMT(id, NAME, table, SIGNAME, EXCHNAME)                                                           \
    static void *id##_new(void *provctx)                                                                      \
    {                                                                                                         \
        return mgp_key_new(provctx, NAME);                                                                    \
    }                                                                                                         \
    static void *id##_load(const void *reference, size_t reference_sz)                                        \
    {                                                                                                         \
        mgp_key *k = mgp_ref_take(reference, reference_sz, NAME);                                             \
        if (k != NULL)                                                                                        \
            mgp_debug(k->prov, "loaded a %s %s key", k->refusal != NULL ? "refused" : "sealed", NAME);        \
        return k;                                                                                             \
    }                                                                                                         \
    static const OSSL_PARAM *id##_types(int selection)                                                        \
    {                                                                                                         \
        (void)selection;                                                                                      \
        return table;                                                                                         \
    }                                                                                                         \
    static const OSSL_PARAM *id##_gettable(void *provctx)                                                     \
    {                                                                                                         \
        return gettable_for(provctx, NAME);                                                                   \
    }                                                                                                         \
    static const char *id##_opname(int operation_id)                                                          \
    {                                                                                                         \
        return operation_id == OSSL_OP_SIGNATURE ? SIGNAME : operation_id == OSSL_OP_KEYEXCH ? EXCHNAME : NAME; \
    }                                                                                                         \
    static void *id##_gen_init(void *provctx, int selection, const OSSL_PARAM params[])                       \
    {                                                                                                         \
        return gen_init_for(provctx, NAME, selection, params);                                                \
    }                                                                                                         \
    static const OSSL_PARAM *id##_gen_settable(void *genctx, void *provctx)                                   \
    {                                                                                                         \
        (void)genctx;                                                                                         \
        return gen_settable_for(provctx, NAME);                                                               \
    }                                                                                                         \
    const OSSL_DISPATCH mgp_##id##_keymgmt[] = {                                                              \
        {OSSL_FUNC_KEYMGMT_NEW, (void (*)(void))id##_new},                                                    \
        {OSSL_FUNC_KEYMGMT_FREE, (void (*)(void))km_free},                                                    \
        {OSSL_FUNC_KEYMGMT_LOAD, (void (*)(void))id##_load},                                                  \
        {OSSL_FUNC_KEYMGMT_HAS, (void (*)(void))km_has},                                                      \
        {OSSL_FUNC_KEYMGMT_MATCH, (void (*)(void))km_match},                                                  \
        {OSSL_FUNC_KEYMGMT_VALIDATE, (void (*)(void))km_validate},                                            \
        {OSSL_FUNC_KEYMGMT_DUP, (void (*)(void))km_dup},                                                      \
        {OSSL_FUNC_KEYMGMT_IMPORT, (void (*)(void))km_import},                                                \
        {OSSL_FUNC_KEYMGMT_IMPORT_TYPES, (void (*)(void))id##_types},                                         \
        {OSSL_FUNC_KEYMGMT_EXPORT, (void (*)(void))km_export},                                                \
        {OSSL_FUNC_KEYMGMT_EXPORT_TYPES, (void (*)(void))id##_types},                                         \
        {OSSL_FUNC_KEYMGMT_GET_PARAMS, (void (*)(void))km_get_params},                                        \
        {OSSL_FUNC_KEYMGMT_GETTABLE_PARAMS, (void (*)(void))id##_gettable},                                   \
        {OSSL_FUNC_KEYMGMT_QUERY_OPERATION_NAME, (void (*)(void))id##_opname},                                \
        {OSSL_FUNC_KEYMGMT_GEN_INIT, (void (*)(void))id##_gen_init},                                          \
        {OSSL_FUNC_KEYMGMT_GEN_SET_PARAMS, (void (*)(void))gen_set_params},                                   \
        {OSSL_FUNC_KEYMGMT_GEN_SETTABLE_PARAMS, (void (*)(void))id##_gen_settable},                           \
        {OSSL_FUNC_KEYMGMT_GEN, (void (*)(void))gen},                                                         \
        {OSSL_FUNC_KEYMGMT_GEN_CLEANUP, (void (*)(void))gen_cleanup},                                         \
        {0, NULL},                                                                                            \
    };

KEYMGMT(rsa, "RSA", rsa_param_types, "RSA", "RSA")
KEYMGMT(rsapss, "RSA-PSS", rsa_param_types, "RSA", "RSA")
KEYMGMT(ec, "EC", ec_param_types, "ECDSA", "ECDH")
KEYMGMT(ed25519, "ED25519", ecx_param_types, "ED25519", "ED25519")
KEYMGMT(ed448, "ED448", ecx_param_types, "ED448", "ED448")
KEYMGMT(x25519, "X25519", ecx_param_types, "X25519", "X25519")
KEYMGMT(x448, "X448", ecx_param_types, "X448", "X448")

/*
 * Refused keys only: types memguard cannot seal (DSA, DH, DHX, SM2) and keys whose type could not
 * be learnt. They exist so that such a private key still becomes a memguard key - one that fails
 * every use with its reason - instead of "not found", which sends OpenSSL's loaders to their
 * legacy decoders. Nothing can be created, imported or generated here.
 */
static int refused_import(void *keydata, int selection, const OSSL_PARAM params[])
{
    (void)keydata;
    (void)selection;
    (void)params;
    return 0;
}

static const OSSL_PARAM *refused_types(int selection)
{
    (void)selection;
    static const OSSL_PARAM none[] = {OSSL_PARAM_END};
    return none;
}

static int refused_get_params(void *keydata, OSSL_PARAM params[])
{
    (void)keydata;
    (void)params;
    return 0;
}

static const OSSL_PARAM *refused_gettable(void *provctx)
{
    (void)provctx;
    static const OSSL_PARAM none[] = {OSSL_PARAM_END};
    return none;
}

#define REFUSED_KEYMGMT(id, NAME)                                                                               \
    static void *id##_load(const void *reference, size_t reference_sz)                                        \
    {                                                                                                         \
        mgp_key *k = mgp_ref_take(reference, reference_sz, NAME);                                             \
        if (k != NULL && k->refusal == NULL) { /* never: these types are not sealed */                         \
            mgp_key_free(k);                                                                                  \
            return NULL;                                                                                      \
        }                                                                                                     \
        return k;                                                                                             \
    }                                                                                                         \
    static const char *id##_opname(int operation_id)                                                          \
    {                                                                                                         \
        (void)operation_id;                                                                                   \
        return NAME;                                                                                          \
    }                                                                                                         \
    const OSSL_DISPATCH mgp_##id##_keymgmt[] = {                                                              \
        {OSSL_FUNC_KEYMGMT_FREE, (void (*)(void))km_free},                                                    \
        {OSSL_FUNC_KEYMGMT_LOAD, (void (*)(void))id##_load},                                                  \
        {OSSL_FUNC_KEYMGMT_HAS, (void (*)(void))km_has},                                                      \
        {OSSL_FUNC_KEYMGMT_MATCH, (void (*)(void))km_match},                                                  \
        {OSSL_FUNC_KEYMGMT_VALIDATE, (void (*)(void))km_validate},                                            \
        {OSSL_FUNC_KEYMGMT_IMPORT, (void (*)(void))refused_import},                                           \
        {OSSL_FUNC_KEYMGMT_IMPORT_TYPES, (void (*)(void))refused_types},                                      \
        {OSSL_FUNC_KEYMGMT_EXPORT, (void (*)(void))km_export},                                                \
        {OSSL_FUNC_KEYMGMT_EXPORT_TYPES, (void (*)(void))refused_types},                                      \
        {OSSL_FUNC_KEYMGMT_GET_PARAMS, (void (*)(void))refused_get_params},                                   \
        {OSSL_FUNC_KEYMGMT_GETTABLE_PARAMS, (void (*)(void))refused_gettable},                                \
        {OSSL_FUNC_KEYMGMT_QUERY_OPERATION_NAME, (void (*)(void))id##_opname},                                \
        {0, NULL},                                                                                            \
    };

REFUSED_KEYMGMT(dsa, "DSA")
REFUSED_KEYMGMT(dh, "DH")
REFUSED_KEYMGMT(dhx, "DHX")
REFUSED_KEYMGMT(sm2, "SM2")
REFUSED_KEYMGMT(refused, MGP_TYPE_REFUSED)
