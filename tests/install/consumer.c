/* Built against an installed memguard through pkg-config only. */
#include <stdio.h>
#include <string.h>

#include <memguard/memguard.h>

int main(void)
{
    char secret[] = "installed";
    mg_buffer *b = mg_buffer_from_bytes(secret, strlen("installed"));
    if (b == NULL) {
        fprintf(stderr, "%s\n", mg_last_error_message());
        return 1;
    }
    int ok = mg_buffer_equal(b, "installed", 9) && secret[0] == 0;
    mg_buffer_destroy(b);
    printf("memguard %s from the installed tree: %s\n", MG_VERSION_STRING, ok ? "ok" : "WRONG");
    return ok ? 0 : 1;
}
