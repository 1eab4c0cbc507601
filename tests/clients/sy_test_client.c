/* A real Connector/C client for what PyMySQL cannot do: server-side prepared statements (binary
 * protocol, long data, cursors), COM_CHANGE_USER and COM_RESET_CONNECTION. Prints one line per
 * result for tests/integration to compare with a direct connection; exits 1 on any failure.
 *   sy_test_client HOST PORT USER PASSWORD stmt|change_user USER2 PASS2|reset|script
 * script: one command per stdin line, one or more output lines each, then "." alone:
 *   query SQL      rows ("row a b"), "affected N" or "ERROR ..."; then the tracked system variables
 *                  the server reported ("track name=value") and the schema ("track_schema db")
 *   prepare SQL    server-side prepare (the statement kept for execute)
 *   execute        execute the last prepared statement (no parameters); rows like query
 *   bulk T FIRST N INSERT INTO T (id, v) VALUES (?, ?) for ids FIRST..FIRST+N-1 as one array execute
 *                  (COM_STMT_BULK_EXECUTE when the server offers it); the statement is kept: `bulk`
 *                  again with the same T re-executes it ("bulk_ok N" or "ERROR ...")
 *   longdata N [K] execute the last prepared statement (one parameter) with N bytes 'a'..'z' (cycling) sent
 *                  first as COM_STMT_SEND_LONG_DATA in K calls (default 1; one call of more than 16 MiB
 *                  is one request in several packets, which gets no reply): "longdata_ok affected N" */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mysql.h>

static int fail(MYSQL *m, const char *what)
{
    printf("ERROR %s: %u %s %s\n", what, mysql_errno(m), mysql_sqlstate(m), mysql_error(m));
    return 1;
}

static int stmt_fail(MYSQL_STMT *st, const char *what)
{
    printf("ERROR %s: %u %s %s\n", what, mysql_stmt_errno(st), mysql_stmt_sqlstate(st), mysql_stmt_error(st));
    return 1;
}

/* "row a b ..." per row, or "affected N" for a statement without a result set. */
static void print_result(MYSQL *m, MYSQL_RES *res)
{
    if (res == NULL) {
        printf("affected %llu\n", (unsigned long long)mysql_affected_rows(m));
        return;
    }
    MYSQL_ROW row;
    unsigned n = mysql_num_fields(res);
    while ((row = mysql_fetch_row(res)) != NULL) {
        printf("row");
        for (unsigned i = 0; i < n; i++)
            printf(" %s", row[i] ? row[i] : "NULL");
        printf("\n");
    }
    mysql_free_result(res);
}

static int query_print(MYSQL *m, const char *sql)
{
    if (mysql_query(m, sql) != 0)
        return fail(m, sql);
    print_result(m, mysql_store_result(m));
    return 0;
}

