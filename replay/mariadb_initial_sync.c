/* Initial Synchronization for MariaDB: schema and data of every synchronized table from one
 * consistent snapshot of the source (START TRANSACTION WITH CONSISTENT SNAPSHOT, no FTWRL), whose
 * binlog position (Binlog_snapshot_file/position -> BINLOG_GTID_POS) becomes the position the
 * collection starts from: nothing between the copy and the incremental stream is missed or doubled.
 *
 * Each table is dropped and re-created on the destination from SHOW CREATE TABLE (a restart copies
 * again from scratch), then copied in key order, initial_sync_chunk_rows rows per SELECT (WHERE key >
 * last ORDER BY key LIMIT n, the bound written by replay/mariadb_keyrange.c so that it compares in
 * index order and is range-scanned) and one multi-row INSERT per chunk, generated columns left out.
 * Both sessions use character set binary, so bytes travel unchanged. Progress: done_rows / total_rows
 * in the report. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mysql.h>

#include "core/instance.h"
#include "core/log.h"
#include "engine/mariadb_client.h"
#include "replay/mariadb_modules.h"
#include "replay/mariadb_checkpoint.h"
#include "replay/mariadb_keyrange.h"

#define IS_TIMEOUT_S 60
#define INSERT_MAX_BYTES (4u << 20)

struct copy_table {
    char db[257], table[257];
    char **cols;          /* owned: non-generated columns, destination order */
    size_t n_cols;
    int *key_idx;         /* owned: indexes into cols of the key, in key order */
    char **charset;       /* owned per column: character columns only, else NULL */
    char **collation;     /* owned per column: with charset */
    struct sy_key_col *key; /* owned (names etc. ref cols/charset/collation): the key, for its bounds */
    size_t n_key;
    uint64_t rows;        /* count in the snapshot */
};

struct isync {
    struct sy_module_ctx *ctx;
    const struct sy_pair_cfg *cfg;
    MYSQL *src, *dst;
    int src_slot, dst_slot;     /* their sockets as watched for a stop (sy_module_socket_watch), -1 none */
    struct copy_table *tables;
    size_t n_tables;
    char position[1024];
    char err[1024];
    uint64_t done, total;
};

static bool stopping(const struct isync *s)
{
    return __atomic_load_n(s->ctx->stop, __ATOMIC_ACQUIRE) != 0;
}

static void progress(struct isync *s)
{
    sy_module_report_progress(s->ctx->report, s->done, s->total);
}

