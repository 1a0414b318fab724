/* mg_aead_seal / mg_aead_open: round trips, tampering, libsodium interop, errors, purge. */
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sodium.h>

#include <memguard/memguard.h>

#include "harness.h"

#define KEY_LEN 32
#define TAG_LEN 16
#define FILL 0xA5 /* what output buffers hold before a call that must not write them */

struct alg_info {
    mg_aead_alg alg;
    const char *name;
    size_t nonce_len;
};

static const struct alg_info algs[] = {
    {MG_AEAD_XCHACHA20POLY1305, "XChaCha20-Poly1305", crypto_aead_xchacha20poly1305_ietf_NPUBBYTES},
    {MG_AEAD_AES256GCM, "AES-256-GCM", crypto_aead_aes256gcm_NPUBBYTES},
};
#define N_ALGS (sizeof algs / sizeof algs[0])

static const size_t msg_lens[] = {0, 1, 15, 16, 17, 1000, 65536};
#define N_LENS (sizeof msg_lens / sizeof msg_lens[0])

static const unsigned char ad_bytes[] = "associated data: header v1";
#define AD_LEN (sizeof ad_bytes - 1)

/* XChaCha20-Poly1305 works everywhere; AES-256-GCM needs AES-NI + PCLMUL and is skipped (said so) without. */
static bool usable(const struct alg_info *a)
{
    if (mg_aead_available(a->alg))
        return true;
    CU_ASSERT_NOT_EQUAL(a->alg, MG_AEAD_XCHACHA20POLY1305);
    printf("\n    %s: not available on this CPU (mg_aead_available is false): skipped", a->name);
    return false;
}

static void fill(unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        p[i] = (unsigned char)(seed >> 16);
    }
}

static size_t count_not(const unsigned char *p, size_t n, unsigned char v)
{
    size_t bad = 0;
    for (size_t i = 0; i < n; i++)
        bad += p[i] != v;
    return bad;
}

/* A random 32-byte key sealed into an enclave; the caller gets a copy for libsodium (to mg_wipe). */
static mg_enclave *new_key(unsigned char copy[KEY_LEN])
{
    unsigned char k[KEY_LEN];
    randombytes_buf(k, sizeof k);
    memcpy(copy, k, KEY_LEN);
    mg_enclave *e = mg_enclave_new(k, sizeof k);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_EQUAL(count_not(k, sizeof k, 0), 0); /* mg_enclave_new wiped the source */
    return e;
}

static void test_overhead_is_nonce_plus_tag(void)
{
    CU_ASSERT_TRUE(mg_aead_available(MG_AEAD_XCHACHA20POLY1305));
    CU_ASSERT_EQUAL(mg_aead_overhead(MG_AEAD_XCHACHA20POLY1305),
                    crypto_aead_xchacha20poly1305_ietf_NPUBBYTES + crypto_aead_xchacha20poly1305_ietf_ABYTES);
    CU_ASSERT_EQUAL(mg_aead_overhead(MG_AEAD_AES256GCM), crypto_aead_aes256gcm_NPUBBYTES + crypto_aead_aes256gcm_ABYTES);
    CU_ASSERT_EQUAL(mg_aead_available(MG_AEAD_AES256GCM), crypto_aead_aes256gcm_is_available() != 0);
}

