/* MongoDB SASL command documents around SCRAM, pure (no I/O): what the proxy reads from a client's
 * saslStart / saslContinue / hello.speculativeAuthenticate and from a usersInfo (or admin.system.users)
 * user document, and the replies it writes. The SCRAM text itself is proxy/mongo_scram.h's.
 *   saslStart      {saslStart: 1, mechanism, payload: BinData, autoAuthorize, options: {skipEmptyExchange}, $db}
 *   saslContinue   {saslContinue: 1, conversationId, payload: BinData, $db}
 *   speculative    hello/isMaster {..., speculativeAuthenticate: {saslStart: 1, mechanism, payload, db, options}}
 *   reply          {conversationId, done, payload: BinData, ok: 1}  (inside hello: without ok)
 * Recorded from pymongo 4.10 / 3.11 against FerretDB 1.24.2 (tests/unit/mongo_frames.h). */
#ifndef SY_MONGO_SASL_H
#define SY_MONGO_SASL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <bson/bson.h>

#include "core/parse.h"
#include "proxy/mongo_scram.h"

enum sy_mongo_sasl_kind { SY_SASL_START, SY_SASL_CONTINUE };

struct sy_mongo_sasl {
    enum sy_mongo_sasl_kind kind;
    bool has_mechanism;
    enum sy_scram_hash mech;        /* saslStart: SCRAM-SHA-1 or SCRAM-SHA-256 (others are refused) */
    int32_t conversation_id;        /* saslContinue */
    bool skip_empty_exchange;       /* saslStart options.skipEmptyExchange */
    const char *payload;            /* ref: into the document (BinData or string; not NUL-terminated) */
    size_t payload_len;
    char db[128];                   /* $db (commands) or db (speculativeAuthenticate); "" when absent */
};

/* A saslStart or saslContinue command document (an OP_MSG body or an OP_QUERY command). Returns 0, or -1
 * with err (e.g. "mechanism PLAIN is not supported"). A document that is neither: -1, err "not sasl". */
int sy_mongo_sasl_parse(const uint8_t *doc, size_t len, struct sy_mongo_sasl *out, char *err,
                        size_t errlen) SY_MUST_CHECK;
/* hello/isMaster's speculativeAuthenticate: 1 found and parsed into *out, 0 absent, -1 malformed (err). */
int sy_mongo_sasl_speculative(const uint8_t *hello, size_t len, struct sy_mongo_sasl *out, char *err,
                              size_t errlen) SY_MUST_CHECK;
/* "admin.app" from hello's saslSupportedMechs (the user whose mechanisms the client asks for): 1 copied,
 * 0 absent, -1 too long or not a string. */
int sy_mongo_sasl_supported_mechs_user(const uint8_t *hello, size_t len, char *out, size_t cap) SY_MUST_CHECK;

/* Appends {conversationId, done, payload: BinData(0)} (and ok: 1.0 when with_ok) to out. */
void sy_mongo_sasl_reply_append(bson_t *out, int32_t conversation_id, bool done, const char *payload,
                                size_t payload_len, bool with_ok);

/* The SCRAM credential of mechanism h from a user document ({credentials: {"SCRAM-SHA-256": {iterationCount,
 * salt, storedKey, serverKey}}}, as usersInfo with showCredentials and admin.system.users hold it).
 * 0, or -1 with err naming what is missing or malformed. */
int sy_mongo_cred_parse(const uint8_t *user_doc, size_t len, enum sy_scram_hash h, struct sy_scram_cred *cred,
                        char *err, size_t errlen) SY_MUST_CHECK;

#endif
