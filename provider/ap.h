/*
 * provider/ — internal declarations shared by the asyncpool provider's files.
 *
 * The provider wraps a backend provider (loaded into a private OSSL_LIB_CTX) through its
 * public dispatch tables. For each algorithm we keep the backend's functions by id
 * (ap_alg.fn) and build our own dispatch table from a per-operation description
 * (ap_op_desc): every function id the backend has gets one of ours, which forwards it
 * unchanged, except the heavy ones, which go through async_core.
 *
 * Operation contexts are ap_ctx {alg, backend ctx}. Functions that get only a provctx
 * (newctx, gettable_*) cannot tell algorithms apart, so they are per-slot trampolines:
 * slot i of an operation serves the i-th algorithm we took from the backend.
 * Keymgmt returns the backend's own keydata objects, so the keydata-only keymgmt
 * functions are the backend's pointers, used as they are.
 */
#ifndef ASYNCPOOL_AP_H
#define ASYNCPOOL_AP_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/core.h>
#include <openssl/core_dispatch.h>
#include <openssl/provider.h>

#include "compat.h"
#include "offload/emu.h"
#include "probe.h"

/*
 * Function ids we keep per algorithm. The highest id we know (keymgmt export_types_ex,
 * 46, OpenSSL 3.2+) must fit: checked at build time below. A backend function with an
 * id we do not know (a newer OpenSSL) makes us drop that algorithm (tables.c), never
 * offer it without the function.
 */
#define AP_MAXFN 64
/* Algorithms per operation. OpenSSL 3.5's default provider has 29 keymgmts that we take
 * (7 classic, 3 ML-KEM, 4 hybrid ML-KEM, 3 ML-DSA, 12 SLH-DSA) and 44 signatures (4
 * classic, 3 ML-DSA, 12 SLH-DSA, 13 combined RSA-<digest>, 9 ECDSA-<digest>, 3 EdDSA
 * variants); a backend with more than AP_SLOTS fails the load with an error naming the
 * operation (tables.c). */
#define AP_SLOTS 64

_Static_assert(OSSL_FUNC_KEYMGMT_EXPORT_TYPES_EX < AP_MAXFN, "AP_MAXFN too small");
_Static_assert(OSSL_FUNC_SIGNATURE_VERIFY_MESSAGE_FINAL < AP_MAXFN, "AP_MAXFN too small");
_Static_assert(OSSL_FUNC_CIPHER_DECRYPT_SKEY_INIT < AP_MAXFN, "AP_MAXFN too small");

enum ap_op { AP_OP_KEYMGMT, AP_OP_SIGNATURE, AP_OP_ASYM_CIPHER, AP_OP_KEYEXCH, AP_OP_CIPHER,
             AP_OP_KEM, AP_OP_SKEYMGMT, AP_NOPS };

/* Counter groups, one per kind of heavy call. */
enum ap_kind { AP_K_SIGN, AP_K_VERIFY, AP_K_ASYM, AP_K_DERIVE, AP_K_KEYGEN, AP_K_CIPHER,
               AP_K_KEM, AP_NKINDS };
enum ap_cnt { AP_C_OFFLOADED, AP_C_INLINE, AP_C_EAGAIN, AP_C_ERRORS, AP_NCNT };

typedef void (*ap_fn)(void);
typedef struct ap_prov ap_prov;

/* Cost estimates kept per algorithm (policy.c): one per size of call, hashed. */
#define AP_COST_SLOTS 16

typedef struct ap_alg {
    ap_prov *prov;
    ap_fn fn[AP_MAXFN]; /* the backend's functions by dispatch id */
    OSSL_DISPATCH *disp; /* ours, built from the operation's description */
    /* offload = auto (policy.c): what a call of this algorithm costs, by the size of its
     * output or input (which tells RSA-2048 from RSA-4096, P-256 from P-384). Each is
     * (size tag << 48) | moving average in ns, 0 when empty; relaxed, a lost update
     * loses one sample. */
    atomic_uint_fast64_t cost[AP_COST_SLOTS];
} ap_alg;

