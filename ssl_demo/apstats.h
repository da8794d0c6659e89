/* Reading the asyncpool provider's counters from an application. */
#ifndef SSL_DEMO_APSTATS_H
#define SSL_DEMO_APSTATS_H

#include <stddef.h>

/* Returns 1 if the asyncpool provider is active in the default library context
 * (loaded by OPENSSL_CONF), 0 if it is not: then crypto runs in whatever provider the
 * configuration gives, synchronously. */
int apstats_open(void);

/* Writes " key=value" pairs for every counter the provider reports, or
 * " provider=absent", into buf. */
void apstats_format(char *buf, size_t len);

void apstats_close(void);

#endif
