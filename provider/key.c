/*
 * The sealed key. Private parameters (as EVP_PKEY_todata gives them: RSA's
 * n, e, d, p, q, dP, dQ, qInv; EC's group and scalar; ECX's raw keys) are
 * serialized into a guarded buffer and sealed into an enclave. For an
 * operation they are unsealed into guarded scratch memory, handed to
 * EVP_PKEY_fromdata in the provider's private library context, used, and the
 * transient key is freed (OpenSSL clears private BIGNUMs and ECX keys on
 * free). Serialized form, per parameter:
 *   u16 key length | key | NUL | u8 data type | u32 data size | data | NUL
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/params.h>

#include "provider.h"

#define MAX_PARAMS 24

mgp_key *mgp_key_new(mgp_ctx *prov, const char *type)
{
    mgp_key *k = OPENSSL_zalloc(sizeof *k);
    if (k == NULL)
        return NULL;
    atomic_init(&k->refs, 1);
    atomic_init(&k->ec_group, NULL);
    atomic_init(&k->rsa, NULL);
    k->prov = prov;
    k->type = type;
    return k;
}

mgp_key *mgp_key_up(mgp_key *k)
{
    if (k != NULL)
        atomic_fetch_add(&k->refs, 1);
    return k;
}

void mgp_key_free(mgp_key *k)
{
    if (k == NULL || atomic_fetch_sub(&k->refs, 1) != 1)
        return;
    EVP_PKEY_free(k->pub);
    mg_enclave_free(k->priv);
    EC_GROUP_free(atomic_load(&k->ec_group));
    mgp_rsa_cache_free(atomic_load(&k->rsa));
    OPENSSL_free(k->refusal);
    OPENSSL_free(k);
}

mgp_key *mgp_key_refuse(mgp_key *k, int reason, const char *fmt, ...)
{
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    OPENSSL_free(k->refusal);
    k->refusal = OPENSSL_strdup(text);
    k->refusal_reason = reason;
    mg_enclave_free(k->priv); /* nothing private stays behind a refusal */
    k->priv = NULL;
    MGP_ERR(k->prov, reason, "%s", text);
    /* The loader may drop the error queue on its way out (it reports success): say it here too. */
    fprintf(stderr, "memguard-provider: REFUSED a %s private key: %s\n", k->type, text);
    return k;
}

int mgp_key_usable(const mgp_ctx *prov, const mgp_key *k)
{
    if (k == NULL) {
        MGP_ERR(prov, MGP_R_NO_KEY, "no key");
        return 0;
    }
    if (k->refusal != NULL) {
        MGP_ERR(prov, k->refusal_reason, "%s key refused at load: %s", k->type, k->refusal);
        return 0;
    }
    if (k->priv == NULL) {
        MGP_ERR(prov, MGP_R_NOT_PRIVATE, "not a private key");
        return 0;
    }
    return 1;
}

static size_t serialized_size(const OSSL_PARAM *params, size_t *count)
{
    size_t n = 0;
    *count = 0;
    for (const OSSL_PARAM *p = params; p->key != NULL; p++) {
        n += 2 + strlen(p->key) + 1 + 1 + 4 + p->data_size + 1;
        (*count)++;
    }
    return n;
}

static unsigned char *put(unsigned char *at, const void *src, size_t n)
{
    memcpy(at, src, n);
    return at + n;
}

/* Seal params into a new enclave. */
static mg_enclave *seal_params(const OSSL_PARAM *params)
{
    size_t count;
    size_t total = serialized_size(params, &count);
    if (count == 0 || count > MAX_PARAMS)
        return NULL;
    mg_buffer *b = mg_buffer_new(total);
    if (b == NULL)
        return NULL;
    unsigned char *at = mg_buffer_data(b);
    for (const OSSL_PARAM *p = params; p->key != NULL; p++) {
        uint16_t klen = (uint16_t)strlen(p->key);
        uint8_t type = (uint8_t)p->data_type;
        uint32_t size = (uint32_t)p->data_size;
        at = put(at, &klen, 2);
        at = put(at, p->key, (size_t)klen + 1);
        at = put(at, &type, 1);
        at = put(at, &size, 4);
        if (size > 0)
            at = put(at, p->data, size);
        *at++ = 0;
    }
    return mg_buffer_seal(b); /* destroys (wipes) b */
}

