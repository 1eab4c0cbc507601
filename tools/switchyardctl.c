/* switchyardctl: the operator CLI of switchyardd's admin socket (CONTRACT.md: Programs, Commands, protocol).
 * Checks the command line against ctl_cmds[] (a usage error never reaches the daemon), sends ONE request line
 * {"cmd":..,"args":{..}}, reads ONE reply line (at most 16 MiB) and prints it: tables and `key: value` lines,
 * or the result as one JSON document with --json. Keeps no state and never retries; when the outcome is
 * unknown (no connection, no reply, timeout, garbled reply) it exits 3. Exit: 0 ok, 1 failed, 2 usage, 3. */

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "core/parse.h"

#define CTL_DEFAULT_SOCKET "/run/switchyard/admin.sock"
#define CTL_REPLY_MAX_BYTES ((size_t)16 << 20)   /* a status of many pairs stays far below this */
#define CTL_DEFAULT_TIMEOUT_MS 30000
#define CTL_TIMEOUT_MAX_S 2147483.0              /* poll() takes an int of milliseconds */

enum ctl_exit { CTL_EXIT_OK = 0, CTL_EXIT_FAILED = 1, CTL_EXIT_USAGE = 2, CTL_EXIT_UNREACHABLE = 3 };

/* Command options; a command lists those it accepts, any other one is a usage error. */
enum {
    OPT_DIRECTION = 1u << 0,   /* precheck: forward | reverse | switchover */
    OPT_FORCE = 1u << 1,       /* switchover, failover */
    OPT_EXPORT = 1u << 2,      /* resolve-tail: FILE, sent absolute */
    OPT_DISCARD = 1u << 3,     /* resolve-tail: exclusive with --export */
    OPT_OBJECTS = 1u << 4,     /* verify: "db.table,db.*" as typed */
    OPT_PROGRESS = 1u << 5,    /* switches: print each step as it passes (stderr; never sent) */
    OPT_WATCH = 1u << 6,       /* status: redraw every second until interrupted (never sent) */
};

/* The single positional argument a command takes. */
enum ctl_arg {
    ARG_PAIR_OPTIONAL,         /* status */
    ARG_PAIR,
    ARG_INSTANCE,              /* PAIR/forward or PAIR/reverse */
    ARG_COMMAND_OPTIONAL,      /* help (answered by show_help(), never by build_args()) */
};

enum ctl_print { PRINT_FIELDS, PRINT_STATUS, PRINT_PRECHECK, PRINT_CLIENTS, PRINT_LOCAL };

struct ctl_cmd {
    const char *name;          /* as typed, and as sent in "cmd" */
    const char *usage;         /* arguments of the usage line; `help` prints name + usage + summary */
    const char *summary;
    enum ctl_arg arg;
    unsigned opts;             /* OPT_* the command accepts */
    enum ctl_print print;      /* human output; PRINT_LOCAL = answered here, never sent */
    bool long_running;         /* no default timeout: waits on lag, drain and holds by design */
};

static const struct ctl_cmd ctl_cmds[] = {
    { "status", "[PAIR] [--watch]", "pairs, instances, state, lag, positions", ARG_PAIR_OPTIONAL, OPT_WATCH,
      PRINT_STATUS, false },
    { "precheck", "PAIR [--direction forward|reverse|switchover]", "run the checks: pass/fail/warn + fix",
      ARG_PAIR, OPT_DIRECTION, PRINT_PRECHECK, false },
    { "create-reverse", "PAIR", "create the reverse instance (collecting)", ARG_PAIR, 0, PRINT_FIELDS,
      false },
    { "pause", "INSTANCE", "pause; keeps position and spool", ARG_INSTANCE, 0, PRINT_FIELDS, false },
    { "start", "INSTANCE", "start/resume; reverse: start its write", ARG_INSTANCE, 0, PRINT_FIELDS, false },
    { "terminate", "INSTANCE", "end an instance for good", ARG_INSTANCE, 0, PRINT_FIELDS, false },
    { "switchover", "PAIR [--force] [--progress]", "planned switch to the other side", ARG_PAIR,
      OPT_FORCE | OPT_PROGRESS, PRINT_FIELDS, true },
    { "failover", "PAIR [--force] [--progress]", "business DB down: flip to DR", ARG_PAIR, OPT_FORCE | OPT_PROGRESS,
      PRINT_FIELDS, true },
    { "switchback", "PAIR [--progress]", "drain reverse, flip back to business", ARG_PAIR, OPT_PROGRESS,
      PRINT_FIELDS, true },
    { "resolve-tail", "PAIR --export FILE | --discard", "decide the unreplicated tail of a failover",
      ARG_PAIR, OPT_EXPORT | OPT_DISCARD, PRINT_FIELDS, false },
    { "hold", "PAIR", "queue new client requests (max_hold_ms)", ARG_PAIR, 0, PRINT_FIELDS, false },
    { "release", "PAIR", "resume queued client requests", ARG_PAIR, 0, PRINT_FIELDS, false },
    { "verify", "PAIR [--objects db.table,db.*]", "row counts and checksums on both sides",
      ARG_PAIR, OPT_OBJECTS, PRINT_FIELDS, true },
    { "clients", "PAIR", "client sessions of the pair", ARG_PAIR, 0, PRINT_CLIENTS, false },
    { "lag-history", "INSTANCE", "the write's lag over the last hour", ARG_INSTANCE, 0, PRINT_FIELDS, false },
    { "help", "[COMMAND]", "this list (needs no daemon)", ARG_COMMAND_OPTIONAL, 0, PRINT_LOCAL, false },
};

struct ctl_opt_def {
    const char *name;          /* "--force"; "-s" style short names are listed too */
    unsigned bit;              /* OPT_* for command options, 0 for global ones */
    bool has_value;
};

static const struct ctl_opt_def ctl_opt_defs[] = {
    { "-s", 0, true }, { "--socket", 0, true }, { "--json", 0, false }, { "--timeout", 0, true },
    { "-h", 0, false }, { "--help", 0, false },
    { "--direction", OPT_DIRECTION, true }, { "--force", OPT_FORCE, false }, { "--export", OPT_EXPORT, true },
    { "--discard", OPT_DISCARD, false }, { "--objects", OPT_OBJECTS, true }, { "--progress", OPT_PROGRESS, false },
    { "--watch", OPT_WATCH, false },
};

