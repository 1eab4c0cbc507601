/* TDS packets, PRELOGIN, LOGIN7 and the login part of the token stream: pure decoders/encoders
 * (proxy/tds_wire.h). Multi-byte fields: packet headers and PRELOGIN offsets are big-endian, LOGIN7 and
 * tokens little-endian (LOGINACK's TDS version excepted). Strings are UTF-16LE with character counts. */
#include "proxy/tds_wire.h"

#include <stdio.h>
#include <string.h>

#include "core/rd.h"

static uint16_t be16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static void put_be16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void put_le16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

const char *sy_tds_type_name(uint8_t type)
{
    switch (type) {
    case SY_TDS_SQL_BATCH: return "SQL_BATCH";
    case SY_TDS_RPC: return "RPC";
    case SY_TDS_TABULAR: return "TABULAR";
    case SY_TDS_ATTENTION: return "ATTENTION";
    case SY_TDS_BULK_LOAD: return "BULK_LOAD";
    case SY_TDS_FEDAUTH_TOKEN: return "FEDAUTH_TOKEN";
    case SY_TDS_TRANSACTION_MANAGER: return "TRANSACTION_MANAGER";
    case SY_TDS_LOGIN7: return "LOGIN7";
    case SY_TDS_SSPI: return "SSPI";
    case SY_TDS_PRELOGIN: return "PRELOGIN";
    case SY_TDS_SMP: return "SMP (MARS)";
    default: return "unknown";
    }
}

/* ---- packets ------------------------------------------------------------------------------------------- */

enum sy_parse sy_tds_hdr_parse(const uint8_t *p, size_t n, size_t max_len, struct sy_tds_hdr *h, char *err,
                               size_t errlen)
{
    if (n < SY_TDS_HDR_LEN)
        return SY_PARSE_AGAIN;
    h->type = p[0];
    h->status = p[1];
    h->length = be16(p + 2);
    h->spid = be16(p + 4);
    h->packet_id = p[6];
    h->window = p[7];
    if (h->length < SY_TDS_HDR_LEN || h->length > max_len) {
        snprintf(err, errlen, "packet length %u outside %u..%zu (type 0x%02x)", (unsigned)h->length,
                 (unsigned)SY_TDS_HDR_LEN, max_len, (unsigned)h->type);
        return SY_PARSE_BAD;
    }
    return SY_PARSE_OK;
}

void sy_tds_hdr_put(uint8_t *p, const struct sy_tds_hdr *h)
{
    p[0] = h->type;
    p[1] = h->status;
    put_be16(p + 2, h->length);
    put_be16(p + 4, h->spid);
    p[6] = h->packet_id;
    p[7] = h->window;
}

enum sy_parse sy_tds_msg_frame(const uint8_t *p, size_t n, size_t max_packet, size_t max_payload,
                               struct sy_tds_msg *m, char *err, size_t errlen)
{
    size_t off = 0;
    memset(m, 0, sizeof *m);
    for (;;) {
        struct sy_tds_hdr h;
        enum sy_parse r = sy_tds_hdr_parse(p + off, n - off, max_packet, &h, err, errlen);
        if (r != SY_PARSE_OK)
            return r;
        if (m->packets == 0) {
            m->type = h.type;
            m->status = h.status;
        } else if (h.type != m->type) {
            snprintf(err, errlen, "packet type changed inside a message (0x%02x -> 0x%02x)", (unsigned)m->type,
                     (unsigned)h.type);
            return SY_PARSE_BAD;
        }
        size_t body = (size_t)h.length - SY_TDS_HDR_LEN;
        bool last = (h.status & SY_TDS_STATUS_EOM) || h.type == SY_TDS_ATTENTION;
        if (body == 0 && !last) {      /* would let the wire grow without the payload limit ever striking */
            snprintf(err, errlen, "empty %s packet before the end of its message", sy_tds_type_name(h.type));
            return SY_PARSE_BAD;
        }
        if (body > max_payload - m->payload_len) {   /* the claim, before waiting for its bytes */
            snprintf(err, errlen, "%s message longer than %zu bytes", sy_tds_type_name(m->type), max_payload);
            return SY_PARSE_BAD;
        }
        if (n - off < h.length)
            return SY_PARSE_AGAIN;
        m->packets++;
        m->payload_len += body;
        off += h.length;
        m->wire_len = off;
        if (last)
            return SY_PARSE_OK;
    }
}

