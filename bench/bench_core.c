/*
 * bench_core: micro-benchmarks of memguard's core against plain libsodium,
 * measured in the same run so that the ratios are comparable.
 *
 * Every row runs NBATCH batches of N operations for memguard and for its
 * baseline, interleaved (mg, base, base, mg, ...) so that drift of the
 * machine hits both sides alike. N is calibrated per operation so that one
 * batch takes about 30 ms (3 ms with --quick). A row shows the median time
 * per operation and the ratio memguard / baseline.
 *
 * Usage: bench_core [--quick]
 *   --quick  about 10x fewer iterations (a smoke run; numbers are noisier).
 *
 * Exits 0 whatever the numbers are (it is a benchmark, not a test); exits 1
 * if a memguard or libsodium call fails, 2 on a bad argument.
 */
#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <memguard/memguard.h>

#include "harness.h"

#define KIB 1024u
#define CHUNK MG_STREAM_CHUNK /* 16 KiB */
#define NONCE crypto_secretbox_NONCEBYTES
#define MAC crypto_secretbox_MACBYTES

/* The performance targets (see README.md). */
#define TARGET_BUFFER_RATIO 1.0
#define TARGET_WITH32_NS 3000.0
#define TARGET_SCALING 1.8

static struct {
    bool quick;
    double thread_ns;  /* duration of one scaling run */
    int thread_rounds; /* scaling runs per configuration (median taken) */
} cfg;

/* Results that nothing reads, so that the compiler cannot drop the work. */
static volatile unsigned sink;

/* ---- failure: a benchmark whose calls fail measures nothing ---- */

static _Noreturn void die_mg(const char *what)
{
    int code = mg_last_error();
    fprintf(stderr, "bench_core: %s failed (error %d): %s\n", what, code, mg_last_error_message());
    exit(1);
}

static _Noreturn void die_base(const char *what)
{
    fprintf(stderr, "bench_core: baseline %s failed\n", what);
    exit(1);
}

/* ---- shared fixtures ---- */

/* One plaintext, sealed both ways, per benchmarked size. */
struct fixture {
    size_t size;
    unsigned char *plain;      /* reference plaintext (ordinary memory) */
    unsigned char *src;        /* scratch source for seal/write (they wipe it) */
    unsigned char *out;        /* ordinary output for stream reads */
    mg_enclave *enclave;       /* plain sealed by memguard */
    unsigned char nonce[NONCE];
    unsigned char *box;        /* plain sealed by crypto_secretbox_easy: MAC | ciphertext */
};

static unsigned char *base_key; /* the baseline's key, in sodium_malloc'd memory */

static void *xmalloc(size_t n)
{
    void *p = malloc(n);
    if (p == NULL)
        die_base("malloc");
    return p;
}

static void fixture_init(struct fixture *f, size_t size)
{
    f->size = size;
    f->plain = xmalloc(size);
    f->src = xmalloc(size);
    f->out = xmalloc(size);
    f->box = xmalloc(MAC + size);
    randombytes_buf(f->plain, size);
    memcpy(f->src, f->plain, size);
    f->enclave = mg_enclave_new(f->src, size);
    if (f->enclave == NULL)
        die_mg("mg_enclave_new (fixture)");
    randombytes_buf(f->nonce, NONCE);
    if (crypto_secretbox_easy(f->box, f->plain, size, f->nonce, base_key) != 0)
        die_base("crypto_secretbox_easy (fixture)");
}

static void fixture_free(struct fixture *f)
{
    mg_enclave_free(f->enclave);
    free(f->plain);
    free(f->src);
    free(f->out);
    free(f->box);
}

/* ---- the operations: each runs n iterations ---- */

static void op_mg_buffer(void *ctx, size_t n)
{
    const struct fixture *f = ctx;
    for (size_t i = 0; i < n; i++) {
        mg_buffer *b = mg_buffer_new(f->size);
        if (b == NULL)
            die_mg("mg_buffer_new");
        mg_buffer_destroy(b);
    }
}

static void op_base_buffer(void *ctx, size_t n)
{
    const struct fixture *f = ctx;
    for (size_t i = 0; i < n; i++) {
        void *p = sodium_malloc(f->size);
        if (p == NULL)
            die_base("sodium_malloc");
        sodium_free(p);
    }
}

