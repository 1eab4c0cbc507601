/* Unit tests for core/spool.c: round trips across segments, reopen, torn-tail recovery, corruption
 * naming file and offset, the byte cap and truncation, ENOSPC (a segment that is /dev/full), and a
 * reader blocked in sy_spool_read while another thread appends or wakes it, finding the last record of
 * some types from the tail, and the bytes a truncation keeps. Each test works in its
 * own mkdtemp directory, removed afterwards. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "core/spool.h"
#include "tests/unit/check.h"

#define REC_HDR 17

static char errbuf[512];

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

static void rm_rf(const char *dir)
{
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static char *make_tmpdir(void)
{
    char tmpl[] = "/tmp/sy_spool_test.XXXXXX";
    char *d = mkdtemp(tmpl);
    return d ? strdup(d) : NULL;
}

static void seg_name(char *out, size_t len, const char *dir, uint64_t first)
{
    snprintf(out, len, "%s/%020" PRIu64 ".spool", dir, first);
}

static off_t file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? st.st_size : -1;
}

static int count_segments(const char *dir, uint64_t *firsts, int max)
{
    int n = 0;
    char path[512];
    for (uint64_t f = 1; f < 10000 && n < max; f++) {
        seg_name(path, sizeof path, dir, f);
        if (access(path, F_OK) == 0)
            firsts[n++] = f;
    }
    return n;
}

/* Payload i: (i * 7) % 90 bytes derived from i, so every record differs (record 0 mod 90: empty). */
static size_t payload_for(uint64_t i, uint8_t *buf)
{
    size_t n = (size_t)((i * 7) % 90);
    for (size_t k = 0; k < n; k++)
        buf[k] = (uint8_t)(i * 31 + k);
    return n;
}

static bool read_is(struct sy_spool *s, uint64_t seq)
{
    uint8_t want[128], type = 0;
    const uint8_t *p = NULL;
    size_t len = 0, wlen = payload_for(seq, want);
    if (sy_spool_read(s, seq, &type, &p, &len, 0, errbuf, sizeof errbuf) != SY_SPOOL_OK) {
        fprintf(stderr, "read %" PRIu64 ": %s\n", seq, errbuf);
        return false;
    }
    return type == (uint8_t)(seq & 0xff) && len == wlen && (len == 0 || memcmp(p, want, len) == 0);
}

static bool append_n(struct sy_spool *s, uint64_t from, uint64_t to)
{
    uint8_t buf[128];
    for (uint64_t i = from; i <= to; i++) {
        uint64_t seq = 0;
        size_t n = payload_for(i, buf);
        if (sy_spool_append(s, (uint8_t)(i & 0xff), buf, n, &seq, errbuf, sizeof errbuf) != SY_SPOOL_OK ||
            seq != i) {
            fprintf(stderr, "append %" PRIu64 ": %s\n", i, errbuf);
            return false;
        }
    }
    return true;
}

/* Sum of the segment files' sizes in dir. */
static uint64_t disk_bytes(const char *dir)
{
    uint64_t firsts[1000], sum = 0;
    char path[512];
    int n = count_segments(dir, firsts, 1000);
    for (int i = 0; i < n; i++) {
        seg_name(path, sizeof path, dir, firsts[i]);
        sum += (uint64_t)file_size(path);
    }
    return sum;
}

static void test_roundtrip_segments(void)
{
    char *dir = make_tmpdir();
    char sub[600];
    snprintf(sub, sizeof sub, "%s/a/b", dir);  /* created on open */
    struct sy_spool *s = sy_spool_open(sub, 0, 300, errbuf, sizeof errbuf);
    CHECK(s != NULL);
    if (s == NULL)
        goto out;
    CHECK(sy_spool_last_seq(s) == 0 && sy_spool_first_seq(s) == 0 && sy_spool_bytes(s) == 0);
    uint8_t type;
    const uint8_t *p;
    size_t len;
    CHECK(sy_spool_read(s, 1, &type, &p, &len, 0, errbuf, sizeof errbuf) == SY_SPOOL_EMPTY);
    CHECK(append_n(s, 1, 60));
    CHECK(sy_spool_sync(s, errbuf, sizeof errbuf) == SY_SPOOL_OK);
    CHECK(sy_spool_last_seq(s) == 60 && sy_spool_first_seq(s) == 1);
    CHECK(sy_spool_bytes(s) == disk_bytes(sub));

    uint64_t firsts[100];
    int nseg = count_segments(sub, firsts, 100);
    CHECK(nseg >= 5);
    CHECK(firsts[0] == 1);

    bool all = true;
    for (uint64_t i = 1; i <= 60; i++)
        all = all && read_is(s, i);
    CHECK(all);
    CHECK(sy_spool_read(s, 61, &type, &p, &len, 0, errbuf, sizeof errbuf) == SY_SPOOL_EMPTY);
    CHECK(sy_spool_read(s, 0, &type, &p, &len, 0, errbuf, sizeof errbuf) == SY_SPOOL_ERROR);
    /* Random access: backwards within a segment, across segments, forward skips. */
    static const uint64_t order[] = { 30, 29, 1, 60, 2, 45, 44, 46, 10, 59, 3 };
    for (size_t i = 0; i < SY_ARRAY_LEN(order); i++)
        CHECK(read_is(s, order[i]));
    /* Reading goes on after new appends into a segment the reader has open. */
    CHECK(append_n(s, 61, 62));
    CHECK(read_is(s, 61) && read_is(s, 62));

    /* Reopen: same records, numbering continues. */
    sy_spool_close(s);
    s = sy_spool_open(sub, 0, 300, errbuf, sizeof errbuf);
    CHECK(s != NULL);
    if (s == NULL)
        goto out;
    CHECK(sy_spool_last_seq(s) == 62 && sy_spool_first_seq(s) == 1 && sy_spool_bytes(s) == disk_bytes(sub));
    CHECK(append_n(s, 63, 70));
    all = true;
    for (uint64_t i = 1; i <= 70; i++)
        all = all && read_is(s, i);
    CHECK(all);

    /* truncate_below drops whole segments only, never the newest. */
    nseg = count_segments(sub, firsts, 100);
    CHECK(sy_spool_truncate_below(s, firsts[2], errbuf, sizeof errbuf) == SY_SPOOL_OK);
    CHECK(sy_spool_first_seq(s) == firsts[2]);
    CHECK(count_segments(sub, firsts, 100) == nseg - 2);
    CHECK(sy_spool_bytes(s) == disk_bytes(sub));
    CHECK(sy_spool_read(s, 1, &type, &p, &len, 0, errbuf, sizeof errbuf) == SY_SPOOL_ERROR);
    CHECK(read_is(s, firsts[0]) && read_is(s, 70));
    CHECK(sy_spool_truncate_below(s, UINT64_MAX, errbuf, sizeof errbuf) == SY_SPOOL_OK);
    CHECK(count_segments(sub, firsts, 100) == 1);
    CHECK(sy_spool_first_seq(s) == firsts[0] && read_is(s, 70));
    CHECK(sy_spool_bytes(s) == disk_bytes(sub));
    sy_spool_close(s);
    s = sy_spool_open(sub, 0, 300, errbuf, sizeof errbuf);
    CHECK(s != NULL && sy_spool_last_seq(s) == 70 && sy_spool_first_seq(s) == firsts[0]);
    CHECK(s != NULL && append_n(s, 71, 71) && read_is(s, 71));
out:
    sy_spool_close(s);
    sy_spool_close(NULL);
    rm_rf(dir);
    free(dir);
}

