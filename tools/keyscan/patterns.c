/*
 * From a key file to search patterns: PEM lines, DER encodings and raw private components,
 * each in the byte orders a program might hold them in.
 *
 * The key is decoded in a private OSSL_LIB_CTX with only the `default` provider: a system
 * openssl.cnf that activates memguard (or anything else) must not change what we derive, and a
 * key that memguard captured could not be exported into patterns at all.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/decoder.h>
#include <openssl/encoder.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/provider.h>
#include <openssl/x509.h>

#include "keyscan.h"

#define PEM_LINE_BYTES 48 /* PEM writers encode 48 bytes per 64-column line */
#define PEM_MIN_SECRET 8  /* a PEM line counts only if it encodes this many private bytes */

struct span {
    size_t start, end;
};

/* Private byte strings (as they appear in DER) used to find the private spans of a DER blob. */
struct secrets {
    const unsigned char *bytes[16];
    size_t len[16];
    int n;
};

static OSSL_LIB_CTX *libctx;
static OSSL_PROVIDER *default_prov;

__attribute__((format(printf, 3, 4))) static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Append OpenSSL's first queued reason (never key material) to a message. */
static void set_ossl_err(char *err, size_t errlen, const char *what)
{
    unsigned long e = ERR_peek_last_error();
    char buf[160] = "no detail from OpenSSL";
    if (e != 0)
        ERR_error_string_n(e, buf, sizeof buf);
    set_err(err, errlen, "%s (%s)", what, buf);
    ERR_clear_error();
}

static int open_libctx(char *err, size_t errlen)
{
    if (libctx != NULL)
        return 0;
    libctx = OSSL_LIB_CTX_new();
    if (libctx == NULL) {
        set_ossl_err(err, errlen, "cannot create an OpenSSL library context");
        return -1;
    }
    default_prov = OSSL_PROVIDER_load(libctx, "default");
    if (default_prov == NULL) {
        set_ossl_err(err, errlen, "cannot load OpenSSL's default provider");
        return -1;
    }
    return 0;
}

static int add_row(struct ks_keyset *ks, enum ks_row_kind kind, const char *name, const char *tag)
{
    if (ks->n_rows >= KS_MAX_ROWS)
        abort(); /* fixed by the key types below; more rows is a programming error */
    struct ks_row *r = &ks->rows[ks->n_rows];
    memset(r, 0, sizeof *r);
    r->kind = kind;
    snprintf(r->name, sizeof r->name, "%s", name);
    snprintf(r->tag, sizeof r->tag, "%s", tag);
    return ks->n_rows++;
}

static int grow(void **p, int *cap, int need, size_t elem)
{
    if (need <= *cap)
        return 0;
    int ncap = *cap ? *cap * 2 : 64;
    while (ncap < need)
        ncap *= 2;
    void *np = realloc(*p, (size_t)ncap * elem);
    if (np == NULL)
        return -1;
    *p = np;
    *cap = ncap;
    return 0;
}

/* Copies the bytes; an identical pattern already in the same row is reused. */
static int add_pattern(struct ks_keyset *ks, int row, const unsigned char *b, size_t len)
{
    for (int i = 0; i < ks->n_patterns; i++) {
        const struct ks_pattern *p = &ks->patterns[i];
        if (p->row == row && p->len == len && memcmp(p->bytes, b, len) == 0)
            return i;
    }
    if (grow((void **)&ks->patterns, &ks->cap_patterns, ks->n_patterns + 1, sizeof *ks->patterns) != 0)
        return -1;
    unsigned char *copy = OPENSSL_malloc(len);
    if (copy == NULL)
        return -1;
    memcpy(copy, b, len);
    ks->patterns[ks->n_patterns] = (struct ks_pattern){.row = row, .bytes = copy, .len = len};
    ks->rows[row].n_patterns++;
    return ks->n_patterns++;
}

static int add_needle(struct ks_keyset *ks, int pattern, size_t off, size_t len)
{
    const struct ks_pattern *p = &ks->patterns[pattern];
    if (len < KS_MIN_PATTERN || off + len > p->len)
        return 0;
    for (int i = 0; i < ks->n_needles; i++)
        if (ks->needles[i].pattern == pattern && ks->needles[i].off == off && ks->needles[i].len == len)
            return 0;
    if (grow((void **)&ks->needles, &ks->cap_needles, ks->n_needles + 1, sizeof *ks->needles) != 0)
        return -1;
    struct ks_needle *n = &ks->needles[ks->n_needles++];
    memcpy(&n->anchor, p->bytes + off, sizeof n->anchor);
    n->pattern = pattern;
    n->off = off;
    n->len = len;
    n->next = -1;
    if (len > ks->max_needle)
        ks->max_needle = len;
    return 0;
}