void sy_tds_msg_payload(const uint8_t *p, const struct sy_tds_msg *m, uint8_t *out)
{
    size_t off = 0, w = 0;
    for (uint32_t i = 0; i < m->packets; i++) {
        size_t len = be16(p + off + 2);
        memcpy(out + w, p + off + SY_TDS_HDR_LEN, len - SY_TDS_HDR_LEN);
        w += len - SY_TDS_HDR_LEN;
        off += len;
    }
}

size_t sy_tds_msg_build(uint8_t *out, size_t cap, uint8_t type, uint16_t spid, size_t packet_size,
                        const uint8_t *payload, size_t len)
{
    if (packet_size <= SY_TDS_HDR_LEN || packet_size > SY_TDS_MAX_PACKET)
        return 0;
    size_t body = packet_size - SY_TDS_HDR_LEN, w = 0, off = 0;
    uint8_t id = 1;
    do {
        size_t k = len - off < body ? len - off : body;
        if (cap - w < SY_TDS_HDR_LEN + k)
            return 0;
        struct sy_tds_hdr h = { type, off + k == len ? SY_TDS_STATUS_EOM : 0, (uint16_t)(SY_TDS_HDR_LEN + k), spid,
                                id++, 0 };
        sy_tds_hdr_put(out + w, &h);
        if (k)
            memcpy(out + w + SY_TDS_HDR_LEN, payload + off, k);
        w += SY_TDS_HDR_LEN + k;
        off += k;
    } while (off < len);
    return w;
}

/* ---- PRELOGIN -------------------------------------------------------------------------------------------- */

enum sy_parse sy_tds_prelogin_parse(const uint8_t *p, size_t n, struct sy_tds_prelogin *pl, char *err,
                                    size_t errlen)
{
    memset(pl, 0, sizeof *pl);
    pl->encryption = pl->mars = pl->fedauth_required = -1;
    size_t pos = 0;
    for (;;) {
        if (pos >= n) {
            snprintf(err, errlen, "PRELOGIN option table has no terminator");
            return SY_PARSE_BAD;
        }
        uint8_t tok = p[pos];
        if (tok == SY_TDS_PL_TERMINATOR)
            return SY_PARSE_OK;
        if (n - pos < 5) {
            snprintf(err, errlen, "PRELOGIN option table truncated");
            return SY_PARSE_BAD;
        }
        size_t off = be16(p + pos + 1), len = be16(p + pos + 3);
        if (off > n || len > n - off) {
            snprintf(err, errlen, "PRELOGIN option 0x%02x (%zu bytes at %zu) outside the %zu-byte payload",
                     (unsigned)tok, len, off, n);
            return SY_PARSE_BAD;
        }
        const uint8_t *d = p + off;
        bool ok = true;
        switch (tok) {
        case SY_TDS_PL_VERSION:
            if ((ok = len == 6)) {
                memcpy(pl->version, d, 6);
                pl->has_version = true;
            }
            break;
        case SY_TDS_PL_ENCRYPTION:
            if ((ok = len == 1))
                pl->encryption = d[0];
            break;
        case SY_TDS_PL_INSTOPT:
            pl->instopt = d;
            pl->instopt_len = len;
            break;
        case SY_TDS_PL_THREADID:
            if ((ok = len == 0 || len == 4)) {
                pl->has_threadid = len == 4;
                pl->threadid = len == 4 ? (uint32_t)be16(d) << 16 | be16(d + 2) : 0;
            }
            break;
        case SY_TDS_PL_MARS:
            if ((ok = len == 1 && d[0] <= 1))
                pl->mars = d[0];
            break;
        case SY_TDS_PL_TRACEID:
            ok = pl->has_traceid = len == 36;
            break;
        case SY_TDS_PL_FEDAUTHREQUIRED:
            if ((ok = len == 1))
                pl->fedauth_required = d[0];
            break;
        default:
            break; /* NONCEOPT and later options: carried, not read */
        }
        if (!ok) {
            snprintf(err, errlen, "PRELOGIN option 0x%02x has a bad size or value (%zu bytes)", (unsigned)tok,
                     len);
            return SY_PARSE_BAD;
        }
        if (++pl->n_options > 64) {
            snprintf(err, errlen, "PRELOGIN with more than 64 options");
            return SY_PARSE_BAD;
        }
        pos += 5;
    }
}

