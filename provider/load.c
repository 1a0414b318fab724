/*
 * Fail-closed key loading (load.h): the decision for each private key (seal, refuse, or leave to
 * the default provider when the operator allowed it), the text of each refusal, and the two ways
 * a key leaves our decoders: an object reference for our keymgmt's load, and the PEM decoder's
 * one-shot handle.
 *
 * Why a handle: in OSSL_STORE's file loader the decoder chain stops at the PEM level and the
 * store decodes the octets it got with every provider's DER decoders (store_result.c,
 * try_key_value), which copy them into heap buffers freed without clearing - and the freed-heap
 * scrubbing does not reach chunks that small. Handing up a random token instead of the key's DER
 * means those decoders only ever see 20 bytes that are useless to them; our handle decoder, the
 * only one declared for MGP_STRUCT_HANDLE, turns the token back into the sealed key.
 */
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

#include <openssl/core_names.h>
#include <openssl/core_object.h>
#include <openssl/err.h>
#include <openssl/params.h>
#include <sodium.h>

#include "load.h"

#define OPTION_HINT "memguard-unsealed-keys = allow"

void mgp_load_warn_unsealed(const char *type, const char *what)
{
    fprintf(stderr,
            "memguard-provider: WARNING: %s private key (%s) left to the default provider, NOT sealed (%s)\n", type,
            what, OPTION_HINT);
}

void mgp_memlock_limits(char soft[32], char hard[32])
{
    struct rlimit rl;
    snprintf(soft, 32, "?");
    snprintf(hard, 32, "?");
    if (getrlimit(RLIMIT_MEMLOCK, &rl) != 0)
        return;
    if (rl.rlim_cur == RLIM_INFINITY)
        snprintf(soft, 32, "unlimited");
    else
        snprintf(soft, 32, "%llu", (unsigned long long)rl.rlim_cur);
    if (rl.rlim_max == RLIM_INFINITY)
        snprintf(hard, 32, "unlimited");
    else
        snprintf(hard, 32, "%llu", (unsigned long long)rl.rlim_max);
}

/* "RLIMIT_MEMLOCK soft 32768 hard 32768 bytes, 28 kB locked" (what the operator needs to raise). */
static void describe_memlock(char *out, size_t n)
{
    char soft[32], hard[32];
    mgp_memlock_limits(soft, hard);
    long locked_kb = -1;
    FILE *f = fopen("/proc/self/status", "r");
    if (f != NULL) {
        char line[128];
        while (fgets(line, sizeof line, f) != NULL)
            if (sscanf(line, "VmLck: %ld kB", &locked_kb) == 1)
                break;
        fclose(f);
    }
    snprintf(out, n, "RLIMIT_MEMLOCK soft %s hard %s bytes, %ld kB already locked", soft, hard, locked_kb);
}

mgp_key *mgp_load_refuse_memory(mgp_ctx *prov, const char *type, int mg_err, const char *what)
{
    mgp_key *k = mgp_key_new(prov, type);
    if (k == NULL)
        return NULL;
    char lim[160];
    describe_memlock(lim, sizeof lim);
    if (mg_err == MG_EMLOCK && strstr(mg_last_error_message(), "RLIMIT_MEMLOCK") != NULL)
        return mgp_key_refuse(k, MGP_R_LOCKED_MEMORY, "no locked memory to %s: %s", what, mg_last_error_message());
    if (mg_err == MG_EMLOCK)
        return mgp_key_refuse(k, MGP_R_LOCKED_MEMORY,
                              "no locked memory to %s (%s; %s): raise RLIMIT_MEMLOCK (ulimit -l, LimitMEMLOCK=)",
                              what, lim, mg_strerror(mg_err));
    return mgp_key_refuse(k, MGP_R_KEY_REFUSED, "no guarded memory to %s (%s; %s)", what, lim, mg_strerror(mg_err));
}

