"""The pin rows: the pin invariants by induction, and what a safe step may do to a pinned value."""

from __future__ import annotations

from functools import lru_cache

from ...spec.logic import all_, any_, ite, not_
from ...spec.pin import MACHINE
from ...spec.pin import machine as PM
from ..machine import Symbolic
from . import Property, cti_text


@lru_cache(maxsize=None)
def reading(machine=None):
    machine = machine or MACHINE
    p = machine.profile()
    return Symbolic(machine, p, machine.init(p), PM._inv_shape, index_range=range(0, PM.V))


def invariants(machine=None):
    def check():
        sym = reading(machine)
        ok, cx, detail = sym.induction([PM._inv_shape, PM._inv_pinned_stays])
        if not ok:
            detail += ": " + cti_text(sym, cx)
        return ok, detail

    return check


def safe_steps_keep_pinned_values(before, name, args, obs, after):
    """A safe step never moves a pinned !Unpin value, and drops one only in place."""
    _errors, _result, drops = obs
    kept = [any_(b.moved, not_(a.moved)) for b, a in zip(before.vals, after.vals)]
    in_place = [
        ite(all_(before.vals[v].kind == PM.PINNED, before.vals[v].pinned, not_(before.vals[v].moved)), how == PM.IN_PLACE, True)
        for v, how in drops
    ]
    return all_(*kept, *in_place)


def safe_steps(machine=None):
    def check():
        sym = reading(machine)
        safe = [a.name for a in sym.machine.actions if a.name != "unsafe_move"]
        ok, cx, detail = sym.step_property(safe_steps_keep_pinned_values, actions=safe)
        if not ok:
            detail += ": " + cti_text(sym, cx)
        return ok, detail

    return check


PROPERTIES = [
    Property(
        "pin", ("PIN-MOVE-2", "PIN-ADDR-1"), "bindings, pins and places agree; a value behind a pin is at its pinned address",
        "induction (2 values)", invariants(), "pin", cost=1.0,
    ),
    Property(
        "pin", ("PIN-ADDR-1", "PIN-DROP-1"), "no safe operation moves a pinned !Unpin value, or drops it away from its place",
        "step (every safe action, 2 values)", safe_steps(), "pin", cost=0.6,
    ),
]