/* Offset of record `seq` in the segment file (records from `first` on, payloads from payload_for). */
static off_t record_offset(uint64_t first, uint64_t seq)
{
    uint8_t buf[128];
    off_t off = 0;
    for (uint64_t i = first; i < seq; i++)
        off += REC_HDR + (off_t)payload_for(i, buf);
    return off;
}

static void flip_byte(const char *path, off_t off)
{
    int fd = open(path, O_RDWR);
    uint8_t b = 0;
    CHECK(fd >= 0 && pread(fd, &b, 1, off) == 1);
    b ^= 0x10;
    CHECK(pwrite(fd, &b, 1, off) == 1);
    close(fd);
}

static void test_torn_tail(void)
{
    char *dir = make_tmpdir();
    char path[512];
    uint8_t type;
    const uint8_t *p;
    size_t len;
    struct sy_spool *s = sy_spool_open(dir, 0, 400, errbuf, sizeof errbuf);
    CHECK(s != NULL && append_n(s, 1, 20));
    sy_spool_close(s);
    uint64_t firsts[100];
    int nseg = count_segments(dir, firsts, 100);
    uint64_t lastf = firsts[nseg - 1];
    seg_name(path, sizeof path, dir, lastf);
    off_t size = file_size(path);

    /* Cut the last record in the middle of its payload (record 20 has 140 % 90 = 50 bytes). */
    off_t at20 = record_offset(lastf, 20);
    CHECK(size == at20 + REC_HDR + 50);
    CHECK(truncate(path, at20 + REC_HDR + 10) == 0);
    s = sy_spool_open(dir, 0, 400, errbuf, sizeof errbuf);
    CHECK(s != NULL);
    if (s == NULL)
        goto out;
    CHECK(sy_spool_last_seq(s) == 19 && file_size(path) == at20);
    CHECK(sy_spool_read(s, 20, &type, &p, &len, 0, errbuf, sizeof errbuf) == SY_SPOOL_EMPTY);
    CHECK(append_n(s, 20, 20) && read_is(s, 20) && read_is(s, 19));
    sy_spool_close(s);

    /* Only part of the header made it. */
    CHECK(truncate(path, at20 + 5) == 0);
    s = sy_spool_open(dir, 0, 400, errbuf, sizeof errbuf);
    CHECK(s != NULL && sy_spool_last_seq(s) == 19 && file_size(path) == at20);
    CHECK(s != NULL && append_n(s, 20, 20));
    sy_spool_close(s);

    /* The length and the data made it but not all of it: bad CRC on a record that ends at EOF. */
    flip_byte(path, at20 + REC_HDR + 3);
    s = sy_spool_open(dir, 0, 400, errbuf, sizeof errbuf);
    CHECK(s != NULL && sy_spool_last_seq(s) == 19 && file_size(path) == at20);
    CHECK(s != NULL && append_n(s, 20, 20));
    sy_spool_close(s);

    /* The file was extended with zeros that never got their data. */
    int fd = open(path, O_WRONLY | O_APPEND);
    static const uint8_t zeros[300];
    CHECK(fd >= 0 && write(fd, zeros, sizeof zeros) == (ssize_t)sizeof zeros);
    close(fd);
    s = sy_spool_open(dir, 0, 400, errbuf, sizeof errbuf);
    CHECK(s != NULL && sy_spool_last_seq(s) == 20 && file_size(path) == size);
    CHECK(s != NULL && read_is(s, 20));
    sy_spool_close(s);

    /* A torn first record of a new segment leaves an empty segment, which keeps the numbering. */
    s = sy_spool_open(dir, 0, 1, errbuf, sizeof errbuf);  /* segment_bytes 1: every record starts one */
    CHECK(s != NULL && append_n(s, 21, 21));
    sy_spool_close(s);
    seg_name(path, sizeof path, dir, 21);
    CHECK(file_size(path) > 0 && truncate(path, 3) == 0);
    s = sy_spool_open(dir, 0, 1, errbuf, sizeof errbuf);
    CHECK(s != NULL && sy_spool_last_seq(s) == 20 && file_size(path) == 0);
    sy_spool_close(s);
    s = sy_spool_open(dir, 0, 1, errbuf, sizeof errbuf);
    CHECK(s != NULL && sy_spool_last_seq(s) == 20);
    CHECK(s != NULL && append_n(s, 21, 22) && read_is(s, 21) && read_is(s, 22) && read_is(s, 1));
out:
    sy_spool_close(s);
    rm_rf(dir);
    free(dir);
}

