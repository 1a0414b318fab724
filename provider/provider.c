/*
 * Entry point: OSSL_provider_init, parameters, errors, and the static
 * algorithm tables (complete from the first query: libssl may query before
 * any key is loaded, and caches what it sees).
 */
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <sys/prctl.h>
#include <unistd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/params.h>
#include <openssl/provider.h>
#include <sodium.h>

#include "load.h" /* the refused-key keymgmts and the handle decoders of the tables below */
#include "provider.h"
#include "simd.h"
#if defined(MGP_HAVE_SKEYMGMT) && defined(OSSL_OP_SKEYMGMT) /* OpenSSL >= 3.5 */
#include "skeymgmt.h" /* EVP_SKEY (OpenSSL >= 3.5): compiled out on 3.0 */
#define MGP_SKEY(op, table) mgp_skey_extend((op), (table))
#else
#define MGP_SKEY(op, table) (table)
#endif

static OSSL_FUNC_core_new_error_fn *c_new_error;
static OSSL_FUNC_core_set_error_debug_fn *c_set_error_debug;
static OSSL_FUNC_core_vset_error_fn *c_vset_error;
static OSSL_FUNC_core_get_params_fn *c_get_params;
static OSSL_FUNC_core_get_libctx_fn *c_get_libctx;

void mgp_error(const mgp_ctx *ctx, int reason, const char *file, int line, const char *func, const char *fmt, ...)
{
    if (ctx == NULL || c_new_error == NULL)
        return;
    va_list ap;
    va_start(ap, fmt);
    c_new_error(ctx->handle);
    c_set_error_debug(ctx->handle, file, line, func);
    c_vset_error(ctx->handle, ERR_PACK(0, 0, reason), fmt, ap);
    va_end(ap);
}

