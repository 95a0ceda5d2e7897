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

import errno as _errno
import heapq
import inspect
import itertools
import math
import os
import socket
import sys
import threading
import time
import traceback
import weakref

from asyncspec.impl import task as _task
from asyncspec.impl.reactor import Events, Interest, Poll, Registry, Token, Trigger
from asyncspec.impl.reactor import Waker as ReactorWaker
from asyncspec.impl.task import PENDING
from asyncspec.impl.task.queue import _BEGIN_COMPLETE, _NEXT_EMPTY
from asyncspec.impl.task.waker import _BORROWED, _EXPIRED

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

_UNPARK_TOKEN = 0
_BUDGET = 128  # polls between two looks at the reactor (I/O is not starved)


class DeadlockError(RuntimeError):
    """block_on's task can never be woken."""


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


# ---------------------------------------------------------------------------
# Tasks and JoinHandles
# ---------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------
# Timers
# ---------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------
# I/O readiness
# ---------------------------------------------------------------------------


def _fd_of(source, op: str) -> int:
    if isinstance(source, int) and not isinstance(source, bool):
        fd = source
    elif hasattr(source, "fileno"):
        fd = source.fileno()
    else:
        raise TypeError(f"{op} needs a socket, an object with fileno() or an int fd, not {type(source).__name__}")
    if not isinstance(fd, int) or fd < 0:
        raise OSError(_errno.EBADF, f"{op}: {source!r} is closed (fileno() is {fd!r})")
    return fd


class _IoSlot:
    __slots__ = ("closed", "fd", "readers", "ready_r", "ready_w", "source", "token", "writers")

    def __init__(self, fd: int, source, token: int):
        self.closed = False  # deregistered: its waiters retry their operation
        self.fd = fd
        self.token = token
        # A weak reference to a socket object (the executor must not keep
        # it open); an int fd as is.
        self.source = source if isinstance(source, int) else weakref.ref(source)
        self.ready_r = False
        self.ready_w = False
        self.readers: dict = {}  # readiness future -> its stored waker
        self.writers: dict = {}

    def is_for(self, source) -> bool:
        if isinstance(self.source, int):
            return isinstance(source, int) and source == self.source
        return self.source() is source

    def wake(self, waiters: dict) -> None:
        ws = list(waiters.values())
        waiters.clear()
        for w in ws:
            w.wake()

    def drop_all(self) -> None:
        ws = list(self.readers.values()) + list(self.writers.values())
        self.readers.clear()
        self.writers.clear()
        for w in ws:
            w.drop()


class _Readiness(Future):
    __slots__ = ("_clear", "_slot", "_source", "_write")

    def __init__(self, source, write: bool, clear: bool = False):
        self._source = source
        self._write = write
        self._clear = clear  # the caller's operation just failed with EAGAIN
        self._slot = None

    def poll(self, cx: Context):
        slot = self._slot
        if slot is None:
            slot = self._slot = cx.executor._io_slot(self._source, "writable" if self._write else "readable")
            if self._clear:
                if self._write:
                    slot.ready_w = False
                else:
                    slot.ready_r = False
        if slot.closed or (slot.ready_w if self._write else slot.ready_r):
            self._forget()
            return _READY_NONE
        waiters = slot.writers if self._write else slot.readers
        w = waiters.get(self)
        if w is None:
            waiters[self] = cx.waker.clone()
        else:
            w.clone_from(cx.waker)
        return PENDING

    def _forget(self) -> None:
        slot = self._slot
        if slot is not None:
            w = (slot.writers if self._write else slot.readers).pop(self, None)
            if w is not None:
                w.drop()

    def cancel(self) -> None:
        self._forget()


def readable(source) -> Future:
    """Ready once the reactor has reported `source` readable (or closed, or
    in error) since its readable flag was last cleared."""
    return _Readiness(source, False)


def writable(source) -> Future:
    """Ready once the reactor has reported `source` writable (or in error)."""
    return _Readiness(source, True)


