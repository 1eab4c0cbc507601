/* An instance's spool on disk (core/spool.h): segment files of CRC'd records, one appender thread and
 * one reader thread.
 *
 *   <dir>/<first seq, 20 digits>.spool    record = u32 payload_len | u32 crc32(seq|type|payload) |
 *                                                  u64 seq | u8 type | payload     (little-endian)
 *
 * The mutex guards the segment index, last_seq, the byte count and the wake flag; the file I/O of
 * appends and reads runs outside it (each side owns its own fd and buffer). An append publishes its
 * record (last_seq, bytes) only after write() returned, so the reader never sees a partial record.
 * Segments are created lazily by the appender; the newest segment is never deleted, so its name keeps
 * the numbering even when it is empty. When the cap is reached, the appender starts a new (empty)
 * segment so that everything written so far becomes droppable by truncate_below.
 *
 * A full disk (ENOSPC) can hold a transaction cut in two: its first records in a segment the writer cannot
 * drop (it applies none of them before the commit record, which cannot be written). So while the disk is
 * full, truncate_below also frees the applied prefix of the first segment: whole blocks from its start up
 * to the first record still needed are punched out (fallocate PUNCH_HOLE, the file keeps its size); an
 * append that meets ENOSPC punches below the last truncation itself (the writer may have truncated all it
 * applied before the disk filled, and then waits for records that cannot come). A
 * first segment whose first block reads as zeros is such a one: open finds its first record again after the
 * hole (a record with a good CRC and a plausible sequence number, within a block of the first byte that is
 * not zero) and starts there — a few applied records kept in the hole's last block may come first. */
#include "core/spool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "core/crc32.h"
#include "core/state_file.h"

#define REC_HDR_LEN 17                      /* len 4 | crc 4 | seq 8 | type 1 */
#define SEG_NAME_DIGITS 20
#define SEG_SUFFIX ".spool"
#define DEFAULT_SEGMENT_BYTES (64ull << 20)
#define SCAN_BUF_BYTES (1u << 20)           /* read-ahead of the open scan and the reader */
#define PUNCH_BLOCK 4096u                   /* holes are punched in whole blocks of this size */

struct seg {
    uint64_t first;  /* seq of its first record = its name */
    uint64_t bytes;  /* the end of its valid records (the newest one grows with appends) */
    uint64_t base_off; /* where its first record still on disk starts (> 0: the applied prefix before it */
    uint64_t base_seq; /*   was punched out, first segment only), and that record's seq */
};

/* Buffered reads over one segment file: a window [buf_off, buf_off + buf_len) of it. */
struct seg_rd {
    int fd;           /* owned; -1 = none */
    uint64_t first;   /* the segment's first seq (identifies the file) */
    uint8_t *buf;     /* owned */
    size_t cap;
    uint64_t buf_off; /* file offset of buf[0] */
    size_t buf_len;
};

struct sy_spool {
    char *dir;                 /* owned */
    uint64_t max_bytes;        /* 0 = no cap */
    uint64_t segment_bytes;    /* roll to a new segment once the current one holds this much */

    pthread_mutex_t punch_mu;  /* held while segment 0's applied prefix is punched out, and by whoever reads
                                  it meanwhile (the reader, find_last); taken before mu */
    int no_space;              /* __atomic: the last append hit a full disk */
    int punch_unsupported;     /* __atomic: the file system cannot punch holes */
    pthread_mutex_t mu;        /* guards everything down to `wake_pending` */
    pthread_cond_t appended;   /* signalled by append and wake */
    struct seg *segs;          /* owned: ascending, contiguous seqs; the last one is appended to */
    size_t n_segs, cap_segs;
    uint64_t last_seq;         /* of the last appended record; 0 = none ever */
    uint64_t total_bytes;      /* sum of segs[].bytes */
    uint64_t truncated_below;  /* the highest seq truncate_below was given: the records below it are applied */
    bool wake_pending;         /* sy_spool_wake() not yet seen by a read */

    /* Appender-only state (no lock: one appender thread). */
    int wfd;                   /* the newest segment, O_APPEND; -1 = no segment yet */
    uint64_t wsize;            /* its size on disk */
    bool dir_dirty;            /* a segment was created since the directory was last fsynced */
    bool broken;               /* a failed append could not be undone: every later append fails */

    /* Reader-only state (no lock: one reader thread). */
    struct seg_rd rd;
    uint64_t rd_off;           /* offset in rd's segment of the record rd_next */
    uint64_t rd_next;          /* seq expected at rd_off */
};

/* ---- little helpers ---- */

static void put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* CRC over seq | type | payload: the record bytes from offset 8 on, n = 9 + payload_len. */
static uint32_t record_crc(const uint8_t *seq_type, const void *payload, size_t len)
{
    return sy_crc32(sy_crc32(0, seq_type, 9), payload, len);
}

static void seg_path(const struct sy_spool *s, uint64_t first, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s/%020" PRIu64 SEG_SUFFIX, s->dir, first);
}

static int fsync_path(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    int saved = errno;
    close(fd);
    errno = saved;
    return rc;
}

/* ---- buffered segment reads ---- */

static void seg_rd_init(struct seg_rd *r)
{
    memset(r, 0, sizeof *r);
    r->fd = -1;
}

static void seg_rd_close(struct seg_rd *r)
{
    if (r->fd >= 0)
        close(r->fd);
    r->fd = -1;
    r->buf_off = 0;
    r->buf_len = 0;
}

static void seg_rd_fini(struct seg_rd *r)
{
    seg_rd_close(r);
    free(r->buf);
    r->buf = NULL;
    r->cap = 0;
}

static int seg_rd_open(struct seg_rd *r, const char *path, uint64_t first)
{
    seg_rd_close(r);
    r->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (r->fd < 0)
        return -1;
    r->first = first;
    return 0;
}

/* n bytes at file offset off, never reading at or past `limit` (the segment's known size).
 * NULL with errno = 0 when they are not there (off + n > limit or the file is shorter), errno set
 * on an I/O error or out of memory. The pointer is valid until the next call. */
