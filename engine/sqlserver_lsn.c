/* LSN text (engine/sqlserver_lsn.h). */
#include "engine/sqlserver_lsn.h"

#include <string.h>

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

bool sy_lsn_parse(const char *s, struct sy_lsn *out)
{
    if (s == NULL)
        return false;
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
        s += 2;
    if (strlen(s) != 2 * SY_LSN_BYTES)
        return false;
    for (size_t i = 0; i < SY_LSN_BYTES; i++) {
        int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        out->b[i] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}

bool sy_lsn_from_bytes(const uint8_t *p, size_t len, struct sy_lsn *out)
{
    if (p == NULL || len != SY_LSN_BYTES)
        return false;
    memcpy(out->b, p, SY_LSN_BYTES);
    return true;
}

void sy_lsn_format(const struct sy_lsn *l, char out[SY_LSN_TEXT])
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < SY_LSN_BYTES; i++) {
        out[2 * i] = hex[l->b[i] >> 4];
        out[2 * i + 1] = hex[l->b[i] & 15];
    }
    out[2 * SY_LSN_BYTES] = '\0';
}

int sy_lsn_cmp(const struct sy_lsn *a, const struct sy_lsn *b)
{
    return memcmp(a->b, b->b, SY_LSN_BYTES);
}

bool sy_lsn_is_zero(const struct sy_lsn *l)
{
    static const struct sy_lsn zero;
    return sy_lsn_cmp(l, &zero) == 0;
}

bool sy_lsn_text_covers(const char *have, const char *want)
{
    struct sy_lsn h, w;
    return sy_lsn_parse(have, &h) && sy_lsn_parse(want, &w) && sy_lsn_cmp(&h, &w) >= 0;
}
