"""The symbolic reading of the spec (asyncspec.model): proofs, and weakened specs caught."""

from __future__ import annotations

from dataclasses import replace

import pytest
import z3
from asyncspec.model import symbolic as S
from asyncspec.model.machine import Symbolic
from asyncspec.spec.core import Outcome
from asyncspec.spec.logic import all_
from asyncspec.spec.waker import MACHINE as WAKER
from asyncspec.spec.waker import machine as WM

P = WAKER.profile()
AW_ACTIONS = [a for a in WAKER.actions if a.name.startswith("aw_")]


# ------------------------------------------------------------------ the explorer


def test_every_feasible_path_is_explored_once():
    x = S.Explorer()
    a, b = x.int("a"), x.int("b")

    def f():
        if a < 0:
            return "neg"
        if a == b:
            return "same"
        return "other"

    paths = x.paths(f)
    assert sorted(v for _, v in paths) == ["neg", "other", "same"]
    # The conditions partition the inputs.
    s = z3.Solver()
    s.add(z3.Not(z3.Or(*[pc for pc, _ in paths])))
    assert s.check() == z3.unsat


def test_infeasible_branches_are_pruned_and_indexes_take_their_values():
    x = S.Explorer(assumptions=[], index_range=range(0, 3))
    i = x.int("i")
    paths = x.paths(lambda: ("abc"[i], bool(i > 5)))
    assert sorted(v for _, v in paths) == [("a", False), ("b", False), ("c", False)]


def test_what_cannot_be_read_symbolically_is_named():
    x = S.Explorer()
    with pytest.raises(S.NotSymbolic, match="hashed"):
        x.paths(lambda: {x.int("k"): 1})


def test_logic_helpers_build_terms_without_forking():
    x = S.Explorer()
    a = x.int("a")
    from asyncspec.spec.logic import any_, ite

    paths = x.paths(lambda: any_(a == 1, ite(a > 3, True, False)))
    assert len(paths) == 1  # one term, no decision


# ------------------------------------------------------------------ waker proofs


def _inv(invariants):
    return lambda w, p: all_(*[i.holds(w, p) for i in invariants])


INVARIANTS = [i for i in WAKER.invariants if i.holds is not WM._inv_no_lost_wakeup]


@pytest.mark.parametrize("actions", [["aw_*"], ["drop", "wake", "clone", "new"]], ids=["atomic-waker", "vtable"])
def test_waker_invariants_are_inductive(actions):
    chosen = [a for a in WAKER.actions if any(a.name == n or n.endswith("*") and a.name.startswith(n[:-1]) for n in actions)]
    sym = Symbolic(WAKER, P, WAKER.init(P), _inv(INVARIANTS), actions=chosen, index_range=range(-2, 3))
    ok, cti, detail = sym.induction(_inv(INVARIANTS))
    assert ok, (detail, [WAKER.describe(s) for s in cti.states], cti.steps)


def _round_start(w, p):
    return all_(w.aw.c_pc == 0, w.aw.p_pc == 0)


def test_no_lost_wakeup_in_any_interleaving_of_a_round():
    # A round is at most 4 consumer and 4 producer steps: depth 8 covers every interleaving.
    sym = Symbolic(WAKER, P, WAKER.init(P), _inv(INVARIANTS), actions=AW_ACTIONS, index_range=range(-2, 3))
    ok, cx, detail = sym.bmc(WM._inv_no_lost_wakeup, 8, _round_start)
    assert ok, (detail, cx and cx.steps)


def _store_forgets_the_waker(w, a, p):
    # The register's store step loses the new waker: the cell keeps what it had.
    w2 = WM._aw(w, c_pc=2)
    return [Outcome(WM.observe(w2), w2, ())]


def test_a_weakened_atomic_waker_loses_a_wakeup_and_the_proof_says_how():
    weakened = [replace(a, outcomes=_store_forgets_the_waker) if a.name == "aw_store" else a for a in AW_ACTIONS]
    machine = replace(WAKER, actions=tuple(weakened))
    sym = Symbolic(machine, P, machine.init(P), _inv(INVARIANTS), actions=weakened, index_range=range(-2, 3))
    ok, cx, detail = sym.bmc(WM._inv_no_lost_wakeup, 8, _round_start)
    assert not ok
    names = [name for name, _ in cx.steps]
    # The consumer checks before the condition is set, the producer wakes what
    # the cell held -- not the consumer's task.
    assert names.index("aw_check") < names.index("aw_set")
    last = cx.states[-1].aw
    assert last.c_pc == 4 and last.p_pc == 4 and not last.saw and not last.woke


def test_the_register_then_check_discipline_masks_a_lost_unlock_wake():
    """Measured on the model: an unlock that ignores a take arriving during
    register loses no wake-up *in this protocol*, because that take follows
    the condition being set, and the consumer checks after registering.  (It
    is still a departure from WAK-AW-2, which the conformance suite checks
    step by step.)"""

    def unlock_ignores_take(w, a, p):
        w2 = WM._aw(w, state=WM.WAITING, c_pc=3)
        return [Outcome(WM.observe(w2, (), WM.AW_NAMES[w.aw.state]), w2, ())]

    weakened = [replace(a, outcomes=unlock_ignores_take) if a.name == "aw_unlock" else a for a in AW_ACTIONS]
    machine = replace(WAKER, actions=tuple(weakened))
    sym = Symbolic(machine, P, machine.init(P), _inv(INVARIANTS), actions=weakened, index_range=range(-2, 3))
    ok, _cx, _detail = sym.bmc(WM._inv_no_lost_wakeup, 8, _round_start)
    assert ok


def test_prove_prints_the_table_and_says_what_is_not_proved(capsys):
    from asyncspec.conformance.cli import main

    assert main(["prove", "fiber"]) == 0
    out = capsys.readouterr().out
    assert "FIB-X86-1, FIB-A64-1" in out and "quantified (64-bit)" in out and "proved" in out
    assert "not yet" in out and "2 proved, 0 refuted, 1 not yet proved" in out
