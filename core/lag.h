/* Lag from polled positions (ARCHITECTURE.md "lag"): the source's position is sampled with a local
 * timestamp every few hundred ms; a module's lag is how long ago the source first showed something the
 * module's position does not cover yet (binlog event times have 1 s resolution: this has the poll's). */
#ifndef SY_LAG_H
#define SY_LAG_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define SY_LAG_SAMPLES 256
#define SY_LAG_POSITION_MAX 512

struct sy_lag {
    pthread_mutex_t mu;
    size_t n, head;                      /* ring of the last n samples, oldest at head */
    struct {
        char pos[SY_LAG_POSITION_MAX];
        uint64_t first_seen_ms;          /* monotonic */
    } ring[SY_LAG_SAMPLES];
};

void sy_lag_init(struct sy_lag *l);
void sy_lag_fini(struct sy_lag *l);
/* A polled source position: kept when it differs from the last one. */
void sy_lag_note(struct sy_lag *l, const char *pos, uint64_t now_ms);
/* ms since the source first showed a position `have` does not cover; 0 when it covers the newest
 * sample; -1 when unknown (no samples, or `have` is empty or older than every sample kept). */
int64_t sy_lag_ms(struct sy_lag *l, const char *have, bool (*covers)(const char *have, const char *want),
                  uint64_t now_ms);

#endif
