/* Writes the seed corpus of fuzz_change into fuzz/corpus/fuzz_change/ (or the directory given as
 * argv[1]): one encoded change of every kind, and rows holding every value type, made with the real
 * encoder so the seeds follow the format. Deterministic; rewrites the files it owns.
 *   cc -std=c11 -D_GNU_SOURCE -I. fuzz/make_change_seeds.c core/change.c engine/mariadb_ddl_context.c -o /tmp/mk && /tmp/mk */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/change.h"
#include "engine/mariadb_ddl_context.h"

static const char *out_dir = "fuzz/corpus/fuzz_change";

static void emit_bytes(const char *name, const uint8_t *p, size_t len)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", out_dir, name);
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(p, 1, len, f) != len || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
}

static void emit(const char *name, const struct sy_change *c)
{
    struct sy_buf b;
    sy_buf_init(&b);
    if (sy_change_encode(c, &b) != 0) {
        fprintf(stderr, "%s: cannot encode\n", name);
        exit(1);
    }
    emit_bytes(name, b.p, b.len);
    sy_buf_fini(&b);
}

static struct sy_change base(enum sy_change_kind kind, const char *pos)
{
    struct sy_change c;
    memset(&c, 0, sizeof c);
    c.kind = kind;
    c.source_time_ms = 1700000000000ull;
    c.position = pos;
    c.position_len = strlen(pos);
    return c;
}

int main(int argc, char **argv)
{
    if (argc > 1)
        out_dir = argv[1];

    struct sy_change c = base(SY_CHANGE_TXN_BEGIN, "0-10-5");
    emit("txn_begin", &c);
    c = base(SY_CHANGE_TXN_COMMIT, "0-10-5,1-20-7");
    emit("txn_commit", &c);
    c = base(SY_CHANGE_POSITION, "0-10-6");
    emit("position", &c);

    static const struct sy_column cols[] = {
        { .name = "id", .name_len = 2, .source_type = 8, .flags = SY_COL_KEY | SY_COL_UNSIGNED },
        { .name = "name", .name_len = 4, .source_type = 15, .flags = SY_COL_NULLABLE, .charset = 224 },
        { .name = "price", .name_len = 5, .source_type = 246, .flags = SY_COL_NULLABLE },
        { .name = "at", .name_len = 2, .source_type = 18 },
    };
    c = base(SY_CHANGE_TABLE, "");
    c.u.table.table_id = 70;
    c.u.table.db = "shop";
    c.u.table.db_len = 4;
    c.u.table.table = "orders";
    c.u.table.table_len = 6;
    c.u.table.n_columns = 4;
    c.u.table.columns = cols;
    emit("table", &c);

    struct sy_value before[4] = {
        { .type = SY_VAL_UINT, .u = 42 },
        { .type = SY_VAL_STRING, .p = (const uint8_t *)"caf\xc3\xa9", .len = 5, .charset = 224 },
        { .type = SY_VAL_DECIMAL, .p = (const uint8_t *)"-12.50", .len = 6 },
        { .type = SY_VAL_TEMPORAL, .p = (const uint8_t *)"2024-02-29 23:59:59.5", .len = 21 },
    };
    struct sy_value after[4] = {
        { .type = SY_VAL_UINT, .u = 42 },
        { .type = SY_VAL_NULL },
        { .type = SY_VAL_DECIMAL, .p = (const uint8_t *)".5", .len = 2 },
        { .type = SY_VAL_TEMPORAL, .p = (const uint8_t *)"-838:59:59", .len = 10 },
    };
    c = base(SY_CHANGE_ROW, "");
    c.u.row.table_id = 70;
    c.u.row.n_columns = 4;
    c.u.row.op = SY_ROW_INSERT;
    c.u.row.after = before;
    emit("row_insert", &c);
    c.u.row.op = SY_ROW_UPDATE;
    c.u.row.before = before;
    c.u.row.after = after;
    emit("row_update", &c);
    c.u.row.op = SY_ROW_DELETE;
    c.u.row.after = NULL;
    emit("row_delete", &c);

    static const uint8_t bin[] = { 0, 1, 0xfe, 0xff };
    struct sy_value nums[7] = {
        { .type = SY_VAL_INT, .i = -1 },
        { .type = SY_VAL_INT, .i = INT64_MIN },
        { .type = SY_VAL_UINT, .u = UINT64_MAX },
        { .type = SY_VAL_FLOAT, .d = 0.25 },
        { .type = SY_VAL_DOUBLE, .d = -1e300 },
        { .type = SY_VAL_BLOB, .p = bin, .len = sizeof bin },
        { .type = SY_VAL_STRING, .p = NULL, .len = 0, .charset = 45 },
    };
    c.u.row.op = SY_ROW_INSERT;
    c.u.row.n_columns = 7;
    c.u.row.before = NULL;
    c.u.row.after = nums;
    emit("row_numbers", &c);

    c = base(SY_CHANGE_DDL, "");
    c.u.ddl.db = "shop";
    c.u.ddl.db_len = 4;
    c.u.ddl.sql = "ALTER TABLE orders ADD COLUMN note VARCHAR(20)";
    c.u.ddl.sql_len = strlen(c.u.ddl.sql);
    struct sy_mariadb_ddl_context session = { .sql_mode = 0x1ea00000ull, .charset_client = 33,
                                              .collation_connection = 224, .collation_server = 8,
                                              .time_zone = "SYSTEM", .time_zone_len = 6 };
    struct sy_buf context;
    sy_buf_init(&context);
    if (sy_mariadb_ddl_context_encode(&session, &context) != 0)
        return 1;
    c.u.ddl.context = context.p;
    c.u.ddl.context_len = context.len;
    emit("ddl", &c);
    sy_buf_fini(&context);

    /* a DDL record of format 1 (its session fields where the context is now, no length): still read */
    static const uint8_t ddl_v1[] = { 1, SY_CHANGE_DDL, 0, 0, 0, 1, 'd', 0, 4, 'D', 'R', 'O', 'P', 0, 0x85, 0x01,
                                      33, 0, 224, 0, 8, 0, 6, 'S', 'Y', 'S', 'T', 'E', 'M', 0 };
    emit_bytes("ddl_format1", ddl_v1, sizeof ddl_v1);

    /* MongoDB: {_id} and the document / an update description */
    static const uint8_t id_doc[] = { 14, 0, 0, 0, 0x10, '_', 'i', 'd', 0, 7, 0, 0, 0, 0 };
    static const uint8_t doc[] = { 5, 0, 0, 0, 0 };
    struct sy_value mbefore[2] = { { .type = SY_VAL_DOCUMENT, .p = id_doc, .len = sizeof id_doc },
                                   { .type = SY_VAL_DOCUMENT, .p = doc, .len = sizeof doc } };
    struct sy_value mafter[2] = { { .type = SY_VAL_DOCUMENT, .p = id_doc, .len = sizeof id_doc },
                                  { .type = SY_VAL_PATCH, .p = doc, .len = sizeof doc } };
    c = base(SY_CHANGE_ROW, "");
    c.u.row.table_id = 9;
    c.u.row.n_columns = 2;
    c.u.row.op = SY_ROW_UPDATE;
    c.u.row.before = mbefore;
    c.u.row.after = mafter;
    emit("row_documents", &c);
    return 0;
}
