/* MySQL/MariaDB wire codecs: framing, length-encoded values, connection-phase packets, OK/ERR/EOF,
 * session-state entries, a packet-by-packet response tracker, COM_STMT_EXECUTE headers and KILL.
 * Pure functions over caller-owned spans: no I/O, no allocation, no globals. Every length read from
 * the wire is checked against the span before use; malformed input is BAD, never an assert.
 * Decoders take whole payloads (already framed), so a short payload is BAD, not AGAIN. */
#include "proxy/mysql_codec.h"

#include <libdeflate.h>

#include <string.h>

#define HDR_OK 0x00
#define HDR_EOF 0xFE
#define HDR_ERR 0xFF
#define HDR_INFILE 0xFB
#define CLASSIC_EOF_MAX 9          /* a classic EOF payload is shorter than this */
#define PROGRESS_CODE 0xFFFF       /* MariaDB progress report: an ERR-shaped packet that is not an error */
#define MAX_COLUMNS 0xFFFF         /* COM_STMT_PREPARE_OK counts columns in a u16 */
#define GREETING_SALT2_MIN 13      /* scramble part 2 field: max(13, auth_plugin_data_len - 8) bytes */

/* ---- helpers ---------------------------------------------------------------------------------- */

/* Copies len bytes into dst[cap] with a NUL; false (nothing usable) when they do not fit. */
static bool copy_str(char *dst, size_t cap, const void *src, size_t len)
{
    if (len >= cap)
        return false;
    if (len)
        memcpy(dst, src, len);
    dst[len] = '\0';
    return true;
}

/* A trailing string: up to its NUL, or to the end of the payload when the NUL is missing (some
 * clients and servers omit the last one). Never bad unless r already is. */
static const uint8_t *rd_cstr_or_rest(struct sy_rd *r, size_t *len)
{
    size_t left = sy_rd_left(r);
    *len = 0;
    if (r->bad)
        return NULL;
    const uint8_t *start = r->p + r->off;
    const uint8_t *nul = left ? memchr(start, 0, left) : NULL;
    *len = nul ? (size_t)(nul - start) : left;
    r->off += *len + (nul ? 1 : 0);
    return start;
}

/* A NUL-terminated field copied into dst[cap]; false when missing, unterminated or too long. */
static bool rd_cstr_copy(struct sy_rd *r, char *dst, size_t cap)
{
    size_t len = 0;
    const char *s = sy_rd_cstr(r, &len);
    return s != NULL && copy_str(dst, cap, s, len);
}

static size_t wr_done(const struct sy_wr *w)
{
    return w->bad ? 0 : w->len;
}

/* ---- framing ---------------------------------------------------------------------------------- */

enum sy_parse sy_mysql_hdr_parse(const uint8_t *p, size_t n, struct sy_mysql_hdr *out)
{
    if (p == NULL || n < SY_MYSQL_HDR_LEN)
        return SY_PARSE_AGAIN;
    out->len = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16;
    out->seq = p[3];
    return SY_PARSE_OK;
}

void sy_mysql_hdr_encode(uint8_t out[4], uint32_t len, uint8_t seq)
{
    out[0] = (uint8_t)len;
    out[1] = (uint8_t)(len >> 8);
    out[2] = (uint8_t)(len >> 16);
    out[3] = seq;
}

bool sy_mysql_lenenc_get(struct sy_rd *r, uint64_t *v, bool *is_null)
{
    *v = 0;
    if (is_null)
        *is_null = false;
    uint8_t b = sy_rd_u8(r);
    if (r->bad)
        return false;
    switch (b) {
    case 0xFB:
        if (is_null == NULL) {
            r->bad = true;
            return false;
        }
        *is_null = true;
        return true;
    case 0xFC:
        *v = sy_rd_uNle(r, 2);
        break;
    case 0xFD:
        *v = sy_rd_uNle(r, 3);
        break;
    case 0xFE:
        *v = sy_rd_uNle(r, 8);
        break;
    case 0xFF:
        r->bad = true;
        return false;
    default:
        *v = b;
        return true;
    }
    return !r->bad;
}

const uint8_t *sy_mysql_lenenc_str_get(struct sy_rd *r, size_t *len)
{
    uint64_t v = 0;
    *len = 0;
    if (!sy_mysql_lenenc_get(r, &v, NULL))
        return NULL;
    if (v > sy_rd_left(r)) {                  /* compare as u64: never truncate a wire length */
        r->bad = true;
        return NULL;
    }
    const uint8_t *s = sy_rd_take(r, (size_t)v);
    if (s != NULL)
        *len = (size_t)v;
    return s;
}

void sy_mysql_lenenc_put(struct sy_wr *w, uint64_t v)
{
    if (v < 0xFB) {
        sy_wr_u8(w, (uint8_t)v);
    } else if (v <= 0xFFFF) {
        sy_wr_u8(w, 0xFC);
        sy_wr_uNle(w, v, 2);
    } else if (v <= 0xFFFFFF) {
        sy_wr_u8(w, 0xFD);
        sy_wr_uNle(w, v, 3);
    } else {
        sy_wr_u8(w, 0xFE);
        sy_wr_uNle(w, v, 8);
    }
}

void sy_mysql_lenenc_str_put(struct sy_wr *w, const void *s, size_t len)
{
    sy_mysql_lenenc_put(w, len);
    sy_wr_bytes(w, s, len);
}

/* ---- compressed protocol ------------------------------------------------------------------------ */

enum sy_parse sy_mysql_zhdr_parse(const uint8_t *p, size_t n, struct sy_mysql_zhdr *out)
{
    memset(out, 0, sizeof *out);
    if (p == NULL || n < SY_MYSQL_ZHDR_LEN)
        return SY_PARSE_AGAIN;
    out->comp_len = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16;
    out->seq = p[3];
    out->raw_len = (uint32_t)p[4] | (uint32_t)p[5] << 8 | (uint32_t)p[6] << 16;
    return SY_PARSE_OK;
}

