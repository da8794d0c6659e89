/*
 * provider/propq.c — property queries as the backend must see them.
 */
#define _GNU_SOURCE /* strtok_r */
#include "ap.h"

#include <string.h>

#include <openssl/crypto.h>

/*
 * A property query as the backend must see it. The caller's query was written for the
 * caller's libctx; the backend uses it for its own fetches (a signature's digest) in our
 * private libctx, where there is no provider named asyncpool: "provider=asyncpool" would
 * make every such fetch fail. Clauses about "provider" are dropped, the rest (fips=yes...)
 * kept. *out gets NULL for an empty result, else a string the caller frees. Returns 0
 * only when out of memory.
 */
int ap_backend_propq(const char *propq, char **out_)
{
    char *out, *copy, *item, *save = NULL;

    *out_ = NULL;
    if (propq == NULL || *propq == '\0')
        return 1;
    if (strstr(propq, "provider") == NULL)
        return (*out_ = OPENSSL_strdup(propq)) != NULL;
    out = OPENSSL_zalloc(strlen(propq) + 1);
    copy = OPENSSL_strdup(propq);
    if (out == NULL || copy == NULL) {
        OPENSSL_free(copy);
        OPENSSL_free(out);
        return 0;
    }
    for (item = strtok_r(copy, ",", &save); item != NULL; item = strtok_r(NULL, ",", &save)) {
        if (strstr(item, "provider") != NULL)
            continue;
        if (*out != '\0')
            strcat(out, ",");
        strcat(out, item);
    }
    OPENSSL_free(copy);
    if (*out == '\0')
        OPENSSL_free(out);
    else
        *out_ = out;
    return 1;
}