/*
 * Export callback: seal the private parameters straight from the exporting
 * provider's own array, then clear that array. OpenSSL 3.0's OSSL_PARAM_free
 * clears only BIGNUMs it built in secure memory; octet strings (Ed/X private
 * keys) would stay in the freed heap block - measured with mg-keyscan (Ed448).
 */
/*
 * Why the last mgp_key_set_from_pkey of this thread failed, for the refusal that follows: the
 * loaders pop the error queue when they return a (refused) key, so the text must travel with it.
 */
static _Thread_local char last_failure[512];

const char *mgp_key_last_failure(void)
{
    return last_failure[0] != '\0' ? last_failure : "see the errors before this one";
}

static void seal_failed(const mgp_key *k, int reason, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void seal_failed(const mgp_key *k, int reason, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_failure, sizeof last_failure, fmt, ap);
    va_end(ap);
    MGP_ERR(k->prov, reason, "%s", last_failure);
}

/* One line per process, at its first sealed key: where the keys live and whether it is dumpable. */
static void say_backend_once(const mgp_ctx *prov)
{
    static _Atomic pid_t said;
    pid_t self = getpid();
    if (atomic_exchange(&said, self) == self)
        return;
    if (mg_get_backend() == MG_BACKEND_SECRETMEM)
        fprintf(stderr, "memguard-provider: private keys sealed; guarded memory: memfd_secret (out of the kernel's "
                        "direct map); process %s\n",
                prov->dumpable ? "DUMPABLE (memguard-dumpable = 1)" : "non-dumpable");
    else
        fprintf(stderr, "memguard-provider: private keys sealed; guarded memory: anonymous pages, mlock'ed (%s); "
                        "process %s\n",
                prov->backend_why != NULL ? prov->backend_why : "memfd_secret unavailable",
                prov->dumpable ? "DUMPABLE (memguard-dumpable = 1)" : "non-dumpable");
}

struct seal_args {
    mgp_key *k;
    mg_enclave *sealed;
    int invalid; /* validation failed: the error is raised */
};

static int seal_export(const OSSL_PARAM params[], void *arg)
{
    struct seal_args *a = arg;
    char why[256];
    mg_enclave **sealed = &a->sealed;
    if (!mgp_validate_private(a->k->prov, a->k->type, params, why, sizeof why)) {
        a->invalid = 1;
        seal_failed(a->k, MGP_R_INVALID_KEY, "invalid %s private key: %s", a->k->type, why);
    } else {
        *sealed = seal_params(params);
    }
    for (const OSSL_PARAM *p = params; p->key != NULL; p++)
        if (p->data != NULL)
            OPENSSL_cleanse(p->data, p->data_size); /* the exporter frees it right after we return */
    return *sealed != NULL;
}

