/* Guarded buffers: see buffer.h for the contract and layout.h for the picture. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "memcall.h"

static mg_unmap_hook_fn unmap_hook;

void mg_test_set_unmap_hook(mg_unmap_hook_fn fn)
{
    unmap_hook = fn;
}

/* Handles are logically const for readers, but the lock inside is not. */
static mg_buffer *unconst(const mg_buffer *b)
{
    return (mg_buffer *)(uintptr_t)b;
}

static int lock_handle(mg_buffer *b)
{
    if (b == NULL)
        return mg_fail(MG_EINVAL, 0, "NULL buffer");
    if (atomic_load(&b->magic) != MG_BUFFER_MAGIC)
        return mg_fail(MG_EINVAL, 0, "not a live buffer handle (already destroyed?)");
    int rc = pthread_mutex_lock(&b->lock);
    if (rc != 0)
        return mg_fail(MG_ESYS, rc, "buffer lock: %s", strerror(rc));
    return MG_OK;
}

static void unlock_handle(mg_buffer *b)
{
    pthread_mutex_unlock(&b->lock);
}

/* Lock b and check it is alive: MG_OK with the lock held, or an error without it. */
static int lock_alive(mg_buffer *b)
{
    int rc = lock_handle(b);
    if (rc != MG_OK)
        return rc;
    if (!b->alive) {
        unlock_handle(b);
        return mg_fail(MG_EDEAD, 0, NULL);
    }
    return MG_OK;
}

/* Bytes as whole KiB, rounded up: "8 KiB more needed" must not understate. */
static size_t kib_up(size_t n)
{
    return n / 1024 + (n % 1024 != 0);
}

/* The hard RLIMIT_MEMLOCK, for the message only. false if unlimited or unknown. */
static bool memlock_hard(size_t *hard)
{
    size_t soft;
    return mg_os_memlock_limits(&soft, hard) == 0 && *hard != (size_t)-1;
}

/*
 * Name the real cause: which limit, its soft and hard values, what memguard holds already and
 * how much more this allocation needed. (The process's other locked memory, such as OpenSSL's
 * secure heap, counts against the same limit.)
 */
static int mlock_failure(int err, size_t len)
{
    size_t limit = 0, hard = 0;
    size_t held = atomic_load(&mg_stat_locked_bytes);
    if (mg_os_memlock_limit(&limit) != 0 || limit == (size_t)-1)
        return mg_fail(MG_EMLOCK, err,
                       "mlock of %zu bytes: %s (RLIMIT_MEMLOCK is unlimited; %zu KiB already locked by memguard)",
                       len, strerror(err), kib_up(held));
    char hard_text[32] = "unlimited";
    if (memlock_hard(&hard))
        snprintf(hard_text, sizeof hard_text, "%zu KiB", hard / 1024);
    return mg_fail(MG_EMLOCK, err,
                   "RLIMIT_MEMLOCK is %zu KiB (hard %s); %zu KiB already locked by memguard, %zu KiB more needed "
                   "(mlock: %s): raise LimitMEMLOCK= / ulimit -l, or grant CAP_IPC_LOCK",
                   limit / 1024, hard_text, kib_up(held), kib_up(len), strerror(err));
}