/* The parsed command line. Strings are refs into argv. */
struct ctl_opts {
    const char *socket;        /* -s/--socket, else $SWITCHYARD_SOCKET, else CTL_DEFAULT_SOCKET */
    bool json;
    bool help;                 /* -h/--help */
    int timeout_ms;            /* -1 = the command's default, 0 = wait forever */
    unsigned seen;             /* OPT_* given */
    const char *direction, *export_file, *objects;
    const char *pos[3];        /* command word + its argument; extras are only counted */
    int npos;
};

/* ---- small helpers: a CLI gives up on out-of-memory ---- */

static void die_oom(void)
{
    fputs("switchyardctl: out of memory\n", stderr);
    exit(CTL_EXIT_FAILED);
}

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n);
    if (q == NULL)
        die_oom();
    return q;
}

static char *xstrdup(const char *s)
{
    char *d = strdup(s);
    if (d == NULL)
        die_oom();
    return d;
}

static char *xasprintf(const char *fmt, ...) SY_PRINTF(1, 2);
static char *xasprintf(const char *fmt, ...)
{
    va_list ap;
    char *s = NULL;
    va_start(ap, fmt);
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0)
        die_oom();
    return s;
}

/* Daemon text goes to a terminal: control bytes (a newline inside a message, escapes) become '?'. */
static char *clean_dup(const char *s)
{
    char *d = xstrdup(s);
    for (char *p = d; *p != '\0'; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    return d;
}

/* Terminal columns of UTF-8 text, close enough for tables: count everything but continuation bytes. */
static size_t display_width(const char *s)
{
    size_t w = 0;
    for (; *s != '\0'; s++)
        if (((unsigned char)*s & 0xC0) != 0x80)
            w++;
    return w;
}

/* A JSON value as table cell / `key: value` text (malloc'd). Absent, null and "" print "-". */
static char *fmt_value(const json_t *v, bool yes_no)
{
    if (v == NULL)
        return xstrdup("-");
    switch (json_typeof(v)) {
    case JSON_NULL:
        return xstrdup("-");
    case JSON_STRING:
        return json_string_length(v) == 0 ? xstrdup("-") : clean_dup(json_string_value(v));
    case JSON_INTEGER:
        return xasprintf("%" JSON_INTEGER_FORMAT, json_integer_value(v));
    case JSON_REAL:
        return xasprintf("%g", json_real_value(v));
    case JSON_TRUE:
        return xstrdup(yes_no ? "yes" : "true");
    case JSON_FALSE:
        return xstrdup(yes_no ? "no" : "false");
    case JSON_OBJECT:
    case JSON_ARRAY:
        break;
    }
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);   /* escapes control bytes itself */
    if (s == NULL)
        die_oom();
    return s;
}

static char *fmt_field(const json_t *obj, const char *key, bool yes_no)
{
    return fmt_value(json_object_get(obj, key), yes_no);
}

/* ---- aligned tables ---- */

struct table {
    size_t ncols;
    size_t nrows;              /* header included */
    size_t cap_rows;
    char **cells;              /* owned: nrows * ncols malloc'd strings, row-major */
};

static void table_add(struct table *t, char **row)    /* takes the row's strings */
{
    if (t->nrows == t->cap_rows) {
        t->cap_rows = t->cap_rows ? 2 * t->cap_rows : 8;
        t->cells = xrealloc(t->cells, t->cap_rows * t->ncols * sizeof *t->cells);
    }
    memcpy(t->cells + t->nrows * t->ncols, row, t->ncols * sizeof *row);
    t->nrows++;
}

static void table_init(struct table *t, size_t ncols, const char *const *header)
{
    char *row[16];
    *t = (struct table){ .ncols = ncols };
    for (size_t c = 0; c < ncols && c < SY_ARRAY_LEN(row); c++)
        row[c] = xstrdup(header[c]);
    table_add(t, row);
}

/* Two spaces between columns, no trailing blanks. */
static void table_print(const struct table *t, FILE *f)
{
    size_t width[16] = { 0 };
    for (size_t r = 0; r < t->nrows; r++)
        for (size_t c = 0; c < t->ncols; c++) {
            size_t w = display_width(t->cells[r * t->ncols + c]);
            if (w > width[c])
                width[c] = w;
        }
    for (size_t r = 0; r < t->nrows; r++) {
        for (size_t c = 0; c < t->ncols; c++) {
            const char *cell = t->cells[r * t->ncols + c];
            fputs(cell, f);
            if (c + 1 < t->ncols)
                fprintf(f, "%*s", (int)(width[c] - display_width(cell) + 2), "");
        }
        fputc('\n', f);
    }
}

static void table_fini(struct table *t)
{
    for (size_t i = 0; i < t->nrows * t->ncols; i++)
        free(t->cells[i]);
    free(t->cells);
    *t = (struct table){ 0 };
}

/* ---- human output ---- */

static void print_fields(const json_t *result, FILE *f)
{
    const char *key;
    json_t *v;
    if (!json_is_object(result)) {
        char *s = fmt_value(result, false);
        fprintf(f, "%s\n", s);
        free(s);
        return;
    }
    if (json_object_size(result) == 0) {
        fputs("ok\n", f);
        return;
    }
    json_object_foreach((json_t *)result, key, v) {
        char *k = clean_dup(key);
        char *s = fmt_value(v, false);
        fprintf(f, "%s: %s\n", k, s);
        free(k);
        free(s);
    }
}

/* "running 40ms": a module's state and lag; "-" when the module is absent. */
static char *fmt_module(const json_t *m)
{
    if (!json_is_object(m))
        return xstrdup("-");
    char *state = fmt_field(m, "state", false);
    const json_t *lag = json_object_get(m, "lag_ms");
    if (!json_is_number(lag))
        return state;
    char *s = xasprintf("%s %.0fms", state, json_number_value(lag));
    free(state);
    return s;
}

