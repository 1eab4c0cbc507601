/* The core driven through a fake engine (tests/doubles/fake_engine.h): the real daemon, admin socket,
 * instances, spools, fence keeper and switch algorithm, with two in-memory databases behind them.
 * The switch refusals and rollbacks, switchover/switchback, failover and its tail, and the instance
 * transitions are checked here in seconds, with no database server — and with an engine that is not
 * MariaDB (this test links sy_core alone), which is the point: the core must not care. What is not
 * covered yet is listed in docs/architecture.md.
 *
 * Each scenario group runs in a forked child with its own state dir and daemon (the daemon keeps
 * process-wide state: signal handlers, the switch shutdown flag); the parent counts the children
 * that failed. Within a group, scenarios that roll back must leave the pair exactly as before, which
 * each one checks before the next runs. */
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/config.h"
#include "core/daemon.h"
#include "core/log.h"
#include "core/pair.h"
#include "tests/doubles/fake_engine.h"
#include "tests/unit/check.h"

static char dir[256];
static const struct sy_engine_ops *engine_under_test = &fake_engine;
static char sock_path[300];
static struct sy_config cfg;
static pid_t daemon_pid;

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- the daemon ---------------------------------------------------------------------------------- */

static bool status_answers(void);

/* The daemon runs in a process of its own (the world is shared memory), so it can be stopped, killed
 * and started again on the same state dir while the "databases" live on. */
static void daemon_spawn(void)
{
    fflush(NULL);
    daemon_pid = fork();
    if (daemon_pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlives the test */
        static const struct sy_proxy_protocol *const protos[] = { &fake_proxy, NULL };
        const struct sy_engine_ops *const engines[] = { engine_under_test, NULL };
        sy_log_set_level(cfg.log_level);
        _exit(sy_daemon_run(&cfg, protos, engines) == 0 ? 0 : 1);
    }
    /* ready once `status` answers (the socket file exists from bind(), before listen()) */
    for (uint64_t t0 = now_ms(); !status_answers(); usleep(2000))
        if (now_ms() - t0 > 5000) {
            fprintf(stderr, "the daemon did not open its admin socket\n");
            exit(2);
        }
}

static json_t *admin(const char *cmd, const char *args);

static bool status_answers(void)
{
    if (access(sock_path, F_OK) != 0)
        return false;
    json_t *r = admin("status", NULL);
    bool ok = json_is_true(json_object_get(r, "ok"));
    json_decref(r);
    return ok;
}

/* Starts a daemon on a fresh state dir; extra: more pair settings ("key = value\n..."). */
static void daemon_start(const char *extra)
{
    snprintf(dir, sizeof dir, "/tmp/sy-fake-XXXXXX");
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        exit(2);
    }
    snprintf(sock_path, sizeof sock_path, "%s/admin.sock", dir);
    char ini[4096], path[400], err[512];
    snprintf(ini, sizeof ini,
             "[switchyard]\nadmin_socket = %s\nstate_dir = %s/state\nlog_level = warn\n"
             "[pair p]\nengine = mongodb\nlisten = 127.0.0.1:0\nbusiness = 127.0.0.1:1\ndr = 127.0.0.1:2\n"
             "admin_user = fake\nobjects = db.*\nswitchover_max_lag_ms = 200\n"
             "txn_drain_ms = 300\ndrain_timeout_ms = 1500\nmax_hold_ms = 1000\nretry_seconds = 2\n%s%s",
             sock_path, dir, extra && strstr(extra, "fence_passive") ? "" : "fence_passive = on\n", extra ? extra : "");
    snprintf(path, sizeof path, "%s/switchyard.ini", dir);
    FILE *f = fopen(path, "w");
    if (f == NULL || fputs(ini, f) < 0 || fclose(f) != 0) {
        perror(path);
        exit(2);
    }
    if (sy_config_load(path, &cfg, err, sizeof err) != 0) {
        fprintf(stderr, "config: %s\n", err);
        exit(2);
    }
    sy_log_set_level(cfg.log_level);
    daemon_spawn();
}

/* SIGTERM: the daemon exits 0 (true); false (and a CHECK failure) otherwise. */
static bool daemon_term(void)
{
    kill(daemon_pid, SIGTERM);
    int st = 0;
    waitpid(daemon_pid, &st, 0);
    bool ok = WIFEXITED(st) && WEXITSTATUS(st) == 0;
    CHECK(ok);
    return ok;
}

/* kill -9, or waits for a daemon that ended by itself (a failpoint): the exit status. */
static int daemon_kill9(void)
{
    kill(daemon_pid, SIGKILL);
    int st = 0;
    waitpid(daemon_pid, &st, 0);
    return st;
}

/* Waits for the daemon to end by itself (a failpoint aborted it): true when it did within timeout. */
static bool daemon_died(int timeout_ms)
{
    for (uint64_t t0 = now_ms(); now_ms() - t0 < (uint64_t)timeout_ms; usleep(5000)) {
        int st;
        if (waitpid(daemon_pid, &st, WNOHANG) == daemon_pid)
            return true;
    }
    return false;
}

static void daemon_stop(void)
{
    daemon_term();
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", dir);
}

/* ---- the admin socket ----------------------------------------------------------------------------- */

