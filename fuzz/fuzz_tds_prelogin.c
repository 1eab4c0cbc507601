/* libFuzzer target: PRELOGIN option tables. Input = one PRELOGIN payload; a parsed one is rebuilt from its
 * known options and must parse back to the same values. Traps on broken invariants. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz/fuzz_require.h"
#include "proxy/tds_wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    struct sy_tds_prelogin pl, back;
    if (sy_tds_prelogin_parse(data, size, &pl, err, sizeof err) != SY_PARSE_OK) {
        REQUIRE(err[0] != '\0');
        return 0;
    }
    REQUIRE(pl.instopt == NULL || (pl.instopt >= data && pl.instopt + pl.instopt_len <= data + size));
    struct sy_tds_prelogin_opt opts[8];
    size_t n = 0;
    uint8_t enc = (uint8_t)pl.encryption, mars = (uint8_t)pl.mars, fed = (uint8_t)pl.fedauth_required;
    if (pl.has_version)
        opts[n++] = (struct sy_tds_prelogin_opt){ SY_TDS_PL_VERSION, pl.version, 6 };
    if (pl.encryption >= 0)
        opts[n++] = (struct sy_tds_prelogin_opt){ SY_TDS_PL_ENCRYPTION, &enc, 1 };
    if (pl.instopt != NULL)
        opts[n++] = (struct sy_tds_prelogin_opt){ SY_TDS_PL_INSTOPT, pl.instopt, (uint16_t)pl.instopt_len };
    if (pl.mars >= 0)
        opts[n++] = (struct sy_tds_prelogin_opt){ SY_TDS_PL_MARS, &mars, 1 };
    if (pl.fedauth_required >= 0)
        opts[n++] = (struct sy_tds_prelogin_opt){ SY_TDS_PL_FEDAUTHREQUIRED, &fed, 1 };
    static uint8_t out[70000];
    size_t w = sy_tds_prelogin_build(out, sizeof out, opts, n);
    if (w == 0)
        return 0; /* offsets past 64 KiB: cannot be built */
    REQUIRE(sy_tds_prelogin_parse(out, w, &back, err, sizeof err) == SY_PARSE_OK);
    REQUIRE(back.encryption == pl.encryption && back.mars == pl.mars && back.has_version == pl.has_version &&
            back.fedauth_required == pl.fedauth_required && back.instopt_len == pl.instopt_len);
    REQUIRE(!pl.has_version || memcmp(back.version, pl.version, 6) == 0);
    return 0;
}
