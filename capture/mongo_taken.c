/* The set of ts the MongoDB collector took near its position, kept across its stop (capture/mongo_taken.h). */
#include "capture/mongo_taken.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "core/log.h"
#include "core/state_file.h"

static void path_of(const char *dir, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s/%s", dir, SY_MONGO_TAKEN_FILE);
}

int sy_mongo_taken_save(const char *dir, struct sy_mongo_ts position, struct sy_mongo_ts after, const uint64_t *keys,
                        size_t n, char *err, size_t errlen)
{
    char path[1200], pos[32], aft[32];
    path_of(dir, path, sizeof path);
    sy_mongo_ts_format(position, pos, sizeof pos);
    sy_mongo_ts_format(after, aft, sizeof aft);
    uint64_t min = (uint64_t)after.t << 32 | after.i;
    json_t *taken = json_array();
    json_t *doc = json_pack("{s:s,s:s,s:o}", "position", pos, "after", aft, "taken", taken);
    if (doc == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t k = 0; k < n; k++)
        if (keys[k] != 0 && keys[k] > min && json_array_append_new(taken, json_integer((json_int_t)keys[k])) != 0) {
            json_decref(doc);
            snprintf(err, errlen, "out of memory");
            return -1;
        }
    int rc = sy_state_write_json(path, doc, err, errlen);
    json_decref(doc);
    return rc;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int sy_mongo_taken_load(const char *dir, struct sy_mongo_ts from, bool up_to, struct sy_mongo_ts *after,
                        uint64_t **keys, size_t *n, char *why, size_t whylen)
{
    char path[1200], err[512];
    int missing = 0;
    *keys = NULL;
    *n = 0;
    path_of(dir, path, sizeof path);
    json_t *doc = sy_state_read_json(path, &missing, err, sizeof err);
    if (doc == NULL) {
        snprintf(why, whylen, missing ? "%s is missing (the collector did not stop cleanly)" : "%s: %s", path, err);
        return missing ? 0 : -1;
    }
    struct sy_mongo_ts pos;
    const char *p = json_string_value(json_object_get(doc, "position"));
    const char *a = json_string_value(json_object_get(doc, "after"));
    json_t *taken = json_object_get(doc, "taken");
    if (p == NULL || a == NULL || !json_is_array(taken) || !sy_mongo_ts_parse(p, &pos) || !sy_mongo_ts_parse(a, after)) {
        snprintf(why, whylen, "%s is malformed", path);
        json_decref(doc);
        return -1;
    }
    if (up_to ? sy_mongo_ts_cmp(from, *after) < 0 || sy_mongo_ts_cmp(from, pos) > 0 : sy_mongo_ts_cmp(from, pos) != 0) {
        snprintf(why, whylen, "%s was left at %s (exact after %s), not for %u:%u", path, p, a, from.t, from.i);
        json_decref(doc);
        return 0;
    }
    size_t cnt = json_array_size(taken);
    uint64_t *v = malloc((cnt ? cnt : 1) * sizeof *v);
    if (v == NULL) {
        snprintf(why, whylen, "out of memory");
        json_decref(doc);
        return -1;
    }
    for (size_t k = 0; k < cnt; k++)
        v[k] = (uint64_t)json_integer_value(json_array_get(taken, k));
    qsort(v, cnt, sizeof *v, cmp_u64);
    json_decref(doc);
    *keys = v;
    *n = cnt;
    return 1;
}

bool sy_mongo_taken_has(const uint64_t *keys, size_t n, uint64_t key)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (keys[mid] == key)
            return true;
        if (keys[mid] < key)
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}

void sy_mongo_taken_remove(const char *dir)
{
    char path[1200];
    path_of(dir, path, sizeof path);
    if (unlink(path) != 0 && errno != ENOENT)
        sy_log_warn("cannot remove %s: %s", path, strerror(errno));
}
