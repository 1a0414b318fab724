/*
 * The picture of one guarded mapping, in one place:
 *
 *   base                                                      base + map_len
 *   | guard (1 page) | canary (canary_len) | data (size) | guard (1 page) |
 *                    ^inner                ^data          ^inner + inner_len
 *
 * inner_len = page_round(size + MG_MIN_CANARY): the data ends exactly at the
 * trailing guard page, so an overflow by one byte faults, and at least
 * MG_MIN_CANARY canary bytes precede it, so an underflow is caught at destroy.
 */
#ifndef MG_LAYOUT_H
#define MG_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

#include <memguard/buffer.h>

struct mg_layout {
    size_t page;
    size_t size;
    size_t inner_len;
    size_t canary_len;
    size_t map_len;
};

/* 0 on success, -1 if size is 0 or the layout would overflow size_t. */
static inline int mg_layout_compute(size_t size, size_t page, struct mg_layout *l)
{
    if (size == 0 || size > SIZE_MAX - MG_MIN_CANARY - 3 * page)
        return -1;
    l->page = page;
    l->size = size;
    l->inner_len = (size + MG_MIN_CANARY + page - 1) & ~(page - 1);
    l->canary_len = l->inner_len - size;
    l->map_len = l->inner_len + 2 * page;
    return 0;
}

static inline unsigned char *mg_layout_inner(unsigned char *base, const struct mg_layout *l)
{
    return base + l->page;
}

static inline unsigned char *mg_layout_data(unsigned char *base, const struct mg_layout *l)
{
    return base + l->page + l->canary_len;
}

static inline unsigned char *mg_layout_canary(unsigned char *base, const struct mg_layout *l)
{
    return base + l->page;
}

#endif
