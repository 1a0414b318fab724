/*
 * CIPHER: AES-128/256-GCM, AES-256-CTR, AES-256-CBC and ChaCha20-Poly1305
 * under the standard names with property "provider=memguard". An application
 * opts in with EVP_CIPHER_fetch(libctx, name, "provider=memguard"); an
 * unqualified fetch (libssl's record layer among them) keeps resolving to the
 * default provider, which conf/memguard.cnf activates first (docs/symmetric.md).
 *
 * Where the key lives: the caller's key bytes are read once, straight into a
 * per-context guarded buffer (mlocked, MADV_DONTDUMP, guard pages) holding the
 * expanded key - AES round keys and GCM's hash key H with its powers, or the
 * ChaCha20 key - which is frozen read-only except while a new key is written.
 * Per-message secrets (GHASH/Poly1305 accumulators, the GCM tag mask E_K(J0),
 * partial keystream blocks) sit in a second, read-write guarded buffer. The
 * context itself (heap) holds only public values: IV, counters, lengths, tag.
 * Why not unseal per call: see docs/symmetric.md, "Ciphers" (measured).
 */
#include <pthread.h>
#include <stddef.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include "cipher.h"
#include "provider.h"

enum kind { GCM, CTR, CBC, CHACHA };

typedef struct alg {
    const char *name;
    enum kind kind;
    size_t keylen, ivlen, blocksize;
    unsigned mode; /* EVP_CIPH_*_MODE */
} alg;

static const alg aes128gcm = {"AES-128-GCM", GCM, 16, 12, 1, EVP_CIPH_GCM_MODE};
static const alg aes256gcm = {"AES-256-GCM", GCM, 32, 12, 1, EVP_CIPH_GCM_MODE};
static const alg aes256ctr = {"AES-256-CTR", CTR, 32, 16, 1, EVP_CIPH_CTR_MODE};
static const alg aes256cbc = {"AES-256-CBC", CBC, 32, 16, 16, EVP_CIPH_CBC_MODE};
static const alg chacha20poly1305 = {"ChaCha20-Poly1305", CHACHA, 32, 12, 1, 0};

#define GCM_IV_MAX 128                                   /* as the default provider */
#define GCM_MAX_MSG ((((uint64_t)1 << 32) - 2) * 16)     /* SP 800-38D: 2^39 - 256 bits */
#define TAG_MAX 16

typedef struct cipher_ctx {
    mgp_ctx *prov;
    const alg *alg;
    mg_buffer *keys;  /* mgp_cipher_keys, frozen */
    mg_buffer *state; /* mgp_cipher_state, read-write */
    mgp_cipher_keys *kp; /* keys' data: only dereferenced after mg_buffer_data(state) said "alive" */
    mgp_cipher_state *sp; /* state's data, as the last liveness check returned it (NULL: check next call) */
    unsigned long long seen; /* mg_purge_count() read before that check */
    int enc, key_set, iv_set, started, data, finished, pad, tag_ready;
    unsigned char iv[GCM_IV_MAX];
    size_t ivlen;
    unsigned char ctr[16];      /* GCM/CTR counter block, CBC chaining value */
    unsigned char buf[16];      /* CBC: pending block; GCM: partial AAD block */
    size_t buflen;
    uint64_t aadlen, msglen;
    unsigned char tag[TAG_MAX]; /* encrypt: computed at final; decrypt: expected, set by the caller */
    size_t taglen;
    /* TLS record mode (libssl's EVP_CTRL_AEAD_TLS1_AAD / SET_IV_FIXED): one whole record per call. */
    int tls_aad_set, tls_iv_set;
    unsigned char tls_aad[13];
    unsigned char tls_iv[12]; /* GCM: fixed || invocation counter; ChaCha: the fixed nonce */
} cipher_ctx;

/* Sizes rounded to 64: a guarded buffer's data ends on a page, so this keeps it 64-byte aligned. */
#define GUARDED_SIZE(t) ((sizeof(t) + 63) & ~(size_t)63)

static mgp_cipher_keys *keys_of(const cipher_ctx *c)
{
    return mg_buffer_data(c->keys);
}

static mgp_cipher_state *state_of(const cipher_ctx *c)
{
    return mg_buffer_data(c->state);
}

/*
 * Both buffers for one call. A purge (mg_purge: safe exit, crash) destroys
 * them together, so a liveness check on the state buffer covers both. That
 * check takes the buffer's lock (~15 ns, four times per record): it is made
 * once, then again only when mg_purge_count() says a purge has begun since -
 * nothing else can kill these buffers while the context lives. A purge that
 * begins after the comparison is the race a locked check has too.
 */
static int buffers(cipher_ctx *c, const mgp_cipher_keys **k, mgp_cipher_state **s)
{
    unsigned long long now = mg_purge_count(); /* read first: a purge after it is seen next time */
    if (c->sp == NULL || c->seen != now) {
        c->sp = state_of(c);
        if (c->sp == NULL) {
            MGP_ERR(c->prov, MGP_R_OPERATION_FAILED, "%s: the key schedule was purged", c->alg->name);
            return 0;
        }
        c->seen = now;
    }
    *s = c->sp;
    *k = c->kp;
    return 1;
}

/* Per-message secrets; the 256-byte Poly1305 state only matters to ChaCha20-Poly1305. */
static void wipe_state(const cipher_ctx *c, mgp_cipher_state *s)
{
    mg_wipe(s, c->alg->kind == CHACHA ? sizeof *s : offsetof(mgp_cipher_state, poly));
}

static void *cipher_new(void *provctx, const alg *a)
{
    cipher_ctx *c = OPENSSL_zalloc(sizeof *c);
    if (c == NULL)
        return NULL;
    c->prov = provctx;
    c->alg = a;
    c->ivlen = a->ivlen;
    c->taglen = TAG_MAX;
    c->pad = 1;
    return c;
}

/*
 * The guarded buffers of freed contexts, wiped, for the next new context: a pair of fresh guarded
 * mappings (mmap, mlock, guard pages, MADV_DONTDUMP) costs ~28 us, a whole 64-byte record 0.2 us,
 * and applications that make a context per message are common. At most POOL_MAX pairs (two locked
 * pages each) wait; a purge kills them like any buffer, and a dead pair is destroyed when taken.
 */
#define POOL_MAX 8

static struct {
    mg_buffer *keys, *state;
} pool[POOL_MAX];
static size_t pool_n;
static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t pool_once = PTHREAD_ONCE_INIT;
static int pool_ok;

/* A fork while another thread holds the pool lock would leave the child's copy locked forever. */
static void pool_prepare(void)
{
    (void)pthread_mutex_lock(&pool_lock);
}

static void pool_release(void)
{
    (void)pthread_mutex_unlock(&pool_lock);
}