/* An operation context of ours: the backend's ctx and the algorithm it belongs to. */
typedef struct ap_ctx {
    const ap_alg *alg;
    void *b;
    int selection; /* keymgmt genctx only: what gen_init was asked to generate */
    /* Ciphers: the instance's inline_threshold, and inline calls not yet added to the
     * provider's counter. A context is used by one thread at a time (OpenSSL's rule),
     * so a plain counter here spares the small-record path a locked add per call. */
    size_t threshold;
    uint64_t inline_pending;
} ap_ctx;

/* Inline cipher calls are added to the shared counter in batches of this many, and
 * the rest when the context is freed. */
#define AP_INLINE_BATCH 1024

/* One function of an operation, and how ours is made from the backend's. */
enum ap_how {
    AP_WRAP,   /* fn: ours, takes an ap_ctx (or keymgmt genctx) */
    AP_SLOT,   /* slots[i]: per-slot trampoline, takes a provctx */
    AP_DIRECT, /* the backend's own function (takes nothing of ours) */
};
typedef struct ap_fn_desc {
    int id;
    enum ap_how how;
    ap_fn fn;
    const ap_fn *slots;
} ap_fn_desc;

typedef struct ap_op_desc {
    int op_id;                /* OSSL_OP_* */
    const char *name;         /* "keymgmt", ...: for messages */
    /* Algorithms we take, NULL-terminated: a name, or a prefix ending in '*' ("ML-DSA-*")
     * for families whose members depend on the backend's version. */
    const char *const *names;
    const ap_fn_desc *fns;    /* ends with id 0 */
} ap_op_desc;

/* offload = auto's shared state (policy.c). Relaxed atomics throughout: they order
 * nothing, a stale value makes one decision on older figures. */
typedef struct ap_policy_state {
    atomic_uint_fast64_t win_start; /* CLOCK_MONOTONIC ns when the window began */
    atomic_uint_fast64_t win_work;  /* estimated ns of cheap calls asked for in it */
    atomic_uint load_pm;            /* the last window's: thousandths of a core */
    atomic_int offloading;          /* 1: cheap calls go to the pool (demand was high) */
    atomic_uint_fast64_t cheap_inline; /* ran inline: cheap, and the demand was low */
    atomic_uint_fast64_t caller_runs;  /* ran inline: cheap, and every worker had a queue */
    ap_probe probe;                    /* rule 6: heavy calls, offloaded or inline */
} ap_policy_state;

struct ap_prov {
    const OSSL_CORE_HANDLE *handle;

    /* Borrowed from backend.c, which keeps them for the life of the process. */
    OSSL_LIB_CTX *blib;   /* private libctx holding the backend */
    OSSL_PROVIDER *bprov; /* the backend */
    void *bprovctx;       /* the backend's provctx, passed wherever ours came in */
    char *backend_name;

    unsigned acore_flags;    /* ACORE_BLOCK when outside_job = block */
    /* offload = auto (policy.c), or always (0). */
    int offload_auto;
    uint64_t offload_min_ns;   /* auto: a call estimated this long or longer is offloaded */
    unsigned offload_load_pm;  /* auto: cheap calls are offloaded while they ask for this
                                * many thousandths of a core or more */
    size_t inline_threshold; /* cipher calls with less input run inline */
    unsigned workers, capacity;
    unsigned spin_us; /* worker_spin_us */
    offload_emu_config emu; /* device emulation (emulate.c); all zero: none */

    ap_alg alg[AP_NOPS][AP_SLOTS];
    int nalg[AP_NOPS];
    OSSL_ALGORITHM *algs[AP_NOPS]; /* what query_operation returns */

    /* Relaxed counters: they order nothing, they are read for statistics only. */
    atomic_uint_fast64_t cnt[AP_NKINDS][AP_NCNT];
    /* Backend algorithms not offered because they have a function we cannot forward
     * (an id we do not know): libcrypto uses the backend's twin in `default` instead. */
    unsigned dropped;

    /* offload = auto: the demand for cheap calls (policy.c), and its decisions. */
    ap_policy_state policy;

    ap_prov *next_live; /* list of loaded instances, for ASYNCPOOL_STATS at exit */
    int stats_printed;  /* guarded by the list's lock */
};

