/*
 * SKEYMGMT for OpenSSL >= 3.5 (provider-skeymgmt(7)): an EVP_SKEY made by memguard holds its key
 * sealed in an enclave for its whole life, and memguard's ciphers and MACs accept it through the
 * EVP_SKEY init paths (EVP_CipherInit_SKEY, EVP_MAC_init_SKEY), unsealing it into guarded scratch
 * memory only for the moment their init expands it into guarded state.
 *
 * Export of the secret is refused, as for private keys (keymgmt.c): OpenSSL would otherwise copy
 * the raw bytes into another provider's key object in the ordinary heap. So a memguard EVP_SKEY
 * works with memguard's algorithms only; EVP pairs an EVP_SKEY with algorithms of its provider.
 *
 * Includes only <openssl/core.h> and <openssl/core_dispatch.h> (no params.h, no evp.h), so that
 * this file can be compiled against OpenSSL 3.5's headers on a machine that has 3.0.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core.h>
#include <openssl/core_dispatch.h>

#include <memguard/memguard.h>

#include "skeymgmt.h"

#ifdef OSSL_FUNC_SKEYMGMT_IMPORT /* OpenSSL >= 3.5; on 3.0 this file is not even compiled (CMake) */

/* Parameter names as OpenSSL 3.5 spells them (core_names.h is generated there; literals keep it out). */
#define P_RAW_BYTES "raw-bytes"
#define P_KEY_LENGTH "key-length"
#define MAX_SKEY (64 * 1024)
#define UNMODIFIED SIZE_MAX /* OSSL_PARAM_UNMODIFIED, from params.h */

typedef struct skey {
    void *prov;
    const char *type; /* "AES" or "GENERIC-SECRET" */
    mg_enclave *sealed;
} skey;

static const OSSL_PARAM *find(const OSSL_PARAM *p, const char *key)
{
    for (; p != NULL && p->key != NULL; p++)
        if (strcmp(p->key, key) == 0)
            return p;
    return NULL;
}

static int length_ok(const char *type, size_t n)
{
    if (strcmp(type, "AES") == 0)
        return n == 16 || n == 32; /* memguard's AES-NI code: AES-128 and AES-256 */
    return n > 0 && n <= MAX_SKEY;
}

/* A copy of len bytes sealed, staged in guarded memory (the caller's buffer is left as it is). */
static mg_enclave *seal_copy(const void *src, size_t len)
{
    mg_buffer *b = mg_buffer_new(len);
    if (b == NULL || mg_buffer_copy(b, src, len) != MG_OK) {
        mg_buffer_destroy(b);
        return NULL;
    }
    return mg_buffer_seal(b); /* destroys b */
}

static skey *skey_new(void *provctx, const char *type, mg_enclave *sealed)
{
    skey *k = sealed != NULL ? calloc(1, sizeof *k) : NULL;
    if (k == NULL) {
        mg_enclave_free(sealed);
        mgp_skey_error(provctx, 0, "cannot seal the symmetric key");
        return NULL;
    }
    k->prov = provctx;
    k->type = type;
    k->sealed = sealed;
    return k;
}

static void skey_free(void *keydata)
{
    skey *k = keydata;
    if (k == NULL)
        return;
    mg_enclave_free(k->sealed); /* ciphertext only; the key never sat here in the clear */
    free(k);
}

static void *skey_import(void *provctx, const char *type, int selection, const OSSL_PARAM params[])
{
    const OSSL_PARAM *p = find(params, P_RAW_BYTES);
    if ((selection & OSSL_SKEYMGMT_SELECT_SECRET_KEY) == 0 || p == NULL || p->data_type != OSSL_PARAM_OCTET_STRING ||
        p->data == NULL || !length_ok(type, p->data_size)) {
        mgp_skey_error(provctx, 0, strcmp(type, "AES") == 0 ? "an AES key is 16 or 32 raw bytes (\"raw-bytes\")"
                                                             : "a secret of 1..65536 raw bytes (\"raw-bytes\")");
        return NULL;
    }
    return skey_new(provctx, type, seal_copy(p->data, p->data_size));
}

