/*
 * HMAC (RFC 2104) with every key-equivalent byte in guarded memory.
 *
 * The default provider's HMAC keeps three digest contexts (after K^ipad,
 * after K^opad, running) in heap memory that its digest implementation
 * allocates; whoever reads the heap can forge MACs without the key. Here the
 * three contexts, the padded key block and the inner digest live in a slot of
 * a guarded slab, and the digest is OpenSSL's low-level SHA-1/SHA-2 code (the
 * same assembly the default provider runs, SHA-NI where the CPU has it),
 * whose context struct we can place there. SHA-3 has no such interface in
 * 3.0: it runs on memguard's own Keccak (keccak.c, also KMAC's), and since a
 * Keccak state is key-equivalent whatever it has absorbed, the stack and
 * registers the permutation used are cleared after every SHA-3 call. Other
 * digests are refused by name.
 *
 * Slots: a context is created for every EVP_MAC_CTX and, by
 * EVP_DigestSignFinal's internal dup, for every HMAC signature; one guarded
 * mapping each (mmap + mlock + munmap, several microseconds) would cost more
 * than the MAC. So guarded slabs of SLAB_SLOTS slots are mapped once and kept;
 * a freed slot is wiped before it goes back on the list.
 */
#define OPENSSL_SUPPRESS_DEPRECATED /* SHA256_Init & co.: the only SHA-2 with caller-owned state in 3.0 */

#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/params.h>
#include <openssl/sha.h>

#include "hmac.h"
#include "keccak.h"

struct sha3_state {
    mgp_keccak k;
    size_t pos;
};

union md_state {
    SHA_CTX s1;
    SHA256_CTX s256;
    SHA512_CTX s512;
    struct sha3_state s3;
};

struct mgp_hmac_md {
    const char *names[5];
    size_t size, block;
    void (*init)(union md_state *);
    void (*update)(union md_state *, const void *, size_t);
    void (*final)(unsigned char *, union md_state *);
    bool keccak; /* SHA-3: the stack and registers are cleared after each keyed call (below) */
};

/* The low-level calls cannot fail on valid arguments (they return 1 always); wrappers fix the types. */
static void i1(union md_state *s) { SHA1_Init(&s->s1); }
static void u1(union md_state *s, const void *d, size_t n) { SHA1_Update(&s->s1, d, n); }
static void f1(unsigned char *o, union md_state *s) { SHA1_Final(o, &s->s1); }
static void i224(union md_state *s) { SHA224_Init(&s->s256); }
static void i256(union md_state *s) { SHA256_Init(&s->s256); }
static void u256(union md_state *s, const void *d, size_t n) { SHA256_Update(&s->s256, d, n); }
static void f224(unsigned char *o, union md_state *s) { SHA224_Final(o, &s->s256); }
static void f256(unsigned char *o, union md_state *s) { SHA256_Final(o, &s->s256); }
static void i384(union md_state *s) { SHA384_Init(&s->s512); }
static void i512(union md_state *s) { SHA512_Init(&s->s512); }
static void u512(union md_state *s, const void *d, size_t n) { SHA512_Update(&s->s512, d, n); }
static void f384(unsigned char *o, union md_state *s) { SHA384_Final(o, &s->s512); }
static void f512(unsigned char *o, union md_state *s) { SHA512_Final(o, &s->s512); }

#define SHA3(bits, rate)                                                                                               \
    static void i3_##bits(union md_state *s) { mg_wipe(&s->s3, sizeof s->s3); }                                      \
    static void u3_##bits(union md_state *s, const void *d, size_t n)                                                \
    {                                                                                                                  \
        mgp_keccak_absorb(&s->s3.k, rate, &s->s3.pos, d, n);                                                           \
    }                                                                                                                  \
    static void f3_##bits(unsigned char *o, union md_state *s)                                                       \
    {                                                                                                                  \
        mgp_keccak_pad(&s->s3.k, rate, &s->s3.pos, 0x06);                                                              \
        mgp_keccak_squeeze(&s->s3.k, rate, &s->s3.pos, o, (bits) / 8);                                                 \
        mg_wipe(&s->s3, sizeof s->s3);                                                                                 \
    }
SHA3(224, 144)
SHA3(256, 136)
SHA3(384, 104)
SHA3(512, 72)