static void pool_init(void)
{
    pool_ok = pthread_atfork(pool_prepare, pool_release, pool_release) == 0;
}

static int pool_locked(void)
{
    return pthread_once(&pool_once, pool_init) == 0 && pool_ok && pthread_mutex_lock(&pool_lock) == 0;
}

/* A live, wiped, writable pair from the pool: 1, or 0 if there is none. */
static int pool_take(mg_buffer **keys, mg_buffer **state)
{
    if (!pool_locked())
        return 0;
    int found = 0;
    while (!found && pool_n > 0) {
        pool_n--;
        *keys = pool[pool_n].keys, *state = pool[pool_n].state;
        pool[pool_n].keys = pool[pool_n].state = NULL;
        found = mg_buffer_is_alive(*keys) && mg_buffer_is_alive(*state);
        if (!found) { /* purged while it waited */
            mg_buffer_destroy(*keys);
            mg_buffer_destroy(*state);
            *keys = *state = NULL;
        }
    }
    (void)pthread_mutex_unlock(&pool_lock);
    return found;
}

/*
 * Wipe a freed context's pair and keep it, or destroy it (wiped and unmapped) if it cannot be kept.
 * The keys buffer waits writable: it holds zeros, and the next set_key() writes it and freezes it
 * (one mprotect per cycle instead of three).
 */
static void pool_give(mg_buffer *keys, mg_buffer *state)
{
    int kept = 0;
    if (mg_buffer_melt(keys) == MG_OK) {
        mg_buffer_wipe(keys);
        mg_buffer_wipe(state);
        if (pool_locked()) {
            if (pool_n < POOL_MAX) {
                pool[pool_n].keys = keys, pool[pool_n].state = state;
                pool_n++;
                kept = 1;
            }
            (void)pthread_mutex_unlock(&pool_lock);
        }
    }
    if (!kept) {
        mg_buffer_destroy(keys); /* wipes before unmapping */
        mg_buffer_destroy(state);
    }
}

static void cipher_free(void *vctx)
{
    cipher_ctx *c = vctx;
    if (c == NULL)
        return;
    if (c->keys != NULL && c->state != NULL) {
        pool_give(c->keys, c->state);
    } else {
        mg_buffer_destroy(c->keys);
        mg_buffer_destroy(c->state);
    }
    OPENSSL_clear_free(c, sizeof *c); /* a pending CBC block is application plaintext */
}

static int ensure_buffers(cipher_ctx *c)
{
    if (c->keys == NULL && c->state == NULL)
        (void)pool_take(&c->keys, &c->state);
    if (c->keys == NULL && (c->keys = mg_buffer_new(GUARDED_SIZE(mgp_cipher_keys))) == NULL)
        goto fail;
    if (c->state == NULL && (c->state = mg_buffer_new(GUARDED_SIZE(mgp_cipher_state))) == NULL)
        goto fail;
    c->kp = keys_of(c);
    return c->kp != NULL;
fail:
    MGP_ERR(c->prov, MGP_R_OPERATION_FAILED, "%s: no guarded memory for the key schedule: %s", c->alg->name,
            mg_last_error_message());
    return 0;
}

static void *cipher_dup(void *vctx)
{
    cipher_ctx *c = vctx;
    cipher_ctx *d = OPENSSL_malloc(sizeof *d);
    if (d == NULL)
        return NULL;
    *d = *c;
    d->keys = d->state = NULL;
    d->kp = NULL;
    d->sp = NULL;
    if (c->keys == NULL)
        return d;
    if (!ensure_buffers(d) || mg_buffer_melt(d->keys) != MG_OK ||
        mg_buffer_copy(d->keys, keys_of(c), GUARDED_SIZE(mgp_cipher_keys)) != MG_OK ||
        mg_buffer_freeze(d->keys) != MG_OK ||
        mg_buffer_copy(d->state, state_of(c), GUARDED_SIZE(mgp_cipher_state)) != MG_OK) {
        MGP_ERR(c->prov, MGP_R_OPERATION_FAILED, "%s: cannot duplicate the context: %s", c->alg->name,
                mg_last_error_message());
        cipher_free(d);
        return NULL;
    }
    return d;
}

/* Expand a new key into the frozen buffer: melted only for the duration of the write. */
static int set_key(cipher_ctx *c, const unsigned char *key, size_t keylen)
{
    if (keylen != c->alg->keylen) {
        MGP_ERR(c->prov, MGP_R_BAD_ARGUMENT, "%s: key length %zu, expected %zu", c->alg->name, keylen,
                c->alg->keylen);
        return 0;
    }
    if (!ensure_buffers(c))
        return 0;
    if (mg_buffer_melt(c->keys) != MG_OK) {
        MGP_ERR(c->prov, MGP_R_OPERATION_FAILED, "%s: %s", c->alg->name, mg_last_error_message());
        return 0;
    }
    mg_buffer_wipe(c->keys);
    mgp_cipher_keys *k = keys_of(c);
    if (c->alg->kind == CHACHA)
        memcpy(k->chacha, key, 32);
    else
        mgp_aes_set_key(k, key, keylen, c->alg->kind == CBC, c->alg->kind == GCM);
    if (mg_buffer_freeze(c->keys) != MG_OK) {
        MGP_ERR(c->prov, MGP_R_OPERATION_FAILED, "%s: %s", c->alg->name, mg_last_error_message());
        return 0;
    }
    c->key_set = 1;
    return 1;
}

static void be64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[7 - i] = (unsigned char)(v >> (8 * i));
}

/* A new message under the current key and IV. */
static int start_message(cipher_ctx *c)
{
    c->aadlen = c->msglen = 0;
    c->buflen = 0;
    c->data = c->finished = 0;
    if (c->enc)
        c->tag_ready = 0;
    c->started = c->key_set && c->iv_set;
    if (!c->started)
        return 1;
    const mgp_cipher_keys *k;
    mgp_cipher_state *s;
    if (!buffers(c, &k, &s)) {
        c->started = 0;
        return 0;
    }
    wipe_state(c, s);
    switch (c->alg->kind) {
    case GCM:
        if (c->ivlen == 12) { /* J0 = IV || 0^31 || 1 */
            memcpy(c->ctr, c->iv, 12);
            memset(c->ctr + 12, 0, 3);
            c->ctr[15] = 1;
        } else { /* J0 = GHASH(IV || 0-pad || 0^64 || [len(IV)]_64) */
            size_t full = c->ivlen / 16, rest = c->ivlen % 16;
            unsigned char last[16] = {0};
            mgp_ghash(k, s->xi, c->iv, full);
            if (rest != 0) {
                memcpy(last, c->iv + 16 * full, rest);
                mgp_ghash(k, s->xi, last, 1);
                memset(last, 0, sizeof last);
            }
            be64(last + 8, (uint64_t)c->ivlen * 8);
            mgp_ghash(k, s->xi, last, 1);
            for (int i = 0; i < 16; i++)
                c->ctr[i] = s->xi[15 - i];
            mg_wipe(s->xi, sizeof s->xi);
        }
        mgp_aes_encrypt_block(k, c->ctr, s->ekj0);
        /* inc32(J0): the first counter block for data */
        for (int i = 15; i >= 12 && ++c->ctr[i] == 0; i--)
            ;
        break;
    case CTR:
    case CBC: memcpy(c->ctr, c->iv, 16); break;
    case CHACHA: mgp_chacha_start(k, s, c->iv); break;
    }
    return 1;
}

