/* The MariaDB engine put together: collection and positions from capture/, initial sync, write,
 * verify and tail revert from replay/, fencing and the tail from capture/. */
#include <mysql.h>

#include "capture/mariadb_modules.h"
#include "capture/mariadb_precheck.h"
#include "capture/mariadb_tail.h"
#include "engine/engines.h"
#include "replay/mariadb_modules.h"
#include "replay/mariadb_tail_revert.h"
#include "replay/mariadb_verify.h"

static const struct sy_sync_ops mariadb_sync = {
    .initial_sync = &sy_mariadb_initial_sync,
    .collection = &sy_mariadb_collection,
    .write = &sy_mariadb_write,
    .precheck = sy_mariadb_precheck,
    .verify = sy_mariadb_verify,
    .takeover = sy_mariadb_takeover,
    .forget = sy_mariadb_forget,
};

static const struct sy_position_ops mariadb_position = {
    .current = sy_mariadb_source_position,
    .covers = sy_mariadb_position_covers,
    .poll = sy_mariadb_position_poll,
    .poll_close = sy_mariadb_position_poll_close,
    .tail_count = sy_mariadb_tail_count,
};

static const struct sy_failover_ops mariadb_failover = {
    .fence = sy_mariadb_fence,
    .alive = sy_mariadb_alive,
    .tail_read = sy_mariadb_tail_read,
    .tail_revert = sy_mariadb_tail_revert,
};

static void mariadb_library_init(void)
{
    mysql_library_init(0, NULL, NULL); /* before any thread uses Connector/C */
}

static void mariadb_library_end(void)
{
    mysql_library_end();
}

const struct sy_engine_ops sy_mariadb_engine = {
    .engine = SY_ENGINE_MARIADB,
    .sync = &mariadb_sync,
    .position = &mariadb_position,
    .failover = &mariadb_failover,
    .library_init = mariadb_library_init,
    .library_end = mariadb_library_end,
};
