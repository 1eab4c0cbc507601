/* Small persisted state files (epochs, instance states): written as temp file + fsync + rename +
 * fsync of the directory, so a crash leaves either the old or the new content, never a mix. */
#ifndef SY_STATE_FILE_H
#define SY_STATE_FILE_H

#include <stddef.h>

#include <jansson.h>

#include "core/parse.h"

/* mkdir -p with mode 0700. */
int sy_mkdirs(const char *path, char *err, size_t errlen) SY_MUST_CHECK;
/* rm -rf path (missing = fine). */
int sy_rmtree(const char *path, char *err, size_t errlen) SY_MUST_CHECK;
int sy_state_write_json(const char *path, const json_t *doc, char *err, size_t errlen) SY_MUST_CHECK;
/* NULL when the file does not exist (*missing = 1) or cannot be parsed (err filled, *missing = 0). */
json_t *sy_state_read_json(const char *path, int *missing, char *err, size_t errlen);

#endif