size_t sy_tds_prelogin_build(uint8_t *out, size_t cap, const struct sy_tds_prelogin_opt *opts, size_t n)
{
    size_t head = 5 * n + 1, w = head;
    if (cap < head || head > 0xFFFF)
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (cap - w < opts[i].len || w > 0xFFFF)
            return 0;
        out[5 * i] = opts[i].token;
        put_be16(out + 5 * i + 1, (uint16_t)w);
        put_be16(out + 5 * i + 3, opts[i].len);
        if (opts[i].len)
            memcpy(out + w, opts[i].data, opts[i].len);
        w += opts[i].len;
    }
    out[5 * n] = SY_TDS_PL_TERMINATOR;
    return w;
}

/* ---- LOGIN7 ---------------------------------------------------------------------------------------------- */

/* Offsets of the ib/cch pairs in the fixed part, by enum sy_tds_login7_field. */
static const uint8_t l7_field_pos[SY_L7__COUNT] = { 36, 40, 44, 48, 52, 60, 64, 68, 82, 86 };
#define L7_EXTENSION_POS 56
#define L7_CLIENT_ID_POS 72
#define L7_SSPI_POS 78
#define L7_SSPI_LONG_POS 90

void sy_tds_password_decode(const uint8_t *in, size_t n, uint8_t *out)
{
    for (size_t i = 0; i < n; i++) {
        uint8_t b = in[i] ^ 0xA5;
        out[i] = (uint8_t)(b << 4 | b >> 4);
    }
}

void sy_tds_password_encode(const uint8_t *in, size_t n, uint8_t *out)
{
    for (size_t i = 0; i < n; i++)
        out[i] = (uint8_t)((in[i] << 4 | in[i] >> 4) ^ 0xA5);
}

/* The FeatureExt block at off: features (id, u32 length, data) up to the 0xFF terminator. */
static enum sy_parse feature_ext_span(const uint8_t *p, size_t n, size_t off, struct sy_tds_span *out, char *err,
                                      size_t errlen)
{
    struct sy_rd r = sy_rd_make(p, n);
    if (off >= n) {
        snprintf(err, errlen, "LOGIN7 FeatureExt offset %zu outside the %zu-byte payload", off, n);
        return SY_PARSE_BAD;
    }
    r.off = off;
    for (unsigned i = 0; i < 64; i++) {
        uint8_t id = sy_rd_u8(&r);
        if (r.bad)
            break;
        if (id == SY_TDS_FEATURE_TERMINATOR) {
            out->p = p + off;
            out->len = r.off - off;
            return SY_PARSE_OK;
        }
        uint32_t len = sy_rd_u32le(&r);
        (void)sy_rd_take(&r, len);
    }
    snprintf(err, errlen, "LOGIN7 FeatureExt runs past the payload (or has more than 64 features)");
    return SY_PARSE_BAD;
}

