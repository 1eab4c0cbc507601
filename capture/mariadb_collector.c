/* Incremental Data Collection for MariaDB: a thread that reads the source's binlog through
 * Connector/C's mariadb_rpl (GTID-based dump from the instance's position) and appends change
 * records to the spool:
 *
 *   GTID ... TABLE_MAP ROWS ... XID        ->  TXN_BEGIN, TABLE, ROW..., TXN_COMMIT(position)
 *   GTID  QUERY(DDL on a synchronized object) ->  TXN_BEGIN, DDL, TXN_COMMIT
 *   anything skipped (echo, other objects)  ->  POSITION (batched), so checkpoints advance
 *
 * A transaction's records are appended as its events arrive; a restart (or a broken stream) resumes
 * from the spool's last TXN_COMMIT/POSITION and reads the transaction again whole, and every writer
 * drops a TXN_BEGIN left without its commit at the next TXN_BEGIN or POSITION. Events carrying
 * server_id = writer_tag are Switchyard's own writes (echo) and are skipped. STATEMENT-format DML or a
 * non-FULL row image on a synchronized table, and a DDL whose target cannot be determined, stop the
 * instance with that reason. So does a transaction
 * that cannot fit under spool_max_bytes even once everything before it is applied and truncated: the
 * writer applies a transaction only whole, so waiting for room would wait forever
 * (transaction_too_large). */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <mysql.h>
#include <mariadb_rpl.h>
#include <ma_pvio.h>

#include "capture/binlog_codec.h"
#include "capture/binlog_ddl.h"
#include "capture/binlog_savepoint.h"
#include "capture/mariadb_modules.h"
#include "core/change.h"
#include "core/collect.h"
#include "core/failpoint.h"
#include "engine/mariadb_gtid_set.h"
#include "core/instance.h"
#include "core/log.h"
#include "core/rd.h"
#include "engine/mariadb_client.h"
#include "engine/mariadb_ddl_context.h"

#define COLL_TIMEOUT_S 5
#define COLL_MAX_BACKOFF_MS 2000
#define POSITION_EVERY_MS 1000   /* skipped transactions: a POSITION record at most this often */
#define MAX_TABLE_MAPS 256

struct collector {
    struct sy_module_ctx *ctx;           /* ref */
    const struct sy_pair_cfg *cfg;       /* ref */
    MYSQL *conn;                         /* owned */
    MARIADB_RPL *rpl;                    /* owned */
    MARIADB_RPL_EVENT *ev;               /* owned */
    int sock_slot;                       /* conn's socket as watched for a stop (sy_module_socket_watch) */
    struct sy_gtid_set pos;              /* position of everything spooled (committed) */
    bool has_crc;
    /* transaction in progress */
    bool in_txn;
    struct sy_gtid txn_gtid;
    uint32_t txn_server_id;
    uint64_t txn_time_ms;
    bool txn_echo;                       /* written by Switchyard's writer: skip */
    bool txn_begun;                      /* TXN_BEGIN appended (something in it is synchronized) */
    uint64_t txn_begin_seq;              /* its spool seq */
    struct sy_savepoints savepoints;     /* mark: the spool seq then (0: nothing spooled yet); aux: tables sent */
    uint64_t txn_tables_sent[MAX_TABLE_MAPS]; /* table ids whose TABLE record this txn carries */
    size_t n_tables_sent;
    struct sy_binlog_table_map maps[MAX_TABLE_MAPS];
    size_t n_maps;
    bool skipped_since_position;         /* skipped transactions since the last POSITION/COMMIT */
    uint64_t last_position_ms;
    bool commit_unsynced;                /* commit_wait: a commit/POSITION appended, the spool not yet fsync'd */
    struct sy_collect out;               /* the spool side (core/collect.h) */
    uint8_t *inflate_buf;                /* owned: compressed events */
    size_t inflate_cap;
    struct sy_value *before, *after;     /* owned: per-row value arrays */
    size_t values_cap;
    uint64_t events;
    char err[1024];
};

static bool stopping(const struct collector *c)
{
    return __atomic_load_n(c->ctx->stop, __ATOMIC_ACQUIRE) != 0;
}

/* ---- spool ------------------------------------------------------------------------------------- */

/* Whether the transaction being spooled, with a next record of rec_bytes, can never fit under
 * spool_max_bytes: the writer applies and the spool truncates at best up to the last record before the
 * transaction (whole segments: sy_spool_bytes_kept_from), and applies nothing of the transaction before
 * its commit is spooled. full: the spool just refused the record (else only a record larger than the
 * cap counts). Reports failed (transaction_too_large) when so. */