static void test_round_trips_with_and_without_ad(void)
{
    unsigned char kc[KEY_LEN];
    mg_enclave *key = new_key(kc);
    size_t max = msg_lens[N_LENS - 1];
    unsigned char *msg = malloc(max), *plain = malloc(max + 1);
    unsigned char *box = malloc(max + 64), *box2 = malloc(max + 64);
    CU_ASSERT_FATAL(msg != NULL && plain != NULL && box != NULL && box2 != NULL);
    for (size_t a = 0; a < N_ALGS; a++) {
        if (!usable(&algs[a]))
            continue;
        mg_aead_alg alg = algs[a].alg;
        size_t over = mg_aead_overhead(alg);
        size_t trips = 0;
        for (size_t l = 0; l < N_LENS; l++) {
            size_t len = msg_lens[l];
            for (int with_ad = 0; with_ad < 2; with_ad++) {
                const void *ad = with_ad ? ad_bytes : NULL;
                size_t ad_len = with_ad ? AD_LEN : 0;
                fill(msg, len, (unsigned)(len * 2 + (size_t)with_ad));
                size_t out_len = SIZE_MAX;
                /* More room than needed: the length says what was used. */
                CU_ASSERT_EQUAL(mg_aead_seal(key, alg, box, len + over + 7, &out_len, msg, len, ad, ad_len), MG_OK);
                CU_ASSERT_EQUAL(out_len, len + over);
                if (len >= 16) /* it is encrypted, not copied */
                    CU_ASSERT_NOT_EQUAL(memcmp(box + algs[a].nonce_len, msg, 16), 0);
                size_t plain_len = SIZE_MAX;
                CU_ASSERT_EQUAL(mg_aead_open(key, alg, plain, len, &plain_len, box, out_len, ad, ad_len), MG_OK);
                CU_ASSERT_EQUAL(plain_len, len);
                CU_ASSERT_EQUAL(memcmp(plain, msg, len), 0);
                /* The AD is bound to the message: leaving it out, or adding one, fails. */
                CU_ASSERT_EQUAL(mg_aead_open(key, alg, plain, len, &plain_len, box, out_len, with_ad ? NULL : ad_bytes,
                                             with_ad ? 0 : AD_LEN),
                                MG_EAUTH);
                /* A second seal of the same message has a fresh nonce and so a different output. */
                size_t out_len2 = 0;
                CU_ASSERT_EQUAL(mg_aead_seal(key, alg, box2, len + over, &out_len2, msg, len, ad, ad_len), MG_OK);
                CU_ASSERT_EQUAL(out_len2, out_len);
                CU_ASSERT_NOT_EQUAL(memcmp(box, box2, algs[a].nonce_len), 0);
                CU_ASSERT_NOT_EQUAL(memcmp(box + out_len - TAG_LEN, box2 + out_len - TAG_LEN, TAG_LEN), 0);
                trips++;
            }
        }
        printf("\n    %s: %zu round trips, overhead %zu", algs[a].name, trips, over);
    }
    printf("\n");
    mg_wipe(kc, sizeof kc);
    mg_enclave_free(key);
    free(msg);
    free(plain);
    free(box);
    free(box2);
}

/* Tamper with every bit of a sealed message and of its AD, one at a time. */
struct tamper_result {
    size_t attempts, accepted, not_eauth, out_written;
};

static struct tamper_result tamper_every_bit(const mg_enclave *key, const struct alg_info *a, size_t len)
{
    struct tamper_result r = {0, 0, 0, 0};
    size_t over = mg_aead_overhead(a->alg);
    unsigned char msg[64], box[64 + 64], out[64 + 8], ad[AD_LEN];
    memcpy(ad, ad_bytes, AD_LEN);
    fill(msg, len, 77);
    size_t box_len = 0, out_len;
    CU_ASSERT_FATAL(mg_aead_seal(key, a->alg, box, sizeof box, &box_len, msg, len, ad, AD_LEN) == MG_OK);
    CU_ASSERT_EQUAL_FATAL(box_len, len + over);
    for (size_t target = 0; target < 2; target++) {
        unsigned char *p = target == 0 ? box : ad;
        size_t n = target == 0 ? box_len : AD_LEN;
        for (size_t bit = 0; bit < n * 8; bit++) {
            p[bit / 8] ^= (unsigned char)(1u << (bit % 8));
            memset(out, FILL, sizeof out);
            int rc = mg_aead_open(key, a->alg, out, sizeof out, &out_len, box, box_len, ad, AD_LEN);
            r.attempts++;
            r.accepted += rc == MG_OK;
            r.not_eauth += rc != MG_EAUTH;
            r.out_written += count_not(out, sizeof out, FILL) != 0;
            p[bit / 8] ^= (unsigned char)(1u << (bit % 8));
        }
    }
    /* Restored, it opens again. */
    CU_ASSERT_EQUAL(mg_aead_open(key, a->alg, out, sizeof out, &out_len, box, box_len, ad, AD_LEN), MG_OK);
    CU_ASSERT_EQUAL(out_len, len);
    CU_ASSERT_EQUAL(memcmp(out, msg, len), 0);
    return r;
}

