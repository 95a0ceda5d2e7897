"""The `bsd-kqueue` profile: kqueue(2)'s readiness, to the man page.

kqueue registers *filters*, not fds: EVFILT_READ and EVFILT_WRITE of one fd
are two separate knotes, each with its own udata (the token) and flags:

    EV_ADD       add, or modify an existing knote (never a duplicate); enables it
    EV_ENABLE    let kevent() return it;  EV_DISABLE: not (the filter still runs)
    EV_DELETE    remove it
    EV_CLEAR     after it is returned, its state is reset: returned again only
                 after new activity on the source (an edge)
    EV_ONESHOT   returned once, then deleted
    EV_DISPATCH  disabled as soon as it is returned, until EV_ENABLE
    EV_EOF       set in a returned event when the source's other end is gone:
                 EVFILT_READ after the last writer closed or the peer shut
                 down (data = bytes still readable), EVFILT_WRITE after the
                 reader closed

Without EV_CLEAR a knote is level-triggered.  close(fd) removes every knote
of that fd, even while a dup keeps the file open (unlike epoll's
registrations, which belong to the open file description).

This machine can NOT be run against a kernel here (there is no kqueue on
Linux): it is kept exact to the FreeBSD/macOS kqueue(2) manual page and is
checked only by hand-written scenarios against the model.  Where the manual
says nothing (which of several ready knotes a capped kevent returns, the
write filter's exact buffer space), the machine allows every choice.

The sources (pipes, socketpairs and their operations) are the readiness
machine's own: a `KWorld` holds that machine's `World` for them, so a source
behaves the same under both profiles, and adds the knotes.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace

from ..core import Action, Machine, Outcome, Param, Profile
from ..logic import all_, any_, ite, not_
from . import machine as E
from .rules import (
    AREA,
    KQUEUE,
    KQ_FILTERS,
    KQ_LEVEL,
    KQ_CLEAR,
    KQ_ONESHOT,
    KQ_DISPATCH,
    KQ_EOF,
    KQ_ADD_MODIFIES,
    KQ_ERRORS,
    KQ_CLOSE,
    KQ_NEVENTS,
    KQ_DATA,
    KQ_DISABLED,
)

READ, WRITE = 0, 1
FILTERS = ("read", "write")
FILTER_NAMES = ("EVFILT_READ", "EVFILT_WRITE")


@dataclass(frozen=True)
class Knote:
    reg: bool = False
    token: int = 0
    enabled: bool = False
    clear: bool = False
    oneshot: bool = False
    dispatch: bool = False
    fresh: bool = False  # activity since it was last returned (EV_CLEAR)


NO_KNOTE = Knote()


@dataclass(frozen=True)
class KWorld:
    src: E.World  # the sources, as the readiness machine has them
    knotes: tuple[tuple[Knote, Knote], ...]

    def kn(self, i: int, f: int) -> Knote:
        return self.knotes[i][f]

    def put_kn(self, i: int, f: int, k: Knote) -> "KWorld":
        pair = list(self.knotes[i])
        pair[f] = k
        return KWorld(self.src, self.knotes[:i] + (tuple(pair),) + self.knotes[i + 1 :])


def read_eof(s: E.Slot) -> bool:
    return any_(not_(s.peer), s.peer_shut)


def condition(s: E.Slot, f: int) -> bool:
    if f == READ:
        return any_(s.rx > 0, read_eof(s))
    return any_(not_(s.full), not_(s.peer))


def eof(s: E.Slot, f: int) -> bool:
    return ite(f == READ, read_eof(s), not_(s.peer))


def returnable(w: KWorld, i: int, f: int) -> bool:
    k = w.kn(i, f)
    return all_(k.reg, k.enabled, condition(w.src.at(i), f), any_(not_(k.clear), k.fresh))


def _filter_ok(kind: int, f: int) -> bool:
    return kind in ((E.PIPE_R, E.SOCK) if f == READ else (E.PIPE_W, E.SOCK))


# ------------------------------------------------------------------ actions

P_SLOT = E.P_SLOT
P_FILTER = Param("filter", FILTERS)
KINDS = ("pipe_r", "pipe_w", "sock")


def _activity(before: E.Slot, after: E.Slot) -> tuple[bool, bool]:
    """Did the operation touch the read / the write side (new activity)?"""
    read = any_(after.rx > before.rx, read_eof(after) != read_eof(before))
    write = any_(after.tx < before.tx, after.full != before.full, after.peer != before.peer)
    return read, write


def _source_step(name: str):
    """Lift one of the readiness machine's source operations."""
    inner = E.MACHINE.action(name)
    profile = E.MACHINE.profile(E.R.LINUX)

    def pre(w: KWorld, a, p) -> bool:
        return all_(w.src.at(a["slot"]).kind != E.NONE, inner.pre(w.src, a, profile))

    def outcomes(w: KWorld, a, p) -> list[Outcome]:
        i = a["slot"]
        out = []
        for o in inner.outcomes(w.src, a, profile):
            before, after = w.src.at(i), o.next.at(i)
            nw = KWorld(o.next, w.knotes)
            touched = _activity(before, after)
            for f in (READ, WRITE):
                k = nw.kn(i, f)
                if touched[f] and k.reg:
                    nw = nw.put_kn(i, f, replace(k, fresh=True))
            if name == "close_ours" and not after.ours:
                # close(fd) removes that fd's knotes, dup or no dup (RDY-KQ-9).
                nw = nw.put_kn(i, READ, NO_KNOTE).put_kn(i, WRITE, NO_KNOTE)
            rules: tuple[str, ...] = ()  # the sources' own rules are the epoll machine's
            if name == "close_ours" and any(w.kn(i, f).reg for f in (READ, WRITE)):
                rules += (KQ_CLOSE,)
            if any(touched) and any(w.kn(i, f).clear for f in (READ, WRITE)):
                rules += (KQ_CLEAR,)
            out.append(Outcome(o.obs, nw, rules))
        return out

    return Action(name, inner.params, pre, outcomes, weight=inner.weight, doc=inner.doc)