enum sy_parse sy_tds_login7_parse(const uint8_t *p, size_t n, struct sy_tds_login7 *l, char *err, size_t errlen)
{
    memset(l, 0, sizeof *l);
    struct sy_rd r = sy_rd_make(p, n);
    l->length = sy_rd_u32le(&r);
    l->tds_version = sy_rd_u32le(&r);
    l->packet_size = sy_rd_u32le(&r);
    l->client_prog_ver = sy_rd_u32le(&r);
    l->client_pid = sy_rd_u32le(&r);
    l->connection_id = sy_rd_u32le(&r);
    l->flags1 = sy_rd_u8(&r);
    l->flags2 = sy_rd_u8(&r);
    l->type_flags = sy_rd_u8(&r);
    l->flags3 = sy_rd_u8(&r);
    l->client_timezone = (int32_t)sy_rd_u32le(&r);
    l->client_lcid = sy_rd_u32le(&r);
    if (r.bad || n < 86) {
        snprintf(err, errlen, "LOGIN7 shorter than its fixed part (%zu bytes)", n);
        return SY_PARSE_BAD;
    }
    /* 7.2+ has ibChangePassword and cbSSPILong; the structure's own length bounds every field */
    size_t fixed = l->tds_version >= 0x72000000u ? SY_TDS_LOGIN7_FIXED : 86;
    if (l->length < fixed || l->length > n) {
        snprintf(err, errlen, "LOGIN7 length %u outside %zu..%zu", (unsigned)l->length, fixed, n);
        return SY_PARSE_BAD;
    }
    size_t len = l->length;
    memcpy(l->client_id, p + L7_CLIENT_ID_POS, 6);
    for (int i = 0; i < SY_L7__COUNT; i++) {
        size_t pos = l7_field_pos[i];
        if (pos + 4 > fixed)
            continue; /* 7.1: no change password */
        size_t off = (size_t)p[pos] | (size_t)p[pos + 1] << 8, cch = (size_t)p[pos + 2] | (size_t)p[pos + 3] << 8;
        if (cch == 0)
            continue;
        if (cch > SY_TDS_LOGIN7_MAX_CHARS || off < fixed || off > len || 2 * cch > len - off) {
            snprintf(err, errlen, "LOGIN7 string field %d (%zu chars at %zu) outside the %zu-byte structure", i,
                     cch, off, len);
            return SY_PARSE_BAD;
        }
        l->str[i].p = p + off;
        l->str[i].len = 2 * cch;
    }
    size_t soff = (size_t)p[L7_SSPI_POS] | (size_t)p[L7_SSPI_POS + 1] << 8;
    size_t slen = (size_t)p[L7_SSPI_POS + 2] | (size_t)p[L7_SSPI_POS + 3] << 8;
    if (slen == 0xFFFF && fixed == SY_TDS_LOGIN7_FIXED) {
        struct sy_rd lr = sy_rd_make(p + L7_SSPI_LONG_POS, 4);
        slen = sy_rd_u32le(&lr);
    }
    if (slen > 0) {
        if (soff > len || slen > len - soff) {
            snprintf(err, errlen, "LOGIN7 SSPI data (%zu bytes at %zu) outside the structure", slen, soff);
            return SY_PARSE_BAD;
        }
        l->sspi.p = p + soff;
        l->sspi.len = slen;
    }
    if (l->flags3 & SY_TDS_LOGIN7_FLAG3_EXTENSION) {
        size_t eoff = (size_t)p[L7_EXTENSION_POS] | (size_t)p[L7_EXTENSION_POS + 1] << 8;
        size_t elen = (size_t)p[L7_EXTENSION_POS + 2] | (size_t)p[L7_EXTENSION_POS + 3] << 8;
        if (elen < 4 || eoff > len || 4 > len - eoff) {
            snprintf(err, errlen, "LOGIN7 extension pointer (%zu bytes at %zu) outside the structure", elen, eoff);
            return SY_PARSE_BAD;
        }
        struct sy_rd er = sy_rd_make(p + eoff, 4);
        size_t fe = sy_rd_u32le(&er);
        if (fe < fixed) {
            snprintf(err, errlen, "LOGIN7 FeatureExt offset %zu inside the fixed part", fe);
            return SY_PARSE_BAD;
        }
        if (feature_ext_span(p, len, fe, &l->feature_ext, err, errlen) != SY_PARSE_OK)
            return SY_PARSE_BAD;
    }
    return SY_PARSE_OK;
}

