"""The spec framework: rules, profiles, actions and machines.

Every area (readiness, waker, pin, fiber) is written once as a `Machine` and
everything else reads it: the conformance bridge drives it beside a target,
`model/` reads it symbolically, the docs enumerate it.

Vocabulary
----------
Rule
    A stable ID (``RDY-ET-2``), one normative sentence, the source it comes
    from, and the profiles it holds in.  Failures, docs, proofs and coverage
    all speak in rule IDs.
Profile
    A named set of options that selects stricter or looser variants of the
    rules (``linux-epoll`` is exact, ``portable`` is what a cross-platform
    reactor may promise).
State
    An immutable value (a frozen dataclass of small ints, bools and fixed-size
    tuples), cheap to hash.
Action
    Named, with parameters drawn from small finite domains, a precondition, and
    a function returning the *set of allowed outcomes*: each an
    (observation, next state) pair with the rule IDs that put it there.  Real
    systems have freedom (which ready registrations one capped poll returns,
    whether a partial read frees buffer space); the spec lists every permitted
    outcome and a target must pick one of them.

Because outcomes may share an observation but differ in their next state, a
checker follows a *set* of possible states (a belief), narrowed by each
observation.  An empty belief is a violation.

Purity: nothing here performs I/O, reads a clock or draws randomness.
"""

from __future__ import annotations

import fnmatch
import itertools
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Iterable, Mapping

MUST = "MUST"
SHOULD = "SHOULD"


# --------------------------------------------------------------------- rules


@dataclass(frozen=True)
class Rule:
    """One normative statement of the spec."""

    id: str
    statement: str
    source: str
    profiles: frozenset[str]
    area: str
    tier: str = MUST
    rationale: str = ""
    # Measurements on a real system that fixed or confirmed the rule.
    measured: str = ""
    # Optional capabilities a target must have for the rule to apply to it
    # (e.g. "edge" for edge-triggered rules).  A target lacking one reports
    # the rule as not applicable.
    features: frozenset[str] = frozenset()

    def holds_in(self, profile: str) -> bool:
        return profile in self.profiles


class RuleRegistry:
    """Every rule of every area, by ID.  A rule is defined exactly once."""

    def __init__(self) -> None:
        self._rules: dict[str, Rule] = {}

    def add(self, rule: Rule) -> Rule:
        if rule.id in self._rules:
            raise ValueError(f"rule {rule.id} is defined twice")
        if rule.tier not in (MUST, SHOULD):
            raise ValueError(f"rule {rule.id}: tier must be MUST or SHOULD, not {rule.tier!r}")
        self._rules[rule.id] = rule
        return rule

    def __getitem__(self, rule_id: str) -> Rule:
        try:
            return self._rules[rule_id]
        except KeyError:
            raise KeyError(f"no rule with ID {rule_id!r}") from None

    def __contains__(self, rule_id: str) -> bool:
        return rule_id in self._rules

    def __iter__(self):
        return iter(sorted(self._rules.values(), key=lambda r: _rule_sort_key(r.id)))

    def __len__(self) -> int:
        return len(self._rules)

    def remove_area(self, area: str) -> None:
        """Forget every rule of ``area`` (an area registered from outside, unregistered again)."""
        for rule_id in [r.id for r in self._rules.values() if r.area == area]:
            del self._rules[rule_id]

    def area(self, area: str) -> list[Rule]:
        return [r for r in self if r.area == area]

    def match(self, pattern: str) -> list[Rule]:
        return [r for r in self if fnmatch.fnmatchcase(r.id, pattern)]


def _rule_sort_key(rule_id: str):
    return [int(p) if p.isdigit() else p for p in rule_id.split("-")]


RULES = RuleRegistry()


def rule(
    id: str,
    statement: str,
    *,
    source: str,
    profiles: Iterable[str],
    area: str,
    tier: str = MUST,
    rationale: str = "",
    measured: str = "",
    features: Iterable[str] = (),
) -> str:
    """Define a rule in the global registry and return its ID."""
    RULES.add(
        Rule(
            id=id,
            statement=" ".join(statement.split()),
            source=source,
            profiles=frozenset(profiles),
            area=area,
            tier=tier,
            rationale=" ".join(rationale.split()),
            measured=" ".join(measured.split()),
            features=frozenset(features),
        )
    )
    return id


# ------------------------------------------------------------------ profiles


@dataclass(frozen=True)
class Profile:
    """A named choice of rule variants, as plain boolean options."""

    name: str
    area: str
    description: str
    options: Mapping[str, bool] = field(default_factory=dict)

    def __getattr__(self, option: str) -> bool:
        try:
            return self.__dict__["options"][option]
        except KeyError:
            raise AttributeError(f"profile {self.__dict__.get('name')!r} has no option {option!r}") from None

    def __hash__(self) -> int:
        return hash((self.name, self.area))


# ------------------------------------------------------------------- actions


