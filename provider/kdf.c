/*
 * EVP_KDF "HKDF" (RFC 5869) and "PBKDF2" (RFC 8018) with the secret input
 * sealed: the input key material / password is sealed the moment it is set
 * (the caller's buffer untouched), unsealed into guarded scratch only inside
 * derive(), and every intermediate (HKDF's PRK and T(i), PBKDF2's U and T)
 * is computed in guarded memory; only the requested output reaches the
 * caller's buffer. Salt and info are not secret and are kept as given.
 * Unqualified fetches still get the default provider, so libssl's HKDF and
 * TLS13-KDF never come here (docs/symmetric.md).
 */
#include <string.h>
#include <strings.h>

#include <openssl/core_names.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include "hmac.h"

#define MAX_INFO 1024 /* as OpenSSL 3.0's HKDF (all "info" parameters together) */
#define MAX_SALT MGP_MAX_SECRET

typedef struct kdf_ctx {
    mgp_ctx *prov;
    bool pbkdf2;
    const mgp_hmac_md *md;
    mg_enclave *secret; /* HKDF key / PBKDF2 password; an empty one is one sealed placeholder byte */
    size_t secret_len;
    unsigned char *salt;
    size_t salt_len;
    bool has_salt;
    unsigned char info[MAX_INFO];
    size_t info_len;
    int mode;          /* HKDF: EVP_KDF_HKDF_MODE_* */
    uint64_t iter;     /* PBKDF2 */
    bool lower_bounds; /* PBKDF2: SP 800-132 minimums (pkcs5 = 0), off by default as in the default provider */
} kdf_ctx;

static void reset(void *vctx)
{
    kdf_ctx *c = vctx;
    mg_enclave_free(c->secret);
    OPENSSL_free(c->salt);
    mgp_ctx *prov = c->prov;
    bool pbkdf2 = c->pbkdf2;
    memset(c, 0, sizeof *c); /* no secret here: the secret is sealed, info/salt are public */
    c->prov = prov;
    c->pbkdf2 = pbkdf2;
    c->iter = 2048; /* PKCS5_DEFAULT_ITER, the default provider's default */
}

static void *kdf_new(void *provctx, bool pbkdf2)
{
    kdf_ctx *c = OPENSSL_zalloc(sizeof *c);
    if (c == NULL)
        return NULL;
    c->prov = provctx;
    c->pbkdf2 = pbkdf2;
    reset(c);
    return c;
}

static void *hkdf_new(void *provctx) { return kdf_new(provctx, false); }
static void *pbkdf2_new(void *provctx) { return kdf_new(provctx, true); }

static void kdf_free(void *vctx)
{
    kdf_ctx *c = vctx;
    if (c == NULL)
        return;
    reset(c);
    OPENSSL_free(c);
}

/* Enclaves are immutable but not shared: a duplicate gets its own sealing of the same bytes. */
static mg_enclave *reseal(const mg_enclave *e)
{
    mg_buffer *b = mg_enclave_open(e);
    return b != NULL ? mg_buffer_seal(b) : NULL;
}

static void *kdf_dup(void *vctx)
{
    const kdf_ctx *c = vctx;
    kdf_ctx *d = OPENSSL_malloc(sizeof *d);
    if (d == NULL)
        return NULL;
    *d = *c;
    d->secret = NULL;
    d->salt = NULL;
    if ((c->secret != NULL && (d->secret = reseal(c->secret)) == NULL) ||
        (c->salt != NULL && (d->salt = OPENSSL_memdup(c->salt, c->salt_len)) == NULL)) {
        MGP_ERR(c->prov, MGP_R_SEAL_FAILED, "cannot duplicate the KDF context");
        kdf_free(d);
        return NULL;
    }
    return d;
}

