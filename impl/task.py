"""Tasks and wakers: the reference executor's C layer, step by step.

The C layer (impl/task.c, compiled into asyncspec.impl._task) owns the task
headers (an atomic state word with RUNNING / NOTIFIED / COMPLETE flags and a
reference count, per-task vtable call counters), the one waker vtable
(clone / wake / wake_by_ref / drop, shaped like Rust's RawWakerVTable), the
run queue and AtomicWaker.  This module is a Python API over it, made so a
driver (a conformance target, a test) can take every step itself and look
at the result; asyncspec.impl.executor builds a real executor on the same
pieces.

    with RunQueue() as q:
        t = q.spawn()                     # queued: JoinHandle + owned set + queue refs
        w = t.waker()                     # a waker instance: one more reference
        q.poll_next(lambda task, cx: (w.wake_by_ref(), PENDING)[1])
        q.queued()                        # [t.id]: woken while running -> polled again
        q.poll_next(lambda task, cx: READY)
        w.drop(); t.drop_join_handle()
        t.freed                           # True: that was the last reference

References (the count in `Task.state().refs`): each live waker instance
holds one, the JoinHandle one until `drop_join_handle()`, the executor's
owned set one until the task completes (or is cancelled by `close()`), the
run queue one while the task is queued.  At zero the task is freed.

Wakers
------
A `Waker` owns one waker instance (one reference), like Rust's `Waker`:
`clone()` makes another (vtable clone), `wake()` wakes and consumes it
(vtable wake: no drop call is counted), `wake_by_ref()` wakes and keeps it,
`drop()` consumes it (vtable drop), `forget()` consumes it without any call
(`mem::forget`: its reference leaks on purpose).  `will_wake(other)` and
`clone_from(other)` follow std: the first compares the data and vtable
pointers and makes no call, the second clones only when `will_wake` is
false (dropping the instance it replaces).  Using a consumed Waker raises
`WakerUseError`.

Python's garbage collector never drops an instance: a Waker collected while
it still owns one is a *leak*, counted (`leaked_wakers()`) and warned about
(ResourceWarning), and its reference stays taken, exactly as a forgotten
Rust waker.  Tests assert `leaked_wakers() == 0`.

The waker a poll hands to `step_fn` (the context's waker) is *borrowed*: no
reference, no call; it can be cloned, woken by reference and compared,
not woken by value or dropped, and it expires when the poll ends (using it
later raises `WakerUseError`: clone it to keep it).

`RawWaker` is the unchecked layer, Rust's `RawWaker`: a (data, vtable)
pair whose methods call the vtable directly without any ownership
bookkeeping.  `Waker.raw` peeks at an instance's pair, `Waker.into_raw()`
and `Waker.from_raw()` move ownership across.  Through it a driver can do
what safe code cannot (wake after the last drop, drop twice): the C layer
detects a call on a freed task and `WakerError` reports it:

    WakerError: wake on task 7 after its last reference was dropped

Freed tasks, quarantine
-----------------------
In the default (checked) build a freed task's memory is poisoned and kept
in a quarantine, never reused, until `flush()`; its id and call counters
stay readable (`Task.calls()`, `Task.freed`).  `live_tasks()` counts live
tasks, `quarantined()` the blocks in quarantine.  After a flush the memory
is gone: wakers and handles then check their task by id before calling into
C, so a stale one still raises WakerError instead of touching freed memory.

Polling
-------
`RunQueue.poll_next(step_fn)` pops the head task and polls it:
`step_fn(task, cx_waker)` returns READY or PENDING (and may wake, clone,
... meanwhile).  READY completes the task (the owned set's and the queue's
references are released); PENDING ends the poll, and a wake that came
during it puts the task back on the tail: it is polled exactly once more.
An exception from step_fn completes the task (like a panic in a Rust
poll) and propagates.

AtomicWaker
-----------
futures-rs's AtomicWaker over the same wakers: `register`, `take`, `wake`,
and the same algorithm split into its atomic steps (`register_begin`,
`register_store`, `register_end`, `take_begin`, `take_end`) for a driver
that interleaves a register and a wake step by step.

Other builds of the C layer
---------------------------
`api(module)` returns an `Api`: this module's names over another build,
such as the deliberately broken ones `task_build.build_variant` compiles
(AST_BROKEN_LOST_WAKE, ..., see the head of task.c).  Objects of different
builds do not mix.
"""

from __future__ import annotations

import enum
import time
import warnings
from collections import deque
from collections.abc import Callable
from typing import NamedTuple

from asyncspec.impl._task import ffi, lib

