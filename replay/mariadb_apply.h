/* One writer connection to the destination and what it needs to apply change records on it: the
 * destination tables' layouts ("plans", with their prepared statements), the current source
 * transaction's TABLE mappings, binding scratch, and the checkpoint / DDL statements. Used by the
 * Incremental Write coordinator (replay/mariadb_writer.c: control connection) and by each of its
 * apply workers. A connection is used by one thread at a time. Internal to replay/. */
#ifndef SY_REPLAY_MARIADB_APPLY_H
#define SY_REPLAY_MARIADB_APPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <mysql.h>

#include "core/change.h"
#include "core/instance.h"
#include "core/grow.h"

#define SY_APPLY_MAX_PLANS 1024

struct sy_apply_col {
    char *name;        /* owned */
    bool generated;    /* never written */
    bool key;          /* in the key rows are found by (PRIMARY or the first NOT NULL UNIQUE) */
};

/* How rows of one destination table are written. */
struct sy_apply_plan {
    char db[257], table[257];
    struct sy_apply_col *cols;   /* owned: destination columns in ordinal order */
    size_t n_cols;
    size_t n_key;
    /* Parallel apply may tell rows apart by their key bytes only when the key's values compare as
     * bytes (integers, dates, decimals) and no other UNIQUE key exists; otherwise the whole table is
     * one key (transactions touching it are applied in order). */
    bool whole_table;
    MYSQL_STMT *ins, *ups, *upd, *del; /* owned, prepared lazily */
};

/* A TABLE record of the current transaction: source layout + the plan it maps to. */
struct sy_apply_table {
    uint64_t table_id;
    struct sy_apply_plan *plan; /* ref: in sy_apply_conn.plans */
    int *src_to_dest;           /* owned: source column -> destination column */
    uint32_t n_src;
};

struct sy_apply_conn {
    const struct sy_module_ctx *ctx;  /* ref: the write module's */
    const struct sy_pair_cfg *cfg;    /* ref */
    MYSQL *conn;                      /* owned; NULL when closed */
    int sock_slot;                    /* conn's socket as watched for a stop (sy_module_socket_watch), -1 */
    struct sy_apply_plan *plans[SY_APPLY_MAX_PLANS]; /* owned */
    size_t n_plans;
    struct sy_apply_table *tt;        /* owned: TABLE records of the current source transaction */
    size_t n_tt, cap_tt;
    struct sy_change_scratch scratch; /* decoding */
    MYSQL_BIND *binds;                /* owned scratch for prepared statements */
    size_t cap_binds;
    my_bool *nulls;
    unsigned long *lens;
    struct sy_buf sql;                /* batched statement text (replay/mariadb_apply_batch.c) */
    uint64_t rows;                    /* rows applied (monotonic, read by the coordinator) */
    uint64_t conflicts_overwritten;
    bool overwrite_txn;               /* the current transaction's conflicts are overwritten whatever on_conflict
                                         says (a takeover's idempotent replay; set by the caller per transaction) */
    char err[1024];                   /* why the last call failed */
    uint64_t fenced_by;               /* after SY_APPLY_FENCED: the owner token the destination names (0: its
                                         checkpoint row is gone) */
};

/* Return codes of the apply calls: 0 ok, -1 transient (reconnect), -2 hard (err), -4 conflict (err
 * names table, key, source transaction and spool seq), -5 fenced: another cluster node owns the pair now
 * (err, fenced_by; the transaction was rolled back; never retried). */
enum { SY_APPLY_TRANSIENT = -1, SY_APPLY_HARD = -2, SY_APPLY_CONFLICT = -4, SY_APPLY_FENCED = -5 };

void sy_apply_conn_init(struct sy_apply_conn *ac, const struct sy_module_ctx *ctx);
void sy_apply_conn_fini(struct sy_apply_conn *ac);
/* Connects with the writer session (echo tag, UTC, NO_AUTO_VALUE_ON_ZERO, found rows, binary
 * charset, autocommit off) and creates Switchyard's tables. 0 ok, 1 transient (err), -1 refused. */
int sy_apply_conn_open(struct sy_apply_conn *ac);
void sy_apply_conn_close(struct sy_apply_conn *ac);

