/*
 * TEST ONLY - not OpenSSL's header. For tests/provider/skeymgmt_syntax.sh: the system's OpenSSL 3.0
 * <openssl/core_dispatch.h> plus the declarations that OpenSSL 3.5 adds for EVP_SKEY, written from
 * provider-skeymgmt(7), provider-cipher(7) and provider-mac(7) of 3.5 (operation and function
 * numbers as 3.5 assigns them). It lets provider/skeymgmt.c be compiled on a 3.0 machine; it
 * proves the code is consistent with these declarations, not that it runs on 3.5.
 */
#pragma GCC system_header /* #include_next is an extension; this file is a stand-in for a system header */
#include_next <openssl/core_dispatch.h>

#ifndef MGT_SKEYMGMT35_OVERLAY
#define MGT_SKEYMGMT35_OVERLAY
#ifndef OSSL_OP_SKEYMGMT
#define OSSL_OP_SKEYMGMT 15

#define OSSL_SKEYMGMT_SELECT_PARAMETERS 0x01
#define OSSL_SKEYMGMT_SELECT_SECRET_KEY 0x02
#define OSSL_SKEYMGMT_SELECT_ALL (OSSL_SKEYMGMT_SELECT_PARAMETERS | OSSL_SKEYMGMT_SELECT_SECRET_KEY)

#define OSSL_FUNC_SKEYMGMT_FREE 1
#define OSSL_FUNC_SKEYMGMT_IMPORT 2
#define OSSL_FUNC_SKEYMGMT_EXPORT 3
#define OSSL_FUNC_SKEYMGMT_GENERATE 4
#define OSSL_FUNC_SKEYMGMT_GET_KEY_ID 5
#define OSSL_FUNC_SKEYMGMT_IMP_SETTABLE_PARAMS 6
#define OSSL_FUNC_SKEYMGMT_GEN_SETTABLE_PARAMS 7
OSSL_CORE_MAKE_FUNC(void, skeymgmt_free, (void *keydata))
OSSL_CORE_MAKE_FUNC(const OSSL_PARAM *, skeymgmt_imp_settable_params, (void *provctx))
OSSL_CORE_MAKE_FUNC(void *, skeymgmt_import, (void *provctx, int selection, const OSSL_PARAM params[]))
OSSL_CORE_MAKE_FUNC(int, skeymgmt_export, (void *keydata, int selection, OSSL_CALLBACK *param_cb, void *cbarg))
OSSL_CORE_MAKE_FUNC(const OSSL_PARAM *, skeymgmt_gen_settable_params, (void *provctx))
OSSL_CORE_MAKE_FUNC(void *, skeymgmt_generate, (void *provctx, const OSSL_PARAM params[]))
OSSL_CORE_MAKE_FUNC(const char *, skeymgmt_get_key_id, (void *keydata))

#define OSSL_FUNC_CIPHER_ENCRYPT_SKEY_INIT 19
#define OSSL_FUNC_CIPHER_DECRYPT_SKEY_INIT 20
OSSL_CORE_MAKE_FUNC(int, cipher_encrypt_skey_init,
                    (void *cctx, void *skeydata, const unsigned char *iv, size_t ivlen, const OSSL_PARAM params[]))
OSSL_CORE_MAKE_FUNC(int, cipher_decrypt_skey_init,
                    (void *cctx, void *skeydata, const unsigned char *iv, size_t ivlen, const OSSL_PARAM params[]))

#define OSSL_FUNC_MAC_INIT_SKEY 13
OSSL_CORE_MAKE_FUNC(int, mac_init_skey, (void *mctx, void *key, const OSSL_PARAM params[]))
#endif
#endif
