/*
 * OpenSSL's secure heap for operations' transient private values (issue 11, in-operation exposure).
 *
 * RSA and EC private operations work on BIGNUMs that OpenSSL allocates itself (the CRT halves,
 * the Montgomery products, the ECDSA nonce). BN_secure_new / BN_CTX_secure_new put them in
 * OpenSSL's secure heap - one mlock'ed, MADV_DONTDUMP arena with guard pages at both ends - but
 * only if somebody set it up; otherwise they are plain malloc. No server we support does
 * (nginx, stunnel, httpd, HAProxy), so the provider does it at load unless the application already
 * has one (CRYPTO_secure_malloc_initialized()), which is then left exactly as it is.
 *
 * memguard-secure-heap = <bytes, a power of two, K/M suffixes allowed> sets the size; 0 leaves the
 * secure heap alone. Default MGP_SECURE_HEAP_DEFAULT (docs/in-operation.md says why).
 *
 * The secure heap is process-wide: once it exists, every secure allocation of OpenSSL (DRBG state,
 * every TLS handshake's ephemeral private key, ticket keys, BN_secure_new anywhere) draws from it,
 * and a full arena makes them fail (NULL, no fallback). Hence a size far above what a busy server
 * holds at once (measured in docs/in-operation.md), and never a small one by accident.
 *
 * mlock is not inherited by fork: a pthread_atfork child handler locks the arena again (nginx
 * workers fork from the master before they drop privileges, so this is still done as root).
 *
 * When the arena cannot be locked (RLIMIT_MEMLOCK; CRYPTO_secure_malloc_init returns 2), the arena
 * is kept and this is said loudly, once at load and in every child whose re-lock fails. Refusing
 * instead (a configuration error: every private key refused) would turn every RLIMIT_MEMLOCK between
 * what the keys need (about 20 KiB, docs/locked-memory.md) and the arena's size into an outage,
 * while the keys keep their own fail-closed locking either way. An unlocked arena still keeps the
 * values out of core files (MADV_DONTDUMP), between guard pages and cleared on free, which is
 * strictly better than the ordinary heap they would otherwise be in. Only a bad value of the
 * setting is a configuration error.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <openssl/crypto.h>

#ifdef MG_SANITIZED
#include <sanitizer/lsan_interface.h>
#endif
#include "provider.h"

#define MGP_SECURE_HEAP_DEFAULT ((size_t)1 << 20) /* 1 MiB */
#define MGP_SECURE_HEAP_MIN ((size_t)1 << 14)     /* 16 KiB: below this a few handshakes fill it */
#define MGP_SECURE_HEAP_MAX ((size_t)1 << 30)
#define MGP_SECURE_HEAP_MINSIZE 16 /* OpenSSL's smallest chunk (its free-list node) */

#ifndef MLOCK_ONFAULT
#define MLOCK_ONFAULT 1
#endif

static pthread_mutex_t setup_lock = PTHREAD_MUTEX_INITIALIZER;
static int set_up;             /* this provider initialised the secure heap (once per process) */
static uintptr_t arena_lo;     /* the arena's mapping, found at setup */
static size_t arena_size;

/* The same lock OpenSSL takes: only the range actually touched is resident, all of it is charged. */
static int lock_range(void *p, size_t n)
{
#ifdef SYS_mlock2
    if (syscall(SYS_mlock2, p, n, MLOCK_ONFAULT) == 0)
        return 0;
    if (errno != ENOSYS && errno != EINVAL)
        return -1;
#endif
    return mlock(p, n);
}

/* Async-signal-safe (after fork in a threaded parent): write(2) of a fixed text. */
static void say_raw(const char *s)
{
    size_t n = strlen(s);
    while (n > 0) {
        ssize_t w = write(STDERR_FILENO, s, n);
        if (w <= 0)
            return; /* nowhere to say it: the flag below still records it */
        s += w;
        n -= (size_t)w;
    }
}