void sy_mysql_zhdr_encode(uint8_t out[SY_MYSQL_ZHDR_LEN], const struct sy_mysql_zhdr *h)
{
    out[0] = (uint8_t)h->comp_len;
    out[1] = (uint8_t)(h->comp_len >> 8);
    out[2] = (uint8_t)(h->comp_len >> 16);
    out[3] = h->seq;
    out[4] = (uint8_t)h->raw_len;
    out[5] = (uint8_t)(h->raw_len >> 8);
    out[6] = (uint8_t)(h->raw_len >> 16);
}

enum sy_parse sy_mysql_zframe_decode(struct libdeflate_decompressor *d, const uint8_t *p, size_t n, uint8_t *out,
                                     size_t cap, size_t *frame_len, size_t *out_len, uint8_t *seq)
{
    struct sy_mysql_zhdr h;
    *frame_len = *out_len = 0;
    if (sy_mysql_zhdr_parse(p, n, &h) != SY_PARSE_OK)
        return SY_PARSE_AGAIN;
    if (n - SY_MYSQL_ZHDR_LEN < h.comp_len)
        return SY_PARSE_AGAIN;
    const uint8_t *payload = p + SY_MYSQL_ZHDR_LEN;
    *seq = h.seq;
    if (h.raw_len == 0) {
        if (h.comp_len > cap)
            return SY_PARSE_BAD;
        memcpy(out, payload, h.comp_len);
        *out_len = h.comp_len;
    } else {
        size_t got = 0;
        if (h.raw_len > cap ||
            libdeflate_zlib_decompress(d, payload, h.comp_len, out, h.raw_len, &got) != LIBDEFLATE_SUCCESS ||
            got != h.raw_len)
            return SY_PARSE_BAD;
        *out_len = h.raw_len;
    }
    *frame_len = SY_MYSQL_ZHDR_LEN + h.comp_len;
    return SY_PARSE_OK;
}

/* ---- connection phase ------------------------------------------------------------------------- */

enum sy_parse sy_mysql_greeting_parse(const uint8_t *p, size_t n, struct sy_mysql_greeting *out)
{
    memset(out, 0, sizeof *out);
    if (p == NULL || n == 0)
        return SY_PARSE_BAD;
    struct sy_rd r = sy_rd_make(p, n);
    size_t len = 0;
    if (sy_rd_u8(&r) != 10)
        return SY_PARSE_BAD;
    const char *ver = sy_rd_cstr(&r, &len);
    if (ver == NULL)
        return SY_PARSE_BAD;
    if (len >= sizeof out->server_version)
        len = sizeof out->server_version - 1; /* documented: truncated, still NUL-terminated */
    memcpy(out->server_version, ver, len);
    out->thread_id = sy_rd_u32le(&r);
    const uint8_t *salt1 = sy_rd_take(&r, 8);
    (void)sy_rd_u8(&r);                       /* filler */
    uint64_t caps = sy_rd_u16le(&r);
    out->collation = sy_rd_u8(&r);
    out->status = sy_rd_u16le(&r);
    caps |= (uint64_t)sy_rd_u16le(&r) << 16;
    uint8_t apdl = sy_rd_u8(&r);              /* auth plugin data length, 0 without PLUGIN_AUTH */
    const uint8_t *reserved = sy_rd_take(&r, 10);
    if (r.bad)
        return SY_PARSE_BAD;
    if (!(caps & SY_CAP_MYSQL))               /* MariaDB: extended caps in the filler's last 4 bytes */
        caps |= (uint64_t)((uint32_t)reserved[6] | (uint32_t)reserved[7] << 8 | (uint32_t)reserved[8] << 16 |
                           (uint32_t)reserved[9] << 24) << 32;
    out->caps = caps;
    memcpy(out->salt, salt1, 8);
    out->salt_len = 8;
    if (caps & SY_CAP_SECURE_CONNECTION) {
        size_t n2 = apdl > 8 + GREETING_SALT2_MIN ? (size_t)apdl - 8 : GREETING_SALT2_MIN;
        const uint8_t *salt2 = sy_rd_take(&r, n2);
        if (salt2 == NULL)
            return SY_PARSE_BAD;
        while (n2 > 0 && salt2[n2 - 1] == 0)  /* the field ends in a NUL (and any padding) */
            n2--;
        if (8 + n2 > SY_MYSQL_SALT_LEN)
            return SY_PARSE_BAD;
        memcpy(out->salt + 8, salt2, n2);
        out->salt_len = 8 + n2;
    }
    if (caps & SY_CAP_PLUGIN_AUTH) {
        const uint8_t *plugin = rd_cstr_or_rest(&r, &len);
        if (plugin == NULL || !copy_str(out->auth_plugin, sizeof out->auth_plugin, plugin, len))
            return SY_PARSE_BAD;
    }
    return SY_PARSE_OK;
}

size_t sy_mysql_greeting_encode(const struct sy_mysql_greeting *g, uint8_t *buf, size_t cap)
{
    size_t vlen = strnlen(g->server_version, sizeof g->server_version);
    size_t plen = strnlen(g->auth_plugin, sizeof g->auth_plugin);
    if (vlen == sizeof g->server_version || plen == sizeof g->auth_plugin || g->salt_len < 8 ||
        g->salt_len > SY_MYSQL_SALT_LEN)
        return 0;
    struct sy_wr w = sy_wr_make(buf, cap);
    sy_wr_u8(&w, 10);
    sy_wr_bytes(&w, g->server_version, vlen);
    sy_wr_u8(&w, 0);
    sy_wr_uNle(&w, g->thread_id, 4);
    sy_wr_bytes(&w, g->salt, 8);
    sy_wr_u8(&w, 0);
    sy_wr_uNle(&w, g->caps & 0xFFFF, 2);
    sy_wr_u8(&w, g->collation);
    sy_wr_uNle(&w, g->status, 2);
    sy_wr_uNle(&w, (g->caps >> 16) & 0xFFFF, 2);
    sy_wr_u8(&w, (g->caps & SY_CAP_PLUGIN_AUTH) ? SY_MYSQL_SALT_LEN + 1 : 0);
    uint8_t reserved[10] = { 0 };
    if (!(g->caps & SY_CAP_MYSQL))
        for (int i = 0; i < 4; i++)
            reserved[6 + i] = (uint8_t)(g->caps >> (32 + 8 * i));
    sy_wr_bytes(&w, reserved, sizeof reserved);
    if (g->caps & SY_CAP_SECURE_CONNECTION) {
        uint8_t salt2[GREETING_SALT2_MIN] = { 0 }; /* 12 bytes of scramble + NUL, zero padded */
        memcpy(salt2, g->salt + 8, g->salt_len - 8);
        sy_wr_bytes(&w, salt2, sizeof salt2);
    }
    if (g->caps & SY_CAP_PLUGIN_AUTH) {
        sy_wr_bytes(&w, g->auth_plugin, plen);
        sy_wr_u8(&w, 0);
    }
    return wr_done(&w);
}

