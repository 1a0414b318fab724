#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "memcall.h"

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int init_result = MG_EINIT;
static int init_errno;
static const char *init_step = "not run";
static size_t page_size;
static unsigned char *canary_pattern;
static _Atomic int lock_policy = MG_LOCK_REQUIRED;
static _Atomic int backend = MG_BACKEND_ANON;

/* Can this process get memfd_secret pages right now? 0 or -errno. */
static int probe_secretmem(void)
{
    void *p;
    int rc = mg_os_map(page_size, &p);
    if (rc != 0)
        return rc;
    rc = mg_os_map_secret(p, page_size, false);
    (void)mg_os_unmap(p, page_size);
    return rc;
}

static int select_backend(mg_backend want)
{
    if (want == MG_BACKEND_ANON) {
        atomic_store(&backend, MG_BACKEND_ANON);
        return MG_OK;
    }
    int rc = probe_secretmem();
    if (rc != 0)
        return mg_fail(MG_ENOTSUP, -rc, "memfd_secret unavailable (%s); using anonymous locked memory",
                       strerror(-rc));
    atomic_store(&backend, MG_BACKEND_SECRETMEM);
    return MG_OK;
}

static void do_init(void)
{
    page_size = mg_os_page_size();
    if (sodium_init() < 0) {
        init_step = "sodium_init";
        return;
    }
    /* The canary pattern lives in its own read-only, never-dumped mapping. */
    size_t len = (page_size + MG_MIN_CANARY + page_size - 1) & ~(page_size - 1);
    void *p;
    int rc = mg_os_map(len, &p);
    if (rc == 0)
        rc = mg_os_protect(p, len, MG_PROT_RW);
    if (rc == 0)
        rc = mg_os_nodump(p, len);
    if (rc == 0)
        rc = mg_os_random(p, len);
    if (rc == 0)
        rc = mg_os_protect(p, len, MG_PROT_READ);
    if (rc != 0) {
        init_errno = -rc;
        init_step = "canary mapping";
        return;
    }
    canary_pattern = p;
    /* Soft limit only: the user (or a test) may raise it again. */
    rc = mg_os_disable_core_dumps();
    if (rc != 0) {
        init_errno = -rc;
        init_step = "setrlimit(RLIMIT_CORE)";
        return;
    }
    rc = mg_fork_handlers_install();
    if (rc != 0) {
        init_errno = rc;
        init_step = "pthread_atfork";
        return;
    }
    if (atexit(mg_exit_wipe) != 0) {
        init_step = "atexit";
        return;
    }
    init_result = MG_OK;
    const char *env = getenv("MEMGUARD_BACKEND");
    if (env != NULL && strcmp(env, "secretmem") == 0 && select_backend(MG_BACKEND_SECRETMEM) != MG_OK)
        mg_os_write_stderr("memguard: MEMGUARD_BACKEND=secretmem: memfd_secret unavailable, "
                           "using anonymous locked memory\n");
}

int mg_set_backend(mg_backend want)
{
    int rc = mg_ensure_init();
    if (rc != MG_OK)
        return rc;
    if (want != MG_BACKEND_ANON && want != MG_BACKEND_SECRETMEM)
        return mg_fail(MG_EINVAL, 0, "unknown backend %d", (int)want);
    return select_backend(want);
}

mg_backend mg_get_backend(void)
{
    (void)mg_ensure_init();
    return (mg_backend)atomic_load(&backend);
}

mg_backend mg_backend_get(void)
{
    return (mg_backend)atomic_load(&backend);
}

const char *mg_backend_name(mg_backend b)
{
    return b == MG_BACKEND_SECRETMEM ? "memfd_secret" : b == MG_BACKEND_ANON ? "anonymous+mlock" : "unknown";
}

int mg_ensure_init(void)
{
    int rc = pthread_once(&init_once, do_init);
    if (rc != 0)
        return mg_fail(MG_EINIT, rc, "pthread_once: %s", strerror(rc));
    if (init_result != MG_OK)
        return mg_fail(MG_EINIT, init_errno, "%s failed%s%s", init_step, init_errno ? ": " : "",
                       init_errno ? strerror(init_errno) : "");
    return MG_OK;
}

int mg_init(void)
{
    return mg_ensure_init();
}

size_t mg_page_size(void)
{
    return page_size;
}

const unsigned char *mg_canary_pattern(void)
{
    return canary_pattern;
}

mg_lock_policy mg_set_lock_policy(mg_lock_policy policy)
{
    if (policy != MG_LOCK_REQUIRED && policy != MG_LOCK_BEST_EFFORT) {
        mg_fail(MG_EINVAL, 0, "unknown lock policy %d", (int)policy);
        return mg_lock_policy_get();
    }
    return (mg_lock_policy)atomic_exchange(&lock_policy, (int)policy);
}

mg_lock_policy mg_lock_policy_get(void)
{
    return (mg_lock_policy)atomic_load(&lock_policy);
}

int mg_set_nondumpable(void)
{
    int rc = mg_ensure_init();
    if (rc != MG_OK)
        return rc;
    rc = mg_os_set_nondumpable();
    if (rc != 0)
        return mg_fail(MG_ESYS, -rc, "prctl(PR_SET_DUMPABLE, 0): %s", strerror(-rc));
    return MG_OK;
}
