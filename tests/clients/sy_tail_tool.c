/* Drives the unreplicated-tail functions for tests/integration/test_tail.py:
 *   sy_tail_tool read   host=H port=P user=U password=W objects=db.*,db2.t writer_tag=N
 *                       collector_server_id=N from=GTIDSET          -> the tail JSON on stdout
 *   sy_tail_tool revert host=H port=P user=U password=W writer_tag=N tail=FILE
 *                                                                   -> the result JSON on stdout
 *   sy_tail_tool export tail=FILE path=PATH
 * engine=sqlserver (read, revert): the SQL Server ones (capture/sqlserver_tail.c, replay/sqlserver_tail_revert.c;
 * from= an LSN) for tests/integration/test_sqlserver_sync.py against the double.
 * Exit 0 on success; 1 with "ERROR: ..." on stderr (revert prints its result first). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <mysql.h>

#include "capture/mariadb_tail.h"
#include "capture/sqlserver_modules.h"
#include "core/config.h"
#include "core/tail_export.h"
#include "engine/sqlserver_client.h"
#include "replay/mariadb_tail_revert.h"
#include "replay/sqlserver_modules.h"

static const char *arg(int argc, char **argv, const char *name, const char *def)
{
    size_t n = strlen(name);
    for (int i = 2; i < argc; i++)
        if (strncmp(argv[i], name, n) == 0 && argv[i][n] == '=')
            return argv[i] + n + 1;
    return def;
}

static int fail(const char *msg)
{
    fprintf(stderr, "ERROR: %s\n", msg);
    return 1;
}

static int objects_parse(const char *s, struct sy_pair_cfg *cfg)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", s);
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *dot = strchr(tok, '.');
        if (dot == NULL || cfg->n_objects == SY_MAX_OBJECTS)
            return -1;
        *dot = '\0';
        struct sy_object_pattern *o = &cfg->objects[cfg->n_objects++];
        snprintf(o->db, sizeof o->db, "%s", tok);
        snprintf(o->table, sizeof o->table, "%s", dot + 1);
    }
    return 0;
}

static void print_json(const json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (s)
        printf("%s\n", s);
    free(s);
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return fail("usage: sy_tail_tool read|revert|export key=value...");
    const char *cmd = argv[1];
    static struct sy_pair_cfg cfg;
    struct sy_endpoint ep;
    memset(&ep, 0, sizeof ep);
    snprintf(cfg.name, sizeof cfg.name, "test");
    snprintf(cfg.admin_user, sizeof cfg.admin_user, "%s", arg(argc, argv, "user", "switchyard"));
    snprintf(cfg.admin_password, sizeof cfg.admin_password, "%s", arg(argc, argv, "password", ""));
    snprintf(ep.host, sizeof ep.host, "%s", arg(argc, argv, "host", "127.0.0.1"));
    ep.port = (uint16_t)atoi(arg(argc, argv, "port", "3306"));
    cfg.writer_tag = (uint32_t)strtoul(arg(argc, argv, "writer_tag", "4002"), NULL, 10);
    cfg.collector_server_id = (uint32_t)strtoul(arg(argc, argv, "collector_server_id", "4001"), NULL, 10);
    if (objects_parse(arg(argc, argv, "objects", ""), &cfg) != 0)
        return fail("bad objects");
    char err[2048];
    int rc = 1;
    bool tds = strcmp(arg(argc, argv, "engine", "mariadb"), "sqlserver") == 0;
    mysql_library_init(0, NULL, NULL);
    if (tds)
        sy_tds_library_init();
    if (strcmp(cmd, "read") == 0) {
        json_t *out = json_object();
        const char *from = arg(argc, argv, "from", "");
        if ((tds ? sy_sqlserver_tail_read(&cfg, &ep, from, "", out, err, sizeof err)
                 : sy_mariadb_tail_read(&cfg, &ep, from, "", out, err, sizeof err)) == 0) {
            print_json(out);
            rc = 0;
        } else {
            rc = fail(err);
        }
        json_decref(out);
    } else if (strcmp(cmd, "revert") == 0 || strcmp(cmd, "export") == 0) {
        json_error_t je;
        json_t *tail = json_load_file(arg(argc, argv, "tail", ""), 0, &je);
        if (tail == NULL) {
            snprintf(err, sizeof err, "tail: %s:%d: %s", je.source, je.line, je.text);
            rc = fail(err);
        } else if (strcmp(cmd, "revert") == 0) {
            json_t *result = json_object();
            int r = tds ? sy_sqlserver_tail_revert(&cfg, &ep, tail, result, err, sizeof err)
                        : sy_mariadb_tail_revert(&cfg, &ep, tail, result, err, sizeof err);
            print_json(result);
            rc = r == 0 ? 0 : fail(err);
            json_decref(result);
        } else {
            rc = sy_tail_export(tail, arg(argc, argv, "path", ""), err, sizeof err) == 0 ? 0 : fail(err);
        }
        json_decref(tail);
    } else {
        rc = fail("unknown command (read, revert, export)");
    }
    mysql_library_end();
    return rc;
}
