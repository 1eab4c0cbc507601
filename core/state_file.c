/* Atomic file writes (temp + fsync + rename + directory fsync): state files and operator exports. */
#include "core/state_file.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int sy_mkdirs(const char *path, char *err, size_t errlen)
{
    char buf[1024];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) {
        snprintf(err, errlen, "path too long: %s", path);
        return -1;
    }
    for (char *p = buf + 1; ; p++) {
        if (*p == '/' || *p == '\0') {
            char saved = *p;
            *p = '\0';
            if (mkdir(buf, 0700) != 0 && errno != EEXIST) {
                snprintf(err, errlen, "mkdir %s: %s", buf, strerror(errno));
                return -1;
            }
            *p = saved;
            if (saved == '\0')
                break;
        }
    }
    return 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

int sy_rmtree(const char *path, char *err, size_t errlen)
{
    if (access(path, F_OK) != 0)
        return 0;
    if (nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0) {
        snprintf(err, errlen, "removing %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

static int fsync_dir_of(const char *path)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    int fd = open(dirname(buf), O_RDONLY | O_DIRECTORY);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

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

int sy_write_file_atomic(const char *path, const char *text, size_t len, bool exclusive, char *err, size_t errlen)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, exclusive ? "%s.tmp.XXXXXX" : "%s.tmp", path) >= (int)sizeof tmp) {
        snprintf(err, errlen, "path too long: %s", path);
        return -1;
    }
    int rc = -1;
    /* exclusive: a directory that is not ours, so a temp name nobody else uses */
    int fd = exclusive ? mkostemp(tmp, O_CLOEXEC) : open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(err, errlen, "open %s: %s", tmp, strerror(errno));
        return -1;
    }
    if (fchmod(fd, 0600) != 0 || write_all(fd, text, len) != 0) {
        snprintf(err, errlen, "write %s: %s", tmp, strerror(errno));
        goto out;
    }
    if (fsync(fd) != 0) {
        snprintf(err, errlen, "fsync %s: %s", tmp, strerror(errno));
        goto out;
    }
    close(fd);
    fd = -1;
    if ((exclusive ? rename_noreplace(tmp, path) : rename(tmp, path)) != 0) {
        if (exclusive && errno == EEXIST)
            snprintf(err, errlen, "%s exists: not overwritten", path);
        else
            snprintf(err, errlen, "rename %s: %s", tmp, strerror(errno));
        unlink(tmp);
        goto out;
    }
    if (fsync_dir_of(path) != 0) {
        snprintf(err, errlen, "fsync directory of %s: %s", path, strerror(errno));
        goto out; /* the file is in place, but not known durable: say so */
    }
    rc = 0;
out:
    if (fd >= 0) {
        close(fd);
        unlink(tmp);
    }
    return rc;
}

int sy_state_write_json(const char *path, const json_t *doc, char *err, size_t errlen)
{
    char *text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    if (text == NULL) {
        snprintf(err, errlen, "out of memory encoding %s", path);
        return -1;
    }
    int rc = sy_write_file_atomic(path, text, strlen(text), false, err, errlen);
    free(text);
    return rc;
}

json_t *sy_state_read_json(const char *path, int *missing, char *err, size_t errlen)
{
    *missing = 0;
    if (access(path, F_OK) != 0 && errno == ENOENT) {
        *missing = 1;
        return NULL;
    }
    json_error_t je;
    json_t *doc = json_load_file(path, 0, &je);
    if (doc == NULL)
        snprintf(err, errlen, "%s:%d: %s", path, je.line, je.text);
    return doc;
}