/* The auth response of a handshake response: lenenc, 1-byte length or NUL-terminated, by caps. */
static bool rd_auth(struct sy_rd *r, uint64_t caps, uint8_t *dst, size_t *dst_len)
{
    const uint8_t *a = NULL;
    size_t len = 0;
    if (caps & SY_CAP_PLUGIN_AUTH_LENENC) {
        a = sy_mysql_lenenc_str_get(r, &len);
    } else if (caps & SY_CAP_SECURE_CONNECTION) {
        len = sy_rd_u8(r);
        a = sy_rd_take(r, len);
    } else {
        a = (const uint8_t *)sy_rd_cstr(r, &len);
    }
    if (a == NULL || len > SY_MYSQL_AUTH_MAX)
        return false;
    if (len)
        memcpy(dst, a, len);
    *dst_len = len;
    return true;
}

static void wr_auth(struct sy_wr *w, uint64_t caps, const uint8_t *a, size_t len)
{
    if (caps & SY_CAP_PLUGIN_AUTH_LENENC) {
        sy_mysql_lenenc_str_put(w, a, len);
    } else if (caps & SY_CAP_SECURE_CONNECTION) {
        sy_wr_u8(w, (uint8_t)len);
        sy_wr_bytes(w, a, len);
    } else if (len && memchr(a, 0, len) != NULL) {
        w->bad = true;                        /* a NUL-terminated response cannot carry a NUL */
    } else {
        sy_wr_bytes(w, a, len);
        sy_wr_u8(w, 0);
    }
}

/* Connect attributes: lenenc block when CONNECT_ATTRS and anything is left; absent = NULL/0. */
static bool rd_attrs(struct sy_rd *r, uint64_t caps, const uint8_t **attrs_p, size_t *attrs_len)
{
    if (!(caps & SY_CAP_CONNECT_ATTRS) || sy_rd_left(r) == 0)
        return true;
    *attrs_p = sy_mysql_lenenc_str_get(r, attrs_len);
    return *attrs_p != NULL;
}

enum sy_parse sy_mysql_hsresp_parse(const uint8_t *p, size_t n, struct sy_mysql_hsresp *out)
{
    memset(out, 0, sizeof *out);
    if (p == NULL || n == 0)
        return SY_PARSE_BAD;
    struct sy_rd r = sy_rd_make(p, n);
    uint64_t caps = sy_rd_u32le(&r);
    out->max_packet = sy_rd_u32le(&r);
    out->collation = sy_rd_u8(&r);
    (void)sy_rd_take(&r, 19);                 /* filler */
    uint64_t ext = sy_rd_u32le(&r);           /* bytes 28..31: MariaDB extended caps */
    if (r.bad || !(caps & SY_CAP_PROTOCOL_41))
        return SY_PARSE_BAD;
    if (!(caps & SY_CAP_MYSQL))
        caps |= ext << 32;
    out->caps = caps;
    if (sy_rd_left(&r) == 0) {                /* exactly the 32-byte prefix: SSLRequest */
        if (!(caps & SY_CAP_SSL))
            return SY_PARSE_BAD;
        out->ssl_request = true;
        return SY_PARSE_OK;
    }
    if (!rd_cstr_copy(&r, out->user, sizeof out->user) || !rd_auth(&r, caps, out->auth, &out->auth_len))
        return SY_PARSE_BAD;
    if ((caps & SY_CAP_CONNECT_WITH_DB) && sy_rd_left(&r) > 0) {
        if (!rd_cstr_copy(&r, out->db, sizeof out->db))
            return SY_PARSE_BAD;
        out->has_db = out->db[0] != '\0';
    }
    if ((caps & SY_CAP_PLUGIN_AUTH) && sy_rd_left(&r) > 0) {
        size_t len = 0;
        const uint8_t *plugin = rd_cstr_or_rest(&r, &len);
        if (plugin == NULL || !copy_str(out->plugin, sizeof out->plugin, plugin, len))
            return SY_PARSE_BAD;
    }
    if (!rd_attrs(&r, caps, &out->attrs_p, &out->attrs_len))
        return SY_PARSE_BAD;
    return SY_PARSE_OK;                       /* later fields (zstd level, ...) are ignored */
}

size_t sy_mysql_hsresp_encode(const struct sy_mysql_hsresp *h, uint8_t *buf, size_t cap)
{
    size_t ulen = strnlen(h->user, sizeof h->user);
    size_t dlen = h->has_db ? strnlen(h->db, sizeof h->db) : 0;
    size_t plen = strnlen(h->plugin, sizeof h->plugin);
    if (!(h->caps & SY_CAP_PROTOCOL_41) || ulen == sizeof h->user || dlen == sizeof h->db ||
        plen == sizeof h->plugin || h->auth_len > sizeof h->auth)
        return 0;
    struct sy_wr w = sy_wr_make(buf, cap);
    uint8_t filler[19] = { 0 };
    sy_wr_uNle(&w, h->caps & 0xFFFFFFFFu, 4);
    sy_wr_uNle(&w, h->max_packet, 4);
    sy_wr_u8(&w, h->collation);
    sy_wr_bytes(&w, filler, sizeof filler);
    sy_wr_uNle(&w, (h->caps & SY_CAP_MYSQL) ? 0 : h->caps >> 32, 4);
    sy_wr_bytes(&w, h->user, ulen);
    sy_wr_u8(&w, 0);
    wr_auth(&w, h->caps, h->auth, h->auth_len);
    if (h->caps & SY_CAP_CONNECT_WITH_DB) {
        sy_wr_bytes(&w, h->db, dlen);
        sy_wr_u8(&w, 0);
    }
    if (h->caps & SY_CAP_PLUGIN_AUTH) {
        sy_wr_bytes(&w, h->plugin, plen);
        sy_wr_u8(&w, 0);
    }
    if (h->caps & SY_CAP_CONNECT_ATTRS)
        sy_mysql_lenenc_str_put(&w, h->attrs_p, h->attrs_p ? h->attrs_len : 0);
    return wr_done(&w);
}

