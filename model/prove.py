"""`asyncspec prove`: the properties proved from the spec, one table.

Each property names its rules, its method, and is checked on the spec's own
definitions: `asyncspec.model.symbolic` runs the machines' Python on z3
values (the fiber layout is read with z3 integers).  Methods:

induction
    the property (with the lemmas it needs, which are proved with it) holds
    initially and after every step from every state where it holds -- so in
    every reachable state; a failure gives a counterexample to induction,
    and then a run from the initial state is searched for (BMC) and returned.
step
    every step from every well-formed state satisfies the property.
BMC depth k
    no run of up to k steps breaks it (from the states the row names).
quantified
    a fact over all integers in the stated range, proved by z3.

A property that does not hold prints its counterexample; a run from the
initial state that breaks it comes back as plain data (`trace.Run`), which
the caller may write as a replayable counterexample file (``save``; the
``--out`` of `asyncspec prove`).  What is not proved is listed as such with
the reason, so the table is the honest state of the formal layer.  Adding
a property is one `Property` entry in `PROPERTIES`.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Callable

import z3

from .trace import Run

PROVED, REFUTED, NOT_YET = "proved", "REFUTED", "not yet"

# A refuted induction searches for a run from the initial state this deep.
CX_DEPTH = 8


@dataclass
class Property:
    area: str
    rules: tuple[str, ...]
    name: str
    method: str
    # None: not proved yet (``method`` says why, after "not yet: ").  Else it
    # returns (ok, detail) or (ok, detail, run or None), where a run
    # (`trace.Run`) is a run from the initial state that breaks it, as data.
    check: Callable[[], tuple] | None
    # Properties of one group run in one process, in order (they share the
    # machine's symbolic reading); groups run in parallel.
    group: str = ""


@dataclass
class Outcome:
    prop: Property
    status: str
    detail: str
    seconds: float
    files: dict = field(default_factory=dict)  # counterexample files, by kind (json, itf, dot, svg)
    run: Run | None = None  # a refuted property's run from the initial state


# ------------------------------------------------------------------ fiber


def _fiber_alignment() -> tuple[bool, str]:
    from ..spec.fiber import layout

    top = z3.Int("top")
    s = z3.Solver()
    s.add(top >= 0, top < 2**64, z3.Not((layout.x86_entry_sp(top) + 8) % 16 == 0))
    if s.check() == z3.sat:
        return False, f"top = {s.model()[top]}: rsp+8 = {s.model().eval(layout.x86_entry_sp(top) + 8)} is not 16-aligned"
    s = z3.Solver()
    s.add(top >= 0, top < 2**64, z3.Not(layout.a64_entry_sp(top) % 16 == 0))
    if s.check() == z3.sat:
        return False, f"top = {s.model()[top]} (AArch64)"
    return True, "every 64-bit top"


def _fiber_guard() -> tuple[bool, str]:
    from ..spec.fiber import layout

    base, size = z3.Ints("base size")
    _guard_lo, guard_hi, bottom, top, ok = layout.mapped_stack(base * layout.PAGE, size)
    s = z3.Solver()
    s.add(base >= 0, base < 2**52, size < 2**40, ok)
    s.add(z3.Not(z3.And(guard_hi <= bottom, bottom < top, top - bottom >= size)))
    if s.check() == z3.sat:
        return False, str(s.model())
    return True, "every page-aligned mapping below 2^64, every size >= the minimum"


SEEDS = 15  # reg_values's patterns are distinct bytes for seeds below this


def _fiber_callee_saved() -> tuple[bool, str]:
    """The regs action's allowed observation: each context reads back its own
    six values.  Proved: for every seed, the twelve values are distinct and
    non-zero, so a switch that loses, swaps or zeroes any one callee-saved
    register gives an observation outside the allowed one."""
    from ..spec.fiber import MACHINE

    p = MACHINE.profile()
    seed = z3.Int("seed")
    regs = MACHINE.action("regs")
    w = MACHINE.init(p)
    (outcome,) = regs.outcomes(w, {"seed": seed}, p)
    _tag, fiber, main = outcome.obs
    values = list(fiber) + list(main)
    s = z3.Solver()
    s.add(seed >= 0, seed < SEEDS)
    s.add(z3.Not(z3.And(z3.Distinct(*values), *[v != 0 for v in values])))
    if s.check() == z3.sat:
        m = s.model()
        return False, f"seed {m[seed]}: two registers hold the same value ({[m.eval(v) for v in values]})"
    assert all(x in range(SEEDS) for x in regs.params[0].domain)
    return True, f"every seed below {SEEDS}: 12 distinct non-zero values (the switcher's code is tested against it, not proved)"


# ------------------------------------------------------------------ waker

WAKER_GROUPS = {
    "vtable": ("make", "new", "noop", "clone", "drop", "wake", "wake_by_ref", "forget"),
    "queries": ("will_wake", "clone_from", "context"),
    "executor": ("poll", "drop_join"),
    "atomic": ("aw_register", "aw_store", "aw_unlock", "aw_check", "aw_set", "aw_take", "aw_take_end", "aw_wake", "aw_round"),
}


def waker_invariants():
    """The waker machine's invariants, the lemma among them (all but WAK-AW-4, a property of rounds)."""
    from ..spec.waker import MACHINE
    from ..spec.waker import machine as WM

    return [i.holds for i in MACHINE.invariants if i.holds is not WM._inv_no_lost_wakeup]


