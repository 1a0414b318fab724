/* Exit, panic, orderly signals and crash wiping. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "memcall.h"

/* ---- exit and panic ---- */

_Noreturn void mg_safe_exit(int code)
{
    mg_purge();
    mg_coffer_destroy();
    exit(code);
}

_Noreturn void mg_safe_panic(const char *msg)
{
    mg_registry_emergency_wipe();
    if (msg != NULL) {
        mg_os_write_stderr(msg);
        mg_os_write_stderr("\n");
    }
    mg_os_abort();
}

/* Registered at initialisation: nothing secret outlives a normal exit. */
void mg_exit_wipe(void)
{
    mg_purge();
}

/* ---- orderly signals: handed to a thread that may lock and allocate ---- */

static pthread_mutex_t catch_lock = PTHREAD_MUTEX_INITIALIZER;
static int sig_pipe[2] = {-1, -1};
static _Atomic(mg_signal_handler) user_handler;
static struct sigaction previous[NSIG];
static _Atomic bool caught[NSIG];

static bool is_crash_signal(int sig)
{
    return sig == SIGSEGV || sig == SIGBUS || sig == SIGILL || sig == SIGFPE || sig == SIGABRT ||
           sig == SIGTRAP || sig == SIGSYS;
}

static void call_previous(int sig, siginfo_t *info, void *ctx)
{
    struct sigaction *old = &previous[sig];
    if (old->sa_flags & SA_SIGINFO) {
        if (old->sa_sigaction != NULL)
            old->sa_sigaction(sig, info, ctx);
    } else if (old->sa_handler != SIG_DFL && old->sa_handler != SIG_IGN && old->sa_handler != NULL) {
        old->sa_handler(sig);
    }
}

static void orderly_handler(int sig, siginfo_t *info, void *ctx)
{
    int saved = errno;
    /* The application's handler first, as it expects; then hand over to our thread. */
    call_previous(sig, info, ctx);
    unsigned char s = (unsigned char)sig;
    ssize_t n = write(sig_pipe[1], &s, 1);
    (void)n; /* a full pipe means a signal is already on its way */
    errno = saved;
}

static void *signal_thread(void *arg)
{
    (void)arg;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    for (;;) {
        unsigned char s;
        ssize_t n = read(sig_pipe[0], &s, 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n != 1)
            return NULL;
        int sig = s;
        mg_signal_handler h = atomic_load(&user_handler);
        if (h != NULL)
            h(sig);
        mg_purge();
        mg_coffer_destroy();
        /* End the way the signal would have: default action, from this thread. */
        struct sigaction dfl = {0};
        dfl.sa_handler = SIG_DFL;
        sigaction(sig, &dfl, NULL);
        sigset_t one;
        sigemptyset(&one);
        sigaddset(&one, sig);
        pthread_sigmask(SIG_UNBLOCK, &one, NULL);
        raise(sig);
        _exit(128 + sig);
    }
}

int mg_catch_signals(mg_signal_handler handler, const int *signals, size_t n)
{
    int rc = mg_ensure_init();
    if (rc != MG_OK)
        return rc;
    if (signals == NULL || n == 0)
        return mg_fail(MG_EINVAL, 0, "no signals given (memguard never catches every signal)");
    for (size_t i = 0; i < n; i++) {
        int sig = signals[i];
        if (sig <= 0 || sig >= NSIG || sig == SIGKILL || sig == SIGSTOP || is_crash_signal(sig))
            return mg_fail(MG_EINVAL, 0, "signal %d cannot be caught this way", sig);
    }
    pthread_mutex_lock(&catch_lock);
    if (sig_pipe[0] < 0) {
        if (pipe2(sig_pipe, O_CLOEXEC) != 0) {
            rc = mg_fail(MG_ESYS, errno, "pipe2: %s", strerror(errno));
            goto out;
        }
        int fl = fcntl(sig_pipe[1], F_GETFL);
        if (fl < 0 || fcntl(sig_pipe[1], F_SETFL, fl | O_NONBLOCK) != 0) {
            rc = mg_fail(MG_ESYS, errno, "fcntl: %s", strerror(errno));
            goto out;
        }
        pthread_t t;
        int e = pthread_create(&t, NULL, signal_thread, NULL);
        if (e != 0) {
            rc = mg_fail(MG_ESYS, e, "cannot start the signal thread: %s", strerror(e));
            goto out;
        }
        pthread_detach(t);
    }
    atomic_store(&user_handler, handler);
    for (size_t i = 0; i < n; i++) {
        int sig = signals[i];
        struct sigaction sa = {0};
        sa.sa_sigaction = orderly_handler;
        sa.sa_flags = SA_SIGINFO | SA_RESTART;
        sigfillset(&sa.sa_mask);
        struct sigaction old;
        if (sigaction(sig, &sa, &old) != 0) {
            rc = mg_fail(MG_ESYS, errno, "sigaction(%d): %s", sig, strerror(errno));
            goto out;
        }
        if (!atomic_exchange(&caught[sig], true))
            previous[sig] = old; /* keep the application's handler, not our own, on a second call */
    }
out:
    pthread_mutex_unlock(&catch_lock);
    return rc;
}

