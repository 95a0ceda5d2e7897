"""Every waker rule, by hand: each scenario against the model and the real targets."""

from __future__ import annotations

import pytest
from asyncspec.conformance import targets
from asyncspec.conformance.engine.replay import ModelTarget, replay
from asyncspec.spec import RULES
from asyncspec.spec.waker import MACHINE
from tests.scenarios.waker import SCENARIOS

PROFILE = MACHINE.profile("std")
IDS = [s.name for s in SCENARIOS]


def _steps(scenario):
    return [(name, args) for name, args, _expect, _exact in scenario.steps]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=IDS)
def test_model_allows_exactly_the_scenario(scenario):
    expected = [expect for _n, _a, expect, _x in scenario.steps]
    result = replay(MACHINE, PROFILE, ModelTarget(expected), _steps(scenario))
    assert result.ok, f"the spec rejects step {result.steps[-1].index}: {result.steps[-1]}"
    for step, (_n, _a, expect, exact) in zip(result.steps, scenario.steps):
        if exact:
            assert step.allowed == (expect,), f"step {step.index} {step.call()}: spec also allows {step.allowed}"
        else:
            assert expect in step.allowed and len(step.allowed) > 1, step


def test_every_rule_has_a_scenario():
    covered = {r for s in SCENARIOS for r in s.rules}
    missing = [r.id for r in RULES.area("waker") if r.id not in covered]
    assert not missing, f"rules without a hand-written scenario: {missing}"
    assert covered <= {r.id for r in RULES}


TARGETS = targets.builtin("waker")
# Only the pairs that apply: a scenario runs on every target with the features it needs.
PAIRS = [(s, name) for s in SCENARIOS for name, cls in TARGETS.items() if s.needs <= cls.features]


def test_every_scenario_runs_on_some_target():
    assert {s.name for s, _target in PAIRS} == set(IDS)


@pytest.mark.parametrize(("scenario", "target"), PAIRS, ids=[f"{s.name}-{name}" for s, name in PAIRS])
def test_target_does_the_scenario(scenario, target):
    cls = TARGETS[target]
    why = cls.unavailable()
    if why:
        pytest.skip(f"{target}: {why}")
    with cls() as t:
        result = replay(MACHINE, PROFILE, t, _steps(scenario))
    assert result.ok, "\n".join(f"{s.index}. {s.call()} -> {s.observed} (allowed {s.allowed})" for s in result.steps)
    for step, (_n, _a, expect, _exact) in zip(result.steps, scenario.steps):
        assert t.project(None, step.action, expect) == step.observed or step.observed == expect, (
            f"step {step.index} {step.call()}: expected {expect}, target did {step.observed}"
        )
