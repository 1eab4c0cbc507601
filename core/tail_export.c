/* The tail export file (core/tail_export.h): temp file + fsync + no-replace rename + directory fsync. */
#include "core/tail_export.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int write_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* rename(tmp, path) unless path exists (then EEXIST): atomic either way. */
static int rename_noreplace(const char *tmp, const char *path)
{
    if (renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_NOREPLACE) == 0)
        return 0;
    if (errno != EINVAL && errno != ENOSYS)
        return -1;
    if (link(tmp, path) != 0) /* the filesystem has no RENAME_NOREPLACE: link fails on an existing path */
        return -1;
    unlink(tmp);
    return 0;
}

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
    char tmp[4096], dir[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.XXXXXX", path) >= (int)sizeof tmp) {
        snprintf(err, errlen, "path too long: %s", path);
        return -1;
    }
    snprintf(dir, sizeof dir, "%s", path);
    char *text = json_dumps(tail, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (text == NULL) {
        snprintf(err, errlen, "cannot encode the tail");
        return -1;
    }
    int rc = -1;
    int fd = mkostemp(tmp, O_CLOEXEC); /* mode 0600 */
    if (fd < 0) {
        snprintf(err, errlen, "creating a temp file next to %s: %s", path, strerror(errno));
        goto out;
    }
    if (fchmod(fd, 0600) != 0 || write_all(fd, text, strlen(text)) != 0 || write_all(fd, "\n", 1) != 0) {
        snprintf(err, errlen, "writing %s: %s", tmp, strerror(errno));
        goto out;
    }
    if (fsync(fd) != 0) {
        snprintf(err, errlen, "fsync %s: %s", tmp, strerror(errno));
        goto out;
    }
    close(fd);
    fd = -1;
    if (rename_noreplace(tmp, path) != 0) {
        if (errno == EEXIST)
            snprintf(err, errlen, "%s exists: not overwritten", path);
        else
            snprintf(err, errlen, "renaming to %s: %s", path, strerror(errno));
        unlink(tmp);
        goto out;
    }
    int dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || fsync(dfd) != 0) {
        snprintf(err, errlen, "fsync of the directory of %s: %s", path, strerror(errno));
        if (dfd >= 0)
            close(dfd);
        goto out; /* the file is in place, but not known durable: say so */
    }
    close(dfd);
    rc = 0;
out:
    if (fd >= 0) {
        close(fd);
        unlink(tmp);
    }
    free(text);
    return rc;
}
