/*
 * A symmetric key from a file, with no plaintext copy outside guarded memory.
 *
 *   symmetric_file_key KEYFILE hmac            HMAC-SHA256 of stdin, hex
 *   symmetric_file_key KEYFILE cmac            CMAC-AES-256 of stdin, hex
 *   symmetric_file_key KEYFILE kmac            KMAC-256 of stdin (64 bytes, no customisation), hex
 *   symmetric_file_key KEYFILE cbc IVHEX       AES-256-CBC (PKCS#7) of stdin, raw, to stdout
 *
 * KEYFILE holds exactly 32 raw bytes (e.g. `openssl rand -out key.bin 32`, mode 0600).
 * Needs an openssl.cnf that activates default and then memguard (conf/memguard.cnf).
 *
 * Where the key goes: read(2) straight from the file descriptor into a guarded
 * buffer (mg_buffer_from_fd: no stdio buffer, no heap), then handed to memguard's
 * MAC or cipher by pointer; memguard keys its state in guarded memory from that
 * pointer, and the buffer is destroyed (wiped, unmapped) before any input is read.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <memguard/memguard.h>

#define KEY_BYTES 32
#define CHUNK (64 * 1024)

static int fail(const char *what)
{
    fprintf(stderr, "symmetric_file_key: %s\n", what);
    ERR_print_errors_fp(stderr);
    return 1;
}

/* Exactly KEY_BYTES from path, straight into guarded memory; NULL (and a message) otherwise. */
static mg_buffer *load_key(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "symmetric_file_key: %s: %s\n", path, strerror(errno));
        return NULL;
    }
    mg_buffer *key = mg_buffer_from_fd(fd, KEY_BYTES);
    unsigned char extra;
    ssize_t more = key != NULL ? read(fd, &extra, 1) : 0;
    if (close(fd) != 0 || key == NULL || more != 0) {
        /* A short file, a read error, or a longer file (probably not a raw 32-byte key: hex? PEM?). */
        fprintf(stderr, "symmetric_file_key: %s: not a raw %d-byte key (%s)\n", path, KEY_BYTES,
                key == NULL ? mg_last_error_message() : "the file is longer");
        mg_buffer_destroy(key);
        return NULL;
    }
    return key;
}

static int read_stdin(unsigned char *buf, size_t *n)
{
    *n = fread(buf, 1, CHUNK, stdin);
    return !ferror(stdin);
}

static int mac_stdin(mg_buffer *key, const char *alg)
{
    EVP_MAC *mac = EVP_MAC_fetch(NULL, alg, "provider=memguard");
    EVP_MAC_CTX *ctx = mac != NULL ? EVP_MAC_CTX_new(mac) : NULL;
    int hmac = strcmp(alg, "HMAC") == 0, kmac = strcmp(alg, "KMAC-256") == 0;
    /*
     * The key parameter points into the guarded buffer. OpenSSL hands the OSSL_PARAM array to
     * memguard's set_ctx_params as it is - it copies nothing - and memguard reads the bytes once,
     * straight into its guarded state (HMAC's keyed digest states, CMAC's round keys and
     * subkeys, KMAC's key and keyed Keccak state), so after this call the guarded buffer is the
     * only other place the key ever was.
     */
    char sha256[] = "SHA256", aes256[] = "AES-256-CBC";
    OSSL_PARAM params[] = {
        OSSL_PARAM_utf8_string(hmac ? OSSL_MAC_PARAM_DIGEST : OSSL_MAC_PARAM_CIPHER, hmac ? sha256 : aes256, 0),
        OSSL_PARAM_octet_string(OSSL_MAC_PARAM_KEY, mg_buffer_data(key), mg_buffer_size(key)),
        OSSL_PARAM_END,
    };
    int ok = ctx != NULL && EVP_MAC_init(ctx, NULL, 0, kmac ? params + 1 : params) == 1; /* KMAC: key only */
    mg_buffer_destroy(key); /* before reading any input: memguard holds the only keyed state now */
    if (!ok) {
        EVP_MAC_CTX_free(ctx);
        EVP_MAC_free(mac);
        return fail("cannot key memguard's MAC (is memguard activated after default in OPENSSL_CONF?)");
    }
    static unsigned char buf[CHUNK];
    size_t n;
    do {
        ok = read_stdin(buf, &n) && EVP_MAC_update(ctx, buf, n) == 1;
    } while (ok && n == CHUNK);
    unsigned char out[64]; /* EVP_MAX_MD_SIZE: the largest HMAC; and KMAC-256's default */
    size_t outl = 0;
    ok = ok && EVP_MAC_final(ctx, out, &outl, sizeof out) == 1;
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(mac);
    if (!ok)
        return fail("MAC failed");
    for (size_t i = 0; i < outl; i++)
        printf("%02x", out[i]);
    printf("\n");
    return 0;
}

