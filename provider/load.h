/*
 * Loading private keys, fail closed (load.c, der.c, decoder.c, decoder_pem.c, keymgmt.c).
 *
 * OpenSSL's loaders (PEM_read_bio_PrivateKey, d2i_PrivateKey) fall back to libcrypto's legacy
 * decoders, which build an unprotected key without any provider, whenever the decoder path yields
 * no key. So for a private key of a type memguard handles, the decoder path always yields a
 * memguard key: sealed, or refused (no private part; every use fails with the reason).
 */
#ifndef MGP_LOAD_H
#define MGP_LOAD_H

#include <stdbool.h>
#include <stdint.h>

#include "provider.h"

/*
 * Structure name of the one-shot handles our PEM decoder hands up instead of DER: OpenSSL's
 * store and decoder code copy any DER they are given into heap buffers freed without wiping; a
 * handle names a key already sealed, and only our handle decoders (decoder.c) resolve it.
 */
#define MGP_STRUCT_HANDLE "memguard-handle"
/* Key type of a refused key whose type could not be learnt (no guarded memory to decrypt it). */
#define MGP_TYPE_REFUSED "MEMGUARD-REFUSED"

/* What a private key's DER is, found without reading any private number (der.c). */
typedef struct {
    const char *type;     /* "RSA", "EC", ..., "DSA", "DH", "DHX", "SM2"; NULL: no private key memguard knows */
    const char *unsealed; /* NULL if memguard seals this form; else what it is ("a DSA key", ...) */
    bool malformed;       /* the algorithm is known but the structure inside is not */
} mgp_der_class;
/*
 * ts_type NULL: a PKCS#8 PrivateKeyInfo; else the traditional form of that type (RSA, EC, DSA).
 * False if it is not such a key; out->unsealed is then set only for a well-formed PrivateKeyInfo
 * of an unknown algorithm.
 */
bool mgp_der_classify(const unsigned char *der, size_t len, const char *ts_type, mgp_der_class *out);
/* mgp_der_to_pkey, with *mg_err set to the memguard error when guarded memory was what failed. */
EVP_PKEY *mgp_der_parse(mgp_ctx *prov, const char *type, bool type_specific, const unsigned char *der, size_t len,
                        int *mg_err);

/*
 * Private-key DER (classified as cls) into a memguard key: sealed, or refused with the reason
 * (locked memory, invalid key, a type or form memguard cannot seal). NULL only when the key is
 * of a form memguard cannot seal and the operator allowed such keys (memguard-unsealed-keys =
 * allow): the caller then leaves it to the default provider.
 */
mgp_key *mgp_load_der(mgp_ctx *prov, const mgp_der_class *cls, bool ts, const unsigned char *der, size_t len);

/* A refused key of the given type for a failure of guarded memory (mg_err: the memguard error). */
mgp_key *mgp_load_refuse_memory(mgp_ctx *prov, const char *type, int mg_err, const char *what);

/* The warning printed at every load of a key left unprotected (memguard-unsealed-keys = allow). */
void mgp_load_warn_unsealed(const char *type, const char *what);

/*
 * Hand k (consumed) to OpenSSL as an object reference: the keymgmt's load takes it
 * (mgp_ref_take). Returns data_cb's result.
 */
int mgp_hand_key(mgp_ctx *prov, mgp_key *k, OSSL_CALLBACK *data_cb, void *data_cbarg);
/* The keymgmt side: the key behind an object reference of ours, of this type; NULL if not ours. */
mgp_key *mgp_ref_take(const void *reference, size_t reference_sz, const char *type);

/*
 * Hand k (consumed) up from the PEM decoder as a one-shot handle (OSSL_OBJECT_PARAM_DATA with
 * structure MGP_STRUCT_HANDLE), valid only during data_cb, in this thread. An unclaimed key is
 * freed when data_cb returns. Returns data_cb's result.
 */
int mgp_hand_handle(mgp_ctx *prov, mgp_key *k, OSSL_CALLBACK *data_cb, void *data_cbarg);
/* The handle decoder's side: the key behind handle bytes, claimed once; NULL if none. */
mgp_key *mgp_handle_claim(const unsigned char *h, size_t len, const char *type);

extern const OSSL_DISPATCH mgp_dsa_der_pki_decoder[], mgp_dh_der_pki_decoder[], mgp_dhx_der_pki_decoder[],
    mgp_sm2_der_pki_decoder[], mgp_dsa_der_ts_decoder[];
extern const OSSL_DISPATCH mgp_rsa_handle_decoder[], mgp_rsapss_handle_decoder[], mgp_ec_handle_decoder[],
    mgp_ed25519_handle_decoder[], mgp_ed448_handle_decoder[], mgp_x25519_handle_decoder[],
    mgp_x448_handle_decoder[], mgp_dsa_handle_decoder[], mgp_dh_handle_decoder[], mgp_dhx_handle_decoder[],
    mgp_sm2_handle_decoder[], mgp_refused_handle_decoder[];
/* Keymgmts for refused keys only (types memguard cannot seal, and the unknown type). */
extern const OSSL_DISPATCH mgp_dsa_keymgmt[], mgp_dh_keymgmt[], mgp_dhx_keymgmt[], mgp_sm2_keymgmt[],
    mgp_refused_keymgmt[];

#endif