/*
 * A component is matched "from inside": malloc reuses the first 16 bytes of a freed chunk for its
 * list pointers, so windows at 16 and 24 still find a freed copy; the middle and the end find
 * copies whose start was overwritten otherwise.
 */
static int add_component_pattern(struct ks_keyset *ks, int row, const unsigned char *b, size_t len)
{
    int p = add_pattern(ks, row, b, len);
    if (p < 0)
        return -1;
    size_t w = len < KS_WINDOW ? len : KS_WINDOW;
    size_t offs[] = {0, 16, 24, (len - w) / 2, len - w};
    for (size_t i = 0; i < sizeof offs / sizeof offs[0]; i++)
        if (offs[i] + w <= len && add_needle(ks, p, offs[i], w) != 0)
            return -1;
    return 0;
}

static void reverse(unsigned char *dst, const unsigned char *src, size_t len)
{
    for (size_t i = 0; i < len; i++)
        dst[i] = src[len - 1 - i];
}

/* Two rows (as stored and byte-reversed) for one component. raw: a byte string, not a number. */
static int add_component(struct ks_keyset *ks, const char *name, const char *tag, const unsigned char *b,
                         size_t len, int raw)
{
    char rname[56], rtag[24];
    unsigned char rev[1100];
    /* Leading zero bytes (BE) carry nothing to search for; a short remainder would hit by chance. */
    if (!raw)
        while (len > 0 && b[0] == 0) {
            b++;
            len--;
        }
    if (len > sizeof rev)
        abort(); /* components are at most 8192-bit RSA halves and d: bounded by the key types */
    for (int le = 0; le < 2; le++) {
        snprintf(rname, sizeof rname, "%s, %s", name,
                 raw ? (le ? "byte-reversed" : "as stored") : (le ? "little-endian" : "big-endian"));
        snprintf(rtag, sizeof rtag, "%s-%s", tag, raw ? (le ? "rev" : "raw") : (le ? "le" : "be"));
        int row = add_row(ks, KS_ROW_COMPONENT, rname, rtag);
        if (len < KS_MIN_PATTERN) {
            snprintf(ks->rows[row].note, sizeof ks->rows[row].note, "not searched: %zu bytes (< %d)", len,
                     KS_MIN_PATTERN);
            continue;
        }
        if (le)
            reverse(rev, b, len);
        int rc = add_component_pattern(ks, row, le ? rev : b, len);
        OPENSSL_cleanse(rev, sizeof rev);
        if (rc != 0)
            return -1;
    }
    return 0;
}

static int add_bn_component(struct ks_keyset *ks, struct secrets *sec, const EVP_PKEY *pkey, const char *param,
                            const char *name, const char *tag, size_t pad, unsigned char *keep)
{
    BIGNUM *bn = NULL;
    unsigned char buf[1100];
    if (!EVP_PKEY_get_bn_param(pkey, param, &bn))
        return 1; /* absent (e.g. a key without CRT parameters) */
    int n = BN_num_bytes(bn);
    int rc = -1;
    if (pad == 0)
        pad = (size_t)n;
    if ((size_t)n <= pad && pad <= sizeof buf && BN_bn2binpad(bn, buf, (int)pad) == (int)pad) {
        rc = add_component(ks, name, tag, buf, pad, 0);
        if (rc == 0 && sec != NULL && keep != NULL && sec->n < 16) {
            /* The DER form: the minimal big-endian bytes (INTEGER) or the padded scalar (EC). */
            memcpy(keep, buf, pad);
            sec->bytes[sec->n] = keep;
            sec->len[sec->n++] = pad;
        }
    }
    OPENSSL_cleanse(buf, sizeof buf);
    BN_clear_free(bn);
    return rc;
}

/* Where the private bytes sit inside a DER blob. */
static int private_spans(const unsigned char *der, size_t len, const struct secrets *sec, struct span *out,
                         int max)
{
    int n = 0;
    for (int i = 0; i < sec->n && n < max; i++) {
        if (sec->len[i] < KS_MIN_PATTERN || sec->len[i] > len)
            continue;
        const unsigned char *hit = memmem(der, len, sec->bytes[i], sec->len[i]);
        if (hit != NULL)
            out[n++] = (struct span){(size_t)(hit - der), (size_t)(hit - der) + sec->len[i]};
    }
    return n;
}

