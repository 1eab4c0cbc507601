/* Logging: one line per decision, "time level area: message", to stderr or the daemon's log file.
 * Callers pass the identity of what they speak about (pair, session id, peer, side) in the text;
 * never a password, an auth scramble or row data. */
#ifndef SY_LOG_H
#define SY_LOG_H

#include <stdio.h>

#include "core/config.h"
#include "core/parse.h"

void sy_log_set_level(enum sy_log_level level);
enum sy_log_level sy_log_get_level(void);
/* NULL = stderr. The stream stays owned by the caller. */
void sy_log_set_stream(FILE *f);
void sy_log(enum sy_log_level level, const char *fmt, ...) SY_PRINTF(2, 3);

#define sy_log_error(...) sy_log(SY_LOG_ERROR, __VA_ARGS__)
#define sy_log_warn(...) sy_log(SY_LOG_WARN, __VA_ARGS__)
#define sy_log_info(...) sy_log(SY_LOG_INFO, __VA_ARGS__)
#define sy_log_debug(...)                                                                                   \
    do {                                                                                                    \
        if (sy_log_get_level() >= SY_LOG_DEBUG)                                                             \
            sy_log(SY_LOG_DEBUG, __VA_ARGS__);                                                              \
    } while (0)

#endif
