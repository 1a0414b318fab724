/*
 * mg-keyscan [options] KEYFILE PID...
 * mg-keyscan [options] --cert CERTFILE PID...
 *
 * Counts copies of one private key in the memory of running processes. Exit status: 0 = no key
 * material in any process, 1 = key material found, 2 = error (bad key file, no such process, no
 * permission). Prints addresses and counts, never the bytes that matched.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/provider.h>

#include "keyscan.h"

enum { OUT_TABLE, OUT_QUIET, OUT_TSV };

static void usage(FILE *f)
{
    fprintf(f, "usage: mg-keyscan [options] KEYFILE PID...\n"
               "       mg-keyscan [options] --cert CERTFILE PID...\n"
               "Counts copies of a private key in the memory of running processes.\n"
               "  --pass PASS      passphrase of an encrypted KEYFILE (also --pass env:VAR)\n"
               "  --cert FILE      search without the private key: an RSA certificate or public key;\n"
               "                   only the factor test runs (windows of memory that divide n)\n"
               "  --no-factor      skip the factor test (RSA keys)\n"
               "  --factor-all     factor test also on read-only file mappings (code; slower)\n"
               "  --quiet          print only the summary line per process\n"
               "  --tsv            machine-readable output (tab-separated, see docs/keyscan.md)\n"
               "  --help\n"
               "Exit status: 0 nothing found, 1 key material found, 2 error.\n");
}

static const char *short_path(const char *p)
{
    return p;
}

/* Copies per row, and for PEM the distinct lines seen. */
static void count_rows(const struct ks_keyset *ks, const struct ks_result *res, size_t *copies, int *distinct)
{
    memset(copies, 0, sizeof(size_t) * KS_MAX_ROWS);
    memset(distinct, 0, sizeof(int) * KS_MAX_ROWS);
    int last_pattern = -2, last_row = -1;
    for (size_t i = 0; i < res->n_matches; i++) {
        const struct ks_match *m = &res->matches[i];
        copies[m->row]++;
        /* matches are sorted by row then pattern */
        if (m->pattern != last_pattern || m->row != last_row)
            distinct[m->row]++;
        last_pattern = m->pattern;
        last_row = m->row;
    }
    (void)ks;
}

static int cmp_span(const void *a, const void *b)
{
    const struct ks_match *x = *(const struct ks_match *const *)a, *y = *(const struct ks_match *const *)b;
    return x->start < y->start ? -1 : x->start > y->start;
}

/*
 * "Copies of the key": clusters of overlapping or adjacent hits. One DER blob holds d, p, q...
 * and one PEM buffer holds many lines (2 bytes apart: the line end): each is one copy.
 */
static size_t count_copies(const struct ks_result *res)
{
    if (res->n_matches == 0)
        return 0;
    const struct ks_match **v = malloc(res->n_matches * sizeof *v);
    if (v == NULL)
        return res->n_matches;
    for (size_t i = 0; i < res->n_matches; i++)
        v[i] = &res->matches[i];
    qsort(v, res->n_matches, sizeof *v, cmp_span);
    size_t copies = 1;
    uint64_t end = v[0]->end;
    for (size_t i = 1; i < res->n_matches; i++) {
        if (v[i]->start > end + 2)
            copies++;
        if (v[i]->end > end)
            end = v[i]->end;
    }
    free(v);
    return copies;
}

static double mib(uint64_t b)
{
    return (double)b / (1024.0 * 1024.0);
}