static bool txn_too_large(void *arg, const struct sy_collect *o, const struct sy_change *ch, uint64_t rec_bytes,
                          bool full)
{
    struct collector *c = arg;
    uint64_t max = c->cfg->spool_max_bytes, held = 0;
    if (max == 0)
        return false;
    if (rec_bytes <= max) {
        if (!full || !c->txn_begun || ch->kind == SY_CHANGE_TXN_BEGIN)
            return false;
        held = sy_spool_bytes_kept_from(c->ctx->spool, o->last_commit_seq);
        if (held + rec_bytes <= max)
            return false;
    }
    sy_module_report_failed(c->ctx->report, "transaction_too_large",
                            "source transaction %u-%u-%llu does not fit in the spool: %llu bytes spooled so far and "
                            "a %llu-byte record to come exceed spool_max_bytes=%llu (%llu bytes of spool held "
                            "from the last complete transaction on), and it is applied only whole; raise "
                            "spool_max_bytes above the largest source transaction, restart switchyardd and "
                            "start the instance",
                            c->txn_gtid.domain, c->txn_gtid.server, (unsigned long long)c->txn_gtid.seq,
                            (unsigned long long)o->txn_bytes, (unsigned long long)rec_bytes,
                            (unsigned long long)max, (unsigned long long)held);
    return true;
}

static void publish_position(struct collector *c)
{
    char text[1024];
    sy_gtid_set_format(&c->pos, text, sizeof text);
    pthread_mutex_lock(&c->ctx->report->lock);
    snprintf(c->ctx->report->position, sizeof c->ctx->report->position, "%s", text);
    c->ctx->report->events = c->events;
    pthread_mutex_unlock(&c->ctx->report->lock);
}

static bool append_position(struct collector *c)
{
    char text[1024];
    sy_gtid_set_format(&c->pos, text, sizeof text);
    struct sy_change ch = { .kind = SY_CHANGE_POSITION, .source_time_ms = c->txn_time_ms, .position = text,
                            .position_len = strlen(text) };
    c->skipped_since_position = false;
    c->last_position_ms = sy_wall_ms();
    return sy_collect_append(&c->out, &ch);
}

/* ---- transactions -------------------------------------------------------------------------------- */

static void maps_clear(struct collector *c)
{
    for (size_t i = 0; i < c->n_maps; i++)
        sy_binlog_table_map_free(&c->maps[i]);
    c->n_maps = 0;
}

static void txn_start(struct collector *c, const struct sy_binlog_gtid *g, const struct sy_binlog_header *h)
{
    c->in_txn = true;
    c->txn_gtid = (struct sy_gtid){ g->domain_id, h->server_id, g->seq_no };
    c->txn_server_id = h->server_id;
    c->txn_time_ms = (uint64_t)h->timestamp * 1000u;
    c->txn_echo = h->server_id == c->cfg->writer_tag;
    c->txn_begun = false;
    c->out.in_txn = false; /* one begun before a reconnect is read again whole */
    c->n_tables_sent = 0;
    sy_savepoints_clear(&c->savepoints);
    maps_clear(c);
}

static bool txn_begin_record(struct collector *c)
{
    if (c->txn_begun)
        return true;
    char id[64];
    snprintf(id, sizeof id, "%u-%u-%llu", c->txn_gtid.domain, c->txn_gtid.server,
             (unsigned long long)c->txn_gtid.seq);
    struct sy_change ch = { .kind = SY_CHANGE_TXN_BEGIN, .source_time_ms = c->txn_time_ms, .position = id,
                            .position_len = strlen(id) };
    c->txn_begun = true;
    bool ok = sy_collect_append(&c->out, &ch);
    c->txn_begin_seq = sy_spool_last_seq(c->ctx->spool);
    sy_failpoint_stall("collector_txn_begun"); /* tests: the source dies while the rest is on its way */
    return ok;
}

/* The transaction ended in the binlog: its position is part of the collected position now. Committed, or
 * undone: a group that ends in a ROLLBACK statement, which MariaDB writes when a transaction that also changed
 * a non-transactional table rolls back (or back to a savepoint set before anything else it did): what it
 * did to transactional tables was undone, and what was spooled of it is dropped by a POSITION (every writer
 * drops an open transaction there). */
static bool txn_end(struct collector *c, bool undone)
{
    if (!c->in_txn)
        return true;
    c->in_txn = false;
    sy_gtid_set_advance(&c->pos, &c->txn_gtid);
    maps_clear(c);
    bool ok = true;
    if (c->txn_begun && undone) {
        sy_log_info("%s: %u-%u-%llu ends in ROLLBACK in the binlog: its row changes were undone on the source, "
                    "none is applied (a non-InnoDB table's would be lost: see the precheck's innodb_tables)",
                    c->ctx->instance_id, c->txn_gtid.domain, c->txn_gtid.server, (unsigned long long)c->txn_gtid.seq);
        ok = append_position(c);
    } else if (c->txn_begun) {
        char text[1024];
        sy_gtid_set_format(&c->pos, text, sizeof text);
        struct sy_change ch = { .kind = SY_CHANGE_TXN_COMMIT, .source_time_ms = c->txn_time_ms, .position = text,
                                .position_len = strlen(text) };
        ok = sy_collect_append(&c->out, &ch);
        c->skipped_since_position = false;
        c->last_position_ms = sy_wall_ms();
    } else {
        c->skipped_since_position = true;
        /* commit_wait: a commit the proxy holds may be this skipped one (objects not synchronized): its
         * position must become durable now, not within POSITION_EVERY_MS. Never a client's: our own
         * writer's (echo), which no client waits for */
        if ((sy_collect_commit_wait(&c->out) && !c->txn_echo) ||
            sy_wall_ms() - c->last_position_ms >= POSITION_EVERY_MS)
            ok = append_position(c);
    }
    c->commit_unsynced = true;
    publish_position(c);
    return ok;
}