enum sy_parse sy_mysql_auth_switch_parse(const uint8_t *p, size_t n, struct sy_mysql_auth_switch *out)
{
    memset(out, 0, sizeof *out);
    if (p == NULL || n == 0 || p[0] != HDR_EOF)
        return SY_PARSE_BAD;
    if (n == 1) {                             /* pre-4.1 "switch to old password" request */
        (void)copy_str(out->plugin, sizeof out->plugin, "mysql_old_password", strlen("mysql_old_password"));
        return SY_PARSE_OK;
    }
    struct sy_rd r = sy_rd_make(p + 1, n - 1);
    if (!rd_cstr_copy(&r, out->plugin, sizeof out->plugin))
        return SY_PARSE_BAD;
    size_t len = sy_rd_left(&r);
    const uint8_t *data = sy_rd_take(&r, len);
    if (len > 0 && data[len - 1] == 0)
        len--;
    if (data == NULL || len > sizeof out->data)
        return SY_PARSE_BAD;
    if (len)
        memcpy(out->data, data, len);
    out->data_len = len;
    return SY_PARSE_OK;
}

/* COM_CHANGE_USER's auth field: 1-byte length with SECURE_CONNECTION, else NUL-terminated. */
static uint64_t change_user_auth_caps(uint64_t caps)
{
    return caps & ~SY_CAP_PLUGIN_AUTH_LENENC;
}

enum sy_parse sy_mysql_change_user_parse(const uint8_t *p, size_t n, uint64_t caps,
                                         struct sy_mysql_change_user *out)
{
    memset(out, 0, sizeof *out);
    if (p == NULL || n == 0 || p[0] != SY_COM_CHANGE_USER)
        return SY_PARSE_BAD;
    struct sy_rd r = sy_rd_make(p + 1, n - 1);
    if (!rd_cstr_copy(&r, out->user, sizeof out->user) ||
        !rd_auth(&r, change_user_auth_caps(caps), out->auth, &out->auth_len) ||
        !rd_cstr_copy(&r, out->db, sizeof out->db))
        return SY_PARSE_BAD;
    if (sy_rd_left(&r) < 2)                   /* old clients stop after the schema */
        return SY_PARSE_OK;
    out->collation = sy_rd_u16le(&r);
    out->has_collation = true;
    if ((caps & SY_CAP_PLUGIN_AUTH) && sy_rd_left(&r) > 0) {
        size_t len = 0;
        const uint8_t *plugin = rd_cstr_or_rest(&r, &len);
        if (plugin == NULL || !copy_str(out->plugin, sizeof out->plugin, plugin, len))
            return SY_PARSE_BAD;
    }
    if (!rd_attrs(&r, caps, &out->attrs_p, &out->attrs_len))
        return SY_PARSE_BAD;
    return SY_PARSE_OK;
}

size_t sy_mysql_change_user_encode(const struct sy_mysql_change_user *c, uint64_t caps, uint8_t *buf,
                                   size_t cap)
{
    size_t ulen = strnlen(c->user, sizeof c->user);
    size_t dlen = strnlen(c->db, sizeof c->db);
    size_t plen = strnlen(c->plugin, sizeof c->plugin);
    if (ulen == sizeof c->user || dlen == sizeof c->db || plen == sizeof c->plugin ||
        c->auth_len > sizeof c->auth)
        return 0;
    struct sy_wr w = sy_wr_make(buf, cap);
    sy_wr_u8(&w, SY_COM_CHANGE_USER);
    sy_wr_bytes(&w, c->user, ulen);
    sy_wr_u8(&w, 0);
    wr_auth(&w, change_user_auth_caps(caps), c->auth, c->auth_len);
    sy_wr_bytes(&w, c->db, dlen);
    sy_wr_u8(&w, 0);
    if (c->has_collation) {
        sy_wr_uNle(&w, c->collation, 2);
        if (caps & SY_CAP_PLUGIN_AUTH) {
            sy_wr_bytes(&w, c->plugin, plen);
            sy_wr_u8(&w, 0);
        }
        if (caps & SY_CAP_CONNECT_ATTRS)
            sy_mysql_lenenc_str_put(&w, c->attrs_p, c->attrs_p ? c->attrs_len : 0);
    }
    return wr_done(&w);
}

/* ---- generic replies -------------------------------------------------------------------------- */

enum sy_parse sy_mysql_ok_parse(const uint8_t *p, size_t n, uint64_t caps, struct sy_mysql_ok *out)
{
    memset(out, 0, sizeof *out);
    if (p == NULL || n == 0 || (p[0] != HDR_OK && p[0] != HDR_EOF))
        return SY_PARSE_BAD;
    struct sy_rd r = sy_rd_make(p + 1, n - 1);
    (void)sy_mysql_lenenc_get(&r, &out->affected_rows, NULL);
    (void)sy_mysql_lenenc_get(&r, &out->last_insert_id, NULL);
    if (caps & SY_CAP_PROTOCOL_41) {
        out->status = sy_rd_u16le(&r);
        out->warnings = sy_rd_u16le(&r);
    } else if (caps & SY_CAP_TRANSACTIONS) {
        out->status = sy_rd_u16le(&r);
    }
    if (r.bad)
        return SY_PARSE_BAD;
    if (sy_rd_left(&r) == 0)
        return SY_PARSE_OK;                   /* no info, no state */
    if (caps & SY_CAP_SESSION_TRACK) {
        out->info_p = sy_mysql_lenenc_str_get(&r, &out->info_len);
        if (out->info_p == NULL)
            return SY_PARSE_BAD;
        if ((out->status & SY_STATUS_SESSION_STATE_CHANGED) && sy_rd_left(&r) > 0) {
            out->state_p = sy_mysql_lenenc_str_get(&r, &out->state_len);
            if (out->state_p == NULL)
                return SY_PARSE_BAD;
        }
        return SY_PARSE_OK;
    }
    /* Without SESSION_TRACK the protocol docs say string<EOF>, but MariaDB and MySQL servers both
     * send a lenenc string (and their clients read one): take it when it spans exactly the rest. */
    struct sy_rd probe = r;
    size_t len = 0;
    const uint8_t *info = sy_mysql_lenenc_str_get(&probe, &len);
    if (info != NULL && sy_rd_left(&probe) == 0) {
        out->info_p = info;
        out->info_len = len;
    } else {
        out->info_len = sy_rd_left(&r);
        out->info_p = sy_rd_take(&r, out->info_len);
    }
    return SY_PARSE_OK;
}