static void print_regions(const struct ks_keyset *ks, const struct ks_result *res, int tsv)
{
    int header = 0;
    for (int ri = 0; ri < res->n_regions; ri++) {
        const struct ks_region *r = &res->regions[ri];
        size_t per[KS_MAX_ROWS] = {0};
        size_t any = 0;
        for (size_t i = 0; i < res->n_matches; i++)
            if (res->matches[i].region == ri) {
                per[res->matches[i].row]++;
                any++;
            }
        if (any == 0)
            continue;
        if (tsv) {
            printf("region\t%d\t%012llx-%012llx\t%s\t%s\t", res->pid, (unsigned long long)r->start,
                   (unsigned long long)r->end, r->perms, short_path(r->path));
        } else {
            if (!header)
                printf("  regions with key material:\n    %-27s %-5s %-24s %s\n", "address range", "perms", "mapping",
                       "copies per encoding");
            header = 1;
            printf("    %012llx-%012llx %-5s %-24s ", (unsigned long long)r->start, (unsigned long long)r->end,
                   r->perms, short_path(r->path));
        }
        const char *sep = "";
        for (int k = 0; k < ks->n_rows; k++)
            if (per[k] > 0) {
                printf("%s%s=%zu", sep, ks->rows[k].tag, per[k]);
                sep = tsv ? "," : " ";
            }
        printf("\n");
    }
}

static void print_unreadable(const struct ks_result *res, int tsv)
{
    int header = 0;
    for (int ri = 0; ri < res->n_regions; ri++) {
        const struct ks_region *r = &res->regions[ri];
        if (r->unreadable == 0)
            continue;
        uint64_t size = r->end - r->start;
        const char *why = r->read_errno ? strerror(r->read_errno) : "refused";
        if (tsv) {
            printf("unreadable\t%d\t%012llx-%012llx\t%s\t%s\t%llu\t%s\n", res->pid, (unsigned long long)r->start,
                   (unsigned long long)r->end, r->perms, r->path, (unsigned long long)r->unreadable, why);
            continue;
        }
        if (!header)
            printf("  unreadable (not searched):\n");
        header = 1;
        printf("    %012llx-%012llx %-5s %-24s ", (unsigned long long)r->start, (unsigned long long)r->end, r->perms,
               r->path);
        if (r->unreadable == size)
            printf("%s\n", why);
        else
            printf("%llu of %llu KiB: %s\n", (unsigned long long)r->unreadable / 1024,
                   (unsigned long long)size / 1024, why);
    }
}

static int unreadable_regions(const struct ks_result *res)
{
    int n = 0;
    for (int ri = 0; ri < res->n_regions; ri++)
        n += res->regions[ri].unreadable > 0;
    return n;
}

static void report(const struct ks_keyset *ks, const struct ks_result *res, int mode)
{
    size_t copies[KS_MAX_ROWS];
    int distinct[KS_MAX_ROWS];
    count_rows(ks, res, copies, distinct);
    size_t total = count_copies(res);
    int unread = unreadable_regions(res);

    if (mode == OUT_TSV) {
        for (int k = 0; k < ks->n_rows; k++)
            printf("row\t%d\t%s\t%zu\t%d\t%d\n", res->pid, ks->rows[k].tag, copies[k], distinct[k],
                   ks->rows[k].n_patterns);
        print_regions(ks, res, 1);
        print_unreadable(res, 1);
        printf("summary\t%d\t%zu\t%llu\t%d\t%d\t%.3f\n", res->pid, total, (unsigned long long)res->bytes_scanned,
               res->n_regions, unread, res->seconds);
        return;
    }
    if (mode == OUT_TABLE) {
        printf("pid %d (%s): %s\n", res->pid, res->comm, ks->description);
        printf("  %-46s %s\n", "encoding", "copies");
        for (int k = 0; k < ks->n_rows; k++) {
            const struct ks_row *r = &ks->rows[k];
            printf("  %-46s ", r->name);
            if (r->n_patterns == 0)
                printf("%6s  (%s)\n", "-", r->note[0] ? r->note : "not applicable");
            else if (r->kind == KS_ROW_PEM)
                printf("%6zu  (%d of %d distinct lines)%s%s\n", copies[k], distinct[k], r->n_patterns,
                       r->note[0] ? "; " : "", r->note);
            else
                printf("%6zu\n", copies[k]);
        }
        print_regions(ks, res, 0);
        print_unreadable(res, 0);
    }
    if (total == 0)
        printf("pid %d: 0 copies of the key found (scanned %.1f MiB in %d regions, %d unreadable, %.2f s)\n", res->pid,
               mib(res->bytes_scanned), res->n_regions, unread, res->seconds);
    else
        printf("pid %d: %zu copies of the key found (scanned %.1f MiB in %d regions, %d unreadable, %.2f s)\n",
               res->pid, total, mib(res->bytes_scanned), res->n_regions, unread, res->seconds);
}

