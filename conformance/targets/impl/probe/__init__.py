"""The probe interpreter: fiber bodies that observe the reference switcher.

The conformance suite's `impl` fiber and pin targets, and the tests, check
asyncspec.impl.fiber by running *probes* in its fibers: short programs of C
operations (yield values, hold chosen values in the callee-saved registers
across a yield, set the floating-point control state, recurse until the
stack overflows, walk the frame-pointer chain, ...).  The interpreter
(probe.c, compiled into asyncspec.conformance.targets.impl.probe._probe) is
an adapter, not part of the switcher: a probe fiber is an
asyncspec.impl.fiber Fiber whose body is the interpreter's entry function,
and the interpreter reaches the switcher only through the addresses of that
build's resume and yield, so what runs is the installed switcher itself.

    with Stack.allocate(64 * 1024) as stack:
        with Fiber(stack, [Yield(times=2, add=1), Add(100)]) as fiber:
            fiber.resume(10)    # (Status.YIELDED, 11)
            fiber.resume(20)    # (Status.YIELDED, 21)
            fiber.resume(30)    # (Status.FINISHED, 130)

`Stack` and the states are asyncspec.impl.fiber's; `Fiber(stack, probe)`
takes a sequence of `Op`s, `Fiber.results` reads each op's result.  A
probe's Resume may resume other fibers: their yields return to it.

`api(fiber_api, module=None)` returns an `Api`: these names over another
build of the switcher (asyncspec.impl.fiber.api, such as the tests'
deliberately broken switchers), with the installed interpreter or another
build of it (`module`).  Fibers and stacks of different builds do not mix.
"""

from __future__ import annotations

import os
import signal as _signal
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from asyncspec.impl import fiber as _fiber
from asyncspec.impl.fiber import PinnedError, SelfCheck, Stack, State, Status, resume_error

from ._probe import ffi, lib

NREGS: int = lib.asp_nregs()
"""Number of callee-saved general registers probed (x86-64: rbx, rbp, r12-r15)."""
STACK_MIN = _fiber.STACK_MIN
PAGE_SIZE = _fiber.PAGE_SIZE
ARCH = _fiber.ARCH
_WORD = 1 << (8 * ffi.sizeof("uintptr_t"))
_word = _fiber._word

__all__ = [
    "ARCH",
    "INSTALLED",
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
    "ResumeResult",
    "SelfCheck",
    "Set",
    "SignalMask",
    "Stack",
    "State",
    "Status",
    "Yield",
    "api",
    "direction_flag",
    "exit_address",
    "fp_control",
    "set_fp_control",
]


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
    code = lib.ASP_OP_SET

    def _fill(self, c, owner):
        super()._fill(c, owner)
        c.arg = _word(self.value, "Set value")


@dataclass(frozen=True)
class Add(Op):
    """v += value (modulo 2**64)"""

    value: int
    code = lib.ASP_OP_ADD

    def _fill(self, c, owner):
        super()._fill(c, owner)
        c.arg = _word(self.value, "Add value")


@dataclass(frozen=True)
class Yield(Op):
    """`times` times: v = yield(v + add).  Result: yields done."""

    times: int = 1
    add: int = 0
    code = lib.ASP_OP_YIELD

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
    code = lib.ASP_OP_REGS

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
    code = lib.ASP_OP_FP

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
    code = lib.ASP_OP_RECURSE

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

    code = lib.ASP_OP_FRAMES

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
    code = lib.ASP_OP_ALIGN

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
    code = lib.ASP_OP_RESUME

    def _fill(self, c, owner):
        super()._fill(c, owner)
        t = self.target
        if t == _SELF:
            c.ptr = ffi.cast("void *", owner.address)
        elif isinstance(t, _fiber.Fiber):
            owner._same_build(t, "Resume target")
            c.ptr = ffi.cast("void *", t.address)
            owner._refs.append(t)
        elif t is None:
            c.ptr = ffi.NULL
        else:
            raise TypeError(f"Resume target must be a Fiber, 'self' or None, not {t!r}")

    def _result(self, c):
        code = int(c.output[0])
        if code >= _WORD // 2:  # a signed C int stored in a machine word
            code -= _WORD
        if code > 0:
            return ResumeResult(Status(code), int(c.output[1]), None, code)
        if code < 0:
            return ResumeResult(None, 0, resume_error(code), code)
        return ResumeResult(None, 0, None, 0)  # not run yet


@dataclass(frozen=True)
class Fault(Op):
    """Store v at `address` (default 0): a deliberate crash.  Not a guard-page
    hit, so the process dies with SIGSEGV."""

    address: int = 0
    code = lib.ASP_OP_FAULT

    def _fill(self, c, owner):
        super()._fill(c, owner)
        c.arg = _word(self.address, "Fault address")


