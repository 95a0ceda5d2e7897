"""asyncspec.impl: the reference implementation (a mio-shaped epoll reactor)."""

from asyncspec.impl.reactor import (
    Event,
    Events,
    Interest,
    Poll,
    Registry,
    Token,
    Trigger,
    Waker,
)

__all__ = [
    "Token",
    "Interest",
    "Trigger",
    "Event",
    "Events",
    "Poll",
    "Registry",
    "Waker",
]
