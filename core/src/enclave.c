/* Enclaves: crypto_secretbox under the coffer's key. Layout: nonce(24) | tag(16) | ciphertext. */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define NONCE crypto_secretbox_NONCEBYTES
#define TAG crypto_secretbox_MACBYTES

_Static_assert(NONCE + TAG == MG_ENCLAVE_OVERHEAD, "enclave overhead");
_Static_assert(crypto_secretbox_KEYBYTES == MG_KEY_BYTES, "key size");

struct mg_enclave {
    size_t size;
    unsigned char box[]; /* nonce | tag | ciphertext */
};

/* Working space lent by the scratch area: key, coffer copies, then the payload. */
#define WORK (MG_KEY_BYTES + MG_COFFER_TMP_BYTES)

static mg_enclave *alloc_enclave(size_t size)
{
    if (size == 0 || size > SIZE_MAX - sizeof(mg_enclave) - MG_ENCLAVE_OVERHEAD) {
        mg_fail(MG_EINVAL, 0, size == 0 ? "size 0" : "size %zu too large", size);
        return NULL;
    }
    mg_enclave *e = malloc(sizeof *e + MG_ENCLAVE_OVERHEAD + size);
    if (e == NULL) {
        mg_fail(MG_ENOMEM, 0, "enclave of %zu bytes", size);
        return NULL;
    }
    e->size = size;
    return e;
}

/*
 * The process key, derived into this thread's scratch area for one operation.
 * Lock order: the key is always derived before any buffer lock is taken (fork
 * takes coffer -> scratch pool -> scratch reserve -> registry -> buffers; see fork.c).
 */
struct keyed {
    mg_scratch *tok;
    unsigned char *work; /* key | coffer working copies */
};

static int key_begin(struct keyed *k)
{
    if (mg_ensure_init() != MG_OK)
        return MG_EINIT;
    mg_coffer_tick();
    k->work = mg_scratch_acquire(WORK, &k->tok);
    if (k->work == NULL)
        return mg_last_error();
    int rc = mg_coffer_key(k->work, k->work + MG_KEY_BYTES);
    if (rc != MG_OK)
        mg_scratch_release(k->tok, WORK);
    return rc;
}

static void key_end(struct keyed *k)
{
    mg_scratch_release(k->tok, WORK);
}

static void encrypt_into(mg_enclave *e, const void *src, const unsigned char *key)
{
    randombytes_buf(e->box, NONCE);
    crypto_secretbox_detached(e->box + NONCE + TAG, e->box + NONCE, src, e->size, e->box, key);
}

static int decrypt_into(const mg_enclave *e, unsigned char *out, const unsigned char *key)
{
    if (crypto_secretbox_open_detached(out, e->box + NONCE + TAG, e->box + NONCE, e->size, e->box, key) != 0)
        return mg_fail(MG_EAUTH, 0, "enclave does not authenticate (tampered, or sealed before a purge)");
    return MG_OK;
}

/* Seal src into a new enclave; src is not modified. */
static mg_enclave *seal(const void *src, size_t size)
{
    mg_enclave *e = alloc_enclave(size);
    if (e == NULL)
        return NULL;
    struct keyed k;
    if (key_begin(&k) != MG_OK) {
        free(e);
        return NULL;
    }
    encrypt_into(e, src, k.work);
    key_end(&k);
    return e;
}

mg_enclave *mg_enclave_seal_copy(const void *src, size_t size)
{
    return seal(src, size);
}

mg_enclave *mg_enclave_new(void *src, size_t size)
{
    if (src == NULL) {
        mg_fail(MG_EINVAL, 0, "NULL source");
        return NULL;
    }
    mg_enclave *e = seal(src, size);
    if (e != NULL)
        mg_wipe(src, size);
    return e;
}

mg_enclave *mg_enclave_random(size_t size)
{
    mg_enclave *e = alloc_enclave(size);
    if (e == NULL)
        return NULL;
    struct keyed k;
    if (key_begin(&k) != MG_OK) {
        free(e);
        return NULL;
    }
    /* The random plaintext exists only in a guarded buffer. */
    mg_buffer *b = mg_buffer_new_held(size);
    int rc = b == NULL ? mg_last_error() : mg_scramble(mg_buffer_data_held(b), size);
    if (rc == MG_OK)
        encrypt_into(e, mg_buffer_data_held(b), k.work);
    if (b != NULL)
        mg_buffer_destroy_held(b);
    key_end(&k);
    if (rc != MG_OK) {
        free(e);
        mg_fail(rc, 0, NULL);
        return NULL;
    }
    return e;
}

