/* CLIENT_COMPRESS for a client session (see mysql_compress.h). The sequence ids of frames follow the
 * server's rule: a client's frame with id N is answered with N+1, N+2, ... */
#include "proxy/mysql_compress.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <libdeflate.h>

#include "proxy/mysql_codec.h"

#define ZFRAME_MAX 0xFFFFFFu /* the 3-byte length fields */

struct zstream {
    struct libdeflate_compressor *c;
    struct libdeflate_decompressor *d;
    uint8_t next_seq; /* sequence id of our next frame */
    struct bufferevent *self; /* ref: the filter (to report a bad frame) */
    bool failed;              /* a bad frame came: everything after it is dropped */
};

static enum bufferevent_filter_result inflate_in(struct evbuffer *src, struct evbuffer *dst, ev_ssize_t lim,
                                                 enum bufferevent_flush_mode mode, void *arg)
{
    struct zstream *z = arg;
    bool any = false;
    if (z->failed) {
        evbuffer_drain(src, evbuffer_get_length(src));
        return BEV_ERROR;
    }
    for (;;) {
        uint8_t hb[SY_MYSQL_ZHDR_LEN];
        struct sy_mysql_zhdr h;
        if (evbuffer_copyout(src, hb, sizeof hb) < (ev_ssize_t)sizeof hb)
            break;
        sy_mysql_zhdr_parse(hb, sizeof hb, &h);
        size_t frame = SY_MYSQL_ZHDR_LEN + (size_t)h.comp_len;
        if (evbuffer_get_length(src) < frame)
            break;
        size_t want = h.raw_len ? h.raw_len : h.comp_len;
        struct evbuffer_iovec v;
        if (evbuffer_reserve_space(dst, (ev_ssize_t)(want ? want : 1), &v, 1) < 1)
            return BEV_ERROR;
        const uint8_t *p = evbuffer_pullup(src, (ev_ssize_t)frame);
        size_t used, len;
        uint8_t seq;
        if (p == NULL || sy_mysql_zframe_decode(z->d, p, frame, v.iov_base, v.iov_len, &used, &len, &seq) !=
                             SY_PARSE_OK) {
            /* libevent 2.1 ignores an input filter's BEV_ERROR: report it as the socket error it is,
             * so the session closes, and drop what came */
            z->failed = true;
            evbuffer_drain(src, evbuffer_get_length(src));
            bufferevent_trigger_event(z->self, BEV_EVENT_READING | BEV_EVENT_ERROR, BEV_TRIG_DEFER_CALLBACKS);
            return BEV_ERROR;
        }
        v.iov_len = len;
        evbuffer_commit_space(dst, &v, 1);
        evbuffer_drain(src, used);
        z->next_seq = (uint8_t)(seq + 1);
        any = true;
    }
    return any ? BEV_OK : BEV_NEED_MORE;
}

static enum bufferevent_filter_result deflate_out(struct evbuffer *src, struct evbuffer *dst, ev_ssize_t lim,
                                                  enum bufferevent_flush_mode mode, void *arg)
{
    struct zstream *z = arg;
    size_t left;
    while ((left = evbuffer_get_length(src)) > 0) {
        size_t n = left < ZFRAME_MAX ? left : ZFRAME_MAX;
        const uint8_t *p = evbuffer_pullup(src, (ev_ssize_t)n);
        if (p == NULL)
            return BEV_ERROR;
        struct sy_mysql_zhdr h = { .comp_len = (uint32_t)n, .seq = z->next_seq++, .raw_len = 0 };
        uint8_t hb[SY_MYSQL_ZHDR_LEN];
        uint8_t *zbuf = NULL;
        if (n >= SY_MYSQL_ZMIN) {
            size_t bound = libdeflate_zlib_compress_bound(z->c, n);
            zbuf = malloc(bound);
            size_t zn = zbuf ? libdeflate_zlib_compress(z->c, p, n, zbuf, bound) : 0;
            if (zn > 0 && zn < n) { /* else stored: incompressible */
                h.comp_len = (uint32_t)zn;
                h.raw_len = (uint32_t)n;
            }
        }
        sy_mysql_zhdr_encode(hb, &h);
        evbuffer_add(dst, hb, sizeof hb);
        evbuffer_add(dst, h.raw_len ? zbuf : p, h.comp_len);
        free(zbuf);
        evbuffer_drain(src, n);
    }
    return BEV_OK;
}

static void zstream_free(void *arg)
{
    struct zstream *z = arg;
    libdeflate_free_compressor(z->c);
    libdeflate_free_decompressor(z->d);
    free(z);
}

struct bufferevent *sy_mysql_compress_wrap(struct bufferevent *under)
{
    struct zstream *z = calloc(1, sizeof *z);
    if (z == NULL)
        return NULL;
    z->c = libdeflate_alloc_compressor(1); /* fastest level: the proxy is on the hot path */
    z->d = libdeflate_alloc_decompressor();
    z->next_seq = 0;
    struct bufferevent *f = z->c && z->d ? bufferevent_filter_new(under, inflate_in, deflate_out,
                                                                  BEV_OPT_CLOSE_ON_FREE, zstream_free, z)
                                         : NULL;
    if (f == NULL)
        zstream_free(z);
    else
        z->self = f;
    return f;
}