void sy_apply_plans_clear(struct sy_apply_conn *ac);
void sy_apply_txn_reset(struct sy_apply_conn *ac); /* forgets the current transaction's TABLE records */
int sy_apply_table(struct sy_apply_conn *ac, const struct sy_change_table *t);
struct sy_apply_table *sy_apply_table_find(struct sy_apply_conn *ac, uint64_t table_id);
/* Applies one row with prepared statements, honouring on_conflict. txn names the source transaction. */
int sy_apply_row(struct sy_apply_conn *ac, const struct sy_change_row *r, uint64_t seq, const char *txn);
const struct sy_value *sy_apply_src_value(const struct sy_apply_table *t, const struct sy_value *vals,
                                          size_t dest_col);
/* A hash of the destination key a row image has (db, table, key values; the whole table when its
 * keys cannot be told apart by bytes): equal keys give equal hashes. */
uint64_t sy_apply_row_key(const struct sy_apply_table *t, const struct sy_value *vals);

/* The checkpoint row: spool_seq (low-watermark), position, pending DDL. -1 with err. */
int sy_apply_checkpoint(struct sy_apply_conn *ac, uint64_t spool_seq, const char *position,
                        uint64_t pending_ddl_seq);
int sy_apply_commit(struct sy_apply_conn *ac);
/* The owner token check (replay/mariadb_fence.h) of the transaction about to commit, with a shared lock
 * (apply workers: they commit in parallel) or an exclusive one (the control connection, which updates the
 * checkpoint row anyway). 0 may commit (always without a cluster); SY_APPLY_FENCED rolled back;
 * SY_APPLY_TRANSIENT or SY_APPLY_HARD (err). */
int sy_apply_fence(struct sy_apply_conn *ac, bool exclusive);
void sy_apply_rollback(struct sy_apply_conn *ac);
/* Runs a DDL record in its idempotent form; retry: it was pending at start (may have run). */
int sy_apply_ddl(struct sy_apply_conn *ac, const struct sy_change_ddl *d, bool retry);

/* One source transaction handed to a worker: its records (payload copies) in spool order. */
struct sy_apply_rec {
    uint64_t seq;
    size_t off, len;  /* payload in sy_apply_txn.buf */
};

/* Fast path of a group (on_conflict = fail): the rows of ntx transactions as batched SQL text
 * (multi-statement, consecutive INSERTs / single-key DELETEs of a table merged). 0 ok, -1 transient,
 * -3: something did not match (a conflict or an error): roll back and apply the group with
 * sy_apply_row, which names the exact row. */
#define SY_APPLY_MAX_DEPS 8

struct sy_apply_txn {
    uint64_t first_seq;        /* its first record (TXN_BEGIN, or the pending DDL at start) */
    uint64_t commit_seq;       /* its TXN_COMMIT record (a POSITION entry: the last POSITION record) */
    char gtid[64];             /* the source transaction's id, for errors */
    char *position;            /* owned: the source position after it */
    uint64_t source_time_ms;
    uint8_t *buf;              /* owned: the records' payloads */
    size_t len, cap;
    struct sy_apply_rec *recs; /* owned */
    size_t n_recs, cap_recs;
    size_t n_rows;
    uint64_t *keys;            /* owned: hashes of (db, table, key bytes) it touches */
    size_t n_keys, cap_keys;
    int worker;                /* the worker it was handed to, -1 none */
    uint32_t n_deps;           /* other workers' transactions it must wait for (shared keys): it is */
    int dep_worker[SY_APPLY_MAX_DEPS];      /* applied once dep_worker[i] committed dep_seq[i] */
    uint64_t dep_seq[SY_APPLY_MAX_DEPS];
    bool barrier;              /* holds a DDL: applied alone on the control connection */
    bool ddl_retry;            /* begins at a DDL that was pending at start */
    bool position_only;        /* POSITION records (or a transaction applied before a restart): no work */
    bool done;                 /* committed on the destination (or nothing to do) */
    uint64_t applied_row;      /* non-zero: it ends a range in switchyard.applied, the row whose spool_seq
                                  (the range's first commit seq) this is; deleted once the watermark
                                  passes it (spool seqs start at 1) */
    uint64_t ord;              /* its number among the transactions read, in spool order */
    struct sy_apply_txn *next_q;   /* next in its worker's queue / group */
    struct sy_apply_txn *next;     /* next in spool order among the in-flight ones */
};

/* ready (may be NULL) is called once before the first statement goes to the destination (the
 * rendering before it may overlap another connection's work); non-zero from it: -1, nothing sent. */
int sy_apply_batch(struct sy_apply_conn *ac, struct sy_apply_txn *const *txns, size_t ntx, int (*ready)(void *),
                   void *ready_arg);

#endif
