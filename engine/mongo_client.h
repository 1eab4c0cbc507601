/* Blocking libmongoc helpers shared by MongoDB's capture, replay and checks (module threads, the
 * switch thread and admin job threads; never the loop): connect as the pair's admin account with
 * timeouts, tell a network failure (retry later) from a server's answer, oplog positions, and the
 * `objects` filter for namespaces. In engine/ because capture/ and replay/ both need them. */
#ifndef SY_MONGO_CLIENT_H
#define SY_MONGO_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <mongoc/mongoc.h>

#include "core/config.h"

#define SY_MONGO_DB "switchyard"   /* Switchyard's own database on each side (checkpoints, echo marks) */
#define SY_MONGO_OPLOG "oplog.rs"  /* in database "local" */
/* In SY_MONGO_DB on each side: a switch's fence mark per pair, {_id: pair, ts} (capture/mongo_fence.c). */
#define SY_MONGO_FENCE_COLL "fence"
/* In SY_MONGO_DB on a destination: the writer's checkpoint per instance, {_id: "pair/direction", seq,
 * position} (replay/mongo_writer.c); a new initial copy removes its instance's. */
#define SY_MONGO_CHECKPOINTS "checkpoints"
/* In SY_MONGO_DB on a destination: the forward instance's last initial copy, {_id: "pair/forward", start,
 * end} (positions as text; replay/mongo_initial_sync.c). The copy has no snapshot: it ran while the
 * source took writes, so the oplog entries in (start, end] may meet documents the copy already shows in
 * a later state (an update of a document since deleted, a delete of one never copied). A writer applies
 * them as overwrites, not conflicts; after `end` a conflict is real. */
#define SY_MONGO_COPIES "initial_sync"

/* A client of ep logged in as cfg's admin account (SCRAM-SHA-256, authSource admin, a direct
 * connection). timeout_ms bounds connecting, server selection and each socket read (0 = 10 s). The
 * connection is proven with a `ping`; NULL + err ("host:port: why") on failure. */
mongoc_client_t *sy_mongo_connect(const struct sy_pair_cfg *cfg, const struct sy_endpoint *ep, int timeout_ms,
                                  char *err, size_t errlen);
/* The same for a module thread: the client's sockets are watched for ctx's module (engine/mongo_stream.h), so
 * its stop can cut a call blocked on a server that stopped answering. */
struct sy_module_ctx;
mongoc_client_t *sy_mongo_connect_watched(const struct sy_pair_cfg *cfg, const struct sy_endpoint *ep,
                                          int timeout_ms, const struct sy_module_ctx *ctx, char *err, size_t errlen);

/* Whether an error is about reaching the server (network, server selection, a socket timeout) rather
 * than the server refusing what was asked: the former is retried. */
bool sy_mongo_is_transient(const bson_error_t *e);

/* Whether db.coll is synchronized by cfg->objects: never the system databases (admin, local, config),
 * Switchyard's own, nor system.* collections. */
bool sy_mongo_ns_synced(const struct sy_pair_cfg *cfg, const char *db, const char *coll);
/* "db.coll" split at its first dot into db (at most dblen) and the collection (a pointer into ns).
 * false when there is no dot or db is too long. */
bool sy_mongo_ns_split(const char *ns, char *db, size_t dblen, const char **coll);

/* The collections of c that cfg synchronizes (listDatabases, then listCollections of each database
 * with a pattern in `objects`; views left out; sy_mongo_ns_synced), as "db.coll" sorted by name,
 * NULL-terminated: free with bson_strfreev. NULL with *e (sy_mongo_is_transient tells a lost server)
 * and err on failure. */
char **sy_mongo_synced_collections(mongoc_client_t *c, const struct sy_pair_cfg *cfg, bson_error_t *e, char *err,
                                   size_t errlen);
/* listCollections of db filtered by name: 1 with *out = its entry ({name, type, options, ...}), 0 when
 * there is none (*out empty), -1 with *e. *out is initialized in every case: bson_destroy it. */
int sy_mongo_collection_info(mongoc_client_t *c, const char *db, const char *name, bson_t *out, bson_error_t *e);

/* A find of every document of coll in _id order, batch_size per reply (a scan to copy or compare). */
mongoc_cursor_t *sy_mongo_find_in_id_order(mongoc_collection_t *coll, int32_t batch_size);

/* Whether the server is FerretDB (its buildInfo names a ferretdbVersion): 0 with *yes, or -1 with *e. */
int sy_mongo_is_ferretdb(mongoc_client_t *c, bool *yes, bson_error_t *e);

/* Positions are oplog timestamps, as text "<seconds>:<increment>" ("1733241600:5"). */
struct sy_mongo_ts {
    uint32_t t, i;
};
bool sy_mongo_ts_parse(const char *s, struct sy_mongo_ts *out); /* false on anything else (also "") */
void sy_mongo_ts_format(struct sy_mongo_ts ts, char *out, size_t outlen);
int sy_mongo_ts_cmp(struct sy_mongo_ts a, struct sy_mongo_ts b);

/* The end of the copy's overlap for instance_id on dst (SY_MONGO_COPIES): 1 with *end, 0 when there is
 * none (no copy, or one that did not finish), -1 with *e. */
int sy_mongo_copy_overlap_end(mongoc_client_t *dst, const char *instance_id, struct sy_mongo_ts *end, bson_error_t *e);

/* The newest (newest = true) or oldest entry's ts of local.oplog.rs: 1 found, 0 the oplog is empty,
 * -1 with err (also when the oplog does not exist: FerretDB logs nothing without it). */
int sy_mongo_oplog_edge(mongoc_client_t *c, bool newest, struct sy_mongo_ts *out, char *err, size_t errlen);

#endif
