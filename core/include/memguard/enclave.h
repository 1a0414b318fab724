#ifndef MEMGUARD_ENCLAVE_H
#define MEMGUARD_ENCLAVE_H

#include <stdbool.h>
#include <stddef.h>
#include <memguard/buffer.h>
#include <memguard/export.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * An enclave: data sealed with XSalsa20-Poly1305 (libsodium crypto_secretbox)
 * under the process key, with a random 24-byte nonce per seal. The sealed
 * bytes live in ordinary memory: they are useless to anyone who reads the
 * heap, swap, a core dump or a cold-booted DIMM without the process key,
 * which the coffer keeps split and re-keyed (see mg_set_rekey_interval).
 * mg_purge() replaces the process key: enclaves sealed before it fail to open
 * with MG_EAUTH. Enclaves are immutable and safe to share between threads.
 */
typedef struct mg_enclave mg_enclave;

/* Bytes an enclave adds to its plaintext: nonce (24) + tag (16). */
#define MG_ENCLAVE_OVERHEAD 40

/* Seal size bytes of src, then wipe src. size must be > 0. On failure src is untouched. */
MG_API MG_NODISCARD mg_enclave *mg_enclave_new(void *src, size_t size);
/* Seal size random bytes (generated in guarded memory). */
MG_API MG_NODISCARD mg_enclave *mg_enclave_random(size_t size);
/* Seal the contents of b, then destroy b (also on failure: b is consumed). */
MG_API MG_NODISCARD mg_enclave *mg_buffer_seal(mg_buffer *b);

/*
 * Open into a new frozen guarded buffer; decryption writes straight into it.
 * NULL with mg_last_error() == MG_EAUTH if the enclave was tampered with or
 * sealed before a purge.
 */
MG_API MG_NODISCARD mg_buffer *mg_enclave_open(const mg_enclave *e);

/*
 * Scoped access, the fast path: unseal into pre-locked guarded scratch memory,
 * call fn(data, size, arg), wipe, and return fn's result. No system call for
 * enclaves up to 16 KiB. data is 16-byte aligned and valid only during fn;
 * fn must not keep it. If the enclave cannot be opened fn is not called and a
 * negative mg_error is returned (MG_EAUTH, ...) and recorded for mg_last_error().
 */
typedef int (*mg_enclave_fn)(const void *data, size_t size, void *arg);
MG_API int mg_enclave_with(const mg_enclave *e, mg_enclave_fn fn, void *arg);

/*
 * mg_enclave_with plus `extra` bytes of guarded, 16-byte aligned workspace in
 * the same scratch area, wiped afterwards: for results that must be staged in
 * guarded memory before they are released (or never released at all).
 */
typedef int (*mg_enclave_workspace_fn)(const void *data, size_t size, unsigned char *work, void *arg);
MG_API int mg_enclave_with_workspace(const mg_enclave *e, size_t extra, mg_enclave_workspace_fn fn, void *arg);

/*
 * Reserve locked memory for later mg_enclave_with / mg_enclave_with_workspace(e, extra) calls, so
 * that under locked-memory pressure (RLIMIT_MEMLOCK) they never fail for lack of it. A thread
 * that cannot get (or lock) scratch memory of its own then uses one shared reserve, guarded and
 * locked like the rest, waiting while another thread has it: such operations run one at a time
 * instead of failing. The reserve is sized for the largest request reserved so far and stays
 * until the process exits. Call it when a long-lived secret is loaded; if it fails, the secret
 * cannot be served reliably: refuse it. Returns MG_OK, or MG_EMLOCK with mg_last_error_message()
 * naming the limit and how much more is needed.
 * A nested mg_enclave_with on a thread that holds the reserve, when no other memory can be locked,
 * fails with MG_EMLOCK (it would otherwise wait for itself).
 */
MG_API int mg_enclave_reserve(const mg_enclave *e, size_t extra);

MG_API size_t mg_enclave_size(const mg_enclave *e);
/* Free an enclave. NULL-safe. (The sealed bytes are wiped too, though they are not secret.) */
MG_API void mg_enclave_free(mg_enclave *e);

/*
 * The coffer's re-key interval in milliseconds (default 500); 0 stops
 * periodic re-keying. mg_rekey() re-masks the key parts at once.
 */
MG_API int mg_set_rekey_interval(unsigned ms);
MG_API int mg_rekey(void);

/*
 * Authenticated encryption of application data with a 32-byte key held in an
 * enclave; the key is unsealed into guarded memory only inside the call.
 * Output of mg_aead_seal: nonce || ciphertext || tag, with a random nonce,
 * mg_aead_overhead(alg) bytes longer than the message.
 *   MG_AEAD_XCHACHA20POLY1305: 24-byte nonce: random nonces are safe for any
 *     number of messages.
 *   MG_AEAD_AES256GCM: 12-byte nonce: keep to well under 2^32 messages per key.
 *     Needs AES-NI and PCLMUL (mg_aead_available); MG_ENOTSUP otherwise.
 * mg_aead_open returns MG_EAUTH on any tampering; nothing is written to out then.
 */
typedef enum mg_aead_alg { MG_AEAD_XCHACHA20POLY1305 = 0, MG_AEAD_AES256GCM = 1 } mg_aead_alg;
MG_API bool mg_aead_available(mg_aead_alg alg);
MG_API size_t mg_aead_overhead(mg_aead_alg alg);
MG_API int mg_aead_seal(const mg_enclave *key, mg_aead_alg alg, unsigned char *out, size_t out_cap,
                        size_t *out_len, const void *msg, size_t msg_len, const void *ad, size_t ad_len);
MG_API int mg_aead_open(const mg_enclave *key, mg_aead_alg alg, unsigned char *out, size_t out_cap,
                        size_t *out_len, const void *in, size_t in_len, const void *ad, size_t ad_len);

#ifdef __cplusplus
}
#endif

#endif
