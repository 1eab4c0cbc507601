/* Session tracking for SQL Server sessions (see tds_track.h): pure decoders of TYPE_INFO/values, the server's
 * token stream and the client's requests, a batch-text scanner for what a session changes with T-SQL, and
 * the tracked state with what restores it on another server. Nothing here trusts a length from the wire:
 * every read goes through the checked cursor (core/rd.h); a short span is AGAIN, a thing not known is BAD. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rd.h"
#include "proxy/tds_track.h"

/* ---- types ------------------------------------------------------------------------------------------ */

/* Reads TYPE_INFO at r into t. `colmeta`: a result column (TEXT/NTEXT/IMAGE then carry a table name and
 * text pointers in rows). *bad is set for a type not known (r->bad for a cut span). */
static void type_read(struct sy_rd *r, struct sy_tds_type *t, bool colmeta, bool *bad)
{
    memset(t, 0, sizeof *t);
    t->id = sy_rd_u8(r);
    if (r->bad)
        return;
    switch (t->id) {
    case 0x1F: t->fixed_len = 0; return;                           /* NULLTYPE */
    case 0x30: case 0x32: t->fixed_len = 1; return;               /* INT1, BIT */
    case 0x34: t->fixed_len = 2; return;                           /* INT2 */
    case 0x38: case 0x3A: case 0x3B: case 0x7A: t->fixed_len = 4; return; /* INT4 DATETIM4 FLT4 MONEY4 */
    case 0x3C: case 0x3D: case 0x3E: case 0x7F: t->fixed_len = 8; return; /* MONEY DATETIME FLT8 INT8 */
    case 0x24: case 0x26: case 0x68: case 0x6D: case 0x6E: case 0x6F: /* GUID INTN BITN FLTN MONEYN DATETIMN */
    case 0x2F: case 0x27: case 0x2D: case 0x25:                   /* CHAR VARCHAR BINARY VARBINARY */
        t->len_size = 1;
        (void)sy_rd_u8(r);                                        /* max length */
        return;
    case 0x37: case 0x3F: case 0x6A: case 0x6C:                   /* DECIMAL NUMERIC DECIMALN NUMERICN */
        t->len_size = 1;
        (void)sy_rd_take(r, 3);                                   /* max length, precision, scale */
        return;
    case 0x28:                                                    /* DATEN */
        t->len_size = 1;
        return;
    case 0x29: case 0x2A: case 0x2B:                              /* TIMEN DATETIME2N DATETIMEOFFSETN */
        t->len_size = 1;
        (void)sy_rd_u8(r);                                        /* scale */
        return;
    case 0xA5: case 0xAD: case 0xA7: case 0xAF: case 0xE7: case 0xEF: { /* big (var)binary/char, n(var)char */
        uint16_t max = sy_rd_u16le(r);
        if (t->id == 0xA7 || t->id == 0xAF || t->id == 0xE7 || t->id == 0xEF)
            (void)sy_rd_take(r, 5);                               /* collation */
        t->len_size = (max == 0xFFFF && (t->id == 0xA5 || t->id == 0xA7 || t->id == 0xE7)) ? 8 : 2;
        return;
    }
    case 0x22: case 0x23: case 0x63:                              /* IMAGE TEXT NTEXT */
        (void)sy_rd_u32le(r);
        if (t->id != 0x22)
            (void)sy_rd_take(r, 5);
        t->len_size = 4;
        if (colmeta) {
            t->textptr = true;
            unsigned parts = sy_rd_u8(r);                         /* table name: parts of US_VARCHAR */
            for (unsigned i = 0; i < parts && !r->bad; i++)
                (void)sy_rd_take(r, 2u * sy_rd_u16le(r));
        }
        return;
    case 0x62:                                                    /* SSVARIANT */
        (void)sy_rd_u32le(r);
        t->len_size = 4;
        return;
    case 0xF1:                                                    /* XML */
        if (sy_rd_u8(r) != 0) {
            (void)sy_rd_take(r, 2u * sy_rd_u8(r));
            (void)sy_rd_take(r, 2u * sy_rd_u8(r));
            (void)sy_rd_take(r, 2u * sy_rd_u16le(r));
        }
        t->len_size = 8;
        return;
    default:
        *bad = true;                                              /* UDT, TVP, JSON, vector, ...: not known */
        return;
    }
}

/* Skips (or points at) one value of type t. *val, *vlen: the bytes of a non-PLP value (NULL when NULL). */
static void value_read(struct sy_rd *r, const struct sy_tds_type *t, const uint8_t **val, size_t *vlen)
{
    *val = NULL;
    *vlen = 0;
    uint64_t len;
    switch (t->len_size) {
    case 0:
        len = t->fixed_len;
        break;
    case 1:
        len = sy_rd_u8(r);
        break;
    case 2:
        len = sy_rd_u16le(r);
        if (len == 0xFFFF)
            return;
        break;
    case 4:
        if (t->textptr) {
            unsigned tp = sy_rd_u8(r);
            if (tp == 0 || r->bad)
                return;                                           /* NULL */
            (void)sy_rd_take(r, tp + 8u);                         /* text pointer, timestamp */
        }
        len = sy_rd_u32le(r);
        if (len == 0xFFFFFFFFu)
            return;
        break;
    default: {                                                    /* PLP: total, then chunks up to a 0 */
        uint64_t total = sy_rd_uNle(r, 8);
        if (total == UINT64_MAX || r->bad)
            return;
        for (;;) {
            uint32_t chunk = sy_rd_u32le(r);
            if (r->bad || chunk == 0)
                return;
            (void)sy_rd_take(r, chunk);
        }
    }
    }
    const uint8_t *b = sy_rd_take(r, (size_t)len);
    if (b != NULL && (len > 0 || t->len_size == 0)) {
        *val = b;
        *vlen = (size_t)len;
    }
}

/* ---- the server's token stream --------------------------------------------------------------------- */

void sy_tds_rsp_scan_fini(struct sy_tds_rsp_scan *sc)
{
    free(sc->cols);
    memset(sc, 0, sizeof *sc);
}

