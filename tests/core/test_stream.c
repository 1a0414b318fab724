/* Streams: FIFO round trips, wiping, sizes, errors, purge, threads, and no plaintext left in memory. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include <memguard/memguard.h>

#include "harness.h"

static bool under_valgrind(void)
{
    return getenv("MGT_UNDER_VALGRIND") != NULL;
}

static bool all_zero(const void *p, size_t n)
{
    const unsigned char *c = p;
    unsigned char acc = 0;
    for (size_t i = 0; i < n; i++)
        acc |= c[i];
    return acc == 0;
}

/* ---- a deterministic pattern: byte i of a stream is a function of i, so nothing needs a reference copy ---- */

static unsigned char pattern_byte(size_t i)
{
    uint64_t x = (uint64_t)i * UINT64_C(0x9E3779B97F4A7C15);
    x ^= x >> 31;
    x *= UINT64_C(0xBF58476D1CE4E5B9);
    return (unsigned char)(x >> 56);
}

static void pattern_fill(unsigned char *p, size_t n, size_t start)
{
    for (size_t i = 0; i < n; i++)
        p[i] = pattern_byte(start + i);
}

/* How many of the n bytes at p differ from the pattern at offset start. */
static size_t pattern_mismatches(const unsigned char *p, size_t n, size_t start)
{
    size_t bad = 0;
    for (size_t i = 0; i < n; i++)
        bad += p[i] != pattern_byte(start + i);
    return bad;
}

