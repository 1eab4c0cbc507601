/* The three outcomes of every framing decoder (twemproxy's OK/AGAIN/ERROR):
 * OK = a whole unit decoded, AGAIN = a valid prefix, wait for more bytes, BAD = never valid. */
#ifndef SY_PARSE_H
#define SY_PARSE_H

enum sy_parse { SY_PARSE_OK, SY_PARSE_AGAIN, SY_PARSE_BAD };

#if defined(__GNUC__)
#define SY_MUST_CHECK __attribute__((warn_unused_result))
#define SY_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define SY_MUST_CHECK
#define SY_PRINTF(f, a)
#endif

#define SY_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif
