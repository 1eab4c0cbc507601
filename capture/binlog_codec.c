/* MariaDB binlog events (10.11 format): pure decoders over one event's bytes, read through checked
 * cursors (core/rd.h). Nothing here trusts a length or count from the event: every count is checked
 * against the bytes that remain and against SY_CHANGE_MAX_COLUMNS before anything is allocated, and
 * inflated sizes are capped by SY_BINLOG_EVENT_MAX and by what zlib could produce from the input.
 * No I/O, no globals, no asserts on input; what MariaDB itself never writes is BAD, not guessed at.
 * Value texts: DECIMAL as "-12.50" / "0.50" (with a leading zero, as SELECT prints it), DATE
 * "YYYY-MM-DD", TIME "[-]hh:mm:ss[.f]" (hours may exceed 24), DATETIME/TIMESTAMP
 * "YYYY-MM-DD hh:mm:ss[.f]" with as many fraction digits as the column's fsp; TIMESTAMP in UTC. */
#include "capture/binlog_codec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "core/crc32.h"
#include "core/rd.h"

/* MYSQL_TYPE_* codes as they appear in a TABLE_MAP. */
enum {
    T_DECIMAL = 0, T_TINY = 1, T_SHORT = 2, T_LONG = 3, T_FLOAT = 4, T_DOUBLE = 5, T_NULL = 6,
    T_TIMESTAMP = 7, T_LONGLONG = 8, T_INT24 = 9, T_DATE = 10, T_TIME = 11, T_DATETIME = 12, T_YEAR = 13,
    T_NEWDATE = 14, T_VARCHAR = 15, T_BIT = 16, T_TIMESTAMP2 = 17, T_DATETIME2 = 18, T_TIME2 = 19,
    T_JSON = 245, T_NEWDECIMAL = 246, T_ENUM = 247, T_SET = 248, T_BLOB = 252, T_VAR_STRING = 253,
    T_STRING = 254, T_GEOMETRY = 255,
};

/* TABLE_MAP optional metadata (binlog_row_metadata=FULL). */
enum {
    TM_SIGNEDNESS = 1, TM_DEFAULT_CHARSET = 2, TM_COLUMN_CHARSET = 3, TM_COLUMN_NAME = 4,
    TM_SET_STR_VALUE = 5, TM_ENUM_STR_VALUE = 6, TM_GEOMETRY_TYPE = 7, TM_SIMPLE_PRIMARY_KEY = 8,
    TM_PRIMARY_KEY_WITH_PREFIX = 9, TM_ENUM_AND_SET_DEFAULT_CHARSET = 10, TM_ENUM_AND_SET_COLUMN_CHARSET = 11,
};

/* QUERY status variables. */
enum {
    Q_FLAGS2_CODE = 0, Q_SQL_MODE_CODE = 1, Q_CATALOG_CODE = 2, Q_AUTO_INCREMENT = 3, Q_CHARSET_CODE = 4,
    Q_TIME_ZONE_CODE = 5, Q_CATALOG_NZ_CODE = 6, Q_LC_TIME_NAMES_CODE = 7, Q_CHARSET_DATABASE_CODE = 8,
    Q_TABLE_MAP_FOR_UPDATE_CODE = 9, Q_MASTER_DATA_WRITTEN_CODE = 10, Q_INVOKER = 11,
    Q_UPDATED_DB_NAMES = 12, Q_MICROSECONDS = 13, Q_EXPLICIT_DEFAULTS_FOR_TIMESTAMP = 16,
    Q_DDL_LOGGED_WITH_XID = 17, Q_DEFAULT_COLLATION_FOR_UTF8MB4 = 18, Q_SQL_REQUIRE_PRIMARY_KEY = 19,
    Q_DEFAULT_TABLE_ENCRYPTION = 20, Q_HRNOW = 128, Q_XID = 129, Q_GTID_FLAGS3 = 130,
    Q_CHARACTER_SET_COLLATIONS = 131,
};
#define OVER_MAX_DBS_IN_EVENT_MTS 254

#define BINLOG_IN_USE_F 0x1        /* FDE flag set in place while the file is open; not in its CRC */
#define DEFLATE_MAX_RATIO 1032u    /* zlib cannot expand more than this (zlib tech notes) */
#define CHARSET_BINARY 63
#define TEXT_TEMPORAL_MAX 48       /* "-9999999:59:59.999999", "YYYY..-MM-DD hh:mm:ss.ffffff" + NUL */
#define TEXT_DECIMAL_MAX 72        /* 65 digits + sign + point + leading zero + NUL */

static uint64_t rd_lenenc(struct sy_rd *r)
{
    uint8_t b = sy_rd_u8(r);
    switch (b) {
    case 251: /* NULL: never legal in these structures */
    case 255:
        r->bad = true;
        return 0;
    case 252:
        return sy_rd_u16le(r);
    case 253:
        return sy_rd_u24le(r);
    case 254:
        return sy_rd_uNle(r, 8);
    default:
        return b;
    }
}

/* A length read from the input, usable as a take() size only if that many bytes remain. */
static const uint8_t *rd_take64(struct sy_rd *r, uint64_t n)
{
    if (n > sy_rd_left(r)) {
        r->bad = true;
        return NULL;
    }
    return sy_rd_take(r, (size_t)n);
}

