/*
 * kqueue.c -- the reactor's kqueue backend (BSD, macOS); see reactor.h.
 *
 * A registration is a pair of filters, EVFILT_READ and EVFILT_WRITE (and
 * EVFILT_EXCEPT for ASR_PRI where the system has it), all under the token as
 * udata: EV_CLEAR for edge trigger, EV_DISPATCH for oneshot.  The waker is an
 * EVFILT_USER knote.  Events are translated to epoll's bits (reactor.h).
 * Never compiled on Linux (build.py picks epoll.c there).
 */

#include "reactor.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include <sys/types.h>
#include <sys/event.h>
#include <sys/time.h>

#define ASR_KQ_BATCH 64

#ifndef EV_RECEIPT
#error "the kqueue backend needs EV_RECEIPT to report per-change errors"
#endif

/* NetBSD/OpenBSD/FreeBSD spell the udata field's type differently. */
#define ASR_UDATA(tok) ((void *)(uintptr_t)(tok))

int asr_poll_create(void)
{
    int kq = kqueue();
    if (kq < 0)
        return -errno;
    /* kqueue() has no CLOEXEC flag everywhere; set it at once. */
    if (fcntl(kq, F_SETFD, FD_CLOEXEC) < 0) {
        int e = errno;
        close(kq);
        return -e;
    }
    return kq;
}

/* Submit nch changes with EV_RECEIPT; return the first error that is not
 * ignorable (ENOENT is ignorable for the changes flagged in `ign`), or 0.
 * *n_enoent counts changes that failed with ENOENT. */
static int asr_kq_submit(int kq, struct kevent *ch, int nch, unsigned ign,
                         int *n_enoent)
{
    struct kevent out[4];
    int i, n;
    for (i = 0; i < nch; i++)
        ch[i].flags |= EV_RECEIPT;
    n = kevent(kq, ch, nch, out, nch, NULL);
    if (n < 0)
        return -errno;
    if (n_enoent)
        *n_enoent = 0;
    for (i = 0; i < n; i++) {
        int k, err;
        if (!(out[i].flags & EV_ERROR) || out[i].data == 0)
            continue;
        err = (int)out[i].data;
        for (k = 0; k < nch; k++)
            if (ch[k].filter == out[i].filter)
                break;
        if (err == ENOENT && k < nch && (ign & (1u << k))) {
            if (n_enoent)
                (*n_enoent)++;
            continue;
        }
        /* EPIPE on EVFILT_WRITE for a closed pipe still registers it. */
        if (err == EPIPE)
            continue;
        return -err;
    }
    return 0;
}

/* Build the change list for a registration: requested filters are added
 * (and enabled, which re-arms an EV_DISPATCH one-shot), the others are
 * deleted with ENOENT ignored. */
static int asr_kq_register(int kq, int fd, uint32_t events, uint64_t token)
{
    struct kevent ch[3];
    unsigned ign = 0;
    int n = 0;
    unsigned short add = EV_ADD | EV_ENABLE;
    if (events & ASR_ET)
        add |= EV_CLEAR;
    if (events & ASR_ONESHOT)
        add |= EV_DISPATCH;   /* like EPOLLONESHOT: disabled, not deleted
                                 (EV_ONESHOT would delete the knote) */
#ifndef EVFILT_EXCEPT
    if (events & ASR_PRI)
        return -EOPNOTSUPP;
#endif
    EV_SET(&ch[n], fd, EVFILT_READ,
           (events & ASR_IN) ? add : EV_DELETE, 0, 0, ASR_UDATA(token));
    if (!(events & ASR_IN))
        ign |= 1u << n;
    n++;
    EV_SET(&ch[n], fd, EVFILT_WRITE,
           (events & ASR_OUT) ? add : EV_DELETE, 0, 0, ASR_UDATA(token));
    if (!(events & ASR_OUT))
        ign |= 1u << n;
    n++;
#ifdef EVFILT_EXCEPT
    EV_SET(&ch[n], fd, EVFILT_EXCEPT,
           (events & ASR_PRI) ? add : EV_DELETE, NOTE_OOB, 0,
           ASR_UDATA(token));
    if (!(events & ASR_PRI))
        ign |= 1u << n;
    n++;
#endif
    return asr_kq_submit(kq, ch, n, ign, NULL);
}

/* kqueue cannot tell "add" from "modify": EV_ADD on a live knote modifies
 * it, so add does not fail with EEXIST and mod does not fail with ENOENT. */
int asr_ctl_add(int kq, int fd, uint32_t events, uint64_t token)
{
    return asr_kq_register(kq, fd, events, token);
}

int asr_ctl_mod(int kq, int fd, uint32_t events, uint64_t token)
{
    return asr_kq_register(kq, fd, events, token);
}

