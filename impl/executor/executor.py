"""The executor: `Executor` (spawn, block_on, close), `run`, and `spawn`
from inside a task.  See the package doc."""

from __future__ import annotations

import heapq
import inspect
import itertools
import time
import warnings
import weakref

from asyncspec.impl import task as _task
from asyncspec.impl.reactor import Events, Interest, Poll, Registry, Token, Trigger
from asyncspec.impl.reactor import Waker as ReactorWaker
from asyncspec.impl.task.queue import _BEGIN_COMPLETE, _NEXT_EMPTY
from asyncspec.impl.task.waker import _BORROWED, _EXPIRED

from .futures import _YIELD, Context, TaskCancelled, _local, current_context
from .handles import JoinHandle, _report_unjoined, _TaskRecord
from .io import _fd_of, _IoSlot
from .timers import _Timer

_UNPARK_TOKEN = 0
_BUDGET = 128  # polls between two looks at the reactor (I/O is not starved)


class DeadlockError(RuntimeError):
    """block_on's task can never be woken."""


def spawn(coro) -> JoinHandle:
    """Spawn `coro` on the executor polling the current task."""
    return current_context().executor.spawn(coro)


class Executor:
    """A single-threaded executor: `spawn`, `block_on`, `close` (see the
    package doc).  `api` selects the build of the task layer (default: the
    installed one; a task.api(...) over another build, such as the tests'
    broken ones, runs the same executor on it).  `quarantine_limit`: the task
    layer keeps freed task blocks in quarantine; the executor flushes it (a
    look at each reactor turn) when it holds more than that many (None:
    never)."""

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