/* A small deterministic generator for piece sizes. */
static uint64_t xorshift(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

#define KIB ((size_t)1024)
#define MIB (KIB * KIB)

static size_t big_size(void)
{
    return under_valgrind() ? 1 * MIB : 10 * MIB;
}

/* The sizes of the round-trip tests: empty, one byte, around one chunk, and many chunks. */
static size_t round_trip_size(size_t i)
{
    static const size_t sizes[] = {0, 1, MG_STREAM_CHUNK - 1, MG_STREAM_CHUNK, MG_STREAM_CHUNK + 1};
    return i < sizeof sizes / sizeof sizes[0] ? sizes[i] : big_size();
}
#define ROUND_TRIP_SIZES 6

/* A stream holding the pattern's first n bytes; checks that the write wiped the source. */
static mg_stream *stream_with_pattern(size_t n)
{
    mg_stream *s = mg_stream_new();
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    unsigned char *data = malloc(n > 0 ? n : 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(data);
    pattern_fill(data, n, 0);
    CU_ASSERT_EQUAL(mg_stream_write(s, data, n), MG_OK);
    CU_ASSERT_TRUE(all_zero(data, n));
    CU_ASSERT_EQUAL(mg_stream_size(s), n);
    free(data);
    return s;
}

static void test_read_in_random_pieces_returns_exactly_what_was_written(void)
{
    uint64_t rng = 0x5eed5eed12345678u;
    for (size_t k = 0; k < ROUND_TRIP_SIZES; k++) {
        size_t n = round_trip_size(k);
        mg_stream *s = stream_with_pattern(n);
        unsigned char *out = malloc(n + 50000); /* room for the last piece asking for more than is left */
        CU_ASSERT_PTR_NOT_NULL_FATAL(out);
        size_t got = 0, reads = 0, short_reads = 0;
        while (got < n) {
            size_t piece = 1 + (size_t)(xorshift(&rng) % 50000);
            size_t want = piece < n - got ? piece : n - got;
            size_t nread = SIZE_MAX;
            int rc = mg_stream_read(s, out + got, piece, &nread);
            CU_ASSERT_EQUAL(rc, MG_OK);
            if (rc != MG_OK || nread == 0)
                break;
            /* Everything is available, so a read delivers as much as was asked for (or what is left). */
            short_reads += nread != want;
            got += nread;
            reads++;
            CU_ASSERT_EQUAL(mg_stream_size(s), n - got);
        }
        CU_ASSERT_EQUAL(short_reads, 0);
        CU_ASSERT_EQUAL(got, n);
        CU_ASSERT_EQUAL(pattern_mismatches(out, got, 0), 0);
        size_t nread = SIZE_MAX;
        CU_ASSERT_EQUAL(mg_stream_read(s, out, 1, &nread), MG_ENODATA);
        CU_ASSERT_EQUAL(nread, 0);
        printf("\n    %zu bytes in %zu reads", n, reads);
        mg_stream_free(s);
        free(out);
    }
    printf("\n");
}

static void test_next_returns_chunks_of_at_most_MG_STREAM_CHUNK_that_add_up(void)
{
    for (size_t k = 0; k < ROUND_TRIP_SIZES; k++) {
        size_t n = round_trip_size(k);
        mg_stream *s = stream_with_pattern(n);
        size_t total = 0, chunks = 0, oversized = 0, empty = 0, mutable_chunks = 0, mismatches = 0, bad_size = 0;
        mg_buffer *b;
        while ((b = mg_stream_next(s)) != NULL) {
            size_t len = mg_buffer_size(b);
            oversized += len > MG_STREAM_CHUNK;
            empty += len == 0;
            mutable_chunks += mg_buffer_is_mutable(b);
            mismatches += pattern_mismatches(mg_buffer_data(b), len, total);
            total += len;
            chunks++;
            bad_size += mg_stream_size(s) != n - total;
            mg_buffer_destroy(b);
            if (total > n)
                break;
        }
        CU_ASSERT_EQUAL(mg_last_error(), MG_ENODATA);
        CU_ASSERT_EQUAL(oversized, 0);
        CU_ASSERT_EQUAL(empty, 0);
        CU_ASSERT_EQUAL(mutable_chunks, 0);
        CU_ASSERT_EQUAL(mismatches, 0);
        CU_ASSERT_EQUAL(bad_size, 0);
        CU_ASSERT_EQUAL(total, n);
        CU_ASSERT_TRUE(chunks >= (n + MG_STREAM_CHUNK - 1) / MG_STREAM_CHUNK);
        CU_ASSERT_EQUAL(mg_stream_size(s), 0);
        mg_stream_free(s);
    }
}

/* mg_stream_flush, retried with best-effort locking if RLIMIT_MEMLOCK is too small for 10 MiB. */
static mg_buffer *flush_all(mg_stream *s, size_t n)
{
    mg_buffer *b = mg_stream_flush(s);
    if (b == NULL && mg_last_error() == MG_EMLOCK) {
        /* A failed flush loses nothing: the stream still holds every byte. */
        CU_ASSERT_EQUAL(mg_stream_size(s), n);
        printf("\n    flush of %zu bytes: %s; retrying unlocked", n, mg_last_error_message());
        mg_lock_policy old = mg_set_lock_policy(MG_LOCK_BEST_EFFORT);
        b = mg_stream_flush(s);
        (void)mg_set_lock_policy(old);
    }
    return b;
}

static void test_flush_returns_everything_in_one_frozen_buffer(void)
{
    for (size_t k = 0; k < ROUND_TRIP_SIZES; k++) {
        size_t n = round_trip_size(k);
        mg_stream *s = stream_with_pattern(n);
        mg_buffer *b = flush_all(s, n);
        if (n == 0) {
            CU_ASSERT_PTR_NULL(b);
            CU_ASSERT_EQUAL(mg_last_error(), MG_ENODATA);
        } else {
            CU_ASSERT_PTR_NOT_NULL_FATAL(b);
            CU_ASSERT_EQUAL(mg_buffer_size(b), n);
            CU_ASSERT_FALSE(mg_buffer_is_mutable(b));
            CU_ASSERT_EQUAL(pattern_mismatches(mg_buffer_data(b), mg_buffer_size(b), 0), 0);
            CU_ASSERT_EQUAL(mg_stream_size(s), 0);
            mg_buffer_destroy(b);
            CU_ASSERT_PTR_NULL(mg_stream_flush(s));
            CU_ASSERT_EQUAL(mg_last_error(), MG_ENODATA);
        }
        mg_stream_free(s);
    }
}

static void test_write_wipes_the_callers_data(void)
{
    mg_stream *s = mg_stream_new();
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    size_t sizes[] = {1, 64, MG_STREAM_CHUNK, 3 * MG_STREAM_CHUNK + 7};
    size_t held = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        unsigned char *data = malloc(sizes[i] + 2);
        CU_ASSERT_PTR_NOT_NULL_FATAL(data);
        memset(data, 0xEE, sizes[i] + 2); /* a byte before and after the data: not to be touched */
        CU_ASSERT_EQUAL(mg_stream_write(s, data + 1, sizes[i]), MG_OK);
        CU_ASSERT_TRUE(all_zero(data + 1, sizes[i]));
        CU_ASSERT_EQUAL(data[0], 0xEE);
        CU_ASSERT_EQUAL(data[sizes[i] + 1], 0xEE);
        held += sizes[i];
        free(data);
    }
    CU_ASSERT_EQUAL(mg_stream_size(s), held);
    /* The stream holds 0xEE bytes only: the copy was taken before the wipe. */
    mg_buffer *b = mg_stream_flush(s);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    size_t not_ee = 0;
    const unsigned char *p = mg_buffer_data(b);
    for (size_t i = 0; i < mg_buffer_size(b); i++)
        not_ee += p[i] != 0xEE;
    CU_ASSERT_EQUAL(mg_buffer_size(b), held);
    CU_ASSERT_EQUAL(not_ee, 0);
    mg_buffer_destroy(b);
    mg_stream_free(s);
}

/* Writes and mixed reads keep FIFO order across write boundaries; the size follows every step. */
static void test_size_tracks_the_bytes_held_through_mixed_reads(void)
{
    mg_stream *s = mg_stream_new();
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_EQUAL(mg_stream_size(s), 0);
    size_t writes[] = {100, 20000, 5, 0, 40000};
    size_t written = 0;
    unsigned char *buf = malloc(40000);
    CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
    for (size_t i = 0; i < sizeof writes / sizeof writes[0]; i++) {
        pattern_fill(buf, writes[i], written);
        CU_ASSERT_EQUAL(mg_stream_write(s, buf, writes[i]), MG_OK);
        written += writes[i];
        CU_ASSERT_EQUAL(mg_stream_size(s), written);
    }
    size_t pos = 0, nread = 0;
    /* read 50: part of the first write */
    CU_ASSERT_EQUAL(mg_stream_read(s, buf, 50, &nread), MG_OK);
    CU_ASSERT_EQUAL(nread, 50);
    CU_ASSERT_EQUAL(pattern_mismatches(buf, nread, pos), 0);
    pos += nread;
    CU_ASSERT_EQUAL(mg_stream_size(s), written - pos);
    /* next: what is left of the first chunk, or more, but in order */
    for (int i = 0; i < 2; i++) {
        mg_buffer *b = mg_stream_next(s);
        CU_ASSERT_PTR_NOT_NULL_FATAL(b);
        CU_ASSERT_TRUE(mg_buffer_size(b) <= MG_STREAM_CHUNK);
        CU_ASSERT_EQUAL(pattern_mismatches(mg_buffer_data(b), mg_buffer_size(b), pos), 0);
        pos += mg_buffer_size(b);
        mg_buffer_destroy(b);
        CU_ASSERT_EQUAL(mg_stream_size(s), written - pos);
    }
    /* read across the boundary of the second and third writes */
    CU_ASSERT_EQUAL(mg_stream_read(s, buf, 30000, &nread), MG_OK);
    CU_ASSERT_EQUAL(nread, 30000);
    CU_ASSERT_EQUAL(pattern_mismatches(buf, nread, pos), 0);
    pos += nread;
    CU_ASSERT_EQUAL(mg_stream_size(s), written - pos);
    /* flush: the rest */
    mg_buffer *b = mg_stream_flush(s);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    CU_ASSERT_EQUAL(mg_buffer_size(b), written - pos);
    CU_ASSERT_EQUAL(pattern_mismatches(mg_buffer_data(b), mg_buffer_size(b), pos), 0);
    mg_buffer_destroy(b);
    CU_ASSERT_EQUAL(mg_stream_size(s), 0);
    free(buf);
    mg_stream_free(s);
}

static void test_empty_stream_gives_ENODATA_and_nread_0(void)
{
    mg_stream *s = mg_stream_new();
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    unsigned char out[16];
    memset(out, 0x5A, sizeof out);
    size_t nread = 12345;
    CU_ASSERT_EQUAL(mg_stream_read(s, out, sizeof out, &nread), MG_ENODATA);
    CU_ASSERT_EQUAL(nread, 0);
    CU_ASSERT_EQUAL(out[0], 0x5A);
    CU_ASSERT_PTR_NULL(mg_stream_next(s));
    CU_ASSERT_EQUAL(mg_last_error(), MG_ENODATA);
    CU_ASSERT_PTR_NULL(mg_stream_flush(s));
    CU_ASSERT_EQUAL(mg_last_error(), MG_ENODATA);
    /* Writing nothing leaves it empty. */
    CU_ASSERT_EQUAL(mg_stream_write(s, out, 0), MG_OK);
    CU_ASSERT_EQUAL(mg_stream_size(s), 0);
    nread = 12345;
    CU_ASSERT_EQUAL(mg_stream_read(s, out, sizeof out, &nread), MG_ENODATA);
    CU_ASSERT_EQUAL(nread, 0);
    /* Drained: empty again. */
    unsigned char one = 7;
    CU_ASSERT_EQUAL(mg_stream_write(s, &one, 1), MG_OK);
    CU_ASSERT_EQUAL(mg_stream_read(s, out, sizeof out, &nread), MG_OK);
    CU_ASSERT_EQUAL(nread, 1);
    CU_ASSERT_EQUAL(out[0], 7);
    nread = 12345;
    CU_ASSERT_EQUAL(mg_stream_read(s, out, sizeof out, &nread), MG_ENODATA);
    CU_ASSERT_EQUAL(nread, 0);
    mg_stream_free(s);
}

static void test_null_arguments_give_EINVAL(void)
{
    mg_stream *s = mg_stream_new();
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    unsigned char data[8] = "secret!";
    size_t nread = 99;
    CU_ASSERT_EQUAL(mg_stream_write(NULL, data, sizeof data), MG_EINVAL);
    CU_ASSERT_EQUAL(memcmp(data, "secret!", 8), 0); /* a refused write keeps its data */
    CU_ASSERT_EQUAL(mg_stream_write(s, NULL, 1), MG_EINVAL);
    CU_ASSERT_EQUAL(mg_stream_size(s), 0);
    CU_ASSERT_EQUAL(mg_stream_write(s, data, sizeof data), MG_OK);
    CU_ASSERT_EQUAL(mg_stream_read(NULL, data, 1, &nread), MG_EINVAL);
    CU_ASSERT_EQUAL(mg_stream_read(s, NULL, 1, &nread), MG_EINVAL);
    CU_ASSERT_EQUAL(mg_stream_read(s, data, 1, NULL), MG_EINVAL);
    CU_ASSERT_PTR_NULL(mg_stream_next(NULL));
    CU_ASSERT_EQUAL(mg_last_error(), MG_EINVAL);
    CU_ASSERT_PTR_NULL(mg_stream_flush(NULL));
    CU_ASSERT_EQUAL(mg_last_error(), MG_EINVAL);
    CU_ASSERT_EQUAL(mg_stream_size(NULL), 0);
    CU_ASSERT_EQUAL(mg_stream_size(s), sizeof data); /* refused calls took nothing */
    mg_stream_free(NULL);
    mg_stream_free(s);
}

static void test_purge_makes_old_chunks_fail_with_EAUTH_and_loses_nothing(void)
{
    size_t n = 2 * MG_STREAM_CHUNK + 1000;
    mg_stream *s = stream_with_pattern(n);
    /* A partly read first chunk: its remainder is re-sealed before the purge too. */
    unsigned char out[100];
    size_t nread = 0;
    CU_ASSERT_EQUAL(mg_stream_read(s, out, 10, &nread), MG_OK);
    CU_ASSERT_EQUAL(nread, 10);
    n -= 10;
    mg_purge();

    nread = 99;
    CU_ASSERT_EQUAL(mg_stream_read(s, out, sizeof out, &nread), MG_EAUTH);
    CU_ASSERT_EQUAL(nread, 0);
    CU_ASSERT_EQUAL(mg_stream_size(s), n);
    CU_ASSERT_PTR_NULL(mg_stream_next(s));
    CU_ASSERT_EQUAL(mg_last_error(), MG_EAUTH);
    CU_ASSERT_EQUAL(mg_stream_size(s), n);
    CU_ASSERT_PTR_NULL(mg_stream_flush(s));
    CU_ASSERT_EQUAL(mg_last_error(), MG_EAUTH);
    CU_ASSERT_EQUAL(mg_stream_size(s), n);

    /* Bytes written after the purge queue behind the old ones: still refused, still counted. */
    unsigned char more[10] = "after!!!!";
    CU_ASSERT_EQUAL(mg_stream_write(s, more, sizeof more), MG_OK);
    CU_ASSERT_EQUAL(mg_stream_size(s), n + sizeof more);
    nread = 99;
    CU_ASSERT_EQUAL(mg_stream_read(s, out, sizeof out, &nread), MG_EAUTH);
    CU_ASSERT_EQUAL(nread, 0);
    CU_ASSERT_PTR_NULL(mg_stream_flush(s));
    CU_ASSERT_EQUAL(mg_last_error(), MG_EAUTH);
    CU_ASSERT_EQUAL(mg_stream_size(s), n + sizeof more);
    mg_stream_free(s); /* frees the unopenable chunks: valgrind and ASan check for leaks */

    /* A stream written after the purge works. */
    s = stream_with_pattern(MG_STREAM_CHUNK + 1);
    mg_buffer *b = mg_stream_flush(s);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    CU_ASSERT_EQUAL(pattern_mismatches(mg_buffer_data(b), mg_buffer_size(b), 0), 0);
    mg_buffer_destroy(b);
    mg_stream_free(s);
}

/* ---- writers and readers on one stream at once ---- */

#define WRITERS 4
#define READERS 3
#define MAX_WRITE 40000
#define MAX_READ 50000

static unsigned char writer_value(unsigned w)
{
    return (unsigned char)(0xA1 + 0x11 * w); /* A1 B2 C3 D4: distinct and never 0 */
}

struct shared {
    mg_stream *s;
    unsigned iterations;
    atomic_bool writers_done;
    atomic_size_t written[WRITERS];
    atomic_size_t seen[256]; /* bytes read, by value */
    atomic_size_t errors;
};

struct worker {
    struct shared *sh;
    unsigned id;
};

static void *writer_main(void *arg)
{
    struct worker *w = arg;
    struct shared *sh = w->sh;
    uint64_t rng = 0x1234567890abcdefu + w->id;
    unsigned char *buf = malloc(MAX_WRITE);
    if (buf == NULL) {
        atomic_fetch_add(&sh->errors, 1);
        return NULL;
    }
    for (unsigned i = 0; i < sh->iterations; i++) {
        size_t n = 1 + (size_t)(xorshift(&rng) % MAX_WRITE);
        memset(buf, writer_value(w->id), n);
        if (mg_stream_write(sh->s, buf, n) != MG_OK || !all_zero(buf, n)) {
            atomic_fetch_add(&sh->errors, 1);
            continue;
        }
        atomic_fetch_add(&sh->written[w->id], n);
    }
    free(buf);
    return NULL;
}

static void count_bytes(size_t local[256], const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        local[p[i]]++;
}

/* Readers 0 and 1 read random-sized pieces, reader 2 takes whole chunks with mg_stream_next. */
static void *reader_main(void *arg)
{
    struct worker *w = arg;
    struct shared *sh = w->sh;
    uint64_t rng = 0xfedcba0987654321u + w->id;
    size_t local[256] = {0};
    unsigned char *buf = malloc(MAX_READ);
    if (buf == NULL) {
        atomic_fetch_add(&sh->errors, 1);
        return NULL;
    }
    for (;;) {
        size_t got = 0;
        int rc;
        if (w->id == 2) {
            mg_buffer *b = mg_stream_next(sh->s);
            rc = b == NULL ? mg_last_error() : MG_OK;
            if (b != NULL) {
                got = mg_buffer_size(b);
                count_bytes(local, mg_buffer_data(b), got);
                mg_buffer_destroy(b);
            }
        } else {
            rc = mg_stream_read(sh->s, buf, 1 + (size_t)(xorshift(&rng) % MAX_READ), &got);
            count_bytes(local, buf, got);
        }
        if (got > 0)
            continue;
        if (rc != MG_ENODATA) {
            atomic_fetch_add(&sh->errors, 1);
            break;
        }
        /* Empty: done once every writer has finished and nothing is left. */
        if (atomic_load(&sh->writers_done) && mg_stream_size(sh->s) == 0)
            break;
        sched_yield();
    }
    for (size_t v = 0; v < 256; v++)
        if (local[v] != 0)
            atomic_fetch_add(&sh->seen[v], local[v]);
    mg_wipe(buf, MAX_READ);
    free(buf);
    return NULL;
}

static void test_concurrent_writers_and_readers_lose_and_invent_nothing(void)
{
    static struct shared sh; /* zeroed */
    sh.s = mg_stream_new();
    CU_ASSERT_PTR_NOT_NULL_FATAL(sh.s);
    sh.iterations = under_valgrind() ? 25 : 300;
    pthread_t wt[WRITERS], rt[READERS];
    struct worker ww[WRITERS], rw[READERS];
    for (unsigned i = 0; i < READERS; i++) {
        rw[i] = (struct worker){&sh, i};
        CU_ASSERT_FATAL(pthread_create(&rt[i], NULL, reader_main, &rw[i]) == 0);
    }
    for (unsigned i = 0; i < WRITERS; i++) {
        ww[i] = (struct worker){&sh, i};
        CU_ASSERT_FATAL(pthread_create(&wt[i], NULL, writer_main, &ww[i]) == 0);
    }
    for (unsigned i = 0; i < WRITERS; i++)
        pthread_join(wt[i], NULL);
    atomic_store(&sh.writers_done, true);
    for (unsigned i = 0; i < READERS; i++)
        pthread_join(rt[i], NULL);

    size_t total_written = 0, total_read = 0, foreign = 0;
    for (unsigned w = 0; w < WRITERS; w++) {
        total_written += atomic_load(&sh.written[w]);
        /* Every writer's bytes came out, no more and no fewer. */
        CU_ASSERT_EQUAL(atomic_load(&sh.seen[writer_value(w)]), atomic_load(&sh.written[w]));
    }
    for (size_t v = 0; v < 256; v++) {
        total_read += atomic_load(&sh.seen[v]);
        bool a_writers = false;
        for (unsigned w = 0; w < WRITERS; w++)
            a_writers |= v == writer_value(w);
        if (!a_writers)
            foreign += atomic_load(&sh.seen[v]);
    }
    printf("\n    %u writers x %u writes, %u readers: %zu bytes written, %zu read\n", WRITERS, sh.iterations,
           READERS, total_written, total_read);
    CU_ASSERT_EQUAL(atomic_load(&sh.errors), 0);
    CU_ASSERT_EQUAL(foreign, 0);
    CU_ASSERT_EQUAL(total_read, total_written);
    CU_ASSERT_TRUE(total_written > 0);
    CU_ASSERT_EQUAL(mg_stream_size(sh.s), 0);
    mg_stream_free(sh.s);
}

/*
 * ---- mg_stream_flush racing mg_purge ----
 *
 * The header promises a thread-safe stream, and mg_purge may run at any time.
 * Each flusher thread flushes once and then stays alive, keeping its scratch
 * area, so every flush is its thread's first use of scratch memory and the
 * library has to make a new area (a new guarded buffer) in the middle of it.
 * Run in a child with an alarm: a deadlock kills the child with SIGALRM
 * instead of hanging the suite.
 */
static mg_stream *race_stream;
static atomic_bool race_stop;
static atomic_uint race_flushed;
static pthread_mutex_t race_park = PTHREAD_MUTEX_INITIALIZER;

static void *race_purger(void *arg)
{
    (void)arg;
    while (!atomic_load(&race_stop)) {
        mg_purge();
        if (under_valgrind())
            sched_yield(); /* valgrind runs one thread at a time: let the flushers run */
    }
    return NULL;
}

static void *race_flusher(void *arg)
{
    (void)arg;
    mg_buffer *b = mg_stream_flush(race_stream); /* MG_EAUTH after a purge, or the bytes */
    mg_buffer_destroy(b);
    atomic_fetch_add(&race_flushed, 1);
    pthread_mutex_lock(&race_park);
    pthread_mutex_unlock(&race_park);
    return NULL;
}

#define RACE_FLUSHERS 100
#define RACE_DEAD_HANDLES 500

static void flush_while_purging(void *arg)
{
    unsigned n = *(const unsigned *)arg;
    alarm(under_valgrind() ? 60 : 15);
    race_stream = mg_stream_new();
    unsigned char data[100];
    memset(data, 0x42, sizeof data);
    if (race_stream == NULL || mg_stream_write(race_stream, data, sizeof data) != MG_OK)
        _exit(3);
    /* Dead handles the purger visits on every pass: it spends most of its time in the registry. */
    static mg_buffer *dead[RACE_DEAD_HANDLES];
    for (size_t i = 0; i < RACE_DEAD_HANDLES; i++)
        dead[i] = mg_buffer_new(1);
    mg_purge();
    pthread_mutex_lock(&race_park);
    pthread_t purger, flushers[RACE_FLUSHERS];
    if (pthread_create(&purger, NULL, race_purger, NULL) != 0)
        _exit(4);
    for (unsigned i = 0; i < n; i++) {
        if (pthread_create(&flushers[i], NULL, race_flusher, NULL) != 0)
            _exit(5);
        while (atomic_load(&race_flushed) <= i)
            usleep(50);
    }
    atomic_store(&race_stop, true);
    pthread_mutex_unlock(&race_park);
    for (unsigned i = 0; i < n; i++)
        pthread_join(flushers[i], NULL);
    pthread_join(purger, NULL);
    mg_stream_free(race_stream);
    for (size_t i = 0; i < RACE_DEAD_HANDLES; i++)
        mg_buffer_destroy(dead[i]);
}

static void test_flush_racing_purge_does_not_deadlock(void)
{
    unsigned n = under_valgrind() ? 20 : RACE_FLUSHERS;
    int status = mgt_run_child(flush_while_purging, &n, NULL, 0);
    if (mgt_killed_by(status, SIGALRM))
        printf("\n    deadlock: the child made no progress until its alarm\n");
    else
        printf("\n    %u flushes during purges: %s\n", n, mgt_describe(status));
    CU_ASSERT_TRUE(mgt_exited_ok(status));
}

/*
 * ---- a scanner for plaintext left in this process's readable memory ----
 *
 * The marker is 64 random-looking bytes produced by a small PRNG (splitmix64)
 * from a random 8-byte seed. The test never keeps the marker whole: it is
 * generated straight into the buffer handed to the stream (which wipes it),
 * and the scanner recognises it by regenerating it byte by byte from the seed
 * and comparing on the fly, stopping at the first difference. So the only
 * copies the scanner can find are ones made by the code under test (or, in
 * the positive controls, ones the test made on purpose and then wipes).
 *
 * Memory is read with process_vm_readv (or pread on /proc/self/mem if that
 * is not allowed), which fails cleanly on unreadable pages instead of
 * faulting. It walks /proc/self/maps, reads every readable range except
 * [vvar]/[vvar_vclock]/[vsyscall], ranges above 4 GiB (only sanitizer shadow
 * reservations are that large) and the scanner's own window, in windows that
 * overlap by 63 bytes so a marker across a window edge is still seen.
 */

#define MARKER_LEN 64
#define SCAN_WINDOW (4 * MIB)
#define SCAN_MAX_RANGE ((uintptr_t)4 << 30)

static unsigned char marker_next(uint64_t *state)
{
    uint64_t z = (*state += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return (unsigned char)((z ^ (z >> 31)) >> 56);
}

static void marker_fill(unsigned char *dst, uint64_t seed)
{
    for (size_t i = 0; i < MARKER_LEN; i++)
        dst[i] = marker_next(&seed);
}

static bool marker_at(const unsigned char *p, uint64_t seed)
{
    for (size_t i = 0; i < MARKER_LEN; i++)
        if (p[i] != marker_next(&seed))
            return false;
    return true;
}

/* A random seed whose marker does not start with 0x00 or 0xFF (common bytes make the scan slow). */
static uint64_t marker_seed(void)
{
    for (;;) {
        uint64_t seed, st;
        CU_ASSERT_FATAL(mg_scramble(&seed, sizeof seed) == MG_OK);
        st = seed;
        unsigned char first = marker_next(&st);
        if (first != 0x00 && first != 0xFF)
            return seed;
    }
}

struct scan {
    uint64_t seed;
    unsigned char first;
    unsigned char *win; /* SCAN_WINDOW bytes, its own mapping */
    int mem_fd;         /* /proc/self/mem, if process_vm_readv is refused */
    size_t found, bytes, unreadable_pages, skipped_ranges;
};

static size_t read_self(struct scan *sc, uintptr_t addr, unsigned char *dst, size_t len)
{
    if (sc->mem_fd < 0) {
        struct iovec local = {dst, len}, remote = {(void *)addr, len};
        ssize_t n = process_vm_readv(getpid(), &local, 1, &remote, 1, 0);
        if (n >= 0)
            return (size_t)n;
        if (errno != ENOSYS && errno != EPERM)
            return 0;
        sc->mem_fd = open("/proc/self/mem", O_RDONLY | O_CLOEXEC);
        if (sc->mem_fd < 0)
            return 0;
    }
    ssize_t n = pread(sc->mem_fd, dst, len, (off_t)addr);
    return n > 0 ? (size_t)n : 0;
}

/* Read [lo, hi) into the window, page by page where a page cannot be read (left zero). */
static void read_window(struct scan *sc, uintptr_t lo, size_t len)
{
    size_t got = read_self(sc, lo, sc->win, len);
    if (got == len)
        return;
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    for (size_t off = got - got % page; off < len; off += page) {
        size_t n = len - off < page ? len - off : page;
        if (read_self(sc, lo + off, sc->win + off, n) != n) {
            memset(sc->win + off, 0, n);
            sc->unreadable_pages++;
        }
    }
}

static void scan_range(struct scan *sc, uintptr_t lo, uintptr_t hi)
{
    for (uintptr_t at = lo; hi - at >= MARKER_LEN;) {
        size_t len = hi - at < SCAN_WINDOW ? (size_t)(hi - at) : SCAN_WINDOW;
        read_window(sc, at, len);
        sc->bytes += len;
        const unsigned char *p = sc->win, *end = sc->win + len - MARKER_LEN + 1;
        while (p < end && (p = memchr(p, sc->first, (size_t)(end - p))) != NULL) {
            sc->found += marker_at(p, sc->seed);
            p++;
        }
        if (at + len >= hi)
            break;
        at += len - (MARKER_LEN - 1);
    }
}

/* How many times the marker of seed occurs in this process's readable memory. */
static size_t count_marker(uint64_t seed)
{
    struct scan sc = {.seed = seed, .mem_fd = -1};
    uint64_t st = seed;
    sc.first = marker_next(&st);
    void *win = mmap(NULL, SCAN_WINDOW, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CU_ASSERT_FATAL(win != MAP_FAILED);
    sc.win = win;
    uintptr_t w0 = (uintptr_t)win, w1 = w0 + SCAN_WINDOW;
    FILE *maps = fopen("/proc/self/maps", "r");
    CU_ASSERT_PTR_NOT_NULL_FATAL(maps);
    char line[512];
    while (fgets(line, sizeof line, maps) != NULL) {
        uintptr_t lo, hi;
        char perms[8];
        int path_at = 0;
        if (sscanf(line, "%" SCNxPTR "-%" SCNxPTR " %7s %*s %*s %*s %n", &lo, &hi, perms, &path_at) < 3)
            continue;
        const char *path = path_at > 0 ? line + path_at : "";
        if (perms[0] != 'r' || strstr(path, "[vvar") != NULL || strstr(path, "[vsyscall]") != NULL)
            continue;
        if (hi - lo > SCAN_MAX_RANGE) {
            sc.skipped_ranges++;
            continue;
        }
        /* Leave out the scanner's own window (it holds copies the scanner made). */
        if (lo < w0)
            scan_range(&sc, lo, hi < w0 ? hi : w0);
        if (hi > w1)
            scan_range(&sc, lo > w1 ? lo : w1, hi);
    }
    fclose(maps);
    mg_wipe(win, SCAN_WINDOW);
    munmap(win, SCAN_WINDOW);
    if (sc.mem_fd >= 0)
        close(sc.mem_fd);
    printf("\n    scanned %zu MiB (%zu pages unreadable, %zu huge ranges skipped): marker found %zu times",
           sc.bytes / MIB, sc.unreadable_pages, sc.skipped_ranges, sc.found);
    CU_ASSERT_TRUE(sc.bytes > 0);
    return sc.found;
}

/* Positive control: the scanner finds a marker in ordinary heap memory, and not once it is wiped. */
static void test_scanner_finds_a_marker_in_ordinary_memory(void)
{
    uint64_t seed = marker_seed();
    CU_ASSERT_EQUAL(count_marker(seed), 0);
    unsigned char *heap = malloc(MARKER_LEN);
    CU_ASSERT_PTR_NOT_NULL_FATAL(heap);
    marker_fill(heap, seed);
    CU_ASSERT_TRUE(count_marker(seed) >= 1);
    mg_wipe(heap, MARKER_LEN);
    CU_ASSERT_EQUAL(count_marker(seed), 0);
    free(heap);
    printf("\n");
}

static void test_stream_keeps_no_plaintext_in_readable_memory(void)
{
    uint64_t seed = marker_seed();
    mg_stream *s = mg_stream_new();
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);

    /* Written: only the sealed chunk exists; the caller's copy is wiped. */
    unsigned char *heap = malloc(MARKER_LEN);
    CU_ASSERT_PTR_NOT_NULL_FATAL(heap);
    marker_fill(heap, seed);
    CU_ASSERT_EQUAL(mg_stream_write(s, heap, MARKER_LEN), MG_OK);
    CU_ASSERT_TRUE(all_zero(heap, MARKER_LEN));
    CU_ASSERT_EQUAL(count_marker(seed), 0);

    /* Control with this very marker: read back into the heap, it is found, so the stream held it. */
    size_t nread = 0;
    CU_ASSERT_EQUAL(mg_stream_read(s, heap, MARKER_LEN, &nread), MG_OK);
    CU_ASSERT_EQUAL(nread, MARKER_LEN);
    CU_ASSERT_TRUE(marker_at(heap, seed));
    CU_ASSERT_TRUE(count_marker(seed) >= 1);
    /* Reading left no other copy behind: once the reader wipes its own, none is left. */
    mg_wipe(heap, MARKER_LEN);
    CU_ASSERT_EQUAL(count_marker(seed), 0);

    /* The same through a partial read (the rest is re-sealed), mg_stream_next and mg_stream_flush. */
    for (int how = 0; how < 3; how++) {
        marker_fill(heap, seed);
        CU_ASSERT_EQUAL(mg_stream_write(s, heap, MARKER_LEN), MG_OK);
        mg_buffer *b = NULL;
        if (how == 0) {
            b = mg_buffer_new(MARKER_LEN);
            CU_ASSERT_PTR_NOT_NULL_FATAL(b);
            unsigned char *p = mg_buffer_data(b);
            CU_ASSERT_EQUAL(mg_stream_read(s, p, 10, &nread), MG_OK);
            CU_ASSERT_EQUAL(mg_stream_read(s, p + 10, MARKER_LEN - 10, &nread), MG_OK);
            CU_ASSERT_EQUAL(nread, MARKER_LEN - 10);
        } else {
            b = how == 1 ? mg_stream_next(s) : mg_stream_flush(s);
            CU_ASSERT_PTR_NOT_NULL_FATAL(b);
        }
        CU_ASSERT_EQUAL(mg_buffer_size(b), MARKER_LEN);
        CU_ASSERT_TRUE(marker_at(mg_buffer_data(b), seed));
        /* Control: the scanner reads guarded memory too (memfd_secret pages it cannot read). */
        if (how == 1 && mg_get_backend() == MG_BACKEND_ANON)
            CU_ASSERT_TRUE(count_marker(seed) >= 1);
        mg_buffer_destroy(b);
        CU_ASSERT_EQUAL(count_marker(seed), 0);
    }
    CU_ASSERT_EQUAL(mg_stream_size(s), 0);
    free(heap);
    mg_stream_free(s);
    printf("\n");
}

static CU_TestInfo stream_tests[] = {
    {"read in random pieces returns exactly what was written",
     test_read_in_random_pieces_returns_exactly_what_was_written},
    {"next returns chunks of at most MG_STREAM_CHUNK that add up",
     test_next_returns_chunks_of_at_most_MG_STREAM_CHUNK_that_add_up},
    {"flush returns everything in one frozen buffer", test_flush_returns_everything_in_one_frozen_buffer},
    {"write wipes the caller's data", test_write_wipes_the_callers_data},
    {"size tracks the bytes held through mixed reads", test_size_tracks_the_bytes_held_through_mixed_reads},
    {"an empty stream gives MG_ENODATA and nread 0", test_empty_stream_gives_ENODATA_and_nread_0},
    {"NULL arguments give MG_EINVAL", test_null_arguments_give_EINVAL},
    {"purge makes old chunks fail with MG_EAUTH and loses nothing",
     test_purge_makes_old_chunks_fail_with_EAUTH_and_loses_nothing},
    {"concurrent writers and readers lose and invent nothing",
     test_concurrent_writers_and_readers_lose_and_invent_nothing},
    {"flush racing purge does not deadlock", test_flush_racing_purge_does_not_deadlock},
    {"the scanner finds a marker in ordinary memory", test_scanner_finds_a_marker_in_ordinary_memory},
    {"the stream keeps no plaintext in readable memory", test_stream_keeps_no_plaintext_in_readable_memory},
    CU_TEST_INFO_NULL,
};

int main(void)
{
    CU_SuiteInfo suites[] = {
        {"stream", NULL, NULL, NULL, NULL, stream_tests},
        CU_SUITE_INFO_NULL,
    };
    return mgt_main(suites);
}
