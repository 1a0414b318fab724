/*
 * memguard's own Keccak: EVP_MAC "KMAC-128" and "KMAC-256" (NIST SP 800-185), and the residue of
 * HMAC over SHA-3, which runs on it (its known answers and equivalence are in test_mac.c):
 *   - the sponge (provider/keccak.c, compiled in here too) equals OpenSSL's SHA3-256, SHAKE128 and
 *     SHAKE256 for every input length around the block edges, random splits and squeeze lengths;
 *     left_encode/right_encode give SP 800-185's encodings;
 *   - NIST's KMAC samples (and OpenSSL's ACVP long-customisation case) through memguard and default,
 *     with the xof and size parameters and with EVP_MAC_finalXOF;
 *   - identical to the default provider for random keys (4..512 bytes), customisation strings
 *     (0..512), output sizes, XOF mode and messages of 0..64 KiB in random updates;
 *   - dupctx mid-stream; re-init with a NULL key; key and customisation string changed between
 *     inits, exactly as the default provider takes them; contexts in several threads;
 *   - bad input gives clean errors with a memguard reason;
 *   - residue: the key, the keyed Keccak state and a running state are never in memory outside
 *     guarded mappings while contexts live (not even in the stack the permutation spilled into), and
 *     nowhere once they are freed (control: the default provider's KMAC keeps the key in the heap);
 *     likewise HMAC-SHA3-256's inner, outer and running Keccak states (control: the default
 *     provider's HMAC-SHA3 keeps its keyed state in the heap).
 * Run with OPENSSL_CONF pointing at a configuration that loads memguard after default.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/provider.h>
#include <openssl/rand.h>

#include <memguard/memguard.h>

#include "../core/harness.h"
#include "check.h"
#include "keccak.h"
#include "memscan.h"

#define MG "provider=memguard"
#define DF "provider=default"

static size_t rnd(size_t n) /* uniform enough in 0..n-1 for test shapes */
{
    unsigned r;
    RAND_bytes((unsigned char *)&r, sizeof r);
    return n == 0 ? 0 : r % n;
}

/* ---- the sponge itself, against OpenSSL's SHA-3 and SHAKE ---- */

/* Our sponge over msg (in random pieces when split), padded with suffix, squeezed in random pieces. */
static void sponge(size_t rate, unsigned char suffix, const unsigned char *msg, size_t len, bool split,
                   unsigned char *out, size_t outlen)
{
    mgp_keccak s;
    size_t pos = 0;
    memset(&s, 0, sizeof s);
    for (size_t at = 0; at < len;) {
        size_t n = split ? rnd(2 * rate) : len - at;
        n = n < len - at ? n : len - at;
        mgp_keccak_absorb(&s, rate, &pos, msg + at, n);
        at += n;
    }
    mgp_keccak_pad(&s, rate, &pos, suffix);
    for (size_t at = 0; at < outlen;) {
        size_t n = split ? 1 + rnd(2 * rate) : outlen - at;
        n = n < outlen - at ? n : outlen - at;
        mgp_keccak_squeeze(&s, rate, &pos, out + at, n);
        at += n;
    }
}

static bool openssl_digest(const char *name, const unsigned char *msg, size_t len, unsigned char *out, size_t outlen)
{
    EVP_MD *md = EVP_MD_fetch(NULL, name, DF);
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    bool ok = md != NULL && c != NULL && EVP_DigestInit_ex2(c, md, NULL) == 1 && EVP_DigestUpdate(c, msg, len) == 1;
    if (ok && EVP_MD_get_flags(md) & EVP_MD_FLAG_XOF)
        ok = EVP_DigestFinalXOF(c, out, outlen) == 1;
    else
        ok = ok && EVP_DigestFinal_ex(c, out, NULL) == 1 && (size_t)EVP_MD_get_size(md) == outlen;
    EVP_MD_CTX_free(c);
    EVP_MD_free(md);
    return ok;
}

static void test_sponge_matches_sha3_and_shake(void)
{
    static const struct {
        const char *name;
        size_t rate;
        unsigned char suffix;
        bool xof;
    } fns[] = {
        {"SHA3-256", 136, 0x06, false},
        {"SHAKE128", 168, 0x1f, true},
        {"SHAKE256", 136, 0x1f, true},
    };
    static unsigned char msg[3 * 168 + 9], a[700], b[700];
    RAND_bytes(msg, sizeof msg);
    for (size_t f = 0; f < sizeof fns / sizeof fns[0]; f++) {
        for (size_t len = 0; len <= sizeof msg; len++) {
            size_t outlen = fns[f].xof ? 1 + rnd(sizeof a) : 32;
            bool split = len % 2 == 1;
            sponge(fns[f].rate, fns[f].suffix, msg, len, split, a, outlen);
            CHECK(openssl_digest(fns[f].name, msg, len, b, outlen) && memcmp(a, b, outlen) == 0,
                  "%s of %zu bytes (%s), %zu bytes out", fns[f].name, len, split ? "split" : "whole", outlen);
        }
    }
}

static void test_left_and_right_encode(void)
{
    static const struct {
        uint64_t x;
        const char *left, *right;
    } v[] = {
        {0, "0100", "0001"},
        {1, "0101", "0101"},
        {255, "01ff", "ff01"},
        {256, "020100", "010002"},
        {168, "01a8", "a801"},
        {4096, "021000", "100002"},
        {UINT64_C(0xffffffffffffffff), "08ffffffffffffffff", "ffffffffffffffff08"},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        unsigned char e[9], want[9];
        size_t n = mgp_left_encode(e, v[i].x), wn = unhex(v[i].left, want, sizeof want);
        CHECK(n == wn && memcmp(e, want, n) == 0, "left_encode(%llu)", (unsigned long long)v[i].x);
        n = mgp_right_encode(e, v[i].x), wn = unhex(v[i].right, want, sizeof want);
        CHECK(n == wn && memcmp(e, want, n) == 0, "right_encode(%llu)", (unsigned long long)v[i].x);
    }
}

