/* libmongoc connections whose socket a module's stop can shut down (core/instance.h sy_module_socket_watch).
 * libmongoc gives no access to the descriptors of the sockets it makes, so a module thread blocked on a
 * server that stopped answering (SIGSTOP, a black-holed network) waited out socketTimeoutMS (the writer's:
 * 60 s) before a stop or a step-down could end it. With sy_mongo_watch_sockets the client's connections are
 * made here (mongoc_client_set_stream_initiator): a libmongoc socket stream as usual, its descriptor
 * published to the module's watch list and dropped when libmongoc closes the stream. Plain TCP (MongoDB
 * pairs have no TLS to their servers). */
#ifndef SY_MONGO_STREAM_H
#define SY_MONGO_STREAM_H

#include <mongoc/mongoc.h>

#include "core/instance.h"

/* Before the client's first command: its connections are watched for ctx's module (ctx outlives the
 * client). */
void sy_mongo_watch_sockets(mongoc_client_t *c, const struct sy_module_ctx *ctx);

#endif
