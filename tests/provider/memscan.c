/* memscan: see memscan.h. */
#include "memscan.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <memguard/memguard.h>

bool memscan_needle_init(memscan_needle *nd, const char *name, const unsigned char *v, size_t len, bool reverse)
{
    if (len == 0 || len > MEMSCAN_WINDOW_MAX || mg_scramble(nd->mask, len) != MG_OK)
        return false;
    snprintf(nd->name, sizeof nd->name, "%s", name);
    nd->len = len;
    for (size_t j = 0; j < len; j++)
        nd->masked[j] = (reverse ? v[len - 1 - j] : v[j]) ^ nd->mask[j];
    nd->guarded = nd->elsewhere = 0;
    return true;
}

struct range {
    unsigned long lo, hi;
    bool readable, guarded;
};

/*
 * All mappings, read before scanning (reading smaps while scanning would change the heap under us).
 * Guarded buffers are exactly the mappings that are both mlocked and MADV_DONTDUMP.
 */
static size_t read_ranges(struct range *r, size_t cap)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    if (f == NULL)
        return 0;
    char line[512];
    size_t n = 0;
    while (fgets(line, sizeof line, f) != NULL) {
        unsigned long lo, hi;
        char perms[8];
        if (strncmp(line, "VmFlags:", 8) == 0) {
            if (n > 0)
                r[n - 1].guarded = strstr(line, " lo") != NULL && strstr(line, " dd") != NULL;
        } else if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) == 3 && strchr(line, '-') < strchr(line, ' ')) {
            /* [vvar] and [vsyscall] are readable but not through /proc/self/mem */
            bool readable = perms[0] == 'r' && strstr(line, "[vvar") == NULL && strstr(line, "[vsyscall]") == NULL;
            if (n < cap)
                r[n++] = (struct range){lo, hi, readable, false};
        }
    }
    fclose(f);
    return n;
}

static size_t count_in(const unsigned char *p, size_t limit, size_t got, const memscan_needle *nd, unsigned long at,
                       const struct range *r)
{
    size_t hits = 0;
    unsigned char first = nd->masked[0] ^ nd->mask[0];
    for (size_t i = 0; i < limit && i + nd->len <= got; i++) {
        if (p[i] != first)
            continue;
        size_t j = 1;
        while (j < nd->len && p[i + j] == (unsigned char)(nd->masked[j] ^ nd->mask[j]))
            j++;
        if (j < nd->len)
            continue;
        hits++;
        if (getenv("MGT_SCAN_VERBOSE") != NULL) /* where each hit is, for diagnosis */
            fprintf(stderr, "    %s at %#lx (%s mapping %lx-%lx)\n", nd->name, at + i,
                    r->guarded ? "guarded" : "ordinary", r->lo, r->hi);
    }
    return hits;
}

bool memscan_run(memscan_needle *needles, size_t n)
{
    static struct range ranges[8192];
    const size_t chunk = 1 << 20, bufsize = chunk + MEMSCAN_WINDOW_MAX;
    for (size_t k = 0; k < n; k++)
        needles[k].guarded = needles[k].elsewhere = 0;
    size_t nr = read_ranges(ranges, sizeof ranges / sizeof ranges[0]);
    unsigned char *buf = mmap(NULL, bufsize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    int mem = open("/proc/self/mem", O_RDONLY);
    bool ok = nr > 0 && buf != MAP_FAILED && mem >= 0;
    for (size_t r = 0; ok && r < nr; r++) {
        if (!ranges[r].readable || ranges[r].lo == (unsigned long)buf)
            continue;
        /* Each read runs a window past its chunk, so that a hit across the boundary is found once. */
        for (unsigned long at = ranges[r].lo; at < ranges[r].hi; at += chunk) {
            size_t want = ranges[r].hi - at < bufsize ? ranges[r].hi - at : bufsize;
            ssize_t got = pread(mem, buf, want, (off_t)at);
            if (got <= 0)
                break;
            size_t limit = (size_t)got > chunk ? chunk : (size_t)got; /* hits that start in this chunk */
            for (size_t k = 0; k < n; k++) {
                size_t h = count_in(buf, limit, (size_t)got, &needles[k], at, &ranges[r]);
                *(ranges[r].guarded ? &needles[k].guarded : &needles[k].elsewhere) += h;
            }
        }
    }
    if (buf != MAP_FAILED) {
        mg_wipe(buf, bufsize); /* it held whatever the scan read, secrets included */
        ok = munmap(buf, bufsize) == 0 && ok;
    }
    if (mem >= 0)
        ok = close(mem) == 0 && ok;
    return ok;
}

size_t memscan_total(const memscan_needle *needles, size_t first, size_t last, bool guarded)
{
    size_t s = 0;
    for (size_t k = first; k < last; k++)
        s += guarded ? needles[k].guarded : needles[k].elsewhere;
    return s;
}
