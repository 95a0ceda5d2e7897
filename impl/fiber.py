"""Fibers: stackful coroutines over a hand-written context switch.

The C layer (impl/fiber.c, compiled with impl/fiber_x86_64.S into
asyncspec.impl._fiber) owns stacks and fibers; this module is a small Python
API over it.  Python code never runs inside a fiber: a fiber runs a *probe*,
a short program of C operations chosen by the caller (yield values, hold
chosen values in the callee-saved registers across a yield, set the
floating-point control state, recurse until the stack overflows, walk the
frame-pointer chain, ...), which is what the tests and the conformance suite
need to check the context switch.

    with Stack.allocate(64 * 1024) as stack:
        with Fiber(stack, [Yield(times=2, add=1), Add(100)]) as fiber:
            fiber.resume(10)    # (Status.YIELDED, 11)
            fiber.resume(20)    # (Status.YIELDED, 21)
            fiber.resume(30)    # (Status.FINISHED, 130)

Values passed by resume and yield are unsigned machine words (0 <= v < 2**64).

Stacks
------
`Stack.allocate(size)` maps `size` bytes (rounded up to whole pages, at least
`STACK_MIN`) with a PROT_NONE guard page below them: a fiber that runs into
the guard page stops with `Status.FAILED` and the process goes on.
`Stack.from_buffer(buffer, offset)` uses writable memory the caller owns (a
bytearray, an mmap, ...), of any alignment: the usable range is aligned to 16
at both ends, and has no guard page, so an overflow there is not caught.  A
stack holds one open fiber at a time; free it (or leave the `with` block)
after closing its fiber.

Fibers
------
`Fiber(stack, probe)` creates a fiber in state NEW.  `fiber.resume(value)`
runs it until it yields, finishes or fails, and returns `(status, value)`.
States: NEW, RUNNING, SUSPENDED, FINISHED, FAILED, and CLOSED after
`close()`.  A fiber's probe may resume other fibers (`Resume(other)`): their
yields return to it.

Other builds of the C layer
---------------------------
`api(module)` returns an `Api`: this module's names (Stack, Fiber, the ops,
fp_control, ...) over another build of the C layer, such as one of the
deliberately broken switchers that `fiber_build.build_variant` compiles.
Stacks and fibers of different builds do not mix.

Errors
------
Using things the wrong way raises ValueError naming what was wrong: a stack
too small, a stack freed twice or freed while a fiber uses it, a second
fiber on a stack, resuming a fiber that has finished or failed, is running,
or is closed (and, inside a probe, a fiber resuming itself: see
`ResumeResult.error`).  Failures of the system (mmap) raise OSError with the
errno.
"""

from __future__ import annotations

import enum
import errno as _errno
import os
import signal as _signal
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

try:
    from asyncspec.impl._fiber import ffi, lib
except ImportError as exc:  # not built: no context switch for this machine
    raise ImportError(
        "asyncspec.impl.fiber needs the _fiber extension, which is built on x86-64 Linux only so far"
    ) from exc

STACK_MIN: int = lib.ASF_STACK_MIN
"""Smallest usable stack size in bytes."""
PAGE_SIZE: int = lib.asf_page_size()
NREGS: int = lib.asf_nregs()
"""Number of callee-saved general registers probed (x86-64: rbx, rbp, r12-r15)."""
ARCH: str = ffi.string(lib.asf_arch()).decode()
_WORD = 1 << (8 * ffi.sizeof("uintptr_t"))

__all__ = [
    "ARCH",
    "NREGS",
    "PAGE_SIZE",
    "STACK_MIN",
    "Add",
    "Align",
    "AlignResult",
    "Api",
    "DirectionFlag",
    "Fault",
    "Fiber",
    "FpControl",
    "FrameWalk",
    "Frames",
    "Loop",
    "Op",
    "PinnedError",
    "Recurse",
    "Registers",
    "Resume",
    "SelfCheck",
    "ResumeResult",
    "Set",
    "SignalMask",
    "Stack",
    "State",
    "Status",
    "Yield",
    "api",
    "bench_pingpong",
    "bench_switch",
    "direction_flag",
    "exit_address",
    "fp_control",
    "set_fp_control",
]


