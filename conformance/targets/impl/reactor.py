"""`impl`: asyncspec's own reactor (asyncspec.impl), through its public API only."""

from __future__ import annotations

from asyncspec.conformance.areas.readiness.target import ALL_FEATURES, KNOWN_FLAGS, LinuxSources


class ImplReactor(LinuxSources):
    name = "impl"
    features = ALL_FEATURES
    description = "asyncspec.impl: the reference mio-shaped reactor over epoll (cffi)."

    requires = ("asyncspec.impl",)
    requires_hint = "the reference reactor is not built (reinstall asyncspec)"

    def reactor_open(self):
        from asyncspec import impl

        self._impl = impl
        self._poll = impl.Poll()
        self._registry = self._poll.registry()
        self._events = {}

    def reactor_close(self):
        self._poll.close()

    def _args(self, interest):
        impl = self._impl
        want = impl.Interest(0)
        if interest.readable:
            want |= impl.Interest.READABLE
        if interest.writable:
            want |= impl.Interest.WRITABLE
        if interest.rdhup:
            want |= impl.Interest.READ_CLOSED
        trigger = impl.Trigger.EDGE if interest.edge else impl.Trigger.LEVEL
        return want, dict(trigger=trigger, oneshot=interest.oneshot)

    def ctl_register(self, fd, token, interest):
        want, kw = self._args(interest)
        self._registry.register(fd, self._impl.Token(token), want, **kw)

    def ctl_reregister(self, fd, token, interest):
        want, kw = self._args(interest)
        self._registry.reregister(fd, self._impl.Token(token), want, **kw)

    def ctl_deregister(self, fd):
        self._registry.deregister(fd)

    def poll(self, max_events):
        events = self._events.get(max_events)
        if events is None:
            events = self._events[max_events] = self._impl.Events(max_events)
        self._poll.poll(events, 0)
        return [(int(e.token), e.raw & KNOWN_FLAGS) for e in events]


TARGETS = [ImplReactor]