static int set_secret(kdf_ctx *c, const OSSL_PARAM *p)
{
    const void *v = NULL;
    size_t n = 0;
    if (!OSSL_PARAM_get_octet_string_ptr(p, &v, &n) || (v == NULL && n > 0))
        return 0;
    if (n > MGP_MAX_SECRET) {
        MGP_ERR(c->prov, MGP_R_BAD_ARGUMENT, "secret of %zu bytes (at most %d)", n, MGP_MAX_SECRET);
        return 0;
    }
    mg_enclave *e = mgp_seal_copy(v, n);
    if (e == NULL) {
        MGP_ERR(c->prov, MGP_R_SEAL_FAILED, "%s", mg_last_error_message());
        return 0;
    }
    mg_enclave_free(c->secret);
    c->secret = e;
    c->secret_len = n;
    return 1;
}

static int set_md(kdf_ctx *c, const OSSL_PARAM *p)
{
    const char *name = NULL;
    if (!OSSL_PARAM_get_utf8_string_ptr(p, &name))
        return 0;
    const mgp_hmac_md *md = mgp_hmac_md_by_name(name);
    if (md == NULL) {
        MGP_ERR(c->prov, MGP_R_UNSUPPORTED, "digest %s: memguard offers " MGP_HMAC_DIGESTS,
                name);
        return 0;
    }
    c->md = md;
    return 1;
}

static int set_mode(kdf_ctx *c, const OSSL_PARAM *p)
{
    if (p->data_type == OSSL_PARAM_UTF8_STRING) {
        static const char *names[] = {"EXTRACT_AND_EXPAND", "EXTRACT_ONLY", "EXPAND_ONLY"};
        for (int i = 0; i < 3; i++)
            if (strcasecmp(p->data, names[i]) == 0) {
                c->mode = i; /* EVP_KDF_HKDF_MODE_* are 0, 1, 2 in this order */
                return 1;
            }
    } else {
        int m;
        if (OSSL_PARAM_get_int(p, &m) && m >= EVP_KDF_HKDF_MODE_EXTRACT_AND_EXPAND && m <= EVP_KDF_HKDF_MODE_EXPAND_ONLY) {
            c->mode = m;
            return 1;
        }
    }
    MGP_ERR(c->prov, MGP_R_BAD_ARGUMENT, "unknown HKDF mode");
    return 0;
}

static int kdf_set_params(void *vctx, const OSSL_PARAM params[])
{
    kdf_ctx *c = vctx;
    if (params == NULL)
        return 1;
    const OSSL_PARAM *p;
    if ((p = OSSL_PARAM_locate_const(params, OSSL_KDF_PARAM_DIGEST)) != NULL && !set_md(c, p))
        return 0;
    if ((p = OSSL_PARAM_locate_const(params, c->pbkdf2 ? OSSL_KDF_PARAM_PASSWORD : OSSL_KDF_PARAM_KEY)) != NULL &&
        !set_secret(c, p))
        return 0;
    if ((p = OSSL_PARAM_locate_const(params, OSSL_KDF_PARAM_SALT)) != NULL) {
        const void *v = NULL;
        size_t n = 0;
        if (!OSSL_PARAM_get_octet_string_ptr(p, &v, &n) || n > MAX_SALT) {
            MGP_ERR(c->prov, MGP_R_BAD_ARGUMENT, "bad salt");
            return 0;
        }
        unsigned char *s = OPENSSL_memdup(n > 0 ? v : "", n > 0 ? n : 1);
        if (s == NULL)
            return 0;
        OPENSSL_free(c->salt);
        c->salt = s;
        c->salt_len = n;
        c->has_salt = true;
    }
    if (!c->pbkdf2) {
        if ((p = OSSL_PARAM_locate_const(params, OSSL_KDF_PARAM_MODE)) != NULL && !set_mode(c, p))
            return 0;
        /* Several "info" parameters are concatenated, as in the default provider. */
        bool first = true;
        for (p = params; (p = OSSL_PARAM_locate_const(p, OSSL_KDF_PARAM_INFO)) != NULL; p++) {
            const void *v = NULL;
            size_t n = 0;
            if (first)
                c->info_len = 0;
            first = false;
            if (!OSSL_PARAM_get_octet_string_ptr(p, &v, &n) || n > MAX_INFO - c->info_len) {
                MGP_ERR(c->prov, MGP_R_BAD_ARGUMENT, "HKDF info longer than %d bytes", MAX_INFO);
                return 0;
            }
            if (n > 0)
                memcpy(c->info + c->info_len, v, n);
            c->info_len += n;
        }
    } else {
        if ((p = OSSL_PARAM_locate_const(params, OSSL_KDF_PARAM_ITER)) != NULL &&
            (!OSSL_PARAM_get_uint64(p, &c->iter) || c->iter == 0)) {
            MGP_ERR(c->prov, MGP_R_BAD_ARGUMENT, "PBKDF2 needs at least one iteration");
            return 0;
        }
        int pkcs5;
        if ((p = OSSL_PARAM_locate_const(params, OSSL_KDF_PARAM_PKCS5)) != NULL) {
            if (!OSSL_PARAM_get_int(p, &pkcs5))
                return 0;
            c->lower_bounds = pkcs5 == 0;
        }
    }
    return 1;
}

