/* libFuzzer target: session tracking (proxy/tds_track.c). The first byte picks what the rest is: a server
 * response scanned token by token into a session's tracker (the scan must always advance inside the span),
 * or a client request (SQL_BATCH, RPC, TRANSACTION_MANAGER) parsed, tracked and remapped as after a move,
 * then the restore batch and every re-prepare RPC built. Traps on broken invariants. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz/fuzz_require.h"
#include "proxy/tds_track.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t mode = data[0];
    data++;
    size--;
    char err[256];
    struct sy_tds_track tr;
    sy_tds_track_init(&tr, "master", "us_english");
    if (mode % 4 == 0) {
        struct sy_tds_rsp_scan sc = { 0 };
        size_t off = 0;
        while (off < size) {
            struct sy_tds_rsp_ev ev;
            size_t used = 0;
            if (sy_tds_rsp_step(&sc, data + off, size - off, &used, &ev, err, sizeof err) != SY_PARSE_OK)
                break;
            REQUIRE(used >= 1 && used <= size - off);
            REQUIRE(sc.ncols <= SY_TDS_COLS_MAX);
            sy_tds_track_event(&tr, &ev);
            off += used;
        }
        sy_tds_rsp_scan_fini(&sc);
    } else {
        static const uint8_t types[] = { SY_TDS_SQL_BATCH, SY_TDS_RPC, SY_TDS_TRANSACTION_MANAGER };
        uint8_t type = types[mode % 4 - 1];
        uint8_t *copy = malloc(size ? size : 1);
        if (copy == NULL)
            return 0;
        memcpy(copy, data, size);
        struct sy_tds_req q;
        if (sy_tds_req_parse(copy, size, type, &q, err, sizeof err) == SY_PARSE_OK) {
            REQUIRE(q.body_off <= size && (!q.has_desc || q.desc_off + 8 <= size));
            for (unsigned i = 0; i < q.n_rpc; i++) {
                REQUIRE(!q.rpc[i].handle_int4 || q.rpc[i].handle_off + 4 <= size);
                for (unsigned k = 0; k < q.rpc[i].nparams && k < SY_TDS_RPC_PARAMS; k++)
                    REQUIRE(q.rpc[i].param[k].off + q.rpc[i].param[k].len <= size);
            }
            sy_tds_track_request(&tr, copy, size, &q);
            /* a prepare answered with handle 1: then everything remapped to 2 */
            struct sy_tds_rsp_ev ev = { .kind = SY_TRSP_RETURNVALUE, .rv_int = true, .rv_value = 1 };
            sy_tds_track_event(&tr, &ev);
            for (size_t i = 0; i < tr.n_preps; i++)
                tr.preps[i].backend = 2;
            tr.desc = 3;
            (void)sy_tds_req_remap(copy, size, &q, &tr);
            uint8_t out[4096];
            for (size_t i = 0; i < tr.n_preps; i++) {
                size_t n = sy_tds_prepare_rpc_build(out, sizeof out, &tr.preps[i]);
                REQUIRE(n <= sizeof out);
            }
        }
        char sql[2048];
        size_t n = sy_tds_track_restore_sql(&tr, "master", "us_english", sql, sizeof sql);
        REQUIRE(n == (size_t)-1 || (n < sizeof sql && strlen(sql) == n));
        char why[200];
        (void)sy_tds_track_unmovable(&tr, why, sizeof why);
        free(copy);
    }
    sy_tds_track_fini(&tr);
    return 0;
}
