"""The readiness machine: one epoll instance and a few sources in slots.

State
-----
A `World` is a fixed-size tuple of `Slot`s.  A slot holds one source (the
end we register, "ours", and for pipes and sockets its "peer" end) and its
registration, as small ints and bools:

    kind       NONE, PIPE_R (we hold the read end), PIPE_W (the write end),
               SOCK (one end of an AF_UNIX stream socketpair), EVENTFD, FILE,
               EPOLL_LT / EPOLL_ET (an inner epoll instance holding one
               eventfd, the "child", registered EPOLLIN level- or
               edge-triggered; rx is the child's counter, child_queued says
               whether the child is on the inner instance's ready list)
    ours/dup   our registered fd is open / a dup of it is open
    peer       the peer end is open;  peer_shut: the peer did shutdown(SHUT_WR)
    rx         bytes we can read (eventfd: its counter)
    tx, full   bytes we wrote that the peer has not read; written until EAGAIN
    err        a pending socket error (ECONNRESET: the peer closed with our
               data unread); peer_err: the same on the peer's side
    reg ...    registered, token, interest (r, w, rdhup), et, oneshot,
               armed (a oneshot not yet fired), queued and rank (the entry is
               on epoll's ready list, at this position: 0 is the head)

Edges and the ready list
------------------------
Linux delivers readiness through wake-ups of the file's wait queue, each with
a key (the events it is about; hang-ups have none and wake everyone).  A
wake-up whose key meets a registration's interest appends it to the tail of
the instance's ready list, unless it is already there (RDY-ET-4); so do
register and reregister of a ready source (RDY-ET-5).  A poll scans the list
from the head: an entry that is not ready is dropped, a ready one is
reported; a reported level-triggered entry goes back to the tail, an
edge-triggered or oneshot one leaves the list.  The scan stops once
max_events are reported, leaving the rest at the head (RDY-POLL-3).

Observations
------------
``("ok",)``, ``("n", count)``, ``("err", "EEXIST")`` ...; a poll observes a
sorted tuple of ``(slot, token, flags)``.  Targets see no slots: a target's
``project`` drops them (and may coarsen the flags, as `selectors` does).

Profiles
--------
``linux-epoll`` (option ``exact``) is the above.  ``portable`` reads the
same state more loosely: only a change from not ready to ready (or a
hang-up) queues a registration, spurious events are allowed, the order is
free (`poll_accepts`).  ``bsd-kqueue`` is its own machine (kqueue.py).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Mapping

from ..core import Action, Invariant, Machine, Outcome, Param, Profile
from ..logic import all_, any_, bits, ite, not_, rules_if
from . import rules as R

# epoll(7) event bits, with the kernel's values.
IN = 0x001
PRI = 0x002
OUT = 0x004
ERR = 0x008
HUP = 0x010
RDHUP = 0x2000
FLAG_NAMES = ((IN, "IN"), (PRI, "PRI"), (OUT, "OUT"), (ERR, "ERR"), (HUP, "HUP"), (RDHUP, "RDHUP"))

# Wake-up keys.  A hang-up wakes every waiter (no key).
KEY_ALL = -1

# Source kinds.
NONE, PIPE_R, PIPE_W, SOCK, EVENTFD, FILE, EPOLL_LT, EPOLL_ET = range(8)
KIND_NAMES = {
    NONE: "none",
    PIPE_R: "pipe_r",
    PIPE_W: "pipe_w",
    SOCK: "sock",
    EVENTFD: "eventfd",
    FILE: "file",
    EPOLL_LT: "epoll_lt",
    EPOLL_ET: "epoll_et",
}
EPOLLS = (EPOLL_LT, EPOLL_ET)
KIND_BY_NAME = {v: k for k, v in KIND_NAMES.items()}

# The value an eventfd counter holds when written until EAGAIN (eventfd(2)).
EVENTFD_MAX = 0xFFFFFFFFFFFFFFFE

# Parameter domains: small on purpose (the search explores their products).
SLOTS = 3
TOKENS = (0, 1, 2)
SIZES = (1, 3, 64)
MAX_EVENTS = (0, 1, 2, 8)  # 0 is EINVAL; 8 is more than there are slots
INTERESTS = ("r", "w", "rw")
MODES = ("lt", "et")


def flag_names(flags: int) -> str:
    return "|".join(name for bit, name in FLAG_NAMES if flags & bit) or "0"


@dataclass(frozen=True)
class Slot:
    kind: int = NONE
    ours: bool = False
    dup: bool = False
    peer: bool = False
    peer_shut: bool = False
    rx: int = 0
    tx: int = 0
    full: bool = False
    err: bool = False
    peer_err: bool = False
    child_queued: bool = False
    reg: bool = False
    token: int = 0
    r: bool = False
    w: bool = False
    rdhup: bool = False
    et: bool = False
    oneshot: bool = False
    armed: bool = False
    queued: bool = False
    rank: int = 0


UNREGISTERED = dict(
    reg=False, token=0, r=False, w=False, rdhup=False, et=False, oneshot=False, armed=False, queued=False, rank=0
)


@dataclass(frozen=True)
class World:
    slots: tuple[Slot, ...]

    def at(self, i: int) -> Slot:
        return self.slots[i]

    def put(self, i: int, slot: Slot) -> "World":
        return World(self.slots[:i] + (slot,) + self.slots[i + 1 :])


# ------------------------------------------------------------------ readiness


def alive(s: Slot) -> bool:
    """The open file description still exists (our fd or its dup is open)."""
    return any_(s.ours, s.dup)


def readiness(s: Slot) -> int:
    """The source's current poll mask (what f_op->poll would return)."""
    gone = not_(s.peer)
    eof = any_(s.peer_shut, gone)  # a socket's EOF
    # One case per kind, written as a conditional chain (a `match` the
    # symbolic reading turns into one term instead of a path per kind).
    return ite(
        s.kind == PIPE_R,
        # fs/pipe.c pipe_poll: IN when data, HUP when no writer is left.
        bits((s.rx > 0, IN), (gone, HUP)),
        ite(
            s.kind == PIPE_W,
            # OUT while not full, ERR when no reader is left.
            bits((not_(s.full), OUT), (gone, ERR)),
            ite(
                s.kind == SOCK,
                # net/unix/af_unix.c unix_poll.
                bits((any_(s.rx > 0, eof), IN), (eof, RDHUP), (gone, HUP), (not_(s.full), OUT), (s.err, ERR)),
                ite(
                    s.kind == EVENTFD,
                    bits((any_(s.rx > 0, s.full), IN), (not_(s.full), OUT)),
                    # fs/eventpoll.c ep_eventpoll_poll: readable while an entry on
                    # its ready list is really ready (RDY-NEST-1).
                    ite(any_(s.kind == EPOLL_LT, s.kind == EPOLL_ET), bits((all_(s.child_queued, s.rx > 0), IN)), 0),
                ),
            ),
        ),
    )