static const uint8_t *seg_rd_get(struct seg_rd *r, uint64_t off, size_t n, uint64_t limit)
{
    if (off > limit || n > limit - off) {
        errno = 0;
        return NULL;
    }
    if (off >= r->buf_off && off + n <= r->buf_off + r->buf_len)
        return r->buf + (off - r->buf_off);
    /* Keep what we have of [off, ...), then read on. */
    if (off >= r->buf_off && off < r->buf_off + r->buf_len) {
        size_t keep = (size_t)(r->buf_off + r->buf_len - off);
        memmove(r->buf, r->buf + (off - r->buf_off), keep);
        r->buf_len = keep;
    } else {
        r->buf_len = 0;
    }
    r->buf_off = off;
    size_t want = n > SCAN_BUF_BYTES ? n : SCAN_BUF_BYTES;
    if (r->cap < want || (r->cap > 4 * (size_t)SCAN_BUF_BYTES && want <= SCAN_BUF_BYTES)) {
        /* grow for a big record, or shrink back after one */
        uint8_t *nb = realloc(r->buf, want > r->buf_len ? want : r->buf_len);
        if (nb == NULL) {
            errno = ENOMEM;
            return NULL;
        }
        r->buf = nb;
        r->cap = want > r->buf_len ? want : r->buf_len;
    }
    while (r->buf_len < n) {
        uint64_t at = r->buf_off + r->buf_len;
        size_t room = r->cap - r->buf_len;
        if (room > limit - at)
            room = (size_t)(limit - at);
        ssize_t got = pread(r->fd, r->buf + r->buf_len, room, (off_t)at);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            return NULL;
        if (got == 0) {
            errno = 0;  /* the file is shorter than we were told */
            return NULL;
        }
        r->buf_len += (size_t)got;
    }
    return r->buf;
}

/* ---- open: find, verify and recover segments ---- */

