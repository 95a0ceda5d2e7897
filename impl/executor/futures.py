"""The leaf-future protocol: `Future` (poll(cx) returns `Ready(value)` or
PENDING), the `Context` a poll gets, and `current_context`, the context of
the poll running on this thread.  See the package doc."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from asyncspec.impl.task import PENDING

if TYPE_CHECKING:
    from .executor import Executor


class TaskCancelled(Exception):
    """The task was cancelled (its executor closed before it finished)."""


class Ready:
    """A leaf future's result: poll(cx) returns Ready(value) or PENDING."""

    __slots__ = ("value",)

    def __init__(self, value=None):
        self.value = value

    def __repr__(self) -> str:
        return f"Ready({self.value!r})"


_READY_NONE = Ready(None)


class _Yield:
    """What a leaf future's __await__ yields to the executor (and nothing else may)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<asyncspec pending>"


_YIELD = _Yield()


class Context:
    """What a poll gives a leaf future: the task's `waker` (borrowed for
    this poll: clone it to keep it), the `executor`, the `task_id`.  While
    the executor closes a cancelled task's coroutine, its finally blocks
    run with a context whose waker is None: helpers that do not wait
    (sock_close) work, awaiting a future raises TaskCancelled."""

    __slots__ = ("executor", "task_id", "waker")

    def __init__(self, executor: Executor, task_id: int):
        self.executor = executor
        self.task_id = task_id
        self.waker = None

    def __repr__(self) -> str:
        return f"<Context task={self.task_id}>"


_local = threading.local()


def current_context() -> Context:
    """The context of the poll running on this thread."""
    cx = getattr(_local, "cx", None)
    if cx is None:
        raise RuntimeError(
            "no asyncspec task is being polled on this thread: asyncspec futures must be awaited inside a "
            "coroutine run by an asyncspec Executor (block_on or spawn)"
        )
    return cx


class Future:
    """A leaf future: subclasses implement `poll(cx)` (Ready(value) or
    PENDING, having stored a clone of cx.waker to be woken) and may
    implement `cancel()`, called when the awaiting coroutine stops waiting
    before the future is ready (it is closed, or poll raised): drop what
    was stored there."""

    __slots__ = ()

    def poll(self, cx: Context):
        raise NotImplementedError

    def cancel(self) -> None:
        pass

    def __await__(self):
        done = False
        try:
            while True:
                cx = current_context()
                if cx.waker is None:
                    raise TaskCancelled(
                        f"task {cx.task_id} is being cancelled (its executor is closing): it cannot wait for "
                        f"{type(self).__name__} any more"
                    )
                r = self.poll(cx)
                if r is not PENDING:
                    if not isinstance(r, Ready):
                        raise TypeError(f"{type(self).__name__}.poll returned {r!r}, not Ready(...) or PENDING")
                    done = True
                    return r.value
                yield _YIELD
        finally:
            if not done:
                self.cancel()