static const size_t tamper_lens[] = {0, 1, 33};
#define N_TAMPER (sizeof tamper_lens / sizeof tamper_lens[0])

static void test_every_single_bit_flip_of_message_or_ad_fails_with_EAUTH(void)
{
    unsigned char kc[KEY_LEN];
    mg_enclave *key = new_key(kc);
    for (size_t a = 0; a < N_ALGS; a++) {
        if (!usable(&algs[a]))
            continue;
        for (size_t l = 0; l < N_TAMPER; l++) {
            struct tamper_result r = tamper_every_bit(key, &algs[a], tamper_lens[l]);
            printf("\n    %s, %zu-byte message: %zu flips, %zu accepted, %zu not MG_EAUTH", algs[a].name,
                   tamper_lens[l], r.attempts, r.accepted, r.not_eauth);
            CU_ASSERT_EQUAL(r.accepted, 0);
            CU_ASSERT_EQUAL(r.not_eauth, 0);
            CU_ASSERT_EQUAL(r.attempts, (tamper_lens[l] + mg_aead_overhead(algs[a].alg) + AD_LEN) * 8);
        }
    }
    printf("\n");
    mg_wipe(kc, sizeof kc);
    mg_enclave_free(key);
}

/* enclave.h: "mg_aead_open returns MG_EAUTH on any tampering; nothing is written to out then." */
static void test_a_failed_open_leaves_the_output_untouched(void)
{
    unsigned char kc[KEY_LEN];
    mg_enclave *key = new_key(kc);
    for (size_t a = 0; a < N_ALGS; a++) {
        if (!usable(&algs[a]))
            continue;
        for (size_t l = 0; l < N_TAMPER; l++) {
            struct tamper_result r = tamper_every_bit(key, &algs[a], tamper_lens[l]);
            printf("\n    %s, %zu-byte message: %zu failed opens wrote to the output buffer", algs[a].name,
                   tamper_lens[l], r.out_written);
            CU_ASSERT_EQUAL(r.out_written, 0);
        }
    }
    printf("\n");
    mg_wipe(kc, sizeof kc);
    mg_enclave_free(key);
}

static void test_interop_with_libsodium_both_ways(void)
{
    unsigned char kc[KEY_LEN];
    mg_enclave *key = new_key(kc);
    const size_t lens[] = {0, 1, 17, 1000, 65536};
    size_t max = 65536;
    unsigned char *msg = malloc(max), *plain = malloc(max + 1), *box = malloc(max + 64);
    CU_ASSERT_FATAL(msg != NULL && plain != NULL && box != NULL);
    for (size_t a = 0; a < N_ALGS; a++) {
        if (!usable(&algs[a]))
            continue;
        bool gcm = algs[a].alg == MG_AEAD_AES256GCM;
        size_t nl = algs[a].nonce_len;
        for (size_t l = 0; l < sizeof lens / sizeof lens[0]; l++) {
            size_t len = lens[l];
            for (int with_ad = 0; with_ad < 2; with_ad++) {
                const unsigned char *ad = with_ad ? ad_bytes : NULL;
                unsigned long long ad_len = with_ad ? AD_LEN : 0;
                fill(msg, len, (unsigned)len + 5);

                /* memguard seals, libsodium opens: nonce first, then ciphertext and tag. */
                size_t box_len = 0;
                CU_ASSERT_EQUAL(
                    mg_aead_seal(key, algs[a].alg, box, max + 64, &box_len, msg, len, ad, (size_t)ad_len), MG_OK);
                unsigned long long plen = ULLONG_MAX;
                memset(plain, 0, max + 1);
                int rc = gcm ? crypto_aead_aes256gcm_decrypt(plain, &plen, NULL, box + nl, box_len - nl, ad, ad_len,
                                                             box, kc)
                             : crypto_aead_xchacha20poly1305_ietf_decrypt(plain, &plen, NULL, box + nl, box_len - nl,
                                                                          ad, ad_len, box, kc);
                CU_ASSERT_EQUAL(rc, 0);
                CU_ASSERT_EQUAL(plen, len);
                CU_ASSERT_EQUAL(memcmp(plain, msg, len), 0);

                /* libsodium seals, memguard opens. */
                randombytes_buf(box, nl);
                unsigned long long clen = 0;
                rc = gcm ? crypto_aead_aes256gcm_encrypt(box + nl, &clen, msg, len, ad, ad_len, NULL, box, kc)
                         : crypto_aead_xchacha20poly1305_ietf_encrypt(box + nl, &clen, msg, len, ad, ad_len, NULL, box,
                                                                      kc);
                CU_ASSERT_EQUAL(rc, 0);
                CU_ASSERT_EQUAL(nl + clen, len + mg_aead_overhead(algs[a].alg));
                size_t out_len = SIZE_MAX;
                memset(plain, 0, max + 1);
                CU_ASSERT_EQUAL(
                    mg_aead_open(key, algs[a].alg, plain, len, &out_len, box, nl + (size_t)clen, ad, (size_t)ad_len),
                    MG_OK);
                CU_ASSERT_EQUAL(out_len, len);
                CU_ASSERT_EQUAL(memcmp(plain, msg, len), 0);
            }
        }
        printf("\n    %s: libsodium opens what memguard seals and the other way round", algs[a].name);
    }
    printf("\n");
    mg_wipe(kc, sizeof kc);
    mg_enclave_free(key);
    free(msg);
    free(plain);
    free(box);
}

