"""Tests of the fibers' context switch (asyncspec.impl.fiber over impl/fiber/:
fiber.c and arch/x86_64.S), observed with the probe interpreter
(asyncspec.conformance.targets.impl.probe): ABI state across switches,
stacks, errors, and stack-overflow recovery."""

from __future__ import annotations

import errno
import gc
import os
import random
import signal
import subprocess
import sys
import threading

import pytest

fiber = pytest.importorskip("asyncspec.conformance.targets.impl.probe")

from asyncspec.conformance.targets.impl.probe import (
    NREGS,
    PAGE_SIZE,
    STACK_MIN,
    Add,
    Align,
    DirectionFlag,
    Fiber,
    FpControl,
    Frames,
    Recurse,
    Registers,
    Resume,
    Set,
    SignalMask,
    Stack,
    State,
    Status,
    Yield,
    direction_flag,
    exit_address,
    fp_control,
    set_fp_control,
)
from asyncspec.conformance.benchmarks import fibers
from asyncspec.impl.fiber import ffi

MASK64 = (1 << 64) - 1


def maps_count() -> int:
    with open("/proc/self/maps") as f:
        return sum(1 for _ in f)


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def address_of(buf) -> int:
    c = ffi.from_buffer("char[]", buf)
    try:
        return int(ffi.cast("uintptr_t", c))
    finally:
        ffi.release(c)


def check_entry(f: Fiber, stack: Stack) -> None:
    """What the entry function saw at its first instruction."""
    assert (f.entry_sp + 8) % 16 == 0, f"entry rsp {f.entry_sp:#x} is not as after a call"
    assert f.entry_sp == stack.top - 8  # only the fake return address above it
    assert stack.base <= f.entry_sp < stack.top
    assert f.entry_fp == 0


# ---------------------------------------------------------------------------
# Alignment at entry
# ---------------------------------------------------------------------------


