/* The MongoDB engine put together: collection and positions from capture/, write, initial sync and
 * verify from replay/. Parts still NULL are not built yet (core/engine.h): the commands that need
 * them answer not_implemented. */
#include <mongoc/mongoc.h>

#include <stdio.h>

#include "capture/mongo_modules.h"
#include "engine/mongo_client.h"
#include "replay/mongo_modules.h"
#include "engine/engines.h"

/* Until the full precheck lands: both sides answer the admin login and keep an oplog. */
static int mongo_precheck_oplogs(const struct sy_pair_cfg *cfg, enum sy_direction dir, json_t *checks)
{
    int failed = 0;
    const struct sy_endpoint *eps[2] = { &cfg->business, &cfg->dr };
    for (int i = 0; i < 2; i++) {
        char err[512] = "", name[32];
        snprintf(name, sizeof name, "%s_oplog", i == 0 ? "business" : "dr");
        mongoc_client_t *c = sy_mongo_connect(cfg, eps[i], 5000, err, sizeof err);
        struct sy_mongo_ts ts;
        bool ok = c != NULL && sy_mongo_oplog_edge(c, true, &ts, err, sizeof err) >= 0;
        if (c != NULL)
            mongoc_client_destroy(c);
        json_array_append_new(checks, json_pack("{s:s,s:s,s:s,s:s}", "name", name, "status", ok ? "pass" : "fail",
                                                "detail", ok ? "reachable, local.oplog.rs present" : err, "fix",
                                                ok ? "" : "start the server; create local.oplog.rs capped"));
        failed += !ok;
    }
    return failed ? -1 : 0;
}

static const struct sy_sync_ops mongo_sync = {
    .initial_sync = NULL,
    .collection = &sy_mongo_collection,
    .write = &sy_mongo_write,
    .precheck = mongo_precheck_oplogs,
    .verify = NULL,
};

static const struct sy_position_ops mongo_position = {
    .current = sy_mongo_source_position,
    .covers = sy_mongo_position_covers,
    .poll = sy_mongo_position_poll,
    .poll_close = sy_mongo_position_poll_close,
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

static void mongo_library_init(void)
{
    mongoc_init(); /* before any thread uses libmongoc */
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
