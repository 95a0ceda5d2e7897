"""A run z3 found, as plain data.

A bounded model checking run from the initial state ends in a list of
(action, arguments) steps and the outcome each took.  `run_of` re-executes
those steps on the machine to learn what each observes, and returns the
run as plain data (`Run`): the area and profile, each step's action,
arguments and observation, and the broken property's rules.  It pickles,
so it crosses from a proving process to the one that prints the table.

Nothing here writes files or knows the conformance suite: the caller that
writes files (`asyncspec prove --out DIR`) replays the run on the spec with
the conformance machinery, which makes it an ordinary counterexample file
set (JSON that `asyncspec replay` re-executes, the ITF trace, the drawing).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..spec.core import Machine, Profile


@dataclass
class Run:
    """A run from the machine's initial state that breaks a property."""

    area: str
    profile: str  # the profile's name (with the area, it names the machine)
    steps: list  # (action name, args, observation) per step
    rules: tuple  # the property's rules, broken after the last step
    text: str = ""  # the property, in words

    @property
    def calls(self) -> list[tuple[str, dict[str, Any]]]:
        """(action, args) per step: what a replay performs."""
        return [(name, args) for name, args, _obs in self.steps]

    @property
    def observations(self) -> list:
        return [obs for _name, _args, obs in self.steps]


def observations(machine: Machine, profile: Profile, steps, choices) -> list:
    """What each step observes when it takes the given outcome."""
    state = machine.init(profile)
    out = []
    for (name, args), k in zip(steps, choices):
        o = machine.action(name).outcomes(state, dict(args), profile)[k]
        out.append(o.obs)
        state = o.next
    return out


def run_of(machine: Machine, profile: Profile, steps, choices, rules, text: str = "") -> Run:
    """The run that takes ``steps`` with the outcomes ``choices`` (a z3 trace), as plain data."""
    obs = observations(machine, profile, steps, choices)
    return Run(machine.area, profile.name, [(name, dict(args), o) for (name, args), o in zip(steps, obs)], tuple(rules), text)
