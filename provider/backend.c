/*
 * provider/backend.c — the private library contexts that hold the backend providers.
 *
 * One library context per backend name, created by the first load that names it and
 * kept, with the backend provider loaded in it, for the life of the process; every later
 * asyncpool instance with the same backend reuses it. Never freed: DESIGN.md decision
 * 13 ("the private library context lives as long as any thread that used it").
 *
 * Why we cannot free it at unload (OpenSSL 3.0, crypto/initthread.c and
 * crypto/rand/rand_lib.c): the first time a thread uses a library context's DRBG (an
 * ECDSA nonce, an RSA blinding factor, a key generation), libcrypto registers
 * rand_delete_thread_state(libctx) in that thread's list of thread-stop handlers, with
 * no provider index. Those handlers run when the thread exits (the destructor of a
 * pthread key) and read the library context. Nothing removes them on other threads when
 * the context is freed: OSSL_LIB_CTX_free stops only the calling thread,
 * ossl_init_thread_deregister() removes only handlers registered under a provider's
 * index, and OPENSSL_thread_stop_ex() acts on the calling thread. Any application thread
 * that ran backend code inline (the default outside a job) therefore holds a pointer to
 * our context that it will dereference at exit, possibly long after we were unloaded,
 * and we have no way to run code on that thread.
 *
 * The alternative, counting the threads that used a context and freeing it after the
 * last one exits, needs us to see every backend call a thread makes; keymgmt functions
 * are the backend's own pointers (AP_DIRECT), so we do not. A context per backend name
 * is bounded (one per distinct `backend` value), costs nothing per load, and makes
 * repeated load/unload allocate nothing new. It relies on the module staying mapped
 * after unload (-z nodelete, provider/CMakeLists.txt), or this cache would be lost with
 * the module while the contexts stay referenced.
 */
#include "ap.h"

#include <pthread.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>

struct ap_backend {
    struct ap_backend *next;
    char *name;
    OSSL_LIB_CTX *lib;
    OSSL_PROVIDER *prov;
};

/* Creation happens under the lock, so two first loads of one backend cannot both
 * create one. OSSL_PROVIDER_load in a fresh private libctx never calls back into us. */
static pthread_mutex_t backends_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ap_backend *backends; /* guarded by backends_lock; only ever grows */

int ap_backend_get(const char *name, OSSL_LIB_CTX **lib, OSSL_PROVIDER **prov)
{
    struct ap_backend *b;
    int ok = 0;

    pthread_mutex_lock(&backends_lock);
    for (b = backends; b != NULL; b = b->next)
        if (strcmp(b->name, name) == 0)
            break;
    if (b == NULL) {
        if ((b = OPENSSL_zalloc(sizeof(*b))) == NULL
            || (b->name = OPENSSL_strdup(name)) == NULL) {
            ERR_raise(ERR_LIB_PROV, ERR_R_MALLOC_FAILURE);
            goto end;
        }
        /* A fresh libctx, not a child one: a child mirrors its parent's providers,
         * asyncpool included, and our fetches would come back to us. */
        if ((b->lib = OSSL_LIB_CTX_new()) == NULL
            || (b->prov = OSSL_PROVIDER_load(b->lib, name)) == NULL) {
            AP_RAISE(ERR_R_INIT_FAIL, "cannot load the backend provider: backend = \"%s\"", name);
            goto end;
        }
        b->next = backends;
        backends = b;
    }
    *lib = b->lib;
    *prov = b->prov;
    ok = 1;
end:
    if (!ok && b != NULL) {
        /* Not published: no thread can have used this libctx, so it may go. */
        OSSL_LIB_CTX_free(b->lib);
        OPENSSL_free(b->name);
        OPENSSL_free(b);
    }
    pthread_mutex_unlock(&backends_lock);
    return ok;
}