/* ---- KMAC through EVP_MAC ---- */

typedef struct kmac_args {
    const char *alg; /* "KMAC128", "KMAC-256", ... */
    const unsigned char *key;
    size_t keylen;
    const unsigned char *custom; /* NULL: not set */
    size_t customlen;
    size_t size; /* 0: the default size */
    int xof;     /* 0, 1, or 2: EVP_MAC_finalXOF */
} kmac_args;

/* KMAC over msg, in random update sizes when split. The output length on success, 0 on failure. */
static size_t kmac(const char *propq, const kmac_args *a, const unsigned char *msg, size_t len, bool split,
                   unsigned char *out, size_t outsize)
{
    EVP_MAC *m = EVP_MAC_fetch(NULL, a->alg, propq);
    EVP_MAC_CTX *c = m != NULL ? EVP_MAC_CTX_new(m) : NULL;
    OSSL_PARAM p[4], *q = p;
    int xof = a->xof == 1;
    size_t size = a->size;
    if (a->custom != NULL)
        *q++ = OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_CUSTOM, (void *)(uintptr_t)a->custom, a->customlen);
    if (size != 0)
        *q++ = OSSL_PARAM_construct_size_t(OSSL_MAC_PARAM_SIZE, &size);
    if (xof)
        *q++ = OSSL_PARAM_construct_int(OSSL_MAC_PARAM_XOF, &xof);
    *q = OSSL_PARAM_construct_end();
    bool ok = c != NULL && EVP_MAC_init(c, a->key, a->keylen, p) == 1;
    if (ok && strcmp(propq, MG) == 0)
        ok = strcmp(OSSL_PROVIDER_get0_name(EVP_MAC_get0_provider(m)), "memguard") == 0;
    for (size_t at = 0; ok && at < len;) {
        size_t n = len - at;
        if (split) {
            size_t r = rnd(((size_t)1 << rnd(12)) + 1);
            n = r < n ? r : n;
        }
        ok = EVP_MAC_update(c, msg + at, n) == 1;
        at += n;
    }
    size_t ol = ok ? EVP_MAC_CTX_get_mac_size(c) : 0;
    if (ok && a->xof == 2)
        ok = EVP_MAC_finalXOF(c, out, outsize) == 1;
    else if (ok)
        ok = EVP_MAC_final(c, out, &ol, outsize) == 1;
    EVP_MAC_CTX_free(c);
    EVP_MAC_free(m);
    return ok ? ol : 0;
}

static const char nist_key[] = "404142434445464748494A4B4C4D4E4F505152535455565758595A5B5C5D5E5F";
static const char tagged[] = "My Tagged Application";

/* SP 800-185 samples (KMAC_samples.pdf, KMACXOF_samples.pdf), as in OpenSSL's evpmac_common.txt. */
static const struct {
    const char *alg;
    size_t msglen; /* the message is 00 01 02 ... */
    const char *custom;
    int xof;
    const char *tag;
} nist[] = {
    {"KMAC128", 4, "", 0, "E5780B0D3EA6F7D3A429C5706AA43A00FADBD7D49628839E3187243F456EE14E"},
    {"KMAC128", 4, tagged, 0, "3B1FBA963CD8B0B59E8C1A6D71888B7143651AF8BA0A7070C0979E2811324AA5"},
    {"KMAC128", 200, tagged, 0, "1F5B4E6CCA02209E0DCB5CA635B89A15E271ECC760071DFD805FAA38F9729230"},
    {"KMAC256", 4, tagged, 0,
     "20C570C31346F703C9AC36C61C03CB64C3970D0CFC787E9B79599D273A68D2F7F69D4CC3DE9D104A351689F27CF6F595"
     "1F0103F33F4F24871024D9C27773A8DD"},
    {"KMAC256", 200, "", 0,
     "75358CF39E41494E949707927CEE0AF20A3FF553904C86B08F21CC414BCFD691589D27CF5E15369CBBFF8B9A4C2EB178"
     "00855D0235FF635DA82533EC6B759B69"},
    {"KMAC256", 200, tagged, 0,
     "B58618F71F92E1D56C1B8C55DDD7CD188B97B4CA4D99831EB2699A837DA2E4D970FBACFDE50033AEA585F1A2708510C3"
     "2D07880801BD182898FE476876FC8965"},
    {"KMAC128", 4, "", 1, "CD83740BBD92CCC8CF032B1481A0F4460E7CA9DD12B08A0C4031178BACD6EC35"},
    {"KMAC128", 4, tagged, 1, "31A44527B4ED9F5C6101D11DE6D26F0620AA5C341DEF41299657FE9DF1A3B16C"},
    {"KMAC128", 200, tagged, 1, "47026C7CD793084AA0283C253EF658490C0DB61438B8326FE9BDDF281B83AE0F"},
    {"KMAC256", 4, tagged, 1,
     "1755133F1534752AAD0748F2C706FB5C784512CAB835CD15676B16C0C6647FA96FAA7AF634A0BF8FF6DF39374FA00FAD"
     "9A39E322A7C92065A64EB1FB0801EB2B"},
    {"KMAC256", 200, "", 1,
     "FF7B171F1E8A2B24683EED37830EE797538BA8DC563F6DA1E667391A75EDC02CA633079F81CE12A25F45615EC8997203"
     "1D18337331D24CEB8F8CA8E6A19FD98B"},
    {"KMAC256", 200, tagged, 1,
     "D5BE731C954ED7732846BB59DBE3A8E30F83E77A4BFF4459F2F1C2B4ECEBB8CE67BA01C62E8AB8578D2D499BD1BB2767"
     "68781190020A306A97DE281DCC30305D"},
};