@dataclass(frozen=True)
class Param:
    """A typed action parameter with a small finite domain.

    ``weights`` (one small int per value) only hints how often a search
    should try each value; the first value is the one shrinking prefers.
    """

    name: str
    domain: tuple
    weights: tuple[int, ...] | None = None

    def weight(self, value) -> int:
        return 1 if self.weights is None else self.weights[self.domain.index(value)]


@dataclass(frozen=True)
class Outcome:
    """One allowed result of an action: what is observed, and what follows.

    An outcome with ``breaks`` is a *deviation* the spec knows: it is allowed
    only where those rules (SHOULD rules, or rules a run excludes) are not
    enforced, and says what follows then, so a check can go on after it.
    """

    obs: Hashable
    next: Hashable
    rules: tuple[str, ...] = ()
    breaks: tuple[str, ...] = ()


@dataclass(frozen=True)
class Action:
    """A named step of a machine.

    ``pre(state, args, profile)`` says whether the step may be taken;
    ``outcomes(state, args, profile)`` lists every allowed outcome;
    ``explain(state, args, profile, obs)`` names the rules an observation
    outside that list breaks (defaults to the rules of the allowed outcomes);
    ``requires(state, args)`` names the optional target features the step
    needs (a target without them is never asked to take it);
    ``accepts(state, args, profile, obs)``, where given, decides membership
    directly for actions whose outcome set is too large to list (a loose
    profile that allows spurious events): it returns the allowed
    (next state, rules) pairs for ``obs``, empty when ``obs`` is not allowed,
    or None to let the listed outcomes decide (in stricter profiles).  A
    triple (next state, rules, breaks) is a known deviation, as an
    `Outcome` with ``breaks``.  ``rules`` names, statically, what such a
    relation may name besides the listed outcomes' rules (it is also the
    last resort of ``violated_rules``).
    """

    name: str
    params: tuple[Param, ...]
    pre: Callable[[Any, Mapping[str, Any], Profile], bool]
    outcomes: Callable[[Any, Mapping[str, Any], Profile], list[Outcome]]
    rules: tuple[str, ...] = ()
    explain: Callable[[Any, Mapping[str, Any], Profile, Hashable], tuple[str, ...]] | None = None
    requires: Callable[[Any, Mapping[str, Any]], frozenset[str]] = lambda state, args: frozenset()
    accepts: Callable[[Any, Mapping[str, Any], Profile, Hashable], list[tuple[Any, tuple[str, ...]]]] | None = None
    doc: str = ""
    # How often a search should pick this action relative to others (a hint
    # for samplers only; it changes nothing the spec allows).
    weight: int = 1

    def all_args(self) -> list[dict[str, Any]]:
        names = [p.name for p in self.params]
        return [dict(zip(names, values)) for values in itertools.product(*(p.domain for p in self.params))]

    def arg_weight(self, args: Mapping[str, Any]) -> int:
        w = 1
        for p in self.params:
            w *= p.weight(args[p.name])
        return w

    def violated_rules(self, state, args, profile: Profile, obs) -> tuple[str, ...]:
        if self.explain is not None:
            found = tuple(self.explain(state, args, profile, obs))
            if found:
                return found
        seen: list[str] = []
        for o in self.outcomes(state, args, profile):
            for r in o.rules:
                if r not in seen:
                    seen.append(r)
        return tuple(seen) or self.rules


@dataclass(frozen=True)
class Invariant:
    rule: str
    holds: Callable[[Any, Profile], bool]
    doc: str = ""


@dataclass(frozen=True)
class Machine:
    """One area's state machine."""

    area: str
    init: Callable[[Profile], Any]
    actions: tuple[Action, ...]
    profiles: tuple[Profile, ...]
    invariants: tuple[Invariant, ...] = ()
    default_profile: str = ""
    # Which target protocol drives it, when an area has several machines
    # (readiness: "epoll" and "kqueue").
    dialect: str = ""
    # Turn a state / an observation into short human-readable text.
    describe: Callable[[Any], str] = repr
    show: Callable[[Hashable], str] = repr

    def action(self, name: str) -> Action:
        for a in self.actions:
            if a.name == name:
                return a
        raise KeyError(f"{self.area} has no action {name!r}")

    def profile(self, name: str | None = None) -> Profile:
        name = name or self.default_profile
        for p in self.profiles:
            if p.name == name:
                return p
        known = ", ".join(p.name for p in self.profiles)
        raise KeyError(f"{self.area} has no profile {name!r} (known: {known})")

    def rules(self) -> list[Rule]:
        return RULES.area(self.area)


# --------------------------------------------------------------------- areas