size_t sy_tds_login7_build(uint8_t *out, size_t cap, const struct sy_tds_login7 *l, const uint8_t *password,
                           size_t password_len)
{
    struct sy_tds_span s[SY_L7__COUNT];
    memcpy(s, l->str, sizeof s);
    s[SY_L7_PASSWORD].p = password;
    s[SY_L7_PASSWORD].len = password_len;
    s[SY_L7_CHANGEPASSWORD].p = NULL;
    s[SY_L7_CHANGEPASSWORD].len = 0;
    bool ext = l->feature_ext.len > 0;
    size_t total = SY_TDS_LOGIN7_FIXED + (ext ? 4 + l->feature_ext.len : 0) + l->sspi.len;
    for (int i = 0; i < SY_L7__COUNT; i++) {
        if (s[i].len % 2 || s[i].len > 2 * SY_TDS_LOGIN7_MAX_CHARS)
            return 0;
        total += s[i].len;
    }
    if (total > cap || total > 0xFFFF || l->sspi.len > 0xFFFE)
        return 0;
    memset(out, 0, SY_TDS_LOGIN7_FIXED);
    put_le32(out, (uint32_t)total);
    put_le32(out + 4, l->tds_version);
    put_le32(out + 8, l->packet_size);
    put_le32(out + 12, l->client_prog_ver);
    put_le32(out + 16, l->client_pid);
    put_le32(out + 20, l->connection_id);
    out[24] = l->flags1;
    out[25] = l->flags2;
    out[26] = l->type_flags;
    out[27] = ext ? (uint8_t)(l->flags3 | SY_TDS_LOGIN7_FLAG3_EXTENSION)
                  : (uint8_t)(l->flags3 & ~SY_TDS_LOGIN7_FLAG3_EXTENSION);
    put_le32(out + 28, (uint32_t)l->client_timezone);
    put_le32(out + 32, l->client_lcid);
    memcpy(out + L7_CLIENT_ID_POS, l->client_id, 6);
    size_t w = SY_TDS_LOGIN7_FIXED;
    /* data in the order of the table: host, user, password, app, server, extension pointer, library,
     * language, database, SSPI, attach-db, change password; the FeatureExt block last */
    static const int order[] = { SY_L7_HOSTNAME, SY_L7_USERNAME, SY_L7_PASSWORD, SY_L7_APPNAME, SY_L7_SERVERNAME,
                                 -1, SY_L7_LIBRARY, SY_L7_LANGUAGE, SY_L7_DATABASE, -2, SY_L7_ATTACHDB,
                                 SY_L7_CHANGEPASSWORD };
    size_t ext_ptr = 0;
    for (size_t k = 0; k < SY_ARRAY_LEN(order); k++) {
        if (order[k] == -1) {
            put_le16(out + L7_EXTENSION_POS, (uint16_t)w);
            put_le16(out + L7_EXTENSION_POS + 2, ext ? 4 : 0);
            if (ext) {
                ext_ptr = w;
                w += 4;
            }
            continue;
        }
        if (order[k] == -2) {
            put_le16(out + L7_SSPI_POS, (uint16_t)w);
            put_le16(out + L7_SSPI_POS + 2, (uint16_t)l->sspi.len);
            if (l->sspi.len)
                memcpy(out + w, l->sspi.p, l->sspi.len);
            w += l->sspi.len;
            continue;
        }
        const struct sy_tds_span *f = &s[order[k]];
        size_t pos = l7_field_pos[order[k]];
        put_le16(out + pos, (uint16_t)w);
        put_le16(out + pos + 2, (uint16_t)(f->len / 2));
        if (f->len == 0)
            continue;
        if (order[k] == SY_L7_PASSWORD)
            sy_tds_password_encode(f->p, f->len, out + w);
        else
            memcpy(out + w, f->p, f->len);
        w += f->len;
    }
    if (ext) {
        put_le32(out + ext_ptr, (uint32_t)w);
        memcpy(out + w, l->feature_ext.p, l->feature_ext.len);
        w += l->feature_ext.len;
    }
    return w;
}

size_t sy_tds_utf16_to_utf8(const uint8_t *p, size_t n, char *out, size_t cap)
{
    size_t w = 0;
    if (cap == 0)
        return 0;
    for (size_t i = 0; i + 1 < n; i += 2) {
        uint32_t c = (uint32_t)p[i] | (uint32_t)p[i + 1] << 8;
        if (c >= 0xD800 && c <= 0xDBFF && i + 3 < n) {
            uint32_t lo = (uint32_t)p[i + 2] | (uint32_t)p[i + 3] << 8;
            if (lo >= 0xDC00 && lo <= 0xDFFF) {
                c = 0x10000 + ((c - 0xD800) << 10) + (lo - 0xDC00);
                i += 2;
            } else {
                c = 0xFFFD;
            }
        } else if (c >= 0xD800 && c <= 0xDFFF) {
            c = 0xFFFD;
        }
        uint8_t b[4];
        size_t k;
        if (c < 0x80) {
            b[0] = (uint8_t)c;
            k = 1;
        } else if (c < 0x800) {
            b[0] = (uint8_t)(0xC0 | c >> 6);
            b[1] = (uint8_t)(0x80 | (c & 0x3F));
            k = 2;
        } else if (c < 0x10000) {
            b[0] = (uint8_t)(0xE0 | c >> 12);
            b[1] = (uint8_t)(0x80 | ((c >> 6) & 0x3F));
            b[2] = (uint8_t)(0x80 | (c & 0x3F));
            k = 3;
        } else {
            b[0] = (uint8_t)(0xF0 | c >> 18);
            b[1] = (uint8_t)(0x80 | ((c >> 12) & 0x3F));
            b[2] = (uint8_t)(0x80 | ((c >> 6) & 0x3F));
            b[3] = (uint8_t)(0x80 | (c & 0x3F));
            k = 4;
        }
        if (cap - 1 - w < k)
            break;
        memcpy(out + w, b, k);
        w += k;
    }
    out[w] = '\0';
    return w;
}