static void test_nist_samples(void)
{
    unsigned char key[32], msg[200], tag[64], out[64];
    CU_ASSERT_FATAL(unhex(nist_key, key, sizeof key) == 32);
    for (size_t i = 0; i < sizeof msg; i++)
        msg[i] = (unsigned char)i;
    for (size_t i = 0; i < sizeof nist / sizeof nist[0]; i++) {
        size_t tl = unhex(nist[i].tag, tag, sizeof tag);
        /* "" given explicitly and "" by default must agree: the default custom string is empty */
        bool set = nist[i].custom[0] != '\0' || i % 2 == 0;
        /* xof: 1 by parameter, 2 by EVP_MAC_finalXOF */
        for (int via = 1; via <= (nist[i].xof ? 2 : 1); via++) {
            kmac_args a = {nist[i].alg, key, 32, set ? (const unsigned char *)nist[i].custom : NULL,
                           strlen(nist[i].custom), tl, nist[i].xof ? via : 0};
            for (int split = 0; split < 2; split++) {
                CHECK(kmac(MG, &a, msg, nist[i].msglen, split, out, sizeof out) == tl && memcmp(out, tag, tl) == 0,
                      "memguard: NIST sample %zu (%s, xof %d)", i + 1, nist[i].alg, a.xof);
                CHECK(kmac(DF, &a, msg, nist[i].msglen, split, out, sizeof out) == tl && memcmp(out, tag, tl) == 0,
                      "default: NIST sample %zu (the vector itself)", i + 1);
            }
        }
    }
    /* OpenSSL's other names (and the OIDs) fetch memguard's code too. */
    kmac_args a = {"KMAC-128", key, 32, NULL, 0, 0, 0};
    unhex(nist[0].tag, tag, sizeof tag);
    CU_ASSERT(kmac(MG, &a, msg, 4, false, out, sizeof out) == 32 && memcmp(out, tag, 32) == 0);
    a.alg = "2.16.840.1.101.3.4.2.20", a.custom = (const unsigned char *)tagged, a.customlen = strlen(tagged);
    unhex(nist[3].tag, tag, sizeof tag);
    CU_ASSERT(kmac(MG, &a, msg, 4, false, out, sizeof out) == 64 && memcmp(out, tag, 64) == 0);
}

/* OpenSSL's ACVP case: a 96-byte key, a long customisation string, 51 bytes of XOF output. */
static void test_acvp_long_customisation(void)
{
    static const char custom[] = "]J&/.?L/c&}p(b!X|?>i7!]CAH6P@1<R'6|uOu2Vu^kCM!$ Een^pn&Zlale){mQhKjqe,)'-fsX6:u@D6+ZA^b7"
                                 "0A)n)LMxo:Y!62;:[hP*yLERjL@rq30+iRaD#9|";
    unsigned char key[96], msg[64], tag[51], out[64];
    size_t kl = unhex("9743DBF93102FAF11227B154B8ACD16CF142671F7AA16C559A393A38B4CEF461ED29A6A328D7379C99718790E38B"
                      "54CA25E9E831CBEA463EE704D1689F94629AB795DF0C77F756DA743309C0E054596BA2D9CC1768ACF7CD351D9A7EB1"
                      "ABD0A3",
                      key, sizeof key);
    size_t ml = unhex("BA63AC9C711F143CCE7FF92D0322649D1BE437D805FD225C0A2879A008373EC3BCCDB09971FAD2BCE5F4347AF7E5"
                      "238EF01A90ED34193D6AFC1D",
                      msg, sizeof msg);
    size_t tl = unhex("4057EFD76A63049418AFC54559589821322B6029808A3BCAE4D49E961F909F5F667ACAD56BBCFB8033DCB4CC10AF"
                      "1B53F014B8",
                      tag, sizeof tag);
    CU_ASSERT_FATAL(kl == 96 && ml == 58 && tl == 51);
    kmac_args a = {"KMAC256", key, kl, (const unsigned char *)custom, strlen(custom), tl, 1};
    CU_ASSERT(kmac(MG, &a, msg, ml, false, out, sizeof out) == tl && memcmp(out, tag, tl) == 0);
    CU_ASSERT(kmac(DF, &a, msg, ml, false, out, sizeof out) == tl && memcmp(out, tag, tl) == 0);
}

/* An application that does not ask for memguard keeps the default provider's KMAC (docs/symmetric.md). */
static void test_unqualified_fetch_stays_on_default(void)
{
    const char *names[] = {"KMAC128", "KMAC-128", "KMAC256", "KMAC-256"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        EVP_MAC *any = EVP_MAC_fetch(NULL, names[i], NULL), *ours = EVP_MAC_fetch(NULL, names[i], MG);
        CHECK(any != NULL && strcmp(OSSL_PROVIDER_get0_name(EVP_MAC_get0_provider(any)), "default") == 0,
              "unqualified %s comes from the default provider", names[i]);
        CHECK(ours != NULL && strcmp(OSSL_PROVIDER_get0_name(EVP_MAC_get0_provider(ours)), "memguard") == 0,
              "%s with " MG " comes from memguard", names[i]);
        EVP_MAC_free(any);
        EVP_MAC_free(ours);
    }
}

/* ---- equivalence ---- */

