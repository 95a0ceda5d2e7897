"""A complete user-written target: poll(2) through `select.poll`.

This is the example the README points to.  A readiness target on Linux
subclasses `LinuxSources` (which creates the pipes, sockets and eventfds and
performs the operations on them) and implements the four reactor calls.
poll(2) is level-triggered only, has no max_events, no oneshot and no epoll
error codes, so it claims just the features it has; the rules needing the
others are reported as not applicable.

    asyncspec run readiness --target example_poll_target:PollTarget
"""

import select

from asyncspec.conformance.areas.readiness import KNOWN_FLAGS, LinuxSources


class PollTarget(LinuxSources):
    name = "poll(2)"
    description = "select.poll: level-triggered poll(2), one call per wait."
    features = frozenset({"level", "flags", "rdhup", "eventfd", "nested"})

    def reactor_open(self):
        self._poll = select.poll()
        self._token = {}

    def reactor_close(self):
        self._poll = None

    @staticmethod
    def _mask(interest):
        return (
            (select.POLLIN if interest.readable else 0)
            | (select.POLLOUT if interest.writable else 0)
            | (select.POLLRDHUP if interest.rdhup else 0)
        )

    def ctl_register(self, fd, token, interest):
        self._poll.register(fd, self._mask(interest))
        self._token[fd] = token

    def ctl_reregister(self, fd, token, interest):
        self._poll.modify(fd, self._mask(interest))
        self._token[fd] = token

    def ctl_deregister(self, fd):
        self._poll.unregister(fd)
        del self._token[fd]

    def poll(self, max_events):
        return [(self._token[fd], flags & KNOWN_FLAGS) for fd, flags in self._poll.poll(0)]