static void print_instance_notes(const json_t *inst, const char *id)
{
    const json_t *sync = json_object_get(inst, "initial_sync");
    double total = json_number_value(json_object_get(sync, "total_rows"));   /* 0 when absent */
    if (total > 0) {
        double done = json_number_value(json_object_get(sync, "done_rows"));
        double pct = done * 100.0 / total;
        pct = pct < 0 ? 0 : pct > 100 ? 100 : pct;
        if (isatty(STDOUT_FILENO)) {            /* people get a bar; scripts keep the plain line */
            char bar[21];
            int filled = (int)(pct / 5);
            for (int k = 0; k < 20; k++)
                bar[k] = k < filled ? '#' : '.';
            bar[20] = '\0';
            printf("%s initial sync: [%s] %.0f/%.0f rows (%d%%)\n", id, bar, done, total, (int)pct);
        } else {
            printf("%s initial sync: %.0f/%.0f rows (%d%%)\n", id, done, total, (int)pct);
        }
    }
    const json_t *err = json_object_get(inst, "last_error");
    if (err != NULL && !json_is_null(err)) {
        const json_t *code = json_object_get(err, "code"), *msg = json_object_get(err, "message");
        char *s = json_is_string(code) && json_is_string(msg)
                      ? xasprintf("%s: %s", json_string_value(code), json_string_value(msg))
                      : fmt_value(err, false);
        char *c = clean_dup(s);
        printf("%s last error: %s\n", id, c);
        free(c);
        free(s);
    }
}

static void print_instances(const json_t *pair)
{
    static const char *const hdr[] = { "INSTANCE", "STATE", "COLLECTION", "WRITE", "POSITION" };
    const json_t *insts = json_object_get(pair, "instances");
    size_t i;
    json_t *inst;
    struct table t;

    if (json_array_size(insts) == 0)
        return;
    table_init(&t, SY_ARRAY_LEN(hdr), hdr);
    json_array_foreach(insts, i, inst) {
        const json_t *write = json_object_get(inst, "write");
        char *row[] = { fmt_field(inst, "id", false), fmt_field(inst, "state", false),
                        fmt_module(json_object_get(inst, "collection")), fmt_module(write),
                        fmt_field(write, "position", false) };   /* what the destination has applied */
        table_add(&t, row);
    }
    putchar('\n');
    table_print(&t, stdout);
    json_array_foreach(insts, i, inst) {
        char *id = fmt_field(inst, "id", false);
        print_instance_notes(inst, id);
        free(id);
    }
    table_fini(&t);
}

/* A switch running, the last one, commit_wait when on, a failover's unreplicated tail: one line each. */
static void print_pair_notes(const json_t *p)
{
    char *name = fmt_field(p, "name", false);
    if (json_is_true(json_object_get(p, "switching")))
        printf("%s: a switch is running\n", name);
    const json_t *last = json_object_get(p, "last_switch");
    if (json_is_object(last)) {
        char *op = fmt_field(last, "operation", false), *side = fmt_field(last, "active_side", false);
        printf("%s last switch: %s to %s, pause %.0f ms, %.0f client(s) moved, epoch %.0f\n", name, op, side,
               json_number_value(json_object_get(last, "pause_ms")),
               json_number_value(json_object_get(last, "moved_clients")), json_number_value(json_object_get(last, "epoch")));
        free(op);
        free(side);
    }
    const json_t *cw = json_object_get(p, "commit_wait");
    const char *mode = json_string_value(json_object_get(cw, "mode"));
    if (mode != NULL && strcmp(mode, "off") != 0) {
        double sum = json_number_value(json_object_get(cw, "wait_seconds_sum"));
        double waits = json_number_value(json_object_get(cw, "waits"));
        printf("%s commit_wait: %s%s, fallback %s after %.0f ms; %.0f waits (mean %.2f ms), %.0f waiting, "
               "%.0f timeouts, %.0f errors, degraded %.0f time(s)\n", name, mode,
               json_is_true(json_object_get(cw, "degraded")) ? " DEGRADED (commits not held)" : "",
               json_string_value(json_object_get(cw, "fallback")) ?: "?",
               json_number_value(json_object_get(cw, "timeout_ms")), waits, waits > 0 ? sum * 1000.0 / waits : 0.0,
               json_number_value(json_object_get(cw, "waiting")), json_number_value(json_object_get(cw, "timeouts")),
               json_number_value(json_object_get(cw, "errors")),
               json_number_value(json_object_get(cw, "degraded_count")));
    }
    const json_t *tail = json_object_get(p, "tail");
    if (json_is_object(tail)) {
        char *st = fmt_field(tail, "state", false);
        if (json_is_integer(json_object_get(tail, "transactions")))
            printf("%s failover tail: %s, %.0f transaction(s) never replicated to DR (%.0f acknowledged to clients):"
                   " decide with `switchyardctl resolve-tail %s --export FILE | --discard`\n", name, st,
                   json_number_value(json_object_get(tail, "transactions")),
                   json_number_value(json_object_get(tail, "acknowledged")), name);
        else
            printf("%s failover tail: %s (known once the business database answers again)\n", name, st);
        free(st);
    }
    free(name);
}

/* `cluster: node n1, etcd ok (http://...), nodes n1 n2 n3` (+ the error while etcd does not answer). */
static void print_cluster(const json_t *c)
{
    if (!json_is_object(c))
        return;
    printf("\ncluster: node %s, etcd %s (%s), nodes", json_string_value(json_object_get(c, "node")) ?: "?",
           json_string_value(json_object_get(c, "etcd")) ?: "?", json_string_value(json_object_get(c, "endpoint")) ?: "?");
    size_t i;
    json_t *n;
    json_array_foreach(json_object_get(c, "nodes"), i, n)
        printf(" %s", json_string_value(json_object_get(n, "node")) ?: "?");
    printf("\n");
    const char *err = json_string_value(json_object_get(c, "error"));
    if (err != NULL && err[0] != '\0')
        printf("  error: %s\n", err);
}

/* `  orders: cluster epoch 3 (dr side, revision 41), watch ok` per pair of a cluster node; CUT OFF while the
 * node holds because etcd has not confirmed the epoch. */