static void test_wrong_key_size_gives_EINVAL(void)
{
    unsigned char kc[KEY_LEN];
    mg_enclave *key = new_key(kc);
    unsigned char k16[16];
    randombytes_buf(k16, sizeof k16);
    mg_enclave *short_key = mg_enclave_new(k16, sizeof k16);
    CU_ASSERT_PTR_NOT_NULL_FATAL(short_key);
    unsigned char msg[20] = "nineteen bytes long", box[20 + 64], out[20 + 64];
    for (size_t a = 0; a < N_ALGS; a++) {
        if (!usable(&algs[a]))
            continue;
        size_t box_len = 0, out_len = 0;
        memset(out, FILL, sizeof out);
        CU_ASSERT_EQUAL(mg_aead_seal(short_key, algs[a].alg, out, sizeof out, &out_len, msg, sizeof msg, NULL, 0),
                        MG_EINVAL);
        CU_ASSERT_EQUAL(mg_last_error(), MG_EINVAL);
        CU_ASSERT_EQUAL(count_not(out, sizeof out, FILL), 0);
        CU_ASSERT_EQUAL(mg_aead_seal(key, algs[a].alg, box, sizeof box, &box_len, msg, sizeof msg, NULL, 0), MG_OK);
        CU_ASSERT_EQUAL(mg_aead_open(short_key, algs[a].alg, out, sizeof out, &out_len, box, box_len, NULL, 0),
                        MG_EINVAL);
        CU_ASSERT_EQUAL(count_not(out, sizeof out, FILL), 0);
    }
    printf("\n");
    mg_wipe(kc, sizeof kc);
    mg_enclave_free(key);
    mg_enclave_free(short_key);
}