static const OSSL_PARAM hkdf_settable_list[] = {
    OSSL_PARAM_utf8_string(OSSL_KDF_PARAM_MODE, NULL, 0),
    OSSL_PARAM_int(OSSL_KDF_PARAM_MODE, NULL),
    OSSL_PARAM_utf8_string(OSSL_KDF_PARAM_PROPERTIES, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_KDF_PARAM_DIGEST, NULL, 0),
    OSSL_PARAM_octet_string(OSSL_KDF_PARAM_KEY, NULL, 0),
    OSSL_PARAM_octet_string(OSSL_KDF_PARAM_SALT, NULL, 0),
    OSSL_PARAM_octet_string(OSSL_KDF_PARAM_INFO, NULL, 0),
    OSSL_PARAM_END,
};

static const OSSL_PARAM pbkdf2_settable_list[] = {
    OSSL_PARAM_utf8_string(OSSL_KDF_PARAM_PROPERTIES, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_KDF_PARAM_DIGEST, NULL, 0),
    OSSL_PARAM_octet_string(OSSL_KDF_PARAM_PASSWORD, NULL, 0),
    OSSL_PARAM_octet_string(OSSL_KDF_PARAM_SALT, NULL, 0),
    OSSL_PARAM_uint64(OSSL_KDF_PARAM_ITER, NULL),
    OSSL_PARAM_int(OSSL_KDF_PARAM_PKCS5, NULL),
    OSSL_PARAM_END,
};

static const OSSL_PARAM *hkdf_settable(void *vctx, void *provctx)
{
    (void)vctx;
    (void)provctx;
    return hkdf_settable_list;
}

static const OSSL_PARAM *pbkdf2_settable(void *vctx, void *provctx)
{
    (void)vctx;
    (void)provctx;
    return pbkdf2_settable_list;
}

static const OSSL_PARAM gettable_list[] = {
    OSSL_PARAM_size_t(OSSL_KDF_PARAM_SIZE, NULL),
    OSSL_PARAM_END,
};

static const OSSL_PARAM *kdf_gettable(void *vctx, void *provctx)
{
    (void)vctx;
    (void)provctx;
    return gettable_list;
}

static int kdf_get_params(void *vctx, OSSL_PARAM params[])
{
    const kdf_ctx *c = vctx;
    OSSL_PARAM *p = OSSL_PARAM_locate(params, OSSL_KDF_PARAM_SIZE);
    if (p == NULL)
        return 1;
    if (!c->pbkdf2 && c->mode == EVP_KDF_HKDF_MODE_EXTRACT_ONLY)
        return c->md != NULL && OSSL_PARAM_set_size_t(p, mgp_hmac_md_size(c->md));
    return OSSL_PARAM_set_size_t(p, SIZE_MAX);
}

/* ---- derivation, inside mg_enclave_with_workspace: secret and work are guarded ---- */

