/* Fencing a MariaDB writer by its cluster owner token (docs/cluster.md, "Fencing"). The destination's
 * checkpoint row holds the token of the owner that last took the instance over; every transaction a writer
 * commits reads it with a locking read (shared for apply workers, exclusive on the control connection that
 * updates the row anyway) just before COMMIT, and a token above its own means another node owns the pair:
 * the transaction is rolled back and the writer stops. A takeover writes the new token under an exclusive
 * lock, so it and an old writer's commit serialize. Token 0 (no cluster): no check at all. */
#ifndef SY_REPLAY_MARIADB_FENCE_H
#define SY_REPLAY_MARIADB_FENCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <mysql.h>

/* The locking read of the instance's token; eid is the escaped instance id. The length written, or -1
 * when out is too small. */
int sy_mariadb_fence_read_sql(char *out, size_t outlen, const char *eid, bool exclusive);

/* The claim of a writer or a takeover: sets the token to `token` only where it is not higher (a
 * CLIENT_FOUND_ROWS connection: 1 matched row = claimed, 0 = a newer owner or no row). -1 as above. */
int sy_mariadb_fence_claim_sql(char *out, size_t outlen, const char *eid, uint64_t token);

/* Whether a writer with `token` may commit, given what the locking read found (row_found false: the
 * checkpoint row is gone, e.g. a new copy elsewhere). A token of 0 is never fenced. */
bool sy_mariadb_fence_is_fenced(uint64_t token, bool row_found, uint64_t row_token);

/* Runs the locking read on m (inside the transaction about to commit). 0 may commit; 1 fenced (*newer:
 * the token found, 0 when the row is gone; err says so); -1 a database error (err; transient or not as
 * mysql_errno(m) says). token 0: returns 0 without a query. */
int sy_mariadb_fence_check(MYSQL *m, const char *instance_id, uint64_t token, bool exclusive, uint64_t *newer,
                           char *err, size_t errlen);

/* The user lock a writer's control connection (the one that runs DDL) holds for its owner token: a
 * takeover that finds a DDL pending in the checkpoint row kills the connection holding the old token's
 * lock (a DDL commits by itself: the fence cannot roll it back) and waits for it to end before the new
 * owner runs anything. A name of at most 64 characters (MariaDB's limit) whatever the instance id. */
void sy_mariadb_writer_lock_name(char *out, size_t outlen, const char *instance_id, uint64_t token);

/* Takes the lock on m (waits up to wait_s: a previous session of this writer may still be ending). 0, or
 * -1 with err. */
int sy_mariadb_writer_lock_take(MYSQL *m, const char *instance_id, uint64_t token, int wait_s, char *err,
                                size_t errlen);

/* Ends the connection holding the writer lock of (instance_id, token), if any, and waits up to wait_ms for
 * it to be gone. *killed: the connection id killed (0 none). 0, or -1 with err. */
int sy_mariadb_writer_lock_end(MYSQL *m, const char *instance_id, uint64_t token, int wait_ms,
                               unsigned long long *killed, char *err, size_t errlen);

#endif
