/* The MongoDB engine put together: collection and positions from capture/, write, initial sync, verify
 * and a new owner's takeover from replay/. Parts still NULL are not built yet (core/engine.h): the
 * commands that need them answer not_implemented. */
#include <mongoc/mongoc.h>

#include "core/log.h"

#include "capture/mongo_modules.h"
#include "capture/mongo_precheck.h"
#include "engine/engines.h"
#include "replay/mongo_initial_sync.h"
#include "replay/mongo_modules.h"
#include "replay/mongo_verify.h"

static const struct sy_sync_ops mongo_sync = {
    .initial_sync = &sy_mongo_initial_sync,
    .collection = &sy_mongo_collection,
    .write = &sy_mongo_write,
    .precheck = sy_mongo_precheck,
    .verify = sy_mongo_verify,
    .takeover = sy_mongo_takeover,
    .forget = sy_mongo_forget,
};

static const struct sy_position_ops mongo_position = {
    .current = sy_mongo_source_position,
    .covers = sy_mongo_position_covers,
    .poll = NULL, /* lag from the collector's reports (capture/mongo_position.c says why) */
    .poll_close = NULL,
    .tail_count = NULL,
};

static const struct sy_failover_ops mongo_failover = {
    .fence = sy_mongo_fence,
    .passive_fence_refused = "the server offers no read-only switch that spares Switchyard's writer (FerretDB has "
                             "none); set fence_passive = off: a switch then relies on the proxy's hold, so clients "
                             "must reach the database only through switchyardd",
    .alive = sy_mongo_alive,
    .tail_read = sy_mongo_tail_read,
    .tail_revert = sy_mongo_tail_revert,
};

/* libmongoc's own log lines into ours: it warns on every client destroy that FerretDB refuses
 * `endSessions` (code 59), which is noise; errors stay warnings. */
static void mongo_log(mongoc_log_level_t level, const char *domain, const char *message, void *arg)
{
    if (level <= MONGOC_LOG_LEVEL_ERROR)
        sy_log_warn("libmongoc %s: %s", domain, message);
    else
        sy_log_debug("libmongoc %s: %s", domain, message);
}

static void mongo_library_init(void)
{
    mongoc_init(); /* before any thread uses libmongoc */
    mongoc_log_set_handler(mongo_log, NULL);
}

static void mongo_library_end(void)
{
    mongoc_cleanup();
}

const struct sy_engine_ops sy_mongo_engine = {
    .engine = SY_ENGINE_MONGODB,
    .sync = &mongo_sync,
    .position = &mongo_position,
    .failover = &mongo_failover,
    .library_init = mongo_library_init,
    .library_end = mongo_library_end,
};
