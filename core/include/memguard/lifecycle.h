#ifndef MEMGUARD_LIFECYCLE_H
#define MEMGUARD_LIFECYCLE_H

#include <stddef.h>
#include <memguard/export.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Purge every secret and destroy the process key, then exit(code). */
MG_API _Noreturn void mg_safe_exit(int code);

/*
 * Wipe every secret at once (lock-free: safe even if the library's state is
 * inconsistent), write msg and a newline to stderr, then abort().
 */
MG_API _Noreturn void mg_safe_panic(const char *msg);

/*
 * On any of the n signals: run handler(sig) (may be NULL) on a normal thread,
 * not in signal context, so it may take locks and allocate; purge; then end
 * the process with that signal's default action (exit status 128+sig if the
 * default is to ignore it). Previously installed handlers are called first,
 * from the signal handler, as they expect. n == 0 is MG_EINVAL: memguard
 * never catches every signal by accident. SIGKILL, SIGSTOP and the crash
 * signals (see mg_catch_crashes) are refused.
 */
typedef void (*mg_signal_handler)(int sig);
MG_API int mg_catch_signals(mg_signal_handler handler, const int *signals, size_t n);

/* mg_catch_signals(NULL, {SIGINT}, 1). */
MG_API int mg_catch_interrupt(void);

/*
 * On SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTRAP or SIGSYS: wipe every
 * guarded buffer and the process key (async-signal-safe: lock-free, no
 * allocation, on an alternate signal stack so stack overflows are covered),
 * then let the signal take its course - a previously installed handler runs,
 * or the default action kills the process and the crash is still reported
 * (with a core file if enabled, which then holds no secret).
 * Threads that use memguard get an alternate stack automatically; call
 * mg_catch_crashes() again from a thread to give it one explicitly.
 */
MG_API int mg_catch_crashes(void);

#ifdef __cplusplus
}
#endif

#endif