/* Opening dir must fail; a spool that opened anyway is closed (and the CHECK fails). */
static bool open_fails(const char *dir)
{
    errbuf[0] = '\0';
    struct sy_spool *s = sy_spool_open(dir, 0, 400, errbuf, sizeof errbuf);
    sy_spool_close(s);
    return s == NULL;
}

static void test_corruption(void)
{
    char *dir = make_tmpdir();
    char path[512], want[600];
    struct sy_spool *s = sy_spool_open(dir, 0, 400, errbuf, sizeof errbuf);
    CHECK(s != NULL && append_n(s, 1, 30));
    sy_spool_close(s);
    uint64_t firsts[100];
    int nseg = count_segments(dir, firsts, 100);
    CHECK(nseg >= 3);

    /* A bit flip in the payload of record 3 of the first segment. */
    seg_name(path, sizeof path, dir, 1);
    off_t at3 = record_offset(1, 3);
    flip_byte(path, at3 + REC_HDR + 2);
    CHECK(open_fails(dir));
    snprintf(want, sizeof want, "spool %s offset %lld: CRC mismatch (corrupt)", path, (long long)at3);
    CHECK(strcmp(errbuf, want) == 0);
    if (strcmp(errbuf, want) != 0)
        fprintf(stderr, "got: %s\nwant: %s\n", errbuf, want);
    flip_byte(path, at3 + REC_HDR + 2);  /* repaired */

    /* The last record of a segment that is not the newest: corruption, not a torn write. */
    uint64_t f2 = firsts[1];
    off_t atlast = record_offset(1, f2 - 1);
    flip_byte(path, atlast + 9);  /* in its seq */
    CHECK(open_fails(dir));
    snprintf(want, sizeof want, "spool %s offset %lld: CRC mismatch (corrupt)", path, (long long)atlast);
    CHECK(strcmp(errbuf, want) == 0);
    flip_byte(path, atlast + 9);

    /* ... and truncated: also corruption. */
    off_t full = file_size(path);
    CHECK(truncate(path, full - 1) == 0);
    CHECK(open_fails(dir) && strstr(errbuf, path) != NULL && strstr(errbuf, "(corrupt)") != NULL);
    rm_rf(dir);  /* start over with a healthy spool */
    CHECK(mkdir(dir, 0700) == 0);
    s = sy_spool_open(dir, 0, 400, errbuf, sizeof errbuf);
    CHECK(s != NULL && append_n(s, 1, 30));
    sy_spool_close(s);

    /* A flip in the newest segment, not in its last record. */
    uint64_t lastf = firsts[nseg - 1];
    seg_name(path, sizeof path, dir, lastf);
    CHECK(lastf < 29);
    off_t atmid = record_offset(lastf, lastf);
    flip_byte(path, atmid + 4);  /* in the CRC itself */
    CHECK(open_fails(dir));
    snprintf(want, sizeof want, "spool %s offset %lld: CRC mismatch (corrupt)", path, (long long)atmid);
    CHECK(strcmp(errbuf, want) == 0);
    flip_byte(path, atmid + 4);

    /* After the last record, a whole record with a bad CRC followed by more non-zero bytes: not the
     * shape of a torn append, so corruption. */
    off_t healthy = file_size(path);
    int fd = open(path, O_WRONLY | O_APPEND);
    uint8_t junk[40];
    memset(junk, 0x77, sizeof junk);
    memcpy(junk, "\x01\0\0\0\x09\x09\x09\x09", 8);  /* len 1: an 18-byte record, then 22 bytes */
    CHECK(fd >= 0 && write(fd, junk, sizeof junk) == (ssize_t)sizeof junk);
    close(fd);
    CHECK(open_fails(dir));
    snprintf(want, sizeof want, "spool %s offset %lld: CRC mismatch (corrupt)", path, (long long)healthy);
    CHECK(strcmp(errbuf, want) == 0);
    /* The same record followed by zeros only is a torn append (the zeros never got their data). */
    memset(junk + 18, 0, sizeof junk - 18);
    CHECK(truncate(path, healthy) == 0);
    fd = open(path, O_WRONLY | O_APPEND);
    CHECK(fd >= 0 && write(fd, junk, sizeof junk) == (ssize_t)sizeof junk);
    close(fd);
    s = sy_spool_open(dir, 0, 400, errbuf, sizeof errbuf);
    CHECK(s != NULL && sy_spool_last_seq(s) == 30 && file_size(path) == healthy);
    sy_spool_close(s);

    /* A missing segment in the middle: a gap. */
    char mid[512];
    seg_name(mid, sizeof mid, dir, firsts[1]);
    char moved[600];
    snprintf(moved, sizeof moved, "%s.moved", mid);
    CHECK(rename(mid, moved) == 0);
    CHECK(open_fails(dir) && strstr(errbuf, "(gap)") != NULL);
    CHECK(rename(moved, mid) == 0);

    /* Healthy again; files that are not segments are ignored. */
    snprintf(moved, sizeof moved, "%s/notes.txt", dir);
    fd = open(moved, O_WRONLY | O_CREAT, 0600);
    close(fd);
    s = sy_spool_open(dir, 0, 400, errbuf, sizeof errbuf);
    CHECK(s != NULL && sy_spool_last_seq(s) == 30);

    /* Corruption that appears after open is caught by the reader, naming file and offset. */
    if (s != NULL) {
        seg_name(path, sizeof path, dir, firsts[1]);
        off_t at = record_offset(firsts[1], firsts[1] + 1);
        flip_byte(path, at + REC_HDR + 1);
        uint8_t type;
        const uint8_t *p;
        size_t len;
        CHECK(read_is(s, firsts[1]));
        CHECK(sy_spool_read(s, firsts[1] + 1, &type, &p, &len, 0, errbuf, sizeof errbuf) == SY_SPOOL_ERROR);
        snprintf(want, sizeof want, "spool %s offset %lld: CRC mismatch (corrupt)", path, (long long)at);
        CHECK(strcmp(errbuf, want) == 0);
        CHECK(read_is(s, 1) && read_is(s, 30));
    }
    sy_spool_close(s);
    rm_rf(dir);
    free(dir);
}

