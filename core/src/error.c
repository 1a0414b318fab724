#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

#include "internal.h"

static _Thread_local int last_code;
static _Thread_local char last_message[512]; /* the RLIMIT_MEMLOCK text plus a caller's context */

const char *mg_strerror(int code)
{
    switch (code) {
    case MG_OK: return "success";
    case MG_EINVAL: return "invalid argument";
    case MG_ENOMEM: return "out of memory or address-space mappings";
    case MG_EMLOCK: return "cannot lock memory (RLIMIT_MEMLOCK exhausted or not permitted)";
    case MG_EDEAD: return "buffer is destroyed or purged";
    case MG_EFROZEN: return "buffer is frozen (read-only)";
    case MG_ERANGE: return "offset or length outside the buffer";
    case MG_ESYS: return "system call failed";
    case MG_EIO: return "read failed";
    case MG_ENODATA: return "not enough data";
    case MG_EAUTH: return "authentication failed (tampered data or wrong key)";
    case MG_EINIT: return "library initialisation failed";
    case MG_ENOTSUP: return "not supported on this system";
    default: return "unknown memguard error";
    }
}

int mg_last_error(void)
{
    return last_code;
}

const char *mg_last_error_message(void)
{
    return last_code == MG_OK ? "success" : last_message;
}

static int errno_for(int code, int sys_errno)
{
    if (sys_errno != 0)
        return sys_errno;
    switch (code) {
    case MG_EINVAL: return EINVAL;
    case MG_ENOMEM: return ENOMEM;
    case MG_EMLOCK: return ENOMEM;
    case MG_EDEAD: return EBADF;
    case MG_EFROZEN: return EACCES;
    case MG_ERANGE: return ERANGE;
    case MG_ENODATA: return ENODATA;
    case MG_EAUTH: return EBADMSG;
    default: return EIO;
    }
}

int mg_fail(int code, int sys_errno, const char *fmt, ...)
{
    last_code = code;
    int n = snprintf(last_message, sizeof last_message, "memguard: %s", mg_strerror(code));
    if (fmt != NULL && n > 0 && (size_t)n < sizeof last_message - 2) {
        last_message[n++] = ':';
        last_message[n++] = ' ';
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(last_message + n, sizeof last_message - (size_t)n, fmt, ap);
        va_end(ap);
    }
    errno = errno_for(code, sys_errno);
    return code;
}