/* One request (args: a JSON object text, may be NULL); the whole reply, or NULL. */
static json_t *admin(const char *cmd, const char *args)
{
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", sock_path);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    char line[1024];
    int n = snprintf(line, sizeof line, "{\"cmd\":\"%s\",\"args\":%s}\n", cmd, args ? args : "{}");
    if (write(fd, line, (size_t)n) != n) {
        close(fd);
        return NULL;
    }
    enum { BUF = 1 << 20 };
    char *buf = malloc(BUF); /* two threads may ask at once */
    size_t len = 0;
    while (buf != NULL && len < BUF - 1) {
        ssize_t r = read(fd, buf + len, BUF - 1 - len);
        if (r <= 0)
            break;
        len += (size_t)r;
        if (buf[len - 1] == '\n')
            break;
    }
    close(fd);
    if (buf == NULL)
        return NULL;
    buf[len] = '\0';
    json_error_t jerr;
    json_t *reply = json_loads(buf, 0, &jerr);
    free(buf);
    return reply;
}

/* The error code of a reply ("" when it succeeded). */
static const char *code_of(const json_t *reply)
{
    if (reply == NULL)
        return "no_reply";
    if (json_is_true(json_object_get(reply, "ok")))
        return "";
    return json_string_value(json_object_get(json_object_get(reply, "error"), "code")) ?: "?";
}

/* Runs a command; true when its error code is `want` ("" = success). Prints the reply otherwise. */
static bool expect(const char *cmd, const char *args, const char *want)
{
    json_t *r = admin(cmd, args);
    bool ok = strcmp(code_of(r), want) == 0;
    if (!ok) {
        char *s = r ? json_dumps(r, JSON_COMPACT) : NULL;
        fprintf(stderr, "%s %s: wanted '%s', got %s\n", cmd, args ? args : "", want, s ? s : "(no reply)");
        free(s);
    }
    json_decref(r);
    return ok;
}

static json_t *pair_status(void)
{
    json_t *r = admin("status", "{\"pair\":\"p\"}");
    json_t *p = json_incref(json_array_get(json_object_get(json_object_get(r, "result"), "pairs"), 0));
    json_decref(r);
    return p;
}

/* "forward" / "reverse": the instance's state, or "none". */
static void instance_state(const char *direction, char *out, size_t outlen)
{
    json_t *p = pair_status();
    snprintf(out, outlen, "none");
    size_t i;
    json_t *in;
    json_array_foreach(json_object_get(p, "instances"), i, in)
        if (strcmp(json_string_value(json_object_get(in, "direction")) ?: "", direction) == 0)
            snprintf(out, outlen, "%s", json_string_value(json_object_get(in, "state")) ?: "?");
    json_decref(p);
}

static bool instance_is(const char *direction, const char *state)
{
    char st[64];
    instance_state(direction, st, sizeof st);
    return strcmp(st, state) == 0;
}

/* Polls until the instance is in `state`; prints what it was otherwise. */
static bool wait_instance(const char *direction, const char *state, int timeout_ms)
{
    char st[64] = "";
    for (uint64_t t0 = now_ms(); now_ms() - t0 < (uint64_t)timeout_ms; usleep(5000)) {
        instance_state(direction, st, sizeof st);
        if (strcmp(st, state) == 0)
            return true;
    }
    fprintf(stderr, "%s instance: wanted %s, still %s after %d ms\n", direction, state, st, timeout_ms);
    return false;
}

static const char *active_side(json_t *p)
{
    return json_string_value(json_object_get(p, "active_side")) ?: "?";
}

static json_int_t epoch_of(json_t *p)
{
    return json_integer_value(json_object_get(p, "epoch"));
}

/* Until DR's log holds every business client write (the forward writer caught up). */
static bool wait_replicated(enum fake_side to, char origin, uint64_t want, int timeout_ms)
{
    for (uint64_t t0 = now_ms(); now_ms() - t0 < (uint64_t)timeout_ms; usleep(2000))
        if (fake_count_origin(to, origin) >= want)
            return true;
    fprintf(stderr, "%c writes on %s: %llu of %llu after %d ms\n", origin, to == FAKE_DR ? "DR" : "business",
            (unsigned long long)fake_count_origin(to, origin), (unsigned long long)want, timeout_ms);
    return false;
}

static void writes(enum fake_side side, int n)
{
    for (int i = 0; i < n; i++)
        CHECK(fake_client_write(side) == 1);
}

/* Forward running (initial sync done), reverse created and collecting: ready to switch. */
static void set_up_pair(void)
{
    writes(FAKE_BUSINESS, 20); /* before the copy */
    CHECK(wait_instance("forward", "running", 5000));
    CHECK(wait_replicated(FAKE_DR, 'B', 20, 3000));
    writes(FAKE_BUSINESS, 10); /* collected and applied */
    CHECK(wait_replicated(FAKE_DR, 'B', 30, 3000));
    CHECK(expect("create-reverse", "{\"pair\":\"p\"}", ""));
    CHECK(wait_instance("reverse", "collecting", 3000));
    /* the fence keeper fences the passive side */
    for (uint64_t t0 = now_ms(); !fake_fenced(FAKE_DR) && now_ms() - t0 < 3000;)
        usleep(5000);
    CHECK(fake_fenced(FAKE_DR) && !fake_fenced(FAKE_BUSINESS));
}

/* After a rollback: nothing moved, the write of the forward instance runs again, business writable. */
static void check_rolled_back(const char *what, json_int_t epoch)
{
    /* the reply comes after the rollback: DR is fenced again by the rollback itself, not later by the
     * fence keeper (checked at once, before the keeper's next round could hide a missing re-fence) */
    if (!fake_fenced(FAKE_DR))
        fprintf(stderr, "%s: DR not fenced right after the rollback\n", what);
    CHECK(fake_fenced(FAKE_DR));
    json_t *p = pair_status();
    bool ok = strcmp(active_side(p), "business") == 0 && epoch_of(p) == epoch &&
              !json_is_true(json_object_get(p, "held")) && !json_is_true(json_object_get(p, "switching"));
    if (!ok)
        fprintf(stderr, "%s: after the rollback: side %s epoch %lld held %d\n", what, active_side(p),
                (long long)epoch_of(p), json_is_true(json_object_get(p, "held")));
    CHECK(ok);
    json_decref(p);
    CHECK(wait_instance("forward", "running", 3000));
    CHECK(instance_is("reverse", "collecting"));
    CHECK(!fake_fenced(FAKE_BUSINESS));
    /* and replication goes on */
    uint64_t before = fake_count_origin(FAKE_BUSINESS, 'B');
    writes(FAKE_BUSINESS, 3);
    CHECK(wait_replicated(FAKE_DR, 'B', before + 3, 3000));
}

