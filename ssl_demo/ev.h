/* A small epoll event loop, in the spirit of redis' ae: watchers with typed callbacks,
 * level-triggered, EINTR ignored, any other epoll failure fatal. One loop per thread. */
#ifndef SSL_DEMO_EV_H
#define SSL_DEMO_EV_H

#include <stdint.h>
#include <sys/epoll.h>

typedef struct ev_loop ev_loop;
typedef struct ev_io ev_io;

/* Called with the epoll event bits (EPOLLIN, EPOLLOUT, EPOLLERR, EPOLLHUP...). */
typedef void ev_io_cb(ev_loop *loop, ev_io *w, uint32_t events);

/* A watcher lives inside its owner (a connection, a listener). epoll keeps a pointer to
 * it, so the owner must not be freed while the watcher is registered, nor before the
 * current batch of events has been dispatched (see ev_defer). */
struct ev_io {
    ev_io_cb *cb;
    void *data;
};

ev_loop *ev_loop_new(void);
void ev_loop_free(ev_loop *loop);

/* epoll_ctl wrappers; they exit the process on failures other than those the caller
 * can expect (ENOENT on delete of an fd that a peer's close already removed). */
void ev_add(ev_loop *loop, int fd, ev_io *w, uint32_t events);
void ev_mod(ev_loop *loop, int fd, ev_io *w, uint32_t events);
void ev_del(ev_loop *loop, int fd);

/* Waits up to timeout_ms (-1: forever) and dispatches the ready watchers, then runs
 * the deferred functions queued during the dispatch. Returns the number of events. */
int ev_run_once(ev_loop *loop, int timeout_ms);

/* Runs fn(arg) after the current batch is dispatched: the way to free an object whose
 * watchers may still appear later in the same batch. */
void ev_defer(ev_loop *loop, void (*fn)(void *), void *arg);

/* Monotonic clock in microseconds. */
uint64_t ev_now_us(void);

#endif