void mgp_debug(const mgp_ctx *ctx, const char *fmt, ...)
{
    if (ctx == NULL || !ctx->debug)
        return;
    va_list ap;
    va_start(ap, fmt);
    fputs("memguard-provider: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static const OSSL_ITEM reason_strings[] = {
    {MGP_R_NO_KEY, "memguard: no key"},
    {MGP_R_NOT_PRIVATE, "memguard: not a private key"},
    {MGP_R_EXPORT_REFUSED, "memguard: private key export refused (the key stays sealed)"},
    {MGP_R_SEAL_FAILED, "memguard: cannot seal the key"},
    {MGP_R_UNSEAL_FAILED, "memguard: cannot unseal the key"},
    {MGP_R_OPERATION_FAILED, "memguard: operation failed"},
    {MGP_R_BAD_ARGUMENT, "memguard: bad argument"},
    {MGP_R_UNSUPPORTED, "memguard: unsupported"},
    {MGP_R_KEY_REFUSED, "memguard: key refused (not sealed, so not loaded)"},
    {MGP_R_INVALID_KEY, "memguard: invalid private key"},
    {MGP_R_LOCKED_MEMORY, "memguard: not enough locked memory (RLIMIT_MEMLOCK)"},
    {MGP_R_UNSEALED_TYPE, "memguard: key type memguard cannot seal (memguard-unsealed-keys = allow to load it unprotected)"},
    {0, NULL},
};

static const OSSL_ITEM *get_reason_strings(void *provctx)
{
    (void)provctx;
    return reason_strings;
}

static const OSSL_PARAM gettable[] = {
    OSSL_PARAM_DEFN(OSSL_PROV_PARAM_NAME, OSSL_PARAM_UTF8_PTR, NULL, 0),
    OSSL_PARAM_DEFN(OSSL_PROV_PARAM_VERSION, OSSL_PARAM_UTF8_PTR, NULL, 0),
    OSSL_PARAM_DEFN(OSSL_PROV_PARAM_BUILDINFO, OSSL_PARAM_UTF8_PTR, NULL, 0),
    OSSL_PARAM_DEFN(OSSL_PROV_PARAM_STATUS, OSSL_PARAM_INTEGER, NULL, 0),
    OSSL_PARAM_DEFN(MGP_PARAM_SIMD, OSSL_PARAM_UTF8_PTR, NULL, 0),
    OSSL_PARAM_END,
};

static const OSSL_PARAM *gettable_params(void *provctx)
{
    (void)provctx;
    return gettable;
}

static char buildinfo[128];

static int get_params(void *provctx, OSSL_PARAM params[])
{
    (void)provctx;
    OSSL_PARAM *p;
    if ((p = OSSL_PARAM_locate(params, OSSL_PROV_PARAM_NAME)) != NULL && !OSSL_PARAM_set_utf8_ptr(p, MGP_NAME))
        return 0;
    if ((p = OSSL_PARAM_locate(params, OSSL_PROV_PARAM_VERSION)) != NULL &&
        !OSSL_PARAM_set_utf8_ptr(p, MG_VERSION_STRING))
        return 0;
    if ((p = OSSL_PARAM_locate(params, OSSL_PROV_PARAM_BUILDINFO)) != NULL && !OSSL_PARAM_set_utf8_ptr(p, buildinfo))
        return 0;
    if ((p = OSSL_PARAM_locate(params, OSSL_PROV_PARAM_STATUS)) != NULL && !OSSL_PARAM_set_int(p, 1))
        return 0;
    if ((p = OSSL_PARAM_locate(params, MGP_PARAM_SIMD)) != NULL && !OSSL_PARAM_set_utf8_ptr(p, mgp_simd_describe()))
        return 0;
    return 1;
}

#define ALG(names, fns) {names, MGP_PROPS, fns, NULL}

/* HMAC first in the next two tables: withheld in the wrong provider order by skipping entry 0. */
static const OSSL_ALGORITHM keymgmt[] = {
    ALG("HMAC", mgp_hmac_keymgmt),
    ALG("RSA:rsaEncryption:1.2.840.113549.1.1.1", mgp_rsa_keymgmt),
    ALG("RSA-PSS:RSASSA-PSS:1.2.840.113549.1.1.10", mgp_rsapss_keymgmt),
    ALG("EC:id-ecPublicKey:1.2.840.10045.2.1", mgp_ec_keymgmt),
    ALG("ED25519:1.3.101.112", mgp_ed25519_keymgmt),
    ALG("ED448:1.3.101.113", mgp_ed448_keymgmt),
    ALG("X25519:1.3.101.110", mgp_x25519_keymgmt),
    ALG("X448:1.3.101.111", mgp_x448_keymgmt),
    /* Refused keys only (load.h): private keys memguard cannot seal fail every use instead of loading unprotected. */
    ALG("DSA:dsaEncryption:1.2.840.10040.4.1", mgp_dsa_keymgmt),
    ALG("DH:dhKeyAgreement:1.2.840.113549.1.3.1", mgp_dh_keymgmt),
    ALG("DHX:X9.42 DH:dhpublicnumber:1.2.840.10046.2.1", mgp_dhx_keymgmt),
    ALG("SM2:1.2.156.10197.1.301", mgp_sm2_keymgmt),
    ALG(MGP_TYPE_REFUSED, mgp_refused_keymgmt),
    {NULL, NULL, NULL, NULL},
};

static const OSSL_ALGORITHM signature[] = {
    ALG("HMAC", mgp_hmac_signature),
    ALG("RSA:rsaEncryption:1.2.840.113549.1.1.1", mgp_rsa_signature),
    ALG("ECDSA", mgp_ecdsa_signature),
    ALG("ED25519:1.3.101.112", mgp_ed25519_signature),
    ALG("ED448:1.3.101.113", mgp_ed448_signature),
    {NULL, NULL, NULL, NULL},
};

/* Only for callers that ask for "provider=memguard": unqualified fetches get default (docs/symmetric.md). */
static const OSSL_ALGORITHM mac[] = {
    ALG("CMAC", mgp_cmac_mac), /* entry 0: skipped without AES-NI (no table-based AES here) */
    ALG("HMAC", mgp_hmac_mac),
    ALG("KMAC-128:KMAC128:2.16.840.1.101.3.4.2.19", mgp_kmac128_mac),
    ALG("KMAC-256:KMAC256:2.16.840.1.101.3.4.2.20", mgp_kmac256_mac),
    {NULL, NULL, NULL, NULL},
};

static const OSSL_ALGORITHM kdf[] = {
    ALG("HKDF", mgp_hkdf_kdf),
    ALG("PBKDF2:1.2.840.113549.1.5.12", mgp_pbkdf2_kdf),
    {NULL, NULL, NULL, NULL},
};

static const OSSL_ALGORITHM asym_cipher[] = {
    ALG("RSA:rsaEncryption:1.2.840.113549.1.1.1", mgp_rsa_asym_cipher),
    {NULL, NULL, NULL, NULL},
};

static const OSSL_ALGORITHM exchange[] = {
    ALG("ECDH", mgp_ecdh_exchange),
    ALG("X25519:1.3.101.110", mgp_x25519_exchange),
    ALG("X448:1.3.101.111", mgp_x448_exchange),
    {NULL, NULL, NULL, NULL},
};

#define DEC(names, structure, fns) {names, MGP_PROPS ",input=der,structure=" structure, fns, NULL}

static const OSSL_ALGORITHM decoder[] = {
    DEC("RSA:rsaEncryption:1.2.840.113549.1.1.1", "PrivateKeyInfo", mgp_rsa_der_pki_decoder),
    DEC("RSA-PSS:RSASSA-PSS:1.2.840.113549.1.1.10", "PrivateKeyInfo", mgp_rsapss_der_pki_decoder),
    DEC("EC:id-ecPublicKey:1.2.840.10045.2.1", "PrivateKeyInfo", mgp_ec_der_pki_decoder),
    DEC("ED25519:1.3.101.112", "PrivateKeyInfo", mgp_ed25519_der_pki_decoder),
    DEC("ED448:1.3.101.113", "PrivateKeyInfo", mgp_ed448_der_pki_decoder),
    DEC("X25519:1.3.101.110", "PrivateKeyInfo", mgp_x25519_der_pki_decoder),
    DEC("X448:1.3.101.111", "PrivateKeyInfo", mgp_x448_der_pki_decoder),
    DEC("RSA:rsaEncryption:1.2.840.113549.1.1.1", "type-specific", mgp_rsa_der_ts_decoder),
    DEC("EC:id-ecPublicKey:1.2.840.10045.2.1", "type-specific", mgp_ec_der_ts_decoder),
    /* Types memguard cannot seal: refused, or left to the default provider with a warning (load.h). */
    DEC("DSA:dsaEncryption:1.2.840.10040.4.1", "PrivateKeyInfo", mgp_dsa_der_pki_decoder),
    DEC("DH:dhKeyAgreement:1.2.840.113549.1.3.1", "PrivateKeyInfo", mgp_dh_der_pki_decoder),
    DEC("DHX:X9.42 DH:dhpublicnumber:1.2.840.10046.2.1", "PrivateKeyInfo", mgp_dhx_der_pki_decoder),
    DEC("SM2:1.2.156.10197.1.301", "PrivateKeyInfo", mgp_sm2_der_pki_decoder),
    DEC("DSA:dsaEncryption:1.2.840.10040.4.1", "type-specific", mgp_dsa_der_ts_decoder),
    /* The one-shot handles of our PEM decoder (named so that only these take them). */
    DEC("RSA:rsaEncryption:1.2.840.113549.1.1.1", MGP_STRUCT_HANDLE, mgp_rsa_handle_decoder),
    DEC("RSA-PSS:RSASSA-PSS:1.2.840.113549.1.1.10", MGP_STRUCT_HANDLE, mgp_rsapss_handle_decoder),
    DEC("EC:id-ecPublicKey:1.2.840.10045.2.1", MGP_STRUCT_HANDLE, mgp_ec_handle_decoder),
    DEC("ED25519:1.3.101.112", MGP_STRUCT_HANDLE, mgp_ed25519_handle_decoder),
    DEC("ED448:1.3.101.113", MGP_STRUCT_HANDLE, mgp_ed448_handle_decoder),
    DEC("X25519:1.3.101.110", MGP_STRUCT_HANDLE, mgp_x25519_handle_decoder),
    DEC("X448:1.3.101.111", MGP_STRUCT_HANDLE, mgp_x448_handle_decoder),
    DEC("DSA:dsaEncryption:1.2.840.10040.4.1", MGP_STRUCT_HANDLE, mgp_dsa_handle_decoder),
    DEC("DH:dhKeyAgreement:1.2.840.113549.1.3.1", MGP_STRUCT_HANDLE, mgp_dh_handle_decoder),
    DEC("DHX:X9.42 DH:dhpublicnumber:1.2.840.10046.2.1", MGP_STRUCT_HANDLE, mgp_dhx_handle_decoder),
    DEC("SM2:1.2.156.10197.1.301", MGP_STRUCT_HANDLE, mgp_sm2_handle_decoder),
    DEC(MGP_TYPE_REFUSED, MGP_STRUCT_HANDLE, mgp_refused_handle_decoder),
    /* Private-key PEM, decoded, decrypted and sealed in guarded memory (decoder_pem.c). */
    {"DER", MGP_PROPS ",input=pem", mgp_pem_to_der_decoder, NULL},
    {NULL, NULL, NULL, NULL},
};

/*
 * The provider order rule, enforced. On OpenSSL 3.0 a fetch without a property query gets the
 * implementation of the provider activated first; with memguard listed before default in
 * openssl.cnf, libssl's HMAC/HKDF/record ciphers would all run here. We cannot see the order
 * directly, so we ask the application's library context the question libssl would: who answers
 * an unqualified fetch of X25519 key exchange, which both offer? If memguard does while another
 * provider also offers it, the symmetric algorithms (and HMAC keys) are withheld; the asymmetric
 * ones stay, so key capture works in either order. Asked lazily, at the first query of a guarded
 * operation (after configuration), through KEYEXCH, an operation that is never guarded: a nested
 * query of a guarded one could not answer honestly (OpenSSL prefers uncached answers).
 */
enum { MGP_ORDER_UNKNOWN, MGP_ORDER_OK, MGP_ORDER_WRONG };
static _Thread_local int probing; /* never expected, but a nested guarded query must not re-probe */

struct others {
    const void *self;
    int n;
};

static void count_others(EVP_KEYEXCH *kx, void *arg)
{
    struct others *o = arg;
    o->n += EVP_KEYEXCH_is_a(kx, "X25519") && OSSL_PROVIDER_get0_provider_ctx(EVP_KEYEXCH_get0_provider(kx)) != o->self;
}

static int probe_order(mgp_ctx *ctx)
{
    OSSL_LIB_CTX *app = ctx->app_libctx;
    if (app == NULL)
        return MGP_ORDER_OK; /* another libcrypto: its context is opaque to us; trust the configuration */
    struct others o = {ctx, 0};
    probing = 1;
    ERR_set_mark();
    EVP_KEYEXCH *kx = EVP_KEYEXCH_fetch(app, "X25519", NULL);
    int answered = kx != NULL;
    int first_is_us = answered && OSSL_PROVIDER_get0_provider_ctx(EVP_KEYEXCH_get0_provider(kx)) == ctx;
    EVP_KEYEXCH_free(kx);
    if (first_is_us)
        EVP_KEYEXCH_do_all_provided(app, count_others, &o);
    ERR_pop_to_mark();
    probing = 0;
    if (!answered)
        return MGP_ORDER_UNKNOWN;
    /* Alone (no other provider offers it): nothing would be routed away from; memguard it is. */
    return first_is_us && o.n > 0 ? MGP_ORDER_WRONG : MGP_ORDER_OK;
}

/* 1 if the symmetric algorithms must be withheld from this query. */
static int withhold_symmetric(mgp_ctx *ctx, int *no_cache)
{
    int order = atomic_load(&ctx->order);
    if (order == MGP_ORDER_UNKNOWN && !probing) {
        int found = probe_order(ctx), expected = MGP_ORDER_UNKNOWN;
        if (found != MGP_ORDER_UNKNOWN && atomic_compare_exchange_strong(&ctx->order, &expected, found) &&
            found == MGP_ORDER_WRONG)
            fprintf(stderr, "memguard: listed before the default provider in openssl.cnf; symmetric algorithms "
                            "disabled so that TLS is not routed through them\n");
        order = atomic_load(&ctx->order);
    }
    if (order == MGP_ORDER_UNKNOWN)
        *no_cache = 1; /* undecided: withhold for now, ask again next time */
    return order != MGP_ORDER_OK;
}

static const OSSL_ALGORITHM *query_operation(void *provctx, int operation_id, int *no_cache)
{
    mgp_ctx *ctx = provctx;
    *no_cache = 0;
    switch (operation_id) {
    case OSSL_OP_KEYMGMT: return withhold_symmetric(ctx, no_cache) ? keymgmt + 1 : keymgmt;
    case OSSL_OP_SIGNATURE: return withhold_symmetric(ctx, no_cache) ? signature + 1 : signature;
    case OSSL_OP_ASYM_CIPHER: return asym_cipher;
    case OSSL_OP_KEYEXCH: return exchange;
    case OSSL_OP_DECODER: return decoder;
    case OSSL_OP_MAC:
        if (withhold_symmetric(ctx, no_cache))
            return NULL;
        return MGP_SKEY(operation_id, mgp_aes_available() ? mac : mac + 1);
    case OSSL_OP_KDF: return withhold_symmetric(ctx, no_cache) ? NULL : kdf;
    case OSSL_OP_CIPHER: /* cipher.c: AES only with AES-NI */
        return withhold_symmetric(ctx, no_cache) ? NULL : MGP_SKEY(operation_id, mgp_cipher_algorithms());
#if defined(MGP_HAVE_SKEYMGMT) && defined(OSSL_OP_SKEYMGMT) /* OpenSSL >= 3.5 */
    case OSSL_OP_SKEYMGMT: return withhold_symmetric(ctx, no_cache) ? NULL : mgp_skeymgmt_algorithms();
#endif
    default: return NULL;
    }
}

/* libssl asks every provider for "TLS-GROUP"; answering 0 would make SSL_CTX_new fail. */
static int get_capabilities(void *provctx, const char *capability, OSSL_CALLBACK *cb, void *arg)
{
    (void)provctx;
    (void)capability;
    (void)cb;
    (void)arg;
    return 1;
}

/*
 * The private library context outlives the provider: threads that signed in it
 * hold thread-exit handlers for it (their DRBG state), and an application
 * cannot OSSL_thread_stop_ex() a context it does not know about. It is kept
 * (reachable) for the life of the process; the module itself is never unmapped.
 */
static OSSL_LIB_CTX *retained[16];
static OSSL_PROVIDER *retained_default[16];
static _Atomic unsigned n_retained;

static void teardown(void *provctx)
{
    mgp_ctx *ctx = provctx;
    if (ctx == NULL)
        return;
    unsigned i = atomic_fetch_add(&n_retained, 1);
    if (i < sizeof retained / sizeof retained[0]) {
        retained[i] = ctx->libctx;
        retained_default[i] = ctx->deflt;
    } else {
        OSSL_PROVIDER_unload(ctx->deflt); /* beyond 16 loads: free (and accept the risk above) */
        OSSL_LIB_CTX_free(ctx->libctx);
    }
    OSSL_LIB_CTX_free(ctx->core_libctx);
    OPENSSL_free(ctx);
}

static const OSSL_DISPATCH provider_functions[] = {
    {OSSL_FUNC_PROVIDER_TEARDOWN, (void (*)(void))teardown},
    {OSSL_FUNC_PROVIDER_GETTABLE_PARAMS, (void (*)(void))gettable_params},
    {OSSL_FUNC_PROVIDER_GET_PARAMS, (void (*)(void))get_params},
    {OSSL_FUNC_PROVIDER_QUERY_OPERATION, (void (*)(void))query_operation},
    {OSSL_FUNC_PROVIDER_GET_REASON_STRINGS, (void (*)(void))get_reason_strings},
    {OSSL_FUNC_PROVIDER_GET_CAPABILITIES, (void (*)(void))get_capabilities},
    {0, NULL},
};

/*
 * The application reads the PEM file through stdio (BIO_new_file): glibc
 * mallocs a 4 KiB buffer for the FILE and frees it at fclose without clearing
 * it, so the key's base64 text stays in the heap - measured in nginx's master
 * (docs/tls.md). That buffer never passes through the provider, but glibc can
 * overwrite every freed chunk too large for its per-thread cache (> 1032
 * bytes) with M_PERTURB, which is what this enables. An operator's own
 * MALLOC_PERTURB_ is left alone. Returns a word for the debug trace.
 */
static const char *scrub_freed_heap(const char *setting)
{
    if (setting != NULL && strcmp(setting, "0") == 0)
        return "off";
    if (getenv("MALLOC_PERTURB_") != NULL)
        return "left to MALLOC_PERTURB_";
#ifdef M_PERTURB
    return mallopt(M_PERTURB, 0xa5) == 1 ? "on" : "unavailable";
#else
    return "unavailable (not glibc)";
#endif
}

/*
 * The application's library context, for the order check. The core hands us an opaque
 * OPENSSL_CORE_CTX; it is the OSSL_LIB_CTX itself only when the core is the very libcrypto we are
 * linked with (not, say, a statically linked copy in the application): checked with dladdr.
 */
static OSSL_LIB_CTX *app_libctx(const OSSL_CORE_HANDLE *handle)
{
    void *core_fn, *our_fn;
    OSSL_FUNC_core_get_libctx_fn *get = c_get_libctx;
    int (*ours)(OSSL_LIB_CTX *, const char *) = OSSL_PROVIDER_available;
    Dl_info a, b;
    if (get == NULL)
        return NULL;
    memcpy(&core_fn, &get, sizeof core_fn); /* ISO C has no function-to-object pointer cast */
    memcpy(&our_fn, &ours, sizeof our_fn);
    if (dladdr(core_fn, &a) == 0 || dladdr(our_fn, &b) == 0 || a.dli_fbase != b.dli_fbase)
        return NULL;
    return (OSSL_LIB_CTX *)get(handle);
}

/*
 * Non-dumpable: no core file, and no ptrace or /proc/PID/mem for other processes of the same user,
 * who could otherwise read both halves of the coffer and open every sealed key offline. Set at
 * load, and again in every process at its first private-key operation: nginx workers call
 * prctl(PR_SET_DUMPABLE, 1) after fork, before they serve anything (measured on 1.22).
 */
static _Atomic pid_t nondumpable_pid;

static void set_nondumpable(void)
{
    pid_t self = getpid();
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
        fprintf(stderr, "memguard-provider: prctl(PR_SET_DUMPABLE, 0) failed: %s\n", strerror(errno));
        return; /* not recorded: asked again at the next operation */
    }
    atomic_store(&nondumpable_pid, self);
}