static void test_too_small_output_gives_ERANGE(void)
{
    unsigned char kc[KEY_LEN];
    mg_enclave *key = new_key(kc);
    unsigned char msg[100], box[100 + 64], out[100 + 64];
    fill(msg, sizeof msg, 3);
    for (size_t a = 0; a < N_ALGS; a++) {
        if (!usable(&algs[a]))
            continue;
        mg_aead_alg alg = algs[a].alg;
        size_t over = mg_aead_overhead(alg), box_len = 0, out_len = 0;
        memset(out, FILL, sizeof out);
        CU_ASSERT_EQUAL(mg_aead_seal(key, alg, out, sizeof msg + over - 1, &out_len, msg, sizeof msg, NULL, 0),
                        MG_ERANGE);
        CU_ASSERT_EQUAL(mg_aead_seal(key, alg, out, 0, &out_len, msg, 0, NULL, 0), MG_ERANGE);
        /* msg_len + overhead overflows: refused before msg is read. */
        CU_ASSERT_EQUAL(mg_aead_seal(key, alg, out, SIZE_MAX, &out_len, msg, SIZE_MAX - over / 2, NULL, 0), MG_ERANGE);
        CU_ASSERT_EQUAL(count_not(out, sizeof out, FILL), 0);
        CU_ASSERT_EQUAL(mg_aead_seal(key, alg, box, sizeof msg + over, &box_len, msg, sizeof msg, NULL, 0), MG_OK);
        CU_ASSERT_EQUAL(mg_aead_open(key, alg, out, sizeof msg - 1, &out_len, box, box_len, NULL, 0), MG_ERANGE);
        CU_ASSERT_EQUAL(count_not(out, sizeof out, FILL), 0);
        /* Exactly enough is enough. */
        CU_ASSERT_EQUAL(mg_aead_open(key, alg, out, sizeof msg, &out_len, box, box_len, NULL, 0), MG_OK);
        CU_ASSERT_EQUAL(memcmp(out, msg, sizeof msg), 0);
    }
    printf("\n");
    mg_wipe(kc, sizeof kc);
    mg_enclave_free(key);
}

static void test_input_shorter_than_the_overhead_gives_EAUTH(void)
{
    unsigned char kc[KEY_LEN];
    mg_enclave *key = new_key(kc);
    unsigned char box[64], out[64];
    fill(box, sizeof box, 9);
    for (size_t a = 0; a < N_ALGS; a++) {
        if (!usable(&algs[a]))
            continue;
        size_t over = mg_aead_overhead(algs[a].alg), out_len = 0;
        size_t lens[] = {0, 1, algs[a].nonce_len, over - 1};
        for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
            memset(out, FILL, sizeof out);
            CU_ASSERT_EQUAL(mg_aead_open(key, algs[a].alg, out, sizeof out, &out_len, box, lens[i], NULL, 0),
                            MG_EAUTH);
            CU_ASSERT_EQUAL(count_not(out, sizeof out, FILL), 0);
        }
        /* A sealed empty message is exactly the overhead long, and opens. */
        size_t box_len = 0;
        CU_ASSERT_EQUAL(mg_aead_seal(key, algs[a].alg, box, sizeof box, &box_len, NULL, 0, NULL, 0), MG_OK);
        CU_ASSERT_EQUAL(box_len, over);
        CU_ASSERT_EQUAL(mg_aead_open(key, algs[a].alg, out, 0, &out_len, box, box_len, NULL, 0), MG_OK);
        CU_ASSERT_EQUAL(out_len, 0);
        /* One byte cut off the end of it: too short. */
        CU_ASSERT_EQUAL(mg_aead_open(key, algs[a].alg, out, 0, &out_len, box, box_len - 1, NULL, 0), MG_EAUTH);
    }
    printf("\n");
    mg_wipe(kc, sizeof kc);
    mg_enclave_free(key);
}