struct job {
    kdf_ctx *c;
    mgp_hmac *h;
    unsigned char *out;
    size_t outlen;
};

#define WORK 128 /* two digest outputs (PRK and T, or U and T), up to SHA-512 */

static void hkdf_expand(struct job *j, const unsigned char *prk, size_t prklen, unsigned char *t)
{
    const mgp_hmac_md *md = j->c->md;
    size_t hl = mgp_hmac_md_size(md), done = 0;
    mgp_hmac_set_key(j->h, md, prk, prklen);
    for (unsigned char i = 1; done < j->outlen; i++) {
        if (i > 1) {
            mgp_hmac_restart(j->h);
            mgp_hmac_update(j->h, t, hl);
        }
        mgp_hmac_update(j->h, j->c->info, j->c->info_len);
        mgp_hmac_update(j->h, &i, 1);
        mgp_hmac_final(j->h, t);
        size_t n = j->outlen - done < hl ? j->outlen - done : hl;
        memcpy(j->out + done, t, n);
        done += n;
    }
}

static int hkdf_job(const void *secret, size_t n, unsigned char *work, void *arg)
{
    struct job *j = arg;
    const mgp_hmac_md *md = j->c->md;
    size_t hl = mgp_hmac_md_size(md), len = j->c->secret_len;
    (void)n;
    unsigned char *prk = work, *t = work + 64;
    if (j->c->mode == EVP_KDF_HKDF_MODE_EXPAND_ONLY) {
        hkdf_expand(j, secret, len, t);
        return 1;
    }
    /* Extract: PRK = HMAC(salt, IKM); no salt means HashLen zero bytes, which HMAC pads the same as none. */
    mgp_hmac_set_key(j->h, md, j->c->salt, j->c->has_salt ? j->c->salt_len : 0);
    mgp_hmac_update(j->h, secret, len);
    if (j->c->mode == EVP_KDF_HKDF_MODE_EXTRACT_ONLY) {
        mgp_hmac_final(j->h, j->out);
        return 1;
    }
    mgp_hmac_final(j->h, prk);
    hkdf_expand(j, prk, hl, t);
    return 1;
}

static int pbkdf2_job(const void *secret, size_t n, unsigned char *work, void *arg)
{
    struct job *j = arg;
    const mgp_hmac_md *md = j->c->md;
    size_t hl = mgp_hmac_md_size(md);
    (void)n;
    unsigned char *u = work, *t = work + 64;
    mgp_hmac_set_key(j->h, md, secret, j->c->secret_len);
    size_t done = 0;
    for (uint32_t i = 1; done < j->outlen; i++) {
        unsigned char be[4] = {(unsigned char)(i >> 24), (unsigned char)(i >> 16), (unsigned char)(i >> 8),
                               (unsigned char)i};
        mgp_hmac_restart(j->h);
        mgp_hmac_update(j->h, j->c->salt, j->c->salt_len);
        mgp_hmac_update(j->h, be, 4);
        mgp_hmac_final(j->h, u);
        memcpy(t, u, hl);
        for (uint64_t k = 1; k < j->c->iter; k++) {
            mgp_hmac_restart(j->h);
            mgp_hmac_update(j->h, u, hl);
            mgp_hmac_final(j->h, u);
            for (size_t b = 0; b < hl; b++)
                t[b] ^= u[b];
        }
        size_t m = j->outlen - done < hl ? j->outlen - done : hl;
        memcpy(j->out + done, t, m);
        done += m;
    }
    return 1;
}