static int set_ctx_params(void *vctx, const OSSL_PARAM params[]);

static int cipher_init(void *vctx, const unsigned char *key, size_t keylen, const unsigned char *iv, size_t ivlen,
                       const OSSL_PARAM params[], int enc)
{
    cipher_ctx *c = vctx;
    c->enc = enc;
    if (!set_ctx_params(c, params))
        return 0;
    if (key != NULL && !set_key(c, key, keylen))
        return 0;
    if (iv != NULL) {
        int ok = c->alg->kind == GCM ? ivlen >= 1 && ivlen <= GCM_IV_MAX : ivlen == c->alg->ivlen;
        if (!ok) {
            MGP_ERR(c->prov, MGP_R_BAD_ARGUMENT, "%s: IV length %zu not supported", c->alg->name, ivlen);
            return 0;
        }
        memcpy(c->iv, iv, ivlen);
        c->ivlen = ivlen;
        c->iv_set = 1;
    }
    return start_message(c);
}

static int cipher_einit(void *vctx, const unsigned char *key, size_t keylen, const unsigned char *iv, size_t ivlen,
                        const OSSL_PARAM params[])
{
    return cipher_init(vctx, key, keylen, iv, ivlen, params, 1);
}

static int cipher_dinit(void *vctx, const unsigned char *key, size_t keylen, const unsigned char *iv, size_t ivlen,
                        const OSSL_PARAM params[])
{
    return cipher_init(vctx, key, keylen, iv, ivlen, params, 0);
}

/* ---- GCM ---- */

/* Close the AAD: GHASH its last partial block, zero-padded. */
static void gcm_end_aad(cipher_ctx *c, const mgp_cipher_keys *k, mgp_cipher_state *s)
{
    if (c->data)
        return;
    if (c->buflen != 0) {
        memset(c->buf + c->buflen, 0, 16 - c->buflen);
        mgp_ghash(k, s->xi, c->buf, 1);
        c->buflen = 0;
    }
    c->data = 1;
}

static void gcm_aad(cipher_ctx *c, const mgp_cipher_keys *k, mgp_cipher_state *s, const unsigned char *in,
                    size_t inl)
{
    c->aadlen += inl;
    if (c->buflen != 0) {
        size_t n = inl < 16 - c->buflen ? inl : 16 - c->buflen;
        memcpy(c->buf + c->buflen, in, n);
        c->buflen += n, in += n, inl -= n;
        if (c->buflen < 16)
            return;
        mgp_ghash(k, s->xi, c->buf, 1);
        c->buflen = 0;
    }
    mgp_ghash(k, s->xi, in, inl / 16);
    memcpy(c->buf, in + inl - inl % 16, inl % 16);
    c->buflen = inl % 16;
}

/* Bytes at message offset pos inside a block: keystream in s->ks, ciphertext gathered in s->cbuf. */
static size_t gcm_partial(cipher_ctx *c, const mgp_cipher_keys *k, mgp_cipher_state *s, const unsigned char *in,
                          unsigned char *out, size_t inl)
{
    size_t pos = c->msglen % 16, n = inl < 16 - pos ? inl : 16 - pos;
    for (size_t i = 0; i < n; i++) {
        unsigned char ci = c->enc ? in[i] ^ s->ks[pos + i] : in[i];
        out[i] = in[i] ^ s->ks[pos + i];
        s->cbuf[pos + i] = ci;
    }
    c->msglen += n;
    if (pos + n == 16)
        mgp_ghash(k, s->xi, s->cbuf, 1);
    return n;
}

static void gcm_data(cipher_ctx *c, const mgp_cipher_keys *k, mgp_cipher_state *s, const unsigned char *in,
                     unsigned char *out, size_t inl)
{
    static const unsigned char zero[16];
    gcm_end_aad(c, k, s);
    if (c->msglen % 16 != 0) {
        size_t n = gcm_partial(c, k, s, in, out, inl);
        in += n, out += n, inl -= n;
    }
    size_t nb = inl / 16;
    if (nb > 0) {
        (c->enc ? mgp_gcm_encrypt : mgp_gcm_decrypt)(k, c->ctr, s->xi, in, out, nb);
        c->msglen += 16 * nb, in += 16 * nb, out += 16 * nb, inl -= 16 * nb;
    }
    if (inl > 0) {
        mgp_aes_ctr(k, c->ctr, 1, zero, s->ks, 1);
        gcm_partial(c, k, s, in, out, inl);
    }
}

static void gcm_tag(cipher_ctx *c, const mgp_cipher_keys *k, mgp_cipher_state *s, unsigned char tag[16])
{
    gcm_end_aad(c, k, s);
    size_t pos = c->msglen % 16;
    if (pos != 0) {
        memset(s->cbuf + pos, 0, 16 - pos);
        mgp_ghash(k, s->xi, s->cbuf, 1);
    }
    unsigned char lens[16];
    be64(lens, c->aadlen * 8);
    be64(lens + 8, c->msglen * 8);
    mgp_ghash(k, s->xi, lens, 1);
    mgp_gcm_tag(s->xi, s->ekj0, tag);
}

/* ---- CTR ---- */

static void ctr_data(cipher_ctx *c, const mgp_cipher_keys *k, mgp_cipher_state *s, const unsigned char *in,
                     unsigned char *out, size_t inl)
{
    static const unsigned char zero[16];
    size_t pos = c->msglen % 16;
    if (pos != 0) {
        size_t n = inl < 16 - pos ? inl : 16 - pos;
        for (size_t i = 0; i < n; i++)
            out[i] = in[i] ^ s->ks[pos + i];
        c->msglen += n, in += n, out += n, inl -= n;
    }
    size_t nb = inl / 16;
    mgp_aes_ctr(k, c->ctr, 0, in, out, nb);
    c->msglen += 16 * nb, in += 16 * nb, out += 16 * nb, inl -= 16 * nb;
    if (inl > 0) {
        mgp_aes_ctr(k, c->ctr, 0, zero, s->ks, 1);
        for (size_t i = 0; i < inl; i++)
            out[i] = in[i] ^ s->ks[i];
        c->msglen += inl;
    }
}

