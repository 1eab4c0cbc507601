/* The SQL Server source's positions: where a collection starts now (a reverse instance at creation) and
 * comparing two LSNs. No lag poll: the collector reports lag from cdc.lsn_time_mapping itself. */
#include <stdio.h>

#include "capture/sqlserver_modules.h"
#include "engine/sqlserver_cdc.h"

int sy_sqlserver_source_position(const struct sy_pair_cfg *cfg, const struct sy_endpoint *src, char *out,
                                 size_t outlen, char *err, size_t errlen)
{
    char db[80];
    enum sy_tds_rc rc;
    if (!sy_tds_pair_database(cfg, db, sizeof db, err, errlen))
        return -1;
    struct sy_tds *t = sy_tds_connect(cfg, src, db, err, errlen, &rc);
    if (t == NULL)
        return -1;
    char pos[SY_LSN_TEXT];
    rc = sy_tds_start_position(t, cfg, pos, err, errlen);
    sy_tds_close(t);
    if (rc != SY_TDS_OK)
        return -1;
    snprintf(out, outlen, "%s", pos);
    return 0;
}

bool sy_sqlserver_position_covers(const char *have, const char *want)
{
    return sy_lsn_text_covers(have, want);
}
