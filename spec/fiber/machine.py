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
               nestJ       resume fiber J (bound when created) with the value and
                           yield what came back -- or the value unchanged when
                           that resume is refused or J fails
               self        resume itself (refused) and yield the value unchanged
    left     yields left before a yieldK body returns

Observations
------------
``("yielded", x)``, ``("finished", x)``, ``("failed", "overflow")``, or
``("err", "running" | "finished" | "failed" | "none")``.

The ABI actions (`entry`, `regs`, `fpctl`, `df`, `sigmask`, `small_stack`)
each run one short-lived fiber of their own; they observe raw addresses,
register values and flags, which the spec checks against `layout` and the
profile's ABI.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..core import Action, Invariant, Machine, Outcome, Param, Profile
from . import layout as L
from . import rules as R

NONE, CREATED, SUSPENDED, FINISHED, FAILED = range(5)
ST_NAMES = ("none", "created", "suspended", "finished", "failed")
PROGS = ("yield0", "yield1", "yield2", "overflow", "nest0", "nest1", "nest2", "self")
VALUES = (0, 7)
SLOTS = 3


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
        return ("yielded", value), w.put(i, replace(f, st=SUSPENDED)), (R.LIFE_ERRORS,)
    j = int(prog[4:])
    inner, w2, rules = run(w, j, value, running + (i,))
    passed = inner[1] if inner[0] in ("yielded", "finished") else value
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

def create_pre(w: Fibers, a, p) -> bool:
    # A nested body binds the fiber in slot J when it is created.
    prog = a["prog"]
    return w.at(a["slot"]).st == NONE and (not prog.startswith("nest") or w.at(int(prog[4:])).st != NONE)


def free_pre(w: Fibers, a, p) -> bool:
    # A fiber bound by a live nested body is not freed under it.
    i = a["slot"]
    return not any(f.st != NONE and PROGS[f.prog] == f"nest{i}" and j != i for j, f in enumerate(w.fibers))


CREATE = Action(
    "create",
    (P_SLOT, Param("prog", PROGS)),
    create_pre,
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
    free_pre,
    free_outcomes,
    requires=lambda w, a: frozenset({"errors"} if w.at(a["slot"]).st == NONE else ()),
    doc="Free a fiber and its stack.",
)


# ------------------------------------------------------------------ ABI experiments

STACK_SIZES = (16416, 65536, 100003)  # all above the minimum at any alignment
OFFSETS = (0, 1, 8, 15)
SMALL_SIZES = (0, 4096, 16383, 16384, 16400)
# x86-64 floating-point control states: MXCSR in bits 0-31, x87 CW in 32-47.
FP_STATES = (
    0x1F80 | 0x037F << 32,  # the defaults: round to nearest, all exceptions masked
    0x3F80 | 0x077F << 32,  # round down, in both units
    0xFF80 | 0x0F7F << 32,  # round toward zero, flush-to-zero; x87 likewise
)
FP_CONTROL_MASK = 0xFFC0 | 0x1F3F << 32  # the callee-saved control bits (not the status flags)
REG_SEEDS = (1, 2)


def reg_values(seed: int, who: int) -> tuple[int, ...]:
    """Six distinct 64-bit patterns for rbx, rbp, r12-r15 (who: 0 fiber, 1 main)."""
    return tuple((0x0101010101010101 * (seed * 16 + who * 8 + k + 1)) % 2**64 for k in range(6))


def _entry_obs(obs) -> bool:
    return isinstance(obs, tuple) and len(obs) in (4, 6) and obs[0] == "entry"


def _entry_range(a, obs):
    start = obs[1]
    if a["kind"] == "mmap":
        _lo, guard_hi, bottom, top, ok = L.mapped_stack(start, a["size"])
        return bottom, top, ok and guard_hi <= bottom
    bottom, top, ok = L.caller_stack(start + a["offset"], a["size"])
    return bottom, top, ok


def _usable_ok(obs, bottom, top) -> bool:
    """The usable range the switcher says it gave the fiber, when the target
    reports it (obs[4:6] = lo, hi): inside the one the spec computes -- so
    never on the guard page, never past the memory -- and holding the entry
    sp, which the fiber's frames grow down from (FIB-STACK-1)."""
    if len(obs) == 4:
        return True
    _tag, _start, sp, _fp, lo, hi = obs
    return bottom <= lo and hi <= top and lo < sp <= hi