def mask(s: Slot) -> int:
    """The events a registration listens for: its interest plus HUP and ERR."""
    return bits((s.r, IN), (s.w, OUT), (s.rdhup, RDHUP), (True, HUP), (True, ERR))


def revents(s: Slot) -> int:
    return readiness(s) & mask(s)


def reportable(s: Slot) -> bool:
    """Would a poll with room report this registration now?"""
    return all_(s.reg, s.armed, s.queued, revents(s) != 0)


def enqueue(w: World, i: int) -> World:
    """Append registration ``i`` to the ready list's tail (if not on it)."""
    s = w.at(i)
    if s.queued:
        return w
    tail = max((t.rank + 1 for t in w.slots if t.queued), default=0)
    return w.put(i, replace(s, queued=True, rank=tail))


def dequeue_all(w: World, gone) -> World:
    """Take the registrations in ``gone`` off the list; renumber the rest 0..k-1."""
    order = sorted((t.rank, j) for j, t in enumerate(w.slots) if t.queued and j not in gone)
    rank = {j: r for r, (_old, j) in enumerate(order)}
    slots = tuple(
        replace(t, queued=j in rank, rank=rank.get(j, 0)) for j, t in enumerate(w.slots)
    )
    return World(slots)


def wake(w: World, i: int, key: int, p: Profile, before: Slot) -> World:
    """A wake-up of slot ``i``'s wait queue with ``key`` (RDY-ET-4).

    ``before`` is the slot before the operation.  Linux queues on every
    wake-up whose key meets the interest (RDY-ET-2, RDY-ET-4).  What every
    platform promises is less (RDY-ET-6): only a change from not ready to
    ready in the key's direction, or a hang-up, must produce an event; in the
    portable profile other wake-ups queue nothing (an event for them would be
    allowed anyway, as a spurious one).
    """
    s = w.at(i)
    hit = all_(s.reg, s.armed, any_(key == KEY_ALL, (key & mask(s)) != 0))
    new_edge = any_(key == KEY_ALL, (revents(before) & key) == 0)
    return ite(all_(hit, any_(p.exact, new_edge)), enqueue(w, i), w)


def wake_rules(s: Slot, key: int) -> tuple[str, ...]:
    """The rules a wake-up exercises: RDY-ET-4 when its key misses the interest."""
    missed = all_(s.reg, s.armed, s.et, key != KEY_ALL, (key & mask(s)) == 0)
    return ite(missed, (R.ET_KEY_FILTER,), ())


# ------------------------------------------------------------------- helpers


def ok(next_world: World, *rules: str) -> list[Outcome]:
    return [Outcome(("ok",), next_world, rules)]


def err(world: World, name: str, *rules: str) -> list[Outcome]:
    # A failed call changes nothing (RDY-CTL-5).
    return [Outcome(("err", name), world, rules)]


def _interest(args: Mapping[str, Any]) -> dict:
    mode = args["mode"]
    return dict(
        r="r" in args["interest"],
        w="w" in args["interest"],
        rdhup=args["rdhup"],
        et=mode == "et",
        oneshot=args["oneshot"],
    )


def _reg_requires(args) -> set[str]:
    need = {"level" if args["mode"] == "lt" else "edge"}
    if args["oneshot"]:
        need.add("oneshot")
    if args["rdhup"]:
        need.add("rdhup")
    return need


def _ctl_error(s: Slot, op: str) -> str | None:
    """The errno epoll_ctl fails with, checked in the kernel's order."""
    if not s.ours:
        return "EBADF"
    if s.kind == FILE:
        return "EPERM"
    if op == "add" and s.reg:
        return "EEXIST"
    if op != "add" and not s.reg:
        return "ENOENT"
    return None


_ERROR_RULE = {"EBADF": R.CTL_EBADF, "EPERM": R.CTL_EPERM, "EEXIST": R.CTL_EEXIST, "ENOENT": R.CTL_ENOENT}


# ------------------------------------------------------------------- actions

P_SLOT = Param("slot", tuple(range(SLOTS)))
P_N = Param("n", SIZES)
P_REG = (
    P_SLOT,
    Param("token", TOKENS),
    Param("interest", INTERESTS),
    Param("mode", MODES),
    Param("oneshot", (False, True)),
    Param("rdhup", (False, True)),
)


# create ----------------------------------------------------------------------


def create_pre(w: World, a, p) -> bool:
    s = w.at(a["slot"])
    return all_(not_(alive(s)), not_(s.peer))


def create_outcomes(w: World, a, p) -> list[Outcome]:
    k = KIND_BY_NAME[a["kind"]]
    has_peer = k in (PIPE_R, PIPE_W, SOCK)
    return ok(w.put(a["slot"], Slot(kind=k, ours=True, peer=has_peer)))


