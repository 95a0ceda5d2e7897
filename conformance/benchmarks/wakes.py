"""Wake cycles through the reference executor's C wakers and run queue:
driven from Python against a pure-Python waker with the same state logic
(`bench_wakes`), and all in C (`bench_wakes_native`)."""

from __future__ import annotations

import time
from collections import deque
from typing import NamedTuple

from asyncspec.impl import task
from asyncspec.impl.task import PENDING, READY
from asyncspec.impl.task import _task as installed

from . import address, table
from ._bench import ffi, lib

# bench.h's struct asb_tasks: field -> the task layer's function.
_TASK_FUNCTIONS = {
    "queue_new": "ast_queue_new",
    "task_new": "ast_task_new",
    "task_waker": "ast_task_waker",
    "queue_pop": "ast_queue_pop",
    "poll_begin": "ast_task_poll_begin",
    "poll_end": "ast_task_poll_end",
    "raw_drop": "ast_raw_drop",
    "task_cancel": "ast_task_cancel",
    "release_join": "ast_task_release_join",
    "queue_close": "ast_queue_close",
    "queue_release": "ast_queue_release",
}


class WakeBench(NamedTuple):
    """ns per wake_by_ref + poll cycle, driven from Python the same way."""

    c: float  # through the C wakers and run queue (asyncspec.impl.task)
    python: float  # through a pure-Python waker with the same state logic


# ---------------------------------------------------------------------------
# The pure-Python baseline: the same state logic in Python.
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
# The measurements
# ---------------------------------------------------------------------------


def bench_wakes(n: int = 100000) -> WakeBench:
    """ns per `wake_by_ref(); poll_next(step)` cycle driven from Python:
    through the installed C wakers and run queue, and through a pure-Python
    waker with the same state logic (the baseline)."""
    if not isinstance(n, int) or n < 1:
        raise ValueError("n must be a positive int")
    with task.RunQueue() as q:
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


_tasks = table(ffi, "struct asb_tasks", {f: address(installed.ffi, installed.lib, fn) for f, fn in _TASK_FUNCTIONS.items()})


def bench_wakes_native(n: int = 1000000) -> float:
    """ns per wake_by_ref + pop + poll cycle, all in C, over the installed task layer."""
    if not isinstance(n, int) or n < 1:
        raise ValueError("n must be a positive int")
    r = lib.asb_wakes(_tasks, n)
    if r < 0:
        raise RuntimeError(f"bench_wakes_native failed (error {-r})")
    return r / n