@dataclass(frozen=True)
class Area:
    """One area of the spec: everything the other readings need to find it.

    ``machines`` are its state machines, the main one first (an area may
    have one per dialect: readiness has epoll's and kqueue's).  ``features``
    are the optional target capabilities its rules and actions may need,
    each with what it means: a target, a rule or an action naming any other
    feature is an error (`unknown_features`), never a silent n/a.
    ``overview`` and ``machine_doc`` are what the generated docs say of it.
    """

    name: str
    machines: tuple[Machine, ...]
    features: Mapping[str, str] = field(default_factory=dict)
    #: What the area is about, and how its machine is built (the generated
    #: docs' overview and machine sections): its rules' and its machine's
    #: module docstrings.
    overview: str = ""
    machine_doc: str = ""

    def __post_init__(self) -> None:
        if not self.machines:
            raise ValueError(f"area {self.name!r} has no machine")
        for m in self.machines:
            if m.area != self.name:
                raise ValueError(f"area {self.name!r} lists machine of area {m.area!r}")
        for r in self.rules():
            bad = self.unknown_features(r.features)
            if bad:
                raise ValueError(f"rule {r.id} needs undeclared feature(s) {', '.join(bad)} (area {self.name} declares: {self.feature_list()})")

    @property
    def machine(self) -> Machine:
        """The main machine."""
        return self.machines[0]

    def rules(self) -> list[Rule]:
        return RULES.area(self.name)

    def profiles(self) -> list[Profile]:
        return [p for m in self.machines for p in m.profiles]

    def machine_for(self, profile: str | None = None) -> Machine:
        """The machine that has ``profile`` (default: the main one)."""
        if profile is None:
            return self.machine
        for m in self.machines:
            if any(p.name == profile for p in m.profiles):
                return m
        known = ", ".join(p.name for p in self.profiles())
        raise KeyError(f"{self.name} has no profile {profile!r} (known: {known})")

    def unknown_features(self, names: Iterable[str]) -> list[str]:
        return sorted(set(names) - set(self.features))

    def feature_list(self) -> str:
        return ", ".join(sorted(self.features)) or "none"


# ----------------------------------------------------------- belief tracking


@dataclass(frozen=True)
class StepResult:
    """What checking one observation against the spec found."""

    beliefs: frozenset  # the possible states afterwards; empty on violation
    matched_rules: tuple[str, ...]  # rules of the matching outcomes (coverage)
    allowed: tuple[Hashable, ...]  # every allowed observation (for reports)
    violated: tuple[str, ...]  # rule IDs broken, empty when the step conforms
    # Rules broken by a known deviation the check tolerated (see Outcome.breaks).
    tolerated: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return bool(self.beliefs)


def check_step(
    machine: Machine,
    profile: Profile,
    beliefs: Iterable,
    action: Action,
    args: Mapping[str, Any],
    obs: Hashable,
    project: Callable[[Any, str, Hashable], Hashable] = lambda state, name, obs: obs,
    tolerate: Callable[[str], bool] | None = None,
) -> StepResult:
    """Narrow ``beliefs`` by one observed step.

    ``project(state, action_name, obs)`` maps a spec observation to what the
    target can see (a target that cannot tell HUP from IN compares the
    projection); ``obs`` is already in the target's view.  Actions with
    ``accepts`` are checked on the unprojected observation.

    ``tolerate(rule_id)`` says which rules the check does not enforce: a
    known deviation breaking only such rules is then allowed (the result
    names them in ``tolerated``).  Without it every rule is enforced.
    """
    nxt: set = set()
    matched: list[str] = []
    allowed: list[Hashable] = []
    deviated: dict = {}  # next state -> rules broken, for known deviations that match
    dev_matched: list[str] = []  # the rules those deviations still exercise
    beliefs = list(beliefs)

    def deviation_ok(breaks) -> bool:
        return tolerate is not None and all(tolerate(r) for r in breaks)

    def match(n, rules, breaks=()):
        if breaks:
            if deviation_ok(breaks):
                deviated.setdefault(n, set()).update(breaks)
                dev_matched.extend(r for r in rules if r not in dev_matched)
            return
        nxt.add(n)
        for r in rules:
            if r not in matched:
                matched.append(r)

    for s in beliefs:
        accepted = None if action.accepts is None else action.accepts(s, args, profile, obs)
        if accepted is not None:
            for found in accepted:
                match(*found)
            continue
        for o in action.outcomes(s, args, profile):
            seen = project(s, action.name, o.obs)
            if not o.breaks and seen not in allowed:
                allowed.append(seen)
            if seen == obs:
                match(o.next, o.rules, o.breaks)
    if nxt:
        return StepResult(frozenset(nxt), tuple(matched), tuple(allowed), ())
    if action.accepts is not None:
        # Decided by a relation: the listed outcomes serve as examples in the report.
        for s in beliefs:
            for o in action.outcomes(s, args, profile):
                seen = project(s, action.name, o.obs)
                if not o.breaks and seen not in allowed:
                    allowed.append(seen)
    if deviated:
        broken = sorted(set().union(*deviated.values()))
        return StepResult(frozenset(deviated), tuple(dev_matched), tuple(allowed), (), tuple(broken))
    violated: list[str] = []
    for s in beliefs:
        for r in action.violated_rules(s, args, profile, obs):
            if r not in violated:
                violated.append(r)
    return StepResult(frozenset(), (), tuple(allowed), tuple(violated))


def enabled(action: Action, beliefs: Iterable, args: Mapping[str, Any], profile: Profile) -> bool:
    """An action is enabled when its precondition holds in every possible state."""
    beliefs = list(beliefs)
    return bool(beliefs) and all(action.pre(s, args, profile) for s in beliefs)