static void test_full(void)
{
    char *dir = make_tmpdir();
    uint8_t buf[100] = { 0 };
    uint64_t seq;
    /* 117 bytes a record, cap 1000: 8 fit (936). Segments of 300 bytes (3 records). */
    struct sy_spool *s = sy_spool_open(dir, 1000, 300, errbuf, sizeof errbuf);
    CHECK(s != NULL);
    if (s == NULL)
        goto out;
    int ok = 0;
    enum sy_spool_rc rc;
    while ((rc = sy_spool_append(s, 1, buf, sizeof buf, &seq, errbuf, sizeof errbuf)) == SY_SPOOL_OK)
        ok++;
    CHECK(rc == SY_SPOOL_FULL && ok == 8);
    CHECK(strstr(errbuf, "spool_max_bytes") != NULL);
    uint64_t bytes = sy_spool_bytes(s);
    CHECK(bytes == 8 * 117 && disk_bytes(dir) == bytes && sy_spool_last_seq(s) == 8);
    CHECK(sy_spool_append(s, 1, buf, sizeof buf, &seq, errbuf, sizeof errbuf) == SY_SPOOL_FULL);
    CHECK(disk_bytes(dir) == bytes && sy_spool_last_seq(s) == 8);
    /* A small record still fits. */
    CHECK(sy_spool_append(s, 1, buf, 10, &seq, errbuf, sizeof errbuf) == SY_SPOOL_OK && seq == 9);
    /* The writer applied up to 6: segments wholly below 7 go, room again. */
    CHECK(sy_spool_truncate_below(s, 7, errbuf, sizeof errbuf) == SY_SPOOL_OK);
    CHECK(sy_spool_bytes(s) < bytes && sy_spool_bytes(s) == disk_bytes(dir));
    CHECK(sy_spool_append(s, 1, buf, sizeof buf, &seq, errbuf, sizeof errbuf) == SY_SPOOL_OK && seq == 10);
    /* Never fits: an error, not FULL (retrying would not help). */
    static uint8_t big[2000];
    CHECK(sy_spool_append(s, 1, big, sizeof big, &seq, errbuf, sizeof errbuf) == SY_SPOOL_ERROR);
    sy_spool_close(s);

    /* Cap below the segment size: everything is in one segment when the cap is hit. The spool moves
     * on to a new segment, so truncation can still make room. */
    rm_rf(dir);
    CHECK(mkdir(dir, 0700) == 0);
    s = sy_spool_open(dir, 500, 0, errbuf, sizeof errbuf);
    CHECK(s != NULL);
    if (s == NULL)
        goto out;
    ok = 0;
    while ((rc = sy_spool_append(s, 1, buf, sizeof buf, &seq, errbuf, sizeof errbuf)) == SY_SPOOL_OK)
        ok++;
    CHECK(rc == SY_SPOOL_FULL && ok == 4);
    CHECK(sy_spool_truncate_below(s, 5, errbuf, sizeof errbuf) == SY_SPOOL_OK);
    CHECK(sy_spool_bytes(s) == 0 && disk_bytes(dir) == 0 && sy_spool_first_seq(s) == 0);
    CHECK(sy_spool_append(s, 1, buf, sizeof buf, &seq, errbuf, sizeof errbuf) == SY_SPOOL_OK && seq == 5);
    CHECK(sy_spool_first_seq(s) == 5);
    sy_spool_close(s);
    s = sy_spool_open(dir, 500, 0, errbuf, sizeof errbuf);
    CHECK(s != NULL && sy_spool_last_seq(s) == 5 && sy_spool_first_seq(s) == 5);
out:
    sy_spool_close(s);
    rm_rf(dir);
    free(dir);
}

/* ENOSPC from write(): a segment that is /dev/full. NO_SPACE, nothing written. */
static void test_enospc(void)
{
    char *dir = make_tmpdir();
    char path[512];
    seg_name(path, sizeof path, dir, 1);
    if (access("/dev/full", W_OK) != 0 || symlink("/dev/full", path) != 0) {
        fprintf(stderr, "test_enospc: no /dev/full to write to: %s (skipped)\n", strerror(errno));
        goto out;
    }
    struct sy_spool *s = sy_spool_open(dir, 0, 0, errbuf, sizeof errbuf);
    CHECK(s != NULL);
    if (s != NULL) {
        uint64_t seq = 0;
        CHECK(sy_spool_append(s, 1, "abc", 3, &seq, errbuf, sizeof errbuf) == SY_SPOOL_NO_SPACE);
        CHECK(strstr(errbuf, "No space left") != NULL);
        CHECK(sy_spool_last_seq(s) == 0 && sy_spool_bytes(s) == 0);
        CHECK(sy_spool_append(s, 1, "abc", 3, &seq, errbuf, sizeof errbuf) == SY_SPOOL_NO_SPACE);
    }
    sy_spool_close(s);
out:
    rm_rf(dir);
    free(dir);
}

static bool want_type_below_100(uint8_t type, void *arg)
{
    return type < 100;
}

/* Whether files in dir can have holes punched in them (else the punch test is skipped). */
static bool can_punch(const char *dir)
{
    char path[512];
    snprintf(path, sizeof path, "%s/probe", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    static const char block[8192];
    bool ok = fd >= 0 && write(fd, block, sizeof block) == (ssize_t)sizeof block &&
              fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4096) == 0;
    if (fd >= 0)
        close(fd);
    unlink(path);
    return ok;
}

static blkcnt_t blocks_of(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? st.st_blocks : -1;
}

/* A full disk can hold a transaction cut in two in a segment the writer cannot drop: while appends fail
 * with ENOSPC (the next segment is /dev/full), the failed append (and truncate_below) punches the first
 * segment's applied records out (its blocks freed, the file keeps its size); the spool starts at the first
 * record kept, also after a reopen, and appends go on once there is room again. */
