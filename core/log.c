/* Logging sink: level filter, timestamp, one fprintf per line so lines from the collector
 * threads never interleave mid-line. */
#include "core/log.h"

#include <stdarg.h>
#include <sys/time.h>
#include <time.h>

static enum sy_log_level log_level = SY_LOG_INFO;
static FILE *log_stream; /* ref: NULL = stderr */

void sy_log_set_level(enum sy_log_level level)
{
    log_level = level;
}

enum sy_log_level sy_log_get_level(void)
{
    return log_level;
}

void sy_log_set_stream(FILE *f)
{
    log_stream = f;
}

void sy_log(enum sy_log_level level, const char *fmt, ...)
{
    static const char *names[] = { "ERROR", "WARN", "INFO", "DEBUG" };
    if (level > log_level)
        return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* one event, one line: control bytes from the outside (a URL, a client's user name, a server's error)
     * cannot forge or split log lines */
    for (char *c = msg; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            *c = '?';
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    FILE *out = log_stream ? log_stream : stderr;
    fprintf(out, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ %-5s %s\n", tm.tm_year + 1900, tm.tm_mon + 1,
            tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(tv.tv_usec / 1000), names[level], msg);
    fflush(out);
}
