/* Failpoints for crash tests (TESTING.md): SY_FAILPOINT=name makes the process abort at the named
 * step, so kill -9 tests hit exact places instead of relying on sleeps. Compiled only with
 * SY_FAILPOINTS (test builds: the default CMake option); a no-op otherwise. */
#ifndef SY_FAILPOINT_H
#define SY_FAILPOINT_H

#include <stdbool.h>

#ifdef SY_FAILPOINTS
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static inline void sy_failpoint(const char *name)
{
    const char *want = getenv("SY_FAILPOINT");
    if (want != NULL && strcmp(want, name) == 0) {
        fprintf(stderr, "failpoint %s: aborting\n", name);
        _exit(134); /* like abort() without a core dump or sanitizer report */
    }
}

/* SY_FAIL_STEPS=a,b,c: the first time step a is reached it fails (the caller returns an error, as if
 * the step had failed for real), then b the next time it is reached, and so on; once the list is used
 * up nothing fails. Tests use it to drive every rollback of a switch in one daemon's life. Only the
 * switch thread calls it, or the loop while the switch thread waits for it (the flip). */
static inline bool sy_failpoint_fails(const char *name)
{
    static size_t next; /* index into the list of the step that fails next */
    const char *list = getenv("SY_FAIL_STEPS");
    if (list == NULL)
        return false;
    size_t i = 0;
    for (const char *p = list; *p; i++) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (i == next) {
            if (strlen(name) != n || strncmp(p, name, n) != 0)
                return false;
            next++;
            fprintf(stderr, "failpoint %s: failing this step\n", name);
            return true;
        }
        p += n + (e ? 1 : 0);
    }
    return false;
}

/* SY_STALL_POINT=name and SY_STALL_FILE=path: a thread that reaches step `name` while the file exists
 * waits there (polling every 10 ms) until the file is removed, after saying so on stderr. Tests use it to
 * hold a thread at an exact step (an apply worker with a group taken but not applied) while they pause
 * the process or act around it. */
static inline void sy_failpoint_stall(const char *name)
{
    const char *want = getenv("SY_STALL_POINT"), *path = getenv("SY_STALL_FILE");
    if (want == NULL || path == NULL || strcmp(want, name) != 0 || access(path, F_OK) != 0)
        return;
    fprintf(stderr, "failpoint %s: stalled while %s exists\n", name, path);
    while (access(path, F_OK) == 0)
        usleep(10000);
    fprintf(stderr, "failpoint %s: released\n", name);
}
#else
#define sy_failpoint(name) ((void)0)
#define sy_failpoint_fails(name) false
#define sy_failpoint_stall(name) ((void)0)
#endif

#endif
