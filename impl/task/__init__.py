"""Tasks and wakers: the reference executor's C layer, step by step.

The C layer (task.h, task.c, queue.c and atomic_waker.c here, compiled into
asyncspec.impl.task._task) owns the task headers (an atomic state word with
RUNNING / NOTIFIED / COMPLETE flags and a reference count, per-task vtable
call counters), the one waker vtable (clone / wake / wake_by_ref / drop,
shaped like Rust's RawWakerVTable), the run queue and AtomicWaker.  This
package is a Python API over it, made so a driver (a conformance target, a
test) can take every step itself and look at the result;
asyncspec.impl.executor builds a real executor on the same pieces.

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
A freed task's memory is poisoned and kept in a quarantine, never reused, until `flush()`; its id and call counters
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
`api(module)` returns an `Api`: this package's names over another build of
the same C layer (a cffi module made with build.make, such as the tests'
deliberately broken builds).  Objects of different builds do not mix.
"""

from __future__ import annotations

from .api import INSTALLED, Api, api
from .atomic_waker import AtomicWaker
from .queue import RunQueue, Task
from .values import (
    PENDING,
    READY,
    Calls,
    Outcome,
    Polled,
    Step,
    TaskState,
    TaskStatus,
    WakerError,
    WakerUseError,
)
from .waker import RawWaker, Waker

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
    "Task",
    "TaskState",
    "TaskStatus",
    "Waker",
    "WakerError",
    "WakerUseError",
    "api",
    "flush",
    "leaked_wakers",
    "live_tasks",
    "quarantined",
    "take_leaks",
    "task_status",
]

live_tasks = INSTALLED.live_tasks
quarantined = INSTALLED.quarantined
flush = INSTALLED.flush
task_status = INSTALLED.task_status
leaked_wakers = INSTALLED.leaked_wakers
take_leaks = INSTALLED.take_leaks
