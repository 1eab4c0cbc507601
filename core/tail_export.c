/* The tail export file (core/tail_export.h), written by core/state_file.c's exclusive atomic write. */
#include "core/tail_export.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/state_file.h"

int sy_tail_export(const json_t *tail, const char *path, char *err, size_t errlen)
{
    if (tail == NULL || path == NULL || path[0] == '\0') {
        snprintf(err, errlen, "no tail or no path");
        return -1;
    }
    struct stat st;
    if (lstat(path, &st) == 0) { /* early, clear answer; the rename below checks again atomically */
        snprintf(err, errlen, "%s exists: not overwritten", path);
        return -1;
    }
    char *text = json_dumps(tail, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (text == NULL) {
        snprintf(err, errlen, "cannot encode the tail");
        return -1;
    }
    size_t len = strlen(text);
    text[len] = '\n'; /* json_dumps' NUL becomes the final newline: written with its length */
    int rc = sy_write_file_atomic(path, text, len + 1, true, err, errlen);
    free(text);
    return rc;
}