static void print_shared_epochs(const json_t *pairs)
{
    size_t i;
    json_t *p;
    json_array_foreach(pairs, i, p) {
        const json_t *s = json_object_get(p, "shared_epoch");
        if (!json_is_object(s))
            continue;
        const char *name = json_string_value(json_object_get(p, "name")) ?: "?";
        if (json_is_integer(json_object_get(s, "epoch")))
            printf("  %s: cluster epoch %lld (%s side, revision %s), watch %s", name,
                   (long long)json_integer_value(json_object_get(s, "epoch")),
                   json_string_value(json_object_get(s, "side")) ?: "?",
                   json_string_value(json_object_get(s, "revision")) ?: "?",
                   json_string_value(json_object_get(s, "watch")) ?: "?");
        else
            printf("  %s: cluster epoch not read yet", name);
        if (json_is_true(json_object_get(s, "cut_off")))
            printf(", CUT OFF: held, etcd unanswered for %lld ms",
                   (long long)json_integer_value(json_object_get(s, "unanswered_ms")));
        const char *err = json_string_value(json_object_get(s, "error"));
        printf("%s%s\n", err && err[0] ? ", error: " : "", err && err[0] ? err : "");
    }
}

static void print_status(const json_t *result)
{
    static const char *const hdr[] = { "NAME", "ENGINE", "LISTEN", "ACTIVE", "EPOCH", "HELD", "CLIENTS" };
    const json_t *pairs = json_object_get(result, "pairs");
    size_t i;
    json_t *p;
    struct table t;

    table_init(&t, SY_ARRAY_LEN(hdr), hdr);
    json_array_foreach(pairs, i, p) {
        char *row[] = { fmt_field(p, "name", true), fmt_field(p, "engine", true),
                        fmt_field(p, "listen", true), fmt_field(p, "active_side", true),
                        fmt_field(p, "epoch", true), fmt_field(p, "held", true),
                        fmt_field(p, "clients", true) };
        table_add(&t, row);
    }
    table_print(&t, stdout);
    table_fini(&t);
    json_array_foreach(pairs, i, p) {
        print_instances(p);
        print_pair_notes(p);
    }
    print_cluster(json_object_get(result, "cluster"));
    print_shared_epochs(pairs);
}

static void print_clients(const json_t *result)
{
    static const char *const hdr[] = { "ID", "USER", "PEER", "SIDE", "IN_TXN", "HELD_MS", "MOVABLE" };
    const json_t *clients = json_object_get(result, "clients");
    size_t i;
    json_t *c;
    struct table t;

    table_init(&t, SY_ARRAY_LEN(hdr), hdr);
    json_array_foreach(clients, i, c) {
        char *row[] = { fmt_field(c, "id", true), fmt_field(c, "user", true), fmt_field(c, "peer", true),
                        fmt_field(c, "side", true), fmt_field(c, "in_transaction", true),
                        fmt_field(c, "held_ms", true), fmt_field(c, "movable", true) };
        table_add(&t, row);
    }
    table_print(&t, stdout);
    table_fini(&t);
}

/* `PASS  name  detail` (+ `      fix: ...`), names aligned. Also used for a failed create-reverse. */
static void print_checks(const json_t *checks, FILE *f)
{
    size_t i, name_w = 0;
    json_t *ck;

    json_array_foreach(checks, i, ck) {
        char *name = fmt_field(ck, "name", false);
        size_t w = display_width(name);
        name_w = w > name_w ? w : name_w;
        free(name);
    }
    json_array_foreach(checks, i, ck) {
        const json_t *st = json_object_get(ck, "status");
        const json_t *detail = json_object_get(ck, "detail");
        const json_t *fix = json_object_get(ck, "fix");
        if (st == NULL)
            st = json_object_get(ck, "result");
        if (detail == NULL)
            detail = json_object_get(ck, "message");
        char *status = fmt_value(st, false);
        char *name = fmt_field(ck, "name", false);
        char *text = fmt_value(detail, false);
        for (char *p = status; *p != '\0'; p++)
            if (*p >= 'a' && *p <= 'z')
                *p = (char)(*p - 'a' + 'A');
        if (detail == NULL || json_is_null(detail))
            fprintf(f, "%-4s  %s\n", status, name);
        else
            fprintf(f, "%-4s  %s%*s  %s\n", status, name, (int)(name_w - display_width(name)), "", text);
        if (fix != NULL && !json_is_null(fix)) {
            char *s = fmt_value(fix, false);
            fprintf(f, "      fix: %s\n", s);
            free(s);
        }
        free(status);
        free(name);
        free(text);
    }
}

static void print_precheck(const json_t *result)
{
    const json_t *checks = json_object_get(result, "checks");
    const char *key;
    json_t *v;

    if (json_array_size(checks) == 0)
        puts("no checks");
    print_checks(checks, stdout);
    json_object_foreach((json_t *)result, key, v) {   /* summary fields the daemon adds, if any */
        if (strcmp(key, "checks") == 0)
            continue;
        char *k = clean_dup(key);
        char *s = fmt_value(v, false);
        printf("%s: %s\n", k, s);
        free(k);
        free(s);
    }
}

/* ---- help and usage ---- */

static void print_commands(FILE *f, const struct ctl_cmd *only)
{
    size_t w = 0;
    for (size_t i = 0; i < SY_ARRAY_LEN(ctl_cmds); i++) {
        size_t n = strlen(ctl_cmds[i].name) + 1 + strlen(ctl_cmds[i].usage);
        w = n > w ? n : w;
    }
    for (size_t i = 0; i < SY_ARRAY_LEN(ctl_cmds); i++) {
        const struct ctl_cmd *c = &ctl_cmds[i];
        if (only != NULL && only != c)
            continue;
        int pad = (int)(w - strlen(c->name) - 1 - strlen(c->usage));
        fprintf(f, "  %s %s%*s  %s\n", c->name, c->usage, pad, "", c->summary);
    }
}