static unsigned calls_unwarm(void)
{
    fake_lock();
    unsigned n = fake.calls.unwarm;
    fake_unlock();
    return n;
}

#define KNOB(field, value)                                                                            \
    do {                                                                                              \
        fake_lock();                                                                 \
        field = (value);                                                                              \
        fake_unlock();                                                               \
    } while (0)

static void *switchover_expecting_hold_timeout(void *arg)
{
    CHECK(expect("switchover", "{\"pair\":\"p\"}", "hold_timeout"));
    return NULL;
}

/* ---- scenario groups ------------------------------------------------------------------------------ */

/* Refusals that need no database, and every rollback of a switchover, one after the other on one
 * pair: each must leave it as it was. */
static void group_switchover_rollbacks(void)
{
    daemon_start(NULL);
    /* before a reverse instance exists */
    CHECK(wait_instance("forward", "running", 5000));
    CHECK(expect("switchover", "{\"pair\":\"p\"}", "no_reverse_instance"));
    CHECK(expect("switchback", "{\"pair\":\"p\"}", "bad_state")); /* business is active */
    set_up_pair();
    json_t *p = pair_status();
    json_int_t epoch = epoch_of(p);
    json_decref(p);

    /* catch-up cannot read the source position */
    KNOB(fake.position_fails, true);
    CHECK(expect("switchover", "{\"pair\":\"p\"}", "bad_state"));
    KNOB(fake.position_fails, false);
    check_rolled_back("position", epoch);

    /* the write cannot catch up (DR blocks it) within drain_timeout_ms */
    KNOB(fake.db[FAKE_DR].write_blocked, true);
    writes(FAKE_BUSINESS, 5);
    uint64_t t0 = now_ms();
    CHECK(expect("switchover", "{\"pair\":\"p\"}", "lag_too_high"));
    CHECK(now_ms() - t0 >= 1400); /* it waited drain_timeout_ms */
    KNOB(fake.db[FAKE_DR].write_blocked, false);
    check_rolled_back("lag", epoch);

    /* unmovable sessions: refused with their ids, nothing held; --force closes them */
    KNOB(fake.proxy.unmovable, 2);
    json_t *r = admin("switchover", "{\"pair\":\"p\"}");
    CHECK(strcmp(code_of(r), "unmovable_sessions") == 0);
    CHECK(json_array_size(json_object_get(json_object_get(r, "error"), "ids")) == 2);
    json_decref(r);
    fake_lock();
    CHECK(fake.calls.hold_on == 0); /* refused before the hold */
    fake_unlock();
    check_rolled_back("unmovable", epoch);
    KNOB(fake.proxy.unmovable, 0);

    /* a session that cannot be prepared on DR */
    KNOB(fake.proxy.warm_failed, 1);
    unsigned unwarm = calls_unwarm();
    CHECK(expect("switchover", "{\"pair\":\"p\"}", "unmovable_sessions"));
    CHECK(calls_unwarm() == unwarm + 1);
    KNOB(fake.proxy.warm_failed, 0);
    check_rolled_back("warm_failed", epoch);

    /* a session stays busy past max_hold_ms: hold_timeout, the hold released; a second switch asked
     * meanwhile is refused at once */
    KNOB(fake.proxy.busy, 1);
    t0 = now_ms();
    pthread_t first;
    pthread_create(&first, NULL, switchover_expecting_hold_timeout, NULL);
    for (uint64_t w = now_ms(); now_ms() - w < 2000; usleep(2000)) {
        json_t *st = pair_status();
        bool switching = json_is_true(json_object_get(st, "switching"));
        json_decref(st);
        if (switching)
            break;
    }
    CHECK(expect("switchover", "{\"pair\":\"p\"}", "bad_state"));
    pthread_join(first, NULL);
    CHECK(now_ms() - t0 >= 950 && now_ms() - t0 < 5000);
    KNOB(fake.proxy.busy, 0);
    check_rolled_back("busy", epoch);

    /* a session becomes unmovable inside the hold (it raced it): refused, rolled back */
    KNOB(fake.proxy.unmovable_at_hold, 1);
    CHECK(expect("switchover", "{\"pair\":\"p\"}", "unmovable_sessions"));
    CHECK(calls_unwarm() > unwarm);
    KNOB(fake.proxy.unmovable, 0);
    check_rolled_back("unmovable in the hold", epoch);

    /* state not copied (user variables) keeps the switch waiting, then hold_timeout */
    KNOB(fake.proxy.state_pending, 1);
    CHECK(expect("switchover", "{\"pair\":\"p\"}", "hold_timeout"));
    KNOB(fake.proxy.state_pending, 0);
    check_rolled_back("state_pending", epoch);

    /* an open transaction that the abort cannot end: hold_timeout after the abort was tried */
    KNOB(fake.proxy.in_transaction, 1);
    KNOB(fake.proxy.abort_ends_transactions, false);
    CHECK(expect("switchover", "{\"pair\":\"p\"}", "hold_timeout"));
    fake_lock();
    CHECK(fake.calls.abort > 0);
    fake_unlock();
    KNOB(fake.proxy.in_transaction, 0);
    check_rolled_back("transaction", epoch);

    /* fencing business fails */
    KNOB(fake.db[FAKE_BUSINESS].fence_failures, 1);
    CHECK(expect("switchover", "{\"pair\":\"p\"}", "fence_failed"));
    check_rolled_back("fence", epoch);

    /* the drain does not reach business's final position (a commit in flight at the fence, DR's
     * writer stuck): drain_timeout, business unfenced again */
    KNOB(fake.db[FAKE_BUSINESS].stall_drain, true);
    t0 = now_ms();
    CHECK(expect("switchover", "{\"pair\":\"p\"}", "drain_timeout"));
    CHECK(now_ms() - t0 >= 900); /* bounded by max_hold_ms (1000) rather than drain_timeout_ms (1500) */
    CHECK(!fake_fenced(FAKE_BUSINESS));
    KNOB(fake.db[FAKE_BUSINESS].stall_drain, false);
    KNOB(fake.db[FAKE_DR].write_blocked, false);
    check_rolled_back("drain", epoch);

    /* DR cannot be unfenced: the write restarts, business unfenced */
    KNOB(fake.db[FAKE_DR].unfence_failures, 1);
    CHECK(expect("switchover", "{\"pair\":\"p\"}", "fence_failed"));
    check_rolled_back("unfence", epoch);

    /* the ledger is ahead of what was drained: refused, nothing flips (the proxy claims an
     * acknowledgement beyond anything business ever logged) */
    fake_lock();
    fake.acked[FAKE_BUSINESS] = fake.db[FAKE_BUSINESS].n + 1000;
    fake_unlock();
    CHECK(expect("switchover", "{\"pair\":\"p\"}", "ledger_ahead_of_drain"));
    fake_lock();
    fake.acked[FAKE_BUSINESS] = fake.db[FAKE_BUSINESS].n;
    fake_unlock();
    check_rolled_back("ledger", epoch);

    /* nothing flipped in all that; then --force closes unmovable sessions and the switch goes through */
    fake_lock();
    CHECK(fake.calls.flip == 0);
    fake_unlock();
    KNOB(fake.proxy.unmovable, 3);
    json_t *done = admin("switchover", "{\"pair\":\"p\",\"force\":true}");
    CHECK(strcmp(code_of(done), "") == 0);
    CHECK(json_integer_value(json_object_get(json_object_get(done, "result"), "closed_unmovable")) == 3);
    CHECK(json_integer_value(json_object_get(json_object_get(done, "result"), "epoch")) == epoch + 1);
    json_decref(done);
    daemon_stop();
}

