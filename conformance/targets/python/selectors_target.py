"""`selectors`: `selectors.DefaultSelector`, level-triggered only.

It offers no edge trigger, no oneshot, no RDHUP, no max_events, and reports
only "readable"/"writable", so it claims just the level-triggered rules.
Its errors are its own (KeyError for a double register), so no error rule
applies either.  What it reports is compared through its own view: like
CPython's EpollSelector, any event other than IN makes it writable and any
other than OUT makes it readable, masked by the registered interest.
"""

from __future__ import annotations

import selectors

from asyncspec.conformance.areas.readiness.target import LinuxSources
from asyncspec.spec.readiness import machine as M


class Selectors(LinuxSources):
    name = "selectors"
    features = frozenset({"level", "dup", "eventfd", "nested"})
    description = "selectors.DefaultSelector: level-triggered readable/writable only."

    def reactor_open(self):
        self._sel = selectors.DefaultSelector()

    def reactor_close(self):
        self._sel.close()

    @staticmethod
    def _events(interest) -> int:
        return (selectors.EVENT_READ if interest.readable else 0) | (selectors.EVENT_WRITE if interest.writable else 0)

    def ctl_register(self, fd, token, interest):
        self._sel.register(fd, self._events(interest), token)

    def ctl_reregister(self, fd, token, interest):
        self._sel.modify(fd, self._events(interest), token)

    def ctl_deregister(self, fd):
        self._sel.unregister(fd)

    def poll(self, max_events):
        out = []
        for key, events in self._sel.select(0):
            flags = (M.IN if events & selectors.EVENT_READ else 0) | (M.OUT if events & selectors.EVENT_WRITE else 0)
            out.append((key.data, flags))
        return out

    def project(self, state, action, obs):
        if action == "poll" and obs and obs[0] != "err":
            events = []
            for slot, token, flags in obs:
                s = state.at(slot)
                view = (M.IN if (flags & ~M.OUT) and s.r else 0) | (M.OUT if (flags & ~M.IN) and s.w else 0)
                events.append((token, view))
            return tuple(sorted(events))
        return obs


TARGETS = [Selectors]