static enum sy_parse colmetadata_read(struct sy_tds_rsp_scan *sc, struct sy_rd *r, char *err, size_t errlen)
{
    uint16_t count = sy_rd_u16le(r);
    if (r->bad)
        return SY_PARSE_AGAIN;
    if (count == 0xFFFF) {                                        /* no metadata */
        sc->ncols = 0;
        return SY_PARSE_OK;
    }
    if (count > SY_TDS_COLS_MAX) {
        snprintf(err, errlen, "COLMETADATA with %u columns", (unsigned)count);
        return SY_PARSE_BAD;
    }
    if (count > sc->cap) {
        struct sy_tds_type *c = realloc(sc->cols, (size_t)count * sizeof *c);
        if (c == NULL) {
            snprintf(err, errlen, "out of memory for %u columns", (unsigned)count);
            return SY_PARSE_BAD;
        }
        sc->cols = c;
        sc->cap = count;
    }
    sc->ncols = 0;
    for (unsigned i = 0; i < count; i++) {
        bool bad = false;
        (void)sy_rd_take(r, 4);                                   /* user type */
        uint16_t flags = sy_rd_u16le(r);
        if (!r->bad && (flags & 0x0800)) {
            snprintf(err, errlen, "encrypted column (Always Encrypted) not tracked");
            return SY_PARSE_BAD;
        }
        type_read(r, &sc->cols[i], true, &bad);
        if (bad) {
            snprintf(err, errlen, "column type 0x%02x not known", (unsigned)sc->cols[i].id);
            return SY_PARSE_BAD;
        }
        (void)sy_rd_take(r, 2u * sy_rd_u8(r));                    /* column name */
        if (r->bad)
            return SY_PARSE_AGAIN;
    }
    sc->ncols = count;
    return SY_PARSE_OK;
}

static enum sy_parse row_read(const struct sy_tds_rsp_scan *sc, struct sy_rd *r, bool nbc)
{
    const uint8_t *bitmap = NULL;
    if (nbc && (bitmap = sy_rd_take(r, (sc->ncols + 7) / 8)) == NULL)
        return SY_PARSE_AGAIN;
    for (size_t i = 0; i < sc->ncols; i++) {
        if (bitmap && (bitmap[i / 8] >> (i % 8) & 1))
            continue;
        const uint8_t *v;
        size_t vl;
        value_read(r, &sc->cols[i], &v, &vl);
        if (r->bad)
            return SY_PARSE_AGAIN;
    }
    return SY_PARSE_OK;
}

static enum sy_parse returnvalue_read(struct sy_rd *r, struct sy_tds_rsp_ev *ev, char *err, size_t errlen)
{
    (void)sy_rd_u16le(r);                                         /* ordinal */
    (void)sy_rd_take(r, 2u * sy_rd_u8(r));                        /* name */
    (void)sy_rd_take(r, 1 + 4 + 2);                               /* status, user type, flags */
    struct sy_tds_type t;
    bool bad = false;
    type_read(r, &t, false, &bad);
    if (bad) {
        snprintf(err, errlen, "RETURNVALUE type 0x%02x not known", (unsigned)t.id);
        return SY_PARSE_BAD;
    }
    const uint8_t *v;
    size_t vl;
    value_read(r, &t, &v, &vl);
    if (r->bad)
        return SY_PARSE_AGAIN;
    if (v != NULL && vl == 4 && (t.id == 0x26 || t.id == 0x38)) {
        ev->rv_int = true;
        ev->rv_value = (int32_t)((uint32_t)v[0] | (uint32_t)v[1] << 8 | (uint32_t)v[2] << 16 | (uint32_t)v[3] << 24);
    }
    return SY_PARSE_OK;
}

enum sy_parse sy_tds_rsp_step(struct sy_tds_rsp_scan *sc, const uint8_t *p, size_t n, size_t *used,
                              struct sy_tds_rsp_ev *ev, char *err, size_t errlen)
{
    memset(ev, 0, sizeof *ev);
    if (n == 0)
        return SY_PARSE_AGAIN;
    struct sy_rd r = sy_rd_make(p + 1, n - 1);
    enum sy_parse pr = SY_PARSE_OK;
    ev->token = p[0];
    switch (p[0]) {
    case 0x81:                                                    /* COLMETADATA */
        pr = colmetadata_read(sc, &r, err, errlen);
        break;
    case 0xD1:                                                    /* ROW */
    case 0xD2:                                                    /* NBCROW */
        pr = row_read(sc, &r, p[0] == 0xD2);
        break;
    case 0xAC:                                                    /* RETURNVALUE */
        ev->kind = SY_TRSP_RETURNVALUE;
        pr = returnvalue_read(&r, ev, err, errlen);
        break;
    case 0xA4: case 0xA5:                                         /* TABNAME, COLINFO */
        (void)sy_rd_take(&r, sy_rd_u16le(&r));
        break;
    case 0xE4:                                                    /* SESSIONSTATE */
        (void)sy_rd_take(&r, sy_rd_u32le(&r));
        break;
    case 0x78:                                                    /* OFFSET */
        (void)sy_rd_take(&r, 4);
        break;
    default: {
        struct sy_tds_token t;
        size_t u = 0;
        pr = sy_tds_token_next(p, n, &t, &u, err, errlen);
        if (pr != SY_PARSE_OK)
            return pr;
        *used = u;
        ev->tok = t;
        if (t.type == SY_TDS_TOK_ENVCHANGE) {
            ev->kind = SY_TRSP_ENVCHANGE;
            if (sy_tds_envchange_parse(&t, &ev->env) != SY_PARSE_OK) {
                snprintf(err, errlen, "malformed ENVCHANGE");
                return SY_PARSE_BAD;
            }
        } else if (t.type == SY_TDS_TOK_ERROR) {
            struct sy_rd e = sy_rd_make(t.body, t.len);
            ev->kind = SY_TRSP_ERROR;
            ev->error = (int32_t)sy_rd_u32le(&e);
        } else if (t.type == SY_TDS_TOK_DONE || t.type == SY_TDS_TOK_DONEPROC || t.type == SY_TDS_TOK_DONEINPROC) {
            ev->kind = SY_TRSP_DONE;
            if (sy_tds_done_parse(&t, &ev->done) != SY_PARSE_OK)
                return SY_PARSE_BAD;
        }
        return SY_PARSE_OK;
    }
    }
    if (pr != SY_PARSE_OK)
        return pr;
    if (r.bad)
        return SY_PARSE_AGAIN;
    *used = 1 + r.off;
    return SY_PARSE_OK;
}

