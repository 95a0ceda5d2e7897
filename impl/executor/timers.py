"""Timers: `sleep(seconds)` and `yield_now()`."""

from __future__ import annotations

import math
import time

from .futures import _READY_NONE, PENDING, Context, Future


class _Timer:
    __slots__ = ("deadline", "waker")

    def __init__(self, deadline: float, waker):
        self.deadline = deadline
        self.waker = waker  # None once fired or cancelled


class _Sleep(Future):
    __slots__ = ("_deadline", "_delay", "_ex", "_timer")

    def __init__(self, seconds):
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
            raise TypeError(f"sleep needs a number of seconds, not {type(seconds).__name__}")
        if math.isnan(seconds) or seconds < 0 or seconds == math.inf:
            raise ValueError(f"sleep needs a finite number of seconds >= 0, got {seconds!r}")
        self._delay = float(seconds)
        self._deadline = None
        self._timer = None
        self._ex = None

    def poll(self, cx: Context):
        now = time.monotonic()
        if self._deadline is None:
            self._deadline = now + self._delay
        if now >= self._deadline:
            self.cancel()
            return _READY_NONE
        timer = self._timer
        if timer is None:
            self._ex = cx.executor
            self._timer = cx.executor._add_timer(self._deadline, cx.waker.clone())
        elif timer.waker is None:  # fired, but polled before its deadline passed here: arm again
            self._timer = cx.executor._add_timer(self._deadline, cx.waker.clone())
        else:
            timer.waker.clone_from(cx.waker)
        return PENDING

    def cancel(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None and timer.waker is not None:
            w, timer.waker = timer.waker, None
            self._ex._dead_timers += 1
            w.drop()


def sleep(seconds) -> Future:
    """A future ready `seconds` (>= 0) after its first poll (monotonic clock)."""
    return _Sleep(seconds)


class _YieldNow(Future):
    __slots__ = ("_yielded",)

    def __init__(self):
        self._yielded = False

    def poll(self, cx: Context):
        if self._yielded:
            return _READY_NONE
        self._yielded = True
        cx.waker.wake_by_ref()  # woken while running: polled once more, after the others queued
        return PENDING


def yield_now() -> Future:
    """Give the other queued tasks a turn: wake this task by reference and
    return PENDING once (the run queue polls it again after them)."""
    return _YieldNow()