static size_t overlap(size_t a0, size_t a1, const struct span *s, int n)
{
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        size_t lo = a0 > s[i].start ? a0 : s[i].start, hi = a1 < s[i].end ? a1 : s[i].end;
        if (hi > lo)
            total += hi - lo;
    }
    return total;
}

/*
 * DER windows straddle the edge of each private component (8 bytes of DER framing + 24 private
 * bytes): a hit proves this encoding, not a bare number, and public parts alone never match —
 * a certificate or public key in memory holds the same modulus.
 */
static int add_der(struct ks_keyset *ks, int row, const unsigned char *der, size_t len, const struct secrets *sec)
{
    struct span sp[16];
    int n = private_spans(der, len, sec, sp, 16);
    if (n == 0 || len < KS_WINDOW)
        return 0;
    int p = add_pattern(ks, row, der, len);
    if (p < 0)
        return -1;
    for (int i = 0; i < n; i++) {
        size_t a = sp[i].start >= 8 ? sp[i].start - 8 : 0;
        size_t b_end = sp[i].end + 8 <= len ? sp[i].end + 8 : len;
        size_t b = b_end >= KS_WINDOW ? b_end - KS_WINDOW : 0;
        size_t starts[] = {a, b};
        for (int k = 0; k < 2; k++) {
            size_t s = starts[k], w = len - s < KS_WINDOW ? len - s : KS_WINDOW;
            if (overlap(s, s + w, sp, n) >= KS_MIN_PATTERN && add_needle(ks, p, s, w) != 0)
                return -1;
        }
    }
    return 0;
}

/* The 64-column base64 lines a PEM writer produces for this DER; public-only lines are skipped. */
static int add_pem_lines_of(struct ks_keyset *ks, int row, const unsigned char *der, size_t len,
                            const struct secrets *sec)
{
    struct span sp[16];
    int n = private_spans(der, len, sec, sp, 16);
    unsigned char line[72];
    int rc = 0;
    for (size_t off = 0; off < len && rc == 0; off += PEM_LINE_BYTES) {
        size_t chunk = len - off < PEM_LINE_BYTES ? len - off : PEM_LINE_BYTES;
        if (overlap(off, off + chunk, sp, n) < PEM_MIN_SECRET)
            continue;
        int out = EVP_EncodeBlock(line, der + off, (int)chunk);
        if (out >= KS_MIN_PATTERN) {
            int p = add_pattern(ks, row, line, (size_t)out);
            rc = p < 0 ? -1 : add_needle(ks, p, 0, (size_t)out);
        }
    }
    OPENSSL_cleanse(line, sizeof line);
    return rc;
}

/*
 * The lines of the key file as written (any line length): the base64 text a program reading the
 * file holds in its stdio or BIO buffers. A line counts if the bytes it encodes overlap the
 * private spans of the decoded DER.
 */
static int add_pem_lines_of_file(struct ks_keyset *ks, int row, const char *text, size_t len,
                                 const unsigned char *der, size_t derlen, const struct secrets *sec)
{
    struct span sp[16];
    int n = private_spans(der, derlen, sec, sp, 16);
    const char *p = text, *end = text + len;
    int in_body = 0;
    size_t chars = 0; /* base64 characters before this line */
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl != NULL ? nl : end;
        size_t l = (size_t)(le - p);
        if (l > 0 && p[l - 1] == '\r')
            l--;
        if (l >= 5 && memcmp(p, "-----", 5) == 0) {
            if (in_body)
                break;
            in_body = 1;
        } else if (in_body && l > 0 && memchr(p, ':', l) == NULL) {
            size_t b0 = chars / 4 * 3, b1 = (chars + l) / 4 * 3;
            if (l >= KS_MIN_PATTERN && overlap(b0, b1, sp, n) >= PEM_MIN_SECRET) {
                int pi = add_pattern(ks, row, (const unsigned char *)p, l);
                if (pi < 0 || add_needle(ks, pi, 0, l) != 0)
                    return -1;
            }
            chars += l;
        }
        p = le + 1;
    }
    return 0;
}

/* PKCS#8 has version INTEGER then the AlgorithmIdentifier SEQUENCE; RSAPrivateKey/ECPrivateKey do not. */
static int der_is_pkcs8(const unsigned char *der, size_t len)
{
    size_t i = 1;
    if (len < 8 || der[0] != 0x30)
        return 0;
    if (der[i] & 0x80)
        i += 1 + (der[i] & 0x7f);
    else
        i++;
    return i + 3 < len && der[i] == 0x02 && der[i + 1] == 0x01 && der[i + 3] == 0x30;
}

