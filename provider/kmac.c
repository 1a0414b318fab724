/*
 * EVP_MAC "KMAC-128" and "KMAC-256" (NIST SP 800-185), for applications that
 * ask for them with "provider=memguard".
 *
 * The default provider's KMAC keeps bytepad(encode_string(K)) in its context
 * and the running Keccak state in an EVP_MD_CTX, both in the ordinary heap.
 * Here the key, the Keccak state after absorbing the KMAC prefix and the key
 * (the keyed state), and the running state all sit in one slot of the guarded
 * slabs (hmac.c). Keccak-f is a permutation, so the running state is as good
 * as the key to whoever holds it; the permutation's own stack spills and
 * registers are cleared when each call returns. The caller's key is read once.
 *
 * As in OpenSSL, the key and the customisation string take effect at the next
 * init; the output size and XOF mode may change until final.
 */
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/params.h>

#include "hmac.h"
#include "keccak.h"

#define KMAC_MIN_KEY 4
#define KMAC_MAX_KEY 512
#define KMAC_MAX_CUSTOM 512
/* right_encode(L) of the output length in bits must fit 3 bytes, as in OpenSSL: 0xFFFFFF / 8 bytes. */
#define KMAC_MAX_OUT (0xFFFFFF / 8)

typedef struct kmac_variant {
    const char *name;
    size_t rate;    /* bytes: 168 for KMAC-128 (capacity 256 bits), 136 for KMAC-256 (512) */
    size_t outlen;  /* default output: 32 or 64 bytes */
} kmac_variant;

static const kmac_variant kmac128 = {"KMAC-128", 168, 32};
static const kmac_variant kmac256 = {"KMAC-256", 136, 64};

/* Everything key-dependent, in the guarded slot. */
struct kmac_state {
    mgp_keccak keyed; /* after bytepad(encode_string("KMAC") || encode_string(S)) || bytepad(encode_string(K)) */
    mgp_keccak run;   /* keyed, then the message */
    unsigned char key[KMAC_MAX_KEY];
};
_Static_assert(sizeof(struct kmac_state) <= MGP_SLOT_SIZE, "KMAC state outgrew its slot");

enum phase { NO_KEY, READY, DONE };

typedef struct kmac_ctx {
    mgp_ctx *prov;
    const kmac_variant *v;
    void *slab;
    struct kmac_state *st;
    size_t keylen;        /* 0: no key yet */
    bool keyed_current;   /* st->keyed was made from the present key and custom */
    unsigned char custom[KMAC_MAX_CUSTOM]; /* S: not secret */
    size_t customlen;
    size_t outlen;
    int xof;
    size_t pos; /* bytes of the current block absorbed into st->run */
    enum phase phase;
} kmac_ctx;

/*
 * Stack below our frame that the permutation may have spilled lanes into (its frame is about
 * 0.5 KiB at -O2, more at -O0), cleared with the vector registers after every keyed computation.
 */
#define KMAC_SCRUB_STACK 4096

static void scrub(void)
{
    mg_scrub(KMAC_SCRUB_STACK);
}

static void *kmac_new(void *provctx, const kmac_variant *v)
{
    kmac_ctx *c = OPENSSL_zalloc(sizeof *c);
    if (c == NULL)
        return NULL;
    c->prov = provctx;
    c->v = v;
    c->outlen = v->outlen;
    if ((c->st = mgp_slot_take(&c->slab)) == NULL) {
        MGP_ERR(c->prov, MGP_R_OPERATION_FAILED, "no guarded memory for the %s state: %s", v->name,
                mg_last_error_message());
        OPENSSL_free(c);
        return NULL;
    }
    return c;
}

static void *kmac128_new(void *provctx)
{
    return kmac_new(provctx, &kmac128);
}

static void *kmac256_new(void *provctx)
{
    return kmac_new(provctx, &kmac256);
}

static void kmac_free(void *vctx)
{
    kmac_ctx *c = vctx;
    if (c == NULL)
        return;
    mgp_slot_give(c->slab, c->st, sizeof *c->st);
    OPENSSL_clear_free(c, sizeof *c);
}

static void *kmac_dup(void *vctx)
{
    const kmac_ctx *c = vctx;
    kmac_ctx *d = OPENSSL_zalloc(sizeof *d);
    if (d == NULL)
        return NULL;
    *d = *c;
    if ((d->st = mgp_slot_take(&d->slab)) == NULL || !mgp_slot_alive(c->slab)) {
        MGP_ERR(c->prov, MGP_R_OPERATION_FAILED, "cannot duplicate the %s state: %s", c->v->name,
                mg_last_error_message());
        mgp_slot_give(d->slab, d->st, sizeof *d->st);
        OPENSSL_free(d);
        return NULL;
    }
    memcpy(d->st, c->st, sizeof *d->st); /* guarded to guarded, through vector registers */
    scrub();
    return d;
}