@dataclass(frozen=True)
class Loop(Op):
    """Forever: v = yield(v + 1)."""

    code = lib.ASP_OP_LOOP


@dataclass(frozen=True)
class DirectionFlag(Op):
    """Read the direction flag (x86-64 rflags.DF, with pushfq), then
    v = yield(v), then read it again.  Result: (DF when the op started,
    DF after the fiber is resumed), each 0 or 1; the psABI wants both 0.  As
    a probe's first op, the first value is DF as the fiber entered (compiled
    code never sets DF).  x86-64 only: elsewhere Fiber() refuses it."""

    code = lib.ASP_OP_DF

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
    code = lib.ASP_OP_SIGMASK

    def _fill(self, c, owner):
        super()._fill(c, owner)
        n = int(self.signum)
        if not 1 <= n < _signal.NSIG or n == _signal.SIGSEGV:
            raise ValueError(f"SignalMask needs a signal number other than SIGSEGV, got {self.signum!r}")
        c.arg = n

    def _result(self, c):
        return (int(c.output[0]), int(c.output[1]))


# ---------------------------------------------------------------------------
# Probe fibers
# ---------------------------------------------------------------------------


def _address(ffi_, lib_, name: str) -> int:
    return int(ffi_.cast("uintptr_t", ffi_.addressof(lib_, name)))


class _Binding:
    """A build of the interpreter bound to a build of the switcher: the
    switcher table (struct asp_switcher) and the body's address."""

    def __init__(self, module, fiber_ffi, fiber_lib) -> None:
        self.ffi, self.lib = module.ffi, module.lib
        self.switcher = sw = self.ffi.new("struct asp_switcher *")
        for field, name in (("resume", "asf_fiber_resume"), ("yield", "asf_fiber_yield")):
            setattr(sw, field, self.ffi.cast(self.ffi.typeof(getattr(sw, field)), _address(fiber_ffi, fiber_lib, name)))
        self.run = _address(self.ffi, self.lib, "asp_run")
        self.nregs = int(self.lib.asp_nregs())


class Fiber(_fiber.Fiber):
    """A fiber running `probe` (a sequence of Op) on `stack`."""

    __slots__ = ("_ops", "_ops_c", "_prog")
    _pb: _Binding  # the interpreter and switcher this class runs probes on

    def __init__(self, stack: Stack, probe: Iterable[Op] = ()) -> None:
        self._setup(stack)
        ops = tuple(probe)
        for op in ops:
            if not isinstance(op, Op):
                raise TypeError(f"probe operations must be Op instances, not {type(op).__name__}")
        pb = self._pb
        self._ops = ops
        self._ops_c = pb.ffi.new("struct asp_op[]", max(1, len(ops)))
        for op, c in zip(ops, self._ops_c):
            op._fill(c, self)
        if pb.lib.asp_check(self._ops_c, len(ops)) < 0:
            raise ValueError(
                "invalid probe (an FpControl value with reserved bits set, or DirectionFlag where there is no DF?)"
            )
        prog = self._prog = pb.ffi.new("struct asp_program *")
        prog.sw = pb.switcher
        prog.stack_lo, prog.stack_hi = stack.base, stack.top
        prog.ops = self._ops_c
        prog.nops = len(ops)
        self._start(pb.run, prog, keep=(self._ops_c, prog, pb))

    def _relocated(self, r: int, stack: Stack) -> None:
        super()._relocated(r, stack)
        self._prog.stack_lo, self._prog.stack_hi = stack.base, stack.top  # what FRAMES checks against

    def resume_with_registers(self, value: int, registers: Sequence[int]) -> tuple[Status, int, tuple]:
        """resume(), called with `registers` (NREGS values) in the caller's
        callee-saved registers; also returns what they hold afterwards."""
        pb = self._pb
        regs = tuple(registers)
        if len(regs) != pb.nregs:
            raise ValueError(f"need {pb.nregs} register values, got {len(regs)}")
        pffi = pb.ffi
        rin = pffi.new("uintptr_t[]", [_word(v, "register value") for v in regs])
        rout = pffi.new("uintptr_t[]", pb.nregs)
        out = pffi.new("uintptr_t *")
        fib = pffi.cast("struct asf_fiber *", self.address)
        r = pb.lib.asp_resume_regs(pb.switcher, fib, _word(value, "value"), out, rin, rout)
        if r < 0:
            raise resume_error(r, self.state)
        return Status(r), int(out[0]), tuple(int(x) for x in rout)

    def set_resume_target(self, index: int, target: _fiber.Fiber) -> None:
        """Bind the Resume op at `index` of the probe to `target` (for fibers
        that resume each other).  Only before the fiber starts."""
        if self.state != State.NEW:
            raise ValueError(f"cannot rebind a probe of a fiber in state {self.state.name}")
        if not isinstance(self._ops[index], Resume):
            raise TypeError(f"probe operation {index} is not a Resume")
        if not isinstance(target, _fiber.Fiber):
            raise TypeError("target must be a Fiber")
        self._same_build(target, "target")
        self._ops_c[index].ptr = self._pb.ffi.cast("void *", target.address)
        self._refs.append(target)

    @property
    def probe(self) -> tuple:
        return self._ops

    @property
    def results(self) -> list:
        """Each probe operation's result so far (None for those without one)."""
        return [op._result(c) for op, c in zip(self._ops, self._ops_c)]


