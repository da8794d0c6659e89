/*
 * provider/lifecycle.c — the asyncpool provider's entry point: init (configuration,
 * the private backend library context, the pool, the algorithm tables), teardown, and
 * the list of loaded instances (for ASYNCPOOL_STATS at exit).
 */
#include "ap.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/proverr.h>

#include "offload/offload.h"

/*
 * ASYNCPOOL_STATS=1: print each instance's line once, at unload, or at process exit for
 * instances still loaded then (openssl speed exits without freeing what it fetched, so
 * its providers are never torn down). Live instances are kept on a list for that.
 */
static pthread_mutex_t live_lock = PTHREAD_MUTEX_INITIALIZER;
static ap_prov *live_first; /* guarded by live_lock, linked through next_live */
static pthread_once_t atexit_once = PTHREAD_ONCE_INIT;

/* Under live_lock. */
static void print_stats_locked(ap_prov *p)
{
    if (p->stats_printed || !ap_stats_wanted())
        return;
    p->stats_printed = 1;
    ap_stats_print(p);
}

static void print_stats_at_exit(void)
{
    ap_prov *p;

    pthread_mutex_lock(&live_lock);
    for (p = live_first; p != NULL; p = p->next_live)
        print_stats_locked(p);
    pthread_mutex_unlock(&live_lock);
}

static void register_atexit(void)
{
    atexit(print_stats_at_exit);
}

static void live_add(ap_prov *p)
{
    pthread_mutex_lock(&live_lock);
    p->next_live = live_first;
    live_first = p;
    pthread_mutex_unlock(&live_lock);
    if (ap_stats_wanted())
        pthread_once(&atexit_once, register_atexit);
}

static void live_remove(ap_prov *p)
{
    ap_prov **pp;

    pthread_mutex_lock(&live_lock);
    print_stats_locked(p);
    for (pp = &live_first; *pp != NULL; pp = &(*pp)->next_live)
        if (*pp == p) {
            *pp = p->next_live;
            break;
        }
    pthread_mutex_unlock(&live_lock);
}

static void worker_thread_stop(void *libctx)
{
    OPENSSL_thread_stop_ex(libctx);
}

static void worker_thread_exit(void)
{
    OPENSSL_thread_stop();
}

static void prov_free(ap_prov *p)
{
    int op;

    for (op = 0; op < AP_NOPS; op++)
        ap_free_algs(p, op);
    /* p->blib and p->bprov are not ours to free: they live as long as the process
     * (backend.c says why). */
    OPENSSL_free(p->backend_name);
    OPENSSL_free(p);
}

static OSSL_FUNC_provider_teardown_fn ap_teardown;

static void ap_teardown(void *provctx)
{
    ap_prov *p = provctx;

    live_remove(p);
    /* The workers and this thread hold per-thread state (DRBGs) of the backend's
     * libctx. It would be freed at their exit anyway (the libctx stays alive for that,
     * see backend.c); freeing it now gives the memory back at unload. Another instance
     * sharing the backend just gets fresh DRBGs on its next use. No request of ours is
     * in flight: libcrypto tears a provider down only when nothing refers to it. */
    offload_on_each_worker(worker_thread_stop, p->blib);
    OPENSSL_thread_stop_ex(p->blib);
    offload_stop();
    prov_free(p);
}

static const OSSL_DISPATCH ap_dispatch[] = {
    {OSSL_FUNC_PROVIDER_TEARDOWN, (void (*)(void))ap_teardown},
    {OSSL_FUNC_PROVIDER_GETTABLE_PARAMS, (void (*)(void))ap_gettable_params},
    {OSSL_FUNC_PROVIDER_GET_PARAMS, (void (*)(void))ap_get_params},
    {OSSL_FUNC_PROVIDER_QUERY_OPERATION, (void (*)(void))ap_query_operation},
    {OSSL_FUNC_PROVIDER_GET_CAPABILITIES, (void (*)(void))ap_get_capabilities},
    {0, NULL},
};