int mg_catch_interrupt(void)
{
    static const int sigint[] = {SIGINT};
    return mg_catch_signals(NULL, sigint, 1);
}

/* ---- crashes: wipe in the handler itself ---- */

static const int crash_signals[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTRAP, SIGSYS};
static struct sigaction crash_previous[NSIG];
static _Atomic bool crash_installed;
static _Atomic int in_crash;

#define ALT_STACK (64 * 1024)

int mg_altstack_ensure(void)
{
    stack_t cur;
    if (sigaltstack(NULL, &cur) == 0 && !(cur.ss_flags & SS_DISABLE))
        return MG_OK;
    void *p;
    size_t page = mg_page_size();
    int rc = mg_os_map(ALT_STACK + page, &p);
    if (rc == 0)
        rc = mg_os_protect((unsigned char *)p + page, ALT_STACK, MG_PROT_RW); /* guard page below */
    if (rc != 0)
        return mg_fail(MG_ENOMEM, -rc, "alternate signal stack: %s", strerror(-rc));
    stack_t ss = {.ss_sp = (unsigned char *)p + page, .ss_size = ALT_STACK, .ss_flags = 0};
    if (sigaltstack(&ss, NULL) != 0) {
        int e = errno;
        (void)mg_os_unmap(p, ALT_STACK + page);
        return mg_fail(MG_ESYS, e, "sigaltstack: %s", strerror(e));
    }
    return MG_OK;
}

bool mg_crash_catching(void)
{
    return atomic_load_explicit(&crash_installed, memory_order_relaxed);
}

static void write_signal_message(int sig)
{
    char msg[] = "memguard: fatal signal 00: every secret wiped\n";
    char *d = strchr(msg, '0');
    d[0] = (char)('0' + sig / 10 % 10);
    d[1] = (char)('0' + sig % 10);
    mg_os_write_stderr(msg);
}

static void crash_handler(int sig, siginfo_t *info, void *ctx)
{
    if (atomic_exchange(&in_crash, 1)) {
        /* Another thread is already wiping and will end the process. */
        for (;;)
            pause();
    }
    mg_registry_emergency_wipe();
    write_signal_message(sig);
    struct sigaction *old = &crash_previous[sig];
    sigaction(sig, old, NULL);
    bool chained = (old->sa_flags & SA_SIGINFO) ? old->sa_sigaction != NULL
                                                : old->sa_handler != SIG_DFL && old->sa_handler != SIG_IGN;
    if (chained) {
        if (old->sa_flags & SA_SIGINFO)
            old->sa_sigaction(sig, info, ctx);
        else
            old->sa_handler(sig);
    }
    struct sigaction dfl = {0};
    dfl.sa_handler = SIG_DFL;
    sigaction(sig, &dfl, NULL);
    /* A fault from the CPU re-executes the instruction on return and dies with the right PC;
     * a sent signal (abort, kill) is raised again and delivered once we return. */
    if (info == NULL || info->si_code <= 0 || sig == SIGABRT)
        raise(sig);
}

int mg_catch_crashes(void)
{
    int rc = mg_ensure_init();
    if (rc != MG_OK)
        return rc;
    rc = mg_altstack_ensure();
    if (rc != MG_OK)
        return rc;
    pthread_mutex_lock(&catch_lock);
    if (!atomic_load(&crash_installed)) {
        for (size_t i = 0; i < sizeof crash_signals / sizeof crash_signals[0]; i++) {
            int sig = crash_signals[i];
            struct sigaction sa = {0};
            sa.sa_sigaction = crash_handler;
            sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
            sigfillset(&sa.sa_mask);
            if (sigaction(sig, &sa, &crash_previous[sig]) != 0) {
                rc = mg_fail(MG_ESYS, errno, "sigaction(%d): %s", sig, strerror(errno));
                break;
            }
        }
        if (rc == MG_OK)
            atomic_store(&crash_installed, true);
    }
    pthread_mutex_unlock(&catch_lock);
    return rc;
}