CREATE = Action(
    "create",
    (P_SLOT, Param("kind", ("pipe_r", "pipe_w", "sock", "eventfd", "file", "epoll_lt", "epoll_et"))),
    create_pre,
    create_outcomes,
    requires=lambda w, a: frozenset(
        {"eventfd"} if a["kind"] == "eventfd" else {"errors"} if a["kind"] == "file" else {"nested"} if "epoll" in a["kind"] else ()
    ),
    doc="Open a new source in an empty slot (pipe: we keep the read or the write end; socketpair; eventfd; a "
    "regular file; an inner epoll instance with one eventfd registered in it).",
)


# register / reregister / deregister ---------------------------------------------


def register_outcomes(w: World, a, p) -> list[Outcome]:
    i = a["slot"]
    s = w.at(i)
    e = _ctl_error(s, "add")
    if all_(e == "EEXIST", not_(p.exact)):
        # kqueue's EV_ADD modifies an existing registration: either is portable.
        return err(w, e, R.CTL_UNCHANGED) + reregister_outcomes(w, a, p)
    if all_(e == "EPERM", not_(p.exact)):
        # kqueue accepts regular files (always ready): either is portable.
        return err(w, e, R.CTL_UNCHANGED) + _registered(w, i, s, a)
    if e:
        return err(w, e, _ERROR_RULE[e], R.CTL_UNCHANGED) if e != "EEXIST" or not s.armed or not s.oneshot else err(
            w, e, R.CTL_EEXIST, R.ONESHOT_STAYS, R.CTL_UNCHANGED
        )
    return _registered(w, i, s, a)


def _registered(w: World, i: int, s: Slot, a) -> list[Outcome]:
    n = replace(s, reg=True, token=a["token"], armed=True, queued=False, rank=0, **_interest(a))
    # ep_insert polls the file: a ready source is queued at once (RDY-ET-5).
    ready = revents(n) != 0
    nw = ite(ready, enqueue(w.put(i, n), i), w.put(i, n))
    return ok(nw, *rules_if((True, R.EV_TOKEN), (all_(n.et, ready), R.ET_CTL_IS_EDGE)))


def register_requires(w: World, a) -> frozenset[str]:
    need = _reg_requires(a)
    if _ctl_error(w.at(a["slot"]), "add"):
        need.add("errors")
    return frozenset(need)


REGISTER = Action(
    "register",
    P_REG,
    lambda w, a, p: w.at(a["slot"]).kind != NONE,
    register_outcomes,
    rules=(R.CTL_EEXIST, R.CTL_EBADF, R.CTL_EPERM),
    requires=register_requires,
    doc="epoll_ctl(EPOLL_CTL_ADD) of our fd with a token, an interest and a mode.",
    weight=4,
)


def reregister_outcomes(w: World, a, p) -> list[Outcome]:
    i = a["slot"]
    s = w.at(i)
    e = _ctl_error(s, "mod")
    if all_(e == "ENOENT", not_(p.exact)):
        # kqueue has no "modify only": reregister may register.
        return err(w, e, R.CTL_UNCHANGED) + register_outcomes(w, a, p)
    if all_(e == "EPERM", not_(p.exact)):
        # kqueue accepts regular files: an unregistered one is ENOENT there.
        return err(w, e, R.CTL_UNCHANGED) + err(w, "ENOENT", R.CTL_UNCHANGED)
    if e:
        return err(w, e, _ERROR_RULE[e], R.CTL_UNCHANGED)
    was_disarmed = all_(s.oneshot, not_(s.armed))
    n = replace(s, token=a["token"], armed=True, **_interest(a))
    # ep_modify polls the file and queues a ready source that is not queued.
    nw = ite(revents(n) != 0, enqueue(w.put(i, n), i), w.put(i, n))
    rules = rules_if(
        (True, R.EV_TOKEN),
        (was_disarmed, R.ONESHOT_REARM),
        (was_disarmed, R.ONESHOT_STAYS),
        (all_(n.et, revents(n) != 0), R.ET_CTL_IS_EDGE),
    )
    return ok(nw, *rules)


def reregister_requires(w: World, a) -> frozenset[str]:
    need = _reg_requires(a)
    if _ctl_error(w.at(a["slot"]), "mod"):
        need.add("errors")
    return frozenset(need)


REREGISTER = Action(
    "reregister",
    P_REG,
    lambda w, a, p: w.at(a["slot"]).kind != NONE,
    reregister_outcomes,
    rules=(R.CTL_ENOENT, R.CTL_EBADF, R.CTL_EPERM),
    requires=reregister_requires,
    doc="epoll_ctl(EPOLL_CTL_MOD): new token, interest and mode; re-arms a oneshot registration.",
    weight=2,
)


def deregister_outcomes(w: World, a, p) -> list[Outcome]:
    i = a["slot"]
    s = w.at(i)
    e = _ctl_error(s, "del")
    if all_(e == "EPERM", not_(p.exact)):
        return err(w, e, R.CTL_UNCHANGED) + err(w, "ENOENT", R.CTL_UNCHANGED)
    if e:
        return err(w, e, _ERROR_RULE[e], R.CTL_UNCHANGED)
    rules = rules_if((True, R.CTL_DEREGISTER), (all_(s.oneshot, not_(s.armed)), R.ONESHOT_STAYS))
    return ok(dequeue_all(w.put(i, replace(s, **UNREGISTERED)), ()), *rules)


DEREGISTER = Action(
    "deregister",
    (P_SLOT,),
    lambda w, a, p: w.at(a["slot"]).kind != NONE,
    deregister_outcomes,
    rules=(R.CTL_ENOENT, R.CTL_EBADF),
    requires=lambda w, a: frozenset({"errors"} if _ctl_error(w.at(a["slot"]), "del") else ()),
    doc="epoll_ctl(EPOLL_CTL_DEL).",
)