static int run_stmt(MYSQL *m)
{
    if (mysql_query(m, "CREATE DATABASE IF NOT EXISTS sy_client") || mysql_query(m, "USE sy_client") ||
        mysql_query(m, "DROP TABLE IF EXISTS ps") ||
        mysql_query(m, "CREATE TABLE ps (id INT PRIMARY KEY, name VARCHAR(64), price DECIMAL(10,2), doc LONGBLOB)"))
        return fail(m, "setup");
    MYSQL_STMT *st = mysql_stmt_init(m);
    const char *ins = "INSERT INTO ps (id, name, price, doc) VALUES (?, ?, ?, ?)";
    if (mysql_stmt_prepare(st, ins, strlen(ins)))
        return stmt_fail(st, "prepare insert");
    printf("params %lu\n", mysql_stmt_param_count(st));
    for (int id = 1; id <= 3; id++) {
        MYSQL_BIND b[4];
        memset(b, 0, sizeof b);
        char name[32];
        unsigned long name_len = (unsigned long)snprintf(name, sizeof name, "item-%d", id);
        char price[16] = "12.50";
        unsigned long price_len = strlen(price);
        my_bool null_doc = id == 3;
        b[0].buffer_type = MYSQL_TYPE_LONG;
        b[0].buffer = &id;
        b[1].buffer_type = MYSQL_TYPE_STRING;
        b[1].buffer = name;
        b[1].length = &name_len;
        b[2].buffer_type = MYSQL_TYPE_NEWDECIMAL;
        b[2].buffer = price;
        b[2].length = &price_len;
        b[3].buffer_type = MYSQL_TYPE_BLOB;
        b[3].is_null = &null_doc;
        if (mysql_stmt_bind_param(st, b))
            return stmt_fail(st, "bind");
        if (id == 2) { /* long data in pieces for row 2 */
            char chunk[1000];
            memset(chunk, 'z', sizeof chunk);
            for (int i = 0; i < 300; i++)
                if (mysql_stmt_send_long_data(st, 3, chunk, sizeof chunk))
                    return stmt_fail(st, "send_long_data");
        }
        if (mysql_stmt_execute(st))
            return stmt_fail(st, "execute insert");
        printf("inserted %d affected %llu\n", id, (unsigned long long)mysql_stmt_affected_rows(st));
    }
    mysql_stmt_close(st);
    /* A cursor: rows come through COM_STMT_FETCH, two at a time. */
    st = mysql_stmt_init(m);
    const char *sel = "SELECT id, name, price, LENGTH(doc) FROM ps WHERE id >= ? ORDER BY id";
    unsigned long cursor = CURSOR_TYPE_READ_ONLY, prefetch = 2;
    mysql_stmt_attr_set(st, STMT_ATTR_CURSOR_TYPE, &cursor);
    mysql_stmt_attr_set(st, STMT_ATTR_PREFETCH_ROWS, &prefetch);
    if (mysql_stmt_prepare(st, sel, strlen(sel)))
        return stmt_fail(st, "prepare select");
    int from = 1;
    MYSQL_BIND p;
    memset(&p, 0, sizeof p);
    p.buffer_type = MYSQL_TYPE_LONG;
    p.buffer = &from;
    if (mysql_stmt_bind_param(st, &p) || mysql_stmt_execute(st))
        return stmt_fail(st, "execute select");
    int id;
    char name[65], price[20];
    long long doclen;
    unsigned long name_len, price_len;
    my_bool doc_null, name_null, price_null;
    MYSQL_BIND r[4];
    memset(r, 0, sizeof r);
    r[0].buffer_type = MYSQL_TYPE_LONG;
    r[0].buffer = &id;
    r[1].buffer_type = MYSQL_TYPE_STRING;
    r[1].buffer = name;
    r[1].buffer_length = sizeof name;
    r[1].length = &name_len;
    r[1].is_null = &name_null;
    r[2].buffer_type = MYSQL_TYPE_STRING;
    r[2].buffer = price;
    r[2].buffer_length = sizeof price;
    r[2].length = &price_len;
    r[2].is_null = &price_null;
    r[3].buffer_type = MYSQL_TYPE_LONGLONG;
    r[3].buffer = &doclen;
    r[3].is_null = &doc_null;
    if (mysql_stmt_bind_result(st, r))
        return stmt_fail(st, "bind result");
    int rc;
    while ((rc = mysql_stmt_fetch(st)) == 0)
        printf("row %d %.*s %.*s %s%lld\n", id, (int)name_len, name, (int)price_len, price, doc_null ? "NULL" : "",
               doc_null ? 0LL : doclen);
    if (rc != MYSQL_NO_DATA)
        return stmt_fail(st, "fetch");
    mysql_stmt_close(st);
    /* An error through the binary protocol. */
    st = mysql_stmt_init(m);
    const char *dup = "INSERT INTO ps (id) VALUES (1)";
    if (mysql_stmt_prepare(st, dup, strlen(dup)))
        return stmt_fail(st, "prepare dup");
    if (mysql_stmt_execute(st) == 0) {
        printf("ERROR duplicate insert succeeded\n");
        return 1;
    }
    printf("dup %u %s %s\n", mysql_stmt_errno(st), mysql_stmt_sqlstate(st), mysql_stmt_error(st));
    mysql_stmt_close(st);
    return query_print(m, "SELECT COUNT(*), SUM(LENGTH(doc)) FROM ps");
}

/* Session state that must survive a switch: builds it, prints "ready", waits for a line on stdin (the
 * test switches meanwhile), then uses it again with the same prepared statement, no re-binding. */
