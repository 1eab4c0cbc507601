/* What a SQL Server session holds on its server that a move must restore or that pins it there, read from
 * the client's requests and the server's token stream. Pure (no I/O, no globals; unit-tested in
 * tests/unit/test_tds_track.c, fuzzed by fuzz/fuzz_tds_track.c):
 *   - TYPE_INFO and values (MS-TDS 2.2.5), enough to walk COLMETADATA/ROW/NBCROW/RETURNVALUE and RPC params;
 *   - the response scanner: one token at a time over a span, keeping the result set's column types;
 *   - the request parser: ALL_HEADERS (transaction descriptor), RPC calls and their first parameters,
 *     TRANSACTION_MANAGER request types;
 *   - the batch text scanner: SET options, #temp tables, DECLARE CURSOR, sp_getapplock, BEGIN DISTRIBUTED;
 *   - the session's tracked state (struct sy_tds_track) those feed, and what restores it on another server.
 * What is not understood (a token or type this file does not know) is never an error for the session: the
 * tracker marks itself `lost` (the session stays where it is: unmovable) and the relay goes on. */
#ifndef SY_TDS_TRACK_H
#define SY_TDS_TRACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/parse.h"
#include "proxy/tds_wire.h"

#define SY_TDS_REQ_TRACK_MAX (4u << 20) /* request payload bytes read whole (larger: streamed, not tracked) */
#define SY_TDS_TOKEN_TRACK_MAX (32u << 20) /* one response token's bytes buffered for the scan at most */
#define SY_TDS_COLS_MAX 4096u           /* SQL Server's limit of columns in a result set */
#define SY_TDS_RPC_MAX 16               /* RPC calls of one request message the parser looks at */
#define SY_TDS_RPC_PARAMS 4             /* leading parameters of each call whose raw bytes are kept */
#define SY_TDS_SET_MAX 32               /* SET options a session's state keeps (one per option) */
#define SY_TDS_NAMES_MAX 16             /* temp tables / cursors named at most (more: counted) */
#define SY_TDS_PREP_MAX 4096            /* prepared handles tracked per session (more: tracking lost) */

/* Known RPC proc ids (MS-TDS 2.2.6.6; also matched by name) */
enum sy_tds_proc {
    SY_TDS_SP_CURSOROPEN = 2, SY_TDS_SP_CURSORPREPARE = 3, SY_TDS_SP_CURSOREXECUTE = 4,
    SY_TDS_SP_CURSORPREPEXEC = 5, SY_TDS_SP_CURSORUNPREPARE = 6, SY_TDS_SP_CURSORCLOSE = 9,
    SY_TDS_SP_EXECUTESQL = 10, SY_TDS_SP_PREPARE = 11, SY_TDS_SP_EXECUTE = 12, SY_TDS_SP_PREPEXEC = 13,
    SY_TDS_SP_UNPREPARE = 15,
    SY_TDS_SP_GETAPPLOCK = 100, SY_TDS_SP_RELEASEAPPLOCK = 101, /* by name only: not TDS proc ids */
};

/* ---- types ---- */

struct sy_tds_type {
    uint8_t id;          /* TDS type byte (0x26 INTN, 0xE7 NVARCHAR, ...) */
    uint8_t len_size;    /* bytes of a value's length prefix: 0 fixed, 1, 2, 4; 8 = PLP */
    uint8_t fixed_len;   /* len_size 0: the value's bytes */
    bool textptr;        /* TEXT/NTEXT/IMAGE in a row: a text pointer and timestamp precede the value */
};

/* ---- the server's token stream ---- */

enum sy_tds_rsp_kind { SY_TRSP_OTHER, SY_TRSP_ENVCHANGE, SY_TRSP_RETURNVALUE, SY_TRSP_ERROR, SY_TRSP_DONE };

