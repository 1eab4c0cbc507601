/* Small persisted state files (epochs, instance states): written as temp file + fsync + rename +
 * fsync of the directory, so a crash leaves either the old or the new content, never a mix. */
#ifndef SY_STATE_FILE_H
#define SY_STATE_FILE_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "core/parse.h"

/* mkdir -p with mode 0700. */
int sy_mkdirs(const char *path, char *err, size_t errlen) SY_MUST_CHECK;
/* rm -rf path (missing = fine). */
int sy_rmtree(const char *path, char *err, size_t errlen) SY_MUST_CHECK;
/* Writes len bytes of text to path atomically (temp file + fsync + rename + fsync of the directory),
 * mode 0600: a crash leaves the old content or the new, never a mix. exclusive = a file for the operator
 * in a directory that is not ours: a unique temp name, and an existing path is refused ("... exists: not
 * overwritten", RENAME_NOREPLACE or link + unlink) instead of replaced. 0, or -1 with err. */
int sy_write_file_atomic(const char *path, const char *text, size_t len, bool exclusive, char *err,
                         size_t errlen) SY_MUST_CHECK;
/* A state file: doc as compact JSON, replacing what was there. */
int sy_state_write_json(const char *path, const json_t *doc, char *err, size_t errlen) SY_MUST_CHECK;
/* NULL when the file does not exist (*missing = 1) or cannot be parsed (err filled, *missing = 0). */
json_t *sy_state_read_json(const char *path, int *missing, char *err, size_t errlen);

#endif
