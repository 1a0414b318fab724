/*
 * mg-keyscan: count copies of one private key in other processes' memory.
 *
 * patterns.c turns a key file (or a certificate) into search patterns, memscan.c reads
 * /proc/PID/mem and finds them, main.c prints the tables. Secret bytes never leave these
 * structures: output is addresses and counts only.
 */
#ifndef MG_KEYSCAN_H
#define MG_KEYSCAN_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/bn.h>

#define KS_MAX_ROWS 48
#define KS_MIN_PATTERN 16 /* shorter patterns would hit by chance in a large process */
#define KS_WINDOW 32      /* bytes per needle taken from inside a long pattern */

enum ks_row_kind { KS_ROW_PEM, KS_ROW_DER, KS_ROW_COMPONENT, KS_ROW_FACTOR };

/* One row of the report: an encoding of the key that is counted on its own. */
struct ks_row {
    char name[56];  /* "RSA p, little-endian" */
    char tag[24];   /* short name for the region table and --tsv: "rsa-p-le" */
    enum ks_row_kind kind;
    int n_patterns; /* PEM: distinct lines searched; others: 1, 0 = not applicable */
    char note[64];  /* why a row is not applicable */
};

/* A byte string whose presence in memory is a copy of (part of) the key. */
struct ks_pattern {
    int row;
    unsigned char *bytes; /* OPENSSL_malloc'd, cleansed on free */
    size_t len;
};

/* A window of a pattern that is searched for; a hit at address A means a copy at A - off. */
struct ks_needle {
    uint64_t anchor; /* first 8 bytes, the hash key */
    int pattern;
    int next; /* next needle with the same anchor, -1 at the end */
    size_t off, len;
};

/* Factor test: windows of plen bytes, big- and little-endian, that divide n. */
struct ks_factor {
    BIGNUM *n;
    size_t plen[2];                    /* byte lengths to try (|p| and |q|; equal for most keys) */
    int n_plen;
    unsigned char min_top[2][8];       /* a divisor of plen bytes is >= n / 2^(8 plen): its top bytes */
    int row_be, row_le;
};

struct ks_keyset {
    char description[96]; /* "RSA 2048 bits", for the header line */
    struct ks_row rows[KS_MAX_ROWS];
    int n_rows;
    struct ks_pattern *patterns;
    int n_patterns, cap_patterns;
    struct ks_needle *needles;
    int n_needles, cap_needles;
    int *table; /* open addressing on the anchor: first needle index or -1 */
    size_t table_mask;
    uint64_t *bloom; /* one bit per hashed anchor: most positions are rejected here */
    size_t max_needle;
    int have_factor;
    struct ks_factor factor;
};

/* patterns.c */
int ks_keyset_from_key(struct ks_keyset *ks, const char *path, const char *pass, int factor, char *err,
                       size_t errlen);
int ks_keyset_from_cert(struct ks_keyset *ks, const char *path, char *err, size_t errlen);
void ks_keyset_free(struct ks_keyset *ks);

/* memscan.c */
struct ks_match {
    int row, pattern; /* pattern -1 for factor-test hits */
    uint64_t base;    /* where the copy starts (hit address minus the needle's offset) */
    uint64_t start, end;
    int region;
};

struct ks_region {
    uint64_t start, end;
    char perms[5];
    char path[128];
    uint64_t unreadable; /* bytes */
    int read_errno;
};

struct ks_result {
    int pid;
    char comm[32];
    struct ks_region *regions;
    int n_regions;
    struct ks_match *matches;
    size_t n_matches, cap_matches;
    uint64_t bytes_scanned;
    double seconds;
};

/* Returns 0, or -1 with a message in err (no such process, no permission). */
/* factor_all: run the factor test on read-only file mappings too (code, mapped files). */
int ks_scan_pid(const struct ks_keyset *ks, int pid, int factor_all, struct ks_result *res, char *err,
                size_t errlen);
void ks_result_free(struct ks_result *res);

#endif
