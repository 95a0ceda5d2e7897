"""Fibers: stackful coroutines over a hand-written context switch.

The C layer (fiber.h and fiber.c here, with the machine's context switch in
arch/x86_64.S, compiled into asyncspec.impl.fiber._fiber) owns stacks and
fibers; this package is a small Python API over it.  A fiber runs a C
function, its body, on its own stack: ``entry(arg, value)``, with the
first resume's value, calling ``asf_fiber_yield`` (fiber.h) to suspend
itself; what it returns finishes the fiber.  Python code never runs inside a
fiber, so the bodies come from C modules (an address, or a cffi function
pointer of any cffi module); the conformance suite's probe interpreter
(asyncspec.conformance.targets.impl.probe) is one.

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
`Fiber(stack, entry, arg)` creates a fiber in state NEW.  `fiber.resume(value)`
runs it until it yields, finishes or fails, and returns `(status, value)`.
States: NEW, RUNNING, SUSPENDED, FINISHED, FAILED, and CLOSED after
`close()`.  A fiber's body may resume other fibers (`Fiber.address` is what C
code resumes): their yields return to it.  A fiber that has run is pinned
(`relocate` refuses to move it; `self_check` checks its self-pointers).

Other builds of the C layer
---------------------------
`api(module)` returns an `Api`: Stack and Fiber over another build of the
same C layer (a cffi module made with build.make, such as the tests'
deliberately broken switchers).  Stacks and fibers of different builds do
not mix.

Errors
------
Using things the wrong way raises ValueError naming what was wrong: a stack
too small, a stack freed twice or freed while a fiber uses it, a second
fiber on a stack, resuming a fiber that has finished or failed, is running,
or is closed.  Failures of the system (mmap) raise OSError with the errno.
"""

from __future__ import annotations

import enum
import errno as _errno
import os
import weakref
from collections.abc import Iterable
from typing import NamedTuple

try:
    from ._fiber import ffi, lib
except ImportError as exc:  # not built: no context switch for this machine
    raise ImportError(
        "asyncspec.impl.fiber needs the _fiber extension, which is built on x86-64 Linux only so far"
    ) from exc

STACK_MIN: int = lib.ASF_STACK_MIN
"""Smallest usable stack size in bytes."""
PAGE_SIZE: int = lib.asf_page_size()
ARCH: str = ffi.string(lib.asf_arch()).decode()
_WORD = 1 << (8 * ffi.sizeof("uintptr_t"))