/* ---- tokens ---------------------------------------------------------------------------------------------- */

enum sy_parse sy_tds_token_next(const uint8_t *p, size_t n, struct sy_tds_token *t, size_t *used, char *err,
                                size_t errlen)
{
    struct sy_rd r = sy_rd_make(p, n);
    t->type = sy_rd_u8(&r);
    if (r.bad)
        return SY_PARSE_AGAIN;
    size_t len;
    switch (t->type) {
    case SY_TDS_TOK_ERROR:
    case SY_TDS_TOK_INFO:
    case SY_TDS_TOK_LOGINACK:
    case SY_TDS_TOK_ENVCHANGE:
    case SY_TDS_TOK_ORDER:
    case SY_TDS_TOK_SSPI:
        len = sy_rd_u16le(&r);
        break;
    case SY_TDS_TOK_FEDAUTHINFO:
        len = sy_rd_u32le(&r);
        break;
    case SY_TDS_TOK_RETURNSTATUS:
        len = 4;
        break;
    case SY_TDS_TOK_DONE:
    case SY_TDS_TOK_DONEPROC:
    case SY_TDS_TOK_DONEINPROC:
        len = SY_TDS_DONE_LEN - 1;
        break;
    case SY_TDS_TOK_FEATUREEXTACK: {
        /* features (id, u32 length, data) up to 0xFF */
        size_t start = r.off;
        for (unsigned i = 0;; i++) {
            uint8_t id = sy_rd_u8(&r);
            if (r.bad)
                return SY_PARSE_AGAIN;
            if (id == SY_TDS_FEATURE_TERMINATOR)
                break;
            if (i >= 64) {
                snprintf(err, errlen, "FEATUREEXTACK with more than 64 features");
                return SY_PARSE_BAD;
            }
            uint32_t flen = sy_rd_u32le(&r);
            if (r.bad || sy_rd_take(&r, flen) == NULL)
                return SY_PARSE_AGAIN;
        }
        t->body = p + start;
        t->len = r.off - start;
        *used = r.off;
        return SY_PARSE_OK;
    }
    default:
        snprintf(err, errlen, "token 0x%02x is not one the login scan reads", (unsigned)t->type);
        return SY_PARSE_BAD;
    }
    if (r.bad)
        return SY_PARSE_AGAIN;
    t->body = sy_rd_take(&r, len);
    if (t->body == NULL)
        return SY_PARSE_AGAIN;
    t->len = len;
    *used = r.off;
    return SY_PARSE_OK;
}

/* B_VARCHAR / US_VARCHAR: a character count (1 or 2 bytes), then UTF-16LE. */
static struct sy_tds_span rd_varchar(struct sy_rd *r, size_t count_bytes)
{
    struct sy_tds_span s = { NULL, 0 };
    size_t cch = (size_t)sy_rd_uNle(r, count_bytes);
    s.p = sy_rd_take(r, 2 * cch);
    s.len = s.p ? 2 * cch : 0;
    return s;
}

enum sy_parse sy_tds_error_parse(const struct sy_tds_token *t, struct sy_tds_error *e)
{
    memset(e, 0, sizeof *e);
    if (t->type != SY_TDS_TOK_ERROR && t->type != SY_TDS_TOK_INFO)
        return SY_PARSE_BAD;
    struct sy_rd r = sy_rd_make(t->body, t->len);
    e->number = (int32_t)sy_rd_u32le(&r);
    e->state = sy_rd_u8(&r);
    e->klass = sy_rd_u8(&r);
    struct sy_tds_span msg = rd_varchar(&r, 2), server = rd_varchar(&r, 1), proc = rd_varchar(&r, 1);
    e->line = (int32_t)sy_rd_u32le(&r);
    if (r.bad)
        return SY_PARSE_BAD;
    sy_tds_utf16_to_utf8(msg.p, msg.len, e->message, sizeof e->message);
    sy_tds_utf16_to_utf8(server.p, server.len, e->server, sizeof e->server);
    sy_tds_utf16_to_utf8(proc.p, proc.len, e->proc, sizeof e->proc);
    return SY_PARSE_OK;
}

