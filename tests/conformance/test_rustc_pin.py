"""The `rustc` pin target: traces compiled and run by rustc, checked against the spec.

A run of a few hundred sampled traces conforms; a deliberately wrong
model (get_mut allowed on a !Unpin type, Pin::set not dropping) is caught
with a short counterexample naming the rule; each hand-written scenario
(tests/scenarios/pin.py) is what the spec allows and what rustc does.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import time

import pytest
from tests.scenarios.pin import RULES_COVERED, SCENARIOS

from asyncspec.conformance.engine import runner
from asyncspec.conformance.engine.verdicts import Violation
from asyncspec.conformance.output import text

from asyncspec.conformance.targets.rust.pin import oracle as rustpin
from asyncspec.conformance.engine.replay import ModelTarget, replay
from asyncspec.conformance.engine.verdicts import FAIL, PASS
from asyncspec.conformance.engine.runner import UsageError, run
from asyncspec.conformance.targets.rust.rustc_pin import RustcPin
from asyncspec.spec import machine_for
from asyncspec.spec.core import Outcome
from asyncspec.spec.pin import machine as PM
from asyncspec.spec.pin import rules as R

needs_rustc = pytest.mark.skipif(RustcPin.unavailable() is not None, reason=f"{RustcPin.unavailable()}")

MACHINE = machine_for("pin")
PROFILE = MACHINE.profile()


# ------------------------------------------------------------------ a run


@needs_rustc
def test_a_run_of_200_traces_conforms_and_compiles_in_batches():
    RustcPin.forget()  # compile everything afresh: this is the measurement
    res = run("pin", "rustc", max_examples=200, seed=1)
    print(f"\n  rustc pin: {res.recorder.examples} traces, {res.recorder.steps} steps in {res.seconds:.1f} s")
    assert res.ok, text.format_result(res)
    assert res.recorder.examples == 200
    status = {r.rule.id: r.status for r in res.results}
    assert FAIL not in status.values()
    assert all(s == PASS for s in status.values()), status
    # Every action, and every argument, was taken.
    assert set(res.recorder.actions) == {a.name for a in MACHINE.actions}
    # Loosely: it is compile time, a few seconds on one core, with a wide margin.
    assert res.seconds < 60


@needs_rustc
def test_sampled_traces_cover_every_action_and_argument():
    import random

    traces = runner.sample_traces(MACHINE, PROFILE, RustcPin.features, 100, 12, random.Random(7))
    taken = {(a, tuple(sorted(args.items()))) for t in traces for a, args in t}
    for action in MACHINE.actions:
        for args in action.all_args():
            assert (action.name, tuple(sorted(args.items()))) in taken, (action.name, args)
    assert all(1 <= len(t) <= 12 for t in traces)


# ------------------------------------------------------- wrong models caught


def _broken(monkeypatch, action_name: str, outcomes):
    """Run against a machine whose action ``action_name`` has other outcomes."""
    actions = tuple(dataclasses.replace(a, outcomes=outcomes) if a.name == action_name else a for a in MACHINE.actions)
    broken = dataclasses.replace(MACHINE, actions=actions)
    monkeypatch.setattr(runner, "machine_for", lambda area, profile=None: broken if area == "pin" else machine_for(area, profile))


def get_mut_on_anything(w, a, p):
    """Wrong: get_mut compiles for a !Unpin value too."""
    val = w.vals[a["v"]]
    if val.kind == PM.PINNED and val.p != PM.P_MOVED:
        return [Outcome(PM.obs(), w, (R.UNPIN_ONLY,))]
    return PM.get_mut_outcomes(w, a, p)


def set_without_drop(w, a, p):
    """Wrong: Pin::set overwrites the old value without dropping it."""
    return [
        Outcome(PM.obs(o.obs[0], o.obs[1], ()), o.next, o.rules) if not o.obs[0] else o for o in PM.set_outcomes(w, a, p)
    ]


@needs_rustc
@pytest.mark.parametrize(
    "action,outcomes,rules",
    [("get_mut", get_mut_on_anything, {"PIN-UNPIN-1"}), ("set", set_without_drop, {"PIN-DROP-2", "PIN-DROP-4"})],
    ids=["get_mut_allowed_on_unpin", "set_not_dropping"],
)
def test_a_wrong_model_is_caught_with_a_short_counterexample(monkeypatch, tmp_path, action, outcomes, rules):
    from asyncspec.conformance.output.counterexample import save

    _broken(monkeypatch, action, outcomes)
    res = run("pin", "rustc", max_examples=200, seed=2)
    assert res.failure is not None, f"the wrong {action} was not caught"
    v = res.failure
    assert v.rules[0] in rules, text.format_failure(v)
    assert len(v.steps) <= 8, text.format_failure(v)
    assert v.steps[-1].action == action
    # A counterexample like any other: saved, drawn, replayable.
    files, note = save(v, "rustc", str(tmp_path))
    assert "json" in files and ("svg" in files or note)
    _data, again = runner.replay_file(files["json"])
    assert again.violated == v.rules


# ------------------------------------------------------------ unavailable


def test_without_rustc_the_target_is_unavailable(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    why = RustcPin.unavailable()
    assert why and "rustc" in why and "PATH" in why
    with pytest.raises(UsageError, match="unavailable here: rustc not found"):
        run("pin", "rustc", max_examples=1)


# ------------------------------------------------------------- scenarios


def _rules_seen(collect):
    return lambda step, result: collect.update(result.matched_rules)


def test_the_scenarios_demonstrate_every_pin_rule():
    assert RULES_COVERED == sorted(r.id for r in MACHINE.rules())


@pytest.mark.parametrize("sc", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_scenario_is_exactly_what_the_model_allows(sc):
    seen: set = set()
    r = replay(MACHINE, PROFILE, ModelTarget(sc.expected()), sc.actions(), on_step=_rules_seen(seen))
    assert r.ok, text.format_failure(Violation("pin", PROFILE.name, "model", r.steps))
    assert len(r.steps) == len(sc.steps)
    for s, expected in zip(r.steps, sc.expected()):
        assert s.allowed == (expected,), f"step {s.index} {s.call()}: the spec allows {s.allowed}"
    assert sc.rule in seen


@needs_rustc
@pytest.mark.parametrize("sc", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_scenario_is_what_rustc_does(sc):
    RustcPin.prepare([s.actions() for s in SCENARIOS])  # one build for all of them
    t = RustcPin()
    t.open()
    r = replay(MACHINE, PROFILE, t, sc.actions())
    assert r.ok, text.format_failure(Violation("pin", PROFILE.name, "rustc", r.steps))
    assert [s.observed for s in r.steps] == sc.expected()


# ---------------------------------------------------------------- driver


@needs_rustc
def test_a_trace_never_prepared_is_compiled_when_asked():
    RustcPin.forget()
    t = RustcPin()
    t.open()
    assert t.perform("create", {"v": 1, "kind": PM.PINNED}) == ((), None, ())
    assert t.perform("pin_new", {"v": 1}) == (("E0277",), None, ())
    assert t.perform("box_pin", {"v": 1}) == ((), None, ())
    assert t.perform("poll", {"v": 1}) == ((), (True, True), ())


@needs_rustc
def test_an_error_depends_only_on_the_steps_before_it():
    # In one program of the whole trace, the use of p0 after it was dropped
    # (step 5) keeps p0's borrow of x0 alive back to step 3, so rustc
    # reports the move at step 3 too; on its own prefix, step 3 compiles.
    trace = [
        ("create", {"v": 0, "kind": PM.UNPIN}),
        ("pin_new", {"v": 0}),
        ("drop_pin", {"v": 0}),
        ("move", {"v": 0}),
        ("forget_value", {"v": 0}),
        ("into_inner", {"v": 0}),
    ]
    obs = rustpin.observe([trace])[0]
    assert obs[3] == ((), None, ()) and obs[4] == ((), None, ())
    assert obs[5] == (("E0382", "E0507"), None, ())


@needs_rustc
def test_a_crashing_program_is_reported_at_its_step_and_the_other_traces_still_run(monkeypatch, no_leaks):
    real = rustpin.statement

    def statement(action, args):
        if action == "check" and args["v"] == 1:
            return "std::process::abort();"
        return real(action, args)

    monkeypatch.setattr(rustpin, "statement", statement)
    traces = [
        [("create", {"v": 0, "kind": PM.PINNED}), ("check", {"v": 0})],
        [("create", {"v": 1, "kind": PM.PINNED}), ("check", {"v": 1}), ("check", {"v": 1})],
        [("create", {"v": 0, "kind": PM.PINNED}), ("drop_value", {"v": 0})],
    ]
    made = []
    real_mkdtemp = tempfile.mkdtemp
    monkeypatch.setattr(rustpin.tempfile, "mkdtemp", lambda **kw: made.append(real_mkdtemp(**kw)) or made[-1])
    a, b, c = rustpin.observe(traces)
    assert a == [((), None, ()), ((), (None, True), ())]
    assert b[0] == ((), None, ())
    assert b[1][0] == "crashed" and "SIGABRT" in b[1][1] and b[2] == b[1]
    assert c == [((), None, ()), ((), None, ((0, "free"),))]
    assert made and not any(os.path.exists(d) for d in made)  # its work directories are gone


@needs_rustc
def test_a_batch_is_one_crate_per_batch(monkeypatch):
    builds = []
    real = rustpin._Crate.errors

    def errors(self, text, where, emit="metadata"):
        builds.append(emit)
        return real(self, text, where, emit)

    monkeypatch.setattr(rustpin._Crate, "errors", errors)
    traces = [[("create", {"v": v % 2, "kind": PM.PINNED}), ("box_pin", {"v": v % 2}), ("poll", {"v": v % 2})] for v in range(5)]
    started = time.monotonic()
    rustpin.observe(traces, batch=3)
    assert builds.count("link") == 2  # two batches, one binary each
    assert time.monotonic() - started < 60