static int encode_der(const EVP_PKEY *pkey, const char *structure, unsigned char **out, size_t *outlen)
{
    OSSL_ENCODER_CTX *ectx = OSSL_ENCODER_CTX_new_for_pkey(pkey, EVP_PKEY_KEYPAIR, "DER", structure, NULL);
    int ok = ectx != NULL && OSSL_ENCODER_CTX_get_num_encoders(ectx) > 0 &&
             OSSL_ENCODER_to_data(ectx, out, outlen) == 1;
    OSSL_ENCODER_CTX_free(ectx);
    ERR_clear_error();
    return ok ? 0 : -1;
}

static int read_file(const char *path, unsigned char **data, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        set_err(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    /* The file holds the key: no stdio buffer copy of it should outlive this function. */
    setvbuf(f, NULL, _IONBF, 0);
    size_t cap = 16384, n = 0;
    unsigned char *buf = OPENSSL_malloc(cap);
    while (buf != NULL) {
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (r == 0)
            break;
        if (n == cap) {
            if (cap >= (1u << 20)) {
                OPENSSL_clear_free(buf, cap);
                buf = NULL;
                fclose(f);
                set_err(err, errlen, "%s: larger than 1 MiB, not a key file", path);
                return -1;
            }
            unsigned char *nb = OPENSSL_clear_realloc(buf, cap, cap * 2);
            if (nb == NULL)
                OPENSSL_clear_free(buf, cap);
            buf = nb;
            cap *= 2;
        }
    }
    int failed = ferror(f);
    fclose(f);
    if (buf == NULL || failed) {
        if (buf != NULL)
            OPENSSL_clear_free(buf, cap);
        set_err(err, errlen, "cannot read %s", path);
        return -1;
    }
    *data = buf;
    *len = n;
    /* Callers free with OPENSSL_clear_free(*data, *len): the tail past n was never written. */
    return 0;
}

/* The DER inside a PEM file (unencrypted keys only) or the file itself when it is DER. */
static int file_der(const unsigned char *text, size_t len, unsigned char **der, long *derlen, int *encrypted)
{
    *encrypted = 0;
    if (len > 0 && text[0] == 0x30) {
        *der = OPENSSL_memdup(text, len);
        *derlen = (long)len;
        return *der != NULL ? 0 : -1;
    }
    BIO *b = BIO_new_mem_buf(text, (int)len);
    char *name = NULL, *header = NULL;
    int ok = b != NULL && PEM_read_bio(b, &name, &header, der, derlen) == 1;
    BIO_free(b);
    ERR_clear_error();
    if (ok && (strstr(name, "ENCRYPTED") != NULL || (header != NULL && header[0] != '\0'))) {
        *encrypted = 1;
        OPENSSL_clear_free(*der, (size_t)*derlen);
        *der = NULL;
    }
    OPENSSL_free(name);
    OPENSSL_free(header);
    return ok ? 0 : -1;
}

static int add_ecx(struct ks_keyset *ks, struct secrets *sec, const EVP_PKEY *pkey, const char *alg,
                   unsigned char *keep, char *err, size_t errlen)
{
    unsigned char raw[64], h[128];
    size_t len = sizeof raw;
    char name[56], tag[24];
    int rc = -1;
    EVP_MD *md = NULL;
    if (!EVP_PKEY_get_raw_private_key(pkey, raw, &len)) {
        set_ossl_err(err, errlen, "cannot read the raw private key");
        return -1;
    }
    int is_ed = alg[0] == 'E';
    int is_25519 = strstr(alg, "25519") != NULL;
    snprintf(name, sizeof name, "%s private key%s", alg, is_ed ? " (seed)" : "");
    snprintf(tag, sizeof tag, "%s-priv", is_ed ? (is_25519 ? "ed25519" : "ed448") : (is_25519 ? "x25519" : "x448"));
    if (add_component(ks, name, tag, raw, len, 1) != 0)
        goto out;
    memcpy(keep, raw, len);
    sec->bytes[sec->n] = keep;
    sec->len[sec->n++] = len;

    if (is_ed && is_25519) {
        /* RFC 8032 5.1.5: signing uses SHA-512(seed): the clamped low half is the scalar, the high half the nonce prefix. */
        md = EVP_MD_fetch(libctx, "SHA512", NULL);
        if (md == NULL || !EVP_Digest(raw, len, h, NULL, md, NULL)) {
            set_ossl_err(err, errlen, "SHA-512 failed");
            goto out;
        }
        h[0] &= 248;
        h[31] &= 127;
        h[31] |= 64;
        if (add_component(ks, "Ed25519 secret scalar (clamped)", "ed25519-scalar", h, 32, 1) != 0 ||
            add_component(ks, "Ed25519 nonce prefix", "ed25519-prefix", h + 32, 32, 1) != 0)
            goto out;
    } else if (is_ed) {
        /* RFC 8032 5.2.5: SHAKE256(seed, 114), the first 57 bytes clamped are the scalar. */
        md = EVP_MD_fetch(libctx, "SHAKE256", NULL);
        EVP_MD_CTX *c = EVP_MD_CTX_new();
        int ok = md != NULL && c != NULL && EVP_DigestInit_ex(c, md, NULL) && EVP_DigestUpdate(c, raw, len) &&
                 EVP_DigestFinalXOF(c, h, 114);
        EVP_MD_CTX_free(c);
        if (!ok) {
            set_ossl_err(err, errlen, "SHAKE256 failed");
            goto out;
        }
        h[0] &= 252;
        h[55] |= 128;
        h[56] = 0;
        if (add_component(ks, "Ed448 secret scalar (clamped)", "ed448-scalar", h, 57, 1) != 0 ||
            add_component(ks, "Ed448 nonce prefix", "ed448-prefix", h + 57, 57, 1) != 0)
            goto out;
    } else {
        /* RFC 7748 section 5: the scalar the ladder multiplies by. */
        memcpy(h, raw, len);
        if (is_25519) {
            h[0] &= 248;
            h[31] &= 127;
            h[31] |= 64;
        } else {
            h[0] &= 252;
            h[55] |= 128;
        }
        snprintf(name, sizeof name, "%s clamped scalar", alg);
        snprintf(tag, sizeof tag, "%s-clamped", is_25519 ? "x25519" : "x448");
        if (memcmp(h, raw, len) != 0 && add_component(ks, name, tag, h, len, 1) != 0)
            goto out;
    }
    rc = 0;
out:
    EVP_MD_free(md);
    OPENSSL_cleanse(raw, sizeof raw);
    OPENSSL_cleanse(h, sizeof h);
    return rc;
}

/* Factor test set-up: for each |p|, the smallest possible top bytes of a divisor of that length. */
static int setup_factor(struct ks_keyset *ks, BIGNUM *n, const size_t *plen, int nplen)
{
    struct ks_factor *f = &ks->factor;
    BIGNUM *t = BN_new();
    if (t == NULL)
        return -1;
    f->n_plen = 0;
    for (int i = 0; i < nplen; i++) {
        if (plen[i] < KS_MIN_PATTERN || plen[i] > 1024 || (i > 0 && plen[i] == plen[0]))
            continue;
        unsigned char pad[1024];
        /* n = c * q with q < 2^(8 plen) forces c > n / 2^(8 plen) = t (rounded down). */
        if (!BN_rshift(t, n, (int)(8 * plen[i])) || BN_num_bytes(t) > (int)plen[i] ||
            BN_bn2binpad(t, pad, (int)plen[i]) != (int)plen[i])
            continue;
        memcpy(f->min_top[f->n_plen], pad, 8);
        f->plen[f->n_plen++] = plen[i];
    }
    BN_free(t);
    if (f->n_plen == 0)
        return 0;
    f->n = n;
    f->row_be = add_row(ks, KS_ROW_FACTOR, "factor test (divides n), big-endian", "factor-be");
    f->row_le = add_row(ks, KS_ROW_FACTOR, "factor test (divides n), little-endian", "factor-le");
    ks->rows[f->row_be].n_patterns = ks->rows[f->row_le].n_patterns = 1;
    ks->have_factor = 1;
    return 1;
}

/* The needle index: a 2^20-bit Bloom filter (128 KiB, L2-resident) and an anchor hash table. */
#define KS_BLOOM_BITS 20
static int build_index(struct ks_keyset *ks)
{
    size_t size = 1024;
    while (size < (size_t)ks->n_needles * 4)
        size *= 2;
    ks->table = malloc(size * sizeof *ks->table);
    ks->bloom = calloc((1u << KS_BLOOM_BITS) / 64, sizeof *ks->bloom);
    if (ks->table == NULL || ks->bloom == NULL)
        return -1;
    ks->table_mask = size - 1;
    for (size_t i = 0; i < size; i++)
        ks->table[i] = -1;
    for (int i = 0; i < ks->n_needles; i++) {
        uint64_t a = ks->needles[i].anchor;
        uint64_t h = a * 0x9E3779B97F4A7C15ull;
        ks->bloom[(h >> (64 - KS_BLOOM_BITS)) / 64] |= 1ull << ((h >> (64 - KS_BLOOM_BITS)) % 64);
        size_t s = (size_t)(h >> 32) & ks->table_mask;
        while (ks->table[s] >= 0 && ks->needles[ks->table[s]].anchor != a)
            s = (s + 1) & ks->table_mask;
        if (ks->table[s] < 0) {
            ks->table[s] = i;
        } else {
            int j = ks->table[s];
            while (ks->needles[j].next >= 0)
                j = ks->needles[j].next;
            ks->needles[j].next = i;
        }
    }
    return 0;
}

static void describe(struct ks_keyset *ks, const EVP_PKEY *pkey, const char *what)
{
    snprintf(ks->description, sizeof ks->description, "%s %s, %d bits", what, EVP_PKEY_get0_type_name(pkey),
             EVP_PKEY_get_bits(pkey));
}

int ks_keyset_from_key(struct ks_keyset *ks, const char *path, const char *pass, int factor, char *err,
                       size_t errlen)
{
    unsigned char *text = NULL, *der = NULL, *pkcs8 = NULL, *trad = NULL;
    size_t textlen = 0, pkcs8len = 0, tradlen = 0;
    long derlen = 0;
    int encrypted = 0, rc = -1;
    EVP_PKEY *pkey = NULL;
    OSSL_DECODER_CTX *dctx = NULL;
    struct secrets sec = {.n = 0};
    static unsigned char keep[16][1100]; /* the DER forms of the components, wiped below */

    memset(ks, 0, sizeof *ks);
    if (open_libctx(err, errlen) != 0 || read_file(path, &text, &textlen, err, errlen) != 0)
        return -1;

    dctx = OSSL_DECODER_CTX_new_for_pkey(&pkey, NULL, NULL, NULL, EVP_PKEY_KEYPAIR, libctx, NULL);
    if (dctx == NULL || (pass != NULL && !OSSL_DECODER_CTX_set_passphrase(dctx, (const unsigned char *)pass,
                                                                          strlen(pass)))) {
        set_ossl_err(err, errlen, "cannot set up the key decoder");
        goto out;
    }
    const unsigned char *dp = text;
    size_t dl = textlen;
    if (!OSSL_DECODER_from_data(dctx, &dp, &dl) || pkey == NULL) {
        set_ossl_err(err, errlen, pass == NULL ? "not a private key in PEM or DER (encrypted? give --pass)"
                                               : "not a private key in PEM or DER, or a wrong --pass");
        goto out;
    }

    int is_rsa = EVP_PKEY_is_a(pkey, "RSA") || EVP_PKEY_is_a(pkey, "RSA-PSS");
    describe(ks, pkey, "private key");
    int pem_row = add_row(ks, KS_ROW_PEM, "PEM base64 lines", "pem");
    int p8_row = add_row(ks, KS_ROW_DER, "DER PKCS#8 (PrivateKeyInfo)", "der-pkcs8");
    int trad_row = add_row(ks, KS_ROW_DER,
                           is_rsa ? "DER traditional (RSAPrivateKey)"
                           : EVP_PKEY_is_a(pkey, "EC") ? "DER traditional (ECPrivateKey)"
                                                       : "DER traditional",
                           "der-trad");

    if (is_rsa) {
        static const struct {
            const char *param, *name, *tag;
        } c[] = {{OSSL_PKEY_PARAM_RSA_D, "RSA d", "rsa-d"},
                 {OSSL_PKEY_PARAM_RSA_FACTOR1, "RSA p", "rsa-p"},
                 {OSSL_PKEY_PARAM_RSA_FACTOR2, "RSA q", "rsa-q"},
                 {OSSL_PKEY_PARAM_RSA_EXPONENT1, "RSA dP", "rsa-dp"},
                 {OSSL_PKEY_PARAM_RSA_EXPONENT2, "RSA dQ", "rsa-dq"},
                 {OSSL_PKEY_PARAM_RSA_COEFFICIENT1, "RSA qInv", "rsa-qinv"}};
        for (size_t i = 0; i < sizeof c / sizeof c[0]; i++)
            if (add_bn_component(ks, &sec, pkey, c[i].param, c[i].name, c[i].tag, 0, keep[sec.n]) < 0) {
                set_err(err, errlen, "cannot read the RSA private components");
                goto out;
            }
        if (sec.n < 1) {
            set_err(err, errlen, "%s: the key has no private exponent", path);
            goto out;
        }
    } else if (EVP_PKEY_is_a(pkey, "EC")) {
        size_t field = ((size_t)EVP_PKEY_get_bits(pkey) + 7) / 8;
        /* The DER holds the padded scalar (RFC 5915); a BIGNUM holds the minimal one. */
        if (add_bn_component(ks, NULL, pkey, OSSL_PKEY_PARAM_PRIV_KEY, "EC private scalar", "ec-priv", 0, NULL) !=
                0 ||
            add_bn_component(ks, &sec, pkey, OSSL_PKEY_PARAM_PRIV_KEY, "EC private scalar padded", "ec-pad",
                             field, keep[sec.n]) != 0) {
            set_err(err, errlen, "cannot read the EC private scalar");
            goto out;
        }
    } else if (EVP_PKEY_is_a(pkey, "ED25519") || EVP_PKEY_is_a(pkey, "ED448") || EVP_PKEY_is_a(pkey, "X25519") ||
               EVP_PKEY_is_a(pkey, "X448")) {
        const char *alg = EVP_PKEY_is_a(pkey, "ED25519") ? "Ed25519"
                          : EVP_PKEY_is_a(pkey, "ED448") ? "Ed448"
                          : EVP_PKEY_is_a(pkey, "X25519") ? "X25519"
                                                          : "X448";
        if (add_ecx(ks, &sec, pkey, alg, keep[sec.n], err, errlen) != 0)
            goto out;
    } else {
        /* DSA, DH, SM2...: the one private number, whatever the type calls it. */
        if (add_bn_component(ks, &sec, pkey, OSSL_PKEY_PARAM_PRIV_KEY, "private key", "priv", 0, keep[sec.n]) != 0) {
            set_err(err, errlen, "%s: unsupported key type %s", path, EVP_PKEY_get0_type_name(pkey));
            goto out;
        }
    }

    if (encode_der(pkey, "PrivateKeyInfo", &pkcs8, &pkcs8len) == 0) {
        if (add_der(ks, p8_row, pkcs8, pkcs8len, &sec) != 0 || add_pem_lines_of(ks, pem_row, pkcs8, pkcs8len, &sec) != 0)
            goto nomem;
    }
    if (encode_der(pkey, "type-specific", &trad, &tradlen) == 0) {
        if (add_der(ks, trad_row, trad, tradlen, &sec) != 0 || add_pem_lines_of(ks, pem_row, trad, tradlen, &sec) != 0)
            goto nomem;
    } else {
        snprintf(ks->rows[trad_row].note, sizeof ks->rows[trad_row].note, "no traditional form for %s",
                 EVP_PKEY_get0_type_name(pkey));
    }
    /* The file's own encoding may differ from OpenSSL's re-encoding (optional fields, params). */
    if (file_der(text, textlen, &der, &derlen, &encrypted) == 0 && der != NULL) {
        int row = der_is_pkcs8(der, (size_t)derlen) ? p8_row : trad_row;
        if (add_der(ks, row, der, (size_t)derlen, &sec) != 0 ||
            add_pem_lines_of_file(ks, pem_row, (const char *)text, textlen, der, (size_t)derlen, &sec) != 0)
            goto nomem;
    }
    if (encrypted)
        snprintf(ks->rows[pem_row].note, sizeof ks->rows[pem_row].note,
                 "lines of the decrypted key; the encrypted file's are not secret");

    if (factor && is_rsa) {
        BIGNUM *n = NULL, *p = NULL, *q = NULL;
        size_t plen[2] = {0, 0};
        if (EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_N, &n) &&
            EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_FACTOR1, &p) &&
            EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_FACTOR2, &q)) {
            plen[0] = (size_t)BN_num_bytes(p);
            plen[1] = (size_t)BN_num_bytes(q);
        }
        BN_clear_free(p);
        BN_clear_free(q);
        if (n == NULL || setup_factor(ks, n, plen, 2) < 0) {
            BN_free(n);
            goto nomem;
        }
        if (!ks->have_factor)
            BN_free(n);
    }
    if (build_index(ks) != 0)
        goto nomem;
    rc = 0;
    goto out;