static bool parse_seg_name(const char *name, uint64_t *first)
{
    size_t len = strlen(name);
    if (len != SEG_NAME_DIGITS + strlen(SEG_SUFFIX) || strcmp(name + SEG_NAME_DIGITS, SEG_SUFFIX) != 0)
        return false;
    uint64_t v = 0;
    for (int i = 0; i < SEG_NAME_DIGITS; i++) {
        if (name[i] < '0' || name[i] > '9')
            return false;
        unsigned d = (unsigned)(name[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *first = v;
    return v > 0;
}

static int cmp_seg(const void *a, const void *b)
{
    const struct seg *x = a, *y = b;
    return x->first < y->first ? -1 : x->first > y->first;
}

static int reserve_segs(struct sy_spool *s, size_t n)
{
    if (n <= s->cap_segs)
        return 0;
    size_t cap = s->cap_segs ? s->cap_segs : 16;
    while (cap < n)
        cap *= 2;
    struct seg *ns = realloc(s->segs, cap * sizeof *ns);
    if (ns == NULL)
        return -1;
    s->segs = ns;
    s->cap_segs = cap;
    return 0;
}

static uint64_t seg_disk_bytes(const struct seg *sg)
{
    return sg->bytes - sg->base_off;
}

static int push_seg(struct sy_spool *s, uint64_t first, uint64_t bytes)
{
    if (reserve_segs(s, s->n_segs + 1) != 0)
        return -1;
    s->segs[s->n_segs] = (struct seg){ .first = first, .bytes = bytes, .base_seq = first };
    s->n_segs++;
    return 0;
}

static int list_segments(struct sy_spool *s, char *err, size_t errlen)
{
    DIR *d = opendir(s->dir);
    if (d == NULL) {
        snprintf(err, errlen, "spool %s: %s", s->dir, strerror(errno));
        return -1;
    }
    struct dirent *e;
    uint64_t first;
    errno = 0;
    while ((e = readdir(d)) != NULL) {
        if (!parse_seg_name(e->d_name, &first))
            continue;  /* not ours (editor files, a future format): left alone */
        if (push_seg(s, first, 0) != 0) {
            closedir(d);
            snprintf(err, errlen, "spool %s: out of memory", s->dir);
            return -1;
        }
    }
    closedir(d);
    if (s->n_segs > 1)
        qsort(s->segs, s->n_segs, sizeof *s->segs, cmp_seg);
    return 0;
}

static bool all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != 0)
            return false;
    return true;
}

/* Is everything from off to the end of the file zero? (A crash can leave the file extended over
 * space whose data never reached the disk; that reads back as zeros.) */
static int tail_is_zero(struct seg_rd *r, uint64_t off, uint64_t size, bool *zero)
{
    *zero = true;
    while (off < size && *zero) {
        size_t n = size - off > SCAN_BUF_BYTES ? SCAN_BUF_BYTES : (size_t)(size - off);
        const uint8_t *p = seg_rd_get(r, off, n, size);
        if (p == NULL)
            return -1;
        *zero = all_zero(p, n);
        off += n;
    }
    return 0;
}

/* Whether record `seq` (>= first, within what a file of `size` can hold) starts at off with a good CRC. */
static bool record_at(struct seg_rd *r, uint64_t off, uint64_t size, uint64_t first)
{
    const uint8_t *h = seg_rd_get(r, off, REC_HDR_LEN, size);
    if (h == NULL)
        return false;
    uint32_t len = get_le32(h);
    uint64_t seq = get_le64(h + 8);
    if (len > SY_SPOOL_RECORD_MAX || size - off - REC_HDR_LEN < len || seq < first || seq - first > size / REC_HDR_LEN)
        return false;
    const uint8_t *rec = seg_rd_get(r, off, REC_HDR_LEN + (size_t)len, size);
    return rec != NULL && record_crc(rec + 8, rec + REC_HDR_LEN, len) == get_le32(rec + 4);
}

/* The first segment's first block reads as zeros: its applied prefix was punched out (or it is corrupt).
 * Finds its first record after the hole: the hole ends on a block boundary at or before it, and the record
 * has a byte that is not zero within its header, so it starts within a block (plus a header) of the first
 * byte that is not zero. 1 with *off and *seq, 0 none found (corrupt), -1 read error (errno). */
static int find_base(struct seg_rd *r, uint64_t size, uint64_t first, uint64_t *off, uint64_t *seq)
{
    uint64_t z = 0;
    for (bool found = false; !found && z < size;) {
        size_t n = size - z > SCAN_BUF_BYTES ? SCAN_BUF_BYTES : (size_t)(size - z);
        const uint8_t *p = seg_rd_get(r, z, n, size);
        if (p == NULL)
            return errno != 0 ? -1 : 0;
        size_t i = 0;
        while (i < n && p[i] == 0)
            i++;
        found = i < n;
        z += i;
    }
    uint64_t from = z > REC_HDR_LEN ? z - REC_HDR_LEN : 0, to = z + PUNCH_BLOCK + REC_HDR_LEN;
    for (uint64_t o = from; o <= to && o + REC_HDR_LEN <= size; o++) {
        errno = 0;
        if (record_at(r, o, size, first)) {
            *off = o;
            *seq = get_le64(seg_rd_get(r, o, REC_HDR_LEN, size) + 8);
            return 1;
        }
        if (errno != 0)
            return -1;
    }
    return 0;
}

/* Verifies segment i record by record. Sets *valid_end to the offset after its last good record and
 * *next to the seq that follows it. In the newest segment, a torn record at the end (short, or a bad
 * CRC on a record that ends exactly at the end of the file or is followed by zeros only) ends the
 * valid part; anything else is corruption. */
static int scan_segment(struct sy_spool *s, size_t i, struct seg_rd *r, uint64_t *valid_end, uint64_t *next,
                        char *err, size_t errlen)
{
    char path[PATH_MAX];
    bool last = i + 1 == s->n_segs;
    uint64_t first = s->segs[i].first;
    seg_path(s, first, path, sizeof path);
    struct stat st;
    if (seg_rd_open(r, path, first) != 0 || fstat(r->fd, &st) != 0) {
        snprintf(err, errlen, "spool %s: %s", path, strerror(errno));
        return -1;
    }
    uint64_t size = (uint64_t)st.st_size, off = 0, seq = first;
    const uint8_t *head = i == 0 && size >= PUNCH_BLOCK ? seg_rd_get(r, 0, PUNCH_BLOCK, size) : NULL;
    if (head == NULL && errno != 0 && i == 0 && size >= PUNCH_BLOCK)
        goto io_error;
    if (head != NULL && all_zero(head, PUNCH_BLOCK)) {     /* its applied prefix punched out */
        int found = find_base(r, size, first, &off, &seq);
        if (found < 0)
            goto io_error;
        if (found == 0) {
            snprintf(err, errlen, "spool %s: its start reads as zeros and no record follows (corrupt)", path);
            return -1;
        }
        s->segs[i].base_off = off;
        s->segs[i].base_seq = seq;
    }
    while (off < size) {
        const char *why = NULL;
        const uint8_t *h = seg_rd_get(r, off, REC_HDR_LEN, size);
        uint32_t len = h ? get_le32(h) : 0;
        if (h == NULL && errno != 0)
            goto io_error;
        if (h == NULL || len > SY_SPOOL_RECORD_MAX || size - off - REC_HDR_LEN < len) {
            if (last)
                break;  /* torn: the record never reached the disk whole */
            why = h == NULL ? "truncated record header" : "truncated record";
        } else {
            const uint8_t *rec = seg_rd_get(r, off, REC_HDR_LEN + (size_t)len, size);
            if (rec == NULL && errno != 0)
                goto io_error;
            if (rec == NULL) {
                why = "file shrank while scanning";
            } else if (record_crc(rec + 8, rec + REC_HDR_LEN, len) != get_le32(rec + 4)) {
                uint64_t end = off + REC_HDR_LEN + len;
                bool zero = end == size;
                if (last && !zero && tail_is_zero(r, end, size, &zero) != 0)
                    goto io_error;
                if (last && zero)
                    break;  /* torn: the last write, or a file extended with zeros */
                why = "CRC mismatch";
            } else if (get_le64(rec + 8) != seq) {
                snprintf(err, errlen, "spool %s offset %" PRIu64 ": sequence %" PRIu64 ", expected %" PRIu64
                         " (corrupt)", path, off, get_le64(rec + 8), seq);
                return -1;
            }
        }
        if (why != NULL) {
            snprintf(err, errlen, "spool %s offset %" PRIu64 ": %s (corrupt)", path, off, why);
            return -1;
        }
        off += REC_HDR_LEN + (uint64_t)len;
        seq++;
    }
    *valid_end = off;
    *next = seq;
    return 0;
io_error:
    snprintf(err, errlen, "spool %s offset %" PRIu64 ": read: %s", path, off, strerror(errno));
    return -1;
}

/* Scans every segment, truncates a torn tail, opens the newest for appending. */
static int recover(struct sy_spool *s, char *err, size_t errlen)
{
    if (list_segments(s, err, errlen) != 0)
        return -1;
    struct seg_rd r;
    seg_rd_init(&r);
    uint64_t expect = 0, end = 0;
    for (size_t i = 0; i < s->n_segs; i++) {
        if (i > 0 && s->segs[i].first != expect) {
            char path[PATH_MAX];
            seg_path(s, s->segs[i].first, path, sizeof path);
            snprintf(err, errlen, "spool %s: first sequence %" PRIu64 ", expected %" PRIu64 " (gap)", path,
                     s->segs[i].first, expect);
            goto fail;
        }
        if (scan_segment(s, i, &r, &end, &expect, err, errlen) != 0)
            goto fail;
        s->segs[i].bytes = end;
        s->total_bytes += seg_disk_bytes(&s->segs[i]);
    }
    seg_rd_fini(&r);
    if (s->n_segs == 0)
        return 0;

    const struct seg *lastseg = &s->segs[s->n_segs - 1];
    char path[PATH_MAX];
    seg_path(s, lastseg->first, path, sizeof path);
    s->last_seq = expect - 1;
    s->wfd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
    struct stat st;
    if (s->wfd < 0 || fstat(s->wfd, &st) != 0) {
        snprintf(err, errlen, "spool %s: %s", path, strerror(errno));
        return -1;
    }
    if ((uint64_t)st.st_size != end) {  /* a torn tail: cut it off for good before appending after it */
        if (ftruncate(s->wfd, (off_t)end) != 0 || fdatasync(s->wfd) != 0) {
            snprintf(err, errlen, "spool %s: truncating torn tail at offset %" PRIu64 ": %s", path, end,
                     strerror(errno));
            return -1;
        }
    }
    s->wsize = end;
    return 0;
fail:
    seg_rd_fini(&r);
    return -1;
}

struct sy_spool *sy_spool_open(const char *dir, uint64_t max_bytes, uint64_t segment_bytes, char *err,
                               size_t errlen)
{
    if (strlen(dir) + 1 + SEG_NAME_DIGITS + strlen(SEG_SUFFIX) >= PATH_MAX) {
        snprintf(err, errlen, "spool %s: path too long", dir);
        return NULL;
    }
    if (sy_mkdirs(dir, err, errlen) != 0)
        return NULL;
    struct sy_spool *s = calloc(1, sizeof *s);
    if (s == NULL || (s->dir = strdup(dir)) == NULL) {
        free(s);
        snprintf(err, errlen, "spool %s: out of memory", dir);
        return NULL;
    }
    s->max_bytes = max_bytes;
    s->segment_bytes = segment_bytes ? segment_bytes : DEFAULT_SEGMENT_BYTES;
    s->wfd = -1;
    seg_rd_init(&s->rd);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->appended, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&s->mu, NULL);
    pthread_mutex_init(&s->punch_mu, NULL);
    if (recover(s, err, errlen) != 0) {
        sy_spool_close(s);
        return NULL;
    }
    return s;
}