/* After a failed seal: the reason mgp_key_set_from_pkey raised (its last error), with its text. */
static mgp_key *refuse_after_seal(mgp_key *k, int mg_err)
{
    unsigned long e = ERR_peek_last_error();
    int reason = ERR_GET_REASON(e);
    char lim[160];
    if ((mg_err == MG_EMLOCK || reason == MGP_R_LOCKED_MEMORY) && strstr(mg_last_error_message(), "RLIMIT_MEMLOCK"))
        return mgp_key_refuse(k, MGP_R_LOCKED_MEMORY, "sealing needs locked memory: %s", mg_last_error_message());
    if (mg_err == MG_EMLOCK || reason == MGP_R_LOCKED_MEMORY) {
        describe_memlock(lim, sizeof lim);
        return mgp_key_refuse(k, MGP_R_LOCKED_MEMORY,
                              "sealing needs locked memory (%s; %s): raise RLIMIT_MEMLOCK (ulimit -l, LimitMEMLOCK=)",
                              lim, mg_last_error_message());
    }
    if (reason == MGP_R_INVALID_KEY)
        return mgp_key_refuse(k, MGP_R_INVALID_KEY, "%s", mgp_key_last_failure());
    return mgp_key_refuse(k, MGP_R_KEY_REFUSED, "it could not be sealed: %s", mgp_key_last_failure());
}

mgp_key *mgp_load_der(mgp_ctx *prov, const mgp_der_class *cls, bool ts, const unsigned char *der, size_t len)
{
    if (cls->unsealed != NULL) {
        if (prov->allow_unsealed)
            return NULL;
        mgp_key *k = mgp_key_new(prov, cls->type);
        return k == NULL ? NULL
                         : mgp_key_refuse(k, MGP_R_UNSEALED_TYPE,
                                          "%s: memguard cannot seal it, so it is refused; set %s in memguard's "
                                          "openssl.cnf section to leave such keys, unprotected, to the default provider",
                                          cls->unsealed, OPTION_HINT);
    }
    mgp_key *k = mgp_key_new(prov, cls->type);
    if (k == NULL)
        return NULL;
    int mg_err = 0;
    EVP_PKEY *full = cls->malformed ? NULL : mgp_der_parse(prov, cls->type, ts, der, len, &mg_err);
    if (full == NULL && mg_err != 0) {
        mgp_key_free(k);
        return mgp_load_refuse_memory(prov, cls->type, mg_err, "parse the key");
    }
    if (full == NULL || !EVP_PKEY_is_a(full, cls->type)) {
        EVP_PKEY_free(full);
        return mgp_key_refuse(k, MGP_R_INVALID_KEY, "its DER does not parse as a %s private key", cls->type);
    }
    int ok = mgp_key_set_from_pkey(k, full);
    int seal_err = ok ? 0 : mg_last_error();
    EVP_PKEY_free(full); /* OpenSSL clears the private numbers */
    if (!ok)
        return refuse_after_seal(k, seal_err);
    mgp_debug(prov, "sealed a %s private key", k->type);
    return k;
}

/* ---- object references ---- */

/*
 * Not a bare pointer: OSSL_STORE may offer our reference to another provider's keymgmt load
 * (store_result.c try_key_ref), and the default provider's takes any pointer-sized reference as
 * its own key object. A reference of another size, with a magic word, is refused there and here.
 */
typedef struct {
    uint64_t magic;
    mgp_key *key;
    uint64_t magic2;
} mgp_ref;
#define MGP_REF_MAGIC UINT64_C(0x6d656d6775617264) /* "memguard" */
#define MGP_REF_MAGIC2 UINT64_C(0x7365616c65646b79)

mgp_key *mgp_ref_take(const void *reference, size_t reference_sz, const char *type)
{
    if (reference == NULL || reference_sz != sizeof(mgp_ref))
        return NULL;
    mgp_ref *r = (mgp_ref *)(uintptr_t)reference;
    if (r->magic != MGP_REF_MAGIC || r->magic2 != MGP_REF_MAGIC2 || r->key == NULL || strcmp(r->key->type, type) != 0)
        return NULL;
    mgp_key *k = r->key;
    r->key = NULL; /* ownership moves to OpenSSL's EVP_PKEY */
    return k;
}

