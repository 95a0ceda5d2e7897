"""z3's counterexamples as ordinary counterexample files, and the spec as a target.

A bounded model checking run from the initial state ends in a list of
(action, arguments) steps and the outcome each took.  `save` re-executes
those steps on the spec (`conformance.replay`, the code every saved
counterexample goes through), names the broken property's rules on the last
step, and writes the usual file set (`conformance.counterexample.save`):
JSON that `asyncspec replay` re-executes, the ITF trace and the drawing.

The file's target is the spec itself, run as a target (`Readiness`,
`Waker`, `Fiber` below): `asyncspec replay FILE` replays the trace on the
model, `asyncspec replay FILE --target impl` on the reference
implementation (or any other target).  Every step conforms in both when the
target follows the spec; the property broken is the recorded one, shown in
the states the steps lead to.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Mapping

from ..conformance.target import Target
from ..spec import machine_for
from ..spec.core import Machine, Profile


class SpecTarget(Target):
    """A machine's own actions as a target: each step takes the spec's first
    allowed outcome (for the machine's default profile)."""

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


class Readiness(SpecTarget):
    area = "readiness"
    dialect = "epoll"
    features = frozenset({"level", "edge", "oneshot", "rdhup", "eventfd", "errors", "nested", "dup", "ofd", "cap"})


class Waker(SpecTarget):
    area = "waker"
    features = frozenset({"executor", "bare", "noop", "context", "atomic_waker"})


class Fiber(SpecTarget):
    area = "fiber"
    features = frozenset({"guard", "nested", "errors", "abi", "stack", "df", "sigmask"})


TARGETS = {c.area: f"{__name__}:{c.__name__}" for c in (Readiness, Waker, Fiber)}


@dataclass
class Counterexample:
    """A run from the machine's initial state that breaks a property."""

    machine: Machine  # the spec's machine (the steps are its actions)
    profile: Profile
    steps: list  # (action, args)
    choices: list  # the outcome each step took
    rules: tuple  # the property's rules, broken after the last step
    text: str = ""  # the property, in words


def observations(machine: Machine, profile: Profile, steps, choices) -> list:
    """What each step observes when it takes the given outcome."""
    state = machine.init(profile)
    out = []
    for (name, args), k in zip(steps, choices):
        o = machine.action(name).outcomes(state, dict(args), profile)[k]
        out.append(o.obs)
        state = o.next
    return out


def violation(cx: Counterexample, target: str):
    """The run as a `Violation` of the property's rules (steps checked by replay)."""
    from ..conformance.engine.verdicts import Violation
    from ..conformance.engine.replay import ModelTarget, replay

    obs = observations(cx.machine, cx.profile, cx.steps, cx.choices)
    run = replay(cx.machine, cx.profile, ModelTarget(obs), cx.steps)
    assert run.ok and len(run.steps) == len(cx.steps), "a z3 trace the spec does not allow"
    steps = list(run.steps)
    steps[-1] = replace(steps[-1], violated=tuple(cx.rules))
    return Violation(cx.machine.area, cx.profile.name, target, steps)


def save(cx: Counterexample, out_dir: str, formats=("svg",)) -> tuple[dict, str]:
    """Write the counterexample files; (paths by kind, a note on any drawing not made)."""
    from ..conformance.output.counterexample import save as save_files

    target = TARGETS[cx.machine.area]
    return save_files(violation(cx, target), target, out_dir, formats=formats)