/* A switch made to fail right after each step (SY_FAIL_STEPS, read by the switch thread: set before
 * the daemon starts), then a switchback that cannot fence DR: each rolls back completely. */
static void group_failpoint_rollbacks(void)
{
    setenv("SY_FAIL_STEPS", "switch_fail_after_hold,switch_fail_after_quiesce,switch_fail_after_fence,"
                            "switch_fail_after_drain,switch_fail_after_unfence,switch_fail_persist_epoch", 1);
    daemon_start(NULL);
    set_up_pair();
    json_t *p = pair_status();
    json_int_t epoch = epoch_of(p);
    json_decref(p);
    static const char *const steps[] = { "hold", "quiesce", "fence", "drain", "unfence", "persist epoch" };
    for (size_t i = 0; i < sizeof steps / sizeof *steps; i++) {
        writes(FAKE_BUSINESS, 2);
        if (!expect("switchover", "{\"pair\":\"p\"}", "internal"))
            fprintf(stderr, "  (failpoint after %s)\n", steps[i]);
        check_rolled_back(steps[i], epoch);
    }
    /* a switchback that cannot fence DR: DR stays active, writable, business fenced */
    CHECK(expect("switchover", "{\"pair\":\"p\"}", ""));
    CHECK(wait_instance("reverse", "running", 2000));
    writes(FAKE_DR, 2);
    KNOB(fake.db[FAKE_DR].fence_failures, 1);
    CHECK(expect("switchback", "{\"pair\":\"p\"}", "fence_failed"));
    p = pair_status();
    CHECK(strcmp(active_side(p), "dr") == 0 && epoch_of(p) == epoch + 1);
    json_decref(p);
    CHECK(fake_fenced(FAKE_BUSINESS) && !fake_fenced(FAKE_DR));
    CHECK(wait_instance("reverse", "running", 2000));
    CHECK(instance_is("forward", "collecting"));
    writes(FAKE_DR, 2);
    CHECK(wait_replicated(FAKE_BUSINESS, 'D', 4, 3000));
    CHECK(expect("switchback", "{\"pair\":\"p\"}", ""));
    unsetenv("SY_FAIL_STEPS");
    daemon_stop();
}

/* Exactly one side active and writable (unfenced), the other fenced, and writes on the active side
 * reaching the other: what a restart after any crash must end with. */
static void check_one_side_active(const char *what)
{
    json_t *p = pair_status();
    bool dr_active = strcmp(active_side(p), "dr") == 0;
    json_decref(p);
    enum fake_side active = dr_active ? FAKE_DR : FAKE_BUSINESS, passive = dr_active ? FAKE_BUSINESS : FAKE_DR;
    bool ok = false;
    for (uint64_t t0 = now_ms(); !ok && now_ms() - t0 < 3000; usleep(5000))
        ok = !fake_fenced(active) && fake_fenced(passive);
    if (!ok)
        fprintf(stderr, "%s: active %s fenced %d, passive fenced %d\n", what, dr_active ? "dr" : "business",
                fake_fenced(active), fake_fenced(passive));
    CHECK(ok);
    char origin = active == FAKE_DR ? 'D' : 'B';
    uint64_t before = fake_count_origin(active, origin);
    writes(active, 3);
    CHECK(wait_replicated(passive, origin, before + 3, 3000));
}

