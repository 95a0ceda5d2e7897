"""Replay a fixed list of steps against the model and a target, without Hypothesis.

Scenario tests, saved counterexamples and z3 traces all come down to this:
perform each step on the target, narrow the model's possible states by what
it observed, and stop at the first step the spec does not allow.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable, Hashable, Iterable, Mapping, Sequence

from asyncspec.conformance.engine.bridge import checked
from asyncspec.conformance.engine.selection import Selection
from asyncspec.conformance.engine.verdicts import Step, Violation
from asyncspec.conformance.target import Target
from asyncspec.spec import machine_for
from asyncspec.spec.core import Machine, Profile, StepResult, enabled


class NotEnabled(ValueError):
    """A replayed step's precondition does not hold (the trace is not a run of the spec)."""


@dataclass
class Replay:
    steps: list[Step]
    beliefs: frozenset

    @property
    def ok(self) -> bool:
        return not any(s.violated for s in self.steps)

    @property
    def violated(self) -> tuple[str, ...]:
        return self.steps[-1].violated if self.steps else ()


def replay(
    machine: Machine,
    profile: Profile,
    target: Target,
    steps: Iterable[tuple[str, Mapping[str, Any]]],
    selection: Selection | None = None,
    on_step: Callable[[Step, StepResult], None] | None = None,
) -> Replay:
    """Run ``steps`` on an opened ``target``; stop at the first violation.

    With a ``selection``, known deviations breaking only rules it does not
    enforce are tolerated (as in the run that found the trace); without one
    every rule is enforced.  ``on_step(step, result)`` is called after each
    checked step (a run records its coverage there).
    """
    beliefs = frozenset({machine.init(profile)})
    done: list[Step] = []
    for name, args in steps:
        action = machine.action(name)
        args = dict(args)
        if not enabled(action, beliefs, args, profile):
            raise NotEnabled(f"step {len(done) + 1}: {name}({args}) is not enabled in the spec here")
        missing = set().union(*(action.requires(s, args) for s in beliefs)) - set(target.features)
        if missing and not isinstance(target, ModelTarget):
            raise NotEnabled(f"step {len(done) + 1}: {name}({args}) needs {sorted(missing)}, which {target.name} lacks")
        try:
            obs = target.perform(name, args)
        except Exception as e:  # a raising target misbehaved; report it as observed
            obs = ("raised", f"{type(e).__name__}: {e}")
        result = checked(machine, profile, beliefs, action, args, obs, target, selection)
        done.append(Step.made(len(done) + 1, machine, name, args, obs, result, beliefs))
        if on_step is not None:
            on_step(done[-1], result)
        if not result.ok:
            break
        beliefs = result.beliefs
    return Replay(done, beliefs)


class ModelTarget(Target):
    """A target whose observations are given in advance (checks a scenario against the model alone).

    It answers each step with the next expected observation, so a replay
    asks exactly: does the spec allow this sequence?
    """

    name = "model"
    features = frozenset()

    def __init__(self, expected: Iterable[Hashable], project=None):
        self._expected = list(expected)
        self._project = project

    def perform(self, action, args):
        return self._expected.pop(0)

    def project(self, state, action, obs):
        return self._project(state, action, obs) if self._project else obs


class SpecTarget(Target):
    """A machine's own actions as a target: each step takes the spec's first
    allowed outcome (for the machine's default profile).  A run z3 found is
    saved with it as its target, so `asyncspec replay FILE` replays it on the
    model (and ``--target impl`` on the reference implementation)."""

    name = "model"
    description = "the spec machine itself, taking each action's first allowed outcome"

    def open(self) -> None:
        self.machine = machine_for(self.area)
        self.prof = self.machine.profile(self.profile or None)
        self.state = self.machine.init(self.prof)

    def perform(self, action: str, args: Mapping[str, Any]):
        outcomes = [o for o in self.machine.action(action).outcomes(self.state, dict(args), self.prof) if not o.breaks]
        self.state = outcomes[0].next
        return outcomes[0].obs