static uint64_t be_uint(const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

static bool bit_lsb(const uint8_t *bm, uint32_t i)
{
    return (bm[i / 8] >> (i % 8)) & 1;
}

/* ---- framing ---------------------------------------------------------------------------------- */

enum sy_parse sy_binlog_header_parse(const uint8_t *p, size_t n, struct sy_binlog_header *out)
{
    if (p == NULL || n < SY_BINLOG_HEADER_LEN)
        return SY_PARSE_AGAIN;
    struct sy_rd r = sy_rd_make(p, n);
    out->timestamp = sy_rd_u32le(&r);
    out->type = sy_rd_u8(&r);
    out->server_id = sy_rd_u32le(&r);
    out->event_size = sy_rd_u32le(&r);
    out->next_pos = sy_rd_u32le(&r);
    out->flags = sy_rd_u16le(&r);
    if (out->event_size < SY_BINLOG_HEADER_LEN || out->event_size > SY_BINLOG_EVENT_MAX)
        return SY_PARSE_BAD;
    return SY_PARSE_OK;
}

bool sy_binlog_crc_ok(const uint8_t *p, size_t n)
{
    if (p == NULL || n < SY_BINLOG_CRC_LEN)
        return false;
    size_t m = n - SY_BINLOG_CRC_LEN;
    uint32_t stored = (uint32_t)p[m] | (uint32_t)p[m + 1] << 8 | (uint32_t)p[m + 2] << 16 |
                      (uint32_t)p[m + 3] << 24;
    uint32_t crc = 0;
    /* The server computes a FORMAT_DESCRIPTION's CRC with LOG_EVENT_BINLOG_IN_USE_F clear and sets the
     * flag in place while the file is open: check it the same way. */
    if (m >= SY_BINLOG_HEADER_LEN && p[4] == SY_BL_FORMAT_DESCRIPTION && (p[17] & BINLOG_IN_USE_F)) {
        uint8_t flag = (uint8_t)(p[17] & ~BINLOG_IN_USE_F);
        crc = sy_crc32(crc, p, 17);
        crc = sy_crc32(crc, &flag, 1);
        crc = sy_crc32(crc, p + 18, m - 18);
    } else {
        crc = sy_crc32(crc, p, m);
    }
    return crc == stored;
}

enum sy_parse sy_binlog_fde_parse(const uint8_t *p, size_t n, struct sy_binlog_fde *out)
{
    struct sy_binlog_header h;
    enum sy_parse rc = sy_binlog_header_parse(p, n, &h);
    if (rc != SY_PARSE_OK)
        return rc;
    if (h.type != SY_BL_FORMAT_DESCRIPTION)
        return SY_PARSE_BAD;
    if (n < h.event_size)
        return SY_PARSE_AGAIN;
    n = h.event_size;
    /* body: binlog_version u16, server_version[50], create_timestamp u32, header_length u8,
     * post-header lengths (one per type), checksum_alg u8, then always 4 CRC bytes. */
    if (n < SY_BINLOG_HEADER_LEN + 2 + 50 + 4 + 1 + 1 + SY_BINLOG_CRC_LEN)
        return SY_PARSE_BAD;
    struct sy_rd r = sy_rd_make(p + SY_BINLOG_HEADER_LEN, n - SY_BINLOG_HEADER_LEN);
    out->binlog_version = sy_rd_u16le(&r);
    const uint8_t *ver = sy_rd_take(&r, 50);
    (void)sy_rd_u32le(&r);
    uint8_t header_len = sy_rd_u8(&r);
    if (r.bad || out->binlog_version != 4 || header_len != SY_BINLOG_HEADER_LEN)
        return SY_PARSE_BAD;
    size_t vlen = 0;
    while (vlen < 50 && ver[vlen] != 0)
        vlen++;
    memcpy(out->server_version, ver, vlen);
    out->server_version[vlen] = '\0';
    out->checksum_alg = p[n - SY_BINLOG_CRC_LEN - 1];
    if (out->checksum_alg > 1)
        return SY_PARSE_BAD;
    if (out->checksum_alg == 1 && !sy_binlog_crc_ok(p, n))
        return SY_PARSE_BAD;
    return SY_PARSE_OK;
}

bool sy_binlog_body(const uint8_t *p, size_t n, bool has_crc, struct sy_binlog_body *out)
{
    size_t tail = has_crc ? SY_BINLOG_CRC_LEN : 0;
    if (p == NULL || n < SY_BINLOG_HEADER_LEN + tail)
        return false;
    out->p = p + SY_BINLOG_HEADER_LEN;
    out->len = n - SY_BINLOG_HEADER_LEN - tail;
    return true;
}

/* ---- transaction and file events -------------------------------------------------------------- */

enum sy_parse sy_binlog_gtid_parse(const struct sy_binlog_body *b, struct sy_binlog_gtid *out)
{
    struct sy_rd r = sy_rd_make(b->p, b->len);
    out->seq_no = sy_rd_uNle(&r, 8);
    out->domain_id = sy_rd_u32le(&r);
    out->flags = sy_rd_u8(&r);
    out->commit_id = 0;
    if (out->flags & SY_GTID_FL_GROUP_COMMIT_ID)
        out->commit_id = sy_rd_uNle(&r, 8);
    /* XA variants go on with format_id u32, gtrid_len u8, bqual_len u8 and the xid bytes: not needed. */
    return r.bad ? SY_PARSE_BAD : SY_PARSE_OK;
}

/* Status variables: fills what Switchyard uses; an unknown code ends the list (as the server does). */
static bool query_status_vars(struct sy_rd *r, struct sy_binlog_query *out)
{
    size_t len;
    while (sy_rd_left(r) > 0) {
        uint8_t code = sy_rd_u8(r);
        switch (code) {
        case Q_FLAGS2_CODE:
        case Q_MASTER_DATA_WRITTEN_CODE:
            (void)sy_rd_take(r, 4);
            break;
        case Q_SQL_MODE_CODE:
            out->sql_mode = sy_rd_uNle(r, 8);
            out->has_sql_mode = !r->bad;
            break;
        case Q_CATALOG_CODE:             /* old: length, name, NUL */
            len = sy_rd_u8(r);
            (void)sy_rd_take(r, len + 1);
            break;
        case Q_AUTO_INCREMENT:
            (void)sy_rd_take(r, 4);
            break;
        case Q_CHARSET_CODE:
            out->charset_client = sy_rd_u16le(r);
            out->collation_connection = sy_rd_u16le(r);
            out->collation_server = sy_rd_u16le(r);
            out->has_charset = !r->bad;
            break;
        case Q_TIME_ZONE_CODE:
            len = sy_rd_u8(r);
            out->time_zone = (const char *)sy_rd_take(r, len);
            out->time_zone_len = out->time_zone ? len : 0;
            break;
        case Q_CATALOG_NZ_CODE:
            len = sy_rd_u8(r);
            (void)sy_rd_take(r, len);
            break;
        case Q_LC_TIME_NAMES_CODE:
        case Q_CHARSET_DATABASE_CODE:
        case Q_DEFAULT_COLLATION_FOR_UTF8MB4:
            (void)sy_rd_take(r, 2);
            break;
        case Q_TABLE_MAP_FOR_UPDATE_CODE:
        case Q_DDL_LOGGED_WITH_XID:
        case Q_XID:
            (void)sy_rd_take(r, 8);
            break;
        case Q_INVOKER:                  /* user, host: each a length byte and the bytes */
            len = sy_rd_u8(r);
            (void)sy_rd_take(r, len);
            len = sy_rd_u8(r);
            (void)sy_rd_take(r, len);
            break;
        case Q_UPDATED_DB_NAMES: {
            uint8_t count = sy_rd_u8(r);
            if (count != OVER_MAX_DBS_IN_EVENT_MTS)
                for (unsigned i = 0; i < count && !r->bad; i++)
                    (void)sy_rd_cstr(r, &len);
            break;
        }
        case Q_MICROSECONDS:
        case Q_HRNOW:
            (void)sy_rd_take(r, 3);
            break;
        case Q_EXPLICIT_DEFAULTS_FOR_TIMESTAMP:
        case Q_SQL_REQUIRE_PRIMARY_KEY:
        case Q_DEFAULT_TABLE_ENCRYPTION:
        case Q_GTID_FLAGS3:
            (void)sy_rd_take(r, 1);
            break;
        case Q_CHARACTER_SET_COLLATIONS: {
            uint8_t count = sy_rd_u8(r);
            (void)sy_rd_take(r, (size_t)count * 4);
            break;
        }
        default:                         /* incl. Q_COMMIT_TS/Q_COMMIT_TS2 (14, 15): no known size */
            return !r->bad;
        }
        if (r->bad)
            return false;
    }
    return true;
}

enum sy_parse sy_binlog_query_parse(const struct sy_binlog_body *b, struct sy_binlog_query *out)
{
    memset(out, 0, sizeof *out);
    struct sy_rd r = sy_rd_make(b->p, b->len);
    out->thread_id = sy_rd_u32le(&r);
    out->exec_time = sy_rd_u32le(&r);
    uint8_t db_len = sy_rd_u8(&r);
    out->error_code = sy_rd_u16le(&r);
    uint16_t sv_len = sy_rd_u16le(&r);
    const uint8_t *sv = sy_rd_take(&r, sv_len);
    const uint8_t *db = sy_rd_take(&r, db_len);
    uint8_t nul = sy_rd_u8(&r);
    if (r.bad || nul != 0)
        return SY_PARSE_BAD;
    struct sy_rd svr = sy_rd_make(sv, sv_len);
    if (!query_status_vars(&svr, out))
        return SY_PARSE_BAD;
    out->db = (const char *)db;
    out->db_len = db_len;
    out->sql_len = sy_rd_left(&r);
    out->sql = (const char *)sy_rd_take(&r, out->sql_len);
    return SY_PARSE_OK;
}

enum sy_parse sy_binlog_xid_parse(const struct sy_binlog_body *b, uint64_t *xid)
{
    struct sy_rd r = sy_rd_make(b->p, b->len);
    *xid = sy_rd_uNle(&r, 8);
    return r.bad ? SY_PARSE_BAD : SY_PARSE_OK;
}

enum sy_parse sy_binlog_rotate_parse(const struct sy_binlog_body *b, struct sy_binlog_rotate *out)
{
    struct sy_rd r = sy_rd_make(b->p, b->len);
    out->position = sy_rd_uNle(&r, 8);
    out->name_len = sy_rd_left(&r);
    out->name = (const char *)sy_rd_take(&r, out->name_len);
    return r.bad || out->name_len == 0 ? SY_PARSE_BAD : SY_PARSE_OK;
}

enum sy_parse sy_binlog_gtid_list_parse(const struct sy_binlog_body *b, struct sy_binlog_gtid_list *out)
{
    struct sy_rd r = sy_rd_make(b->p, b->len);
    out->count = sy_rd_u32le(&r) & 0x0FFFFFFFu;  /* the top 4 bits are flags */
    out->entries_p = rd_take64(&r, (uint64_t)out->count * 16);
    return r.bad ? SY_PARSE_BAD : SY_PARSE_OK;
}

/* ---- row events: layout ------------------------------------------------------------------------ */

uint8_t sy_binlog_uncompressed_type(uint8_t type)
{
    switch (type) {
    case SY_BL_QUERY_COMPRESSED: return SY_BL_QUERY;
    case SY_BL_WRITE_ROWS_COMPRESSED_V1: return SY_BL_WRITE_ROWS_V1;
    case SY_BL_UPDATE_ROWS_COMPRESSED_V1: return SY_BL_UPDATE_ROWS_V1;
    case SY_BL_DELETE_ROWS_COMPRESSED_V1: return SY_BL_DELETE_ROWS_V1;
    case SY_BL_WRITE_ROWS_COMPRESSED_V2: return SY_BL_WRITE_ROWS_V2;
    case SY_BL_UPDATE_ROWS_COMPRESSED_V2: return SY_BL_UPDATE_ROWS_V2;
    case SY_BL_DELETE_ROWS_COMPRESSED_V2: return SY_BL_DELETE_ROWS_V2;
    default: return type;
    }
}

enum sy_parse sy_binlog_rows_parse(uint8_t type, const struct sy_binlog_body *b, struct sy_binlog_rows *out)
{
    memset(out, 0, sizeof *out);
    out->type = sy_binlog_uncompressed_type(type);
    bool v2 = false;
    switch (out->type) {
    case SY_BL_WRITE_ROWS_V2: v2 = true; /* fall through */
    case SY_BL_WRITE_ROWS_V1: out->op = SY_ROW_INSERT; break;
    case SY_BL_UPDATE_ROWS_V2: v2 = true; /* fall through */
    case SY_BL_UPDATE_ROWS_V1: out->op = SY_ROW_UPDATE; break;
    case SY_BL_DELETE_ROWS_V2: v2 = true; /* fall through */
    case SY_BL_DELETE_ROWS_V1: out->op = SY_ROW_DELETE; break;
    default: return SY_PARSE_BAD;
    }
    struct sy_rd r = sy_rd_make(b->p, b->len);
    out->table_id = sy_rd_uNle(&r, 6);
    out->flags = sy_rd_u16le(&r);
    if (v2) {                       /* extra data: its length counts its own 2 bytes */
        uint16_t extra = sy_rd_u16le(&r);
        if (extra < 2)
            return SY_PARSE_BAD;
        (void)sy_rd_take(&r, extra - 2u);
    }
    uint64_t n = rd_lenenc(&r);
    if (r.bad || n == 0 || n > SY_CHANGE_MAX_COLUMNS)
        return SY_PARSE_BAD;
    out->n_columns = (uint32_t)n;
    size_t bm_len = (out->n_columns + 7) / 8;
    const uint8_t *bm = sy_rd_take(&r, bm_len);
    if (out->op == SY_ROW_UPDATE) {
        out->present_before = bm;
        out->present_after = sy_rd_take(&r, bm_len);
    } else if (out->op == SY_ROW_INSERT) {
        out->present_after = bm;
    } else {
        out->present_before = bm;
    }
    if (r.bad)
        return SY_PARSE_BAD;
    out->rows_len = sy_rd_left(&r);
    out->rows_p = r.p + r.off;
    return SY_PARSE_OK;
}

static bool bitmap_full(const uint8_t *bm, uint32_t n)
{
    if (bm == NULL)
        return false;
    for (uint32_t i = 0; i < n; i++)
        if (!bit_lsb(bm, i))
            return false;
    return true;
}

bool sy_binlog_rows_full_image(const struct sy_binlog_rows *r)
{
    bool full = true;
    if (r->op == SY_ROW_UPDATE || r->op == SY_ROW_DELETE)
        full = full && bitmap_full(r->present_before, r->n_columns);
    if (r->op == SY_ROW_UPDATE || r->op == SY_ROW_INSERT)
        full = full && bitmap_full(r->present_after, r->n_columns);
    return full && r->n_columns > 0;
}

/* ---- compressed events --------------------------------------------------------------------------- */

/* Bytes at the start of a compressed body that are stored as is (SIZE_MAX: malformed). */
static size_t compressed_prefix_len(uint8_t type, const struct sy_binlog_body *b)
{
    if (type == SY_BL_QUERY_COMPRESSED) {
        struct sy_rd r = sy_rd_make(b->p, b->len);
        (void)sy_rd_take(&r, 8);
        uint8_t db_len = sy_rd_u8(&r);
        (void)sy_rd_take(&r, 2);
        uint16_t sv_len = sy_rd_u16le(&r);
        (void)sy_rd_take(&r, (size_t)sv_len + db_len);
        uint8_t nul = sy_rd_u8(&r);
        return r.bad || nul != 0 ? SIZE_MAX : r.off;
    }
    struct sy_binlog_rows rows;
    if (sy_binlog_rows_parse(sy_binlog_uncompressed_type(type), b, &rows) != SY_PARSE_OK)
        return SIZE_MAX;
    return (size_t)(rows.rows_p - b->p);
}

enum sy_parse sy_binlog_inflate(uint8_t type, const struct sy_binlog_body *b, uint8_t **out, size_t *out_cap,
                                struct sy_binlog_body *inflated)
{
    if (sy_binlog_uncompressed_type(type) == type)
        return SY_PARSE_BAD;
    size_t keep = compressed_prefix_len(type, b);
    if (keep == SIZE_MAX)
        return SY_PARSE_BAD;
    /* MariaDB's layout: 1 byte 0x80 | (algorithm << 4) | n, n = 1..4 big-endian bytes of the
     * uncompressed length, then a zlib stream (algorithm 0, the only one). */
    struct sy_rd r = sy_rd_make(b->p + keep, b->len - keep);
    uint8_t h = sy_rd_u8(&r);
    size_t lenlen = h & 0x07;
    if (r.bad || !(h & 0x80) || (h & 0x70) != 0 || lenlen < 1 || lenlen > 4)
        return SY_PARSE_BAD;
    const uint8_t *lp = sy_rd_take(&r, lenlen);
    if (lp == NULL)
        return SY_PARSE_BAD;
    uint64_t ulen = be_uint(lp, lenlen);
    size_t zlen = sy_rd_left(&r);
    const uint8_t *zp = sy_rd_take(&r, zlen);
    if (ulen > SY_BINLOG_EVENT_MAX - keep || ulen > (uint64_t)zlen * DEFLATE_MAX_RATIO)
        return SY_PARSE_BAD;
    size_t need = keep + (size_t)ulen + 1;   /* + 1: detects a stream longer than it claims */
    if (*out_cap < need) {
        uint8_t *grown = realloc(*out, need);
        if (grown == NULL)
            return SY_PARSE_BAD;
        *out = grown;
        *out_cap = need;
    }
    if (keep > 0)
        memcpy(*out, b->p, keep);
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (inflateInit(&zs) != Z_OK)
        return SY_PARSE_BAD;
    zs.next_in = (Bytef *)(uintptr_t)zp;   /* zlib's API is not const-correct; it does not write */
    zs.avail_in = (uInt)zlen;
    zs.next_out = *out + keep;
    zs.avail_out = (uInt)(ulen + 1);
    int zrc = inflate(&zs, Z_FINISH);
    uLong produced = zs.total_out;
    inflateEnd(&zs);
    if (zrc != Z_STREAM_END || produced != ulen)
        return SY_PARSE_BAD;
    inflated->p = *out;
    inflated->len = keep + (size_t)ulen;
    return SY_PARSE_OK;
}

/* ---- TABLE_MAP --------------------------------------------------------------------------------- */

static bool is_numeric(uint8_t t)
{
    switch (t) {
    case T_TINY: case T_SHORT: case T_INT24: case T_LONG: case T_LONGLONG:
    case T_NEWDECIMAL: case T_FLOAT: case T_DOUBLE:
    case T_YEAR:   /* MariaDB counts YEAR in SIGNEDNESS (seen in 10.11; its mariadb-binlog does not) */
        return true;
    default:
        return false;
    }
}

static bool is_character(uint8_t t)   /* resolved types: ENUM/SET are apart; GEOMETRY counts (MariaDB) */
{
    return t == T_STRING || t == T_VARCHAR || t == T_VAR_STRING || t == T_BLOB || t == T_GEOMETRY;
}

static bool is_enum_set(uint8_t t)
{
    return t == T_ENUM || t == T_SET;
}

void sy_binlog_table_map_free(struct sy_binlog_table_map *tm)
{
    if (tm == NULL)
        return;
    if (tm->names != NULL)
        for (uint32_t i = 0; i < tm->n_columns; i++)
            free(tm->names[i]);
    if (tm->enum_names != NULL)
        for (uint32_t i = 0; i < tm->n_columns; i++)
            free(tm->enum_names[i]);     /* one block: pointers then strings */
    free(tm->types);
    free(tm->meta);
    free(tm->nullable);
    free(tm->is_unsigned);
    free(tm->charset);
    free(tm->names);
    free(tm->is_key);
    free(tm->enum_names);
    memset(tm, 0, sizeof *tm);
}

/* Reads one column's metadata and resolves its real type. */
static bool column_meta(uint8_t type, struct sy_rd *m, uint8_t *real, uint16_t *meta)
{
    *real = type;
    *meta = 0;
    switch (type) {
    case T_DECIMAL: case T_TINY: case T_SHORT: case T_LONG: case T_NULL: case T_TIMESTAMP:
    case T_LONGLONG: case T_INT24: case T_DATE: case T_TIME: case T_DATETIME: case T_YEAR: case T_NEWDATE:
        return true;
    case T_FLOAT:
    case T_DOUBLE:
        *meta = sy_rd_u8(m);
        return !m->bad && *meta == (type == T_FLOAT ? 4 : 8);
    case T_TIMESTAMP2:
    case T_DATETIME2:
    case T_TIME2:
        *meta = sy_rd_u8(m);
        return !m->bad && *meta <= 6;
    case T_BLOB:
    case T_GEOMETRY:
    case T_JSON:
        *meta = sy_rd_u8(m);
        return !m->bad && *meta >= 1 && *meta <= 4;
    case T_VARCHAR:
    case T_VAR_STRING:
        *meta = sy_rd_u16le(m);
        return !m->bad;
    case T_BIT: {
        uint8_t bits = sy_rd_u8(m), bytes = sy_rd_u8(m);
        *meta = (uint16_t)(bytes << 8 | bits);
        return !m->bad && bits < 8 && bytes + (bits ? 1 : 0) >= 1 && bytes + (bits ? 1 : 0) <= 8;
    }
    case T_NEWDECIMAL: {
        uint8_t prec = sy_rd_u8(m), scale = sy_rd_u8(m);
        *meta = (uint16_t)(prec << 8 | scale);
        return !m->bad && prec >= 1 && prec <= 65 && scale <= prec && scale <= 38;
    }
    case T_STRING:
    case T_ENUM:
    case T_SET: {
        uint8_t b0 = sy_rd_u8(m), b1 = sy_rd_u8(m);
        if (m->bad)
            return false;
        if ((b0 & 0x30) != 0x30) {     /* CHAR longer than 255 bytes: 2 length bits hidden in byte 0 */
            *real = b0 | 0x30;
            *meta = (uint16_t)((((b0 & 0x30) ^ 0x30) << 4) | b1);
        } else {
            *real = b0;
            *meta = b1;
        }
        if (*real == T_STRING)
            return true;
        if (*real == T_ENUM)
            return *meta == 1 || *meta == 2;
        if (*real == T_SET)
            return *meta >= 1 && *meta <= 8;
        return false;
    }
    default:
        return false;
    }
}

/* DEFAULT_CHARSET-style TLV over the columns `pick` selects. */
static bool tlv_default_charset(struct sy_binlog_table_map *tm, struct sy_rd *v, bool (*pick)(uint8_t))
{
    uint64_t def = rd_lenenc(v);
    if (v->bad || def > UINT16_MAX)
        return false;
    uint32_t *cols = malloc(tm->n_columns * sizeof *cols);   /* k-th picked column -> its index */
    uint32_t count = 0;
    if (cols == NULL)
        return false;
    for (uint32_t i = 0; i < tm->n_columns; i++)
        if (pick(tm->types[i])) {
            tm->charset[i] = (uint16_t)def;
            cols[count++] = i;
        }
    bool ok = true;
    while (ok && sy_rd_left(v) > 0) {
        uint64_t idx = rd_lenenc(v), cs = rd_lenenc(v);
        ok = !v->bad && idx < count && cs <= UINT16_MAX;
        if (ok)
            tm->charset[cols[idx]] = (uint16_t)cs;
    }
    free(cols);
    return ok;
}

static bool tlv_column_charset(struct sy_binlog_table_map *tm, struct sy_rd *v, bool (*pick)(uint8_t))
{
    for (uint32_t i = 0; i < tm->n_columns; i++) {
        if (!pick(tm->types[i]))
            continue;
        uint64_t cs = rd_lenenc(v);
        if (v->bad || cs > UINT16_MAX)
            return false;
        tm->charset[i] = (uint16_t)cs;
    }
    return true;
}

static bool tlv_signedness(struct sy_binlog_table_map *tm, struct sy_rd *v)
{
    uint32_t k = 0;
    for (uint32_t i = 0; i < tm->n_columns; i++)
        if (is_numeric(tm->types[i]))
            k++;
    const uint8_t *bm = sy_rd_take(v, (k + 7) / 8);
    if (bm == NULL)
        return false;
    k = 0;
    for (uint32_t i = 0; i < tm->n_columns; i++)
        if (is_numeric(tm->types[i])) {
            tm->is_unsigned[i] = (bm[k / 8] >> (7 - k % 8)) & 1;   /* most significant bit first */
            k++;
        }
    return true;
}

static bool tlv_column_names(struct sy_binlog_table_map *tm, struct sy_rd *v)
{
    if (tm->names != NULL)
        return false;
    if ((tm->names = calloc(tm->n_columns, sizeof *tm->names)) == NULL)
        return false;
    for (uint32_t i = 0; i < tm->n_columns; i++) {
        uint64_t len = rd_lenenc(v);
        const uint8_t *s = rd_take64(v, len);
        if (s == NULL || (tm->names[i] = malloc((size_t)len + 1)) == NULL)
            return false;
        memcpy(tm->names[i], s, (size_t)len);
        tm->names[i][len] = '\0';
    }
    tm->has_names = true;
    return true;
}

/* ENUM_STR_VALUE / SET_STR_VALUE: per column of the kind, a count then that many strings. Each
 * column's names live in one block: count + 1 pointers (NULL-terminated), then the NUL-ended texts. */
static bool tlv_enum_names(struct sy_binlog_table_map *tm, struct sy_rd *v, uint8_t kind)
{
    if (tm->enum_names == NULL && (tm->enum_names = calloc(tm->n_columns, sizeof *tm->enum_names)) == NULL)
        return false;
    for (uint32_t i = 0; i < tm->n_columns; i++) {
        if (tm->types[i] != kind)
            continue;
        if (tm->enum_names[i] != NULL)
            return false;                 /* the same TLV twice */
        uint64_t count = rd_lenenc(v);
        if (v->bad || count > sy_rd_left(v) || count > (kind == T_SET ? 64u : 65535u))
            return false;
        struct sy_rd scan = *v;           /* first pass: sizes, all within the TLV */
        size_t bytes = 0;
        for (uint64_t k = 0; k < count; k++) {
            uint64_t len = rd_lenenc(&scan);
            if (rd_take64(&scan, len) == NULL)
                return false;
            bytes += (size_t)len + 1;
        }
        size_t ptrs = ((size_t)count + 1) * sizeof(char *);
        char **block = malloc(ptrs + bytes);
        if (block == NULL)
            return false;
        tm->enum_names[i] = block;
        char *text = (char *)block + ptrs;
        for (uint64_t k = 0; k < count; k++) {
            uint64_t len = rd_lenenc(v);
            const uint8_t *s = rd_take64(v, len);
            memcpy(text, s, (size_t)len);
            text[len] = '\0';
            block[k] = text;
            text += len + 1;
        }
        block[count] = NULL;
    }
    return !v->bad;
}

static bool tlv_primary_key(struct sy_binlog_table_map *tm, struct sy_rd *v, bool with_prefix)
{
    while (sy_rd_left(v) > 0) {
        uint64_t idx = rd_lenenc(v);
        if (with_prefix)
            (void)rd_lenenc(v);
        if (v->bad || idx >= tm->n_columns)
            return false;
        tm->is_key[idx] = 1;
    }
    return true;
}

static bool table_map_tlv(struct sy_binlog_table_map *tm, uint8_t type, struct sy_rd *v)
{
    switch (type) {
    case TM_SIGNEDNESS: return tlv_signedness(tm, v);
    case TM_DEFAULT_CHARSET: return tlv_default_charset(tm, v, is_character);
    case TM_COLUMN_CHARSET: return tlv_column_charset(tm, v, is_character);
    case TM_COLUMN_NAME: return tlv_column_names(tm, v);
    case TM_SET_STR_VALUE: return tlv_enum_names(tm, v, T_SET);
    case TM_ENUM_STR_VALUE: return tlv_enum_names(tm, v, T_ENUM);
    case TM_SIMPLE_PRIMARY_KEY: return tlv_primary_key(tm, v, false);
    case TM_PRIMARY_KEY_WITH_PREFIX: return tlv_primary_key(tm, v, true);
    case TM_ENUM_AND_SET_DEFAULT_CHARSET: return tlv_default_charset(tm, v, is_enum_set);
    case TM_ENUM_AND_SET_COLUMN_CHARSET: return tlv_column_charset(tm, v, is_enum_set);
    default: return true;                 /* GEOMETRY_TYPE and later additions: not needed */
    }
}

static bool copy_name(struct sy_rd *r, char *dst)   /* u8 length, bytes, NUL; dst holds 257 */
{
    uint8_t len = sy_rd_u8(r);
    const uint8_t *s = sy_rd_take(r, len);
    uint8_t nul = sy_rd_u8(r);
    if (r->bad || nul != 0)
        return false;
    memcpy(dst, s, len);
    dst[len] = '\0';
    return true;
}

enum sy_parse sy_binlog_table_map_parse(const struct sy_binlog_body *b, struct sy_binlog_table_map *out)
{
    memset(out, 0, sizeof *out);
    struct sy_rd r = sy_rd_make(b->p, b->len);
    out->table_id = sy_rd_uNle(&r, 6);
    (void)sy_rd_u16le(&r);
    if (!copy_name(&r, out->db) || !copy_name(&r, out->table))
        return SY_PARSE_BAD;
    uint64_t n = rd_lenenc(&r);
    if (r.bad || n == 0 || n > SY_CHANGE_MAX_COLUMNS || n > sy_rd_left(&r))
        return SY_PARSE_BAD;              /* checked before anything is sized from it */
    const uint8_t *types = sy_rd_take(&r, (size_t)n);
    uint64_t meta_len = rd_lenenc(&r);
    const uint8_t *meta = rd_take64(&r, meta_len);
    const uint8_t *nulls = sy_rd_take(&r, ((size_t)n + 7) / 8);
    if (r.bad)
        return SY_PARSE_BAD;
    out->n_columns = (uint32_t)n;
    out->types = malloc(n);
    out->meta = calloc(n, sizeof *out->meta);
    out->nullable = malloc(n);
    out->is_unsigned = calloc(n, 1);
    out->charset = calloc(n, sizeof *out->charset);
    out->is_key = calloc(n, 1);
    if (!out->types || !out->meta || !out->nullable || !out->is_unsigned || !out->charset || !out->is_key)
        goto bad;
    struct sy_rd m = sy_rd_make(meta, (size_t)meta_len);
    for (uint32_t i = 0; i < out->n_columns; i++) {
        if (!column_meta(types[i], &m, &out->types[i], &out->meta[i]))
            goto bad;
        out->nullable[i] = bit_lsb(nulls, i);
    }
    while (sy_rd_left(&r) > 0) {
        uint8_t type = sy_rd_u8(&r);
        uint64_t len = rd_lenenc(&r);
        const uint8_t *val = rd_take64(&r, len);
        if (val == NULL)
            goto bad;
        struct sy_rd v = sy_rd_make(val, (size_t)len);
        if (!table_map_tlv(out, type, &v) || v.bad)
            goto bad;
    }
    return SY_PARSE_OK;
bad:
    sy_binlog_table_map_free(out);
    return SY_PARSE_BAD;
}

/* ---- row values -------------------------------------------------------------------------------- */

void sy_binlog_row_iter_init(struct sy_binlog_row_iter *it, const struct sy_binlog_rows *rows,
                             const struct sy_binlog_table_map *tm)
{
    memset(it, 0, sizeof *it);
    it->rows = rows;
    it->tm = tm;
}

void sy_binlog_row_iter_fini(struct sy_binlog_row_iter *it)
{
    if (it == NULL)
        return;
    free(it->scratch);
    it->scratch = NULL;
    it->scratch_len = it->scratch_cap = 0;
}

/* The most text one row can need, so that the scratch is sized once and pointers into it stay valid
 * for the whole row. */
static size_t row_text_bound(const struct sy_binlog_table_map *tm)
{
    size_t total = 1;
    for (uint32_t i = 0; i < tm->n_columns; i++) {
        size_t need = 0;
        switch (tm->types[i]) {
        case T_NEWDECIMAL:
            need = TEXT_DECIMAL_MAX;
            break;
        case T_DATE: case T_NEWDATE: case T_TIME: case T_TIME2: case T_DATETIME: case T_DATETIME2:
        case T_TIMESTAMP: case T_TIMESTAMP2:
            need = TEXT_TEMPORAL_MAX;
            break;
        case T_SET:
            if (tm->enum_names != NULL && tm->enum_names[i] != NULL)
                for (char **nm = tm->enum_names[i]; *nm != NULL; nm++)
                    need += strlen(*nm) + 1;
            break;
        default:
            break;
        }
        total += 2 * need;                 /* UPDATE rows carry two images */
    }
    return total;
}

static int row_fail(struct sy_binlog_row_iter *it, uint32_t col, const char *what)
{
    const struct sy_binlog_table_map *tm = it->tm;
    if (tm != NULL && col < tm->n_columns)
        snprintf(it->err, sizeof it->err, "column %u (%s, type %u): %s", col,
                 tm->names && tm->names[col] ? tm->names[col] : "?", tm->types[col], what);
    else
        snprintf(it->err, sizeof it->err, "%s", what);
    return -1;
}

/* Text goes to the scratch; row_text_bound() reserved room for it. */
static int put_text(struct sy_binlog_row_iter *it, struct sy_value *v, enum sy_value_type type, const char *s,
                    size_t len)
{
    if (it->scratch_cap - it->scratch_len < len)
        return -1;
    memcpy(it->scratch + it->scratch_len, s, len);
    v->type = type;
    v->p = it->scratch + it->scratch_len;
    v->len = len;
    it->scratch_len += len;
    return 0;
}

static void set_int(struct sy_value *v, uint64_t u, size_t nbytes, bool is_unsigned)
{
    if (is_unsigned) {
        v->type = SY_VAL_UINT;
        v->u = u;
        return;
    }
    if (nbytes < 8 && (u >> (8 * nbytes - 1)) & 1)
        u |= ~(uint64_t)0 << (8 * nbytes);
    v->type = SY_VAL_INT;
    v->i = u > (uint64_t)INT64_MAX ? -(int64_t)(~u) - 1 : (int64_t)u;
}

static const uint32_t pow10_u32[10] = { 1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000,
                                        1000000000 };

/* MySQL's binary DECIMAL (decimal2bin): groups of 9 digits in 4 bytes, the partial groups at the
 * outer ends in 1-4 bytes, big-endian; the first byte's top bit inverted; negatives all inverted. */
static bool decimal_text(const uint8_t *src, unsigned prec, unsigned scale, char *out, size_t *out_len)
{
    static const unsigned dig2bytes[10] = { 0, 1, 1, 2, 2, 3, 3, 4, 4, 4 };
    unsigned intg = prec - scale, intg0 = intg / 9, intg0x = intg % 9, frac0 = scale / 9, frac0x = scale % 9;
    size_t size = intg0 * 4 + dig2bytes[intg0x] + frac0 * 4 + dig2bytes[frac0x];
    uint8_t buf[40];
    memcpy(buf, src, size);
    bool neg = !(buf[0] & 0x80);
    buf[0] ^= 0x80;
    if (neg)
        for (size_t k = 0; k < size; k++)
            buf[k] ^= 0xFF;
    char digits[80];
    size_t nd = 0, pos = 0;
    unsigned groups[4] = { intg0x, 9 * intg0, 9 * frac0, frac0x };   /* digit counts, in order */
    for (int g = 0; g < 4; g++) {
        unsigned ndig = groups[g];
        if (ndig == 0)
            continue;
        unsigned per = (g == 1 || g == 2) ? 9 : ndig;
        for (unsigned done = 0; done < ndig; done += per) {
            size_t nb = dig2bytes[per];
            uint32_t val = (uint32_t)be_uint(buf + pos, nb);
            pos += nb;
            if (val >= pow10_u32[per])
                return false;
            for (unsigned d = per; d > 0; d--) {
                digits[nd + d - 1] = (char)('0' + val % 10);
                val /= 10;
            }
            nd += per;
        }
    }
    size_t o = 0, first = 0;
    bool nonzero = false;
    for (size_t k = 0; k < nd; k++)
        nonzero = nonzero || digits[k] != '0';
    if (neg && nonzero)
        out[o++] = '-';
    while (first + 1 < intg && digits[first] == '0')   /* keep one zero before the point */
        first++;
    if (intg == 0)
        out[o++] = '0';
    for (size_t k = first; k < intg; k++)
        out[o++] = digits[k];
    if (scale > 0) {
        out[o++] = '.';
        for (size_t k = intg; k < nd; k++)
            out[o++] = digits[k];
    }
    *out_len = o;
    return true;
}

/* Days since 1970-01-01 to a civil date (H. Hinnant's algorithm): TIMESTAMP to UTC without libc. */
static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static size_t frac_text(char *p, size_t cap, unsigned fsp, uint32_t usec)
{
    if (fsp == 0)
        return 0;
    int k = snprintf(p, cap, ".%0*u", (int)fsp, usec / pow10_u32[6 - fsp]);
    return k > 0 && (size_t)k < cap ? (size_t)k : 0;
}

static int temporal(struct sy_binlog_row_iter *it, struct sy_value *v, const char *fmt_buf, int k)
{
    if (k <= 0 || k >= TEXT_TEMPORAL_MAX)
        return -1;
    return put_text(it, v, SY_VAL_TEMPORAL, fmt_buf, (size_t)k);
}

static int timestamp_text(struct sy_binlog_row_iter *it, struct sy_value *v, uint32_t secs, uint32_t usec,
                          unsigned fsp)
{
    char t[TEXT_TEMPORAL_MAX];
    int k;
    if (secs == 0 && usec == 0) {
        k = snprintf(t, sizeof t, "0000-00-00 00:00:00");
    } else {
        int64_t y;
        unsigned mo, d, rem = secs % 86400;
        civil_from_days(secs / 86400, &y, &mo, &d);
        k = snprintf(t, sizeof t, "%04lld-%02u-%02u %02u:%02u:%02u", (long long)y, mo, d, rem / 3600,
                     rem / 60 % 60, rem % 60);
    }
    if (k > 0 && (size_t)k < sizeof t)
        k += (int)frac_text(t + k, sizeof t - (size_t)k, fsp, usec);
    return temporal(it, v, t, k);
}

static int datetime_text(struct sy_binlog_row_iter *it, struct sy_value *v, uint64_t ymd_part, unsigned hour,
                         unsigned minute, unsigned second, uint32_t usec, unsigned fsp)
{
    char t[TEXT_TEMPORAL_MAX];
    uint64_t y = ymd_part / 10000, mo = ymd_part / 100 % 100, d = ymd_part % 100;
    int k = snprintf(t, sizeof t, "%04llu-%02llu-%02llu %02u:%02u:%02u", (unsigned long long)y,
                     (unsigned long long)mo, (unsigned long long)d, hour, minute, second);
    if (k > 0 && (size_t)k < sizeof t)
        k += (int)frac_text(t + k, sizeof t - (size_t)k, fsp, usec);
    return temporal(it, v, t, k);
}

static int time_text(struct sy_binlog_row_iter *it, struct sy_value *v, bool neg, unsigned hour, unsigned minute,
                     unsigned second, uint32_t usec, unsigned fsp)
{
    char t[TEXT_TEMPORAL_MAX];
    int k = snprintf(t, sizeof t, "%s%02u:%02u:%02u", neg ? "-" : "", hour, minute, second);
    if (k > 0 && (size_t)k < sizeof t)
        k += (int)frac_text(t + k, sizeof t - (size_t)k, fsp, usec);
    return temporal(it, v, t, k);
}

/* Fractional seconds of the *2 temporal types: (fsp + 1) / 2 big-endian bytes. */
static uint32_t frac_bytes(unsigned fsp)
{
    return (fsp + 1) / 2;
}

static int decode_time2(struct sy_binlog_row_iter *it, uint32_t col, struct sy_rd *r, unsigned fsp,
                        struct sy_value *v)
{
    const uint8_t *p = sy_rd_take(r, 3 + frac_bytes(fsp));
    if (p == NULL)
        return row_fail(it, col, "truncated TIME");
    /* compat56.cc my_time_packed_from_binary: a 24-bit offset integer part (sign, hour 10 bits,
     * minute 6, second 6) and a fraction stored reversed for negative values. */
    int64_t intpart = (int64_t)be_uint(p, 3) - 0x800000;
    int64_t packed;
    if (fsp == 0) {
        packed = intpart * (1 << 24);
    } else if (fsp <= 2) {
        int64_t frac = p[3];
        if (intpart < 0 && frac) {
            intpart++;
            frac -= 0x100;
        }
        packed = intpart * (1 << 24) + frac * 10000;
    } else if (fsp <= 4) {
        int64_t frac = (int64_t)be_uint(p + 3, 2);
        if (intpart < 0 && frac) {
            intpart++;
            frac -= 0x10000;
        }
        packed = intpart * (1 << 24) + frac * 100;
    } else {
        packed = (int64_t)be_uint(p, 6) - 0x800000000000LL;
    }
    bool neg = packed < 0;
    uint64_t a = neg ? (uint64_t)0 - (uint64_t)packed : (uint64_t)packed;
    uint64_t hms = a >> 24;
    uint32_t usec = (uint32_t)(a % (1 << 24));
    if (usec > 999999)
        return row_fail(it, col, "bad TIME fraction");
    return time_text(it, v, neg, (unsigned)(hms >> 12) % (1 << 10), (unsigned)(hms >> 6) % (1 << 6),
                     (unsigned)hms % (1 << 6), usec, fsp);
}

static int decode_datetime2(struct sy_binlog_row_iter *it, uint32_t col, struct sy_rd *r, unsigned fsp,
                            struct sy_value *v)
{
    const uint8_t *p = sy_rd_take(r, 5 + frac_bytes(fsp));
    if (p == NULL)
        return row_fail(it, col, "truncated DATETIME");
    /* 40 bits offset by 2^39: sign, year*13+month (17 bits), day 5, hour 5, minute 6, second 6. */
    int64_t intpart = (int64_t)be_uint(p, 5) - 0x8000000000LL;
    uint32_t usec = (uint32_t)(fsp == 0 ? 0 : be_uint(p + 5, frac_bytes(fsp)) * pow10_u32[6 - 2 * frac_bytes(fsp)]);
    if (intpart < 0 || usec > 999999)
        return row_fail(it, col, "bad DATETIME");
    uint64_t ymdhms = (uint64_t)intpart, ymd = ymdhms >> 17, ym = ymd >> 5, hms = ymdhms % (1 << 17);
    unsigned hour = (unsigned)(hms >> 12), minute = (unsigned)(hms >> 6) % 64, second = (unsigned)hms % 64;
    if (hour > 23 || minute > 59 || second > 59)
        return row_fail(it, col, "bad DATETIME");
    return datetime_text(it, v, (ym / 13) * 10000 + (ym % 13) * 100 + ymd % 32, hour, minute, second, usec, fsp);
}

static int decode_timestamp2(struct sy_binlog_row_iter *it, uint32_t col, struct sy_rd *r, unsigned fsp,
                             struct sy_value *v)
{
    const uint8_t *p = sy_rd_take(r, 4 + frac_bytes(fsp));
    if (p == NULL)
        return row_fail(it, col, "truncated TIMESTAMP");
    uint32_t secs = (uint32_t)be_uint(p, 4);
    uint32_t usec = (uint32_t)(fsp == 0 ? 0 : be_uint(p + 4, frac_bytes(fsp)) * pow10_u32[6 - 2 * frac_bytes(fsp)]);
    if (usec > 999999)
        return row_fail(it, col, "bad TIMESTAMP fraction");
    return timestamp_text(it, v, secs, usec, fsp);
}

/* The bytes of a string-like value: a 1-4 byte little-endian length, then the bytes. */
static int take_string(struct sy_binlog_row_iter *it, uint32_t col, struct sy_rd *r, size_t len_bytes,
                       uint64_t max_len, struct sy_value *v)
{
    uint64_t len = sy_rd_uNle(r, len_bytes);
    if (r->bad)
        return row_fail(it, col, "truncated length");
    if (len > max_len)
        return row_fail(it, col, "longer than the column");
    v->p = rd_take64(r, len);
    if (v->p == NULL)
        return row_fail(it, col, "truncated value");
    v->len = (size_t)len;
    return 0;
}

static void string_type(const struct sy_binlog_table_map *tm, uint32_t col, struct sy_value *v)
{
    uint16_t cs = tm->charset[col];
    if (cs == CHARSET_BINARY) {
        v->type = SY_VAL_BLOB;
    } else {
        v->type = SY_VAL_STRING;
        v->charset = cs;
    }
}

static int decode_enum_set(struct sy_binlog_row_iter *it, uint32_t col, struct sy_rd *r, struct sy_value *v)
{
    const struct sy_binlog_table_map *tm = it->tm;
    uint8_t type = tm->types[col];
    uint64_t u = sy_rd_uNle(r, tm->meta[col]);
    if (r->bad)
        return row_fail(it, col, "truncated ENUM/SET");
    char **names = tm->enum_names ? tm->enum_names[col] : NULL;
    if (names == NULL) {
        v->type = SY_VAL_UINT;
        v->u = u;
        return 0;
    }
    v->charset = tm->charset[col];
    if (type == T_ENUM) {
        v->type = SY_VAL_STRING;
        if (u == 0) {                      /* the "" of an invalid value inserted in non-strict mode */
            v->p = (const uint8_t *)"";
            v->len = 0;
            return 0;
        }
        for (uint64_t k = 1; k < u; k++)
            if (names[k - 1] == NULL)
                return row_fail(it, col, "ENUM index beyond its values");
        if (names[u - 1] == NULL)
            return row_fail(it, col, "ENUM index beyond its values");
        v->p = (const uint8_t *)names[u - 1];
        v->len = strlen(names[u - 1]);
        return 0;
    }
    size_t start = it->scratch_len;
    unsigned k = 0;
    for (; names[k] != NULL && k < 64; k++) {
        if (!(u >> k & 1))
            continue;
        size_t len = strlen(names[k]);
        if (it->scratch_cap - it->scratch_len < len + 1)
            return row_fail(it, col, "scratch");
        if (it->scratch_len > start)
            it->scratch[it->scratch_len++] = ',';
        memcpy(it->scratch + it->scratch_len, names[k], len);
        it->scratch_len += len;
    }
    if (k < 64 && (u >> k) != 0)
        return row_fail(it, col, "SET bit beyond its members");
    v->type = SY_VAL_STRING;
    v->p = it->scratch + start;
    v->len = it->scratch_len - start;
    return 0;
}

static int decode_value(struct sy_binlog_row_iter *it, uint32_t col, struct sy_rd *r, struct sy_value *v)
{
    const struct sy_binlog_table_map *tm = it->tm;
    uint16_t meta = tm->meta[col];
    bool is_unsigned = tm->is_unsigned[col];
    switch (tm->types[col]) {
    case T_TINY: set_int(v, sy_rd_uNle(r, 1), 1, is_unsigned); break;
    case T_SHORT: set_int(v, sy_rd_uNle(r, 2), 2, is_unsigned); break;
    case T_INT24: set_int(v, sy_rd_uNle(r, 3), 3, is_unsigned); break;
    case T_LONG: set_int(v, sy_rd_uNle(r, 4), 4, is_unsigned); break;
    case T_LONGLONG: set_int(v, sy_rd_uNle(r, 8), 8, is_unsigned); break;
    case T_FLOAT: {
        uint32_t bits = sy_rd_u32le(r);
        float f;
        memcpy(&f, &bits, sizeof f);
        v->type = SY_VAL_FLOAT;
        v->d = f;
        break;
    }
    case T_DOUBLE: {
        uint64_t bits = sy_rd_uNle(r, 8);
        memcpy(&v->d, &bits, sizeof v->d);
        v->type = SY_VAL_DOUBLE;
        break;
    }
    case T_NULL:
        break;
    case T_YEAR: {
        uint8_t y = sy_rd_u8(r);
        v->type = SY_VAL_UINT;
        v->u = y == 0 ? 0 : 1900u + y;
        break;
    }
    case T_NEWDECIMAL: {
        unsigned prec = meta >> 8, scale = meta & 0xFF;
        static const unsigned dig2bytes[10] = { 0, 1, 1, 2, 2, 3, 3, 4, 4, 4 };
        size_t size = (prec - scale) / 9 * 4 + dig2bytes[(prec - scale) % 9] + scale / 9 * 4 + dig2bytes[scale % 9];
        const uint8_t *p = sy_rd_take(r, size);
        char t[TEXT_DECIMAL_MAX];
        size_t len;
        if (p == NULL)
            return row_fail(it, col, "truncated DECIMAL");
        if (!decimal_text(p, prec, scale, t, &len))
            return row_fail(it, col, "bad DECIMAL digits");
        if (put_text(it, v, SY_VAL_DECIMAL, t, len) != 0)
            return row_fail(it, col, "scratch");
        return 0;
    }
    case T_DATE:
    case T_NEWDATE: {
        uint32_t d = sy_rd_u24le(r);
        char t[TEXT_TEMPORAL_MAX];
        if (r->bad)
            break;
        int k = snprintf(t, sizeof t, "%04u-%02u-%02u", d >> 9, (d >> 5) & 15, d & 31);
        return temporal(it, v, t, k) == 0 ? 0 : row_fail(it, col, "scratch");
    }
    case T_TIME: {                        /* old: signed HHMMSS as an integer */
        uint32_t u = sy_rd_u24le(r);
        if (r->bad)
            break;
        int32_t s = (u & 0x800000) ? (int32_t)u - 0x1000000 : (int32_t)u;
        uint32_t a = (uint32_t)(s < 0 ? -s : s);
        return time_text(it, v, s < 0, a / 10000, a / 100 % 100, a % 100, 0, 0) == 0 ? 0
                                                                                    : row_fail(it, col, "scratch");
    }
    case T_DATETIME: {                    /* old: YYYYMMDDhhmmss as an integer */
        uint64_t u = sy_rd_uNle(r, 8);
        if (r->bad)
            break;
        uint64_t t = u % 1000000;
        return datetime_text(it, v, u / 1000000, (unsigned)(t / 10000), (unsigned)(t / 100 % 100), (unsigned)(t % 100),
                             0, 0) == 0 ? 0 : row_fail(it, col, "scratch");
    }
    case T_TIMESTAMP: {                   /* old: seconds, little-endian */
        uint32_t secs = sy_rd_u32le(r);
        if (r->bad)
            break;
        return timestamp_text(it, v, secs, 0, 0) == 0 ? 0 : row_fail(it, col, "scratch");
    }
    case T_TIME2: return decode_time2(it, col, r, meta, v);
    case T_DATETIME2: return decode_datetime2(it, col, r, meta, v);
    case T_TIMESTAMP2: return decode_timestamp2(it, col, r, meta, v);
    case T_BIT: {
        size_t bytes = (size_t)(meta >> 8) + ((meta & 0xFF) ? 1 : 0);
        const uint8_t *p = sy_rd_take(r, bytes);
        if (p == NULL)
            break;
        v->type = SY_VAL_UINT;
        v->u = be_uint(p, bytes);
        break;
    }
    case T_VARCHAR:
    case T_VAR_STRING:
        if (take_string(it, col, r, meta < 256 ? 1 : 2, meta, v) != 0)
            return -1;
        string_type(tm, col, v);
        return 0;
    case T_STRING:
        if (take_string(it, col, r, meta > 255 ? 2 : 1, meta, v) != 0)
            return -1;
        string_type(tm, col, v);
        return 0;
    case T_BLOB:
        if (take_string(it, col, r, meta, UINT64_MAX, v) != 0)
            return -1;
        string_type(tm, col, v);
        return 0;
    case T_GEOMETRY:
    case T_JSON:                          /* MySQL's binary JSON: bytes (MariaDB's JSON is a LONGTEXT) */
        if (take_string(it, col, r, meta, UINT64_MAX, v) != 0)
            return -1;
        v->type = SY_VAL_BLOB;
        return 0;
    case T_ENUM:
    case T_SET:
        return decode_enum_set(it, col, r, v);
    default:                              /* old DECIMAL: its width is not in the binlog */
        return row_fail(it, col, "unsupported column type");
    }
    if (r->bad)
        return row_fail(it, col, "truncated value");
    return 0;
}

/* One row image: a NULL bitmap over the present columns, then the non-NULL values in column order. */
static int decode_image(struct sy_binlog_row_iter *it, struct sy_rd *r, const uint8_t *present,
                        struct sy_value *out)
{
    const struct sy_binlog_rows *rows = it->rows;
    uint32_t n_present = 0;
    for (uint32_t i = 0; i < rows->n_columns; i++)
        n_present += bit_lsb(present, i);
    const uint8_t *nulls = sy_rd_take(r, (n_present + 7) / 8);
    if (nulls == NULL)
        return row_fail(it, UINT32_MAX, "truncated NULL bitmap");
    uint32_t j = 0;
    for (uint32_t i = 0; i < it->tm->n_columns; i++) {
        struct sy_value scratch_v, *v = out ? &out[i] : &scratch_v;
        memset(v, 0, sizeof *v);
        if (i >= rows->n_columns || !bit_lsb(present, i))
            continue;
        if (bit_lsb(nulls, j++))
            continue;
        if (decode_value(it, i, r, v) != 0)
            return -1;
    }
    return 0;
}

enum sy_parse sy_binlog_row_next(struct sy_binlog_row_iter *it, struct sy_value *before, struct sy_value *after)
{
    if (it->err[0] != '\0')
        return SY_PARSE_BAD;              /* sticky */
    const struct sy_binlog_rows *rows = it->rows;
    const struct sy_binlog_table_map *tm = it->tm;
    if (rows == NULL || tm == NULL || tm->types == NULL) {
        row_fail(it, UINT32_MAX, "no rows event or table map");
        return SY_PARSE_BAD;
    }
    if (it->off >= rows->rows_len)
        return SY_PARSE_AGAIN;
    if (it->scratch == NULL) {            /* first row: check the pairing, size the scratch once */
        if (rows->table_id != tm->table_id) {
            row_fail(it, UINT32_MAX, "rows event for another table id");
            return SY_PARSE_BAD;
        }
        if (rows->n_columns != tm->n_columns) {   /* else full_image would hide the missing columns */
            row_fail(it, UINT32_MAX, "rows event and table map differ in column count");
            return SY_PARSE_BAD;
        }
        if (((rows->op == SY_ROW_UPDATE || rows->op == SY_ROW_DELETE) && rows->present_before == NULL) ||
            ((rows->op == SY_ROW_UPDATE || rows->op == SY_ROW_INSERT) && rows->present_after == NULL) ||
            rows->op < SY_ROW_INSERT || rows->op > SY_ROW_DELETE) {
            row_fail(it, UINT32_MAX, "rows event without its column bitmaps");
            return SY_PARSE_BAD;
        }
        size_t cap = row_text_bound(tm);
        if ((it->scratch = malloc(cap)) == NULL) {
            row_fail(it, UINT32_MAX, "out of memory");
            return SY_PARSE_BAD;
        }
        it->scratch_cap = cap;
    }
    it->scratch_len = 0;
    struct sy_rd r = sy_rd_make(rows->rows_p + it->off, rows->rows_len - it->off);
    int rc = 0;
    if (rows->op == SY_ROW_UPDATE || rows->op == SY_ROW_DELETE)
        rc = decode_image(it, &r, rows->present_before, before);
    if (rc == 0 && (rows->op == SY_ROW_UPDATE || rows->op == SY_ROW_INSERT))
        rc = decode_image(it, &r, rows->present_after, after);
    if (rc == 0 && r.off == 0)
        rc = row_fail(it, UINT32_MAX, "empty row image");
    if (rc != 0) {
        if (it->err[0] == '\0')
            row_fail(it, UINT32_MAX, "malformed row");
        return SY_PARSE_BAD;
    }
    it->off += r.off;
    return SY_PARSE_OK;
}