/* Names as OpenSSL 3.0's default provider registers them (compared without case). */
static const mgp_hmac_md mds[] = {
    {{"SHA2-256", "SHA-256", "SHA256", "2.16.840.1.101.3.4.2.1", NULL}, 32, 64, i256, u256, f256, false},
    {{"SHA2-512", "SHA-512", "SHA512", "2.16.840.1.101.3.4.2.3", NULL}, 64, 128, i512, u512, f512, false},
    {{"SHA2-384", "SHA-384", "SHA384", "2.16.840.1.101.3.4.2.2", NULL}, 48, 128, i384, u512, f384, false},
    {{"SHA2-224", "SHA-224", "SHA224", "2.16.840.1.101.3.4.2.4", NULL}, 28, 64, i224, u256, f224, false},
    {{"SHA1", "SHA-1", "SSL3-SHA1", "1.3.14.3.2.26", NULL}, 20, 64, i1, u1, f1, false},
    /* block: the sponge's rate, as the default provider's HMAC takes it */
    {{"SHA3-256", "2.16.840.1.101.3.4.2.8", NULL}, 32, 136, i3_256, u3_256, f3_256, true},
    {{"SHA3-512", "2.16.840.1.101.3.4.2.10", NULL}, 64, 72, i3_512, u3_512, f3_512, true},
    {{"SHA3-384", "2.16.840.1.101.3.4.2.9", NULL}, 48, 104, i3_384, u3_384, f3_384, true},
    {{"SHA3-224", "2.16.840.1.101.3.4.2.7", NULL}, 28, 144, i3_224, u3_224, f3_224, true},
};

const mgp_hmac_md *mgp_hmac_md_by_name(const char *name)
{
    if (name == NULL)
        return NULL;
    for (size_t i = 0; i < sizeof mds / sizeof mds[0]; i++)
        for (const char *const *n = mds[i].names; *n != NULL; n++)
            if (strcasecmp(name, *n) == 0)
                return &mds[i];
    return NULL;
}

const char *mgp_hmac_md_name(const mgp_hmac_md *md) { return md->names[0]; }
size_t mgp_hmac_md_size(const mgp_hmac_md *md) { return md->size; }
size_t mgp_hmac_md_block(const mgp_hmac_md *md) { return md->block; }

/* ---- guarded slots ---- */

struct state {
    union md_state ictx, octx, cur;
    unsigned char block[144]; /* K0, K0 ^ ipad, K0 ^ opad: only during set_key (SHA3-224's is the largest) */
    unsigned char inner[64];  /* the inner digest: only during final */
};

#define SLOT_SIZE 1024
#define SLAB_SLOTS 16 /* 16 KiB of locked memory per slab: gentle on an 8 MiB RLIMIT_MEMLOCK */
#define MAX_SLABS 4096
_Static_assert(sizeof(struct state) <= SLOT_SIZE, "HMAC state outgrew its slot");
_Static_assert(SLOT_SIZE == MGP_SLOT_SIZE, "hmac.h and hmac.c disagree on the slot size");

struct slab {
    mg_buffer *buf;
    unsigned char *base;
    uint32_t used; /* bit i: slot i taken */
};

static struct slab slabs[MAX_SLABS];
static size_t n_slabs;
static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t pool_once = PTHREAD_ONCE_INIT;

/* A fork while another thread holds the pool lock would leave the child's copy locked forever. */
static void pool_prepare(void) { (void)pthread_mutex_lock(&pool_lock); }
static void pool_release(void) { (void)pthread_mutex_unlock(&pool_lock); }
static int pool_atfork_ok;
static void pool_init(void) { pool_atfork_ok = pthread_atfork(pool_prepare, pool_release, pool_release) == 0; }

struct mgp_hmac {
    struct slab *slab;
    struct state *st; /* the slot */
    const mgp_hmac_md *md;
};

