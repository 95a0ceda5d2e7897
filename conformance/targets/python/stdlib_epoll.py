"""`stdlib-epoll`: CPython's `select.epoll`, a thin layer over the syscalls."""

from __future__ import annotations

import errno
import select

from asyncspec.conformance.areas.readiness.target import ALL_FEATURES, KNOWN_FLAGS, Interest, LinuxSources


def epoll_mask(i: Interest) -> int:
    return (
        (select.EPOLLIN if i.readable else 0)
        | (select.EPOLLOUT if i.writable else 0)
        | (select.EPOLLRDHUP if i.rdhup else 0)
        | (select.EPOLLET if i.edge else 0)
        | (select.EPOLLONESHOT if i.oneshot else 0)
    )


class StdlibEpoll(LinuxSources):
    name = "stdlib-epoll"
    features = ALL_FEATURES
    description = "select.epoll from the Python standard library (data = fd, tokens mapped by fd)."

    def reactor_open(self):
        self._ep = select.epoll()
        self._token: dict[int, int] = {}

    def reactor_close(self):
        self._ep.close()

    def ctl_register(self, fd, token, interest):
        self._ep.register(fd, epoll_mask(interest))
        self._token[fd] = token

    def ctl_reregister(self, fd, token, interest):
        self._ep.modify(fd, epoll_mask(interest))
        self._token[fd] = token

    def ctl_deregister(self, fd):
        self._ep.unregister(fd)
        self._token.pop(fd, None)

    def poll(self, max_events):
        try:
            ready = self._ep.poll(0, max_events)
        except ValueError as e:
            # CPython checks maxevents itself before the kernel would say EINVAL.
            raise OSError(errno.EINVAL, str(e)) from None
        return [(self._token[fd], ev & KNOWN_FLAGS) for fd, ev in ready]


TARGETS = [StdlibEpoll]
