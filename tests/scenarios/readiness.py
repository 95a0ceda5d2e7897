"""Hand-written readiness scenarios: each demonstrates one or more rules.

A scenario is a list of steps with the observation expected at each one
(polls as ``(token, flags)`` pairs, as every target reports them).  The same
scenario runs against the model (the spec must allow exactly this) and
against the real kernel through the targets.
"""

from __future__ import annotations

from dataclasses import dataclass

from asyncspec.spec.readiness.machine import ERR, HUP, IN, OUT, RDHUP

OK = ("ok",)


def n(k):
    return ("n", k)


def err(name):
    return ("err", name)


# steps: (action, args, expected observation, exact)
# exact: the spec allows nothing else here.


def create(slot, kind):
    return ("create", dict(slot=slot, kind=kind), OK, True)


def reg(slot, token, interest="r", mode="lt", oneshot=False, rdhup=False, expect=OK):
    args = dict(slot=slot, token=token, interest=interest, mode=mode, oneshot=oneshot, rdhup=rdhup)
    return ("register", args, expect, True)


def rereg(slot, token, interest="r", mode="lt", oneshot=False, rdhup=False, expect=OK):
    args = dict(slot=slot, token=token, interest=interest, mode=mode, oneshot=oneshot, rdhup=rdhup)
    return ("reregister", args, expect, True)


def dereg(slot, expect=OK):
    return ("deregister", dict(slot=slot), expect, True)


def write_peer(slot, k, expect=None):
    return ("write_peer", dict(slot=slot, n=k), expect or n(k), True)


def read_ours(slot, k, expect):
    return ("read_ours", dict(slot=slot, n=k), expect, True)


def write_ours(slot, k, expect=None):
    return ("write_ours", dict(slot=slot, n=k), expect or n(k), True)


def fill(slot):
    return ("fill_ours", dict(slot=slot), OK, True)


def drain(slot, expect=OK):
    return ("drain_peer", dict(slot=slot), expect, True)


def shutdown_peer(slot):
    return ("shutdown_peer", dict(slot=slot), OK, True)


def close_peer(slot):
    return ("close_peer", dict(slot=slot), OK, True)


def dup(slot):
    return ("dup_ours", dict(slot=slot), OK, True)


def close_ours(slot):
    return ("close_ours", dict(slot=slot), OK, True)


def close_dup(slot):
    return ("close_dup", dict(slot=slot), OK, True)


def poll(max_events, *events, exact=True):
    return ("poll", dict(max_events=max_events), tuple(sorted(events)), exact)


def poll_err(max_events, name):
    return ("poll", dict(max_events=max_events), err(name), True)


@dataclass(frozen=True)
class Scenario:
    name: str
    rules: tuple[str, ...]
    steps: tuple
    # Target features the scenario needs (targets without them skip it).
    needs: frozenset = frozenset()


def S(name, rules, *steps, needs=()):
    return Scenario(name, tuple(rules.split()), tuple(steps), frozenset(needs))


