/* libFuzzer target: engine/mongo_diff.c over any BSON document libbson accepts as the oplog entry's `o`
 * (the collector spools what the server logged; the writer translates it). The translation must not read
 * outside the input, must terminate on deep nesting, and an accepted diff must give a valid update. */
#include <stdint.h>
#include <stdlib.h>

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
        if (!bson_validate(&update, BSON_VALIDATE_NONE, NULL))
            abort();
    } else if (why == NULL || why[0] == '\0') {
        abort();
    }
    bson_destroy(&update);
    return 0;
}