__all__ = [
    "INSTALLED",
    "PENDING",
    "READY",
    "Api",
    "AtomicWaker",
    "Calls",
    "Outcome",
    "Polled",
    "RawWaker",
    "RunQueue",
    "Step",
    "StressResult",
    "Task",
    "TaskState",
    "TaskStatus",
    "WakeBench",
    "Waker",
    "WakerError",
    "WakerUseError",
    "api",
    "bench_wakes",
    "bench_wakes_native",
    "flush",
    "leaked_wakers",
    "live_tasks",
    "quarantined",
    "stress_atomic_waker",
    "stress_remote_wakes",
    "take_leaks",
    "task_status",
]


# ---------------------------------------------------------------------------
# Values
# ---------------------------------------------------------------------------


class Step(enum.Enum):
    """What one poll of a task returned."""

    READY = "ready"
    PENDING = "pending"


READY = Step.READY
PENDING = Step.PENDING


class Outcome(enum.Enum):
    """How `RunQueue.poll_next` ended for the task it popped."""

    COMPLETE = "complete"  # READY: the task finished
    IDLE = "idle"  # PENDING, no wake during the poll: waits for one
    REQUEUED = "requeued"  # PENDING, woken during the poll: back on the tail
    SKIPPED = "skipped"  # popped while already complete: not polled


class Polled(NamedTuple):
    task: Task
    outcome: Outcome


class TaskState(NamedTuple):
    """The flags and reference count of a live task's state word."""

    running: bool
    notified: bool
    complete: bool
    refs: int


class Calls(NamedTuple):
    """How many times each vtable entry was called for a task."""

    clone: int
    wake: int
    wake_by_ref: int
    drop: int


class TaskStatus(enum.IntEnum):
    UNKNOWN = lib.AST_STATUS_UNKNOWN  # no task ever had that id
    LIVE = lib.AST_STATUS_LIVE
    QUARANTINED = lib.AST_STATUS_QUARANTINED  # freed, memory kept (checked build)
    RELEASED = lib.AST_STATUS_RELEASED  # freed, memory returned by flush()


class StressResult(NamedTuple):
    iterations: int
    saw_flag: int  # rounds where the consumer saw the flag right after registering
    woken: int  # rounds where it did not, and the wake reached the task
    lost: int  # rounds where it did not, and no wake came (must be 0)
    polls: int
    refs_left: int  # references left beyond the handles' (must be 0)
    calls: Calls
    seconds: float
    begin_saw_waking: int  # AtomicWaker stress: register_begin saw WAKING
    end_woke: int  # AtomicWaker stress: register_end found WAKING and woke


class WakeBench(NamedTuple):
    """ns per wake_by_ref + poll cycle, driven from Python the same way."""

    c: float  # through the C wakers and run queue (this module)
    python: float  # through a pure-Python waker with the same state logic


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------


class WakerError(RuntimeError):
    """The C layer refused a call: on a freed task (a use after free: wake
    after the last drop, drop twice, clone of a dropped waker), on a pointer
    that is not a task, or in a state that does not allow it.  `op` names the
    operation, `code` the C error (an AST_ERR_* name), `task_id` the task."""

    def __init__(self, message: str, *, op: str, code: str, task_id: int | None):
        super().__init__(message)
        self.op = op
        self.code = code
        self.task_id = task_id


class WakerUseError(ValueError):
    """A Waker object used the wrong way in Python: after it was consumed
    (woken, dropped, forgotten, turned into a RawWaker), a borrowed context
    waker after its poll or consumed by value."""


_OP_NAMES = {
    lib.AST_OP_CLONE: "clone",
    lib.AST_OP_WAKE: "wake",
    lib.AST_OP_WAKE_BY_REF: "wake_by_ref",
    lib.AST_OP_DROP: "drop",
    lib.AST_OP_NEW_WAKER: "new waker",
    lib.AST_OP_POLL: "poll",
    lib.AST_OP_JOIN_DROP: "drop of the JoinHandle",
    lib.AST_OP_CANCEL: "cancel",
    lib.AST_OP_SPAWN: "spawn",
    lib.AST_OP_AW_REGISTER: "AtomicWaker register",
    lib.AST_OP_AW_TAKE: "AtomicWaker take",
    lib.AST_OP_READ: "read",
}
_ERR_NAMES = {
    lib.AST_ERR_FREED: "AST_ERR_FREED",
    lib.AST_ERR_NOT_TASK: "AST_ERR_NOT_TASK",
    lib.AST_ERR_REFCOUNT: "AST_ERR_REFCOUNT",
    lib.AST_ERR_STATE: "AST_ERR_STATE",
    lib.AST_ERR_NOMEM: "AST_ERR_NOMEM",
    lib.AST_ERR_INVAL: "AST_ERR_INVAL",
    lib.AST_ERR_CLOSED: "AST_ERR_CLOSED",
    lib.AST_ERR_UNKNOWN: "AST_ERR_UNKNOWN",
}
_STATE_REASONS = {
    lib.AST_OP_POLL: "it is not in a state to be polled (already running, or a poll ended that never began)",
    lib.AST_OP_JOIN_DROP: "the JoinHandle was already dropped",
    lib.AST_OP_CANCEL: "it is running",
    lib.AST_OP_AW_REGISTER: "register_store/register_end without the registering lock (register_begin must "
    "return WAITING first)",
}


