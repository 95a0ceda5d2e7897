"""Stack layout arithmetic, written once for running and for proving.

Only ``+ - * % <= < ==`` and `ite` on integers: the same functions are read
with plain ints here and with 64-bit z3 terms by `asyncspec.model`.
"""

from __future__ import annotations

from ..logic import all_, ite

ALIGN = 16  # both ABIs: the stack pointer at a call boundary
PAGE = 4096
MIN_USABLE = 16 * 1024  # the smallest usable stack a switcher must accept


def align_down(x, a=ALIGN):
    return x - x % a


def align_up(x, a=PAGE):
    return ite(x % a == 0, x, x + (a - x % a))


def caller_stack(base, length, min_usable=MIN_USABLE):
    """Caller-provided memory [base, base + length): (bottom, top, ok).

    The top is aligned down and the bottom up to 16; the usable range is
    what lies between them, and must reach the minimum (FIB-STACK-1,
    FIB-STACK-2).
    """
    top = align_down(base + length)
    bottom = align_up(base, ALIGN)
    ok = all_(length >= 0, top - bottom >= min_usable)
    return bottom, top, ok


def mapped_stack(map_base, size, min_usable=MIN_USABLE, page=PAGE):
    """An mmap'd stack: (guard_lo, guard_hi, bottom, top, ok).

    The mapping is one PROT_NONE guard page followed by the usable size
    rounded up to whole pages; ``map_base`` is page-aligned (mmap(2)).
    """
    usable = align_up(size, page)
    guard_lo, guard_hi = map_base, map_base + page
    bottom, top = guard_hi, guard_hi + usable
    return guard_lo, guard_hi, bottom, top, all_(size >= min_usable)


def x86_entry_sp(top):
    """rsp at the entry function's first instruction: the aligned top less
    the fake return address a `call` would have pushed (FIB-X86-1)."""
    return align_down(top) - 8


def a64_entry_sp(top):
    """sp at the entry function's first instruction (FIB-A64-1)."""
    return align_down(top)


def x86_entry_ok(sp, bottom, top) -> bool:
    """What FIB-X86-1 and FIB-STACK-1 demand of an observed entry rsp."""
    return all_((sp + 8) % ALIGN == 0, bottom < sp, sp < top)


def a64_entry_ok(sp, bottom, top) -> bool:
    return all_(sp % ALIGN == 0, bottom < sp, sp <= top)
