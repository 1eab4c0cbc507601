/* core/lag.c: lag from polled positions. */
#include <stdio.h>
#include <string.h>

#include "core/lag.h"

static int failures;
#define CHECK(c)                                                                   \
    do {                                                                           \
        if (!(c)) {                                                                \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #c); \
            failures++;                                                            \
        }                                                                          \
    } while (0)

/* positions are plain numbers here: "have" covers "want" when it is >= */
static bool num_covers(const char *have, const char *want)
{
    long h, w;
    return sscanf(have, "%ld", &h) == 1 && sscanf(want, "%ld", &w) == 1 && h >= w;
}

int main(void)
{
    static struct sy_lag l;
    sy_lag_init(&l);
    CHECK(sy_lag_ms(&l, "5", num_covers, 1000) == -1); /* no samples */
    sy_lag_note(&l, "10", 1000);
    sy_lag_note(&l, "10", 1100);                        /* unchanged: first_seen stays 1000 */
    sy_lag_note(&l, "12", 1200);
    sy_lag_note(&l, "15", 1300);
    CHECK(sy_lag_ms(&l, "15", num_covers, 1400) == 0);
    CHECK(sy_lag_ms(&l, "20", num_covers, 1400) == 0);
    CHECK(sy_lag_ms(&l, "12", num_covers, 1400) == 100);  /* behind since 15 appeared at 1300 */
    CHECK(sy_lag_ms(&l, "11", num_covers, 1400) == 200);
    CHECK(sy_lag_ms(&l, "9", num_covers, 1400) == 400);   /* behind the oldest sample */
    CHECK(sy_lag_ms(&l, "", num_covers, 1400) == -1);
    for (int i = 0; i < SY_LAG_SAMPLES + 10; i++) {
        char p[16];
        snprintf(p, sizeof p, "%d", 100 + i);
        sy_lag_note(&l, p, 2000 + (uint64_t)i);
    }
    CHECK(sy_lag_ms(&l, "1", num_covers, 9000) == -1);    /* older than all kept: unknown */
    CHECK(sy_lag_ms(&l, "1000", num_covers, 9000) == 0);
    sy_lag_note(&l, NULL, 1);
    sy_lag_fini(&l);
    printf("%s: %d failure(s)\n", __FILE__, failures);
    return failures != 0;
}