/* Restarts on the same state dir: after SIGTERM, after kill -9 with writes landing while the daemon is
 * down, and after a crash at each step of a switchover (SY_FAILPOINT): the instances resume from their
 * spools and checkpoints (every write once), and exactly one side is active. */
static void group_restarts(void)
{
    daemon_start(NULL);
    set_up_pair();
    CHECK(daemon_term());
    writes(FAKE_BUSINESS, 7); /* while nobody collects */
    daemon_spawn();
    CHECK(wait_instance("forward", "running", 3000));
    CHECK(instance_is("reverse", "collecting"));
    CHECK(wait_replicated(FAKE_DR, 'B', fake_count_origin(FAKE_BUSINESS, 'B'), 3000));
    daemon_kill9();
    writes(FAKE_BUSINESS, 5);
    daemon_spawn();
    CHECK(wait_replicated(FAKE_DR, 'B', fake_count_origin(FAKE_BUSINESS, 'B'), 3000));
    usleep(100 * 1000);
    CHECK(fake_count_origin(FAKE_DR, 'B') == fake_count_origin(FAKE_BUSINESS, 'B')); /* nothing twice */
    check_one_side_active("kill -9");

    static const char *const steps[] = { "switch_after_hold", "switch_after_fence", "switch_after_drain",
                                         "switch_after_stop_write", "switch_after_unfence", "switch_after_flip" };
    for (size_t i = 0; i < sizeof steps / sizeof *steps; i++) {
        CHECK(daemon_term());
        setenv("SY_FAILPOINT", steps[i], 1);
        daemon_spawn();
        unsetenv("SY_FAILPOINT");
        CHECK(wait_instance("forward", "running", 3000) || wait_instance("reverse", "running", 10));
        json_t *p = pair_status();
        bool dr_active = strcmp(active_side(p), "dr") == 0;
        json_decref(p);
        json_t *r = admin(dr_active ? "switchback" : "switchover", "{\"pair\":\"p\"}");
        CHECK(r == NULL || !json_is_true(json_object_get(r, "ok"))); /* the daemon died in the middle */
        json_decref(r);
        if (!daemon_died(3000)) {
            fprintf(stderr, "%s: the daemon did not stop at the failpoint\n", steps[i]);
            CHECK(false);
            daemon_kill9();
        }
        daemon_spawn();
        check_one_side_active(steps[i]);
        CHECK(fake_count_origin(FAKE_DR, 'B') == fake_count_origin(FAKE_BUSINESS, 'B'));
        CHECK(fake_count_origin(FAKE_DR, 'D') == fake_count_origin(FAKE_BUSINESS, 'D'));
    }
    daemon_stop();
}

/* An engine without fencing: synchronization runs, every switch answers not_implemented. */
static void group_engine_without_failover(void)
{
    engine_under_test = &fake_engine_without_failover;
    daemon_start(NULL);
    writes(FAKE_BUSINESS, 5);
    CHECK(wait_instance("forward", "running", 5000));
    writes(FAKE_BUSINESS, 5);
    CHECK(wait_replicated(FAKE_DR, 'B', 10, 3000));
    CHECK(expect("create-reverse", "{\"pair\":\"p\"}", ""));
    CHECK(wait_instance("reverse", "collecting", 3000));
    CHECK(expect("switchover", "{\"pair\":\"p\"}", "not_implemented"));
    CHECK(expect("failover", "{\"pair\":\"p\"}", "not_implemented"));
    CHECK(!fake_fenced(FAKE_DR) && !fake_fenced(FAKE_BUSINESS)); /* nobody tried to fence */
    daemon_stop();
}

/* A switchover with sessions in a transaction that the abort ends, then writes on DR that come back
 * with the switchback; the epoch moves once per flip and the passive side is fenced each time. */
