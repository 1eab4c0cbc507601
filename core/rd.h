/* Checked byte cursors over spans we did not write (wire packets, log events).
 * Every read is bounds-checked; a short read returns NULL/0 and sets ->bad, which sticks,
 * so a decoder can read a whole structure and test ->bad once at the end.
 * sy_wr is the matching writer into a caller's fixed buffer: overflow sticks the same way. */
#ifndef SY_RD_H
#define SY_RD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct sy_rd {
    const uint8_t *p; /* ref: the span being decoded, owned by the caller */
    size_t len;       /* bytes in the span */
    size_t off;       /* next byte to read; never > len */
    bool bad;         /* a read ran past len; every later read fails too */
};

static inline struct sy_rd sy_rd_make(const void *p, size_t len)
{
    struct sy_rd r = { (const uint8_t *)p, len, 0, false };
    return r;
}

static inline size_t sy_rd_left(const struct sy_rd *r)
{
    return r->bad ? 0 : r->len - r->off;
}

static inline const uint8_t *sy_rd_take(struct sy_rd *r, size_t n)
{
    if (r->bad || r->len - r->off < n) {
        r->bad = true;
        return NULL;
    }
    r->off += n;
    return r->p + r->off - n;
}

static inline uint8_t sy_rd_u8(struct sy_rd *r)
{
    const uint8_t *b = sy_rd_take(r, 1);
    return b ? b[0] : 0;
}

static inline uint16_t sy_rd_u16le(struct sy_rd *r)
{
    const uint8_t *b = sy_rd_take(r, 2);
    return b ? (uint16_t)(b[0] | b[1] << 8) : 0;
}

static inline uint32_t sy_rd_u24le(struct sy_rd *r)
{
    const uint8_t *b = sy_rd_take(r, 3);
    return b ? (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 : 0;
}

static inline uint32_t sy_rd_u32le(struct sy_rd *r)
{
    const uint8_t *b = sy_rd_take(r, 4);
    return b ? (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24 : 0;
}

static inline uint64_t sy_rd_uNle(struct sy_rd *r, size_t n)
{
    const uint8_t *b = sy_rd_take(r, n);
    uint64_t v = 0;
    if (b == NULL)
        return 0;
    for (size_t i = 0; i < n; i++)
        v |= (uint64_t)b[i] << (8 * i);
    return v;
}

/* A NUL-terminated string inside the span; *len_out excludes the NUL. Missing NUL -> bad. */
static inline const char *sy_rd_cstr(struct sy_rd *r, size_t *len_out)
{
    if (r->bad)
        return NULL;
    const uint8_t *start = r->p + r->off;
    const uint8_t *nul = memchr(start, 0, r->len - r->off);
    if (nul == NULL) {
        r->bad = true;
        return NULL;
    }
    *len_out = (size_t)(nul - start);
    r->off += *len_out + 1;
    return (const char *)start;
}

struct sy_wr {
    uint8_t *p;  /* ref: caller's buffer */
    size_t cap;  /* its size */
    size_t len;  /* bytes written so far; never > cap */
    bool bad;    /* a write did not fit; sticky */
};

static inline struct sy_wr sy_wr_make(void *p, size_t cap)
{
    struct sy_wr w = { (uint8_t *)p, cap, 0, false };
    return w;
}

static inline void sy_wr_bytes(struct sy_wr *w, const void *src, size_t n)
{
    if (w->bad || w->cap - w->len < n) {
        w->bad = true;
        return;
    }
    if (n)
        memcpy(w->p + w->len, src, n);
    w->len += n;
}

static inline void sy_wr_u8(struct sy_wr *w, uint8_t v)
{
    sy_wr_bytes(w, &v, 1);
}

static inline void sy_wr_uNle(struct sy_wr *w, uint64_t v, size_t n)
{
    uint8_t b[8];
    for (size_t i = 0; i < n && i < 8; i++)
        b[i] = (uint8_t)(v >> (8 * i));
    sy_wr_bytes(w, b, n);
}

#endif