def _message(op: int, code: int, task: int, data: int) -> str:
    name = _OP_NAMES.get(op, f"operation {op}")
    if code == lib.AST_ERR_FREED:
        return f"{name} on task {task} after its last reference was dropped"
    if code == lib.AST_ERR_NOT_TASK:
        return f"{name} on {data:#x}, which is not a task (a bad waker data pointer)"
    if code == lib.AST_ERR_REFCOUNT:
        return f"{name} on task {task}: its reference count would go below zero"
    if code == lib.AST_ERR_STATE:
        if op in (lib.AST_OP_AW_REGISTER, lib.AST_OP_AW_TAKE):
            return f"{name}: {_STATE_REASONS[lib.AST_OP_AW_REGISTER]}"
        return f"{name} of task {task}: {_STATE_REASONS.get(op, 'not allowed in its state')}"
    if code == lib.AST_ERR_NOMEM:
        return f"{name}: out of memory"
    if code == lib.AST_ERR_INVAL:
        return f"{name}: invalid argument (a NULL pointer or an empty waker)"
    if code == lib.AST_ERR_CLOSED:
        return f"{name}: the run queue is closed"
    if code == lib.AST_ERR_UNKNOWN:
        return f"{name}: no task was ever issued with id {task}"
    return f"{name}: error {code}"


# ---------------------------------------------------------------------------
# Wakers
# ---------------------------------------------------------------------------

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
    """One waker instance (one reference to its task).  See the module doc."""

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


# ---------------------------------------------------------------------------
# Tasks
# ---------------------------------------------------------------------------


class Task:
    """A handle on a task, by id: reading it is safe whatever became of the
    task (freed, flushed)."""

    __slots__ = ("__weakref__", "id")
    _b: Api

    def __init__(self) -> None:
        raise TypeError("tasks come from RunQueue.spawn()")

    @classmethod
    def _make(cls, tid: int) -> Task:
        self = object.__new__(cls)
        self.id = tid
        return self

    def _info(self):
        info = self._b.ffi.new("struct ast_task_info *")
        self._b.lib.ast_task_info(self.id, info)
        return info

    def _gone(self, op: str, status: int) -> WakerError:
        if status == lib.AST_STATUS_UNKNOWN:
            return WakerError(f"{op}: no task was ever issued with id {self.id}", op=op, code="AST_ERR_UNKNOWN",
                              task_id=self.id)  # fmt: skip
        how = "" if status == lib.AST_STATUS_QUARANTINED else " (its memory was released by flush())"
        return WakerError(f"{op} on task {self.id} after its last reference was dropped{how}", op=op,
                          code="AST_ERR_FREED", task_id=self.id)  # fmt: skip

    def _ptr(self, op: str):
        """The task's block, if it is live (else WakerError)."""
        p = self._b.lib.ast_task_ptr(self.id)
        if p == self._b.ffi.NULL:
            raise self._gone(op, self._b.lib.ast_task_info(self.id, self._b.ffi.new("struct ast_task_info *")))
        return self._b.ffi.cast("struct ast_task *", p)

    def state(self) -> TaskState:
        """The state word of a live task (WakerError once it is freed)."""
        info = self._info()
        if info.status != lib.AST_STATUS_LIVE:
            raise self._gone("state", info.status)
        return _state(info.state)

    def calls(self) -> Calls:
        """The vtable call counters (also readable while the freed task is
        in quarantine, not after a flush)."""
        info = self._info()
        if info.status not in (lib.AST_STATUS_LIVE, lib.AST_STATUS_QUARANTINED):
            raise self._gone("calls", info.status)
        c = info.calls
        return Calls(int(c[0]), int(c[1]), int(c[2]), int(c[3]))

    @property
    def status(self) -> TaskStatus:
        return TaskStatus(self._b.lib.ast_task_info(self.id, self._b.ffi.new("struct ast_task_info *")))

    @property
    def freed(self) -> bool:
        """Whether the task's last reference is gone (it is quarantined, or
        released by a flush)."""
        return self.status in (TaskStatus.QUARANTINED, TaskStatus.RELEASED)

    @property
    def cancelled(self) -> bool:
        info = self._info()
        return info.status == lib.AST_STATUS_LIVE and bool(info.state & lib.AST_CANCELLED)

    @property
    def holds_join_handle(self) -> bool:
        info = self._info()
        return info.status == lib.AST_STATUS_LIVE and bool(info.holds & lib.AST_HOLD_JOIN)

    @property
    def holds_owned(self) -> bool:
        """Whether the executor's owned set still holds its reference."""
        info = self._info()
        return info.status == lib.AST_STATUS_LIVE and bool(info.holds & lib.AST_HOLD_OWNED)

    def waker(self) -> Waker:
        """A new waker instance for this task: +1 reference, no vtable call
        (what a runtime does when it makes the task's first waker)."""
        b = self._b
        out = b.ffi.new("struct ast_raw_waker *")
        if b.lib.ast_task_waker_by_id(self.id, out):
            raise b._error()
        return b.Waker._make(out, self.id, _LIVE)

    def drop_join_handle(self) -> None:
        """Release the JoinHandle's reference (once)."""
        p = self._ptr("drop of the JoinHandle")
        if self._b.lib.ast_task_release_join(p):
            raise self._b._error()

    def __eq__(self, other):
        if not isinstance(other, Task):
            return NotImplemented
        return self.id == other.id and self._b is other._b

    def __hash__(self):
        return hash(self.id)

    def __repr__(self) -> str:
        info = self._info()
        if info.status == lib.AST_STATUS_LIVE:
            s = _state(info.state)
            flags = [n for n, v in (("RUNNING", s.running), ("NOTIFIED", s.notified), ("COMPLETE", s.complete)) if v]
            return f"<Task {self.id} {'|'.join(flags) or 'idle'} refs={s.refs}>"
        return f"<Task {self.id} {TaskStatus(info.status).name.lower()}>"