nomem:
    set_err(err, errlen, "out of memory while building the search patterns");
out:
    OSSL_DECODER_CTX_free(dctx);
    EVP_PKEY_free(pkey);
    if (text != NULL)
        OPENSSL_clear_free(text, textlen);
    if (der != NULL)
        OPENSSL_clear_free(der, (size_t)derlen);
    if (pkcs8 != NULL)
        OPENSSL_clear_free(pkcs8, pkcs8len);
    if (trad != NULL)
        OPENSSL_clear_free(trad, tradlen);
    OPENSSL_cleanse(keep, sizeof keep);
    ERR_clear_error();
    return rc;
}

/* A certificate (PEM or DER) or a public key: only n is known, so only the factor test runs. */
int ks_keyset_from_cert(struct ks_keyset *ks, const char *path, char *err, size_t errlen)
{
    unsigned char *text = NULL;
    size_t textlen = 0;
    EVP_PKEY *pkey = NULL;
    X509 *x = NULL;
    int rc = -1;
    BIGNUM *n = NULL;

    memset(ks, 0, sizeof *ks);
    if (open_libctx(err, errlen) != 0 || read_file(path, &text, &textlen, err, errlen) != 0)
        return -1;
    BIO *b = BIO_new_mem_buf(text, (int)textlen);
    x = X509_new_ex(libctx, NULL);
    if (b != NULL && x != NULL && PEM_read_bio_X509(b, &x, NULL, NULL) != NULL) {
        pkey = X509_get_pubkey(x);
    } else {
        const unsigned char *p = text;
        if (x != NULL && d2i_X509(&x, &p, (long)textlen) != NULL)
            pkey = X509_get_pubkey(x);
    }
    BIO_free(b);
    if (pkey == NULL) {
        /* Not a certificate: a public or private key file (selection 0: whatever it holds). */
        OSSL_DECODER_CTX *d = OSSL_DECODER_CTX_new_for_pkey(&pkey, NULL, NULL, NULL, 0, libctx, NULL);
        const unsigned char *dp = text;
        size_t dl = textlen;
        if (d == NULL || !OSSL_DECODER_from_data(d, &dp, &dl))
            pkey = NULL;
        OSSL_DECODER_CTX_free(d);
    }
    if (pkey == NULL) {
        set_ossl_err(err, errlen, "--cert: not a certificate or public key in PEM or DER");
        goto out;
    }
    if (!EVP_PKEY_is_a(pkey, "RSA") && !EVP_PKEY_is_a(pkey, "RSA-PSS")) {
        set_err(err, errlen, "--cert: a %s key; without the private key only RSA can be searched (factor test)",
                EVP_PKEY_get0_type_name(pkey));
        goto out;
    }
    if (!EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_N, &n)) {
        set_ossl_err(err, errlen, "--cert: cannot read the RSA modulus");
        goto out;
    }
    describe(ks, pkey, "certificate/public key");
    /* A balanced RSA key: |p| = |q| = half of |n|, rounded up to whole bytes. */
    size_t plen = ((size_t)(BN_num_bits(n) + 1) / 2 + 7) / 8;
    int fr = setup_factor(ks, n, &plen, 1);
    if (fr <= 0) {
        set_err(err, errlen, "--cert: the modulus is too small for a factor test");
        goto out;
    }
    n = NULL; /* owned by ks->factor */
    if (build_index(ks) != 0) {
        set_err(err, errlen, "out of memory");
        goto out;
    }
    rc = 0;
out:
    BN_free(n);
    X509_free(x);
    EVP_PKEY_free(pkey);
    OPENSSL_clear_free(text, textlen);
    ERR_clear_error();
    return rc;
}

void ks_keyset_free(struct ks_keyset *ks)
{
    for (int i = 0; i < ks->n_patterns; i++)
        OPENSSL_clear_free(ks->patterns[i].bytes, ks->patterns[i].len);
    if (ks->needles != NULL)
        OPENSSL_cleanse(ks->needles, sizeof *ks->needles * (size_t)ks->cap_needles); /* anchors are key bytes */
    free(ks->needles);
    free(ks->patterns);
    free(ks->table);
    free(ks->bloom);
    BN_free(ks->factor.n);
    memset(ks, 0, sizeof *ks);
    OSSL_PROVIDER_unload(default_prov);
    default_prov = NULL;
    OSSL_LIB_CTX_free(libctx);
    libctx = NULL;
}
