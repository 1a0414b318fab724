/*
 * EVP_MAC "CMAC" (NIST SP 800-38B, RFC 4493) over AES-128-CBC / AES-256-CBC,
 * for applications that ask for it with "provider=memguard".
 *
 * The default provider's CMAC keeps an EVP_CIPHER_CTX (the AES key schedule)
 * and the subkeys K1/K2 in the ordinary heap: either is enough to forge tags
 * (K1/K2 alone do not give the key, but with the schedule they are the key).
 * Here the round keys, K1, K2, the chaining value and the pending last block
 * sit in one slot of the guarded slabs that HMAC uses (hmac.c), written by
 * memguard's AES-NI code (cipher_aes.c), which reads round keys as memory
 * operands and keeps no copy of its own. The caller's key is read once at init.
 */
#include <string.h>
#include <strings.h>

#include <openssl/core_names.h>
#include <openssl/params.h>

#include "cipher.h"
#include "hmac.h"

typedef struct cmac_cipher {
    const char *names[4];
    size_t keylen;
} cmac_cipher;

/* OpenSSL's names for the two ciphers (compared without case). AES-192 is not in cipher_aes.c. */
static const cmac_cipher ciphers[] = {
    {{"AES-128-CBC", "AES128", "2.16.840.1.101.3.4.1.2", NULL}, 16},
    {{"AES-256-CBC", "AES256", "2.16.840.1.101.3.4.1.42", NULL}, 32},
};

static const cmac_cipher *cipher_by_name(const char *name)
{
    for (size_t i = 0; name != NULL && i < sizeof ciphers / sizeof ciphers[0]; i++)
        for (const char *const *n = ciphers[i].names; *n != NULL; n++)
            if (strcasecmp(name, *n) == 0)
                return &ciphers[i];
    return NULL;
}

/* Everything key-dependent, in the guarded slot. */
struct cmac_state {
    mgp_cipher_keys keys; /* round keys (only rk[] and rounds are used) */
    unsigned char k1[16], k2[16];
    unsigned char x[16];    /* CBC-MAC chaining value */
    unsigned char last[16]; /* the block held back for final: it is XORed with K1 or K2 */
};
_Static_assert(sizeof(struct cmac_state) <= MGP_SLOT_SIZE, "CMAC state outgrew its slot");

enum phase { NO_KEY, READY, DONE };

typedef struct cmac_ctx {
    mgp_ctx *prov;
    void *slab;
    struct cmac_state *st;
    const cmac_cipher *cipher; /* chosen by "cipher" */
    const cmac_cipher *keyed;  /* the cipher the slot's key schedule was made for */
    size_t lastlen;
    enum phase phase;
} cmac_ctx;

/*
 * Round keys, L, K1 and K2 pass through vector registers (so does the state in memcpy); the next lazily bound library call
 * (the dynamic linker saves every vector register on the stack) would spill them there -
 * measured in test_cmac. Cleared before returning (~10 ns; no stack is scrubbed).
 */
static void clear_registers(void)
{
    mg_scrub(0);
}

static void *cmac_new(void *provctx)
{
    cmac_ctx *c = OPENSSL_zalloc(sizeof *c);
    if (c == NULL)
        return NULL;
    c->prov = provctx;
    if ((c->st = mgp_slot_take(&c->slab)) == NULL) {
        MGP_ERR(c->prov, MGP_R_OPERATION_FAILED, "no guarded memory for the CMAC state: %s", mg_last_error_message());
        OPENSSL_free(c);
        return NULL;
    }
    return c;
}

static void cmac_free(void *vctx)
{
    cmac_ctx *c = vctx;
    if (c == NULL)
        return;
    mgp_slot_give(c->slab, c->st, sizeof *c->st);
    OPENSSL_clear_free(c, sizeof *c);
}