def clear_readiness(source, *, readable: bool = True, writable: bool = False) -> None:
    """Clear `source`'s readiness flags: call after an operation on it
    failed with EAGAIN, before awaiting readable()/writable() again."""
    current_context().executor.clear_readiness(source, readable=readable, writable=writable)


def _nonblocking(sock, op: str) -> None:
    if not isinstance(sock, socket.socket):
        raise TypeError(f"{op} needs a socket.socket, not {type(sock).__name__}")
    if sock.fileno() < 0:
        raise OSError(_errno.EBADF, f"{op}: the socket is closed")
    if sock.getblocking():
        raise ValueError(f"{op}: the socket is blocking, it would stall the executor: call sock.setblocking(False)")


async def sock_recv(sock: socket.socket, nbytes: int) -> bytes:
    """Receive up to `nbytes` (b"" at end of stream)."""
    _nonblocking(sock, "sock_recv")
    while True:
        try:
            return sock.recv(nbytes)
        except (BlockingIOError, InterruptedError):
            pass
        await _Readiness(sock, False, clear=True)


async def sock_send(sock: socket.socket, data) -> int:
    """Send some of `data`; returns how many bytes were sent (at least 1)."""
    _nonblocking(sock, "sock_send")
    while True:
        try:
            return sock.send(data)
        except (BlockingIOError, InterruptedError):
            pass
        await _Readiness(sock, True, clear=True)


async def sock_sendall(sock: socket.socket, data) -> None:
    """Send all of `data`."""
    view = memoryview(data).cast("B")
    while view:
        n = await sock_send(sock, view)
        view = view[n:]


async def sock_accept(sock: socket.socket):
    """Accept a connection: (conn, address), conn non-blocking."""
    _nonblocking(sock, "sock_accept")
    while True:
        try:
            conn, addr = sock.accept()
        except (BlockingIOError, InterruptedError):
            await _Readiness(sock, False, clear=True)
            continue
        conn.setblocking(False)
        return conn, addr


async def sock_connect(sock: socket.socket, address) -> None:
    """Connect a non-blocking socket; OSError (with the errno) if it fails."""
    _nonblocking(sock, "sock_connect")
    err = sock.connect_ex(address)
    if err in (_errno.EINPROGRESS, _errno.EAGAIN, _errno.EINTR):
        await _Readiness(sock, True, clear=True)
        err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if err:
        raise OSError(err, f"connect to {address!r}: {os.strerror(err)}")


async def sock_close(sock: socket.socket) -> None:
    """Deregister the socket from this task's executor (if registered) and close it."""
    current_context().executor.deregister(sock, missing_ok=True)
    sock.close()


def spawn(coro) -> JoinHandle:
    """Spawn `coro` on the executor polling the current task."""
    return current_context().executor.spawn(coro)


# ---------------------------------------------------------------------------
# The executor
# ---------------------------------------------------------------------------