static void *skey_generate(void *provctx, const char *type, const OSSL_PARAM params[])
{
    const OSSL_PARAM *p = find(params, P_KEY_LENGTH);
    size_t n = 0;
    if (p != NULL && p->data_type == OSSL_PARAM_UNSIGNED_INTEGER && p->data_size == sizeof(size_t))
        memcpy(&n, p->data, sizeof n);
    else if (p != NULL && p->data_type == OSSL_PARAM_INTEGER && p->data_size == sizeof(int)) {
        int i;
        memcpy(&i, p->data, sizeof i);
        n = i > 0 ? (size_t)i : 0;
    }
    if (!length_ok(type, n)) {
        mgp_skey_error(provctx, 0, "\"key-length\" missing or not supported for this key type");
        return NULL;
    }
    return skey_new(provctx, type, mg_enclave_random(n)); /* drawn straight into guarded memory */
}

static int skey_export(void *keydata, int selection, OSSL_CALLBACK *cb, void *cbarg)
{
    skey *k = keydata;
    (void)cb, (void)cbarg;
    if ((selection & OSSL_SKEYMGMT_SELECT_SECRET_KEY) != 0) {
        mgp_skey_error(k->prov, 0, "symmetric key export refused (the key stays sealed)");
        return 0;
    }
    return 1; /* no parameters to export */
}

static const char *skey_id(void *keydata)
{
    (void)keydata;
    return NULL; /* no alias: nothing identifies a key but its bytes, which stay sealed */
}

static const OSSL_PARAM import_settable[] = {
    {P_RAW_BYTES, OSSL_PARAM_OCTET_STRING, NULL, 0, UNMODIFIED},
    {NULL, 0, NULL, 0, 0},
};
static const OSSL_PARAM gen_settable[] = {
    {P_KEY_LENGTH, OSSL_PARAM_UNSIGNED_INTEGER, NULL, sizeof(size_t), UNMODIFIED},
    {NULL, 0, NULL, 0, 0},
};

static const OSSL_PARAM *skey_imp_settable(void *provctx)
{
    (void)provctx;
    return import_settable;
}

static const OSSL_PARAM *skey_gen_settable(void *provctx)
{
    (void)provctx;
    return gen_settable;
}

