/*
 * provider/propq.c — property queries as the backend must see them.
 *
 * The caller's query was written for the caller's libctx; the backend uses it for its
 * own fetches (a signature's digest) in our private libctx, where there is no provider
 * named asyncpool: "provider=asyncpool" would make every such fetch fail. So clauses
 * whose name is "provider" are dropped and the rest (fips=yes, user properties) kept.
 * The same filter turns the backend's property definitions into ours (tables.c).
 *
 * Clauses are found by the grammar of property(7), as OpenSSL 3.0's parser reads it
 * (crypto/property/property_parse.c), not by splitting on commas: a quoted value may
 * hold commas, and a name that merely contains "provider" (myprovider.x) is another
 * property. Cut in the wrong place, the backend would get a broken query; OpenSSL 3.0's
 * fetch then still succeeds but leaves parse errors on the caller's queue.
 *
 *   query   = [ clause *( "," clause ) ]         white space allowed around tokens
 *   clause  = "-" name                           (the property must not be set)
 *           / [ "?" ] name [ ( "=" / "!=" ) value ]   ("?": optional; name alone: true)
 *   name    = ident *( "." ident ),  ident = ALPHA *( ALPHA / DIGIT / "_" )
 *   value   = "'" *not-' "'" / DQUOTE *not-" DQUOTE / *( printable but "," or space )
 *
 * Values are not checked beyond where they end (numbers, for instance): the backend's
 * parser says what is wrong with them. What we cannot split safely, we reject.
 */
#include "ap.h"

#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/err.h>

/* ASCII classes, as OpenSSL's parser uses them: no locale. */
static int pq_space(char c)
{
    return c == ' ' || (c >= '\t' && c <= '\r');
}

static int pq_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int pq_ident(char c)
{
    return pq_alpha(c) || (c >= '0' && c <= '9') || c == '_';
}

/* Printable ASCII (plain char may be signed: bytes above 0x7e are negative or > 0x7e). */
static int pq_print(char c)
{
    return c >= 0x20 && c <= 0x7e;
}

static const char *pq_skip_space(const char *s)
{
    while (pq_space(*s))
        s++;
    return s;
}

/* One clause as it lies in the string. */
typedef struct pq_clause {
    const char *start, *end; /* the clause, without white space around it */
    const char *name;
    size_t namelen;
} pq_clause;

/*
 * Read the clause at s. Returns the ',' or '\0' that ends it; on a syntax error
 * returns NULL with *why and *at set.
 */
static const char *pq_clause_read(const char *s, pq_clause *c, const char **why,
                                  const char **at)
{
    int negated = 0;

    s = pq_skip_space(s);
    c->start = s;
    if (*s == '-' || *s == '?') {
        negated = *s == '-';
        s = pq_skip_space(s + 1);
    }
    c->name = s;
    for (;;) {
        if (!pq_alpha(*s)) {
            *why = "expected a property name";
            *at = s;
            return NULL;
        }
        while (pq_ident(*s))
            s++;
        if (*s != '.')
            break;
        s++;
    }
    c->namelen = (size_t)(s - c->name);
    c->end = s;
    s = pq_skip_space(s);
    if (!negated && (*s == '=' || (s[0] == '!' && s[1] == '='))) {
        s += *s == '=' ? 1 : 2;
        c->end = s; /* "name=" with no value is accepted by OpenSSL too */
        s = pq_skip_space(s);
        if (*s == '"' || *s == '\'') {
            const char *close = strchr(s + 1, *s);

            if (close == NULL) {
                *why = "quoted value without its closing quote";
                *at = s;
                return NULL;
            }
            s = c->end = close + 1;
        } else if (pq_print(*s) && *s != ',') {
            while (pq_print(*s) && !pq_space(*s) && *s != ',')
                s++;
            c->end = s;
        }
        s = pq_skip_space(s);
    }
    if (*s != ',' && *s != '\0') {
        *why = "unexpected character";
        *at = s;
        return NULL;
    }
    return s;
}

int ap_backend_propq(const char *propq, char **out)
{
    const char *s, *next, *why = NULL, *at = NULL;
    char *buf;
    size_t len = 0;
    pq_clause c;

    *out = NULL;
    if (propq == NULL || *pq_skip_space(propq) == '\0')
        return 1;
    /* Enough: every kept clause after the first brings one comma, and the input had
     * at least one comma before it. */
    if ((buf = OPENSSL_malloc(strlen(propq) + 1)) == NULL)
        return 0;
    for (s = propq;; s = next + 1) {
        if ((next = pq_clause_read(s, &c, &why, &at)) == NULL) {
            AP_RAISE(ERR_R_PASSED_INVALID_ARGUMENT, "property query \"%s\": %s at offset %d",
                     propq, why, (int)(at - propq));
            OPENSSL_free(buf);
            return 0;
        }
        if (!(c.namelen == 8 && strncasecmp(c.name, "provider", 8) == 0)) {
            if (len != 0)
                buf[len++] = ',';
            memcpy(buf + len, c.start, (size_t)(c.end - c.start));
            len += (size_t)(c.end - c.start);
        }
        if (*next == '\0')
            break;
    }
    buf[len] = '\0';
    if (len == 0)
        OPENSSL_free(buf);
    else
        *out = buf;
    return 1;
}
