/* Unit tests for proxy/mysql_auth.c: mysql_native_password stage1/stage2/scramble/recover against
 * the known "password" vector and against responses a MariaDB 10.11 server accepted, and the account
 * choice (anonymous ''@localhost shadowing 'app'@'%', wildcard ranking, netmasks, ties). */
#include <string.h>

#include "proxy/mysql_auth.h"
#include "tests/unit/check.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static void unhex(const char *hex, uint8_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned v = 0;
        for (int k = 0; k < 2; k++) {
            char c = hex[2 * i + k];
            v = v << 4 | (unsigned)(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
        }
        out[i] = (uint8_t)v;
    }
}

static void test_native_vector(void)
{
    uint8_t stage1[SY_SHA1_LEN], stage2[SY_SHA1_LEN], want1[SY_SHA1_LEN], want2[SY_SHA1_LEN];
    unhex("5baa61e4c9b93f3f0682250b6cf8331b7ee68fd8", want1, SY_SHA1_LEN);   /* SHA1("password") */
    unhex("2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19", want2, SY_SHA1_LEN);
    sy_mysql_native_stage1("password", 8, stage1);
    CHECK(memcmp(stage1, want1, SY_SHA1_LEN) == 0);
    CHECK(sy_mysql_native_hash_parse("*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19", stage2));
    CHECK(memcmp(stage2, want2, SY_SHA1_LEN) == 0);
    CHECK(sy_mysql_native_hash_parse("*2470c0c06dee42fd1618bb99005adca2ec9d1e19", stage2));
    CHECK(memcmp(stage2, want2, SY_SHA1_LEN) == 0);

    static const char *const bad[] = {
        "", "*", "invalid", "2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19",   /* no '*' */
        "*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E1",                         /* 39 digits */
        "*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E199",                       /* 41 digits */
        "*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E1G",
        "*2470C0C06DEE42FD 618BB99005ADCA2EC9D1E19",
        "6f8c114b58f2ce9e",                                                 /* mysql_old_password */
    };
    for (size_t i = 0; i < N(bad); i++)
        CHECK(!sy_mysql_native_hash_parse(bad[i], stage2));
    CHECK(!sy_mysql_native_hash_parse(NULL, stage2));
}

/* Responses a PyMySQL-like client sent and MariaDB 10.11.19 accepted, with the salts it sent. */
static void test_native_real(void)
{
    static const struct {
        const char *salt, *resp;
    } cases[] = {
        { "5453255b7a755d53662a397e3323515123587153", "24c55f7790bbe0bae8d8bb833aef4e568df6b4f8" },
        { "282a392138384d5a5c4273402126392d727b3430", "ec27a53dd758fe93ca514359264094a040446639" },
    };
    uint8_t stage1[SY_SHA1_LEN], stage2[SY_SHA1_LEN], got[SY_SHA1_LEN], want1[SY_SHA1_LEN];
    CHECK(sy_mysql_native_hash_parse("*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19", stage2));
    sy_mysql_native_stage1("password", 8, want1);
    for (size_t i = 0; i < N(cases); i++) {
        uint8_t salt[20], resp[20];
        unhex(cases[i].salt, salt, 20);
        unhex(cases[i].resp, resp, 20);
        sy_mysql_native_scramble(want1, salt, 20, got);
        CHECK(memcmp(got, resp, 20) == 0);
        memset(stage1, 0xAA, sizeof stage1);
        CHECK(sy_mysql_native_recover(resp, 20, salt, 20, stage2, stage1));
        CHECK(memcmp(stage1, want1, SY_SHA1_LEN) == 0);
        /* the recovered stage1 answers another salt (the other side's backend) */
        uint8_t other[20] = "abcdefghijklmnopqrst", ans[20], s1b[20];
        sy_mysql_native_scramble(stage1, other, 20, ans);
        CHECK(sy_mysql_native_recover(ans, 20, other, 20, stage2, s1b) && memcmp(s1b, want1, 20) == 0);
        /* wrong salt, cut or long response, flipped bit: false, and stage1 is wiped */
        CHECK(!sy_mysql_native_recover(resp, 20, other, 20, stage2, stage1));
        uint8_t zero[SY_SHA1_LEN] = { 0 };
        CHECK(memcmp(stage1, zero, SY_SHA1_LEN) == 0);
        CHECK(!sy_mysql_native_recover(resp, 19, salt, 20, stage2, stage1));
        CHECK(!sy_mysql_native_recover(resp, 0, salt, 20, stage2, stage1));
        CHECK(!sy_mysql_native_recover(NULL, 20, salt, 20, stage2, stage1));
        resp[7] ^= 0x01;
        CHECK(!sy_mysql_native_recover(resp, 20, salt, 20, stage2, stage1));
    }
}