int mgp_key_set_from_pkey(mgp_key *k, EVP_PKEY *full)
{
    OSSL_PARAM *pub = NULL;
    EVP_PKEY *pubkey = NULL;
    EVP_PKEY_CTX *pctx = NULL;
    struct seal_args sa = {k, NULL, 0};
    int ok = 0;
    last_failure[0] = '\0';
    if (k->prov->config_error[0] != '\0') {
        seal_failed(k, MGP_R_KEY_REFUSED, "memguard is misconfigured (%s): no key is sealed until that is fixed",
                    k->prov->config_error);
        return 0;
    }
    if (EVP_PKEY_todata(full, EVP_PKEY_PUBLIC_KEY, &pub) != 1) {
        seal_failed(k, MGP_R_OPERATION_FAILED, "cannot read the key's parameters");
        goto out;
    }
    pctx = EVP_PKEY_CTX_new_from_name(k->prov->libctx, k->type, "provider=default");
    if (pctx == NULL || EVP_PKEY_fromdata_init(pctx) != 1 ||
        EVP_PKEY_fromdata(pctx, &pubkey, EVP_PKEY_PUBLIC_KEY, pub) != 1) {
        seal_failed(k, MGP_R_OPERATION_FAILED, "cannot build the public key");
        goto out;
    }
    if (EVP_PKEY_export(full, EVP_PKEY_KEYPAIR, seal_export, &sa) != 1 || sa.sealed == NULL) {
        if (!sa.invalid)
            seal_failed(k, mg_last_error() == MG_EMLOCK ? MGP_R_LOCKED_MEMORY : MGP_R_SEAL_FAILED, "%s",
                        sa.sealed == NULL ? mg_last_error_message() : "export failed");
        goto out;
    }
    /*
     * Locked memory for this key's operations, reserved now, so that under RLIMIT_MEMLOCK pressure an
     * operation waits for shared scratch instead of failing at random (docs/locked-memory.md). The
     * largest workspace beside the unsealed parameters: RSA decryption's 5 * |n| + ~1.6 KiB (rsa.c:
     * 3 * |n| plus dec_scratch, with implicit rejection's HMAC state), Ed25519's 64-byte libsodium
     * key (signature.c), none elsewhere. For every type 6 * EVP_PKEY_get_size + 2 KiB covers it;
     * provider.memlock fails if it stops doing so.
     */
    if (mg_enclave_reserve(sa.sealed, 6 * (size_t)(EVP_PKEY_get_size(full) > 0 ? EVP_PKEY_get_size(full) : 0) + 2048) !=
        MG_OK) {
        seal_failed(k, MGP_R_LOCKED_MEMORY,
                    "cannot reserve the locked memory this %s key's operations need (RLIMIT_MEMLOCK too small): %s",
                    k->type, mg_last_error_message());
        goto out;
    }
    mg_enclave_free(k->priv);
    EVP_PKEY_free(k->pub);
    k->priv = sa.sealed;
    sa.sealed = NULL;
    k->pub = pubkey;
    pubkey = NULL;
    ok = 1;
    say_backend_once(k->prov);
out:
    mg_enclave_free(sa.sealed);
    OSSL_PARAM_free(pub);
    EVP_PKEY_free(pubkey);
    EVP_PKEY_CTX_free(pctx);
    return ok;
}

struct with_args {
    const mgp_key *k;
    mgp_key_fn fn;
    void *arg;
};

static int get(const unsigned char **at, const unsigned char *end, void *dst, size_t n)
{
    if ((size_t)(end - *at) < n)
        return 0;
    memcpy(dst, *at, n);
    *at += n;
    return 1;
}

/* The next serialized parameter at *at (see the format at the top). 0 at the end or on a malformed blob. */
static int next_param(const unsigned char **at, const unsigned char *end, OSSL_PARAM *out)
{
    uint16_t klen;
    uint8_t type;
    uint32_t size;
    if (*at >= end || !get(at, end, &klen, 2) || (size_t)(end - *at) < (size_t)klen + 1)
        return 0;
    const char *key = (const char *)*at;
    *at += (size_t)klen + 1;
    if (!get(at, end, &type, 1) || !get(at, end, &size, 4) || (size_t)(end - *at) < (size_t)size + 1)
        return 0;
    out->key = key;
    out->data_type = type;
    out->data = (void *)(uintptr_t)*at; /* read-only use: EVP_PKEY_fromdata, or our own callers */
    out->data_size = size;
    out->return_size = OSSL_PARAM_UNMODIFIED;
    *at += (size_t)size + 1;
    return 1;
}

/* The unsealed blob as an OSSL_PARAM array pointing into it (params has MAX_PARAMS + 1 slots). */
static void parse_params(const void *data, size_t n, OSSL_PARAM *params)
{
    const unsigned char *at = data, *end = at + n;
    size_t i = 0;
    while (i < MAX_PARAMS && next_param(&at, end, &params[i]))
        i++;
    params[i] = OSSL_PARAM_construct_end();
}

