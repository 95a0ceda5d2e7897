"""Started fibers as pinned self-referential values: the switcher's side
(relocate, the unchecked move, the self-pointer checker) and the `impl`
pin target against the spec."""

from __future__ import annotations

import platform

import pytest

from asyncspec.conformance.engine.verdicts import FAIL

from asyncspec.conformance.engine.runner import run

pytestmark = pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="the fiber switcher is x86-64 only here")


@pytest.fixture
def fib():
    from asyncspec.conformance.targets.impl import probe as fiber

    return fiber


def test_a_fiber_that_never_ran_may_move_and_then_runs_on_its_new_stack(fib):
    with fib.Stack.allocate(65536) as a, fib.Stack.allocate(65536) as b:
        f = fib.Fiber(a, [fib.Yield(times=2, add=1)])
        assert f.self_check().ok
        assert f.relocate(b) is a
        assert f.stack is b and not a.in_use and b.in_use
        assert f.self_check().ok
        assert f.resume(5) == (fib.Status.YIELDED, 6)
        # It really runs on b: its entry stack pointer is inside b.
        assert b.base <= f.entry_sp < b.top
        assert f.resume(1) == (fib.Status.YIELDED, 2)
        f.close()


def test_a_started_fiber_is_pinned_and_refuses_to_move(fib):
    with fib.Stack.allocate(65536) as a, fib.Stack.allocate(65536) as b:
        f = fib.Fiber(a, [fib.Yield(times=3)])
        f.resume()
        with pytest.raises(fib.PinnedError, match="pinned"):
            f.relocate(b)
        assert f.stack is a and not b.in_use
        check = f.self_check()
        assert check.ok and check.pointers >= 2 and check.bad is None
        assert f.resume()[0] == fib.Status.YIELDED  # unharmed
        f.close()


def test_an_unchecked_move_of_a_started_fiber_is_found_by_the_checker_not_by_a_crash(fib):
    with fib.Stack.allocate(65536) as a, fib.Stack.allocate(65536) as b:
        f = fib.Fiber(a, [fib.Yield(times=3)])
        f.resume()
        f._relocate_unchecked(b)
        check = f.self_check()
        assert not check.ok
        # The dangling pointer points into the old stack, which stays mapped.
        assert a.base <= check.bad <= a.top
        assert f.stack is b
        f.close()
        assert not b.in_use


def test_bad_relocations_say_what_was_wrong(fib):
    with fib.Stack.allocate(65536) as a, fib.Stack.allocate(65536) as b:
        f = fib.Fiber(a, [fib.Yield()])
        g = fib.Fiber(b, [fib.Yield()])
        with pytest.raises(ValueError, match="in use by another fiber"):
            f.relocate(b)
        with pytest.raises(TypeError, match="Stack"):
            f.relocate("not a stack")
        g.close()
        f.close()
        with pytest.raises(ValueError, match="closed"):
            f.relocate(b)
        with pytest.raises(ValueError, match="closed"):
            f.self_check()


def test_the_pin_run_against_impl_passes_every_rule_it_can_reach():
    res = run("pin", "impl", max_examples=150, seed=3)
    assert res.ok and res.error is None, res.failure
    status = {r.rule.id: r.status for r in res.results}
    for rule in ("PIN-ADDR-1", "PIN-SELF-1", "PIN-DROP-1", "PIN-DROP-4", "PIN-MOVE-1", "PIN-MOVE-2", "PIN-UNSAFE-1"):
        assert status[rule] == "pass", (rule, status[rule])
    for rule in ("PIN-UNPIN-1", "PIN-UNPIN-2", "PIN-PROJ-1", "PIN-DROP-2"):
        assert status[rule] == "n/a"


def test_a_runtime_that_lets_safe_code_move_a_started_fiber_is_caught():
    res = run("pin", "tests.fixtures.broken_pin:RelocateStarted", max_examples=200, seed=1)
    assert res.error is None
    assert res.failure is not None, "the broken relocation passed"
    assert "PIN-MOVE-2" in res.failure.rules, res.failure
    assert len(res.failure.steps) <= 8, res.failure
    status = {r.rule.id: r.status for r in res.results}
    assert status["PIN-MOVE-2"] == FAIL


# ------------------------------------------------ the hand-written scenarios

from tests.scenarios.pin import SCENARIOS  # noqa: E402

from asyncspec.conformance.engine.replay import replay  # noqa: E402
from asyncspec.conformance.targets.impl.pin import ImplPin  # noqa: E402
from asyncspec.spec.pin import MACHINE  # noqa: E402

FOR_IMPL = [s for s in SCENARIOS if s.needs <= ImplPin.features]


def test_each_scenario_declares_every_feature_its_steps_need():
    p = MACHINE.profile()
    for sc in SCENARIOS:
        state, needed = MACHINE.init(p), set()
        for (name, args), expected in zip(sc.actions(), sc.expected()):
            action = MACHINE.action(name)
            needed |= action.requires(state, args)
            (state,) = [o.next for o in action.outcomes(state, args, p) if o.obs == expected][:1]
        assert needed <= sc.needs, (sc.name, needed)


def test_the_impl_scenarios_cover_every_rule_impl_can_reach():
    reachable = {r.id for r in MACHINE.rules() if r.features <= ImplPin.features}
    assert {s.rule for s in FOR_IMPL} == reachable


@pytest.mark.parametrize("sc", FOR_IMPL, ids=[s.name for s in FOR_IMPL])
def test_scenario_is_what_the_fibers_do(sc, no_leaks):
    target = ImplPin()
    target.open()
    try:
        r = replay(MACHINE, MACHINE.profile(), target, sc.actions())
    finally:
        target.close()
    assert r.ok, [(s.call(), s.observed, s.allowed) for s in r.steps]
    assert [s.observed for s in r.steps] == [target.project(None, a, e) for (a, _), e in zip(sc.actions(), sc.expected())]