enum sy_parse sy_tds_loginack_parse(const struct sy_tds_token *t, struct sy_tds_loginack *a)
{
    memset(a, 0, sizeof *a);
    if (t->type != SY_TDS_TOK_LOGINACK)
        return SY_PARSE_BAD;
    struct sy_rd r = sy_rd_make(t->body, t->len);
    a->interface = sy_rd_u8(&r);
    const uint8_t *v = sy_rd_take(&r, 4);
    struct sy_tds_span name = rd_varchar(&r, 1);
    const uint8_t *pv = sy_rd_take(&r, 4);
    if (r.bad)
        return SY_PARSE_BAD;
    a->tds_version = (uint32_t)v[0] << 24 | (uint32_t)v[1] << 16 | (uint32_t)v[2] << 8 | v[3];
    memcpy(a->prog_version, pv, 4);
    sy_tds_utf16_to_utf8(name.p, name.len, a->prog_name, sizeof a->prog_name);
    return SY_PARSE_OK;
}

enum sy_parse sy_tds_envchange_parse(const struct sy_tds_token *t, struct sy_tds_envchange *e)
{
    memset(e, 0, sizeof *e);
    if (t->type != SY_TDS_TOK_ENVCHANGE)
        return SY_PARSE_BAD;
    struct sy_rd r = sy_rd_make(t->body, t->len);
    e->type = sy_rd_u8(&r);
    if (r.bad)
        return SY_PARSE_BAD;
    switch (e->type) {
    case 1: case 2: case 3: case 4: case 5: case 6: case 13: case 19:
        e->new_value = rd_varchar(&r, 1);  /* B_VARCHAR */
        e->old_value = rd_varchar(&r, 1);
        break;
    case 7: case 8: case 9: case 10: case 11: case 12: case 17: case 18: {
        size_t k = sy_rd_u8(&r);           /* B_VARBYTE */
        e->new_value.p = sy_rd_take(&r, k);
        e->new_value.len = e->new_value.p ? k : 0;
        k = sy_rd_u8(&r);
        e->old_value.p = sy_rd_take(&r, k);
        e->old_value.len = e->old_value.p ? k : 0;
        break;
    }
    default:
        break; /* other types (routing, promote transaction): only the type is read */
    }
    return r.bad ? SY_PARSE_BAD : SY_PARSE_OK;
}

enum sy_parse sy_tds_done_parse(const struct sy_tds_token *t, struct sy_tds_done *d)
{
    if ((t->type != SY_TDS_TOK_DONE && t->type != SY_TDS_TOK_DONEPROC && t->type != SY_TDS_TOK_DONEINPROC) ||
        t->len != SY_TDS_DONE_LEN - 1)
        return SY_PARSE_BAD;
    struct sy_rd r = sy_rd_make(t->body, t->len);
    d->status = sy_rd_u16le(&r);
    d->curcmd = sy_rd_u16le(&r);
    d->rows = sy_rd_uNle(&r, 8);
    return SY_PARSE_OK;
}