static void *cmac_dup(void *vctx)
{
    const cmac_ctx *c = vctx;
    cmac_ctx *d = OPENSSL_zalloc(sizeof *d);
    if (d == NULL)
        return NULL;
    *d = *c;
    if ((d->st = mgp_slot_take(&d->slab)) == NULL || !mgp_slot_alive(c->slab)) {
        MGP_ERR(c->prov, MGP_R_OPERATION_FAILED, "cannot duplicate the CMAC state: %s", mg_last_error_message());
        mgp_slot_give(d->slab, d->st, sizeof *d->st);
        OPENSSL_free(d);
        return NULL;
    }
    memcpy(d->st, c->st, sizeof *d->st); /* guarded to guarded, through vector registers */
    clear_registers();
    return d;
}

/* A purge (mg_purge) wipes every guarded page: say so instead of faulting. */
static int usable(const cmac_ctx *c)
{
    if (!mgp_slot_alive(c->slab)) {
        MGP_ERR(c->prov, MGP_R_UNSEAL_FAILED, "the CMAC state was purged");
        return 0;
    }
    return 1;
}

static void restart(cmac_ctx *c)
{
    mg_wipe(c->st->x, sizeof c->st->x);
    mg_wipe(c->st->last, sizeof c->st->last);
    c->lastlen = 0;
    c->phase = READY;
}

static int set_key(cmac_ctx *c, const unsigned char *key, size_t len)
{
    if (c->cipher == NULL) {
        MGP_ERR(c->prov, MGP_R_BAD_ARGUMENT, "CMAC needs a cipher (set \"cipher\" before the key)");
        return 0;
    }
    if (key == NULL || len != c->cipher->keylen) {
        MGP_ERR(c->prov, MGP_R_BAD_ARGUMENT, "CMAC with %s: key length %zu, expected %zu", c->cipher->names[0], len,
                c->cipher->keylen);
        return 0;
    }
    if (!usable(c))
        return 0;
    mg_wipe(c->st, sizeof *c->st);
    mgp_aes_set_key(&c->st->keys, key, len, 0, 0);
    mgp_cmac_subkeys(&c->st->keys, c->st->k1, c->st->k2);
    clear_registers();
    c->keyed = c->cipher;
    restart(c);
    return 1;
}

static const OSSL_PARAM settable[] = {
    OSSL_PARAM_utf8_string(OSSL_MAC_PARAM_CIPHER, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_MAC_PARAM_PROPERTIES, NULL, 0),
    OSSL_PARAM_octet_string(OSSL_MAC_PARAM_KEY, NULL, 0),
    OSSL_PARAM_END,
};

static const OSSL_PARAM *cmac_settable(void *vctx, void *provctx)
{
    (void)vctx;
    (void)provctx;
    return settable;
}

