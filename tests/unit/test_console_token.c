/* Unit tests for core/console.c's token file rules: 0600 (or stricter) and ours, first line, trailing blanks
 * dropped; group/other bits, an empty file, a missing file, a directory and a symlink are refused by name. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/console.h"
#include "tests/unit/check.h"

static char dir[] = "/tmp/sy-token-XXXXXX";

static const char *write_token(const char *name, const char *text, mode_t mode)
{
    static char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
    chmod(path, mode);
    return path;
}

int main(void)
{
    char tok[600], err[512];
    if (mkdtemp(dir) == NULL)
        return 2;
    CHECK(sy_console_token_load(write_token("a", "abc123-0123456789\n", 0600), tok, sizeof tok, err, sizeof err) == 0);
    CHECK(strcmp(tok, "abc123-0123456789") == 0);
    CHECK(sy_console_token_load(write_token("b", "abc 123 0123456789 \t\r\nsecond line\n", 0400), tok, sizeof tok, err,
                                sizeof err) == 0);
    CHECK(strcmp(tok, "abc 123 0123456789") == 0);
    CHECK(sy_console_token_load(write_token("c", "abc123-0123456789\n", 0644), tok, sizeof tok, err, sizeof err) == -1);
    CHECK(strstr(err, "mode 0644") != NULL && strstr(err, "must be 0600") != NULL);
    CHECK(sy_console_token_load(write_token("d", "abc123-0123456789\n", 0640), tok, sizeof tok, err, sizeof err) == -1);
    CHECK(sy_console_token_load(write_token("e", "abc123-0123456789\n", 0602), tok, sizeof tok, err, sizeof err) == -1);
    CHECK(sy_console_token_load(write_token("f", " \n", 0600), tok, sizeof tok, err, sizeof err) == -1);
    CHECK(strstr(err, "empty") != NULL);
    CHECK(sy_console_token_load(write_token("g", "", 0600), tok, sizeof tok, err, sizeof err) == -1);
    char missing[300];
    snprintf(missing, sizeof missing, "%s/none", dir);
    CHECK(sy_console_token_load(missing, tok, sizeof tok, err, sizeof err) == -1);
    CHECK(strstr(err, "No such file") != NULL);
    CHECK(sy_console_token_load(dir, tok, sizeof tok, err, sizeof err) == -1);
    char link[300];
    snprintf(link, sizeof link, "%s/link", dir);
    CHECK(symlink(write_token("h", "abc123-0123456789\n", 0600), link) == 0);
    CHECK(sy_console_token_load(link, tok, sizeof tok, err, sizeof err) == -1); /* O_NOFOLLOW */
    char big[700];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    CHECK(sy_console_token_load(write_token("i", big, 0600), tok, sizeof tok, err, sizeof err) == -1);
    CHECK(sy_console_token_load(write_token("j", "0123456789abcdef\n", 0600), tok, 4, err, sizeof err) == -1);
    CHECK(sy_console_token_load(write_token("k", "fifteen-bytes..\n", 0600), tok, sizeof tok, err, sizeof err) == -1);
    CHECK(strstr(err, "the token is 15 bytes; it needs at least 16") != NULL);
    CHECK(sy_console_token_load(write_token("k", "sixteen-bytes...\n", 0600), tok, sizeof tok, err, sizeof err) == 0);
    const char *names[] = { "a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "link" };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char p[300];
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        unlink(p);
    }
    rmdir(dir);
    return CHECK_DONE();
}
