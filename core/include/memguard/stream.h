#ifndef MEMGUARD_STREAM_H
#define MEMGUARD_STREAM_H

#include <stddef.h>
#include <memguard/buffer.h>
#include <memguard/export.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * A stream: a FIFO of secret bytes held as a list of sealed chunks of at most
 * MG_STREAM_CHUNK bytes, so large secrets never need one large guarded
 * buffer. Thread-safe. A chunk that cannot be opened (after a purge) stays in
 * the stream and the call fails with MG_EAUTH: nothing is lost silently.
 */
typedef struct mg_stream mg_stream;

#define MG_STREAM_CHUNK 16384

MG_API MG_NODISCARD mg_stream *mg_stream_new(void);
/* Append n bytes, sealing them chunk by chunk, then wipe data. On failure data is untouched. */
MG_API int mg_stream_write(mg_stream *s, void *data, size_t n);
/* Move up to n bytes into out; *nread says how many (0 at the end: MG_ENODATA). */
MG_API int mg_stream_read(mg_stream *s, void *out, size_t n, size_t *nread);
/* The next chunk as a frozen guarded buffer; NULL with MG_ENODATA when empty. */
MG_API MG_NODISCARD mg_buffer *mg_stream_next(mg_stream *s);
/* Everything left, in one frozen guarded buffer; NULL with MG_ENODATA when empty. */
MG_API MG_NODISCARD mg_buffer *mg_stream_flush(mg_stream *s);
/* Bytes currently held. */
MG_API size_t mg_stream_size(const mg_stream *s);
/* Free the stream and every chunk in it. NULL-safe. */
MG_API void mg_stream_free(mg_stream *s);

#ifdef __cplusplus
}
#endif

#endif