static int run_switch_state(MYSQL *m, const char *db)
{
    char use[300];
    snprintf(use, sizeof use, "USE `%s`", db);
    if (query_print(m, use) || query_print(m, "SET SESSION sql_mode = 'ANSI_QUOTES,NO_ENGINE_SUBSTITUTION'") ||
        query_print(m, "SET time_zone = '+05:30'") || query_print(m, "SET @greeting = 'h\xc3\xa9llo', @n = 41"))
        return 1;
    MYSQL_STMT *st = mysql_stmt_init(m);
    const char *sql = "SELECT ? + @n, @greeting, @@session.time_zone, @@session.sql_mode, DATABASE(), "
                      "@@global.read_only";
    if (mysql_stmt_prepare(st, sql, strlen(sql)) != 0)
        return stmt_fail(st, "prepare");
    long long in = 1;
    MYSQL_BIND pb = { .buffer_type = MYSQL_TYPE_LONGLONG, .buffer = &in };
    if (mysql_stmt_bind_param(st, &pb) != 0)
        return stmt_fail(st, "bind");
    for (int round = 0; round < 2; round++) {
        if (round == 1) {
            printf("ready\n");
            fflush(stdout);
            char line[16];
            if (fgets(line, sizeof line, stdin) == NULL)
                return 1;
        }
        if (mysql_stmt_execute(st) != 0)
            return stmt_fail(st, "execute");
        long long sum = 0, ro = 0;
        char greet[64] = "", tz[64] = "", mode[256] = "", dbn[128] = "";
        unsigned long l[6] = { 0 };
        MYSQL_BIND rb[6] = {
            { .buffer_type = MYSQL_TYPE_LONGLONG, .buffer = &sum, .length = &l[0] },
            { .buffer_type = MYSQL_TYPE_STRING, .buffer = greet, .buffer_length = sizeof greet - 1, .length = &l[1] },
            { .buffer_type = MYSQL_TYPE_STRING, .buffer = tz, .buffer_length = sizeof tz - 1, .length = &l[2] },
            { .buffer_type = MYSQL_TYPE_STRING, .buffer = mode, .buffer_length = sizeof mode - 1, .length = &l[3] },
            { .buffer_type = MYSQL_TYPE_STRING, .buffer = dbn, .buffer_length = sizeof dbn - 1, .length = &l[4] },
            { .buffer_type = MYSQL_TYPE_LONGLONG, .buffer = &ro, .length = &l[5] },
        };
        if (mysql_stmt_bind_result(st, rb) != 0 || mysql_stmt_store_result(st) != 0)
            return stmt_fail(st, "result");
        if (mysql_stmt_fetch(st) != 0)
            return stmt_fail(st, "fetch");
        printf("state %lld %s %s %s %s read_only=%lld\n", sum, greet, tz, mode, dbn, ro);
        mysql_stmt_free_result(st);
    }
    mysql_stmt_close(st);
    return 0;
}

static void print_tracking(MYSQL *m)
{
    const char *d, *v;
    size_t l, vl;
    if (mysql_session_track_get_first(m, SESSION_TRACK_SYSTEM_VARIABLES, &d, &l) == 0) {
        do {
            if (mysql_session_track_get_next(m, SESSION_TRACK_SYSTEM_VARIABLES, &v, &vl) != 0)
                break;
            printf("track %.*s=%.*s\n", (int)l, d, (int)vl, v);
        } while (mysql_session_track_get_next(m, SESSION_TRACK_SYSTEM_VARIABLES, &d, &l) == 0);
    }
    if (mysql_session_track_get_first(m, SESSION_TRACK_SCHEMA, &d, &l) == 0)
        printf("track_schema %.*s\n", (int)l, d);
}