void mgp_nondumpable_assert(const mgp_ctx *prov)
{
    if (prov == NULL || prov->dumpable)
        return;
    if (atomic_load_explicit(&nondumpable_pid, memory_order_relaxed) != getpid() ||
        prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != 0)
        set_nondumpable();
}

/*
 * A configuration error must not make the provider fail to load: OpenSSL 3.0 then skips it
 * without a word (even with config_diagnostics = 1, measured on 3.0.19) and every key is read by
 * the default provider, unprotected. Instead the provider loads and refuses every private key,
 * naming the error (key.c). Always returns 0.
 */
static int config_error(mgp_ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int config_error(mgp_ctx *ctx, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx->config_error, sizeof ctx->config_error, fmt, ap);
    va_end(ap);
    fprintf(stderr, "memguard-provider: configuration error: %s; every private key is refused until it is fixed\n",
            ctx->config_error);
    return 0;
}

/* A 0/1 switch from the configuration; -1 (and a message) for anything else. */
static int flag(mgp_ctx *ctx, const char *name, const char *value, int dflt)
{
    if (value == NULL)
        return dflt;
    if (strcmp(value, "0") == 0 || strcmp(value, "no") == 0)
        return 0;
    if (strcmp(value, "1") == 0 || strcmp(value, "yes") == 0)
        return 1;
    config_error(ctx, "%s = %s: use 1 or 0", name, value);
    return -1;
}

