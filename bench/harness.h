/*
 * The timing harness shared by the benchmarks: a monotonic clock, batches of
 * N operations (N calibrated so that a batch takes bench_timing.batch_ns),
 * BENCH_NBATCH batches per side interleaved (a, b, b, a, ...) so that drift of
 * the machine hits both sides alike, medians, and the lines every report
 * prints. Each benchmark keeps its own rows, columns and targets.
 */
#ifndef MG_BENCH_HARNESS_H
#define MG_BENCH_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifndef BENCH_BUILD_TYPE
#define BENCH_BUILD_TYPE "unknown"
#endif

#if defined(__clang__)
#define BENCH_STR_(x) #x
#define BENCH_STR(x) BENCH_STR_(x)
#define BENCH_COMPILER \
    "clang " BENCH_STR(__clang_major__) "." BENCH_STR(__clang_minor__) "." BENCH_STR(__clang_patchlevel__)
#elif defined(__GNUC__)
#define BENCH_COMPILER "gcc " __VERSION__
#else
#define BENCH_COMPILER "unknown compiler"
#endif

#define BENCH_NBATCH 15

/* Set by each benchmark's main before measuring. */
extern struct bench_timing {
    double batch_ns; /* target duration of one batch */
    double calib_ns; /* calibration stops once a trial takes this long */
} bench_timing;

typedef void (*bench_batch_fn)(void *ctx, size_t n); /* runs n operations */
typedef void (*bench_op_fn)(void *arg);              /* runs one operation */

typedef struct bench_sample {
    double med, q1, q3; /* ns per operation over the batches */
    size_t n;           /* operations per batch */
} bench_sample;

/* CLOCK_MONOTONIC in ns; exits 1 if the clock fails. */
uint64_t bench_now_ns(void);

/* Sorts v; its median (the mean of the middle two for an even count). */
double bench_median(double *v, size_t count);

/* BENCH_NBATCH interleaved batches of a and of b: their medians and quartiles. */
void bench_measure_pair(bench_batch_fn a, void *actx, bench_batch_fn b, void *bctx, bench_sample *sa,
                        bench_sample *sb);

/* The same for functions that run one operation per call: median ns per operation of each. */
void bench_compare(bench_op_fn a, void *actx, bench_op_fn b, void *bctx, double *ma, double *mb);

/* Interquartile range over the median, in percent. */
double bench_spread(const bench_sample *s);

/* "812 ns", "3.41 us", "1.20 ms". */
void bench_fmt_time(char *buf, size_t len, double ns);

/* The 1-minute load average, to tell a busy machine from a slow library; -1 if unknown. */
double bench_loadavg(void);

/* The sanitizer warning (if any), the load average and the batch mode, one line each. */
void bench_print_conditions(bool quick);

/* "PASS" if ratio <= target, else "MISS". */
const char *bench_verdict(double ratio, double target);

/*
 * A row "label  size B  a ns  b ns  ratio", with "(target <= T: PASS)" if target > 0. label_w is the
 * label column's width, num_w the size and ratio columns' (times 3 wider).
 */
void bench_ratio_row(int label_w, int num_w, const char *label, size_t len, double ta, double tb, double target);

#endif
