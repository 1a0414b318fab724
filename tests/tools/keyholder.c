/*
 * keyholder [--keep-pem] [--leak-der] KEYFILE [PASS]: loads a private key the way ordinary
 * programs do (BIO_new_file + PEM_read_bio_PrivateKey), uses it once (sign, or derive with a fresh
 * peer for X25519/X448), prints "ready" and holds it until stdin closes. mg-keyscan's tests scan
 * this process: under OPENSSL_CONF=/dev/null its heap holds the key in the clear.
 * --keep-pem keeps the file's text in a heap buffer (a program caching its configuration);
 * --leak-der frees an unwiped PKCS#8 DER copy (malloc then reuses its first 16 bytes): the two
 * residues OpenSSL itself does not leave, so the PEM and DER rows of the scanner can be tested.
 */
#include <stdio.h>
#include <stdlib.h>
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

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "r");
    char *text = f != NULL ? calloc(1, 65536) : NULL;
    if (text != NULL && fread(text, 1, 65535, f) == 0) {
        free(text);
        text = NULL;
    }
    if (f != NULL)
        fclose(f);
    return text;
}

/* An unwiped DER copy given back to malloc, as a careless program would. */
static int leak_der(EVP_PKEY *key)
{
    PKCS8_PRIV_KEY_INFO *p8 = EVP_PKEY2PKCS8(key);
    unsigned char *der = NULL;
    int len = p8 != NULL ? i2d_PKCS8_PRIV_KEY_INFO(p8, &der) : -1;
    PKCS8_PRIV_KEY_INFO_free(p8);
    if (len <= 0)
        return 0;
    unsigned char *copy = malloc((size_t)len);
    if (copy != NULL)
        memcpy(copy, der, (size_t)len);
    OPENSSL_clear_free(der, (size_t)len);
    free(copy); /* deliberately not wiped: this is the residue under test */
    return copy != NULL;
}

int main(int argc, char **argv)
{
    int keep_pem = 0, der = 0, i = 1;
    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        if (strcmp(argv[i], "--keep-pem") == 0)
            keep_pem = 1;
        else if (strcmp(argv[i], "--leak-der") == 0)
            der = 1;
        else
            break;
    }
    if (argc - i < 1 || argc - i > 2) {
        fprintf(stderr, "usage: keyholder [--keep-pem] [--leak-der] KEYFILE [PASS]\n");
        return 2;
    }
    const char *path = argv[i];
    char *pass = argc - i == 2 ? argv[i + 1] : NULL;
    char *text = keep_pem ? read_text(path) : NULL;
    if (keep_pem && text == NULL) {
        fprintf(stderr, "keyholder: cannot read %s\n", path);
        return 1;
    }
    BIO *in = BIO_new_file(path, "r");
    EVP_PKEY *key = in != NULL ? PEM_read_bio_PrivateKey(in, NULL, NULL, pass) : NULL;
    BIO_free(in);
    if (key == NULL || !use_key(key) || (der && !leak_der(key))) {
        fprintf(stderr, "keyholder: cannot load or use %s\n", path);
        ERR_print_errors_fp(stderr);
        EVP_PKEY_free(key);
        free(text);
        return 1;
    }
    printf("ready\n");
    if (fflush(stdout) != 0)
        return 1;
    char buf[64];
    while (fgets(buf, sizeof buf, stdin) != NULL)
        ;
    EVP_PKEY_free(key);
    free(text);
    return 0;
}