# ---------------------------------------------------------------------------
# The API over one build of the switcher
# ---------------------------------------------------------------------------

# The names an Api shares with this module unchanged: nothing in them calls
# into a C layer.
_SHARED = (
    "Add", "Align", "AlignResult", "DirectionFlag", "Fault", "FpControl", "FrameWalk", "Frames", "Loop", "Op",
    "PinnedError", "Recurse", "Registers", "Resume", "ResumeResult", "SelfCheck", "Set", "SignalMask", "State", "Status",
    "Yield",
)  # fmt: skip


class Api:
    """The probes over one build of the switcher (and of the interpreter):
    Stack (the switcher build's) and Fiber bound to it, the thread's state
    as the probes see it (fp_control, ...), and the ops, states and
    constants, under this module's names.  This module's own names are those
    of the installed builds' Api; `api(fiber_api)` makes one for another."""

    def __init__(self, fiber_api: _fiber.Api, binding: _Binding, fiber_type: type) -> None:
        self.ffi, self.lib = fiber_api.ffi, fiber_api.lib
        self.probe_ffi, self.probe_lib = binding.ffi, binding.lib
        self.Stack, self.Fiber = fiber_api.Stack, fiber_type
        self.STACK_MIN, self.PAGE_SIZE, self.ARCH = fiber_api.STACK_MIN, fiber_api.PAGE_SIZE, fiber_api.ARCH
        self.NREGS = binding.nregs
        self.exit_address = fiber_api.exit_address
        for name in _SHARED:
            setattr(self, name, globals()[name])

    def fp_control(self) -> int:
        """The calling thread's floating-point control state (x86-64: MXCSR in
        bits 0-31, x87 control word in bits 32-47)."""
        return int(self.probe_lib.asp_fp_control())

    def set_fp_control(self, value: int) -> None:
        """Set it.  Careful: Python's own float arithmetic runs under it."""
        if self.probe_lib.asp_set_fp_control(_word(value, "value")) < 0:
            raise ValueError(f"floating-point control value {value:#x} has reserved bits set")

    def direction_flag(self) -> int:
        """The calling thread's direction flag (x86-64 rflags.DF): 0 or 1."""
        r = self.probe_lib.asp_direction_flag()
        if r < 0:
            raise OSError(-r, f"direction flag: {os.strerror(-r)} on {self.ARCH}")
        return int(r)

    def __repr__(self) -> str:
        return f"<probe Api over {getattr(self.lib, '__name__', self.lib)!r}>"


class _Installed:
    """The installed interpreter, in the shape api() takes a build in."""

    ffi, lib = ffi, lib


def api(fiber_api: _fiber.Api, module=None) -> Api:
    """The probes over another build of the switcher (`fiber_api`, from
    asyncspec.impl.fiber.api), run by the installed interpreter or by
    `module`, another build of it (probe.c compiled with build.make)."""
    binding = _Binding(module if module is not None else _Installed, fiber_api.ffi, fiber_api.lib)
    bound = {"_ffi": fiber_api.ffi, "_lib": fiber_api.lib, "_pb": binding, "__slots__": (), "__module__": __name__,
             "__doc__": Fiber.__doc__}  # fmt: skip
    return Api(fiber_api, binding, type("Fiber", (Fiber,), bound))


Fiber._pb = _Binding(_Installed, _fiber.ffi, _fiber.lib)
INSTALLED = Api(_fiber.INSTALLED, Fiber._pb, Fiber)
"""The Api of the installed switcher and interpreter: this module's own names."""
fp_control = INSTALLED.fp_control
set_fp_control = INSTALLED.set_fp_control
direction_flag = INSTALLED.direction_flag
exit_address = INSTALLED.exit_address