struct sy_tds_rsp_ev {
    enum sy_tds_rsp_kind kind;
    uint8_t token;               /* the token's type byte */
    struct sy_tds_envchange env; /* ENVCHANGE: spans into the scanned bytes */
    int32_t error;               /* ERROR: its number */
    struct sy_tds_done done;     /* DONE, DONEPROC, DONEINPROC */
    struct sy_tds_token tok;     /* ERROR, INFO, ENVCHANGE, DONE*: the token (sy_tds_error_parse ...) */
    bool rv_int;                 /* RETURNVALUE: a non-NULL 4-byte int (a prepared handle) */
    int32_t rv_value;
};

struct sy_tds_rsp_scan {
    struct sy_tds_type *cols;    /* owned: the current result set's column types (COLMETADATA) */
    size_t ncols, cap;
};

/* The next token at p: OK (*used bytes, ev filled), AGAIN when the token is cut by the span's end, BAD for
 * a token or type the scan does not know (err names it). Reading resumes at p + *used. */
enum sy_parse sy_tds_rsp_step(struct sy_tds_rsp_scan *sc, const uint8_t *p, size_t n, size_t *used,
                              struct sy_tds_rsp_ev *ev, char *err, size_t errlen) SY_MUST_CHECK;
void sy_tds_rsp_scan_fini(struct sy_tds_rsp_scan *sc);

/* ---- the client's requests ---- */

struct sy_tds_span_off {
    size_t off, len;             /* into the request payload */
};

struct sy_tds_rpc_call {
    int proc;                    /* enum sy_tds_proc, or 0 for any other procedure */
    unsigned nparams;            /* parameters seen */
    struct sy_tds_span_off param[SY_TDS_RPC_PARAMS]; /* raw bytes of the first ones (name .. value) */
    bool handle_int4;            /* the first parameter is a non-NULL 4-byte int (a handle) ... */
    size_t handle_off;           /* ... whose value sits here in the payload */
    int32_t handle;
    struct sy_tds_span_off text; /* sp_executesql's statement (NVARCHAR, not PLP): unused by the tracker */
};

struct sy_tds_req {
    uint8_t type;                /* SY_TDS_SQL_BATCH, SY_TDS_RPC, SY_TDS_TRANSACTION_MANAGER */
    bool has_desc;               /* ALL_HEADERS carried a transaction descriptor ... */
    size_t desc_off;             /* ... at this payload offset (8 bytes) */
    uint64_t desc;
    size_t body_off;             /* after ALL_HEADERS: batch text (UTF-16LE), RPC calls, TM request */
    unsigned n_rpc;
    struct sy_tds_rpc_call rpc[SY_TDS_RPC_MAX];
    bool rpc_more;               /* more calls than SY_TDS_RPC_MAX (not looked at) */
    int tm_request;              /* TRANSACTION_MANAGER request type, -1 otherwise */
};

/* A whole request payload. BAD (err) when it cannot be walked: the session's tracking is then lost. */
enum sy_parse sy_tds_req_parse(const uint8_t *p, size_t n, uint8_t type, struct sy_tds_req *q, char *err,
                               size_t errlen) SY_MUST_CHECK;

/* ---- a session's tracked state ---- */

struct sy_tds_set {
    char name[40];               /* "ANSI_NULLS", "TRANSACTION ISOLATION LEVEL", ... */
    char stmt[160];              /* the statement that restores it: "SET ANSI_NULLS OFF" */
};

struct sy_tds_prep {
    int32_t handle;              /* what the client holds (the handle of the side it prepared on) */
    int32_t backend;             /* the same statement's handle on the current backend connection */
    uint8_t *def;                /* owned: sp_prepare's raw parameters after the handle (@params, @stmt) */
    size_t def_len;
    uint8_t *handle_param;       /* owned: the raw handle parameter as the client sent it */
    size_t handle_param_len;
};

struct sy_tds_pending {          /* what a request in flight waits for from its response */
    int proc;                    /* per RPC call: enum sy_tds_proc or 0 */
    uint8_t *def;                /* owned: sp_prepare/sp_prepexec definition until the handle comes */
    size_t def_len;
    uint8_t *handle_param;       /* owned */
    size_t handle_param_len;
};

