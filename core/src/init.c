#include <errno.h>
#include <sodium.h>
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
    init_result = MG_OK;
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