static void test_full_disk_punches_the_applied_prefix(void)
{
    char *dir = make_tmpdir();
    char path[512], next[512];
    seg_name(path, sizeof path, dir, 1);
    seg_name(next, sizeof next, dir, 2001);
    struct sy_spool *s = NULL;
    if (!can_punch(dir) || access("/dev/full", W_OK) != 0) {
        fprintf(stderr, "test_full_disk_punches_the_applied_prefix: no hole punching or /dev/full here (skipped)\n");
        goto out;
    }
    s = sy_spool_open(dir, 0, 0, errbuf, sizeof errbuf);
    CHECK(s != NULL && append_n(s, 1, 2000));
    sy_spool_close(s);
    CHECK(symlink("/dev/full", next) == 0);              /* the next append hits a full disk */
    s = sy_spool_open(dir, 0, 0, errbuf, sizeof errbuf);
    CHECK(s != NULL);
    if (s == NULL)
        goto out;
    uint64_t seq = 0, before = sy_spool_bytes(s);
    blkcnt_t blocks = blocks_of(path);
    CHECK(sy_spool_truncate_below(s, 1500, errbuf, sizeof errbuf) == SY_SPOOL_OK);
    CHECK(sy_spool_first_seq(s) == 1);                   /* the disk is not full: nothing punched */
    /* the writer truncated all it applied before the disk filled and calls no more: the append punches */
    CHECK(sy_spool_append(s, 1, "abc", 3, &seq, errbuf, sizeof errbuf) == SY_SPOOL_NO_SPACE);
    CHECK(sy_spool_first_seq(s) == 1500 && sy_spool_last_seq(s) == 2000);
    CHECK(sy_spool_truncate_below(s, 1500, errbuf, sizeof errbuf) == SY_SPOOL_OK);   /* again: nothing more */
    CHECK(sy_spool_first_seq(s) == 1500 && sy_spool_last_seq(s) == 2000);
    CHECK(sy_spool_bytes(s) < before && blocks_of(path) < blocks && file_size(path) > 0);
    CHECK(read_is(s, 1500) && read_is(s, 2000) && read_is(s, 1600));
    uint8_t type;
    const uint8_t *p;
    size_t len;
    CHECK(sy_spool_read(s, 1499, &type, &p, &len, 0, errbuf, sizeof errbuf) == SY_SPOOL_ERROR);
    uint8_t *copy = NULL;                                /* a scan of the punched segment starts after the hole */
    CHECK(sy_spool_find_last(s, want_type_below_100, NULL, &seq, &type, &copy, &len, errbuf, sizeof errbuf) ==
              SY_SPOOL_OK && seq == 1891);
    free(copy);
    sy_spool_close(s);
    CHECK(unlink(next) == 0);                            /* room again */
    s = sy_spool_open(dir, 0, 0, errbuf, sizeof errbuf);
    CHECK(s != NULL);
    if (s == NULL) {
        fprintf(stderr, "reopen: %s\n", errbuf);
        goto out;
    }
    /* the first whole record after the hole: the applied ones between the block boundary and 1500 too */
    uint64_t first = sy_spool_first_seq(s);
    CHECK(first > 1500 - 4096 / REC_HDR && first <= 1500 && sy_spool_last_seq(s) == 2000);
    CHECK(read_is(s, first) && read_is(s, 1500) && read_is(s, 1999));
    CHECK(append_n(s, 2001, 2100));
    sy_spool_close(s);
    s = sy_spool_open(dir, 0, 0, errbuf, sizeof errbuf);
    CHECK(s != NULL && sy_spool_first_seq(s) == first && sy_spool_last_seq(s) == 2100);
    CHECK(s != NULL && read_is(s, 1500) && read_is(s, 2100));
out:
    sy_spool_close(s);
    rm_rf(dir);
    free(dir);
}

/* fallocate, interposed for the test below: with hold_punch set, the next call (a punch) waits until the
 * test lets it go; every other call is the system's. */
static sem_t punch_entered, punch_go;
static atomic_int hold_punch;

int fallocate(int fd, int mode, off_t offset, off_t len)
{
    if (atomic_exchange(&hold_punch, 0)) {
        sem_post(&punch_entered);
        sem_wait(&punch_go);
    }
    return (int)syscall(SYS_fallocate, fd, mode, offset, len);
}

struct full_append {
    struct sy_spool *s;
    enum sy_spool_rc rc;
};

static void *append_on_a_full_disk(void *arg)
{
    struct full_append *a = arg;
    uint64_t seq = 0;
    char err[256];
    a->rc = sy_spool_append(a->s, 1, "abc", 3, &seq, err, sizeof err);
    return NULL;
}

static void *truncate_below_1500(void *arg)
{
    struct full_append *a = arg;
    char err[256];
    a->rc = sy_spool_truncate_below(a->s, 1500, err, sizeof err);
    return NULL;
}

/* The appender punches on ENOSPC (below the last truncation) while the writer may truncate: a truncation
 * that comes while a punch reads the first segment waits for it, and the punch's result never lands in the
 * next segment's index entry (its first record would read as corrupt, the byte count drop twice). The
 * punch is held inside its fallocate while the writer truncates; then the truncation punches the next
 * segment's applied records itself (the disk is still full). */