void sy_spool_close(struct sy_spool *s)
{
    if (s == NULL)
        return;
    if (s->wfd >= 0)
        close(s->wfd);
    seg_rd_fini(&s->rd);
    pthread_cond_destroy(&s->appended);
    pthread_mutex_destroy(&s->mu);
    pthread_mutex_destroy(&s->punch_mu);
    free(s->segs);
    free(s->dir);
    free(s);
}

/* ---- appending ---- */

/* Starts segment `first` (empty) and makes it the one appended to. The previous one is made durable
 * first: sync only covers the newest segment. */
/* 0, -1 with err, or -2 with err when the disk is full (ENOSPC, EDQUOT: room may come back). */
static int start_segment(struct sy_spool *s, uint64_t first, char *err, size_t errlen)
{
    char path[PATH_MAX];
    seg_path(s, first, path, sizeof path);
    if (s->wfd >= 0 && fdatasync(s->wfd) != 0) {
        int e = errno;
        snprintf(err, errlen, "spool %s: fdatasync before starting %s: %s", s->dir, path, strerror(e));
        return e == ENOSPC || e == EDQUOT ? -2 : -1;
    }
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        int e = errno;
        snprintf(err, errlen, "spool %s: create: %s", path, strerror(e));
        return e == ENOSPC || e == EDQUOT ? -2 : -1;
    }
    pthread_mutex_lock(&s->mu);
    int rc = push_seg(s, first, 0);
    pthread_mutex_unlock(&s->mu);
    if (rc != 0) {
        close(fd);
        unlink(path);
        snprintf(err, errlen, "spool %s: out of memory", s->dir);
        return -1;
    }
    if (s->wfd >= 0)
        close(s->wfd);
    s->wfd = fd;
    s->wsize = 0;
    s->dir_dirty = true;
    return 0;
}

/* Undoes a partial append. */
static int undo_append(struct sy_spool *s)
{
    while (ftruncate(s->wfd, (off_t)s->wsize) != 0) {
        if (errno != EINTR) {
            s->broken = true;
            return -1;
        }
    }
    return 0;
}

static enum sy_spool_rc append_once(struct sy_spool *s, uint8_t type, const void *payload, size_t len,
                                    uint64_t *seq_out, char *err, size_t errlen);
static void punch_applied(struct sy_spool *s, uint64_t seq);

enum sy_spool_rc sy_spool_append(struct sy_spool *s, uint8_t type, const void *payload, size_t len,
                                 uint64_t *seq_out, char *err, size_t errlen)
{
    enum sy_spool_rc rc = append_once(s, type, payload, len, seq_out, err, errlen);
    if (rc == SY_SPOOL_OK || rc == SY_SPOOL_NO_SPACE)  /* truncate_below punches while the disk is full */
        __atomic_store_n(&s->no_space, rc == SY_SPOOL_NO_SPACE, __ATOMIC_RELEASE);
    if (rc == SY_SPOOL_NO_SPACE) {
        /* The writer may have truncated below all it applied before the disk filled, and now waits for
         * records that cannot be appended: its next truncate_below would never come. Punch here. */
        pthread_mutex_lock(&s->mu);
        uint64_t applied_below = s->truncated_below;
        pthread_mutex_unlock(&s->mu);
        punch_applied(s, applied_below);
    }
    return rc;
}