/* ---- the client's requests ----------------------------------------------------------------------- */

static int proc_by_name(const uint8_t *utf16, size_t len)
{
    char name[160];
    sy_tds_utf16_to_utf8(utf16, len, name, sizeof name);
    const char *last = strrchr(name, '.');
    const char *s = last ? last + 1 : name;
    char bare[160];
    size_t k = 0;
    for (; *s && k + 1 < sizeof bare; s++)
        if (*s != '[' && *s != ']')
            bare[k++] = (char)tolower((unsigned char)*s);
    bare[k] = '\0';
    static const struct { const char *name; int proc; } names[] = {
        { "sp_cursoropen", SY_TDS_SP_CURSOROPEN },     { "sp_cursorprepare", SY_TDS_SP_CURSORPREPARE },
        { "sp_cursorexecute", SY_TDS_SP_CURSOREXECUTE }, { "sp_cursorprepexec", SY_TDS_SP_CURSORPREPEXEC },
        { "sp_cursorunprepare", SY_TDS_SP_CURSORUNPREPARE }, { "sp_cursorclose", SY_TDS_SP_CURSORCLOSE },
        { "sp_executesql", SY_TDS_SP_EXECUTESQL },     { "sp_prepare", SY_TDS_SP_PREPARE },
        { "sp_execute", SY_TDS_SP_EXECUTE },           { "sp_prepexec", SY_TDS_SP_PREPEXEC },
        { "sp_unprepare", SY_TDS_SP_UNPREPARE },       { "sp_getapplock", SY_TDS_SP_GETAPPLOCK },
        { "sp_releaseapplock", SY_TDS_SP_RELEASEAPPLOCK },
    };
    for (size_t i = 0; i < SY_ARRAY_LEN(names); i++)
        if (strcmp(bare, names[i].name) == 0)
            return names[i].proc;
    return 0;
}

static bool all_headers_read(struct sy_rd *r, struct sy_tds_req *q, char *err, size_t errlen)
{
    size_t start = r->off;
    uint32_t total = sy_rd_u32le(r);
    if (r->bad || total < 4 || total - 4 > sy_rd_left(r)) {
        snprintf(err, errlen, "ALL_HEADERS length %u outside the request", (unsigned)total);
        return false;
    }
    while (r->off - start < total) {
        size_t h = r->off;
        uint32_t hlen = sy_rd_u32le(r);
        uint16_t htype = sy_rd_u16le(r);
        if (r->bad || hlen < 6 || hlen > total - (h - start)) {
            snprintf(err, errlen, "ALL_HEADERS header length %u outside ALL_HEADERS", (unsigned)hlen);
            return false;
        }
        if (htype == 2 && hlen >= 6 + 8) {                        /* transaction descriptor */
            q->has_desc = true;
            q->desc_off = r->off;
            q->desc = sy_rd_uNle(r, 8);
        }
        r->off = h + hlen;
    }
    q->body_off = r->off;
    return true;
}

static bool rpc_call_read(struct sy_rd *r, struct sy_tds_rpc_call *c, char *err, size_t errlen)
{
    memset(c, 0, sizeof *c);
    uint16_t nl = sy_rd_u16le(r);
    if (nl == 0xFFFF) {
        uint16_t id = sy_rd_u16le(r);
        c->proc = (id >= 2 && id <= 15) ? id : 0;
    } else {
        const uint8_t *name = sy_rd_take(r, 2u * nl);
        if (name)
            c->proc = proc_by_name(name, 2u * nl);
    }
    (void)sy_rd_u16le(r);                                         /* option flags */
    while (sy_rd_left(r) > 0) {
        uint8_t b = r->p[r->off];
        if (b == 0x80 || b == 0xFE || b == 0xFF)                  /* the next call follows */
            break;
        size_t start = r->off;
        (void)sy_rd_take(r, 2u * sy_rd_u8(r));                    /* name */
        (void)sy_rd_u8(r);                                        /* status */
        struct sy_tds_type t;
        bool bad = false;
        type_read(r, &t, false, &bad);
        if (bad) {
            snprintf(err, errlen, "RPC parameter type 0x%02x not known", (unsigned)t.id);
            return false;
        }
        const uint8_t *v;
        size_t vl;
        value_read(r, &t, &v, &vl);
        if (r->bad) {
            snprintf(err, errlen, "RPC parameter cut by the end of the request");
            return false;
        }
        if (c->nparams == 0 && v != NULL && vl == 4 && (t.id == 0x26 || t.id == 0x38)) {
            c->handle_int4 = true;
            c->handle_off = (size_t)(v - r->p);
            c->handle = (int32_t)((uint32_t)v[0] | (uint32_t)v[1] << 8 | (uint32_t)v[2] << 16 | (uint32_t)v[3] << 24);
        }
        if (c->nparams < SY_TDS_RPC_PARAMS)
            c->param[c->nparams] = (struct sy_tds_span_off){ start, r->off - start };
        c->nparams++;
    }
    return !r->bad;
}

