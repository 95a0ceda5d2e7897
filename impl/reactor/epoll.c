/*
 * epoll.c -- the reactor's epoll backend (Linux); see reactor.h.
 *
 * Registrations are epoll_ctl calls with the token as the event's data; the
 * waker is an eventfd registered edge-triggered.  reactor.h's bits are
 * epoll's own (checked below), so events pass through unchanged.
 */

#include "reactor.h"

#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

_Static_assert(ASR_IN == EPOLLIN && ASR_PRI == EPOLLPRI && ASR_OUT == EPOLLOUT && ASR_ERR == EPOLLERR &&
                   ASR_HUP == EPOLLHUP && ASR_RDHUP == EPOLLRDHUP && ASR_ONESHOT == EPOLLONESHOT &&
                   ASR_ET == EPOLLET,
               "reactor.h's event bits are epoll's values");

/* asr_poll_wait converts epoll_event records into asr_event records in
 * place, which needs the former to be no larger than the latter. */
typedef char asr_check_event_size[
    sizeof(struct epoll_event) <= sizeof(struct asr_event) ? 1 : -1];

int asr_poll_create(void)
{
    int r = epoll_create1(EPOLL_CLOEXEC);
    return r < 0 ? -errno : r;
}

static int asr_ctl(int epfd, int op, int fd, uint32_t events, uint64_t token)
{
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = events;
    ev.data.u64 = token;
    return epoll_ctl(epfd, op, fd, &ev) < 0 ? -errno : 0;
}

int asr_ctl_add(int epfd, int fd, uint32_t events, uint64_t token)
{
    return asr_ctl(epfd, EPOLL_CTL_ADD, fd, events, token);
}

int asr_ctl_mod(int epfd, int fd, uint32_t events, uint64_t token)
{
    return asr_ctl(epfd, EPOLL_CTL_MOD, fd, events, token);
}

int asr_ctl_del(int epfd, int fd)
{
    return asr_ctl(epfd, EPOLL_CTL_DEL, fd, 0, 0);
}

/* Wait for at most `cap` events; timeout_ms < 0 blocks, 0 does not.  EINTR is
 * retried here only for timeout 0; a blocking wait returns -EINTR so the
 * caller can run its signal handlers (which may raise) and wait again with
 * what is left of its timeout. */
int asr_poll_wait(int epfd, struct asr_event *out, int cap, int timeout_ms)
{
    struct epoll_event *raw = (struct epoll_event *)(void *)out;
    int i, n;
    if (timeout_ms < 0)
        timeout_ms = -1;
    do {
        n = epoll_wait(epfd, raw, cap, timeout_ms);
    } while (n < 0 && errno == EINTR && timeout_ms == 0);
    if (n < 0)
        return -errno;
    /* Widen in place from the last record down: record i of the source
     * starts at or before record i of the destination. */
    for (i = n - 1; i >= 0; i--) {
        struct epoll_event ev;
        memcpy(&ev, &raw[i], sizeof ev);
        out[i].token = ev.data.u64;
        out[i].events = ev.events;
    }
    return n;
}

int asr_eventfd_create(unsigned int initval)
{
    int r = eventfd(initval, EFD_CLOEXEC | EFD_NONBLOCK);
    return r < 0 ? -errno : r;
}

int asr_eventfd_write(int fd, uint64_t value)
{
    ssize_t r = write(fd, &value, sizeof value);
    if (r < 0)
        return -errno;
    return r == (ssize_t)sizeof value ? 0 : -EIO;
}

int asr_eventfd_read(int fd, uint64_t *value)
{
    ssize_t r = read(fd, value, sizeof *value);
    if (r < 0)
        return -errno;
    return r == (ssize_t)sizeof *value ? 0 : -EIO;
}

/* The waker is an eventfd registered readable and edge-triggered: each
 * write is a new edge, so the counter never needs to be read by the poller. */
int asr_waker_create(int epfd, uint64_t token)
{
    int r, fd = asr_eventfd_create(0);
    if (fd < 0)
        return fd;
    r = asr_ctl_add(epfd, fd, EPOLLIN | EPOLLET, token);
    if (r < 0) {
        close(fd);
        return r;
    }
    return fd;
}

int asr_waker_wake(int fd)
{
    uint64_t junk;
    int r = asr_eventfd_write(fd, 1);
    if (r != -EAGAIN)
        return r;
    /* The counter is full: reset it by reading, then write again.  A racing
     * waker may have reset it first, so EAGAIN on the read is fine. */
    r = asr_eventfd_read(fd, &junk);
    if (r < 0 && r != -EAGAIN)
        return r;
    return asr_eventfd_write(fd, 1);
}

int asr_waker_close(int fd)
{
    /* Closing the last fd of the eventfd's open file description removes it
     * from the epoll set. */
    return asr_close(fd);
}