def test_entry_alignment_allocated_stacks():
    rng = random.Random(1)
    sizes = [STACK_MIN, STACK_MIN + 1, STACK_MIN + 8, STACK_MIN + 15, 20000, 65536, 65537, 1 << 20]
    sizes += [rng.randrange(STACK_MIN, 1 << 20) for _ in range(30)]
    for size in sizes:
        with Stack.allocate(size) as stack:
            assert stack.size == -(-size // PAGE_SIZE) * PAGE_SIZE  # rounded up to pages
            assert stack.top % 16 == 0
            assert stack.guard == (stack.base - PAGE_SIZE, stack.base)
            assert stack.mapped_bytes == stack.size + PAGE_SIZE
            with Fiber(stack, []) as f:  # nothing that could fault if misaligned
                assert f.resume(0) == (Status.FINISHED, 0)
                check_entry(f, stack)
            with Fiber(stack, [Align(), Frames()]) as f:
                assert f.resume(0) == (Status.FINISHED, 0)
                check_entry(f, stack)
                aligned = f.results[0]
                assert aligned.remainder == 0
                assert stack.base <= aligned.address < stack.top


def test_guard_page_is_mapped_without_access():
    with Stack.allocate(STACK_MIN) as stack:
        lo, hi = stack.guard
        perms = {}
        with open("/proc/self/maps") as f:
            for line in f:
                rng, p = line.split()[:2]
                a, b = (int(x, 16) for x in rng.split("-"))
                perms[(a, b)] = p
        assert any(a <= lo and hi <= b and p.startswith("---") for (a, b), p in perms.items())
        assert any(a <= stack.base and stack.top <= b and p.startswith("rw") for (a, b), p in perms.items())


def test_entry_alignment_caller_memory_any_offset():
    rng = random.Random(2)
    for offset in range(48):
        length = STACK_MIN + 16 + rng.randrange(0, 5000)
        buf = bytearray(offset + length + rng.randrange(0, 64))
        start = address_of(buf) + offset
        with Stack.from_buffer(buf, offset, length) as stack:
            assert stack.top == (start + length) & ~15
            assert stack.base == (start + 15) & ~15
            assert start <= stack.base and stack.top <= start + length
            assert stack.guard is None and stack.mapped_bytes == 0
            with Fiber(stack, [Align(), Frames()]) as f:
                assert f.resume(7) == (Status.FINISHED, 7)
                check_entry(f, stack)
                assert f.results[0].remainder == 0
                assert f.results[1].ok and f.results[1].end == 0


def test_stack_reuse_after_close_restarts_at_the_top():
    with Stack.allocate(STACK_MIN) as stack:
        for i in range(5):
            with Fiber(stack, [Yield(), Align()]) as f:
                assert f.resume(i) == (Status.YIELDED, i)
                check_entry(f, stack)
            # closed while suspended: the stack is free for the next fiber


# ---------------------------------------------------------------------------
# Callee-saved registers, floating-point control, frame chain
# ---------------------------------------------------------------------------


def rand_regs(rng: random.Random) -> tuple:
    return tuple(rng.getrandbits(64) for _ in range(NREGS))


def test_callee_saved_registers_survive_in_both_directions():
    rng = random.Random(3)
    with Stack.allocate(STACK_MIN) as sa, Stack.allocate(STACK_MIN) as sb:
        for _ in range(50):
            fa, fb = rand_regs(rng), rand_regs(rng)
            a = Fiber(sa, [Registers(fa), Registers(rand_regs(rng))])
            b = Fiber(sb, [Registers(fb)])
            steps = [(a, Status.YIELDED), (b, Status.YIELDED), (a, Status.YIELDED), (b, Status.FINISHED), (a, Status.FINISHED)]
            for k, (f, want) in enumerate(steps):
                mine = rand_regs(rng)  # the main context's values, live across the switch
                status, value, after = f.resume_with_registers(k, mine)
                assert status == want
                assert after == mine, "a callee-saved register of the resumer was not preserved"
                assert value == k  # Registers yields the value it was resumed with
            # The fibers' values survived their suspension, including the
            # other fiber and the main context running meanwhile.
            assert a.results[0] == fa
            assert b.results[0] == fb
            assert a.results[1] == a.probe[1].values
            a.close()
            b.close()


def test_registers_survive_nested_switches():
    rng = random.Random(4)
    with Stack.allocate(STACK_MIN) as so, Stack.allocate(STACK_MIN) as si:
        inner_vals, outer_vals = rand_regs(rng), rand_regs(rng)
        inner = Fiber(si, [Registers(inner_vals), Registers(rand_regs(rng))])
        # The outer fiber holds its values while it resumes the inner one,
        # which holds other values while it yields to the outer one.
        outer = Fiber(so, [Resume(inner), Registers(outer_vals), Resume(inner), Resume(inner)])
        mine = rand_regs(rng)
        assert outer.resume_with_registers(1, mine) == (Status.YIELDED, 1, mine)
        assert outer.resume(2) == (Status.FINISHED, 2)
        assert outer.results[1] == outer_vals
        assert inner.results[0] == inner_vals
        assert inner.state == State.FINISHED
        outer.close()
        inner.close()


# x86-64: MXCSR in bits 0-31 (status flags: bits 0-5), x87 control word in bits 32-47.
MXCSR_FLAGS = 0x3F
DEFAULT_FP = (0x037F << 32) | 0x1F80


def fp(mxcsr: int, cw: int) -> int:
    return (cw << 32) | mxcsr


def control(v: int) -> int:
    return v & ~MXCSR_FLAGS


@pytest.mark.skipif(fiber.ARCH != "x86_64", reason="x86-64 control registers")
def test_fp_control_is_per_fiber():
    main_fp = fp(0x1F80 | 0x2000, 0x037F)  # main: round down
    a_fp = fp(0x1F80 | 0x4000 | 0x8000, 0x027F)  # A: round up, flush-to-zero; x87 double precision
    b_fp = fp(0x1F80 | 0x6000 | 0x0040, 0x0F7F)  # B: round to zero, denormals-are-zero; x87 round to zero
    original = fp_control()
    with Stack.allocate(STACK_MIN) as sa, Stack.allocate(STACK_MIN) as sb:
        seen = []
        set_fp_control(main_fp)
        try:
            a = Fiber(sa, [FpControl(a_fp), FpControl(a_fp ^ (0x6000 << 0))])
            b = Fiber(sb, [FpControl(b_fp)])
            a.resume(0)  # A sets its state and yields
            seen.append(fp_control())
            b.resume(0)  # B likewise
            seen.append(fp_control())
            a.resume(0)  # A checks its state, sets another, yields
            seen.append(fp_control())
            b.resume(0)  # B checks its state, finishes
            seen.append(fp_control())
            a.resume(0)  # A checks, finishes
            seen.append(fp_control())
        finally:
            set_fp_control(original)
        assert [control(v) for v in seen] == [main_fp] * 5
        ra, rb = a.results, b.results
        # A new fiber starts with its creator's control state (flags cleared).
        assert control(ra[0][0]) == main_fp and control(rb[0][0]) == main_fp
        assert control(ra[0][1]) == a_fp  # kept across B and main running in between
        assert control(ra[1][0]) == a_fp
        assert control(ra[1][1]) == a_fp ^ 0x6000
        assert control(rb[0][1]) == b_fp
        a.close()
        b.close()
    assert control(fp_control()) == control(original)


def test_direction_flag_is_clear_at_entry_and_after_switches():
    with Stack.allocate(STACK_MIN) as stack, Fiber(stack, [DirectionFlag(), Yield(1)]) as f:
        assert f.resume(0) == (Status.YIELDED, 0)
        assert direction_flag() == 0
        assert f.resume(0) == (Status.YIELDED, 0)
        assert f.results[0] == (0, 0)


def test_signal_mask_is_the_threads_not_the_fibers():
    sig = signal.SIGURG
    saved = signal.pthread_sigmask(signal.SIG_UNBLOCK, [sig])
    try:
        with Stack.allocate(STACK_MIN) as stack, Fiber(stack, [SignalMask(sig)]) as f:
            assert f.resume(0) == (Status.YIELDED, 0)
            # The fiber's block is in force here: the switch did not restore the mask.
            assert sig in signal.pthread_sigmask(signal.SIG_UNBLOCK, [sig])
            assert f.resume(0) == (Status.FINISHED, 0)
            # And the fiber, resumed, found the mask as this context left it.
            assert f.results[0] == (0, 0)
        with Stack.allocate(STACK_MIN) as stack, pytest.raises(ValueError, match="SIGSEGV"):
            Fiber(stack, [SignalMask(signal.SIGSEGV)])
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, saved)
    assert signal.pthread_sigmask(signal.SIG_BLOCK, []) == saved