/* Settings from the provider's section of openssl.cnf. */
static int configure(mgp_ctx *ctx)
{
    char *rekey = NULL, *backend = NULL, *debug = NULL, *scrub = NULL, *unsealed = NULL,
         *dumpable = NULL, *secure_heap = NULL; /* owned by the core */
    OSSL_PARAM p[] = {
        OSSL_PARAM_utf8_ptr("memguard-rekey-interval-ms", &rekey, 0),
        OSSL_PARAM_utf8_ptr("memguard-backend", &backend, 0),
        OSSL_PARAM_utf8_ptr("memguard-debug", &debug, 0),
        OSSL_PARAM_utf8_ptr("memguard-scrub-freed-heap", &scrub, 0),
        OSSL_PARAM_utf8_ptr("memguard-unsealed-keys", &unsealed, 0),
        OSSL_PARAM_utf8_ptr("memguard-dumpable", &dumpable, 0),
        OSSL_PARAM_utf8_ptr("memguard-secure-heap", &secure_heap, 0),
        OSSL_PARAM_END,
    };
    if (c_get_params == NULL || !c_get_params(ctx->handle, p))
        return 1;
    const char *env = getenv("MEMGUARD_PROVIDER_DEBUG");
    ctx->debug = (debug != NULL && strcmp(debug, "0") != 0) || (env != NULL && strcmp(env, "0") != 0);
    if (rekey != NULL) {
        char *end;
        unsigned long ms = strtoul(rekey, &end, 10);
        if (*end != '\0' || ms > 3600000ul || mg_set_rekey_interval((unsigned)ms) != MG_OK) {
            return config_error(ctx, "memguard-rekey-interval-ms = %s: not a number of ms", rekey);
        }
    }
    /* The strongest backend the kernel offers unless told otherwise: memfd_secret pages are out of
     * the kernel's direct map and unreadable through /proc/PID/mem even by root. */
    const char *env_backend = getenv("MEMGUARD_BACKEND"); /* the library's own switch, below the config's */
    ctx->backend_why = "memfd_secret unavailable";
    if (backend == NULL && env_backend != NULL && strcmp(env_backend, "anonymous") == 0) {
        backend = (char *)(uintptr_t)env_backend;
        ctx->backend_why = "MEMGUARD_BACKEND=anonymous";
    }
    if (backend == NULL || strcmp(backend, "auto") == 0 || strcmp(backend, "secretmem") == 0) {
        if (mg_set_backend(MG_BACKEND_SECRETMEM) != MG_OK && backend != NULL && strcmp(backend, "secretmem") == 0)
            fprintf(stderr, "memguard-provider: memguard-backend = secretmem: %s; using anonymous pages\n",
                    mg_last_error_message());
    } else if (strcmp(backend, "anonymous") == 0) {
        (void)mg_set_backend(MG_BACKEND_ANON);
        if (backend != env_backend)
            ctx->backend_why = "memguard-backend = anonymous";
    } else {
        return config_error(ctx, "memguard-backend = %s: use auto, secretmem or anonymous", backend);
    }
    if (unsealed == NULL || strcmp(unsealed, "refuse") == 0) {
        ctx->allow_unsealed = 0;
    } else if (strcmp(unsealed, "allow") == 0) {
        ctx->allow_unsealed = 1;
    } else {
        return config_error(ctx, "memguard-unsealed-keys = %s: use refuse or allow", unsealed);
    }
    if ((ctx->dumpable = flag(ctx, "memguard-dumpable", dumpable, 0)) < 0) {
        ctx->dumpable = 0;
        return 0;
    }
    if (!mgp_secure_heap_setup(ctx, secure_heap))
        return config_error(ctx, "memguard-secure-heap = %s: see the message above", secure_heap ? secure_heap : "");
    if (scrub != NULL && strcmp(scrub, "0") != 0 && strcmp(scrub, "1") != 0) {
        return config_error(ctx, "memguard-scrub-freed-heap = %s: use 1 or 0", scrub);
    }
    const char *scrubbing = scrub_freed_heap(scrub);
    if (!ctx->dumpable)
        set_nondumpable();
    mgp_debug(ctx, "loaded: backend %s, re-key interval %s ms, freed heap scrubbing %s, %s, unsealable key types %s; %s",
              mg_backend_name(mg_get_backend()), rekey != NULL ? rekey : "500", scrubbing,
              ctx->dumpable ? "process left dumpable (memguard-dumpable = 1)" : "process non-dumpable",
              ctx->allow_unsealed ? "allowed unprotected" : "refused", mgp_simd_describe());
    return 1;
}