static int kdf_derive(void *vctx, unsigned char *key, size_t keylen, const OSSL_PARAM params[])
{
    kdf_ctx *c = vctx;
    if (!kdf_set_params(c, params))
        return 0;
    if (c->md == NULL) {
        MGP_ERR(c->prov, MGP_R_BAD_ARGUMENT, "missing digest");
        return 0;
    }
    if (c->secret == NULL) {
        MGP_ERR(c->prov, MGP_R_NO_KEY, "%s", c->pbkdf2 ? "missing password" : "missing key");
        return 0;
    }
    size_t hl = mgp_hmac_md_size(c->md);
    if (key == NULL || keylen == 0) {
        MGP_ERR(c->prov, MGP_R_BAD_ARGUMENT, "no output buffer");
        return 0;
    }
    if (c->pbkdf2) {
        if (!c->has_salt) {
            MGP_ERR(c->prov, MGP_R_BAD_ARGUMENT, "missing salt");
            return 0;
        }
        if ((uint64_t)keylen > (uint64_t)0xffffffffu * hl ||
            (c->lower_bounds && (keylen < 14 || c->salt_len < 16 || c->iter < 1000))) {
            MGP_ERR(c->prov, MGP_R_BAD_ARGUMENT, "PBKDF2 output, salt or iteration count out of range");
            return 0;
        }
    } else if (c->mode == EVP_KDF_HKDF_MODE_EXTRACT_ONLY ? keylen != hl : keylen > 255 * hl) {
        MGP_ERR(c->prov, MGP_R_BAD_ARGUMENT, "HKDF output of %zu bytes (%s %zu)", keylen,
                c->mode == EVP_KDF_HKDF_MODE_EXTRACT_ONLY ? "extract gives exactly" : "at most", c->mode ==
                EVP_KDF_HKDF_MODE_EXTRACT_ONLY ? hl : 255 * hl);
        return 0;
    }
    struct job j = {c, mgp_hmac_new(), key, keylen};
    if (j.h == NULL) {
        MGP_ERR(c->prov, MGP_R_OPERATION_FAILED, "no guarded memory for the MAC state: %s", mg_last_error_message());
        return 0;
    }
    int rc = mg_enclave_with_workspace(c->secret, WORK, c->pbkdf2 ? pbkdf2_job : hkdf_job, &j);
    mgp_hmac_free(j.h);
    if (rc != 1) {
        MGP_ERR(c->prov, MGP_R_UNSEAL_FAILED, "%s", mg_strerror(rc));
        return 0;
    }
    return 1;
}

#define FN(id, f) {id, (void (*)(void))(f)}

const OSSL_DISPATCH mgp_hkdf_kdf[] = {
    FN(OSSL_FUNC_KDF_NEWCTX, hkdf_new),
    FN(OSSL_FUNC_KDF_FREECTX, kdf_free),
    FN(OSSL_FUNC_KDF_DUPCTX, kdf_dup),
    FN(OSSL_FUNC_KDF_RESET, reset),
    FN(OSSL_FUNC_KDF_DERIVE, kdf_derive),
    FN(OSSL_FUNC_KDF_SETTABLE_CTX_PARAMS, hkdf_settable),
    FN(OSSL_FUNC_KDF_SET_CTX_PARAMS, kdf_set_params),
    FN(OSSL_FUNC_KDF_GETTABLE_CTX_PARAMS, kdf_gettable),
    FN(OSSL_FUNC_KDF_GET_CTX_PARAMS, kdf_get_params),
    {0, NULL},
};

const OSSL_DISPATCH mgp_pbkdf2_kdf[] = {
    FN(OSSL_FUNC_KDF_NEWCTX, pbkdf2_new),
    FN(OSSL_FUNC_KDF_FREECTX, kdf_free),
    FN(OSSL_FUNC_KDF_DUPCTX, kdf_dup),
    FN(OSSL_FUNC_KDF_RESET, reset),
    FN(OSSL_FUNC_KDF_DERIVE, kdf_derive),
    FN(OSSL_FUNC_KDF_SETTABLE_CTX_PARAMS, pbkdf2_settable),
    FN(OSSL_FUNC_KDF_SET_CTX_PARAMS, kdf_set_params),
    FN(OSSL_FUNC_KDF_GETTABLE_CTX_PARAMS, kdf_gettable),
    FN(OSSL_FUNC_KDF_GET_CTX_PARAMS, kdf_get_params),
    {0, NULL},
};