def test_fp_control_rejects_reserved_bits():
    with pytest.raises(ValueError, match="reserved bits"):
        set_fp_control(1 << 20)
    with Stack.allocate(STACK_MIN) as s:
        with pytest.raises(ValueError, match="invalid probe"):
            Fiber(s, [FpControl(1 << 63)])
        assert not s.in_use


def test_frame_pointer_chain_ends_at_zero():
    with Stack.allocate(STACK_MIN) as so, Stack.allocate(STACK_MIN) as si:
        inner = Fiber(si, [Frames()])
        outer = Fiber(so, [Frames(), Resume(inner)])
        assert outer.resume(0) == (Status.FINISHED, 0)
        for f, s in ((outer, so), (inner, si)):
            walk = f.results[0]
            assert walk.ok and walk.end == 0 and walk.frames >= 1
            # The outermost record is the one the entry function pushed (its
            # caller's rbp, 0) right below the fake return address.
            assert walk.last_frame == f.entry_sp - 8
            assert walk.last_return_address == exit_address()
            assert f.entry_fp == 0
            assert s.base <= walk.last_frame < s.top
        outer.close()
        inner.close()


# ---------------------------------------------------------------------------
# Values, nesting, errors
# ---------------------------------------------------------------------------


def test_yield_and_resume_values():
    rng = random.Random(5)
    with Stack.allocate(STACK_MIN) as s:
        for _ in range(50):
            k, add = rng.randrange(0, 6), rng.getrandbits(64)
            first = rng.getrandbits(64)
            with Fiber(s, [Yield(times=k, add=add), Add(3)]) as f:
                assert f.state == State.NEW
                v = first
                for _ in range(k):
                    status, got = f.resume(v)
                    assert (status, got) == (Status.YIELDED, (v + add) & MASK64)
                    assert f.state == State.SUSPENDED
                    v = rng.getrandbits(64)
                assert f.resume(v) == (Status.FINISHED, (v + 3) & MASK64)
                assert f.state == State.FINISHED
                assert f.results[0] == k
        with Fiber(s, [Set(42)]) as f:
            assert f.resume(MASK64) == (Status.FINISHED, 42)
        with Fiber(s, []) as f:
            assert f.resume(9) == (Status.FINISHED, 9)
        with Fiber(s, []) as f:
            with pytest.raises(ValueError, match="machine word"):
                f.resume(-1)
            with pytest.raises(ValueError, match="machine word"):
                f.resume(1 << 64)
            assert f.state == State.NEW


