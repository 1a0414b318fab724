/*
 * The one place skeymgmt.c (which includes no OpenSSL header beyond core.h/core_dispatch.h, so
 * that it can be checked against 3.5's headers) reaches the provider's error machinery.
 */
#include "provider.h"
#include "skeymgmt.h"

void mgp_skey_error(void *provctx, int unsupported, const char *what)
{
    MGP_ERR(provctx, unsupported ? MGP_R_UNSUPPORTED : MGP_R_BAD_ARGUMENT, "%s", what);
}