static void test_native_roundtrip(void)
{
    static const char *const passwords[] = { "password", "", "p\xc3\xa4ss w0rd!", "x" };
    uint8_t salt[20];
    for (size_t i = 0; i < N(passwords); i++) {
        uint8_t s1[20], s2[20], resp[20], back[20];
        sy_mysql_native_stage1(passwords[i], strlen(passwords[i]), s1);
        /* stage2 as the server stores it: "*" + hex(SHA1(stage1)) */
        char hex[42] = "*";
        sy_mysql_native_stage1((const char *)s1, 20, s2);
        for (int k = 0; k < 20; k++) {
            static const char d[] = "0123456789ABCDEF";
            hex[1 + 2 * k] = d[s2[k] >> 4];
            hex[2 + 2 * k] = d[s2[k] & 15];
        }
        uint8_t parsed[20];
        CHECK(sy_mysql_native_hash_parse(hex, parsed) && memcmp(parsed, s2, 20) == 0);
        for (int round = 0; round < 8; round++) {
            for (int k = 0; k < 20; k++)
                salt[k] = (uint8_t)(33 + (k * 7 + round * 13 + (int)i) % 94);
            sy_mysql_native_scramble(s1, salt, 20, resp);
            CHECK(sy_mysql_native_recover(resp, 20, salt, 20, parsed, back) && memcmp(back, s1, 20) == 0);
            uint8_t wrong1[20], wresp[20];
            sy_mysql_native_stage1("wrong", 5, wrong1);
            sy_mysql_native_scramble(wrong1, salt, 20, wresp);
            CHECK(!sy_mysql_native_recover(wresp, 20, salt, 20, parsed, back));
        }
    }
    /* a salt longer than 20 bytes (auth switch data) is hashed as given */
    uint8_t s1[20], s2[20], resp[20], back[20], long_salt[32];
    memset(long_salt, 'z', sizeof long_salt);
    sy_mysql_native_stage1("password", 8, s1);
    sy_mysql_native_stage1((const char *)s1, 20, s2);
    sy_mysql_native_scramble(s1, long_salt, sizeof long_salt, resp);
    CHECK(sy_mysql_native_recover(resp, 20, long_salt, sizeof long_salt, s2, back));
    CHECK(!sy_mysql_native_recover(resp, 20, long_salt, 20, s2, back));
}

