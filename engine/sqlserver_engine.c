/* The SQL Server engine put together: CDC collection, positions and the precheck from capture/, write and
 * initial sync and verify from replay/, db-lib's set-up from engine/sqlserver_client.h, the fence from
 * engine/sqlserver_fence.c (DENY to the application's users), the failover's tail (capture/sqlserver_tail.c,
 * replay/sqlserver_tail_revert.c), a new owner's takeover (replay/sqlserver_takeover.c). The lag poll is not
 * built (lag comes from the collector). */
#include "capture/sqlserver_modules.h"
#include "engine/engines.h"
#include "engine/sqlserver_client.h"
#include "engine/sqlserver_fence.h"
#include "replay/sqlserver_modules.h"
#include "replay/sqlserver_verify.h"

static const struct sy_sync_ops sqlserver_sync = {
    .initial_sync = &sy_sqlserver_initial_sync,
    .collection = &sy_sqlserver_collection,
    .write = &sy_sqlserver_write,
    .precheck = sy_sqlserver_precheck,
    .verify = sy_sqlserver_verify,
    .takeover = sy_sqlserver_takeover,
    .forget = sy_sqlserver_forget,
};

static const struct sy_position_ops sqlserver_position = {
    .current = sy_sqlserver_source_position,
    .covers = sy_sqlserver_position_covers,
    .poll = NULL, /* lag from the collector's reports (cdc.lsn_time_mapping) */
    .poll_close = NULL,
    .tail_count = NULL,
};

/* The fence (engine/sqlserver_fence.c): DENY INSERT, UPDATE, DELETE to the application's database users,
 * which spares Switchyard's writer, so the passive side can be kept fenced. The failover's tail from CDC
 * (capture/sqlserver_tail.c), reverted by copying DR's rows (replay/sqlserver_tail_revert.c). */
static const struct sy_failover_ops sqlserver_failover = {
    .fence = sy_sqlserver_fence,
    .passive_fence_refused = NULL,
    .alive = sy_sqlserver_alive,
    .tail_read = sy_sqlserver_tail_read,
    .tail_revert = sy_sqlserver_tail_revert,
};

const struct sy_engine_ops sy_sqlserver_engine = {
    .engine = SY_ENGINE_SQLSERVER,
    .sync = &sqlserver_sync,
    .position = &sqlserver_position,
    .failover = &sqlserver_failover,
    .library_init = sy_tds_library_init,
    .library_end = sy_tds_library_end,
};
