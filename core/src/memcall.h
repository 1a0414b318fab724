/*
 * The port surface: every OS-specific call memguard makes goes through here
 * (memcall.c is the only file that includes OS headers for memory, files,
 * limits and randomness). Functions return 0 on success or -errno.
 */
#ifndef MG_MEMCALL_H
#define MG_MEMCALL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum mg_prot { MG_PROT_NONE, MG_PROT_READ, MG_PROT_RW };

size_t mg_os_page_size(void);

/* A private anonymous mapping, PROT_NONE, of len bytes (a page multiple). */
int mg_os_map(size_t len, void **out);
int mg_os_unmap(void *p, size_t len);
int mg_os_protect(void *p, size_t len, enum mg_prot prot);
int mg_os_lock(void *p, size_t len);
int mg_os_unlock(void *p, size_t len);
/* Keep the range out of core dumps (MADV_DONTDUMP). */
int mg_os_nodump(void *p, size_t len);

/*
 * Replace [at, at+len) (inside a mapping we own) by fresh memfd_secret pages:
 * removed from the kernel's direct map, unreadable through /proc/PID/mem and
 * ptrace, implicitly locked. -ENOSYS where the kernel (or valgrind) lacks it,
 * -EAGAIN over RLIMIT_MEMLOCK. With copy, the old contents are carried over.
 */
int mg_os_map_secret(void *at, size_t len, bool copy);

/*
 * Fork support for memfd_secret pages, which fork shares between parent and
 * child: snapshot copies [src, src+len) into a new secret file (returns its
 * fd in *fd); adopt maps that file over [at, at+len) and closes it.
 */
int mg_os_secret_snapshot(const void *src, size_t len, int *fd);
int mg_os_secret_adopt(void *at, size_t len, int fd);
void mg_os_close(int fd);

/* Monotonic clock in nanoseconds. */
unsigned long long mg_os_now_ns(void);

/* Fill from the kernel CSPRNG; retries on EINTR and short reads. */
int mg_os_random(void *p, size_t len);

/* read(2) retried on EINTR: bytes read (0 at EOF) or -errno. */
ssize_t mg_os_read(int fd, void *p, size_t len);
/* Seek fd by delta from its current position; -ESPIPE for pipes. */
int mg_os_seek_relative(int fd, off_t delta);
bool mg_os_is_seekable(int fd);

/* Soft RLIMIT_CORE := 0 (the hard limit stays). */
int mg_os_disable_core_dumps(void);
int mg_os_set_nondumpable(void);
/* Current soft RLIMIT_MEMLOCK in bytes (SIZE_MAX if unlimited). */
int mg_os_memlock_limit(size_t *soft);
/* Both RLIMIT_MEMLOCK values; (size_t)-1 for unlimited. 0, or -errno. */
int mg_os_memlock_limits(size_t *soft, size_t *hard);
/* The lowest address of the calling thread's stack (its usable part). 0, or -errno. */
int mg_os_stack_low(uintptr_t *low);

/* Write a message to stderr with write(2): async-signal-safe. */
void mg_os_write_stderr(const char *msg);
_Noreturn void mg_os_abort(void);

#endif