/* A purge (mg_purge) wipes every guarded page: say so instead of faulting. */
static int usable(const kmac_ctx *c)
{
    if (!mgp_slot_alive(c->slab)) {
        MGP_ERR(c->prov, MGP_R_UNSEAL_FAILED, "the %s state was purged", c->v->name);
        return 0;
    }
    return 1;
}

static int set_key(kmac_ctx *c, const unsigned char *key, size_t len)
{
    if (key == NULL || len < KMAC_MIN_KEY || len > KMAC_MAX_KEY) {
        MGP_ERR(c->prov, MGP_R_BAD_ARGUMENT, "%s key length %zu is outside %d..%d", c->v->name, key == NULL ? 0 : len,
                KMAC_MIN_KEY, KMAC_MAX_KEY);
        return 0;
    }
    if (!usable(c))
        return 0;
    mg_wipe(c->st->key, sizeof c->st->key);
    memcpy(c->st->key, key, len);
    c->keylen = len;
    c->keyed_current = false;
    scrub();
    return 1;
}

/* Absorb bytepad(X, rate)'s trailing zeros: nothing to XOR, so just close the block. */
static void close_block(mgp_keccak *s, size_t *pos)
{
    if (*pos != 0) {
        mgp_keccak_f1600(s);
        *pos = 0;
    }
}

/* left_encode(8 * len) || x: SP 800-185's encode_string. */
static void absorb_string(mgp_keccak *s, size_t rate, size_t *pos, const unsigned char *x, size_t len)
{
    unsigned char e[9];
    size_t n = mgp_left_encode(e, (uint64_t)len * 8);
    mgp_keccak_absorb(s, rate, pos, e, n);
    mgp_keccak_absorb(s, rate, pos, x, len);
}

/* The keyed state: bytepad(encode_string("KMAC") || encode_string(S), rate) || bytepad(encode_string(K), rate). */
static void make_keyed(kmac_ctx *c)
{
    mgp_keccak *s = &c->st->keyed;
    size_t rate = c->v->rate, pos = 0, n;
    unsigned char w[9];
    mg_wipe(s, sizeof *s);
    n = mgp_left_encode(w, rate);
    mgp_keccak_absorb(s, rate, &pos, w, n);
    absorb_string(s, rate, &pos, (const unsigned char *)"KMAC", 4);
    absorb_string(s, rate, &pos, c->custom, c->customlen);
    close_block(s, &pos);
    mgp_keccak_absorb(s, rate, &pos, w, n);
    absorb_string(s, rate, &pos, c->st->key, c->keylen);
    close_block(s, &pos);
    c->keyed_current = true;
}

static const OSSL_PARAM settable[] = {
    OSSL_PARAM_int(OSSL_MAC_PARAM_XOF, NULL),
    OSSL_PARAM_size_t(OSSL_MAC_PARAM_SIZE, NULL),
    OSSL_PARAM_octet_string(OSSL_MAC_PARAM_KEY, NULL, 0),
    OSSL_PARAM_octet_string(OSSL_MAC_PARAM_CUSTOM, NULL, 0),
    OSSL_PARAM_END,
};

static const OSSL_PARAM *kmac_settable(void *vctx, void *provctx)
{
    (void)vctx;
    (void)provctx;
    return settable;
}

static int kmac_set_params(void *vctx, const OSSL_PARAM params[])
{
    kmac_ctx *c = vctx;
    const OSSL_PARAM *p;
    if (params == NULL)
        return 1;
    if ((p = OSSL_PARAM_locate_const(params, OSSL_MAC_PARAM_XOF)) != NULL) {
        int xof = 0;
        if (!OSSL_PARAM_get_int(p, &xof)) {
            MGP_ERR(c->prov, MGP_R_BAD_ARGUMENT, "%s: \"xof\" must be an integer", c->v->name);
            return 0;
        }
        c->xof = xof != 0;
    }
    if ((p = OSSL_PARAM_locate_const(params, OSSL_MAC_PARAM_SIZE)) != NULL) {
        size_t n = 0;
        if (!OSSL_PARAM_get_size_t(p, &n) || n > KMAC_MAX_OUT) {
            MGP_ERR(c->prov, MGP_R_BAD_ARGUMENT, "%s output size must be 0..%d bytes", c->v->name, KMAC_MAX_OUT);
            return 0;
        }
        c->outlen = n;
    }
    if ((p = OSSL_PARAM_locate_const(params, OSSL_MAC_PARAM_KEY)) != NULL) {
        const void *key = NULL;
        size_t len = 0;
        if (!OSSL_PARAM_get_octet_string_ptr(p, &key, &len)) {
            MGP_ERR(c->prov, MGP_R_BAD_ARGUMENT, "%s: \"key\" must be an octet string", c->v->name);
            return 0;
        }
        if (!set_key(c, key, len))
            return 0;
    }
    if ((p = OSSL_PARAM_locate_const(params, OSSL_MAC_PARAM_CUSTOM)) != NULL) {
        const void *s = NULL;
        size_t len = 0;
        if (!OSSL_PARAM_get_octet_string_ptr(p, &s, &len) || len > KMAC_MAX_CUSTOM || (s == NULL && len > 0)) {
            MGP_ERR(c->prov, MGP_R_BAD_ARGUMENT, "%s customisation string must be an octet string of 0..%d bytes",
                    c->v->name, KMAC_MAX_CUSTOM);
            return 0;
        }
        if (len > 0)
            memcpy(c->custom, s, len);
        c->customlen = len;
        c->keyed_current = false;
    }
    return 1;
}

