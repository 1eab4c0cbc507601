/* libFuzzer target: proxy/mongo_track.c over any document the wire codecs accept (the session only hands it
 * validated documents). Input = [selector][document]: a request's tracked fields (killCursors ids bounded),
 * a reply's cursor id, killCursors filtered (a valid document walked to its end, never more ids than it had),
 * and the tables fed with what was read. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/mongo_track.h"
#include "proxy/mongo_wire.h"
#include "fuzz/fuzz_require.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    if (size < 1)
        return 0;
    uint8_t sel = data[0];
    const uint8_t *doc = data + 1;
    size_t n = size - 1;
    if (sy_mongo_doc_check(doc, n, "fuzz", err, sizeof err) != 0)
        return 0;
    struct sy_mongo_req_info r;
    struct sy_mongo_track t = { 0 };
    if (sy_mongo_req_info_parse(doc, n, &r)) {
        REQUIRE(r.n_kill <= SY_MONGO_KILL_MAX);
        if (r.has_lsid && r.has_txn)
            REQUIRE(sy_mongo_txn_begin(&t, r.lsid, r.txn_number, 1, 0) == 0 && sy_mongo_txns_open(&t, 0) == 1);
        for (size_t i = 0; i < r.n_kill; i++)
            REQUIRE(sy_mongo_cursor_open(&t, r.kill_ids[i], 1, 0) == 0);
        REQUIRE(t.n_cursors <= r.n_kill);
        if (r.kind == SY_MREQ_KILL && (sel & 1)) {
            bson_t out;
            size_t drop = r.n_kill / 2;
            REQUIRE(sy_mongo_kill_filter(doc, n, r.kill_ids, drop, &out) == 0);
            bson_iter_t it;
            REQUIRE(bson_iter_init(&it, &out));
            while (bson_iter_next(&it))
                ;
            REQUIRE(it.err_off == 0 && out.len <= n + 16);
            bson_destroy(&out);
        }
    }
    int64_t id = 0;
    bool ok = false;
    if (sy_mongo_reply_cursor(doc, n, &id, &ok) == 1) {
        REQUIRE(ok);
        REQUIRE(sy_mongo_cursor_open(&t, id, 2, 0) == 0 && sy_mongo_cursor_find(&t, id) != NULL);
        sy_mongo_cursor_drop(&t, id);
        REQUIRE(sy_mongo_cursor_find(&t, id) == NULL);
    }
    sy_mongo_track_expire(&t, UINT64_MAX / 2);
    REQUIRE(t.n_cursors == 0 && t.n_txns == 0);
    sy_mongo_track_fini(&t);
    return 0;
}