size_t sy_mysql_ok_encode(const struct sy_mysql_ok *ok, uint8_t header, uint64_t caps, uint8_t *buf,
                          size_t cap)
{
    if (header != HDR_OK && header != HDR_EOF)
        return 0;
    struct sy_wr w = sy_wr_make(buf, cap);
    bool track = (caps & SY_CAP_SESSION_TRACK) && (ok->status & SY_STATUS_SESSION_STATE_CHANGED);
    size_t info_len = ok->info_p ? ok->info_len : 0;
    sy_wr_u8(&w, header);
    sy_mysql_lenenc_put(&w, ok->affected_rows);
    sy_mysql_lenenc_put(&w, ok->last_insert_id);
    if (caps & SY_CAP_PROTOCOL_41) {
        sy_wr_uNle(&w, ok->status, 2);
        sy_wr_uNle(&w, ok->warnings, 2);
    } else if (caps & SY_CAP_TRANSACTIONS) {
        sy_wr_uNle(&w, ok->status, 2);
    }
    if (info_len > 0 || track)                /* as the server does: omitted when empty and no state */
        sy_mysql_lenenc_str_put(&w, ok->info_p, info_len);
    if (track)
        sy_mysql_lenenc_str_put(&w, ok->state_p, ok->state_p ? ok->state_len : 0);
    return wr_done(&w);
}

enum sy_parse sy_mysql_err_parse(const uint8_t *p, size_t n, struct sy_mysql_err *out)
{
    memset(out, 0, sizeof *out);
    if (p == NULL || n < 3 || p[0] != HDR_ERR)
        return SY_PARSE_BAD;
    out->code = (uint16_t)(p[1] | p[2] << 8);
    size_t msg = 3;
    if (n >= 9 && p[3] == '#') {
        memcpy(out->sqlstate, p + 4, 5);
        msg = 9;
    } else {
        memcpy(out->sqlstate, "HY000", 5);    /* pre-handshake errors carry no SQLSTATE */
    }
    out->sqlstate[5] = '\0';
    out->msg_p = (const char *)p + msg;
    out->msg_len = n - msg;
    return SY_PARSE_OK;
}

size_t sy_mysql_err_encode(uint16_t code, const char *sqlstate, const char *msg, uint8_t *buf,
                           size_t cap)
{
    if (sqlstate != NULL && strnlen(sqlstate, 6) != 5)
        return 0;
    struct sy_wr w = sy_wr_make(buf, cap);
    sy_wr_u8(&w, HDR_ERR);
    sy_wr_uNle(&w, code, 2);
    if (sqlstate != NULL) {
        sy_wr_u8(&w, '#');
        sy_wr_bytes(&w, sqlstate, 5);
    }
    if (msg != NULL)
        sy_wr_bytes(&w, msg, strlen(msg));
    return wr_done(&w);
}

enum sy_parse sy_mysql_eof_parse(const uint8_t *p, size_t n, struct sy_mysql_eof *out)
{
    memset(out, 0, sizeof *out);
    if (p == NULL || n == 0 || n >= CLASSIC_EOF_MAX || p[0] != HDR_EOF)
        return SY_PARSE_BAD;
    if (n == 1)                               /* pre-4.1 EOF: header only */
        return SY_PARSE_OK;
    if (n < 5)
        return SY_PARSE_BAD;
    out->warnings = (uint16_t)(p[1] | p[2] << 8);
    out->status = (uint16_t)(p[3] | p[4] << 8);
    return SY_PARSE_OK;
}

int sy_mysql_track_next(struct sy_rd *r, struct sy_mysql_track *out)
{
    memset(out, 0, sizeof *out);
    if (r->bad)
        return -1;
    if (sy_rd_left(r) == 0)
        return 0;
    out->type = sy_rd_u8(r);
    size_t dlen = 0;
    const uint8_t *data = sy_mysql_lenenc_str_get(r, &dlen);
    if (data == NULL)
        return -1;
    struct sy_rd e = sy_rd_make(data, dlen);
    switch (out->type) {
    case SY_TRACK_SYSTEM_VARIABLES:
        out->name_p = sy_mysql_lenenc_str_get(&e, &out->name_len);
        out->value_p = sy_mysql_lenenc_str_get(&e, &out->value_len);
        break;
    case SY_TRACK_SCHEMA:
        out->name_p = sy_mysql_lenenc_str_get(&e, &out->name_len);
        break;
    default:
        out->name_p = data;
        out->name_len = dlen;
        break;
    }
    if (e.bad) {
        r->bad = true;                        /* malformed entry: stop the iteration for good */
        return -1;
    }
    return 1;
}

/* ---- response tracking ------------------------------------------------------------------------ */