# source operations ----------------------------------------------------------------


def write_peer_outcomes(w: World, a, p) -> list[Outcome]:
    i, n = a["slot"], a["n"]
    s = w.at(i)
    if s.peer_shut:
        return [Outcome(("err", "EPIPE"), w, (R.SRC_EPIPE,))]
    # Every write is a new edge for the reader (RDY-ET-2).
    nxt = wake(w.put(i, replace(s, rx=s.rx + n)), i, IN, p, s)
    rules = (R.SRC_WRITE,) + ite(all_(s.rx > 0, s.et), (R.ET_EVERY_WRITE,), ()) + wake_rules(s, IN)
    return [Outcome(("n", n), nxt, rules)]


WRITE_PEER = Action(
    "write_peer",
    (P_SLOT, P_N),
    lambda w, a, p: all_(w.at(a["slot"]).kind in (PIPE_R, SOCK), w.at(a["slot"]).peer, alive(w.at(a["slot"]))),
    write_peer_outcomes,
    doc="The peer writes n bytes towards our end.",
    weight=3,
)


def read_ours_outcomes(w: World, a, p) -> list[Outcome]:
    i, n = a["slot"], a["n"]
    s = w.at(i)
    if s.kind in EPOLLS:
        # epoll_wait on the inner instance: reports the child if ready; an
        # edge-triggered child then leaves the inner ready list.
        ready = all_(s.child_queued, s.rx > 0)
        stays = all_(ready, s.kind == EPOLL_LT)
        return [Outcome(("n", ite(ready, 1, 0)), w.put(i, replace(s, child_queued=stays)), (R.NEST_READABLE,))]
    if s.kind == EVENTFD:
        if any_(s.rx > 0, s.full):
            value = ite(s.full, EVENTFD_MAX, s.rx)
            # eventfd_read wakes writers with EPOLLOUT.
            nxt = wake(w.put(i, replace(s, rx=0, full=False)), i, OUT, p, s)
            return [Outcome(("n", value), nxt, (R.SRC_EVENTFD,) + wake_rules(s, OUT))]
        return [Outcome(("err", "EAGAIN"), w, (R.SRC_EVENTFD,))]
    if s.rx > 0:
        k = min(n, s.rx)
        return [Outcome(("n", k), w.put(i, replace(s, rx=s.rx - k)), (R.SRC_READ,))]
    if s.err:
        # The pending error is reported once the queue is empty, and cleared.
        return [Outcome(("err", "ECONNRESET"), w.put(i, replace(s, err=False)), (R.SRC_RESET,))]
    if any_(not_(s.peer), s.peer_shut):
        return [Outcome(("n", 0), w, (R.SRC_READ, R.EOF_READABLE) if s.kind == SOCK else (R.SRC_READ,))]
    return [Outcome(("err", "EAGAIN"), w, (R.SRC_READ,))]


READ_OURS = Action(
    "read_ours",
    (P_SLOT, P_N),
    lambda w, a, p: all_(w.at(a["slot"]).kind in (PIPE_R, SOCK, EVENTFD) + EPOLLS, alive(w.at(a["slot"]))),
    read_ours_outcomes,
    doc="We read up to n bytes (an eventfd read takes the whole counter; an inner epoll: epoll_wait on it, observing how many events).",
    weight=2,
)


def write_ours_outcomes(w: World, a, p) -> list[Outcome]:
    i, n = a["slot"], a["n"]
    s = w.at(i)
    if s.kind in EPOLLS:
        # A write to the child queues it on the inner list and wakes the
        # inner instance's pollers with EPOLLIN, queued or not (RDY-NEST-2).
        nxt = wake(w.put(i, replace(s, rx=s.rx + n, child_queued=True)), i, IN, p, s)
        rules = (R.NEST_READABLE,) + ite(all_(s.reg, s.et, s.child_queued, s.rx > 0), (R.NEST_EDGE,), ())
        return [Outcome(("n", n), nxt, rules)]
    if s.kind == EVENTFD:
        if s.full:
            return [Outcome(("err", "EAGAIN"), w, (R.SRC_EVENTFD,))]
        rules = (R.SRC_EVENTFD,) + ite(all_(s.rx > 0, s.et), (R.ET_EVERY_WRITE,), ()) + wake_rules(s, IN)
        return [Outcome(("n", n), wake(w.put(i, replace(s, rx=s.rx + n)), i, IN, p, s), rules)]
    if not s.peer:
        return [Outcome(("err", "EPIPE"), w, (R.SRC_EPIPE,))]
    if s.full:
        return [Outcome(("err", "EAGAIN"), w, (R.SRC_WRITE,))]
    # Writing does not wake our own wait queue (it wakes the peer's).
    return [Outcome(("n", n), w.put(i, replace(s, tx=s.tx + n)), (R.SRC_WRITE,))]


WRITE_OURS = Action(
    "write_ours",
    (P_SLOT, P_N),
    lambda w, a, p: all_(w.at(a["slot"]).kind in (PIPE_W, SOCK, EVENTFD) + EPOLLS, alive(w.at(a["slot"]))),
    write_ours_outcomes,
    doc="We write n bytes (to an eventfd: add n; to an inner epoll: add n to its child eventfd).",
    weight=2,
)


def fill_ours_outcomes(w: World, a, p) -> list[Outcome]:
    i = a["slot"]
    s = w.at(i)
    if s.kind == EVENTFD:
        return ok(wake(w.put(i, replace(s, full=True, rx=0)), i, IN, p, s), R.SRC_EVENTFD, *wake_rules(s, IN))
    return ok(w.put(i, replace(s, full=True)), R.SRC_WRITE)


