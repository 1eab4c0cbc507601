/* libFuzzer target: the client side of a SCRAM login (proxy/mongo_login.c) reading a server's replies — what
 * the proxy parses from a backend (pass-through login) and from the active side (admin login). Input =
 * [selector][BSON reply 1][BSON reply 2]...: selector bit 0 = from a ClientKey (else a password), bit 1 =
 * SCRAM-SHA-1; each reply is fed in turn (a document's own length prefix delimits it) until the login ends.
 * Seeds: fuzz/corpus/fuzz_mongo_login (a server-first reply, a refusal). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/mongo_login.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    enum sy_scram_hash h = (data[0] & 2) ? SY_SCRAM_SHA1 : SY_SCRAM_SHA256;
    struct sy_scram_cred cred = { h, 4096, { 1, 2, 3, 4 }, 4, { 0x11 }, { 0x22 } };
    uint8_t key[SY_SCRAM_MAX_KEY] = { 0x33 };
    struct sy_mongo_login l;
    bson_t cmd;
    int rc = (data[0] & 1) ? sy_mongo_login_start(&l, h, "app", "admin", NULL, key, &cred, "fyko+d2lbbFgONRv9qkxdawL", &cmd)
                           : sy_mongo_login_start(&l, h, "app", "admin", "pencil", NULL, NULL, "fyko+d2lbbFgONRv9qkxdawL",
                                                  &cmd);
    if (rc != 0)
        abort();
    bson_destroy(&cmd);
    size_t off = 1;
    for (int step = 0; step < 4 && size - off >= 5; step++) {
        uint32_t n = (uint32_t)data[off] | (uint32_t)data[off + 1] << 8 | (uint32_t)data[off + 2] << 16 |
                     (uint32_t)data[off + 3] << 24;
        if (n < 5 || n > size - off)
            break;
        uint8_t *doc = malloc(n);   /* exact-size copy: ASan sees any read past the document */
        memcpy(doc, data + off, n);
        off += n;
        int32_t code = 0;
        char err[256];
        bson_t next;
        rc = -1;
        bson_t check;
        if (bson_init_static(&check, doc, n) && bson_validate(&check, BSON_VALIDATE_NONE, NULL))
            rc = sy_mongo_login_step(&l, doc, n, &next, &code, err, sizeof err);
        free(doc);
        if (rc == 0)
            bson_destroy(&next);
        if (rc != 0)
            break;
    }
    sy_mongo_login_wipe(&l);
    return 0;
}