@lru_cache(maxsize=None)
def waker_reading(group: str, machine=None):
    from ..spec.logic import all_
    from ..spec.waker import MACHINE
    from .machine import Symbolic

    machine = machine or MACHINE
    p = machine.profile()
    invs = waker_invariants()
    chosen = [a for a in machine.actions if a.name in WAKER_GROUPS[group]]
    return Symbolic(machine, p, machine.init(p), lambda w, p: all_(*[i(w, p) for i in invs]), actions=chosen, index_range=range(-2, 3))


def _waker_induction(group: str, machine=None):
    def check():
        sym = waker_reading(group, machine)
        ok, cx, detail = sym.induction(waker_invariants())
        if not ok:
            detail += ": " + _cti_text(sym, cx)
        return ok, detail

    return check


def _round_start(w, p):
    from ..spec.logic import all_

    return all_(w.aw.c_pc == 0, w.aw.p_pc == 0)


def _no_lost_wakeup(machine=None, depth: int = 8):
    def check():
        from ..spec.waker import machine as WM

        sym = waker_reading("atomic", machine)
        ok, cx, detail = sym.bmc(WM._inv_no_lost_wakeup, depth, _round_start)
        if not ok:
            detail += ": " + _cti_text(sym, cx)
        return ok, detail

    return check


# --------------------------------------------------------------- readiness

# The small world: this many slots (sources with their registration).
READINESS_SLOTS = 2


@dataclass(frozen=True)
class SlotWatch:
    """A monitor's record of one slot's run (ghost state beside the spec's)."""

    fired: bool = False  # a oneshot event of its registration was seen since it was last armed
    twice: bool = False  # ... and then another
    waiting: bool = False  # a read got EAGAIN since its last event with IN (drained)


def watch_readiness(g, name, args, before, obs, after):
    """The monitor's step: what the observations say about each slot."""
    from ..spec.logic import all_, any_
    from ..spec.readiness import machine as RM

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


def _readiness_shape(w, p):
    """The spec's shape, read on the watched state."""
    from ..spec.readiness import machine as RM

    return RM._inv_shape(w.state, p)


def _spec_invariants():
    """The spec's invariants, its lemma among them (but the shape, which the reading assumes)."""
    from ..spec.readiness import machine as RM

    return [lambda w, p, i=i: i.holds(w.state, p) for i in RM.INVARIANTS if i.holds is not RM._inv_shape]


def _no_second_oneshot_event(w, p):
    """RDY-ONESHOT-1: no oneshot registration reported twice without being armed again."""
    from ..spec.logic import all_, not_

    return all_(*[not_(g.twice) for g in w.ghost])


def _fired_is_disarmed(w, p):
    """Lemma: after its event, a oneshot registration is disarmed until armed again."""
    from ..spec.logic import all_, any_, not_

    return all_(*[any_(not_(g.fired), not_(s.armed)) for g, s in zip(w.ghost, w.state.slots)])


def _drained_is_queued(w, p):
    """RDY-ET-6: a drained source (read until EAGAIN since its last IN event) that is
    readable again has its armed edge-triggered read registration on the ready list."""
    from ..spec.logic import all_, any_, not_
    from ..spec.readiness import machine as RM

    return all_(
        *[
            any_(not_(all_(g.waiting, s.reg, s.et, s.armed, s.r, (RM.readiness(s) & RM.IN) != 0)), s.queued)
            for g, s in zip(w.ghost, w.state.slots)
        ]
    )


def _lt_ready_is_queued(w, p):
    """RDY-LT-1: an armed level-triggered registration whose source is ready is on the
    ready list (so every poll with room reports it)."""
    from ..spec.logic import all_, any_, not_
    from ..spec.readiness import machine as RM

    return all_(*[any_(not_(all_(s.reg, s.armed, not_(s.et), RM.revents(s) != 0)), s.queued) for s in w.state.slots])


