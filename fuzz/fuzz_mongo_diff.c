/* libFuzzer target: engine/mongo_diff.c over any BSON document libbson accepts as the oplog entry's `o`
 * (the collector spools what the server logged; the writer translates it). The translation must not read
 * outside the input, must terminate on deep nesting, and an accepted diff must give an update that walks
 * to its end with only $set / $unset at the top. (Not bson_validate on the output: libbson 1.23 accepts an
 * input whose nested array it then rejects once the same bytes are copied elsewhere — its quirk, not ours;
 * fuzz_mongo_cmd found the same.) */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <bson/bson.h>

#include "engine/mongo_diff.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bson_t o;
    if (!bson_init_static(&o, data, size) || !bson_validate(&o, BSON_VALIDATE_NONE, NULL))
        return 0;
    bson_t update;
    const char *why = NULL;
    if (sy_mongo_diff_to_update(&o, &update, &why)) {
        bson_iter_t it, sub;
        if (!bson_iter_init(&it, &update))
            abort();
        while (bson_iter_next(&it)) {
            const char *k = bson_iter_key(&it);
            if ((strcmp(k, "$set") != 0 && strcmp(k, "$unset") != 0) || !bson_iter_recurse(&it, &sub))
                abort();
            while (bson_iter_next(&sub))
                if (bson_iter_key(&sub)[0] == '\0')
                    abort();
            if (sub.err_off != 0)
                abort();
        }
        if (it.err_off != 0)
            abort();
    } else if (why == NULL || why[0] == '\0') {
        abort();
    }
    bson_destroy(&update);
    return 0;
}
