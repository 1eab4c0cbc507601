/* libFuzzer target: MySQL framing and response tracking. Input = [command][flags][byte stream]; the
 * stream is split into packets by sy_mysql_hdr_parse and fed to the tracker as the proxy would: whole
 * when wants_whole() says so, else only what is there (a header may claim 16 MiB: the rest of it is
 * taken as streamed and the next header follows the bytes that are there).
 * Flags pick DEPRECATE_EOF, SESSION_TRACK, PROGRESS, CACHE_METADATA and a requested cursor. A second tracker is fed every
 * byte that is there and must agree with the first at each packet. Traps on broken invariants. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/mysql_codec.h"
#include "fuzz/fuzz_require.h"

/* An OK the tracker decoded re-encodes to something that decodes the same. */
static void check_ok_roundtrip(const struct sy_mysql_ok *ok, uint8_t header, uint64_t caps)
{
    static uint8_t buf[1 << 16];
    struct sy_mysql_ok back;
    size_t n = sy_mysql_ok_encode(ok, header, caps, buf, sizeof buf);
    if (n == 0)
        return;                                   /* only when it does not fit */
    REQUIRE(sy_mysql_ok_parse(buf, n, caps, &back) == SY_PARSE_OK);
    REQUIRE(back.affected_rows == ok->affected_rows && back.last_insert_id == ok->last_insert_id);
    REQUIRE(back.status == ok->status && back.warnings == ok->warnings);
    REQUIRE(back.info_len == ok->info_len &&
            (ok->info_len == 0 || memcmp(back.info_p, ok->info_p, ok->info_len) == 0));
    REQUIRE(back.state_len == ok->state_len &&
            (ok->state_len == 0 || memcmp(back.state_p, ok->state_p, ok->state_len) == 0));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    uint8_t cmd = data[0], flags = data[1];
    uint64_t caps = SY_CAP_PROTOCOL_41 | SY_CAP_TRANSACTIONS | SY_CAP_MULTI_RESULTS | SY_CAP_PS_MULTI_RESULTS;
    if (flags & 1)
        caps |= SY_CAP_DEPRECATE_EOF;
    if (flags & 2)
        caps |= SY_CAP_SESSION_TRACK;
    if (flags & 4)
        caps |= SY_CAP_MARIADB_PROGRESS;
    if (flags & 8)
        caps |= SY_CAP_MARIADB_CACHE_METADATA;

    struct sy_mysql_resp r, r2;
    struct sy_mysql_pkt pkt, pkt2;
    sy_mysql_resp_start(&r, cmd, caps);
    sy_mysql_resp_start(&r2, cmd, caps);
    r.cursor = r2.cursor = (flags & 16) != 0; /* an execute that asked for a cursor */
    REQUIRE(sy_mysql_cmd_has_reply(cmd) == (r.phase != SY_RESP_DONE));

    const uint8_t *p = data + 2;
    size_t n = size - 2;
    while (n >= SY_MYSQL_HDR_LEN) {
        struct sy_mysql_hdr h;
        REQUIRE(sy_mysql_hdr_parse(p, n, &h) == SY_PARSE_OK && h.len <= SY_MYSQL_MAX_PAYLOAD);
        p += SY_MYSQL_HDR_LEN;
        n -= SY_MYSQL_HDR_LEN;
        if (h.len > 0 && n == 0)
            break;
        bool whole = sy_mysql_resp_wants_whole(&r, h.len ? p[0] : 0, h.len);
        size_t avail = h.len < n ? h.len : n;
        if (whole && avail < h.len)
            break;                                /* the proxy would wait for the rest */
        if (avail < h.len && avail > 8)           /* a claim past the input: its rest was "streamed" */
            avail = 8;                            /* and the stream goes on after 8 bytes */
        enum sy_mysql_resp_phase before = r.phase;
        const uint8_t *payload = avail ? p : NULL;
        size_t least = whole ? h.len : (h.len ? 1 : 0);         /* what the proxy has at minimum */
        enum sy_mysql_step step = sy_mysql_resp_feed(&r, payload, least, h.len, &pkt);
        enum sy_mysql_step step2 = sy_mysql_resp_feed(&r2, payload, avail, h.len, &pkt2);
        REQUIRE(step == step2 && pkt.kind == pkt2.kind && r.phase == r2.phase && r.left == r2.left);
        REQUIRE(r.continued == r2.continued && r.status == r2.status && r.failed == r2.failed);
        p += avail;
        n -= avail;

        REQUIRE(r.left <= 0xFFFF);
        REQUIRE(pkt.kind == SY_PKT_DATA || pkt.kind == SY_PKT_TEXT || pkt.kind == SY_PKT_PREPARE_OK || whole);
        switch (step) {
        case SY_STEP_MORE:
            REQUIRE(r.phase != SY_RESP_DONE);
            break;
        case SY_STEP_INFILE:
            REQUIRE(r.phase == SY_RESP_INFILE_WAIT && pkt.kind == SY_PKT_INFILE &&
                    (cmd == SY_COM_QUERY || cmd == SY_COM_STMT_EXECUTE)); /* a prepared LOAD DATA LOCAL too */
            break;
        case SY_STEP_DONE:
            REQUIRE(r.phase == SY_RESP_DONE && before != SY_RESP_DONE);
            REQUIRE(pkt.kind != SY_PKT_ERR || r.failed);
            REQUIRE(pkt.kind != SY_PKT_OK || (r.has_status && r.status == pkt.ok.status));
            REQUIRE(pkt.kind != SY_PKT_EOF || (r.has_status && r.status == pkt.eof.status));
            break;
        case SY_STEP_BAD:
            REQUIRE(r.phase == SY_RESP_DONE);
            break;
        }
        if (pkt.kind == SY_PKT_OK)
            check_ok_roundtrip(&pkt.ok, payload[0], caps);
        if (step == SY_STEP_DONE || step == SY_STEP_BAD) {
            REQUIRE(sy_mysql_resp_feed(&r, (const uint8_t *)"\0", 1, 1, &pkt) == SY_STEP_BAD);
            break;
        }
    }
    return 0;
}
