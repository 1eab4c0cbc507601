/* Unit tests of proxy/tds_track.c: the response scanner over constructed token streams (a result set of
 * fixed, variable, PLP and NULL-bitmap rows between ENVCHANGE begin/commit transaction; every prefix of the
 * stream is AGAIN, never OK or BAD), RETURNVALUE handles of sp_prepare/sp_prepexec, the request parser (ALL_HEADERS
 * descriptor, RPC by id and by name, parameters), the batch scanner (SET options, temp tables, cursors, app
 * locks, distributed transactions, strings and comments that only look like them), the restore batch, the
 * re-prepare RPC and the handle/descriptor remap after a move. */
#include <stdlib.h>
#include <string.h>

#include "core/rd.h"
#include "proxy/tds_track.h"
#include "tests/unit/check.h"

static char err[256];

struct buf {
    uint8_t b[8192];
    size_t n;
};

static void put(struct buf *b, const void *p, size_t n)
{
    memcpy(b->b + b->n, p, n);
    b->n += n;
}
static void u8(struct buf *b, unsigned v) { b->b[b->n++] = (uint8_t)v; }
static void u16(struct buf *b, unsigned v) { u8(b, v & 0xff); u8(b, v >> 8); }
static void u32(struct buf *b, uint32_t v) { u16(b, v & 0xffff); u16(b, v >> 16); }
static void u64(struct buf *b, uint64_t v) { u32(b, (uint32_t)v); u32(b, (uint32_t)(v >> 32)); }
static void ucs2(struct buf *b, const char *s) { for (; *s; s++) u16(b, (uint8_t)*s); }
static void bvarchar(struct buf *b, const char *s) { u8(b, (unsigned)strlen(s)); ucs2(b, s); }
static const uint8_t collation[5] = { 0x09, 0x04, 0xd0, 0x00, 0x34 };

static void envchange_txn(struct buf *b, unsigned type, uint64_t desc)
{
    u8(b, 0xE3);
    u16(b, type == 8 ? 1 + 1 + 8 + 1 : 1 + 1 + 1 + 8);
    u8(b, type);
    if (type == 8) {
        u8(b, 8); u64(b, desc); u8(b, 0);
    } else {
        u8(b, 0); u8(b, 8); u64(b, desc);
    }
}

static void envchange_str(struct buf *b, unsigned type, const char *nv, const char *ov)
{
    u8(b, 0xE3);
    u16(b, (unsigned)(1 + 1 + 2 * strlen(nv) + 1 + 2 * strlen(ov)));
    u8(b, type);
    bvarchar(b, nv);
    bvarchar(b, ov);
}

static void done(struct buf *b, unsigned tok, unsigned status, uint64_t rows)
{
    u8(b, tok); u16(b, status); u16(b, 0xC1); u64(b, rows);
}

/* COLMETADATA: int, nvarchar(20), nvarchar(max), decimal(10,2), datetime2(7), text; two rows (one NBCROW). */
static void result_set(struct buf *b)
{
    u8(b, 0x81); u16(b, 6);
    u32(b, 0); u16(b, 1); u8(b, 0x26); u8(b, 4); bvarchar(b, "id");
    u32(b, 0); u16(b, 1); u8(b, 0xE7); u16(b, 40); put(b, collation, 5); bvarchar(b, "name");
    u32(b, 0); u16(b, 1); u8(b, 0xE7); u16(b, 0xFFFF); put(b, collation, 5); bvarchar(b, "body");
    u32(b, 0); u16(b, 1); u8(b, 0x6A); u8(b, 5); u8(b, 10); u8(b, 2); bvarchar(b, "price");
    u32(b, 0); u16(b, 1); u8(b, 0x2A); u8(b, 7); bvarchar(b, "at");
    u32(b, 0); u16(b, 1); u8(b, 0x23); u32(b, 0x7fffffff); put(b, collation, 5);
    u8(b, 1); u16(b, 1); ucs2(b, "t"); bvarchar(b, "txt");
    /* ROW */
    u8(b, 0xD1);
    u8(b, 4); u32(b, 7);
    u16(b, 4); ucs2(b, "ab");
    u64(b, 6); u32(b, 4); ucs2(b, "xy"); u32(b, 2); ucs2(b, "z"); u32(b, 0);   /* PLP in two chunks */
    u8(b, 5); u8(b, 1); u32(b, 12345);
    u8(b, 8); u32(b, 1); u16(b, 2); u16(b, 3);
    u8(b, 16); for (int i = 0; i < 16; i++) u8(b, 0xAA); for (int i = 0; i < 8; i++) u8(b, 0); u32(b, 2); ucs2(b, "q");
    /* NBCROW: name, body and txt NULL */
    u8(b, 0xD2); u8(b, 0x26);
    u8(b, 4); u32(b, 8);
    u8(b, 5); u8(b, 1); u32(b, 1);
    u8(b, 8); u32(b, 1); u16(b, 2); u16(b, 3);
    done(b, 0xFD, 0x11, 2);
}