/* How a command's response starts. */
enum resp_class {
    CLS_SIMPLE,  /* one packet: OK, ERR, or EOF (COM_SET_OPTION, COM_DEBUG); unknown commands get ERR */
    CLS_RESULT,  /* OK, ERR, LOCAL INFILE (COM_QUERY) or a result set; may chain with MORE_RESULTS */
    CLS_PREPARE, /* COM_STMT_PREPARE_OK + definitions, or ERR */
    CLS_TEXT,    /* COM_STATISTICS: one string, or ERR */
    CLS_AUTH,    /* COM_CHANGE_USER: auth exchange packets until OK or ERR */
    CLS_STREAM,  /* starts in ROWS: field list, cursor fetch, binlog events until EOF/OK or ERR */
    CLS_NONE,    /* no reply at all */
};

static enum resp_class resp_class_of(uint8_t cmd)
{
    switch (cmd) {
    case SY_COM_QUERY:
    case SY_COM_STMT_EXECUTE:
    case SY_COM_PROCESS_INFO:
    case SY_COM_STMT_BULK_EXECUTE:
        return CLS_RESULT;
    case SY_COM_STMT_PREPARE:
        return CLS_PREPARE;
    case SY_COM_STATISTICS:
        return CLS_TEXT;
    case SY_COM_CHANGE_USER:
        return CLS_AUTH;
    case SY_COM_FIELD_LIST:
    case SY_COM_STMT_FETCH:
    case SY_COM_BINLOG_DUMP:
    case SY_COM_BINLOG_DUMP_GTID:
        return CLS_STREAM;
    case SY_COM_QUIT:
    case SY_COM_STMT_CLOSE:
    case SY_COM_STMT_SEND_LONG_DATA:
        return CLS_NONE;
    default:
        return CLS_SIMPLE;
    }
}

/* Commands whose final OK/EOF may announce another result set (multi-statements, CALL). */
static bool resp_may_chain(uint8_t cmd)
{
    return cmd == SY_COM_QUERY || cmd == SY_COM_STMT_EXECUTE || cmd == SY_COM_STMT_BULK_EXECUTE;
}

static bool deprecate_eof(const struct sy_mysql_resp *r)
{
    return (r->caps & SY_CAP_DEPRECATE_EOF) != 0;
}

/* 0xFE ends rows only when short: a longer packet is a row whose first value has an 8-byte length. */
static bool is_terminator(const struct sy_mysql_resp *r, uint8_t first, uint32_t len)
{
    return first == HDR_EOF && len < (deprecate_eof(r) ? SY_MYSQL_MAX_PAYLOAD : CLASSIC_EOF_MAX);
}

void sy_mysql_resp_start(struct sy_mysql_resp *r, uint8_t cmd, uint64_t caps)
{
    memset(r, 0, sizeof *r);
    r->cmd = cmd;
    r->caps = caps;
    r->binary_rows = cmd == SY_COM_STMT_EXECUTE || cmd == SY_COM_STMT_FETCH;
    switch (resp_class_of(cmd)) {
    case CLS_NONE:
        r->phase = SY_RESP_DONE;
        break;
    case CLS_STREAM:
        r->phase = SY_RESP_ROWS;
        break;
    default:
        r->phase = SY_RESP_FIRST;
        break;
    }
}

bool sy_mysql_cmd_has_reply(uint8_t cmd)
{
    return resp_class_of(cmd) != CLS_NONE;
}

bool sy_mysql_resp_wants_whole(const struct sy_mysql_resp *r, uint8_t first, uint32_t len)
{
    if (r->continued || len == 0 || len >= SY_MYSQL_MAX_PAYLOAD)
        return false;                         /* never ask anyone to buffer a 16 MiB packet */
    if (first == HDR_ERR)
        return true;
    switch (r->phase) {
    case SY_RESP_FIRST:
    case SY_RESP_INFILE_WAIT:
        return resp_class_of(r->cmd) != CLS_TEXT;
    case SY_RESP_COLDEFS_EOF:
    case SY_RESP_PREP_PARAMS_EOF:
    case SY_RESP_PREP_COLS_EOF:
        return true;
    case SY_RESP_ROWS:
        return is_terminator(r, first, len);
    case SY_RESP_COLDEFS:
    case SY_RESP_PREP_PARAMS:
    case SY_RESP_PREP_COLS:
    case SY_RESP_DONE:
        break;
    }
    return false;
}

static enum sy_mysql_step resp_bad(struct sy_mysql_resp *r)
{
    r->phase = SY_RESP_DONE;                  /* every later feed is BAD too */
    return SY_STEP_BAD;
}

static enum sy_mysql_step resp_done(struct sy_mysql_resp *r)
{
    r->phase = SY_RESP_DONE;
    return SY_STEP_DONE;
}

/* A final OK/EOF: the response ends, or the next result set starts. */
static enum sy_mysql_step resp_status(struct sy_mysql_resp *r, uint16_t status, bool final)
{
    r->status = status;
    r->has_status = true;
    if (!final)
        return SY_STEP_MORE;
    if ((status & SY_STATUS_MORE_RESULTS) && resp_may_chain(r->cmd)) {
        r->phase = SY_RESP_FIRST;
        return SY_STEP_MORE;
    }
    return resp_done(r);
}

static enum sy_mysql_step resp_ok(struct sy_mysql_resp *r, const uint8_t *p, uint32_t len,
                                  struct sy_mysql_pkt *out)
{
    if (sy_mysql_ok_parse(p, len, r->caps, &out->ok) != SY_PARSE_OK)
        return resp_bad(r);
    out->kind = SY_PKT_OK;
    return resp_status(r, out->ok.status, true);
}

/* The EOF, or with DEPRECATE_EOF the 0xFE OK, that ends rows (or a simple command). */
static enum sy_mysql_step resp_terminator(struct sy_mysql_resp *r, const uint8_t *p, uint32_t len,
                                          struct sy_mysql_pkt *out)
{
    if (deprecate_eof(r))
        return resp_ok(r, p, len, out);
    if (sy_mysql_eof_parse(p, len, &out->eof) != SY_PARSE_OK)
        return resp_bad(r);
    out->kind = SY_PKT_EOF;
    return resp_status(r, out->eof.status, true);
}

