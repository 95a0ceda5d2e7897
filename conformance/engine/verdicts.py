"""What a check finds: the steps it took, the violation that ended it, and
the verdict on every rule.  Read by the engine that produces them and by
every output (terminal text, counterexample files, reports).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Hashable

from asyncspec.conformance.engine.selection import EVERYTHING, EXCLUDED, NOT_SELECTED, SHOULD_ONLY, Selection
from asyncspec.spec.core import Machine, Rule, StepResult

PASS, FAIL, NA, UNTESTED, WARN, SKIP = "pass", "FAIL", "n/a", "untested", "warn", "skipped"
STATUSES = (PASS, FAIL, WARN, UNTESTED, SKIP, NA)


@dataclass
class Step:
    """One performed step, as recorded (the stuff counterexamples are made of)."""

    index: int
    action: str
    args: dict[str, Any]
    observed: Hashable
    allowed: tuple[Hashable, ...]
    before: tuple[str, ...]  # possible states before, described
    after: tuple[str, ...]
    violated: tuple[str, ...] = ()
    # Rules a known deviation broke that the run tolerated (SHOULD rules, exclusions).
    tolerated: tuple[str, ...] = ()
    # The possible model states themselves, in the order of `before`/`after`.
    model_before: tuple = ()
    model_after: tuple = ()

    @classmethod
    def made(cls, index: int, machine: Machine, action: str, args, obs, result: StepResult, beliefs) -> "Step":
        """The record of one checked step: ``beliefs`` before it, ``result`` of checking it."""
        before = sorted(beliefs, key=machine.describe)
        after = sorted(result.beliefs, key=machine.describe)
        return cls(
            index=index,
            action=action,
            args=args,
            observed=obs,
            allowed=result.allowed,
            before=tuple(machine.describe(s) for s in before),
            after=tuple(machine.describe(s) for s in after),
            violated=result.violated,
            tolerated=result.tolerated,
            model_before=tuple(before),
            model_after=tuple(after),
        )

    def call(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self.args.items())
        return f"{self.action}({inner})"


class Violation(AssertionError):
    """A target's observation lies outside what the spec allows."""

    def __init__(self, area: str, profile: str, target: str, steps: list[Step]):
        self.area, self.profile, self.target, self.steps = area, profile, target, steps
        last = steps[-1]
        super().__init__(
            f"{target} broke {', '.join(last.violated)} at step {last.index}: {last.call()} "
            f"observed {last.observed!r}, allowed {list(last.allowed)!r}"
        )

    @property
    def rules(self) -> tuple[str, ...]:
        return self.steps[-1].violated


class SpecInconsistent(AssertionError):
    """An invariant of the spec itself failed (a bug in the spec, not the target)."""


@dataclass
class Recorder:
    """What a run saw, across all examples: coverage, and the last failure."""

    rules: Counter = field(default_factory=Counter)
    actions: Counter = field(default_factory=Counter)
    examples: int = 0
    steps: int = 0
    failure: Violation | None = None
    # Violations of rules the run does not enforce: the first counterexample
    # per set of broken rules, and how often each rule was broken.
    tolerated: dict[tuple[str, ...], Violation] = field(default_factory=dict)
    tolerated_count: Counter = field(default_factory=Counter)
    progress: Any = None  # callable(recorder) or None

    def step(self, result: StepResult, action: str) -> None:
        self.steps += 1
        self.actions[action] += 1
        self.rules.update(result.matched_rules)

    def tolerate(self, v: Violation) -> None:
        self.tolerated_count.update(v.rules)
        self.tolerated.setdefault(tuple(sorted(v.rules)), v)


def warning(area: str, profile: str, target: str, steps: list[Step]) -> Violation:
    """The counterexample of a known deviation the run tolerated at its last step."""
    warned = dataclasses.replace(steps[-1], violated=steps[-1].tolerated, tolerated=())
    return Violation(area, profile, target, steps[:-1] + [warned])


@dataclass
class RuleResult:
    rule: Rule
    status: str
    exercised: int
    why: str = ""


@dataclass
class Finding:
    """A counterexample of a run, and the files it was saved to."""

    violation: Violation
    fatal: bool  # False: it breaks only rules the run tolerates (a warning)
    files: dict[str, str] = field(default_factory=dict)  # kind (json, itf, dot, svg, png) -> path
    render_note: str = ""  # why a drawing is missing, if it is


@dataclass
class RunResult:
    area: str
    target: str
    profile: str
    results: list[RuleResult]
    recorder: Recorder
    seconds: float
    failure: Violation | None = None
    error: str | None = None
    settings: dict = field(default_factory=dict)
    selection: Selection = EVERYTHING
    warnings: list[Violation] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)  # filled in when saved

    @property
    def ok(self) -> bool:
        if self.failure is not None or self.error is not None:
            return False
        # --strict: a selected rule no step exercised is not a pass.
        return not (self.selection.strict and any(r.status == UNTESTED for r in self.results))

    def counts(self) -> dict[str, int]:
        return {s: sum(1 for r in self.results if r.status == s) for s in STATUSES}


def judge(
    rule: Rule,
    profile: str,
    features: frozenset[str],
    exercised: int,
    violated: set[str],
    selection: Selection = EVERYTHING,
    tolerated: dict[str, int] | None = None,
    claimed: bool = True,
) -> RuleResult:
    tolerated = tolerated or {}
    if not rule.holds_in(profile):
        return RuleResult(rule, NA, 0, f"not in profile {profile}")
    if not claimed:
        return RuleResult(rule, NA, exercised, "not claimed by the target")
    missing = rule.features - features
    if missing:
        return RuleResult(rule, NA, exercised, "target lacks " + ", ".join(sorted(missing)))
    status = selection.status(rule)
    broken = tolerated.get(rule.id, 0)
    if status in (EXCLUDED, NOT_SELECTED):
        why = status + (f"; broken {broken} times (see the warning's counterexample)" if broken else "")
        return RuleResult(rule, SKIP, exercised, why)
    if status == SHOULD_ONLY and (broken or rule.id in violated):
        return RuleResult(rule, WARN, exercised, f"SHOULD rule broken {max(broken, 1)} times (--strict makes it fail)")
    if rule.id in violated:
        return RuleResult(rule, FAIL, exercised)
    if exercised == 0:
        return RuleResult(rule, UNTESTED, 0, "never exercised")
    return RuleResult(rule, PASS, exercised)