static int cmac_set_params(void *vctx, const OSSL_PARAM params[])
{
    cmac_ctx *c = vctx;
    const OSSL_PARAM *p;
    if (params == NULL)
        return 1;
    /* "properties" names where the default provider fetches its cipher; ours is built in, so it is ignored. */
    if ((p = OSSL_PARAM_locate_const(params, OSSL_MAC_PARAM_CIPHER)) != NULL) {
        const char *name = NULL;
        if (!OSSL_PARAM_get_utf8_string_ptr(p, &name))
            return 0;
        const cmac_cipher *ci = cipher_by_name(name);
        if (ci == NULL) {
            MGP_ERR(c->prov, MGP_R_UNSUPPORTED, "CMAC cipher %s: memguard offers AES-128-CBC and AES-256-CBC", name);
            return 0;
        }
        c->cipher = ci;
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

static int cmac_init(void *vctx, const unsigned char *key, size_t keylen, const OSSL_PARAM params[])
{
    cmac_ctx *c = vctx;
    if (!cmac_set_params(c, params))
        return 0;
    if (key != NULL)
        return set_key(c, key, keylen);
    if (OSSL_PARAM_locate_const(params, OSSL_MAC_PARAM_KEY) != NULL)
        return 1; /* keyed by the parameter just now */
    if (c->keyed == NULL) {
        MGP_ERR(c->prov, MGP_R_NO_KEY, "CMAC init without a key");
        return 0;
    }
    if (c->cipher != c->keyed) {
        MGP_ERR(c->prov, MGP_R_BAD_ARGUMENT, "the cipher changed: give the key again");
        return 0;
    }
    if (!usable(c))
        return 0;
    restart(c);
    return 1;
}

static int cmac_update(void *vctx, const unsigned char *in, size_t inl)
{
    cmac_ctx *c = vctx;
    if (c->phase != READY) {
        MGP_ERR(c->prov, MGP_R_BAD_ARGUMENT, "%s", c->phase == NO_KEY ? "CMAC update before init" : "CMAC update after final");
        return 0;
    }
    if (in == NULL && inl > 0) {
        MGP_ERR(c->prov, MGP_R_BAD_ARGUMENT, "no input");
        return 0;
    }
    if (inl == 0)
        return 1;
    if (!usable(c))
        return 0;
    struct cmac_state *st = c->st;
    /* The last block (even a full one) waits for final: only then is it known to be the last. */
    if (c->lastlen > 0) {
        size_t n = inl < 16 - c->lastlen ? inl : 16 - c->lastlen;
        memcpy(st->last + c->lastlen, in, n);
        c->lastlen += n, in += n, inl -= n;
        if (inl == 0)
            return 1;
        mgp_cmac_blocks(&st->keys, st->x, st->last, 1);
        c->lastlen = 0;
    }
    size_t nb = (inl - 1) / 16;
    mgp_cmac_blocks(&st->keys, st->x, in, nb);
    in += 16 * nb, inl -= 16 * nb;
    memcpy(st->last, in, inl);
    c->lastlen = inl;
    clear_registers();
    return 1;
}

static int cmac_final(void *vctx, unsigned char *out, size_t *outl, size_t outsize)
{
    cmac_ctx *c = vctx;
    if (c->phase != READY) {
        MGP_ERR(c->prov, MGP_R_BAD_ARGUMENT, "%s", c->phase == NO_KEY ? "CMAC final before init" : "CMAC final twice");
        return 0;
    }
    if (out == NULL || outsize < 16) {
        MGP_ERR(c->prov, MGP_R_BAD_ARGUMENT, "CMAC output buffer of %zu bytes, 16 needed", outsize);
        return 0;
    }
    if (!usable(c))
        return 0;
    struct cmac_state *st = c->st;
    const unsigned char *sub = st->k1;
    if (c->lastlen < 16) { /* pad with 10...0 and use K2 */
        st->last[c->lastlen] = 0x80;
        memset(st->last + c->lastlen + 1, 0, 15 - c->lastlen);
        sub = st->k2;
    }
    for (int i = 0; i < 16; i++)
        st->last[i] ^= sub[i];
    mgp_cmac_blocks(&st->keys, st->x, st->last, 1);
    memcpy(out, st->x, 16);
    *outl = 16;
    mg_wipe(st->x, sizeof st->x);
    mg_wipe(st->last, sizeof st->last);
    c->lastlen = 0;
    c->phase = DONE;
    clear_registers();
    return 1;
}

static int cmac_get_params(void *vctx, OSSL_PARAM params[])
{
    const cmac_ctx *c = vctx;
    size_t n = c->cipher != NULL ? 16 : 0; /* the MAC and the block are both one AES block */
    return mgp_mac_get_sizes(params, n, n);
}

#define FN(id, f) {id, (void (*)(void))(f)}

const OSSL_DISPATCH mgp_cmac_mac[] = {
    FN(OSSL_FUNC_MAC_NEWCTX, cmac_new),
    FN(OSSL_FUNC_MAC_FREECTX, cmac_free),
    FN(OSSL_FUNC_MAC_DUPCTX, cmac_dup),
    FN(OSSL_FUNC_MAC_INIT, cmac_init),
    FN(OSSL_FUNC_MAC_UPDATE, cmac_update),
    FN(OSSL_FUNC_MAC_FINAL, cmac_final),
    FN(OSSL_FUNC_MAC_GETTABLE_CTX_PARAMS, mgp_mac_gettable),
    FN(OSSL_FUNC_MAC_GET_CTX_PARAMS, cmac_get_params),
    FN(OSSL_FUNC_MAC_SETTABLE_CTX_PARAMS, cmac_settable),
    FN(OSSL_FUNC_MAC_SET_CTX_PARAMS, cmac_set_params),
    {0, NULL},
};