/* ---- CBC ---- */

static void cbc_blocks(cipher_ctx *c, const mgp_cipher_keys *k, const unsigned char *in, unsigned char *out,
                       size_t nb)
{
    (c->enc ? mgp_aes_cbc_encrypt : mgp_aes_cbc_decrypt)(k, c->ctr, in, out, nb);
}

static int cbc_update(cipher_ctx *c, const mgp_cipher_keys *k, unsigned char *out, size_t *outl, size_t outsize,
                      const unsigned char *in, size_t inl)
{
    size_t total = c->buflen + inl;
    /* Decrypting with padding holds the last block back for final(). */
    size_t emit = total - total % 16;
    if (!c->enc && c->pad && emit == total && emit > 0)
        emit -= 16;
    if (emit > outsize) {
        MGP_ERR(c->prov, MGP_R_BAD_ARGUMENT, "%s: output buffer too small", c->alg->name);
        return 0;
    }
    *outl = emit;
    if (emit == 0) {
        memcpy(c->buf + c->buflen, in, inl);
        c->buflen += inl;
        return 1;
    }
    if (c->buflen != 0) {
        size_t n = 16 - c->buflen;
        memcpy(c->buf + c->buflen, in, n);
        cbc_blocks(c, k, c->buf, out, 1);
        in += n, inl -= n, out += 16, emit -= 16;
        c->buflen = 0;
    }
    cbc_blocks(c, k, in, out, emit / 16);
    memcpy(c->buf, in + emit, inl - emit);
    c->buflen = inl - emit;
    return 1;
}

static int cbc_final(cipher_ctx *c, const mgp_cipher_keys *k, mgp_cipher_state *s, unsigned char *out, size_t *outl,
                     size_t outsize)
{
    *outl = 0;
    if (!c->pad) {
        if (c->buflen != 0) {
            MGP_ERR(c->prov, MGP_R_BAD_ARGUMENT, "%s: data not a multiple of the block length (padding off)",
                    c->alg->name);
            return 0;
        }
        return 1;
    }
    if (c->enc) {
        if (outsize < 16) {
            MGP_ERR(c->prov, MGP_R_BAD_ARGUMENT, "%s: output buffer too small", c->alg->name);
            return 0;
        }
        unsigned char p = (unsigned char)(16 - c->buflen);
        memset(c->buf + c->buflen, p, p);
        cbc_blocks(c, k, c->buf, out, 1);
        *outl = 16;
        return 1;
    }
    if (c->buflen != 16) {
        MGP_ERR(c->prov, MGP_R_BAD_ARGUMENT, "%s: wrong final block length", c->alg->name);
        return 0;
    }
    cbc_blocks(c, k, c->buf, s->ks, 1);
    /* PKCS#7 check without branching on the padding bytes. */
    unsigned p = s->ks[15], bad = (unsigned)(p == 0) | (unsigned)(p > 16);
    for (unsigned i = 0; i < 16; i++) {
        unsigned in_pad = (unsigned)(i >= 16 - p);
        bad |= in_pad & (unsigned)(s->ks[i] != p);
    }
    if (bad || 16 - p > outsize) {
        mg_wipe(s->ks, 16);
        MGP_ERR(c->prov, MGP_R_OPERATION_FAILED, "%s: bad decrypt", c->alg->name);
        return 0;
    }
    memcpy(out, s->ks, 16 - p);
    mg_wipe(s->ks, 16);
    *outl = 16 - p;
    return 1;
}

/* ---- update / final ---- */

static int ready(cipher_ctx *c, const mgp_cipher_keys **k, mgp_cipher_state **s)
{
    if (!c->started) {
        MGP_ERR(c->prov, MGP_R_BAD_ARGUMENT, "%s: no key or IV set", c->alg->name);
        return 0;
    }
    if (c->finished) {
        MGP_ERR(c->prov, MGP_R_BAD_ARGUMENT, "%s: the message is finished; initialise again with a new IV",
                c->alg->name);
        return 0;
    }
    return buffers(c, k, s);
}

static int tls_record(cipher_ctx *c, unsigned char *out, size_t *outl, size_t outsize, const unsigned char *in,
                      size_t inl);

static int cipher_update(void *vctx, unsigned char *out, size_t *outl, size_t outsize, const unsigned char *in,
                         size_t inl)
{
    cipher_ctx *c = vctx;
    const mgp_cipher_keys *k;
    mgp_cipher_state *s;
    *outl = 0;
    if (c->tls_aad_set)
        return tls_record(c, out, outl, outsize, in, inl);
    /* A short GCM AAD (TLS's 13 bytes) is only buffered: no guarded state is touched yet. */
    if (out == NULL && c->alg->kind == GCM && c->started && !c->finished && !c->data && c->buflen + inl < 16) {
        memcpy(c->buf + c->buflen, in, inl);
        c->buflen += inl;
        c->aadlen += inl;
        *outl = inl;
        return 1;
    }
    if (!ready(c, &k, &s))
        return 0;
    if (inl == 0)
        return 1;
    if (c->alg->kind == CBC)
        return cbc_update(c, k, out, outl, outsize, in, inl);
    if (out == NULL) { /* AAD, only for the AEADs and only before the message */
        if ((c->alg->kind != GCM && c->alg->kind != CHACHA) || c->data) {
            MGP_ERR(c->prov, MGP_R_BAD_ARGUMENT, "%s: AAD %s", c->alg->name,
                    c->data ? "after message data" : "is only for AEAD ciphers");
            return 0;
        }
        if (c->alg->kind == GCM) {
            gcm_aad(c, k, s, in, inl);
        } else {
            mgp_chacha_mac(s, in, inl);
            c->aadlen += inl;
        }
        *outl = inl;
        return 1;
    }
    if (outsize < inl) {
        MGP_ERR(c->prov, MGP_R_BAD_ARGUMENT, "%s: output buffer too small", c->alg->name);
        return 0;
    }
    uint64_t max = c->alg->kind == GCM ? GCM_MAX_MSG : c->alg->kind == CHACHA ? MGP_CHACHA_MAX_MSG : UINT64_MAX;
    if (inl > max - c->msglen) {
        MGP_ERR(c->prov, MGP_R_BAD_ARGUMENT, "%s: message too long for one IV", c->alg->name);
        return 0;
    }
    switch (c->alg->kind) {
    case GCM: gcm_data(c, k, s, in, out, inl); break;
    case CTR: ctr_data(c, k, s, in, out, inl); break;
    case CHACHA:
        if (!c->data) {
            mgp_chacha_mac_pad(s, c->aadlen);
            c->data = 1;
        }
        mgp_chacha_crypt(k, s, c->iv, c->msglen, c->enc, in, out, inl);
        c->msglen += inl;
        break;
    case CBC: break;
    }
    *outl = inl;
    return 1;
}

