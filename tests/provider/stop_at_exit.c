/*
 * LD_PRELOAD shim for cli_residue.sh: stops the process (SIGSTOP) when it exits, after OpenSSL's
 * own atexit cleanup has run (registered after this constructor, so it runs before us), so that a
 * scanner can read what the command left in its memory before the kernel takes it away.
 */
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

static void stop_here(void)
{
    (void)kill(getpid(), SIGSTOP);
}

__attribute__((constructor)) static void arm(void)
{
    if (atexit(stop_here) != 0)
        _exit(99);
}
