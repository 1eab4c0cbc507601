/* The session context a MariaDB DDL statement ran in on the source (from the binlog's Query event),
 * carried opaquely in a DDL change record (core/change.h) from the collector to the writer. Pure. */
#ifndef SY_MARIADB_DDL_CONTEXT_H
#define SY_MARIADB_DDL_CONTEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/change.h"

struct sy_mariadb_ddl_context {
    uint64_t sql_mode;             /* source session sql_mode bits */
    uint16_t charset_client;       /* collation ids of the session (0: not logged) */
    uint16_t collation_connection;
    uint16_t collation_server;
    const char *time_zone;         /* "" = the server's; decoded: NUL-terminated, into the record */
    size_t time_zone_len;
};

/*   varint sql_mode | u16 charset_client | u16 collation_connection | u16 collation_server |
 *   text time_zone
 * (the bytes change records of format 1 held in their DDL fields, so spools written before the
 * context became opaque read the same). Appends to out; -1 when the time zone holds a NUL. */
int sy_mariadb_ddl_context_encode(const struct sy_mariadb_ddl_context *c, struct sy_buf *out) SY_MUST_CHECK;
/* false on anything malformed, trailing bytes included. */
bool sy_mariadb_ddl_context_decode(const uint8_t *p, size_t n, struct sy_mariadb_ddl_context *out);

#endif
