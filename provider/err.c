/*
 * provider/err.c — the one way the provider raises an error.
 */
#include "ap.h"

#include <stdarg.h>

#include <openssl/err.h>

/*
 * Our errors are raised as ERR_LIB_PROV with libcrypto's public reason codes. Our own
 * reason strings (get_reason_strings) would be loaded by libcrypto only after init
 * succeeds, and almost all our errors happen when init fails (a bad configuration): they
 * would print as "lib(129)::reason(1)".
 */
void ap_raise(const char *file, int line, const char *func, int reason, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    ERR_new();
    ERR_set_debug(file, line, func);
    ERR_vset_error(ERR_LIB_PROV, reason, fmt, ap);
    va_end(ap);
}
