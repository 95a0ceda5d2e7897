"""The waker rows: the machine's invariants by induction, action group by
action group, and no lost wake-up in a register/wake round (BMC).

The invariants are the spec's own (`asyncspec.spec.waker.machine`), the
lemma that makes them inductive among them; all but WAK-AW-4's, a property
of rounds, proved here by bounded model checking from every round start.
"""

from __future__ import annotations

from functools import lru_cache

from ...spec.logic import all_
from ...spec.waker import MACHINE
from ...spec.waker import machine as WM
from ..machine import Symbolic
from . import Property, cti_text

# The rows' action groups: every waker action is in one (a test checks it).
GROUPS = {
    "vtable": ("make", "new", "noop", "clone", "drop", "wake", "wake_by_ref", "forget"),
    "queries": ("will_wake", "clone_from", "context"),
    "executor": ("poll", "drop_join"),
    "atomic": ("aw_register", "aw_store", "aw_unlock", "aw_check", "aw_set", "aw_take", "aw_take_end", "aw_wake", "aw_round"),
}


def invariants(machine=None):
    """The machine's invariants, but WAK-AW-4's (a property of rounds, not of states)."""
    return [i.holds for i in (machine or MACHINE).invariants if i.holds is not WM._inv_no_lost_wakeup]


@lru_cache(maxsize=None)
def reading(group: str, machine=None):
    """The symbolic reading of ``group``'s actions, the invariants assumed as its shape."""
    machine = machine or MACHINE
    p = machine.profile()
    invs = invariants(machine)
    chosen = [a for a in machine.actions if a.name in GROUPS[group]]
    return Symbolic(machine, p, machine.init(p), lambda w, p: all_(*[i(w, p) for i in invs]), actions=chosen, index_range=range(-2, 3))


def induction(group: str, machine=None):
    def check():
        sym = reading(group, machine)
        ok, cx, detail = sym.induction(invariants(machine))
        if not ok:
            detail += ": " + cti_text(sym, cx)
        return ok, detail

    return check


def round_start(w, p):
    return all_(w.aw.c_pc == 0, w.aw.p_pc == 0)


def no_lost_wakeup(machine=None, depth: int = 8):
    def check():
        sym = reading("atomic", machine)
        ok, cx, detail = sym.bmc(WM._inv_no_lost_wakeup, depth, round_start)
        if not ok:
            detail += ": " + cti_text(sym, cx)
        return ok, detail

    return check


PROPERTIES = [
    Property(
        "waker", ("WAK-TASK-6", "WAK-VT-7"), "refcount, freed, queue, shape invariants: make, new, noop, clone, drop, wake, wake_by_ref, forget",
        "induction", induction("vtable"), "waker-vtable", cost=3,
    ),
    Property(
        "waker", ("WAK-TASK-6", "WAK-VT-7"), "the same invariants: will_wake, clone_from, context",
        "induction", induction("queries"), "waker-queries", cost=6,
    ),
    Property(
        "waker", ("WAK-TASK-6", "WAK-TASK-2", "WAK-TASK-3"), "the same invariants: poll (with wakes during it), drop_join",
        "induction", induction("executor"), "waker-executor", cost=3.7,
    ),
    Property(
        "waker", ("WAK-TASK-6", "WAK-AW-1"), "the same invariants: every AtomicWaker step",
        "induction", induction("atomic"), "waker-atomic", cost=2,
    ),
    Property(
        "waker", ("WAK-AW-4",), "no lost wake-up in any interleaving of a full register/wake round",
        "BMC depth 8 from every round start", no_lost_wakeup(), "waker-atomic", cost=2,
    ),
]
