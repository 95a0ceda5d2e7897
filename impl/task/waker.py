"""Wakers: `Waker` owns one waker instance (Rust's Waker), `RawWaker` is the
unchecked (data, vtable) pair (Rust's RawWaker).  See the package doc."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

from ._task import lib
from .values import WakerError, WakerUseError

if TYPE_CHECKING:
    from .api import Api

# Waker object states.
_LIVE = 0  # owns an instance
_BORROWED = 1  # a poll's context waker, during the poll
_EXPIRED = 2  # a poll's context waker after the poll
_WOKEN = 3
_DROPPED = 4
_FORGOTTEN = 5
_INTO_RAW = 6

_GONE = {
    _EXPIRED: "was borrowed for a poll that has ended (clone() it during the poll to keep a waker)",
    _WOKEN: "was consumed by wake()",
    _DROPPED: "was dropped",
    _FORGOTTEN: "was forgotten",
    _INTO_RAW: "was turned into a RawWaker by into_raw()",
}


class Waker:
    """One waker instance (one reference to its task).  See the package doc."""

    __slots__ = ("__weakref__", "_epoch", "_raw", "_st", "_tid")
    _b: Api  # the build (set on the installed classes and on api()'s subclasses)
    _lib = lib

    def __init__(self) -> None:
        raise TypeError("wakers come from Task.waker(), Waker.clone(), a poll's context, or Waker.from_raw()")

    @classmethod
    def _make(cls, raw, tid: int, st: int, epoch: int | None = None) -> Waker:
        self = object.__new__(cls)
        self._raw = raw
        self._tid = tid
        self._st = st
        # The flush epoch at which the pointer was last known good: a
        # pointer carried over from before a flush is checked by id first.
        self._epoch = cls._b._epoch if epoch is None else epoch
        return self

    # -- checks ----------------------------------------------------------

    def _unusable(self, op: str) -> WakerUseError:
        return WakerUseError(f"{op} on a waker of task {self._tid} that {_GONE[self._st]}")

    def _own(self, op: str) -> None:
        st = self._st
        if st == _BORROWED:
            raise WakerUseError(
                f"{op} on the borrowed context waker of task {self._tid}: it is only lent for the poll "
                "(clone() it to get one you own)"
            )
        if st != _LIVE:
            raise self._unusable(op)

    def _memory(self, op: str) -> None:
        """After a flush, make sure the task's memory is still ours."""
        b = self._b
        if self._epoch != b._epoch:
            if b.lib.ast_task_ptr(self._tid) != self._raw.data:
                raise WakerError(
                    f"{op} on task {self._tid} after its last reference was dropped (its memory was released "
                    "by flush())",
                    op=op,
                    code="AST_ERR_FREED",
                    task_id=self._tid,
                )
            self._epoch = b._epoch

    # -- the vtable ------------------------------------------------------

    def clone(self) -> Waker:
        """A new instance of the same waker (vtable clone: +1 reference)."""
        if self._st > _BORROWED:
            raise self._unusable("clone")
        if self._epoch != self._b._epoch:
            self._memory("clone")
        out = self._b.ffi.new("struct ast_raw_waker *")
        rc = self._lib.ast_raw_clone(self._raw, out)
        if rc:
            raise self._b._error()
        return self._make(out, self._tid, _LIVE)

    def wake(self) -> None:
        """Wake the task and consume this instance (vtable wake)."""
        if self._st != _LIVE:
            self._own("wake")
        if self._epoch != self._b._epoch:
            self._st = _WOKEN
            self._memory("wake")
        self._st = _WOKEN
        rc = self._lib.ast_raw_wake(self._raw)
        if rc:
            raise self._b._error()

    def wake_by_ref(self) -> None:
        """Wake the task, keep this instance (vtable wake_by_ref)."""
        if self._st > _BORROWED:
            raise self._unusable("wake_by_ref")
        if self._epoch != self._b._epoch:
            self._memory("wake_by_ref")
        rc = self._lib.ast_raw_wake_by_ref(self._raw)
        if rc:
            raise self._b._error()

    def drop(self) -> None:
        """Release this instance (vtable drop: -1 reference)."""
        if self._st != _LIVE:
            self._own("drop")
        if self._epoch != self._b._epoch:
            self._st = _DROPPED
            self._memory("drop")
        self._st = _DROPPED
        rc = self._lib.ast_raw_drop(self._raw)
        if rc:
            raise self._b._error()

    # -- std's other methods ----------------------------------------------

    def will_wake(self, other: Waker) -> bool:
        """Whether both wake the same task: same data and vtable pointers.
        No vtable call."""
        if self._st > _BORROWED:
            raise self._unusable("will_wake")
        if not isinstance(other, Waker):
            raise TypeError(f"will_wake needs a Waker, not {type(other).__name__}")
        if other._st > _BORROWED:
            raise other._unusable("will_wake")
        a, b = self._raw, other._raw
        return a.data == b.data and a.vtable == b.vtable

    def clone_from(self, other: Waker) -> None:
        """std's Waker::clone_from: become a clone of `other`, unless this
        waker will_wake it already (then no call at all).  Otherwise other
        is cloned, then this instance is dropped."""
        self._own("clone_from")
        if self.will_wake(other):
            return
        fresh = other.clone()
        old = self._raw
        self._raw, self._tid, self._epoch = fresh._raw, fresh._tid, fresh._epoch
        fresh._st = _INTO_RAW  # its instance now belongs to self
        if self._lib.ast_raw_drop(old):
            raise self._b._error()

    def forget(self) -> None:
        """Consume this instance without any call (mem::forget): its
        reference is never released.  Not counted as a leak."""
        self._own("forget")
        self._st = _FORGOTTEN

    def into_raw(self) -> RawWaker:
        """Give up ownership: the RawWaker now stands for the instance."""
        self._own("into_raw")
        self._st = _INTO_RAW
        return self._b.RawWaker._make(self._raw.data, self._raw.vtable, self._tid, self._epoch)

    @classmethod
    def from_raw(cls, raw: RawWaker) -> Waker:
        """Take ownership of the instance a RawWaker stands for (Rust's
        unsafe Waker::from_raw: the caller promises there is one)."""
        if not isinstance(raw, cls._b.RawWaker):
            raise TypeError(f"from_raw needs a RawWaker of the same build, not {type(raw).__name__}")
        out = cls._b.ffi.new("struct ast_raw_waker *", (raw._raw.data, raw._raw.vtable))
        return cls._make(out, raw.task_id, _LIVE, raw._epoch)

    # -- inspection ------------------------------------------------------

    @property
    def raw(self) -> RawWaker:
        """The (data, vtable) pair, without taking ownership (Rust's
        Waker::data() and vtable()).  Calls through it are unchecked."""
        if self._st > _BORROWED:
            raise self._unusable("raw")
        return self._b.RawWaker._make(self._raw.data, self._raw.vtable, self._tid, self._epoch)

    @property
    def task_id(self) -> int:
        return self._tid

    @property
    def borrowed(self) -> bool:
        return self._st in (_BORROWED, _EXPIRED)

    @property
    def consumed(self) -> str | None:
        """None while usable, else why not ("was dropped", ...)."""
        return _GONE.get(self._st)

    def __del__(self):
        if self._st == _LIVE:
            try:
                self._b._leaks.append(self._tid)
                warnings.warn(
                    f"a waker of task {self._tid} was garbage-collected without drop(), wake() or forget(): "
                    "its reference leaks",
                    ResourceWarning,
                    stacklevel=2,
                )
            except Exception:  # interpreter shutdown
                pass

    def __repr__(self) -> str:
        gone = _GONE.get(self._st)
        kind = "borrowed " if self._st == _BORROWED else ""
        return f"<{kind}Waker task={self._tid}{' ' + gone if gone else ''}>"


