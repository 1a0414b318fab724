/*
 * CHECK(condition, "what, with %s", args): a CUnit assertion whose failure
 * message explains itself and carries OpenSSL's last error, for the provider
 * tests; and the small helpers several of them share (unhex, memguard_error).
 * Header-only: each test program includes it once.
 */
#ifndef MGT_PROVIDER_CHECK_H
#define MGT_PROVIDER_CHECK_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <CUnit/CUnit.h>
#include <openssl/err.h>

static bool check_impl(bool ok, unsigned line, const char *func, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static bool check_impl(bool ok, unsigned line, const char *func, const char *fmt, ...)
{
    char msg[512] = "";
    if (!ok) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        unsigned long e = ERR_peek_last_error();
        if (e != 0) {
            size_t used = strlen(msg);
            char err[256];
            ERR_error_string_n(e, err, sizeof err);
            snprintf(msg + used, sizeof msg - used, " [openssl: %s]", err);
        }
    }
    CU_assertImplementation(ok ? CU_TRUE : CU_FALSE, line, msg, __FILE__, func, CU_FALSE);
    return ok;
}

#define CHECK(cond, ...) check_impl((cond) ? true : false, __LINE__, __func__, __VA_ARGS__)

/* Hex digits to bytes, at most cap; the count (stops at the first non-hex pair). */
static inline size_t unhex(const char *h, unsigned char *out, size_t cap)
{
    size_t n = 0;
    for (; h[0] != '\0' && h[1] != '\0' && n < cap; h += 2) {
        unsigned v;
        if (sscanf(h, "%2x", &v) != 1)
            break;
        out[n++] = (unsigned char)v;
    }
    return n;
}

/* The last error carries a memguard reason string (not a crash, not a silent 0); clears the queue. */
static inline bool memguard_error(void)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e != 0 ? ERR_reason_error_string(e) : NULL;
    bool ok = r != NULL && strncmp(r, "memguard:", 9) == 0;
    ERR_clear_error();
    return ok;
}

#endif