static bool txn_commit(struct collector *c)
{
    return txn_end(c, false);
}

/* ---- rows ---------------------------------------------------------------------------------------- */

static struct sy_binlog_table_map *map_find(struct collector *c, uint64_t id)
{
    for (size_t i = 0; i < c->n_maps; i++)
        if (c->maps[i].table_id == id)
            return &c->maps[i];
    return NULL;
}

static bool on_table_map(struct collector *c, const struct sy_binlog_body *b)
{
    struct sy_binlog_table_map parsed;
    memset(&parsed, 0, sizeof parsed);
    if (sy_binlog_table_map_parse(b, &parsed) != SY_PARSE_OK) {
        sy_binlog_table_map_free(&parsed);
        sy_module_report_failed(c->ctx->report, "bad_event", "malformed TABLE_MAP event in transaction %u-%u-%llu",
                                c->txn_gtid.domain, c->txn_gtid.server, (unsigned long long)c->txn_gtid.seq);
        return false;
    }
    /* Every statement of a transaction maps its tables again, with the same id: replace. */
    struct sy_binlog_table_map *tm = map_find(c, parsed.table_id);
    if (tm != NULL) {
        sy_binlog_table_map_free(tm);
        *tm = parsed;
        return true;
    }
    if (c->n_maps == MAX_TABLE_MAPS) {
        sy_binlog_table_map_free(&parsed);
        sy_module_report_failed(c->ctx->report, "too_many_tables", "more than %d tables in one transaction",
                                MAX_TABLE_MAPS);
        return false;
    }
    c->maps[c->n_maps++] = parsed;
    return true;
}

static bool send_table(struct collector *c, const struct sy_binlog_table_map *tm)
{
    for (size_t i = 0; i < c->n_tables_sent; i++)
        if (c->txn_tables_sent[i] == tm->table_id)
            return true;
    struct sy_column *cols = calloc(tm->n_columns ? tm->n_columns : 1, sizeof *cols);
    if (cols == NULL)
        return false;
    for (uint32_t i = 0; i < tm->n_columns; i++) {
        cols[i].name = tm->names && tm->names[i] ? tm->names[i] : "";
        cols[i].name_len = strlen(cols[i].name);
        cols[i].source_type = tm->types[i];
        cols[i].flags = (uint8_t)((tm->is_unsigned && tm->is_unsigned[i] ? SY_COL_UNSIGNED : 0) |
                                  (tm->nullable && tm->nullable[i] ? SY_COL_NULLABLE : 0) |
                                  (tm->is_key && tm->is_key[i] ? SY_COL_KEY : 0));
        cols[i].charset = tm->charset ? tm->charset[i] : 0;
    }
    struct sy_change ch = { .kind = SY_CHANGE_TABLE, .source_time_ms = c->txn_time_ms };
    ch.u.table = (struct sy_change_table){ .table_id = tm->table_id, .db = tm->db, .db_len = strlen(tm->db),
                                           .table = tm->table, .table_len = strlen(tm->table),
                                           .n_columns = tm->n_columns, .columns = cols };
    bool ok = sy_collect_append(&c->out, &ch);
    free(cols);
    if (ok && c->n_tables_sent < MAX_TABLE_MAPS)
        c->txn_tables_sent[c->n_tables_sent++] = tm->table_id;
    return ok;
}

