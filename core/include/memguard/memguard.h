/*
 * memguard: protected memory for secrets.
 *
 * #include <memguard/memguard.h> gives the whole public API:
 *   error.h    error codes and their text
 *   util.h     wipe, scramble and constant-time helpers on plain memory
 *   buffer.h   guarded buffers (guard pages, canary, mlock, no-dump, freeze)
 *   process.h  library initialisation, purge, process hardening, policies
 *   enclave.h  sealed enclaves, the coffer key, AEAD with a sealed key
 *   stream.h   streams of sealed chunks
 *   lifecycle.h  safe exit, panic, signal and crash handling
 */
#ifndef MEMGUARD_MEMGUARD_H
#define MEMGUARD_MEMGUARD_H

#include <memguard/version.h>
#include <memguard/error.h>
#include <memguard/util.h>
#include <memguard/buffer.h>
#include <memguard/process.h>
#include <memguard/enclave.h>
#include <memguard/stream.h>
#include <memguard/lifecycle.h>

#endif