/*
 * Say why init failed on stderr too, from the error we just raised. A provider
 * activated from a config file (activate = 1, the documented way) whose init fails is
 * dropped by OpenSSL 3.0 without a word: crypto/provider_conf.c counts a failed
 * activation as a non-fatal success, the queued error is discarded, and the
 * application runs on default alone. Init cannot tell that path from an explicit
 * OSSL_PROVIDER_load (whose caller does get the error), so it prints in both: one line
 * per failed load.
 */
static void report_init_failure(void)
{
    const char *data = NULL, *what;
    int flags = 0;
    unsigned long e = ERR_peek_last_error_data(&data, &flags);

    if ((flags & ERR_TXT_STRING) && data != NULL && *data != '\0')
        what = data;
    else if (e == 0 || (what = ERR_reason_error_string(e)) == NULL)
        what = "initialisation failed";
    fprintf(stderr, "asyncpool: %s%s; the provider is not loaded\n",
            ERR_GET_LIB(e) == ERR_LIB_PROV && ERR_GET_REASON(e) == PROV_R_INVALID_CONFIG_DATA
                ? "invalid configuration: " : "",
            what);
}

__attribute__((visibility("default")))
OSSL_provider_init_fn OSSL_provider_init;

int OSSL_provider_init(const OSSL_CORE_HANDLE *handle, const OSSL_DISPATCH *in,
                       const OSSL_DISPATCH **out, void **provctx)
{
    OSSL_FUNC_core_get_params_fn *get_params = NULL;
    offload_config cfg = {0};
    ap_prov *p = OPENSSL_zalloc(sizeof(*p));
    int pool_started = 0;

    if (p == NULL) {
        report_init_failure();
        return 0;
    }
    p->handle = handle;
    for (; in->function_id != 0; in++) {
        switch (in->function_id) {
        case OSSL_FUNC_CORE_GET_PARAMS:
            get_params = OSSL_FUNC_core_get_params(in);
            break;
        }
    }
    if (!ap_read_config(p, get_params))
        goto err;

    if (!ap_backend_get(p->backend_name, &p->blib, &p->bprov))
        goto err;
    p->bprovctx = OSSL_PROVIDER_get0_provider_ctx(p->bprov);

    cfg.workers = p->workers;
    cfg.capacity = p->capacity;
    cfg.spin_us = p->spin_us;
    cfg.thread_exit = worker_thread_exit;
    cfg.emu = &p->emu;
    if (!offload_start(&cfg)) {
        if (errno == EBUSY)
            AP_RAISE(ERR_R_INIT_FAIL, "the emulate_* settings (with ASYNCPOOL_EMULATE) "
                     "differ from those of the asyncpool instance already loaded; the pool "
                     "and its emulated device are process-wide, the first instance's "
                     "settings stand");
        else
            AP_RAISE(ERR_R_INIT_FAIL, "cannot start the worker pool: workers = %u, "
                     "queue_capacity = %u", p->workers, p->capacity);
        goto err;
    }
    pool_started = 1;

    if (!ap_build_op(p, AP_OP_KEYMGMT, &ap_keymgmt_desc)
        || !ap_build_op(p, AP_OP_SIGNATURE, &ap_signature_desc)
        || !ap_build_op(p, AP_OP_ASYM_CIPHER, &ap_asym_cipher_desc)
        || !ap_build_op(p, AP_OP_KEYEXCH, &ap_keyexch_desc)
        || !ap_build_op(p, AP_OP_CIPHER, &ap_cipher_desc)
        || !ap_build_op(p, AP_OP_KEM, &ap_kem_desc)
        || !ap_build_op(p, AP_OP_SKEYMGMT, &ap_skeymgmt_desc)) {
        AP_RAISE(ERR_R_INIT_FAIL, "cannot build the algorithm tables from the backend's");
        goto err;
    }
    live_add(p);
    *out = ap_dispatch;
    *provctx = p;
    return 1;

err:
    report_init_failure();
    if (pool_started)
        offload_stop();
    prov_free(p);
    return 0;
}