def _events_are_ready(before, name, args, obs, after):
    """RDY-EV-3: each event of a poll is a registration that was armed and ready,
    with its token and its ready events."""
    from ..spec.logic import all_
    from ..spec.readiness import machine as RM

    if name != "poll" or (obs and isinstance(obs[0], str)):
        return True
    conds = []
    for i, token, flags in obs:
        s = before.state.slots[i]
        conds.append(all_(s.reg, s.armed, RM.revents(s) != 0, flags == RM.revents(s), token == s.token))
    return all_(*conds)


def readiness_machine(spec_machine=None):
    from ..spec.readiness import MACHINE
    from .machine import watched

    return watched(spec_machine or MACHINE, tuple(SlotWatch() for _ in range(READINESS_SLOTS)), watch_readiness)


def build_readiness_reading(spec_machine=None):
    from ..spec.readiness import machine as RM
    from .machine import Symbolic, Watched

    n = READINESS_SLOTS
    machine = readiness_machine(spec_machine)
    world = Watched(RM.World(tuple(RM.Slot() for _ in range(n))), tuple(SlotWatch() for _ in range(n)))
    return Symbolic(
        machine, machine.profile(), world, _readiness_shape, index_range=range(0, n), init=world, domains={"slot": tuple(range(n))}
    )


readiness_reading = lru_cache(maxsize=None)(build_readiness_reading)


def _readiness_lemmas():
    return _spec_invariants()


def _readiness_joint(sym):
    """One induction for every readiness row's invariants together (with the
    lemmas): when the conjunction is inductive, each row holds in every
    reachable state.  Remembered on the reading, for the rows after the first."""
    if not hasattr(sym, "_joint"):
        every = [i for prop in PROPERTIES if prop.check is not None for i in getattr(prop.check, "invariants", ())]
        sym._joint = sym.induction(_readiness_lemmas() + every)
    return sym._joint


def _readiness_induction(invs, rules, text, spec_machine=None):
    def check():
        from ..spec.readiness import MACHINE

        sym = readiness_reading(spec_machine)
        joint_ok, _cti, joint_detail = _readiness_joint(sym)
        if joint_ok:
            return True, joint_detail + ", one induction with the other readiness rows"
        # Not together: this row alone, with the lemmas.
        ok, cti, detail = sym.induction(_readiness_lemmas() + list(invs))
        if ok:
            return True, detail
        detail += ": " + _cti_text(sym, cti)
        # Does a run from the initial state break the property itself (its
        # first predicate; the others are lemmas)?
        run_ok, cx, _ = sym.bmc(invs[0], CX_DEPTH)
        if run_ok:
            return False, detail + f" (no run from the initial state breaks it within {CX_DEPTH} steps)"
        steps = " -> ".join(f"{a}{args}" for a, args in cx.steps)
        from .trace import run_of

        run = run_of(spec_machine or MACHINE, MACHINE.profile(), cx.steps, cx.choices, rules, text)
        return False, f"broken by a run from the initial state: {steps}", run

    check.invariants = tuple(invs)
    return check


def _readiness_steps(prop, spec_machine=None):
    def check():
        sym = readiness_reading(spec_machine)
        ok, cti, detail = sym.step_property(prop, actions=("poll",))
        if not ok:
            detail += ": " + _cti_text(sym, cti)
        return ok, detail

    return check


# ------------------------------------------------------------------ pin


@lru_cache(maxsize=None)
def pin_reading(machine=None):
    from ..spec.pin import MACHINE
    from ..spec.pin import machine as PM
    from .machine import Symbolic

    machine = machine or MACHINE
    p = machine.profile()
    return Symbolic(machine, p, machine.init(p), PM._inv_shape, index_range=range(0, PM.V))


def _pin_invariants(machine=None):
    def check():
        from ..spec.pin import machine as PM

        sym = pin_reading(machine)
        ok, cx, detail = sym.induction([PM._inv_shape, PM._inv_pinned_stays])
        if not ok:
            detail += ": " + _cti_text(sym, cx)
        return ok, detail

    return check


def _safe_steps_keep_pinned_values(before, name, args, obs, after):
    """A safe step never moves a pinned !Unpin value, and drops one only in place."""
    from ..spec.logic import all_, any_, ite, not_
    from ..spec.pin import machine as PM

    _errors, _result, drops = obs
    kept = [any_(b.moved, not_(a.moved)) for b, a in zip(before.vals, after.vals)]
    in_place = [
        ite(all_(before.vals[v].kind == PM.PINNED, before.vals[v].pinned, not_(before.vals[v].moved)), how == PM.IN_PLACE, True)
        for v, how in drops
    ]
    return all_(*kept, *in_place)