static void test_kmac_matches_default_for_random_parameters(void)
{
    static unsigned char msg[64 * 1024 + 1], key[512], custom[512], a[4096], b[4096];
    const char *algs[] = {"KMAC128", "KMAC256"};
    for (int i = 0; i < 300; i++) {
        /* every message length around the block edges first, then random ones up to 64 KiB */
        size_t len = i < 180 ? (size_t)i * 2 : i == 180 ? 64 * 1024 : rnd(64 * 1024 + 1);
        kmac_args args = {
            .alg = algs[i % 2],
            .key = key,
            .keylen = i % 7 == 0 ? 4 : i % 11 == 0 ? 512 : 4 + rnd(509),
            .custom = i % 3 == 0 ? NULL : custom,
            .customlen = i % 13 == 0 ? 512 : rnd(200),
            .size = i % 17 == 0 ? 1 + rnd(sizeof a) : i % 5 == 0 ? 0 : 1 + rnd(200),
            .xof = (int)rnd(3),
        };
        RAND_bytes(key, sizeof key);
        RAND_bytes(custom, sizeof custom);
        RAND_bytes(msg, (int)len + 1);
        size_t na = kmac(MG, &args, msg, len, true, a, sizeof a);
        size_t nb = kmac(DF, &args, msg, len, i % 2 == 0, b, sizeof b);
        CHECK(na > 0 && na == nb && memcmp(a, b, na) == 0,
              "%s: key %zu, custom %zu, size %zu, xof %d, message %zu bytes", args.alg, args.keylen,
              args.custom != NULL ? args.customlen : 0, args.size, args.xof, len);
    }
}

/*
 * bytepad's edges: customisation strings and keys whose encodings end exactly at a block boundary
 * (KMAC-128: S of 157 bytes, K of 163; KMAC-256: 125 and 131) and one byte either side, so that
 * the padding is empty, one byte, or a whole block less one.
 */
static void test_block_boundaries_of_key_and_custom(void)
{
    static const struct {
        const char *alg;
        size_t custom, key;
    } edges[] = {{"KMAC128", 157, 163}, {"KMAC256", 125, 131}};
    unsigned char key[200], custom[200], msg[300], a[64], b[64];
    RAND_bytes(key, sizeof key);
    RAND_bytes(custom, sizeof custom);
    RAND_bytes(msg, sizeof msg);
    for (size_t e = 0; e < sizeof edges / sizeof edges[0]; e++)
        for (int dc = -1; dc <= 1; dc++)
            for (int dk = -1; dk <= 1; dk++) {
                kmac_args args = {edges[e].alg, key, edges[e].key + (size_t)(long)dk, custom,
                                  edges[e].custom + (size_t)(long)dc, 0, 0};
                size_t na = kmac(MG, &args, msg, sizeof msg, true, a, sizeof a);
                size_t nb = kmac(DF, &args, msg, sizeof msg, false, b, sizeof b);
                CHECK(na > 0 && na == nb && memcmp(a, b, na) == 0, "%s: custom %zu, key %zu bytes", args.alg,
                      args.customlen, args.keylen);
            }
}

/* ---- contexts ---- */

static EVP_MAC_CTX *new_ctx(const char *alg, const char *propq)
{
    EVP_MAC *m = EVP_MAC_fetch(NULL, alg, propq);
    EVP_MAC_CTX *c = m != NULL ? EVP_MAC_CTX_new(m) : NULL;
    EVP_MAC_free(m);
    return c;
}

static void test_dupctx_mid_stream_and_reinit(void)
{
    unsigned char key[32], msg[700], t1[64], t2[64], want1[64], want2[64];
    size_t ol;
    RAND_bytes(key, sizeof key);
    RAND_bytes(msg, sizeof msg);
    kmac_args a = {"KMAC256", key, 32, (const unsigned char *)"ctx", 3, 0, 0};
    CU_ASSERT_FATAL(kmac(DF, &a, msg, 700, false, want1, 64) == 64);
    CU_ASSERT_FATAL(kmac(DF, &a, msg, 300, false, want2, 64) == 64);
    EVP_MAC_CTX *c = new_ctx("KMAC256", MG);
    OSSL_PARAM p[] = {OSSL_PARAM_octet_string(OSSL_MAC_PARAM_CUSTOM, "ctx", 3), OSSL_PARAM_END};
    CU_ASSERT_FATAL(c != NULL && EVP_MAC_init(c, key, 32, p) == 1);
    CU_ASSERT(EVP_MAC_update(c, msg, 201) == 1); /* mid-block, mid-lane */
    EVP_MAC_CTX *d = EVP_MAC_CTX_dup(c);
    CU_ASSERT_FATAL(d != NULL);
    CU_ASSERT(EVP_MAC_update(c, msg + 201, 499) == 1 && EVP_MAC_final(c, t1, &ol, 64) == 1);
    CU_ASSERT(EVP_MAC_update(d, msg + 201, 99) == 1 && EVP_MAC_final(d, t2, &ol, 64) == 1);
    CU_ASSERT(memcmp(t1, want1, 64) == 0);
    CU_ASSERT(memcmp(t2, want2, 64) == 0);
    EVP_MAC_CTX_free(d);
    /* A NULL key re-initialises with the same key and customisation string. */
    for (int i = 0; i < 3; i++)
        CU_ASSERT(EVP_MAC_init(c, NULL, 0, NULL) == 1 && EVP_MAC_update(c, msg, 300) == 1 &&
                  EVP_MAC_final(c, t1, &ol, 64) == 1 && memcmp(t1, want2, 64) == 0);
    /* The size may change after init, until final. */
    size_t sz = 20;
    OSSL_PARAM ps[] = {OSSL_PARAM_size_t(OSSL_MAC_PARAM_SIZE, &sz), OSSL_PARAM_END};
    kmac_args a20 = a;
    a20.size = 20;
    CU_ASSERT_FATAL(kmac(DF, &a20, msg, 300, false, want2, 64) == 20);
    CU_ASSERT(EVP_MAC_init(c, NULL, 0, NULL) == 1 && EVP_MAC_update(c, msg, 300) == 1 &&
              EVP_MAC_CTX_set_params(c, ps) == 1 && EVP_MAC_CTX_get_mac_size(c) == 20 &&
              EVP_MAC_final(c, t1, &ol, 64) == 1 && ol == 20 && memcmp(t1, want2, 20) == 0);
    EVP_MAC_CTX_free(c);
}

