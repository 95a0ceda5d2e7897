"""The readiness rows, in a small world (`SLOTS` slots, linux-epoll).

Properties of runs (what a poll reported since what) are invariants of the
machine with a monitor beside it (`SlotWatch`, ghost state the conformance
suite does not keep); the spec's own invariants, its shape and the lemma
that makes them inductive among them, are the spec's
(`asyncspec.spec.readiness.machine.INVARIANTS`), read on the state part.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache

from ...spec.logic import all_, any_, not_
from ...spec.readiness import MACHINE
from ...spec.readiness import machine as RM
from ..machine import Symbolic, Watched, watched
from ..trace import run_of
from . import Property, cti_text

# The small world: this many slots (sources with their registration).
SLOTS = 2

# A refuted induction searches for a run from the initial state this deep.
CX_DEPTH = 8


@dataclass(frozen=True)
class SlotWatch:
    """A monitor's record of one slot's run (ghost state beside the spec's)."""

    fired: bool = False  # a oneshot event of its registration was seen since it was last armed
    twice: bool = False  # ... and then another
    waiting: bool = False  # a read got EAGAIN since its last event with IN (drained)


def watch(g, name, args, before, obs, after):
    """The monitor's step: what the observations say about each slot."""
    out = []
    for i, sw in enumerate(g):
        if name == "poll" and not (obs and isinstance(obs[0], str)):
            events = [e for e in obs if e[0] == i]
            if events:
                sw = replace(
                    sw,
                    twice=any_(sw.twice, sw.fired),
                    fired=any_(sw.fired, before.slots[i].oneshot),
                    waiting=all_(sw.waiting, (events[0][2] & RM.IN) == 0),
                )
        elif name in ("register", "reregister") and args["slot"] == i and obs == ("ok",):
            sw = replace(sw, fired=False)  # armed again
        elif name == "read_ours" and args["slot"] == i and obs == ("err", "EAGAIN"):
            sw = replace(sw, waiting=True)
        out.append(sw)
    return tuple(out)


def _on_state(pred):
    """A predicate of the spec's state, read on the watched one."""
    return lambda w, p: pred(w.state, p)


def shape(w, p):
    return RM._inv_shape(w.state, p)


def lemmas():
    """The spec's invariants (but the shape, which the reading assumes and checks anyway)."""
    return [_on_state(i.holds) for i in RM.INVARIANTS if i.holds is not RM._inv_shape]


def no_second_oneshot_event(w, p):
    """RDY-ONESHOT-1: no oneshot registration reported twice without being armed again."""
    return all_(*[not_(g.twice) for g in w.ghost])


def fired_is_disarmed(w, p):
    """Lemma: after its event, a oneshot registration is disarmed until armed again."""
    return all_(*[any_(not_(g.fired), not_(s.armed)) for g, s in zip(w.ghost, w.state.slots)])


def drained_is_queued(w, p):
    """RDY-ET-6: a drained source (read until EAGAIN since its last IN event) that is
    readable again has its armed edge-triggered read registration on the ready list."""
    return all_(
        *[
            any_(not_(all_(g.waiting, s.reg, s.et, s.armed, s.r, (RM.readiness(s) & RM.IN) != 0)), s.queued)
            for g, s in zip(w.ghost, w.state.slots)
        ]
    )


def lt_ready_is_queued(w, p):
    """RDY-LT-1: an armed level-triggered registration whose source is ready is on the
    ready list (so every poll with room reports it)."""
    return all_(*[any_(not_(all_(s.reg, s.armed, not_(s.et), RM.revents(s) != 0)), s.queued) for s in w.state.slots])


def events_are_ready(before, name, args, obs, after):
    """RDY-EV-3: each event of a poll is a registration that was armed and ready,
    with its token and its ready events."""
    if name != "poll" or (obs and isinstance(obs[0], str)):
        return True
    conds = []
    for i, token, flags in obs:
        s = before.state.slots[i]
        conds.append(all_(s.reg, s.armed, RM.revents(s) != 0, flags == RM.revents(s), token == s.token))
    return all_(*conds)


def machine(spec_machine=None):
    """The spec's machine with the monitor beside it."""
    return watched(spec_machine or MACHINE, tuple(SlotWatch() for _ in range(SLOTS)), watch)


def build_reading(spec_machine=None):
    n = SLOTS
    m = machine(spec_machine)
    world = Watched(RM.World(tuple(RM.Slot() for _ in range(n))), tuple(SlotWatch() for _ in range(n)))
    return Symbolic(m, m.profile(), world, shape, index_range=range(0, n), init=world, domains={"slot": tuple(range(n))})


reading = lru_cache(maxsize=None)(build_reading)


def _joint(sym):
    """One induction for every readiness row's invariants together (with the
    lemmas): when the conjunction is inductive, each row holds in every
    reachable state.  Remembered on the reading, for the rows after the first."""
    if not hasattr(sym, "_joint"):
        every = [i for prop in PROPERTIES if prop.check is not None for i in getattr(prop.check, "invariants", ())]
        sym._joint = sym.induction(lemmas() + every)
    return sym._joint


def induction(invs, rules, text, spec_machine=None):
    def check():
        sym = reading(spec_machine)
        joint_ok, _cti, joint_detail = _joint(sym)
        if joint_ok:
            return True, joint_detail + ", one induction with the other readiness rows"
        # Not together: this row alone, with the lemmas.
        ok, cti, detail = sym.induction(lemmas() + list(invs))
        if ok:
            return True, detail
        detail += ": " + cti_text(sym, cti)
        # Does a run from the initial state break the property itself (its
        # first predicate; the others are lemmas)?
        run_ok, cx, _ = sym.bmc(invs[0], CX_DEPTH)
        if run_ok:
            return False, detail + f" (no run from the initial state breaks it within {CX_DEPTH} steps)"
        steps = " -> ".join(f"{a}{args}" for a, args in cx.steps)
        spec = spec_machine or MACHINE
        run = run_of(spec, MACHINE.profile(), cx.steps, cx.choices, rules, text)
        return False, f"broken by a run from the initial state: {steps}", run

    check.invariants = tuple(invs)
    return check


def poll_steps(prop, spec_machine=None):
    """Every poll step of the small world satisfies ``prop(before, name, args, obs, after)``."""
    def check():
        sym = reading(spec_machine)
        ok, cti, detail = sym.step_property(prop, actions=("poll",))
        if not ok:
            detail += ": " + cti_text(sym, cti)
        return ok, detail

    return check


_W = f"{SLOTS} slots"
PROPERTIES = [
    Property(
        "readiness", ("RDY-ONESHOT-1",), "a oneshot registration is reported at most once per arming",
        f"induction ({_W}, linux-epoll)",
        induction([no_second_oneshot_event, fired_is_disarmed], ("RDY-ONESHOT-1",), "reported twice without re-arming"),
        "readiness", cost=11,  # the joint induction, which the other induction rows reuse
    ),
    Property(
        "readiness", ("RDY-EV-3",), "a poll reports only armed, ready registrations, with their token and ready events",
        f"step ({_W}, linux-epoll)", poll_steps(events_are_ready), "readiness",
    ),
    Property(
        "readiness", ("RDY-LT-1",), "an armed level-triggered registration that is ready is on the ready list",
        f"induction ({_W}, linux-epoll)",
        induction([lt_ready_is_queued], ("RDY-LT-1",), "ready but not queued"), "readiness", cost=0,
    ),
    Property(
        "readiness", ("RDY-ET-6",), "edge-triggered, read until EAGAIN: readable data is never stranded without an event",
        f"induction ({_W}, linux-epoll)",
        induction([drained_is_queued], ("RDY-ET-6",), "drained, readable again, no event queued"), "readiness", cost=0,
    ),
]
