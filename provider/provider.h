/*
 * memguard OpenSSL 3 provider: shared declarations.
 *
 * The provider's one idea is the sealed key (key.c): public parts in the
 * clear, private parts sealed in an enclave, and one entry point that runs an
 * operation with the private parts unsealed into guarded memory. Key
 * management, signature, asymmetric cipher and key exchange never touch
 * private key bytes anywhere else.
 */
#ifndef MGP_PROVIDER_H
#define MGP_PROVIDER_H

#include <stdatomic.h>

#include <openssl/core.h>
#include <openssl/core_dispatch.h>
#include <openssl/evp.h>

#include <memguard/memguard.h>

#define MGP_NAME "memguard enclave key provider"
#define MGP_PROPS "provider=memguard"
/* Provider parameter (OSSL_PROVIDER_get_params): which of memguard's own code paths run (simd.h). */
#define MGP_PARAM_SIMD "memguard-simd"

/* Stack below a decoder's frame cleared after a key passed through (mg_scrub). */
#define MGP_SCRUB_STACK (32 * 1024)

typedef struct mgp_ctx {
    const OSSL_CORE_HANDLE *handle;
    OSSL_LIB_CTX *core_libctx; /* bound to the core: for reading OSSL_CORE_BIOs */
    OSSL_LIB_CTX *libctx;      /* private, default provider only: where the crypto runs */
    OSSL_PROVIDER *deflt;
    int debug;
    OSSL_LIB_CTX *app_libctx; /* the application's context (same libcrypto only), for the order check */
    _Atomic int order;        /* provider.c: MGP_ORDER_* once known */
    /* memguard-unsealed-keys = allow: keys memguard cannot seal (DSA, explicit EC, SM2, ...) are left to
     * the default provider with a warning at every load, instead of being refused (the default). */
    int allow_unsealed;
    /* memguard-dumpable = 1: leave the process dumpable (core files, same-user ptrace). Default 0. */
    int dumpable;
    /* Non-empty: the configuration (or memguard's initialisation) failed; every private key is
     * refused with this text instead of the provider failing to load (provider.c config_error). */
    char config_error[256];
    const char *backend_why; /* why guarded memory is anonymous pages, for the one-line report (key.c) */
} mgp_ctx;

