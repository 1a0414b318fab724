/*
 * EVP_MAC "HMAC" for applications that ask for it with "provider=memguard".
 *
 * The caller's key is read once, straight into the context's guarded state
 * (hmac.c), and never copied anywhere else: the caller's buffer stays theirs
 * to wipe. Between calls the keyed digest states stay in guarded memory, so
 * re-initialising with a NULL key (the usual way to MAC many messages) needs
 * no unsealing at all. Unqualified fetches keep getting the default provider
 * (docs/symmetric.md, "Who gets HMAC"), so libssl never lands here.
 */
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/params.h>

#include "hmac.h"

enum phase { NO_KEY, READY, DONE };

typedef struct mac_ctx {
    mgp_ctx *prov;
    mgp_hmac *h;
    const mgp_hmac_md *md; /* chosen digest; h's digest once keyed */
    enum phase phase;
} mac_ctx;

static void *mac_new(void *provctx)
{
    mac_ctx *c = OPENSSL_zalloc(sizeof *c);
    if (c == NULL)
        return NULL;
    c->prov = provctx;
    if ((c->h = mgp_hmac_new()) == NULL) {
        MGP_ERR(c->prov, MGP_R_OPERATION_FAILED, "no guarded memory for the MAC state: %s", mg_last_error_message());
        OPENSSL_free(c);
        return NULL;
    }
    return c;
}

static void mac_free(void *vctx)
{
    mac_ctx *c = vctx;
    if (c == NULL)
        return;
    mgp_hmac_free(c->h);
    OPENSSL_free(c);
}

static void *mac_dup(void *vctx)
{
    const mac_ctx *c = vctx;
    mac_ctx *d = OPENSSL_zalloc(sizeof *d);
    if (d == NULL)
        return NULL;
    *d = *c;
    if ((d->h = mgp_hmac_dup(c->h)) == NULL) {
        MGP_ERR(c->prov, MGP_R_OPERATION_FAILED, "no guarded memory for the MAC state: %s", mg_last_error_message());
        OPENSSL_free(d);
        return NULL;
    }
    return d;
}

/* A purge (mg_purge) wipes every guarded page: the state is gone, say so instead of faulting. */
static int usable(mac_ctx *c)
{
    if (!mgp_hmac_alive(c->h)) {
        MGP_ERR(c->prov, MGP_R_UNSEAL_FAILED, "the MAC state was purged");
        return 0;
    }
    return 1;
}

static int set_key(mac_ctx *c, const unsigned char *key, size_t len)
{
    if (c->md == NULL) {
        MGP_ERR(c->prov, MGP_R_BAD_ARGUMENT, "HMAC needs a digest (set \"digest\" before the key)");
        return 0;
    }
    if ((key == NULL && len > 0) || len > MGP_MAX_SECRET) {
        MGP_ERR(c->prov, MGP_R_BAD_ARGUMENT, "HMAC key length %zu is outside 0..%d", len, MGP_MAX_SECRET);
        return 0;
    }
    if (!usable(c))
        return 0;
    mgp_hmac_set_key(c->h, c->md, key, len);
    c->phase = READY;
    return 1;
}

static const OSSL_PARAM settable[] = {
    OSSL_PARAM_utf8_string(OSSL_MAC_PARAM_DIGEST, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_MAC_PARAM_PROPERTIES, NULL, 0),
    OSSL_PARAM_octet_string(OSSL_MAC_PARAM_KEY, NULL, 0),
    OSSL_PARAM_END,
};

static const OSSL_PARAM *mac_settable(void *vctx, void *provctx)
{
    (void)vctx;
    (void)provctx;
    return settable;
}

static int mac_set_params(void *vctx, const OSSL_PARAM params[])
{
    mac_ctx *c = vctx;
    const OSSL_PARAM *p;
    if (params == NULL)
        return 1;
    if ((p = OSSL_PARAM_locate_const(params, OSSL_MAC_PARAM_DIGEST)) != NULL) {
        const char *name = NULL;
        if (!OSSL_PARAM_get_utf8_string_ptr(p, &name))
            return 0;
        const mgp_hmac_md *md = mgp_hmac_md_by_name(name);
        if (md == NULL) {
            MGP_ERR(c->prov, MGP_R_UNSUPPORTED,
                    "HMAC digest %s: memguard offers " MGP_HMAC_DIGESTS, name);
            return 0;
        }
        c->md = md;
    }
    /* OpenSSL's TLS CBC record MAC (constant-time over padding): libssl's own business, never ours. */
    if (OSSL_PARAM_locate_const(params, OSSL_MAC_PARAM_TLS_DATA_SIZE) != NULL) {
        MGP_ERR(c->prov, MGP_R_UNSUPPORTED, "tls-data-size is not supported");
        return 0;
    }
    if ((p = OSSL_PARAM_locate_const(params, OSSL_MAC_PARAM_KEY)) != NULL) {
        const void *key = NULL;
        size_t len = 0;
        if (!OSSL_PARAM_get_octet_string_ptr(p, &key, &len))
            return 0;
        return set_key(c, key, len);
    }
    return 1;
}

