/* See tls.h. */
#include "core/tls.h"

#include <stdio.h>

#include <openssl/err.h>

SSL_CTX *sy_tls_server_ctx_new(const char *cert, const char *key, const char *prefix, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        snprintf(err, errlen, "TLS: cannot create context");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    /* an idle connection gives its record buffers back (~34 KiB each way): a TLS session that waits for
     * its client costs little more than a plain one */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
        char why[256];
        ERR_error_string_n(ERR_get_error(), why, sizeof why);
        snprintf(err, errlen, "%stls_cert %s / %stls_key %s: %s", prefix, cert, prefix, key, why);
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}