FILL_OURS = Action(
    "fill_ours",
    (P_SLOT,),
    lambda w, a, p: all_(
        w.at(a["slot"]).kind in (PIPE_W, SOCK, EVENTFD),
        alive(w.at(a["slot"])),
        not_(w.at(a["slot"]).full),
        any_(w.at(a["slot"]).kind == EVENTFD, w.at(a["slot"]).peer),
    ),
    fill_ours_outcomes,
    doc="We write until EAGAIN (an eventfd up to 0xfffffffffffffffe).",
)


def read_peer_outcomes(w: World, a, p) -> list[Outcome]:
    i, n = a["slot"], a["n"]
    s = w.at(i)
    if all_(s.tx == 0, s.peer_err):
        return [Outcome(("err", "ECONNRESET"), w.put(i, replace(s, peer_err=False)), (R.SRC_RESET,))]
    if s.tx > 0:
        k = min(n, s.tx)
        nxt = replace(s, tx=s.tx - k)
        out = [Outcome(("n", k), w.put(i, nxt), (R.SRC_WRITE,))]
        if s.kind == SOCK:
            # Whether this read frees a whole skb (and wakes our writers with
            # EPOLLOUT) depends on how the kernel split our writes: both allowed.
            out.append(Outcome(("n", k), wake(w.put(i, nxt), i, OUT, p, s), (R.SRC_WRITE,) + wake_rules(s, OUT)))
        return out
    if not alive(s):
        return [Outcome(("n", 0), w, (R.SRC_READ,))]
    return [Outcome(("err", "EAGAIN"), w, (R.SRC_READ,))]


READ_PEER = Action(
    "read_peer",
    (P_SLOT, P_N),
    # A partial read of a filled buffer is left out: whether it frees space is
    # the kernel's buffer accounting, not a readiness rule.
    lambda w, a, p: all_(w.at(a["slot"]).kind in (PIPE_W, SOCK), w.at(a["slot"]).peer, not_(w.at(a["slot"]).full)),
    read_peer_outcomes,
    doc="The peer reads up to n bytes of what we wrote.",
)


def drain_peer_outcomes(w: World, a, p) -> list[Outcome]:
    i = a["slot"]
    s = w.at(i)
    nxt = replace(s, tx=0, full=False, peer_err=False)
    if s.peer_err:
        # The peer reads what is queued, then the reset.
        return [Outcome(("err", "ECONNRESET"), w.put(i, nxt), (R.SRC_RESET,))]
    if s.full:
        # Space appears: our writers are woken with EPOLLOUT (RDY-ET-6).
        return ok(wake(w.put(i, nxt), i, OUT, p, s), R.SRC_WRITE, R.ET_DRAIN, *wake_rules(s, OUT))
    if all_(s.kind == SOCK, s.tx > 0):
        return ok(w.put(i, nxt), R.SRC_WRITE) + ok(wake(w.put(i, nxt), i, OUT, p, s), R.SRC_WRITE, *wake_rules(s, OUT))
    return ok(w.put(i, nxt), R.SRC_WRITE)


DRAIN_PEER = Action(
    "drain_peer",
    (P_SLOT,),
    lambda w, a, p: all_(w.at(a["slot"]).kind in (PIPE_W, SOCK), w.at(a["slot"]).peer),
    drain_peer_outcomes,
    doc="The peer reads everything we wrote, until EAGAIN.",
)


def shutdown_peer_outcomes(w: World, a, p) -> list[Outcome]:
    i = a["slot"]
    s = w.at(i)
    return ok(wake(w.put(i, replace(s, peer_shut=True)), i, KEY_ALL, p, s), R.RDHUP_ASKED, R.EOF_READABLE)


SHUTDOWN_PEER = Action(
    "shutdown_peer",
    (P_SLOT,),
    lambda w, a, p: all_(w.at(a["slot"]).kind == SOCK, w.at(a["slot"]).peer, not_(w.at(a["slot"]).peer_shut)),
    shutdown_peer_outcomes,
    doc="The peer calls shutdown(SHUT_WR).",
)


def close_peer_outcomes(w: World, a, p) -> list[Outcome]:
    i = a["slot"]
    s = w.at(i)
    nxt = replace(s, peer=False)
    # A pipe's write end sees ERR when the reader goes, the others HUP.
    rules = (ite(s.kind == PIPE_W, R.ERR_ALWAYS, R.HUP_ALWAYS),)
    if s.kind == SOCK:
        # The peer's receive queue (our unread writes) is freed with it, and
        # freeing unread data resets the connection (net/unix unix_release_sock).
        unread = any_(s.tx > 0, s.full)
        nxt = replace(nxt, tx=0, full=False, err=unread)
        rules = rules + ((R.SRC_RESET,) if unread else ())
    return ok(wake(w.put(i, nxt), i, KEY_ALL, p, s), *rules)


CLOSE_PEER = Action(
    "close_peer",
    (P_SLOT,),
    lambda w, a, p: all_(w.at(a["slot"]).kind in (PIPE_R, PIPE_W, SOCK), w.at(a["slot"]).peer),
    close_peer_outcomes,
    doc="The peer end is closed.",
)


DUP_OURS = Action(
    "dup_ours",
    (P_SLOT,),
    lambda w, a, p: all_(w.at(a["slot"]).ours, not_(w.at(a["slot"]).dup)),
    lambda w, a, p: ok(w.put(a["slot"], replace(w.at(a["slot"]), dup=True))),
    requires=lambda w, a: frozenset({"dup"}),
    doc="dup() our fd: a second fd for the same open file description.",
)


