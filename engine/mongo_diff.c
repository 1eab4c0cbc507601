/* `$v: 2` update diffs -> update documents (engine/mongo_diff.h). */
#include "engine/mongo_diff.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DIFF_MAX_DEPTH 100
#define PATH_MAX_LEN 4096

struct out {
    bson_t set, unset;
    bool any_set, any_unset;
};

static bool join(char *path, size_t cap, const char *prefix, const char *field, size_t flen)
{
    int n = prefix[0] ? snprintf(path, cap, "%s.%.*s", prefix, (int)flen, field)
                      : snprintf(path, cap, "%.*s", (int)flen, field);
    return n > 0 && (size_t)n < cap;
}

static bool walk(const bson_t *diff, const char *prefix, bool array, int depth, struct out *o, const char **why);

/* One entry of u/i ({f: v}) as $set, or of d ({f: x}) as $unset. */
static bool fields(bson_iter_t *it, const char *prefix, bool unset, struct out *o, const char **why)
{
    bson_iter_t sub;
    if (!BSON_ITER_HOLDS_DOCUMENT(it) || !bson_iter_recurse(it, &sub)) {
        *why = "a u/i/d section that is not a document";
        return false;
    }
    while (bson_iter_next(&sub)) {
        char path[PATH_MAX_LEN];
        if (!join(path, sizeof path, prefix, bson_iter_key(&sub), bson_iter_key_len(&sub))) {
            *why = "a field path longer than 4096 bytes";
            return false;
        }
        if (unset) {
            o->any_unset = true;
            BSON_APPEND_UTF8(&o->unset, path, "");
        } else {
            o->any_set = true;
            bson_append_iter(&o->set, path, -1, &sub);
        }
    }
    return true;
}

/* The sub-diff of a field or an element (an s<name> entry): an object's or, with `a: true`, an array's. */
static bool sub_diff(const bson_iter_t *it, const char *path, int depth, struct out *o, const char **why)
{
    bson_t sub;
    const uint8_t *data;
    uint32_t len;
    bson_iter_t a;
    if (!BSON_ITER_HOLDS_DOCUMENT(it)) {
        *why = "a sub-diff that is not a document";
        return false;
    }
    bson_iter_document(it, &len, &data);
    if (!bson_init_static(&sub, data, len)) {
        *why = "a malformed diff";
        return false;
    }
    bool is_array = bson_iter_init_find(&a, &sub, "a") && bson_iter_as_bool(&a);
    return walk(&sub, path, is_array, depth + 1, o, why);
}

static bool walk(const bson_t *diff, const char *prefix, bool array, int depth, struct out *o, const char **why)
{
    if (depth > DIFF_MAX_DEPTH) {
        *why = "a diff nested more than 100 levels";
        return false;
    }
    bson_iter_t it;
    if (!bson_iter_init(&it, diff)) {
        *why = "a malformed diff";
        return false;
    }
    while (bson_iter_next(&it)) {
        const char *k = bson_iter_key(&it);
        size_t klen = bson_iter_key_len(&it);
        if (array) {
            if (strcmp(k, "a") == 0)
                continue;
            if (strcmp(k, "l") == 0) {
                *why = "an array diff that resizes the array";
                return false;
            }
            if ((k[0] == 'u' || k[0] == 's') && klen > 1 && strspn(k + 1, "0123456789") == klen - 1) {
                char path[PATH_MAX_LEN];
                if (!join(path, sizeof path, prefix, k + 1, klen - 1)) {
                    *why = "a field path longer than 4096 bytes";
                    return false;
                }
                if (k[0] == 'u') {
                    o->any_set = true;
                    bson_append_iter(&o->set, path, -1, &it);
                    continue;
                }
                if (!sub_diff(&it, path, depth, o, why))
                    return false;
                continue;
            }
            goto bad;
        }
        if (strcmp(k, "u") == 0 || strcmp(k, "i") == 0) {
            if (!fields(&it, prefix, false, o, why))
                return false;
        } else if (strcmp(k, "d") == 0) {
            if (!fields(&it, prefix, true, o, why))
                return false;
        } else if (k[0] == 's' && klen > 1) {
            char path[PATH_MAX_LEN];
            if (!join(path, sizeof path, prefix, k + 1, klen - 1)) {
                *why = "a field path longer than 4096 bytes";
                return false;
            }
            if (!sub_diff(&it, path, depth, o, why))
                return false;
        } else {
            goto bad;
        }
    }
    return true;
bad:
    *why = "a diff section this writer does not know";
    return false;
}

bool sy_mongo_diff_to_update(const bson_t *o, bson_t *update, const char **why)
{
    bson_init(update);
    bson_iter_t it;
    if (!bson_iter_init_find(&it, o, "diff") || !BSON_ITER_HOLDS_DOCUMENT(&it)) {
        *why = "a $v:2 update without a diff document";
        return false;
    }
    const uint8_t *data;
    uint32_t len;
    bson_t diff;
    bson_iter_document(&it, &len, &data);
    if (!bson_init_static(&diff, data, len)) {
        *why = "a malformed diff";
        return false;
    }
    struct out out;
    bson_init(&out.set);
    bson_init(&out.unset);
    out.any_set = out.any_unset = false;
    bool ok = walk(&diff, "", false, 0, &out, why);
    if (ok) {
        if (out.any_set)
            BSON_APPEND_DOCUMENT(update, "$set", &out.set);
        if (out.any_unset)
            BSON_APPEND_DOCUMENT(update, "$unset", &out.unset);
    }
    bson_destroy(&out.set);
    bson_destroy(&out.unset);
    return ok;
}