static int cipher_final(void *vctx, unsigned char *out, size_t *outl, size_t outsize)
{
    cipher_ctx *c = vctx;
    const mgp_cipher_keys *k;
    mgp_cipher_state *s;
    *outl = 0;
    if (!ready(c, &k, &s))
        return 0;
    int ok = 1;
    switch (c->alg->kind) {
    case CBC: ok = cbc_final(c, k, s, out, outl, outsize); break;
    case CTR: break;
    case GCM:
    case CHACHA: {
        /* The computed tag stays in guarded memory until it is released (encrypt) or compared (decrypt). */
        unsigned char *tag = s->ks;
        if (c->alg->kind == GCM) {
            gcm_tag(c, k, s, tag);
        } else {
            if (!c->data)
                mgp_chacha_mac_pad(s, c->aadlen);
            mgp_chacha_tag(s, c->aadlen, c->msglen, tag);
        }
        if (c->enc) {
            memcpy(c->tag, tag, TAG_MAX);
            c->tag_ready = 1;
        } else if (!c->tag_ready) {
            MGP_ERR(c->prov, MGP_R_BAD_ARGUMENT, "%s: no tag set before final (EVP_CTRL_AEAD_SET_TAG)",
                    c->alg->name);
            ok = 0;
        } else if (CRYPTO_memcmp(tag, c->tag, c->taglen) != 0) {
            MGP_ERR(c->prov, MGP_R_OPERATION_FAILED, "%s: authentication tag mismatch", c->alg->name);
            ok = 0;
        }
        break;
    }
    }
    wipe_state(c, s); /* accumulators, tag mask, keystream: nothing of this message is kept */
    c->finished = 1;
    return ok;
}

#define TLS_AAD_LEN 13
#define GCM_TLS_EXPLICIT 8

/*
 * One TLS record, as libssl hands it to an AEAD after EVP_CTRL_AEAD_TLS1_AAD:
 * GCM: explicit IV (8) || payload || tag (16); ChaCha20-Poly1305: payload ||
 * tag (16), nonce = fixed IV XOR the record's sequence number (the AAD's first
 * 8 bytes). A record that does not authenticate is wiped from the output.
 */
static int tls_record(cipher_ctx *c, unsigned char *out, size_t *outl, size_t outsize, const unsigned char *in,
                      size_t inl)
{
    size_t lead = c->alg->kind == GCM ? GCM_TLS_EXPLICIT : 0;
    c->tls_aad_set = 0; /* each record comes with its own AAD; the calls below are ordinary updates */
    if (!c->tls_iv_set || inl < lead + TAG_MAX || outsize < inl || out == NULL) {
        MGP_ERR(c->prov, MGP_R_BAD_ARGUMENT, "%s: TLS record without fixed IV, too short, or output too small",
                c->alg->name);
        return 0;
    }
    size_t plen = inl - lead - TAG_MAX, n = 0;
    if (c->alg->kind == GCM) {
        if (c->enc)
            memcpy(out, c->tls_iv + 4, GCM_TLS_EXPLICIT); /* this record's explicit IV goes first */
        else
            memcpy(c->tls_iv + 4, in, GCM_TLS_EXPLICIT);
        memcpy(c->iv, c->tls_iv, 12);
        if (c->enc) /* the next record's: a 64-bit invocation counter */
            for (int i = 11; i >= 4 && ++c->tls_iv[i] == 0; i--)
                ;
    } else {
        memcpy(c->iv, c->tls_iv, 12);
        for (int i = 0; i < 8; i++)
            c->iv[4 + i] ^= c->tls_aad[i];
    }
    c->ivlen = 12;
    c->iv_set = 1;
    c->taglen = TAG_MAX;
    int ok = start_message(c) && c->started && cipher_update(c, NULL, &n, 0, c->tls_aad, TLS_AAD_LEN) &&
             cipher_update(c, out + lead, &n, outsize - lead, in + lead, plen);
    if (ok && !c->enc) {
        memcpy(c->tag, in + lead + plen, TAG_MAX);
        c->tag_ready = 1;
    }
    ok = ok && cipher_final(c, NULL, &n, 0);
    if (ok && c->enc)
        memcpy(out + lead + plen, c->tag, TAG_MAX);
    if (!ok && !c->enc)
        OPENSSL_cleanse(out, inl); /* never release an unauthenticated plaintext */
    /* What the default provider reports, which libssl relies on: GCM the whole record both ways, ChaCha the payload. */
    if (ok)
        *outl = c->enc || c->alg->kind == GCM ? inl : plen;
    return ok;
}

/* EVP_Cipher(): in == NULL finishes the message, out == NULL feeds AAD. */
static int cipher_oneshot(void *vctx, unsigned char *out, size_t *outl, size_t outsize, const unsigned char *in,
                          size_t inl)
{
    if (in == NULL)
        return cipher_final(vctx, out, outl, outsize);
    return cipher_update(vctx, out, outl, outsize, in, inl);
}

/* ---- parameters ---- */

static int is_aead(const alg *a)
{
    return a->kind == GCM || a->kind == CHACHA;
}

static int tag_length_ok(const alg *a, size_t n)
{
    if (a->kind == CHACHA)
        return n == 16;
    return n == 4 || n == 8 || (n >= 12 && n <= 16); /* SP 800-38D, 5.2.1.2 */
}

static int get_params_for(const alg *a, OSSL_PARAM params[])
{
    OSSL_PARAM *p;
    if ((p = OSSL_PARAM_locate(params, OSSL_CIPHER_PARAM_MODE)) != NULL && !OSSL_PARAM_set_uint(p, a->mode))
        return 0;
    if ((p = OSSL_PARAM_locate(params, OSSL_CIPHER_PARAM_KEYLEN)) != NULL && !OSSL_PARAM_set_size_t(p, a->keylen))
        return 0;
    if ((p = OSSL_PARAM_locate(params, OSSL_CIPHER_PARAM_IVLEN)) != NULL && !OSSL_PARAM_set_size_t(p, a->ivlen))
        return 0;
    if ((p = OSSL_PARAM_locate(params, OSSL_CIPHER_PARAM_BLOCK_SIZE)) != NULL &&
        !OSSL_PARAM_set_size_t(p, a->blocksize))
        return 0;
    if ((p = OSSL_PARAM_locate(params, OSSL_CIPHER_PARAM_AEAD)) != NULL && !OSSL_PARAM_set_int(p, is_aead(a)))
        return 0;
    if ((p = OSSL_PARAM_locate(params, OSSL_CIPHER_PARAM_CUSTOM_IV)) != NULL && !OSSL_PARAM_set_int(p, is_aead(a)))
        return 0;
    if ((p = OSSL_PARAM_locate(params, OSSL_CIPHER_PARAM_CTS)) != NULL && !OSSL_PARAM_set_int(p, 0))
        return 0;
    if ((p = OSSL_PARAM_locate(params, OSSL_CIPHER_PARAM_TLS1_MULTIBLOCK)) != NULL && !OSSL_PARAM_set_int(p, 0))
        return 0;
    if ((p = OSSL_PARAM_locate(params, OSSL_CIPHER_PARAM_HAS_RAND_KEY)) != NULL && !OSSL_PARAM_set_int(p, 0))
        return 0;
    return 1;
}

