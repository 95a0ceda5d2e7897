"""Deliberately broken reactors: the conformance suite must catch each one.

Each is the reference reactor with one classic bug planted, given to
`asyncspec run` as a ``module:attribute`` target like any user's own.
"""

from __future__ import annotations

from asyncspec.conformance.areas.readiness.target import Interest
from asyncspec.conformance.targets.impl.reactor import ImplReactor
from asyncspec.spec.readiness.machine import HUP


class EdgeAsLevel(ImplReactor):
    """Registers edge-triggered interest as level-triggered (EPOLLET dropped)."""

    name = "broken-edge-as-level"

    def _args(self, interest: Interest):
        want, kw = super()._args(interest)
        return want, dict(kw, trigger=self._impl.Trigger.LEVEL)


class OneshotNeverDisarms(ImplReactor):
    """Forgets EPOLLONESHOT: a oneshot registration keeps firing."""

    name = "broken-oneshot"

    def _args(self, interest: Interest):
        want, kw = super()._args(interest)
        return want, dict(kw, oneshot=False)


class HupDroppedWhenWriteOnly(ImplReactor):
    """Filters EPOLLHUP out of events for write-only registrations."""

    name = "broken-hup"

    def reactor_open(self):
        super().reactor_open()
        self._write_only: dict[int, bool] = {}

    def ctl_register(self, fd, token, interest):
        super().ctl_register(fd, token, interest)
        self._write_only[token] = interest.writable and not interest.readable

    def ctl_reregister(self, fd, token, interest):
        super().ctl_reregister(fd, token, interest)
        self._write_only[token] = interest.writable and not interest.readable

    def poll(self, max_events):
        return [
            (token, flags & ~HUP if self._write_only.get(token) else flags)
            for token, flags in super().poll(max_events)
        ]


class StaleToken(ImplReactor):
    """Reregister changes the interest but keeps the token of the first register."""

    name = "broken-stale-token"

    def reactor_open(self):
        super().reactor_open()
        self._first: dict[int, int] = {}

    def ctl_register(self, fd, token, interest):
        super().ctl_register(fd, token, interest)
        self._first[fd] = token

    def ctl_reregister(self, fd, token, interest):
        super().ctl_reregister(fd, self._first.get(fd, token), interest)

    def ctl_deregister(self, fd):
        super().ctl_deregister(fd)
        self._first.pop(fd, None)