static bool on_rows(struct collector *c, uint8_t type, const struct sy_binlog_body *b)
{
    struct sy_binlog_rows rows;
    if (sy_binlog_rows_parse(type, b, &rows) != SY_PARSE_OK) {
        sy_module_report_failed(c->ctx->report, "bad_event", "malformed ROWS event in transaction %u-%u-%llu",
                                c->txn_gtid.domain, c->txn_gtid.server, (unsigned long long)c->txn_gtid.seq);
        return false;
    }
    struct sy_binlog_table_map *tm = map_find(c, rows.table_id);
    if (tm == NULL) {
        sy_module_report_failed(c->ctx->report, "bad_event", "ROWS event for unknown table id %llu",
                                (unsigned long long)rows.table_id);
        return false;
    }
    if (c->txn_echo || !sy_objects_match(c->cfg, tm->db, tm->table))
        return true;
    if (!tm->has_names) {
        sy_module_report_failed(c->ctx->report, "row_metadata_not_full",
                                "%s.%s: the binlog has no column names (binlog_row_metadata must be FULL) at %u-%u-%llu",
                                tm->db, tm->table, c->txn_gtid.domain, c->txn_gtid.server,
                                (unsigned long long)c->txn_gtid.seq);
        return false;
    }
    if (!sy_binlog_rows_full_image(&rows)) {
        sy_module_report_failed(c->ctx->report, "row_image_not_full",
                                "%s.%s: a row event without the full row image (binlog_row_image must be FULL) at "
                                "%u-%u-%llu",
                                tm->db, tm->table, c->txn_gtid.domain, c->txn_gtid.server,
                                (unsigned long long)c->txn_gtid.seq);
        return false;
    }
    if (tm->n_columns > c->values_cap) {
        free(c->before);
        free(c->after);
        c->before = calloc(tm->n_columns, sizeof *c->before);
        c->after = calloc(tm->n_columns, sizeof *c->after);
        c->values_cap = tm->n_columns;
        if (c->before == NULL || c->after == NULL) {
            c->values_cap = 0;
            sy_module_report_failed(c->ctx->report, "out_of_memory", "out of memory decoding rows");
            return false;
        }
    }
    if (!txn_begin_record(c) || !send_table(c, tm))
        return false;
    struct sy_binlog_row_iter it;
    sy_binlog_row_iter_init(&it, &rows, tm);
    enum sy_parse pr;
    bool ok = true;
    while (ok && (pr = sy_binlog_row_next(&it, c->before, c->after)) == SY_PARSE_OK) {
        struct sy_change ch = { .kind = SY_CHANGE_ROW, .source_time_ms = c->txn_time_ms };
        ch.u.row = (struct sy_change_row){ .table_id = tm->table_id, .op = rows.op, .n_columns = tm->n_columns,
                                           .before = rows.op == SY_ROW_INSERT ? NULL : c->before,
                                           .after = rows.op == SY_ROW_DELETE ? NULL : c->after };
        ok = sy_collect_append(&c->out, &ch);
    }
    if (ok && pr == SY_PARSE_BAD) {
        sy_module_report_failed(c->ctx->report, "bad_event", "%s.%s: malformed row image at %u-%u-%llu: %s", tm->db,
                                tm->table, c->txn_gtid.domain, c->txn_gtid.server, (unsigned long long)c->txn_gtid.seq,
                                it.err);
        ok = false;
    }
    sy_binlog_row_iter_fini(&it);
    return ok;
}

/* ---- savepoints ------------------------------------------------------------------------------------ */

static bool savepoint_set(struct collector *c, const char *name)
{
    uint64_t mark = c->txn_begun ? sy_spool_last_seq(c->ctx->spool) : 0;
    if (sy_savepoints_set(&c->savepoints, name, mark, c->n_tables_sent))
        return true;
    sy_module_report_failed(c->ctx->report, "out_of_memory", "out of memory keeping savepoint `%s`", name);
    return false;
}

#define RESPOOL_CHUNK_BYTES (4u << 20)

/* Copies a spooled record into a chunk (arg: struct sy_buf) to be spooled again: [len u32 le][payload]. */
static int respool_take(void *arg, uint64_t seq, uint8_t type, const uint8_t *payload, size_t len)
{
    (void)seq;
    (void)type;
    struct sy_buf *chunk = arg;
    sy_buf_put_le(chunk, len, 4);
    sy_buf_add(chunk, payload, len);
    return chunk->oom || chunk->len >= RESPOOL_CHUNK_BYTES;
}

/* Spools the records from..to again, in chunks (the scan must not run while this thread appends). */
static bool respool(struct collector *c, uint64_t from, uint64_t to)
{
    struct sy_buf chunk;
    struct sy_change_scratch s;
    sy_buf_init(&chunk);
    sy_change_scratch_init(&s);
    bool ok = true;
    while (ok && from <= to) {
        char err[512];
        sy_buf_reset(&chunk);
        if (sy_spool_scan(c->ctx->spool, from, to, respool_take, &chunk, &from, err, sizeof err) != SY_SPOOL_OK) {
            sy_module_report_failed(c->ctx->report, "spool_error", "reading back transaction %u-%u-%llu: %s",
                                    c->txn_gtid.domain, c->txn_gtid.server, (unsigned long long)c->txn_gtid.seq,
                                    err);
            ok = false;
            break;
        }
        if (chunk.oom) {
            sy_module_report_failed(c->ctx->report, "out_of_memory", "out of memory spooling a transaction again");
            ok = false;
            break;
        }
        struct sy_rd r = sy_rd_make(chunk.p, chunk.len);
        while (ok && sy_rd_left(&r) > 0) {
            uint32_t len = sy_rd_u32le(&r);
            const uint8_t *payload = sy_rd_take(&r, len);
            struct sy_change ch;
            if (payload == NULL || sy_change_decode(payload, len, &s, &ch) != SY_PARSE_OK) {
                sy_module_report_failed(c->ctx->report, "spool_error", "a record of transaction %u-%u-%llu does "
                                        "not decode when read back", c->txn_gtid.domain, c->txn_gtid.server,
                                        (unsigned long long)c->txn_gtid.seq);
                ok = false;
                break;
            }
            ok = sy_collect_append(&c->out, &ch);
        }
    }
    sy_change_scratch_fini(&s);
    sy_buf_fini(&chunk);
    return ok;
}