class State(enum.IntEnum):
    CLOSED = lib.ASF_STATE_CLOSED
    NEW = lib.ASF_STATE_NEW
    SUSPENDED = lib.ASF_STATE_SUSPENDED
    RUNNING = lib.ASF_STATE_RUNNING
    FINISHED = lib.ASF_STATE_FINISHED
    FAILED = lib.ASF_STATE_FAILED


class Status(enum.IntEnum):
    """What a resume ended with."""

    YIELDED = lib.ASF_YIELDED
    FINISHED = lib.ASF_FINISHED
    FAILED = lib.ASF_FAILED


_STATUS = {int(s): s for s in Status}


def _word(value: int, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    if not 0 <= value < _WORD:
        raise ValueError(f"{what} must be a machine word, 0 <= {what} < 2**{_WORD.bit_length() - 1}; got {value}")
    return value


def _resume_error(code: int, state: State | None = None) -> Exception:
    """The exception for a negative asf_fiber_resume result."""
    e = -code
    if e == _errno.EBADF:
        return ValueError("cannot resume the fiber: it is closed")
    if e == _errno.EDEADLK:
        return ValueError("cannot resume the fiber: a fiber cannot resume itself")
    if e == _errno.EBUSY:
        return ValueError(
            "cannot resume the fiber: it is running (it resumed this one, directly or through others, "
            "or runs on another thread)"
        )
    if e == _errno.ESRCH:
        how = {State.FINISHED: "finished", State.FAILED: "failed"}.get(state, "finished or failed")
        return ValueError(f"cannot resume the fiber: it has {how}")
    return OSError(e, f"cannot resume the fiber: {os.strerror(e)}")


# ---------------------------------------------------------------------------
# Stacks
# ---------------------------------------------------------------------------


class _StackHandle:
    """The C struct of a stack, shared by its Stack and its fiber's finalizer."""

    __slots__ = ("__weakref__", "buf", "c", "free_when_idle")
    # The build of the C layer (this module's; `api` binds others in subclasses).
    _ffi = ffi
    _lib = lib

    def __init__(self) -> None:
        self.c = self._ffi.new("struct asf_stack *")
        self.buf = None  # ffi.from_buffer cdata keeping caller memory pinned
        self.free_when_idle = False

    def free(self) -> int:
        r = self._lib.asf_stack_free(self.c)
        if r == 0 and self.buf is not None:
            self._ffi.release(self.buf)  # lets a bytearray be resized again
            self.buf = None
        return r


def _finalize_stack(h: _StackHandle) -> None:
    if h.free() == -_errno.EBUSY:
        h.free_when_idle = True  # collected before its fiber: the fiber's finalizer frees it


class Stack:
    """A fiber stack: mapped with a guard page (`allocate`) or caller memory (`from_buffer`)."""

    __slots__ = ("__weakref__", "_finalizer", "_h")
    _ffi = ffi
    _lib = lib
    _handle_type = _StackHandle

    def __init__(self) -> None:
        raise TypeError("use Stack.allocate(size) or Stack.from_buffer(buffer, offset)")

    @classmethod
    def _new(cls) -> Stack:
        self = object.__new__(cls)
        self._h = cls._handle_type()
        self._finalizer = None
        return self

    @classmethod
    def allocate(cls, size: int) -> Stack:
        """Map `size` usable bytes (rounded up to pages) plus a guard page below them."""
        if not isinstance(size, int) or isinstance(size, bool):
            raise TypeError(f"stack size must be an int, not {type(size).__name__}")
        if size < STACK_MIN:
            raise ValueError(f"stack too small: {size} bytes requested, the minimum is {STACK_MIN}")
        if size >= _WORD // 2:
            raise ValueError(f"stack size {size} is too large")
        self = cls._new()
        r = cls._lib.asf_stack_alloc(self._h.c, size)
        if r < 0:
            if r == -_errno.EINVAL:
                raise ValueError(f"invalid stack size {size}")
            raise OSError(-r, f"stack: cannot map {size} bytes plus a guard page: {os.strerror(-r)}")
        self._finalizer = weakref.finalize(self, _finalize_stack, self._h)
        return self

    @classmethod
    def from_buffer(cls, buffer, offset: int = 0, length: int | None = None) -> Stack:
        """A stack in caller memory: `length` bytes (default: to the end) of a
        writable buffer from `offset`.  Any alignment: the top is aligned down
        to 16 and the bottom up to 16.  No guard page.  The buffer is kept
        alive (and a bytearray cannot be resized) until the stack is freed."""
        ffi, lib = cls._ffi, cls._lib
        try:
            buf = ffi.from_buffer("char[]", buffer, require_writable=True)
        except (TypeError, BufferError) as exc:
            raise ValueError(f"stack memory must be a writable buffer: {exc}") from None
        n = len(buf)
        if not isinstance(offset, int) or not 0 <= offset <= n:
            ffi.release(buf)
            raise ValueError(f"offset {offset!r} is outside the buffer (0 to {n})")
        if length is None:
            length = n - offset
        if not isinstance(length, int) or length < 0 or offset + length > n:
            ffi.release(buf)
            raise ValueError(f"length {length!r} at offset {offset} runs past the buffer's {n} bytes")
        start = int(ffi.cast("uintptr_t", buf)) + offset
        usable = max(0, ((start + length) & ~15) - ((start + 15) & ~15))
        if usable < STACK_MIN:
            ffi.release(buf)
            raise ValueError(
                f"stack too small: {length} bytes at offset {offset} leave {usable} usable bytes "
                f"after aligning both ends to 16, the minimum is {STACK_MIN}"
            )
        self = cls._new()
        r = lib.asf_stack_from_memory(self._h.c, buf + offset, length)
        if r < 0:
            ffi.release(buf)
            raise ValueError(f"cannot use that memory as a stack: {os.strerror(-r)}")
        self._h.buf = buf
        self._finalizer = weakref.finalize(self, _finalize_stack, self._h)
        return self

    # -- properties --------------------------------------------------------

    @property
    def base(self) -> int:
        """Lowest usable address."""
        return int(self._h.c.lo)

    @property
    def top(self) -> int:
        """One past the highest usable byte (16-aligned): a fiber's stack starts here."""
        return int(self._h.c.hi)

    @property
    def size(self) -> int:
        """Usable bytes."""
        return self.top - self.base

    @property
    def guard(self) -> tuple[int, int] | None:
        """The guard page range [lo, hi), or None (caller memory)."""
        c = self._h.c
        return (int(c.guard_lo), int(c.guard_hi)) if c.guard_hi else None

    @property
    def mapped_bytes(self) -> int:
        """Bytes mapped for this stack (usable + guard), 0 for caller memory."""
        return int(self._h.c.map_len)

    @property
    def freed(self) -> bool:
        return self._h.c.state not in (lib.ASF_STACK_IDLE, lib.ASF_STACK_BUSY)

    @property
    def in_use(self) -> bool:
        """Whether an open fiber runs on it."""
        return self._h.c.state == lib.ASF_STACK_BUSY

    # -- lifetime ------------------------------------------------------------

    def free(self) -> None:
        """Unmap (or release) the stack.  Errors: already freed, or in use by an open fiber."""
        r = self._h.free()
        if r == -_errno.EBADF:
            raise ValueError("stack already freed")
        if r == -_errno.EBUSY:
            raise ValueError("stack is in use by a fiber: close the fiber first")
        if r < 0:
            raise OSError(-r, f"stack: munmap failed: {os.strerror(-r)}")
        if self._finalizer is not None:
            self._finalizer.detach()

    def close(self) -> None:
        """Free the stack unless it is already freed."""
        if not self.freed:
            self.free()

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        if self.freed:
            return "<Stack freed>"
        kind = "mapped" if self.guard else "caller memory"
        return f"<Stack {kind} [{self.base:#x}, {self.top:#x}) {self.size} bytes>"


# ---------------------------------------------------------------------------
# Probe operations
# ---------------------------------------------------------------------------


class Op:
    """One operation of a fiber's probe.  `v` is the fiber's value: the first
    resume's value at the start, returned when the probe ends."""

    code = 0

    def _fill(self, c, owner: Fiber) -> None:
        c.code = self.code

    def _result(self, c):
        return None


@dataclass(frozen=True)
class Set(Op):
    """v = value"""

    value: int
    code = lib.ASF_OP_SET

    def _fill(self, c, owner):
        super()._fill(c, owner)
        c.arg = _word(self.value, "Set value")


@dataclass(frozen=True)
class Add(Op):
    """v += value (modulo 2**64)"""

    value: int
    code = lib.ASF_OP_ADD

    def _fill(self, c, owner):
        super()._fill(c, owner)
        c.arg = _word(self.value, "Add value")


@dataclass(frozen=True)
class Yield(Op):
    """`times` times: v = yield(v + add).  Result: yields done."""

    times: int = 1
    add: int = 0
    code = lib.ASF_OP_YIELD

    def _fill(self, c, owner):
        super()._fill(c, owner)
        c.arg = _word(self.times, "Yield times")
        c.input[0] = _word(self.add, "Yield add")

    def _result(self, c):
        return int(c.output[0])


@dataclass(frozen=True)
class Registers(Op):
    """Hold `values` in the callee-saved registers (NREGS of them; x86-64:
    rbx, rbp, r12, r13, r14, r15) while v = yield(v).  Result: the registers'
    values after the fiber is resumed (equal to `values` when the switch
    preserves them)."""

    values: tuple
    code = lib.ASF_OP_REGS

    def _fill(self, c, owner):
        super()._fill(c, owner)
        vals = tuple(self.values)
        if len(vals) != NREGS:
            raise ValueError(f"Registers needs {NREGS} values, got {len(vals)}")
        for i, v in enumerate(vals):
            c.input[i] = _word(v, "register value")

    def _result(self, c):
        return tuple(int(c.output[i]) for i in range(NREGS))


@dataclass(frozen=True)
class FpControl(Op):
    """Set the floating-point control state to `value` (x86-64: MXCSR in bits
    0-31, x87 control word in bits 32-47), then v = yield(v).  Result:
    (state on entry, state after the fiber is resumed)."""

    value: int
    code = lib.ASF_OP_FP

    def _fill(self, c, owner):
        super()._fill(c, owner)
        c.arg = _word(self.value, "FpControl value")

    def _result(self, c):
        return (int(c.output[0]), int(c.output[1]))


@dataclass(frozen=True)
class Recurse(Op):
    """Recurse to `depth` (about 300 bytes of stack a level).  Result: the
    deepest level reached (also after the fiber failed on its guard page)."""

    depth: int
    code = lib.ASF_OP_RECURSE

    def _fill(self, c, owner):
        super()._fill(c, owner)
        c.arg = _word(self.depth, "Recurse depth")

    def _result(self, c):
        return int(c.output[0])


class FrameWalk(NamedTuple):
    frames: int  # frame records walked
    end: int  # the saved frame pointer that ended the walk (0: a proper end)
    last_frame: int  # address of the outermost frame record
    last_return_address: int  # the return address stored beside it
    ok: bool  # stayed inside the stack, strictly increasing


@dataclass(frozen=True)
class Frames(Op):
    """Walk the frame-pointer chain from inside the probe.  Result: FrameWalk."""

    code = lib.ASF_OP_FRAMES

    def _result(self, c):
        o = c.output
        return FrameWalk(int(o[0]), int(o[1]), int(o[2]), int(o[3]), bool(o[4]))


class AlignResult(NamedTuple):
    address: int
    remainder: int  # address % 16


@dataclass(frozen=True)
class Align(Op):
    """An aligned 16-byte vector access (x86-64: movaps) to a 16-byte aligned
    stack local, plus `offset` bytes.  offset=0 passes only if the stack was
    aligned as the ABI requires when the fiber started; offset=8 is a
    deliberate misaligned access, which crashes the process (SIGSEGV)."""

    offset: int = 0
    code = lib.ASF_OP_ALIGN

    def _fill(self, c, owner):
        super()._fill(c, owner)
        if self.offset not in range(32):
            raise ValueError("Align offset must be in range(32)")
        c.arg = self.offset

    def _result(self, c):
        return AlignResult(int(c.output[0]), int(c.output[1]))


class ResumeResult(NamedTuple):
    status: Status | None  # None when the resume was refused
    value: int
    error: Exception | None  # why it was refused (what Fiber.resume would raise)
    code: int  # the raw C result: a status, or -errno


_SELF = "self"


@dataclass(frozen=True)
class Resume(Op):
    """Resume another fiber with v; v = what it yields or returns (unchanged
    if it fails or the resume is refused).  `target` is a Fiber, "self" (the
    fiber running the probe: refused), or None (to be bound later with
    Fiber.set_resume_target).  Result: ResumeResult."""

    target: Fiber | str | None = None
    code = lib.ASF_OP_RESUME

    def _fill(self, c, owner):
        super()._fill(c, owner)
        t = self.target
        if t == _SELF:
            c.ptr = owner._c
        elif isinstance(t, Fiber):
            owner._same_build(t, "Resume target")
            c.ptr = t._c
            owner._refs.append(t)
        elif t is None:
            c.ptr = owner._ffi.NULL
        else:
            raise TypeError(f"Resume target must be a Fiber, 'self' or None, not {t!r}")

    def _result(self, c):
        code = int(c.output[0])
        if code >= _WORD // 2:  # a signed C int stored in a machine word
            code -= _WORD
        if code > 0:
            return ResumeResult(Status(code), int(c.output[1]), None, code)
        if code < 0:
            return ResumeResult(None, 0, _resume_error(code), code)
        return ResumeResult(None, 0, None, 0)  # not run yet


@dataclass(frozen=True)
class Fault(Op):
    """Store v at `address` (default 0): a deliberate crash.  Not a guard-page
    hit, so the process dies with SIGSEGV."""

    address: int = 0
    code = lib.ASF_OP_FAULT

    def _fill(self, c, owner):
        super()._fill(c, owner)
        c.arg = _word(self.address, "Fault address")


@dataclass(frozen=True)
class Loop(Op):
    """Forever: v = yield(v + 1)."""

    code = lib.ASF_OP_LOOP


@dataclass(frozen=True)
class DirectionFlag(Op):
    """Read the direction flag (x86-64 rflags.DF, with pushfq), then
    v = yield(v), then read it again.  Result: (DF when the op started,
    DF after the fiber is resumed), each 0 or 1; the psABI wants both 0.  As
    a probe's first op, the first value is DF as the fiber entered (compiled
    code never sets DF).  x86-64 only: elsewhere Fiber() refuses it."""

    code = lib.ASF_OP_DF

    def _result(self, c):
        return (int(c.output[0]), int(c.output[1]))


@dataclass(frozen=True)
class SignalMask(Op):
    """Block `signum` in the thread's signal mask (pthread_sigmask), then
    v = yield(v).  Result: (whether it was blocked already when the op
    started, whether it is blocked after the fiber is resumed).  The mask
    belongs to the thread, not to the fiber: a switch neither saves nor
    restores it, so the block is still in force in the resumer when the
    fiber yields, and what the resumer does to the mask meanwhile is what
    the fiber finds when it is resumed.  The caller owns the mask: restore
    it after the fiber yields.  SIGSEGV is refused (the guard-page handler
    needs it)."""

    signum: int
    code = lib.ASF_OP_SIGMASK

    def _fill(self, c, owner):
        super()._fill(c, owner)
        n = int(self.signum)
        if not 1 <= n < _signal.NSIG or n == _signal.SIGSEGV:
            raise ValueError(f"SignalMask needs a signal number other than SIGSEGV, got {self.signum!r}")
        c.arg = n

    def _result(self, c):
        return (int(c.output[0]), int(c.output[1]))


# ---------------------------------------------------------------------------
# Fibers
# ---------------------------------------------------------------------------


class PinnedError(ValueError):
    """A started fiber was asked to move: it is pinned."""


class SelfCheck(NamedTuple):
    """What `Fiber.self_check` found."""

    pointers: int  # self-pointers checked
    bad: int | None  # the first one outside the fiber's own stack
    ok: bool


def _finalize_fiber(c, h: _StackHandle, keep) -> None:
    if h._lib.asf_fiber_destroy(c) == 0 and h.free_when_idle:
        h.free()


class Fiber:
    """A fiber running `probe` (a sequence of Op) on `stack`."""

    __slots__ = ("__weakref__", "_c", "_finalizer", "_ops", "_ops_c", "_out", "_refs", "_resume_c", "_stack")
    _ffi = ffi
    _lib = lib

    def __init__(self, stack: Stack, probe: Iterable[Op] = ()) -> None:
        self._check_stack(stack)
        ffi, lib = self._ffi, self._lib
        ops = tuple(probe)
        for op in ops:
            if not isinstance(op, Op):
                raise TypeError(f"probe operations must be Op instances, not {type(op).__name__}")
        self._finalizer = None
        self._refs: list = []
        self._stack = stack
        self._ops = ops
        self._c = ffi.new("struct asf_fiber *")
        # The resume hot path: its out-parameter and C function, looked up once.
        self._out = ffi.new("uintptr_t *")
        self._resume_c = self._lib.asf_fiber_resume
        self._ops_c = ffi.new("struct asf_op[]", max(1, len(ops)))
        for op, c in zip(ops, self._ops_c):
            op._fill(c, self)
        r = lib.asf_fiber_init(self._c, stack._h.c, self._ops_c, len(ops))
        if r == -_errno.EBUSY:
            raise ValueError("stack is already in use by another fiber")
        if r == -_errno.EBADF:
            raise ValueError("stack has been freed")
        if r == -_errno.EINVAL:
            raise ValueError(
                "invalid probe (an FpControl value with reserved bits set, or DirectionFlag where there is no DF?)"
            )
        if r < 0:
            raise OSError(-r, f"fiber: {os.strerror(-r)}")
        self._finalizer = weakref.finalize(self, _finalize_fiber, self._c, stack._h, (self._ops_c, self._refs))

    def _same_build(self, other, what: str) -> None:
        if other._lib is not self._lib:
            raise TypeError(f"{what} belongs to another build of the fiber library than this Fiber")

    # -- running ---------------------------------------------------------------

    def resume(self, value: int = 0) -> tuple[Status, int]:
        """Run the fiber until it yields, finishes or fails: (status, value).
        `value` is what its pending yield returns (or its starting value)."""
        if type(value) is not int or not 0 <= value < _WORD:
            value = _word(value, "value")
        out = self._out
        r = self._resume_c(self._c, value, out)
        if r < 0:
            raise _resume_error(r, self.state)
        return _STATUS[r], out[0]

    def resume_with_registers(self, value: int, registers: Sequence[int]) -> tuple[Status, int, tuple]:
        """resume(), called with `registers` (NREGS values) in the caller's
        callee-saved registers; also returns what they hold afterwards."""
        regs = tuple(registers)
        if len(regs) != NREGS:
            raise ValueError(f"need {NREGS} register values, got {len(regs)}")
        ffi = self._ffi
        rin = ffi.new("uintptr_t[]", [_word(v, "register value") for v in regs])
        rout = ffi.new("uintptr_t[]", NREGS)
        out = ffi.new("uintptr_t *")
        r = self._lib.asf_fiber_resume_regs(self._c, _word(value, "value"), out, rin, rout)
        if r < 0:
            raise _resume_error(r, self.state)
        return Status(r), int(out[0]), tuple(int(x) for x in rout)

    def set_resume_target(self, index: int, target: Fiber) -> None:
        """Bind the Resume op at `index` of the probe to `target` (for fibers
        that resume each other).  Only before the fiber starts."""
        if self.state != State.NEW:
            raise ValueError(f"cannot rebind a probe of a fiber in state {self.state.name}")
        if not isinstance(self._ops[index], Resume):
            raise TypeError(f"probe operation {index} is not a Resume")
        if not isinstance(target, Fiber):
            raise TypeError("target must be a Fiber")
        self._same_build(target, "target")
        self._ops_c[index].ptr = target._c
        self._refs.append(target)

    # -- inspection ------------------------------------------------------------

    @property
    def state(self) -> State:
        return State(self._lib.asf_fiber_state(self._c))

    @property
    def stack(self) -> Stack:
        return self._stack

    @property
    def probe(self) -> tuple:
        return self._ops

    @property
    def results(self) -> list:
        """Each probe operation's result so far (None for those without one)."""
        return [op._result(c) for op, c in zip(self._ops, self._ops_c)]

    @property
    def entry_sp(self) -> int:
        """Stack pointer at the first instruction of the fiber's entry function
        (0 before it starts).  The ABI requires (entry_sp + 8) % 16 == 0."""
        return int(self._c.entry_sp)

    @property
    def entry_fp(self) -> int:
        """Frame pointer there: 0, the end of the frame-pointer chain."""
        return int(self._c.entry_fp)

    @property
    def fault_address(self) -> int | None:
        """The guard-page address that made the fiber fail, if it did."""
        return int(self._c.fault_addr) or None

    # -- pinning -------------------------------------------------------------

    def relocate(self, stack: Stack) -> Stack:
        """Move a fiber that has never run to `stack`; return the stack it
        leaves (idle, the caller's to free or reuse).

        A started fiber is pinned: its saved context points into its own
        stack (see `self_check`), so moving it is refused with PinnedError,
        as safe Rust refuses to move a pinned !Unpin value."""
        self._check_stack(stack)
        r = self._lib.asf_fiber_relocate(self._c, stack._h.c)
        if r == -_errno.EPERM:
            raise PinnedError(
                f"cannot relocate a {self.state.name} fiber: it has started, so it is pinned "
                "(its saved context points into its own stack)"
            )
        self._relocated(r, stack)
        old, self._stack = self._stack, stack
        return old

    def _relocate_unchecked(self, stack: Stack) -> None:
        """The unsafe move, for checkers and tests: copy the stack's bytes to
        `stack` and fix no pointer.  A started fiber is left with its saved
        context pointing into the old stack, which this fiber keeps mapped
        (never resumed on: `self_check` finds the dangling pointers first)."""
        self._check_stack(stack)
        r = self._lib.asf_fiber_relocate_unchecked(self._c, stack._h.c)
        if r == -_errno.ENOSPC:
            raise ValueError(f"stack of {stack.size} bytes is smaller than the fiber's ({self._stack.size})")
        self._relocated(r, stack)
        self._refs.append(self._stack)
        self._stack = stack

    def _check_stack(self, stack) -> None:
        if not isinstance(stack, Stack):
            raise TypeError(f"stack must be a Stack, not {type(stack).__name__}")
        self._same_build(stack, "stack")

    def _relocated(self, r: int, stack: Stack) -> None:
        if r == -_errno.EBUSY:
            raise ValueError("stack is already in use by another fiber" if self.state != State.RUNNING else "cannot relocate a running fiber")
        if r == -_errno.EBADF:
            raise ValueError("the fiber is closed or the stack has been freed")
        if r < 0:
            raise OSError(-r, f"fiber: relocate: {os.strerror(-r)}")
        # The finalizer now releases the new stack.
        if self._finalizer is not None:
            self._finalizer.detach()
        self._finalizer = weakref.finalize(self, _finalize_fiber, self._c, stack._h, (self._ops_c, self._refs))

    def self_check(self) -> SelfCheck:
        """Check every pointer of the saved context that must point into the
        fiber's own stack: the saved stack pointer, the entry stack and frame
        pointers, and the saved frame-pointer chain.  Never resumes it, and
        reads memory only through pointers already found inside the stack."""
        out = self._ffi.new("uintptr_t[3]")
        r = self._lib.asf_fiber_self_check(self._c, out)
        if r == -_errno.EBUSY:
            raise ValueError("cannot check a running fiber")
        if r < 0:
            raise ValueError("the fiber is closed")
        return SelfCheck(int(out[0]), int(out[1]) or None, bool(out[2]))

    # -- lifetime ------------------------------------------------------------

    def close(self) -> None:
        """Release the fiber (and its hold on the stack); a suspended fiber is
        abandoned.  Idempotent; refused while the fiber is running."""
        if self.state == State.CLOSED:
            return
        r = self._lib.asf_fiber_destroy(self._c)
        if r == -_errno.EBUSY:
            raise ValueError("cannot close a running fiber")
        if r < 0 and r != -_errno.EBADF:
            raise OSError(-r, f"fiber: close failed: {os.strerror(-r)}")
        if self._finalizer is not None:
            self._finalizer.detach()
        h = self._stack._h
        if h.free_when_idle:
            h.free()

    def __enter__(self) -> Fiber:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Fiber {self.state.name} on {self._stack!r}>"


# ---------------------------------------------------------------------------
# The thread's own floating-point control state, benchmarks, other builds
# ---------------------------------------------------------------------------


def _bench(fn, n: int, what: str) -> int:
    if not isinstance(n, int) or n < 1:
        raise ValueError("n must be a positive int")
    r = fn(n)
    if r < 0:
        raise OSError(-r, f"{what}: {os.strerror(-r)}")
    return int(r)


# The names an Api shares with this module unchanged: nothing in them calls
# into the C layer.
_SHARED = (
    "Add", "Align", "AlignResult", "DirectionFlag", "Fault", "FpControl", "FrameWalk", "Frames", "Loop", "Op",
    "PinnedError", "Recurse", "Registers", "Resume", "ResumeResult", "SelfCheck", "Set", "SignalMask", "State", "Status",
    "Yield",
)  # fmt: skip


class Api:
    """The fiber API over one build of the C layer: Stack and Fiber bound to
    it, its functions (fp_control, ...), and the ops, states and constants,
    under this module's names.  This module's own functions are those of
    the installed build's Api; `api(module)` makes one for another build."""

    def __init__(self, ffi, lib, stack_type: type, fiber_type: type) -> None:
        self.ffi, self.lib = ffi, lib
        self.Stack, self.Fiber = stack_type, fiber_type
        self.STACK_MIN = int(lib.ASF_STACK_MIN)
        self.PAGE_SIZE = int(lib.asf_page_size())
        self.NREGS = int(lib.asf_nregs())
        self.ARCH = ffi.string(lib.asf_arch()).decode()
        for name in _SHARED:
            setattr(self, name, globals()[name])

    def fp_control(self) -> int:
        """The calling thread's floating-point control state (x86-64: MXCSR in
        bits 0-31, x87 control word in bits 32-47)."""
        return int(self.lib.asf_fp_control())

    def set_fp_control(self, value: int) -> None:
        """Set it.  Careful: Python's own float arithmetic runs under it."""
        if self.lib.asf_set_fp_control(_word(value, "value")) < 0:
            raise ValueError(f"floating-point control value {value:#x} has reserved bits set")

    def direction_flag(self) -> int:
        """The calling thread's direction flag (x86-64 rflags.DF): 0 or 1."""
        r = self.lib.asf_direction_flag()
        if r < 0:
            raise OSError(-r, f"direction flag: {os.strerror(-r)} on {self.ARCH}")
        return int(r)

    def exit_address(self) -> int:
        """The fake return address a fiber's entry function sees (unwinders stop there)."""
        return int(self.lib.asf_exit_address())

    def bench_pingpong(self, n: int) -> int:
        """Nanoseconds for n resume/yield round trips (2n switches) in C."""
        return _bench(self.lib.asf_bench_pingpong, n, "bench_pingpong")

    def bench_switch(self, n: int) -> int:
        """Nanoseconds for n bare context-switch round trips (2n switches) in C."""
        return _bench(self.lib.asf_bench_switch, n, "bench_switch")

    def __repr__(self) -> str:
        return f"<fiber Api over {getattr(self.lib, '__name__', self.lib)!r}>"


def api(module) -> Api:
    """The fiber API over another build of the C layer: `module` is a cffi
    module with `ffi` and `lib` compiled from fiber.c (see
    fiber_build.build_variant)."""
    ffi_, lib_ = module.ffi, module.lib
    bound = {"_ffi": ffi_, "_lib": lib_, "__slots__": (), "__module__": __name__}
    handle = type("_StackHandle", (_StackHandle,), dict(bound))
    stack = type("Stack", (Stack,), dict(bound, _handle_type=handle, __doc__=Stack.__doc__))
    fib = type("Fiber", (Fiber,), dict(bound, __doc__=Fiber.__doc__))
    return Api(ffi_, lib_, stack, fib)


_installed = Api(ffi, lib, Stack, Fiber)
fp_control = _installed.fp_control
set_fp_control = _installed.set_fp_control
direction_flag = _installed.direction_flag
exit_address = _installed.exit_address
bench_pingpong = _installed.bench_pingpong
bench_switch = _installed.bench_switch