int mgp_hand_key(mgp_ctx *prov, mgp_key *k, OSSL_CALLBACK *data_cb, void *data_cbarg)
{
    int objtype = OSSL_OBJECT_PKEY;
    mgp_ref ref = {MGP_REF_MAGIC, k, MGP_REF_MAGIC2};
    OSSL_PARAM params[] = {
        OSSL_PARAM_int(OSSL_OBJECT_PARAM_TYPE, &objtype),
        OSSL_PARAM_utf8_string(OSSL_OBJECT_PARAM_DATA_TYPE, (char *)(uintptr_t)k->type, strlen(k->type)),
        OSSL_PARAM_octet_string(OSSL_OBJECT_PARAM_REFERENCE, &ref, sizeof ref),
        OSSL_PARAM_END,
    };
    int rc = data_cb(params, data_cbarg);
    mgp_debug(prov, "handed a %s%s key to OpenSSL: %s", k->refusal != NULL ? "refused " : "sealed ", k->type,
              ref.key == NULL ? "taken" : "not taken");
    mgp_key_free(ref.key); /* NULL if our keymgmt's load took it */
    return rc;
}

/* ---- one-shot handles ---- */

#define HANDLE_MAGIC "MGPH" /* not a DER tag (0x4d): every DER decoder rejects it at the first byte */
#define HANDLE_TOKEN 16
#define HANDLE_LEN (4 + HANDLE_TOKEN)
#define PENDING_MAX 4

/* The PEM decoder's data_cb runs synchronously in this thread (PEM_read_bio and OSSL_STORE alike). */
static _Thread_local struct {
    unsigned char token[HANDLE_TOKEN];
    mgp_key *key;
} pending[PENDING_MAX];

int mgp_hand_handle(mgp_ctx *prov, mgp_key *k, OSSL_CALLBACK *data_cb, void *data_cbarg)
{
    size_t slot = 0;
    while (slot < PENDING_MAX && pending[slot].key != NULL)
        slot++;
    if (slot == PENDING_MAX) {
        MGP_ERR(prov, MGP_R_OPERATION_FAILED, "too many nested key loads");
        mgp_key_free(k);
        return 0;
    }
    unsigned char handle[HANDLE_LEN];
    memcpy(handle, HANDLE_MAGIC, 4);
    randombytes_buf(handle + 4, HANDLE_TOKEN);
    memcpy(pending[slot].token, handle + 4, HANDLE_TOKEN);
    pending[slot].key = k;
    int objtype = OSSL_OBJECT_PKEY;
    OSSL_PARAM params[] = {
        OSSL_PARAM_int(OSSL_OBJECT_PARAM_TYPE, &objtype),
        OSSL_PARAM_utf8_string(OSSL_OBJECT_PARAM_DATA_TYPE, (char *)(uintptr_t)k->type, strlen(k->type)),
        OSSL_PARAM_utf8_string(OSSL_OBJECT_PARAM_DATA_STRUCTURE, MGP_STRUCT_HANDLE, strlen(MGP_STRUCT_HANDLE)),
        OSSL_PARAM_octet_string(OSSL_OBJECT_PARAM_DATA, handle, sizeof handle),
        OSSL_PARAM_END,
    };
    int rc = data_cb(params, data_cbarg);
    if (pending[slot].key != NULL) {
        mgp_debug(prov, "nobody claimed the %s key handed up from PEM", pending[slot].key->type);
        mgp_key_free(pending[slot].key);
        pending[slot].key = NULL;
    }
    sodium_memzero(pending[slot].token, HANDLE_TOKEN);
    sodium_memzero(handle, sizeof handle);
    return rc;
}

mgp_key *mgp_handle_claim(const unsigned char *h, size_t len, const char *type)
{
    if (len != HANDLE_LEN || memcmp(h, HANDLE_MAGIC, 4) != 0)
        return NULL;
    for (size_t i = 0; i < PENDING_MAX; i++) {
        mgp_key *k = pending[i].key;
        if (k != NULL && sodium_memcmp(pending[i].token, h + 4, HANDLE_TOKEN) == 0 && strcmp(k->type, type) == 0) {
            pending[i].key = NULL; /* one shot */
            return k;
        }
    }
    return NULL;
}