class RawWaker:
    """Rust's RawWaker: a (data, vtable) pair.  Its methods call the vtable
    directly, with no ownership bookkeeping; the C layer still refuses calls
    on freed tasks (WakerError)."""

    __slots__ = ("_epoch", "_raw", "task_id")
    _b: Api
    _lib = lib

    def __init__(self) -> None:
        raise TypeError("RawWakers come from Waker.raw, Waker.into_raw() and RawWaker.clone()")

    @classmethod
    def _make(cls, data, vtable, tid: int, epoch: int | None = None) -> RawWaker:
        self = object.__new__(cls)
        self._raw = cls._b.ffi.new("struct ast_raw_waker *", (data, vtable))
        self.task_id = tid
        self._epoch = cls._b._epoch if epoch is None else epoch
        return self

    def _memory(self, op: str) -> None:
        b = self._b
        if self._epoch != b._epoch:
            if b.lib.ast_task_ptr(self.task_id) != self._raw.data:
                raise WakerError(
                    f"{op} on task {self.task_id} after its last reference was dropped (its memory was released "
                    "by flush())",
                    op=op,
                    code="AST_ERR_FREED",
                    task_id=self.task_id,
                )
            self._epoch = b._epoch

    def clone(self) -> RawWaker:
        self._memory("clone")
        out = self._b.ffi.new("struct ast_raw_waker *")
        if self._lib.ast_raw_clone(self._raw, out):
            raise self._b._error()
        return self._make(out.data, out.vtable, self.task_id)

    def wake(self) -> None:
        self._memory("wake")
        if self._lib.ast_raw_wake(self._raw):
            raise self._b._error()

    def wake_by_ref(self) -> None:
        self._memory("wake_by_ref")
        if self._lib.ast_raw_wake_by_ref(self._raw):
            raise self._b._error()

    def drop(self) -> None:
        self._memory("drop")
        if self._lib.ast_raw_drop(self._raw):
            raise self._b._error()

    def will_wake(self, other: RawWaker) -> bool:
        return self._raw.data == other._raw.data and self._raw.vtable == other._raw.vtable

    @property
    def data(self) -> int:
        return int(self._b.ffi.cast("uintptr_t", self._raw.data))

    @property
    def vtable(self) -> int:
        return int(self._b.ffi.cast("uintptr_t", self._raw.vtable))

    def __eq__(self, other):
        if not isinstance(other, RawWaker):
            return NotImplemented
        return self.will_wake(other)

    def __hash__(self):
        return hash((self.data, self.vtable))

    def __repr__(self) -> str:
        return f"<RawWaker task={self.task_id} data={self.data:#x}>"
