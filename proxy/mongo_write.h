/* Which documents a write acknowledged to a client changed, as far as the request and its reply show: the
 * proxy's half of the ack ledger (engine/mongo_acks.h). Pure: libbson over byte spans (unit-tested in
 * tests/unit/test_mongo_write.c, fuzzed by fuzz/fuzz_mongo_write.c).
 *
 * A statement names one document when its document has an `_id` (insert) or its filter is exactly
 * {_id: value} (update, delete). The reply proves statements written when its counts leave no doubt:
 * insert: the statements before the first write error (ordered; unordered: those without one) when their
 * number is the reply's n; update: every statement not upserted named one document and nModified is their
 * number, plus each upserted _id; delete: every statement named one document and n is their number.
 * findAndModify (one statement; any filter: the reply names the document): a remove whose
 * lastErrorObject.n is 1 proves value._id (the filter's {_id: value} when a projection may hide it); an
 * upsert proves lastErrorObject.upserted; an update of an existing document (updatedExisting) proves
 * value._id only when it is a replacement without _id, without projection, answered with the document
 * before (`new` false), and that document differs from the replacement (bytes, _id aside) — the reply has
 * no nModified, and an update that changed nothing (n: 1, updatedExisting: true) writes no oplog entry
 * on MongoDB or FerretDB, so any other update is `unproven`.
 * Otherwise the reply's count of changes is `unproven`. A reply's operationTime (a server that has it) is
 * returned too. Writes inside a multi-document transaction (autocommit: false) are not looked at: the
 * commit's operationTime covers them. */
#ifndef SY_MONGO_WRITE_H
#define SY_MONGO_WRITE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/parse.h"
#include "proxy/mongo_wire.h"

enum sy_mongo_write_op { SY_MWRITE_NONE, SY_MWRITE_INSERT, SY_MWRITE_UPDATE, SY_MWRITE_DELETE, SY_MWRITE_FAM };

struct sy_mongo_write {
    enum sy_mongo_write_op op;
    char db[128];
    char coll[256];
    bool ordered;
    size_t n;          /* statements (an insert's documents) */
    uint64_t *keys;    /* owned: per statement its document's key (engine/mongo_echo.h), 0 = no one document */
    /* SY_MWRITE_FAM (findAndModify: n = 1, keys[0] from a {_id: value} query) */
    bool fam_remove;        /* remove: true */
    bool fam_projected;     /* a non-empty `fields`: value may lack _id or fields */
    bool fam_replace_diff;  /* the update is a replacement without _id answered with the document before
                               (`new` false): an existing document that differs from it was changed */
    uint64_t fam_replace_hash; /* with fam_replace_diff: the replacement's elements hashed, _id aside */
};

/* 1: an insert, update, delete or findAndModify (w filled; sy_mongo_write_fini after); 0: anything else, or
 * a write this ledger does not look at; -1: malformed or out of memory. w->op is SY_MWRITE_NONE unless 1. */
int sy_mongo_write_parse(const struct sy_mongo_msg *m, struct sy_mongo_write *w) SY_MUST_CHECK;
void sy_mongo_write_fini(struct sy_mongo_write *w);

struct sy_mongo_write_ack {
    size_t n_keys;      /* keys[0..n_keys) proven written */
    size_t unproven;    /* acknowledged changes not tied to one document */
    bool has_op_time;
    uint32_t op_t, op_i; /* operationTime */
};
/* Reads the reply (an OP_MSG body) to w; keys must hold w->n. false when the reply is not a document. */
bool sy_mongo_write_acked(const struct sy_mongo_write *w, const uint8_t *reply, size_t len, uint64_t *keys,
                          struct sy_mongo_write_ack *out);

#endif