static void test_a_punch_racing_a_truncation_keeps_the_index(void)
{
    char *dir = make_tmpdir();
    char next[512];
    seg_name(next, sizeof next, dir, 2001);
    struct sy_spool *s = NULL;
    if (!can_punch(dir) || access("/dev/full", W_OK) != 0) {
        fprintf(stderr, "test_a_punch_racing_a_truncation_keeps_the_index: no hole punching or /dev/full (skipped)\n");
        goto out;
    }
    char pay[100];
    memset(pay, 'x', sizeof pay);
    uint64_t seg_bytes = (REC_HDR + sizeof pay) * 1000, seq = 0;
    s = sy_spool_open(dir, 0, seg_bytes, errbuf, sizeof errbuf);
    CHECK(s != NULL);
    for (int i = 1; s != NULL && i <= 2000; i++)
        CHECK(sy_spool_append(s, 1, pay, sizeof pay, &seq, errbuf, sizeof errbuf) == SY_SPOOL_OK);
    sy_spool_close(s);
    uint64_t firsts[4];
    CHECK(count_segments(dir, firsts, 4) == 2 && firsts[0] == 1 && firsts[1] == 1001);
    CHECK(symlink("/dev/full", next) == 0);              /* the next append hits a full disk */
    s = sy_spool_open(dir, 0, seg_bytes, errbuf, sizeof errbuf);
    CHECK(s != NULL);
    if (s == NULL)
        goto out;
    CHECK(sy_spool_truncate_below(s, 500, errbuf, sizeof errbuf) == SY_SPOOL_OK);  /* before the disk filled */
    CHECK(sem_init(&punch_entered, 0, 0) == 0 && sem_init(&punch_go, 0, 0) == 0);
    atomic_store(&hold_punch, 1);
    struct full_append app = { .s = s, .rc = SY_SPOOL_OK }, wr = { .s = s, .rc = SY_SPOOL_ERROR };
    pthread_t appender, writer;
    bool appending = pthread_create(&appender, NULL, append_on_a_full_disk, &app) == 0;
    CHECK(appending);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 10;
    bool held = appending && sem_timedwait(&punch_entered, &until) == 0;   /* it punches segment 1 below 500 */
    CHECK(held);
    if (held) {
        bool writing = pthread_create(&writer, NULL, truncate_below_1500, &wr) == 0;  /* the writer drops it */
        CHECK(writing);
        usleep(200 * 1000);                              /* the truncation comes while the punch runs */
        sem_post(&punch_go);
        if (writing)
            pthread_join(writer, NULL);
    } else {
        atomic_store(&hold_punch, 0);
    }
    if (appending)
        pthread_join(appender, NULL);
    CHECK(app.rc == SY_SPOOL_NO_SPACE && wr.rc == SY_SPOOL_OK);
    /* segment 1 gone; the truncation's own punch (the disk is still full) freed segment 1001's records < 1500 */
    CHECK(sy_spool_first_seq(s) == 1500 && sy_spool_last_seq(s) == 2000);
    CHECK(sy_spool_bytes(s) < seg_bytes && sy_spool_bytes(s) >= (REC_HDR + sizeof pay) * 501);
    uint8_t type;
    const uint8_t *p;
    size_t len;
    CHECK(sy_spool_read(s, 1500, &type, &p, &len, 0, errbuf, sizeof errbuf) == SY_SPOOL_OK && len == sizeof pay);
    CHECK(sy_spool_read(s, 2000, &type, &p, &len, 0, errbuf, sizeof errbuf) == SY_SPOOL_OK && len == sizeof pay);
    sem_destroy(&punch_entered);
    sem_destroy(&punch_go);
out:
    sy_spool_close(s);
    unlink(next);
    rm_rf(dir);
    free(dir);
}

static void test_big_records(void)
{
    char *dir = make_tmpdir();
    size_t big = 3u << 20;  /* larger than the read-ahead buffer */
    uint8_t *p1 = malloc(big);
    for (size_t i = 0; i < big; i++)
        p1[i] = (uint8_t)(i * 7 + (i >> 12));
    struct sy_spool *s = sy_spool_open(dir, 0, 0, errbuf, sizeof errbuf);
    uint64_t seq;
    CHECK(s != NULL);
    if (s == NULL)
        goto out;
    CHECK(sy_spool_append(s, 9, "x", 1, &seq, errbuf, sizeof errbuf) == SY_SPOOL_OK && seq == 1);
    CHECK(sy_spool_append(s, 10, p1, big, &seq, errbuf, sizeof errbuf) == SY_SPOOL_OK && seq == 2);
    CHECK(sy_spool_append(s, 11, NULL, 0, &seq, errbuf, sizeof errbuf) == SY_SPOOL_OK && seq == 3);
    uint8_t type;
    const uint8_t *p;
    size_t len;
    for (int round = 0; round < 2; round++) {
        CHECK(sy_spool_read(s, 1, &type, &p, &len, 0, errbuf, sizeof errbuf) == SY_SPOOL_OK && type == 9 &&
              len == 1 && p[0] == 'x');
        CHECK(sy_spool_read(s, 2, &type, &p, &len, 0, errbuf, sizeof errbuf) == SY_SPOOL_OK && type == 10 &&
              len == big && memcmp(p, p1, big) == 0);
        CHECK(sy_spool_read(s, 3, &type, &p, &len, 0, errbuf, sizeof errbuf) == SY_SPOOL_OK && type == 11 &&
              len == 0);
    }
    CHECK(sy_spool_append(s, 1, p1, (size_t)SY_SPOOL_RECORD_MAX + 1, &seq, errbuf, sizeof errbuf) ==
          SY_SPOOL_ERROR);
    sy_spool_close(s);
    s = sy_spool_open(dir, 0, 0, errbuf, sizeof errbuf);
    CHECK(s != NULL && sy_spool_last_seq(s) == 3);
out:
    sy_spool_close(s);
    free(p1);
    rm_rf(dir);
    free(dir);
}

/* ---- threads ---- */

struct reader_arg {
    struct sy_spool *s;
    uint64_t from, n;     /* read from..n (from 0 = 1) */
    _Atomic uint64_t done; /* the last seq read correctly */
    int wait_ms;
    uint64_t got;         /* records read correctly */
    enum sy_spool_rc last_rc;
    double elapsed_ms;
};

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void *reader_main(void *p)
{
    struct reader_arg *a = p;
    char err[256];
    double t0 = now_ms();
    for (uint64_t seq = a->from ? a->from : 1; seq <= a->n; seq++) {
        uint8_t want[128], type;
        const uint8_t *pl;
        size_t len, wlen = payload_for(seq, want);
        a->last_rc = sy_spool_read(a->s, seq, &type, &pl, &len, a->wait_ms, err, sizeof err);
        if (a->last_rc != SY_SPOOL_OK)
            break;
        if (type == (uint8_t)(seq & 0xff) && len == wlen && (len == 0 || memcmp(pl, want, len) == 0))
            a->got++;
        atomic_store(&a->done, seq);
    }
    a->elapsed_ms = now_ms() - t0;
    return NULL;
}

static void sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

