/* Fencing a MariaDB side: read_only = ON keeps everyone but accounts with READ ONLY ADMIN (Switchyard's
 * writer) from writing it. Setting it takes the global read lock for a moment, so it returns only
 * after the commits in flight finished: the position read right after is final. lock_wait_timeout
 * bounds the wait behind a long-running write statement. */
#include <stdio.h>

#include <mysql.h>

#include "capture/mariadb_modules.h"
#include "engine/mariadb_client.h"

int sy_mariadb_fence(const struct sy_pair_cfg *cfg, const struct sy_endpoint *ep, bool on, int wait_ms, char *pos,
                     size_t poslen, char *err, size_t errlen)
{
    int wait_s = (wait_ms + 999) / 1000;
    if (wait_s < 1)
        wait_s = 1;
    MYSQL *m = sy_mariadb_connect(ep, cfg, 0, wait_s + 2, NULL, err, errlen);
    if (m == NULL)
        return -1;
    char cur[16] = "";
    bool found = false;
    int rc = sy_mariadb_value(m, cur, sizeof cur, &found, err, errlen, "SELECT @@global.read_only");
    bool is_on = rc == 0 && found && cur[0] == '1';
    if (rc == 0 && is_on != on)
        rc = sy_mariadb_exec(m, err, errlen, "SET SESSION lock_wait_timeout = %d", wait_s);
    if (rc == 0 && is_on != on)
        rc = sy_mariadb_exec(m, err, errlen, "SET GLOBAL read_only = %s", on ? "ON" : "OFF");
    if (rc == 0 && pos != NULL)
        rc = sy_mariadb_value(m, pos, poslen, &found, err, errlen, "SELECT @@global.gtid_binlog_pos");
    mysql_close(m);
    return rc;
}

bool sy_mariadb_alive(const struct sy_pair_cfg *cfg, const struct sy_endpoint *ep, int timeout_ms)
{
    char err[256];
    int t = (timeout_ms + 999) / 1000;
    MYSQL *m = sy_mariadb_connect(ep, cfg, 0, t < 1 ? 1 : t, NULL, err, sizeof err);
    if (m == NULL)
        return false;
    bool alive = mysql_query(m, "SELECT 1") == 0;
    if (alive) {
        MYSQL_RES *r = mysql_store_result(m);
        mysql_free_result(r);
    }
    mysql_close(m);
    return alive;
}
