"""`asyncspec prove`: the properties proved from the spec, one table.

Each property names its rules, its method (induction, BMC to depth k, or a
quantified arithmetic fact), and is checked on the spec's own definitions
(`asyncspec.model.symbolic` runs the machines' Python on z3 values; the
fiber layout is read with z3 integers).  A property that does not hold
prints its counterexample.  What is not proved yet is listed as such, with
the reason, so the table is the honest state of the formal layer.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import z3

PROVED, REFUTED, NOT_YET = "proved", "REFUTED", "not yet"


@dataclass
class Property:
    area: str
    rules: tuple[str, ...]
    name: str
    method: str
    check: Callable[[], tuple[bool, str]] | None  # None: not proved yet (``method`` says why)


@dataclass
class Outcome:
    prop: Property
    status: str
    detail: str
    seconds: float


# ------------------------------------------------------------------ fiber


def _fiber_alignment() -> tuple[bool, str]:
    from ..spec.fiber import layout

    top = z3.Int("top")
    s = z3.Solver()
    s.add(top >= 0, top < 2**64, z3.Not((layout.x86_entry_sp(top) + 8) % 16 == 0))
    if s.check() == z3.sat:
        return False, f"top = {s.model()[top]}"
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


# ------------------------------------------------------------------ waker


def _waker(actions: list[str] | None, prop: str, depth: int = 0) -> Callable[[], tuple[bool, str]]:
    def check() -> tuple[bool, str]:
        from ..spec.logic import all_
        from ..spec.waker import MACHINE
        from ..spec.waker import machine as WM
        from .machine import Symbolic

        p = MACHINE.profile()
        invs = [i for i in MACHINE.invariants if i.holds is not WM._inv_no_lost_wakeup]

        def inv(w, p):
            return all_(*[i.holds(w, p) for i in invs])

        chosen = [
            a for a in MACHINE.actions if actions is None or a.name in actions or any(n.endswith("_") and a.name.startswith(n) for n in actions)
        ]
        sym = Symbolic(MACHINE, p, MACHINE.init(p), inv, actions=chosen, index_range=range(-2, 3))
        if prop == "invariants":
            ok, cx, detail = sym.induction(inv)
        else:
            ok, cx, detail = sym.bmc(WM._inv_no_lost_wakeup, depth, lambda w, p: all_(w.aw.c_pc == 0, w.aw.p_pc == 0))
        if not ok and cx is not None:
            detail += ": " + " -> ".join(f"{a}{args}" for a, args in cx.steps) + f" from {MACHINE.describe(cx.states[0])}"
        return ok, detail

    return check


PROPERTIES = [
    Property("fiber", ("FIB-X86-1", "FIB-A64-1"), "entry alignment of the aligned-down top", "quantified (64-bit)", _fiber_alignment),
    Property("fiber", ("FIB-STACK-1",), "the usable range never overlaps the guard page", "quantified (64-bit)", _fiber_guard),
    Property("fiber", ("FIB-X86-2", "FIB-A64-2"), "callee-saved registers preserved", "not yet: a property of the machine code, tested against the switcher, not stated in the model", None),
    Property("waker", ("WAK-TASK-6", "WAK-TASK-2"), "shape, refcount, freed and queue invariants: AtomicWaker steps", "induction", _waker(["aw_"], "invariants")),
    Property("waker", ("WAK-TASK-6", "WAK-VT-7"), "shape, refcount, freed and queue invariants: vtable steps", "induction", _waker(["make", "new", "clone", "drop", "wake", "wake_by_ref", "forget", "drop_join"], "invariants")),
    Property("waker", ("WAK-TASK-6", "WAK-TASK-3"), "the same invariants: poll, will_wake, clone_from, noop, context", "not yet: these steps' paths make the symbolic exploration too slow (minutes) for the time budget", None),
    Property("waker", ("WAK-AW-4",), "no lost wake-up in any interleaving of a full round", "BMC depth 8 from every round start", _waker(["aw_"], "bmc", 8)),
    Property("readiness", ("RDY-ONESHOT-1", "RDY-LT-1", "RDY-ET-6"), "oneshot once per arm; LT never reports an unready source; drain never strands data", "not yet: the readiness machine is not read symbolically yet", None),
    Property("pin", (), "no safe operation moves a pinned !Unpin value", "not yet: the pin area is not written", None),
]


def prove(areas: list[str] | None = None, report=print) -> list[Outcome]:
    out = []
    for prop in PROPERTIES:
        if areas and prop.area not in areas:
            continue
        started = time.monotonic()
        if prop.check is None:
            outcome = Outcome(prop, NOT_YET, prop.method.split(": ", 1)[-1], 0.0)
        else:
            ok, detail = prop.check()
            outcome = Outcome(prop, PROVED if ok else REFUTED, detail, time.monotonic() - started)
        out.append(outcome)
        report(_line(outcome))
    return out


def _line(o: Outcome) -> str:
    method = o.prop.method if o.prop.check is not None else "—"
    return f"  {o.prop.area:<9} {', '.join(o.prop.rules) or '—':<32} {method:<34} {o.status:<8} {o.seconds:6.1f}s  {o.prop.name}: {o.detail}"


def main(areas: list[str] | None = None) -> int:
    print(f"  {'area':<9} {'rules':<32} {'method':<34} {'result':<8} {'time':>7}  property")
    started = time.monotonic()
    outcomes = prove(areas)
    total = time.monotonic() - started
    counts = {s: sum(1 for o in outcomes if o.status == s) for s in (PROVED, REFUTED, NOT_YET)}
    print(f"\n  {counts[PROVED]} proved, {counts[REFUTED]} refuted, {counts[NOT_YET]} not yet proved, in {total:.1f}s")
    return 1 if counts[REFUTED] else 0


__all__ = ["PROPERTIES", "prove", "main"]