enum sy_parse sy_tds_req_parse(const uint8_t *p, size_t n, uint8_t type, struct sy_tds_req *q, char *err,
                               size_t errlen)
{
    memset(q, 0, sizeof *q);
    q->type = type;
    q->tm_request = -1;
    struct sy_rd r = sy_rd_make(p, n);
    if (!all_headers_read(&r, q, err, errlen))
        return SY_PARSE_BAD;
    if (type == SY_TDS_TRANSACTION_MANAGER) {
        q->tm_request = sy_rd_u16le(&r);
        if (r.bad) {
            snprintf(err, errlen, "TRANSACTION_MANAGER request without its type");
            return SY_PARSE_BAD;
        }
    } else if (type == SY_TDS_RPC) {
        while (sy_rd_left(&r) > 0) {
            if (q->n_rpc == SY_TDS_RPC_MAX) {
                q->rpc_more = true;
                break;
            }
            if (!rpc_call_read(&r, &q->rpc[q->n_rpc], err, errlen))
                return SY_PARSE_BAD;
            q->n_rpc++;
            if (sy_rd_left(&r) > 0)
                (void)sy_rd_u8(&r);                               /* batch flag */
        }
    } else if ((n - q->body_off) % 2 != 0) {
        snprintf(err, errlen, "SQL batch text of odd length");
        return SY_PARSE_BAD;
    }
    return SY_PARSE_OK;
}

/* ---- tracked state ---------------------------------------------------------------------------------- */

void sy_tds_track_init(struct sy_tds_track *tr, const char *database, const char *language)
{
    memset(tr, 0, sizeof *tr);
    snprintf(tr->database, sizeof tr->database, "%s", database);
    snprintf(tr->language, sizeof tr->language, "%s", language);
}

static void prep_free(struct sy_tds_prep *p)
{
    free(p->def);
    free(p->handle_param);
}

static void pending_clear(struct sy_tds_track *tr)
{
    for (unsigned i = 0; i < tr->n_pend; i++) {
        free(tr->pend[i].def);
        free(tr->pend[i].handle_param);
    }
    memset(tr->pend, 0, sizeof tr->pend);
    tr->n_pend = tr->pend_at = 0;
}

void sy_tds_track_fini(struct sy_tds_track *tr)
{
    for (size_t i = 0; i < tr->n_preps; i++)
        prep_free(&tr->preps[i]);
    free(tr->preps);
    pending_clear(tr);
    memset(tr, 0, sizeof *tr);
}

void sy_tds_track_lose(struct sy_tds_track *tr, const char *why)
{
    if (tr->lost[0] == '\0')
        snprintf(tr->lost, sizeof tr->lost, "session state not tracked: %s", why);
}

struct sy_tds_prep *sy_tds_track_prep_find(const struct sy_tds_track *tr, int32_t handle)
{
    for (size_t i = 0; i < tr->n_preps; i++)
        if (tr->preps[i].handle == handle)
            return &tr->preps[i];
    return NULL;
}

static void prep_remove(struct sy_tds_track *tr, int32_t handle)
{
    struct sy_tds_prep *p = sy_tds_track_prep_find(tr, handle);
    if (p == NULL)
        return;
    prep_free(p);
    *p = tr->preps[--tr->n_preps];
    tr->gen++;
}

static uint8_t *dup_bytes(const uint8_t *p, size_t n)
{
    uint8_t *d = malloc(n ? n : 1);
    if (d && n)
        memcpy(d, p, n);
    return d;
}

void sy_tds_track_request(struct sy_tds_track *tr, const uint8_t *p, size_t n, const struct sy_tds_req *q)
{
    pending_clear(tr);
    tr->txn_empty = false;                                        /* whatever it does, it may use the transaction */
    tr->req_tm = q->type == SY_TDS_TRANSACTION_MANAGER;
    if (q->type == SY_TDS_SQL_BATCH) {
        sy_tds_track_batch(tr, p + q->body_off, n - q->body_off);
        return;
    }
    if (q->type == SY_TDS_TRANSACTION_MANAGER) {
        if (q->tm_request == 1 || q->tm_request == 6)            /* TM_PROPAGATE_XACT, TM_PROMOTE_XACT */
            tr->distributed = true;
        return;
    }
    if (q->rpc_more)
        sy_tds_track_lose(tr, "more RPC calls in one request than tracked");
    for (unsigned i = 0; i < q->n_rpc; i++) {
        const struct sy_tds_rpc_call *c = &q->rpc[i];
        struct sy_tds_pending *pd = &tr->pend[tr->n_pend++];
        pd->proc = c->proc;
        switch (c->proc) {
        case SY_TDS_SP_PREPARE:
        case SY_TDS_SP_PREPEXEC: {
            /* keep @params and @stmt (and sp_prepare's @options) to prepare it again elsewhere */
            unsigned last = c->proc == SY_TDS_SP_PREPEXEC ? 2 : (c->nparams < 4 ? c->nparams - 1 : 3);
            if (c->nparams < 3) {
                sy_tds_track_lose(tr, "sp_prepare without its parameters");
                break;
            }
            size_t from = c->param[1].off, to = c->param[last].off + c->param[last].len;
            pd->def = dup_bytes(p + from, to - from);
            pd->def_len = to - from;
            pd->handle_param = dup_bytes(p + c->param[0].off, c->param[0].len);
            pd->handle_param_len = c->param[0].len;
            if (pd->def == NULL || pd->handle_param == NULL)
                sy_tds_track_lose(tr, "out of memory");
            break;
        }
        case SY_TDS_SP_UNPREPARE:
            if (c->handle_int4)
                prep_remove(tr, c->handle);
            break;
        case SY_TDS_SP_CURSOROPEN:
        case SY_TDS_SP_CURSORPREPEXEC:
        case SY_TDS_SP_CURSOREXECUTE:
            tr->n_cursors++;
            break;
        case SY_TDS_SP_CURSORCLOSE:
            if (tr->n_cursors > 0)
                tr->n_cursors--;
            break;
        case SY_TDS_SP_CURSORPREPARE:                             /* a cursor plan: server state too */
            tr->n_cursors++;
            break;
        case SY_TDS_SP_CURSORUNPREPARE:
            if (tr->n_cursors > 0)
                tr->n_cursors--;
            break;
        case SY_TDS_SP_GETAPPLOCK:
            tr->n_applocks++;
            break;
        case SY_TDS_SP_RELEASEAPPLOCK:
            if (tr->n_applocks > 0)
                tr->n_applocks--;
            break;
        default:
            break;
        }
    }
}

