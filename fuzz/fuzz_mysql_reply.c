/* libFuzzer target: generic replies and requests. Input = [selector][8 bytes of caps][payload]:
 * OK (re-encoded and re-parsed), session-state iteration, ERR (round trip), EOF, lenenc values,
 * COM_STMT_EXECUTE headers, KILL statements, and the auth module's pure matchers (host patterns,
 * account choice, "*HEX" parsing). Traps when an invariant or a round trip breaks. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/mysql_auth.h"
#include "proxy/mysql_codec.h"
#include "proxy/mysql_sql.h"
#include "fuzz/fuzz_require.h"

static uint8_t enc[1 << 17];
static char text[1 << 17];

static bool in_span(const uint8_t *q, size_t qlen, const uint8_t *p, size_t n)
{
    return qlen == 0 || (q != NULL && q >= p && qlen <= n && q - p <= (ptrdiff_t)(n - qlen));
}

static void tracks(const uint8_t *p, size_t n)
{
    struct sy_rd r = sy_rd_make(p, n);
    struct sy_mysql_track t;
    int rc;
    while ((rc = sy_mysql_track_next(&r, &t)) == 1) {
        REQUIRE(in_span(t.name_p, t.name_len, p, n) && in_span(t.value_p, t.value_len, p, n));
    }
    REQUIRE(rc == 0 || rc == -1);
    REQUIRE(sy_mysql_track_next(&r, &t) == rc);   /* the end, or the error, sticks */
}

static void ok(const uint8_t *p, size_t n, uint64_t caps)
{
    struct sy_mysql_ok o, back;
    if (sy_mysql_ok_parse(p, n, caps, &o) != SY_PARSE_OK)
        return;
    REQUIRE(in_span(o.info_p, o.info_len, p, n) && in_span(o.state_p, o.state_len, p, n));
    if (o.state_p != NULL)
        tracks(o.state_p, o.state_len);
    size_t m = sy_mysql_ok_encode(&o, p[0], caps, enc, sizeof enc);
    REQUIRE(m > 0);
    REQUIRE(sy_mysql_ok_parse(enc, m, caps, &back) == SY_PARSE_OK);
    REQUIRE(o.affected_rows == back.affected_rows && o.last_insert_id == back.last_insert_id);
    REQUIRE(o.status == back.status && o.warnings == back.warnings);
    REQUIRE(o.info_len == back.info_len &&
            (o.info_len == 0 || memcmp(o.info_p, back.info_p, o.info_len) == 0));
    REQUIRE(o.state_len == back.state_len &&
            (o.state_len == 0 || memcmp(o.state_p, back.state_p, o.state_len) == 0));
}

static void err(const uint8_t *p, size_t n)
{
    struct sy_mysql_err e, back;
    if (sy_mysql_err_parse(p, n, &e) != SY_PARSE_OK)
        return;
    REQUIRE(e.sqlstate[5] == '\0' && in_span((const uint8_t *)e.msg_p, e.msg_len, p, n));
    if (strlen(e.sqlstate) != 5 || memchr(e.msg_p, 0, e.msg_len) != NULL || e.msg_len >= sizeof text)
        return;                                   /* not representable through the C-string encoder */
    memcpy(text, e.msg_p, e.msg_len);
    text[e.msg_len] = '\0';
    size_t m = sy_mysql_err_encode(e.code, e.sqlstate, text, enc, sizeof enc);
    REQUIRE(m == 9 + e.msg_len);
    REQUIRE(sy_mysql_err_parse(enc, m, &back) == SY_PARSE_OK && back.code == e.code);
    REQUIRE(strcmp(back.sqlstate, e.sqlstate) == 0 && back.msg_len == e.msg_len);
    REQUIRE(e.msg_len == 0 || memcmp(back.msg_p, e.msg_p, e.msg_len) == 0);
}

static void eof_and_lenenc(const uint8_t *p, size_t n)
{
    struct sy_mysql_eof e;
    if (sy_mysql_eof_parse(p, n, &e) == SY_PARSE_OK)
        REQUIRE(n < 9 && p[0] == 0xFE);
    struct sy_rd r = sy_rd_make(p, n);
    uint64_t v;
    bool is_null;
    while (sy_rd_left(&r) > 0 && sy_mysql_lenenc_get(&r, &v, &is_null)) {
        uint8_t b[9];
        struct sy_wr w = sy_wr_make(b, sizeof b);
        sy_mysql_lenenc_put(&w, v);
        struct sy_rd back = sy_rd_make(b, w.len);
        uint64_t v2;
        REQUIRE(!w.bad && sy_mysql_lenenc_get(&back, &v2, NULL) && v2 == v && sy_rd_left(&back) == 0);
    }
    r = sy_rd_make(p, n);
    size_t len;
    const uint8_t *s;
    while ((s = sy_mysql_lenenc_str_get(&r, &len)) != NULL)
        REQUIRE(in_span(s, len, p, n));
    REQUIRE(r.bad || sy_rd_left(&r) == 0);
}

static void stmt_exec(const uint8_t *p, size_t n, uint16_t num_params)
{
    struct sy_mysql_stmt_exec x;
    if (sy_mysql_stmt_exec_parse(p, n, num_params, &x) != SY_PARSE_OK)
        return;
    REQUIRE(!x.new_params_bound || in_span(x.types_p, 2 * (size_t)num_params, p, n));
    REQUIRE(x.new_params_bound || x.types_p == NULL);
}