#define FN(id, f) {id, (void (*)(void))(f)}
#define SKEYMGMT_TABLE(id, name)                                                                     \
    static void *id##_import(void *provctx, int selection, const OSSL_PARAM params[])             \
    {                                                                                               \
        return skey_import(provctx, name, selection, params);                                      \
    }                                                                                               \
    static void *id##_generate(void *provctx, const OSSL_PARAM params[])                           \
    {                                                                                               \
        return skey_generate(provctx, name, params);                                                \
    }                                                                                               \
    static const OSSL_DISPATCH id##_functions[] = {                                                 \
        FN(OSSL_FUNC_SKEYMGMT_FREE, skey_free),                                                     \
        FN(OSSL_FUNC_SKEYMGMT_IMPORT, id##_import),                                                 \
        FN(OSSL_FUNC_SKEYMGMT_EXPORT, skey_export),                                                 \
        FN(OSSL_FUNC_SKEYMGMT_GENERATE, id##_generate),                                             \
        FN(OSSL_FUNC_SKEYMGMT_GET_KEY_ID, skey_id),                                                 \
        FN(OSSL_FUNC_SKEYMGMT_IMP_SETTABLE_PARAMS, skey_imp_settable),                              \
        FN(OSSL_FUNC_SKEYMGMT_GEN_SETTABLE_PARAMS, skey_gen_settable),                              \
        {0, NULL},                                                                                  \
    };

SKEYMGMT_TABLE(aes, "AES")
SKEYMGMT_TABLE(generic, "GENERIC-SECRET")

static const OSSL_ALGORITHM skeymgmt[] = {
    {"AES", "provider=memguard", aes_functions, NULL},
    {"GENERIC-SECRET", "provider=memguard", generic_functions, NULL},
    {NULL, NULL, NULL, NULL},
};

const OSSL_ALGORITHM *mgp_skeymgmt_algorithms(void)
{
    return skeymgmt;
}

/* ---- EVP_SKEY init for memguard's ciphers and MACs ---- */

/*
 * The init functions are added to copies of our cipher/MAC dispatch tables; each copy gets its own
 * slot, so the trampoline for slot i knows which algorithm's ordinary init to call with the key
 * unsealed (guarded scratch memory, wiped when mg_enclave_with returns).
 */
#define SLOTS 8
#define MAX_FNS 24

struct slot {
    OSSL_FUNC_cipher_encrypt_init_fn *einit, *dinit;
    OSSL_FUNC_mac_init_fn *minit;
    OSSL_DISPATCH fns[MAX_FNS];
};

static struct slot cipher_slots[SLOTS], mac_slots[SLOTS];
static OSSL_ALGORITHM cipher_algs[SLOTS + 1], mac_algs[SLOTS + 1];

struct init_args {
    const struct slot *slot;
    void *vctx;
    const unsigned char *iv;
    size_t ivlen;
    const OSSL_PARAM *params;
    int enc, mac;
};

static int with_key(const void *data, size_t size, void *arg)
{
    const struct init_args *a = arg;
    if (a->mac)
        return a->slot->minit(a->vctx, data, size, a->params);
    return (a->enc ? a->slot->einit : a->slot->dinit)(a->vctx, data, size, a->iv, a->ivlen, a->params);
}

static int skey_init(struct init_args *a, void *keydata)
{
    skey *k = keydata;
    if (k == NULL) { /* re-initialise with the key already set (new IV, or the next message) */
        if (a->mac)
            return a->slot->minit(a->vctx, NULL, 0, a->params);
        return (a->enc ? a->slot->einit : a->slot->dinit)(a->vctx, NULL, 0, a->iv, a->ivlen, a->params);
    }
    int rc = mg_enclave_with(k->sealed, with_key, a);
    if (rc < 0) {
        mgp_skey_error(k->prov, 0, "cannot unseal the symmetric key");
        return 0;
    }
    return rc;
}

#define TRAMPOLINES(i)                                                                                \
    static int cipher_e##i(void *vctx, void *key, const unsigned char *iv, size_t ivlen,             \
                           const OSSL_PARAM params[])                                               \
    {                                                                                                \
        struct init_args a = {&cipher_slots[i], vctx, iv, ivlen, params, 1, 0};                     \
        return skey_init(&a, key);                                                                   \
    }                                                                                                \
    static int cipher_d##i(void *vctx, void *key, const unsigned char *iv, size_t ivlen,             \
                           const OSSL_PARAM params[])                                               \
    {                                                                                                \
        struct init_args a = {&cipher_slots[i], vctx, iv, ivlen, params, 0, 0};                     \
        return skey_init(&a, key);                                                                   \
    }                                                                                                \
    static int mac_i##i(void *vctx, void *key, const OSSL_PARAM params[])                            \
    {                                                                                                \
        struct init_args a = {&mac_slots[i], vctx, NULL, 0, params, 0, 1};                          \
        return skey_init(&a, key);                                                                   \
    }
TRAMPOLINES(0)
TRAMPOLINES(1)
TRAMPOLINES(2)
TRAMPOLINES(3)
TRAMPOLINES(4)
TRAMPOLINES(5)
TRAMPOLINES(6)
TRAMPOLINES(7)

static OSSL_FUNC_cipher_encrypt_skey_init_fn *const cipher_e[SLOTS] = {cipher_e0, cipher_e1, cipher_e2, cipher_e3,
                                                                       cipher_e4, cipher_e5, cipher_e6, cipher_e7};