/* Classic EOF after definitions: never final by itself, except for a cursor's metadata. */
static enum sy_mysql_step resp_defs_eof(struct sy_mysql_resp *r, const uint8_t *p, uint32_t len,
                                        struct sy_mysql_pkt *out)
{
    if (sy_mysql_eof_parse(p, len, &out->eof) != SY_PARSE_OK)
        return resp_bad(r);
    out->kind = SY_PKT_EOF;
    (void)resp_status(r, out->eof.status, false);
    switch (r->phase) {
    case SY_RESP_COLDEFS_EOF:
        if (r->cmd == SY_COM_STMT_EXECUTE && r->cursor && (out->eof.status & SY_STATUS_CURSOR_EXISTS))
            return resp_done(r);              /* rows come later through COM_STMT_FETCH */
        r->phase = SY_RESP_ROWS;
        return SY_STEP_MORE;
    case SY_RESP_PREP_PARAMS_EOF:
        if (r->num_cols == 0)
            return resp_done(r);
        r->phase = SY_RESP_PREP_COLS;
        r->left = r->num_cols;
        return SY_STEP_MORE;
    default:
        return resp_done(r);
    }
}

/* One column or parameter definition (or the first packet of a continued one). */
static enum sy_mysql_step resp_def(struct sy_mysql_resp *r, uint32_t len)
{
    bool classic = !deprecate_eof(r);
    r->continued = len == SY_MYSQL_MAX_PAYLOAD;
    if (r->left > 0)
        r->left--;
    if (r->left > 0)
        return SY_STEP_MORE;
    switch (r->phase) {
    case SY_RESP_COLDEFS:
        r->phase = classic ? SY_RESP_COLDEFS_EOF : SY_RESP_ROWS;
        return SY_STEP_MORE;
    case SY_RESP_PREP_PARAMS:
        if (classic) {
            r->phase = SY_RESP_PREP_PARAMS_EOF;
        } else if (r->num_cols > 0) {
            r->phase = SY_RESP_PREP_COLS;
            r->left = r->num_cols;
        } else {
            return resp_done(r);
        }
        return SY_STEP_MORE;
    default:                                  /* SY_RESP_PREP_COLS */
        if (classic) {
            r->phase = SY_RESP_PREP_COLS_EOF;
            return SY_STEP_MORE;
        }
        return resp_done(r);
    }
}

/* Column count packet: lenenc count [+ MariaDB "metadata follows" byte]. */
static enum sy_mysql_step resp_column_count(struct sy_mysql_resp *r, const uint8_t *p, uint32_t len)
{
    struct sy_rd rd = sy_rd_make(p, len);
    uint64_t count = 0;
    if (!sy_mysql_lenenc_get(&rd, &count, NULL) || count == 0 || count > MAX_COLUMNS)
        return resp_bad(r);
    bool meta = true;
    if (r->caps & SY_CAP_MARIADB_CACHE_METADATA) {
        meta = sy_rd_u8(&rd) != 0;
        if (rd.bad)
            return resp_bad(r);
    }
    r->left = meta ? count : 0;
    if (r->left > 0)
        r->phase = SY_RESP_COLDEFS;
    else
        r->phase = deprecate_eof(r) ? SY_RESP_ROWS : SY_RESP_COLDEFS_EOF;
    return SY_STEP_MORE;
}

static enum sy_mysql_step resp_prepare_ok(struct sy_mysql_resp *r, const uint8_t *p, uint32_t len,
                                          struct sy_mysql_pkt *out)
{
    struct sy_rd rd = sy_rd_make(p + 1, len - 1);
    r->stmt_id = sy_rd_u32le(&rd);
    r->num_cols = sy_rd_u16le(&rd);
    r->num_params = sy_rd_u16le(&rd);
    if (rd.bad)                               /* reserved byte and warnings may be absent */
        return resp_bad(r);
    out->kind = SY_PKT_PREPARE_OK;
    if (r->num_params > 0) {
        r->phase = SY_RESP_PREP_PARAMS;
        r->left = r->num_params;
    } else if (r->num_cols > 0) {
        r->phase = SY_RESP_PREP_COLS;
        r->left = r->num_cols;
    } else {
        return resp_done(r);
    }
    return SY_STEP_MORE;
}

/* First packet of a response (or of the next result set, or after LOCAL INFILE data). */
static enum sy_mysql_step resp_first(struct sy_mysql_resp *r, const uint8_t *p, uint32_t len,
                                     struct sy_mysql_pkt *out)
{
    if (len >= SY_MYSQL_MAX_PAYLOAD)
        return resp_bad(r);
    uint8_t first = p[0];
    switch (resp_class_of(r->cmd)) {
    case CLS_TEXT:
        out->kind = SY_PKT_TEXT;
        return resp_done(r);
    case CLS_AUTH:
        if (first == HDR_OK)
            return resp_ok(r, p, len, out);
        return SY_STEP_MORE;                  /* auth switch / more data: the client answers */
    case CLS_PREPARE:
        if (first == HDR_OK)
            return resp_prepare_ok(r, p, len, out);
        return resp_bad(r);
    case CLS_SIMPLE:
        if (first == HDR_OK)
            return resp_ok(r, p, len, out);
        if (is_terminator(r, first, len))
            return resp_terminator(r, p, len, out);
        return resp_bad(r);
    case CLS_RESULT:
        if (first == HDR_OK)
            return resp_ok(r, p, len, out);
        if (first == HDR_INFILE) {
            if (r->cmd != SY_COM_QUERY && r->cmd != SY_COM_STMT_EXECUTE)
                return resp_bad(r); /* a prepared LOAD DATA LOCAL asks for its file too */
            out->kind = SY_PKT_INFILE;
            r->phase = SY_RESP_INFILE_WAIT;
            return SY_STEP_INFILE;
        }
        return resp_column_count(r, p, len);
    default:
        return resp_bad(r);
    }
}

static enum sy_mysql_step resp_rows(struct sy_mysql_resp *r, const uint8_t *p, uint32_t len,
                                    struct sy_mysql_pkt *out)
{
    if (is_terminator(r, p[0], len))
        return resp_terminator(r, p, len, out);
    r->continued = len == SY_MYSQL_MAX_PAYLOAD;
    return SY_STEP_MORE;
}