static void test_blocking_reader(void)
{
    char *dir = make_tmpdir();
    struct sy_spool *s = sy_spool_open(dir, 0, 1000, errbuf, sizeof errbuf);
    CHECK(s != NULL);
    if (s == NULL)
        goto out;

    /* A reader waiting up to 10 s per record while this thread appends slowly, then fast. */
    struct reader_arg a = { .s = s, .n = 300, .wait_ms = 10000 };
    pthread_t t;
    CHECK(pthread_create(&t, NULL, reader_main, &a) == 0);
    for (uint64_t i = 1; i <= 300; i++) {
        if (i <= 10)
            sleep_ms(5);
        CHECK(append_n(s, i, i));
    }
    pthread_join(t, NULL);
    CHECK(a.last_rc == SY_SPOOL_OK && a.got == 300);

    /* A timed wait with nothing appended: EMPTY after about wait_ms. */
    uint8_t type;
    const uint8_t *p;
    size_t len;
    double t0 = now_ms();
    CHECK(sy_spool_read(s, 301, &type, &p, &len, 100, errbuf, sizeof errbuf) == SY_SPOOL_EMPTY);
    double waited = now_ms() - t0;
    CHECK(waited >= 95 && waited < 5000);

    /* wake: a reader blocked for up to 20 s comes back at once with EMPTY. */
    struct reader_arg b = { .s = s, .n = 301, .wait_ms = 20000 };
    /* it reads 1..300 instantly then blocks on 301 */
    CHECK(pthread_create(&t, NULL, reader_main, &b) == 0);
    sleep_ms(100);
    sy_spool_wake(s);
    pthread_join(t, NULL);
    CHECK(b.last_rc == SY_SPOOL_EMPTY && b.got == 300 && b.elapsed_ms < 10000);

    /* A wake with no reader waiting is kept for the next read that would wait (no lost wake-up);
     * a read that finds its record returns it regardless. */
    sy_spool_wake(s);
    CHECK(read_is(s, 300));
    t0 = now_ms();
    CHECK(sy_spool_read(s, 301, &type, &p, &len, 20000, errbuf, sizeof errbuf) == SY_SPOOL_EMPTY);
    CHECK(now_ms() - t0 < 5000);

    /* Appends, truncation and the accessors from three threads at once (for TSan/ASan). */
    struct reader_arg c = { .s = s, .from = 301, .n = 3300, .wait_ms = 10000 };
    CHECK(pthread_create(&t, NULL, reader_main, &c) == 0);
    for (uint64_t i = 301; i <= 3300; i++) {
        CHECK(append_n(s, i, i));
        if (i % 50 == 0) {
            uint64_t lo = sy_spool_first_seq(s);
            CHECK(sy_spool_bytes(s) > 0 && lo <= i && sy_spool_last_seq(s) == i);
            /* the writer's checkpoint: what the reader has read */
            CHECK(sy_spool_truncate_below(s, atomic_load(&c.done), errbuf, sizeof errbuf) == SY_SPOOL_OK);
        }
    }
    pthread_join(t, NULL);
    CHECK(c.last_rc == SY_SPOOL_OK && c.got == 3000);
    CHECK(sy_spool_truncate_below(s, 3300, errbuf, sizeof errbuf) == SY_SPOOL_OK);
    CHECK(sy_spool_bytes(s) == disk_bytes(dir) && sy_spool_first_seq(s) > 3000);
    sy_spool_close(s);
out:
    rm_rf(dir);
    free(dir);
}

/* ---- sy_spool_find_last, sy_spool_bytes_kept_from ---- */

static bool type_is(uint8_t type, void *arg)
{
    return type == *(const uint8_t *)arg;
}

static bool type_mod10(uint8_t type, void *arg)
{
    return type % 10 == 0;
}

/* find_last returns seq with its type and payload (a copy the caller frees). */
static bool found_is(struct sy_spool *s, bool (*want)(uint8_t, void *), void *arg, uint64_t seq)
{
    uint64_t got = 0;
    uint8_t type = 0, *p = NULL, buf[128];
    size_t len = 0, wlen = payload_for(seq, buf);
    enum sy_spool_rc rc = sy_spool_find_last(s, want, arg, &got, &type, &p, &len, errbuf, sizeof errbuf);
    bool ok = rc == SY_SPOOL_OK && got == seq && type == (uint8_t)(seq & 0xff) && len == wlen &&
              (len == 0 || memcmp(p, buf, len) == 0) && p[len] == '\0';
    if (!ok)
        fprintf(stderr, "find_last: rc %d seq %" PRIu64 " (want %" PRIu64 "): %s\n", rc, got, seq, errbuf);
    free(p);
    return ok;
}

