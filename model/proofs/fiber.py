"""The fiber rows: the stack layout's arithmetic and the callee-saved check, quantified.

The layout is read with z3 integers (64-bit arithmetic, not the 16-bit
vectors of the machines' symbolic reading).
"""

from __future__ import annotations

import z3

from ...spec.fiber import MACHINE, layout
from . import Property


def alignment() -> tuple[bool, str]:
    top = z3.Int("top")
    s = z3.Solver()
    s.add(top >= 0, top < 2**64, z3.Not((layout.x86_entry_sp(top) + 8) % 16 == 0))
    if s.check() == z3.sat:
        return False, f"top = {s.model()[top]}: rsp+8 = {s.model().eval(layout.x86_entry_sp(top) + 8)} is not 16-aligned"
    s = z3.Solver()
    s.add(top >= 0, top < 2**64, z3.Not(layout.a64_entry_sp(top) % 16 == 0))
    if s.check() == z3.sat:
        return False, f"top = {s.model()[top]} (AArch64)"
    return True, "every 64-bit top"


def guard() -> tuple[bool, str]:
    base, size = z3.Ints("base size")
    _guard_lo, guard_hi, bottom, top, ok = layout.mapped_stack(base * layout.PAGE, size)
    s = z3.Solver()
    s.add(base >= 0, base < 2**52, size < 2**40, ok)
    s.add(z3.Not(z3.And(guard_hi <= bottom, bottom < top, top - bottom >= size)))
    if s.check() == z3.sat:
        return False, str(s.model())
    return True, "every page-aligned mapping below 2^64, every size >= the minimum"


SEEDS = 15  # reg_values's patterns are distinct bytes for seeds below this


def callee_saved() -> tuple[bool, str]:
    """The regs action's allowed observation: each context reads back its own
    six values.  Proved: for every seed, the twelve values are distinct and
    non-zero, so a switch that loses, swaps or zeroes any one callee-saved
    register gives an observation outside the allowed one."""
    p = MACHINE.profile()
    seed = z3.Int("seed")
    regs = MACHINE.action("regs")
    w = MACHINE.init(p)
    (outcome,) = regs.outcomes(w, {"seed": seed}, p)
    _tag, fiber, main = outcome.obs
    values = list(fiber) + list(main)
    s = z3.Solver()
    s.add(seed >= 0, seed < SEEDS)
    s.add(z3.Not(z3.And(z3.Distinct(*values), *[v != 0 for v in values])))
    if s.check() == z3.sat:
        m = s.model()
        return False, f"seed {m[seed]}: two registers hold the same value ({[m.eval(v) for v in values]})"
    assert all(x in range(SEEDS) for x in regs.params[0].domain)
    return True, f"every seed below {SEEDS}: 12 distinct non-zero values (the switcher's code is tested against it, not proved)"


PROPERTIES = [
    Property(
        "fiber", ("FIB-X86-1", "FIB-A64-1"), "entry alignment of the aligned-down top",
        "quantified (64-bit)", alignment, "fiber", cost=0.1,
    ),
    Property(
        "fiber", ("FIB-STACK-1",), "the usable range never overlaps the guard page",
        "quantified (64-bit)", guard, "fiber", cost=0.1,
    ),
    Property(
        "fiber", ("FIB-X86-2",), "callee-saved registers: the regs check tells any lost, swapped or zeroed one",
        f"quantified (seeds < {SEEDS}), check only", callee_saved, "fiber", cost=1.8,
    ),
]