def _state(word: int) -> TaskState:
    return TaskState(
        bool(word & lib.AST_RUNNING),
        bool(word & lib.AST_NOTIFIED),
        bool(word & lib.AST_COMPLETE),
        int(word >> lib.AST_REF_SHIFT),
    )


_NEXT_EMPTY = lib.AST_NEXT_EMPTY
_BEGIN_COMPLETE = lib.AST_BEGIN_COMPLETE
_OUTCOMES = {
    lib.AST_END_COMPLETE: Outcome.COMPLETE,
    lib.AST_END_IDLE: Outcome.IDLE,
    lib.AST_END_REQUEUED: Outcome.REQUEUED,
}


class RunQueue:
    """An executor's core, step by step: spawns tasks into the C run queue
    and polls them one at a time with `poll_next(step_fn)`.

    `close()` cancels the tasks that have not completed (their owned-set
    references are released; wakes do nothing from then on) and releases
    the references of queued entries.  JoinHandle references stay with
    the caller (`Task.drop_join_handle()`)."""

    __slots__ = ("__weakref__", "_closed", "_cx_raw", "_next", "_polling", "_q", "_tasks")
    _b: Api

    def __init__(self) -> None:
        q = self._b.lib.ast_queue_new()
        if q == self._b.ffi.NULL:
            raise MemoryError("RunQueue: cannot allocate the run queue")
        # The owner's reference on the C queue, released with this object
        # (after close() the queue only answers live_tasks()).
        self._q = self._b.ffi.gc(q, self._b.lib.ast_queue_release)
        self._tasks: dict[int, Task] = {}
        self._polling = False
        self._closed = False
        self._next = self._b.ffi.new("struct ast_next *")
        # The borrowed context waker's (data, vtable): one struct serves
        # every poll, since a context waker expires with its poll.
        self._cx_raw = self._b.ffi.new("struct ast_raw_waker *", (self._b.ffi.NULL, self._b.vtable))

    def _check_open(self, op: str) -> None:
        if self._closed:
            raise ValueError(f"{op}: the RunQueue is closed")

    def spawn(self, schedule: bool = True) -> Task:
        """A new task holding the JoinHandle's and the owned set's
        references; with `schedule` (a spawn) it is also queued (NOTIFIED,
        plus the queue's reference), else it stays idle until woken."""
        self._check_open("spawn")
        b = self._b
        out = b.ffi.new("struct ast_task **")
        if b.lib.ast_task_new(self._q, 1 if schedule else 0, out):
            raise b._error()
        task = b.Task._make(int(out[0].id))
        self._tasks[task.id] = task
        return task

    def poll_next(self, step_fn: Callable[[Task, Waker], Step]) -> Polled | None:
        """Pop the head task and poll it: `step_fn(task, cx_waker)` runs the
        step with the task's waker borrowed and returns READY or PENDING.
        None if the queue is empty."""
        self._check_open("poll_next")
        if self._polling:
            raise RuntimeError("poll_next called from inside a poll (step_fn): a task cannot poll another")
        b = self._b
        lib_ = b.lib
        nxt = self._next
        rc = lib_.ast_queue_next(self._q, nxt)
        if rc == _NEXT_EMPTY:
            return None
        if rc < 0:
            raise b._error()
        tid = nxt.id
        task = self._tasks.get(tid) or b.Task._make(tid)
        if rc == _BEGIN_COMPLETE:
            return Polled(task, Outcome.SKIPPED)
        p = nxt.task
        raw = self._cx_raw
        raw.data = p
        cx = b.Waker._make(raw, tid, _BORROWED)
        self._polling = True
        ready = True
        try:
            result = step_fn(task, cx)
            if result is PENDING:
                ready = False
            elif result is not READY:
                raise TypeError(f"step_fn must return READY or PENDING, not {result!r} (task {tid} completes)")
        finally:
            cx._st = _EXPIRED
            self._polling = False
            rc = lib_.ast_task_poll_end(p, 1 if ready else 0)
            if ready:
                self._tasks.pop(tid, None)
        if rc < 0:
            raise b._error()
        return Polled(task, _OUTCOMES[rc])

    def queued(self) -> list[int]:
        """The ids of the queued entries, head first."""
        self._check_open("queued")
        b = self._b
        n = b.lib.ast_queue_len(self._q)
        while True:
            buf = b.ffi.new("uint64_t[]", max(n, 1))
            m = b.lib.ast_queue_ids(self._q, buf, n)
            if m <= n:
                return [int(buf[i]) for i in range(m)]
            n = m  # it grew meanwhile (a wake from another thread)

    def __len__(self) -> int:
        return 0 if self._closed else int(self._b.lib.ast_queue_len(self._q))

    def live_tasks(self) -> int:
        """Tasks created on this queue and not yet freed."""
        return int(self._b.lib.ast_queue_tasks(self._q))

    def tasks(self) -> list[Task]:
        """Handles of the tasks spawned here that have not completed."""
        return list(self._tasks.values())

    def close(self) -> None:
        """Cancel the tasks not complete, release the queued entries, close
        the queue (idempotent).  Not from inside a poll."""
        if self._closed:
            return
        if self._polling:
            raise RuntimeError("cannot close a RunQueue from inside a poll")
        b = self._b
        info = b.ffi.new("struct ast_task_info *")
        for task in list(self._tasks.values()):
            # Only live tasks: a broken build may have freed one early.
            if b.lib.ast_task_info(task.id, info) == lib.AST_STATUS_LIVE:
                b.lib.ast_task_cancel(b.ffi.cast("struct ast_task *", b.lib.ast_task_ptr(task.id)))
        self._tasks.clear()
        self._closed = True
        b.lib.ast_queue_close(self._q)
        # The C queue lives on while tasks (held by JoinHandles or leaked
        # wakers) still point at it; it frees itself with the last one.

    def __enter__(self) -> RunQueue:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        if not getattr(self, "_closed", True):
            try:
                warnings.warn(f"unclosed {self!r}", ResourceWarning, stacklevel=2)
                self.close()
            except Exception:
                pass

    def __repr__(self) -> str:
        return "<RunQueue closed>" if self._closed else f"<RunQueue queued={self.queued()}>"