static OSSL_FUNC_cipher_decrypt_skey_init_fn *const cipher_d[SLOTS] = {cipher_d0, cipher_d1, cipher_d2, cipher_d3,
                                                                       cipher_d4, cipher_d5, cipher_d6, cipher_d7};
static OSSL_FUNC_mac_init_skey_fn *const mac_i[SLOTS] = {mac_i0, mac_i1, mac_i2, mac_i3,
                                                        mac_i4, mac_i5, mac_i6, mac_i7};

/* Copy base into algs/slots with the skey entries appended; 0 if it does not fit (then base is used). */
static int build(int mac, const OSSL_ALGORITHM *base, struct slot *slots, OSSL_ALGORITHM *algs)
{
    size_t n = 0;
    for (; base[n].algorithm_names != NULL; n++) {
        if (n == SLOTS)
            return 0;
        struct slot *s = &slots[n];
        size_t f = 0;
        for (const OSSL_DISPATCH *d = base[n].implementation; d->function_id != 0; d++) {
            if (f + 3 > MAX_FNS)
                return 0;
            if (d->function_id == OSSL_FUNC_CIPHER_ENCRYPT_INIT && !mac)
                s->einit = OSSL_FUNC_cipher_encrypt_init(d);
            if (d->function_id == OSSL_FUNC_CIPHER_DECRYPT_INIT && !mac)
                s->dinit = OSSL_FUNC_cipher_decrypt_init(d);
            if (d->function_id == OSSL_FUNC_MAC_INIT && mac)
                s->minit = OSSL_FUNC_mac_init(d);
            s->fns[f++] = *d;
        }
        if (mac) {
            s->fns[f++] = (OSSL_DISPATCH){OSSL_FUNC_MAC_INIT_SKEY, (void (*)(void))mac_i[n]};
        } else {
            s->fns[f++] = (OSSL_DISPATCH){OSSL_FUNC_CIPHER_ENCRYPT_SKEY_INIT, (void (*)(void))cipher_e[n]};
            s->fns[f++] = (OSSL_DISPATCH){OSSL_FUNC_CIPHER_DECRYPT_SKEY_INIT, (void (*)(void))cipher_d[n]};
        }
        s->fns[f] = (OSSL_DISPATCH){0, NULL};
        if (mac ? s->minit == NULL : s->einit == NULL || s->dinit == NULL)
            return 0;
        algs[n] = base[n];
        algs[n].implementation = s->fns;
    }
    algs[n] = base[n]; /* the terminator */
    return 1;
}

/* Our tables are fixed for the process (chosen by the CPU once), so each is extended once. */
static _Atomic(const OSSL_ALGORITHM *) cipher_base, mac_base;
static pthread_once_t cipher_once = PTHREAD_ONCE_INIT, mac_once = PTHREAD_ONCE_INIT;
static int cipher_ok, mac_ok;

static void build_cipher(void)
{
    cipher_ok = build(0, atomic_load(&cipher_base), cipher_slots, cipher_algs);
}

static void build_mac(void)
{
    mac_ok = build(1, atomic_load(&mac_base), mac_slots, mac_algs);
}

const OSSL_ALGORITHM *mgp_skey_extend(int operation_id, const OSSL_ALGORITHM *base)
{
    const OSSL_ALGORITHM *expected = NULL;
    if (base == NULL || (operation_id != OSSL_OP_CIPHER && operation_id != OSSL_OP_MAC))
        return base;
    int mac = operation_id == OSSL_OP_MAC;
    _Atomic(const OSSL_ALGORITHM *) *kept = mac ? &mac_base : &cipher_base;
    atomic_compare_exchange_strong(kept, &expected, base);
    if (atomic_load(kept) != base || pthread_once(mac ? &mac_once : &cipher_once, mac ? build_mac : build_cipher) != 0)
        return base; /* not the table we extended: plain, without EVP_SKEY support */
    if (mac)
        return mac_ok ? mac_algs : base;
    return cipher_ok ? cipher_algs : base;
}

#endif /* OSSL_FUNC_SKEYMGMT_IMPORT */