static int scan_all(struct sy_tds_track *tr, const uint8_t *p, size_t n)
{
    struct sy_tds_rsp_scan sc = { 0 };
    size_t off = 0;
    int tokens = 0;
    while (off < n) {
        struct sy_tds_rsp_ev ev;
        size_t used = 0;
        enum sy_parse pr = sy_tds_rsp_step(&sc, p + off, n - off, &used, &ev, err, sizeof err);
        if (pr != SY_PARSE_OK) {
            sy_tds_rsp_scan_fini(&sc);
            return -1;
        }
        sy_tds_track_event(tr, &ev);
        off += used;
        tokens++;
    }
    sy_tds_rsp_scan_fini(&sc);
    sy_tds_track_response_end(tr);
    return tokens;
}

static void test_result_set_between_transaction_changes(void)
{
    struct buf b = { .n = 0 };
    envchange_txn(&b, 8, 0x1122334455667788ull);
    result_set(&b);
    struct sy_tds_track tr;
    sy_tds_track_init(&tr, "master", "us_english");
    CHECK(scan_all(&tr, b.b, b.n) == 5);
    CHECK(tr.in_txn && tr.desc == 0x1122334455667788ull);
    /* every prefix of the stream scans as whole tokens then AGAIN: never BAD, never past the cut */
    bool ok = true;
    for (size_t cut = 0; cut < b.n; cut++) {
        struct sy_tds_rsp_scan sc = { 0 };
        size_t off = 0;
        for (;;) {
            struct sy_tds_rsp_ev ev;
            size_t used = 0;
            enum sy_parse pr = sy_tds_rsp_step(&sc, b.b + off, cut - off, &used, &ev, err, sizeof err);
            if (pr == SY_PARSE_AGAIN)
                break;
            if (pr != SY_PARSE_OK || used == 0 || off + used > cut) {
                ok = false;
                break;
            }
            off += used;
        }
        sy_tds_rsp_scan_fini(&sc);
    }
    CHECK(ok);
    struct buf c = { .n = 0 };
    envchange_txn(&c, 9, 0x1122334455667788ull);
    done(&c, 0xFD, 0, 0);
    CHECK(scan_all(&tr, c.b, c.n) == 2 && !tr.in_txn && tr.desc == 0);
    char why[200];
    CHECK(!sy_tds_track_unmovable(&tr, why, sizeof why));
    sy_tds_track_fini(&tr);
}

static void test_unknown_token_and_huge_column_count(void)
{
    struct sy_tds_rsp_scan sc = { 0 };
    struct sy_tds_rsp_ev ev;
    size_t used;
    const uint8_t altmeta[] = { 0x88, 0x01, 0x00 };
    CHECK(sy_tds_rsp_step(&sc, altmeta, sizeof altmeta, &used, &ev, err, sizeof err) == SY_PARSE_BAD);
    const uint8_t many[] = { 0x81, 0x01, 0x20 };          /* 8193 columns */
    CHECK(sy_tds_rsp_step(&sc, many, sizeof many, &used, &ev, err, sizeof err) == SY_PARSE_BAD);
    const uint8_t udt[] = { 0x81, 0x01, 0x00, 0, 0, 0, 0, 0, 0, 0xF0 };
    CHECK(sy_tds_rsp_step(&sc, udt, sizeof udt, &used, &ev, err, sizeof err) == SY_PARSE_BAD &&
          strstr(err, "0xf0") != NULL);
    const uint8_t nometa[] = { 0x81, 0xff, 0xff };
    CHECK(sy_tds_rsp_step(&sc, nometa, sizeof nometa, &used, &ev, err, sizeof err) == SY_PARSE_OK && used == 3 &&
          sc.ncols == 0);
    sy_tds_rsp_scan_fini(&sc);
}

static void all_headers(struct buf *b, uint64_t desc)
{
    u32(b, 22); u32(b, 18); u16(b, 2); u64(b, desc); u32(b, 1);
}

