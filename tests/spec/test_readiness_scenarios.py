"""Every readiness rule, by hand: each scenario against the model and the real kernel."""

from __future__ import annotations

import pytest
from asyncspec.conformance import targets
from asyncspec.conformance.areas.readiness import LinuxSources
from asyncspec.conformance.engine.replay import ModelTarget, replay
from asyncspec.spec import RULES
from asyncspec.spec.readiness import MACHINE
from asyncspec.spec.readiness.machine import IN, OUT
from tests.scenarios.readiness import (
    SCENARIOS,
    create,
    n,
    poll,
    poll_err,
    read_ours,
    reg,
    rereg,
    write_peer,
)

PROFILE = MACHINE.profile("linux-epoll")
IDS = [s.name for s in SCENARIOS]


def _steps(scenario):
    return [(name, args) for name, args, _expect, _exact in scenario.steps]


def _project(state, action, obs):
    return LinuxSources.project(None, state, action, obs)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=IDS)
def test_model_allows_exactly_the_scenario(scenario):
    expected = [expect for _n, _a, expect, _x in scenario.steps]
    result = replay(MACHINE, PROFILE, ModelTarget(expected, _project), _steps(scenario))
    assert result.ok, f"the spec rejects step {result.steps[-1].index}: {result.steps[-1]}"
    for step, (_n, _a, expect, exact) in zip(result.steps, scenario.steps):
        if exact:
            assert step.allowed == (expect,), f"step {step.index} {step.call()}: spec also allows {step.allowed}"
        else:
            assert expect in step.allowed


@pytest.mark.parametrize("target", ["impl", "stdlib-epoll"])
@pytest.mark.parametrize("scenario", SCENARIOS, ids=IDS)
def test_kernel_does_the_scenario(scenario, target):
    cls = targets.load(target, "readiness")
    missing = scenario.needs - cls.features
    if missing:
        pytest.skip(f"{target} lacks {missing}")
    with cls() as t:
        result = replay(MACHINE, PROFILE, t, _steps(scenario))
    assert result.ok, "\n".join(f"{s.index}. {s.call()} -> {s.observed} (allowed {s.allowed})" for s in result.steps)
    for step, (_n, _a, expect, _exact) in zip(result.steps, scenario.steps):
        assert step.observed == expect, (
            f"step {step.index} {step.call()}: expected {expect}, target did {step.observed}"
        )


# Portable-only rules are shown by the portable tests at the end of this file.
PORTABLE_TESTS = {"RDY-EV-4"}


def test_every_rule_has_a_scenario():
    covered = {r for s in SCENARIOS for r in s.rules} | PORTABLE_TESTS
    # (the bsd-kqueue rules have their own scenarios: test_kqueue_model.py)
    epoll_rules = [r for r in RULES.area("readiness") if r.profiles - {"bsd-kqueue"}]
    missing = [r.id for r in epoll_rules if r.id not in covered]
    assert not missing, f"rules without a hand-written scenario: {missing}"
    unknown = covered - {r.id for r in RULES}
    assert not unknown, f"scenarios cite unknown rules: {unknown}"


# ---------------------------------------------------------------- portable

PORTABLE = MACHINE.profile("portable")


def _model_ok(profile, steps):
    expected = [expect for _n, _a, expect, _x in steps]
    names = [(name, args) for name, args, _e, _x in steps]
    return replay(MACHINE, profile, ModelTarget(expected, _project), names)




def test_portable_allows_spurious_events_linux_does_not():
    steps = [create(0, "pipe_r"), reg(0, 1, "r", "et"), write_peer(0, 1), poll(8, (1, IN)), poll(8, (1, IN))]
    assert _model_ok(PORTABLE, steps).ok  # RDY-EV-4: a spurious report is allowed
    linux = _model_ok(PROFILE, steps)
    assert not linux.ok and "RDY-ET-1" in linux.violated
    # ... even for a source that is not ready at all, within its interest:
    steps = [create(0, "pipe_r"), reg(0, 1, "r", "lt"), poll(8, (1, IN))]
    assert _model_ok(PORTABLE, steps).ok
    # but never with flags outside what it listens for, nor for a token nobody registered.
    assert not _model_ok(PORTABLE, [create(0, "pipe_r"), reg(0, 1, "r"), poll(8, (1, OUT))]).ok
    assert not _model_ok(PORTABLE, [create(0, "pipe_r"), reg(0, 1, "r"), poll(8, (2, IN))]).ok


def test_portable_still_requires_ready_registrations():
    steps = [create(0, "pipe_r"), reg(0, 1, "r", "lt"), write_peer(0, 1), poll(8)]
    result = _model_ok(PORTABLE, steps)
    assert not result.ok  # RDY-LT-1: nothing lost
    steps = [create(0, "pipe_r"), reg(0, 1, "r", "et"), write_peer(0, 1), read_ours(0, 8, n(1)), write_peer(0, 1), poll(8)]
    assert not _model_ok(PORTABLE, steps).ok  # RDY-ET-6: drained, then new data: an event is due


def test_portable_oneshot_and_edges():
    # A disarmed oneshot registration is never reported, even spuriously.
    steps = [create(0, "pipe_r"), reg(0, 1, "r", "lt", oneshot=True), write_peer(0, 1), poll(8, (1, IN)), poll(8, (1, IN))]
    assert not _model_ok(PORTABLE, steps).ok
    steps = steps[:-1] + [rereg(0, 1, "r", "lt", oneshot=True), poll(8, (1, IN))]
    assert _model_ok(PORTABLE, steps).ok
    # A second write to an unread source need not be an edge off Linux (RDY-ET-2 is linux-only).
    steps = [create(0, "pipe_r"), reg(0, 1, "r", "et"), write_peer(0, 1), poll(8, (1, IN)), write_peer(0, 1), poll(8)]
    assert _model_ok(PORTABLE, steps).ok
    assert not _model_ok(PROFILE, steps).ok


def test_portable_zero_max_events_may_return_nothing():
    assert _model_ok(PORTABLE, [create(0, "eventfd"), poll(0)]).ok
    assert _model_ok(PORTABLE, [create(0, "eventfd"), poll_err(0, "EINVAL")]).ok
    assert not _model_ok(PROFILE, [create(0, "eventfd"), poll(0)]).ok