def test_nested_fibers_yield_to_their_resumer():
    with Stack.allocate(STACK_MIN) as so, Stack.allocate(STACK_MIN) as si:
        inner = Fiber(si, [Yield(add=10), Add(1000)])
        outer = Fiber(so, [Resume(inner), Add(1), Yield(), Resume(inner), Add(5)])
        # outer resumes inner with 5; inner's yield returns to outer (15), not here.
        assert outer.resume(5) == (Status.YIELDED, 16)
        assert inner.state == State.SUSPENDED and outer.state == State.SUSPENDED
        assert outer.results[0].status == Status.YIELDED and outer.results[0].value == 15
        assert outer.resume(20) == (Status.FINISHED, 1025)
        assert outer.results[3].status == Status.FINISHED and outer.results[3].value == 1020
        assert inner.state == State.FINISHED
        outer.close()
        inner.close()


def test_deep_nesting_chain():
    n = 30
    stacks = [Stack.allocate(STACK_MIN) for _ in range(n)]
    fibers = [Fiber(stacks[n - 1], [Yield(add=1), Add(1)])]
    for i in range(n - 2, -1, -1):
        # each resumes the next twice, adding 1 on the way back each time
        fibers.insert(0, Fiber(stacks[i], [Resume(fibers[0]), Add(1), Resume(fibers[0]), Add(1)]))
    head = fibers[0]
    # Down the chain and back.  The innermost fiber yields v+1 to its resumer
    # only, which resumes it again (it finishes with +1): that level returns
    # v+4.  Every level above gets the finished value from its first resume,
    # its second resume is refused (finished), and it adds 2.
    assert head.resume(0) == (Status.FINISHED, 4 + 2 * (n - 2))
    assert all(f.state == State.FINISHED for f in fibers)
    assert fibers[n - 2].results[0].status == Status.YIELDED
    assert fibers[n - 2].results[2].status == Status.FINISHED
    for f in fibers[: n - 2]:
        assert f.results[0].status == Status.FINISHED
        assert f.results[2].code == -errno.ESRCH and "has finished" in str(f.results[2].error)
    for f in fibers:
        f.close()
    for s in stacks:
        s.free()