def create_outcomes(w: KWorld, a, p) -> list[Outcome]:
    o = E.MACHINE.action("create").outcomes(w.src, a, E.MACHINE.profile(E.R.LINUX))[0]
    i = a["slot"]
    return [Outcome(o.obs, KWorld(o.next, w.knotes).put_kn(i, READ, NO_KNOTE).put_kn(i, WRITE, NO_KNOTE))]


CREATE = Action(
    "create",
    (P_SLOT, Param("kind", KINDS)),
    lambda w, a, p: E.create_pre(w.src, a, p),
    create_outcomes,
    weight=2,
    doc="Open a pipe (keeping one end) or a socketpair in an empty slot.",
)


def _change_error(w: KWorld, i: int, f: int, needs_knote: bool) -> str | None:
    s = w.src.at(i)
    if not s.ours:
        return "EBADF"
    if all_(needs_knote, not_(w.kn(i, f).reg)):
        return "ENOENT"
    return None


def add_outcomes(w: KWorld, a, p) -> list[Outcome]:
    i, f = a["slot"], FILTERS.index(a["filter"])
    e = _change_error(w, i, f, False)
    if e:
        return [Outcome(("err", e), w, (KQ_ERRORS,))]
    old = w.kn(i, f)
    k = Knote(
        reg=True,
        token=a["token"],
        enabled=True,
        clear=a["clear"],
        oneshot=a["oneshot"],
        dispatch=a["dispatch"],
        # The filter runs when attached: a ready source is returned once.
        fresh=True,
    )
    rules = (KQ_FILTERS,) + ((KQ_ADD_MODIFIES,) if old.reg else ())
    return [Outcome(("ok",), w.put_kn(i, f, k), rules)]


P_FLAGS = (Param("clear", (False, True)), Param("oneshot", (False, True)), Param("dispatch", (False, True)))

ADD = Action(
    "kev_add",
    (P_SLOT, P_FILTER, Param("token", E.TOKENS)) + P_FLAGS,
    lambda w, a, p: all_(w.src.at(a["slot"]).kind != E.NONE, _filter_ok(w.src.at(a["slot"]).kind, FILTERS.index(a["filter"]))),
    add_outcomes,
    weight=4,
    doc="EV_ADD of one filter with a udata token and EV_CLEAR / EV_ONESHOT / EV_DISPATCH.",
)


def _simple_change(kind: str):
    def outcomes(w: KWorld, a, p) -> list[Outcome]:
        i, f = a["slot"], FILTERS.index(a["filter"])
        e = _change_error(w, i, f, True)
        if e:
            return [Outcome(("err", e), w, (KQ_ERRORS,) + ((KQ_ONESHOT,) if e == "ENOENT" else ()))]
        k = w.kn(i, f)
        if kind == "delete":
            return [Outcome(("ok",), w.put_kn(i, f, NO_KNOTE), (KQ_FILTERS,))]
        enabled = kind == "enable"
        rules = (KQ_DISPATCH,) if k.dispatch and enabled and not k.enabled else ()
        rules += (KQ_DISABLED,) if k.fresh and enabled and not k.enabled else ()
        return [Outcome(("ok",), w.put_kn(i, f, replace(k, enabled=enabled)), rules or (KQ_DISABLED,))]

    return outcomes


