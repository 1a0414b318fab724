/*
 * Reading another process: every mapping in /proc/PID/maps is read through /proc/PID/mem with
 * pread. The kernel reads with FOLL_FORCE, so PROT_NONE mappings (guard pages, reserved heap) are
 * readable too; what it refuses (memfd_secret, [vvar], pages past the end of a mapped file) is
 * recorded as unreadable. The target is not stopped: this is a snapshot of a running process.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "keyscan.h"

#define CHUNK (4u << 20) /* bytes searched per pread; the next chunk overlaps by the longest pattern */
#define PAGE 4096u
/* /proc/PID/mem needs PTRACE_MODE_ATTACH: root (CAP_SYS_PTRACE), or the same uid where Yama allows it. */
#define PERMISSION_HINT                                                                                     \
    " (run as root, or as the process's user with kernel.yama.ptrace_scope = 0; a non-dumpable process"     \
    " needs root)"

static int add_match(struct ks_result *res, int row, int pattern, uint64_t base, uint64_t start, uint64_t end,
                     int region)
{
    if (res->n_matches == res->cap_matches) {
        size_t ncap = res->cap_matches ? res->cap_matches * 2 : 256;
        struct ks_match *m = realloc(res->matches, ncap * sizeof *m);
        if (m == NULL)
            return -1;
        res->matches = m;
        res->cap_matches = ncap;
    }
    res->matches[res->n_matches++] =
        (struct ks_match){.row = row, .pattern = pattern, .base = base, .start = start, .end = end, .region = region};
    return 0;
}

/*
 * Reads [addr, addr + len) into buf. A page the kernel refuses is zero-filled: the factor test
 * rejects zero windows and no needle (16+ bytes of key material) is zeros. Returns the number of
 * refused bytes below addr + counted, or -1 when the process is gone.
 */
static int64_t read_range(int fd, uint64_t addr, unsigned char *buf, size_t len, size_t counted, int *first_errno)
{
    size_t done = 0;
    int64_t refused = 0;
    while (done < len) {
        ssize_t r = -1;
        uint64_t at = addr + done;
        if (at <= (uint64_t)INT64_MAX - len)
            r = pread(fd, buf + done, len - done, (off_t)at);
        else
            errno = EINVAL; /* above 2^63 ([vsyscall]): pread takes a signed offset */
        if (r > 0) {
            done += (size_t)r;
            continue;
        }
        if (r == 0)
            return -1; /* /proc/PID/mem reads 0 bytes once the address space is gone */
        if (errno == EINTR)
            continue;
        if (*first_errno == 0)
            *first_errno = errno;
        size_t skip = PAGE - (size_t)(at % PAGE);
        if (skip > len - done)
            skip = len - done;
        memset(buf + done, 0, skip);
        if (done < counted)
            refused += (int64_t)((done + skip <= counted ? done + skip : counted) - done);
        done += skip;
    }
    return refused;
}

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the factor sieve loads 8 bytes at a time assuming a little-endian host"
#endif

/*
 * The window's value modulo 2^(8k) - 1: the sum of its k-byte digits, least significant first.
 * Reads up to 8 bytes before and after the window (the buffer is padded); k <= 7.
 */
static uint64_t mod_mersenne(const unsigned char *w, size_t L, int le, unsigned k)
{
    uint64_t sum = 0, mask = (1ull << (8 * k)) - 1;
    for (size_t s = 0; s < L; s += k) {
        size_t n = L - s < k ? L - s : k;
        uint64_t v, m = (1ull << (8 * n)) - 1;
        memcpy(&v, le ? w + s : w + L - s - 8, sizeof v);
        sum += (le ? v : __builtin_bswap64(v)) & m;
    }
    while (sum > mask)
        sum = (sum & mask) + (sum >> (8 * k));
    return sum == mask ? 0 : sum;
}

