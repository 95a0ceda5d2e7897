/*
 * reactor.h -- the C layer of asyncspec's reference reactor: its API.
 *
 * Thin, stateless wrappers over the OS readiness API, compiled by cffi in API
 * mode into asyncspec.impl.reactor._reactor (build.py) and driven from
 * __init__.py.  Every function returns 0 (or a count / a new fd) on success
 * and -errno on failure; none keeps global state.  Every fd created here is
 * close-on-exec.
 *
 * Event bits use epoll's values on every backend (ASR_IN == EPOLLIN, ...), so
 * the Python layer sees one encoding.  struct asr_event is our own, unpacked
 * record: epoll's `struct epoll_event` is packed on x86-64 and is never shown
 * to cffi.
 *
 * Backends, one file each; build.py compiles the one for the platform:
 *   - epoll.c: Linux, epoll + eventfd.
 *   - kqueue.c: BSD and macOS, EVFILT_READ/EVFILT_WRITE pairs and
 *     EVFILT_USER for the waker.  Never compiled on Linux.
 *   - fd.c: what both share (dup, close).
 *
 * The part between the cffi markers is also the cffi declarations (see
 * impl/cdef.py): build.py reads it from here.
 */

#ifndef ASYNCSPEC_REACTOR_H
#define ASYNCSPEC_REACTOR_H

#include <stdint.h>

/* cffi: begin */
struct asr_event {
    uint64_t token;
    uint32_t events;
};

/* Event and registration bits (epoll's values on every backend). */
#define ASR_IN 0x001u
#define ASR_PRI 0x002u
#define ASR_OUT 0x004u
#define ASR_ERR 0x008u
#define ASR_HUP 0x010u
#define ASR_RDHUP 0x2000u
#define ASR_ONESHOT (1u << 30)
#define ASR_ET (1u << 31)
/* EVFILT_WRITE with EV_EOF: kqueue only, 0 on epoll (which has no such bit). */
#if defined(__linux__)
#define ASR_WRHUP 0u
#else
#define ASR_WRHUP 0x4000u
#endif

/* All return >= 0 on success and -errno on failure. */
int asr_poll_create(void);
int asr_ctl_add(int pfd, int fd, uint32_t events, uint64_t token);
int asr_ctl_mod(int pfd, int fd, uint32_t events, uint64_t token);
int asr_ctl_del(int pfd, int fd);
int asr_poll_wait(int pfd, struct asr_event *out, int cap, int timeout_ms);

int asr_eventfd_create(unsigned int initval);
int asr_eventfd_write(int fd, uint64_t value);
int asr_eventfd_read(int fd, uint64_t *value);

int asr_waker_create(int pfd, uint64_t token);
int asr_waker_wake(int wfd);
int asr_waker_close(int wfd);

int asr_dup(int fd);
int asr_close(int fd);
/* cffi: end */

#endif
