/* REQUIRE(c): a libFuzzer target's invariant check; a broken one aborts, which the fuzzer reports as a crash. */
#ifndef SY_FUZZ_REQUIRE_H
#define SY_FUZZ_REQUIRE_H

#include <stdlib.h>

#define REQUIRE(c)                                                                                    \
    do {                                                                                              \
        if (!(c))                                                                                     \
            abort();                                                                                  \
    } while (0)

#endif