mg_enclave *mg_buffer_seal(mg_buffer *b)
{
    if (b == NULL) {
        mg_fail(MG_EINVAL, 0, "NULL buffer");
        return NULL;
    }
    struct keyed k;
    int rc = key_begin(&k);
    if (rc != MG_OK)
        return NULL; /* b is kept: nothing happened */
    rc = mg_buffer_hold(b);
    if (rc != MG_OK) {
        key_end(&k);
        if (rc == MG_EDEAD) {
            mg_buffer_destroy(b);
            mg_fail(MG_EDEAD, 0, "cannot seal a purged buffer; it was destroyed");
        }
        return NULL;
    }
    mg_enclave *e = alloc_enclave(mg_buffer_size_held(b));
    if (e != NULL)
        encrypt_into(e, mg_buffer_data_held(b), k.work);
    rc = mg_last_error();
    mg_buffer_destroy_held(b);
    key_end(&k);
    if (e == NULL)
        mg_fail(rc, 0, "sealing failed; the buffer was destroyed");
    return e;
}

mg_buffer *mg_enclave_open(const mg_enclave *e)
{
    if (e == NULL) {
        mg_fail(MG_EINVAL, 0, "NULL enclave");
        return NULL;
    }
    struct keyed k;
    if (key_begin(&k) != MG_OK)
        return NULL;
    mg_buffer *b = mg_buffer_new_held(e->size);
    int rc = b == NULL ? mg_last_error() : decrypt_into(e, mg_buffer_data_held(b), k.work);
    key_end(&k);
    if (rc != MG_OK) {
        if (b != NULL)
            mg_buffer_destroy_held(b);
        mg_fail(rc, 0, NULL);
        return NULL;
    }
    mg_buffer_release(b, true);
    return b;
}

/* One scratch area holds the key, the coffer copies, the plaintext and the caller's extra space. */
static size_t with_need(const mg_enclave *e, size_t extra)
{
    size_t plain_span = (e->size + 15) & ~(size_t)15; /* keep extra 16-byte aligned */
    return WORK + plain_span + extra;
}

int mg_enclave_reserve(const mg_enclave *e, size_t extra)
{
    if (e == NULL)
        return mg_fail(MG_EINVAL, 0, "NULL enclave");
    if (extra > SIZE_MAX - WORK - 16 - e->size)
        return mg_fail(MG_ERANGE, 0, "scratch request too large");
    /* e was sealed, so the coffer's buffers exist already: the reserve is all that is left to lock. */
    return mg_scratch_reserve(with_need(e, extra));
}

int mg_enclave_with_workspace(const mg_enclave *e, size_t extra, mg_enclave_workspace_fn fn, void *arg)
{
    if (e == NULL || fn == NULL)
        return mg_fail(MG_EINVAL, 0, e == NULL ? "NULL enclave" : "NULL function");
    if (extra > SIZE_MAX - WORK - 16 - e->size)
        return mg_fail(MG_ERANGE, 0, "scratch request too large");
    if (mg_ensure_init() != MG_OK)
        return MG_EINIT;
    mg_coffer_tick();
    size_t plain_span = (e->size + 15) & ~(size_t)15;
    size_t need = with_need(e, extra);
    mg_scratch *tok;
    unsigned char *work = mg_scratch_acquire(need, &tok);
    if (work == NULL)
        return mg_last_error();
    int rc = mg_coffer_key(work, work + MG_KEY_BYTES);
    if (rc == MG_OK) {
        rc = decrypt_into(e, work + WORK, work);
        mg_wipe(work, MG_KEY_BYTES);
        if (rc == MG_OK)
            rc = fn(work + WORK, e->size, extra > 0 ? work + WORK + plain_span : NULL, arg);
    }
    mg_scratch_release(tok, need);
    mg_clear_registers(); /* the cipher and fn's copies left plaintext in them (~10 ns) */
    return rc;
}

struct plain_call {
    mg_enclave_fn fn;
    void *arg;
};

static int call_plain(const void *data, size_t n, unsigned char *extra, void *varg)
{
    (void)extra;
    struct plain_call *c = varg;
    return c->fn(data, n, c->arg);
}

int mg_enclave_with(const mg_enclave *e, mg_enclave_fn fn, void *arg)
{
    if (fn == NULL)
        return mg_fail(MG_EINVAL, 0, "NULL function");
    struct plain_call c = {fn, arg};
    return mg_enclave_with_workspace(e, 0, call_plain, &c);
}

size_t mg_enclave_size(const mg_enclave *e)
{
    return e == NULL ? 0 : e->size;
}

void mg_enclave_free(mg_enclave *e)
{
    if (e == NULL)
        return;
    mg_wipe(e->box, MG_ENCLAVE_OVERHEAD + e->size);
    free(e);
}

/* Test hook: the sealed bytes, so tests can tamper with them. */
unsigned char *mg_test_enclave_bytes(mg_enclave *e, size_t *len)
{
    *len = MG_ENCLAVE_OVERHEAD + e->size;
    return e->box;
}