def _pin_safe_steps(machine=None):
    def check():
        sym = pin_reading(machine)
        safe = [a.name for a in sym.machine.actions if a.name != "unsafe_move"]
        ok, cx, detail = sym.step_property(_safe_steps_keep_pinned_values, actions=safe)
        if not ok:
            detail += ": " + _cti_text(sym, cx)
        return ok, detail

    return check


def _cti_text(sym, cx) -> str:
    describe = sym.machine.describe
    steps = " -> ".join(f"{a}{args}" for a, args in cx.steps)
    return f"{steps} from {describe(cx.states[0])}" + (f", to {describe(cx.states[-1])}" if len(cx.states) > 1 else "")


# ------------------------------------------------------------------ the table

_W = f"{READINESS_SLOTS} slots"
PROPERTIES = [
    Property("fiber", ("FIB-X86-1", "FIB-A64-1"), "entry alignment of the aligned-down top", "quantified (64-bit)", _fiber_alignment, "fiber"),
    Property("fiber", ("FIB-STACK-1",), "the usable range never overlaps the guard page", "quantified (64-bit)", _fiber_guard, "fiber"),
    Property(
        "fiber",
        ("FIB-X86-2",),
        "callee-saved registers: the regs check tells any lost, swapped or zeroed one",
        f"quantified (seeds < {SEEDS}), check only",
        _fiber_callee_saved,
        "fiber",
    ),
    Property(
        "waker", ("WAK-TASK-6", "WAK-VT-7"), "refcount, freed, queue, shape invariants: make, new, noop, clone, drop, wake, wake_by_ref, forget",
        "induction", _waker_induction("vtable"), "waker-vtable",
    ),
    Property(
        "waker", ("WAK-TASK-6", "WAK-VT-7"), "the same invariants: will_wake, clone_from, context",
        "induction", _waker_induction("queries"), "waker-queries",
    ),
    Property(
        "waker", ("WAK-TASK-6", "WAK-TASK-2", "WAK-TASK-3"), "the same invariants: poll (with wakes during it), drop_join",
        "induction", _waker_induction("executor"), "waker-executor",
    ),
    Property(
        "waker", ("WAK-TASK-6", "WAK-AW-1"), "the same invariants: every AtomicWaker step",
        "induction", _waker_induction("atomic"), "waker-atomic",
    ),
    Property(
        "waker", ("WAK-AW-4",), "no lost wake-up in any interleaving of a full register/wake round",
        "BMC depth 8 from every round start", _no_lost_wakeup(), "waker-atomic",
    ),
    Property(
        "readiness", ("RDY-ONESHOT-1",), "a oneshot registration is reported at most once per arming",
        f"induction ({_W}, linux-epoll)",
        _readiness_induction([_no_second_oneshot_event, _fired_is_disarmed], ("RDY-ONESHOT-1",), "reported twice without re-arming"),
        "readiness",
    ),
    Property(
        "readiness", ("RDY-EV-3",), "a poll reports only armed, ready registrations, with their token and ready events",
        f"step ({_W}, linux-epoll)", _readiness_steps(_events_are_ready), "readiness",
    ),
    Property(
        "readiness", ("RDY-LT-1",), "an armed level-triggered registration that is ready is on the ready list",
        f"induction ({_W}, linux-epoll)",
        _readiness_induction([_lt_ready_is_queued], ("RDY-LT-1",), "ready but not queued"), "readiness",
    ),
    Property(
        "readiness", ("RDY-ET-6",), "edge-triggered, read until EAGAIN: readable data is never stranded without an event",
        f"induction ({_W}, linux-epoll)",
        _readiness_induction([_drained_is_queued], ("RDY-ET-6",), "drained, readable again, no event queued"), "readiness",
    ),
    Property(
        "pin", ("PIN-MOVE-2", "PIN-ADDR-1"), "bindings, pins and places agree; a value behind a pin is at its pinned address",
        "induction (2 values)", _pin_invariants(), "pin",
    ),
    Property(
        "pin", ("PIN-ADDR-1", "PIN-DROP-1"), "no safe operation moves a pinned !Unpin value, or drops it away from its place",
        "step (every safe action, 2 values)", _pin_safe_steps(), "pin",
    ),
]

# Rough cost of each group, for scheduling the slowest first.
_COST = {"readiness": 12, "waker-queries": 6, "waker-atomic": 4, "waker-executor": 3.7, "waker-vtable": 3}