/* Runs inside mg_enclave_with: data is the unsealed blob in guarded scratch memory. */
static int with_unsealed(const void *data, size_t n, void *varg)
{
    struct with_args *a = varg;
    OSSL_PARAM params[MAX_PARAMS + 1];
    parse_params(data, n, params);
    EVP_PKEY *full = NULL;
    EVP_PKEY_CTX *pctx = EVP_PKEY_CTX_new_from_name(a->k->prov->libctx, a->k->type, "provider=default");
    int rc = 0;
    if (pctx != NULL && EVP_PKEY_fromdata_init(pctx) == 1 && EVP_PKEY_fromdata(pctx, &full, EVP_PKEY_KEYPAIR, params) == 1)
        rc = a->fn(full, a->arg);
    else
        MGP_ERR(a->k->prov, MGP_R_UNSEAL_FAILED, "cannot rebuild the key");
    EVP_PKEY_free(full); /* OpenSSL clears private key material on free */
    EVP_PKEY_CTX_free(pctx);
    return rc;
}

int mgp_key_with_private(const mgp_key *k, mgp_key_fn fn, void *arg)
{
    if (!mgp_key_usable(k != NULL ? k->prov : NULL, k))
        return 0;
    mgp_nondumpable_assert(k->prov);
    struct with_args a = {k, fn, arg};
    int rc = mg_enclave_with(k->priv, with_unsealed, &a);
    if (rc < 0) {
        MGP_ERR(k->prov, MGP_R_UNSEAL_FAILED, "%s", mg_strerror(rc));
        return 0;
    }
    return rc;
}

struct params_args {
    mgp_params_fn fn;
    void *arg;
};

static int with_params(const void *data, size_t n, unsigned char *work, void *varg)
{
    struct params_args *a = varg;
    OSSL_PARAM params[MAX_PARAMS + 1];
    parse_params(data, n, params);
    return a->fn(params, work, a->arg);
}

int mgp_key_with_params(const mgp_key *k, size_t work, mgp_params_fn fn, void *arg)
{
    if (!mgp_key_usable(k != NULL ? k->prov : NULL, k))
        return 0;
    mgp_nondumpable_assert(k->prov);
    struct params_args a = {fn, arg};
    int rc = mg_enclave_with_workspace(k->priv, work, with_params, &a);
    if (rc < 0) {
        MGP_ERR(k->prov, MGP_R_UNSEAL_FAILED, "%s", mg_strerror(rc));
        return 0;
    }
    return rc;
}

int mgp_params_merge(OSSL_PARAM **dst, const OSSL_PARAM *params)
{
    if (params == NULL || params[0].key == NULL)
        return 1;
    OSSL_PARAM *merged = OSSL_PARAM_merge(*dst, params); /* shallow */
    OSSL_PARAM *copy = merged != NULL ? OSSL_PARAM_dup(merged) : NULL;
    OSSL_PARAM_free(merged);
    if (copy == NULL)
        return 0;
    OSSL_PARAM_free(*dst);
    *dst = copy;
    return 1;
}

struct param_args {
    const char *name;
    mgp_param_fn fn;
    void *arg;
};

/* Runs inside mg_enclave_with_workspace: find one parameter in the unsealed blob. */
static int find_param(const void *data, size_t n, unsigned char *work, void *varg)
{
    struct param_args *a = varg;
    const unsigned char *at = data, *end = at + n;
    OSSL_PARAM p;
    while (next_param(&at, end, &p))
        if (strcmp(p.key, a->name) == 0)
            return a->fn(p.data, p.data_size, work, a->arg);
    return 0;
}

int mgp_key_with_param(const mgp_key *k, const char *name, size_t work, mgp_param_fn fn, void *arg)
{
    if (!mgp_key_usable(k != NULL ? k->prov : NULL, k))
        return 0;
    mgp_nondumpable_assert(k->prov);
    struct param_args a = {name, fn, arg};
    int rc = mg_enclave_with_workspace(k->priv, work, find_param, &a);
    if (rc < 0) {
        MGP_ERR(k->prov, MGP_R_UNSEAL_FAILED, "%s", mg_strerror(rc));
        return 0;
    }
    return rc;
}