static void reset_session(struct sy_tds_track *tr)
{
    tr->n_sets = 0;
    tr->n_temp = 0;
    tr->n_cursors = 0;
    tr->n_applocks = 0;
}

void sy_tds_track_event(struct sy_tds_track *tr, const struct sy_tds_rsp_ev *ev)
{
    switch (ev->kind) {
    case SY_TRSP_ENVCHANGE: {
        const struct sy_tds_envchange *e = &ev->env;
        switch (e->type) {
        case SY_TDS_ENV_DATABASE:
            sy_tds_utf16_to_utf8(e->new_value.p, e->new_value.len, tr->database, sizeof tr->database);
            tr->gen++;
            break;
        case SY_TDS_ENV_LANGUAGE:
            sy_tds_utf16_to_utf8(e->new_value.p, e->new_value.len, tr->language, sizeof tr->language);
            tr->gen++;
            break;
        case SY_TDS_ENV_COLLATION:
            if (e->new_value.len == 5) {
                memcpy(tr->collation, e->new_value.p, 5);
                tr->has_collation = true;
            }
            break;
        case SY_TDS_ENV_BEGIN_TRAN:
            tr->in_txn = true;
            tr->txn_empty = tr->req_tm;                           /* a TM request runs no statement after it */
            tr->desc = 0;
            for (size_t i = 0; i < e->new_value.len && i < 8; i++)
                tr->desc |= (uint64_t)e->new_value.p[i] << (8 * i);
            break;
        case SY_TDS_ENV_COMMIT_TRAN:
        case SY_TDS_ENV_ROLLBACK_TRAN:
        case 17:                                                  /* transaction ended */
            tr->in_txn = false;
            tr->txn_empty = false;
            tr->desc = 0;
            tr->distributed = false;
            break;
        case 11:                                                  /* enlisted in a DTC transaction */
        case 15:                                                  /* promoted to a distributed transaction */
            tr->distributed = true;
            break;
        case SY_TDS_ENV_RESET_ACK:
            reset_session(tr);
            tr->gen++;
            break;
        default:
            break;
        }
        break;
    }
    case SY_TRSP_RETURNVALUE:
        if (ev->rv_int && tr->pend_at < tr->n_pend) {
            struct sy_tds_pending *pd = &tr->pend[tr->pend_at];
            if ((pd->proc == SY_TDS_SP_PREPARE || pd->proc == SY_TDS_SP_PREPEXEC) && pd->def != NULL) {
                prep_remove(tr, ev->rv_value);                    /* a handle reused by the server */
                if (tr->n_preps == SY_TDS_PREP_MAX) {
                    sy_tds_track_lose(tr, "too many prepared statements");
                    break;
                }
                if (tr->n_preps == tr->cap_preps) {
                    size_t cap = tr->cap_preps ? 2 * tr->cap_preps : 8;
                    struct sy_tds_prep *np = realloc(tr->preps, cap * sizeof *np);
                    if (np == NULL) {
                        sy_tds_track_lose(tr, "out of memory");
                        break;
                    }
                    tr->preps = np;
                    tr->cap_preps = cap;
                }
                tr->preps[tr->n_preps++] = (struct sy_tds_prep){ ev->rv_value, ev->rv_value, pd->def, pd->def_len,
                                                                 pd->handle_param, pd->handle_param_len };
                tr->gen++;
                pd->def = NULL;                                   /* owned by the entry now */
                pd->handle_param = NULL;
            }
        }
        break;
    case SY_TRSP_DONE:
        if (ev->token == SY_TDS_TOK_DONEPROC && tr->pend_at < tr->n_pend)
            tr->pend_at++;
        break;
    default:
        break;
    }
}

void sy_tds_track_response_end(struct sy_tds_track *tr)
{
    pending_clear(tr);
    tr->req_tm = false;
}

bool sy_tds_track_unmovable(const struct sy_tds_track *tr, char *why, size_t len)
{
    if (tr->lost[0])
        snprintf(why, len, "%s", tr->lost);
    else if (tr->n_temp > 0)
        snprintf(why, len, "temporary table %s", tr->temp[0]);
    else if (tr->n_cursors > 0)
        snprintf(why, len, "open server cursor");
    else if (tr->n_applocks > 0)
        snprintf(why, len, "application lock (sp_getapplock)");
    else if (tr->distributed)
        snprintf(why, len, "distributed transaction");
    else
        return false;
    return true;
}

/* ---- the batch text ------------------------------------------------------------------------------- */

enum tok_kind { T_END, T_WORD, T_STRING, T_IDENT, T_PUNCT };

struct lex {
    const char *s;               /* ASCII copy of the batch (non-ASCII units as '?') */
    size_t n, pos;
};

struct tok {
    enum tok_kind kind;
    size_t start, len;           /* in s, quotes and brackets included */
};

static bool word_char(char c)
{
    return isalnum((unsigned char)c) || c == '_' || c == '@' || c == '#' || c == '$';
}

static struct tok lex_next(struct lex *l)
{
    const char *s = l->s;
    for (;;) {
        while (l->pos < l->n && isspace((unsigned char)s[l->pos]))
            l->pos++;
        if (l->pos + 1 < l->n && s[l->pos] == '-' && s[l->pos + 1] == '-') {
            while (l->pos < l->n && s[l->pos] != '\n')
                l->pos++;
            continue;
        }
        if (l->pos + 1 < l->n && s[l->pos] == '/' && s[l->pos + 1] == '*') {
            unsigned depth = 0;                                   /* T-SQL block comments nest */
            while (l->pos < l->n) {
                if (l->pos + 1 < l->n && s[l->pos] == '/' && s[l->pos + 1] == '*') {
                    depth++;
                    l->pos += 2;
                } else if (l->pos + 1 < l->n && s[l->pos] == '*' && s[l->pos + 1] == '/') {
                    l->pos += 2;
                    if (--depth == 0)
                        break;
                } else {
                    l->pos++;
                }
            }
            continue;
        }
        break;
    }
    struct tok t = { T_END, l->pos, 0 };
    if (l->pos >= l->n)
        return t;
    char c = s[l->pos];
    if ((c == 'N' || c == 'n') && l->pos + 1 < l->n && s[l->pos + 1] == '\'') {
        l->pos++;
        c = '\'';
    }
    if (c == '\'' || c == '[' || c == '"') {
        char close = c == '[' ? ']' : c;
        l->pos++;
        while (l->pos < l->n) {
            if (s[l->pos] == close) {
                if (l->pos + 1 < l->n && s[l->pos + 1] == close) {  /* doubled: escaped */
                    l->pos += 2;
                    continue;
                }
                l->pos++;
                break;
            }
            l->pos++;
        }
        t.kind = c == '\'' ? T_STRING : T_IDENT;
    } else if (word_char(c)) {
        while (l->pos < l->n && word_char(s[l->pos]))
            l->pos++;
        t.kind = T_WORD;
    } else {
        l->pos++;
        t.kind = T_PUNCT;
    }
    t.len = l->pos - t.start;
    return t;
}