/* Key and customisation string set by parameters between inits: both providers must take them alike. */
static void test_parameters_between_inits_match_default(void)
{
    unsigned char k1[40], k2[24], msg[100], a[96], b[96];
    RAND_bytes(k1, sizeof k1);
    RAND_bytes(k2, sizeof k2);
    RAND_bytes(msg, sizeof msg);
    const char *props[] = {MG, DF};
    unsigned char *outs[] = {a, b};
    for (int i = 0; i < 2; i++) {
        EVP_MAC_CTX *c = new_ctx("KMAC128", props[i]);
        unsigned char *o = outs[i];
        size_t ol;
        OSSL_PARAM cust[] = {OSSL_PARAM_octet_string(OSSL_MAC_PARAM_CUSTOM, "second", 6), OSSL_PARAM_END};
        OSSL_PARAM key[] = {OSSL_PARAM_octet_string(OSSL_MAC_PARAM_KEY, k2, sizeof k2), OSSL_PARAM_END};
        OSSL_PARAM gets[] = {OSSL_PARAM_size_t(OSSL_MAC_PARAM_SIZE, NULL),
                             OSSL_PARAM_size_t(OSSL_MAC_PARAM_BLOCK_SIZE, NULL), OSSL_PARAM_END};
        size_t size = 0, block = 0;
        gets[0].data = &size, gets[1].data = &block;
        CU_ASSERT_FATAL(c != NULL);
        CU_ASSERT(EVP_MAC_CTX_get_params(c, gets) == 1 && size == 32 && block == 168);
        CU_ASSERT(EVP_MAC_init(c, k1, sizeof k1, NULL) == 1 && EVP_MAC_update(c, msg, 50) == 1 &&
                  EVP_MAC_final(c, o, &ol, 32) == 1);
        /* new custom, same key: effective at the next init */
        CU_ASSERT(EVP_MAC_CTX_set_params(c, cust) == 1 && EVP_MAC_init(c, NULL, 0, NULL) == 1 &&
                  EVP_MAC_update(c, msg, 100) == 1 && EVP_MAC_final(c, o + 32, &ol, 32) == 1);
        /* a key by parameter between inits, custom kept */
        CU_ASSERT(EVP_MAC_CTX_set_params(c, key) == 1 && EVP_MAC_init(c, NULL, 0, NULL) == 1 &&
                  EVP_MAC_update(c, msg, 7) == 1 && EVP_MAC_final(c, o + 64, &ol, 32) == 1);
        EVP_MAC_CTX_free(c);
    }
    CU_ASSERT(memcmp(a, b, 96) == 0);
    /* and those are the plain KMACs of the settings at each init */
    kmac_args x = {"KMAC128", k1, sizeof k1, (const unsigned char *)"second", 6, 0, 0};
    unsigned char want[32];
    CU_ASSERT(kmac(DF, &x, msg, 100, false, want, 32) == 32 && memcmp(a + 32, want, 32) == 0);
    x.key = k2, x.keylen = sizeof k2;
    CU_ASSERT(kmac(DF, &x, msg, 7, false, want, 32) == 32 && memcmp(a + 64, want, 32) == 0);
}

#define THREADS 4
#define PER_THREAD 150

static void *thread_body(void *arg)
{
    size_t *failures = arg;
    unsigned char key[64], msg[2000], a[64], b[64];
    for (int i = 0; i < PER_THREAD; i++) {
        size_t len = rnd(sizeof msg);
        RAND_bytes(key, sizeof key);
        RAND_bytes(msg, (int)len + 1);
        kmac_args args = {i % 2 ? "KMAC256" : "KMAC128", key, 16 + rnd(49), key, rnd(16), 0, i % 3 == 0};
        size_t na = kmac(MG, &args, msg, len, true, a, sizeof a), nb = kmac(DF, &args, msg, len, false, b, sizeof b);
        if (na == 0 || na != nb || memcmp(a, b, na) != 0)
            (*failures)++;
    }
    return NULL;
}

static void test_threads(void)
{
    pthread_t t[THREADS];
    size_t failures[THREADS] = {0};
    for (int i = 0; i < THREADS; i++)
        CU_ASSERT_FATAL(pthread_create(&t[i], NULL, thread_body, &failures[i]) == 0);
    for (int i = 0; i < THREADS; i++) {
        CU_ASSERT(pthread_join(t[i], NULL) == 0);
        CHECK(failures[i] == 0, "thread %d: %zu of %d KMACs differ from the default provider", i, failures[i],
              PER_THREAD);
    }
}

/* ---- bad input ---- */

