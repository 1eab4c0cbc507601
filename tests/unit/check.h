/* A tiny test harness for the C unit tests: CHECK(cond) prints file:line and the expression when
 * cond is false and counts the failure; main() ends with `return CHECK_DONE();`, which prints a
 * summary and yields the exit status ctest reads (0 = all passed). One header, no library. */
#ifndef SY_TEST_CHECK_H
#define SY_TEST_CHECK_H

#include <stdio.h>

static unsigned long check_run_count;  /* CHECKs evaluated so far */
static unsigned long check_fail_count; /* of which failed */

#define CHECK(cond)                                                                     \
    do {                                                                                \
        check_run_count++;                                                              \
        if (!(cond)) {                                                                  \
            check_fail_count++;                                                         \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);    \
        }                                                                               \
    } while (0)

static inline int check_done(const char *file)
{
    fprintf(stderr, "%s: %lu checks, %lu failed\n", file, check_run_count, check_fail_count);
    return check_fail_count == 0 ? 0 : 1;
}

#define CHECK_DONE() check_done(__FILE__)

#endif