static struct state *slot_take(struct slab **owner)
{
    if (pthread_once(&pool_once, pool_init) != 0 || !pool_atfork_ok || pthread_mutex_lock(&pool_lock) != 0)
        return NULL;
    struct state *st = NULL;
    for (size_t i = 0; i < n_slabs && st == NULL; i++) {
        struct slab *s = &slabs[i];
        if (s->used == (1u << SLAB_SLOTS) - 1 || !mg_buffer_is_alive(s->buf))
            continue;
        unsigned j = (unsigned)__builtin_ctz(~s->used);
        s->used |= 1u << j;
        st = (struct state *)(void *)(s->base + (size_t)j * SLOT_SIZE);
        *owner = s;
    }
    if (st == NULL && n_slabs < MAX_SLABS) {
        struct slab *s = &slabs[n_slabs];
        s->buf = mg_buffer_new(SLAB_SLOTS * SLOT_SIZE); /* page multiple: data starts page-aligned */
        if (s->buf != NULL && (s->base = mg_buffer_data(s->buf)) != NULL) {
            n_slabs++;
            s->used = 1;
            st = (struct state *)(void *)s->base;
            *owner = s;
        } else {
            mg_buffer_destroy(s->buf);
            s->buf = NULL;
        }
    }
    (void)pthread_mutex_unlock(&pool_lock);
    return st;
}

static void slot_give(struct slab *s, struct state *st)
{
    size_t j = (size_t)((unsigned char *)st - s->base) / SLOT_SIZE;
    if (mg_buffer_is_alive(s->buf)) /* a purged slab is PROT_NONE and already wiped */
        mg_wipe(st, sizeof *st);
    if (pthread_mutex_lock(&pool_lock) != 0)
        return; /* cannot happen with a default mutex; the slot stays taken */
    s->used &= ~(1u << j);
    (void)pthread_mutex_unlock(&pool_lock);
}

void *mgp_slot_take(void **owner)
{
    struct slab *s = NULL;
    struct state *st = slot_take(&s);
    *owner = s;
    return st;
}

void mgp_slot_give(void *owner, void *slot, size_t used)
{
    struct slab *s = owner;
    if (s == NULL || slot == NULL)
        return;
    if (mg_buffer_is_alive(s->buf))
        mg_wipe(slot, used < SLOT_SIZE ? used : SLOT_SIZE);
    slot_give(s, slot);
}

bool mgp_slot_alive(const void *owner)
{
    const struct slab *s = owner;
    return s != NULL && mg_buffer_is_alive(s->buf);
}

/*
 * SHA-3's permutation (keccak.c) spills state lanes onto the stack below the calls here, and a
 * Keccak state is key-equivalent whatever it has absorbed (it can be run backwards): after every
 * keyed SHA-3 call, clear that stack and the vector registers - test_kmac finds ~20 lanes on the
 * stack without it. SHA-1/SHA-2 run in OpenSSL's assembly on the slot itself and need none of it.
 */
#define SHA3_SCRUB_STACK 4096

static void keccak_scrub(const mgp_hmac_md *md, size_t stack)
{
    if (md != NULL && md->keccak)
        mg_scrub(stack);
}

mgp_hmac *mgp_hmac_new(void)
{
    mgp_hmac *h = OPENSSL_zalloc(sizeof *h);
    if (h == NULL)
        return NULL;
    if ((h->st = slot_take(&h->slab)) == NULL) {
        OPENSSL_free(h);
        return NULL;
    }
    return h;
}

mgp_hmac *mgp_hmac_in(void *mem)
{
    if (mem == NULL || ((uintptr_t)mem & 63) != 0)
        return NULL;
    mgp_hmac *h = OPENSSL_zalloc(sizeof *h); /* the handle: no secret in it */
    if (h == NULL)
        return NULL;
    h->st = mem;
    mg_wipe(h->st, sizeof *h->st);
    return h;
}

mgp_hmac *mgp_hmac_dup(const mgp_hmac *src)
{
    mgp_hmac *h = mgp_hmac_new();
    if (h == NULL)
        return NULL;
    memcpy(h->st, src->st, sizeof *h->st); /* guarded to guarded */
    h->md = src->md;
    keccak_scrub(h->md, 0);
    return h;
}

void mgp_hmac_free(mgp_hmac *h)
{
    if (h == NULL)
        return;
    if (h->slab != NULL)
        slot_give(h->slab, h->st);
    else
        mg_wipe(h->st, sizeof *h->st); /* the caller's memory (mgp_hmac_in) */
    OPENSSL_free(h);
}