static void test_find_last(void)
{
    char *dir = make_tmpdir();
    struct sy_spool *s = sy_spool_open(dir, 0, 300, errbuf, sizeof errbuf);
    uint64_t seq = 0, firsts[100];
    uint8_t type = 0, *p = NULL, seven = 7, one = 1;
    size_t len = 0;
    CHECK(s != NULL);
    if (s == NULL)
        goto out;
    CHECK(sy_spool_find_last(s, type_mod10, NULL, &seq, &type, &p, &len, errbuf, sizeof errbuf) == SY_SPOOL_EMPTY);
    CHECK(sy_spool_bytes_kept_from(s, 0) == 0);
    CHECK(append_n(s, 1, 65));
    CHECK(found_is(s, type_mod10, NULL, 60));   /* in the newest segments */
    CHECK(found_is(s, type_is, &seven, 7));     /* found in an old segment: the scan goes back */
    uint8_t none = 200;
    CHECK(sy_spool_find_last(s, type_is, &none, &seq, &type, &p, &len, errbuf, sizeof errbuf) == SY_SPOOL_EMPTY);

    /* Bytes kept: everything from 0, the newest segment alone from the last seq. */
    int nseg = count_segments(dir, firsts, 100);
    char path[600];
    CHECK(nseg >= 4);
    seg_name(path, sizeof path, dir, firsts[nseg - 1]);
    CHECK(sy_spool_bytes_kept_from(s, 0) == sy_spool_bytes(s));
    CHECK(sy_spool_bytes_kept_from(s, 65) == (uint64_t)file_size(path));
    uint64_t kept = sy_spool_bytes_kept_from(s, firsts[2] + 1);
    CHECK(kept < sy_spool_bytes(s));
    CHECK(sy_spool_truncate_below(s, firsts[2] + 1, errbuf, sizeof errbuf) == SY_SPOOL_OK);
    CHECK(sy_spool_bytes(s) == kept && sy_spool_bytes_kept_from(s, 0) == kept);

    /* Corruption in an older segment: the newest one answers without reading it; a search that has to
     * read it reports the CRC failure (never an older, wrong answer). */
    seg_name(path, sizeof path, dir, firsts[2]);
    int fd = open(path, O_RDWR);
    uint8_t x;
    CHECK(fd >= 0 && pread(fd, &x, 1, REC_HDR) == 1);
    x ^= 0x5a;
    CHECK(pwrite(fd, &x, 1, REC_HDR) == 1);
    close(fd);
    CHECK(found_is(s, type_mod10, NULL, 60));
    one = (uint8_t)(firsts[2] & 0xff);
    CHECK(sy_spool_find_last(s, type_is, &one, &seq, &type, &p, &len, errbuf, sizeof errbuf) == SY_SPOOL_ERROR);
    CHECK(strstr(errbuf, "CRC") != NULL && strstr(errbuf, path) != NULL);
    x ^= 0x5a;
    fd = open(path, O_RDWR);
    CHECK(fd >= 0 && pwrite(fd, &x, 1, REC_HDR) == 1);
    close(fd);

    /* A torn tail after a crash: recovery cuts it, find_last sees the last whole record. */
    CHECK(append_n(s, 66, 70) && sy_spool_sync(s, errbuf, sizeof errbuf) == SY_SPOOL_OK);
    sy_spool_close(s);
    nseg = count_segments(dir, firsts, 100);
    seg_name(path, sizeof path, dir, firsts[nseg - 1]);
    off_t size = file_size(path);
    CHECK(size > 10 && truncate(path, size - 3) == 0);  /* record 70 torn */
    s = sy_spool_open(dir, 0, 300, errbuf, sizeof errbuf);
    CHECK(s != NULL && sy_spool_last_seq(s) == 69);
    if (s == NULL)
        goto out;
    CHECK(found_is(s, type_mod10, NULL, 60));
    uint8_t t69 = 69;
    CHECK(found_is(s, type_is, &t69, 69));
    CHECK(append_n(s, 70, 70) && found_is(s, type_mod10, NULL, 70));
out:
    sy_spool_close(s);
    rm_rf(dir);
    free(dir);
}

/* ---- sy_spool_scan ---- */

struct scan_seen {
    uint64_t next;       /* the seq expected next */
    uint64_t stop_at;    /* the callback stops after this one (0 = never) */
    bool ok;
};

static int scan_check(void *arg, uint64_t seq, uint8_t type, const uint8_t *payload, size_t len)
{
    struct scan_seen *ss = arg;
    uint8_t buf[128];
    size_t wlen = payload_for(seq, buf);
    if (seq != ss->next || type != (uint8_t)(seq & 0xff) || len != wlen || (len && memcmp(payload, buf, len) != 0))
        ss->ok = false;
    ss->next = seq + 1;
    return seq == ss->stop_at;
}

/* A range across segments in order, a callback that stops early (the next seq to ask for), a range that
 * begins below what truncation left (an error naming the record), and a range past the end. */
static void test_scan(void)
{
    char *dir = make_tmpdir();
    struct sy_spool *s = sy_spool_open(dir, 0, 300, errbuf, sizeof errbuf);
    CHECK(s != NULL && append_n(s, 1, 65));
    if (s == NULL)
        goto out;
    struct scan_seen ss = { .next = 3, .ok = true };
    uint64_t next = 0;
    CHECK(sy_spool_scan(s, 3, 61, scan_check, &ss, &next, errbuf, sizeof errbuf) == SY_SPOOL_OK);
    CHECK(ss.ok && ss.next == 62 && next == 62);
    ss = (struct scan_seen){ .next = 10, .stop_at = 20, .ok = true };
    CHECK(sy_spool_scan(s, 10, 65, scan_check, &ss, &next, errbuf, sizeof errbuf) == SY_SPOOL_OK);
    CHECK(ss.ok && next == 21);
    ss = (struct scan_seen){ .next = 21, .ok = true };
    CHECK(sy_spool_scan(s, next, 65, scan_check, &ss, &next, errbuf, sizeof errbuf) == SY_SPOOL_OK);
    CHECK(ss.ok && next == 66);
    CHECK(sy_spool_scan(s, 5, 4, scan_check, &ss, &next, errbuf, sizeof errbuf) == SY_SPOOL_OK && next == 5);
    ss = (struct scan_seen){ .next = 60, .ok = true };
    CHECK(sy_spool_scan(s, 60, 70, scan_check, &ss, &next, errbuf, sizeof errbuf) == SY_SPOOL_ERROR);
    CHECK(strstr(errbuf, "record 66 is not on disk") != NULL);
    CHECK(sy_spool_truncate_below(s, 30, errbuf, sizeof errbuf) == SY_SPOOL_OK && sy_spool_first_seq(s) > 1);
    uint64_t first = sy_spool_first_seq(s);
    ss = (struct scan_seen){ .next = 1, .ok = true };
    CHECK(sy_spool_scan(s, 1, 40, scan_check, &ss, &next, errbuf, sizeof errbuf) == SY_SPOOL_ERROR);
    CHECK(strstr(errbuf, "record 1 is not on disk") != NULL);
    ss = (struct scan_seen){ .next = first, .ok = true };
    CHECK(sy_spool_scan(s, first, 40, scan_check, &ss, &next, errbuf, sizeof errbuf) == SY_SPOOL_OK && ss.ok);
out:
    sy_spool_close(s);
    rm_rf(dir);
    free(dir);
}

int main(void)
{
    test_roundtrip_segments();
    test_torn_tail();
    test_corruption();
    test_full();
    test_enospc();
    test_full_disk_punches_the_applied_prefix();
    test_a_punch_racing_a_truncation_keeps_the_index();
    test_big_records();
    test_blocking_reader();
    test_find_last();
    test_scan();
    return CHECK_DONE();
}