static void test_bad_input_gives_clean_errors(void)
{
    static unsigned char key[600] = {1}, out[64];
    size_t ol;
    EVP_MAC_CTX *c = new_ctx("KMAC128", MG);
    CU_ASSERT_FATAL(c != NULL);
    CU_ASSERT(EVP_MAC_init(c, NULL, 0, NULL) == 0 && memguard_error()); /* never keyed */
    CU_ASSERT(EVP_MAC_update(c, key, 4) == 0 && memguard_error());      /* update before init */
    CU_ASSERT(EVP_MAC_final(c, out, &ol, sizeof out) == 0 && memguard_error());
    size_t bad_keys[] = {0, 1, 3, 513, 600};
    for (size_t i = 0; i < sizeof bad_keys / sizeof bad_keys[0]; i++)
        CHECK(EVP_MAC_init(c, key, bad_keys[i], NULL) == 0 && memguard_error(), "key of %zu bytes refused",
              bad_keys[i]);
    OSSL_PARAM longcust[] = {OSSL_PARAM_octet_string(OSSL_MAC_PARAM_CUSTOM, key, 513), OSSL_PARAM_END};
    CU_ASSERT(EVP_MAC_init(c, key, 32, longcust) == 0 && memguard_error());
    size_t big = 0xFFFFFF / 8 + 1;
    OSSL_PARAM bigsize[] = {OSSL_PARAM_size_t(OSSL_MAC_PARAM_SIZE, &big), OSSL_PARAM_END};
    CU_ASSERT(EVP_MAC_CTX_set_params(c, bigsize) == 0 && memguard_error());
    OSSL_PARAM badxof[] = {OSSL_PARAM_utf8_string(OSSL_MAC_PARAM_XOF, "yes", 0), OSSL_PARAM_END};
    CU_ASSERT(EVP_MAC_CTX_set_params(c, badxof) == 0 && memguard_error());
    OSSL_PARAM badkey[] = {OSSL_PARAM_utf8_string(OSSL_MAC_PARAM_KEY, "a string", 0), OSSL_PARAM_END};
    CU_ASSERT(EVP_MAC_CTX_set_params(c, badkey) == 0 && memguard_error());
    CU_ASSERT(EVP_MAC_CTX_get_mac_size(c) == 32); /* the failures changed nothing */
    /* The refused inputs left the context usable, and still without a key. */
    CU_ASSERT(EVP_MAC_init(c, NULL, 0, NULL) == 0 && memguard_error());
    CU_ASSERT(EVP_MAC_init(c, key, 4, NULL) == 1 && EVP_MAC_update(c, key, 9) == 1);
    CU_ASSERT(EVP_MAC_final(c, out, &ol, 31) == 0); /* output too small (EVP or memguard says so) */
    ERR_clear_error();
    CU_ASSERT(EVP_MAC_final(c, out, &ol, sizeof out) == 1 && ol == 32);
    CU_ASSERT(EVP_MAC_final(c, out, &ol, sizeof out) == 0 && memguard_error()); /* final twice */
    CU_ASSERT(EVP_MAC_update(c, key, 1) == 0 && memguard_error());             /* update after final */
    CU_ASSERT(EVP_MAC_init(c, NULL, 0, NULL) == 1); /* and init starts again */
    EVP_MAC_CTX_free(c);
}

/* The memory scans read every mapping, ASan's shadow included: they run in the other builds. */
#ifndef MG_SANITIZED
/* ---- residue ---- */

static memscan_needle needles[128];
static size_t n_needles;

static void add_needle(const unsigned char *v, size_t len)
{
    char name[16];
    snprintf(name, sizeof name, "needle %zu", n_needles);
    CU_ASSERT_FATAL(n_needles < sizeof needles / sizeof needles[0] &&
                    memscan_needle_init(&needles[n_needles++], name, v, len, false));
}

static size_t total(size_t first, size_t last, bool guarded)
{
    return memscan_total(needles, first, last, guarded);
}

/* bytepad(encode_string(x1) || encode_string(x2), 136) into a fresh KMAC-256 sponge; x2 may be NULL. */
static void absorb_padded(mgp_keccak *k, const unsigned char *x1, size_t l1, const unsigned char *x2, size_t l2)
{
    static const unsigned char zero[136];
    unsigned char e[9];
    size_t pos = 0, n = mgp_left_encode(e, 136);
    mgp_keccak_absorb(k, 136, &pos, e, n);
    n = mgp_left_encode(e, 8 * l1), mgp_keccak_absorb(k, 136, &pos, e, n);
    mgp_keccak_absorb(k, 136, &pos, x1, l1);
    if (x2 != NULL) {
        n = mgp_left_encode(e, 8 * l2), mgp_keccak_absorb(k, 136, &pos, e, n);
        mgp_keccak_absorb(k, 136, &pos, x2, l2);
    }
    CU_ASSERT_FATAL(pos > 0);
    mgp_keccak_absorb(k, 136, &pos, zero, 136 - pos);
}

/*
 * Needles for KMAC-256 with a 64-byte key and customisation string s: the key (four 16-byte
 * windows) and, when states, each lane of the keyed state and each lane of the state after one
 * more block (block: 136 bytes), i.e. what a context holds after init and update(block). Every
 * lane of both is key-equivalent (Keccak-f can be run backwards). Computed with the sponge
 * checked above, in guarded memory.
 */
static void kmac_needles(const unsigned char *key, const char *s, const unsigned char *block, bool states)
{
    for (int i = 0; i < 4; i++)
        add_needle(key + 16 * i, 16);
    if (!states)
        return;
    mg_buffer *b = mg_buffer_new(sizeof(mgp_keccak));
    CU_ASSERT_FATAL(b != NULL);
    mgp_keccak *k = mg_buffer_data(b);
    size_t pos = 0;
    mg_wipe(k, sizeof *k);
    absorb_padded(k, (const unsigned char *)"KMAC", 4, (const unsigned char *)s, strlen(s));
    absorb_padded(k, key, 64, NULL, 0);
    for (int i = 0; i < 25; i++)
        add_needle((const unsigned char *)&k->a[i], 8);
    mgp_keccak_absorb(k, 136, &pos, block, 136);
    CU_ASSERT(pos == 0);
    for (int i = 0; i < 25; i++)
        add_needle((const unsigned char *)&k->a[i], 8);
    mg_buffer_destroy(b);
}

/*
 * EVP_MAC_update from 128 KiB further down the stack: what KMAC's frames leave there stays out of
 * reach of the scanner's own frames (memscan_run runs from the test function, far above), so a
 * permutation's spilled lanes would still be there to find if the provider did not clear them.
 */