extern const ap_op_desc ap_keymgmt_desc, ap_signature_desc, ap_asym_cipher_desc,
    ap_keyexch_desc, ap_cipher_desc, ap_kem_desc, ap_skeymgmt_desc;

#define AP_FN(a, id, type) ((type *)(a)->fn[id])

/* Function shapes shared by several operations (for AP_FN). */
typedef void ap_free_fn(void *);
typedef void *ap_dup_fn(void *);
typedef void *ap_new_fn(void *);
typedef void *ap_new_pq_fn(void *, const char *);
typedef const OSSL_PARAM *ap_ctx_tbl_fn(void *, void *);
typedef const OSSL_PARAM *ap_prov_tbl_fn(void *);
typedef int ap_get_fn(void *, OSSL_PARAM[]);
typedef int ap_set_fn(void *, const OSSL_PARAM[]);
#define AP_HAS(a, id) ((a)->fn[id] != NULL)

static inline const ap_alg *ap_slot_alg(void *provctx, enum ap_op op, int slot)
{
    return &((ap_prov *)provctx)->alg[op][slot];
}

/* Add a context's pending inline cipher calls to the provider's counter. */
void ap_flush_inline(ap_ctx *c);

/* Run fn(arg): through async_core when heavy (with offload = auto, only if it pays:
 * policy.c), else directly; counts it under kind. size: the call's output or input
 * size in bytes (a signature's buffer, a secret's length, ...), which keys its cost
 * estimate; 0 when there is none. */
int ap_run(const ap_alg *a, enum ap_kind kind, int heavy, size_t size, int (*fn)(void *),
           void *arg);

/* policy.c: offload = auto for one heavy call in an async job (or with outside_job =
 * block); fills t like acore_call. */
typedef struct acore_trace acore_trace;
int ap_run_auto(const ap_alg *a, enum ap_kind kind, unsigned flags, size_t size,
                int (*fn)(void *), void *arg, acore_trace *t);

/* Operation contexts, generic over operations (freectx/dupctx have one shape). */
void *ap_ctx_wrap(const ap_alg *a, void *b, int freectx_id);
void ap_ctx_free(void *ctx, int freectx_id);
void *ap_ctx_dup(void *ctx, int dupctx_id, int freectx_id);

/* Raise an error (ERR_LIB_PROV, a public reason) with a formatted detail. */
void ap_raise(const char *file, int line, const char *func, int reason, const char *fmt, ...);
#define AP_RAISE(reason, ...) ap_raise(OPENSSL_FILE, OPENSSL_LINE, OPENSSL_FUNC, (reason), \
                                       __VA_ARGS__)

/* The caller's property query (or a property definition) with its "provider" clauses
 * removed (see propq.c). *out gets NULL when nothing is left, else a string the caller
 * frees. Returns 0, with an error raised, for a malformed query or out of memory. */
int ap_backend_propq(const char *propq, char **out);

/* ---- the provider itself (lifecycle.c calls these) ---------------------------------- */

/* config.c: the provider's parameters into p (workers, ..., backend_name). */
int ap_read_config(ap_prov *p, OSSL_FUNC_core_get_params_fn *get_params);

/* emulate.c: the emulate_* keys and ASYNCPOOL_EMULATE into p->emu. */
int ap_read_emulation(ap_prov *p, OSSL_FUNC_core_get_params_fn *get_params);

/* The emulation class (offload/emu.h) of each kind of heavy call: one per kind. */
static inline unsigned ap_emu_class(int kind)
{
    return (unsigned)kind + 1;
}
_Static_assert(AP_NKINDS + 1 <= OFFLOAD_EMU_CLASSES, "one emulation class per kind");

/* backend.c: the private libctx with the backend `name` loaded, created on first use
 * and kept for the life of the process. Raises an error and returns 0 on failure. */
int ap_backend_get(const char *name, OSSL_LIB_CTX **lib, OSSL_PROVIDER **prov);

/* tables.c: the algorithms of one operation, taken from the backend. */
int ap_build_op(ap_prov *p, enum ap_op op, const ap_op_desc *d);
void ap_free_algs(ap_prov *p, enum ap_op op);
/* 1 if name is one of the colon-separated names in list (case-insensitive). */
int ap_names_contain(const char *list, const char *name);
OSSL_FUNC_provider_query_operation_fn ap_query_operation;