/* RPC sp_prepare(@h int OUTPUT, N'@a int', N'select @a', 1) by id, then sp_prepexec by name. */
static void rpc_prepare(struct buf *b, bool by_name)
{
    all_headers(b, 0);
    if (by_name) {
        u16(b, 14); ucs2(b, "sys.sp_prepare");
    } else {
        u16(b, 0xFFFF); u16(b, 11);
    }
    u16(b, 0);
    u8(b, 0); u8(b, 1); u8(b, 0x26); u8(b, 4); u8(b, 0);                     /* @handle int OUTPUT, NULL */
    u8(b, 0); u8(b, 0); u8(b, 0xE7); u16(b, 8000); put(b, collation, 5); u16(b, 12); ucs2(b, "@a int");
    u8(b, 0); u8(b, 0); u8(b, 0xE7); u16(b, 8000); put(b, collation, 5); u16(b, 18); ucs2(b, "select @a");
    u8(b, 0); u8(b, 0); u8(b, 0x26); u8(b, 4); u8(b, 4); u32(b, 1);
}

static void returnvalue_int(struct buf *b, int32_t v)
{
    u8(b, 0xAC); u16(b, 0); bvarchar(b, ""); u8(b, 1); u32(b, 0); u16(b, 0); u8(b, 0x26); u8(b, 4);
    u8(b, 4); u32(b, (uint32_t)v);
}

static void test_prepared_handles_and_remap(void)
{
    struct sy_tds_track tr;
    sy_tds_track_init(&tr, "master", "us_english");
    struct buf rq = { .n = 0 };
    rpc_prepare(&rq, true);
    struct sy_tds_req q;
    CHECK(sy_tds_req_parse(rq.b, rq.n, SY_TDS_RPC, &q, err, sizeof err) == SY_PARSE_OK);
    CHECK(q.n_rpc == 1 && q.rpc[0].proc == SY_TDS_SP_PREPARE && q.rpc[0].nparams == 4 && q.has_desc &&
          q.desc == 0 && q.desc_off == 10);
    sy_tds_track_request(&tr, rq.b, rq.n, &q);
    struct buf rs = { .n = 0 };
    returnvalue_int(&rs, 7);
    done(&rs, 0xFE, 0, 0);
    CHECK(scan_all(&tr, rs.b, rs.n) == 2);
    CHECK(tr.n_preps == 1 && tr.preps[0].handle == 7 && tr.preps[0].backend == 7);

    /* an error instead of a handle leaves nothing behind */
    sy_tds_track_request(&tr, rq.b, rq.n, &q);
    struct buf er = { .n = 0 };
    done(&er, 0xFE, 0x2, 0);
    CHECK(scan_all(&tr, er.b, er.n) == 1 && tr.n_preps == 1);

    /* the re-prepare RPC carries the same definition and parses as sp_prepare */
    uint8_t re[512];
    size_t n = sy_tds_prepare_rpc_build(re, sizeof re, &tr.preps[0]);
    struct sy_tds_req rq2;
    CHECK(n > 0 && sy_tds_req_parse(re, n, SY_TDS_RPC, &rq2, err, sizeof err) == SY_PARSE_OK);
    CHECK(rq2.n_rpc == 1 && rq2.rpc[0].proc == SY_TDS_SP_PREPARE && rq2.rpc[0].nparams == 4);
    CHECK(sy_tds_prepare_rpc_build(re, 20, &tr.preps[0]) == 0);

    /* after a move the backend's handle differs: sp_execute(7) is rewritten to 3, the descriptor too */
    tr.preps[0].backend = 3;
    tr.desc = 0x99;
    struct buf ex = { .n = 0 };
    all_headers(&ex, 0x42);
    u16(&ex, 0xFFFF); u16(&ex, 12); u16(&ex, 0);
    u8(&ex, 0); u8(&ex, 0); u8(&ex, 0x26); u8(&ex, 4); u8(&ex, 4); u32(&ex, 7);
    u8(&ex, 0); u8(&ex, 0); u8(&ex, 0x26); u8(&ex, 4); u8(&ex, 4); u32(&ex, 5);
    u8(&ex, 0x80);                                                            /* a second call: sp_unprepare */
    u16(&ex, 0xFFFF); u16(&ex, 15); u16(&ex, 0);
    u8(&ex, 0); u8(&ex, 0); u8(&ex, 0x38); u32(&ex, 7);
    CHECK(sy_tds_req_parse(ex.b, ex.n, SY_TDS_RPC, &q, err, sizeof err) == SY_PARSE_OK && q.n_rpc == 2);
    CHECK(q.rpc[0].handle_int4 && q.rpc[0].handle == 7 && q.rpc[1].handle_int4 && q.rpc[1].proc == SY_TDS_SP_UNPREPARE);
    CHECK(sy_tds_req_remap(ex.b, ex.n, &q, &tr) == 3);
    struct sy_tds_req q2;
    CHECK(sy_tds_req_parse(ex.b, ex.n, SY_TDS_RPC, &q2, err, sizeof err) == SY_PARSE_OK);
    CHECK(q2.desc == 0x99 && q2.rpc[0].handle == 3 && q2.rpc[1].handle == 3);
    sy_tds_track_request(&tr, ex.b, ex.n, &q);                /* sp_unprepare(7): gone */
    CHECK(tr.n_preps == 0);

    /* a cut request is BAD, or a shorter valid one (cut at a parameter's end): never read past the span */
    for (size_t cut = 0; cut < rq.n; cut++) {
        enum sy_parse pr = sy_tds_req_parse(rq.b, cut, SY_TDS_RPC, &q, err, sizeof err);
        CHECK(pr == SY_PARSE_BAD || (pr == SY_PARSE_OK && (q.n_rpc == 0 || q.rpc[0].nparams < 4)));
    }
    rq.b[0] = 0xff;                                           /* ALL_HEADERS claiming more than the request */
    CHECK(sy_tds_req_parse(rq.b, rq.n, SY_TDS_RPC, &q, err, sizeof err) == SY_PARSE_BAD);
    sy_tds_track_fini(&tr);
}