def test_resume_errors():
    with Stack.allocate(STACK_MIN) as s1, Stack.allocate(STACK_MIN) as s2:
        f = Fiber(s1, [])
        f.resume(0)
        with pytest.raises(ValueError, match="has finished"):
            f.resume(0)
        f.close()
        f.close()  # idempotent
        with pytest.raises(ValueError, match="is closed"):
            f.resume(0)

        # A fiber resuming itself.
        f = Fiber(s1, [Resume("self"), Add(1)])
        assert f.resume(1) == (Status.FINISHED, 2)
        r = f.results[0]
        assert r.status is None and r.code == -errno.EDEADLK
        assert "cannot resume itself" in str(r.error)
        f.close()

        # A fiber resuming its (running) resumer.
        a = Fiber(s1, [Resume(None), Add(1)])
        b = Fiber(s2, [Resume(a), Yield()])
        a.set_resume_target(0, b)
        assert a.resume(1) == (Status.FINISHED, 2)
        r = b.results[0]
        assert r.status is None and r.code == -errno.EBUSY
        assert "is running" in str(r.error)
        assert a.results[0].status == Status.YIELDED
        with pytest.raises(ValueError, match="rebind"):
            a.set_resume_target(0, b)
        a.close()
        b.close()

        # Resume(None): nothing to resume.
        with Fiber(s1, [Resume(None)]) as f:
            assert f.resume(0) == (Status.FINISHED, 0)
            assert f.results[0].code == -errno.EBADF


def test_stack_errors():
    with pytest.raises(ValueError, match="stack too small"):
        Stack.allocate(STACK_MIN - 1)
    with pytest.raises(ValueError, match="stack too small"):
        Stack.allocate(0)
    with pytest.raises(TypeError):
        Stack.allocate(16384.0)
    # Aligning both ends costs up to 30 bytes: from an address = 1 (mod 16),
    # STACK_MIN + 14 bytes leave STACK_MIN - 16 usable, STACK_MIN + 30 leave STACK_MIN.
    big = bytearray(STACK_MIN + 64)
    off = (1 - address_of(big)) % 16
    with Stack.from_buffer(big, off, STACK_MIN + 30) as s:
        assert s.size == STACK_MIN
    with pytest.raises(ValueError, match=f"leave {STACK_MIN - 16} usable bytes"):
        Stack.from_buffer(big, off, STACK_MIN + 14)
    buf = bytearray(STACK_MIN + 100)
    with pytest.raises(ValueError, match="stack too small"):
        Stack.from_buffer(buf, 99)
    with pytest.raises(ValueError, match="outside the buffer"):
        Stack.from_buffer(buf, len(buf) + 1)
    with pytest.raises(ValueError, match="runs past"):
        Stack.from_buffer(buf, 8, len(buf))
    with pytest.raises(ValueError, match="writable"):
        Stack.from_buffer(bytes(STACK_MIN * 2))
    with pytest.raises(TypeError):
        Stack()

    s = Stack.allocate(STACK_MIN)
    f = Fiber(s, [Yield()])
    with pytest.raises(ValueError, match="already in use by another fiber"):
        Fiber(s, [])
    with pytest.raises(ValueError, match="in use by a fiber"):
        s.free()
    f.resume(0)
    f.close()
    s.free()
    with pytest.raises(ValueError, match="already freed"):
        s.free()
    s.close()  # idempotent
    with pytest.raises(ValueError, match="has been freed"):
        Fiber(s, [])

    # Caller memory is pinned while the stack lives.
    buf = bytearray(STACK_MIN * 2)
    s = Stack.from_buffer(buf)
    with pytest.raises(BufferError):
        buf.extend(b"x")
    s.free()
    buf.extend(b"x")
    with pytest.raises(ValueError, match="already freed"):
        s.free()


def test_garbage_collected_fibers_and_stacks_release_everything():
    with Stack.allocate(STACK_MIN):
        pass  # warm up
    gc.collect()
    before = maps_count()
    for _ in range(20):
        s = Stack.allocate(STACK_MIN)
        f = Fiber(s, [Yield()])
        f.resume(0)
        cycle = [s, f]
        cycle.append(cycle)  # collected together, finalized in any order
        del s, f, cycle
    gc.collect()
    assert maps_count() == before