static void group_switchover_and_back(void)
{
    daemon_start(NULL);
    set_up_pair();
    json_t *p = pair_status();
    json_int_t epoch = epoch_of(p);
    json_decref(p);
    KNOB(fake.proxy.sessions, 5);
    KNOB(fake.proxy.in_transaction, 2);
    KNOB(fake.proxy.abort_ends_transactions, true);
    json_t *r = admin("switchover", "{\"pair\":\"p\"}");
    CHECK(strcmp(code_of(r), "") == 0);
    json_t *res = json_object_get(r, "result");
    CHECK(strcmp(json_string_value(json_object_get(res, "active_side")) ?: "", "dr") == 0);
    CHECK(json_integer_value(json_object_get(res, "epoch")) == epoch + 1);
    CHECK(json_integer_value(json_object_get(res, "aborted_transactions")) == 2);
    CHECK(json_integer_value(json_object_get(res, "moved_clients")) == 5);
    CHECK(json_integer_value(json_object_get(res, "pause_ms")) >= 300); /* txn_drain_ms before the abort */
    json_decref(r);
    fake_lock();
    CHECK(fake.calls.flip == 1 && fake.calls.flipped_to == SY_SIDE_DR);
    fake_unlock();
    CHECK(fake_fenced(FAKE_BUSINESS) && !fake_fenced(FAKE_DR));
    CHECK(instance_is("forward", "collecting"));
    CHECK(wait_instance("reverse", "running", 2000));
    CHECK(fake_client_write(FAKE_BUSINESS) == 0); /* fenced: refused */
    writes(FAKE_DR, 7);
    CHECK(wait_replicated(FAKE_BUSINESS, 'D', 7, 3000));
    CHECK(expect("switchover", "{\"pair\":\"p\"}", "bad_state")); /* DR active: switchback applies */
    CHECK(expect("switchback", "{\"pair\":\"p\"}", ""));
    p = pair_status();
    CHECK(strcmp(active_side(p), "business") == 0 && epoch_of(p) == epoch + 2);
    json_decref(p);
    CHECK(fake_fenced(FAKE_DR) && !fake_fenced(FAKE_BUSINESS));
    CHECK(wait_instance("forward", "running", 2000));
    CHECK(instance_is("reverse", "collecting"));
    writes(FAKE_BUSINESS, 4);
    CHECK(wait_replicated(FAKE_DR, 'B', fake_count_origin(FAKE_BUSINESS, 'B'), 3000));
    /* every write is on both sides, once */
    CHECK(fake_count_origin(FAKE_BUSINESS, 'B') == fake_count_origin(FAKE_DR, 'B'));
    CHECK(fake_count_origin(FAKE_BUSINESS, 'D') == fake_count_origin(FAKE_DR, 'D'));
    /* failover --force with business alive: fenced first, everything drained, so the tail is empty and
     * closes by itself; the reverse write then starts */
    CHECK(expect("failover", "{\"pair\":\"p\",\"force\":true}", ""));
    CHECK(fake_fenced(FAKE_BUSINESS));
    bool closed = false;
    for (uint64_t t0 = now_ms(); !closed && now_ms() - t0 < 5000; usleep(20 * 1000)) {
        json_t *st = pair_status();
        closed = json_object_get(st, "tail") == NULL;
        json_decref(st);
    }
    CHECK(closed);
    CHECK(wait_instance("reverse", "running", 3000));
    writes(FAKE_DR, 2);
    CHECK(wait_replicated(FAKE_BUSINESS, 'D', 9, 3000));
    daemon_stop();
}

/* fence_passive = off: nothing fences the passive side, and a switchover leaves the old side writable. */
static void group_fence_passive_off(void)
{
    daemon_start("fence_passive = off\n");
    writes(FAKE_BUSINESS, 3);
    CHECK(wait_instance("forward", "running", 5000));
    CHECK(expect("create-reverse", "{\"pair\":\"p\"}", ""));
    CHECK(wait_instance("reverse", "collecting", 3000));
    usleep(1200 * 1000); /* a fence keeper round: it must leave DR alone */
    CHECK(!fake_fenced(FAKE_DR) && !fake_fenced(FAKE_BUSINESS));
    CHECK(expect("switchover", "{\"pair\":\"p\"}", ""));
    CHECK(!fake_fenced(FAKE_BUSINESS) && !fake_fenced(FAKE_DR)); /* the old side unfenced after the flip */
    writes(FAKE_DR, 2);
    CHECK(wait_replicated(FAKE_BUSINESS, 'D', 2, 3000));
    daemon_stop();
}

/* The failover's drain: a forward write that cannot apply its spool within drain_timeout_ms, and a
 * forward instance that failed: refused, nothing flipped; then the warm step's own timeout (sessions
 * that never get a connection on DR: 10 s). */
static void group_failover_drain_and_warm(void)
{
    daemon_start(NULL);
    set_up_pair();
    json_t *p = pair_status();
    json_int_t epoch = epoch_of(p);
    json_decref(p);
    /* three transactions collected into the spool but not applied (DR's writer stuck), then business dies */
    KNOB(fake.db[FAKE_DR].write_blocked, true);
    writes(FAKE_BUSINESS, 3);
    char want[64];
    snprintf(want, sizeof want, "fake:%llu", (unsigned long long)fake_log_length(FAKE_BUSINESS));
    bool collected = false;
    for (uint64_t w = now_ms(); !collected && now_ms() - w < 3000; usleep(5000)) {
        json_t *st = pair_status();
        json_t *fw = json_array_get(json_object_get(st, "instances"), 0);
        collected = strcmp(json_string_value(json_object_get(json_object_get(fw, "collection"), "position")) ?: "",
                           want) == 0;
        json_decref(st);
    }
    CHECK(collected);
    KNOB(fake.db[FAKE_BUSINESS].down, true);
    uint64_t t0 = now_ms();
    CHECK(expect("failover", "{\"pair\":\"p\"}", "drain_timeout"));
    CHECK(now_ms() - t0 >= 1400);
    p = pair_status();
    CHECK(strcmp(active_side(p), "business") == 0 && epoch_of(p) == epoch && !json_is_true(json_object_get(p, "held")));
    json_decref(p);
    KNOB(fake.db[FAKE_DR].write_blocked, false);
    KNOB(fake.db[FAKE_BUSINESS].down, false);
    CHECK(wait_instance("forward", "running", 5000));
    CHECK(wait_replicated(FAKE_DR, 'B', fake_count_origin(FAKE_BUSINESS, 'B'), 3000));

    KNOB(fake.proxy.not_ready, 1);
    t0 = now_ms();
    CHECK(expect("switchover", "{\"pair\":\"p\"}", "hold_timeout"));
    CHECK(now_ms() - t0 >= 9900);
    KNOB(fake.proxy.not_ready, 0);
    check_rolled_back("warm timeout", epoch);
    daemon_stop();
}

/* Failover: refused while business answers; with business down, the spool is applied, DR active,
 * the tail pending until business is back. */