static void batch(struct sy_tds_track *tr, const char *sql)
{
    struct buf b = { .n = 0 };
    all_headers(&b, 0);
    ucs2(&b, sql);
    struct sy_tds_req q;
    CHECK(sy_tds_req_parse(b.b, b.n, SY_TDS_SQL_BATCH, &q, err, sizeof err) == SY_PARSE_OK && q.body_off == 22);
    sy_tds_track_request(tr, b.b, b.n, &q);
}

static void test_batch_scanner(void)
{
    struct sy_tds_track tr;
    sy_tds_track_init(&tr, "master", "us_english");
    batch(&tr, "set ansi_nulls off; SET QUOTED_IDENTIFIER, XACT_ABORT ON\nSET DATEFORMAT dmy "
               "SET LOCK_TIMEOUT -1 set transaction isolation level repeatable read; SET NOCOUNT ON");
    char sql[1024];
    CHECK(sy_tds_track_restore_sql(&tr, "master", "us_english", sql, sizeof sql) != (size_t)-1);
    CHECK(strcmp(sql, "SET ANSI_NULLS OFF;\nSET QUOTED_IDENTIFIER ON;\nSET XACT_ABORT ON;\nSET DATEFORMAT dmy;\n"
                      "SET LOCK_TIMEOUT -1;\nSET TRANSACTION ISOLATION LEVEL REPEATABLE READ;\nSET NOCOUNT ON;\n") == 0);
    batch(&tr, "SET NOCOUNT OFF; SET LANGUAGE Deutsch");              /* last wins; LANGUAGE resets DATEFORMAT */
    CHECK(tr.n_sets == 6 && strcmp(tr.sets[5].stmt, "SET NOCOUNT OFF") == 0);
    /* what only looks like SET or a temp table */
    batch(&tr, "UPDATE t SET nocount = 1 WHERE x = 'SET XACT_ABORT OFF' -- SET ANSI_NULLS ON\n"
               "/* CREATE TABLE #x /* nested */ SET ARITHABORT ON */ SELECT [CREATE TABLE #y], @v FROM t");
    CHECK(tr.n_sets == 6 && tr.n_temp == 0 && strcmp(tr.sets[1].stmt, "SET QUOTED_IDENTIFIER ON") == 0);
    char why[200];
    CHECK(!sy_tds_track_unmovable(&tr, why, sizeof why));

    struct buf rs = { .n = 0 };
    envchange_str(&rs, 1, "orders", "master");
    envchange_str(&rs, 2, "Deutsch", "us_english");
    done(&rs, 0xFD, 0, 0);
    CHECK(scan_all(&tr, rs.b, rs.n) == 3);
    CHECK(sy_tds_track_restore_sql(&tr, "master", "us_english", sql, sizeof sql) != (size_t)-1);
    CHECK(strncmp(sql, "USE [orders];\nSET LANGUAGE [Deutsch];\nSET ANSI_NULLS OFF;\n", 55) == 0);
    CHECK(sy_tds_track_restore_sql(&tr, "master", "us_english", sql, 20) == (size_t)-1);

    batch(&tr, "CREATE TABLE #t (a int); SELECT 1 AS x INTO [##g] FROM t");
    CHECK(tr.n_temp == 2 && sy_tds_track_unmovable(&tr, why, sizeof why) && strcmp(why, "temporary table #t") == 0);
    batch(&tr, "DROP TABLE IF EXISTS #t, ##g");
    CHECK(tr.n_temp == 0 && !sy_tds_track_unmovable(&tr, why, sizeof why));
    batch(&tr, "DECLARE c CURSOR FOR SELECT 1; OPEN c");
    CHECK(tr.n_cursors == 1 && sy_tds_track_unmovable(&tr, why, sizeof why) && strstr(why, "cursor"));
    batch(&tr, "CLOSE c; DEALLOCATE c; DECLARE @c int");
    CHECK(tr.n_cursors == 0);
    batch(&tr, "EXEC sp_getapplock @Resource = 'r', @LockMode = 'Exclusive', @LockOwner = 'Session'");
    CHECK(tr.n_applocks == 1 && sy_tds_track_unmovable(&tr, why, sizeof why) && strstr(why, "sp_getapplock"));
    batch(&tr, "EXEC sys.sp_releaseapplock 'r', 'Session'");
    CHECK(tr.n_applocks == 0);
    batch(&tr, "BEGIN DISTRIBUTED TRANSACTION");
    CHECK(tr.distributed && sy_tds_track_unmovable(&tr, why, sizeof why) && strstr(why, "distributed"));
    struct buf rb = { .n = 0 };
    envchange_txn(&rb, 10, 5);
    CHECK(scan_all(&tr, rb.b, rb.n) == 1 && !tr.distributed);
    batch(&tr, "SET LOCK_TIMEOUT @t");
    CHECK(sy_tds_track_unmovable(&tr, why, sizeof why) && strstr(why, "variable"));
    sy_tds_track_fini(&tr);
}