/* ROLLBACK TO name inside the group: the source undid the row changes after the savepoint (they are in the
 * binlog because the transaction also changed a non-transactional table). What was spooled after it is
 * dropped: writers drop an open transaction at the next TXN_BEGIN or POSITION, so the transaction starts
 * again with a new TXN_BEGIN and what came before the savepoint spooled again (or, nothing having been
 * spooled before it, a POSITION at the position before the transaction). */
static bool savepoint_rollback(struct collector *c, const char *name)
{
    const struct sy_savepoint *sp = sy_savepoints_rollback_to(&c->savepoints, name);
    if (sp == NULL) {
        sy_module_report_failed(c->ctx->report, "bad_event", "ROLLBACK TO savepoint `%s`, which transaction "
                                "%u-%u-%llu never set in the binlog", name, c->txn_gtid.domain, c->txn_gtid.server,
                                (unsigned long long)c->txn_gtid.seq);
        return false;
    }
    uint64_t last = sy_spool_last_seq(c->ctx->spool), mark = sp->mark;
    size_t tables = (size_t)sp->aux;
    if (!c->txn_begun || mark == last)
        return true; /* nothing spooled since */
    sy_log_debug("%s: ROLLBACK TO `%s` in %u-%u-%llu: %llu spooled record(s) dropped", c->ctx->instance_id, name,
                 c->txn_gtid.domain, c->txn_gtid.server, (unsigned long long)c->txn_gtid.seq,
                 (unsigned long long)(last - (mark ? mark : c->txn_begin_seq - 1)));
    c->txn_begun = false;
    c->n_tables_sent = 0;
    if (mark == 0)
        return append_position(c);
    uint64_t old_begin = c->txn_begin_seq;
    if (!txn_begin_record(c) || !respool(c, old_begin + 1, mark))
        return false;
    c->n_tables_sent = tables;
    uint64_t shift = c->txn_begin_seq - old_begin; /* what is left of the savepoints moved with its records */
    for (size_t i = 0; i < c->savepoints.n; i++)
        if (c->savepoints.v[i].mark != 0)
            c->savepoints.v[i].mark += shift;
    return true;
}

/* ---- DDL ----------------------------------------------------------------------------------------- */

/* Which objects are synchronized, for capture/binlog_ddl.c. */
static bool match_table(void *arg, const char *db, const char *table)
{
    return sy_objects_match(arg, db, table);
}

static bool match_db(void *arg, const char *db)
{
    return sy_objects_match_db(arg, db);
}

static bool on_query(struct collector *c, const struct sy_binlog_body *b)
{
    struct sy_binlog_query q;
    if (sy_binlog_query_parse(b, &q) != SY_PARSE_OK) {
        sy_module_report_failed(c->ctx->report, "bad_event", "malformed QUERY event");
        return false;
    }
    char default_db[257];
    snprintf(default_db, sizeof default_db, "%.*s", (int)q.db_len, q.db);
    char w[16], name[SY_SAVEPOINT_NAME_MAX];
    switch (sy_savepoint_parse(q.sql, q.sql_len, name, sizeof name)) {
    case SY_SAVEPOINT_SET:
        return savepoint_set(c, name);
    case SY_SAVEPOINT_ROLLBACK_TO:
        return savepoint_rollback(c, name);
    case SY_SAVEPOINT_RELEASE:
        sy_savepoints_release(&c->savepoints, name);
        return true;
    case SY_SAVEPOINT_NONE:
        break;
    }
    sy_ddl_first_word(q.sql, q.sql_len, w, sizeof w);
    if (strcasecmp(w, "COMMIT") == 0)
        return txn_commit(c); /* closes a non-transactional group; its changes happened */
    if (strcasecmp(w, "ROLLBACK") == 0)
        return txn_end(c, true);
    if (strcasecmp(w, "BEGIN") == 0 || c->txn_echo)
        return true;
    char what[600] = "";
    struct sy_ddl_match m = { match_table, match_db, (void *)c->cfg };
    switch (sy_ddl_classify(q.sql, q.sql_len, default_db, &m, what, sizeof what)) {
    case SY_DDL_NONE:
    case SY_DDL_SKIP:
        return true;
    case SY_DDL_STATEMENT_DML:
        sy_module_report_failed(c->ctx->report, "statement_format",
                                "STATEMENT-format %s in synchronized database %s at %u-%u-%llu "
                                "(binlog_format must be ROW)",
                                what, default_db, c->txn_gtid.domain, c->txn_gtid.server,
                                (unsigned long long)c->txn_gtid.seq);
        return false;
    case SY_DDL_UNKNOWN_TARGET:
        sy_module_report_failed(c->ctx->report, "ddl_target_unknown",
                                "cannot tell which objects `%s` (default database '%s') changes at %u-%u-%llu", what,
                                default_db, c->txn_gtid.domain, c->txn_gtid.server, (unsigned long long)c->txn_gtid.seq);
        return false;
    case SY_DDL_SYNC:
        break;
    }
    if (!txn_begin_record(c))
        return false;
    struct sy_mariadb_ddl_context session = {
        .sql_mode = q.has_sql_mode ? q.sql_mode : 0,
        .charset_client = q.has_charset ? q.charset_client : 0,
        .collation_connection = q.has_charset ? q.collation_connection : 0,
        .collation_server = q.has_charset ? q.collation_server : 0,
        .time_zone = q.time_zone ? q.time_zone : "",
        .time_zone_len = q.time_zone ? q.time_zone_len : 0,
    };
    struct sy_buf context;
    sy_buf_init(&context);
    if (sy_mariadb_ddl_context_encode(&session, &context) != 0 || context.oom) {
        sy_buf_fini(&context);
        sy_module_report_failed(c->ctx->report, "encode_failed", "cannot encode the session context of a DDL");
        return false;
    }
    struct sy_change ch = { .kind = SY_CHANGE_DDL, .source_time_ms = c->txn_time_ms };
    ch.u.ddl = (struct sy_change_ddl){ .db = q.db, .db_len = q.db_len, .sql = q.sql, .sql_len = q.sql_len,
                                       .context = context.p, .context_len = context.len };
    sy_log_info("%s: DDL %s at %u-%u-%llu", c->ctx->instance_id, what, c->txn_gtid.domain, c->txn_gtid.server,
                (unsigned long long)c->txn_gtid.seq);
    bool ok = sy_collect_append(&c->out, &ch);
    sy_buf_fini(&context);
    return ok;
}