class Executor:
    """A single-threaded executor: `spawn`, `block_on`, `close` (see the
    module doc).  `api` selects the build of the task layer (default: the
    installed one; a task.api(...) over a variant build runs the same
    executor on it).  `quarantine_limit`: the checked build keeps freed task
    blocks in quarantine; the executor flushes it (a look at each reactor
    turn) when it holds more than that many (None: never)."""

    def __init__(self, *, api: _task.Api | None = None, events: int = 256, quarantine_limit: int | None = 4096):
        self._t = api if api is not None else _task.INSTALLED
        t = self._t
        self._lib = t.lib
        self._ffi = t.ffi
        self._closed = True  # until fully built
        self._poll = Poll()
        try:
            self._registry: Registry = self._poll.registry()
            self._unpark = ReactorWaker(self._registry, Token(_UNPARK_TOKEN))
        except BaseException:
            self._poll.close()
            raise
        q = self._lib.ast_queue_new()
        if q == self._ffi.NULL:
            self._unpark.close()
            self._poll.close()
            raise MemoryError("Executor: cannot allocate the run queue")
        self._q = self._ffi.gc(q, self._lib.ast_queue_release)
        self._lib.ast_queue_set_unpark_fd(q, self._unpark.fileno())
        self._next = self._ffi.new("struct ast_next *")
        self._events = Events(events)
        self._tasks: dict[int, _TaskRecord] = {}
        self._joins: weakref.WeakSet = weakref.WeakSet()
        self._timers: list = []  # heap of (deadline, seq, _Timer)
        self._seq = itertools.count()
        self._dead_timers = 0
        self._io_by_fd: dict[int, _IoSlot] = {}
        self._io_by_token: dict[int, _IoSlot] = {}
        self._tokens = itertools.count(_UNPARK_TOKEN + 1)
        self._running = False
        self._quarantine_limit = quarantine_limit
        self._closed = False

    # -- spawning and running ----------------------------------------------

    def spawn(self, coro) -> JoinHandle:
        """Run the coroutine `coro` as a new task; its JoinHandle."""
        if self._closed:
            raise RuntimeError("spawn: the executor is closed")
        if not inspect.iscoroutine(coro):
            if inspect.iscoroutinefunction(coro):
                raise TypeError(f"spawn needs a coroutine: call the async function ({coro.__name__}()), then spawn it")
            if inspect.isawaitable(coro) or not all(hasattr(coro, m) for m in ("send", "throw", "close")):
                raise TypeError(f"spawn needs a coroutine (from calling an async function), not {coro!r}")
        t, ffi, lib = self._t, self._ffi, self._lib
        out = ffi.new("struct ast_task **")
        if lib.ast_task_new(self._q, 1, out):
            raise t._error()
        ptr = out[0]
        tid = int(lib.ast_task_id(ptr))
        raw = ffi.new("struct ast_raw_waker *", (ptr, t.vtable))
        rec = _TaskRecord(tid, ptr, raw, coro, Context(self, tid))
        self._tasks[tid] = rec
        jh = JoinHandle(self, rec)
        self._joins.add(jh)
        return jh

    def block_on(self, coro):
        """Spawn `coro` (a coroutine, or any awaitable such as a JoinHandle),
        run the executor until it finishes, return its result (or raise its
        exception).  Other tasks run meanwhile and stay spawned afterwards."""
        if self._closed:
            raise RuntimeError("block_on: the executor is closed")
        if self._running:
            raise RuntimeError("block_on called from inside a task of this executor: await the coroutine instead")
        if not inspect.iscoroutine(coro) and inspect.isawaitable(coro):
            coro = _await(coro)
        jh = self.spawn(coro)
        try:
            self._run_until(jh._rec)
            return jh.result()
        finally:
            jh.detach()

    def run_until_idle(self) -> None:
        """Poll until no task is queued and no timer is due (no waiting)."""
        if self._running:
            raise RuntimeError("run_until_idle called from inside a task")
        self._running = True
        try:
            while True:
                self._run_queued(_BUDGET)
                self._turn(block=False)
                if self._lib.ast_queue_len(self._q) == 0:
                    return
        finally:
            self._running = False

    def _run_until(self, rec: _TaskRecord) -> None:
        self._running = True
        try:
            while not rec.done:
                ran = self._run_queued(_BUDGET)
                if rec.done:
                    break
                self._turn(block=ran < _BUDGET, waiting_for=rec)
        finally:
            self._running = False

    def _run_queued(self, budget: int) -> int:
        lib, q, nxt = self._lib, self._q, self._next
        n = 0
        while n < budget:
            rc = lib.ast_queue_next(q, nxt)
            if rc == _NEXT_EMPTY:
                break
            if rc < 0:
                raise self._t._error()
            n += 1
            if rc == _BEGIN_COMPLETE:
                continue  # complete (cancelled) when popped: not polled
            rec = self._tasks.get(nxt.id)
            if rec is None:  # cannot happen: a task is in _tasks until it completes
                lib.ast_task_poll_end(nxt.task, 0)
                raise RuntimeError(f"executor: task {nxt.id} was queued but has no coroutine")
            self._step(rec)
        return n

    def _step(self, rec: _TaskRecord) -> None:
        """Poll one task: run its coroutine one step with its waker borrowed."""
        t = self._t
        waker = t.Waker._make(rec.raw, rec.id, _BORROWED)
        cx = rec.cx
        cx.waker = waker
        prev = getattr(_local, "cx", None)
        _local.cx = cx
        ready = False
        coro = rec.coro
        try:
            try:
                y = coro.send(None)
                while y is not _YIELD:
                    y = coro.throw(TypeError(
                        f"task {rec.id} awaited {y!r}, which is not an asyncspec future (asyncio's futures need "
                        "an asyncio event loop)"
                    ))  # fmt: skip
            except StopIteration as e:
                ready = True
                rec.result = e.value
            except BaseException as e:  # noqa: BLE001 - the task's outcome, re-raised below if fatal
                ready = True
                rec.exc = e
        finally:
            _local.cx = prev
            waker._st = _EXPIRED
            cx.waker = None
            rc = self._lib.ast_task_poll_end(rec.ptr, 1 if ready else 0)
        if rc < 0:
            raise t._error()
        if ready:
            self._finish(rec)
            if isinstance(rec.exc, (KeyboardInterrupt, SystemExit)):
                rec.joined = True
                raise rec.exc

    def _finish(self, rec: _TaskRecord) -> None:
        rec.done = True
        rec.coro = None
        self._tasks.pop(rec.id, None)
        w, rec.join_waker = rec.join_waker, None
        if w is not None:
            w.wake()
        if rec.exc is not None and not rec.join_held and not rec.joined:
            _report_unjoined(rec)

    def _turn(self, block: bool, waiting_for: _TaskRecord | None = None) -> None:
        """Fire due timers, wait in the reactor (if `block` and nothing is
        queued: until the next deadline or an event), dispatch its events."""
        lib, q = self._lib, self._q
        self._fire_timers(time.monotonic())
        timeout = 0
        if block and lib.ast_queue_len(q) == 0:
            deadline = self._next_deadline()
            if deadline is None:
                timeout = None
                if waiting_for is not None and self._stuck(waiting_for):
                    raise DeadlockError(
                        f"task {waiting_for.id} can never finish: nothing is queued, no timer is pending, and no "
                        "waker of it exists outside the executor (nor of a task that would wake it by finishing)"
                    )
            else:
                timeout = max(0.0, deadline - time.monotonic())
        parked = False
        if timeout != 0:
            parked = bool(lib.ast_queue_park(q))
            if not parked:
                timeout = 0  # a wake from another thread came in: do not block
        try:
            self._poll.poll(self._events, timeout)
        finally:
            if parked:
                lib.ast_queue_unpark(q)
        self._dispatch()
        self._fire_timers(time.monotonic())
        limit = self._quarantine_limit
        if limit is not None and self._lib.ast_quarantined() > limit:
            self._t.flush()

    def _stuck(self, target: _TaskRecord) -> bool:
        """Whether nothing can ever wake `target`.  A task can be woken if
        it is queued or a waker of it exists outside the executor's task
        records (held by a timer, an I/O slot, user code, another thread),
        or if a task that can be woken holds its waker as a JoinHandle
        awaiter (it is woken when that one finishes).  The references in the
        C state word beyond the two handles' count the wakers."""
        info = self._ffi.new("struct ast_task_info *")
        lib = self._lib
        awaiters: dict[int, list[int]] = {}  # task id -> ids of the tasks whose join waker it holds
        join_refs: dict[int, int] = {}
        for rec in self._tasks.values():
            w = rec.join_waker
            if w is not None and w.consumed is None:
                awaiters.setdefault(rec.id, []).append(w.task_id)
                join_refs[w.task_id] = join_refs.get(w.task_id, 0) + 1
        wakeable = []
        for rec in self._tasks.values():
            if lib.ast_task_info(rec.id, info) != lib.AST_STATUS_LIVE:
                continue
            handles = bool(info.holds & lib.AST_HOLD_OWNED) + bool(info.holds & lib.AST_HOLD_JOIN)
            wakers = (info.state >> lib.AST_REF_SHIFT) - handles - join_refs.get(rec.id, 0)
            if wakers > 0 or info.state & lib.AST_NOTIFIED:
                wakeable.append(rec.id)
        seen = set(wakeable)
        while wakeable:
            for awaiter in awaiters.get(wakeable.pop(), ()):
                if awaiter not in seen:
                    seen.add(awaiter)
                    wakeable.append(awaiter)
        return target.id not in seen

    def _dispatch(self) -> None:
        by_token = self._io_by_token
        for ev in self._events:
            slot = by_token.get(ev.token)
            if slot is None:
                continue  # the unpark waker, or a source deregistered since
            if ev.is_readable() or ev.is_read_closed() or ev.is_error():
                slot.ready_r = True
                if slot.readers:
                    slot.wake(slot.readers)
            if ev.is_writable() or ev.is_write_closed() or ev.is_error():
                slot.ready_w = True
                if slot.writers:
                    slot.wake(slot.writers)

    # -- timers ----------------------------------------------------------------

    def _add_timer(self, deadline: float, waker) -> _Timer:
        timer = _Timer(deadline, waker)
        heapq.heappush(self._timers, (deadline, next(self._seq), timer))
        return timer

    def _next_deadline(self) -> float | None:
        timers = self._timers
        while timers and timers[0][2].waker is None:
            heapq.heappop(timers)
            self._dead_timers -= 1
        if self._dead_timers > 64 and self._dead_timers > len(timers) // 2:
            self._timers = timers = [e for e in timers if e[2].waker is not None]
            heapq.heapify(timers)
            self._dead_timers = 0
        return timers[0][0] if timers else None

    def _fire_timers(self, now: float) -> None:
        timers = self._timers
        while timers and timers[0][0] <= now:
            _, _, timer = heapq.heappop(timers)
            w, timer.waker = timer.waker, None
            if w is not None:
                w.wake()
            else:
                self._dead_timers -= 1

    # -- I/O -----------------------------------------------------------------

    def _io_slot(self, source, op: str) -> _IoSlot:
        """The source's slot, registering it with the reactor on first use."""
        fd = _fd_of(source, op)
        slot = self._io_by_fd.get(fd)
        if slot is not None:
            if slot.is_for(source):
                return slot
            # Another object with the same fd number: the old one was closed
            # without deregistering.  Its waiters retry (and see EBADF).
            self._drop_slot(slot, wake=True)
        token = next(self._tokens)
        interest = Interest.READABLE | Interest.WRITABLE
        try:
            self._registry.register(fd, Token(token), interest, trigger=Trigger.EDGE)
        except FileExistsError:
            # Still registered under the closed fd's open file (a dup lives):
            # take the registration over.
            self._registry.reregister(fd, Token(token), interest, trigger=Trigger.EDGE)
        slot = _IoSlot(fd, source, token)
        self._io_by_fd[fd] = slot
        self._io_by_token[token] = slot
        return slot

    def _drop_slot(self, slot: _IoSlot, *, wake: bool) -> None:
        slot.closed = True
        self._io_by_fd.pop(slot.fd, None)
        self._io_by_token.pop(slot.token, None)
        try:
            self._registry.deregister(slot.fd)
        except OSError:
            pass  # closed already (epoll forgot it), or another open file now
        if wake:
            slot.wake(slot.readers)
            slot.wake(slot.writers)
        else:
            slot.drop_all()

    def deregister(self, source, *, missing_ok: bool = False) -> None:
        """Remove `source` from the reactor (before closing it).  Tasks
        waiting on it are woken (their next operation sees the closed fd)."""
        fd = _fd_of(source, "deregister")
        slot = self._io_by_fd.get(fd)
        if slot is None or not slot.is_for(source):
            if missing_ok:
                return
            raise ValueError(f"deregister: {source!r} (fd {fd}) is not registered with this executor")
        slot.closed = True
        self._io_by_fd.pop(fd)
        self._io_by_token.pop(slot.token, None)
        self._registry.deregister(fd)
        slot.wake(slot.readers)
        slot.wake(slot.writers)

    def clear_readiness(self, source, *, readable: bool = True, writable: bool = False) -> None:
        """Clear `source`'s readiness flags (after EAGAIN)."""
        fd = _fd_of(source, "clear_readiness")
        slot = self._io_by_fd.get(fd)
        if slot is not None and slot.is_for(source):
            if readable:
                slot.ready_r = False
            if writable:
                slot.ready_w = False

    # -- inspection ------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    def live_tasks(self) -> int:
        """Tasks of this executor not yet freed (C reference counts)."""
        return int(self._lib.ast_queue_tasks(self._q))

    def pending_tasks(self) -> int:
        """Tasks spawned and not finished."""
        return len(self._tasks)

    def registered(self) -> int:
        """Sources registered with the reactor."""
        return len(self._io_by_fd)

    # -- shutdown --------------------------------------------------------------

    def close(self) -> None:
        """Cancel the unfinished tasks, drop every waker held, deregister
        every source, release the JoinHandles' references, close the reactor.
        Idempotent; not from inside a task."""
        if self._closed:
            return
        if self._running:
            raise RuntimeError("cannot close the executor from inside one of its tasks")
        self._closed = True
        lib = self._lib
        recs = list(self._tasks.values())
        # 1. Cancel in C first: COMPLETE|CANCELLED, so wakes from here on
        #    (finally blocks, other threads) do nothing; owned refs released.
        for rec in recs:
            lib.ast_task_cancel(rec.ptr)
        # 2. Close the coroutines: GeneratorExit runs their finally blocks
        #    and the leaf futures' cancel(), which drop their wakers.
        errors = []
        prev = getattr(_local, "cx", None)
        for rec in recs:
            coro, rec.coro = rec.coro, None
            rec.done = True
            rec.exc = TaskCancelled(f"task {rec.id} was cancelled: its executor closed before it finished")
            rec.cx.waker = None  # finally blocks may use the executor, not wait
            _local.cx = rec.cx
            try:
                coro.close()
            except TaskCancelled:
                pass  # a finally block tried to wait
            except BaseException as e:  # noqa: BLE001
                errors.append((rec.id, e))
            finally:
                _local.cx = prev
        self._tasks.clear()
        for rec in recs:
            w, rec.join_waker = rec.join_waker, None
            if w is not None:
                w.drop()
        # 3. Wakers still held by timers and I/O slots.
        for _, _, timer in self._timers:
            w, timer.waker = timer.waker, None
            if w is not None:
                w.drop()
        self._timers.clear()
        self._dead_timers = 0
        for slot in list(self._io_by_fd.values()):
            self._drop_slot(slot, wake=False)
        # 4. The queued entries' references, then the JoinHandles'.
        lib.ast_queue_close(self._q)
        for jh in list(self._joins):
            rec = jh._rec
            if rec.join_held:
                rec.join_held = False
                lib.ast_task_release_join(rec.ptr)
        # 5. The reactor.
        self._unpark.close()
        self._poll.close()
        if errors:
            tid, e = errors[0]
            raise RuntimeError(f"executor close: task {tid}'s coroutine failed to close: {e!r}") from e

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        if not getattr(self, "_closed", True):
            try:
                import warnings

                warnings.warn(f"unclosed {self!r}", ResourceWarning, stacklevel=2)
                self.close()
            except Exception:
                pass

    def __repr__(self) -> str:
        if self._closed:
            return "<Executor closed>"
        return f"<Executor tasks={len(self._tasks)} queued={self._lib.ast_queue_len(self._q)} " \
               f"timers={len(self._timers) - self._dead_timers} sources={len(self._io_by_fd)}>"  # fmt: skip


async def _await(awaitable):
    return await awaitable


def run(coro):
    """Run `coro` on a new executor and close it: its result."""
    with Executor() as ex:
        return ex.block_on(coro)