/* One array execute of INSERT INTO table (id, v) VALUES (?, ?); *bst is prepared on first use. */
static void run_bulk(MYSQL *m, MYSQL_STMT **bst, const char *table, int first, unsigned n)
{
    if (*bst == NULL) {
        char sql[300];
        snprintf(sql, sizeof sql, "INSERT INTO %s (id, v) VALUES (?, ?)", table);
        *bst = mysql_stmt_init(m);
        if (mysql_stmt_prepare(*bst, sql, strlen(sql)) != 0) {
            printf("ERROR %u %s %s\n", mysql_stmt_errno(*bst), mysql_stmt_sqlstate(*bst), mysql_stmt_error(*bst));
            mysql_stmt_close(*bst);
            *bst = NULL;
            return;
        }
    }
    int *ids = calloc(n, sizeof *ids);
    char *vals = calloc(n, 16);
    char **ptrs = calloc(n, sizeof *ptrs); /* column-wise strings: an array of pointers */
    unsigned long *lens = calloc(n, sizeof *lens);
    if (ids == NULL || vals == NULL || ptrs == NULL || lens == NULL) {
        printf("ERROR out of memory\n");
    } else {
        for (unsigned i = 0; i < n; i++) {
            ids[i] = first + (int)i;
            lens[i] = (unsigned long)snprintf(vals + 16 * i, 16, "bulk-%d", ids[i]);
            ptrs[i] = vals + 16 * i;
        }
        MYSQL_BIND b[2];
        memset(b, 0, sizeof b);
        b[0].buffer_type = MYSQL_TYPE_LONG;
        b[0].buffer = ids;
        b[1].buffer_type = MYSQL_TYPE_STRING;
        b[1].buffer = ptrs;
        b[1].length = lens;
        size_t row_size = 0; /* column-wise arrays */
        if (mysql_stmt_attr_set(*bst, STMT_ATTR_ARRAY_SIZE, &n) != 0 ||
            mysql_stmt_attr_set(*bst, STMT_ATTR_ROW_SIZE, &row_size) != 0 || mysql_stmt_bind_param(*bst, b) != 0 ||
            mysql_stmt_execute(*bst) != 0)
            printf("ERROR %u %s %s\n", mysql_stmt_errno(*bst), mysql_stmt_sqlstate(*bst), mysql_stmt_error(*bst));
        else
            printf("bulk_ok %llu\n", (unsigned long long)mysql_stmt_affected_rows(*bst));
    }
    free(ids);
    free(vals);
    free(ptrs);
    free(lens);
}

/* The last prepared statement (one parameter) executed with n bytes sent as long data in k pieces. */
static void run_longdata(MYSQL_STMT *st, size_t n, unsigned k)
{
    char *data = malloc(n ? n : 1);
    if (data == NULL) {
        printf("ERROR out of memory\n");
        return;
    }
    for (size_t i = 0; i < n; i++)
        data[i] = (char)('a' + i % 26);
    MYSQL_BIND b;
    memset(&b, 0, sizeof b);
    b.buffer_type = MYSQL_TYPE_LONG_BLOB; /* no buffer: the value is what was sent as long data */
    if (mysql_stmt_bind_param(st, &b) != 0)
        goto err;
    for (unsigned i = 0; i < k; i++) {
        size_t from = n / k * i, to = i + 1 == k ? n : n / k * (i + 1);
        if (mysql_stmt_send_long_data(st, 0, data + from, to - from) != 0)
            goto err;
    }
    if (mysql_stmt_execute(st) != 0 || mysql_stmt_store_result(st) != 0)
        goto err;
    printf("longdata_ok affected %llu\n", (unsigned long long)mysql_stmt_affected_rows(st));
    mysql_stmt_free_result(st);
    free(data);
    return;
err:
    printf("ERROR %u %s %s\n", mysql_stmt_errno(st), mysql_stmt_sqlstate(st), mysql_stmt_error(st));
    free(data);
}