/* Lists the synchronized base tables of the source with their columns and key. -1 on error. */
static int list_tables(struct isync *s)
{
    static const char sql[] =
        "SELECT t.TABLE_SCHEMA, t.TABLE_NAME FROM information_schema.TABLES t WHERE t.TABLE_TYPE='BASE TABLE' "
        "AND t.TABLE_SCHEMA NOT IN ('mysql','information_schema','performance_schema','sys','" SY_SCHEMA "') "
        "ORDER BY 1, 2";
    if (mysql_query(s->src, sql) != 0) {
        snprintf(s->err, sizeof s->err, "listing tables: %u %s", mysql_errno(s->src), mysql_error(s->src));
        return -1;
    }
    MYSQL_RES *res = mysql_store_result(s->src);
    if (res == NULL)
        return -1;
    s->tables = calloc(mysql_num_rows(res) + 1, sizeof *s->tables);
    if (s->tables == NULL) {
        mysql_free_result(res);
        return -1;
    }
    MYSQL_ROW row;
    while ((row = mysql_fetch_row(res)) != NULL)
        if (sy_objects_match(s->cfg, row[0], row[1])) {
            struct copy_table *t = &s->tables[s->n_tables++];
            snprintf(t->db, sizeof t->db, "%s", row[0]);
            snprintf(t->table, sizeof t->table, "%s", row[1]);
        }
    mysql_free_result(res);
    for (size_t i = 0; i < s->n_tables; i++) {
        struct copy_table *t = &s->tables[i];
        char *edb = sy_mariadb_escape(s->src, t->db), *etb = sy_mariadb_escape(s->src, t->table);
        char q[2048];
        snprintf(q, sizeof q,
                 "SELECT c.COLUMN_NAME, c.CHARACTER_SET_NAME, c.COLLATION_NAME, c.DATA_TYPE, c.COLUMN_TYPE, "
                 SY_MARIADB_KEY_SEQ_SQL " "
                 "FROM information_schema.COLUMNS c WHERE c.TABLE_SCHEMA='%s' AND c.TABLE_NAME='%s' AND "
                 "c.IS_GENERATED='NEVER' ORDER BY c.ORDINAL_POSITION",
                 edb ? edb : "", etb ? etb : "");
        free(edb);
        free(etb);
        if (mysql_query(s->src, q) != 0 || (res = mysql_store_result(s->src)) == NULL) {
            snprintf(s->err, sizeof s->err, "columns of %s.%s: %u %s", t->db, t->table, mysql_errno(s->src),
                     mysql_error(s->src));
            return -1;
        }
        size_t n = (size_t)mysql_num_rows(res);
        t->cols = calloc(n + 1, sizeof *t->cols);
        t->key_idx = calloc(n + 1, sizeof *t->key_idx);
        t->charset = calloc(n + 1, sizeof *t->charset);
        t->collation = calloc(n + 1, sizeof *t->collation);
        t->key = calloc(n + 1, sizeof *t->key);
        int *seq_of = calloc(n + 1, sizeof *seq_of);
        if (t->cols == NULL || t->key_idx == NULL || t->charset == NULL || t->collation == NULL ||
            t->key == NULL || seq_of == NULL) {
            free(seq_of);
            mysql_free_result(res);
            return -1;
        }
        while ((row = mysql_fetch_row(res)) != NULL && t->n_cols < n) {
            size_t c = t->n_cols;
            bool text = row[1] != NULL && row[2] != NULL;
            seq_of[c] = row[5] ? atoi(row[5]) : 0;
            t->charset[c] = text ? strdup(row[1]) : NULL;
            t->collation[c] = text ? strdup(row[2]) : NULL;
            t->key[c] = (struct sy_key_col){ .kind = sy_keyrange_kind_of(row[3] ? row[3] : "", text),
                                             .enum_count = sy_keyrange_enum_count(row[4] ? row[4] : "") };
            t->cols[t->n_cols++] = strdup(row[0] ? row[0] : "");
        }
        mysql_free_result(res);
        for (int k = 1; k <= (int)t->n_cols; k++)
            for (size_t c = 0; c < t->n_cols; c++)
                if (seq_of[c] == k)
                    t->key_idx[t->n_key++] = (int)c;
        free(seq_of);
        /* t->key: per column so far; keep the key columns' entries, in key order */
        for (size_t k = 0; k < t->n_key; k++) {
            size_t c = (size_t)t->key_idx[k];
            struct sy_key_col kc = t->key[c];
            kc.name = t->cols[c];
            kc.charset = t->charset[c];
            kc.collation = t->collation[c];
            t->key[c] = kc;
        }
        struct sy_key_col *ordered = calloc(t->n_key + 1, sizeof *ordered);
        if (ordered == NULL)
            return -1;
        for (size_t k = 0; k < t->n_key; k++)
            ordered[k] = t->key[t->key_idx[k]];
        free(t->key);
        t->key = ordered;
        if (t->n_key == 0) {
            snprintf(s->err, sizeof s->err,
                     "%s.%s has no PRIMARY KEY or NOT NULL UNIQUE key: it cannot be synchronized", t->db, t->table);
            return -1;
        }
    }
    return 0;
}

/* Every synchronized database that exists on the source exists on the destination afterwards, even
 * with no table yet: later DDL uses it as its default database. */
