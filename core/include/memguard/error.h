#ifndef MEMGUARD_ERROR_H
#define MEMGUARD_ERROR_H

#include <memguard/export.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Every int-returning function returns MG_OK (0) or one of these negative
 * codes. Functions returning a pointer return NULL on error, set errno, and
 * record the code for mg_last_error() in the calling thread.
 */
typedef enum mg_error {
    MG_OK = 0,
    MG_EINVAL = -1,   /* bad argument: NULL, size 0, size too large */
    MG_ENOMEM = -2,   /* the kernel refused memory (mmap, or vm.max_map_count) */
    MG_EMLOCK = -3,   /* mlock failed: RLIMIT_MEMLOCK exhausted or no privilege */
    MG_EDEAD = -4,    /* the buffer was destroyed or purged */
    MG_EFROZEN = -5,  /* write through the API to a frozen (read-only) buffer */
    MG_ERANGE = -6,   /* offset or length outside the buffer */
    MG_ESYS = -7,     /* another system call failed (errno kept) */
    MG_EIO = -8,      /* reading from a file descriptor failed */
    MG_ENODATA = -9,  /* end of input before any (or enough) data */
    MG_EAUTH = -10,   /* authentication failed: tampered data or wrong key */
    MG_EINIT = -11,   /* library initialisation failed */
    MG_ENOTSUP = -12, /* not supported here (kernel, CPU or build) */
} mg_error;

/* Short, fixed, secret-free text for a code. Never NULL. */
MG_API const char *mg_strerror(int code);

/* The code of the last failure in this thread (MG_OK if none yet). */
MG_API int mg_last_error(void);

/*
 * A longer message for the last failure in this thread, with context such as
 * the RLIMIT_MEMLOCK value when mlock failed. Never contains secret data.
 * Valid until the next memguard call in this thread.
 */
MG_API const char *mg_last_error_message(void);

#ifdef __cplusplus
}
#endif

#endif
