"""The fiber spec: lifecycle scenarios against the model, layout arithmetic,
and greenlet checked against the lifecycle rules."""

from __future__ import annotations

import pytest
from asyncspec.conformance.engine.replay import ModelTarget, NotEnabled, replay
from asyncspec.conformance.engine.verdicts import NA, PASS
from asyncspec.conformance.engine.runner import run
from asyncspec.spec.fiber import MACHINE, layout
from hypothesis import given
from hypothesis import strategies as st

PROFILE = MACHINE.profile()


def check(steps):
    expected = [e for _n, _a, e in steps]
    return replay(MACHINE, PROFILE, ModelTarget(expected), [(n, a) for n, a, _e in steps])


def create(slot, prog):
    return ("create", dict(slot=slot, prog=prog), ("ok",))


def resume(slot, value, *expect):
    return ("resume", dict(slot=slot, value=value), tuple(expect))


def free(slot, expect=("ok",)):
    return ("free", dict(slot=slot), expect)


def test_life_states_and_values():  # FIB-LIFE-1, FIB-LIFE-2
    r = check(
        [
            create(0, "yield2"),
            resume(0, 0, "yielded", 1),
            resume(0, 7, "yielded", 8),
            resume(0, 7, "finished", 107),
            resume(0, 0, "err", "finished"),
            free(0),
        ]
    )
    assert r.ok, r.steps[-1]
    assert not check([create(0, "yield1"), resume(0, 0, "yielded", 0)]).ok  # the value passes through


def test_nested_yield_returns_to_resumer():  # FIB-LIFE-3
    r = check(
        [
            create(1, "yield1"),
            create(0, "nest1"),
            resume(0, 7, "yielded", 8),  # 1 yielded 8 to 0, which yielded it on
            resume(0, 0, "yielded", 100),  # 1 finished with 100, passed on
            resume(0, 5, "yielded", 5),  # 1 has finished: the resume is refused, 5 comes back
            resume(1, 0, "err", "finished"),
        ]
    )
    assert r.ok, r.steps[-1]


def test_errors_change_nothing():  # FIB-LIFE-4
    r = check(
        [
            resume(0, 0, "err", "none"),
            create(0, "self"),
            resume(0, 3, "yielded", 3),  # resuming itself is refused: the value comes back unchanged
            create(2, "yield1"),
            create(1, "nest2"),
            resume(2, 0, "yielded", 1),
            resume(1, 4, "yielded", 104),  # 1 resumes 2, which finishes with 104
            resume(1, 6, "yielded", 6),  # 2 has finished: refused, 6 comes back
            resume(2, 0, "err", "finished"),
        ]
    )
    assert r.ok, r.steps[-1]
    # 1 is bound by 2's nested body: the spec never frees it under it.
    with pytest.raises(NotEnabled):
        check([create(1, "yield1"), create(2, "nest1"), free(1)])


def test_free_and_double_free():  # FIB-LIFE-5
    assert check([create(0, "yield1"), resume(0, 0, "yielded", 1), free(0), free(0, ("err", "none"))]).ok


def test_overflow_fails_and_others_go_on():  # FIB-STACK-3
    r = check(
        [
            create(0, "overflow"),
            create(1, "yield1"),
            resume(0, 0, "failed", "overflow"),
            resume(1, 0, "yielded", 1),
            resume(0, 0, "err", "failed"),
        ]
    )
    assert r.ok


# --------------------------------------------------------------- layout


@given(st.integers(0, 2**64 - 1))
def test_x86_entry_alignment_for_every_top(top):  # FIB-X86-1
    sp = layout.x86_entry_sp(top)
    assert (sp + 8) % 16 == 0
    assert layout.x86_entry_ok(sp, top - 4096, top) or top < 4096


@given(st.integers(0, 2**64 - 1))
def test_a64_entry_alignment_for_every_top(top):  # FIB-A64-1
    assert layout.a64_entry_sp(top) % 16 == 0


@given(st.integers(0, 2**48), st.integers(0, 1 << 20))
def test_caller_stack_is_aligned_down_and_checked(base, length):  # FIB-STACK-1, FIB-STACK-2
    bottom, top, ok = layout.caller_stack(base, length)
    assert top % 16 == 0 and top <= base + length and base + length - top < 16
    assert bottom % 16 == 0 and base <= bottom < base + 16
    assert ok == (top - bottom >= layout.MIN_USABLE)


@given(st.integers(0, 2**36).map(lambda p: p * 4096), st.integers(layout.MIN_USABLE, 1 << 22))
def test_mapped_stack_never_overlaps_its_guard(map_base, size):  # FIB-STACK-1, FIB-STACK-3
    guard_lo, guard_hi, bottom, top, ok = layout.mapped_stack(map_base, size)
    assert ok and guard_hi <= bottom < top and top - bottom >= size
    assert layout.x86_entry_sp(top) > bottom


def test_a_fiber_entered_aligned_to_16_breaks_the_x86_rule():
    # The libco bug: entering with rsp % 16 == 0 (aligned as if before a call).
    top = 0x7F0000010000
    assert not layout.x86_entry_ok(layout.align_down(top), top - 65536, top)


# --------------------------------------------------------------- greenlet


def test_greenlet_passes_the_lifecycle_rules():
    res = run("fiber", "greenlet", max_examples=150, seed=3)
    assert res.ok, res.failure
    status = {r.rule.id: r.status for r in res.results}
    assert status["FIB-LIFE-1"] == PASS and status["FIB-LIFE-3"] == PASS
    assert status["FIB-X86-1"] == NA and status["FIB-LIFE-4"] == NA


def test_layout_reads_symbolically_and_z3_proves_it():
    """The same layout functions, read with z3 integers: proved for every
    64-bit top and every size, not sampled (FIB-X86-1, FIB-STACK-1)."""
    import z3

    top, base, size = z3.Ints("top base size")
    sp = layout.x86_entry_sp(top)
    s = z3.Solver()
    s.add(top >= 0, top < 2**64, z3.Not((sp + 8) % 16 == 0))
    assert s.check() == z3.unsat
    guard_lo, guard_hi, bottom, stack_top, ok = layout.mapped_stack(base * layout.PAGE, size)
    s = z3.Solver()
    s.add(base >= 0, base < 2**52, size < 2**40, ok)
    s.add(z3.Not(z3.And(guard_hi <= bottom, bottom < stack_top, stack_top - bottom >= size)))
    assert s.check() == z3.unsat
    # A broken layout is refuted with a counterexample: entering at the aligned top.
    s = z3.Solver()
    s.add(top >= 0, top < 2**64, z3.Not((layout.align_down(top) + 8) % 16 == 0))
    assert s.check() == z3.sat