def _close(w: World, i: int, s: Slot, rules) -> list[Outcome]:
    if not alive(s):
        # The last fd of the description is gone: epoll forgets it (RDY-OFD-2);
        # a socket closed with unread data resets its peer (RDY-SRC-5).
        unread = all_(s.kind == SOCK, s.rx > 0, s.peer)
        s = replace(s, rx=0, peer_err=any_(s.peer_err, unread), **UNREGISTERED)
        return ok(dequeue_all(w.put(i, s), ()), R.OFD_LAST_CLOSE, *ite(unread, (R.SRC_RESET,), ()))
    return ok(w.put(i, s), *rules)


def _close_requires(w: World, a) -> frozenset[str]:
    # Closing an fd that is still registered is what the open-file-description
    # rules are about; some reactors (selectors) forbid it.
    return frozenset({"ofd"} if w.at(a["slot"]).reg else ())


CLOSE_OURS = Action(
    "close_ours",
    (P_SLOT,),
    lambda w, a, p: w.at(a["slot"]).ours,
    lambda w, a, p: _close(w, a["slot"], replace(w.at(a["slot"]), ours=False), (R.OFD_KEEPS,)),
    requires=_close_requires,
    doc="close() our registered fd (a dup may keep the file open).",
)

CLOSE_DUP = Action(
    "close_dup",
    (P_SLOT,),
    lambda w, a, p: w.at(a["slot"]).dup,
    lambda w, a, p: _close(w, a["slot"], replace(w.at(a["slot"]), dup=False), ()),
    requires=lambda w, a: frozenset({"dup"}) | _close_requires(w, a),
    doc="close() the dup.",
)


# poll ------------------------------------------------------------------------------


def disarm(s: Slot) -> Slot:
    """A oneshot registration after its event: disabled until re-armed (RDY-ONESHOT-1)."""
    return replace(s, armed=False)


def scan(w: World, m: int) -> tuple[tuple[int, ...], World]:
    """One epoll_wait: scan the ready list from its head (ep_send_events).

    Returns the reported slots, in order, and the state afterwards.
    """
    order = [j for _r, j in sorted((t.rank, j) for j, t in enumerate(w.slots) if t.queued)]
    reported: list[int] = []
    dropped: set[int] = set()
    requeue: list[int] = []
    for j in order:
        if len(reported) >= m:
            break  # the rest stay at the head, in order
        s = w.at(j)
        dropped.add(j)
        if not reportable(s):
            continue  # not ready: dropped from the list
        reported.append(j)
        if s.oneshot:
            w = w.put(j, disarm(s))
        elif not s.et:
            requeue.append(j)  # level-triggered: back to the tail
    w = dequeue_all(w, dropped)
    for j in requeue:
        w = enqueue(w, j)
    return tuple(reported), w


def poll_event(i: int, s: Slot) -> tuple[int, int, int]:
    return (i, s.token, revents(s))


def poll_outcomes(w: World, a, p: Profile) -> list[Outcome]:
    m = a["max_events"]
    if m < 1:
        return [Outcome(("err", "EINVAL"), w, (R.POLL_EINVAL,))]
    reported, after = scan(w, m)
    obs = tuple(sorted(poll_event(i, w.at(i)) for i in reported))
    return [Outcome(obs, after, _poll_rules(w, reported, m))]


def _poll_rules(w: World, reported, m) -> tuple[str, ...]:
    n_ready = 0
    for s in w.slots:
        n_ready = n_ready + ite(reportable(s), 1, 0)
    capped = n_ready > m
    pairs = [(True, r) for r in (R.POLL_CAP, R.EV_TOKEN, R.EV_FLAGS, R.EV_NOT_READY, R.EV_ONE_PER_REG)]
    pairs += [(capped, R.POLL_FILL), (capped, R.POLL_FAIR)]
    for i in reported:
        s = w.at(i)
        rev = revents(s)
        pairs += [
            (not_(s.et), R.LT_REPORT),
            (s.et, R.ET_ONCE),
            (s.oneshot, R.ONESHOT_ONCE),
            ((rev & HUP) != 0, R.HUP_ALWAYS),
            ((rev & ERR) != 0, R.ERR_ALWAYS),
            ((rev & RDHUP) != 0, R.RDHUP_ASKED),
            (all_(s.et, (rev & (IN | OUT)) == IN | OUT), R.ET_WHOLE_READINESS),
            (all_(not_(s.ours), s.dup), R.OFD_KEEPS),
        ]
    for s in w.slots:
        pairs += [
            (all_(s.reg, not_(s.armed)), R.ONESHOT_ONCE),
            (all_(s.reg, s.et, s.armed, not_(s.queued), revents(s) != 0), R.ET_ONCE),
        ]
    return rules_if(*pairs)


