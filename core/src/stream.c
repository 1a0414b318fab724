/* Streams: a FIFO of enclaves of at most MG_STREAM_CHUNK bytes each. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

struct chunk {
    mg_enclave *e;
    struct chunk *next;
};

struct mg_stream {
    pthread_mutex_t lock;
    struct chunk *head, *tail;
    size_t size;
};

mg_stream *mg_stream_new(void)
{
    if (mg_ensure_init() != MG_OK)
        return NULL;
    mg_stream *s = calloc(1, sizeof *s);
    if (s == NULL) {
        mg_fail(MG_ENOMEM, 0, "stream");
        return NULL;
    }
    int rc = pthread_mutex_init(&s->lock, NULL);
    if (rc != 0) {
        free(s);
        mg_fail(MG_ESYS, rc, "stream lock: %s", strerror(rc));
        return NULL;
    }
    return s;
}

static void push_back(mg_stream *s, struct chunk *c)
{
    c->next = NULL;
    if (s->tail != NULL)
        s->tail->next = c;
    else
        s->head = c;
    s->tail = c;
    s->size += mg_enclave_size(c->e);
}

static void push_front(mg_stream *s, struct chunk *c)
{
    c->next = s->head;
    s->head = c;
    if (s->tail == NULL)
        s->tail = c;
    s->size += mg_enclave_size(c->e);
}

static struct chunk *pop_front(mg_stream *s)
{
    struct chunk *c = s->head;
    if (c == NULL)
        return NULL;
    s->head = c->next;
    if (s->head == NULL)
        s->tail = NULL;
    s->size -= mg_enclave_size(c->e);
    return c;
}

static void free_chunk(struct chunk *c)
{
    mg_enclave_free(c->e);
    free(c);
}

int mg_stream_write(mg_stream *s, void *data, size_t n)
{
    if (s == NULL || (data == NULL && n > 0))
        return mg_fail(MG_EINVAL, 0, "NULL argument");
    unsigned char *p = data;
    /* Seal everything first, so a failure leaves both the stream and data untouched. */
    struct chunk *first = NULL, **link = &first;
    for (size_t off = 0; off < n; off += MG_STREAM_CHUNK) {
        size_t len = n - off < MG_STREAM_CHUNK ? n - off : MG_STREAM_CHUNK;
        struct chunk *c = malloc(sizeof *c);
        /* Seal straight from the caller's bytes; they are wiped once everything is sealed. */
        mg_enclave *e = c != NULL ? mg_enclave_seal_copy(p + off, len) : NULL;
        if (e == NULL) {
            int rc = c == NULL ? mg_fail(MG_ENOMEM, 0, "stream chunk") : mg_last_error();
            free(c);
            while (first != NULL) {
                struct chunk *next = first->next;
                free_chunk(first);
                first = next;
            }
            return rc;
        }
        c->e = e;
        c->next = NULL;
        *link = c;
        link = &c->next;
    }
    pthread_mutex_lock(&s->lock);
    while (first != NULL) {
        struct chunk *next = first->next;
        push_back(s, first);
        first = next;
    }
    pthread_mutex_unlock(&s->lock);
    mg_wipe(data, n);
    return MG_OK;
}

struct take {
    unsigned char *out;
    size_t want;
    size_t got;
    mg_enclave *rest; /* what is left of the chunk, re-sealed */
};

static int take_from(const void *data, size_t n, void *arg)
{
    struct take *t = arg;
    size_t k = n < t->want ? n : t->want;
    mg_copy(t->out, data, k);
    t->got = k;
    if (k < n) {
        /* Re-seal the remainder straight from the scratch memory it sits in. */
        t->rest = mg_enclave_seal_copy((const unsigned char *)data + k, n - k);
        if (t->rest == NULL)
            return mg_last_error();
    }
    return MG_OK;
}