/* ---- the event loop -------------------------------------------------------------------------------- */

static bool on_event(struct collector *c, const uint8_t *p, size_t n)
{
    struct sy_binlog_header h;
    if (sy_binlog_header_parse(p, n, &h) != SY_PARSE_OK || h.event_size != n) {
        sy_module_report_failed(c->ctx->report, "bad_event", "malformed binlog event header");
        return false;
    }
    if (h.type == SY_BL_FORMAT_DESCRIPTION) {
        struct sy_binlog_fde fde;
        if (sy_binlog_fde_parse(p, n, &fde) == SY_PARSE_OK)
            c->has_crc = fde.checksum_alg == 1;
        return true;
    }
    if (h.type == SY_BL_HEARTBEAT) {
        pthread_mutex_lock(&c->ctx->report->lock);
        c->ctx->report->lag_ms = 0;
        pthread_mutex_unlock(&c->ctx->report->lock);
        if (c->skipped_since_position && !c->in_txn)
            return append_position(c);
        return true;
    }
    if (c->has_crc && !sy_binlog_crc_ok(p, n)) {
        sy_module_report_failed(c->ctx->report, "bad_checksum", "binlog event type %u at position %u: CRC32 mismatch",
                                h.type, h.next_pos);
        return false;
    }
    struct sy_binlog_body body;
    if (!sy_binlog_body(p, n, c->has_crc, &body)) {
        sy_module_report_failed(c->ctx->report, "bad_event", "binlog event type %u too short", h.type);
        return false;
    }
    c->events++;
    if (h.timestamp) {
        int64_t lag = (int64_t)sy_wall_ms() - (int64_t)h.timestamp * 1000;
        pthread_mutex_lock(&c->ctx->report->lock);
        c->ctx->report->lag_ms = lag < 0 ? 0 : lag;
        c->ctx->report->source_time_ms = (uint64_t)h.timestamp * 1000u;
        pthread_mutex_unlock(&c->ctx->report->lock);
    }
    uint8_t type = h.type;
    struct sy_binlog_body inflated;
    if (sy_binlog_uncompressed_type(type) != type) {
        if (sy_binlog_inflate(type, &body, &c->inflate_buf, &c->inflate_cap, &inflated) != SY_PARSE_OK) {
            sy_module_report_failed(c->ctx->report, "bad_event", "compressed binlog event type %u does not inflate",
                                    type);
            return false;
        }
        body = inflated;
        type = sy_binlog_uncompressed_type(type);
    }
    switch (type) {
    case SY_BL_GTID: {
        struct sy_binlog_gtid g;
        if (sy_binlog_gtid_parse(&body, &g) != SY_PARSE_OK) {
            sy_module_report_failed(c->ctx->report, "bad_event", "malformed GTID event");
            return false;
        }
        txn_start(c, &g, &h);
        if (g.flags & SY_GTID_FL_STANDALONE)
            c->in_txn = true; /* a DDL group: its QUERY ends it */
        return true;
    }
    case SY_BL_TABLE_MAP:
        return on_table_map(c, &body);
    case SY_BL_WRITE_ROWS_V1:
    case SY_BL_UPDATE_ROWS_V1:
    case SY_BL_DELETE_ROWS_V1:
    case SY_BL_WRITE_ROWS_V2:
    case SY_BL_UPDATE_ROWS_V2:
    case SY_BL_DELETE_ROWS_V2:
        return on_rows(c, type, &body);
    case SY_BL_QUERY: {
        bool ok = on_query(c, &body);
        /* A standalone group (DDL) has no XID: the statement is the whole transaction. */
        if (ok && c->in_txn && c->n_maps == 0) {
            struct sy_binlog_query q;
            char w[16] = "";
            if (sy_binlog_query_parse(&body, &q) == SY_PARSE_OK)
                sy_ddl_first_word(q.sql, q.sql_len, w, sizeof w);
            if (strcasecmp(w, "BEGIN") != 0 && strcasecmp(w, "COMMIT") != 0 && strcasecmp(w, "ROLLBACK") != 0 &&
                strcasecmp(w, "SAVEPOINT") != 0 && strcasecmp(w, "RELEASE") != 0)
                ok = txn_commit(c);
        }
        return ok;
    }
    case SY_BL_XID:
        return txn_commit(c);
    case SY_BL_XA_PREPARE:
        return txn_commit(c); /* the prepared part is final in the binlog; XA COMMIT follows as a QUERY */
    default:
        return true; /* ROTATE, GTID_LIST, BINLOG_CHECKPOINT, ANNOTATE_ROWS, STOP, ...: nothing to apply */
    }
}