struct sy_tds_track {
    char database[130];          /* current database (ENVCHANGE 1) */
    char language[130];          /* current language (ENVCHANGE 2) */
    uint8_t collation[5];        /* ENVCHANGE 7 (SQL collation bytes) */
    bool has_collation;
    bool in_txn;                 /* between ENVCHANGE begin and commit/rollback */
    bool txn_empty;              /* ... begun by a TRANSACTION_MANAGER request (pytds' commit-and-begin) and
                                    no request since: nothing in it, a switch may begin it anew elsewhere */
    bool req_tm;                 /* the request in flight is a TRANSACTION_MANAGER request */
    uint64_t desc;               /* the backend's current transaction descriptor (0 outside one) */
    unsigned n_sets;
    struct sy_tds_set sets[SY_TDS_SET_MAX]; /* in the order first set */
    unsigned n_temp;             /* temp tables created and not dropped */
    char temp[SY_TDS_NAMES_MAX][130];
    unsigned n_cursors;          /* sp_cursor* cursors open, DECLARE ... CURSOR not DEALLOCATEd */
    unsigned n_applocks;         /* sp_getapplock not matched by sp_releaseapplock */
    bool distributed;            /* BEGIN DISTRIBUTED TRAN / DTC enlisted: until the transaction ends */
    char lost[160];              /* sticky: why tracking stopped ("" = tracking) */
    struct sy_tds_prep *preps;   /* owned */
    size_t n_preps, cap_preps;
    uint32_t gen;                /* bumped by every change a move restores (database, language, SET, prepared) */
    struct sy_tds_pending pend[SY_TDS_RPC_MAX]; /* the request in flight's RPC calls */
    unsigned n_pend, pend_at;    /* calls, and the one whose response is being read (DONEPROC advances) */
};

void sy_tds_track_init(struct sy_tds_track *tr, const char *database, const char *language);
void sy_tds_track_fini(struct sy_tds_track *tr);
/* Tracking stops (sticky): the session is unmovable with `why`. */
void sy_tds_track_lose(struct sy_tds_track *tr, const char *why);
/* A request about to be forwarded (payload whole). */
void sy_tds_track_request(struct sy_tds_track *tr, const uint8_t *p, size_t n, const struct sy_tds_req *q);
/* SQL batch text (UTF-16LE). */
void sy_tds_track_batch(struct sy_tds_track *tr, const uint8_t *utf16, size_t n);
/* One token of the response. */
void sy_tds_track_event(struct sy_tds_track *tr, const struct sy_tds_rsp_ev *ev);
/* The response is complete. */
void sy_tds_track_response_end(struct sy_tds_track *tr);
/* Why the session cannot move (false: it can). */
bool sy_tds_track_unmovable(const struct sy_tds_track *tr, char *why, size_t len);

/* ---- restoring on another server ---- */

/* The batch that restores database, language and SET options on a fresh login (ASCII); `login_db` and
 * `login_lang` are what the new login starts with (nothing emitted for what equals them). Returns the
 * bytes written (0: nothing to restore), or (size_t)-1 when it does not fit. */
size_t sy_tds_track_restore_sql(const struct sy_tds_track *tr, const char *login_db, const char *login_lang,
                                char *out, size_t cap);
/* An RPC payload (ALL_HEADERS with descriptor 0) preparing prep again: sp_prepare with the client's
 * handle parameter and definition. Returns bytes, 0 when it does not fit. */
size_t sy_tds_prepare_rpc_build(uint8_t *out, size_t cap, const struct sy_tds_prep *prep);
/* A SQL_BATCH payload (ALL_HEADERS with descriptor 0) carrying ASCII sql. Returns bytes, 0: no fit. */
size_t sy_tds_batch_build(uint8_t *out, size_t cap, const char *sql, uint64_t desc);
/* After a move: rewrites, in place, q's descriptor to tr->desc and each sp_execute/sp_unprepare handle the
 * client holds to the backend's. Returns how many fields changed. */
unsigned sy_tds_req_remap(uint8_t *p, size_t n, const struct sy_tds_req *q, const struct sy_tds_track *tr);
/* The prepared handle the client holds -> tracked entry (NULL: unknown). */
struct sy_tds_prep *sy_tds_track_prep_find(const struct sy_tds_track *tr, int32_t handle);

#endif
