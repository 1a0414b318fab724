/*
 * memscan: look for copies of a secret anywhere in this process's memory, for
 * the residue tests. Every readable mapping is read through /proc/self/mem and
 * each hit is counted as in guarded memory (a mapping that is both mlocked and
 * MADV_DONTDUMP, as memguard's buffers are) or elsewhere.
 */
#ifndef MGT_PROVIDER_MEMSCAN_H
#define MGT_PROVIDER_MEMSCAN_H

#include <stdbool.h>
#include <stddef.h>

#define MEMSCAN_WINDOW_MAX 32 /* the longest needle */

/* A window of a secret, kept XOR-masked so that the needle list is not itself a copy of the secret. */
typedef struct memscan_needle {
    char name[64];
    size_t len;
    unsigned char masked[MEMSCAN_WINDOW_MAX], mask[MEMSCAN_WINDOW_MAX];
    size_t guarded, elsewhere; /* hits found by the last memscan_run */
} memscan_needle;

/* len bytes of v (byte-reversed if reverse) as a needle; false if len is too long or the mask failed. */
bool memscan_needle_init(memscan_needle *nd, const char *name, const unsigned char *v, size_t len, bool reverse);

/* Count every needle's hits afresh. False if /proc/self/{smaps,mem} or the read buffer failed.
 * MGT_SCAN_VERBOSE=1 prints where each hit is. */
bool memscan_run(memscan_needle *needles, size_t n);

/* Hits of needles[first..last) in guarded memory (guarded) or elsewhere (!guarded). */
size_t memscan_total(const memscan_needle *needles, size_t first, size_t last, bool guarded);

#endif