static int mac_init(void *vctx, const unsigned char *key, size_t keylen, const OSSL_PARAM params[])
{
    mac_ctx *c = vctx;
    if (!mac_set_params(c, params))
        return 0;
    if (key != NULL)
        return set_key(c, key, keylen);
    if (OSSL_PARAM_locate_const(params, OSSL_MAC_PARAM_KEY) != NULL)
        return 1; /* keyed by the parameter just now */
    if (c->phase == NO_KEY) {
        MGP_ERR(c->prov, MGP_R_NO_KEY, "HMAC init without a key");
        return 0;
    }
    if (c->md != mgp_hmac_get_md(c->h)) {
        MGP_ERR(c->prov, MGP_R_BAD_ARGUMENT, "the digest changed: give the key again");
        return 0;
    }
    if (!usable(c))
        return 0;
    mgp_hmac_restart(c->h);
    c->phase = READY;
    return 1;
}

static int mac_update(void *vctx, const unsigned char *in, size_t inl)
{
    mac_ctx *c = vctx;
    if (c->phase != READY) {
        MGP_ERR(c->prov, MGP_R_BAD_ARGUMENT, "%s", c->phase == NO_KEY ? "HMAC update before init" : "HMAC update after final");
        return 0;
    }
    if (in == NULL && inl > 0) {
        MGP_ERR(c->prov, MGP_R_BAD_ARGUMENT, "no input");
        return 0;
    }
    if (!usable(c))
        return 0;
    mgp_hmac_update(c->h, in, inl);
    return 1;
}

static int mac_final(void *vctx, unsigned char *out, size_t *outl, size_t outsize)
{
    mac_ctx *c = vctx;
    if (c->phase != READY) {
        MGP_ERR(c->prov, MGP_R_BAD_ARGUMENT, "%s", c->phase == NO_KEY ? "HMAC final before init" : "HMAC final twice");
        return 0;
    }
    size_t n = mgp_hmac_md_size(c->md);
    if (out == NULL || outsize < n) {
        MGP_ERR(c->prov, MGP_R_BAD_ARGUMENT, "HMAC output buffer of %zu bytes, %zu needed", outsize, n);
        return 0;
    }
    if (!usable(c))
        return 0;
    mgp_hmac_final(c->h, out);
    *outl = n;
    c->phase = DONE;
    return 1;
}

static int mac_get_params(void *vctx, OSSL_PARAM params[])
{
    const mac_ctx *c = vctx;
    return mgp_mac_get_sizes(params, c->md != NULL ? mgp_hmac_md_size(c->md) : 0,
                             c->md != NULL ? mgp_hmac_md_block(c->md) : 0);
}

#define FN(id, f) {id, (void (*)(void))(f)}

const OSSL_DISPATCH mgp_hmac_mac[] = {
    FN(OSSL_FUNC_MAC_NEWCTX, mac_new),
    FN(OSSL_FUNC_MAC_FREECTX, mac_free),
    FN(OSSL_FUNC_MAC_DUPCTX, mac_dup),
    FN(OSSL_FUNC_MAC_INIT, mac_init),
    FN(OSSL_FUNC_MAC_UPDATE, mac_update),
    FN(OSSL_FUNC_MAC_FINAL, mac_final),
    FN(OSSL_FUNC_MAC_GETTABLE_CTX_PARAMS, mgp_mac_gettable),
    FN(OSSL_FUNC_MAC_GET_CTX_PARAMS, mac_get_params),
    FN(OSSL_FUNC_MAC_SETTABLE_CTX_PARAMS, mac_settable),
    FN(OSSL_FUNC_MAC_SET_CTX_PARAMS, mac_set_params),
    {0, NULL},
};
