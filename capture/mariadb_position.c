/* The MariaDB source's current position (@@gtid_binlog_pos): where a new reverse instance starts
 * collecting, so that only what is written to DR after its creation is synchronized (rule 2). */
#include <stdio.h>
#include <string.h>

#include <mysql.h>

#include "capture/mariadb_modules.h"
#include "core/gtid_set.h"
#include "core/mariadb_client.h"

int sy_mariadb_source_position(const struct sy_pair_cfg *cfg, const struct sy_endpoint *src, char *out,
                               size_t outlen, char *err, size_t errlen)
{
    MYSQL *m = sy_mariadb_connect(src, cfg, 0, 5, NULL, err, errlen);
    if (m == NULL)
        return -1;
    bool found = false;
    int rc = sy_mariadb_value(m, out, outlen, &found, err, errlen, "SELECT @@global.gtid_binlog_pos");
    mysql_close(m);
    return rc;
}

bool sy_mariadb_position_covers(const char *have, const char *want)
{
    struct sy_gtid_set h, w;
    return sy_gtid_set_parse(have, strlen(have), &h) && sy_gtid_set_parse(want, strlen(want), &w) &&
           sy_gtid_set_covers(&h, &w);
}