static int encrypt_stdin(mg_buffer *key, const char *ivhex)
{
    unsigned char iv[16];
    long len = 0;
    unsigned char *parsed = ivhex != NULL ? OPENSSL_hexstr2buf(ivhex, &len) : NULL;
    if (parsed == NULL || len != (long)sizeof iv) {
        OPENSSL_free(parsed);
        mg_buffer_destroy(key);
        return fail("cbc needs a 16-byte IV in hex");
    }
    memcpy(iv, parsed, sizeof iv);
    OPENSSL_free(parsed);
    EVP_CIPHER *cipher = EVP_CIPHER_fetch(NULL, "AES-256-CBC", "provider=memguard");
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    /* As for the MAC: the key pointer goes straight to memguard's init, which expands it into the
       context's guarded key schedule; OpenSSL makes no copy. */
    int ok = cipher != NULL && ctx != NULL &&
             EVP_EncryptInit_ex2(ctx, cipher, mg_buffer_data(key), iv, NULL) == 1;
    mg_buffer_destroy(key);
    if (!ok) {
        EVP_CIPHER_CTX_free(ctx);
        EVP_CIPHER_free(cipher);
        return fail("cannot key memguard's AES-256-CBC (is memguard activated after default in OPENSSL_CONF?)");
    }
    static unsigned char in[CHUNK], out[CHUNK + 16];
    size_t n;
    int outl = 0;
    do {
        ok = read_stdin(in, &n) && EVP_EncryptUpdate(ctx, out, &outl, in, (int)n) == 1 &&
             fwrite(out, 1, (size_t)outl, stdout) == (size_t)outl;
    } while (ok && n == CHUNK);
    ok = ok && EVP_EncryptFinal_ex(ctx, out, &outl) == 1 && fwrite(out, 1, (size_t)outl, stdout) == (size_t)outl &&
         fflush(stdout) == 0;
    EVP_CIPHER_CTX_free(ctx);
    EVP_CIPHER_free(cipher);
    return ok ? 0 : fail("encryption failed");
}

int main(int argc, char **argv)
{
    if (argc < 3 || (strcmp(argv[2], "cbc") == 0) != (argc == 4) || argc > 4) {
        fprintf(stderr, "usage: symmetric_file_key KEYFILE hmac|cmac|kmac\n"
                        "       symmetric_file_key KEYFILE cbc IVHEX\n");
        return 2;
    }
    if (mg_init() != MG_OK)
        return fail(mg_last_error_message());
    mg_buffer *key = load_key(argv[1]);
    if (key == NULL)
        return 1;
    if (strcmp(argv[2], "hmac") == 0)
        return mac_stdin(key, "HMAC");
    if (strcmp(argv[2], "cmac") == 0)
        return mac_stdin(key, "CMAC");
    if (strcmp(argv[2], "kmac") == 0)
        return mac_stdin(key, "KMAC-256");
    if (strcmp(argv[2], "cbc") == 0)
        return encrypt_stdin(key, argv[3]);
    mg_buffer_destroy(key);
    fprintf(stderr, "symmetric_file_key: unknown mode %s\n", argv[2]);
    return 2;
}