static void relock_in_child(void)
{
    if (arena_size == 0)
        return;
    if (lock_range((void *)arena_lo, arena_size) != 0)
        say_raw("memguard-provider: WARNING: in a forked child, OpenSSL's secure heap could not be locked in RAM "
                "again (RLIMIT_MEMLOCK); operations' transient private values may be swapped out in this process "
                "(they stay out of core files)\n");
}

/* Parse a size: decimal bytes with an optional K or M (binary) suffix. 0 with *ok = 0 when malformed. */
static size_t parse_size(const char *s, int *ok)
{
    char *end;
    *ok = 0;
    if (s[0] < '0' || s[0] > '9')
        return 0;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0)
        return 0;
    unsigned shift = 0;
    if (*end == 'k' || *end == 'K')
        shift = 10, end++;
    else if (*end == 'm' || *end == 'M')
        shift = 20, end++;
    if (*end != '\0' || v > (MGP_SECURE_HEAP_MAX >> shift))
        return 0;
    *ok = 1;
    return (size_t)(v << shift);
}

struct vma {
    uintptr_t lo, hi;
    char perms[5];
    int locked, dontdump;
};

/* The mapping that contains p and its two neighbours, with VmFlags, from /proc/self/smaps (no secret is read). */
static int find_vma(uintptr_t p, struct vma *out, struct vma *below, struct vma *above)
{
    FILE *f = fopen("/proc/self/smaps", "re");
    if (f == NULL)
        return 0;
    char line[512];
    int state = 0; /* 0: searching; 1: in the match, until the next mapping; 2: done */
    struct vma cur = {0}, prev = {0};
    memset(out, 0, sizeof *out);
    memset(below, 0, sizeof *below);
    memset(above, 0, sizeof *above);
    while (state < 2 && fgets(line, sizeof line, f) != NULL) {
        unsigned long lo, hi;
        char perms[5];
        if (strncmp(line, "VmFlags:", 8) == 0) {
            cur.locked = strstr(line, " lo") != NULL;
            cur.dontdump = strstr(line, " dd") != NULL;
            if (state == 1)
                *out = cur;
        } else if (sscanf(line, "%lx-%lx %4s", &lo, &hi, perms) == 3 && strchr(line, '-') < strchr(line, ' ')) {
            struct vma next = {lo, hi, "", 0, 0};
            memcpy(next.perms, perms, sizeof next.perms);
            if (state == 1) {
                *above = next;
                state = 2;
                break;
            }
            prev = cur;
            cur = next;
            if (p >= lo && p < hi) {
                *out = cur;
                *below = prev;
                state = 1;
            }
        }
    }
    if (fclose(f) != 0)
        return 0;
    return state > 0;
}

/*
 * Where the arena is, and what protects it; a loud message for anything that is not as it should
 * be. 0 if the arena cannot be found (no re-lock after fork then).
 */
static int inspect_arena(size_t size)
{
    void *probe = OPENSSL_secure_malloc(MGP_SECURE_HEAP_MINSIZE);
    if (probe == NULL || !CRYPTO_secure_allocated(probe)) {
        OPENSSL_secure_free(probe);
        fprintf(stderr, "memguard-provider: WARNING: OpenSSL's secure heap was set up but gives no memory from its "
                        "arena\n");
        return 0;
    }
    struct vma v, below, above;
    int found = find_vma((uintptr_t)probe, &v, &below, &above);
    OPENSSL_secure_free(probe);
    if (!found || v.hi - v.lo != size || strcmp(v.perms, "rw-p") != 0) {
        fprintf(stderr, "memguard-provider: WARNING: cannot find OpenSSL's secure heap arena (%zu bytes) in "
                        "/proc/self/smaps: it will not be locked again in forked children\n", size);
        return 0;
    }
    arena_lo = v.lo;
    arena_size = size;
    if (!v.dontdump && madvise((void *)v.lo, size, MADV_DONTDUMP) != 0)
        fprintf(stderr, "memguard-provider: WARNING: madvise(MADV_DONTDUMP) on OpenSSL's secure heap failed (%s): "
                        "operations' transient private values may be written to core files\n", strerror(errno));
    if (below.hi != v.lo || strcmp(below.perms, "---p") != 0 || above.lo != v.hi || strcmp(above.perms, "---p") != 0)
        fprintf(stderr, "memguard-provider: WARNING: OpenSSL's secure heap has no guard page on its %s side\n",
                below.hi != v.lo || strcmp(below.perms, "---p") != 0 ? "lower" : "upper");
    if (!v.locked) {
        char soft[32], hard[32];
        mgp_memlock_limits(soft, hard);
        fprintf(stderr,
                "memguard-provider: WARNING: OpenSSL's secure heap (%zu bytes) could not be locked in RAM: "
                "RLIMIT_MEMLOCK is %s bytes (hard %s), shared with memguard's own keys. Operations' transient "
                "private values may be swapped out (they stay out of core files). Raise the limit (ulimit -l, "
                "LimitMEMLOCK=) or lower memguard-secure-heap.\n",
                size, soft, hard);
    }
    return 1;
}

