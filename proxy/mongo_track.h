/* What the MongoDB proxy tracks across a switch, pure (no I/O, no globals; time is passed in; unit-tested in
 * tests/unit/test_mongo_track.c): the fields of a request that tie it to server-side state (a cursor id, a
 * transaction's lsid + txnNumber), the cursor id of a reply, and the pair's tables of open cursors and
 * transactions. Both tables are per pair, not per client connection: drivers send a cursor's getMore and a
 * transaction's commands over any connection of their pool; what ties them to a server is the side the
 * pair's sessions are on. */
#ifndef SY_MONGO_TRACK_H
#define SY_MONGO_TRACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <bson/bson.h>

#include "core/parse.h"

#define SY_MONGO_LSID_LEN 16          /* lsid.id: a UUID (BinData subtype 4) */
#define SY_MONGO_KILL_MAX 64          /* cursor ids of one killCursors the proxy looks at */
#define SY_MONGO_CURSOR_IDLE_MS 600000 /* MongoDB's cursorTimeoutMillis: an idle cursor is gone by then */
#define SY_MONGO_TXN_IDLE_MS 60000     /* MongoDB's transactionLifetimeLimitSeconds */

enum sy_mongo_req_kind {
    SY_MREQ_OTHER,
    SY_MREQ_CURSOR,     /* find, aggregate, listCollections, listIndexes: the reply may open a cursor */
    SY_MREQ_GET_MORE,   /* getMore: cursor_id */
    SY_MREQ_KILL,       /* killCursors: kill_ids */
    SY_MREQ_COMMIT,     /* commitTransaction */
    SY_MREQ_ABORT,      /* abortTransaction */
};

struct sy_mongo_req_info {
    enum sy_mongo_req_kind kind;
    int64_t cursor_id;                       /* getMore's cursor */
    int64_t kill_ids[SY_MONGO_KILL_MAX];     /* killCursors' cursors (the first SY_MONGO_KILL_MAX) */
    size_t n_kill;
    bool kill_more;                          /* more than SY_MONGO_KILL_MAX ids */
    bool has_lsid;                           /* lsid.id is a 16-byte binary */
    uint8_t lsid[SY_MONGO_LSID_LEN];
    bool has_txn;                            /* txnNumber present (retryable write or transaction) */
    int64_t txn_number;
    bool autocommit_false;                   /* autocommit: false: part of a multi-document transaction */
    bool start_transaction;                  /* startTransaction: true */
};

/* Reads a command body (OP_MSG section kind 0). false when it is not a valid document. */
bool sy_mongo_req_info_parse(const uint8_t *body, size_t len, struct sy_mongo_req_info *out);

/* A reply's cursor: 1 with *id = cursor.id (0: exhausted), 0 when the reply has no cursor (an error, or a
 * command that opens none); *ok = the reply's ok. */
int sy_mongo_reply_cursor(const uint8_t *body, size_t len, int64_t *id, bool *ok);

/* killCursors without the ids in drop[] (a killCursors naming only cursors of the other side loses them).
 * out is initialized here. -1 when body is not a valid document. */
int sy_mongo_kill_filter(const uint8_t *body, size_t len, const int64_t *drop, size_t n_drop, bson_t *out);

/* ---- the pair's open cursors and transactions ---- */

enum sy_mongo_cursor_state {
    SY_MCUR_OPEN,       /* on the sessions' side: a switch waits for it (txn_drain_ms) */
    SY_MCUR_ABANDONED,  /* txn_drain_ms passed in a switch: not waited for; stale if the switch flips */
    SY_MCUR_STALE,      /* opened on the other side before a switch: answered by the proxy, never forwarded */
};

struct sy_mongo_cursor {
    int64_t id;
    enum sy_mongo_cursor_state state;
    uint32_t session;                        /* the session that opened it (`clients` open_cursors) */
    uint64_t used_ms;                        /* last reply that named it */
};

struct sy_mongo_txn {
    uint8_t lsid[SY_MONGO_LSID_LEN];
    int64_t txn_number;
    bool aborted;                            /* rolled back by a switch: its next command gets an error */
    uint32_t session;                        /* the session that sent its last command */
    uint64_t used_ms;
};

/* Both tables; entries unused past their idle limit are dropped (the server forgot them too). */
struct sy_mongo_track {
    struct sy_mongo_cursor *cursors;         /* owned */
    size_t n_cursors, cap_cursors;
    struct sy_mongo_txn *txns;               /* owned */
    size_t n_txns, cap_txns;
};

void sy_mongo_track_fini(struct sy_mongo_track *t);
/* Removes entries idle past SY_MONGO_CURSOR_IDLE_MS / SY_MONGO_TXN_IDLE_MS at now_ms. */
void sy_mongo_track_expire(struct sy_mongo_track *t, uint64_t now_ms);

struct sy_mongo_cursor *sy_mongo_cursor_find(struct sy_mongo_track *t, int64_t id);
/* Adds (or refreshes) an open cursor; -1 out of memory. */
int sy_mongo_cursor_open(struct sy_mongo_track *t, int64_t id, uint32_t session, uint64_t now_ms) SY_MUST_CHECK;
void sy_mongo_cursor_drop(struct sy_mongo_track *t, int64_t id);
/* Open cursors, all or of one session (session 0: all). */
size_t sy_mongo_cursors_open(const struct sy_mongo_track *t, uint32_t session);
/* Every cursor in state `from` -> `to`; how many. */
size_t sy_mongo_cursors_set(struct sy_mongo_track *t, enum sy_mongo_cursor_state from, enum sy_mongo_cursor_state to);

struct sy_mongo_txn *sy_mongo_txn_find(struct sy_mongo_track *t, const uint8_t *lsid);
/* The transaction of lsid is now txn_number (open); -1 out of memory. */
int sy_mongo_txn_begin(struct sy_mongo_track *t, const uint8_t *lsid, int64_t txn_number, uint32_t session,
                       uint64_t now_ms) SY_MUST_CHECK;
void sy_mongo_txn_end(struct sy_mongo_track *t, const uint8_t *lsid);
/* Open (not aborted) transactions, all or of one session (0: all). */
size_t sy_mongo_txns_open(const struct sy_mongo_track *t, uint32_t session);

/* The error a command of a transaction a switch rolled back gets: {ok: 0, errmsg, code: 251,
 * codeName: NoSuchTransaction, errorLabels: ["TransientTransactionError"]} (drivers retry the whole
 * transaction on that label). out is initialized here. */
void sy_mongo_txn_aborted_doc(bson_t *out, int64_t txn_number);
/* getMore on a cursor of the other side: {ok: 0, errmsg, code: 43, codeName: CursorNotFound}. */
void sy_mongo_cursor_gone_doc(bson_t *out, int64_t id);
/* killCursors naming only cursors of the other side: {cursorsKilled: [], cursorsNotFound: ids,
 * cursorsAlive: [], cursorsUnknown: [], ok: 1} (what the server answers for ids it does not know). */
void sy_mongo_kill_gone_doc(bson_t *out, const int64_t *ids, size_t n);

#endif