static enum sy_spool_rc append_once(struct sy_spool *s, uint8_t type, const void *payload, size_t len,
                                    uint64_t *seq_out, char *err, size_t errlen)
{
    if (s->broken) {
        snprintf(err, errlen, "spool %s: unusable after a failed append could not be undone", s->dir);
        return SY_SPOOL_ERROR;
    }
    if (len > SY_SPOOL_RECORD_MAX) {
        snprintf(err, errlen, "spool %s: record of %zu bytes exceeds the %u byte limit", s->dir, len,
                 SY_SPOOL_RECORD_MAX);
        return SY_SPOOL_ERROR;
    }
    uint64_t rec_len = REC_HDR_LEN + (uint64_t)len;
    if (s->max_bytes != 0 && rec_len > s->max_bytes) {
        snprintf(err, errlen, "spool %s: record of %" PRIu64 " bytes can never fit spool_max_bytes %" PRIu64,
                 s->dir, rec_len, s->max_bytes);
        return SY_SPOOL_ERROR;
    }
    pthread_mutex_lock(&s->mu);
    uint64_t seq = s->last_seq + 1, total = s->total_bytes;
    pthread_mutex_unlock(&s->mu);

    if (s->wfd < 0) {
        int rc = start_segment(s, seq, err, errlen);
        if (rc != 0)
            return rc == -2 ? SY_SPOOL_NO_SPACE : SY_SPOOL_ERROR;
    }
    if (s->max_bytes != 0 && total + rec_len > s->max_bytes) {
        /* Full. Move on to a new segment so that all that is written can be dropped once the writer
         * has applied it; best effort (the disk may be full too). */
        if (s->wsize > 0)
            (void)start_segment(s, seq, err, errlen);
        snprintf(err, errlen, "spool %s: spool_max_bytes %" PRIu64 " reached (%" PRIu64 " on disk)", s->dir,
                 s->max_bytes, total);
        return SY_SPOOL_FULL;
    }
    if (s->wsize >= s->segment_bytes) {
        int rc = start_segment(s, seq, err, errlen);
        if (rc != 0)
            return rc == -2 ? SY_SPOOL_NO_SPACE : SY_SPOOL_ERROR;
    }

    uint8_t hdr[REC_HDR_LEN];
    put_le32(hdr, (uint32_t)len);
    put_le64(hdr + 8, seq);
    hdr[16] = type;
    put_le32(hdr + 4, record_crc(hdr + 8, payload, len));
    struct iovec iov[2] = { { hdr, sizeof hdr }, { (void *)payload, len } };
    int iovcnt = len > 0 ? 2 : 1, at = 0;
    size_t written = 0;
    while (at < iovcnt) {
        ssize_t n = writev(s->wfd, iov + at, iovcnt - at);  /* one call, unless the kernel splits it */
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int e = n < 0 ? errno : EIO;
            bool full = e == ENOSPC || e == EDQUOT;
            if (written > 0 && undo_append(s) != 0) {
                snprintf(err, errlen, "spool %s: write: %s; truncating back to %" PRIu64 " failed: %s",
                         s->dir, strerror(e), s->wsize, strerror(errno));
                return SY_SPOOL_ERROR;
            }
            if (full && s->wsize > 0)
                (void)start_segment(s, seq, err, errlen);  /* best effort, as above */
            snprintf(err, errlen, "spool %s: write: %s", s->dir, strerror(e));
            return full ? SY_SPOOL_NO_SPACE : SY_SPOOL_ERROR;
        }
        written += (size_t)n;
        size_t adv = (size_t)n;
        while (at < iovcnt && adv >= iov[at].iov_len) {
            adv -= iov[at].iov_len;
            at++;
        }
        if (at < iovcnt) {
            iov[at].iov_base = (uint8_t *)iov[at].iov_base + adv;
            iov[at].iov_len -= adv;
        }
    }
    s->wsize += rec_len;

    pthread_mutex_lock(&s->mu);
    s->segs[s->n_segs - 1].bytes += rec_len;
    s->total_bytes += rec_len;
    s->last_seq = seq;
    pthread_cond_broadcast(&s->appended);
    pthread_mutex_unlock(&s->mu);
    if (seq_out != NULL)
        *seq_out = seq;
    return SY_SPOOL_OK;
}

enum sy_spool_rc sy_spool_sync(struct sy_spool *s, char *err, size_t errlen)
{
    if (s->wfd >= 0 && fdatasync(s->wfd) != 0) {
        snprintf(err, errlen, "spool %s: fdatasync: %s", s->dir, strerror(errno));
        return SY_SPOOL_ERROR;
    }
    if (s->dir_dirty) {
        if (fsync_path(s->dir) != 0) {
            snprintf(err, errlen, "spool %s: fsync of the directory: %s", s->dir, strerror(errno));
            return SY_SPOOL_ERROR;
        }
        s->dir_dirty = false;
    }
    return SY_SPOOL_OK;
}

/* ---- state ---- */

int sy_spool_reset(const char *dir, uint64_t next_seq, char *err, size_t errlen)
{
    if (next_seq == 0 || sy_mkdirs(dir, err, errlen) != 0) {
        if (next_seq == 0)
            snprintf(err, errlen, "spool %s: sequence numbers start at 1", dir);
        return -1;
    }
    DIR *d = opendir(dir);
    if (d == NULL) {
        snprintf(err, errlen, "spool %s: %s", dir, strerror(errno));
        return -1;
    }
    struct dirent *e;
    uint64_t first;
    char path[PATH_MAX];
    int rc = 0;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        if (!parse_seg_name(e->d_name, &first))
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (unlink(path) != 0) {
            snprintf(err, errlen, "spool %s: removing %s: %s", dir, e->d_name, strerror(errno));
            rc = -1;
        }
    }
    closedir(d);
    if (rc != 0)
        return -1;
    snprintf(path, sizeof path, "%s/%0*" PRIu64 "%s", dir, SEG_NAME_DIGITS, next_seq, SEG_SUFFIX);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    bool ok = fd >= 0 && fsync(fd) == 0;
    if (fd >= 0 && close(fd) != 0)
        ok = false;
    if (!ok || fsync_path(dir) != 0) {
        snprintf(err, errlen, "spool %s: creating %s: %s", dir, path, strerror(errno));
        return -1;
    }
    return 0;
}

uint64_t sy_spool_last_seq(struct sy_spool *s)
{
    pthread_mutex_lock(&s->mu);
    uint64_t v = s->last_seq;
    pthread_mutex_unlock(&s->mu);
    return v;
}

/* 0 when no record is on disk. */
static uint64_t first_seq_locked(const struct sy_spool *s)
{
    return s->n_segs > 0 && s->segs[0].base_seq <= s->last_seq ? s->segs[0].base_seq : 0;
}

uint64_t sy_spool_first_seq(struct sy_spool *s)
{
    pthread_mutex_lock(&s->mu);
    uint64_t v = first_seq_locked(s);
    pthread_mutex_unlock(&s->mu);
    return v;
}

uint64_t sy_spool_bytes(struct sy_spool *s)
{
    pthread_mutex_lock(&s->mu);
    uint64_t v = s->total_bytes;
    pthread_mutex_unlock(&s->mu);
    return v;
}

uint64_t sy_spool_bytes_kept_from(struct sy_spool *s, uint64_t seq)
{
    pthread_mutex_lock(&s->mu);
    uint64_t kept = 0;
    for (size_t i = s->n_segs; i-- > 0;) {
        kept += seg_disk_bytes(&s->segs[i]);
        if (s->segs[i].first <= seq)
            break;
    }
    pthread_mutex_unlock(&s->mu);
    return kept;
}

uint64_t sy_spool_record_bytes(size_t len)
{
    return REC_HDR_LEN + (uint64_t)len;
}

/* ---- scans beside the reader and the appender: the last record of some types, a range ---- */

/* Called for each record a segment scan meets (rec: header + payload, valid until the next read of r):
 * true stops the scan after it. */
typedef bool (*scan_visit_fn)(void *arg, uint64_t seq, uint64_t off, const uint8_t *rec, uint32_t len);

/* Scans sg's records up to sg->bytes in order (structure and CRC), each handed to visit. 0, or -1 with
 * err. */