static int run_script(MYSQL *m)
{
    char line[8192];
    MYSQL_STMT *st = NULL, *bst = NULL;
    while (fgets(line, sizeof line, stdin) != NULL) {
        line[strcspn(line, "\n")] = '\0';
        if (strncmp(line, "query ", 6) == 0) {
            const char *sql = line + 6;
            if (mysql_query(m, sql) != 0) {
                printf("ERROR %u %s %s\n", mysql_errno(m), mysql_sqlstate(m), mysql_error(m));
            } else {
                do {
                    print_result(m, mysql_store_result(m));
                    print_tracking(m);
                } while (mysql_next_result(m) == 0);
                if (mysql_errno(m))
                    printf("ERROR %u %s %s\n", mysql_errno(m), mysql_sqlstate(m), mysql_error(m));
            }
        } else if (strncmp(line, "prepare ", 8) == 0) {
            if (st != NULL)
                mysql_stmt_close(st);
            st = mysql_stmt_init(m);
            if (mysql_stmt_prepare(st, line + 8, strlen(line + 8)) != 0)
                printf("ERROR %u %s %s\n", mysql_stmt_errno(st), mysql_stmt_sqlstate(st), mysql_stmt_error(st));
            else
                printf("prepared %lu\n", mysql_stmt_param_count(st));
        } else if (strcmp(line, "execute") == 0 && st != NULL) {
            if (mysql_stmt_execute(st) != 0 || mysql_stmt_store_result(st) != 0) {
                printf("ERROR %u %s %s\n", mysql_stmt_errno(st), mysql_stmt_sqlstate(st), mysql_stmt_error(st));
            } else {
                printf("executed rows %llu\n", (unsigned long long)mysql_stmt_num_rows(st));
                mysql_stmt_free_result(st);
                while (mysql_stmt_next_result(st) == 0)
                    mysql_stmt_free_result(st);
            }
        } else if (strncmp(line, "longdata ", 9) == 0 && st != NULL) {
            unsigned long long n;
            unsigned k = 1;
            int got = sscanf(line + 9, "%llu %u", &n, &k);
            if (got >= 1 && k > 0 && n <= (1ull << 30))
                run_longdata(st, (size_t)n, k);
            else
                printf("ERROR usage: longdata N [K]\n");
        } else if (strncmp(line, "bulk ", 5) == 0) {
            char table[200];
            int first;
            unsigned n;
            if (sscanf(line + 5, "%199s %d %u", table, &first, &n) == 3 && n > 0)
                run_bulk(m, &bst, table, first, n);
            else
                printf("ERROR usage: bulk TABLE FIRST N\n");
        } else {
            printf("ERROR unknown command\n");
        }
        printf(".\n");
        fflush(stdout);
    }
    if (st != NULL)
        mysql_stmt_close(st);
    if (bst != NULL)
        mysql_stmt_close(bst);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 6) {
        fprintf(stderr, "usage: sy_test_client HOST PORT USER PASSWORD stmt|change_user U P|reset\n");
        return 2;
    }
    MYSQL *m = mysql_init(NULL);
    unsigned int proto = MYSQL_PROTOCOL_TCP;
    mysql_optionsv(m, MYSQL_OPT_PROTOCOL, &proto);
    my_bool local_infile = 1;
    mysql_optionsv(m, MYSQL_OPT_LOCAL_INFILE, &local_infile);
    if (getenv("SY_TEST_COMPRESS") != NULL) /* the compressed protocol (CLIENT_COMPRESS) */
        mysql_optionsv(m, MYSQL_OPT_COMPRESS, NULL);
    const char *rt = getenv("SY_TEST_READ_TIMEOUT"); /* seconds: a reply that never comes is an error (2013) */
    unsigned int read_timeout = rt ? (unsigned)atoi(rt) : 0;
    if (read_timeout > 0)
        mysql_optionsv(m, MYSQL_OPT_READ_TIMEOUT, &read_timeout);
    if (!mysql_real_connect(m, argv[1], argv[3], argv[4], NULL, (unsigned)atoi(argv[2]), NULL, CLIENT_MULTI_STATEMENTS))
        return fail(m, "connect");
    int rc = 1;
    if (strcmp(argv[5], "stmt") == 0) {
        rc = run_stmt(m);
    } else if (strcmp(argv[5], "change_user") == 0 && argc >= 8) {
        rc = query_print(m, "SELECT CURRENT_USER()") || query_print(m, "SET @v := 42") ||
             query_print(m, "SELECT @v");
        if (rc == 0 && mysql_change_user(m, argv[6], argv[7], NULL) != 0) {
            rc = fail(m, "change_user");
        } else if (rc == 0) {
            printf("changed\n");
            rc = query_print(m, "SELECT CURRENT_USER(), @v");
        }
        if (rc == 0 && mysql_change_user(m, argv[6], "wrong-password", NULL) != 0)
            printf("change_user_wrong %u %s %s\n", mysql_errno(m), mysql_sqlstate(m), mysql_error(m));
    } else if (strcmp(argv[5], "switch_state") == 0 && argc >= 7) {
        rc = run_switch_state(m, argv[6]);
    } else if (strcmp(argv[5], "script") == 0) {
        rc = run_script(m);
    } else if (strcmp(argv[5], "reset") == 0) {
        rc = query_print(m, "SET @v := 7") || query_print(m, "SELECT @v");
        if (rc == 0 && mysql_reset_connection(m) != 0)
            rc = fail(m, "reset_connection");
        else if (rc == 0)
            rc = query_print(m, "SELECT @v") || query_print(m, "SELECT 1");
    } else {
        fprintf(stderr, "unknown mode %s\n", argv[5]);
        rc = 2;
    }
    mysql_close(m);
    printf("%s\n", rc == 0 ? "DONE" : "FAILED");
    return rc;
}