/*
 * A window that divides n is p or q: a prime of at least 128 bits, so it has no small factor.
 * Small primes dividing 2^40-1, 2^48-1 and 2^56-1 are tested with digit sums; about 70% of the
 * candidates that reach here are rejected for the price of ~70 additions instead of a BN_div.
 */
static int has_small_factor(const unsigned char *w, size_t L, int le)
{
    uint64_t r6 = mod_mersenne(w, L, le, 6); /* 2^48-1 = 3^2 5 7 13 17 97 241 257 673 */
    if (r6 % 3 == 0 || r6 % 5 == 0 || r6 % 7 == 0 || r6 % 13 == 0 || r6 % 17 == 0 || r6 % 97 == 0 ||
        r6 % 241 == 0 || r6 % 257 == 0 || r6 % 673 == 0)
        return 1;
    uint64_t r5 = mod_mersenne(w, L, le, 5); /* 2^40-1 = 3 5^2 11 17 31 41 61681 */
    if (r5 % 11 == 0 || r5 % 31 == 0 || r5 % 41 == 0 || r5 % 61681 == 0)
        return 1;
    uint64_t r7 = mod_mersenne(w, L, le, 7); /* 2^56-1 = 3 5 17 29 43 113 127 15790321 */
    return r7 % 29 == 0 || r7 % 43 == 0 || r7 % 113 == 0 || r7 % 127 == 0 || r7 % 15790321 == 0;
}

static int top_at_least(const unsigned char *top, const unsigned char *min, int le, size_t len)
{
    for (size_t k = 0; k < 8; k++) {
        unsigned char b = le ? top[len - 1 - k] : top[k];
        if (b != min[k])
            return b > min[k];
    }
    return 1;
}

/*
 * Factor test over one chunk: windows of plen bytes read as big- and little-endian numbers.
 * Windows with many 0x00/0xFF bytes are skipped (pointers, small integers, padding): the bytes of
 * a prime are uniform, so a 1024-bit p has 16 or more of them with probability about 1e-14
 * (Poisson, mean plen/128); the threshold grows with plen to keep that bound.
 */
static int factor_scan(const struct ks_factor *f, const unsigned char *buf, size_t main, size_t avail,
                       uint64_t addr, int region, struct ks_result *res, BIGNUM *c, BIGNUM *r, BN_CTX *ctx)
{
    for (int k = 0; k < f->n_plen; k++) {
        size_t L = f->plen[k];
        const unsigned char *mt = f->min_top[k];
        if (avail < L)
            continue;
        size_t last = avail - L;
        if (last >= main)
            last = main - 1;
        size_t flat_max = 8 + L / 16, flat = 0; /* 0x00/0xFF bytes in the current window */
        for (size_t j = 0; j < L; j++)
            flat += buf[j] == 0 || buf[j] == 0xff;
        for (size_t i = 0; i <= last; i++) {
            const unsigned char *w = buf + i;
            if (i > 0)
                flat += (w[L - 1] == 0 || w[L - 1] == 0xff) - (w[-1] == 0 || w[-1] == 0xff);
            /* Cheap rejections first: a prime factor is odd and not below n / 2^(8 plen). */
            int be = (w[L - 1] & 1) && w[0] >= mt[0] && w[0] != 0;
            int le = (w[0] & 1) && w[L - 1] >= mt[0] && w[L - 1] != 0;
            if ((!be && !le) || flat >= flat_max)
                continue;
            for (int dir = 0; dir < 2; dir++) {
                if (!(dir ? le : be) || !top_at_least(w, mt, dir, L) || has_small_factor(w, L, dir))
                    continue;
                if ((dir ? BN_lebin2bn(w, (int)L, c) : BN_bin2bn(w, (int)L, c)) == NULL ||
                    !BN_div(NULL, r, f->n, c, ctx))
                    return -1;
                if (BN_is_zero(r) &&
                    add_match(res, dir ? f->row_le : f->row_be, -1, addr + i, addr + i, addr + i + L, region) != 0)
                    return -1;
            }
        }
    }
    return 0;
}