static const OSSL_PARAM info_params[] = {
    OSSL_PARAM_uint(OSSL_CIPHER_PARAM_MODE, NULL),
    OSSL_PARAM_size_t(OSSL_CIPHER_PARAM_KEYLEN, NULL),
    OSSL_PARAM_size_t(OSSL_CIPHER_PARAM_IVLEN, NULL),
    OSSL_PARAM_size_t(OSSL_CIPHER_PARAM_BLOCK_SIZE, NULL),
    OSSL_PARAM_int(OSSL_CIPHER_PARAM_AEAD, NULL),
    OSSL_PARAM_int(OSSL_CIPHER_PARAM_CUSTOM_IV, NULL),
    OSSL_PARAM_int(OSSL_CIPHER_PARAM_CTS, NULL),
    OSSL_PARAM_int(OSSL_CIPHER_PARAM_TLS1_MULTIBLOCK, NULL),
    OSSL_PARAM_int(OSSL_CIPHER_PARAM_HAS_RAND_KEY, NULL),
    OSSL_PARAM_END,
};

static const OSSL_PARAM *gettable_params(void *provctx)
{
    (void)provctx;
    return info_params;
}

static const OSSL_PARAM aead_gettable[] = {
    OSSL_PARAM_size_t(OSSL_CIPHER_PARAM_KEYLEN, NULL),
    OSSL_PARAM_size_t(OSSL_CIPHER_PARAM_IVLEN, NULL),
    OSSL_PARAM_size_t(OSSL_CIPHER_PARAM_AEAD_TAGLEN, NULL),
    OSSL_PARAM_octet_string(OSSL_CIPHER_PARAM_IV, NULL, 0),
    OSSL_PARAM_octet_string(OSSL_CIPHER_PARAM_UPDATED_IV, NULL, 0),
    OSSL_PARAM_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, NULL, 0),
    OSSL_PARAM_size_t(OSSL_CIPHER_PARAM_AEAD_TLS1_AAD_PAD, NULL),
    OSSL_PARAM_END,
};

static const OSSL_PARAM block_gettable[] = {
    OSSL_PARAM_size_t(OSSL_CIPHER_PARAM_KEYLEN, NULL),
    OSSL_PARAM_size_t(OSSL_CIPHER_PARAM_IVLEN, NULL),
    OSSL_PARAM_uint(OSSL_CIPHER_PARAM_PADDING, NULL),
    OSSL_PARAM_uint(OSSL_CIPHER_PARAM_NUM, NULL),
    OSSL_PARAM_octet_string(OSSL_CIPHER_PARAM_IV, NULL, 0),
    OSSL_PARAM_octet_string(OSSL_CIPHER_PARAM_UPDATED_IV, NULL, 0),
    OSSL_PARAM_END,
};

static const OSSL_PARAM aead_settable[] = {
    OSSL_PARAM_size_t(OSSL_CIPHER_PARAM_KEYLEN, NULL),
    OSSL_PARAM_size_t(OSSL_CIPHER_PARAM_AEAD_IVLEN, NULL),
    OSSL_PARAM_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, NULL, 0),
    OSSL_PARAM_octet_string(OSSL_CIPHER_PARAM_AEAD_TLS1_AAD, NULL, 0),
    OSSL_PARAM_octet_string(OSSL_CIPHER_PARAM_AEAD_TLS1_IV_FIXED, NULL, 0),
    OSSL_PARAM_END,
};

static const OSSL_PARAM block_settable[] = {
    OSSL_PARAM_size_t(OSSL_CIPHER_PARAM_KEYLEN, NULL),
    OSSL_PARAM_uint(OSSL_CIPHER_PARAM_PADDING, NULL),
    OSSL_PARAM_END,
};

/* The tag, after an encryption's final: at most taglen bytes, as many as the caller's buffer holds. */
static int get_tag(const cipher_ctx *c, OSSL_PARAM *p)
{
    if (!c->enc || !c->tag_ready) {
        MGP_ERR(c->prov, MGP_R_BAD_ARGUMENT, "%s: the tag exists only after an encryption's final", c->alg->name);
        return 0;
    }
    if (p->data_size == 0 || p->data_size > c->taglen) {
        MGP_ERR(c->prov, MGP_R_BAD_ARGUMENT, "%s: tag length %zu, at most %zu", c->alg->name, p->data_size,
                c->taglen);
        return 0;
    }
    return OSSL_PARAM_set_octet_string(p, c->tag, p->data_size);
}

/*
 * One pass over what the caller asks - usually a single parameter: EVP asks for the IV length at
 * every init and for the tag after every final, and a name lookup per known parameter per call
 * was a tenth of a 64-byte record. Unknown names are left alone, as OSSL_PARAM_locate would.
 */
static int get_ctx_params(void *vctx, OSSL_PARAM params[])
{
    cipher_ctx *c = vctx;
    int aead = is_aead(c->alg);
    for (OSSL_PARAM *p = params; p != NULL && p->key != NULL; p++) {
        const char *k = p->key;
        int ok = 1;
        if (strcmp(k, OSSL_CIPHER_PARAM_IVLEN) == 0)
            ok = OSSL_PARAM_set_size_t(p, c->ivlen);
        else if (aead && strcmp(k, OSSL_CIPHER_PARAM_AEAD_TAG) == 0)
            ok = get_tag(c, p);
        else if (strcmp(k, OSSL_CIPHER_PARAM_KEYLEN) == 0)
            ok = OSSL_PARAM_set_size_t(p, c->alg->keylen);
        else if (strcmp(k, OSSL_CIPHER_PARAM_PADDING) == 0)
            ok = OSSL_PARAM_set_uint(p, (unsigned)c->pad);
        else if (strcmp(k, OSSL_CIPHER_PARAM_NUM) == 0)
            ok = OSSL_PARAM_set_uint(p, (unsigned)(c->msglen % 16));
        else if (strcmp(k, OSSL_CIPHER_PARAM_IV) == 0)
            ok = OSSL_PARAM_set_octet_string(p, c->iv, c->ivlen);
        else if (strcmp(k, OSSL_CIPHER_PARAM_UPDATED_IV) == 0)
            /* CBC's chaining value / CTR's counter; the AEADs report their IV as the default provider does. */
            ok = OSSL_PARAM_set_octet_string(p, aead || !c->started ? c->iv : c->ctr, c->ivlen);
        else if (aead && strcmp(k, OSSL_CIPHER_PARAM_AEAD_TLS1_AAD_PAD) == 0)
            /* After TLS1_AAD: how much longer than the payload a sealed record is (libssl adds it). */
            ok = OSSL_PARAM_set_size_t(p, TAG_MAX);
        else if (aead && strcmp(k, OSSL_CIPHER_PARAM_AEAD_TAGLEN) == 0)
            ok = OSSL_PARAM_set_size_t(p, c->taglen);
        if (!ok)
            return 0;
    }
    return 1;
}