# ---------------------------------------------------------------------------
# Stack overflow
# ---------------------------------------------------------------------------


def sigsegv_blocked() -> bool:
    return signal.SIGSEGV in signal.pthread_sigmask(signal.SIG_BLOCK, [])


def test_stack_overflow_fails_the_fiber_and_the_process_survives():
    for size in (STACK_MIN, 3 * STACK_MIN + 123, 1 << 20):
        with Stack.allocate(size) as s:
            with Fiber(s, [Recurse(10**12), Set(1)]) as f:
                assert f.resume(0) == (Status.FAILED, 0)
                assert f.state == State.FAILED
                lo, hi = s.guard
                assert lo <= f.fault_address < hi
                depth = f.results[0]
                assert depth > 10 and depth * 200 < size + PAGE_SIZE
                with pytest.raises(ValueError, match="has failed"):
                    f.resume(0)
            assert not sigsegv_blocked()
            # The same stack, and another one, still work afterwards.
            with Fiber(s, [Yield(add=1), Recurse(5)]) as g:
                assert g.resume(1) == (Status.YIELDED, 2)
                assert g.resume(3) == (Status.FINISHED, 3)
                assert g.results[1] == 5
                check_entry(g, s)


def test_stack_overflow_in_a_nested_fiber_returns_to_its_resumer():
    with Stack.allocate(STACK_MIN) as so, Stack.allocate(STACK_MIN) as si:
        inner = Fiber(si, [Yield(add=1), Recurse(10**12)])
        outer = Fiber(so, [Resume(inner), Resume(inner), Add(100), Yield()])
        assert outer.resume(1) == (Status.YIELDED, 102)  # inner failed, outer went on
        assert outer.results[0].status == Status.YIELDED
        assert outer.results[1].status == Status.FAILED
        assert inner.state == State.FAILED
        assert outer.resume(7) == (Status.FINISHED, 7)
        outer.close()
        inner.close()


def test_stack_overflow_on_another_thread_and_fiber_migration():
    with Stack.allocate(STACK_MIN) as warm:
        Fiber(warm, []).resume(0)  # installs the handler on this thread
    # glibc keeps the stacks of exited threads for reuse: let it cache one now.
    t = threading.Thread(target=lambda: None)
    t.start()
    t.join()
    gc.collect()
    before = maps_count()
    s1, s2 = Stack.allocate(STACK_MIN), Stack.allocate(STACK_MIN)
    mover = Fiber(s1, [Yield(add=1), Yield(add=2)])
    assert mover.resume(10) == (Status.YIELDED, 11)  # started on this thread
    out = {}

    def worker():
        out["moved"] = mover.resume(20)  # continues on the worker thread
        f = Fiber(s2, [Recurse(10**12)])
        out["overflow"] = f.resume(0)
        out["blocked"] = sigsegv_blocked()
        f.close()

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert out == {"moved": (Status.YIELDED, 22), "overflow": (Status.FAILED, 0), "blocked": False}
    assert mover.resume(30) == (Status.FINISHED, 30)  # and back here
    mover.close()
    s1.free()
    s2.free()
    gc.collect()
    assert maps_count() == before  # the worker's alternate signal stack was unmapped at its exit


CRASH_PRELUDE = """
import os, signal, sys
from asyncspec.conformance.targets.impl.probe import *
s = Stack.allocate(STACK_MIN)
"""

