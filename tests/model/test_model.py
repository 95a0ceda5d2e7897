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


# ------------------------------------------------------------------ asyncspec prove

import json
import os

from asyncspec.conformance.output.counterexample import save_model_run
from asyncspec.conformance.engine.replay import SPEC_TARGETS, SpecReadiness
from asyncspec.model import prove as PR
from asyncspec.model.proofs import fiber as FP
from asyncspec.model.proofs import pin as PP
from asyncspec.model.proofs import readiness as RP
from asyncspec.model.proofs import waker as WP
from asyncspec.spec.fiber import layout as FL
from asyncspec.spec.readiness import machine as RM


@pytest.fixture
def fresh_readiness(monkeypatch):
    """A one-slot readiness world (fast), read afresh (a weakened spec must not reuse a cached reading)."""
    monkeypatch.setattr(RP, "SLOTS", 1)
    RP.reading.cache_clear()
    yield
    RP.reading.cache_clear()


@pytest.mark.slow
def test_every_property_is_checked_and_proved(proof_table):
    outcomes, lines = proof_table.outcomes, proof_table.lines
    assert [o.prop for o in outcomes] == PR.PROPERTIES
    assert len(lines) == len(PR.PROPERTIES)
    for o in outcomes:
        assert o.prop.check is not None, f"{o.prop.name}: {o.prop.method}"
        assert o.status == PR.PROVED, (o.prop.name, o.detail)
    assert {o.prop.area for o in outcomes} == {"fiber", "waker", "readiness", "pin"}