/* A new zero-filled, mutable buffer, returned with its lock held. */
static mg_buffer *buffer_alloc_ex(size_t size, bool internal)
{
    if (mg_ensure_init() != MG_OK)
        return NULL;
    struct mg_layout l;
    if (mg_layout_compute(size, mg_page_size(), &l) != 0) {
        mg_fail(MG_EINVAL, 0, size == 0 ? "size 0" : "size %zu too large", size);
        return NULL;
    }
    void *map = NULL;
    int rc = mg_os_map(l.map_len, &map);
    if (rc != 0) {
        mg_fail(MG_ENOMEM, -rc, "mmap of %zu bytes: %s", l.map_len, strerror(-rc));
        return NULL;
    }
    unsigned char *base = map;
    unsigned char *inner = mg_layout_inner(base, &l);
    /* The whole mapping starts PROT_NONE: opening the inner pages leaves both guards in place. */
    rc = mg_os_protect(inner, l.inner_len, MG_PROT_RW);
    if (rc != 0) {
        mg_fail(MG_ENOMEM, -rc, "mprotect: %s (vm.max_map_count reached?)", strerror(-rc));
        goto unmap;
    }
    bool secret = mg_backend_get() == MG_BACKEND_SECRETMEM;
    if (secret) {
        /* memfd_secret pages are locked and left out of dumps by the kernel itself. */
        rc = mg_os_map_secret(inner, l.inner_len, false);
        if ((rc == -EAGAIN || rc == -ENOMEM) && mg_lock_policy_get() == MG_LOCK_BEST_EFFORT) {
            secret = false; /* over the limit: ordinary pages, counted as unlocked below */
            rc = 0;
        } else if (rc == -EAGAIN || rc == -ENOMEM) {
            mlock_failure(-rc, l.inner_len);
            goto unmap;
        }
        if (rc != 0) {
            mg_fail(MG_ESYS, -rc, "memfd_secret: %s", strerror(-rc));
            goto unmap;
        }
    }
    rc = mg_os_nodump(inner, l.inner_len);
    if (rc != 0) {
        mg_fail(MG_ESYS, -rc, "madvise(MADV_DONTDUMP): %s", strerror(-rc));
        goto unmap;
    }
    bool locked = true;
    rc = secret ? 0 : mg_os_lock(inner, l.inner_len);
    if (rc != 0) {
        if (mg_lock_policy_get() == MG_LOCK_REQUIRED) {
            mlock_failure(-rc, l.inner_len);
            goto unmap;
        }
        locked = false;
    }
    mg_copy(mg_layout_canary(base, &l), mg_canary_pattern(), l.canary_len);

    mg_buffer *b = mg_registry_acquire();
    if (b == NULL)
        goto unmap;
    pthread_mutex_lock(&b->lock); /* returned held: purge cannot see a half-filled buffer */
    b->layout = l;
    b->base = base;
    b->alive = true;
    b->is_mutable = true;
    b->locked = locked;
    b->busy = false;
    b->mapped_dead = false;
    b->internal = internal;
    b->secret = secret;
    atomic_store(&b->wipe_len, l.inner_len);
    atomic_store(&b->wipe_ptr, inner);
    atomic_fetch_add(&mg_stat_live, 1);
    if (locked)
        atomic_fetch_add(&mg_stat_locked_bytes, l.inner_len);
    else
        atomic_fetch_add(&mg_stat_unlocked, 1);
    return b;

unmap:
    /* Nothing secret was written yet: the mapping holds only zeros and the canary. */
    if (mg_os_unmap(base, l.map_len) != 0)
        mg_os_write_stderr("memguard: munmap failed while cleaning up a failed allocation\n");
    return NULL;
}

/* munmap (which also releases the mlock) of a buffer whose data is already wiped. */
static void unmap_locked(mg_buffer *b)
{
    int rc = mg_os_unmap(b->base, b->layout.map_len);
    if (rc != 0) {
        mg_fail(MG_ESYS, -rc, "munmap: %s", strerror(-rc));
        mg_os_write_stderr("memguard: munmap of a wiped buffer failed; its mapping is leaked\n");
    }
    b->base = NULL;
    b->mapped_dead = false;
}

bool mg_buffer_teardown_locked(mg_buffer *b, bool keep_mapping)
{
    struct mg_layout *l = &b->layout;
    unsigned char *inner = mg_layout_inner(b->base, l);
    bool writable = b->is_mutable || mg_os_protect(inner, l->inner_len, MG_PROT_RW) == 0;
    bool canary_ok = mg_equal(mg_layout_canary(b->base, l), mg_canary_pattern(), l->canary_len);
    if (writable)
        mg_wipe(inner, l->inner_len);
    else
        mg_os_write_stderr("memguard: cannot make a frozen buffer writable to wipe it; unmapping it\n");
    atomic_store(&b->wipe_ptr, NULL);
    atomic_store(&b->wipe_len, 0);
    if (unmap_hook != NULL)
        unmap_hook(inner, l->inner_len);
    atomic_fetch_sub(&mg_stat_live, 1);
    if (b->locked)
        atomic_fetch_sub(&mg_stat_locked_bytes, l->inner_len);
    else
        atomic_fetch_sub(&mg_stat_unlocked, 1);
    b->alive = false;
    b->is_mutable = false;
    if (keep_mapping) {
        /* A read(2) is writing here without the lock: fence it off, unmap later. */
        if (mg_os_protect(inner, l->inner_len, MG_PROT_NONE) != 0)
            mg_os_write_stderr("memguard: cannot fence off a purged buffer that a read is filling\n");
        b->mapped_dead = true;
        return canary_ok;
    }
    unmap_locked(b);
    return canary_ok;
}