/* 1 if memguard set up the secure heap and it is locked in this process (for the debug line). */
static int arena_locked_here(void)
{
    struct vma v, below, above;
    return arena_size != 0 && find_vma(arena_lo, &v, &below, &above) && v.locked;
}

int mgp_secure_heap_setup(mgp_ctx *prov, const char *setting)
{
    size_t size = MGP_SECURE_HEAP_DEFAULT;
    if (setting != NULL) {
        int ok;
        size = parse_size(setting, &ok);
        if (!ok || (size != 0 && ((size & (size - 1)) != 0 || size < MGP_SECURE_HEAP_MIN))) {
            fprintf(stderr,
                    "memguard-provider: memguard-secure-heap = %s: use a power of two from %zu to %zu bytes "
                    "(K and M suffixes allowed), or 0 to leave OpenSSL's secure heap alone\n",
                    setting, MGP_SECURE_HEAP_MIN, MGP_SECURE_HEAP_MAX);
            return 0;
        }
    }
    if (size == 0) {
        mgp_debug(prov, "secure heap: left alone (memguard-secure-heap = 0)");
        return 1;
    }
    /* From here on nothing is a configuration error: see the top of the file. */
    if (pthread_mutex_lock(&setup_lock) != 0) {
        fprintf(stderr, "memguard-provider: WARNING: secure heap not set up (lock failed)\n");
        return 1;
    }
    if (set_up) {
        mgp_debug(prov, "secure heap: set up by memguard already (%zu bytes)", arena_size);
    } else if (CRYPTO_secure_malloc_initialized()) {
        mgp_debug(prov, "secure heap: the application set it up; left as it is");
    } else {
        int r = CRYPTO_secure_malloc_init(size, MGP_SECURE_HEAP_MINSIZE);
        if (r == 0) {
            fprintf(stderr, "memguard-provider: WARNING: cannot set up OpenSSL's secure heap of %zu bytes "
                            "(memguard-secure-heap): operations' transient private values stay in the ordinary "
                            "heap\n", size);
        } else {
            set_up = 1;
            if (inspect_arena(size)) {
#ifdef MG_SANITIZED
                /* LeakSanitizer scans malloc'd memory, not this mapping: objects that only secure
                 * allocations point to (a DRBG's cipher context) would be reported as leaked. */
                __lsan_register_root_region((void *)arena_lo, arena_size);
#endif
                int e = pthread_atfork(NULL, NULL, relock_in_child);
                if (e != 0)
                    fprintf(stderr, "memguard-provider: WARNING: pthread_atfork: %s: OpenSSL's secure heap will not "
                                    "be locked again in forked children\n", strerror(e));
            }
            mgp_debug(prov, "secure heap: %zu bytes, %s", size,
                      arena_locked_here() ? "locked" : "NOT locked in RAM (see the warning)");
        }
    }
    (void)pthread_mutex_unlock(&setup_lock);
    return 1;
}