static int needle_scan(const struct ks_keyset *ks, const unsigned char *buf, size_t main, size_t avail,
                       uint64_t addr, int region, struct ks_result *res)
{
    const uint64_t *bloom = ks->bloom;
    if (avail < 8)
        return 0;
    size_t last = avail - 8 < main ? avail - 8 : main - 1;
    for (size_t i = 0; i <= last; i++) {
        uint64_t a;
        memcpy(&a, buf + i, sizeof a);
        uint64_t h = a * 0x9E3779B97F4A7C15ull;
        uint64_t bit = h >> (64 - 20);
        if (!((bloom[bit / 64] >> (bit % 64)) & 1))
            continue;
        size_t s = (size_t)(h >> 32) & ks->table_mask;
        while (ks->table[s] >= 0 && ks->needles[ks->table[s]].anchor != a)
            s = (s + 1) & ks->table_mask;
        for (int j = ks->table[s]; j >= 0; j = ks->needles[j].next) {
            const struct ks_needle *n = &ks->needles[j];
            const struct ks_pattern *p = &ks->patterns[n->pattern];
            if (i + n->len > avail || memcmp(buf + i, p->bytes + n->off, n->len) != 0)
                continue;
            uint64_t base = addr + i - n->off;
            if (add_match(res, p->row, n->pattern, base, base, base + p->len, region) != 0)
                return -1;
        }
    }
    return 0;
}

static int cmp_match(const void *a, const void *b)
{
    const struct ks_match *x = a, *y = b;
    if (x->row != y->row)
        return x->row < y->row ? -1 : 1;
    if (x->pattern != y->pattern)
        return x->pattern < y->pattern ? -1 : 1;
    return x->base < y->base ? -1 : x->base > y->base;
}

/* Several windows of one copy all hit: keep one match per (row, pattern, start address). */
static void dedupe(struct ks_result *res)
{
    if (res->n_matches == 0)
        return;
    qsort(res->matches, res->n_matches, sizeof *res->matches, cmp_match);
    size_t out = 1;
    for (size_t i = 1; i < res->n_matches; i++) {
        const struct ks_match *a = &res->matches[out - 1], *b = &res->matches[i];
        if (a->row == b->row && a->pattern == b->pattern && a->base == b->base)
            continue;
        res->matches[out++] = *b;
    }
    res->n_matches = out;
}

static int parse_maps(int pid, struct ks_result *res, char *err, size_t errlen)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/maps", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        int e = errno;
        snprintf(err, errlen, "pid %d: %s%s", pid, e == ENOENT ? "no such process" : strerror(e),
                 e == EACCES || e == EPERM ? PERMISSION_HINT : "");
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    int capr = 0;
    while (getline(&line, &cap, f) > 0) {
        uint64_t s, e;
        char perms[5];
        int pos = 0;
        if (sscanf(line, "%" SCNx64 "-%" SCNx64 " %4s %*s %*s %*s %n", &s, &e, perms, &pos) < 3)
            continue;
        if (res->n_regions == capr) {
            capr = capr ? capr * 2 : 256;
            struct ks_region *nr = realloc(res->regions, (size_t)capr * sizeof *nr);
            if (nr == NULL) {
                free(line);
                fclose(f);
                snprintf(err, errlen, "out of memory");
                return -1;
            }
            res->regions = nr;
        }
        struct ks_region *r = &res->regions[res->n_regions++];
        memset(r, 0, sizeof *r);
        r->start = s;
        r->end = e;
        memcpy(r->perms, perms, sizeof r->perms);
        char *p = pos > 0 ? line + pos : line + strlen(line);
        p[strcspn(p, "\n")] = '\0';
        snprintf(r->path, sizeof r->path, "%s", *p ? p : "[anon]");
    }
    free(line);
    fclose(f);
    if (res->n_regions == 0) {
        /* Kernel threads and zombies have no address space. */
        snprintf(err, errlen, "pid %d: no memory mappings (kernel thread or exited process)", pid);
        return -1;
    }
    return 0;
}