__all__ = [
    "ARCH",
    "INSTALLED",
    "PAGE_SIZE",
    "STACK_MIN",
    "Api",
    "Fiber",
    "PinnedError",
    "SelfCheck",
    "Stack",
    "State",
    "Status",
    "api",
    "exit_address",
    "resume_error",
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


def resume_error(code: int, state: State | None = None) -> Exception:
    """The exception for a negative asf_fiber_resume result (also what C code
    that resumes fibers reports: a probe's Resume)."""
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
# Fibers
# ---------------------------------------------------------------------------


class PinnedError(ValueError):
    """A started fiber was asked to move: it is pinned."""


class SelfCheck(NamedTuple):
    """What `Fiber.self_check` found."""

    pointers: int  # self-pointers checked
    bad: int | None  # the first one outside the fiber's own stack
    ok: bool


def _finalize_fiber(c, h: _StackHandle, keep: list) -> None:
    # `keep` (the fiber's _refs) is only held: what the body uses lives until here.
    if h._lib.asf_fiber_destroy(c) == 0 and h.free_when_idle:
        h.free()


class Fiber:
    """A fiber running the C function `entry(arg, value)` on `stack`.

    `entry` and `arg` are addresses: ints, or cffi pointers of any cffi
    module.  The body runs on the fiber's stack and must be C (Python code
    never runs inside a fiber); `keep` holds objects the body uses (its
    argument's memory, say) alive as long as the fiber."""

    __slots__ = ("__weakref__", "_c", "_finalizer", "_out", "_refs", "_resume_c", "_stack")
    _ffi = ffi
    _lib = lib

    def __init__(self, stack: Stack, entry, arg=0, *, keep: Iterable = ()) -> None:
        self._setup(stack)
        self._start(entry, arg, keep)

    def _setup(self, stack: Stack) -> None:
        """The first half of __init__: the C struct, before the body is known
        (a subclass may build the body's argument around `address`)."""
        self._check_stack(stack)
        ffi = self._ffi
        self._finalizer = None
        self._refs: list = []  # kept alive as long as the fiber
        self._stack = stack
        self._c = ffi.new("struct asf_fiber *")
        # The resume hot path: its out-parameter and C function, looked up once.
        self._out = ffi.new("uintptr_t *")
        self._resume_c = self._lib.asf_fiber_resume

    def _start(self, entry, arg, keep: Iterable = ()) -> None:
        """The second half: asf_fiber_init with the body."""
        ffi = self._ffi
        self._refs.extend(keep)
        r = self._lib.asf_fiber_init(self._c, self._stack._h.c, ffi.cast("asf_entry_fn", entry), ffi.cast("void *", arg))
        if r == -_errno.EBUSY:
            raise ValueError("stack is already in use by another fiber")
        if r == -_errno.EBADF:
            raise ValueError("stack has been freed")
        if r == -_errno.EINVAL:
            raise ValueError("a fiber needs an entry function (the address given is NULL)")
        if r < 0:
            raise OSError(-r, f"fiber: {os.strerror(-r)}")
        self._finalizer = weakref.finalize(self, _finalize_fiber, self._c, self._stack._h, self._refs)

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
            raise resume_error(r, self.state)
        return _STATUS[r], out[0]

    # -- inspection ------------------------------------------------------------

    @property
    def state(self) -> State:
        return State(self._lib.asf_fiber_state(self._c))

    @property
    def stack(self) -> Stack:
        return self._stack

    @property
    def address(self) -> int:
        """The address of the fiber's C struct, for C code that resumes it."""
        return int(self._ffi.cast("uintptr_t", self._c))

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
        self._finalizer = weakref.finalize(self, _finalize_fiber, self._c, stack._h, self._refs)

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
# Other builds
# ---------------------------------------------------------------------------

# The names an Api shares with this package unchanged: nothing in them calls
# into the C layer.
_SHARED = ("PinnedError", "SelfCheck", "State", "Status")


class Api:
    """The fiber API over one build of the C layer: Stack and Fiber bound to
    it, its functions and constants, under this package's names.  This
    package's own names are those of the installed build's Api; `api(module)`
    makes one for another build."""

    def __init__(self, ffi, lib, stack_type: type, fiber_type: type) -> None:
        self.ffi, self.lib = ffi, lib
        self.Stack, self.Fiber = stack_type, fiber_type
        self.STACK_MIN = int(lib.ASF_STACK_MIN)
        self.PAGE_SIZE = int(lib.asf_page_size())
        self.ARCH = ffi.string(lib.asf_arch()).decode()
        for name in _SHARED:
            setattr(self, name, globals()[name])

    def exit_address(self) -> int:
        """The fake return address a fiber's entry function sees (unwinders stop there)."""
        return int(self.lib.asf_exit_address())

    def __repr__(self) -> str:
        return f"<fiber Api over {getattr(self.lib, '__name__', self.lib)!r}>"


def api(module) -> Api:
    """The fiber API over another build of the C layer: `module` is a cffi
    module with `ffi` and `lib` compiled from these sources (build.make)."""
    ffi_, lib_ = module.ffi, module.lib
    bound = {"_ffi": ffi_, "_lib": lib_, "__slots__": (), "__module__": __name__}
    handle = type("_StackHandle", (_StackHandle,), dict(bound))
    stack = type("Stack", (Stack,), dict(bound, _handle_type=handle, __doc__=Stack.__doc__))
    fib = type("Fiber", (Fiber,), dict(bound, __doc__=Fiber.__doc__))
    return Api(ffi_, lib_, stack, fib)


INSTALLED = Api(ffi, lib, Stack, Fiber)
"""The Api of the installed build: this package's own classes and functions."""
exit_address = INSTALLED.exit_address
