/*
 * fork() safety. TLS servers load keys, then fork workers, so the child must
 * keep working: every lock the library owns is taken before fork (so no other
 * thread holds one at the moment of the copy) and released on both sides; the
 * child re-locks its memory (mlock is not inherited), gets private copies of
 * memfd_secret pages (which fork would otherwise share), new coffer parts of
 * its own, and a fresh re-key thread on first use. Lock order, everywhere:
 * coffer timer -> coffer writer -> scratch pool -> scratch reserve -> registry
 * -> buffers.
 */
#include <string.h>

#include "internal.h"

static void prepare(void)
{
    mg_coffer_prefork();
    mg_scratch_prefork();
    mg_registry_prefork();
}

static void parent(void)
{
    mg_registry_postfork_parent();
    mg_scratch_postfork_parent();
    mg_coffer_postfork_parent();
}

static void child(void)
{
    mg_registry_postfork_child();
    mg_scratch_postfork_child();
    mg_coffer_postfork_child();
}

int mg_fork_handlers_install(void)
{
    return pthread_atfork(prepare, parent, child);
}
