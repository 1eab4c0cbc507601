/* A precheck's result list (core/checks.h). */
#include "core/checks.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

json_t *sy_json_text(const char *s)
{
    json_t *j = json_string(s);
    if (j != NULL)
        return j;
    char *copy = strdup(s);
    if (copy == NULL)
        return json_string("");
    for (char *p = copy; *p; p++)
        if ((unsigned char)*p >= 0x80 || (unsigned char)*p < 0x20)
            *p = '?';
    j = json_string(copy);
    free(copy);
    return j;
}

bool sy_check_add(json_t *checks, const char *name, const char *status, const char *detail, const char *fix)
{
    json_t *o = json_object();
    if (o == NULL)
        return false;
    json_object_set_new(o, "name", json_string(name));
    json_object_set_new(o, "status", json_string(status));
    json_object_set_new(o, "detail", sy_json_text(detail));
    if (fix != NULL && strcmp(status, "pass") != 0)
        json_object_set_new(o, "fix", sy_json_text(fix));
    json_array_append_new(checks, o);
    return strcmp(status, "fail") == 0;
}

void sy_check_add_skipped(json_t *checks, const char *name, const char *why, const char *see)
{
    char detail[1024], fix[128];
    snprintf(detail, sizeof detail, "skipped: %s", why);
    snprintf(fix, sizeof fix, "fix %s first, then run the precheck again", see);
    sy_check_add(checks, name, "warn", detail, fix);
}