def entry_accepts(w: Fibers, a, p, obs):
    """obs = ("entry", start, sp, fp) or ("entry", start, sp, fp, lo, hi):
    start is the mapping's first byte (the guard page) for mmap, the
    buffer's first byte for caller memory; [lo, hi) is the usable range the
    switcher reports for the stack, for targets that can tell."""
    if not _entry_obs(obs):
        return []
    _tag, start, sp, fp = obs[:4]
    bottom, top, ok = _entry_range(a, obs)
    fits = L.x86_entry_ok(sp, bottom, top) if p.x86 else L.a64_entry_ok(sp, bottom, top)
    if ok and fits and _usable_ok(obs, bottom, top):
        aligned = (R.X86_ENTRY_ALIGN if p.x86 else R.A64_SP_ALIGN, R.STACK_DOWN)
        if fp == 0:
            return [(w, aligned + (R.FP_CHAIN,))]
        return [(w, aligned, (R.FP_CHAIN,))]  # a known deviation: only the SHOULD rule is broken
    return []


def entry_explain(w: Fibers, a, p, obs):
    if not _entry_obs(obs):
        return (R.STACK_DOWN,)
    _tag, start, sp, fp = obs[:4]
    bottom, top, _ok = _entry_range(a, obs)
    broken = []
    if p.x86 and (sp + 8) % L.ALIGN != 0:
        broken.append(R.X86_ENTRY_ALIGN)
    if not p.x86 and sp % L.ALIGN != 0:
        broken.append(R.A64_SP_ALIGN)
    if not bottom < sp <= top or not _usable_ok(obs, bottom, top):
        broken.append(R.STACK_DOWN)
    if fp != 0:
        broken.append(R.FP_CHAIN)
    return tuple(broken) or (R.STACK_DOWN,)


ENTRY = Action(
    "entry",
    (Param("kind", ("mmap", "buffer")), Param("size", STACK_SIZES), Param("offset", OFFSETS)),
    lambda w, a, p: a["kind"] == "buffer" or a["offset"] == 0,
    lambda w, a, p: [
        Outcome(
            ("entry", "start", "sp: (sp+8)%16 == 0 inside the aligned stack", "fp: 0",
             "[lo, hi) if reported: inside the aligned stack (off the guard page), sp in it"),
            w,
        )
    ],  # fmt: skip
    accepts=entry_accepts,
    explain=entry_explain,
    rules=(R.X86_ENTRY_ALIGN, R.A64_SP_ALIGN, R.STACK_DOWN, R.FP_CHAIN),
    requires=lambda w, a: frozenset({"abi", "stack"}),
    doc="Start a fiber on a fresh stack (mapped, or caller memory at an offset) and record sp and fp at its entry "
    "(and the stack's usable range, where the target can tell).",
)

REGS = Action(
    "regs",
    (Param("seed", REG_SEEDS),),
    lambda w, a, p: not p.ucontext,  # the ABI profiles' check (the ucontext profile has none)
    lambda w, a, p: [
        Outcome(
            ("regs", reg_values(a["seed"], 0), reg_values(a["seed"], 1)),
            w,
            (R.X86_CALLEE_SAVED if p.x86 else R.A64_CALLEE_SAVED,),
        )
    ],
    requires=lambda w, a: frozenset({"abi"}),
    doc="A fiber holds values in the callee-saved registers (rbx, rbp, r12-r15 on x86-64; x19-x29 and d8-d15 on "
    "AArch64) across a yield while the main context holds others across its resume; each reads its own back.",
)

FPCTL = Action(
    "fpctl",
    (Param("fiber", FP_STATES), Param("main", FP_STATES)),
    lambda w, a, p: p.x86,
    lambda w, a, p: [
        Outcome(("fp", a["fiber"] & FP_CONTROL_MASK, a["main"] & FP_CONTROL_MASK), w, (R.X86_MXCSR_X87,))
    ],
    requires=lambda w, a: frozenset({"abi"}),
    doc="A fiber sets its MXCSR and x87 control word and yields while the main context runs with others; "
    "each sees its own after the switches.",
)


