/* The fence keeper: one thread per pair that keeps the passive side fenced (fence_passive = on;
 * MariaDB: read_only) and, once at start, makes sure the active side is writable — so a restart after a crash in the
 * middle of a switch ends with exactly one side active and unfenced, whatever step it died at. A
 * side that does not answer (the business DB after a failover) is fenced as soon as it is back.
 * It leaves the sides alone while a switch runs (the switch fences and unfences them itself), and in a
 * cluster while this node has not confirmed the cluster's epoch (p->cut_off): it may not know the active side. */
#include "core/fence_keeper.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/engine.h"
#include "core/instance.h"
#include "core/log.h"

#define KEEPER_PERIOD_MS 1000
#define KEEPER_WAIT_MS 2000

static void keeper_note(struct sy_pair *p, const char *what, const char *err)
{
    char line[sizeof p->fence_error];
    snprintf(line, sizeof line, "%s: %s", what, err);
    if (strcmp(line, p->fence_error) != 0) /* once per distinct failure, not every second */
        sy_log_warn("pair %s: fencing: %s", p->cfg->name, line);
    snprintf(p->fence_error, sizeof p->fence_error, "%s", line);
}

static const struct sy_endpoint *side_ep(const struct sy_pair *p, enum sy_side s)
{
    return s == SY_SIDE_DR ? &p->cfg->dr : &p->cfg->business;
}

/* One round; true when everything it wanted is done. *unconfirmed: the sides were left alone because the
 * cluster's epoch is not confirmed. */
static bool keeper_round(struct sy_pair *p, bool *active_done, bool *unconfirmed)
{
    bool ok = true;
    char err[512];
    pthread_mutex_lock(&p->fence_lock);
    *unconfirmed = __atomic_load_n(&p->cut_off, __ATOMIC_ACQUIRE);
    if (!__atomic_load_n(&p->switching, __ATOMIC_ACQUIRE) && !*unconfirmed) {
        enum sy_side active = p->active_side, passive = active == SY_SIDE_DR ? SY_SIDE_BUSINESS : SY_SIDE_DR;
        if (!*active_done) {
            if (p->eng->failover->fence(p->cfg, side_ep(p, active), false, KEEPER_WAIT_MS, NULL, 0, err,
                                        sizeof err) == 0) {
                *active_done = true;
                sy_log_info("pair %s: %s side (active) is writable", p->cfg->name, sy_side_name(active));
            } else {
                keeper_note(p, "unfencing the active side", err);
                ok = false;
            }
        }
        if (p->cfg->fence_passive) {
            if (p->eng->failover->fence(p->cfg, side_ep(p, passive), true, KEEPER_WAIT_MS, NULL, 0, err,
                                        sizeof err) == 0) {
                if (p->fence_error[0] != '\0')
                    sy_log_info("pair %s: %s side (passive) is fenced", p->cfg->name,
                                sy_side_name(passive));
                p->fence_error[0] = '\0';
            } else {
                keeper_note(p, "fencing the passive side", err);
                ok = false;
            }
        }
    }
    pthread_mutex_unlock(&p->fence_lock);
    return ok;
}

static void *keeper_main(void *arg)
{
    struct sy_pair *p = arg;
    bool active_done = false, unconfirmed = false;
    while (!__atomic_load_n(&p->keeper_stop, __ATOMIC_ACQUIRE)) {
        keeper_round(p, &active_done, &unconfirmed);
        /* unconfirmed: again soon, so the sides are set right as soon as the cluster's epoch is confirmed */
        for (int waited = 0; waited < (unconfirmed ? 50 : KEEPER_PERIOD_MS) &&
                             !__atomic_load_n(&p->keeper_stop, __ATOMIC_ACQUIRE);
             waited += 50)
            usleep(50 * 1000);
    }
    __atomic_store_n(&p->keeper_done, 1, __ATOMIC_RELEASE);
    return NULL;
}

int sy_fence_keeper_start(struct sy_pair *p)
{
    if (!sy_engine_can_switch(p->eng))
        return 0;
    p->keeper_stop = 0;
    p->keeper_done = 0;
    if (pthread_create(&p->keeper, NULL, keeper_main, p) != 0)
        return -1;
    p->keeper_running = true;
    return 0;
}

void sy_fence_keeper_ask_stop(struct sy_pair *p)
{
    __atomic_store_n(&p->keeper_stop, 1, __ATOMIC_RELEASE);
}

bool sy_fence_keeper_done(const struct sy_pair *p)
{
    return !p->keeper_running || __atomic_load_n(&p->keeper_done, __ATOMIC_ACQUIRE);
}

void sy_fence_keeper_stop(struct sy_pair *p)
{
    if (!p->keeper_running)
        return;
    __atomic_store_n(&p->keeper_stop, 1, __ATOMIC_RELEASE);
    pthread_join(p->keeper, NULL);
    p->keeper_running = false;
}
