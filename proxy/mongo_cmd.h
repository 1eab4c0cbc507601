/* What a MongoDB session looks at inside command documents, pure (no I/O, no globals; unit-tested in
 * tests/unit/test_mongo_cmd.c): the topology fields of hello/isMaster replies, rewritten so drivers keep
 * using the proxy, and the steps of a login the session passes through to the server (who logs in). */
#ifndef SY_MONGO_CMD_H
#define SY_MONGO_CMD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <bson/bson.h>

#include "core/parse.h"

#define SY_MONGO_USER_MAX 256

/* hello / isMaster reply -> the same reply naming `addr` ("host:port") as the only member: hosts = [addr],
 * me = primary = addr when the server is a replica-set member (setName); passives, arbiters and the
 * members' tags dropped; `compression` removed (the proxy never compresses, so a driver must not either).
 * out is initialized here (bson_destroy it). -1 when doc is not a valid document. */
int sy_mongo_hello_rewrite(const uint8_t *doc, size_t len, const char *addr, bson_t *out) SY_MUST_CHECK;

/* The proxy's own answer to a hello/isMaster while the pair is held (proxy/mongo_session.c): the last reply
 * of the server (doc, as received) rewritten as above, without what answered one client's login
 * (speculativeAuthenticate, saslSupportedMechs), the writable-primary flag under the name the request's
 * command uses (`ismaster` for isMaster: `legacy`; `isWritablePrimary` for hello) and localTime = now_ms.
 * out is initialized here (bson_destroy it). -1 when doc does not parse or is not an ok reply. */
int sy_mongo_hello_cached(const uint8_t *doc, size_t len, const char *addr, bool legacy, int64_t now_ms,
                          bson_t *out) SY_MUST_CHECK;
/* Whether a hello/isMaster request starts a login (speculativeAuthenticate, saslSupportedMechs): its answer
 * depends on the user, so the proxy does not answer it from a cached reply (true for a malformed one). */
bool sy_mongo_hello_logs_in(const uint8_t *cmd, size_t len);

/* The command document of an OP_QUERY on db.$cmd: the query itself, or its `$query`/`query` member when a
 * driver wrapped it (read preference). *cmd / *cmd_len point into q. false when not a document. */
bool sy_mongo_query_command(const uint8_t *q, size_t q_len, const uint8_t **cmd, size_t *cmd_len);

/* A login step a client sends: saslStart, saslContinue, authenticate, or a hello carrying
 * speculativeAuthenticate. */
enum sy_mongo_auth_step { SY_AUTH_NONE, SY_AUTH_START, SY_AUTH_CONTINUE, SY_AUTH_SPECULATIVE, SY_AUTH_LOGOUT };

struct sy_mongo_auth_req {
    enum sy_mongo_auth_step step;
    char user[SY_MONGO_USER_MAX + 1];   /* from SCRAM's client-first n= (or authenticate's user); "" unknown */
    char mechanism[32];                 /* "SCRAM-SHA-256", ...; "" unknown */
    char db[65];                        /* the authentication database ($db, or speculativeAuthenticate.db) */
};

/* Classifies a command body (OP_MSG kind 0 or an OP_QUERY command). db/db_len: the message's database
 * (OP_QUERY's namespace; NULL for OP_MSG, whose `$db` is read from the body). */
void sy_mongo_auth_classify(const uint8_t *body, size_t len, const char *db, size_t db_len,
                            struct sy_mongo_auth_req *out);

/* A login step's reply: 1 = logged in (ok: 1, done: true), 0 = the conversation goes on, -1 = failed
 * (ok: 0). For a hello reply: its speculativeAuthenticate member decides (0 when absent: the client
 * starts over with saslStart). */
int sy_mongo_auth_reply(const uint8_t *body, size_t len, bool hello);

#endif
