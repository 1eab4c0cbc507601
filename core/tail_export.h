/* Exporting an unreplicated tail (capture/mariadb_tail.h's JSON, or another engine's) to a file for the
 * operator (`resolve-tail PAIR --export FILE`) before it is reverted. Engine-neutral. */
#ifndef SY_TAIL_EXPORT_H
#define SY_TAIL_EXPORT_H

#include <stddef.h>

#include <jansson.h>

#include "core/parse.h"

/* Writes tail as indented JSON (keys in their order, a final newline) to path, mode 0600, atomically:
 * a temp file in path's directory, fsync, then a rename that refuses to replace anything
 * (RENAME_NOREPLACE, or link + unlink where the filesystem lacks it), then an fsync of the directory.
 * An existing path is refused ("... exists: not overwritten") and left as it was; so is a failure half way
 * (the temp file is removed). 0 or -1 with err. */
int sy_tail_export(const json_t *tail, const char *path, char *err, size_t errlen) SY_MUST_CHECK;

#endif