_Noreturn void mg_canary_failure(void)
{
    mg_registry_emergency_wipe();
    mg_os_write_stderr("memguard: FATAL: the canary in front of a guarded buffer was overwritten "
                       "(a buffer underflow next to a secret); every secret has been wiped; aborting\n");
    mg_os_abort();
}

/* Destroy a buffer whose lock the caller holds; releases the lock and the handle. */
static void destroy_held(mg_buffer *b)
{
    bool canary_ok = true;
    if (b->alive) {
        canary_ok = mg_buffer_teardown_locked(b, false);
    } else {
        if (b->mapped_dead)
            unmap_locked(b);
        atomic_fetch_sub(&mg_stat_dead, 1);
    }
    pthread_mutex_unlock(&b->lock);
    if (!canary_ok)
        mg_canary_failure();
    mg_registry_release(b);
}

void mg_buffer_destroy(mg_buffer *b)
{
    if (b == NULL)
        return;
    if (atomic_load(&b->magic) != MG_BUFFER_MAGIC) {
        /* Freeing a handle twice is a bug that may hide a use-after-free of a secret. */
        mg_os_write_stderr("memguard: FATAL: mg_buffer_destroy on an invalid or already destroyed handle\n");
        mg_os_abort();
    }
    if (pthread_mutex_lock(&b->lock) != 0)
        return;
    destroy_held(b);
}

static void freeze_locked(mg_buffer *b)
{
    if (!b->is_mutable)
        return;
    int rc = mg_os_protect(mg_layout_inner(b->base, &b->layout), b->layout.inner_len, MG_PROT_READ);
    if (rc == 0)
        b->is_mutable = false;
}

static mg_buffer *buffer_alloc(size_t size)
{
    return buffer_alloc_ex(size, false);
}

static mg_buffer *unlocked(mg_buffer *b)
{
    if (b != NULL)
        unlock_handle(b);
    return b;
}

mg_buffer *mg_buffer_new_internal(size_t size)
{
    return unlocked(buffer_alloc_ex(size, true));
}

mg_buffer *mg_buffer_new_held(size_t size)
{
    return buffer_alloc(size);
}

int mg_buffer_hold(mg_buffer *b)
{
    return lock_alive(b);
}

void mg_buffer_release(mg_buffer *b, bool freeze)
{
    if (freeze)
        freeze_locked(b);
    unlock_handle(b);
}

void mg_buffer_destroy_held(mg_buffer *b)
{
    destroy_held(b);
}

unsigned char *mg_buffer_data_held(mg_buffer *b)
{
    return mg_layout_data(b->base, &b->layout);
}

size_t mg_buffer_size_held(mg_buffer *b)
{
    return b->layout.size;
}

mg_buffer *mg_buffer_new(size_t size)
{
    return unlocked(buffer_alloc(size));
}


mg_buffer *mg_buffer_from_bytes(void *src, size_t size)
{
    if (src == NULL) {
        mg_fail(MG_EINVAL, 0, "NULL source");
        return NULL;
    }
    mg_buffer *b = buffer_alloc(size);
    if (b == NULL)
        return NULL;
    mg_move(mg_layout_data(b->base, &b->layout), src, size);
    freeze_locked(b);
    return unlocked(b);
}