static int scan_records(struct sy_spool *s, struct seg_rd *r, const struct seg *sg, scan_visit_fn visit, void *arg,
                        char *err, size_t errlen)
{
    char path[PATH_MAX];
    seg_path(s, sg->first, path, sizeof path);
    if (seg_rd_open(r, path, sg->first) != 0) {
        snprintf(err, errlen, "spool %s: %s", path, strerror(errno));
        return -1;
    }
    uint64_t off = sg->base_off, seq = sg->base_seq;
    const char *why = NULL;
    while (off < sg->bytes) {
        const uint8_t *h = seg_rd_get(r, off, REC_HDR_LEN, sg->bytes);
        uint32_t n = h ? get_le32(h) : 0;
        if (h == NULL || n > SY_SPOOL_RECORD_MAX || sg->bytes - off - REC_HDR_LEN < n) {
            why = h == NULL && errno != 0 ? strerror(errno) : "record runs past the end of the segment (corrupt)";
            break;
        }
        const uint8_t *rec = seg_rd_get(r, off, REC_HDR_LEN + (size_t)n, sg->bytes);
        if (rec == NULL) {
            why = errno != 0 ? strerror(errno) : "file shrank (corrupt)";
            break;
        }
        if (get_le64(rec + 8) != seq) {
            why = "unexpected sequence number (corrupt)";
            break;
        }
        if (record_crc(rec + 8, rec + REC_HDR_LEN, n) != get_le32(rec + 4)) {
            why = "CRC mismatch (corrupt)";
            break;
        }
        if (visit(arg, seq, off, rec, n))
            break;
        off += REC_HDR_LEN + (uint64_t)n;
        seq++;
    }
    if (why != NULL) {
        snprintf(err, errlen, "spool %s offset %" PRIu64 ": %s", path, off, why);
        return -1;
    }
    return 0;
}

struct last_wanted {
    bool (*want)(uint8_t type, void *arg);
    void *arg;
    uint64_t found, off; /* found: its seq (0 = none) */
    uint32_t len;
};

static bool keep_last_wanted(void *arg, uint64_t seq, uint64_t off, const uint8_t *rec, uint32_t len)
{
    struct last_wanted *lw = arg;
    if (lw->want(rec[16], lw->arg)) {
        lw->found = seq;
        lw->off = off;
        lw->len = len;
    }
    return false;
}

/* A scan's start: punching held off (punch_mu) until scan_end, a copy of the segment table (taken under mu;
 * NULL when there are none) and a reader of its own. 0, or -1 with err (out of memory; nothing held). */
static int scan_begin(struct sy_spool *s, struct seg **segs, size_t *n, struct seg_rd *r, char *err, size_t errlen)
{
    pthread_mutex_lock(&s->punch_mu);
    pthread_mutex_lock(&s->mu);
    *n = s->n_segs;
    *segs = *n ? malloc(*n * sizeof **segs) : NULL;
    if (*segs)
        memcpy(*segs, s->segs, *n * sizeof **segs);
    pthread_mutex_unlock(&s->mu);
    if (*n > 0 && *segs == NULL) {
        pthread_mutex_unlock(&s->punch_mu);
        snprintf(err, errlen, "spool %s: out of memory", s->dir);
        return -1;
    }
    seg_rd_init(r);
    return 0;
}

static void scan_end(struct sy_spool *s, struct seg *segs, struct seg_rd *r)
{
    seg_rd_fini(r);
    free(segs);
    pthread_mutex_unlock(&s->punch_mu);
}

enum sy_spool_rc sy_spool_find_last(struct sy_spool *s, bool (*want)(uint8_t type, void *arg), void *arg,
                                    uint64_t *seq_out, uint8_t *type_out, uint8_t **payload_out, size_t *len_out,
                                    char *err, size_t errlen)
{
    size_t n;
    struct seg *segs;
    struct seg_rd r;
    if (scan_begin(s, &segs, &n, &r, err, errlen) != 0)
        return SY_SPOOL_ERROR;
    enum sy_spool_rc rc = SY_SPOOL_EMPTY;
    for (size_t i = n; i-- > 0 && rc == SY_SPOOL_EMPTY;) {
        struct last_wanted lw = { .want = want, .arg = arg };
        if (segs[i].bytes == 0)
            continue;
        if (scan_records(s, &r, &segs[i], keep_last_wanted, &lw, err, errlen) != 0) {
            rc = SY_SPOOL_ERROR;
            break;
        }
        if (lw.found == 0)
            continue;
        uint64_t found = lw.found, off = lw.off;
        uint32_t len = lw.len;
        const uint8_t *rec = seg_rd_get(&r, off, REC_HDR_LEN + (size_t)len, segs[i].bytes);
        uint8_t *copy = rec ? malloc((size_t)len + 1) : NULL;
        if (copy == NULL) {
            snprintf(err, errlen, "spool %s: %s", s->dir, rec ? "out of memory" : "record vanished while read");
            rc = SY_SPOOL_ERROR;
            break;
        }
        memcpy(copy, rec + REC_HDR_LEN, len);
        copy[len] = '\0';
        *seq_out = found;
        *type_out = rec[16];
        *payload_out = copy;
        *len_out = len;
        rc = SY_SPOOL_OK;
    }
    scan_end(s, segs, &r);
    return rc;
}

struct range_visit {
    uint64_t to;
    sy_spool_scan_fn fn;
    void *arg;
    uint64_t next;      /* the seq fn gets next */
    bool ended;         /* fn stopped it, or `to` was handed over */
    bool gap;           /* the record at `next` is not on disk */
};

static bool visit_range(void *arg, uint64_t seq, uint64_t off, const uint8_t *rec, uint32_t len)
{
    (void)off;
    struct range_visit *rv = arg;
    if (seq < rv->next)
        return false;
    if (seq != rv->next) {
        rv->gap = true;
        return true;
    }
    rv->next = seq + 1;
    rv->ended = rv->fn(rv->arg, seq, rec[16], rec + REC_HDR_LEN, len) != 0 || seq == rv->to;
    return rv->ended;
}

