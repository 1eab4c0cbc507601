/* See lag.h. */
#include "core/lag.h"

#include <stdio.h>
#include <string.h>

void sy_lag_init(struct sy_lag *l)
{
    memset(l, 0, sizeof *l);
    pthread_mutex_init(&l->mu, NULL);
}

void sy_lag_fini(struct sy_lag *l)
{
    pthread_mutex_destroy(&l->mu);
}

void sy_lag_note(struct sy_lag *l, const char *pos, uint64_t now_ms)
{
    if (pos == NULL || pos[0] == '\0' || strlen(pos) >= SY_LAG_POSITION_MAX)
        return;
    pthread_mutex_lock(&l->mu);
    size_t last = (l->head + l->n + SY_LAG_SAMPLES - 1) % SY_LAG_SAMPLES;
    if (l->n == 0 || strcmp(l->ring[last].pos, pos) != 0) {
        size_t at = (l->head + l->n) % SY_LAG_SAMPLES;
        if (l->n == SY_LAG_SAMPLES)
            l->head = (l->head + 1) % SY_LAG_SAMPLES; /* the oldest goes */
        else
            l->n++;
        snprintf(l->ring[at].pos, sizeof l->ring[at].pos, "%s", pos);
        l->ring[at].first_seen_ms = now_ms;
    }
    pthread_mutex_unlock(&l->mu);
}

int64_t sy_lag_ms(struct sy_lag *l, const char *have, bool (*covers)(const char *have, const char *want),
                  uint64_t now_ms)
{
    if (have == NULL || have[0] == '\0')
        return -1;
    int64_t lag = -1;
    pthread_mutex_lock(&l->mu);
    for (size_t i = 0; i < l->n; i++) {
        size_t at = (l->head + i) % SY_LAG_SAMPLES;
        if (!covers(have, l->ring[at].pos)) {
            /* behind since this sample; unknown if even the oldest kept is not covered */
            lag = i == 0 && l->n == SY_LAG_SAMPLES ? -1
                                                   : (int64_t)(now_ms - l->ring[at].first_seen_ms);
            break;
        }
        if (i == l->n - 1)
            lag = 0;
    }
    pthread_mutex_unlock(&l->mu);
    return lag;
}
