/* SCRAM credential cache of a MongoDB pair: users' stored credentials (salt, iterations, StoredKey,
 * ServerKey; never passwords) read from the active side over one admin connection (the pair's admin_user,
 * logged in with SCRAM-SHA-256, kept open) with `usersInfo` + `showCredentials`, asynchronously on the loop.
 * Each login reads its user again (one round trip on the open connection): a user created, dropped or given
 * a new password a moment ago is seen at once (a SCRAM proof made against a stale salt could not be checked
 * again, unlike MariaDB's scramble, so serving a stale credential would refuse a right password). Logins of
 * one user that ask before a read is sent share that read. */
#ifndef SY_MONGO_CREDS_H
#define SY_MONGO_CREDS_H

#include <stdbool.h>
#include <stdint.h>

#include <event2/event.h>

#include "core/pair.h"
#include "proxy/mongo_scram.h"

struct sy_mongo_creds;
struct sy_mongo_creds_wait;

/* err NULL: the user was read (by a read sent after the fetch was asked) (found or not: ask sy_mongo_creds_find); else why it could not be. */
typedef void (*sy_mongo_creds_cb)(void *arg, const char *err);

struct sy_mongo_creds *sy_mongo_creds_new(struct event_base *base, struct sy_pair *pair);
void sy_mongo_creds_free(struct sy_mongo_creds *c);
/* 1 the user's credential of mechanism h (into *out), 0 the user was read and has none (unknown user, or
 * not that mechanism), -1 not read, or read more than max_age_ms ago. */
int sy_mongo_creds_find(struct sy_mongo_creds *c, const char *db, const char *user, enum sy_scram_hash h,
                        uint64_t max_age_ms, struct sy_scram_cred *out);
/* Drops what is known of db.user (read again next time). */
void sy_mongo_creds_forget(struct sy_mongo_creds *c, const char *db, const char *user);
/* Reads db.user from the active side; cb is called once, never from inside this call, unless cancelled. */
struct sy_mongo_creds_wait *sy_mongo_creds_fetch(struct sy_mongo_creds *c, const char *db, const char *user,
                                                 sy_mongo_creds_cb cb, void *arg);
void sy_mongo_creds_cancel(struct sy_mongo_creds_wait *w); /* NULL-safe */

#endif