static void print_help(FILE *f)
{
    fputs("usage: switchyardctl [-s SOCKET] [--json] [--timeout SEC] COMMAND [ARGS]\n\ncommands:\n", f);
    print_commands(f, NULL);
    fputs("\nINSTANCE is PAIR/forward or PAIR/reverse.\n\n"
          "options:\n"
          "  -s, --socket SOCKET  admin socket (default: $SWITCHYARD_SOCKET, else " CTL_DEFAULT_SOCKET ")\n"
          "  --json               print the result as one JSON document (on failure: the error object)\n"
          "  --timeout SEC        stop waiting for the reply after SEC seconds, 0 = never (default 30;\n"
          "                       never for switchover, failover and switchback)\n"
          "  --progress           switchover/switchback/failover: print each step as it passes (stderr)\n"
          "  --watch              status: again every second until Ctrl-C (redrawn on a terminal)\n"
          "  -h, --help           this help\n\n"
          "exit status: 0 ok, 1 the command failed, 2 usage error, 3 cannot reach switchyardd\n"
          "             (3 also when no reply came in time: the command may still have run)\n",
          f);
}

/* Usage error: the reason, then the command's usage line (or the whole list). Returns CTL_EXIT_USAGE. */
static int usage_error(const struct ctl_cmd *c, const char *why)
{
    fprintf(stderr, "switchyardctl: %s\n", why);
    if (c != NULL) {
        fprintf(stderr, "usage: switchyardctl [-s SOCKET] [--json] %s %s\n", c->name, c->usage);
        fputs("run 'switchyardctl help' for all commands\n", stderr);
    } else {
        print_help(stderr);
    }
    return CTL_EXIT_USAGE;
}

/* ---- command line ---- */

static const struct ctl_cmd *cmd_find(const char *name)
{
    for (size_t i = 0; i < SY_ARRAY_LEN(ctl_cmds); i++)
        if (strcmp(ctl_cmds[i].name, name) == 0)
            return &ctl_cmds[i];
    return NULL;
}

static int parse_timeout(const char *s, int *ms)
{
    char *end;
    errno = 0;
    double sec = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !(sec >= 0 && sec <= CTL_TIMEOUT_MAX_S))  /* NaN fails */
        return -1;
    *ms = (int)(sec * 1000 + 0.5);
    if (*ms == 0 && sec > 0)
        *ms = 1;
    return 0;
}

/* Options may come before or after COMMAND; "--" ends them. Accepts "--name=value" and "-sSOCKET". */
static int parse_argv(int argc, char **argv, struct ctl_opts *o, char *err, size_t errlen)
{
    bool opts_done = false;
    *o = (struct ctl_opts){ .timeout_ms = -1 };

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (opts_done || a[0] != '-' || a[1] == '\0') {
            if (o->npos < (int)SY_ARRAY_LEN(o->pos))
                o->pos[o->npos] = a;
            o->npos++;
            continue;
        }
        if (strcmp(a, "--") == 0) {
            opts_done = true;
            continue;
        }
        size_t nlen = strlen(a);
        const char *value = NULL;
        const char *eq = a[1] == '-' ? strchr(a, '=') : NULL;
        if (eq != NULL) {
            nlen = (size_t)(eq - a);
            value = eq + 1;
        } else if (a[1] == 's' && a[2] != '\0') {
            nlen = 2;
            value = a + 2;
        }
        const struct ctl_opt_def *d = NULL;
        for (size_t k = 0; k < SY_ARRAY_LEN(ctl_opt_defs); k++)
            if (strlen(ctl_opt_defs[k].name) == nlen && strncmp(ctl_opt_defs[k].name, a, nlen) == 0)
                d = &ctl_opt_defs[k];
        if (d == NULL) {
            snprintf(err, errlen, "unknown option '%.*s'", (int)nlen, a);
            return -1;
        }
        if (d->has_value && value == NULL) {
            if (i + 1 >= argc) {
                snprintf(err, errlen, "option %s needs a value", d->name);
                return -1;
            }
            value = argv[++i];
        } else if (!d->has_value && value != NULL) {
            snprintf(err, errlen, "option %s takes no value", d->name);
            return -1;
        }
        if (d->bit != 0 && (o->seen & d->bit)) {
            snprintf(err, errlen, "option %s given twice", d->name);
            return -1;
        }
        o->seen |= d->bit;
        if (strcmp(d->name, "-s") == 0 || strcmp(d->name, "--socket") == 0) {
            o->socket = value;
            if (value[0] == '\0') {
                snprintf(err, errlen, "option %s needs a socket path", d->name);
                return -1;
            }
        } else if (strcmp(d->name, "--json") == 0) {
            o->json = true;
        } else if (strcmp(d->name, "--timeout") == 0) {
            if (parse_timeout(value, &o->timeout_ms) != 0) {
                snprintf(err, errlen, "--timeout wants seconds from 0 (never) to %.0f, not '%s'",
                         CTL_TIMEOUT_MAX_S, value);
                return -1;
            }
        } else if (d->bit == 0) {
            o->help = true;
        } else if (d->bit == OPT_DIRECTION) {
            o->direction = value;
        } else if (d->bit == OPT_EXPORT) {
            o->export_file = value;
        } else if (d->bit == OPT_OBJECTS) {
            o->objects = value;
        }
    }
    return 0;
}

static bool is_instance(const char *s)
{
    const char *slash = strrchr(s, '/');
    return slash != NULL && slash != s &&
           (strcmp(slash + 1, "forward") == 0 || strcmp(slash + 1, "reverse") == 0);
}

/* "db.table, db.*": every entry has a non-empty database and a non-empty name after the first dot. */
static bool is_object_list(const char *s)
{
    while (true) {
        while (*s == ' ')
            s++;
        size_t n = strcspn(s, ",");
        while (n > 0 && s[n - 1] == ' ')
            n--;
        const char *dot = memchr(s, '.', n);
        if (dot == NULL || dot == s || dot == s + n - 1)
            return false;
        s += strcspn(s, ",");
        if (*s == '\0')
            return true;
        s++;
    }
}

static int args_set_str(json_t *args, const char *key, const char *value, char *err, size_t errlen)
{
    json_t *v = json_string(value);   /* NULL: not UTF-8 (or out of memory) */
    if (v == NULL || json_object_set_new(args, key, v) != 0) {
        snprintf(err, errlen, "'%s' is not valid UTF-8", value);
        return -1;
    }
    return 0;
}