/* ---- settable parameters: one function each ---- */

static int set_keylen(cipher_ctx *c, const OSSL_PARAM *p)
{
    size_t n;
    if (!OSSL_PARAM_get_size_t(p, &n) || n != c->alg->keylen) {
        MGP_ERR(c->prov, MGP_R_BAD_ARGUMENT, "%s: the key length is fixed at %zu", c->alg->name, c->alg->keylen);
        return 0;
    }
    return 1;
}

static int set_padding(cipher_ctx *c, const OSSL_PARAM *p)
{
    unsigned pad;
    if (!OSSL_PARAM_get_uint(p, &pad))
        return 0;
    c->pad = pad != 0; /* EVP_CIPHER_CTX_set_padding: meaningful for CBC, accepted by all */
    return 1;
}

static int set_ivlen(cipher_ctx *c, const OSSL_PARAM *p)
{
    size_t n;
    int ok = OSSL_PARAM_get_size_t(p, &n) && is_aead(c->alg) &&
             (c->alg->kind == GCM ? n >= 1 && n <= GCM_IV_MAX : n == c->alg->ivlen);
    if (!ok) {
        MGP_ERR(c->prov, MGP_R_BAD_ARGUMENT, "%s: IV length not supported", c->alg->name);
        return 0;
    }
    if (n != c->ivlen) {
        c->ivlen = n;
        c->iv_set = c->started = 0; /* an IV of the new length must follow */
    }
    return 1;
}

static int set_tag(cipher_ctx *c, const OSSL_PARAM *p)
{
    if (!is_aead(c->alg) || p->data_type != OSSL_PARAM_OCTET_STRING || !tag_length_ok(c->alg, p->data_size) ||
        (p->data != NULL && c->enc)) {
        MGP_ERR(c->prov, MGP_R_BAD_ARGUMENT, "%s: tag of %zu bytes not accepted here", c->alg->name, p->data_size);
        return 0;
    }
    c->taglen = p->data_size;
    if (p->data != NULL) {
        memcpy(c->tag, p->data, p->data_size);
        c->tag_ready = 1;
    }
    return 1;
}

static int set_tls_iv_fixed(cipher_ctx *c, const OSSL_PARAM *p)
{
    /* GCM: the 4-byte fixed part (the 8-byte counter starts random) or a whole 12-byte IV; ChaCha: 12 bytes. */
    size_t n = p->data_size;
    int ok = is_aead(c->alg) && p->data_type == OSSL_PARAM_OCTET_STRING && (n == 12 || (c->alg->kind == GCM && n == 4));
    if (ok) {
        memcpy(c->tls_iv, p->data, n);
        if (n == 4 && c->enc) /* the invocation counter starts at a random value, as OpenSSL's does */
            ok = RAND_bytes_ex(c->prov->libctx, c->tls_iv + 4, 8, 0) == 1;
    }
    if (!ok) {
        MGP_ERR(c->prov, MGP_R_BAD_ARGUMENT, "%s: TLS fixed IV of %zu bytes not accepted", c->alg->name, n);
        return 0;
    }
    c->tls_iv_set = 1;
    return 1;
}

static int set_tls_aad(cipher_ctx *c, const OSSL_PARAM *p)
{
    if (!is_aead(c->alg) || p->data_type != OSSL_PARAM_OCTET_STRING || p->data_size != TLS_AAD_LEN) {
        MGP_ERR(c->prov, MGP_R_BAD_ARGUMENT, "%s: TLS AAD must be %d bytes", c->alg->name, TLS_AAD_LEN);
        return 0;
    }
    memcpy(c->tls_aad, p->data, TLS_AAD_LEN);
    /* The record length in the AAD covers what is sent; the MAC covers the payload only. */
    size_t len = (size_t)c->tls_aad[11] << 8 | c->tls_aad[12];
    size_t overhead = (c->alg->kind == GCM ? GCM_TLS_EXPLICIT : 0) + (c->enc ? 0 : TAG_MAX);
    if (len < overhead) {
        MGP_ERR(c->prov, MGP_R_BAD_ARGUMENT, "%s: TLS record length %zu too short", c->alg->name, len);
        return 0;
    }
    len -= overhead;
    c->tls_aad[11] = (unsigned char)(len >> 8);
    c->tls_aad[12] = (unsigned char)len;
    c->tls_aad_set = 1;
    return 1;
}

static int set_iv_inv(cipher_ctx *c, const OSSL_PARAM *p)
{
    (void)p;
    MGP_ERR(c->prov, MGP_R_UNSUPPORTED, "%s: TLS1_SET_IV_INV (DTLS/QUIC) is not offered", c->alg->name);
    return 0;
}

/* In the order they apply when given together: the IV length before the tag, the fixed IV before the AAD. */
static const struct {
    const char *name;
    int (*set)(cipher_ctx *c, const OSSL_PARAM *p);
} setters[] = {
    {OSSL_CIPHER_PARAM_KEYLEN, set_keylen},
    {OSSL_CIPHER_PARAM_PADDING, set_padding},
    {OSSL_CIPHER_PARAM_AEAD_IVLEN, set_ivlen},
    {OSSL_CIPHER_PARAM_AEAD_TAG, set_tag},
    {OSSL_CIPHER_PARAM_AEAD_TLS1_IV_FIXED, set_tls_iv_fixed},
    {OSSL_CIPHER_PARAM_AEAD_TLS1_AAD, set_tls_aad},
    {OSSL_CIPHER_PARAM_AEAD_TLS1_SET_IV_INV, set_iv_inv},
};
#define N_SETTERS (sizeof setters / sizeof setters[0])