/* The position to start from: the spool's last TXN_COMMIT/POSITION, else the instance's start position. */
static int load_position(struct collector *c)
{
    char from[1024];
    if (sy_collect_resume_position(&c->out, from, sizeof from) != 0)
        return -1;
    if (!sy_gtid_set_parse(from, strlen(from), &c->pos)) {
        sy_module_report_failed(c->ctx->report, "bad_position", "cannot parse the start position '%s'", from);
        return -1;
    }
    return 0;
}

static void disconnect(struct collector *c)
{
    if (c->ev) {
        mariadb_free_rpl_event(c->ev);
        c->ev = NULL;
    }
    if (c->rpl) {
        mariadb_rpl_close(c->rpl);
        c->rpl = NULL;
    }
    if (c->conn) {
        mysql_close(c->conn);
        c->conn = NULL;
    }
    sy_module_socket_drop(c->ctx, c->sock_slot);
    c->sock_slot = -1;
}

/* Whether more of the binlog stream is already here: in Connector/C's read-ahead cache (it reads up to
 * 16 KiB at a time, so several events may wait there with the socket empty; ma_pvio.h is an installed
 * header of Connector/C 3.x) or in the socket. */
static bool stream_waiting(const struct collector *c)
{
    if (c->conn == NULL)
        return false;
    const MARIADB_PVIO *pv = c->conn->net.pvio;
    if (pv != NULL && pv->cache != NULL && pv->cache_pos < pv->cache + pv->cache_size)
        return true;
    int n = 0;
    return ioctl(mysql_get_socket(c->conn), FIONREAD, &n) == 0 && n > 0;
}

/* 0 = streaming; 1 = retry later (transient); -1 = failed for good (reported). */
static int connect_dump(struct collector *c)
{
    unsigned int e = 0;
    /* a stop shuts it down, from the connect on: a binlog read (or a greeting) from a black-holed server
     * would otherwise wait COLL_TIMEOUT_S */
    c->conn = sy_mariadb_connect_watched(c->ctx->source, c->cfg, 0, COLL_TIMEOUT_S, c->ctx, &c->sock_slot, &e, c->err,
                                         sizeof c->err);
    if (c->conn == NULL)
        return sy_mariadb_is_transient(e) || e == 0 ? 1 : -1;
    char pos[1024];
    sy_gtid_set_format(&c->pos, pos, sizeof pos);
    char err[512];
    if (sy_mariadb_exec(c->conn, err, sizeof err, "SET @master_binlog_checksum=@@global.binlog_checksum, "
                                                  "@mariadb_slave_capability=4, @slave_connect_state='%s', "
                                                  "@slave_gtid_strict_mode=0, @slave_gtid_ignore_duplicates=0, "
                                                  "@master_heartbeat_period=1000000000",
                        pos) != 0) {
        snprintf(c->err, sizeof c->err, "setting up the binlog dump: %s", err);
        return 1;
    }
    c->rpl = mariadb_rpl_init(c->conn);
    if (c->rpl == NULL) {
        snprintf(c->err, sizeof c->err, "mariadb_rpl_init failed");
        return 1;
    }
    uint32_t sid = c->cfg->collector_server_id;
    mariadb_rpl_optionsv(c->rpl, MARIADB_RPL_SERVER_ID, sid);
    mariadb_rpl_optionsv(c->rpl, MARIADB_RPL_FILENAME, "", (size_t)0);
    mariadb_rpl_optionsv(c->rpl, MARIADB_RPL_START, (unsigned long)4);
    mariadb_rpl_optionsv(c->rpl, MARIADB_RPL_FLAGS, (uint32_t)MARIADB_RPL_BINLOG_SEND_ANNOTATE_ROWS);
    if (mariadb_rpl_open(c->rpl) != 0 || mysql_errno(c->conn) != 0) {
        unsigned int me = mysql_errno(c->conn);
        snprintf(c->err, sizeof c->err, "binlog dump from %s:%u at %s: %u %s", c->ctx->source->host,
                 c->ctx->source->port, pos[0] ? pos : "(start)", me ? me : mariadb_rpl_errno(c->rpl),
                 me ? mysql_error(c->conn) : mariadb_rpl_error(c->rpl));
        return me == 1236 ? -1 : 1; /* 1236: the position is gone (purged) or unknown */
    }
    sy_log_info("%s: reading the binlog of %s:%u from %s", c->ctx->instance_id, c->ctx->source->host,
                c->ctx->source->port, pos[0] ? pos : "its beginning");
    /* what is collected already, before any new event: a switch compares it at once */
    publish_position(c);
    pthread_mutex_lock(&c->ctx->report->lock);
    c->ctx->report->spool_seq = sy_spool_last_seq(c->ctx->spool);
    pthread_mutex_unlock(&c->ctx->report->lock);
    return 0;
}