enum sy_mysql_step sy_mysql_resp_feed(struct sy_mysql_resp *r, const uint8_t *p, size_t avail, uint32_t len,
                                      struct sy_mysql_pkt *out)
{
    memset(out, 0, sizeof *out);
    out->kind = SY_PKT_DATA;
    if (r->phase == SY_RESP_DONE || len > SY_MYSQL_MAX_PAYLOAD || avail > len || (avail > 0 && p == NULL) ||
        (len > 0 && avail == 0))
        return resp_bad(r);
    if (r->continued) {                       /* rest of a 16 MiB+ payload: never interpreted */
        r->continued = len == SY_MYSQL_MAX_PAYLOAD;
        return SY_STEP_MORE;
    }
    if (len == 0) {                           /* only COM_STATISTICS can answer with nothing */
        if ((r->phase == SY_RESP_FIRST || r->phase == SY_RESP_INFILE_WAIT) &&
            resp_class_of(r->cmd) == CLS_TEXT) {
            out->kind = SY_PKT_TEXT;
            return resp_done(r);
        }
        return resp_bad(r);
    }
    if (sy_mysql_resp_wants_whole(r, p[0], len) && avail < len)
        return resp_bad(r);
    if (p[0] == HDR_ERR) {
        if (len >= SY_MYSQL_MAX_PAYLOAD || sy_mysql_err_parse(p, len, &out->err) != SY_PARSE_OK)
            return resp_bad(r);
        if ((r->caps & SY_CAP_MARIADB_PROGRESS) && out->err.code == PROGRESS_CODE) {
            memset(&out->err, 0, sizeof out->err);
            return SY_STEP_MORE;              /* progress report: DATA, phase unchanged */
        }
        out->kind = SY_PKT_ERR;
        r->failed = true;
        return resp_done(r);                  /* an error ends even a multi-result response */
    }
    switch (r->phase) {
    case SY_RESP_FIRST:
    case SY_RESP_INFILE_WAIT:
        return resp_first(r, p, len, out);
    case SY_RESP_COLDEFS:
    case SY_RESP_PREP_PARAMS:
    case SY_RESP_PREP_COLS:
        return resp_def(r, len);
    case SY_RESP_COLDEFS_EOF:
    case SY_RESP_PREP_PARAMS_EOF:
    case SY_RESP_PREP_COLS_EOF:
        if (!is_terminator(r, p[0], len) || len >= CLASSIC_EOF_MAX)
            return resp_bad(r);
        return resp_defs_eof(r, p, len, out);
    case SY_RESP_ROWS:
        return resp_rows(r, p, len, out);
    case SY_RESP_DONE:
        break;
    }
    return resp_bad(r);
}

/* ---- requests --------------------------------------------------------------------------------- */

enum sy_parse sy_mysql_stmt_exec_parse(const uint8_t *p, size_t n, uint16_t num_params,
                                       struct sy_mysql_stmt_exec *out)
{
    memset(out, 0, sizeof *out);
    if (p == NULL || n == 0 || p[0] != SY_COM_STMT_EXECUTE)
        return SY_PARSE_BAD;
    struct sy_rd r = sy_rd_make(p + 1, n - 1);
    out->stmt_id = sy_rd_u32le(&r);
    out->flags = sy_rd_u8(&r);
    (void)sy_rd_u32le(&r);                    /* iteration count, always 1 */
    if (num_params > 0) {
        (void)sy_rd_take(&r, ((size_t)num_params + 7) / 8); /* NULL bitmap */
        out->new_params_bound = sy_rd_u8(&r) != 0;
        if (out->new_params_bound)
            out->types_p = sy_rd_take(&r, 2 * (size_t)num_params);
    }
    if (r.bad) {
        memset(out, 0, sizeof *out);
        return SY_PARSE_BAD;
    }
    return SY_PARSE_OK;
}

static bool is_space(uint8_t c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static size_t skip_space(const uint8_t *s, size_t len, size_t i)
{
    while (i < len && is_space(s[i]))
        i++;
    return i;
}

/* Whether the lower-case keyword kw is at s[i..] (case-insensitive). */
static bool keyword_at(const uint8_t *s, size_t len, size_t i, const char *kw)
{
    size_t k = strlen(kw);
    if (len - i < k)
        return false;
    for (size_t j = 0; j < k; j++) {
        uint8_t c = s[i + j];
        if (c >= 'A' && c <= 'Z')
            c = (uint8_t)(c - 'A' + 'a');
        if (c != (uint8_t)kw[j])
            return false;
    }
    return true;
}

/* Keyword kw (lower case) at *i, followed by at least one space; moves *i past the spaces. */
static bool match_keyword(const uint8_t *s, size_t len, size_t *i, const char *kw)
{
    size_t k = strlen(kw);
    if (!keyword_at(s, len, *i, kw) || len - *i < k + 1 || !is_space(s[*i + k]))
        return false;
    *i = skip_space(s, len, *i + k);
    return true;
}

bool sy_mysql_kill_parse(const uint8_t *sql, size_t len, struct sy_mysql_kill *out)
{
    memset(out, 0, sizeof *out);
    if (sql == NULL)
        return false;
    size_t i = skip_space(sql, len, 0);
    if (!match_keyword(sql, len, &i, "kill"))
        return false;
    if (!match_keyword(sql, len, &i, "hard"))
        (void)match_keyword(sql, len, &i, "soft");
    bool query_only = match_keyword(sql, len, &i, "query");
    if (!query_only)
        (void)match_keyword(sql, len, &i, "connection");
    size_t start = i;
    uint64_t id = 0;
    for (; i < len && sql[i] >= '0' && sql[i] <= '9'; i++) {
        unsigned d = (unsigned)(sql[i] - '0');
        if (id > (UINT64_MAX - d) / 10)
            return false;
        id = id * 10 + d;
    }
    if (i == start)
        return false;
    size_t end = i;
    i = skip_space(sql, len, i);
    if (i < len && sql[i] == ';')
        i = skip_space(sql, len, i + 1);
    if (i != len)
        return false;
    out->query_only = query_only;
    out->id = id;
    out->id_off = start;
    out->id_len = end - start;
    return true;
}