CRASHES = {
    # a write to address 0 inside a fiber: not a guard page
    "null": "Fiber(s, [Fault(0)]).resume(0)",
    # a misaligned movaps inside a fiber: #GP, not a guard page
    "movaps": "Fiber(s, [Align(8)]).resume(0)",
    # an overflow of caller memory, far from any guard page, after a handled one
    "after-overflow": (
        "assert Fiber(Stack.allocate(STACK_MIN), [Recurse(10**12)]).resume(0)[0] == Status.FAILED\n"
        "Fiber(s, [Fault(8)]).resume(0)"
    ),
    # a SIGSEGV sent by kill, once the handler is installed
    "kill": "Fiber(s, []).resume(0)\nos.kill(os.getpid(), signal.SIGSEGV)",
    # the previous handler (faulthandler's) still runs for faults that are not ours
    "chained": "import faulthandler\nfaulthandler.enable()\nFiber(s, [Fault(0)]).resume(0)",
}


def test_other_segfaults_still_crash_the_process():
    procs = {
        name: subprocess.Popen(
            [sys.executable, "-c", CRASH_PRELUDE + code + "\nprint('survived')"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, code in CRASHES.items()
    }
    # "chained" enables faulthandler before the first resume installs ours, so
    # ours runs first and passes the fault on to faulthandler's.
    for name, p in procs.items():
        out, err = p.communicate(timeout=60)
        assert p.returncode == -signal.SIGSEGV, (name, p.returncode, out, err)
        assert "survived" not in out, name
        if name == "chained":
            assert "Segmentation fault" in err, err


# ---------------------------------------------------------------------------
# Many random operations leak nothing
# ---------------------------------------------------------------------------


def random_operations(rng: random.Random, n: int) -> None:
    stacks: list[Stack] = []
    fibers: list[Fiber] = []
    buffers: list[bytearray] = []
    for _ in range(n):
        op = rng.randrange(100)
        if op < 12 and len(stacks) < 12:
            if rng.random() < 0.7:
                stacks.append(Stack.allocate(rng.randrange(STACK_MIN, 6 * STACK_MIN)))
            else:
                buf = bytearray(STACK_MIN + 64 + rng.randrange(4096))
                buffers.append(buf)
                stacks.append(Stack.from_buffer(buf, rng.randrange(32)))
        elif op < 22 and stacks:
            s = rng.choice(stacks)
            if s.in_use:
                with pytest.raises(ValueError, match="in use"):
                    s.free()
            else:
                s.free()
                stacks.remove(s)
        elif op < 40 and stacks:
            s = rng.choice(stacks)
            probe = [Yield(times=rng.randrange(4), add=1)]
            if rng.random() < 0.2 and s.guard:
                probe.append(Recurse(10**12))
            if rng.random() < 0.2 and fibers:
                probe.append(Resume(rng.choice(fibers)))
            if s.in_use:
                with pytest.raises(ValueError, match="already in use"):
                    Fiber(s, probe)
            else:
                fibers.append(Fiber(s, probe))
        elif op < 85 and fibers:
            f = rng.choice(fibers)
            st = f.state
            if st in (State.NEW, State.SUSPENDED):
                status, _ = f.resume(rng.getrandbits(64))
                assert status in (Status.YIELDED, Status.FINISHED, Status.FAILED)
            else:
                with pytest.raises(ValueError, match="cannot resume"):
                    f.resume(0)
        elif fibers:
            f = rng.choice(fibers)
            f.close()
            fibers.remove(f)
    for f in fibers:
        f.close()
    for s in stacks:
        s.free()


def test_random_operations_leave_no_mappings_or_fds():
    random_operations(random.Random(6), 2000)  # warm up: handler, allocator arenas
    gc.collect()
    maps0, fds0 = maps_count(), fd_count()
    random_operations(random.Random(7), 10_000)
    gc.collect()
    assert (maps_count(), fd_count()) == (maps0, fds0)


# ---------------------------------------------------------------------------
# Benchmarks run
# ---------------------------------------------------------------------------


def test_benchmarks_run():
    assert fibers.bench_pingpong(1000) > 0
    with pytest.raises(ValueError):
        fibers.bench_pingpong(0)