# ---------------------------------------------------------------------------
# AtomicWaker
# ---------------------------------------------------------------------------


class AtomicWaker:
    """futures-rs's AtomicWaker: holds at most one waker instance (a clone
    of the registered one).  `close()` drops it (a collected AtomicWaker
    that still holds one counts as a leaked waker, like a Waker)."""

    WAITING = lib.AST_AW_WAITING
    REGISTERING = lib.AST_AW_REGISTERING
    WAKING = lib.AST_AW_WAKING

    __slots__ = ("__weakref__", "_aw", "_closed")
    _b: Api

    def __init__(self) -> None:
        self._aw = self._b.ffi.new("struct ast_atomic_waker *")  # zeroed: WAITING, empty
        self._closed = False

    def _arg(self, waker: Waker, op: str):
        if self._closed:
            raise ValueError(f"{op}: the AtomicWaker is closed")
        if not isinstance(waker, self._b.Waker):
            raise TypeError(f"{op} needs a Waker of the same build, not {type(waker).__name__}")
        if waker._st > _BORROWED:
            raise waker._unusable(op)
        if waker._epoch != self._b._epoch:
            waker._memory(op)
        return waker._raw

    def _check(self, rc: int) -> int:
        if rc < 0:
            raise self._b._error()
        return rc

    def _taken(self, out) -> Waker:
        tid = int(self._b.lib.ast_task_id(self._b.ffi.cast("struct ast_task *", out.data)))
        return self._b.Waker._make(out, tid, _LIVE)

    # -- whole operations --------------------------------------------------

    def register(self, waker: Waker) -> None:
        """Store a clone of `waker` (borrowed) for the next wake."""
        raw = self._arg(waker, "register")
        self._check(self._b.lib.ast_aw_register(self._aw, raw))

    def take(self) -> Waker | None:
        """Take the stored waker (now owned by the caller), if any."""
        if self._closed:
            raise ValueError("take: the AtomicWaker is closed")
        out = self._b.ffi.new("struct ast_raw_waker *")
        if self._check(self._b.lib.ast_aw_take(self._aw, out)):
            return self._taken(out)
        return None

    def wake(self) -> bool:
        """take, then wake the taken waker.  Whether one was woken."""
        if self._closed:
            raise ValueError("wake: the AtomicWaker is closed")
        return bool(self._check(self._b.lib.ast_aw_wake(self._aw)))

    # -- the steps ---------------------------------------------------------

    def register_begin(self, waker: Waker) -> int:
        """CAS WAITING -> REGISTERING: returns the state seen (WAITING: go on
        with register_store and register_end; WAKING: `waker` was woken by
        reference, the register is over; REGISTERING...: over)."""
        raw = self._arg(waker, "register_begin")
        return self._check(self._b.lib.ast_aw_register_begin(self._aw, raw))

    def register_store(self, waker: Waker) -> bool:
        """Store a clone of `waker`, dropping the old one (True), or keep the
        stored one when it will_wake `waker` (False)."""
        raw = self._arg(waker, "register_store")
        return bool(self._check(self._b.lib.ast_aw_register_store(self._aw, raw)))

    def register_end(self) -> bool:
        """CAS REGISTERING -> WAITING; True if a wake came in meanwhile and
        the stored waker was taken and woken here."""
        if self._closed:
            raise ValueError("register_end: the AtomicWaker is closed")
        return bool(self._check(self._b.lib.ast_aw_register_end(self._aw)))

    def take_begin(self) -> int:
        """fetch_or WAKING: returns the previous state, for take_end."""
        if self._closed:
            raise ValueError("take_begin: the AtomicWaker is closed")
        return self._check(self._b.lib.ast_aw_take_begin(self._aw))

    def take_end(self, prev: int) -> Waker | None:
        """If `prev` was WAITING: take the stored waker and clear WAKING."""
        if self._closed:
            raise ValueError("take_end: the AtomicWaker is closed")
        out = self._b.ffi.new("struct ast_raw_waker *")
        if self._check(self._b.lib.ast_aw_take_end(self._aw, int(prev), out)):
            return self._taken(out)
        return None

    # -- inspection and lifetime -------------------------------------------

    @property
    def state(self) -> int:
        return int(self._b.lib.ast_aw_state(self._aw))

    @property
    def stored_task_id(self) -> int | None:
        """The task of the stored waker, or None."""
        w = self._b.lib.ast_aw_peek(self._aw)
        if w.vtable == self._b.ffi.NULL:
            return None
        return int(self._b.lib.ast_task_id(self._b.ffi.cast("struct ast_task *", w.data)))

    def close(self) -> bool:
        """Drop the stored waker, if any (True if there was one).  Idempotent."""
        if self._closed:
            return False
        self._closed = True
        return bool(self._check(self._b.lib.ast_aw_drop(self._aw)))

    def __enter__(self) -> AtomicWaker:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        if not getattr(self, "_closed", True):
            try:
                tid = self.stored_task_id
                if tid is not None:
                    self._b._leaks.append(tid)
                    warnings.warn(f"an AtomicWaker holding a waker of task {tid} was garbage-collected "
                                  "without close(): the waker's reference leaks", ResourceWarning, stacklevel=2)  # fmt: skip
            except Exception:
                pass

    def __repr__(self) -> str:
        names = {0: "WAITING", 1: "REGISTERING", 2: "WAKING", 3: "REGISTERING|WAKING"}
        return f"<AtomicWaker {names.get(self.state, self.state)} stored={self.stored_task_id}>"


