"""Tasks and the run queue: `Task` (a handle by id) and `RunQueue` (an
executor's core, polled step by step).  See the package doc."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING

from ._task import lib
from .values import PENDING, READY, Calls, Outcome, Polled, Step, TaskState, TaskStatus, WakerError
from .waker import _BORROWED, _EXPIRED, _LIVE

if TYPE_CHECKING:
    from .api import Api
    from .waker import Waker


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
        task = b.Task._make(int(b.lib.ast_task_id(out[0])))
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