__attribute__((visibility("default"))) int OSSL_provider_init(const OSSL_CORE_HANDLE *handle, const OSSL_DISPATCH *in, const OSSL_DISPATCH **out,
                       void **provctx)
{
    const OSSL_DISPATCH *core = in;
    for (; in->function_id != 0; in++) {
        switch (in->function_id) {
        case OSSL_FUNC_CORE_NEW_ERROR: c_new_error = OSSL_FUNC_core_new_error(in); break;
        case OSSL_FUNC_CORE_SET_ERROR_DEBUG: c_set_error_debug = OSSL_FUNC_core_set_error_debug(in); break;
        case OSSL_FUNC_CORE_VSET_ERROR: c_vset_error = OSSL_FUNC_core_vset_error(in); break;
        case OSSL_FUNC_CORE_GET_PARAMS: c_get_params = OSSL_FUNC_core_get_params(in); break;
        case OSSL_FUNC_CORE_GET_LIBCTX: c_get_libctx = OSSL_FUNC_core_get_libctx(in); break;
        default: break;
        }
    }
    int mg_ok = mg_init() == MG_OK;
    snprintf(buildinfo, sizeof buildinfo, "memguard %s, libsodium %s, %s", MG_VERSION_STRING,
             sodium_version_string(), OPENSSL_VERSION_TEXT);
    mgp_ctx *ctx = OPENSSL_zalloc(sizeof *ctx);
    if (ctx == NULL)
        return 0;
    ctx->handle = handle;
    if (!mg_ok)
        (void)config_error(ctx, "memguard cannot initialise: %s", mg_last_error_message());
    /* A private context with only the default provider: our own algorithms never recurse into us. */
    ctx->libctx = OSSL_LIB_CTX_new();
    ctx->deflt = ctx->libctx != NULL ? OSSL_PROVIDER_load(ctx->libctx, "default") : NULL;
    ctx->core_libctx = OSSL_LIB_CTX_new_from_dispatch(handle, core);
    if (mg_ok)
        (void)configure(ctx); /* an error is recorded in ctx->config_error: keys are refused, see config_error() */
    if (ctx->deflt == NULL || ctx->core_libctx == NULL) {
        OSSL_PROVIDER_unload(ctx->deflt); /* nothing has run in it yet */
        OSSL_LIB_CTX_free(ctx->libctx);
        OSSL_LIB_CTX_free(ctx->core_libctx);
        OPENSSL_free(ctx);
        return 0;
    }
    ctx->app_libctx = app_libctx(handle);
    *provctx = ctx;
    *out = provider_functions;
    return 1;
}