/* Statements of a text: in order, inside it, never overlapping; the fold agrees on their number. */
static void sql_stmts(const uint8_t *p, size_t n)
{
    size_t pos = 0, prev_end = 0, count = 0;
    struct sy_sql_stmt st;
    while (sy_sql_next(p, n, &pos, &st)) {
        REQUIRE(st.off >= prev_end && st.off + st.len <= n && pos <= n && pos >= st.off + st.len);
        REQUIRE(st.kind >= SY_SQL_OTHER && st.kind <= SY_SQL_HANDLER_CLOSE);
        REQUIRE(st.name_len == 0 || (st.name_off >= st.off && st.name_off + st.name_len <= st.off + st.len));
        REQUIRE(st.text_len == 0 || (st.text_len >= 2 && st.text_off >= st.off && st.text_off + st.text_len <= n));
        if (st.text_len > 0) {
            uint8_t *v = malloc(st.text_len);
            REQUIRE(v != NULL && sy_sql_unquote(p + st.text_off, st.text_len, v) <= st.text_len - 1);
            free(v);
        }
        prev_end = st.off + st.len;
        count++;
    }
    struct sy_sql_effect e;
    sy_sql_effect(p, n, &e);
    REQUIRE(e.statements == count);
    /* lock calls: forward only, names inside the text */
    struct sy_sql_lock lk;
    pos = 0;
    for (size_t before = 0; sy_sql_next_lock(p, n, &pos, &lk); before = pos) {
        REQUIRE(pos > before && pos <= n);
        REQUIRE(lk.op <= SY_SQL_LOCK_RELEASE_ALL);
        REQUIRE(lk.name_p == NULL || in_span(lk.name_p, lk.name_len, p, n));
    }
}

static void kill_stmt(const uint8_t *p, size_t n)
{
    struct sy_mysql_kill k, again;
    if (!sy_mysql_kill_parse(p, n, &k))
        return;
    REQUIRE(k.id_len > 0 && k.id_off + k.id_len <= n);
    uint64_t id = 0;
    for (size_t i = 0; i < k.id_len; i++) {
        REQUIRE(p[k.id_off + i] >= '0' && p[k.id_off + i] <= '9');
        id = id * 10 + (uint64_t)(p[k.id_off + i] - '0');
    }
    REQUIRE(id == k.id);
    /* the caller's use: substitute another id and parse again */
    static const char sub[] = "4242";
    if (n - k.id_len + 4 > sizeof enc)
        return;
    memcpy(enc, p, k.id_off);
    memcpy(enc + k.id_off, sub, 4);
    memcpy(enc + k.id_off + 4, p + k.id_off + k.id_len, n - k.id_off - k.id_len);
    REQUIRE(sy_mysql_kill_parse(enc, n - k.id_len + 4, &again) && again.id == 4242 &&
            again.query_only == k.query_only && again.id_off == k.id_off);
}

/* payload split at NULs: pattern, host, user, then account rows as (user, host) pairs */
static void auth_match(const uint8_t *p, size_t n)
{
    if (n >= sizeof text)
        return;
    memcpy(text, p, n);
    text[n] = '\0';
    const char *field[16];
    size_t nf = 0;
    for (size_t i = 0; i <= n && nf < 16;) {
        field[nf++] = text + i;
        i += strlen(text + i) + 1;
    }
    uint8_t stage2[SY_SHA1_LEN];
    (void)sy_mysql_native_hash_parse(field[0], stage2);
    if (nf < 2)
        return;
    (void)sy_mysql_host_match(field[0], field[1]);
    struct sy_mysql_account rows[6];
    size_t nrows = 0;
    for (size_t i = 3; i + 1 < nf && nrows < 6; i += 2) {
        rows[nrows].user = (char *)field[i];
        rows[nrows].host = (char *)field[i + 1];
        rows[nrows].plugin = (char *)"mysql_native_password";
        rows[nrows].auth_string = (char *)"";
        nrows++;
    }
    const char *user = nf > 2 ? field[2] : "";
    const struct sy_mysql_account *a = sy_mysql_account_match(rows, nrows, user, field[1], field[1]);
    REQUIRE(a == NULL || (a >= rows && a < rows + nrows));
    if (a != NULL)
        REQUIRE(a->user[0] == '\0' || strcmp(a->user, user) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 9)
        return 0;
    uint64_t caps = 0;
    for (int i = 0; i < 8; i++)
        caps |= (uint64_t)data[1 + i] << (8 * i);
    const uint8_t *p = data + 9;
    size_t n = size - 9;
    switch (data[0] % 7) {
    case 0:
        ok(p, n, caps);
        break;
    case 1:
        tracks(p, n);
        break;
    case 2:
        err(p, n);
        break;
    case 3:
        eof_and_lenenc(p, n);
        break;
    case 4:
        stmt_exec(p, n, (uint16_t)caps);
        break;
    case 5:
        kill_stmt(p, n);
        sql_stmts(p, n);
        break;
    default:
        auth_match(p, n);
        break;
    }
    return 0;
}
