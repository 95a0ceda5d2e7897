"""One generic bridge from a spec machine to a Hypothesis state machine.

`build(machine, profile, target_cls, recorder)` returns a
`RuleBasedStateMachine` subclass with one Hypothesis rule per spec action.
Each step draws the action's arguments from their finite domains (only
combinations enabled in every possible model state and needing no feature
the target lacks), performs it on a fresh target instance, and narrows the
set of possible model states by the observation.  An observation outside the
allowed set fails the step, naming the broken rule IDs.

It is an ordinary Hypothesis test: its ``TestCase`` is collected by pytest,
runs under pytest-xdist or HypoFuzz, and shares Hypothesis's example
database.
"""

from __future__ import annotations

from functools import lru_cache

from asyncspec.conformance.engine.selection import EVERYTHING, Selection
from asyncspec.conformance.engine.verdicts import Recorder, SpecInconsistent, Step, Violation, warning
from asyncspec.conformance.target import TARGET_SOUND, Target, target_failed
from asyncspec.spec.core import RULES, Action, Machine, Profile, StepResult, check_step, enabled
from hypothesis import reject
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule


def checked(machine, profile, beliefs, action, args, obs, target, selection: Selection | None = None) -> StepResult:
    """check_step, with a target's own failure (exception, crash, hang) named TGT-1.

    Known deviations that break only rules ``selection`` does not enforce are
    tolerated; with no selection every rule is enforced.
    """
    tolerate = None if selection is None else (lambda r: not selection.enforces(r))
    result = check_step(machine, profile, beliefs, action, args, obs, project=target.project, tolerate=tolerate)
    if not result.ok and target_failed(obs):
        return StepResult(result.beliefs, (), result.allowed, (TARGET_SOUND,))
    if not result.ok:
        # Name the rules that apply here: in the profile, and claimed by the
        # target (an explanation may list a stricter profile's rule too).
        features = frozenset(target.features)
        applicable = tuple(
            r
            for r in result.violated
            if r not in RULES or (RULES[r].holds_in(profile.name) and RULES[r].features <= features and target.claims_rule(r))
        )
        if applicable and applicable != result.violated:
            return StepResult(result.beliefs, result.matched_rules, result.allowed, applicable, result.tolerated)
    return result


def takeable_args(action: Action, beliefs: frozenset, profile: Profile, features: frozenset[str]) -> list[dict]:
    """The arguments with which ``action`` is enabled in every possible state
    and needs only features the target has."""
    out = []
    for args in action.all_args():
        if not enabled(action, beliefs, args, profile):
            continue
        if any(not action.requires(s, args) <= features for s in beliefs):
            continue
        out.append(args)
    return out


def check_invariants(machine: Machine, profile: Profile, beliefs) -> None:
    """SpecInconsistent if a possible state breaks one of the machine's invariants."""
    for inv in machine.invariants:
        for s in beliefs:
            if not inv.holds(s, profile):
                raise SpecInconsistent(f"{inv.rule}: {inv.doc} fails in {machine.describe(s)}")


def build(
    machine: Machine,
    profile: Profile,
    target_cls: type[Target],
    recorder: Recorder | None = None,
    selection: Selection = EVERYTHING,
) -> type[RuleBasedStateMachine]:
    recorder = recorder if recorder is not None else Recorder()
    features = frozenset(target_cls.features)

    @lru_cache(maxsize=65536)
    def valid_args(action: Action, beliefs: frozenset) -> tuple[tuple, ...]:
        out = []
        for args in takeable_args(action, beliefs, profile, features):
            # Weighted values are offered several times (a sampling hint only).
            out.extend([tuple(sorted(args.items()))] * action.arg_weight(args))
        return tuple(out)

    class SpecMachine(RuleBasedStateMachine):
        def __init__(self):
            super().__init__()
            self.beliefs = frozenset({machine.init(profile)})
            self.trace: list[Step] = []
            self.target = target_cls()
            self.target.open()
            recorder.examples += 1
            if recorder.progress:
                recorder.progress(recorder)

        def teardown(self):
            self.target.close()

        def _take(self, action: Action, data) -> None:
            choices = valid_args(action, self.beliefs)
            args = dict(data.draw(st.sampled_from(choices), label=action.name))
            try:
                obs = self.target.perform(action.name, args)
            except Exception as e:  # a target that raises has misbehaved: report it
                obs = ("raised", f"{type(e).__name__}: {e}")
            result = checked(machine, profile, self.beliefs, action, args, obs, self.target, selection)
            step = Step.made(len(self.trace) + 1, machine, action.name, args, obs, result, self.beliefs)
            self.trace.append(step)
            recorder.step(result, action.name)
            if result.tolerated:
                # A known deviation breaking only unenforced rules: a warning, and the run goes on.
                recorder.tolerate(warning(machine.area, profile.name, target_cls.name, self.trace))
            if not result.ok:
                failure = Violation(machine.area, profile.name, target_cls.name, list(self.trace))
                if not selection.fails_on(result.violated):
                    # Only rules this run does not enforce are broken, in a way
                    # the spec does not describe (so it cannot say what
                    # follows): keep the counterexample as a warning, drop the
                    # example, search on.
                    recorder.tolerate(failure)
                    reject()
                recorder.failure = failure
                raise failure
            self.beliefs = result.beliefs

        @invariant()
        def spec_invariants(self):
            check_invariants(machine, profile, self.beliefs)

    def make_rule(action: Action):
        @precondition(lambda self: bool(valid_args(action, self.beliefs)))
        @rule(data=st.data())
        def step(self, data):
            self._take(action, data)

        step.__name__ = action.name
        return step

    for action in machine.actions:
        # Hypothesis picks among enabled rules uniformly: an action of weight
        # k is offered as k rules (named poll, poll_2, ...; traces use the
        # action's own name).
        for copy in range(max(1, action.weight)):
            setattr(SpecMachine, action.name + (f"_{copy + 1}" if copy else ""), make_rule(action))
    SpecMachine.__name__ = SpecMachine.__qualname__ = (
        f"{machine.area.title()}_{target_cls.name.replace('-', '_')}_{profile.name.replace('-', '_')}"
    )
    SpecMachine.recorder = recorder
    return SpecMachine