# ---------------------------------------------------------------------------
# The pure-Python baseline for bench_wakes: the same state logic in Python.
# ---------------------------------------------------------------------------

_PY_RUNNING, _PY_NOTIFIED, _PY_COMPLETE, _PY_REF = 1, 2, 4, 64


class _PyTask:
    __slots__ = ("calls", "queue", "state")

    def __init__(self, queue):
        self.state = 2 * _PY_REF
        self.calls = [0, 0, 0, 0]
        self.queue = queue


def _py_notify(t: _PyTask) -> None:
    s = t.state
    if s & _PY_COMPLETE:
        return
    if s & _PY_RUNNING:
        t.state = s | _PY_NOTIFIED
    elif not s & _PY_NOTIFIED:
        t.state = (s | _PY_NOTIFIED) + _PY_REF
        t.queue.append(t)


class _PyWaker:
    __slots__ = ("task",)

    def __init__(self, task):
        self.task = task

    def wake_by_ref(self):
        t = self.task
        t.calls[2] += 1
        _py_notify(t)


class _PyQueue:
    __slots__ = ("q",)

    def __init__(self):
        self.q = deque()

    def poll_next(self, step_fn):
        if not self.q:
            return None
        t = self.q.popleft()
        t.state = (t.state & ~_PY_NOTIFIED) | _PY_RUNNING
        ready = step_fn(t, _PyWaker(t)) is READY
        s = t.state & ~_PY_RUNNING
        if ready:
            t.state = (s | _PY_COMPLETE) - 2 * _PY_REF
        elif s & _PY_NOTIFIED:
            t.state = s
            self.q.append(t)
        else:
            t.state = s - _PY_REF
        return t