static int kmac_init(void *vctx, const unsigned char *key, size_t keylen, const OSSL_PARAM params[])
{
    kmac_ctx *c = vctx;
    if (!kmac_set_params(c, params))
        return 0;
    if (key != NULL && !set_key(c, key, keylen))
        return 0;
    if (c->keylen == 0) {
        MGP_ERR(c->prov, MGP_R_NO_KEY, "%s init without a key", c->v->name);
        return 0;
    }
    if (!usable(c))
        return 0;
    if (!c->keyed_current)
        make_keyed(c);
    c->st->run = c->st->keyed;
    c->pos = 0;
    c->phase = READY;
    scrub();
    return 1;
}

static int kmac_update(void *vctx, const unsigned char *in, size_t inl)
{
    kmac_ctx *c = vctx;
    if (c->phase != READY) {
        MGP_ERR(c->prov, MGP_R_BAD_ARGUMENT, "%s update %s", c->v->name, c->phase == NO_KEY ? "before init" : "after final");
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
    mgp_keccak_absorb(&c->st->run, c->v->rate, &c->pos, in, inl);
    scrub();
    return 1;
}

static int kmac_final(void *vctx, unsigned char *out, size_t *outl, size_t outsize)
{
    kmac_ctx *c = vctx;
    if (c->phase != READY) {
        MGP_ERR(c->prov, MGP_R_BAD_ARGUMENT, "%s final %s", c->v->name, c->phase == NO_KEY ? "before init" : "twice");
        return 0;
    }
    if ((out == NULL && c->outlen > 0) || outsize < c->outlen) {
        MGP_ERR(c->prov, MGP_R_BAD_ARGUMENT, "%s output buffer of %zu bytes, %zu needed", c->v->name,
                out == NULL ? 0 : outsize, c->outlen);
        return 0;
    }
    if (!usable(c))
        return 0;
    mgp_keccak *s = &c->st->run;
    unsigned char e[9];
    size_t n = mgp_right_encode(e, c->xof ? 0 : (uint64_t)c->outlen * 8);
    mgp_keccak_absorb(s, c->v->rate, &c->pos, e, n);
    mgp_keccak_pad(s, c->v->rate, &c->pos, 0x04); /* cSHAKE's suffix 00, then pad10*1 */
    mgp_keccak_squeeze(s, c->v->rate, &c->pos, out, c->outlen);
    *outl = c->outlen;
    mg_wipe(s, sizeof *s);
    c->pos = 0;
    c->phase = DONE;
    scrub();
    return 1;
}

static int kmac_get_params(void *vctx, OSSL_PARAM params[])
{
    const kmac_ctx *c = vctx;
    return mgp_mac_get_sizes(params, c->outlen, c->v->rate);
}

#define FN(id, f) {id, (void (*)(void))(f)}
#define KMAC_DISPATCH(bits)                                                                                            \
    const OSSL_DISPATCH mgp_kmac##bits##_mac[] = {                                                                     \
        FN(OSSL_FUNC_MAC_NEWCTX, kmac##bits##_new),                                                                    \
        FN(OSSL_FUNC_MAC_FREECTX, kmac_free),                                                                          \
        FN(OSSL_FUNC_MAC_DUPCTX, kmac_dup),                                                                            \
        FN(OSSL_FUNC_MAC_INIT, kmac_init),                                                                             \
        FN(OSSL_FUNC_MAC_UPDATE, kmac_update),                                                                         \
        FN(OSSL_FUNC_MAC_FINAL, kmac_final),                                                                           \
        FN(OSSL_FUNC_MAC_GETTABLE_CTX_PARAMS, mgp_mac_gettable),                                                          \
        FN(OSSL_FUNC_MAC_GET_CTX_PARAMS, kmac_get_params),                                                             \
        FN(OSSL_FUNC_MAC_SETTABLE_CTX_PARAMS, kmac_settable),                                                          \
        FN(OSSL_FUNC_MAC_SET_CTX_PARAMS, kmac_set_params),                                                             \
        {0, NULL},                                                                                                     \
    }

KMAC_DISPATCH(128);
KMAC_DISPATCH(256);
