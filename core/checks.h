/* A precheck's result list, shared by the engines' prechecks: one JSON object per check,
 *   {"name": "snake_case", "status": "pass"|"fail"|"warn", "detail": "...", "fix": "..." (fail/warn)}
 * appended to a caller's array (core/engine.h, sy_sync_ops.precheck). */
#ifndef SY_CHECKS_H
#define SY_CHECKS_H

#include <stdbool.h>

#include <jansson.h>

/* Appends one check; fix is left out for "pass". Returns whether the status is "fail". */
bool sy_check_add(json_t *checks, const char *name, const char *status, const char *detail, const char *fix);

/* A check that could not run because of an earlier one: warn "skipped: <why>", fix "fix <see> first". */
void sy_check_add_skipped(json_t *checks, const char *name, const char *why, const char *see);

/* A JSON string of s; bytes jansson refuses (invalid UTF-8 in a server's error text, a latin1 name)
 * become '?'. Never NULL unless out of memory. */
json_t *sy_json_text(const char *s);

#endif