/* A relative FILE is the operator's, not the daemon's cwd: send it absolute. Returns malloc'd or NULL. */
static char *absolute_path(const char *file)
{
    if (file[0] == '/')
        return xstrdup(file);
    while (file[0] == '.' && file[1] == '/') {
        file += 2;
        while (file[0] == '/')
            file++;
    }
    char *cwd = getcwd(NULL, 0);
    if (cwd == NULL)
        return NULL;
    char *abs = xasprintf("%s%s%s", cwd, strcmp(cwd, "/") == 0 ? "" : "/", file);
    free(cwd);
    return abs;
}

/* Checks the command's arguments and builds its "args" object. Returns a CTL_EXIT_* code. */
static int build_args(const struct ctl_cmd *c, const struct ctl_opts *o, json_t *args, char *err,
                      size_t errlen)
{
    int nargs = o->npos - 1;
    const char *arg = nargs >= 1 ? o->pos[1] : NULL;

    for (size_t k = 0; k < SY_ARRAY_LEN(ctl_opt_defs); k++)
        if (ctl_opt_defs[k].bit & o->seen & ~c->opts) {
            snprintf(err, errlen, "%s takes no %s option", c->name, ctl_opt_defs[k].name);
            return CTL_EXIT_USAGE;
        }
    if (nargs > 1) {
        snprintf(err, errlen, "unexpected argument '%s'", o->pos[2]);
        return CTL_EXIT_USAGE;
    }
    if (arg == NULL && c->arg != ARG_PAIR_OPTIONAL) {
        snprintf(err, errlen, "%s needs %s", c->name, c->arg == ARG_INSTANCE ? "INSTANCE" : "PAIR");
        return CTL_EXIT_USAGE;
    }
    if (arg != NULL && arg[0] == '\0') {
        snprintf(err, errlen, "%s must not be empty", c->arg == ARG_INSTANCE ? "INSTANCE" : "PAIR");
        return CTL_EXIT_USAGE;
    }
    if (c->arg == ARG_INSTANCE && !is_instance(arg)) {
        snprintf(err, errlen, "INSTANCE is PAIR/forward or PAIR/reverse, not '%s'", arg);
        return CTL_EXIT_USAGE;
    }
    if (arg != NULL &&
        args_set_str(args, c->arg == ARG_INSTANCE ? "instance" : "pair", arg, err, errlen) != 0)
        return CTL_EXIT_USAGE;

    if (o->seen & OPT_DIRECTION) {
        if (strcmp(o->direction, "forward") != 0 && strcmp(o->direction, "reverse") != 0 &&
            strcmp(o->direction, "switchover") != 0) {
            snprintf(err, errlen, "--direction is forward, reverse or switchover, not '%s'", o->direction);
            return CTL_EXIT_USAGE;
        }
        if (args_set_str(args, "direction", o->direction, err, errlen) != 0)
            return CTL_EXIT_USAGE;
    }
    if ((o->seen & OPT_FORCE) && json_object_set_new(args, "force", json_true()) != 0)
        die_oom();
    if ((c->opts & (OPT_EXPORT | OPT_DISCARD)) && !(o->seen & OPT_EXPORT) == !(o->seen & OPT_DISCARD)) {
        snprintf(err, errlen, "%s needs exactly one of --export FILE or --discard", c->name);
        return CTL_EXIT_USAGE;
    }
    if (o->seen & OPT_EXPORT) {
        if (o->export_file[0] == '\0') {
            snprintf(err, errlen, "--export needs a FILE");
            return CTL_EXIT_USAGE;
        }
        char *abs = absolute_path(o->export_file);
        if (abs == NULL) {
            snprintf(err, errlen, "cannot make '%s' absolute: %s", o->export_file, strerror(errno));
            return CTL_EXIT_FAILED;
        }
        int rc = args_set_str(args, "export", abs, err, errlen);
        free(abs);
        if (rc != 0)
            return CTL_EXIT_USAGE;
    }
    if ((o->seen & OPT_DISCARD) && json_object_set_new(args, "discard", json_true()) != 0)
        die_oom();
    if (o->seen & OPT_OBJECTS) {
        if (!is_object_list(o->objects)) {
            snprintf(err, errlen, "--objects wants db.table or db.* entries separated by commas, not '%s'",
                     o->objects);
            return CTL_EXIT_USAGE;
        }
        if (args_set_str(args, "objects", o->objects, err, errlen) != 0)
            return CTL_EXIT_USAGE;
    }
    return CTL_EXIT_OK;
}

/* ---- the socket ---- */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Connects and sends the request line. SO_SNDTIMEO bounds connect (full backlog) and send. -1 + errno. */
static int ctl_send(const char *path, const char *line, size_t len, int timeout_ms)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int fd = -1, saved;

    if (strlen(path) >= sizeof sa.sun_path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);
    if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
        return -1;
    if (timeout_ms > 0) {
        struct timeval tv = { .tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000 };
        if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) != 0)
            goto fail;
    }
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0)
        goto fail;
    for (size_t off = 0; off < len;) {
        ssize_t n = send(fd, line + off, len - off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            goto fail;
        off += (size_t)n;
    }
    return fd;
fail:
    saved = errno;
    close(fd);
    errno = saved;
    return -1;
}

enum ctl_read { READ_OK, READ_ERRNO, READ_EOF, READ_TIMEOUT, READ_TOO_LONG };

/* Reads up to the first '\n' (excluded) or EOF after some bytes. *out is malloc'd and NUL-terminated. */
static enum ctl_read ctl_recv_line(int fd, int timeout_ms, char **out, size_t *out_len)
{
    size_t len = 0, cap = 0;
    char *buf = NULL;
    int64_t deadline = timeout_ms > 0 ? now_ms() + timeout_ms : 0;
    enum ctl_read rc;

    while (true) {
        int wait_ms = -1;
        if (timeout_ms > 0) {
            int64_t left = deadline - now_ms();
            if (left <= 0) {
                rc = READ_TIMEOUT;
                goto out;
            }
            wait_ms = (int)left;
        }
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        int pr = poll(&pfd, 1, wait_ms);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr < 0) {
            rc = READ_ERRNO;
            goto out;
        }
        if (pr == 0)
            continue;                          /* the deadline check above ends it */
        if (cap - len < 4096) {
            cap = cap ? 2 * cap : 65536;
            buf = xrealloc(buf, cap + 1);
        }
        ssize_t n = recv(fd, buf + len, cap - len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = READ_ERRNO;
            goto out;
        }
        if (n == 0) {
            rc = len > 0 ? READ_OK : READ_EOF;     /* a last line without '\n' still counts */
            break;
        }
        char *nl = memchr(buf + len, '\n', (size_t)n);
        len += (size_t)n;
        if (nl != NULL) {
            len = (size_t)(nl - buf);
            rc = READ_OK;
            break;
        }
        if (len > CTL_REPLY_MAX_BYTES) {
            rc = READ_TOO_LONG;
            goto out;
        }
    }
    if (len > CTL_REPLY_MAX_BYTES) {
        rc = READ_TOO_LONG;
        goto out;
    }
    buf[len] = '\0';
    *out = buf;
    *out_len = len;
    return rc;
