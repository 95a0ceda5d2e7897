"""The conformance suite catches each deliberately broken switcher (tests/fixtures/broken_switchers.py).

Each variant is compiled once (into a temporary directory its worker
processes share); each run is short, because every bug shows in the first
step that probes it.
"""

from __future__ import annotations

import platform

import pytest
from asyncspec.conformance.engine.replay import ModelTarget, replay
from asyncspec.conformance.engine.verdicts import FAIL, PASS
from asyncspec.conformance.engine.runner import run
from asyncspec.spec.fiber import MACHINE, layout

X86 = MACHINE.profile("sysv-x86_64")

on_x86_64 = pytest.mark.skipif(
    platform.machine().lower() not in ("x86_64", "amd64"), reason="the broken switchers are x86-64 builds"
)

# target class -> the rule its bug breaks
CAUGHT = {
    "EntryAlign16": "FIB-X86-1",  # entry rsp % 16 == 0
    "RbxNotRestored": "FIB-X86-2",  # rbx lost across the switch, both ways
    "MxcsrNotSwitched": "FIB-X86-3",  # the fiber's MXCSR leaks into the main context
    # The usable range reaches down into the guard page.  FIB-STACK-3 still
    # holds: an overflow still runs into the PROT_NONE page, which the
    # SIGSEGV handler still recognizes, so the fiber fails cleanly.  And the
    # entry sp (a page below the real top) is still inside the stack, aligned:
    # only the usable range that the target reports with the entry
    # observation shows the overlap, which FIB-STACK-1 forbids.
    "GuardOverlap": "FIB-STACK-1",
}


@on_x86_64
@pytest.mark.parametrize("target", sorted(CAUGHT))
def test_broken_switcher_is_caught(target):
    rule = CAUGHT[target]
    res = run("fiber", f"tests.fixtures.broken_switchers:{target}", max_examples=200, seed=1)
    assert res.error is None
    assert res.failure is not None, f"{target} passed every rule"
    assert rule in res.failure.rules, res.failure
    assert len(res.failure.steps) <= 8, res.failure
    # A wrong answer, not a crash: the worker survived the step that caught it.
    assert res.failure.steps[-1].observed[0] not in ("crashed", "hung", "raised")
    status = {r.rule.id: r.status for r in res.results}
    assert status[rule] == FAIL


@on_x86_64
def test_a_crashing_broken_switcher_is_reported_and_the_run_survives():
    # The same misaligned entry, with a fiber doing an aligned SSE access to a
    # stack local: SIGSEGV in the worker process, reported as TGT-1.
    res = run("fiber", "tests.fixtures.broken_switchers:EntryAlign16Movaps", max_examples=200, seed=1)
    assert res.error is None and res.failure is not None
    assert res.failure.rules == ("TGT-1",)
    assert len(res.failure.steps) <= 8
    last = res.failure.steps[-1]
    assert last.action == "entry"
    assert last.observed[0] == "crashed" and "SIGSEGV" in last.observed[1]
    assert {r.rule.id: r.status for r in res.results}["FIB-X86-1"] != FAIL  # never got to answer


@on_x86_64
def test_the_variant_build_without_a_bug_conforms():
    res = run("fiber", "tests.fixtures.broken_switchers:Unbroken", max_examples=80, seed=1)
    assert res.ok, res.failure
    status = {r.rule.id: r.status for r in res.results}
    for rid in ("FIB-X86-1", "FIB-X86-2", "FIB-X86-3", "FIB-X86-4", "FIB-SIG-1", "FIB-STACK-1", "FIB-STACK-3"):
        assert status[rid] == PASS, (rid, status[rid])


@on_x86_64
def test_a_variant_api_keeps_its_stacks_and_fibers_to_itself():
    from asyncspec.conformance.targets.impl import probe as fiber
    from tests.fixtures import broken_switchers

    other = broken_switchers.variant_api("")
    assert other.Stack is not fiber.Stack and issubclass(other.Stack, fiber.Stack)
    assert other.Yield is fiber.Yield and other.NREGS == fiber.NREGS and other.ARCH == fiber.ARCH
    with other.Stack.allocate(other.STACK_MIN) as stack:
        with pytest.raises(TypeError, match="another build"):
            fiber.Fiber(stack, [])
        with other.Fiber(stack, [other.Yield(1, add=1)]) as f:
            assert f.resume(1) == (other.Status.YIELDED, 2)
            with fiber.Stack.allocate(fiber.STACK_MIN) as mine, pytest.raises(TypeError, match="another build"):
                fiber.Fiber(mine, [fiber.Resume(f)])
            assert f.resume(5) == (other.Status.FINISHED, 5)
    assert other.fp_control() == fiber.fp_control()


def one(name, args, obs):
    return replay(MACHINE, X86, ModelTarget([obs]), [(name, args)])


def test_entry_usable_range_must_stay_off_the_guard_page():  # FIB-STACK-1
    base = 0x7F0000000000  # the mapping's first byte: its guard page
    _lo, _guard_hi, bottom, top, _ok = layout.mapped_stack(base, 65536)
    args = dict(kind="mmap", size=65536, offset=0)
    assert one("entry", args, ("entry", base, top - 8, 0)).ok  # no range reported: not checked
    assert one("entry", args, ("entry", base, top - 8, 0, bottom, top)).ok
    # GuardOverlap's answer: the range from the guard page up, sp a page low
    r = one("entry", args, ("entry", base, top - 4096 - 8, 0, base, top - 4096))
    assert not r.ok and r.violated == ("FIB-STACK-1",)
    # without the range, that sp alone is allowed (deeper than the top is fine)
    assert one("entry", args, ("entry", base, top - 4096 - 8, 0)).ok
    # a range past the memory given, or not holding the entry sp
    assert one("entry", args, ("entry", base, top - 8, 0, bottom, top + 16)).violated == ("FIB-STACK-1",)
    assert one("entry", args, ("entry", base, top - 8, 0, bottom, top - 4096)).violated == ("FIB-STACK-1",)
