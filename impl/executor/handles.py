"""Tasks as the executor keeps them, and `JoinHandle`, what spawn returns."""

from __future__ import annotations

import sys
import traceback
from typing import TYPE_CHECKING

from asyncspec.impl import task as _task

from .futures import PENDING, Context, Future, Ready, TaskCancelled

if TYPE_CHECKING:
    from .executor import Executor


class _TaskRecord:
    __slots__ = ("coro", "cx", "done", "exc", "id", "join_held", "join_waker", "joined", "ptr", "raw", "result")

    def __init__(self, tid, ptr, raw, coro, cx):
        self.id = tid
        self.ptr = ptr
        self.raw = raw  # the task's (data, vtable), lent to each poll's context waker
        self.coro = coro
        self.cx = cx
        self.done = False
        self.result = None
        self.exc = None
        self.join_waker = None  # a clone of the waker of the task awaiting the JoinHandle
        self.join_held = True  # the JoinHandle's C reference
        self.joined = False  # the result or exception was looked at


class JoinHandle(Future):
    """The handle `spawn` returns: await it (or call `result()` once it is
    `done()`) for the task's result; the task's exception is raised.  It
    holds the task's JoinHandle reference until `detach()`, garbage
    collection, or the executor's close, whichever comes first; the result
    stays readable after that."""

    __slots__ = ("__weakref__", "_ex", "_rec")

    def __init__(self, executor: Executor, rec: _TaskRecord):
        self._ex = executor
        self._rec = rec

    @property
    def task_id(self) -> int:
        return self._rec.id

    @property
    def task(self) -> _task.Task:
        """The C task's handle (state, calls, freed)."""
        return self._ex._t.Task._make(self._rec.id)

    def done(self) -> bool:
        return self._rec.done

    def cancelled(self) -> bool:
        return self._rec.done and isinstance(self._rec.exc, TaskCancelled)

    def result(self):
        rec = self._rec
        if not rec.done:
            raise RuntimeError(f"task {rec.id} has not finished: await its JoinHandle, or run the executor first")
        rec.joined = True
        if rec.exc is not None:
            raise rec.exc
        return rec.result

    def exception(self) -> BaseException | None:
        rec = self._rec
        if not rec.done:
            raise RuntimeError(f"task {rec.id} has not finished")
        rec.joined = True
        return rec.exc

    def poll(self, cx: Context):
        rec = self._rec
        if rec.done:
            rec.joined = True
            if rec.exc is not None:
                raise rec.exc
            return Ready(rec.result)
        if cx.task_id == rec.id:
            raise RuntimeError(f"task {rec.id} awaits its own JoinHandle: it would never finish")
        if cx.executor is not self._ex:
            raise RuntimeError(f"task {rec.id} belongs to another executor than the awaiting task")
        w = rec.join_waker
        if w is None:
            rec.join_waker = cx.waker.clone()
        else:
            w.clone_from(cx.waker)
        return PENDING

    def cancel(self) -> None:
        # The awaiting task stopped waiting: its stored waker goes.
        w, self._rec.join_waker = self._rec.join_waker, None
        if w is not None:
            w.drop()

    def detach(self) -> None:
        """Release the task's JoinHandle reference (idempotent).  The task
        runs on; its result stays readable here."""
        rec = self._rec
        if rec.join_held:
            rec.join_held = False
            if self._ex._t.lib.ast_task_release_join(rec.ptr):
                raise self._ex._t._error()
            if rec.done and rec.exc is not None and not rec.joined and not isinstance(rec.exc, TaskCancelled):
                _report_unjoined(rec)

    def __del__(self):
        rec = getattr(self, "_rec", None)
        if rec is not None and rec.join_held:
            try:
                self.detach()
            except Exception:
                pass

    def __repr__(self) -> str:
        rec = self._rec
        if not rec.done:
            return f"<JoinHandle task={rec.id} pending>"
        how = "cancelled" if isinstance(rec.exc, TaskCancelled) else f"raised {rec.exc!r}" if rec.exc else "done"
        return f"<JoinHandle task={rec.id} {how}>"


def _report_unjoined(rec: _TaskRecord) -> None:
    """A task failed and nobody can look at its exception any more."""
    try:
        print(f"asyncspec executor: task {rec.id} raised, and its JoinHandle was dropped:", file=sys.stderr)
        traceback.print_exception(rec.exc, file=sys.stderr)
    except Exception:
        pass
