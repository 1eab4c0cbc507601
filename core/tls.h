/* Server-side TLS contexts from a certificate chain and a key file: one place for the proxy's listeners
 * (tls_cert/tls_key) and the web console (console_tls_cert/console_tls_key). */
#ifndef SY_TLS_H
#define SY_TLS_H

#include <stddef.h>

#include <openssl/ssl.h>

/* TLS 1.2 at least; cert is a PEM chain, key its PEM private key (checked against it). NULL with err
 * naming the keys as `<prefix>tls_cert PATH / <prefix>tls_key PATH: why` on failure. */
SSL_CTX *sy_tls_server_ctx_new(const char *cert, const char *key, const char *prefix, char *err, size_t errlen);

#endif
