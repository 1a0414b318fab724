/*
 * SKEYMGMT (OpenSSL >= 3.5, EVP_SKEY): symmetric keys sealed in enclaves, usable by memguard's
 * ciphers and MACs through the EVP_SKEY init paths. skeymgmt.c is compiled only when CMake finds
 * OSSL_FUNC_SKEYMGMT_IMPORT in <openssl/core_dispatch.h> (MGP_HAVE_SKEYMGMT); on 3.0 none of it
 * exists. This header needs nothing beyond <openssl/core.h>, so skeymgmt.c can be checked against
 * OpenSSL 3.5's headers on a 3.0 machine (tests/provider/skeymgmt_syntax.sh).
 */
#ifndef MGP_SKEYMGMT_H
#define MGP_SKEYMGMT_H

#include <openssl/core.h>

/* The SKEYMGMT table ("AES", "GENERIC-SECRET"). */
const OSSL_ALGORITHM *mgp_skeymgmt_algorithms(void);
/*
 * base (an OSSL_OP_CIPHER or OSSL_OP_MAC table of ours) with the EVP_SKEY init functions added to
 * every algorithm: encrypt_skey_init / decrypt_skey_init, or init_skey. NULL stays NULL.
 */
const OSSL_ALGORITHM *mgp_skey_extend(int operation_id, const OSSL_ALGORITHM *base);

/* Errors from skeymgmt.c, raised through the provider's MGP_ERR (skeymgmt_glue.c). */
void mgp_skey_error(void *provctx, int unsupported, const char *what);

#endif
