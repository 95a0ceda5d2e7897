"""The readiness area: epoll's level-/edge-triggered and oneshot semantics,
and kqueue's filters under the `bsd-kqueue` profile."""

from ..core import Area
from . import kqueue, machine, rules
from .machine import MACHINE, Slot, World

AREA = Area(
    name=rules.AREA,
    overview=rules.__doc__,
    machine_doc=machine.__doc__,
    machines=(MACHINE, kqueue.MACHINE),
    features={
        "level": "level-triggered registrations",
        "edge": "edge-triggered registrations (EPOLLET)",
        "oneshot": "oneshot registrations, re-armed by a reregister (EPOLLONESHOT)",
        "rdhup": "the peer's half-close as its own event (EPOLLRDHUP)",
        "flags": "events carry epoll's flags exactly (IN, OUT, HUP, ERR, RDHUP), not just readable/writable",
        "errors": "epoll_ctl's errors (EEXIST, ENOENT, EBADF, EPERM, EINVAL) are reported with their errno",
        "cap": "a poll takes max_events and returns at most that many events",
        "dup": "sources may be dup'ed and the copy closed",
        "ofd": "a registration belongs to the open file description (it outlives a closed fd with a dup open)",
        "eventfd": "eventfds as sources",
        "nested": "epoll instances as sources (an epoll inside an epoll)",
    },
)

__all__ = ["AREA", "MACHINE", "World", "Slot", "rules"]