out:
    free(buf);
    return rc;
}

/* Prints a reply; returns the exit code. */
static int print_reply(const struct ctl_cmd *c, const struct ctl_opts *o, const json_t *reply)
{
    const json_t *ok = json_object_get(reply, "ok");
    if (json_is_true(ok)) {
        const json_t *result = json_object_get(reply, "result");
        json_t *empty = NULL;
        if (result == NULL || json_is_null(result))
            result = empty = json_object();
        if (result == NULL)
            die_oom();
        if (o->json) {
            if (json_dumpf(result, stdout, JSON_INDENT(2) | JSON_ENCODE_ANY) != 0)
                die_oom();
            putchar('\n');
        } else if (c->print == PRINT_STATUS) {
            print_status(result);
        } else if (c->print == PRINT_CLIENTS) {
            print_clients(result);
        } else if (c->print == PRINT_PRECHECK) {
            print_precheck(result);
        } else {
            print_fields(result, stdout);
        }
        json_decref(empty);
        return CTL_EXIT_OK;
    }

    const json_t *error = json_object_get(reply, "error");
    const json_t *code = json_object_get(error, "code"), *msg = json_object_get(error, "message");
    char *code_s = json_is_string(code) ? clean_dup(json_string_value(code)) : xstrdup("unknown_error");
    char *msg_s = json_is_string(msg) ? clean_dup(json_string_value(msg)) : xstrdup("(no message)");
    if (o->json) {
        json_t *e = json_is_object(error) ? json_incref((json_t *)error)
                                          : json_pack("{s:s,s:s}", "code", code_s, "message", msg_s);
        if (e == NULL || json_dumpf(e, stdout, JSON_INDENT(2)) != 0)
            die_oom();
        putchar('\n');
        json_decref(e);
    } else {
        print_checks(json_object_get(error, "checks"), stdout);    /* precheck_failed may carry them */
    }
    fflush(stdout);
    fprintf(stderr, "error: %s: %s\n", code_s, msg_s);
    if (!o->json && json_is_object(error)) {     /* details such as the ids of unmovable sessions */
        const char *key;
        json_t *v;
        json_object_foreach((json_t *)error, key, v) {
            if (strcmp(key, "code") == 0 || strcmp(key, "message") == 0 || strcmp(key, "checks") == 0)
                continue;
            char *k = clean_dup(key);
            char *s = fmt_value(v, false);
            fprintf(stderr, "  %s: %s\n", k, s);
            free(k);
            free(s);
        }
    }
    free(code_s);
    free(msg_s);
    return CTL_EXIT_FAILED;
}

/* What one request/reply exchange holds, released (fd < 0 and NULLs are skipped). */
static void call_free(int fd, json_t *reply, json_t *req, char *reply_s, char *line, char *req_s)
{
    if (fd >= 0)
        close(fd);
    json_decref(reply);
    json_decref(req);
    free(reply_s);
    free(line);
    free(req_s);
}

/* The pair's entry of a status asked on a connection of its own (NULL if none came back in 2 s). */
static json_t *pair_status(const char *socket, const char *pair)
{
    json_t *req = json_pack("{s:s,s:{s:s}}", "cmd", "status", "args", "pair", pair);
    char *req_s = req ? json_dumps(req, JSON_COMPACT) : NULL, *line = NULL, *reply_s = NULL;
    json_t *reply = NULL, *p = NULL;
    size_t len = 0;
    if (req_s == NULL)
        die_oom();
    line = xasprintf("%s\n", req_s);
    int fd = ctl_send(socket, line, strlen(line), 2000);
    if (fd >= 0 && ctl_recv_line(fd, 2000, &reply_s, &len) == READ_OK &&
        (reply = json_loadb(reply_s, len, 0, NULL)) != NULL)
        p = json_incref(json_array_get(json_object_get(json_object_get(reply, "result"), "pairs"), 0));
    call_free(fd, reply, req, reply_s, line, req_s);
    return p;
}

/* --progress: until the reply is readable on fd, asks status every 200 ms and prints each step the switch
 * has passed, once, to stderr (stdout keeps the result alone). Returns what is left of timeout_ms. */
static int wait_with_progress(int fd, const struct ctl_opts *o, const char *pair, int timeout_ms)
{
    int64_t deadline = timeout_ms > 0 ? now_ms() + timeout_ms : 0;
    char shown[64] = "";
    while (true) {
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        int pr = poll(&pfd, 1, 200);
        if (pr != 0 && !(pr < 0 && errno == EINTR))
            break;                                   /* the reply (or an error ctl_recv_line will see) */
        if (deadline && now_ms() >= deadline)
            return 1;                                /* ctl_recv_line times out at once */
        json_t *p = pair_status(o->socket, pair);
        const json_t *sw = json_object_get(p, "switch");
        const char *step = json_string_value(json_object_get(sw, "last_step"));
        if (step != NULL && step[0] != '\0' && strcmp(step, shown) != 0) {
            char *name = clean_dup(step);
            fprintf(stderr, "%s %s: %s done (%lld ms)\n", json_string_value(json_object_get(sw, "operation")) ?: "switch",
                    pair, name, (long long)json_integer_value(json_object_get(sw, "elapsed_ms")));
            free(name);
            snprintf(shown, sizeof shown, "%s", step);
        }
        json_decref(p);
    }
    if (!deadline)
        return 0;
    int64_t left = deadline - now_ms();
    return left > 0 ? (int)left : 1;
}