bool mgp_hmac_alive(const mgp_hmac *h)
{
    return h != NULL && (h->slab == NULL || mg_buffer_is_alive(h->slab->buf));
}

void mgp_hmac_set_key(mgp_hmac *h, const mgp_hmac_md *md, const unsigned char *key, size_t len)
{
    struct state *st = h->st;
    mg_wipe(st->block, sizeof st->block);
    if (len > md->block) {
        md->init(&st->cur);
        md->update(&st->cur, key, len);
        md->final(st->block, &st->cur);
    } else if (len > 0) {
        memcpy(st->block, key, len);
    }
    for (size_t i = 0; i < md->block; i++)
        st->block[i] ^= 0x36;
    md->init(&st->ictx);
    md->update(&st->ictx, st->block, md->block);
    for (size_t i = 0; i < md->block; i++)
        st->block[i] ^= 0x36 ^ 0x5c;
    md->init(&st->octx);
    md->update(&st->octx, st->block, md->block);
    mg_wipe(st->block, sizeof st->block);
    h->md = md;
    st->cur = st->ictx;
    keccak_scrub(md, SHA3_SCRUB_STACK);
}

const mgp_hmac_md *mgp_hmac_get_md(const mgp_hmac *h)
{
    return h->md;
}

void mgp_hmac_restart(mgp_hmac *h)
{
    h->st->cur = h->st->ictx;
    keccak_scrub(h->md, 0); /* the copy passed through vector registers */
}

void mgp_hmac_update(mgp_hmac *h, const unsigned char *in, size_t len)
{
    if (len > 0) {
        h->md->update(&h->st->cur, in, len);
        keccak_scrub(h->md, SHA3_SCRUB_STACK);
    }
}

void mgp_hmac_final(mgp_hmac *h, unsigned char *out)
{
    struct state *st = h->st;
    const mgp_hmac_md *md = h->md;
    md->final(st->inner, &st->cur);
    st->cur = st->octx;
    md->update(&st->cur, st->inner, md->size);
    md->final(out, &st->cur);
    /* Leave only the keyed states: the last message's data and digests go. */
    mg_wipe(st->inner, sizeof st->inner);
    mg_wipe(&st->cur, sizeof st->cur);
    keccak_scrub(md, SHA3_SCRUB_STACK);
}

mg_enclave *mgp_seal_copy(const void *src, size_t len)
{
    static const unsigned char placeholder = 0;
    if (len == 0) {
        src = &placeholder;
        len = 1;
    }
    if (len > MGP_MAX_SECRET)
        return NULL;
    if (len <= sizeof(struct state)) { /* slot_give wipes exactly this much */
        struct slab *s;
        struct state *st = slot_take(&s);
        if (st == NULL)
            return NULL;
        memcpy(st, src, len);
        mg_enclave *e = mg_enclave_new(st, len); /* wipes the staged copy on success */
        slot_give(s, st);                        /* and slot_give wipes it in any case */
        return e;
    }
    mg_buffer *b = mg_buffer_new(len);
    if (b == NULL || mg_buffer_copy(b, src, len) != MG_OK) {
        mg_buffer_destroy(b);
        return NULL;
    }
    return mg_buffer_seal(b); /* destroys b */
}

static const OSSL_PARAM mac_gettable[] = {
    OSSL_PARAM_size_t(OSSL_MAC_PARAM_SIZE, NULL),
    OSSL_PARAM_size_t(OSSL_MAC_PARAM_BLOCK_SIZE, NULL),
    OSSL_PARAM_END,
};

const OSSL_PARAM *mgp_mac_gettable(void *vctx, void *provctx)
{
    (void)vctx;
    (void)provctx;
    return mac_gettable;
}

int mgp_mac_get_sizes(OSSL_PARAM params[], size_t size, size_t block)
{
    OSSL_PARAM *p;
    if ((p = OSSL_PARAM_locate(params, OSSL_MAC_PARAM_SIZE)) != NULL && !OSSL_PARAM_set_size_t(p, size))
        return 0;
    if ((p = OSSL_PARAM_locate(params, OSSL_MAC_PARAM_BLOCK_SIZE)) != NULL && !OSSL_PARAM_set_size_t(p, block))
        return 0;
    return 1;
}
