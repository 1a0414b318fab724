/*
 * OpenSSL's secure heap for operations' transient private values (issue 11, in-operation
 * exposure). Filled in by that work; until then the secure heap is left as the application set it.
 */
#include "provider.h"

int mgp_secure_heap_setup(mgp_ctx *prov, const char *setting)
{
    (void)prov;
    (void)setting;
    return 1;
}