/* One request, one reply. Returns the exit code. */
static int ctl_call(const struct ctl_cmd *c, const struct ctl_opts *o, json_t *args)
{
    int timeout_ms = o->timeout_ms >= 0 ? o->timeout_ms : c->long_running ? 0 : CTL_DEFAULT_TIMEOUT_MS;
    char *req_s = NULL, *line = NULL, *reply_s = NULL;
    json_t *reply = NULL;
    size_t reply_len = 0;
    int fd = -1, rc = CTL_EXIT_UNREACHABLE;
    json_error_t jerr;

    json_t *req = json_pack("{s:s,s:O}", "cmd", c->name, "args", args);
    if (req == NULL || (req_s = json_dumps(req, JSON_COMPACT)) == NULL)
        die_oom();
    line = xasprintf("%s\n", req_s);
    if ((fd = ctl_send(o->socket, line, strlen(line), timeout_ms)) < 0) {
        fprintf(stderr, "switchyardctl: cannot reach switchyardd at %s: %s\n", o->socket,
                errno == EAGAIN ? "timed out" : strerror(errno));
        goto out;
    }
    if (o->seen & OPT_PROGRESS)
        timeout_ms = wait_with_progress(fd, o, json_string_value(json_object_get(args, "pair")), timeout_ms);
    switch (ctl_recv_line(fd, timeout_ms, &reply_s, &reply_len)) {
    case READ_OK:
        break;
    case READ_ERRNO:
        fprintf(stderr, "switchyardctl: cannot reach switchyardd at %s: %s\n", o->socket, strerror(errno));
        goto out;
    case READ_EOF:
        fprintf(stderr, "switchyardctl: cannot reach switchyardd at %s: connection closed without a reply\n",
                o->socket);
        goto out;
    case READ_TIMEOUT:
        fprintf(stderr, "switchyardctl: no reply from switchyardd at %s within %g s; "
                "the command may still be running (see status)\n", o->socket, timeout_ms / 1000.0);
        goto out;
    case READ_TOO_LONG:
        fprintf(stderr, "switchyardctl: bad reply from switchyardd at %s: longer than %zu MiB\n", o->socket,
                CTL_REPLY_MAX_BYTES >> 20);
        goto out;
    }
    reply = json_loadb(reply_s, reply_len, 0, &jerr);
    if (!json_is_object(reply) || !json_is_boolean(json_object_get(reply, "ok"))) {
        fprintf(stderr, "switchyardctl: bad reply from switchyardd at %s: %s\n", o->socket,
                reply == NULL ? jerr.text : "not an object with a boolean \"ok\"");
        goto out;
    }
    rc = print_reply(c, o, reply);
out:
    call_free(fd, reply, req, reply_s, line, req_s);
    return rc;
}

/* status --watch: the status again every second until interrupted (or until a call fails: its exit code).
 * On a terminal each one replaces the last (clear screen + a time line); otherwise they follow each other,
 * separated by a blank line, plain as without --watch. */
static int watch(const struct ctl_cmd *c, const struct ctl_opts *o, json_t *args)
{
    bool tty = isatty(STDOUT_FILENO);
    for (bool first = true;; first = false) {
        if (tty) {
            time_t now = time(NULL);
            char at[32];
            strftime(at, sizeof at, "%H:%M:%S", localtime(&now));
            printf("\033[H\033[2J%s  switchyardctl status (every 1 s, Ctrl-C to stop)\n\n", at);
        } else if (!first) {
            putchar('\n');
        }
        int rc = ctl_call(c, o, args);
        if (rc != CTL_EXIT_OK)
            return rc;
        if (fflush(stdout) != 0)
            return CTL_EXIT_FAILED;
        sleep(1);
    }
}

/* `help`, `help COMMAND`, `COMMAND --help`: local, exit 0 (2 for an unknown COMMAND). */
static int show_help(const struct ctl_cmd *c, const struct ctl_opts *o)
{
    const struct ctl_cmd *only = c;
    char err[300];

    if (c->print == PRINT_LOCAL) {
        if (o->npos > 2)
            return usage_error(c, "help takes at most one COMMAND");
        if (o->npos == 1) {
            print_help(stdout);
            return CTL_EXIT_OK;
        }
        if ((only = cmd_find(o->pos[1])) == NULL) {
            snprintf(err, sizeof err, "unknown command '%s'", o->pos[1]);
            return usage_error(NULL, err);
        }
    }
    printf("usage: switchyardctl [-s SOCKET] [--json] %s %s\n", only->name, only->usage);
    print_commands(stdout, only);
    return CTL_EXIT_OK;
}

int main(int argc, char **argv)
{
    struct ctl_opts o;
    char err[512];
    const struct ctl_cmd *c = NULL;
    int rc;

    if (parse_argv(argc, argv, &o, err, sizeof err) != 0)
        return usage_error(NULL, err);
    if (o.npos == 0 && o.help) {
        print_help(stdout);
        return CTL_EXIT_OK;
    }
    if (o.npos == 0)
        return usage_error(NULL, "no command given");
    if ((c = cmd_find(o.pos[0])) == NULL) {
        snprintf(err, sizeof err, "unknown command '%s'", o.pos[0]);
        return usage_error(NULL, err);
    }
    if (o.socket == NULL)
        o.socket = getenv("SWITCHYARD_SOCKET");
    if (o.socket == NULL || o.socket[0] == '\0')
        o.socket = CTL_DEFAULT_SOCKET;

    if (c->print == PRINT_LOCAL || o.help)     /* help [COMMAND], or COMMAND --help */
        return show_help(c, &o);

    json_t *args = json_object();
    if (args == NULL)
        die_oom();
    rc = build_args(c, &o, args, err, sizeof err);
    if (rc == CTL_EXIT_USAGE)
        rc = usage_error(c, err);
    else if (rc != CTL_EXIT_OK)
        fprintf(stderr, "switchyardctl: %s\n", err);
    else if (o.seen & OPT_WATCH)
        rc = watch(c, &o, args);
    else
        rc = ctl_call(c, &o, args);
    json_decref(args);
    if (fflush(stdout) != 0 && rc == CTL_EXIT_OK) {
        fprintf(stderr, "switchyardctl: writing output: %s\n", strerror(errno));
        rc = CTL_EXIT_FAILED;
    }
    return rc;
}
