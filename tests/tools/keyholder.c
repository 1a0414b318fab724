/*
 * keyholder KEYFILE [PASS]: loads a private key the way ordinary programs do (BIO_new_file +
 * PEM_read_bio_PrivateKey), uses it once (sign, or derive with a fresh peer for X25519/X448),
 * prints "ready" and holds it until stdin closes. mg-keyscan's tests scan this process: under
 * OPENSSL_CONF=/dev/null its heap holds the key in the clear; under memguard it should not.
 */
#include <stdio.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

static int use_key(EVP_PKEY *key)
{
    static const unsigned char msg[] = "the data to sign";
    unsigned char out[1024];
    size_t outlen = sizeof out;
    int ok = 0;
    if (EVP_PKEY_is_a(key, "X25519") || EVP_PKEY_is_a(key, "X448")) {
        /* A key-agreement key cannot sign: derive once with a fresh peer of the same type. */
        EVP_PKEY *peer = EVP_PKEY_Q_keygen(NULL, NULL, EVP_PKEY_is_a(key, "X25519") ? "X25519" : "X448");
        EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(key, NULL);
        ok = peer != NULL && ctx != NULL && EVP_PKEY_derive_init(ctx) > 0 && EVP_PKEY_derive_set_peer(ctx, peer) > 0 &&
             EVP_PKEY_derive(ctx, out, &outlen) > 0;
        EVP_PKEY_CTX_free(ctx);
        EVP_PKEY_free(peer);
    } else {
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        /* Ed25519/Ed448 take no digest; the others sign SHA-256. */
        int ed = EVP_PKEY_is_a(key, "ED25519") || EVP_PKEY_is_a(key, "ED448");
        ok = md != NULL && EVP_DigestSignInit(md, NULL, ed ? NULL : EVP_sha256(), NULL, key) > 0 &&
             EVP_DigestSign(md, out, &outlen, msg, sizeof msg - 1) > 0;
        EVP_MD_CTX_free(md);
    }
    OPENSSL_cleanse(out, sizeof out);
    return ok;
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: keyholder KEYFILE [PASS]\n");
        return 2;
    }
    BIO *in = BIO_new_file(argv[1], "r");
    EVP_PKEY *key = in != NULL ? PEM_read_bio_PrivateKey(in, NULL, NULL, argc == 3 ? argv[2] : NULL) : NULL;
    BIO_free(in);
    if (key == NULL || !use_key(key)) {
        fprintf(stderr, "keyholder: cannot load or use %s\n", argv[1]);
        ERR_print_errors_fp(stderr);
        EVP_PKEY_free(key);
        return 1;
    }
    printf("ready\n");
    if (fflush(stdout) != 0)
        return 1;
    char buf[64];
    while (fgets(buf, sizeof buf, stdin) != NULL)
        ;
    EVP_PKEY_free(key);
    return 0;
}