int asr_ctl_del(int kq, int fd)
{
    struct kevent ch[3];
    int n = 0, n_enoent = 0, r;
    EV_SET(&ch[n++], fd, EVFILT_READ, EV_DELETE, 0, 0, 0);
    EV_SET(&ch[n++], fd, EVFILT_WRITE, EV_DELETE, 0, 0, 0);
#ifdef EVFILT_EXCEPT
    EV_SET(&ch[n++], fd, EVFILT_EXCEPT, EV_DELETE, 0, 0, 0);
#endif
    r = asr_kq_submit(kq, ch, n, (1u << n) - 1, &n_enoent);
    if (r < 0)
        return r;
    return n_enoent == n ? -ENOENT : 0;   /* nothing was registered */
}

static uint32_t asr_kq_bits(const struct kevent *ev)
{
    uint32_t bits = 0;
    if (ev->flags & EV_ERROR)
        return ASR_ERR;
    switch (ev->filter) {
    case EVFILT_READ:
        bits = ASR_IN;
        if (ev->flags & EV_EOF)
            bits |= ASR_RDHUP;
        break;
    case EVFILT_WRITE:
        bits = ASR_OUT;
        if (ev->flags & EV_EOF)
            bits |= ASR_WRHUP;
        break;
#ifdef EVFILT_EXCEPT
    case EVFILT_EXCEPT:
        bits = ASR_PRI;
        break;
#endif
    case EVFILT_USER:
        bits = ASR_IN;
        break;
    default:
        break;
    }
    /* EV_EOF with fflags set carries a socket error (mio's is_error). */
    if ((ev->flags & EV_EOF) && ev->fflags != 0)
        bits |= ASR_ERR;
    return bits;
}

int asr_poll_wait(int kq, struct asr_event *out, int cap, int timeout_ms)
{
    struct kevent buf[ASR_KQ_BATCH];
    struct timespec ts, *tsp = NULL;
    int total = 0;
    if (cap <= 0)
        return -EINVAL;            /* as epoll_wait does */
    if (timeout_ms >= 0) {
        ts.tv_sec = timeout_ms / 1000;
        ts.tv_nsec = (long)(timeout_ms % 1000) * 1000000L;
        tsp = &ts;
    }
    for (;;) {
        int want = cap - total < ASR_KQ_BATCH ? cap - total : ASR_KQ_BATCH;
        int i, n = kevent(kq, NULL, 0, buf, want, tsp);
        if (n < 0) {
            if (errno == EINTR && total == 0 &&
                (timeout_ms == 0 || timeout_ms < 0))
                continue;
            if (total > 0)
                return total;
            return -errno;
        }
        for (i = 0; i < n; i++) {
            out[total + i].token = (uint64_t)(uintptr_t)buf[i].udata;
            out[total + i].events = asr_kq_bits(&buf[i]);
        }
        total += n;
        if (n < want || total == cap)
            return total;
        /* The batch was full: collect what else is ready, without waiting. */
        ts.tv_sec = 0;
        ts.tv_nsec = 0;
        tsp = &ts;
        timeout_ms = 0;
    }
}

/* No eventfd on this backend (the waker uses EVFILT_USER instead). */
int asr_eventfd_create(unsigned int initval)
{
    (void)initval;
    return -ENOSYS;
}

int asr_eventfd_write(int fd, uint64_t value)
{
    (void)fd;
    (void)value;
    return -ENOSYS;
}

int asr_eventfd_read(int fd, uint64_t *value)
{
    (void)fd;
    (void)value;
    return -ENOSYS;
}

/* The waker's handle is a dup of the kqueue fd; its number doubles as the
 * EVFILT_USER ident, unique in that kqueue while the handle is open. */
int asr_waker_create(int kq, uint64_t token)
{
    struct kevent ch;
    int r, h = asr_dup(kq);
    if (h < 0)
        return h;
    EV_SET(&ch, h, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0, ASR_UDATA(token));
    r = asr_kq_submit(h, &ch, 1, 0, NULL);
    if (r < 0) {
        close(h);
        return r;
    }
    return h;
}

int asr_waker_wake(int h)
{
    struct kevent ch;
    EV_SET(&ch, h, EVFILT_USER, 0, NOTE_TRIGGER, 0, 0);
    return asr_kq_submit(h, &ch, 1, 0, NULL);
}

int asr_waker_close(int h)
{
    struct kevent ch;
    /* The knote belongs to the kqueue, not to the handle: delete it. */
    EV_SET(&ch, h, EVFILT_USER, EV_DELETE, 0, 0, 0);
    (void)asr_kq_submit(h, &ch, 1, 1u, NULL);
    return asr_close(h);
}
