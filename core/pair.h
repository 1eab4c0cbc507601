/* A pair at run time: one business DB + one DR DB of one engine and the proxy listener in front.
 * Owns the active side and the epoch (persisted before anyone acts on a change), the hold state
 * (bounded by max_hold_ms), and the engine's proxy through the sy_proxy_protocol vtable. */
#ifndef SY_PAIR_H
#define SY_PAIR_H

#include <stdbool.h>
#include <stdint.h>

#include <event2/event.h>
#include <jansson.h>

#include "core/config.h"
#include "core/parse.h"

enum sy_side { SY_SIDE_BUSINESS, SY_SIDE_DR };

struct sy_pair;
struct sy_instance;

/* What an engine's proxy offers the core. Implemented once per engine in proxy/. */
struct sy_proxy_protocol {
    enum sy_engine engine;
    /* Opens the listener; returns the engine's state or NULL with err filled. */
    void *(*start)(struct sy_pair *pair, char *err, size_t errlen);
    /* Closes the listener and every session. NULL-safe. */
    void (*stop)(void *state);
    /* Open client sessions. */
    size_t (*client_count)(void *state);
    /* One JSON object per session for `clients` (CONTRACT.md fields). */
    json_t *(*clients_json)(void *state);
    /* The pair's hold state changed: on release, held sessions resume in arrival order. */
    void (*hold_changed)(void *state, bool held);
};

struct sy_pair {
    const struct sy_pair_cfg *cfg;   /* ref: owned by the daemon's struct sy_config */
    const char *state_dir;           /* ref: the daemon's state_dir */
    struct event_base *base;         /* ref: the daemon's loop */
    enum sy_side active_side;        /* which DB receives client traffic */
    uint64_t epoch;                  /* bumped (and persisted first) on every change of active side */
    bool held;                       /* new requests outside transactions wait */
    uint64_t hold_started_ms;        /* monotonic, when held */
    struct event *hold_timer;        /* owned: releases after max_hold_ms */
    char listen_addr[300];           /* the address actually bound ("127.0.0.1:41234") */
    const struct sy_proxy_protocol *proto; /* ref: static vtable of the engine */
    void *proto_state;               /* owned through proto->stop */
    struct sy_instance *forward;     /* owned: NULL when the pair synchronizes nothing (no objects) */
    struct sy_instance *reverse;     /* owned: created by create-reverse */
};

/* Loads the persisted epoch/side (or creates epoch 1, business), starts the proxy.
 * proto NULL = the engine is not built: fails with "not_implemented: ...". */
int sy_pair_start(struct sy_pair *p, const struct sy_pair_cfg *cfg, const struct sy_proxy_protocol *proto,
                  const char *state_dir, struct event_base *base, char *err, size_t errlen) SY_MUST_CHECK;
void sy_pair_stop(struct sy_pair *p);

/* The endpoint of the side that receives traffic now. */
const struct sy_endpoint *sy_pair_active_endpoint(const struct sy_pair *p);
const char *sy_side_name(enum sy_side s);

/* Manual hold (CONTRACT `hold`/`release`); a hold never outlasts cfg->max_hold_ms. */
void sy_pair_hold(struct sy_pair *p);
void sy_pair_release(struct sy_pair *p, const char *why);

/* The pair's entry of `status`. */
json_t *sy_pair_status_json(const struct sy_pair *p);

/* Monotonic milliseconds. */
uint64_t sy_now_ms(void);

#endif