def _pending(task, cx):
    return PENDING


# ---------------------------------------------------------------------------
# The API over one build
# ---------------------------------------------------------------------------

# The names an Api shares with this module unchanged (nothing in them calls C).
_SHARED = (
    "Calls", "Outcome", "PENDING", "Polled", "READY", "Step", "StressResult", "TaskState", "TaskStatus",
    "WakeBench", "WakerError", "WakerUseError",
)  # fmt: skip
_CLASSES = ("Waker", "RawWaker", "Task", "RunQueue", "AtomicWaker")


class Api:
    """The task API over one build of the C layer: Waker, RawWaker, Task,
    RunQueue and AtomicWaker bound to it, its functions (live_tasks,
    flush, ...), and the shared values, under this module's names.  This
    module's own names are those of the installed build's Api; `api(module)`
    makes one for another build."""

    def __init__(self, ffi_, lib_, *, classes: dict | None = None) -> None:
        self.ffi, self.lib = ffi_, lib_
        self.vtable = lib_.ast_vtable()
        self._epoch = 0  # bumped by flush(): pointers are checked by id after one
        self._leaks: list[int] = []  # task ids of wakers collected while live
        g = globals()
        for name in _SHARED:
            setattr(self, name, g[name])
        if classes is None:  # another build: subclasses bound to it
            classes = {}
            for name in _CLASSES:
                base = g[name]
                classes[name] = type(name, (base,), {"_b": self, "_lib": lib_, "__slots__": (),
                                                     "__module__": __name__, "__doc__": base.__doc__})  # fmt: skip
        else:
            for cls in classes.values():
                cls._b = self
        for name, cls in classes.items():
            setattr(self, name, cls)

    def _error(self) -> WakerError:
        e = self.lib.ast_last_error()
        code, op, tid = int(e.code), int(e.op), int(e.task)
        data = int(self.ffi.cast("uintptr_t", e.data))
        return WakerError(
            _message(op, code, tid, data),
            op=_OP_NAMES.get(op, str(op)),
            code=_ERR_NAMES.get(code, str(code)),
            task_id=tid or None,
        )

    # -- accounting --------------------------------------------------------

    def live_tasks(self) -> int:
        """Tasks of this build not yet freed (all run queues)."""
        return int(self.lib.ast_live_tasks())

    def quarantined(self) -> int:
        """Freed task blocks kept in quarantine (0 in an AST_UNCHECKED build)."""
        return int(self.lib.ast_quarantined())

    def flush(self) -> int:
        """Return the quarantined blocks to malloc; how many there were."""
        n = int(self.lib.ast_quarantine_flush())
        self._epoch += 1
        return n

    def task_status(self, task_id: int) -> TaskStatus:
        return TaskStatus(self.lib.ast_task_info(task_id, self.ffi.new("struct ast_task_info *")))

    def leaked_wakers(self) -> int:
        """Wakers (and AtomicWakers holding one) garbage-collected while
        they still owned an instance."""
        return len(self._leaks)

    def take_leaks(self) -> list[int]:
        """The task ids of the leaked wakers so far; resets the count."""
        leaks, self._leaks[:] = list(self._leaks), []
        return leaks

    # -- threaded stress tests (C threads) -----------------------------------

    def _stress(self, fn, *args) -> StressResult:
        out = self.ffi.new("struct ast_stress_result *")
        rc = fn(*args, out)
        if rc < 0:
            raise ValueError(f"stress test refused its arguments {args} (error {-rc})")
        c = out.calls
        return StressResult(
            int(out.iterations), int(out.saw_flag), int(out.woken), int(out.lost), int(out.polls),
            int(out.refs_left), Calls(int(c[0]), int(c[1]), int(c[2]), int(c[3])), out.elapsed_ns / 1e9,
            int(out.begin_saw_waking), int(out.end_woke),
        )  # fmt: skip

    def stress_atomic_waker(self, iterations: int = 20000, seed: int = 1) -> StressResult:
        """`iterations` rounds of a producer thread (set a flag, wake the
        AtomicWaker) racing a consumer (register, then read the flag); a
        round where the consumer missed the flag and no wake reached its
        task is a lost wake-up."""
        if not isinstance(iterations, int) or iterations < 1:
            raise ValueError(f"iterations must be a positive int, got {iterations!r}")
        return self._stress(self.lib.ast_stress_atomic_waker, iterations, seed & (2**64 - 1))

    def stress_remote_wakes(self, threads: int = 2, iterations: int = 20000) -> StressResult:
        """`threads` threads each `iterations` times clone, wake_by_ref and
        wake one task while this thread polls it; the last poll must see the
        last increment made before a wake (lost is 0 or 1)."""
        if not isinstance(threads, int) or not 1 <= threads <= 64:
            raise ValueError(f"threads must be an int from 1 to 64, got {threads!r}")
        if not isinstance(iterations, int) or iterations < 1:
            raise ValueError(f"iterations must be a positive int, got {iterations!r}")
        return self._stress(self.lib.ast_stress_remote_wakes, threads, iterations)

    # -- benchmarks ------------------------------------------------------------

    def bench_wakes(self, n: int = 100000) -> WakeBench:
        """ns per `wake_by_ref(); poll_next(step)` cycle driven from Python:
        through this build's C wakers and run queue, and through a pure-Python
        waker with the same state logic (the baseline)."""
        if not isinstance(n, int) or n < 1:
            raise ValueError("n must be a positive int")
        with self.RunQueue() as q:
            t = q.spawn(schedule=False)
            w = t.waker()
            poll = q.poll_next
            t0 = time.perf_counter_ns()
            for _ in range(n):
                w.wake_by_ref()
                poll(_pending)
            c_ns = (time.perf_counter_ns() - t0) / n
            w.drop()
        t.drop_join_handle()
        pq = _PyQueue()
        pt = _PyTask(pq.q)
        pw = _PyWaker(pt)
        ppoll = pq.poll_next
        t0 = time.perf_counter_ns()
        for _ in range(n):
            pw.wake_by_ref()
            ppoll(_pending)
        py_ns = (time.perf_counter_ns() - t0) / n
        return WakeBench(c_ns, py_ns)

    def bench_wakes_native(self, n: int = 1000000) -> float:
        """ns per wake_by_ref + pop + poll cycle, all in C."""
        if not isinstance(n, int) or n < 1:
            raise ValueError("n must be a positive int")
        r = self.lib.ast_bench_wakes(n)
        if r < 0:
            raise RuntimeError(f"bench_wakes_native failed (error {-r})")
        return r / n

    def __repr__(self) -> str:
        return f"<task Api over {getattr(self.lib, '__name__', self.lib)!r}>"


def api(module) -> Api:
    """The task API over another build of the C layer: `module` is a cffi
    module with `ffi` and `lib` compiled from task.c (see
    task_build.build_variant)."""
    return Api(module.ffi, module.lib)


_installed = Api(ffi, lib, classes={name: globals()[name] for name in _CLASSES})
INSTALLED = _installed
"""The Api of the installed build: this module's own classes and functions."""
live_tasks = _installed.live_tasks
quarantined = _installed.quarantined
flush = _installed.flush
task_status = _installed.task_status
leaked_wakers = _installed.leaked_wakers
take_leaks = _installed.take_leaks
stress_atomic_waker = _installed.stress_atomic_waker
stress_remote_wakes = _installed.stress_remote_wakes
bench_wakes = _installed.bench_wakes
bench_wakes_native = _installed.bench_wakes_native
