/* The MySQL compressed protocol (CLIENT_COMPRESS) on the client side of a session, independent of the
 * backend (which the proxy always talks to uncompressed): a libevent filter bufferevent over the client's
 * bufferevent, so the session keeps reading and writing plain packets. Frames are zlib (libdeflate). */
#ifndef SY_MYSQL_COMPRESS_H
#define SY_MYSQL_COMPRESS_H

#include <event2/bufferevent.h>

/* Wraps `under` (taking it: freed with the result); NULL on failure (then `under` is still the caller's). */
struct bufferevent *sy_mysql_compress_wrap(struct bufferevent *under);

#endif