static int create_databases(struct isync *s)
{
    if (mysql_query(s->src, "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA") != 0) {
        snprintf(s->err, sizeof s->err, "listing databases: %u %s", mysql_errno(s->src), mysql_error(s->src));
        return -1;
    }
    MYSQL_RES *res = mysql_store_result(s->src);
    if (res == NULL)
        return -1;
    char **names = calloc(mysql_num_rows(res) + 1, sizeof *names);
    size_t n = 0;
    MYSQL_ROW row;
    while (names && (row = mysql_fetch_row(res)) != NULL)
        if (row[0] && sy_objects_match_db(s->cfg, row[0]))
            names[n++] = strdup(row[0]);
    mysql_free_result(res);
    int rc = names ? 0 : -1;
    for (size_t i = 0; i < n && rc == 0; i++) {
        char q[600], err[512];
        sy_mariadb_quote_ident(names[i], q, sizeof q);
        char sql[700];
        snprintf(sql, sizeof sql, "SHOW CREATE DATABASE %s", q);
        MYSQL_RES *r = mysql_query(s->src, sql) == 0 ? mysql_store_result(s->src) : NULL;
        MYSQL_ROW cr = r ? mysql_fetch_row(r) : NULL;
        const char *ddl = cr && cr[1] ? cr[1] : NULL;
        if (ddl && strncmp(ddl, "CREATE DATABASE ", 16) == 0 && strncmp(ddl + 16, "IF NOT EXISTS", 13) != 0)
            rc = sy_mariadb_exec(s->dst, err, sizeof err, "CREATE DATABASE IF NOT EXISTS %s", ddl + 16);
        else if (ddl)
            rc = sy_mariadb_exec(s->dst, err, sizeof err, "%s", ddl);
        else
            rc = sy_mariadb_exec(s->dst, err, sizeof err, "CREATE DATABASE IF NOT EXISTS %s", q);
        if (rc != 0)
            snprintf(s->err, sizeof s->err, "creating database %s on the destination: %s", names[i], err);
        if (r)
            mysql_free_result(r);
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return rc;
}

static int snapshot(struct isync *s)
{
    char err[512], file[512], pos[64];
    bool found;
    if (sy_mariadb_exec(s->src, err, sizeof err, "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ") != 0 ||
        sy_mariadb_exec(s->src, err, sizeof err, "START TRANSACTION WITH CONSISTENT SNAPSHOT") != 0 ||
        sy_mariadb_value(s->src, file, sizeof file, &found, err, sizeof err,
                         "SELECT VARIABLE_VALUE FROM information_schema.SESSION_STATUS WHERE "
                         "VARIABLE_NAME='BINLOG_SNAPSHOT_FILE'") != 0 ||
        sy_mariadb_value(s->src, pos, sizeof pos, &found, err, sizeof err,
                         "SELECT VARIABLE_VALUE FROM information_schema.SESSION_STATUS WHERE "
                         "VARIABLE_NAME='BINLOG_SNAPSHOT_POSITION'") != 0) {
        snprintf(s->err, sizeof s->err, "consistent snapshot: %s", err);
        return -1;
    }
    if (file[0] == '\0') {
        snprintf(s->err, sizeof s->err, "the source has no binary log (log_bin is OFF)");
        return -2;
    }
    char *efile = sy_mariadb_escape(s->src, file);
    int rc = sy_mariadb_value(s->src, s->position, sizeof s->position, &found, err, sizeof err,
                              "SELECT BINLOG_GTID_POS('%s', %s)", efile ? efile : "", pos);
    free(efile);
    if (rc != 0) {
        snprintf(s->err, sizeof s->err, "BINLOG_GTID_POS: %s", err);
        return -1;
    }
    sy_log_info("%s: snapshot at %s:%s = GTID position '%s'", s->ctx->instance_id, file, pos, s->position);
    return 0;
}

static int count_rows(struct isync *s)
{
    s->total = 0;
    for (size_t i = 0; i < s->n_tables; i++) {
        char q[1200], qd[600], qt[600], v[32], err[512];
        bool found;
        sy_mariadb_quote_ident(s->tables[i].db, qd, sizeof qd);
        sy_mariadb_quote_ident(s->tables[i].table, qt, sizeof qt);
        snprintf(q, sizeof q, "SELECT COUNT(*) FROM %s.%s", qd, qt);
        if (sy_mariadb_value(s->src, v, sizeof v, &found, err, sizeof err, "%s", q) != 0) {
            snprintf(s->err, sizeof s->err, "counting %s.%s: %s", s->tables[i].db, s->tables[i].table, err);
            return -1;
        }
        s->tables[i].rows = strtoull(v, NULL, 10);
        s->total += s->tables[i].rows;
    }
    progress(s);
    return 0;
}

static int create_table(struct isync *s, const struct copy_table *t)
{
    char qd[600], qt[600], err[512];
    sy_mariadb_quote_ident(t->db, qd, sizeof qd);
    sy_mariadb_quote_ident(t->table, qt, sizeof qt);
    char q[1400];
    snprintf(q, sizeof q, "SHOW CREATE TABLE %s.%s", qd, qt);
    if (mysql_query(s->src, q) != 0) {
        snprintf(s->err, sizeof s->err, "SHOW CREATE TABLE %s.%s: %u %s", t->db, t->table, mysql_errno(s->src),
                 mysql_error(s->src));
        return -1;
    }
    MYSQL_RES *res = mysql_store_result(s->src);
    MYSQL_ROW row = res ? mysql_fetch_row(res) : NULL;
    if (row == NULL || row[1] == NULL) {
        if (res)
            mysql_free_result(res);
        snprintf(s->err, sizeof s->err, "SHOW CREATE TABLE %s.%s returned nothing", t->db, t->table);
        return -1;
    }
    int rc = 0;
    if (sy_mariadb_exec(s->dst, err, sizeof err, "CREATE DATABASE IF NOT EXISTS %s", qd) != 0 ||
        sy_mariadb_exec(s->dst, err, sizeof err, "USE %s", qd) != 0 ||
        sy_mariadb_exec(s->dst, err, sizeof err, "DROP TABLE IF EXISTS %s", qt) != 0 ||
        sy_mariadb_exec(s->dst, err, sizeof err, "%s", row[1]) != 0) {
        snprintf(s->err, sizeof s->err, "creating %s.%s on the destination: %s", t->db, t->table, err);
        rc = -1;
    }
    mysql_free_result(res);
    return rc;
}

static int grow(char **buf, size_t *cap, size_t need)
{
    if (need <= *cap)
        return 0;
    size_t nc = *cap * 2 > need ? *cap * 2 : need;
    char *nb = realloc(*buf, nc);
    if (nb == NULL)
        return -1;
    *buf = nb;
    *cap = nc;
    return 0;
}

/* Appends one value as an SQL literal: NULL, or _binary'...' with the bytes escaped — exact for every
 * column type (numbers and dates parse from the text; strings and BIT take the bytes unchanged). */
static int add_literal(MYSQL *m, char **buf, size_t *len, size_t *cap, const char *v, unsigned long n)
{
    if (grow(buf, cap, *len + 2 * (size_t)n + 16) != 0)
        return -1;
    if (v == NULL) {
        memcpy(*buf + *len, "NULL", 4);
        *len += 4;
        return 0;
    }
    memcpy(*buf + *len, "_binary'", 8);
    *len += 8;
    *len += mysql_real_escape_string(m, *buf + *len, v, n);
    (*buf)[(*len)++] = '\'';
    return 0;
}

/* The key of the last row copied: the read-back value of each key column (raw bytes). */
struct last_key {
    char **v;             /* owned per column; NULL = SQL NULL */
    unsigned long *len;
    size_t *cap;
    bool set;             /* a row was copied: the next chunk starts after it */
};

static int last_key_save(struct last_key *lk, size_t n_key, MYSQL_ROW vals, const unsigned long *lens)
{
    for (size_t k = 0; k < n_key; k++) {
        if (vals[k] == NULL) {
            lk->len[k] = 0;
            free(lk->v[k]);
            lk->v[k] = NULL;
            lk->cap[k] = 0;
            continue;
        }
        if (lk->v[k] == NULL || lk->cap[k] < lens[k] + 1) {
            char *nv = realloc(lk->v[k], lens[k] + 1);
            if (nv == NULL)
                return -1;
            lk->v[k] = nv;
            lk->cap[k] = lens[k] + 1;
        }
        memcpy(lk->v[k], vals[k], lens[k]);
        lk->v[k][lens[k]] = '\0';
        lk->len[k] = lens[k];
    }
    lk->set = true;
    return 0;
}

/* SELECT cols, key read-backs FROM t [WHERE key > last] ORDER BY key LIMIT n, NUL-terminated. */
static void chunk_query(struct sy_buf *q, const struct copy_table *t, const char *cols, const char *qname,
                        const struct last_key *lk, unsigned chunk_rows)
{
    sy_buf_reset(q);
    sy_keyrange_str(q, "SELECT ");
    sy_keyrange_str(q, cols);
    for (size_t k = 0; k < t->n_key; k++) {
        sy_keyrange_str(q, ",");
        sy_keyrange_readback(q, &t->key[k]);
    }
    sy_keyrange_str(q, " FROM ");
    sy_keyrange_str(q, qname);
    if (lk->set) {
        sy_keyrange_str(q, " WHERE ");
        sy_keyrange_bound(q, t->key, t->n_key, (const char *const *)lk->v, lk->len, ">", ">");
    }
    sy_keyrange_str(q, " ORDER BY ");
    sy_keyrange_order(q, t->key, t->n_key);
    char lim[32];
    snprintf(lim, sizeof lim, " LIMIT %u", chunk_rows);
    sy_buf_add(q, lim, strlen(lim) + 1);
}

static int copy_table(struct isync *s, struct copy_table *t)
{
    char qd[600], qt[600], qname[1300];
    sy_mariadb_quote_ident(t->db, qd, sizeof qd);
    sy_mariadb_quote_ident(t->table, qt, sizeof qt);
    snprintf(qname, sizeof qname, "%s.%s", qd, qt);
    unsigned chunk_rows = (unsigned)s->cfg->initial_sync_chunk_rows;
    size_t cols_cap = 64 + t->n_cols * 600;
    char *cols = malloc(cols_cap);
    if (cols == NULL)
        return -1;
    size_t o = 0;
    for (size_t i = 0; i < t->n_cols; i++) {
        char q[600];
        sy_mariadb_quote_ident(t->cols[i], q, sizeof q);
        o += (size_t)snprintf(cols + o, cols_cap - o, "%s%s", i ? "," : "", q);
    }
    struct last_key lk = { calloc(t->n_key + 1, sizeof *lk.v), calloc(t->n_key + 1, sizeof *lk.len),
                           calloc(t->n_key + 1, sizeof *lk.cap), false };
    struct sy_buf q;
    sy_buf_init(&q);
    char *ins = NULL;
    size_t ins_cap = 1 << 16;
    ins = malloc(ins_cap);
    int rc = -1;
    if (lk.v == NULL || lk.len == NULL || lk.cap == NULL || ins == NULL)
        goto out;
    for (;;) {
        if (stopping(s)) {
            rc = 1;
            goto out;
        }
        chunk_query(&q, t, cols, qname, &lk, chunk_rows);
        if (q.oom)
            goto out;
        if (mysql_real_query(s->src, (const char *)q.p, (unsigned long)(q.len - 1)) != 0) {
            snprintf(s->err, sizeof s->err, "reading %s.%s: %u %s", t->db, t->table, mysql_errno(s->src),
                     mysql_error(s->src));
            goto out;
        }
        MYSQL_RES *res = mysql_use_result(s->src);
        if (res == NULL)
            goto out;
        size_t il = (size_t)snprintf(ins, ins_cap, "INSERT INTO %s (", qname);
        if (il + o + 16 > ins_cap) {
            char *ni = realloc(ins, il + o + 16 + ins_cap);
            if (ni == NULL) {
                mysql_free_result(res);
                goto out;
            }
            ins = ni;
            ins_cap += il + o + 16;
        }
        il += (size_t)snprintf(ins + il, ins_cap - il, "%s) VALUES ", cols);
        size_t header = il;
        unsigned long nrows = 0, in_stmt = 0;
        MYSQL_ROW row;
        bool oom = false;
        while ((row = mysql_fetch_row(res)) != NULL) {
            unsigned long *lens = mysql_fetch_lengths(res);
            if (in_stmt && il > INSERT_MAX_BYTES) {
                char err[512];
                if (sy_mariadb_exec(s->dst, err, sizeof err, "%.*s", (int)il, ins) != 0) {
                    snprintf(s->err, sizeof s->err, "writing %s.%s: %s", t->db, t->table, err);
                    oom = true;
                    break;
                }
                il = header;
                in_stmt = 0;
            }
            oom = grow(&ins, &ins_cap, il + 4) != 0;
            if (!oom && in_stmt)
                ins[il++] = ',';
            if (!oom)
                ins[il++] = '(';
            for (size_t c = 0; c < t->n_cols && !oom; c++) {
                if (c)
                    ins[il++] = ',';
                oom = add_literal(s->dst, &ins, &il, &ins_cap, row[c], lens[c]) != 0;
            }
            if (!oom)
                oom = last_key_save(&lk, t->n_key, row + t->n_cols, lens + t->n_cols) != 0;
            if (oom)
                break;
            ins[il++] = ')';
            nrows++;
            in_stmt++;
        }
        if (mysql_errno(s->src) != 0 && !oom) {
            snprintf(s->err, sizeof s->err, "reading %s.%s: %u %s", t->db, t->table, mysql_errno(s->src),
                     mysql_error(s->src));
            oom = true;
        }
        mysql_free_result(res);
        if (oom)
            goto out;
        if (in_stmt) {
            char err[512];
            if (sy_mariadb_exec(s->dst, err, sizeof err, "%.*s", (int)il, ins) != 0) {
                snprintf(s->err, sizeof s->err, "writing %s.%s: %s", t->db, t->table, err);
                goto out;
            }
        }
        char err[512];
        if (sy_mariadb_exec(s->dst, err, sizeof err, "COMMIT") != 0) {
            snprintf(s->err, sizeof s->err, "COMMIT on the destination: %s", err);
            goto out;
        }
        s->done += nrows;
        progress(s);
        if (nrows < chunk_rows)
            break;
    }
    rc = 0;
out:
    for (size_t k = 0; lk.v && k < t->n_key; k++)
        free(lk.v[k]);
    free(lk.v);
    free(lk.len);
    free(lk.cap);
    sy_buf_fini(&q);
    free(ins);
    free(cols);
    return rc;
}

static void tables_free(struct isync *s)
{
    for (size_t i = 0; i < s->n_tables; i++) {
        for (size_t c = 0; c < s->tables[i].n_cols; c++) {
            free(s->tables[i].cols[c]);
            free(s->tables[i].charset[c]);
            free(s->tables[i].collation[c]);
        }
        free(s->tables[i].cols);
        free(s->tables[i].charset);
        free(s->tables[i].collation);
        free(s->tables[i].key);
        free(s->tables[i].key_idx);
    }
    free(s->tables);
    s->tables = NULL;
    s->n_tables = 0;
}

/* One attempt: 0 done, 1 transient failure (retry), -1 hard failure, 2 stopped. */
static int attempt(struct isync *s)
{
    unsigned int e = 0;
    s->done = s->total = 0;
    /* a stop may cut them, from the connect on */
    s->src = sy_mariadb_connect_watched(s->ctx->source, s->cfg, 0, IS_TIMEOUT_S, s->ctx, &s->src_slot, &e, s->err,
                                        sizeof s->err);
    if (s->src == NULL)
        return e == 0 || sy_mariadb_is_transient(e) ? 1 : -1;
    s->dst = sy_mariadb_connect_watched(s->ctx->dest, s->cfg, 0, IS_TIMEOUT_S, s->ctx, &s->dst_slot, &e, s->err,
                                        sizeof s->err);
    if (s->dst == NULL)
        return e == 0 || sy_mariadb_is_transient(e) ? 1 : -1;
    char err[512];
    if (sy_mariadb_exec(s->dst, err, sizeof err,
                        "SET SESSION server_id=%u, foreign_key_checks=0, unique_checks=0, autocommit=0, "
                        "sql_mode='NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION', time_zone='+00:00'",
                        s->cfg->writer_tag) != 0 ||
        sy_mariadb_exec(s->src, err, sizeof err, "SET SESSION time_zone='+00:00'") != 0 ||
        sy_mariadb_exec(s->dst, err, sizeof err, "CREATE DATABASE IF NOT EXISTS " SY_SCHEMA) != 0 ||
        sy_mariadb_exec(s->dst, err, sizeof err,
                        SY_MARIADB_CHECKPOINT_DDL) != 0 ||
        /* a new copy starts a new instance history: no checkpoint of an earlier one applies */
        sy_mariadb_exec(s->dst, err, sizeof err, "DELETE FROM " SY_SCHEMA ".checkpoint WHERE instance='%s'",
                        s->ctx->instance_id) != 0 ||
        sy_mariadb_exec(s->dst, err, sizeof err, "COMMIT") != 0) {
        snprintf(s->err, sizeof s->err, "session setup: %s", err);
        return -1;
    }
    int rc = snapshot(s);
    if (rc != 0)
        return rc == -2 ? -1 : 1;
    if (list_tables(s) != 0 || create_databases(s) != 0)
        return mysql_errno(s->src) && sy_mariadb_is_transient(mysql_errno(s->src)) ? 1 : -1;
    if (count_rows(s) != 0)
        return 1;
    sy_log_info("%s: initial synchronization of %zu table(s), %llu row(s)", s->ctx->instance_id, s->n_tables,
                (unsigned long long)s->total);
    for (size_t i = 0; i < s->n_tables; i++) {
        if (create_table(s, &s->tables[i]) != 0)
            return sy_mariadb_is_transient(mysql_errno(s->dst)) ? 1 : -1;
        rc = copy_table(s, &s->tables[i]);
        if (rc == 1)
            return 2;
        if (rc != 0)
            return (mysql_errno(s->src) && sy_mariadb_is_transient(mysql_errno(s->src))) ||
                           (mysql_errno(s->dst) && sy_mariadb_is_transient(mysql_errno(s->dst)))
                       ? 1
                       : -1;
    }
    if (sy_mariadb_exec(s->src, err, sizeof err, "COMMIT") != 0)
        sy_log_warn("%s: ending the snapshot: %s", s->ctx->instance_id, err);
    return 0;
}

static void *isync_main(void *arg)
{
    struct isync *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->ctx = arg;
    s->cfg = s->ctx->cfg;
    mysql_thread_init();
    int backoff = 200;
    for (;;) {
        s->src_slot = s->dst_slot = -1;
        int rc = attempt(s);
        if (s->src)
            mysql_close(s->src);
        if (s->dst)
            mysql_close(s->dst);
        s->src = s->dst = NULL;
        sy_module_socket_drop(s->ctx, s->src_slot);
        sy_module_socket_drop(s->ctx, s->dst_slot);
        tables_free(s);
        if (rc == 0) {
            sy_module_report_sync_done(s->ctx->report, s->position);
            break;
        }
        if (rc == 2 || stopping(s))
            break;
        if (rc < 0) {
            sy_module_report_failed(s->ctx->report, "initial_sync_failed", "%s", s->err);
            break;
        }
        sy_module_report_retrying(s->ctx->report, "unreachable", "%s (the copy starts again)", s->err);
        sy_module_backoff(s->ctx, &backoff, 2000);
        if (stopping(s))
            break;
        sy_module_report_running(s->ctx->report);
    }
    free(s);
    mysql_thread_end();
    return NULL;
}

const struct sy_module_ops sy_mariadb_initial_sync = { "initial_sync", isync_main };
