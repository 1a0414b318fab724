/*
 * CHECK(condition, "what, with %s", args): a CUnit assertion whose failure
 * message explains itself and carries OpenSSL's last error, for the provider
 * tests. Header-only: each test program includes it once.
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

#endif