static void op_mg_open(void *ctx, size_t n)
{
    const struct fixture *f = ctx;
    for (size_t i = 0; i < n; i++) {
        mg_buffer *b = mg_enclave_open(f->enclave);
        if (b == NULL)
            die_mg("mg_enclave_open");
        mg_buffer_destroy(b);
    }
}

static int touch_first(const void *data, size_t size, void *arg)
{
    (void)size;
    *(unsigned *)arg += ((const unsigned char *)data)[0];
    return 0;
}

static void op_mg_with(void *ctx, size_t n)
{
    const struct fixture *f = ctx;
    unsigned acc = 0;
    for (size_t i = 0; i < n; i++) {
        int rc = mg_enclave_with(f->enclave, touch_first, &acc);
        if (rc != MG_OK)
            die_mg("mg_enclave_with");
    }
    sink += acc;
}

/* The baseline of both open and with: sodium_malloc + crypto_secretbox_open_easy + sodium_free. */
static void op_base_open(void *ctx, size_t n)
{
    const struct fixture *f = ctx;
    unsigned acc = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char *p = sodium_malloc(f->size);
        if (p == NULL)
            die_base("sodium_malloc");
        if (crypto_secretbox_open_easy(p, f->box, MAC + f->size, f->nonce, base_key) != 0)
            die_base("crypto_secretbox_open_easy");
        acc += p[0];
        sodium_free(p);
    }
    sink += acc;
}

static void op_mg_seal(void *ctx, size_t n)
{
    const struct fixture *f = ctx;
    for (size_t i = 0; i < n; i++) {
        memcpy(f->src, f->plain, f->size); /* mg_enclave_new wipes its source */
        mg_enclave *e = mg_enclave_new(f->src, f->size);
        if (e == NULL)
            die_mg("mg_enclave_new");
        mg_enclave_free(e);
    }
}

/* The same copy, a random nonce, crypto_secretbox_easy into malloc'd nonce|MAC|ciphertext, free. */
static void op_base_seal(void *ctx, size_t n)
{
    const struct fixture *f = ctx;
    unsigned acc = 0;
    for (size_t i = 0; i < n; i++) {
        memcpy(f->src, f->plain, f->size);
        unsigned char *box = malloc(NONCE + MAC + f->size);
        if (box == NULL)
            die_base("malloc");
        randombytes_buf(box, NONCE);
        if (crypto_secretbox_easy(box + NONCE, f->src, f->size, box, base_key) != 0)
            die_base("crypto_secretbox_easy");
        acc += box[NONCE];
        free(box);
    }
    sink += acc;
}

struct stream_ctx {
    struct fixture *f;
    mg_stream *s;
};

static void op_mg_stream(void *ctx, size_t n)
{
    struct stream_ctx *c = ctx;
    struct fixture *f = c->f;
    unsigned acc = 0;
    for (size_t i = 0; i < n; i++) {
        memcpy(f->src, f->plain, CHUNK); /* mg_stream_write wipes its source */
        if (mg_stream_write(c->s, f->src, CHUNK) != MG_OK)
            die_mg("mg_stream_write");
        size_t got = 0;
        if (mg_stream_read(c->s, f->out, CHUNK, &got) != MG_OK)
            die_mg("mg_stream_read");
        if (got != CHUNK) {
            fprintf(stderr, "bench_core: mg_stream_read returned %zu bytes, expected %u\n", got, CHUNK);
            exit(1);
        }
        acc += f->out[0];
    }
    sink += acc;
}

/* The same copy, then seal into a malloc'd chunk and open it into the same output. */
static void op_base_stream(void *ctx, size_t n)
{
    struct stream_ctx *c = ctx;
    struct fixture *f = c->f;
    unsigned acc = 0;
    for (size_t i = 0; i < n; i++) {
        memcpy(f->src, f->plain, CHUNK);
        unsigned char *box = malloc(NONCE + MAC + CHUNK);
        if (box == NULL)
            die_base("malloc");
        randombytes_buf(box, NONCE);
        if (crypto_secretbox_easy(box + NONCE, f->src, CHUNK, box, base_key) != 0)
            die_base("crypto_secretbox_easy");
        if (crypto_secretbox_open_easy(f->out, box + NONCE, MAC + CHUNK, box, base_key) != 0)
            die_base("crypto_secretbox_open_easy");
        acc += f->out[0];
        free(box);
    }
    sink += acc;
}