SCENARIOS = [
    S(
        "lt-reports-while-ready",
        "RDY-LT-1 RDY-EV-1 RDY-EV-2",
        create(0, "pipe_r"),
        reg(0, 7, "r"),
        poll(8),
        write_peer(0, 3),
        poll(8, (7, IN)),
        poll(8, (7, IN)),
        read_ours(0, 64, n(3)),
        poll(8),
    ),
    S(
        "token-follows-reregister",
        "RDY-EV-1",
        create(0, "sock"),
        reg(0, 1, "w"),
        poll(8, (1, OUT)),
        rereg(0, 2, "w"),
        poll(8, (2, OUT)),
    ),
    S(
        "flags-masked-by-interest",
        "RDY-EV-2 RDY-EV-3",
        create(0, "sock"),
        reg(0, 0, "r"),
        poll(8),
        write_peer(0, 1),
        poll(8, (0, IN)),
        rereg(0, 0, "rw"),
        poll(8, (0, IN | OUT)),
        rereg(0, 0, "w"),
        poll(8, (0, OUT)),
    ),
    S(
        "one-event-per-registration",
        "RDY-EV-5 RDY-EV-3",
        create(0, "eventfd"),
        reg(0, 4, "rw"),
        write_ours(0, 3),
        poll(8, (4, IN | OUT)),
        create(1, "pipe_r"),
        reg(1, 4, "r"),
        poll(8, (4, IN | OUT)),
    ),
    S(
        "et-once-per-edge",
        "RDY-ET-1",
        create(0, "pipe_r"),
        reg(0, 1, "r", "et"),
        poll(8),
        write_peer(0, 3),
        poll(8, (1, IN)),
        poll(8),
        read_ours(0, 1, n(1)),
        poll(8),
    ),
    S(
        "et-every-write-is-an-edge",
        "RDY-ET-2",
        create(0, "pipe_r"),
        create(1, "sock"),
        create(2, "eventfd"),
        reg(0, 0, "r", "et"),
        reg(1, 1, "r", "et"),
        reg(2, 2, "r", "et"),
        write_peer(0, 1),
        write_peer(1, 1),
        write_ours(2, 1),
        poll(8, (0, IN), (1, IN), (2, IN)),
        poll(8),
        write_peer(0, 1),
        write_peer(1, 1),
        write_ours(2, 1),
        poll(8, (0, IN), (1, IN), (2, IN)),
    ),
    S(
        "et-reports-whole-readiness",
        "RDY-ET-3",
        create(0, "sock"),
        reg(0, 3, "rw", "et"),
        poll(8, (3, OUT)),
        poll(8),
        write_peer(0, 1),
        poll(8, (3, IN | OUT)),
        poll(8),
    ),
    S(
        "et-wakeup-key-filter",
        "RDY-ET-4",
        create(0, "eventfd"),
        reg(0, 5, "w", "et"),
        poll(8, (5, OUT)),
        write_ours(0, 1),
        poll(8),
        read_ours(0, 8, n(1)),
        poll(8, (5, OUT)),
        poll(8),
    ),
    S(
        "et-register-and-reregister-when-ready",
        "RDY-ET-5",
        create(0, "pipe_r"),
        write_peer(0, 3),
        reg(0, 1, "r", "et"),
        poll(8, (1, IN)),
        poll(8),
        rereg(0, 1, "r", "et"),
        poll(8, (1, IN)),
        poll(8),
    ),
    S(
        "et-drain-until-eagain-then-new-data",
        "RDY-ET-6 RDY-SRC-2",
        create(0, "pipe_w"),
        reg(0, 2, "w", "et"),
        poll(8, (2, OUT)),
        fill(0),
        write_ours(0, 1, err("EAGAIN")),
        poll(8),
        drain(0),
        poll(8, (2, OUT)),
        poll(8),
    ),
    S(
        "oneshot-once-per-arming",
        "RDY-ONESHOT-1 RDY-ONESHOT-2",
        create(0, "pipe_r"),
        reg(0, 1, "r", "lt", oneshot=True),
        write_peer(0, 1),
        poll(8, (1, IN)),
        poll(8),
        write_peer(0, 1),
        poll(8),
        rereg(0, 1, "r", "lt", oneshot=True),
        poll(8, (1, IN)),
        poll(8),
        rereg(0, 1, "r", "et", oneshot=True),
        poll(8, (1, IN)),
        poll(8),
    ),
    S(
        "disarmed-oneshot-is-still-registered",
        "RDY-ONESHOT-3 RDY-CTL-1",
        create(0, "pipe_r"),
        write_peer(0, 1),
        reg(0, 1, "r", "lt", oneshot=True),
        poll(8, (1, IN)),
        reg(0, 1, "r", expect=err("EEXIST")),
        dereg(0),
        poll(8),
    ),
    S(
        "hup-whatever-the-interest",
        "RDY-HUP-1",
        create(0, "pipe_r"),
        create(1, "sock"),
        reg(0, 0, "r"),
        reg(1, 1, "w"),
        poll(8, (1, OUT)),
        close_peer(0),
        close_peer(1),
        poll(8, (0, HUP), (1, OUT | HUP)),
        read_ours(0, 8, n(0)),
        poll(8, (0, HUP), (1, OUT | HUP)),
    ),
    S(
        "err-on-pipe-without-reader",
        "RDY-ERR-1 RDY-SRC-3",
        create(0, "pipe_w"),
        create(1, "pipe_w"),
        reg(0, 0, "w"),
        reg(1, 1, "r"),
        fill(1),
        poll(8, (0, OUT)),
        close_peer(0),
        close_peer(1),
        poll(8, (0, OUT | ERR), (1, ERR)),
        write_ours(0, 1, err("EPIPE")),
    ),
    S(
        "rdhup-only-when-asked",
        "RDY-RDHUP-1 RDY-RDHUP-2",
        create(0, "sock"),
        create(1, "sock"),
        reg(0, 0, "r", rdhup=True),
        reg(1, 1, "r"),
        shutdown_peer(0),
        shutdown_peer(1),
        poll(8, (0, IN | RDHUP), (1, IN)),
        read_ours(0, 8, n(0)),
        write_ours(0, 1),
    ),
    S(
        "read-and-eof",
        "RDY-SRC-1",
        create(0, "pipe_r"),
        read_ours(0, 8, err("EAGAIN")),
        write_peer(0, 3),
        read_ours(0, 2, n(2)),
        read_ours(0, 8, n(1)),
        read_ours(0, 8, err("EAGAIN")),
        write_peer(0, 1),
        close_peer(0),
        read_ours(0, 8, n(1)),
        read_ours(0, 8, n(0)),
    ),
    S(
        "epipe-after-peer-shut",
        "RDY-SRC-3",
        create(0, "sock"),
        close_peer(0),
        write_ours(0, 1, err("EPIPE")),
        create(1, "pipe_w"),
        close_peer(1),
        write_ours(1, 3, err("EPIPE")),
    ),
    S(
        "eventfd-counter",
        "RDY-SRC-4",
        create(0, "eventfd"),
        reg(0, 0, "rw"),
        read_ours(0, 8, err("EAGAIN")),
        write_ours(0, 3),
        write_ours(0, 1),
        read_ours(0, 8, n(4)),
        fill(0),
        poll(8, (0, IN)),
        write_ours(0, 1, err("EAGAIN")),
        read_ours(0, 8, n(0xFFFFFFFFFFFFFFFE)),
        poll(8, (0, OUT)),
    ),
    S(
        "close-with-unread-data-resets",
        "RDY-SRC-5",
        create(0, "sock"),
        reg(0, 0, "r"),
        write_ours(0, 3),
        close_peer(0),
        poll(8, (0, IN | HUP | ERR)),
        read_ours(0, 8, err("ECONNRESET")),
        poll(8, (0, IN | HUP)),
        read_ours(0, 8, n(0)),
        create(1, "sock"),
        write_peer(1, 2),
        close_ours(1),
        drain(1, err("ECONNRESET")),
    ),
    S(
        "max-events-cap-and-fill",
        "RDY-POLL-1 RDY-POLL-2",
        create(0, "eventfd"),
        create(1, "eventfd"),
        create(2, "eventfd"),
        reg(0, 0, "w"),
        reg(1, 1, "w"),
        reg(2, 2, "w"),
        poll(8, (0, OUT), (1, OUT), (2, OUT)),
        poll(2, (0, OUT), (1, OUT)),
        poll(2, (2, OUT), (0, OUT)),
    ),
    S(
        "capped-polls-rotate",
        "RDY-POLL-3",
        create(0, "eventfd"),
        create(1, "eventfd"),
        create(2, "eventfd"),
        reg(0, 0, "w"),
        reg(1, 1, "w"),
        reg(2, 2, "w"),
        poll(1, (0, OUT)),
        poll(1, (1, OUT)),
        poll(1, (2, OUT)),
        poll(2, (0, OUT), (1, OUT)),
        write_ours(2, 1),  # no edge for a W-only registration: stays in place
        poll(2, (2, OUT), (0, OUT)),
        poll(8, (0, OUT), (1, OUT), (2, OUT)),
    ),
    S(
        "max-events-zero-is-einval",
        "RDY-POLL-4",
        create(0, "eventfd"),
        reg(0, 0, "w"),
        poll_err(0, "EINVAL"),
        poll(8, (0, OUT)),
    ),
    S(
        "register-twice",
        "RDY-CTL-1 RDY-CTL-5",
        create(0, "pipe_r"),
        reg(0, 1, "r"),
        reg(0, 2, "w", expect=err("EEXIST")),
        write_peer(0, 1),
        poll(8, (1, IN)),
    ),
    S(
        "unknown-fd",
        "RDY-CTL-2 RDY-CTL-5",
        create(0, "pipe_r"),
        rereg(0, 1, "r", expect=err("ENOENT")),
        dereg(0, expect=err("ENOENT")),
        write_peer(0, 1),
        poll(8),
    ),
    S(
        "closed-fd",
        "RDY-CTL-3",
        create(0, "pipe_r"),
        close_ours(0),
        reg(0, 1, "r", expect=err("EBADF")),
        rereg(0, 1, "r", expect=err("EBADF")),
        dereg(0, expect=err("EBADF")),
    ),
    S(
        "regular-file",
        "RDY-CTL-4",
        create(0, "file"),
        reg(0, 1, "r", expect=err("EPERM")),
        dereg(0, expect=err("EPERM")),
    ),
    S(
        "deregister-forgets",
        "RDY-CTL-6",
        create(0, "pipe_r"),
        reg(0, 1, "r"),
        write_peer(0, 1),
        dereg(0),
        poll(8),
        reg(0, 2, "r"),
        poll(8, (2, IN)),
    ),
    S(
        "registration-belongs-to-the-open-file-description",
        "RDY-OFD-1",
        create(0, "pipe_r"),
        reg(0, 9, "r"),
        dup(0),
        close_ours(0),
        write_peer(0, 1),
        poll(8, (9, IN)),
        rereg(0, 9, "r", expect=err("EBADF")),
        dereg(0, expect=err("EBADF")),
        poll(8, (9, IN)),
    ),
    S(
        "last-close-removes",
        "RDY-OFD-2",
        create(0, "pipe_r"),
        reg(0, 9, "r"),
        dup(0),
        close_ours(0),
        close_dup(0),
        poll(8),
        create(1, "sock"),
        reg(1, 1, "w"),
        close_ours(1),
        poll(8),
    ),
    S(
        "nested-epoll-readable-while-inner-has-events",
        "RDY-NEST-1",
        create(0, "epoll_lt"),
        create(1, "epoll_et"),
        reg(0, 0, "r"),
        reg(1, 1, "r"),
        poll(8),
        write_ours(0, 1),
        write_ours(1, 1),
        poll(8, (0, IN), (1, IN)),
        read_ours(0, 8, n(1)),
        read_ours(1, 8, n(1)),
        poll(8, (0, IN)),  # the inner ET child's edge was consumed by the inner poll
        read_ours(1, 8, n(0)),
        write_ours(1, 1),
        poll(8, (0, IN), (1, IN)),
    ),
    S(
        "nested-epoll-every-inner-wakeup-is-an-outer-edge",
        "RDY-NEST-2",
        create(0, "epoll_lt"),
        reg(0, 4, "r", "et"),
        write_ours(0, 1),
        poll(8, (4, IN)),
        poll(8),
        write_ours(0, 1),  # the inner already had an event: still a new outer edge
        poll(8, (4, IN)),
        poll(8),
    ),
]
