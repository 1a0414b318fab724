/* The benchmarks' shared timing harness: see harness.h. */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

struct bench_timing bench_timing = {30e6, 5e6};

uint64_t bench_now_ns(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) {
        perror("benchmark: clock_gettime(CLOCK_MONOTONIC)");
        exit(1);
    }
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double bench_median(double *v, size_t count)
{
    qsort(v, count, sizeof *v, cmp_double);
    return count % 2 ? v[count / 2] : (v[count / 2 - 1] + v[count / 2]) / 2;
}

static void summarise(double *v, size_t count, size_t n, bench_sample *s)
{
    s->med = bench_median(v, count);
    s->q1 = v[count / 4];
    s->q3 = v[(3 * count) / 4];
    s->n = n;
}

/* Operations per batch so that a batch takes about bench_timing.batch_ns (this also warms up). */
static size_t calibrate(bench_batch_fn fn, void *ctx)
{
    size_t n = 1;
    for (;;) {
        uint64_t t0 = bench_now_ns();
        fn(ctx, n);
        double dt = (double)(bench_now_ns() - t0);
        if (dt >= bench_timing.calib_ns || n >= ((size_t)1 << 30)) {
            double want = (double)n * bench_timing.batch_ns / (dt > 1 ? dt : 1);
            return want < 1 ? 1 : (size_t)want;
        }
        n *= 2;
    }
}

static double run_batch(bench_batch_fn fn, void *ctx, size_t n)
{
    uint64_t t0 = bench_now_ns();
    fn(ctx, n);
    return (double)(bench_now_ns() - t0) / (double)n;
}

void bench_measure_pair(bench_batch_fn a, void *actx, bench_batch_fn b, void *bctx, bench_sample *sa,
                        bench_sample *sb)
{
    size_t na = calibrate(a, actx), nb = calibrate(b, bctx);
    double ta[BENCH_NBATCH], tb[BENCH_NBATCH];
    for (int i = 0; i < BENCH_NBATCH; i++) {
        if (i % 2 == 0) {
            ta[i] = run_batch(a, actx, na);
            tb[i] = run_batch(b, bctx, nb);
        } else {
            tb[i] = run_batch(b, bctx, nb);
            ta[i] = run_batch(a, actx, na);
        }
    }
    summarise(ta, BENCH_NBATCH, na, sa);
    summarise(tb, BENCH_NBATCH, nb, sb);
}

struct one_op {
    bench_op_fn fn;
    void *arg;
};

static void repeat(void *ctx, size_t n)
{
    const struct one_op *op = ctx;
    for (size_t i = 0; i < n; i++)
        op->fn(op->arg);
}

void bench_compare(bench_op_fn a, void *actx, bench_op_fn b, void *bctx, double *ma, double *mb)
{
    struct one_op oa = {a, actx}, ob = {b, bctx};
    bench_sample sa, sb;
    bench_measure_pair(repeat, &oa, repeat, &ob, &sa, &sb);
    *ma = sa.med;
    *mb = sb.med;
}

double bench_spread(const bench_sample *s)
{
    return s->med > 0 ? 100.0 * (s->q3 - s->q1) / s->med : 0;
}

void bench_fmt_time(char *buf, size_t len, double ns)
{
    if (ns < 1e3)
        snprintf(buf, len, "%.0f ns", ns);
    else if (ns < 1e6)
        snprintf(buf, len, "%.2f us", ns / 1e3);
    else
        snprintf(buf, len, "%.2f ms", ns / 1e6);
}

double bench_loadavg(void)
{
    double l = -1;
    FILE *fp = fopen("/proc/loadavg", "r");
    if (fp != NULL) {
        if (fscanf(fp, "%lf", &l) != 1)
            l = -1;
        fclose(fp);
    }
    return l;
}

void bench_print_conditions(bool quick)
{
#ifdef MG_SANITIZED
    printf("WARNING: sanitizer build: these numbers say nothing about production speed\n");
#endif
    printf("load average (1 min) at start: %.2f: other work on the machine shows up as a wide IQR\n",
           bench_loadavg());
    printf("mode: %s: median of %d batches per row, each batch ~%.0f ms (N ops calibrated per operation)\n",
           quick ? "--quick (~10x fewer iterations)" : "full", BENCH_NBATCH, bench_timing.batch_ns / 1e6);
}

const char *bench_verdict(double ratio, double target)
{
    return ratio <= target ? "PASS" : "MISS";
}

void bench_ratio_row(int label_w, int num_w, const char *label, size_t len, double ta, double tb, double target)
{
    double r = ta / tb;
    printf("%-*s %*zu B %*.0f ns %*.0f ns %*.2fx", label_w, label, num_w, len, num_w + 3, ta, num_w + 3, tb, num_w,
           r);
    if (target > 0)
        printf("  (target <= %.2fx: %s)", target, bench_verdict(r, target));
    printf("\n");
}