static void collect(struct collector *c)
{
    int backoff = 100;
    while (!stopping(c)) {
        int rc = connect_dump(c);
        if (rc < 0) {
            sy_module_report_failed(c->ctx->report, "position_unavailable", "%s", c->err);
            disconnect(c);
            return;
        }
        if (rc > 0) {
            sy_module_report_retrying(c->ctx->report, "source_unreachable", "%s", c->err);
            disconnect(c);
            sy_module_backoff(c->ctx, &backoff, COLL_MAX_BACKOFF_MS);
            continue;
        }
        /* A partial transaction from before a reconnect is re-read whole: forget it. */
        c->in_txn = false;
        c->txn_begun = false;
        c->out.in_txn = false;
        bool streaming = false;
        while (!stopping(c)) {
            c->ev = mariadb_rpl_fetch(c->rpl, c->ev);
            if (c->ev == NULL) {
                unsigned int me = mysql_errno(c->conn);
                char pos[1024];
                sy_gtid_set_format(&c->pos, pos, sizeof pos);
                snprintf(c->err, sizeof c->err, "binlog stream from %s:%u at %s ended: %u %s", c->ctx->source->host,
                         c->ctx->source->port, pos[0] ? pos : "(start)", me,
                         me ? mysql_error(c->conn) : mariadb_rpl_error(c->rpl));
                if (me == 1236) { /* the position was purged or never existed: never skip, fail */
                    sy_collect_sync(&c->out, true);
                    disconnect(c);
                    sy_module_report_failed(c->ctx->report, "position_unavailable", "%s", c->err);
                    return;
                }
                break;
            }
            if (!streaming) {
                /* Only a stream that delivers counts as recovered (a reconnect that breaks at once must
                 * not restart the retry window). */
                streaming = true;
                backoff = 100;
                sy_module_report_running(c->ctx->report);
            }
            const uint8_t *raw = c->ev->raw_data;
            size_t len = c->ev->raw_data_size;
            if (len == (size_t)c->ev->event_length + 1) { /* the packet's OK byte leads */
                raw++;
                len--;
            }
            if (!on_event(c, raw, len)) {
                sy_collect_sync(&c->out, true);
                disconnect(c);
                return; /* failed: reported */
            }
            /* commit_wait: fsync at a commit unless more of the stream is already waiting (then the
             * next commit syncs both: a group fsync, at most SY_COLLECT_SYNC_MS apart either way) */
            bool sync_now = c->commit_unsynced && sy_collect_commit_wait(&c->out) && !stream_waiting(c);
            if (sync_now)
                c->commit_unsynced = false;
            sy_collect_sync(&c->out, sync_now);
        }
        sy_collect_sync(&c->out, true);
        disconnect(c);
        if (!stopping(c)) {
            if (c->txn_begun)
                sy_log_info("%s: stream broke inside %u-%u-%llu: it is read again", c->ctx->instance_id,
                            c->txn_gtid.domain, c->txn_gtid.server, (unsigned long long)c->txn_gtid.seq);
            sy_module_report_retrying(c->ctx->report, "source_unreachable", "%s", c->err);
        }
    }
}

static void *collector_main(void *arg)
{
    struct collector *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    c->ctx = arg;
    c->cfg = c->ctx->cfg;
    c->has_crc = true;
    c->sock_slot = -1;
    c->last_position_ms = sy_wall_ms();
    sy_collect_init(&c->out, c->ctx);
    sy_savepoints_init(&c->savepoints);
    c->out.too_large = txn_too_large;
    c->out.too_large_arg = c;
    mysql_thread_init();
    if (load_position(c) == 0)
        collect(c);
    disconnect(c);
    maps_clear(c);
    sy_savepoints_fini(&c->savepoints);
    sy_collect_fini(&c->out);
    free(c->inflate_buf);
    free(c->before);
    free(c->after);
    free(c);
    mysql_thread_end();
    return NULL;
}

const struct sy_module_ops sy_mariadb_collection = { "collection", collector_main };
