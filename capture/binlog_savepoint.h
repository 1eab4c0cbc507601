/* Savepoints inside a binlog transaction group. MariaDB logs `SAVEPOINT name` in a transaction, and
 * `ROLLBACK TO name` instead of cutting its binlog cache back when the transaction has also changed a
 * non-transactional table (MyISAM, Aria): the row events between the two are in the group and were undone
 * on the source. Readers of the binlog (the forward collector, the failover tail) keep a mark per
 * savepoint (what they had taken of the transaction when it was set) and drop what came after it.
 * Pure: the statement parse reads only its span. */
#ifndef SY_BINLOG_SAVEPOINT_H
#define SY_BINLOG_SAVEPOINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SY_SAVEPOINT_NAME_MAX 257 /* 64 characters of up to 4 bytes, NUL */

enum sy_savepoint_op {
    SY_SAVEPOINT_NONE,        /* not a savepoint statement */
    SY_SAVEPOINT_SET,         /* SAVEPOINT name */
    SY_SAVEPOINT_ROLLBACK_TO, /* ROLLBACK [WORK] TO [SAVEPOINT] name */
    SY_SAVEPOINT_RELEASE,     /* RELEASE SAVEPOINT name */
};

/* Which savepoint statement sql is (comments and spaces skipped), and its name (a `quoted` one unquoted;
 * truncated to namelen). A plain ROLLBACK or COMMIT is NONE. */
enum sy_savepoint_op sy_savepoint_parse(const char *sql, size_t len, char *name, size_t namelen);

/* The savepoints of the transaction being read, oldest first, each with the reader's mark. */
struct sy_savepoint {
    char name[SY_SAVEPOINT_NAME_MAX];
    uint64_t mark;   /* what the reader had taken when it was set (a spool seq, a row count) */
    uint64_t aux;    /* the reader's own second value */
};
struct sy_savepoints {
    struct sy_savepoint *v;  /* owned */
    size_t n, cap;
};
void sy_savepoints_init(struct sy_savepoints *s);
void sy_savepoints_fini(struct sy_savepoints *s);
void sy_savepoints_clear(struct sy_savepoints *s); /* a new transaction */

/* SAVEPOINT name: one of the same name goes (names compare case-insensitively), this one is the newest.
 * false: out of memory. */
bool sy_savepoints_set(struct sy_savepoints *s, const char *name, uint64_t mark, uint64_t aux);
/* ROLLBACK TO name: the savepoints set after it go, it stays; returns it, or NULL when there is none of
 * that name (then nothing changes). */
const struct sy_savepoint *sy_savepoints_rollback_to(struct sy_savepoints *s, const char *name);
/* RELEASE SAVEPOINT name: it and the later ones go. */
void sy_savepoints_release(struct sy_savepoints *s, const char *name);

#endif