/* Helpers that the rows above spend time in, against their libsodium/libc counterparts. */
static void op_mg_copy(void *ctx, size_t n)
{
    const struct fixture *f = ctx;
    for (size_t i = 0; i < n; i++) {
        mg_copy(f->out, f->plain, f->size);
        __asm__ volatile("" : : "r"(f->out) : "memory");
    }
}

static void op_memcpy(void *ctx, size_t n)
{
    const struct fixture *f = ctx;
    for (size_t i = 0; i < n; i++) {
        memcpy(f->out, f->plain, f->size);
        __asm__ volatile("" : : "r"(f->out) : "memory");
    }
}

static void op_mg_equal(void *ctx, size_t n)
{
    const struct fixture *f = ctx;
    unsigned acc = 0;
    for (size_t i = 0; i < n; i++) {
        acc += (unsigned)mg_equal(f->plain, f->src, f->size);
        __asm__ volatile("" : : "r"(f->src) : "memory");
    }
    sink += acc;
}

static void op_sodium_memcmp(void *ctx, size_t n)
{
    const struct fixture *f = ctx;
    unsigned acc = 0;
    for (size_t i = 0; i < n; i++) {
        acc += (unsigned)sodium_memcmp(f->plain, f->src, f->size);
        __asm__ volatile("" : : "r"(f->src) : "memory");
    }
    sink += acc;
}

/* ---- 2-thread scaling over a shared enclave ---- */

enum worker_mode { MODE_MG_WITH, MODE_RAW_OPEN };

struct worker {
    _Alignas(64) pthread_t thread; /* one cache line per worker: no false sharing here */
    enum worker_mode mode;
    const struct fixture *f;
    uint64_t ops;
    uint64_t ns;
};

static struct worker workers[2];
static pthread_barrier_t start_line;
static atomic_bool stop_flag;

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    const struct fixture *f = w->f;
    unsigned acc = 0;
    unsigned char out[64];
    /* Warm up outside the timed part: the first mg_enclave_with of a thread takes its scratch area. */
    if (w->mode == MODE_MG_WITH && mg_enclave_with(f->enclave, touch_first, &acc) != MG_OK)
        die_mg("mg_enclave_with (worker)");
    pthread_barrier_wait(&start_line);
    uint64_t ops = 0, t0 = bench_now_ns();
    while (!atomic_load_explicit(&stop_flag, memory_order_relaxed)) {
        for (int i = 0; i < 32; i++) {
            if (w->mode == MODE_MG_WITH) {
                if (mg_enclave_with(f->enclave, touch_first, &acc) != MG_OK)
                    die_mg("mg_enclave_with (worker)");
            } else {
                if (crypto_secretbox_open_easy(out, f->box, MAC + f->size, f->nonce, base_key) != 0)
                    die_base("crypto_secretbox_open_easy (worker)");
                acc += out[0];
            }
        }
        ops += 32;
    }
    w->ns = bench_now_ns() - t0;
    w->ops = ops;
    sink += acc;
    return NULL;
}

/* Total operations per second of nthreads threads looping for cfg.thread_ns. */
static double run_threads(int nthreads, enum worker_mode mode, const struct fixture *f)
{
    if (pthread_barrier_init(&start_line, NULL, (unsigned)nthreads + 1) != 0)
        die_base("pthread_barrier_init");
    atomic_store(&stop_flag, false);
    for (int i = 0; i < nthreads; i++) {
        workers[i].mode = mode;
        workers[i].f = f;
        workers[i].ops = workers[i].ns = 0;
        if (pthread_create(&workers[i].thread, NULL, worker_main, &workers[i]) != 0)
            die_base("pthread_create");
    }
    pthread_barrier_wait(&start_line);
    struct timespec d = {(time_t)(cfg.thread_ns / 1e9), (long)((uint64_t)cfg.thread_ns % 1000000000u)};
    while (nanosleep(&d, &d) != 0 && errno == EINTR)
        ;
    atomic_store(&stop_flag, true);
    double rate = 0;
    for (int i = 0; i < nthreads; i++) {
        pthread_join(workers[i].thread, NULL);
        rate += (double)workers[i].ops * 1e9 / (double)(workers[i].ns ? workers[i].ns : 1);
    }
    pthread_barrier_destroy(&start_line);
    return rate;
}