def poll_explain(w: World, a, p: Profile, obs) -> tuple[str, ...]:
    """Name the rules an observed poll result breaks, event by event."""
    m = a["max_events"]
    if m < 1:
        return (R.POLL_EINVAL,)
    if not isinstance(obs, tuple) or (obs and isinstance(obs[0], str)):
        return (R.POLL_CAP,)
    reported, _after = scan(w, m)
    missing = [(w.at(i).token, revents(w.at(i)), i) for i in reported]
    extra = [(e[-2], e[-1]) for e in obs]
    broken: list[str] = []
    if len(extra) > m:
        broken.append(R.POLL_CAP)
    for t, f, i in list(missing):  # as expected
        if (t, f) in extra:
            extra.remove((t, f))
            missing.remove((t, f, i))

    def pair(same):
        for t, f in list(extra):
            for te, fe, i in missing:
                if same(t, f, te, fe):
                    extra.remove((t, f))
                    missing.remove((te, fe, i))
                    yield t, f, te, fe, w.at(i)
                    break

    for _t, _f, _te, _fe, _s in pair(lambda t, f, te, fe: f == fe):
        broken.append(R.EV_TOKEN)  # the right event under the wrong token
    for _t, f, _te, fe, s in pair(lambda t, f, te, fe: t == te):
        diff = f ^ fe  # the right token with the wrong flags
        for bit, rid in ((HUP, R.HUP_ALWAYS), (ERR, R.ERR_ALWAYS), (RDHUP, R.RDHUP_ASKED)):
            if diff & bit:
                broken.append(rid)
        broken.append(R.ET_WHOLE_READINESS if s.et and diff & (IN | OUT) else R.EV_FLAGS)
    for t, _f in extra:  # reported, but nothing should have been
        regs = [s for s in w.slots if s.reg and s.token == t]
        if not regs:
            broken.append(R.CTL_DEREGISTER)
        elif sum(1 for x, _ in obs_pairs(obs) if x == t) > len(regs):
            broken.append(R.EV_ONE_PER_REG)
        for s in regs:
            if not s.armed:
                broken.append(R.ONESHOT_ONCE)
            elif not revents(s):
                broken.append(R.EV_NOT_READY)
            elif s.et and not s.queued:
                broken.append(R.ET_ONCE)
            else:
                broken.append(R.POLL_FAIR)
    for _t, _f, i in missing:  # due, but not reported
        s = w.at(i)
        if len(obs) >= m:
            broken.append(R.POLL_FAIR)
        elif not s.et:
            broken.append(R.LT_REPORT)
        else:
            broken.append(R.ET_EVERY_WRITE if s.rx > 0 and s.kind != PIPE_W else R.ET_DRAIN)
        if s.oneshot:
            broken.append(R.ONESHOT_REARM)
        if not s.ours and s.dup:
            broken.append(R.OFD_KEEPS)
    # POLL-2 is about capped polls only: more reportable than max_events.
    if sum(1 for s in w.slots if reportable(s)) > m and len(obs) < m:
        broken.append(R.POLL_FILL)
    if not broken and not missing and not extra:
        return (R.POLL_FAIR,)  # the right events in another order
    return tuple(dict.fromkeys(broken)) or (R.EV_NOT_READY,)


def obs_pairs(obs):
    return [(e[-2], e[-1]) for e in obs]


def poll_accepts(w: World, a, p: Profile, obs):
    """Membership for the portable profile, where the outcome set is too
    large to list: spurious events are allowed (RDY-EV-4), event order and
    the ready-list rotation are not promised.  Returns None in linux-epoll
    (the listed outcomes decide)."""
    if p.exact:
        return None
    m = a["max_events"]
    if m < 1:
        # epoll says EINVAL; kevent with no room just returns nothing.
        return [(w, (R.POLL_CAP,))] if obs in (("err", "EINVAL"), ()) else []
    if not isinstance(obs, tuple) or (obs and isinstance(obs[0], str)):
        return []
    if len(obs) > m:
        return []
    required = [i for i, s in enumerate(w.slots) if reportable(s)]
    results = []
    # Give each event to a registration with its token that may report it:
    # armed, and flags within what it listens for (kqueue may report the read
    # and the write filter of one registration as two events).
    options = []
    for token, flags in obs:
        fits = [i for i, s in enumerate(w.slots) if s.reg and s.armed and s.token == token and flags & ~mask(s) == 0]
        if not fits:
            return []
        options.append(fits)
    rules = (R.POLL_CAP, R.POLL_FILL, R.EV_SPURIOUS, R.EV_TOKEN, R.LT_REPORT, R.ET_DRAIN)
    if any(s.reg and s.oneshot for s in w.slots):
        rules += (R.ONESHOT_ONCE,)
    seen = set()
    for assign in _assignments(options):
        counts = {i: assign.count(i) for i in set(assign)}
        if any(c > 2 for c in counts.values()):
            continue
        reported = set(assign)
        need = min(m, len(required))
        # No lost wake-up while there is room; a full poll may be taken up
        # by spurious events (nothing portable promises fairness).
        if len(obs) < need or (len(obs) < m and not set(required) <= reported):
            continue
        nw = w
        for i in reported:
            s = nw.at(i)
            if s.oneshot:
                nw = nw.put(i, disarm(s))
        gone = [i for i in reported if nw.at(i).et or nw.at(i).oneshot]
        nw = dequeue_all(nw, gone)
        stale = [i for i, s in enumerate(nw.slots) if s.queued and not reportable(s)]
        for k in range(len(stale) + 1):
            for drop in _subsets(stale, k):
                n2 = dequeue_all(nw, drop)
                if n2 not in seen:
                    seen.add(n2)
                    results.append((n2, rules))
    return results


def _assignments(options):
    if not options:
        yield ()
        return
    for first in options[0]:
        for rest in _assignments(options[1:]):
            yield (first,) + rest


def _subsets(items, k):
    if k == 0:
        yield ()
        return
    for j in range(len(items)):
        for rest in _subsets(items[j + 1 :], k - 1):
            yield (items[j],) + rest


POLL = Action(
    "poll",
    (Param("max_events", MAX_EVENTS, weights=(1, 4, 4, 4)),),
    lambda w, a, p: True,
    poll_outcomes,
    explain=poll_explain,
    accepts=poll_accepts,
    # What the portable profile's relation (poll_accepts) may name, besides the listed outcomes' rules.
    rules=(R.POLL_CAP, R.POLL_FILL, R.EV_SPURIOUS, R.EV_TOKEN, R.LT_REPORT, R.ET_DRAIN, R.ONESHOT_ONCE),
    weight=5,
    requires=lambda w, a: frozenset(
        {"errors"} if a["max_events"] < 1 else {"cap"} if a["max_events"] < SLOTS else ()
    ),
    doc="epoll_wait(max_events, timeout 0).",
)


# ------------------------------------------------------------------- profiles

