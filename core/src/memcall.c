/* The port surface (Linux). See memcall.h. */
#include "memcall.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

size_t mg_os_page_size(void)
{
    long p = sysconf(_SC_PAGESIZE);
    return p > 0 ? (size_t)p : 4096;
}

int mg_os_map(size_t len, void **out)
{
    void *p = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return -errno;
    *out = p;
    return 0;
}

int mg_os_unmap(void *p, size_t len)
{
    return munmap(p, len) == 0 ? 0 : -errno;
}

int mg_os_protect(void *p, size_t len, enum mg_prot prot)
{
    int flags = prot == MG_PROT_RW ? PROT_READ | PROT_WRITE : prot == MG_PROT_READ ? PROT_READ : PROT_NONE;
    return mprotect(p, len, flags) == 0 ? 0 : -errno;
}

int mg_os_lock(void *p, size_t len)
{
    return mlock(p, len) == 0 ? 0 : -errno;
}

int mg_os_unlock(void *p, size_t len)
{
    return munlock(p, len) == 0 ? 0 : -errno;
}

int mg_os_nodump(void *p, size_t len)
{
    return madvise(p, len, MADV_DONTDUMP) == 0 ? 0 : -errno;
}

/*
 * Fault every page in now, as mlock does for anonymous memory, so the pages
 * are resident and counted as locked from the start. (MAP_POPULATE does
 * nothing here: secretmem pages cannot be pinned through get_user_pages.)
 */
static void touch_pages(void *at, size_t len)
{
    volatile unsigned char *p = at;
    size_t page = mg_os_page_size();
    for (size_t off = 0; off < len; off += page)
        (void)p[off];
}

int mg_os_map_secret(void *at, size_t len, bool copy)
{
#ifdef SYS_memfd_secret
    /* O_CLOEXEC is what the syscall accepts (not FD_CLOEXEC); MAP_SHARED is required. */
    int fd = (int)syscall(SYS_memfd_secret, O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = 0;
    void *tmp = MAP_FAILED;
    if (ftruncate(fd, (off_t)len) != 0) {
        rc = -errno;
        goto out;
    }
    if (copy) {
        /* Fill the new pages through a temporary view, then put them in place. */
        tmp = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (tmp == MAP_FAILED) {
            rc = -errno;
            goto out;
        }
        memcpy(tmp, at, len);
    }
    if (mmap(at, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0) == MAP_FAILED) {
        rc = -errno;
        /* A failed MAP_FIXED may have unmapped the range: put ordinary memory back. */
        if (mmap(at, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED)
            rc = -EFAULT;
    } else {
        touch_pages(at, len);
    }
out:
    if (tmp != MAP_FAILED) {
        /* tmp shares pages with the new mapping: wipe them only if they are being discarded. */
        if (rc != 0)
            explicit_bzero(tmp, len);
        (void)munmap(tmp, len);
    }
    (void)close(fd);
    return rc;
#else
    (void)at;
    (void)len;
    (void)copy;
    return -ENOSYS;
#endif
}

int mg_os_secret_snapshot(const void *src, size_t len, int *fd_out)
{
#ifdef SYS_memfd_secret
    int fd = (int)syscall(SYS_memfd_secret, O_CLOEXEC);
    if (fd < 0)
        return -errno;
    if (ftruncate(fd, (off_t)len) != 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    void *tmp = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (tmp == MAP_FAILED) {
        int e = errno;
        close(fd);
        return -e;
    }
    memcpy(tmp, src, len);
    (void)munmap(tmp, len);
    *fd_out = fd;
    return 0;
#else
    (void)src;
    (void)len;
    (void)fd_out;
    return -ENOSYS;
#endif
}

int mg_os_secret_adopt(void *at, size_t len, int fd)
{
    int rc = 0;
    if (mmap(at, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0) == MAP_FAILED)
        rc = -errno;
    else
        touch_pages(at, len);
    close(fd);
    return rc;
}

void mg_os_close(int fd)
{
    (void)close(fd);
}

unsigned long long mg_os_now_ns(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
        return 0;
    return (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec;
}

int mg_os_random(void *p, size_t len)
{
    unsigned char *c = p;
    while (len > 0) {
        /* getrandom returns at most 32 MiB per call and may be interrupted. */
        ssize_t n = getrandom(c, len, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        c += n;
        len -= (size_t)n;
    }
    return 0;
}

ssize_t mg_os_read(int fd, void *p, size_t len)
{
    for (;;) {
        ssize_t n = read(fd, p, len);
        if (n >= 0)
            return n;
        if (errno != EINTR)
            return -errno;
    }
}

int mg_os_seek_relative(int fd, off_t delta)
{
    return lseek(fd, delta, SEEK_CUR) == (off_t)-1 ? -errno : 0;
}

bool mg_os_is_seekable(int fd)
{
    return lseek(fd, 0, SEEK_CUR) != (off_t)-1;
}

int mg_os_disable_core_dumps(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_CORE, &rl) != 0)
        return -errno;
    rl.rlim_cur = 0;
    return setrlimit(RLIMIT_CORE, &rl) == 0 ? 0 : -errno;
}

int mg_os_set_nondumpable(void)
{
    return prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == 0 ? 0 : -errno;
}

int mg_os_memlock_limit(size_t *soft)
{
    return mg_os_memlock_limits(soft, NULL);
}

int mg_os_memlock_limits(size_t *soft, size_t *hard)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_MEMLOCK, &rl) != 0)
        return -errno;
    *soft = rl.rlim_cur == RLIM_INFINITY ? (size_t)-1 : (size_t)rl.rlim_cur;
    if (hard != NULL)
        *hard = rl.rlim_max == RLIM_INFINITY ? (size_t)-1 : (size_t)rl.rlim_max;
    return 0;
}

int mg_os_stack_low(uintptr_t *low)
{
    pthread_attr_t a;
    void *addr = NULL;
    size_t size = 0;
    int rc = pthread_getattr_np(pthread_self(), &a);
    if (rc != 0)
        return -rc;
    rc = pthread_attr_getstack(&a, &addr, &size);
    (void)pthread_attr_destroy(&a);
    if (rc != 0 || addr == NULL)
        return rc != 0 ? -rc : -EINVAL;
    *low = (uintptr_t)addr;
    return 0;
}

void mg_os_write_stderr(const char *msg)
{
    size_t len = strlen(msg);
    while (len > 0) {
        ssize_t n = write(STDERR_FILENO, msg, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        msg += n;
        len -= (size_t)n;
    }
}

_Noreturn void mg_os_abort(void)
{
    abort();
}