enum sy_parse sy_tds_login_result_scan(const uint8_t *p, size_t n, struct sy_tds_login_result *res, char *err,
                                       size_t errlen)
{
    memset(res, 0, sizeof *res);
    size_t off = 0;
    while (off < n) {
        struct sy_tds_token t;
        size_t used = 0;
        enum sy_parse pr = sy_tds_token_next(p + off, n - off, &t, &used, err, errlen);
        if (pr == SY_PARSE_AGAIN) {
            snprintf(err, errlen, "token 0x%02x cut by the end of the message", (unsigned)p[off]);
            return SY_PARSE_BAD;
        }
        if (pr != SY_PARSE_OK)
            return pr;
        off += used;
        switch (t.type) {
        case SY_TDS_TOK_LOGINACK:
            if (sy_tds_loginack_parse(&t, &res->ack) != SY_PARSE_OK) {
                snprintf(err, errlen, "malformed LOGINACK");
                return SY_PARSE_BAD;
            }
            res->loginack = true;
            break;
        case SY_TDS_TOK_ERROR:
            if (sy_tds_error_parse(&t, &res->error) != SY_PARSE_OK) {
                snprintf(err, errlen, "malformed ERROR token");
                return SY_PARSE_BAD;
            }
            res->has_error = true;
            break;
        case SY_TDS_TOK_ENVCHANGE: {
            struct sy_tds_envchange e;
            if (sy_tds_envchange_parse(&t, &e) != SY_PARSE_OK) {
                snprintf(err, errlen, "malformed ENVCHANGE");
                return SY_PARSE_BAD;
            }
            if (e.type == SY_TDS_ENV_DATABASE) {
                sy_tds_utf16_to_utf8(e.new_value.p, e.new_value.len, res->database, sizeof res->database);
            } else if (e.type == SY_TDS_ENV_PACKETSIZE) {
                char num[16];
                sy_tds_utf16_to_utf8(e.new_value.p, e.new_value.len, num, sizeof num);
                unsigned long v = 0;
                size_t i = 0;
                for (; num[i] >= '0' && num[i] <= '9' && v <= SY_TDS_MAX_PACKET; i++)
                    v = v * 10 + (unsigned long)(num[i] - '0');
                if (i == 0 || num[i] != '\0' || v < SY_TDS_MIN_PACKET || v > SY_TDS_MAX_PACKET) {
                    snprintf(err, errlen, "ENVCHANGE packet size '%s' outside %u..%u", num, SY_TDS_MIN_PACKET,
                             SY_TDS_MAX_PACKET);
                    return SY_PARSE_BAD;
                }
                res->packet_size = (uint32_t)v;
            }
            break;
        }
        case SY_TDS_TOK_DONE: {
            struct sy_tds_done d;
            if (sy_tds_done_parse(&t, &d) == SY_PARSE_OK) {
                res->done = true;
                res->done_status = d.status;
            }
            break;
        }
        default:
            break; /* INFO, FEATUREEXTACK, ... */
        }
    }
    return SY_PARSE_OK;
}

bool sy_tds_is_attention_ack(const uint8_t tail[SY_TDS_DONE_LEN])
{
    return (tail[0] == SY_TDS_TOK_DONE || tail[0] == SY_TDS_TOK_DONEPROC || tail[0] == SY_TDS_TOK_DONEINPROC) &&
           (tail[1] & SY_TDS_DONE_ATTN) != 0;
}

/* UTF-8 (ASCII expected; other bytes become '?') as n UTF-16LE units at w; returns the units. */
static size_t put_ascii_utf16(struct sy_wr *w, const char *s, size_t max_units)
{
    size_t n = strlen(s);
    if (n > max_units)
        n = max_units;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = (uint8_t)s[i] < 0x80 ? (uint8_t)s[i] : '?';
        sy_wr_u8(w, c);
        sy_wr_u8(w, 0);
    }
    return n;
}

size_t sy_tds_error_reply_build(uint8_t *out, size_t cap, uint8_t token, int32_t number, uint8_t state,
                                uint8_t klass, const char *message, const char *server, uint16_t done_status)
{
    size_t mlen = strlen(message) > 1000 ? 1000 : strlen(message);
    size_t slen = strlen(server) > 128 ? 128 : strlen(server);
    size_t body = 4 + 1 + 1 + 2 + 2 * mlen + 1 + 2 * slen + 1 + 4;
    struct sy_wr w = sy_wr_make(out, cap);
    sy_wr_u8(&w, token);
    sy_wr_uNle(&w, body, 2);
    sy_wr_uNle(&w, (uint32_t)number, 4);
    sy_wr_u8(&w, state);
    sy_wr_u8(&w, klass);
    sy_wr_uNle(&w, mlen, 2);
    put_ascii_utf16(&w, message, mlen);
    sy_wr_u8(&w, (uint8_t)slen);
    put_ascii_utf16(&w, server, slen);
    sy_wr_u8(&w, 0);                 /* no procedure */
    sy_wr_uNle(&w, 1, 4);            /* line 1 */
    sy_wr_u8(&w, SY_TDS_TOK_DONE);
    sy_wr_uNle(&w, done_status, 2);
    sy_wr_uNle(&w, 0, 2);
    sy_wr_uNle(&w, 0, 8);
    return w.bad ? 0 : w.len;
}