PROFILES = (
    Profile(
        R.LINUX,
        R.AREA,
        "Linux epoll exactly, as measured on Linux 6.x: no spurious events, event flags exact, every write an edge.",
        {"exact": True},
    ),
    Profile(
        R.PORTABLE,
        R.AREA,
        "What a cross-platform reactor may promise (mio's contract, epoll or kqueue): spurious events allowed, "
        "no event order, a new edge only when a source goes from not ready to ready, EEXIST/ENOENT optional.",
        {"exact": False},
    ),
)


# ----------------------------------------------------------------- invariants


def _inv_disarmed_not_queued(w: World, p) -> bool:
    return all(any_(s.armed, not_(s.queued)) or not s.reg for s in w.slots)


def _inv_unregistered_clean(w: World, p) -> bool:
    return all(any_(s.reg, all_(not_(s.queued), not_(s.armed))) for s in w.slots)


def _inv_ranks(w: World, p) -> bool:
    ranks = sorted(s.rank for s in w.slots if s.queued)
    return ranks == list(range(len(ranks)))


def _inv_dead_unregistered(w: World, p) -> bool:
    return all(any_(alive(s), not_(s.reg)) for s in w.slots)


# The two below are the ones the proofs (asyncspec.model) need: the shape,
# which the symbolic reading assumes of every state it explores, and a lemma
# without which the readiness rows are not inductive.  They are written with
# the logic helpers only (no Python and/or/if on state), so that reading
# builds one term for each.


def _inv_kinds_agree(w: World, p) -> bool:
    out = []
    for s in w.slots:
        k = s.kind
        sock = k == SOCK
        out += [
            any_(not_(s.peer_shut), sock),
            any_(not_(s.err), sock),
            any_(not_(s.peer_err), sock),
            any_(not_(s.peer_err), not_(alive(s))),
            any_(not_(s.full), k == PIPE_W, sock, k == EVENTFD),
            any_(not_(s.child_queued), k == EPOLL_LT, k == EPOLL_ET),
            any_(s.tx == 0, k == PIPE_W, sock),
            any_(not_(s.peer), k == PIPE_R, k == PIPE_W, sock),
            any_(k != NONE, all_(not_(s.ours), not_(s.dup), not_(s.peer), not_(s.reg))),
        ]
    return all_(*out)


def _inv_shape(w: World, p) -> bool:
    n = len(w.slots)
    return all_(
        *[
            all_(s.kind >= NONE, s.kind <= EPOLL_ET, s.rx >= 0, s.tx >= 0, s.rank >= 0, s.rank < n, s.token >= 0, s.token < len(TOKENS))
            for s in w.slots
        ]
    )


INVARIANTS = (
    Invariant(R.ONESHOT_ONCE, _inv_disarmed_not_queued, "A disarmed oneshot registration is not on the ready list."),
    Invariant(R.POLL_FAIR, _inv_ranks, "The ready list's positions are 0..k-1."),
    Invariant(R.CTL_DEREGISTER, _inv_unregistered_clean, "An unregistered slot has no queued edge and is not armed."),
    Invariant(R.OFD_LAST_CLOSE, _inv_dead_unregistered, "A source with no open fd has no registration."),
    Invariant(
        R.SRC_RESET,
        _inv_kinds_agree,
        "A slot's fields are the ones its kind uses (a closed slot holds nothing); a reset peer means our end is closed.",
    ),
    Invariant(R.POLL_FAIR, _inv_shape, "Every slot's kind, counters, token and ready-list position are in their domains."),
)


def describe(w: World) -> str:
    parts = []
    for i, s in enumerate(w.slots):
        if s.kind == NONE:
            continue
        fds = "+".join(x for x, on in (("ours", s.ours), ("dup", s.dup), ("peer", s.peer)) if on) or "closed"
        text = f"[{i}] {KIND_NAMES[s.kind]} {fds}"
        if s.peer_shut:
            text += " peer-shut"
        if s.rx:
            text += f" rx={s.rx}"
        if s.tx:
            text += f" tx={s.tx}"
        if s.full:
            text += " full"
        if s.err:
            text += " err"
        if s.child_queued:
            text += " child-queued"
        text += f" ready={flag_names(readiness(s))}"
        if s.reg:
            interest = ("r" if s.r else "") + ("w" if s.w else "") + ("+rdhup" if s.rdhup else "")
            mode = ("et" if s.et else "lt") + ("/oneshot" if s.oneshot else "")
            text += f" reg(token={s.token} {interest} {mode}"
            text += "" if s.armed else " disarmed"
            text += f" queued#{s.rank}" if s.queued else ""
            text += ")"
        parts.append(text)
    return "; ".join(parts) or "(no sources)"


def show(obs) -> str:
    """An observation as text: "ok", "n 3", "err EAGAIN", "[token 1: IN|OUT]"."""
    if isinstance(obs, tuple) and obs and isinstance(obs[0], str):
        return " ".join(str(x) for x in obs)
    if isinstance(obs, tuple):
        if not obs:
            return "no events"
        return "[" + ", ".join(f"token {e[-2]}: {flag_names(e[-1])}" for e in obs) + "]"
    return repr(obs)


MACHINE = Machine(
    area=R.AREA,
    dialect="epoll",
    init=lambda p: World(tuple(Slot() for _ in range(SLOTS))),
    actions=(
        CREATE,
        REGISTER,
        REREGISTER,
        DEREGISTER,
        WRITE_PEER,
        READ_OURS,
        WRITE_OURS,
        FILL_OURS,
        READ_PEER,
        DRAIN_PEER,
        SHUTDOWN_PEER,
        CLOSE_PEER,
        DUP_OURS,
        CLOSE_OURS,
        CLOSE_DUP,
        POLL,
    ),
    profiles=PROFILES,
    invariants=INVARIANTS,
    default_profile=R.LINUX,
    describe=describe,
    show=show,
)