/* capabilities.c */
OSSL_FUNC_provider_get_capabilities_fn ap_get_capabilities;

/* stats.c: counters as provider parameters; the summary line for ASYNCPOOL_STATS. */
OSSL_FUNC_provider_gettable_params_fn ap_gettable_params;
OSSL_FUNC_provider_get_params_fn ap_get_params;
int ap_stats_wanted(void);
void ap_stats_print(ap_prov *p);

/* Slot trampolines. AP_EXPAND_SLOTS(M, args...) expands M(args..., i) for every slot
 * (0 to AP_SLOTS - 1: change both with AP_SLOTS; a table of another size fails the
 * build). */
#define AP_EXPAND_SLOTS(M, ...) \
    M(__VA_ARGS__, 0) M(__VA_ARGS__, 1) M(__VA_ARGS__, 2) M(__VA_ARGS__, 3) M(__VA_ARGS__, 4) \
    M(__VA_ARGS__, 5) M(__VA_ARGS__, 6) M(__VA_ARGS__, 7) M(__VA_ARGS__, 8) M(__VA_ARGS__, 9) \
    M(__VA_ARGS__, 10) M(__VA_ARGS__, 11) M(__VA_ARGS__, 12) M(__VA_ARGS__, 13) M(__VA_ARGS__, 14) \
    M(__VA_ARGS__, 15) M(__VA_ARGS__, 16) M(__VA_ARGS__, 17) M(__VA_ARGS__, 18) M(__VA_ARGS__, 19) \
    M(__VA_ARGS__, 20) M(__VA_ARGS__, 21) M(__VA_ARGS__, 22) M(__VA_ARGS__, 23) M(__VA_ARGS__, 24) \
    M(__VA_ARGS__, 25) M(__VA_ARGS__, 26) M(__VA_ARGS__, 27) M(__VA_ARGS__, 28) M(__VA_ARGS__, 29) \
    M(__VA_ARGS__, 30) M(__VA_ARGS__, 31) M(__VA_ARGS__, 32) M(__VA_ARGS__, 33) M(__VA_ARGS__, 34) \
    M(__VA_ARGS__, 35) M(__VA_ARGS__, 36) M(__VA_ARGS__, 37) M(__VA_ARGS__, 38) M(__VA_ARGS__, 39) \
    M(__VA_ARGS__, 40) M(__VA_ARGS__, 41) M(__VA_ARGS__, 42) M(__VA_ARGS__, 43) M(__VA_ARGS__, 44) \
    M(__VA_ARGS__, 45) M(__VA_ARGS__, 46) M(__VA_ARGS__, 47) M(__VA_ARGS__, 48) M(__VA_ARGS__, 49) \
    M(__VA_ARGS__, 50) M(__VA_ARGS__, 51) M(__VA_ARGS__, 52) M(__VA_ARGS__, 53) M(__VA_ARGS__, 54) \
    M(__VA_ARGS__, 55) M(__VA_ARGS__, 56) M(__VA_ARGS__, 57) M(__VA_ARGS__, 58) M(__VA_ARGS__, 59) \
    M(__VA_ARGS__, 60) M(__VA_ARGS__, 61) M(__VA_ARGS__, 62) M(__VA_ARGS__, 63)