/* ops/s with 1 and with 2 threads, for memguard and for raw libsodium (the machine's own scaling). */
struct scaling_result {
    double mg1, mg2, raw1, raw2; /* median ops/s */
    double mg_x, raw_x;          /* median over rounds of (2-thread ops/s) / (1-thread ops/s) */
};

/* Medians over cfg.thread_rounds rounds; each round runs all four, so all see the same machine. */
static void scaling(const struct fixture *f, struct scaling_result *r)
{
    enum { MAX_ROUNDS = 8 };
    double mg1[MAX_ROUNDS], mg2[MAX_ROUNDS], raw1[MAX_ROUNDS], raw2[MAX_ROUNDS];
    double mgx[MAX_ROUNDS], rawx[MAX_ROUNDS];
    int rounds = cfg.thread_rounds < MAX_ROUNDS ? cfg.thread_rounds : MAX_ROUNDS;
    for (int i = 0; i < rounds; i++) {
        mg1[i] = run_threads(1, MODE_MG_WITH, f);
        mg2[i] = run_threads(2, MODE_MG_WITH, f);
        raw1[i] = run_threads(1, MODE_RAW_OPEN, f);
        raw2[i] = run_threads(2, MODE_RAW_OPEN, f);
        mgx[i] = mg2[i] / mg1[i];
        rawx[i] = raw2[i] / raw1[i];
    }
    r->mg_x = bench_median(mgx, (size_t)rounds);
    r->raw_x = bench_median(rawx, (size_t)rounds);
    r->mg1 = bench_median(mg1, (size_t)rounds);
    r->mg2 = bench_median(mg2, (size_t)rounds);
    r->raw1 = bench_median(raw1, (size_t)rounds);
    r->raw2 = bench_median(raw2, (size_t)rounds);
}

/* ---- output ---- */

static void fmt_rate(char *buf, size_t len, double per_s, const char *unit)
{
    snprintf(buf, len, "%.2f M%s", per_s / 1e6, unit);
}

static void print_header_row(void)
{
    printf("%-40s | %12s | %12s | %6s | %s\n", "operation", "memguard", "baseline", "ratio", "IQR mg/base");
    printf("%.40s-+-%.12s-+-%.12s-+-%.6s-+-%s\n", "----------------------------------------",
           "------------", "------------", "------", "------------");
}

static double time_row(const char *name, const bench_sample *m, const bench_sample *b)
{
    char tm[32], tb[32];
    bench_fmt_time(tm, sizeof tm, m->med);
    bench_fmt_time(tb, sizeof tb, b->med);
    double ratio = m->med / b->med;
    printf("%-40s | %12s | %12s | %5.2fx | %4.1f%% / %4.1f%%\n", name, tm, tb, ratio, bench_spread(m), bench_spread(b));
    fflush(stdout);
    return ratio;
}

static void rate_row(const char *name, double mg, double base, double ratio, const char *unit)
{
    char rm[32], rb[32];
    fmt_rate(rm, sizeof rm, mg, unit);
    fmt_rate(rb, sizeof rb, base, unit);
    printf("%-40s | %12s | %12s | %5.2fx |\n", name, rm, rb, ratio);
    fflush(stdout);
}

static void usage(const char *argv0)
{
    fprintf(stderr, "usage: %s [--quick]\n", argv0);
}

/* ---- sanity: the benchmarked calls really return the plaintext ---- */

static int equal_cb(const void *data, size_t size, void *arg)
{
    const struct fixture *f = arg;
    return size == f->size && memcmp(data, f->plain, size) == 0 ? 0 : 1;
}

