/* CRC-32 (the IEEE polynomial of zlib's crc32, which binlog checksums and spool records use),
 * computed by libdeflate: PCLMULQDQ/AVX where the CPU has them, several times faster than zlib's
 * table-driven crc32 (measured: it was a quarter of switchyardd's CPU while catching up a backlog).
 * Same values and the same chaining as zlib: sy_crc32(sy_crc32(0, a), b) = crc32 of a followed by b;
 * n = 0 leaves crc as it is whatever p is (libdeflate would answer 0 for p = NULL). */
#ifndef SY_CORE_CRC32_H
#define SY_CORE_CRC32_H

#include <stddef.h>
#include <stdint.h>

#include <libdeflate.h>

static inline uint32_t sy_crc32(uint32_t crc, const void *p, size_t n)
{
    return n ? libdeflate_crc32(crc, p, n) : crc;
}

#endif