static bool tok_is(const struct lex *l, struct tok t, const char *word)
{
    size_t k = strlen(word);
    return t.kind == T_WORD && t.len == k && strncasecmp(l->s + t.start, word, k) == 0;
}

/* A name token (word or [bracketed]) without its brackets, into out. */
static void tok_name(const struct lex *l, struct tok t, char *out, size_t cap)
{
    size_t start = t.start, len = t.len;
    if (t.kind == T_IDENT && len >= 2) {
        start++;
        len -= 2;
    }
    if (len >= cap)
        len = cap - 1;
    memcpy(out, l->s + start, len);
    out[len] = '\0';
}

static const char *const set_onoff[] = {
    "ANSI_NULLS", "ANSI_PADDING", "ANSI_WARNINGS", "ARITHABORT", "ARITHIGNORE", "CONCAT_NULL_YIELDS_NULL",
    "QUOTED_IDENTIFIER", "NUMERIC_ROUNDABORT", "ANSI_NULL_DFLT_ON", "ANSI_NULL_DFLT_OFF", "ANSI_DEFAULTS",
    "IMPLICIT_TRANSACTIONS", "CURSOR_CLOSE_ON_COMMIT", "XACT_ABORT", "NOCOUNT", "FMTONLY", "NO_BROWSETABLE",
    "FORCEPLAN",
};
static const char *const set_value[] = {
    "DATEFORMAT", "DATEFIRST", "LOCK_TIMEOUT", "DEADLOCK_PRIORITY", "TEXTSIZE", "ROWCOUNT", "CONTEXT_INFO",
    "LANGUAGE",
};

static void set_record(struct sy_tds_track *tr, const char *name, const char *stmt)
{
    unsigned i = 0;
    for (; i < tr->n_sets; i++)
        if (strcmp(tr->sets[i].name, name) == 0)
            break;
    if (i == tr->n_sets) {
        if (tr->n_sets == SY_TDS_SET_MAX) {
            sy_tds_track_lose(tr, "too many SET options");
            return;
        }
        tr->n_sets++;
        snprintf(tr->sets[i].name, sizeof tr->sets[i].name, "%s", name);
    }
    snprintf(tr->sets[i].stmt, sizeof tr->sets[i].stmt, "%s", stmt);
    tr->gen++;
}

static void set_forget(struct sy_tds_track *tr, const char *name)
{
    for (unsigned i = 0; i < tr->n_sets; i++)
        if (strcmp(tr->sets[i].name, name) == 0) {
            memmove(&tr->sets[i], &tr->sets[i + 1], (tr->n_sets - i - 1) * sizeof tr->sets[0]);
            tr->n_sets--;
            tr->gen++;
            return;
        }
}

static int find_word(const struct lex *l, struct tok t, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (tok_is(l, t, list[i]))
            return (int)i;
    return -1;
}

/* After SET: the option and its value; *next is the first token not consumed. */
static void scan_set(struct sy_tds_track *tr, struct lex *l, struct tok *next)
{
    struct tok opt = lex_next(l);
    *next = opt;
    int k;
    char stmt[sizeof tr->sets[0].stmt];
    if ((k = find_word(l, opt, set_onoff, SY_ARRAY_LEN(set_onoff))) >= 0) {
        const char *names[SY_ARRAY_LEN(set_onoff)];
        size_t nn = 0;
        names[nn++] = set_onoff[k];
        struct tok t = lex_next(l);
        while (t.kind == T_PUNCT && l->s[t.start] == ',') {
            struct tok o = lex_next(l);
            if ((k = find_word(l, o, set_onoff, SY_ARRAY_LEN(set_onoff))) < 0) {
                *next = o;
                return;
            }
            if (nn < SY_ARRAY_LEN(names))
                names[nn++] = set_onoff[k];
            t = lex_next(l);
        }
        *next = lex_next(l);
        bool on = tok_is(l, t, "ON");
        if (!on && !tok_is(l, t, "OFF")) {
            *next = t;
            return;
        }
        for (size_t i = 0; i < nn; i++) {
            snprintf(stmt, sizeof stmt, "SET %s %s", names[i], on ? "ON" : "OFF");
            set_record(tr, names[i], stmt);
        }
    } else if ((k = find_word(l, opt, set_value, SY_ARRAY_LEN(set_value))) >= 0) {
        struct tok v = lex_next(l);
        size_t vs = v.start;
        if (v.kind == T_PUNCT && (l->s[v.start] == '-' || l->s[v.start] == '+'))
            v = lex_next(l);
        *next = lex_next(l);
        if (strcmp(set_value[k], "LANGUAGE") == 0) {              /* ENVCHANGE says which; it resets these */
            set_forget(tr, "DATEFORMAT");
            set_forget(tr, "DATEFIRST");
            return;
        }
        if (v.kind == T_END || v.kind == T_PUNCT || (v.kind == T_WORD && l->s[v.start] == '@')) {
            *next = v;                                            /* a variable value: not restorable */
            if (v.kind == T_WORD)
                sy_tds_track_lose(tr, "SET option from a variable");
            return;
        }
        int w = snprintf(stmt, sizeof stmt, "SET %s %.*s", set_value[k], (int)(v.start + v.len - vs), l->s + vs);
        if (w < 0 || (size_t)w >= sizeof stmt) {
            sy_tds_track_lose(tr, "SET value too long");
            return;
        }
        set_record(tr, set_value[k], stmt);
    } else if (tok_is(l, opt, "TRANSACTION")) {
        struct tok a = lex_next(l), b = lex_next(l), c = lex_next(l);
        if (!tok_is(l, a, "ISOLATION") || !tok_is(l, b, "LEVEL")) {
            *next = c;
            return;
        }
        const char *lvl = NULL;
        struct tok d = lex_next(l);
        *next = lex_next(l);
        if (tok_is(l, c, "READ") && tok_is(l, d, "UNCOMMITTED"))
            lvl = "READ UNCOMMITTED";
        else if (tok_is(l, c, "READ") && tok_is(l, d, "COMMITTED"))
            lvl = "READ COMMITTED";
        else if (tok_is(l, c, "REPEATABLE") && tok_is(l, d, "READ"))
            lvl = "REPEATABLE READ";
        else if (tok_is(l, c, "SNAPSHOT") || tok_is(l, c, "SERIALIZABLE")) {
            lvl = tok_is(l, c, "SNAPSHOT") ? "SNAPSHOT" : "SERIALIZABLE";
            *next = d;
        }
        if (lvl == NULL)
            return;
        snprintf(stmt, sizeof stmt, "SET TRANSACTION ISOLATION LEVEL %s", lvl);
        set_record(tr, "TRANSACTION ISOLATION LEVEL", stmt);
    } else if (tok_is(l, opt, "IDENTITY_INSERT")) {
        size_t from = opt.start;
        struct tok t = lex_next(l);
        for (unsigned i = 0; i < 8 && t.kind != T_END && !tok_is(l, t, "ON") && !tok_is(l, t, "OFF"); i++)
            t = lex_next(l);
        *next = lex_next(l);
        if (tok_is(l, t, "ON")) {
            int w = snprintf(stmt, sizeof stmt, "SET %.*s", (int)(t.start + t.len - from), l->s + from);
            if (w > 0 && (size_t)w < sizeof stmt)
                set_record(tr, "IDENTITY_INSERT", stmt);
            else
                sy_tds_track_lose(tr, "SET IDENTITY_INSERT too long");
        } else if (tok_is(l, t, "OFF")) {
            set_forget(tr, "IDENTITY_INSERT");
        }
    }
}

static void temp_add(struct sy_tds_track *tr, const char *name)
{
    for (unsigned i = 0; i < tr->n_temp && i < SY_TDS_NAMES_MAX; i++)
        if (strcasecmp(tr->temp[i], name) == 0)
            return;
    if (tr->n_temp < SY_TDS_NAMES_MAX)
        snprintf(tr->temp[tr->n_temp], sizeof tr->temp[0], "%s", name);
    tr->n_temp++;
}

static void temp_drop(struct sy_tds_track *tr, const char *name)
{
    if (tr->n_temp > SY_TDS_NAMES_MAX) {                         /* names beyond the list: count only */
        tr->n_temp--;
        return;
    }
    for (unsigned i = 0; i < tr->n_temp; i++)
        if (strcasecmp(tr->temp[i], name) == 0) {
            memmove(tr->temp[i], tr->temp[i + 1], (tr->n_temp - i - 1) * sizeof tr->temp[0]);
            tr->n_temp--;
            return;
        }
}

static bool is_temp(const struct lex *l, struct tok t)
{
    size_t off = t.kind == T_IDENT ? 1 : 0;
    return (t.kind == T_WORD || t.kind == T_IDENT) && t.len > off && l->s[t.start + off] == '#';
}

void sy_tds_track_batch(struct sy_tds_track *tr, const uint8_t *utf16, size_t n)
{
    size_t units = n / 2;
    char *s = malloc(units + 1);
    if (s == NULL) {
        sy_tds_track_lose(tr, "out of memory");
        return;
    }
    for (size_t i = 0; i < units; i++) {
        unsigned u = utf16[2 * i] | (unsigned)utf16[2 * i + 1] << 8;
        s[i] = u < 0x80 && u != 0 ? (char)u : '?';
    }
    s[units] = '\0';
    struct lex l = { s, units, 0 };
    struct tok t = lex_next(&l);
    while (t.kind != T_END) {
        struct tok next;
        char name[130];
        if (tok_is(&l, t, "SET")) {
            /* also UPDATE ... SET col = ...: no option is followed by '=', so nothing is recorded */
            scan_set(tr, &l, &next);
        } else if (tok_is(&l, t, "CREATE")) {
            struct tok k = lex_next(&l), nm = lex_next(&l);
            next = nm;
            if ((tok_is(&l, k, "TABLE") || tok_is(&l, k, "PROC") || tok_is(&l, k, "PROCEDURE")) && is_temp(&l, nm)) {
                tok_name(&l, nm, name, sizeof name);
                temp_add(tr, name);
                next = lex_next(&l);
            }
        } else if (tok_is(&l, t, "INTO")) {
            struct tok nm = lex_next(&l);
            next = nm;
            if (is_temp(&l, nm)) {
                tok_name(&l, nm, name, sizeof name);
                temp_add(tr, name);
                next = lex_next(&l);
            }
        } else if (tok_is(&l, t, "DROP")) {
            struct tok k = lex_next(&l);
            next = k;
            if (tok_is(&l, k, "TABLE") || tok_is(&l, k, "PROC") || tok_is(&l, k, "PROCEDURE")) {
                struct tok nm = lex_next(&l);
                if (tok_is(&l, nm, "IF")) {
                    (void)lex_next(&l);                           /* EXISTS */
                    nm = lex_next(&l);
                }
                for (;;) {
                    if (is_temp(&l, nm)) {
                        tok_name(&l, nm, name, sizeof name);
                        temp_drop(tr, name);
                    }
                    next = lex_next(&l);
                    if (!(next.kind == T_PUNCT && l.s[next.start] == ','))
                        break;
                    nm = lex_next(&l);
                }
            }
        } else if (tok_is(&l, t, "DECLARE")) {
            struct tok nm = lex_next(&l);
            next = nm;
            if (nm.kind == T_WORD && l.s[nm.start] != '@') {
                struct tok k = lex_next(&l);
                for (unsigned i = 0; i < 2 && (tok_is(&l, k, "INSENSITIVE") || tok_is(&l, k, "SCROLL")); i++)
                    k = lex_next(&l);
                next = k;
                if (tok_is(&l, k, "CURSOR")) {
                    tr->n_cursors++;
                    next = lex_next(&l);
                }
            }
        } else if (tok_is(&l, t, "DEALLOCATE")) {
            next = lex_next(&l);
            if (tr->n_cursors > 0 && (next.kind == T_WORD || next.kind == T_IDENT) &&
                !tok_is(&l, next, "PREPARE")) {
                tr->n_cursors--;
                next = lex_next(&l);
            }
        } else if (tok_is(&l, t, "sp_getapplock")) {
            tr->n_applocks++;
            next = lex_next(&l);
        } else if (tok_is(&l, t, "sp_releaseapplock")) {
            if (tr->n_applocks > 0)
                tr->n_applocks--;
            next = lex_next(&l);
        } else if (tok_is(&l, t, "BEGIN")) {
            next = lex_next(&l);
            if (tok_is(&l, next, "DISTRIBUTED")) {
                tr->distributed = true;
                next = lex_next(&l);
            }
        } else {
            next = lex_next(&l);
        }
        t = next;
    }
    free(s);
}