static int set_ctx_params(void *vctx, const OSSL_PARAM params[])
{
    cipher_ctx *c = vctx;
    if (params == NULL || params[0].key == NULL)
        return 1;
    /* One parameter - the per-record case: decrypt's SET_TAG, a TLS record's AAD - by name directly. */
    if (params[1].key == NULL) {
        for (size_t i = 0; i < N_SETTERS; i++)
            if (strcmp(params[0].key, setters[i].name) == 0)
                return setters[i].set(c, &params[0]);
        return 1; /* not ours: ignored, as OSSL_PARAM_locate would */
    }
    for (size_t i = 0; i < N_SETTERS; i++) {
        const OSSL_PARAM *p = OSSL_PARAM_locate_const(params, setters[i].name);
        if (p != NULL && !setters[i].set(c, p))
            return 0;
    }
    return 1;
}

/* ---- dispatch ---- */

/*
 * Every entry point that touched the key schedule ends by clearing the vector
 * registers: AES-NI keeps round keys in them, and the next lazily bound call
 * or signal would copy them to the stack (mg-keyscan found exactly that for
 * CMAC's subkeys). About 10 ns a call.
 */
static int scrubbed_einit(void *vctx, const unsigned char *key, size_t keylen, const unsigned char *iv, size_t ivlen,
                          const OSSL_PARAM params[])
{
    int rc = cipher_einit(vctx, key, keylen, iv, ivlen, params);
    mg_scrub(0);
    return rc;
}

static int scrubbed_dinit(void *vctx, const unsigned char *key, size_t keylen, const unsigned char *iv, size_t ivlen,
                          const OSSL_PARAM params[])
{
    int rc = cipher_dinit(vctx, key, keylen, iv, ivlen, params);
    mg_scrub(0);
    return rc;
}

static int scrubbed_update(void *vctx, unsigned char *out, size_t *outl, size_t outsize, const unsigned char *in,
                           size_t inl)
{
    int rc = cipher_update(vctx, out, outl, outsize, in, inl);
    mg_scrub(0);
    return rc;
}

static int scrubbed_final(void *vctx, unsigned char *out, size_t *outl, size_t outsize)
{
    int rc = cipher_final(vctx, out, outl, outsize);
    mg_scrub(0);
    return rc;
}

static int scrubbed_oneshot(void *vctx, unsigned char *out, size_t *outl, size_t outsize, const unsigned char *in,
                            size_t inl)
{
    int rc = cipher_oneshot(vctx, out, outl, outsize, in, inl);
    mg_scrub(0);
    return rc;
}

static void *scrubbed_dup(void *vctx)
{
    void *d = cipher_dup(vctx);
    mg_scrub(0);
    return d;
}

#define CIPHER_TABLE(id, a)                                                                         \
    static void *id##_new(void *provctx) { return cipher_new(provctx, &(a)); }                      \
    static int id##_get_params(OSSL_PARAM params[]) { return get_params_for(&(a), params); }        \
    static const OSSL_PARAM *id##_gettable_ctx(void *vctx, void *provctx)                           \
    {                                                                                               \
        (void)vctx, (void)provctx;                                                                  \
        return is_aead(&(a)) ? aead_gettable : block_gettable;                                      \
    }                                                                                               \
    static const OSSL_PARAM *id##_settable_ctx(void *vctx, void *provctx)                           \
    {                                                                                               \
        (void)vctx, (void)provctx;                                                                  \
        return is_aead(&(a)) ? aead_settable : block_settable;                                      \
    }                                                                                               \
    static const OSSL_DISPATCH id##_functions[] = {                                                 \
        {OSSL_FUNC_CIPHER_NEWCTX, (void (*)(void))id##_new},                                        \
        {OSSL_FUNC_CIPHER_ENCRYPT_INIT, (void (*)(void))scrubbed_einit},                              \
        {OSSL_FUNC_CIPHER_DECRYPT_INIT, (void (*)(void))scrubbed_dinit},                              \
        {OSSL_FUNC_CIPHER_UPDATE, (void (*)(void))scrubbed_update},                                   \
        {OSSL_FUNC_CIPHER_FINAL, (void (*)(void))scrubbed_final},                                     \
        {OSSL_FUNC_CIPHER_CIPHER, (void (*)(void))scrubbed_oneshot},                                  \
        {OSSL_FUNC_CIPHER_FREECTX, (void (*)(void))cipher_free},                                    \
        {OSSL_FUNC_CIPHER_DUPCTX, (void (*)(void))scrubbed_dup},                                      \
        {OSSL_FUNC_CIPHER_GET_PARAMS, (void (*)(void))id##_get_params},                             \
        {OSSL_FUNC_CIPHER_GETTABLE_PARAMS, (void (*)(void))gettable_params},                        \
        {OSSL_FUNC_CIPHER_GET_CTX_PARAMS, (void (*)(void))get_ctx_params},                          \
        {OSSL_FUNC_CIPHER_SET_CTX_PARAMS, (void (*)(void))set_ctx_params},                          \
        {OSSL_FUNC_CIPHER_GETTABLE_CTX_PARAMS, (void (*)(void))id##_gettable_ctx},                \
        {OSSL_FUNC_CIPHER_SETTABLE_CTX_PARAMS, (void (*)(void))id##_settable_ctx},                \
        {0, NULL},                                                                                  \
    };

CIPHER_TABLE(aes128gcm, aes128gcm)
CIPHER_TABLE(aes256gcm, aes256gcm)
CIPHER_TABLE(aes256ctr, aes256ctr)
CIPHER_TABLE(aes256cbc, aes256cbc)
CIPHER_TABLE(chacha20poly1305, chacha20poly1305)

/* Names as the default provider spells them, so "AES-256-GCM" or the OID fetch either one. */
static const OSSL_ALGORITHM with_aes[] = {
    {"AES-128-GCM:id-aes128-GCM:2.16.840.1.101.3.4.1.6", MGP_PROPS, aes128gcm_functions, NULL},
    {"AES-256-GCM:id-aes256-GCM:2.16.840.1.101.3.4.1.46", MGP_PROPS, aes256gcm_functions, NULL},
    {"AES-256-CTR", MGP_PROPS, aes256ctr_functions, NULL},
    {"AES-256-CBC:AES256:2.16.840.1.101.3.4.1.42", MGP_PROPS, aes256cbc_functions, NULL},
    {"ChaCha20-Poly1305", MGP_PROPS, chacha20poly1305_functions, NULL},
    {NULL, NULL, NULL, NULL},
};

/* Without AES-NI and PCLMULQDQ the AES ciphers do not exist here: a fetch fails cleanly. */
static const OSSL_ALGORITHM without_aes[] = {
    {"ChaCha20-Poly1305", MGP_PROPS, chacha20poly1305_functions, NULL},
    {NULL, NULL, NULL, NULL},
};

const OSSL_ALGORITHM *mgp_cipher_algorithms(void)
{
    return mgp_aes_available() ? with_aes : without_aes;
}