static __attribute__((noinline)) int update_deep(EVP_MAC_CTX *c, const unsigned char *m, size_t n)
{
    volatile unsigned char pad[128 * 1024];
    pad[0] = 0, pad[sizeof pad - 1] = 0;
    int r = EVP_MAC_update(c, m, n);
    pad[1] = (unsigned char)r;
    return r;
}

/*
 * MAC msg 20 times with c, then restart it, duplicate it and feed both one 136-byte block from
 * deep in the stack: the two contexts hold the state after one block, and the permutation that
 * made it ran last. The duplicate.
 */
static EVP_MAC_CTX *use_then_dup_after_one_block(EVP_MAC_CTX *c, const unsigned char *msg, size_t len)
{
    unsigned char out[64];
    size_t ol;
    for (int i = 0; i < 20; i++)
        CU_ASSERT(EVP_MAC_init(c, NULL, 0, NULL) == 1 && EVP_MAC_update(c, msg, len) == 1 &&
                  EVP_MAC_final(c, out, &ol, sizeof out) == 1);
    CU_ASSERT(EVP_MAC_init(c, NULL, 0, NULL) == 1);
    EVP_MAC_CTX *d = EVP_MAC_CTX_dup(c);
    CU_ASSERT_FATAL(d != NULL);
    CU_ASSERT(update_deep(c, msg, 136) == 1 && update_deep(d, msg, 136) == 1);
    return d;
}

static void test_no_key_or_state_outside_guarded_memory(void)
{
    n_needles = 0;
    static unsigned char msg[5000];
    RAND_bytes(msg, sizeof msg);
    mg_buffer *k = mg_buffer_random(64), *kc = mg_buffer_random(64);
    CU_ASSERT_FATAL(k != NULL && kc != NULL);
    kmac_needles(mg_buffer_data(k), "residue", msg, true);
    size_t ours = n_needles;
    kmac_needles(mg_buffer_data(kc), "", NULL, false);
    /* The needles' own computation (test code, the sponge's stack spills) leaves fragments in dead
       stack frames and vector registers: clear them, so that what the scan finds came from KMAC. */
    mg_scrub(64 * 1024);
    /* The control: the default provider's KMAC, live, keeps the key in the heap. */
    EVP_MAC_CTX *ctl = new_ctx("KMAC256", DF);
    CU_ASSERT_FATAL(ctl != NULL && EVP_MAC_init(ctl, mg_buffer_data(kc), 64, NULL) == 1 &&
                    EVP_MAC_update(ctl, msg, 100) == 1);
    /* Use it, then leave a context and a duplicate holding the state after one block. The permutation
       that made it runs last before the scan: its lanes are what a missing scrub leaves on the stack. */
    EVP_MAC_CTX *c = new_ctx("KMAC256", MG);
    OSSL_PARAM p[] = {OSSL_PARAM_octet_string(OSSL_MAC_PARAM_CUSTOM, "residue", 7), OSSL_PARAM_END};
    CU_ASSERT_FATAL(c != NULL && EVP_MAC_init(c, mg_buffer_data(k), 64, p) == 1);
    mg_buffer_destroy(k);
    mg_buffer_destroy(kc);
    EVP_MAC_CTX *d = use_then_dup_after_one_block(c, msg, sizeof msg);

    CU_ASSERT_FATAL(memscan_run(needles, n_needles));
    fprintf(stderr, "\n  contexts live: memguard key, keyed and running state: guarded %zu, elsewhere %zu; "
                    "default provider (control) key: guarded %zu, elsewhere %zu\n",
            total(0, ours, true), total(0, ours, false), total(ours, n_needles, true),
            total(ours, n_needles, false));
    CU_ASSERT(total(0, ours, false) == 0); /* nothing of ours outside guarded memory */
    for (size_t i = 0; i < ours; i++)      /* each window in both contexts' slots */
        CHECK(needles[i].guarded >= 2, "%s in guarded memory %zu times", i < 4 ? "key" : i < 29 ? "keyed lane" : "lane",
              needles[i].guarded);
    CU_ASSERT(total(ours, n_needles, false) > 0); /* the control: the scan does see a heap key */

    EVP_MAC_CTX_free(c);
    EVP_MAC_CTX_free(d);
    EVP_MAC_CTX_free(ctl);
    CU_ASSERT_FATAL(memscan_run(needles, n_needles));
    fprintf(stderr, "  contexts freed: memguard key and states: guarded %zu, elsewhere %zu\n", total(0, ours, true),
            total(0, ours, false));
    CU_ASSERT(total(0, ours, false) + total(0, ours, true) == 0); /* nowhere at all */
}

/*
 * Needles for HMAC-SHA3-256 with a 32-byte key: each lane of the Keccak states after K^ipad and after
 * K^opad (one block each: the rate is 136 bytes), and, when msg is given, of the inner state after
 * one more block of msg - what a context holds after init and update(msg, 136).
 */
static void hmac_sha3_needles(const unsigned char *key, const unsigned char *msg, bool outer)
{
    mg_buffer *b = mg_buffer_new(sizeof(mgp_keccak) + 136);
    CU_ASSERT_FATAL(b != NULL);
    mgp_keccak *k = mg_buffer_data(b);
    unsigned char *blk = (unsigned char *)(k + 1);
    for (int pad = 0; pad < (outer ? 2 : 1); pad++) {
        size_t pos = 0;
        for (size_t i = 0; i < 136; i++)
            blk[i] = (unsigned char)((i < 32 ? key[i] : 0) ^ (pad == 0 ? 0x36 : 0x5c));
        mg_wipe(k, sizeof *k);
        mgp_keccak_absorb(k, 136, &pos, blk, 136);
        for (int i = 0; i < 25; i++)
            add_needle((const unsigned char *)&k->a[i], 8);
        if (pad == 0 && msg != NULL) {
            mgp_keccak_absorb(k, 136, &pos, msg, 136);
            for (int i = 0; i < 25; i++)
                add_needle((const unsigned char *)&k->a[i], 8);
        }
    }
    mg_buffer_destroy(b);
}