/* ---- restoring ----------------------------------------------------------------------------------------- */

static bool put_bracketed(char *out, size_t cap, size_t *w, const char *name)
{
    if (*w + 2 >= cap)
        return false;
    out[(*w)++] = '[';
    for (const char *c = name; *c; c++) {
        if (*w + 3 >= cap)
            return false;
        if (*c == ']')
            out[(*w)++] = ']';
        out[(*w)++] = *c;
    }
    out[(*w)++] = ']';
    out[*w] = '\0';
    return true;
}

static bool put_str(char *out, size_t cap, size_t *w, const char *s)
{
    size_t k = strlen(s);
    if (*w + k + 1 > cap)
        return false;
    memcpy(out + *w, s, k + 1);
    *w += k;
    return true;
}

size_t sy_tds_track_restore_sql(const struct sy_tds_track *tr, const char *login_db, const char *login_lang,
                                char *out, size_t cap)
{
    size_t w = 0;
    if (cap == 0)
        return (size_t)-1;
    out[0] = '\0';
    if (tr->database[0] && strcasecmp(tr->database, login_db) != 0)
        if (!put_str(out, cap, &w, "USE ") || !put_bracketed(out, cap, &w, tr->database) ||
            !put_str(out, cap, &w, ";\n"))
            return (size_t)-1;
    if (tr->language[0] && strcasecmp(tr->language, login_lang) != 0)
        if (!put_str(out, cap, &w, "SET LANGUAGE ") || !put_bracketed(out, cap, &w, tr->language) ||
            !put_str(out, cap, &w, ";\n"))
            return (size_t)-1;
    for (unsigned i = 0; i < tr->n_sets; i++)
        if (!put_str(out, cap, &w, tr->sets[i].stmt) || !put_str(out, cap, &w, ";\n"))
            return (size_t)-1;
    return w;
}

static void put_all_headers(struct sy_wr *w, uint64_t desc)
{
    sy_wr_uNle(w, 22, 4);                                         /* total */
    sy_wr_uNle(w, 18, 4);                                         /* this header */
    sy_wr_uNle(w, 2, 2);                                          /* transaction descriptor */
    sy_wr_uNle(w, desc, 8);
    sy_wr_uNle(w, 1, 4);                                          /* outstanding requests */
}

size_t sy_tds_prepare_rpc_build(uint8_t *out, size_t cap, const struct sy_tds_prep *prep)
{
    struct sy_wr w = sy_wr_make(out, cap);
    put_all_headers(&w, 0);
    sy_wr_uNle(&w, 0xFFFF, 2);
    sy_wr_uNle(&w, SY_TDS_SP_PREPARE, 2);
    sy_wr_uNle(&w, 0, 2);                                         /* option flags */
    sy_wr_bytes(&w, prep->handle_param, prep->handle_param_len);
    sy_wr_bytes(&w, prep->def, prep->def_len);
    return w.bad ? 0 : w.len;
}

size_t sy_tds_batch_build(uint8_t *out, size_t cap, const char *sql, uint64_t desc)
{
    struct sy_wr w = sy_wr_make(out, cap);
    put_all_headers(&w, desc);
    for (const char *c = sql; *c; c++)
        sy_wr_uNle(&w, (uint8_t)*c, 2);
    return w.bad ? 0 : w.len;
}

unsigned sy_tds_req_remap(uint8_t *p, size_t n, const struct sy_tds_req *q, const struct sy_tds_track *tr)
{
    unsigned changed = 0;
    if (q->has_desc && q->desc_off + 8 <= n && q->desc != tr->desc) {
        for (size_t i = 0; i < 8; i++)
            p[q->desc_off + i] = (uint8_t)(tr->desc >> (8 * i));
        changed++;
    }
    for (unsigned i = 0; i < q->n_rpc; i++) {
        const struct sy_tds_rpc_call *c = &q->rpc[i];
        if ((c->proc != SY_TDS_SP_EXECUTE && c->proc != SY_TDS_SP_UNPREPARE) || !c->handle_int4 ||
            c->handle_off + 4 > n)
            continue;
        const struct sy_tds_prep *pr = sy_tds_track_prep_find(tr, c->handle);
        if (pr == NULL || pr->backend == pr->handle)
            continue;
        uint32_t v = (uint32_t)pr->backend;
        for (size_t k = 0; k < 4; k++)
            p[c->handle_off + k] = (uint8_t)(v >> (8 * k));
        changed++;
    }
    return changed;
}