DF = Action(
    "df",
    (),
    lambda w, a, p: p.x86,
    lambda w, a, p: [Outcome(("df", 0, 0, 0), w, (R.X86_DF,))],
    requires=lambda w, a: frozenset({"abi", "df"}),
    doc="Read the direction flag in a new fiber as it starts, in the main context after the fiber yields, "
    "and in the fiber after it is resumed: ('df', fiber at entry, main after the yield, fiber after the resume), "
    "all clear.",
)

# Signals whose mask a target toggles (default action: ignore, so a stray
# one delivered when the mask is restored does nothing).
SIGNALS = ("SIGURG", "SIGWINCH")


def sigmask_outcomes(w: Fibers, a, p) -> list[Outcome]:
    # The main context unblocks the signal and starts a fiber, which blocks
    # it and yields; the main context reads and unblocks it, and resumes the
    # fiber, which reads it: ('sigmask', blocked in the fiber at its start,
    # in the main context after the yield, in the fiber after the resume).
    if p.ucontext:  # swapcontext switches masks with the contexts
        return [Outcome(("sigmask", 0, 0, 1), w, (R.SIGMASK_UCONTEXT,))]
    return [Outcome(("sigmask", 0, 1, 0), w, (R.SIGMASK,))]  # one mask per thread, untouched by switches


SIGNAL_MASK = Action(
    "sigmask",
    (Param("sig", SIGNALS),),
    lambda w, a, p: True,
    sigmask_outcomes,
    requires=lambda w, a: frozenset({"abi", "sigmask"}),
    doc="A fiber blocks a signal and yields; the main context sees it blocked, unblocks it and resumes the "
    "fiber, which sees it unblocked: the mask is the thread's, not part of the switched context.",
)


def small_accepts(w: Fibers, a, p, obs):
    if a["kind"] == "mmap":
        expect = ("ok",) if a["size"] >= L.MIN_USABLE else ("err", "too-small")
        return [(w, (R.STACK_MIN,))] if obs == expect else []
    if not (isinstance(obs, tuple) and len(obs) == 2 and obs[0] in ("ok", "err")):
        return []
    # Caller memory: obs carries the buffer's address ("ok", start) / ("err", start).
    _b, _t, ok = L.caller_stack(obs[1] + a["offset"], a["size"])
    return [(w, (R.STACK_MIN,))] if (obs[0] == "ok") == bool(ok) else []


SMALL = Action(
    "small_stack",
    (Param("kind", ("mmap", "buffer")), Param("size", SMALL_SIZES), Param("offset", (0, 8))),
    lambda w, a, p: a["kind"] == "buffer" or a["offset"] == 0,
    lambda w, a, p: [Outcome(("err", "too-small") if a["size"] < L.MIN_USABLE else ("ok",), w, (R.STACK_MIN,))],
    accepts=small_accepts,
    requires=lambda w, a: frozenset({"stack", "errors"}),
    doc="Ask for a stack near the minimum size: accepted exactly when its usable range, after alignment, reaches it.",
)


def describe(w: Fibers) -> str:
    parts = []
    for i, f in enumerate(w.fibers):
        if f.st != NONE:
            extra = f" left={f.left}" if PROGS[f.prog].startswith("yield") else ""
            parts.append(f"[{i}] {PROGS[f.prog]} {ST_NAMES[f.st]}{extra}")
    return "; ".join(parts) or "(no fibers)"


def show(obs) -> str:
    """An observation as text; addresses and register values in hex."""

    def one(x):
        if isinstance(x, bool) or not isinstance(x, (int, tuple)):
            return str(x)
        if isinstance(x, tuple):
            return "(" + " ".join(one(y) for y in x) + ")"
        return hex(x) if x > 0xFFFF else str(x)

    return " ".join(one(x) for x in obs)


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
    actions=(CREATE, RESUME, FREE, ENTRY, REGS, FPCTL, DF, SIGNAL_MASK, SMALL),
    profiles=PROFILES,
    invariants=(
        Invariant(R.LIFE_STATES, lambda w, p: all(f.left >= 0 for f in w.fibers), "yields left never negative"),
    ),
    default_profile=R.X86,
    describe=describe,
    show=show,
)