enum sy_spool_rc sy_spool_scan(struct sy_spool *s, uint64_t from, uint64_t to, sy_spool_scan_fn fn, void *arg,
                               uint64_t *next, char *err, size_t errlen)
{
    *next = from;
    if (from > to)
        return SY_SPOOL_OK;
    size_t n;
    struct seg *segs;
    struct seg_rd r;
    if (scan_begin(s, &segs, &n, &r, err, errlen) != 0)
        return SY_SPOOL_ERROR;
    struct range_visit rv = { .to = to, .fn = fn, .arg = arg, .next = from };
    enum sy_spool_rc rc = SY_SPOOL_OK;
    for (size_t i = 0; i < n && !rv.ended && !rv.gap; i++) {
        if (segs[i].bytes == 0 || (i + 1 < n && segs[i + 1].first <= from))
            continue;
        if (scan_records(s, &r, &segs[i], visit_range, &rv, err, errlen) != 0) {
            rc = SY_SPOOL_ERROR;
            break;
        }
    }
    if (rc == SY_SPOOL_OK && !rv.ended) {
        snprintf(err, errlen, "spool %s: record %" PRIu64 " is not on disk (wanted up to %" PRIu64 ")", s->dir,
                 rv.next, to);
        rc = SY_SPOOL_ERROR;
    }
    scan_end(s, segs, &r);
    *next = rv.next;
    return rc;
}

/* ---- reading ---- */

static void deadline_after(struct timespec *ts, int ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

static enum sy_spool_rc read_record(struct sy_spool *s, uint64_t seq, uint8_t *type, const uint8_t **payload,
                                    size_t *len, char *err, size_t errlen);

enum sy_spool_rc sy_spool_read(struct sy_spool *s, uint64_t seq, uint8_t *type, const uint8_t **payload,
                               size_t *len, int wait_ms, char *err, size_t errlen)
{
    struct timespec deadline;
    bool timed = false;
    pthread_mutex_lock(&s->mu);
    while (seq > s->last_seq) {
        if (s->wake_pending) {
            s->wake_pending = false;
            pthread_mutex_unlock(&s->mu);
            return SY_SPOOL_EMPTY;
        }
        if (wait_ms <= 0) {
            pthread_mutex_unlock(&s->mu);
            return SY_SPOOL_EMPTY;
        }
        if (!timed) {
            deadline_after(&deadline, wait_ms);
            timed = true;
        }
        if (pthread_cond_timedwait(&s->appended, &s->mu, &deadline) == ETIMEDOUT && seq > s->last_seq) {
            pthread_mutex_unlock(&s->mu);
            return SY_SPOOL_EMPTY;
        }
    }
    pthread_mutex_unlock(&s->mu);
    pthread_mutex_lock(&s->punch_mu);                 /* no punch under the read */
    enum sy_spool_rc rc = read_record(s, seq, type, payload, len, err, errlen);
    pthread_mutex_unlock(&s->punch_mu);
    return rc;
}

/* Reads record seq (appended: seq <= last_seq), punch_mu held. */
static enum sy_spool_rc read_record(struct sy_spool *s, uint64_t seq, uint8_t *type, const uint8_t **payload,
                                    size_t *len, char *err, size_t errlen)
{
    pthread_mutex_lock(&s->mu);
    uint64_t first_on_disk = first_seq_locked(s);
    if (seq == 0 || first_on_disk == 0 || seq < first_on_disk) {
        pthread_mutex_unlock(&s->mu);
        snprintf(err, errlen, "spool %s: record %" PRIu64 " is no longer in the spool (first is %" PRIu64 ")",
                 s->dir, seq, first_on_disk);
        return SY_SPOOL_ERROR;
    }
    size_t lo = 0, hi = s->n_segs;  /* the last segment whose first <= seq */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->segs[mid].first <= seq)
            lo = mid;
        else
            hi = mid;
    }
    struct seg sg = s->segs[lo];
    pthread_mutex_unlock(&s->mu);

    char path[PATH_MAX];
    seg_path(s, sg.first, path, sizeof path);
    if (s->rd.fd < 0 || s->rd.first != sg.first) {
        if (seg_rd_open(&s->rd, path, sg.first) != 0) {
            snprintf(err, errlen, "spool %s: %s", path, strerror(errno));
            return SY_SPOOL_ERROR;
        }
        s->rd_off = sg.base_off;
        s->rd_next = sg.base_seq;
    }
    if (seq < s->rd_next || s->rd_off < sg.base_off) {  /* backwards: rescan this segment from its start */
        s->rd_off = sg.base_off;
        s->rd_next = sg.base_seq;
    }
    const char *why;
    for (;;) {
        const uint8_t *h = seg_rd_get(&s->rd, s->rd_off, REC_HDR_LEN, sg.bytes);
        if (h == NULL)
            goto short_read;
        uint32_t n = get_le32(h);
        if (n > SY_SPOOL_RECORD_MAX || sg.bytes - s->rd_off - REC_HDR_LEN < n) {
            why = "record runs past the end of the segment";
            goto corrupt;
        }
        if (get_le64(h + 8) != s->rd_next) {
            why = "unexpected sequence number";
            goto corrupt;
        }
        if (s->rd_next < seq) {  /* skip it */
            s->rd_off += REC_HDR_LEN + (uint64_t)n;
            s->rd_next++;
            continue;
        }
        const uint8_t *rec = seg_rd_get(&s->rd, s->rd_off, REC_HDR_LEN + (size_t)n, sg.bytes);
        if (rec == NULL)
            goto short_read;
        if (record_crc(rec + 8, rec + REC_HDR_LEN, n) != get_le32(rec + 4)) {
            why = "CRC mismatch";
            goto corrupt;
        }
        *type = rec[16];
        *payload = rec + REC_HDR_LEN;
        *len = n;
        s->rd_off += REC_HDR_LEN + (uint64_t)n;
        s->rd_next++;
        return SY_SPOOL_OK;
    }
short_read:
    if (errno != 0)
        snprintf(err, errlen, "spool %s offset %" PRIu64 ": read: %s", path, s->rd_off, strerror(errno));
    else
        snprintf(err, errlen, "spool %s offset %" PRIu64 ": record %" PRIu64 " missing (corrupt)", path,
                 s->rd_off, seq);
    seg_rd_close(&s->rd);
    return SY_SPOOL_ERROR;
corrupt:
    snprintf(err, errlen, "spool %s offset %" PRIu64 ": %s (corrupt)", path, s->rd_off, why);
    seg_rd_close(&s->rd);  /* the next read starts over */
    return SY_SPOOL_ERROR;
}

void sy_spool_wake(struct sy_spool *s)
{
    pthread_mutex_lock(&s->mu);
    s->wake_pending = true;
    pthread_cond_broadcast(&s->appended);
    pthread_mutex_unlock(&s->mu);
}