mg_buffer *mg_buffer_random(size_t size)
{
    mg_buffer *b = buffer_alloc(size);
    if (b == NULL)
        return NULL;
    int rc = mg_os_random(mg_layout_data(b->base, &b->layout), size);
    if (rc != 0) {
        destroy_held(b);
        mg_fail(MG_ESYS, -rc, "getrandom: %s", strerror(-rc));
        return NULL;
    }
    freeze_locked(b);
    return unlocked(b);
}

void *mg_buffer_data(const mg_buffer *cb)
{
    mg_buffer *b = unconst(cb);
    if (lock_alive(b) != MG_OK)
        return NULL;
    void *p = mg_layout_data(b->base, &b->layout);
    unlock_handle(b);
    return p;
}

size_t mg_buffer_size(const mg_buffer *cb)
{
    mg_buffer *b = unconst(cb);
    if (lock_alive(b) != MG_OK)
        return 0;
    size_t n = b->layout.size;
    unlock_handle(b);
    return n;
}

int mg_buffer_freeze(mg_buffer *b)
{
    int rc = lock_alive(b);
    if (rc != MG_OK)
        return rc;
    rc = MG_OK;
    if (b->is_mutable) {
        int e = mg_os_protect(mg_layout_inner(b->base, &b->layout), b->layout.inner_len, MG_PROT_READ);
        if (e == 0)
            b->is_mutable = false;
        else
            rc = mg_fail(MG_ESYS, -e, "mprotect(PROT_READ): %s", strerror(-e));
    }
    unlock_handle(b);
    return rc;
}

int mg_buffer_melt(mg_buffer *b)
{
    int rc = lock_alive(b);
    if (rc != MG_OK)
        return rc;
    rc = MG_OK;
    if (!b->is_mutable) {
        int e = mg_os_protect(mg_layout_inner(b->base, &b->layout), b->layout.inner_len, MG_PROT_RW);
        if (e == 0)
            b->is_mutable = true;
        else
            rc = mg_fail(MG_ESYS, -e, "mprotect(PROT_READ|PROT_WRITE): %s", strerror(-e));
    }
    unlock_handle(b);
    return rc;
}

bool mg_buffer_is_mutable(const mg_buffer *cb)
{
    mg_buffer *b = unconst(cb);
    if (lock_alive(b) != MG_OK)
        return false;
    bool m = b->is_mutable;
    unlock_handle(b);
    return m;
}

bool mg_buffer_is_alive(const mg_buffer *cb)
{
    mg_buffer *b = unconst(cb);
    if (lock_handle(b) != MG_OK)
        return false;
    bool a = b->alive;
    unlock_handle(b);
    return a;
}

/* Common checks for writes into [off, off+n): lock held on MG_OK. */
static int begin_write(mg_buffer *b, size_t off, const void *src, size_t n)
{
    if (src == NULL && n > 0)
        return mg_fail(MG_EINVAL, 0, "NULL source");
    int rc = lock_alive(b);
    if (rc != MG_OK)
        return rc;
    if (!b->is_mutable) {
        unlock_handle(b);
        return mg_fail(MG_EFROZEN, 0, NULL);
    }
    if (off > b->layout.size || n > b->layout.size - off) {
        size_t size = b->layout.size;
        unlock_handle(b);
        return mg_fail(MG_ERANGE, 0, "%zu bytes at offset %zu into a %zu-byte buffer", n, off, size);
    }
    return MG_OK;
}

int mg_buffer_copy_at(mg_buffer *b, size_t off, const void *src, size_t n)
{
    int rc = begin_write(b, off, src, n);
    if (rc != MG_OK)
        return rc;
    mg_copy(mg_layout_data(b->base, &b->layout) + off, src, n);
    unlock_handle(b);
    return MG_OK;
}

int mg_buffer_copy(mg_buffer *b, const void *src, size_t n)
{
    return mg_buffer_copy_at(b, 0, src, n);
}

int mg_buffer_move_at(mg_buffer *b, size_t off, void *src, size_t n)
{
    int rc = begin_write(b, off, src, n);
    if (rc != MG_OK)
        return rc;
    mg_move(mg_layout_data(b->base, &b->layout) + off, src, n);
    unlock_handle(b);
    return MG_OK;
}

