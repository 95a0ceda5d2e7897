"""The fiber lifecycle machine: fibers in slots, driven from the main context.

State
-----
A `Fibers` value is a fixed-size tuple of `Fiber`s:

    st       NONE (no fiber in the slot), CREATED, SUSPENDED, FINISHED, FAILED
             (RUNNING exists only inside a resume: between steps the main
             context has control)
    prog     what the fiber's C body does each time it runs:
               yield0/1/2  yield value+1 that many times, then return value+100
               overflow    recurse into its guard page (FIB-STACK-3)
               nestJ       resume fiber J with the value and yield what came back
               self        resume itself (an error) and yield the error code
    left     yields left before a yieldK body returns

Observations
------------
``("yielded", x)``, ``("finished", x)``, ``("failed", "overflow")``, or
``("err", "running" | "finished" | "failed" | "none")``.  A nested fiber
passes on an error as a negative code (`CODES`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..core import Action, Invariant, Machine, Outcome, Param, Profile
from . import rules as R

NONE, CREATED, SUSPENDED, FINISHED, FAILED = range(5)
ST_NAMES = ("none", "created", "suspended", "finished", "failed")
PROGS = ("yield0", "yield1", "yield2", "overflow", "nest0", "nest1", "nest2", "self")
VALUES = (0, 7)
SLOTS = 3
CODES = {"none": -1, "running": -2, "finished": -3, "failed": -4}


@dataclass(frozen=True)
class Fiber:
    st: int = NONE
    prog: int = 0
    left: int = 0


@dataclass(frozen=True)
class Fibers:
    fibers: tuple[Fiber, ...]

    def at(self, i: int) -> Fiber:
        return self.fibers[i]

    def put(self, i: int, f: Fiber) -> "Fibers":
        return Fibers(self.fibers[:i] + (f,) + self.fibers[i + 1 :])


def run(w: Fibers, i: int, value: int, running: tuple[int, ...]) -> tuple[tuple, Fibers, tuple[str, ...]]:
    """Resume fiber ``i`` with ``value`` while ``running`` are on the resume
    chain; returns (what the resumer sees, the state after, rules)."""
    f = w.at(i)
    if i in running:
        return ("err", "running"), w, (R.LIFE_ERRORS,)
    if f.st in (NONE, FINISHED, FAILED):
        return ("err", ST_NAMES[f.st]), w, (R.LIFE_ERRORS,)
    prog = PROGS[f.prog]
    if prog == "overflow":
        return ("failed", "overflow"), w.put(i, replace(f, st=FAILED)), (R.STACK_GUARD, R.LIFE_STATES)
    if prog.startswith("yield"):
        if f.left > 0:
            return ("yielded", value + 1), w.put(i, replace(f, st=SUSPENDED, left=f.left - 1)), (R.LIFE_VALUES,)
        return ("finished", value + 100), w.put(i, replace(f, st=FINISHED)), (R.LIFE_VALUES, R.LIFE_STATES)
    if prog == "self":
        return ("yielded", CODES["running"]), w.put(i, replace(f, st=SUSPENDED)), (R.LIFE_ERRORS,)
    j = int(prog[4:])
    inner, w2, rules = run(w, j, value, running + (i,))
    if inner[0] in ("yielded", "finished"):
        passed = inner[1]
    elif inner[0] == "failed":
        passed = CODES["failed"]
    else:
        passed = CODES[inner[1]]
    return ("yielded", passed), w2.put(i, replace(w2.at(i), st=SUSPENDED)), rules + (R.LIFE_NESTED,)


def create_outcomes(w: Fibers, a, p) -> list[Outcome]:
    prog = PROGS.index(a["prog"])
    left = int(a["prog"][5:]) if a["prog"].startswith("yield") else 0
    return [Outcome(("ok",), w.put(a["slot"], Fiber(st=CREATED, prog=prog, left=left)), (R.LIFE_STATES,))]


def resume_outcomes(w: Fibers, a, p) -> list[Outcome]:
    obs, nxt, rules = run(w, a["slot"], a["value"], ())
    return [Outcome(obs, nxt, rules)]


def free_outcomes(w: Fibers, a, p) -> list[Outcome]:
    i = a["slot"]
    if w.at(i).st == NONE:
        return [Outcome(("err", "none"), w, (R.LIFE_FREE,))]
    return [Outcome(("ok",), w.put(i, Fiber()), (R.LIFE_FREE,))]


P_SLOT = Param("slot", tuple(range(SLOTS)))

CREATE = Action(
    "create",
    (P_SLOT, Param("prog", PROGS)),
    lambda w, a, p: w.at(a["slot"]).st == NONE,
    create_outcomes,
    requires=lambda w, a: frozenset(
        {"guard"} if a["prog"] == "overflow" else {"nested", "errors"} if a["prog"] == "self"
        else {"nested"} if a["prog"].startswith("nest") else ()
    ),
    weight=2,
    doc="Create a fiber with a C body (on a fresh guarded stack).",
)
RESUME = Action(
    "resume",
    (P_SLOT, Param("value", VALUES)),
    lambda w, a, p: True,
    resume_outcomes,
    # An error anywhere on the resume chain needs a target that reports them.
    requires=lambda w, a: frozenset({"errors"} if R.LIFE_ERRORS in run(w, a["slot"], a["value"], ())[2] else ()),
    weight=4,
    doc="Resume a fiber from the main context with a value.",
)
FREE = Action(
    "free",
    (P_SLOT,),
    lambda w, a, p: True,
    free_outcomes,
    requires=lambda w, a: frozenset({"errors"} if w.at(a["slot"]).st == NONE else ()),
    doc="Free a fiber and its stack.",
)


def describe(w: Fibers) -> str:
    parts = []
    for i, f in enumerate(w.fibers):
        if f.st != NONE:
            extra = f" left={f.left}" if PROGS[f.prog].startswith("yield") else ""
            parts.append(f"[{i}] {PROGS[f.prog]} {ST_NAMES[f.st]}{extra}")
    return "; ".join(parts) or "(no fibers)"


def show(obs) -> str:
    return " ".join(str(x) for x in obs)


PROFILES = tuple(
    Profile(name, R.AREA, desc, {"x86": name == R.X86, "ucontext": name == R.UCONTEXT})
    for name, desc in (
        (R.X86, "System V x86-64: rsp+8 aligned at entry, rbx/rbp/r12-r15, MXCSR control bits and x87 CW preserved."),
        (R.A64, "AArch64 AAPCS64: sp aligned at every switch, x19-x29, sp, d8-d15 preserved."),
        (R.UCONTEXT, "glibc makecontext/swapcontext: as the ABI, plus the signal mask saved with the context."),
    )
)

MACHINE = Machine(
    area=R.AREA,
    init=lambda p: Fibers(tuple(Fiber() for _ in range(SLOTS))),
    actions=(CREATE, RESUME, FREE),
    profiles=PROFILES,
    invariants=(
        Invariant(R.LIFE_STATES, lambda w, p: all(f.left >= 0 for f in w.fibers), "yields left never negative"),
    ),
    default_profile=R.X86,
    describe=describe,
    show=show,
)