/*
 * Program and library code, and read-only mapped files, are pages of files on disk: the factor
 * test (the expensive part of a scan) skips them unless asked; the pattern search covers them.
 */
static int readonly_file(const struct ks_region *r)
{
    return r->path[0] == '/' && r->perms[1] != 'w';
}

int ks_scan_pid(const struct ks_keyset *ks, int pid, int factor_all, struct ks_result *res, char *err,
                size_t errlen)
{
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    memset(res, 0, sizeof *res);
    res->pid = pid;

    char path[64];
    snprintf(path, sizeof path, "/proc/%d/comm", pid);
    FILE *cf = fopen(path, "r");
    if (cf != NULL) {
        if (fgets(res->comm, sizeof res->comm, cf) != NULL)
            res->comm[strcspn(res->comm, "\n")] = '\0';
        fclose(cf);
    }
    if (parse_maps(pid, res, err, errlen) != 0)
        return -1;
    snprintf(path, sizeof path, "/proc/%d/mem", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        snprintf(err, errlen, "pid %d: cannot open %s: %s%s", pid, path, strerror(e),
                 e == EACCES || e == EPERM ? PERMISSION_HINT : "");
        return -1;
    }

    size_t overlap = ks->max_needle;
    if (ks->have_factor)
        for (int k = 0; k < ks->factor.n_plen; k++)
            if (ks->factor.plen[k] > overlap)
                overlap = ks->factor.plen[k];
    size_t bufsize = CHUNK + overlap;
    /* 8 zero bytes either side: the factor sieve loads whole words at the window's edges. */
    unsigned char *raw = calloc(1, bufsize + 16), *buf = raw != NULL ? raw + 8 : NULL;
    BN_CTX *ctx = BN_CTX_secure_new();
    BIGNUM *c = BN_secure_new(), *r = BN_secure_new();
    int rc = -1;
    if (buf == NULL || ctx == NULL || c == NULL || r == NULL) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    for (int ri = 0; ri < res->n_regions; ri++) {
        struct ks_region *reg = &res->regions[ri];
        for (uint64_t a = reg->start; a < reg->end; a += CHUNK) {
            size_t main = reg->end - a < CHUNK ? (size_t)(reg->end - a) : CHUNK;
            size_t avail = reg->end - a < bufsize ? (size_t)(reg->end - a) : bufsize;
            int64_t refused = read_range(fd, a, buf, avail, main, &reg->read_errno);
            if (refused < 0) {
                snprintf(err, errlen, "pid %d: the process exited during the scan", pid);
                goto out;
            }
            reg->unreadable += (uint64_t)refused;
            res->bytes_scanned += main - (size_t)refused;
            if ((size_t)refused == main && avail == main)
                continue;
            if (needle_scan(ks, buf, main, avail, a, ri, res) != 0 ||
                (ks->have_factor && (factor_all || !readonly_file(reg)) && factor_scan(&ks->factor, buf, main, avail, a, ri, res, c, r, ctx) != 0)) {
                snprintf(err, errlen, "pid %d: out of memory while recording matches", pid);
                goto out;
            }
        }
    }
    dedupe(res);
    rc = 0;
out:
    if (raw != NULL)
        OPENSSL_cleanse(raw, bufsize + 16); /* it held the target's memory, key material included */
    free(raw);
    BN_clear_free(c);
    BN_clear_free(r);
    BN_CTX_free(ctx);
    close(fd);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    res->seconds = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    return rc;
}

void ks_result_free(struct ks_result *res)
{
    free(res->regions);
    free(res->matches);
    memset(res, 0, sizeof *res);
}