static EVP_MAC_CTX *hmac_sha3_ctx(const char *propq, const unsigned char *key)
{
    EVP_MAC_CTX *c = new_ctx("HMAC", propq);
    OSSL_PARAM p[] = {OSSL_PARAM_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA3-256", 0), OSSL_PARAM_END};
    if (c != NULL && EVP_MAC_init(c, key, 32, p) != 1) {
        EVP_MAC_CTX_free(c);
        c = NULL;
    }
    return c;
}

/* HMAC-SHA3 runs on the same Keccak (provider/hmac.c): its keyed states get the same scan. */
static void test_hmac_sha3_states_outside_guarded_memory(void)
{
    n_needles = 0;
    static unsigned char msg[5000];
    RAND_bytes(msg, sizeof msg);
    mg_buffer *k = mg_buffer_random(32), *kc = mg_buffer_random(32);
    CU_ASSERT_FATAL(k != NULL && kc != NULL);
    hmac_sha3_needles(mg_buffer_data(k), msg, true);
    size_t ours = n_needles;
    hmac_sha3_needles(mg_buffer_data(kc), NULL, false);
    mg_scrub(64 * 1024);
    EVP_MAC_CTX *ctl = hmac_sha3_ctx(DF, mg_buffer_data(kc));
    CU_ASSERT_FATAL(ctl != NULL && EVP_MAC_update(ctl, msg, 100) == 1);
    EVP_MAC_CTX *c = hmac_sha3_ctx(MG, mg_buffer_data(k));
    CU_ASSERT_FATAL(c != NULL);
    mg_buffer_destroy(k);
    mg_buffer_destroy(kc);
    EVP_MAC_CTX *d = use_then_dup_after_one_block(c, msg, sizeof msg);

    CU_ASSERT_FATAL(memscan_run(needles, n_needles));
    fprintf(stderr, "\n  contexts live: memguard HMAC-SHA3-256 inner, outer and running state: guarded %zu, "
                    "elsewhere %zu; default provider (control) inner state: guarded %zu, elsewhere %zu\n",
            total(0, ours, true), total(0, ours, false), total(ours, n_needles, true), total(ours, n_needles, false));
    CU_ASSERT(total(0, ours, false) == 0);
    for (size_t i = 0; i < ours; i++)
        CHECK(needles[i].guarded >= 2, "%s lane %zu in guarded memory %zu times",
              i < 25 ? "inner" : i < 50 ? "running" : "outer", i % 25, needles[i].guarded);
    CU_ASSERT(total(ours, n_needles, false) > 0); /* the control: its keyed state is in the heap */

    EVP_MAC_CTX_free(c);
    EVP_MAC_CTX_free(d);
    EVP_MAC_CTX_free(ctl);
    CU_ASSERT_FATAL(memscan_run(needles, n_needles));
    fprintf(stderr, "  contexts freed: memguard HMAC-SHA3-256 states: guarded %zu, elsewhere %zu\n",
            total(0, ours, true), total(0, ours, false));
    CU_ASSERT(total(0, ours, false) + total(0, ours, true) == 0);
}

#endif

static CU_TestInfo sponge_tests[] = {
    {"sponge equals SHA3-256, SHAKE128, SHAKE256 (all lengths to 3 blocks, splits)", test_sponge_matches_sha3_and_shake},
    {"left_encode and right_encode", test_left_and_right_encode},
    CU_TEST_INFO_NULL,
};

static CU_TestInfo kat_tests[] = {
    {"NIST SP 800-185 KMAC and KMACXOF samples", test_nist_samples},
    {"ACVP long customisation string", test_acvp_long_customisation},
    {"unqualified fetch stays on the default provider", test_unqualified_fetch_stays_on_default},
    CU_TEST_INFO_NULL,
};

static CU_TestInfo equivalence_tests[] = {
    {"KMAC equals the default provider: random keys, custom, sizes, xof, 0..64 KiB, splits",
     test_kmac_matches_default_for_random_parameters},
    {"key and custom encodings ending at, before and after a block boundary", test_block_boundaries_of_key_and_custom},
    CU_TEST_INFO_NULL,
};

static CU_TestInfo context_tests[] = {
    {"dupctx mid-stream continues independently; re-init restarts", test_dupctx_mid_stream_and_reinit},
    {"key and custom between inits, as the default provider", test_parameters_between_inits_match_default},
    {"contexts in several threads", test_threads},
    {"bad input gives clean memguard errors", test_bad_input_gives_clean_errors},
    CU_TEST_INFO_NULL,
};

#ifndef MG_SANITIZED
static CU_TestInfo residue_tests[] = {
    {"no key, keyed or running state outside guarded memory", test_no_key_or_state_outside_guarded_memory},
    {"HMAC-SHA3: no keyed or running Keccak state outside guarded memory",
     test_hmac_sha3_states_outside_guarded_memory},
    CU_TEST_INFO_NULL,
};
#endif

int main(void)
{
    if (getenv("OPENSSL_CONF") == NULL) {
        fprintf(stderr, "set OPENSSL_CONF to a configuration that loads memguard after default\n");
        return 2;
    }
    CU_SuiteInfo suites[] = {
        {"sponge", NULL, NULL, NULL, NULL, sponge_tests},
        {"kat", NULL, NULL, NULL, NULL, kat_tests},
        {"equivalence", NULL, NULL, NULL, NULL, equivalence_tests},
        {"contexts", NULL, NULL, NULL, NULL, context_tests},
#ifndef MG_SANITIZED
        {"residue", NULL, NULL, NULL, NULL, residue_tests},
#endif
        CU_SUITE_INFO_NULL,
    };
    return mgt_main(suites);
}