def _change_action(kind: str, flag: str) -> Action:
    return Action(
        f"kev_{kind}",
        (P_SLOT, P_FILTER),
        lambda w, a, p: all_(w.src.at(a["slot"]).kind != E.NONE, _filter_ok(w.src.at(a["slot"]).kind, FILTERS.index(a["filter"]))),
        _simple_change(kind),
        doc=f"{flag} of one filter.",
    )


DELETE = _change_action("delete", "EV_DELETE")
ENABLE = _change_action("enable", "EV_ENABLE")
DISABLE = _change_action("disable", "EV_DISABLE")


def kevent_event(w: KWorld, i: int, f: int):
    s = w.src.at(i)
    data = s.rx if f == READ else -1  # -1: the write buffer's room, which the manual does not fix
    return (w.kn(i, f).token, FILTER_NAMES[f], eof(s, f), data)


def kevent_outcomes(w: KWorld, a, p) -> list[Outcome]:
    n = a["nevents"]
    ready = [(i, f) for i in range(len(w.knotes)) for f in (READ, WRITE) if returnable(w, i, f)]
    out = []
    for chosen in itertools.combinations(ready, min(n, len(ready))):
        nw = w
        rules = [KQ_NEVENTS]
        for i, f in chosen:
            k = nw.kn(i, f)
            if k.oneshot:
                nw = nw.put_kn(i, f, NO_KNOTE)
                rules.append(KQ_ONESHOT)
                continue
            rules.append(KQ_CLEAR if k.clear else KQ_LEVEL)
            if k.dispatch:
                rules.append(KQ_DISPATCH)
            nw = nw.put_kn(i, f, replace(k, enabled=ite(k.dispatch, False, k.enabled), fresh=False))
            if eof(w.src.at(i), f):
                rules.append(KQ_EOF)
            if f == READ:
                rules.append(KQ_DATA)
        obs = tuple(sorted(kevent_event(w, i, f) for i, f in chosen))
        out.append(Outcome(obs, nw, tuple(dict.fromkeys(rules))))
    return out


KEVENT = Action(
    "kevent",
    (Param("nevents", (0, 1, 2, 8), weights=(1, 3, 3, 4)),),
    lambda w, a, p: True,
    kevent_outcomes,
    weight=5,
    doc="kevent() with no changes, room for nevents events, timeout 0.",
)

SOURCE_OPS = tuple(
    _source_step(name)
    for name in (
        "write_peer",
        "read_ours",
        "write_ours",
        "fill_ours",
        "read_peer",
        "drain_peer",
        "shutdown_peer",
        "close_peer",
        "dup_ours",
        "close_ours",
        "close_dup",
    )
)


def describe(w: KWorld) -> str:
    parts = []
    for i, s in enumerate(w.src.slots):
        if s.kind == E.NONE:
            continue
        text = E.describe(E.World((s,))).replace("[0]", f"[{i}]", 1)
        for f in (READ, WRITE):
            k = w.kn(i, f)
            if k.reg:
                flags = [n for n, on in (("clear", k.clear), ("oneshot", k.oneshot), ("dispatch", k.dispatch)) if on]
                state = ("" if k.enabled else " disabled") + (" fresh" if k.fresh else "")
                text += f" {FILTERS[f]}(token={k.token}{' ' + '+'.join(flags) if flags else ''}{state})"
        parts.append(text)
    return "; ".join(parts) or "(no sources)"


def show(obs) -> str:
    if isinstance(obs, tuple) and obs and isinstance(obs[0], str):
        return " ".join(str(x) for x in obs)
    if not obs:
        return "no events"
    return "[" + ", ".join(
        f"token {t}: {flt}{' EV_EOF' if e else ''}{f' data={d}' if d >= 0 else ''}" for t, flt, e, d in obs
    ) + "]"


MACHINE = Machine(
    area=AREA,
    dialect="kqueue",
    init=lambda p: KWorld(E.MACHINE.init(E.MACHINE.profile(E.R.LINUX)), tuple((NO_KNOTE, NO_KNOTE) for _ in range(E.SLOTS))),
    actions=(CREATE, ADD, DELETE, ENABLE, DISABLE) + SOURCE_OPS + (KEVENT,),
    profiles=(
        Profile(
            KQUEUE,
            AREA,
            "BSD/macOS kqueue, exact to the kqueue(2) manual; cannot be run against a kernel on Linux.",
            {"exact": True},
        ),
    ),
    default_profile=KQUEUE,
    describe=describe,
    show=show,
)