static void group_failover(void)
{
    daemon_start(NULL);
    set_up_pair();
    CHECK(expect("failover", "{\"pair\":\"p\"}", "business_alive"));
    check_rolled_back("business_alive", 1);
    writes(FAKE_BUSINESS, 5);
    CHECK(wait_replicated(FAKE_DR, 'B', fake_count_origin(FAKE_BUSINESS, 'B'), 3000));
    /* business dies with two acknowledged commits the collector never read */
    fake_lock();
    struct fake_db *b = &fake.db[FAKE_BUSINESS];
    b->down = true;
    b->log[b->n++] = 'B';
    b->log[b->n++] = 'B';
    fake.acked[FAKE_BUSINESS] = b->n;
    fake_unlock();
    json_t *r = admin("failover", "{\"pair\":\"p\"}");
    CHECK(strcmp(code_of(r), "") == 0);
    json_t *res = json_object_get(r, "result");
    CHECK(strcmp(json_string_value(json_object_get(res, "active_side")) ?: "", "dr") == 0);
    CHECK(strcmp(json_string_value(json_object_get(json_object_get(res, "tail"), "state")) ?: "", "pending") == 0);
    json_decref(r);
    CHECK(wait_instance("forward", "paused", 2000));
    CHECK(instance_is("reverse", "collecting")); /* its write waits for resolve-tail */
    CHECK(expect("switchback", "{\"pair\":\"p\"}", "tail_unresolved"));
    writes(FAKE_DR, 3);
    /* business is back: the tail is found (2 transactions, both acknowledged), business stays fenced */
    KNOB(fake.db[FAKE_BUSINESS].down, false);
    json_t *tail = NULL;
    for (uint64_t t0 = now_ms(); now_ms() - t0 < 5000; usleep(20 * 1000)) {
        json_t *p = pair_status();
        const char *st = json_string_value(json_object_get(json_object_get(p, "tail"), "state")) ?: "";
        if (strcmp(st, "open") == 0) {
            tail = json_incref(json_object_get(p, "tail"));
            json_decref(p);
            break;
        }
        json_decref(p);
    }
    CHECK(tail != NULL);
    CHECK(json_integer_value(json_object_get(tail, "transactions")) == 2);
    CHECK(json_integer_value(json_object_get(tail, "acknowledged")) == 2);
    json_t *listed = json_object_get(tail, "listed");
    CHECK(json_array_size(listed) == 2);
    CHECK(json_is_true(json_object_get(json_array_get(listed, 1), "acknowledged")));
    CHECK(strncmp(json_string_value(json_object_get(json_array_get(listed, 0), "position")) ?: "", "fake:", 5) == 0);
    json_decref(tail);
    CHECK(fake_fenced(FAKE_BUSINESS));
    uint64_t business_before = fake_count_origin(FAKE_BUSINESS, 'B');
    CHECK(expect("resolve-tail", "{\"pair\":\"p\",\"discard\":true}", ""));
    CHECK(fake_count_origin(FAKE_BUSINESS, 'B') == business_before - 2); /* the tail reverted (the reverse
                                                                            write may have begun) */
    /* the reverse write starts and DR's writes reach business */
    CHECK(wait_instance("reverse", "running", 3000));
    CHECK(wait_replicated(FAKE_BUSINESS, 'D', 3, 3000));
    daemon_stop();
}

static bool held_mid_txn(enum fake_side side)
{
    for (uint64_t t0 = now_ms(); now_ms() - t0 < 3000; usleep(2000)) {
        fake_lock();
        bool held = fake.db[side].held_mid_txn;
        fake_unlock();
        if (held)
            return true;
    }
    fprintf(stderr, "the collector never reached the held transaction\n");
    return false;
}

static void *release_after_300ms(void *arg)
{
    usleep(300 * 1000);
    KNOB(fake.db[FAKE_BUSINESS].hold_mid_txn, false);
    return arg;
}

/* Business dies while its collector is inside a transaction. The rest of it already on its way (the
 * collector still running, spooling it): the drain waits and DR gets it — a drain that stopped at the last
 * complete record would pause the collector and cut it off. The rest never arriving (the collector
 * retries): the failover applies everything before it and succeeds; the transaction is the tail. */
static void group_failover_mid_transaction(void)
{
    daemon_start(NULL);
    set_up_pair();
    KNOB(fake.db[FAKE_BUSINESS].hold_mid_txn, true);
    writes(FAKE_BUSINESS, 1);
    CHECK(held_mid_txn(FAKE_BUSINESS));
    KNOB(fake.db[FAKE_BUSINESS].down, true);
    pthread_t th;
    pthread_create(&th, NULL, release_after_300ms, NULL);
    CHECK(expect("failover", "{\"pair\":\"p\"}", ""));
    pthread_join(th, NULL);
    CHECK(fake_count_origin(FAKE_DR, 'B') == fake_count_origin(FAKE_BUSINESS, 'B'));
    KNOB(fake.db[FAKE_BUSINESS].down, false);
    CHECK(wait_instance("reverse", "running", 5000)); /* an empty tail closes by itself */
    writes(FAKE_DR, 1);
    CHECK(expect("switchback", "{\"pair\":\"p\"}", ""));
    CHECK(wait_instance("forward", "running", 5000));

    uint64_t on_dr = fake_count_origin(FAKE_DR, 'B');
    fake_lock();
    fake.db[FAKE_BUSINESS].hold_mid_txn = true;
    fake.db[FAKE_BUSINESS].lose_rest = true;
    fake_unlock();
    writes(FAKE_BUSINESS, 1);
    CHECK(held_mid_txn(FAKE_BUSINESS));
    fake_lock();
    fake.db[FAKE_BUSINESS].down = true;
    fake.db[FAKE_BUSINESS].hold_mid_txn = false;
    fake_unlock();
    json_t *r = admin("failover", "{\"pair\":\"p\"}");
    CHECK(strcmp(code_of(r), "") == 0);
    CHECK(strcmp(json_string_value(json_object_get(json_object_get(json_object_get(r, "result"), "tail"), "state"))
                     ?: "", "pending") == 0);
    json_decref(r);
    CHECK(fake_count_origin(FAKE_DR, 'B') == on_dr); /* nothing of the cut transaction */
    fake_lock();
    fake.db[FAKE_BUSINESS].lose_rest = false;
    fake.db[FAKE_BUSINESS].down = false;
    fake_unlock();
    json_t *tail = NULL;
    for (uint64_t t0 = now_ms(); tail == NULL && now_ms() - t0 < 5000; usleep(20 * 1000)) {
        json_t *p = pair_status();
        if (strcmp(json_string_value(json_object_get(json_object_get(p, "tail"), "state")) ?: "", "open") == 0)
            tail = json_incref(json_object_get(p, "tail"));
        json_decref(p);
    }
    CHECK(tail != NULL && json_integer_value(json_object_get(tail, "transactions")) == 1);
    json_decref(tail);
    daemon_stop();
}