/* ---- dropping applied records ---- */

/* Is segment `first` gone from disk? */
static bool access_seg_gone(const struct sy_spool *s, uint64_t first)
{
    char path[PATH_MAX];
    seg_path(s, first, path, sizeof path);
    return access(path, F_OK) != 0 && errno == ENOENT;
}

/* While the disk is full: the first segment's records below seq (applied) are punched out in whole blocks,
 * keeping the record seq itself (open finds the first record after the hole). Best effort: a file system
 * that cannot punch holes, a read error or a scan in progress leaves it for the next call. */
static void punch_applied(struct sy_spool *s, uint64_t seq)
{
    if (__atomic_load_n(&s->punch_unsupported, __ATOMIC_RELAXED) ||
        !__atomic_load_n(&s->no_space, __ATOMIC_ACQUIRE) || pthread_mutex_trylock(&s->punch_mu) != 0)
        return;
    pthread_mutex_lock(&s->mu);
    bool any = s->n_segs > 0;
    struct seg sg = any ? s->segs[0] : (struct seg){ 0 };
    uint64_t last = s->n_segs > 1 ? s->segs[1].first - 1 : s->last_seq;  /* segment 0's last record */
    pthread_mutex_unlock(&s->mu);
    struct seg_rd r;
    seg_rd_init(&r);
    char path[PATH_MAX];
    seg_path(s, sg.first, path, sizeof path);
    uint64_t off = sg.base_off;
    if (!any || seq <= sg.base_seq || seq > last || seg_rd_open(&r, path, sg.first) != 0)
        goto out;
    for (uint64_t at = sg.base_seq; at < seq; at++) {   /* the offset of record seq: headers only */
        const uint8_t *h = seg_rd_get(&r, off, REC_HDR_LEN, sg.bytes);
        if (h == NULL || get_le64(h + 8) != at)
            goto out;
        off += REC_HDR_LEN + (uint64_t)get_le32(h);
    }
    uint64_t end = off / PUNCH_BLOCK * PUNCH_BLOCK;
    if (end <= sg.base_off / PUNCH_BLOCK * PUNCH_BLOCK)
        goto out;                                       /* not a block more to free */
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        goto out;
    if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, (off_t)end) != 0) {
        __atomic_store_n(&s->punch_unsupported, errno == EOPNOTSUPP || errno == ENOSYS, __ATOMIC_RELAXED);
        close(fd);
        goto out;
    }
    (void)fdatasync(fd);
    close(fd);
    pthread_mutex_lock(&s->mu);
    /* The appender punches while the writer may truncate: the segment read above may have been dropped
     * meanwhile (its bytes already left total_bytes), and segs[0] be the next one. */
    if (s->n_segs > 0 && s->segs[0].first == sg.first && s->segs[0].base_off == sg.base_off) {
        s->total_bytes -= off - s->segs[0].base_off;
        s->segs[0].base_off = off;
        s->segs[0].base_seq = seq;
    }
    pthread_mutex_unlock(&s->mu);
out:
    seg_rd_fini(&r);
    pthread_mutex_unlock(&s->punch_mu);
}

enum sy_spool_rc sy_spool_truncate_below(struct sy_spool *s, uint64_t seq, char *err, size_t errlen)
{
    /* Take the droppable prefix out of the index under the lock, unlink the files after it. punch_mu is
     * held throughout: a punch (the appender's, on a full disk) never overlaps a drop, nor the putting back
     * of a segment whose unlink failed (its index entry would not know the hole punched meanwhile). */
    pthread_mutex_lock(&s->punch_mu);
    pthread_mutex_lock(&s->mu);
    if (seq > s->truncated_below)
        s->truncated_below = seq;
    size_t k = 0;
    while (k + 1 < s->n_segs && s->segs[k + 1].first <= seq)  /* segment k's last seq < seq */
        k++;
    struct seg *gone = NULL;
    if (k > 0) {
        gone = malloc(k * sizeof *gone);
        if (gone == NULL) {
            pthread_mutex_unlock(&s->mu);
            pthread_mutex_unlock(&s->punch_mu);
            snprintf(err, errlen, "spool %s: out of memory", s->dir);
            return SY_SPOOL_ERROR;
        }
        memcpy(gone, s->segs, k * sizeof *gone);
        for (size_t i = 0; i < k; i++)
            s->total_bytes -= seg_disk_bytes(&s->segs[i]);
        memmove(s->segs, s->segs + k, (s->n_segs - k) * sizeof *s->segs);
        s->n_segs -= k;
    }
    pthread_mutex_unlock(&s->mu);

    /* Oldest first, each made durable before the next: a crash leaves a contiguous rest (open would
     * take a missing segment in the middle for lost data). */
    enum sy_spool_rc rc = SY_SPOOL_OK;
    for (size_t i = 0; i < k && rc == SY_SPOOL_OK; i++) {
        char path[PATH_MAX];
        seg_path(s, gone[i].first, path, sizeof path);
        if (unlink(path) != 0 && errno != ENOENT) {
            snprintf(err, errlen, "spool %s: unlink: %s", path, strerror(errno));
            rc = SY_SPOOL_ERROR;
        } else if (fsync_path(s->dir) != 0) {
            snprintf(err, errlen, "spool %s: fsync of the directory: %s", s->dir, strerror(errno));
            rc = SY_SPOOL_ERROR;
        }
    }
    if (rc != SY_SPOOL_OK) {
        /* Those not deleted (the failed one on) go back to the front of the index: still on disk. */
        size_t back = 0;
        while (back < k && access_seg_gone(s, gone[back].first))
            back++;
        pthread_mutex_lock(&s->mu);
        if (reserve_segs(s, s->n_segs + (k - back)) == 0) {
            memmove(s->segs + (k - back), s->segs, s->n_segs * sizeof *s->segs);
            memcpy(s->segs, gone + back, (k - back) * sizeof *s->segs);
            s->n_segs += k - back;
            for (size_t i = back; i < k; i++)
                s->total_bytes += seg_disk_bytes(&gone[i]);
        }
        pthread_mutex_unlock(&s->mu);
    }
    free(gone);
    pthread_mutex_unlock(&s->punch_mu);
    if (rc == SY_SPOOL_OK)
        punch_applied(s, seq);
    return rc;
}
