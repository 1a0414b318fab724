/*
 * A tour of guarded memory: what a secret's buffer looks like to the kernel,
 * and what happens to code that strays outside it. Each "stray" runs in a
 * forked child so the tour can report how the child died.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <memguard/memguard.h>

static const char *death(int status)
{
    static char text[64];
    if (WIFSIGNALED(status))
        snprintf(text, sizeof text, "killed by %s", strsignal(WTERMSIG(status)));
    else
        snprintf(text, sizeof text, "exited with status %d", WEXITSTATUS(status));
    return text;
}

/* Run fn(b) in a child and report how it ended. */
static void stray(const char *what, void (*fn)(mg_buffer *), mg_buffer *b)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return;
    }
    if (pid == 0) {
        struct rlimit none = {0, 0};
        setrlimit(RLIMIT_CORE, &none);
        fn(b);
        _exit(0);
    }
    int status = 0;
    if (waitpid(pid, &status, 0) < 0) {
        perror("waitpid");
        return;
    }
    printf("  %-46s -> child %s\n", what, death(status));
}

static void write_past_end(mg_buffer *b)
{
    volatile unsigned char *p = mg_buffer_data(b);
    p[mg_buffer_size(b)] = 'X';
}

static void write_before_start(mg_buffer *b)
{
    volatile unsigned char *p = mg_buffer_data(b);
    p[-1] = 'X';
    mg_buffer_destroy(b); /* the canary check catches it */
}

static void write_while_frozen(mg_buffer *b)
{
    volatile unsigned char *p = mg_buffer_data(b);
    p[0] = 'X';
}

static void show_mapping(const void *data)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    if (f == NULL)
        return;
    char line[512];
    bool in = false;
    unsigned long lo = 0, hi = 0, addr = (unsigned long)data;
    while (fgets(line, sizeof line, f) != NULL) {
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, ' ') == line + strcspn(line, " ")) {
            in = addr >= lo && addr < hi;
            if (in)
                printf("  mapping   %s", line);
            continue;
        }
        if (in && (strncmp(line, "Locked:", 7) == 0 || strncmp(line, "VmFlags:", 8) == 0))
            printf("  %s", line);
    }
    fclose(f);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (mg_init() != MG_OK) {
        fprintf(stderr, "%s\n", mg_last_error_message());
        return 1;
    }
    char secret[] = "correct horse battery staple";
    size_t n = strlen(secret);
    mg_buffer *b = mg_buffer_from_bytes(secret, n);
    if (b == NULL) {
        fprintf(stderr, "%s\n", mg_last_error_message());
        return 1;
    }
    printf("1. A %zu-byte secret moved into a guarded buffer.\n", n);
    printf("  source array afterwards: %s\n", secret[0] == 0 && secret[n - 1] == 0 ? "all zero (wiped)" : "NOT wiped");
    printf("  the buffer is %s; its data ends exactly at a guard page\n",
           mg_buffer_is_mutable(b) ? "read-write" : "frozen (read-only)");
    printf("\n2. What the kernel says about the page holding it (lo = mlocked, dd = not in core dumps):\n");
    show_mapping(mg_buffer_data(b));

    printf("\n3. Code that strays outside the secret:\n");
    stray("write 1 byte past the end", write_past_end, b);
    stray("write to the frozen buffer", write_while_frozen, b);
    if (mg_buffer_melt(b) == MG_OK)
        stray("write 1 byte before the start, then destroy", write_before_start, b);

    printf("\n4. The API refuses what would be unsafe, with a clear error:\n");
    unsigned char big[64] = {0};
    (void)mg_buffer_freeze(b);
    int rc = mg_buffer_copy(b, big, 8);
    printf("  copy into a frozen buffer       -> %s\n", mg_strerror(rc));
    (void)mg_buffer_melt(b);
    rc = mg_buffer_copy_at(b, n - 4, big, 8);
    printf("  copy past the end               -> %s\n", mg_strerror(rc));
    printf("  constant-time compare           -> %s\n",
           mg_buffer_equal(b, "correct horse battery staple", n) ? "equal" : "different");

    printf("\n5. mg_purge() wipes and unmaps every secret at once:\n");
    mg_purge();
    printf("  buffer alive after purge: %s; its data pointer: %p\n", mg_buffer_is_alive(b) ? "yes" : "no",
           mg_buffer_data(b));
    rc = mg_buffer_copy(b, big, 1);
    printf("  using it again                  -> %s\n", mg_strerror(rc));
    mg_buffer_destroy(b);
    mg_stats s = mg_get_stats();
    printf("  live buffers: %zu, locked bytes: %zu\n", s.live_buffers, s.locked_bytes);
    return 0;
}