static int parse_pid(const char *s, int *pid)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v <= 0 || v > INT_MAX)
        return -1;
    *pid = (int)v;
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"pass", required_argument, NULL, 'p'},
                                         {"cert", required_argument, NULL, 'c'},
                                         {"no-factor", no_argument, NULL, 'F'},
                                         {"factor-all", no_argument, NULL, 'A'},
                                         {"quiet", no_argument, NULL, 'q'},
                                         {"tsv", no_argument, NULL, 't'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *pass = NULL, *cert = NULL;
    int factor = 1, factor_all = 0, mode = OUT_TABLE, o;
    while ((o = getopt_long(argc, argv, "p:c:qth", opts, NULL)) != -1) {
        switch (o) {
        case 'p':
            pass = optarg;
            if (strncmp(pass, "env:", 4) == 0) {
                pass = getenv(pass + 4);
                if (pass == NULL) {
                    fprintf(stderr, "mg-keyscan: --pass %s: variable not set\n", optarg);
                    return 2;
                }
            }
            break;
        case 'c':
            cert = optarg;
            break;
        case 'F':
            factor = 0;
            break;
        case 'A':
            factor_all = 1;
            break;
        case 'q':
            mode = OUT_QUIET;
            break;
        case 't':
            mode = OUT_TSV;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    int first_pid = optind + (cert == NULL ? 1 : 0);
    if (first_pid >= argc) {
        usage(stderr);
        return 2;
    }

    /*
     * Never read openssl.cnf: a system configuration that activates memguard must not load it into
     * this process. Patterns are derived in a private library context (patterns.c); the default
     * context gets only the "null" provider so an accidental use of it fails instead of loading
     * the configured providers.
     */
    OSSL_PROVIDER *null_prov = NULL;
    if (!OPENSSL_init_crypto(OPENSSL_INIT_NO_LOAD_CONFIG, NULL) ||
        (null_prov = OSSL_PROVIDER_load(NULL, "null")) == NULL) {
        fprintf(stderr, "mg-keyscan: cannot initialise OpenSSL\n");
        return 2;
    }

    struct ks_keyset ks;
    char err[320];
    int rc = cert != NULL ? ks_keyset_from_cert(&ks, cert, err, sizeof err)
                          : ks_keyset_from_key(&ks, argv[optind], pass, factor, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "mg-keyscan: %s: %s\n", cert != NULL ? cert : argv[optind], err);
        ks_keyset_free(&ks);
        OSSL_PROVIDER_unload(null_prov);
        return 2;
    }

    int status = 0;
    for (int i = first_pid; i < argc; i++) {
        int pid;
        struct ks_result res;
        if (parse_pid(argv[i], &pid) != 0) {
            fprintf(stderr, "mg-keyscan: %s: not a process id\n", argv[i]);
            status = 2;
            continue;
        }
        if (ks_scan_pid(&ks, pid, factor_all, &res, err, sizeof err) != 0) {
            fprintf(stderr, "mg-keyscan: %s\n", err);
            status = 2;
        } else {
            report(&ks, &res, mode);
            if (res.n_matches > 0 && status == 0)
                status = 1;
        }
        fflush(stdout);
        ks_result_free(&res);
    }
    ks_keyset_free(&ks);
    OSSL_PROVIDER_unload(null_prov);
    return status;
}