def test_every_area_with_a_proof_file_has_rows_and_the_model_reads_the_spec_only():
    """The runner finds each area's rows by its proof file; nothing in the
    model imports the conformance suite (a refuted run comes back as data)."""
    import subprocess
    import sys

    assert [m.__name__.rsplit(".", 1)[-1] for m in PR.proof_files()] == ["fiber", "waker", "readiness", "pin"]
    assert all(p.area == m.__name__.rsplit(".", 1)[-1] for m in PR.proof_files() for p in m.PROPERTIES)
    code = (
        "import sys, asyncspec.model.prove, asyncspec.model.trace; "
        "print(sorted(m for m in sys.modules if m.startswith('asyncspec.conformance')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_the_waker_rows_cover_every_waker_action():
    covered = [n for names in WP.GROUPS.values() for n in names]
    assert sorted(covered) == sorted(a.name for a in WAKER.actions)


def test_a_oneshot_that_does_not_disarm_is_refuted_with_a_replayable_run(fresh_readiness, monkeypatch, tmp_path):
    monkeypatch.setattr(RM, "disarm", lambda s: s)
    prop = next(p for p in PR.PROPERTIES if p.rules == ("RDY-ONESHOT-1",))
    ok, detail, run = prop.check()
    assert not ok and "from the initial state" in detail
    names = [name for name, _args, _obs in run.steps]
    assert names.count("poll") == 2 and names[-1] == "poll"
    files, _note = save_model_run(run, str(tmp_path))
    data = json.load(open(files["json"]))
    assert data["target"] == SPEC_TARGETS["readiness"] and [v["id"] for v in data["violated"]] == ["RDY-ONESHOT-1"]
    assert data["steps"][-1]["observed"], "the weakened spec's second oneshot event is recorded"
    assert os.path.exists(files["itf"]) and os.path.exists(files["dot"])
    monkeypatch.undo()  # replay against the real spec and the reference reactor
    from asyncspec.conformance.engine.runner import replay_file

    for target in (None, "impl"):
        _data, result = replay_file(files["json"], target, isolate=False)
        assert len(result.steps) == len(run.steps)
        # The real spec (and a conforming target) disarm: the second poll reports nothing.
        assert result.ok and result.steps[-1].observed == ()


def test_the_cli_writes_refuted_runs_and_json(fresh_readiness, monkeypatch, tmp_path, capsys):
    from asyncspec.conformance.cli import main

    monkeypatch.setattr(RM, "disarm", lambda s: s)
    out, js = tmp_path / "cx", tmp_path / "proofs.json"
    assert main(["prove", "readiness", "--out", str(out), "--json", str(js)]) == 1
    text = capsys.readouterr().out
    assert "REFUTED" in text and "RDY-ONESHOT-1" in text
    rows = json.load(open(js))["properties"]
    (bad,) = [r for r in rows if r["rules"] == ["RDY-ONESHOT-1"]]
    assert bad["status"] == PR.REFUTED and bad["files"]["json"].startswith(str(out))
    assert os.path.exists(bad["files"]["json"])
    assert all("seconds" not in r and "time" not in r for r in rows)


def test_an_entry_aligned_to_16_instead_of_16n_minus_8_is_refuted(monkeypatch):
    monkeypatch.setattr(FL, "x86_entry_sp", lambda top: FL.align_down(top))
    ok, detail = FP.alignment()
    assert not ok and "top = " in detail and "not 16-aligned" in detail


def test_a_regs_check_that_cannot_tell_two_registers_apart_is_refuted(monkeypatch):
    from asyncspec.spec.fiber import machine as FM

    monkeypatch.setattr(FM, "reg_values", lambda seed, who: tuple((seed * 16 + k % 5 + 1) for k in range(6)))
    ok, detail = FP.callee_saved()
    assert not ok and "same value" in detail


def test_an_et_registration_that_misses_a_wakeup_is_refuted(fresh_readiness, monkeypatch):
    # A weakened wake-up: the write of new data queues nothing (a lost edge).
    real = RM.wake
    monkeypatch.setattr(RM, "wake", lambda w, i, key, p, before: w if key == RM.IN else real(w, i, key, p, before))
    prop = next(p for p in PR.PROPERTIES if p.rules == ("RDY-ET-6",))
    ok, detail, run = prop.check()
    assert not ok and [n for n, _args, _obs in run.steps].count("read_ours") >= 1


def test_prove_json_for_one_area(tmp_path, capsys):
    from asyncspec.conformance.cli import main

    js = tmp_path / "p.json"
    assert main(["prove", "fiber", "--json", str(js)]) == 0
    out = capsys.readouterr().out
    assert "FIB-X86-1, FIB-A64-1" in out and "3 proved, 0 refuted, 0 not yet proved" in out
    data = json.load(open(js))
    assert data["format"] == "asyncspec-proofs/1" and [r["status"] for r in data["properties"]] == ["proved"] * 3


def test_the_model_target_runs_the_spec():
    t = SpecReadiness()
    t.open()
    assert t.perform("create", {"slot": 0, "kind": "pipe_r"}) == ("ok",)
    assert t.perform("poll", {"max_events": 1}) == ()


@pytest.mark.slow
def test_the_symbolic_reading_agrees_with_the_spec_run_concretely(fresh_readiness):
    """On every state reachable in two steps of the one-slot world, the
    transitions whose condition holds give exactly the spec's outcomes."""
    sym = RP.build_reading()
    machine, p = sym.machine, sym.profile
    by_step: dict = {}
    for tr in sym.transitions():
        by_step.setdefault((tr.action, tuple(sorted(tr.args.items()))), []).append(tr)
    frontier, seen = [sym.init], {sym.init}
    for _ in range(2):
        nxt = []
        for state in frontier:
            pairs = [(var, S.as_term(leaf, var)) for (_, leaf), var in zip(S.leaves(state), sym.terms)]
            for action in machine.actions:
                for args in sym.all_args(action):
                    want = set()
                    if action.pre(state, args, p):
                        want = {(o.next, _wrap(o.obs)) for o in action.outcomes(state, args, p)}
                    got = set()
                    for tr in by_step.get((action.name, tuple(sorted(args.items()))), []):
                        if z3.is_true(z3.simplify(z3.substitute(tr.cond, *pairs))):
                            got.add((S.concrete(tr.next, _Subst(pairs), sym.template), _obs(tr.obs, pairs)))
                    assert got == want, (action.name, args, machine.describe(state))
                    nxt += [n for n, _ in want if n not in seen]
                    seen.update(n for n, _ in want)
        frontier = nxt
    assert len(seen) > 50


def _wrap(value):
    """Integers as the symbolic reading holds them: 16-bit (only the eventfd
    counter's maximum, an observation no property reads, is wider)."""
    if isinstance(value, tuple):
        return tuple(_wrap(v) for v in value)
    if isinstance(value, int) and not isinstance(value, bool):
        return (value + 2**15) % 2**16 - 2**15
    return value


class _Subst:
    """A stand-in for a z3 model: evaluates a term with the state's values substituted."""

    def __init__(self, pairs):
        self.pairs = pairs

    def eval(self, e, model_completion=True):
        return z3.simplify(z3.substitute(e, *self.pairs))


def _obs(value, pairs):
    if isinstance(value, tuple):
        return tuple(_obs(v, pairs) for v in value)
    if isinstance(value, (S.Sym, S.SBool)):
        got = z3.simplify(z3.substitute(value.e, *pairs))
        return z3.is_true(got) if z3.is_bool(got) else got.as_signed_long()
    return value


# ------------------------------------------------------------------ pin


def _pin_weakened(action_name, outcomes):
    from asyncspec.spec.pin import MACHINE as PIN

    return replace(PIN, actions=tuple(replace(a, outcomes=outcomes) if a.name == action_name else a for a in PIN.actions))


def test_pin_new_allowed_on_a_pinned_type_breaks_the_pin_invariants():
    from asyncspec.spec.pin import machine as PM

    def pin_new_for_any_type(w, a, p):  # no E0277 for !Unpin
        v = a["v"]
        err = PM._x_errors(w.vals[v])
        if err:
            return PM.rejected(w, *err)
        return [Outcome(PM.obs(), w.put(v, PM._pinned_at(w.vals[v], PM.L_X, PM.P_REF)), ())]

    ok, detail = PP.invariants(_pin_weakened("pin_new", pin_new_for_any_type))()
    assert not ok and "pin_new" in detail, detail


def test_a_safe_move_out_of_a_pin_is_refuted():
    from asyncspec.spec.pin import machine as PM

    def into_inner_for_any_type(w, a, p):  # into_inner without the Unpin bound
        v = a["v"]
        val = w.vals[v]
        if val.p != PM.P_BOX:
            return PM.rejected(w, ("E0507",), ())
        moved = replace(val, x=PM.X_LIVE, p=PM.P_MOVED, loc=PM.L_X, moved=val.pinned)
        return [Outcome(PM.obs(), w.put(v, moved), ())]

    ok, detail = PP.safe_steps(_pin_weakened("into_inner", into_inner_for_any_type))()
    assert not ok and "into_inner" in detail, detail