static void test_null_arguments_and_unknown_algorithm_give_EINVAL(void)
{
    unsigned char kc[KEY_LEN];
    mg_enclave *key = new_key(kc);
    unsigned char msg[8] = "message", box[8 + 64], out[8 + 64];
    size_t n = 0;
    mg_aead_alg x = MG_AEAD_XCHACHA20POLY1305;
    CU_ASSERT_EQUAL(mg_aead_seal(NULL, x, box, sizeof box, &n, msg, 8, NULL, 0), MG_EINVAL);
    CU_ASSERT_EQUAL(mg_aead_seal(key, x, NULL, sizeof box, &n, msg, 8, NULL, 0), MG_EINVAL);
    CU_ASSERT_EQUAL(mg_aead_seal(key, x, box, sizeof box, NULL, msg, 8, NULL, 0), MG_EINVAL);
    CU_ASSERT_EQUAL(mg_aead_seal(key, x, box, sizeof box, &n, NULL, 8, NULL, 0), MG_EINVAL);
    CU_ASSERT_EQUAL(mg_aead_seal(key, x, box, sizeof box, &n, msg, 8, NULL, 4), MG_EINVAL);
    CU_ASSERT_EQUAL(mg_aead_seal(key, (mg_aead_alg)7, box, sizeof box, &n, msg, 8, NULL, 0), MG_EINVAL);
    size_t box_len = 0;
    CU_ASSERT_EQUAL(mg_aead_seal(key, x, box, sizeof box, &box_len, msg, 8, NULL, 0), MG_OK);
    CU_ASSERT_EQUAL(mg_aead_open(NULL, x, out, sizeof out, &n, box, box_len, NULL, 0), MG_EINVAL);
    CU_ASSERT_EQUAL(mg_aead_open(key, x, NULL, sizeof out, &n, box, box_len, NULL, 0), MG_EINVAL);
    CU_ASSERT_EQUAL(mg_aead_open(key, x, out, sizeof out, NULL, box, box_len, NULL, 0), MG_EINVAL);
    CU_ASSERT_EQUAL(mg_aead_open(key, x, out, sizeof out, &n, NULL, box_len, NULL, 0), MG_EINVAL);
    CU_ASSERT_EQUAL(mg_aead_open(key, x, out, sizeof out, &n, box, box_len, NULL, 4), MG_EINVAL);
    CU_ASSERT_EQUAL(mg_aead_open(key, (mg_aead_alg)7, out, sizeof out, &n, box, box_len, NULL, 0), MG_EINVAL);
    CU_ASSERT_EQUAL(mg_aead_open(key, x, out, sizeof out, &n, box, box_len, NULL, 0), MG_OK);
    mg_wipe(kc, sizeof kc);
    mg_enclave_free(key);
}

static void test_purge_kills_the_key_enclave(void)
{
    unsigned char kc[KEY_LEN];
    mg_enclave *key = new_key(kc);
    unsigned char msg[40], out[40 + 64];
    fill(msg, sizeof msg, 21);
    size_t box_len[N_ALGS] = {0};
    unsigned char boxes[N_ALGS][40 + 64];
    for (size_t a = 0; a < N_ALGS; a++)
        if (usable(&algs[a]))
            CU_ASSERT_EQUAL(mg_aead_seal(key, algs[a].alg, boxes[a], sizeof boxes[a], &box_len[a], msg, sizeof msg,
                                         ad_bytes, AD_LEN),
                            MG_OK);
    mg_purge();
    for (size_t a = 0; a < N_ALGS; a++) {
        if (box_len[a] == 0)
            continue;
        size_t n = 0;
        memset(out, FILL, sizeof out);
        CU_ASSERT_EQUAL(mg_aead_seal(key, algs[a].alg, out, sizeof out, &n, msg, sizeof msg, NULL, 0), MG_EAUTH);
        CU_ASSERT_EQUAL(count_not(out, sizeof out, FILL), 0);
        CU_ASSERT_EQUAL(mg_aead_open(key, algs[a].alg, out, sizeof out, &n, boxes[a], box_len[a], ad_bytes, AD_LEN),
                        MG_EAUTH);
        CU_ASSERT_EQUAL(mg_last_error(), MG_EAUTH);
        CU_ASSERT_EQUAL(count_not(out, sizeof out, FILL), 0);
        /* The message itself is intact: the key, outside memguard, still opens it. */
        unsigned long long plen = 0;
        size_t nl = algs[a].nonce_len;
        int rc = algs[a].alg == MG_AEAD_AES256GCM
                     ? crypto_aead_aes256gcm_decrypt(out, &plen, NULL, boxes[a] + nl, box_len[a] - nl, ad_bytes,
                                                     AD_LEN, boxes[a], kc)
                     : crypto_aead_xchacha20poly1305_ietf_decrypt(out, &plen, NULL, boxes[a] + nl, box_len[a] - nl,
                                                                  ad_bytes, AD_LEN, boxes[a], kc);
        CU_ASSERT_EQUAL(rc, 0);
        CU_ASSERT_EQUAL(memcmp(out, msg, sizeof msg), 0);
        mg_wipe(out, sizeof out);
    }
    mg_enclave_free(key);
    /* The same key sealed again after the purge works again. */
    key = mg_enclave_new(kc, sizeof kc); /* wipes kc */
    CU_ASSERT_PTR_NOT_NULL_FATAL(key);
    size_t n = 0;
    CU_ASSERT_EQUAL(mg_aead_open(key, MG_AEAD_XCHACHA20POLY1305, out, sizeof out, &n, boxes[0], box_len[0], ad_bytes,
                                 AD_LEN),
                    MG_OK);
    CU_ASSERT_EQUAL(n, sizeof msg);
    CU_ASSERT_EQUAL(memcmp(out, msg, sizeof msg), 0);
    mg_wipe(out, sizeof out);
    mg_enclave_free(key);
    printf("\n");
}