#define AP_SLOT_TABLE(name)                                                        \
    static const ap_fn name##_slots[] = { \
        (ap_fn)name##_0, (ap_fn)name##_1, (ap_fn)name##_2, (ap_fn)name##_3, \
        (ap_fn)name##_4, (ap_fn)name##_5, (ap_fn)name##_6, (ap_fn)name##_7, \
        (ap_fn)name##_8, (ap_fn)name##_9, (ap_fn)name##_10, (ap_fn)name##_11, \
        (ap_fn)name##_12, (ap_fn)name##_13, (ap_fn)name##_14, (ap_fn)name##_15, \
        (ap_fn)name##_16, (ap_fn)name##_17, (ap_fn)name##_18, (ap_fn)name##_19, \
        (ap_fn)name##_20, (ap_fn)name##_21, (ap_fn)name##_22, (ap_fn)name##_23, \
        (ap_fn)name##_24, (ap_fn)name##_25, (ap_fn)name##_26, (ap_fn)name##_27, \
        (ap_fn)name##_28, (ap_fn)name##_29, (ap_fn)name##_30, (ap_fn)name##_31, \
        (ap_fn)name##_32, (ap_fn)name##_33, (ap_fn)name##_34, (ap_fn)name##_35, \
        (ap_fn)name##_36, (ap_fn)name##_37, (ap_fn)name##_38, (ap_fn)name##_39, \
        (ap_fn)name##_40, (ap_fn)name##_41, (ap_fn)name##_42, (ap_fn)name##_43, \
        (ap_fn)name##_44, (ap_fn)name##_45, (ap_fn)name##_46, (ap_fn)name##_47, \
        (ap_fn)name##_48, (ap_fn)name##_49, (ap_fn)name##_50, (ap_fn)name##_51, \
        (ap_fn)name##_52, (ap_fn)name##_53, (ap_fn)name##_54, (ap_fn)name##_55, \
        (ap_fn)name##_56, (ap_fn)name##_57, (ap_fn)name##_58, (ap_fn)name##_59, \
        (ap_fn)name##_60, (ap_fn)name##_61, (ap_fn)name##_62, (ap_fn)name##_63, \
    }; \
    _Static_assert(sizeof(name##_slots) / sizeof(name##_slots[0]) == AP_SLOTS, \
                   "AP_SLOT_TABLE and AP_EXPAND_SLOTS must have AP_SLOTS entries");

/* newctx(provctx) and newctx(provctx, propq): the backend's, wrapped in an ap_ctx. */
void *ap_newctx(void *provctx, enum ap_op op, int slot, int newctx_id, int freectx_id,
                int with_propq, const char *propq);
#define AP_NEWCTX_FN_(name, op, nid, fid, i)                                       \
    static void *name##_##i(void *p) { return ap_newctx(p, op, i, nid, fid, 0, NULL); }
#define AP_NEWCTX_PQ_FN_(name, op, nid, fid, i)                                    \
    static void *name##_##i(void *p, const char *q)                                \
    { return ap_newctx(p, op, i, nid, fid, 1, q); }
#define AP_DEFINE_NEWCTX(name, op, nid, fid)                                       \
    AP_EXPAND_SLOTS(AP_NEWCTX_FN_, name, op, nid, fid) AP_SLOT_TABLE(name)
#define AP_DEFINE_NEWCTX_PQ(name, op, nid, fid)                                    \
    AP_EXPAND_SLOTS(AP_NEWCTX_PQ_FN_, name, op, nid, fid) AP_SLOT_TABLE(name)

/* gettable/settable(ctx-or-NULL, provctx): asked of ctx's algorithm, or the slot's. */
const OSSL_PARAM *ap_ctx_params_table(void *ctx, void *provctx, enum ap_op op, int slot,
                                      int id);
#define AP_CTX_PARAMS_FN_(name, op, id, i)                                         \
    static const OSSL_PARAM *name##_##i(void *c, void *p)                          \
    { return ap_ctx_params_table(c, p, op, i, id); }
#define AP_DEFINE_CTX_PARAMS(name, op, id)                                         \
    AP_EXPAND_SLOTS(AP_CTX_PARAMS_FN_, name, op, id) AP_SLOT_TABLE(name)

/* gettable(provctx): the slot's algorithm, asked with the backend's provctx. */
const OSSL_PARAM *ap_prov_params_table(void *provctx, enum ap_op op, int slot, int id);
#define AP_PROV_PARAMS_FN_(name, op, id, i)                                        \
    static const OSSL_PARAM *name##_##i(void *p) { return ap_prov_params_table(p, op, i, id); }
#define AP_DEFINE_PROV_PARAMS(name, op, id)                                        \
    AP_EXPAND_SLOTS(AP_PROV_PARAMS_FN_, name, op, id) AP_SLOT_TABLE(name)

/* (ctx, params) forwards, one shape for get and one for set. */
int ap_ctx_get_params(void *ctx, OSSL_PARAM params[], int id);
int ap_ctx_set_params(void *ctx, const OSSL_PARAM params[], int id);

#endif