int mg_buffer_move(mg_buffer *b, void *src, size_t n)
{
    return mg_buffer_move_at(b, 0, src, n);
}

void mg_buffer_wipe(mg_buffer *b)
{
    if (lock_alive(b) != MG_OK)
        return;
    unsigned char *inner = mg_layout_inner(b->base, &b->layout);
    bool frozen = !b->is_mutable;
    if (frozen && mg_os_protect(inner, b->layout.inner_len, MG_PROT_RW) != 0) {
        mg_fail(MG_ESYS, errno, "cannot make a frozen buffer writable to wipe it");
        unlock_handle(b);
        return;
    }
    mg_wipe(mg_layout_data(b->base, &b->layout), b->layout.size);
    if (frozen && mg_os_protect(inner, b->layout.inner_len, MG_PROT_READ) != 0)
        b->is_mutable = true; /* left writable: report it truthfully */
    unlock_handle(b);
}

void mg_buffer_scramble(mg_buffer *b)
{
    if (lock_alive(b) != MG_OK)
        return;
    if (!b->is_mutable) {
        mg_fail(MG_EFROZEN, 0, NULL);
    } else {
        int rc = mg_os_random(mg_layout_data(b->base, &b->layout), b->layout.size);
        if (rc != 0)
            mg_fail(MG_ESYS, -rc, "getrandom: %s", strerror(-rc));
    }
    unlock_handle(b);
}

bool mg_buffer_equal(const mg_buffer *cb, const void *data, size_t n)
{
    mg_buffer *b = unconst(cb);
    if (data == NULL && n > 0) {
        mg_fail(MG_EINVAL, 0, "NULL data");
        return false;
    }
    if (lock_alive(b) != MG_OK)
        return false;
    /* The length is not secret; the contents are compared in constant time. */
    bool eq = n == b->layout.size && mg_equal(mg_layout_data(b->base, &b->layout), data, n);
    unlock_handle(b);
    return eq;
}

/* ---- purge ---- */

static void purge_one(mg_buffer *b, void *arg)
{
    bool *canary_failed = arg;
    if (pthread_mutex_lock(&b->lock) != 0)
        return;
    if (b->alive && !b->internal) {
        if (!mg_buffer_teardown_locked(b, b->busy))
            *canary_failed = true;
        atomic_fetch_add(&mg_stat_dead, 1);
    }
    pthread_mutex_unlock(&b->lock);
}

static _Atomic unsigned long long purge_count;

unsigned long long mg_purge_count(void)
{
    return atomic_load(&purge_count);
}

void mg_purge(void)
{
    if (mg_ensure_init() != MG_OK)
        return;
    atomic_fetch_add(&purge_count, 1); /* before any buffer dies: see mg_purge_count() */
    bool canary_failed = false;
    mg_registry_for_each(purge_one, &canary_failed);
    /* A new process key: every enclave sealed so far becomes undecryptable. */
    mg_coffer_new_key();
    if (canary_failed)
        mg_canary_failure();
}

/* ---- reading from file descriptors ---- */

#define READ_PURGED (-100000)

/*
 * read(2) into b at off, with b's lock held on entry and on return. The lock
 * is dropped during the call so that a purge never waits on a blocked reader:
 * purge then wipes the buffer and makes it PROT_NONE (read fails with EFAULT)
 * and leaves the unmap to us. Returns bytes read, -errno, or READ_PURGED.
 */
static ssize_t read_into(mg_buffer *b, size_t off, size_t len, int fd)
{
    unsigned char *p = mg_layout_data(b->base, &b->layout) + off;
    b->busy = true;
    unlock_handle(b);
    ssize_t n = mg_os_read(fd, p, len);
    pthread_mutex_lock(&b->lock);
    b->busy = false;
    return b->alive ? n : READ_PURGED;
}

static mg_buffer *read_failed(mg_buffer *b, ssize_t n, size_t got)
{
    destroy_held(b);
    if (n == READ_PURGED)
        mg_fail(MG_EDEAD, 0, "purged while reading");
    else if (n < 0)
        mg_fail(MG_EIO, (int)-n, "read: %s", strerror((int)-n));
    else
        mg_fail(MG_ENODATA, 0, "end of input after %zu bytes", got);
    return NULL;
}

