"""A single-threaded executor over the C tasks and the reference reactor.

Coroutines are plain `async def` functions.  The executor keeps each
spawned coroutine in a C task (impl/task/: state word, reference count,
run queue) and polls it one step at a time: a poll pops the task from the
run queue, runs the coroutine until it awaits something that is not ready,
and ends; the task runs again only when something wakes its waker.  When
the run queue is empty the executor waits in the reactor
(asyncspec.impl.Poll) for I/O readiness or the next timer deadline.

    from asyncspec.impl.executor import Executor, sleep

    async def main():
        await sleep(0.1)
        return 42

    with Executor() as ex:
        ex.block_on(main())          # 42

Leaf futures
------------
The things a coroutine awaits at the bottom are `Future`s with Rust's poll
protocol: `poll(cx)` returns `Ready(value)` or `PENDING`, and a future that
returns PENDING must have arranged for `cx.waker` to be woken when it can
make progress (storing a *clone*: the context's waker is only borrowed for
the poll).  `Future.__await__` runs that protocol, so `await fut` works
in any coroutine polled by this executor.  Awaiting anything else (an
asyncio future) makes the await raise TypeError.

This module's futures:
  sleep(seconds)            a timer (monotonic clock); sleep(0) is ready at once
  yield_now()               wakes its own task and returns PENDING once
  readable(sock), writable(sock)
                            readiness from the reactor (see below)
  JoinHandle                what spawn returns; awaiting it gives the task's
                            result or raises its exception
and helpers over non-blocking sockets: sock_recv, sock_send, sock_sendall,
sock_accept, sock_connect, sock_close.

I/O readiness
-------------
A source (a socket, or any fd) is registered with the reactor the first
time a readiness future polls it: readable and writable, edge-triggered,
under a token of its own.  Each source has a readiness flag per direction,
set by the reactor's events and cleared when an operation fails with
EAGAIN (the helpers do that; raw users call `clear_readiness`): with edge
triggering a source must be used until EAGAIN before a new event comes
(see the reactor's "Draining readiness").  Every task waiting on a source
stores a cloned waker in the source's slot; an event wakes them all (wake
consumes the stored clones).  Sources stay registered until
`Executor.deregister(source)` (or `sock_close`, or `close()`): deregister
before closing an fd.  The executor never closes fds it did not open.

Shutdown
--------
`close()` cancels the tasks that have not finished (their coroutines are
closed, so `finally` blocks run and leaf futures drop their wakers),
drops every waker it still holds, deregisters every source, releases the
JoinHandles' task references, and closes its reactor.  Afterwards no task
of the executor is live (`asyncspec.impl.task.live_tasks()`), and no fd it
opened remains.  A JoinHandle keeps its result (or TaskCancelled) readable
after close.

Deadlock
--------
When nothing is queued and no timer is pending, block_on looks, before
waiting forever, whether anything can still wake the task it waits for:
a waker of it held outside the executor's task records (the C reference
counts say how many wakers exist), or one held as a JoinHandle awaiter by
a task that can itself be woken.  If nothing can, it raises DeadlockError
instead of blocking forever.

Threads
-------
An executor runs on one thread.  Wakers may be woken from any thread: the
C run queue takes the push, and a push onto a parked queue writes the
reactor's Waker, so the executor's wait ends.
"""

from __future__ import annotations

from .executor import DeadlockError, Executor, run, spawn
from .futures import PENDING, Context, Future, Ready, TaskCancelled, current_context
from .handles import JoinHandle
from .io import clear_readiness, readable, sock_accept, sock_close, sock_connect, sock_recv, sock_send, sock_sendall, writable
from .timers import sleep, yield_now

__all__ = [
    "PENDING",
    "Context",
    "DeadlockError",
    "Executor",
    "Future",
    "JoinHandle",
    "Ready",
    "TaskCancelled",
    "clear_readiness",
    "current_context",
    "readable",
    "run",
    "sleep",
    "sock_accept",
    "sock_close",
    "sock_connect",
    "sock_recv",
    "sock_send",
    "sock_sendall",
    "spawn",
    "writable",
    "yield_now",
]