static void test_reset_connection(void)
{
    struct sy_tds_track tr;
    sy_tds_track_init(&tr, "master", "us_english");
    batch(&tr, "SET XACT_ABORT ON; CREATE TABLE #t (a int)");
    struct buf rs = { .n = 0 };
    u8(&rs, 0xE3); u16(&rs, 3); u8(&rs, 18); u8(&rs, 0); u8(&rs, 0);
    done(&rs, 0xFD, 0, 0);
    CHECK(scan_all(&tr, rs.b, rs.n) == 2 && tr.n_sets == 0 && tr.n_temp == 0);
    sy_tds_track_fini(&tr);
}

/* pytds' commit-and-begin: a transaction begun by a TM request is empty until the next request. */
static void test_empty_transaction(void)
{
    struct sy_tds_track tr;
    sy_tds_track_init(&tr, "master", "us_english");
    struct buf tm = { .n = 0 };
    all_headers(&tm, 0x11);
    u16(&tm, 7); u8(&tm, 0); u8(&tm, 1); u8(&tm, 0);        /* TM_COMMIT_XACT, no name, fBeginXact */
    struct sy_tds_req q;
    CHECK(sy_tds_req_parse(tm.b, tm.n, SY_TDS_TRANSACTION_MANAGER, &q, err, sizeof err) == SY_PARSE_OK &&
          q.tm_request == 7 && q.desc == 0x11);
    sy_tds_track_request(&tr, tm.b, tm.n, &q);
    struct buf rs = { .n = 0 };
    envchange_txn(&rs, 9, 0x11);
    envchange_txn(&rs, 8, 0x12);
    done(&rs, 0xFD, 0, 0);
    CHECK(scan_all(&tr, rs.b, rs.n) == 3 && tr.in_txn && tr.txn_empty && tr.desc == 0x12);
    batch(&tr, "SELECT 1");
    CHECK(tr.in_txn && !tr.txn_empty);
    struct buf bt = { .n = 0 };                              /* BEGIN TRAN in a batch: not empty */
    envchange_txn(&bt, 10, 0x12);
    envchange_txn(&bt, 8, 0x13);
    CHECK(scan_all(&tr, bt.b, bt.n) == 2 && tr.in_txn && !tr.txn_empty);
    sy_tds_track_fini(&tr);
}

int main(void)
{
    test_empty_transaction();
    test_result_set_between_transaction_changes();
    test_unknown_token_and_huge_column_count();
    test_prepared_handles_and_remap();
    test_batch_scanner();
    test_reset_connection();
    return CHECK_DONE();
}
