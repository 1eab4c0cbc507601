/* MariaDB DDL session context <-> bytes (engine/mariadb_ddl_context.h). */
#include "engine/mariadb_ddl_context.h"

#include <string.h>

#include "core/rd.h"

int sy_mariadb_ddl_context_encode(const struct sy_mariadb_ddl_context *c, struct sy_buf *out)
{
    sy_buf_put_varint(out, c->sql_mode);
    sy_buf_put_le(out, c->charset_client, 2);
    sy_buf_put_le(out, c->collation_connection, 2);
    sy_buf_put_le(out, c->collation_server, 2);
    return sy_buf_put_text(out, c->time_zone, c->time_zone_len, true);
}

bool sy_mariadb_ddl_context_decode(const uint8_t *p, size_t n, struct sy_mariadb_ddl_context *out)
{
    struct sy_rd r = sy_rd_make(p, n);
    memset(out, 0, sizeof *out);
    out->sql_mode = sy_change_read_varint(&r);
    out->charset_client = sy_rd_u16le(&r);
    out->collation_connection = sy_rd_u16le(&r);
    out->collation_server = sy_rd_u16le(&r);
    out->time_zone = sy_change_read_text(&r, &out->time_zone_len, true);
    if (r.bad || sy_rd_left(&r) != 0) {
        memset(out, 0, sizeof *out);
        out->time_zone = "";
        return false;
    }
    return true;
}