def _run(props: list[Property]) -> list[Outcome]:
    """Check properties in order (in one process)."""
    results = []
    for prop in props:
        started = time.monotonic()
        if prop.check is None:
            results.append(Outcome(prop, NOT_YET, prop.method.split(": ", 1)[-1], 0.0))
            continue
        got = prop.check()
        ok, detail = got[0], got[1]
        run = got[2] if len(got) > 2 else None
        results.append(Outcome(prop, PROVED if ok else REFUTED, detail, time.monotonic() - started, run=run))
    return results


def _run_group(indexes):
    return indexes, [(o.status, o.detail, o.seconds, o.run) for o in _run([PROPERTIES[i] for i in indexes])]


def prove(
    areas: list[str] | None = None,
    report: Callable[[str], None] = print,
    save: Callable[[Run], tuple[dict, str]] | None = None,
    jobs: int | None = None,
) -> list[Outcome]:
    """Check every property of ``areas`` (default all); report each table line
    as it is known, in table order.  Groups run in parallel on ``jobs``
    processes (default: every core).

    ``save(run)``, when given, writes a refuted property's run as files and
    returns (paths by kind, a note on anything not written): the line then
    names the file."""
    chosen = [i for i, p in enumerate(PROPERTIES) if not areas or p.area in areas]
    groups: dict[str, list[int]] = {}
    for i in chosen:
        groups.setdefault(PROPERTIES[i].group or f"#{i}", []).append(i)
    order = sorted(groups.values(), key=lambda ix: -_COST.get(PROPERTIES[ix[0]].group, 1))
    jobs = jobs or min(len(order), os.cpu_count() or 1)
    done: dict[int, Outcome] = {}
    shown = 0

    def take(indexes, rows):
        nonlocal shown
        for i, (status, detail, seconds, run) in zip(indexes, rows):
            o = done[i] = Outcome(PROPERTIES[i], status, detail, seconds, run=run)
            if run is not None and save is not None:
                started = time.monotonic()
                o.files, note = save(run)
                o.detail += f"; counterexample: {o.files['json']}" + (f" ({note})" if note else "")
                o.seconds += time.monotonic() - started
        while shown < len(chosen) and chosen[shown] in done:
            report(_line(done[chosen[shown]]))
            shown += 1

    if jobs <= 1 or len(order) <= 1:
        for ix in order:
            take(*_run_group(ix))
    else:
        ctx = multiprocessing.get_context("fork")
        with ctx.Pool(jobs) as pool:
            for indexes, rows in pool.imap_unordered(_run_group, order):
                take(indexes, rows)
    return [done[i] for i in chosen]


def _line(o: Outcome) -> str:
    method = o.prop.method if o.prop.check is not None else "—"
    return f"  {o.prop.area:<9} {', '.join(o.prop.rules) or '—':<32} {method:<38} {o.status:<8} {o.seconds:6.1f}s  {o.prop.name}: {o.detail}"


def as_json(outcomes: list[Outcome]) -> list[dict]:
    """The outcomes as data (no times: other code compares these)."""
    return [
        {
            "area": o.prop.area,
            "rules": list(o.prop.rules),
            "name": o.prop.name,
            "method": o.prop.method if o.prop.check is not None else "",
            "status": o.status,
            "detail": o.detail,
            "files": dict(o.files),
        }
        for o in outcomes
    ]


def main(areas: list[str] | None = None, json_path: str | None = None, save: Callable[[Run], tuple[dict, str]] | None = None) -> int:
    """The table, printed line by line as it is known; ``json_path``: also as JSON;
    ``save``: writes a refuted property's run (see `prove`)."""
    print(f"  {'area':<9} {'rules':<32} {'method':<38} {'result':<8} {'time':>7}  property", flush=True)
    started = time.monotonic()
    outcomes = prove(areas, lambda line: print(line, flush=True), save)
    total = time.monotonic() - started
    counts = {s: sum(1 for o in outcomes if o.status == s) for s in (PROVED, REFUTED, NOT_YET)}
    print(f"\n  {counts[PROVED]} proved, {counts[REFUTED]} refuted, {counts[NOT_YET]} not yet proved, in {total:.1f}s")
    if json_path:
        with open(json_path, "w") as f:
            json.dump({"format": "asyncspec-proofs/1", "properties": as_json(outcomes)}, f, indent=1)
            f.write("\n")
        print(f"  results (JSON): {json_path}")
    return 1 if counts[REFUTED] else 0


__all__ = ["PROPERTIES", "Outcome", "Property", "as_json", "prove", "main"]