static void test_host_match(void)
{
    static const struct {
        const char *pattern, *host;
        bool match;
    } cases[] = {
        { "%", "anything.example.com", true },
        { "", "10.1.2.3", true },                       /* empty Host column = any host */
        { NULL, "10.1.2.3", true },
        { "localhost", "LOCALHOST", true },
        { "localhost", "localhost2", false },
        { "10.0.0.%", "10.0.0.15", true },
        { "10.0.0.%", "10.0.1.1", false },
        { "10.0.0._", "10.0.0.7", true },
        { "10.0.0._", "10.0.0.17", false },
        { "%.Example.COM", "db1.example.com", true },
        { "%.example.com", "example.com", false },
        { "db_.example.com", "db1.example.com", true },
        { "a\\_b", "a_b", true },
        { "a\\_b", "axb", false },
        { "a\\%", "a%", true },
        { "a\\%", "ab", false },
        { "a%b%c", "aXXbYYc", true },
        { "a%b%c", "aXXbYY", false },
        { "%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false },
        { "192.168.0.0/255.255.0.0", "192.168.44.3", true },
        { "192.168.0.0/255.255.0.0", "192.169.0.1", false },
        { "192.168.0.0/255.255.0.0", "db.example.com", false },
        { "10.0.0.1/255.255.255.0", "10.0.0.1", false },   /* host bits set: MariaDB never matches */
        { "10.0.0.0/24", "10.0.0.5", false },               /* no CIDR in MariaDB: a literal */
        { "10.0.0.0/24", "10.0.0.0/24", true },
        { "256.0.0.0/255.0.0.0", "256.0.0.0/255.0.0.0", true },  /* not a mask: literal */
        { "0.0.0.0/0.0.0.0", "1.2.3.4", false },            /* mask 0: a literal pattern */
        { "%", NULL, false },
    };
    for (size_t i = 0; i < N(cases); i++)
        CHECK(sy_mysql_host_match(cases[i].pattern, cases[i].host) == cases[i].match);
}

#define ROW(u, h) { (char *)(u), (char *)(h), (char *)"mysql_native_password", (char *)"" }

static void test_account_match(void)
{
    const struct sy_mysql_account rows[] = {
        ROW("", "localhost"),                      /* 0: left by mariadb-install-db */
        ROW("app", "%"),                           /* 1 */
        ROW("root", "localhost"),                  /* 2 */
        ROW("root", "127.0.0.1"),                  /* 3 */
        ROW("app", "10.0.0.0/255.255.255.0"),      /* 4 */
        ROW("app", "%.example.com"),               /* 5 */
        ROW("app", "db_.example.com"),             /* 6 */
        ROW("", "172.16.%"),                       /* 7 */
        ROW("ops", ""),                            /* 8: empty host = '%' */
        ROW("ops", "%.example.net"),               /* 9 */
    };
    static const struct {
        const char *user, *name, *ip;
        int want;                                  /* row index or -1 */
    } cases[] = {
        { "app", "localhost", "127.0.0.1", 0 },    /* ''@localhost shadows 'app'@'%' */
        { "app", NULL, "127.0.0.1", 1 },           /* no name resolution: the IP is not "localhost" */
        { "app", NULL, "10.0.0.5", 4 },            /* a netmask ranks like a literal host */
        { "app", NULL, "10.0.1.5", 1 },
        { "app", "web1.example.com", "192.168.1.1", 5 },
        { "app", "db1.example.com", "192.168.1.2", 6 },   /* longer literal prefix first */
        { "app", "DB1.EXAMPLE.COM", NULL, 6 },
        { "root", "localhost", "127.0.0.1", 2 },   /* tie: "localhost" before "127.0.0.1" */
        { "root", NULL, "127.0.0.1", 3 },
        { "root", NULL, "10.0.0.9", -1 },
        { "bob", "localhost", "127.0.0.1", 0 },    /* unknown user: the anonymous account */
        { "bob", NULL, "10.9.9.9", -1 },
        { "app", NULL, "172.16.3.4", 7 },          /* ''@'172.16.%' outranks 'app'@'%' */
        { "ops", NULL, "1.2.3.4", 8 },
        { "ops", "a.example.net", "1.2.3.4", 9 },
        { "", "localhost", NULL, 0 },
        { "App", NULL, "10.0.1.5", -1 },           /* user names are case-sensitive */
    };
    for (size_t i = 0; i < N(cases); i++) {
        const struct sy_mysql_account *a = sy_mysql_account_match(rows, N(rows), cases[i].user, cases[i].name,
                                                                  cases[i].ip);
        CHECK(cases[i].want < 0 ? a == NULL : a == &rows[cases[i].want]);
    }

    /* input order does not matter */
    struct sy_mysql_account rev[N(rows)];
    for (size_t i = 0; i < N(rows); i++)
        rev[i] = rows[N(rows) - 1 - i];
    for (size_t i = 0; i < N(cases); i++) {
        const struct sy_mysql_account *a = sy_mysql_account_match(rev, N(rev), cases[i].user, cases[i].name,
                                                                  cases[i].ip);
        CHECK(cases[i].want < 0 ? a == NULL : a == &rev[N(rows) - 1 - (size_t)cases[i].want]);
    }

    /* anonymous only wins when strictly more specific */
    const struct sy_mysql_account same[] = { ROW("", "%"), ROW("app", "%") };
    CHECK(sy_mysql_account_match(same, 2, "app", NULL, "1.1.1.1") == &same[1]);
    const struct sy_mysql_account nulls[] = { { NULL, NULL, NULL, NULL } };   /* NULL columns = '' */
    CHECK(sy_mysql_account_match(nulls, 1, "x", NULL, "1.1.1.1") == &nulls[0]);
    CHECK(sy_mysql_account_match(rows, 0, "app", "localhost", "127.0.0.1") == NULL);
    CHECK(sy_mysql_account_match(NULL, 3, "app", "localhost", "127.0.0.1") == NULL);
    CHECK(sy_mysql_account_match(rows, N(rows), NULL, "localhost", "127.0.0.1") == NULL);
    CHECK(sy_mysql_account_match(rows, N(rows), "app", NULL, NULL) == NULL);
}

int main(void)
{
    test_native_vector();
    test_native_real();
    test_native_roundtrip();
    test_host_match();
    test_account_match();
    return CHECK_DONE();
}