/* Instance transitions: precheck failure, pause / start, a write that retries while its database is
 * down, terminate, and the engine-less refusals. */
static void group_instances(void)
{
    KNOB(fake.precheck_fails, true);
    daemon_start(NULL);
    CHECK(wait_instance("forward", "precheck_failed", 3000));
    json_t *p = pair_status();
    json_t *fw = json_array_get(json_object_get(p, "instances"), 0);
    CHECK(json_array_size(json_object_get(fw, "precheck")) == 1);
    json_decref(p);
    KNOB(fake.precheck_fails, false);
    CHECK(expect("start", "{\"instance\":\"p/forward\"}", ""));
    CHECK(wait_instance("forward", "running", 3000));

    CHECK(expect("pause", "{\"instance\":\"p/forward\"}", ""));
    CHECK(instance_is("forward", "paused"));
    writes(FAKE_BUSINESS, 4);
    usleep(50 * 1000);
    CHECK(fake_count_origin(FAKE_DR, 'B') == 0); /* paused: nothing collected or applied */
    CHECK(expect("pause", "{\"instance\":\"p/forward\"}", "bad_state"));
    CHECK(expect("start", "{\"instance\":\"p/forward\"}", ""));
    CHECK(wait_replicated(FAKE_DR, 'B', 4, 3000));

    /* the source goes down: the collection retries, then runs again; the same for the destination
     * and the write */
    for (int side = FAKE_BUSINESS; side <= FAKE_DR; side++) {
        KNOB(fake.db[side].down, true);
        CHECK(wait_instance("forward", "retrying", 3000));
        KNOB(fake.db[side].down, false);
        CHECK(wait_instance("forward", "running", 3000));
    }
    /* down past retry_seconds: failed, and a start brings it back */
    KNOB(fake.db[FAKE_DR].down, true);
    CHECK(wait_instance("forward", "failed", 5000));
    KNOB(fake.db[FAKE_DR].down, false);
    CHECK(expect("start", "{\"instance\":\"p/forward\"}", ""));
    CHECK(wait_instance("forward", "running", 3000));
    writes(FAKE_BUSINESS, 2);
    CHECK(wait_replicated(FAKE_DR, 'B', 6, 3000));

    CHECK(expect("create-reverse", "{\"pair\":\"p\"}", ""));
    CHECK(wait_instance("reverse", "collecting", 3000));
    CHECK(expect("create-reverse", "{\"pair\":\"p\"}", "reverse_exists"));
    /* rule 3: the reverse write starts on `start`; rule 4: then forward may not be started */
    CHECK(expect("start", "{\"instance\":\"p/reverse\"}", ""));
    CHECK(wait_instance("reverse", "running", 3000));
    CHECK(expect("pause", "{\"instance\":\"p/forward\"}", ""));
    CHECK(expect("start", "{\"instance\":\"p/forward\"}", "reverse_running"));
    CHECK(expect("terminate", "{\"instance\":\"p/reverse\"}", ""));
    CHECK(wait_instance("reverse", "terminated", 3000));
    CHECK(expect("start", "{\"instance\":\"p/forward\"}", ""));
    CHECK(wait_instance("forward", "running", 3000));
    CHECK(expect("switchover", "{\"pair\":\"p\"}", "no_reverse_instance"));
    CHECK(expect("verify", "{\"pair\":\"p\"}", "not_implemented")); /* the fake has no verify */
    daemon_stop();
}

/* Runs a group in a child process; true when all its checks passed. */
static bool run_group(const char *name, void (*fn)(void))
{
    uint64_t t0 = now_ms();
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        check_run_count = check_fail_count = 0; /* the parent's count of failed groups is not ours */
        alarm(90);                              /* a stuck daemon must not hang ctest */
        fake_init();
        fn();
        exit(check_fail_count == 0 ? 0 : 1);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    bool ok = WIFEXITED(st) && WEXITSTATUS(st) == 0;
    fprintf(stderr, "%s: %s in %llu ms\n", name, ok ? "ok" : "FAILED", (unsigned long long)(now_ms() - t0));
    return ok;
}

int main(void)
{
    CHECK(run_group("switchover rollbacks", group_switchover_rollbacks));
    CHECK(run_group("failpoint rollbacks", group_failpoint_rollbacks));
    CHECK(run_group("restarts", group_restarts));
    CHECK(run_group("engine without failover", group_engine_without_failover));
    CHECK(run_group("switchover and back", group_switchover_and_back));
    CHECK(run_group("failover", group_failover));
    CHECK(run_group("fence_passive off", group_fence_passive_off));
    CHECK(run_group("failover drain, warm timeout", group_failover_drain_and_warm));
    CHECK(run_group("failover mid-transaction", group_failover_mid_transaction));
    CHECK(run_group("instances", group_instances));
    return CHECK_DONE();
}
