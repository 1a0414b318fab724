/*
 * HMAC whose whole state lives in guarded memory (hmac.c), shared by the
 * EVP_MAC (mac.c), the HMAC EVP_PKEY signature (mac_key.c) and the KDFs
 * (kdf.c). The digest runs over OpenSSL's low-level SHA-1/SHA-2 functions,
 * because only their context structs can be placed in memory we own (the
 * default provider's digest contexts are allocated in the ordinary heap), and
 * over memguard's own Keccak for SHA-3.
 */
#ifndef MGP_HMAC_H
#define MGP_HMAC_H

#include <stdbool.h>
#include <stddef.h>

#include "provider.h"

/* One supported digest: SHA-1, SHA2-224, SHA2-256, SHA2-384, SHA2-512, SHA3-224/256/384/512. */
#define MGP_HMAC_DIGESTS "SHA1, SHA2-224, SHA2-256, SHA2-384, SHA2-512, SHA3-224, SHA3-256, SHA3-384, SHA3-512"
typedef struct mgp_hmac_md mgp_hmac_md;
/* By any of OpenSSL's names for it ("SHA256", "SHA2-256", "SHA-256", the OID); NULL if unsupported. */
const mgp_hmac_md *mgp_hmac_md_by_name(const char *name);
const char *mgp_hmac_md_name(const mgp_hmac_md *md);
size_t mgp_hmac_md_size(const mgp_hmac_md *md);
size_t mgp_hmac_md_block(const mgp_hmac_md *md);

/*
 * An HMAC state: the digest states after K^ipad and K^opad plus the running
 * one, in a slot of a guarded slab (mlocked, not dumped, guard pages around
 * the slab). The handle itself holds no secret.
 */
typedef struct mgp_hmac mgp_hmac;
mgp_hmac *mgp_hmac_new(void);
/*
 * A state in guarded memory the caller already holds (MGP_SLOT_SIZE bytes, 64-byte aligned),
 * such as an operation's workspace, which the key's locked-memory reservation covers: no slab,
 * so nothing to lock at the moment of use (docs/locked-memory.md). mgp_hmac_free wipes it.
 */
mgp_hmac *mgp_hmac_in(void *mem);
mgp_hmac *mgp_hmac_dup(const mgp_hmac *src); /* a new slot, same state */
void mgp_hmac_free(mgp_hmac *h);             /* wipes the slot */
/* false once mg_purge() has wiped guarded memory: the state is gone. */
bool mgp_hmac_alive(const mgp_hmac *h);
/* Key the state (K may be any length; longer than a block is hashed, as RFC 2104 says). */
void mgp_hmac_set_key(mgp_hmac *h, const mgp_hmac_md *md, const unsigned char *key, size_t len);
const mgp_hmac_md *mgp_hmac_get_md(const mgp_hmac *h); /* NULL until keyed */
void mgp_hmac_restart(mgp_hmac *h);                    /* same key, new message */
void mgp_hmac_update(mgp_hmac *h, const unsigned char *in, size_t len);
void mgp_hmac_final(mgp_hmac *h, unsigned char *out); /* mgp_hmac_md_size(md) bytes */

/*
 * Seal a copy of len bytes at src, staged in guarded memory on the way: the
 * caller's buffer is left as it is (it is theirs to wipe). An enclave cannot be
 * empty, so len 0 seals one placeholder byte (the caller keeps the real length).
 * NULL on error.
 */
mg_enclave *mgp_seal_copy(const void *src, size_t len);

/*
 * A bare slot of the same guarded slabs (MGP_SLOT_SIZE bytes, 64-byte aligned) for other
 * key-equivalent state (CMAC, cmac.c): a fresh guarded mapping per context would cost more
 * than the MAC. give wipes the first `used` bytes (and the slot's usual extent). NULL if none.
 */
#define MGP_SLOT_SIZE 1024
void *mgp_slot_take(void **owner);
void mgp_slot_give(void *owner, void *slot, size_t used);
bool mgp_slot_alive(const void *owner); /* false once mg_purge() wiped the slab */

/*
 * The EVP_MAC context parameters every MAC here answers, "size" and "block-size" (mac.c,
 * cmac.c, kmac.c): the gettable table, and filling them in.
 */
const OSSL_PARAM *mgp_mac_gettable(void *vctx, void *provctx);
int mgp_mac_get_sizes(OSSL_PARAM params[], size_t size, size_t block);

/* Largest secret (MAC key, KDF secret or password) accepted: beyond it is a caller's bug. */
#define MGP_MAX_SECRET (64 * 1024)

#endif
