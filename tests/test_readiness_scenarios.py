"""Every readiness rule, by hand: each scenario against the model and the real kernel."""

from __future__ import annotations

import pytest

from asyncspec.conformance import targets
from asyncspec.conformance.readiness import LinuxSources
from asyncspec.conformance.replay import ModelTarget, replay
from asyncspec.spec import RULES
from asyncspec.spec.readiness import MACHINE

from readiness_scenarios import SCENARIOS

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


def test_every_linux_rule_has_a_scenario():
    covered = {r for s in SCENARIOS for r in s.rules}
    missing = [r.id for r in RULES.area("readiness") if r.holds_in("linux-epoll") and r.id not in covered]
    assert not missing, f"rules without a hand-written scenario: {missing}"
    unknown = covered - {r.id for r in RULES}
    assert not unknown, f"scenarios cite unknown rules: {unknown}"