static void check_fixture(const struct fixture *f)
{
    if (mg_enclave_with(f->enclave, equal_cb, (void *)(uintptr_t)f) != MG_OK) {
        fprintf(stderr, "bench_core: mg_enclave_with did not return the sealed plaintext\n");
        exit(1);
    }
    mg_buffer *b = mg_enclave_open(f->enclave);
    if (b == NULL)
        die_mg("mg_enclave_open (check)");
    if (!mg_buffer_equal(b, f->plain, f->size)) {
        fprintf(stderr, "bench_core: mg_enclave_open did not return the sealed plaintext\n");
        exit(1);
    }
    mg_buffer_destroy(b);
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            cfg.quick = true;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(argv[0]);
            return 0;
        } else {
            usage(argv[0]);
            return 2;
        }
    }
    bench_timing.batch_ns = cfg.quick ? 3e6 : 30e6;
    bench_timing.calib_ns = cfg.quick ? 0.5e6 : 5e6;
    cfg.thread_ns = cfg.quick ? 40e6 : 200e6;
    cfg.thread_rounds = cfg.quick ? 3 : 7;

    if (sodium_init() < 0)
        die_base("sodium_init");
    if (mg_init() != MG_OK)
        die_mg("mg_init");
    /* mg_set_rekey_interval is deliberately not called: the coffer keeps its default interval. */

    base_key = sodium_malloc(crypto_secretbox_KEYBYTES);
    if (base_key == NULL)
        die_base("sodium_malloc (key)");
    crypto_secretbox_keygen(base_key);

    static const size_t sizes[3] = {32, KIB, 16 * KIB};
    struct fixture fx[3];
    for (int i = 0; i < 3; i++) {
        fixture_init(&fx[i], sizes[i]);
        check_fixture(&fx[i]);
    }
    struct fixture fx4096;
    fixture_init(&fx4096, 4096);
    mg_stats st0 = mg_get_stats();

    printf("bench_core: memguard %s, libsodium %s, %s build (%s), backend %s, page %ld B, %ld CPUs online\n",
           MG_VERSION_STRING, sodium_version_string(), BENCH_BUILD_TYPE, BENCH_COMPILER,
           mg_backend_name(mg_get_backend()), sysconf(_SC_PAGESIZE), sysconf(_SC_NPROCESSORS_ONLN));
    bench_print_conditions(cfg.quick);
    printf("re-key: mg_set_rekey_interval not called, the library default (500 ms) stands: "
           "the coffer's re-key timer runs as in production\n");
    printf("ratio = memguard / baseline time per op (lower is better); rate rows: memguard / baseline "
           "(higher is better)\n\n");
    print_header_row();

    bench_sample m, b;
    double buf_ratio[2];

    /* Guarded buffers. */
    bench_measure_pair(op_mg_buffer, &fx[0], op_base_buffer, &fx[0], &m, &b);
    buf_ratio[0] = time_row("buffer new+destroy 32 B", &m, &b);
    bench_measure_pair(op_mg_buffer, &fx4096, op_base_buffer, &fx4096, &m, &b);
    buf_ratio[1] = time_row("buffer new+destroy 4096 B", &m, &b);

    /* Opening an enclave into a guarded buffer. */
    static const char *const open_names[3] = {"enclave_open+destroy 32 B", "enclave_open+destroy 1 KiB",
                                              "enclave_open+destroy 16 KiB"};
    for (int i = 0; i < 3; i++) {
        bench_measure_pair(op_mg_open, &fx[i], op_base_open, &fx[i], &m, &b);
        time_row(open_names[i], &m, &b);
    }

    /* Scoped access. */
    static const char *const with_names[3] = {"enclave_with 32 B", "enclave_with 1 KiB", "enclave_with 16 KiB"};
    double with32 = 0;
    for (int i = 0; i < 3; i++) {
        bench_measure_pair(op_mg_with, &fx[i], op_base_open, &fx[i], &m, &b);
        time_row(with_names[i], &m, &b);
        if (i == 0)
            with32 = m.med;
    }

    /* Sealing. */
    static const char *const seal_names[3] = {"seal (copy+enclave_new+free) 32 B", "seal (copy+enclave_new+free) 1 KiB",
                                              "seal (copy+enclave_new+free) 16 KiB"};
    for (int i = 0; i < 3; i++) {
        bench_measure_pair(op_mg_seal, &fx[i], op_base_seal, &fx[i], &m, &b);
        time_row(seal_names[i], &m, &b);
    }

    /* Streams: one 16 KiB chunk in and out. */
    struct stream_ctx sc = {&fx[2], mg_stream_new()};
    if (sc.s == NULL)
        die_mg("mg_stream_new");
    bench_measure_pair(op_mg_stream, &sc, op_base_stream, &sc, &m, &b);
    time_row("stream write+read 16 KiB", &m, &b);
    rate_row("  stream throughput (16 KiB in + out)", (double)CHUNK * 1e9 / m.med, (double)CHUNK * 1e9 / b.med,
             b.med / m.med, "B/s");
    if (mg_stream_size(sc.s) != 0) {
        fprintf(stderr, "bench_core: the stream is not empty after the benchmark\n");
        return 1;
    }
    mg_stream_free(sc.s);

    /* Scaling with threads over one shared 32-byte enclave. */
    struct scaling_result sr;
    scaling(&fx[0], &sr);
    rate_row("enclave_with 32 B: 2 threads vs 1", sr.mg2, sr.mg1, sr.mg_x, "op/s");
    rate_row("  machine: secretbox_open 32 B 2 vs 1", sr.raw2, sr.raw1, sr.raw_x, "op/s");

    /* Helpers the rows above spend time in (buffer canaries, stream reads). */
    memcpy(fx[2].src, fx[2].plain, fx[2].size);
    memcpy(fx4096.src, fx4096.plain, fx4096.size);
    bench_measure_pair(op_mg_copy, &fx[2], op_memcpy, &fx[2], &m, &b);
    time_row("helper: mg_copy vs memcpy 16 KiB", &m, &b);
    bench_measure_pair(op_mg_equal, &fx4096, op_sodium_memcmp, &fx4096, &m, &b);
    time_row("helper: mg_equal vs sodium_memcmp 4 KiB", &m, &b);

    mg_stats st1 = mg_get_stats();
    printf("\ncoffer re-keys during the run: %llu (the timer thread ran); load average (1 min) at end: %.2f\n",
           st1.rekeys - st0.rekeys, bench_loadavg());
    printf("scaling rows: memguard column = ops/s of 2 threads, baseline column = ops/s of 1 thread, each thread\n"
           "  looping over the same shared enclave (key) for %.0f ms; medians of %d rounds (ratio: median of the\n"
           "  rounds' own 2-vs-1 ratios). The machine row does the same with bare crypto_secretbox_open_easy:\n"
           "  the most any code can scale on this machine at the moment.\n\n",
           cfg.thread_ns / 1e6, cfg.thread_rounds);

    double worst = buf_ratio[0] > buf_ratio[1] ? buf_ratio[0] : buf_ratio[1];
    printf("target: buffer new+destroy <= %.2fx libsodium (32 B %.2fx, 4096 B %.2fx): %s\n", TARGET_BUFFER_RATIO,
           buf_ratio[0], buf_ratio[1], bench_verdict(worst, TARGET_BUFFER_RATIO));
    char t[32];
    bench_fmt_time(t, sizeof t, with32);
    printf("target: mg_enclave_with 32 B median < %.0f us (%s): %s\n", TARGET_WITH32_NS / 1e3, t,
           with32 < TARGET_WITH32_NS ? "PASS" : "MISS");
    printf("target: 2-thread scaling of mg_enclave_with 32 B >= %.2fx (%.2fx; bare libsodium %.2fx, so memguard gets "
           "%.0f%% of what this machine gives): %s\n",
           TARGET_SCALING, sr.mg_x, sr.raw_x, 100.0 * sr.mg_x / sr.raw_x, sr.mg_x >= TARGET_SCALING ? "PASS" : "MISS");
    if (sr.raw_x < TARGET_SCALING)
        printf("  note: bare libsodium itself scales below %.2fx here (fewer than 2 free CPUs, or vCPUs sharing a\n"
               "  core): the scaling verdict is about this machine, not about memguard\n",
               TARGET_SCALING);

    for (int i = 0; i < 3; i++)
        fixture_free(&fx[i]);
    fixture_free(&fx4096);
    sodium_free(base_key);
    return 0;
}
