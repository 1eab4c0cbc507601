/* The MariaDB source's current position (@@gtid_binlog_pos): where a new reverse instance starts
 * collecting, so that only what is written to DR after its creation is synchronized (rule 2). */
#include <stdio.h>
#include <string.h>

#include <mysql.h>

#include "capture/mariadb_modules.h"
#include "engine/mariadb_gtid_set.h"
#include "engine/mariadb_client.h"

int sy_mariadb_source_position(const struct sy_pair_cfg *cfg, const struct sy_endpoint *src, char *out,
                               size_t outlen, char *err, size_t errlen)
{
    MYSQL *m = sy_mariadb_connect(src, cfg, 0, 5, NULL, err, errlen);
    if (m == NULL)
        return -1;
    bool found = false;
    int rc = sy_mariadb_value(m, out, outlen, &found, err, errlen, "SELECT @@global.gtid_binlog_pos");
    mysql_close(m);
    return rc;
}

bool sy_mariadb_position_covers(const char *have, const char *want)
{
    struct sy_gtid_set h, w;
    return sy_gtid_set_parse(have, strlen(have), &h) && sy_gtid_set_parse(want, strlen(want), &w) &&
           sy_gtid_set_covers(&h, &w);
}

static uint64_t seq_in(const struct sy_gtid_set *s, uint32_t domain)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->v[i].domain == domain)
            return s->v[i].seq;
    return 0;
}

/* MariaDB sequence numbers grow by one per transaction within a domain, so the tail of a domain is
 * the range (collected, now]; the ledger's entry says up to where clients saw commits acknowledged. */
int sy_mariadb_tail_count(const char *collected, const char *now, const char *ledger, uint64_t *transactions,
                          uint64_t *acknowledged, json_t *ranges)
{
    struct sy_gtid_set c, n, l;
    if (!sy_gtid_set_parse(collected, strlen(collected), &c) || !sy_gtid_set_parse(now, strlen(now), &n) ||
        !sy_gtid_set_parse(ledger ? ledger : "", ledger ? strlen(ledger) : 0, &l))
        return -1;
    *transactions = *acknowledged = 0;
    for (size_t i = 0; i < n.n; i++) {
        uint64_t from = seq_in(&c, n.v[i].domain), to = n.v[i].seq;
        if (to <= from)
            continue;
        uint64_t acked_to = seq_in(&l, n.v[i].domain);
        uint64_t acked = acked_to > from ? (acked_to < to ? acked_to : to) - from : 0;
        *transactions += to - from;
        *acknowledged += acked;
        json_array_append_new(ranges, json_pack("{s:I,s:I,s:I,s:I,s:I}", "domain", (json_int_t)n.v[i].domain,
                                                "first_seq", (json_int_t)(from + 1), "last_seq", (json_int_t)to,
                                                "last_server_id", (json_int_t)n.v[i].server, "acknowledged",
                                                (json_int_t)acked));
    }
    return 0;
}

int sy_mariadb_position_poll(void **handle, const struct sy_pair_cfg *cfg, const struct sy_endpoint *src, char *out,
                             size_t outlen, char *err, size_t errlen)
{
    MYSQL *m = *handle;
    if (m == NULL && (m = sy_mariadb_connect(src, cfg, 0, 2, NULL, err, errlen)) == NULL)
        return -1;
    *handle = m;
    bool found = false;
    if (sy_mariadb_value(m, out, outlen, &found, err, errlen, "SELECT @@global.gtid_binlog_pos") != 0) {
        mysql_close(m);
        *handle = NULL; /* reconnect next time */
        return -1;
    }
    return 0;
}

void sy_mariadb_position_poll_close(void *handle)
{
    if (handle != NULL)
        mysql_close(handle);
}