class SpecReadiness(SpecTarget):
    area = "readiness"
    dialect = "epoll"
    features = frozenset({"level", "edge", "oneshot", "rdhup", "eventfd", "errors", "nested", "dup", "ofd", "cap"})


class SpecWaker(SpecTarget):
    area = "waker"
    features = frozenset({"executor", "bare", "noop", "context", "atomic_waker"})


class SpecFiber(SpecTarget):
    area = "fiber"
    features = frozenset({"guard", "nested", "errors", "abi", "stack", "df", "sigmask"})


# The spec as a target, by area, as a target name (module:class).
SPEC_TARGETS = {c.area: f"{__name__}:{c.__name__}" for c in (SpecReadiness, SpecWaker, SpecFiber)}


def model_run(run, machine: Machine | None = None) -> Violation:
    """A run the model found (`asyncspec.model.trace.Run`: steps with their
    observations) as a `Violation` of its property's rules, each step checked
    by a replay on the spec (``machine``, default the run's area and profile).
    The target is the spec itself (`SPEC_TARGETS`)."""
    machine = machine or machine_for(run.area, run.profile)
    profile = machine.profile(run.profile)
    done = replay(machine, profile, ModelTarget(run.observations), run.calls)
    assert done.ok and len(done.steps) == len(run.steps), "a z3 trace the spec does not allow"
    steps = list(done.steps)
    steps[-1] = replace(steps[-1], violated=tuple(run.rules))
    return Violation(run.area, run.profile, SPEC_TARGETS[run.area], steps)


def minimize(
    machine: Machine,
    profile: Profile,
    target_cls: type[Target],
    steps: list[tuple[str, Mapping[str, Any]]],
    rules: Iterable[str],
    selection: Selection | None = None,
    prepare: Callable[[Sequence[list[tuple[str, Mapping[str, Any]]]]], None] | None = None,
) -> Replay | None:
    """Delete steps while the replay still breaks one of ``rules``.

    A delta-debugging pass on the trace itself, cheap because a replay needs
    no search: delete blocks of steps (set-up that only works as a whole,
    such as create/close/close, goes together), then try each parameter's
    earlier domain values, to a fixpoint.  It runs after Hypothesis's own
    shrinker, or instead of it.  Returns the shortest failing
    replay found, or None if the trace no longer fails when replayed.

    ``prepare(candidates)``, when given, is called with each round's
    candidate traces before any of them is replayed: a batched target
    (one that compiles its traces, see conformance/engine/runner.py) answers a
    whole round with one build.
    """
    wanted = set(rules)

    def attempt(candidate):
        target = target_cls()
        target.open()
        try:
            result = replay(machine, profile, target, candidate, selection)
        except NotEnabled:
            return None
        finally:
            target.close()
        if result.ok or not (set(result.violated) & wanted):
            return None
        return result

    if prepare is not None:
        prepare([list(steps)])
    best = attempt(steps)
    if best is None:
        return None
    def candidates(current):
        # Blocks first: set-up that only works as a whole (create, close,
        # close) must go together.  Never the last (failing) step.
        for size in (4, 3, 2, 1):
            for i in range(len(current) - 1 - size, -1, -1):
                yield current[:i] + current[i + size :]
        # Then simpler arguments: each parameter's earlier domain values.
        for i, (name, args) in enumerate(current):
            for param in machine.action(name).params:
                for value in param.domain[: param.domain.index(args[param.name])]:
                    yield current[:i] + [(name, dict(args, **{param.name: value}))] + current[i + 1 :]

    current = [(s.action, s.args) for s in best.steps]
    while True:
        round_ = list(candidates(current))
        if prepare is not None:
            prepare(round_)
        for candidate in round_:
            result = attempt(candidate)
            if result is not None and len(result.steps) <= len(current):
                best = result
                current = [(s.action, s.args) for s in result.steps]
                break
        else:
            return best