int mg_stream_read(mg_stream *s, void *out, size_t n, size_t *nread)
{
    if (s == NULL || nread == NULL || (out == NULL && n > 0))
        return mg_fail(MG_EINVAL, 0, "NULL argument");
    *nread = 0;
    unsigned char *o = out;
    pthread_mutex_lock(&s->lock);
    int rc = MG_OK;
    if (s->head == NULL && n > 0)
        rc = mg_fail(MG_ENODATA, 0, "stream is empty");
    while (rc == MG_OK && *nread < n && s->head != NULL) {
        struct chunk *c = pop_front(s);
        struct take t = {o + *nread, n - *nread, 0, NULL};
        rc = mg_enclave_with(c->e, take_from, &t);
        if (rc != MG_OK) {
            mg_wipe(t.out, t.got);
            mg_enclave_free(t.rest);
            push_front(s, c); /* keep the chunk: nothing is lost */
            break;
        }
        *nread += t.got;
        if (t.rest != NULL) {
            mg_enclave_free(c->e);
            c->e = t.rest;
            push_front(s, c);
        } else {
            free_chunk(c);
        }
    }
    pthread_mutex_unlock(&s->lock);
    /* Bytes already delivered stay delivered; report the error only if none were. */
    return *nread > 0 ? MG_OK : rc;
}

mg_buffer *mg_stream_next(mg_stream *s)
{
    if (s == NULL) {
        mg_fail(MG_EINVAL, 0, "NULL stream");
        return NULL;
    }
    pthread_mutex_lock(&s->lock);
    mg_buffer *b = NULL;
    struct chunk *c = pop_front(s);
    if (c == NULL) {
        mg_fail(MG_ENODATA, 0, "stream is empty");
    } else if ((b = mg_enclave_open(c->e)) == NULL) {
        push_front(s, c);
    } else {
        free_chunk(c);
    }
    pthread_mutex_unlock(&s->lock);
    return b;
}

struct fill {
    mg_buffer *b;
    size_t at;
};

static int fill_from(const void *data, size_t n, void *arg)
{
    struct fill *f = arg;
    /* Through the locked API: a concurrent purge makes this fail cleanly (MG_EDEAD). */
    int rc = mg_buffer_copy_at(f->b, f->at, data, n);
    f->at += n;
    return rc;
}

mg_buffer *mg_stream_flush(mg_stream *s)
{
    if (s == NULL) {
        mg_fail(MG_EINVAL, 0, "NULL stream");
        return NULL;
    }
    pthread_mutex_lock(&s->lock);
    if (s->size == 0) {
        pthread_mutex_unlock(&s->lock);
        mg_fail(MG_ENODATA, 0, "stream is empty");
        return NULL;
    }
    /*
     * The total is known: one allocation, no growing. The buffer's lock is not
     * held while chunks are opened (opening may enter the scratch pool and the
     * registry: see the lock order in fork.c).
     */
    mg_buffer *b = mg_buffer_new(s->size);
    if (b == NULL) {
        pthread_mutex_unlock(&s->lock);
        return NULL;
    }
    struct fill f = {b, 0};
    for (struct chunk *c = s->head; c != NULL; c = c->next) {
        int rc = mg_enclave_with(c->e, fill_from, &f);
        if (rc != MG_OK) {
            mg_buffer_destroy(b); /* wipes what was copied; the stream keeps every chunk */
            pthread_mutex_unlock(&s->lock);
            mg_fail(rc, 0, "a chunk does not open");
            return NULL;
        }
    }
    /* Only once the buffer is complete and still alive do the chunks go. */
    if (mg_buffer_freeze(b) != MG_OK) {
        int rc = mg_last_error();
        mg_buffer_destroy(b);
        pthread_mutex_unlock(&s->lock);
        mg_fail(rc, 0, "the flushed buffer did not survive (purged?); the stream keeps its data");
        return NULL;
    }
    struct chunk *c;
    while ((c = pop_front(s)) != NULL)
        free_chunk(c);
    pthread_mutex_unlock(&s->lock);
    return b;
}

size_t mg_stream_size(const mg_stream *cs)
{
    if (cs == NULL)
        return 0;
    mg_stream *s = (mg_stream *)(uintptr_t)cs;
    pthread_mutex_lock(&s->lock);
    size_t n = s->size;
    pthread_mutex_unlock(&s->lock);
    return n;
}

void mg_stream_free(mg_stream *s)
{
    if (s == NULL)
        return;
    struct chunk *c;
    while ((c = pop_front(s)) != NULL)
        free_chunk(c);
    pthread_mutex_destroy(&s->lock);
    free(s);
}