/* ---- errors (provider.c) ---- */
enum {
    MGP_R_NO_KEY = 1,
    MGP_R_NOT_PRIVATE,
    MGP_R_EXPORT_REFUSED,
    MGP_R_SEAL_FAILED,
    MGP_R_UNSEAL_FAILED,
    MGP_R_OPERATION_FAILED,
    MGP_R_BAD_ARGUMENT,
    MGP_R_UNSUPPORTED,
    MGP_R_KEY_REFUSED,   /* a key memguard would seal but could not: its load is refused (fail closed) */
    MGP_R_INVALID_KEY,   /* a key that fails validation (n != p*q, scalar out of range, ...) */
    MGP_R_LOCKED_MEMORY, /* RLIMIT_MEMLOCK too small for what a key or an operation needs */
    MGP_R_UNSEALED_TYPE, /* a key type memguard cannot seal, refused by memguard-unsealed-keys */
};
void mgp_error(const mgp_ctx *ctx, int reason, const char *file, int line, const char *func, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
#define MGP_ERR(ctx, reason, ...) mgp_error((ctx), (reason), __FILE__, __LINE__, __func__, __VA_ARGS__)
void mgp_debug(const mgp_ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- the sealed key (key.c) ---- */
typedef struct mgp_key {
    _Atomic int refs;
    mgp_ctx *prov;
    const char *type;  /* canonical name: "RSA", "RSA-PSS", "EC", "ED25519", "ED448", "X25519", "X448" */
    EVP_PKEY *pub;     /* public part (and domain parameters), in prov->libctx; NULL if empty */
    mg_enclave *priv;  /* the private OSSL_PARAMs, serialized and sealed; NULL if public only */
    _Atomic(struct ec_group_st *) ec_group; /* EC keys: the public curve, built on first signature */
    _Atomic(struct mgp_rsa_cache *) rsa;    /* RSA keys: public modulus state and blinding (rsa.c) */
    /*
     * Fail closed: a key memguard should protect but could not (sealing failed, validation failed,
     * a type it cannot seal) still becomes a memguard key, so that OpenSSL's loaders do not fall
     * back to their legacy decoders and build an unprotected one. It has no private part, and every
     * use (operations, certificate matching, export) fails with this text and this reason.
     * NULL for a usable key. Never holds key material.
     */
    char *refusal;
    int refusal_reason; /* MGP_R_* */
} mgp_key;

mgp_key *mgp_key_new(mgp_ctx *prov, const char *type);
/* Mark k refused (see mgp_key.refusal), raise the error and say it once on stderr. Returns k. */
mgp_key *mgp_key_refuse(mgp_key *k, int reason, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* 1 if k can do private-key operations; else 0 with the error raised (its refusal, or "not private"). */
int mgp_key_usable(const mgp_ctx *prov, const mgp_key *k);
/* Why this thread's last mgp_key_set_from_pkey failed (validation, locked memory, configuration). */
const char *mgp_key_last_failure(void);
mgp_key *mgp_key_up(mgp_key *k);
void mgp_key_free(mgp_key *k);
/*
 * Take a complete key (in prov->libctx) and turn it into a sealed key: the
 * private parameters are sealed, a public copy is kept. full is not freed.
 */
int mgp_key_set_from_pkey(mgp_key *k, EVP_PKEY *full);
/* Run fn with a transient full EVP_PKEY built in prov->libctx from the unsealed parts. */
typedef int (*mgp_key_fn)(EVP_PKEY *full, void *arg);
int mgp_key_with_private(const mgp_key *k, mgp_key_fn fn, void *arg);

/*
 * Run fn on one raw private parameter (e.g. "priv"), unsealed in guarded
 * scratch memory, with `work` bytes of guarded workspace beside it.
 */
typedef int (*mgp_param_fn)(const unsigned char *val, size_t len, unsigned char *work, void *arg);
int mgp_key_with_param(const mgp_key *k, const char *name, size_t work, mgp_param_fn fn, void *arg);

/*
 * Run fn on all private parameters, unsealed in guarded scratch memory (data
 * pointers into it, native byte order for integers), with `work` bytes of
 * guarded workspace. fn's result is returned; a failure to unseal gives 0.
 */
typedef int (*mgp_params_fn)(const OSSL_PARAM *params, unsigned char *work, void *arg);
int mgp_key_with_params(const mgp_key *k, size_t work, mgp_params_fn fn, void *arg);

/*
 * RSA private operations without rebuilding an EVP_PKEY (rsa.c): per-key
 * blinding from public values only, private parts unsealed per operation,
 * constant-time unpadding. Return 1 done, 0 failed (error raised),
 * MGP_RSA_SLOW_PATH when the request is outside what the fast path implements
 * (X9.31, RSA-PSS restricted keys, unusual parameters: the caller uses the EVP path).
 */
#define MGP_RSA_SLOW_PATH 2
/* OpenSSL >= 3.2's parameter (3.0's headers lack the name): 0 turns PKCS#1 v1.5 implicit rejection off. */
#define MGP_ASYM_CIPHER_PARAM_IMPLICIT_REJECTION "implicit-rejection"
/* The padding mode of a parameter list, as an integer or a name (RSA_*_PADDING); dflt if absent, -1 if unknown. */
int mgp_rsa_pad_mode(const OSSL_PARAM *params, int dflt);
/* Test hook, no secret: blinding pairs generated for k, and pairs squared for reuse. */
int mgp_rsa_blinding_counts(mgp_key *k, uint64_t *made, uint64_t *squared);
int mgp_rsa_sign(mgp_key *k, const EVP_MD *md, const OSSL_PARAM *params, const unsigned char *tbs, size_t tbslen,
                 unsigned char *sig, size_t *siglen, size_t sigsize);
int mgp_rsa_decrypt(mgp_key *k, const OSSL_PARAM *params, const unsigned char *in, size_t inlen, unsigned char *out,
                    size_t *outlen, size_t outsize);
void mgp_rsa_cache_free(struct mgp_rsa_cache *c);

/* ECDSA over an already computed digest, unsealing only the scalar (ecdsa.c). */
int mgp_ecdsa_sign_digest(mgp_key *k, const unsigned char *dgst, size_t dlen, unsigned char *sig, size_t *siglen,
                          size_t sigsize);
/*
 * Plain ECDH (no KDF, no cofactor option) with the cached curve: secret gets the shared x
 * coordinate, field-size bytes. 1 done, 0 failed (error raised), -1 no cached curve: use the
 * generic path.
 */
int mgp_ecdh_derive(mgp_key *k, const EVP_PKEY *peer, unsigned char *secret, size_t *secretlen, size_t outlen);

/*
 * A private key's DER (PKCS#8 PrivateKeyInfo, or RSAPrivateKey / ECPrivateKey
 * when type_specific) of the given type, parsed without OpenSSL's decoders and
 * built in prov->libctx (der.c). NULL if it is not such a key.
 */
EVP_PKEY *mgp_der_to_pkey(mgp_ctx *prov, const char *type, bool type_specific, const unsigned char *der, size_t len);

/* Whether der has the shape of an RSAPrivateKey / ECPrivateKey (der.c). */
bool mgp_der_is_type_specific(const char *type, const unsigned char *der, size_t len);

/* The key type named by a PKCS#8 PrivateKeyInfo's algorithm OID, or NULL (der.c). */
const char *mgp_der_pkcs8_type(const unsigned char *der, size_t len);

/*
 * Seal full (consumed) into a memguard key and hand it to OpenSSL's decoder
 * loop through data_cb as an object reference (decoder.c). A key that cannot be
 * sealed is handed over refused (fail closed: never "not mine", which would send
 * OpenSSL to its legacy decoders).
 */
int mgp_hand_over(mgp_ctx *prov, const char *type, EVP_PKEY *full, OSSL_CALLBACK *data_cb, void *data_cbarg);

/*
 * Key validation before sealing (validate.c): params as EVP_PKEY_todata gives them for type.
 * 1 if the key is consistent; 0 with `why` (no secret in it) filled otherwise.
 */
int mgp_validate_private(mgp_ctx *prov, const char *type, const OSSL_PARAM *params, char *why, size_t whylen);

/*
 * The process stays non-dumpable (PR_SET_DUMPABLE 0) while it holds sealed keys, unless the
 * operator set memguard-dumpable = 1. Re-asserted after fork (nginx workers turn it back on):
 * called at every private-key operation: a getpid() and a prctl(PR_GET_DUMPABLE), well under a
 * microsecond, so that a process that turns dumpable back on by itself is caught too (provider.c).
 */
void mgp_nondumpable_assert(const mgp_ctx *prov);

/*
 * OpenSSL's secure heap for the transient private values of operations (BN_secure_new,
 * BN_CTX_secure_new) when the application has not set one up (secheap.c). setting is the
 * memguard-secure-heap value from openssl.cnf, or NULL. 0 on a configuration error.
 */
int mgp_secure_heap_setup(mgp_ctx *prov, const char *setting);

/* RLIMIT_MEMLOCK's soft and hard values as text, in bytes or "unlimited" ("?" if unknown) (load.c). */
void mgp_memlock_limits(char soft[32], char hard[32]);

/* Merge params into *dst (deep copies; later keys win). 1 on success. */
int mgp_params_merge(OSSL_PARAM **dst, const OSSL_PARAM *params);

/* ---- dispatch tables ---- */
extern const OSSL_DISPATCH mgp_rsa_keymgmt[], mgp_rsapss_keymgmt[], mgp_ec_keymgmt[], mgp_ed25519_keymgmt[],
    mgp_ed448_keymgmt[], mgp_x25519_keymgmt[], mgp_x448_keymgmt[];
extern const OSSL_DISPATCH mgp_rsa_signature[], mgp_ecdsa_signature[], mgp_ed25519_signature[],
    mgp_ed448_signature[];
extern const OSSL_DISPATCH mgp_rsa_asym_cipher[];
/* HMAC keys, EVP_MAC and KDFs (mac_key.c, mac.c, kdf.c; state in guarded memory, hmac.c). */
extern const OSSL_DISPATCH mgp_hmac_keymgmt[], mgp_hmac_signature[], mgp_hmac_mac[], mgp_hkdf_kdf[], mgp_pbkdf2_kdf[];
/* EVP_MAC CMAC over memguard's AES-NI code (cmac.c); offered only where mgp_aes_available(). */
extern const OSSL_DISPATCH mgp_cmac_mac[];
/* EVP_MAC KMAC-128/256 on memguard's own Keccak-f[1600] (kmac.c, keccak.c); state in guarded memory. */
extern const OSSL_DISPATCH mgp_kmac128_mac[], mgp_kmac256_mac[];
int mgp_aes_available(void);
/* Symmetric ciphers (cipher.c): the table for OSSL_OP_CIPHER, chosen by the CPU. */
const OSSL_ALGORITHM *mgp_cipher_algorithms(void);
extern const OSSL_DISPATCH mgp_ecdh_exchange[], mgp_x25519_exchange[], mgp_x448_exchange[];
extern const OSSL_DISPATCH mgp_rsa_der_pki_decoder[], mgp_rsapss_der_pki_decoder[], mgp_ec_der_pki_decoder[],
    mgp_ed25519_der_pki_decoder[], mgp_ed448_der_pki_decoder[], mgp_x25519_der_pki_decoder[],
    mgp_x448_der_pki_decoder[], mgp_rsa_der_ts_decoder[], mgp_ec_der_ts_decoder[], mgp_pem_to_der_decoder[];

#endif