/*
 * Every int-returning function returns MG_OK or an error code (error.h). A
 * message one byte over AES-256-GCM's limit (crypto_aead_aes256gcm_MESSAGEBYTES_MAX,
 * about 64 GiB) must be refused, not handed to libsodium, whose misuse handler
 * aborts the process. The memory is reserved, never touched (MAP_NORESERVE);
 * where it cannot be reserved the check is skipped, and said so.
 */
#define SKIPPED 77

static void over_the_gcm_limit(void *arg)
{
    bool open_it = *(const bool *)arg;
    size_t len = crypto_aead_aes256gcm_MESSAGEBYTES_MAX + 1;
    size_t cap = len + mg_aead_overhead(MG_AEAD_AES256GCM);
    void *in = mmap(NULL, cap, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    void *out = mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (in == MAP_FAILED || out == MAP_FAILED)
        _exit(SKIPPED);
    mg_enclave *key = mg_enclave_random(KEY_LEN);
    if (key == NULL)
        _exit(2);
    size_t n = 0;
    int rc = open_it ? mg_aead_open(key, MG_AEAD_AES256GCM, out, cap, &n, in, cap, NULL, 0)
                     : mg_aead_seal(key, MG_AEAD_AES256GCM, out, cap, &n, in, len, NULL, 0);
    _exit(rc < 0 ? 0 : 1);
}

static void test_a_message_over_the_gcm_limit_is_an_error_not_an_abort(void)
{
    if (!usable(&algs[1])) {
        printf("\n");
        return;
    }
    for (int i = 0; i < 2; i++) {
        bool open_it = i == 1;
        int status = mgt_run_child(over_the_gcm_limit, &open_it, NULL, 0);
        if (status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == SKIPPED) {
            printf("\n    %s: cannot reserve 2 x 64 GiB of address space here: skipped", i ? "open" : "seal");
            continue;
        }
        printf("\n    %s of %zu bytes: %s", open_it ? "open" : "seal",
               (size_t)crypto_aead_aes256gcm_MESSAGEBYTES_MAX + 1, mgt_describe(status));
        CU_ASSERT_TRUE(mgt_exited_ok(status));
    }
    printf("\n");
}

static CU_TestInfo aead_tests[] = {
    {"overhead is nonce plus tag", test_overhead_is_nonce_plus_tag},
    {"round trips with and without AD", test_round_trips_with_and_without_ad},
    {"every single-bit flip of message or AD fails with MG_EAUTH",
     test_every_single_bit_flip_of_message_or_ad_fails_with_EAUTH},
    {"a failed open leaves the output untouched", test_a_failed_open_leaves_the_output_untouched},
    {"interop with libsodium both ways", test_interop_with_libsodium_both_ways},
    {"a 16-byte key enclave gives MG_EINVAL", test_wrong_key_size_gives_EINVAL},
    {"too small an output gives MG_ERANGE", test_too_small_output_gives_ERANGE},
    {"input shorter than the overhead gives MG_EAUTH", test_input_shorter_than_the_overhead_gives_EAUTH},
    {"NULL arguments and an unknown algorithm give MG_EINVAL", test_null_arguments_and_unknown_algorithm_give_EINVAL},
    {"purge kills the key enclave", test_purge_kills_the_key_enclave},
    {"a message over the AES-256-GCM limit is an error, not an abort",
     test_a_message_over_the_gcm_limit_is_an_error_not_an_abort},
    CU_TEST_INFO_NULL,
};

int main(void)
{
    CU_SuiteInfo suites[] = {
        {"aead", NULL, NULL, NULL, NULL, aead_tests},
        CU_SUITE_INFO_NULL,
    };
    return mgt_main(suites);
}
