/* MongoDB 5+ logs an update as a `$v: 2` diff ({$v: 2, diff: {...}}), not as update operators. The writer
 * applies it as an ordinary update document built here (pure; unit-tested and fuzzed):
 *
 *   diff.u {f: v}        ->  $set   {"path.f": v}        (fields updated)
 *   diff.i {f: v}        ->  $set   {"path.f": v}        (fields inserted)
 *   diff.d {f: false}    ->  $unset {"path.f": ""}       (fields deleted)
 *   diff.s<f> {...}      ->  the sub-diff of object field f, recursively with path "path.f"
 *   array sub-diff {a: true, u<n>: v, s<n>: {...}}  ->  $set {"path.n": v} / recursion into element n
 *
 * An array diff that resizes the array (`l`, a new length) has no update-operator equivalent that keeps
 * element order in one statement: it is refused (the caller fails the instance naming the entry). */
#ifndef SY_MONGO_DIFF_H
#define SY_MONGO_DIFF_H

#include <stdbool.h>
#include <stddef.h>

#include <bson/bson.h>

/* o = the oplog entry's `o` ({$v: 2, diff: {...}}); *update gets {$set: {...}, $unset: {...}} (only the
* operators needed, none for an empty diff; initialised here, the caller destroys it). false + why (a static text) on a diff it
 * cannot translate or a malformed one. */
bool sy_mongo_diff_to_update(const bson_t *o, bson_t *update, const char **why);

#endif
