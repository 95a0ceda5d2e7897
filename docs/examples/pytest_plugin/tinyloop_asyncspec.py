"""tinyloop's adapter for asyncspec: the spec's reactor calls over tinyloop.Reactor.

The sources (pipes, sockets, eventfds) and their operations come from
asyncspec's `LinuxSources`; the adapter maps the four reactor calls onto
tinyloop and its events back onto epoll's flags.  tinyloop is
level-triggered, has no max_events, no oneshot and no epoll error codes, so
it claims only "level" and "flags": the rules needing the others are
reported as not applicable, never silently passed.
"""

from __future__ import annotations

import tinyloop
from asyncspec.conformance.areas.readiness import LinuxSources
from asyncspec.spec.readiness.machine import ERR, HUP, IN, OUT


class TinyloopTarget(LinuxSources):
    name = "tinyloop"
    description = "tinyloop.Reactor: level-triggered readiness over poll(2)."
    features = frozenset({"level", "flags"})

    def reactor_open(self):
        self.loop = tinyloop.Reactor()

    def reactor_close(self):
        self.loop = None

    def ctl_register(self, fd, token, interest):
        self.loop.watch(fd, token, read=interest.readable, write=interest.writable)

    def ctl_reregister(self, fd, token, interest):
        self.loop.watch(fd, token, read=interest.readable, write=interest.writable)

    def ctl_deregister(self, fd):
        self.loop.unwatch(fd)

    def poll(self, max_events):
        flags = {tinyloop.READ: IN, tinyloop.WRITE: OUT, tinyloop.CLOSED: HUP, tinyloop.ERROR: ERR}
        return [(token, sum(f for bit, f in flags.items() if what & bit)) for token, what in self.loop.wait(0)]