/* Replace the held buffer *bp by a held one of new_size holding its first used bytes. */
static int regrow(mg_buffer **bp, size_t used, size_t new_size)
{
    mg_buffer *nb = buffer_alloc(new_size);
    if (nb == NULL)
        return mg_last_error();
    mg_copy(mg_layout_data(nb->base, &nb->layout), mg_layout_data((*bp)->base, &(*bp)->layout), used);
    destroy_held(*bp);
    *bp = nb;
    return MG_OK;
}

static mg_buffer *finish_read(mg_buffer *work, size_t used)
{
    if (used == 0) {
        destroy_held(work);
        mg_fail(MG_ENODATA, 0, "nothing to read");
        return NULL;
    }
    if (work->layout.size != used) {
        int rc = regrow(&work, used, used);
        if (rc != MG_OK) {
            destroy_held(work);
            mg_fail(rc, 0, "cannot allocate the %zu-byte result (input consumed and wiped)", used);
            return NULL;
        }
    }
    freeze_locked(work);
    return unlocked(work);
}

mg_buffer *mg_buffer_from_fd(int fd, size_t size)
{
    if (fd < 0) {
        mg_fail(MG_EINVAL, 0, "bad file descriptor %d", fd);
        return NULL;
    }
    mg_buffer *b = buffer_alloc(size);
    if (b == NULL)
        return NULL;
    size_t got = 0;
    while (got < size) {
        ssize_t n = read_into(b, got, size - got, fd);
        if (n <= 0)
            return read_failed(b, n, got);
        got += (size_t)n;
    }
    freeze_locked(b);
    return unlocked(b);
}

/* Shared by _until (delim 0..255) and _all (delim -1). */
static mg_buffer *read_growing(int fd, int delim)
{
    if (fd < 0) {
        mg_fail(MG_EINVAL, 0, "bad file descriptor %d", fd);
        return NULL;
    }
    if (mg_ensure_init() != MG_OK)
        return NULL;
    /* Reading past the delimiter is only harmless if we can seek back. */
    bool bytewise = delim >= 0 && !mg_os_is_seekable(fd);
    size_t cap = mg_page_size() - MG_MIN_CANARY;
    mg_buffer *work = buffer_alloc(cap);
    if (work == NULL)
        return NULL;
    size_t used = 0;
    for (;;) {
        if (used == cap) {
            int rc = cap > SIZE_MAX / 4 ? MG_ENOMEM : regrow(&work, used, cap * 2);
            if (rc != MG_OK) {
                destroy_held(work);
                mg_fail(rc, 0, "cannot grow beyond %zu bytes (input consumed and wiped)", cap);
                return NULL;
            }
            cap *= 2;
        }
        ssize_t n = read_into(work, used, bytewise ? 1 : cap - used, fd);
        if (n < 0)
            return read_failed(work, n, used);
        if (n == 0)
            break;
        unsigned char *p = mg_layout_data(work->base, &work->layout) + used;
        unsigned char *hit = delim >= 0 ? memchr(p, delim, (size_t)n) : NULL;
        if (hit == NULL) {
            used += (size_t)n;
            continue;
        }
        size_t keep = (size_t)(hit - p);
        size_t extra = (size_t)n - keep - 1;
        /* Wipe the delimiter and what followed it, then give those bytes back to fd. */
        mg_wipe(hit, (size_t)n - keep);
        used += keep;
        if (extra > 0) {
            int rc = mg_os_seek_relative(fd, -(off_t)extra);
            if (rc != 0) {
                destroy_held(work);
                mg_fail(MG_EIO, -rc, "lseek back over %zu bytes: %s", extra, strerror(-rc));
                return NULL;
            }
        }
        break;
    }
    return finish_read(work, used);
}

mg_buffer *mg_buffer_from_fd_until(int fd, unsigned char delim)
{
    return read_growing(fd, delim);
}

mg_buffer *mg_buffer_from_fd_all(int fd)
{
    return read_growing(fd, -1);
}
