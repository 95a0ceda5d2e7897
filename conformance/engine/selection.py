"""Which rules a run enforces: `--rules`, `--exclude` and `--strict`.

The spec's outcomes encode every rule at once, so a run always checks the
whole machine; the selection decides what a violation *means*.  A violation
that names only rules the run does not enforce (excluded, not selected, or
SHOULD rules without ``--strict``) does not fail the run: the bridge records
it as a *tolerated* violation (with its counterexample, reported as a
warning), drops that example and searches on.  A violation naming an
enforced rule fails the run as usual.

Tiers follow RFC 2119 and h2spec: MUST rules are enforced by default;
SHOULD rules are checked too, but their violations are warnings unless
``--strict`` is given.  ``--strict`` also makes a selected rule that no step
exercised a failure: a rule exercised zero times is not a pass.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Iterable

from asyncspec.spec import all_machines
from asyncspec.spec.core import MUST, RULES, Rule

ENFORCED = "enforced"
EXCLUDED = "excluded"
NOT_SELECTED = "not selected"
SHOULD_ONLY = "SHOULD (warning unless --strict)"


class BadSelection(ValueError):
    """A pattern that matches no rule (the message names it)."""


@dataclass(frozen=True)
class Selection:
    rules: tuple[str, ...] = ()  # glob patterns over rule IDs; empty selects every rule
    exclude: tuple[str, ...] = ()
    strict: bool = False

    @classmethod
    def of(cls, rules: Iterable[str] = (), exclude: Iterable[str] = (), strict: bool = False) -> "Selection":
        """A selection from command-line patterns (comma- or space-separated), each checked to match a rule."""
        all_machines()  # every area's rules registered before patterns are matched
        sel = cls(_patterns(rules), _patterns(exclude), strict)
        for flag, patterns in (("--rules", sel.rules), ("--exclude", sel.exclude)):
            for p in patterns:
                if not RULES.match(p):
                    raise BadSelection(f"{flag} {p!r} matches no rule (see `asyncspec rules`)")
        return sel

    def status(self, rule: Rule) -> str:
        if self.rules and not any(fnmatch.fnmatchcase(rule.id, p) for p in self.rules):
            return NOT_SELECTED
        if any(fnmatch.fnmatchcase(rule.id, p) for p in self.exclude):
            return EXCLUDED
        if rule.tier != MUST and not self.strict:
            return SHOULD_ONLY
        return ENFORCED

    def enforces(self, rule_id: str) -> bool:
        # A target's own failure (TGT-1, area "target") and unknown IDs are always enforced.
        if rule_id not in RULES or RULES[rule_id].area == "target":
            return True
        return self.status(RULES[rule_id]) == ENFORCED

    def fails_on(self, violated: Iterable[str]) -> bool:
        """Does a violation naming these rules fail the run?"""
        violated = tuple(violated)
        return not violated or any(self.enforces(r) for r in violated)

    def describe(self) -> str:
        parts = []
        if self.rules:
            parts.append("rules " + ", ".join(self.rules))
        if self.exclude:
            parts.append("excluding " + ", ".join(self.exclude))
        parts.append("MUST and SHOULD rules enforced" if self.strict else "MUST rules enforced, SHOULD rules warn")
        return "; ".join(parts)


EVERYTHING = Selection()


def _patterns(values: Iterable[str]) -> tuple[str, ...]:
    out: list[str] = []
    for v in values:
        out.extend(p for p in v.replace(",", " ").split() if p)
    return tuple(out)
