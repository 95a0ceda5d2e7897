"""A tiny area defined outside the package: a bounded counter.

It is everything adding an area takes, in one module: the spec (rules, a
machine, the `Area` record with its declared features), the conformance
record (no target base of its own, no views: the docs explore a default
diagram), and targets: a correct counter, one that misreads it, one
that misspells its feature.  Importing it registers the area and the correct target.
"""

from __future__ import annotations

from dataclasses import dataclass

from asyncspec.conformance import areas as conformance_areas
from asyncspec.conformance import targets
from asyncspec.conformance.target import Target
from asyncspec.spec import register
from asyncspec.spec.core import Action, Area, Machine, Outcome, Profile, rule

NAME = "toy"
BOUND = 3
PROFILE = Profile("toy-exact", NAME, "the counter, exactly")

READ = rule(
    "TOY-1",
    "A read returns the number of increments so far.",
    source="tests/toy_area.py",
    profiles=[PROFILE.name],
    area=NAME,
)
FULL = rule(
    "TOY-2",
    f"An increment of a counter at {BOUND} fails with 'full' and changes nothing.",
    source="tests/toy_area.py",
    profiles=[PROFILE.name],
    area=NAME,
    features=["bounded"],
)


@dataclass(frozen=True)
class Counter:
    n: int = 0


def _incr(s: Counter, a, p) -> list[Outcome]:
    if s.n < BOUND:
        return [Outcome(("ok",), Counter(s.n + 1), (READ,))]
    return [Outcome(("err", "full"), s, (FULL,))]


MACHINE = Machine(
    area=NAME,
    init=lambda p: Counter(),
    actions=(
        Action(
            "incr",
            (),
            pre=lambda s, a, p: True,
            outcomes=_incr,
            requires=lambda s, a: frozenset({"bounded"} if s.n >= BOUND else ()),
            doc="add one",
        ),
        Action("read", (), pre=lambda s, a, p: True, outcomes=lambda s, a, p: [Outcome(("n", s.n), s, (READ,))], doc="the count"),
    ),
    profiles=(PROFILE,),
    default_profile=PROFILE.name,
    describe=lambda s: f"n={s.n}",
)

AREA = register(
    Area(
        name=NAME,
        machines=(MACHINE,),
        features={"bounded": f"the counter stops at {BOUND}"},
        overview=__doc__,
        machine_doc="One counter, from 0 up to its bound.",
    )
)
CONFORMANCE = conformance_areas.register(conformance_areas.AreaConformance(NAME))


class ToyCounter(Target):
    name = "counter"
    area = NAME
    features = frozenset({"bounded"})
    description = "a Python int that stops at the bound"

    def open(self):
        self.n = 0

    def do_incr(self):
        if self.n >= BOUND:
            return ("err", "full")
        self.n += 1
        return ("ok",)

    def do_read(self):
        return ("n", self.n)


class ForgetfulCounter(ToyCounter):
    """Reads one less once it has counted two."""

    name = "forgetful"

    def do_read(self):
        return ("n", self.n - 1 if self.n >= 2 else self.n)


class MisspeltFeature(ToyCounter):
    name = "misspelt"
    features = frozenset({"bounde"})


targets.register(ToyCounter)
