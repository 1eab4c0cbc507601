/* Failpoints for crash tests (TESTING.md): SY_FAILPOINT=name makes the process abort at the named
 * step, so kill -9 tests hit exact places instead of relying on sleeps. Compiled only with
 * SY_FAILPOINTS (test builds: the default CMake option); a no-op otherwise. */
#ifndef SY_FAILPOINT_H
#define SY_FAILPOINT_H

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
#else
#define sy_failpoint(name) ((void)0)
#endif

#endif
