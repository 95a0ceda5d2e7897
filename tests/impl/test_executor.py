"""The single-threaded executor (asyncspec.impl.executor) over the C tasks and the reactor.

Every test checks, after closing its executor, that no task is live, no
waker leaked and no file descriptor is left open.
"""

from __future__ import annotations

import errno
import gc
import os
import socket
import threading
import time

import pytest
from asyncspec.impl import task
from asyncspec.impl.executor import (
    PENDING,
    DeadlockError,
    Executor,
    Future,
    Ready,
    TaskCancelled,
    current_context,
    readable,
    run,
    sleep,
    sock_accept,
    sock_close,
    sock_connect,
    sock_recv,
    sock_send,
    sock_sendall,
    spawn,
    writable,
    yield_now,
)


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture(autouse=True)
def nothing_leaks():
    gc.collect()
    fds = fd_count()
    live = task.live_tasks()
    task.take_leaks()
    yield
    gc.collect()
    assert task.leaked_wakers() == 0, f"wakers leaked: tasks {task.take_leaks()}"
    assert task.live_tasks() == live, "tasks left live"
    assert fd_count() == fds, "file descriptors leaked"


@pytest.fixture
def ex():
    with Executor() as e:
        yield e


def socketpair():
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    return a, b


# ---------------------------------------------------------------- spawn, block_on, JoinHandle


def test_block_on_returns_the_result_or_raises_the_exception(ex):
    async def answer():
        return 42

    async def fail():
        raise KeyError("from the task")

    assert ex.block_on(answer()) == 42
    with pytest.raises(KeyError, match="from the task"):
        ex.block_on(fail())
    assert run(answer()) == 42


def test_spawned_tasks_are_joined_by_awaiting_their_handles(ex):
    async def child(n):
        await sleep(0.01 * (5 - n))
        if n == 3:
            raise ValueError("three")
        return n * n

    async def main():
        hs = [spawn(child(n)) for n in range(5)]
        assert not hs[0].done()
        with pytest.raises(RuntimeError, match=f"task {hs[0].task_id} has not finished"):
            hs[0].result()
        out = []
        for h in hs:
            try:
                out.append(await h)
            except ValueError as e:
                out.append(str(e))
        return hs, out

    hs, out = ex.block_on(main())
    assert out == [0, 1, 4, "three", 16]
    assert all(h.done() for h in hs) and hs[1].result() == 1
    assert isinstance(hs[3].exception(), ValueError)
    assert ex.pending_tasks() == 0
    for h in hs:
        h.detach()
        assert h.task.freed  # nothing holds the finished tasks any more


def test_a_join_handle_holds_its_task_until_detached(ex):
    async def child():
        return "done"

    h = ex.spawn(child())
    assert h.task.state().refs == 3  # JoinHandle + owned set + queue
    ex.run_until_idle()
    assert h.done() and h.result() == "done"
    assert h.task.state() == task.TaskState(False, False, True, 1)  # only the JoinHandle's
    h.detach()
    assert h.task.freed and h.result() == "done"  # the result stays readable


def test_tasks_interleave_at_their_awaits(ex):
    log = []

    async def worker(name, n):
        for i in range(n):
            log.append((name, i))
            await yield_now()

    async def main():
        a, b = spawn(worker("a", 3)), spawn(worker("b", 3))
        await a
        await b

    ex.block_on(main())
    assert log == [("a", 0), ("b", 0), ("a", 1), ("b", 1), ("a", 2), ("b", 2)]


def test_yield_now_is_one_wake_while_running_and_exactly_one_more_poll(ex):
    polls = []

    class Count(Future):
        def poll(self, cx):
            polls.append(cx.task_id)
            return Ready(None)

    async def main():
        await Count()
        await yield_now()
        await Count()
        return current_context().task_id

    h = ex.spawn(main())
    ex.run_until_idle()
    tid = h.result()
    assert polls == [tid, tid]
    assert h.task.calls() == task.Calls(clone=0, wake=0, wake_by_ref=1, drop=0)
    h.detach()


# ---------------------------------------------------------------- timers


def test_sleep_waits_at_least_its_delay_and_sleeps_overlap(ex):
    async def timed(d):
        t0 = time.monotonic()
        await sleep(d)
        return time.monotonic() - t0

    assert 0.05 <= ex.block_on(timed(0.05)) < 0.5

    order = []

    async def sleeper(d):
        await sleep(d)
        order.append(d)

    async def many():
        hs = [spawn(sleeper(d)) for d in (0.09, 0.03, 0.06, 0.0, 0.03)]
        for h in hs:
            await h

    t0 = time.monotonic()
    ex.block_on(many())
    assert time.monotonic() - t0 < 0.5  # concurrently: about the longest
    assert order == [0.0, 0.03, 0.03, 0.06, 0.09]


def test_a_sleep_holds_one_cloned_waker_until_it_fires(ex):
    async def nap():
        await sleep(0.05)

    h = ex.spawn(nap())
    ex.run_until_idle()  # first poll: the timer stores a clone
    s = h.task.state()
    assert s.refs == 3 and not s.complete  # JoinHandle + owned + the timer's waker
    assert h.task.calls() == task.Calls(clone=1, wake=0, wake_by_ref=0, drop=0)
    ex.block_on(h)
    # The timer woke its clone (consuming it): no drop call.
    assert h.task.calls() == task.Calls(clone=1, wake=1, wake_by_ref=0, drop=0)
    h.detach()


def test_sleep_refuses_bad_delays(ex):
    for bad, exc in ((-1, ValueError), (float("nan"), ValueError), (float("inf"), ValueError), ("1", TypeError)):
        with pytest.raises(exc, match="sleep needs"):
            sleep(bad)


# ---------------------------------------------------------------- I/O


def test_readable_wakes_the_task_when_data_arrives(ex):
    a, b = socketpair()
    try:

        async def reader():
            return await sock_recv(a, 100)

        h = ex.spawn(reader())
        ex.run_until_idle()
        assert not h.done()
        assert h.task.state().refs == 3  # + the waker stored in a's readiness slot
        assert ex.registered() == 1
        b.send(b"ping")
        assert ex.block_on(h) == b"ping"
        assert h.task.calls().wake == 1  # the reactor event woke the stored clone
        ex.deregister(a)
        assert ex.registered() == 0
        h.detach()
    finally:
        a.close()
        b.close()


def test_socket_helpers_over_tcp(ex):
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setblocking(False)
    addr = listener.getsockname()

    async def server():
        conn, _ = await sock_accept(listener)
        data = b""
        while not data.endswith(b"\n"):
            data += await sock_recv(conn, 4)
        await sock_sendall(conn, data.upper() * 1000)  # more than one send's worth, maybe
        await sock_close(conn)

    async def client():
        c = socket.socket()
        c.setblocking(False)
        try:
            await sock_connect(c, addr)
            assert await sock_send(c, b"hello ") == 6
            await writable(c)
            await sock_sendall(c, b"world\n")
            got = b""
            while chunk := await sock_recv(c, 65536):
                got += chunk
            return got
        finally:
            await sock_close(c)

    async def main():
        s = spawn(server())
        got = await spawn(client())
        await s
        return got

    try:
        assert ex.block_on(main()) == b"HELLO WORLD\n" * 1000
        ex.deregister(listener)
    finally:
        listener.close()
    assert ex.registered() == 0


def test_io_errors_are_clear(ex):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there

    async def refused():
        c = socket.socket()
        c.setblocking(False)
        try:
            await sock_connect(c, ("127.0.0.1", port))
        finally:
            await sock_close(c)

    with pytest.raises(ConnectionRefusedError, match=rf"connect to \('127.0.0.1', {port}\): Connection refused"):
        ex.block_on(refused())

    async def blocking():
        a, b = socket.socketpair()
        try:
            await sock_recv(a, 1)
        finally:
            a.close()
            b.close()

    with pytest.raises(ValueError, match="sock_recv: the socket is blocking"):
        ex.block_on(blocking())

    async def bad_fd():
        await readable(987)

    with pytest.raises(OSError, match="register: fd 987 is not an open file descriptor") as e:
        ex.block_on(bad_fd())
    assert e.value.errno == errno.EBADF

    async def closed_socket():
        c = socket.socket()
        c.close()
        await readable(c)

    with pytest.raises(OSError, match="readable: .* is closed"):
        ex.block_on(closed_socket())

    with pytest.raises(ValueError, match="is not registered with this executor"):
        ex.deregister(0)


def test_a_wake_from_another_thread_ends_the_reactor_wait(ex):
    class Slot(Future):
        """Ready once another thread has set `value` (it wakes a stored clone)."""

        def __init__(self):
            self.value = None
            self.waker = None
            self.lock = threading.Lock()

        def poll(self, cx):
            with self.lock:
                if self.value is not None:
                    return Ready(self.value)
                if self.waker is None:
                    self.waker = cx.waker.clone()
                else:
                    self.waker.clone_from(cx.waker)
            return PENDING

        def set(self, value):
            with self.lock:
                self.value = value
                w, self.waker = self.waker, None
            if w is not None:
                w.wake()  # from this thread: the C queue push unparks the reactor

    slot = Slot()

    def producer():
        time.sleep(0.1)
        slot.set("from the thread")

    async def main():
        return await slot

    th = threading.Thread(target=producer)
    t0 = time.monotonic()
    th.start()
    try:
        assert ex.block_on(main()) == "from the thread"
    finally:
        th.join()
    assert time.monotonic() - t0 < 2


# ---------------------------------------------------------------- misuse


def test_misuse_gets_clear_errors(ex):
    async def coro():
        return 1

    with pytest.raises(TypeError, match=r"call the async function \(coro\(\)\)"):
        ex.spawn(coro)
    with pytest.raises(TypeError, match="spawn needs a coroutine"):
        ex.spawn(42)

    async def asyncio_sleep():
        import asyncio

        await asyncio.sleep(0)

    with pytest.raises(TypeError, match="awaited None, which is not an asyncspec future"):
        ex.block_on(asyncio_sleep())

    async def nested():
        c = coro()
        try:
            ex.block_on(c)
        finally:
            c.close()

    with pytest.raises(RuntimeError, match="block_on called from inside a task"):
        ex.block_on(nested())

    async def self_join(holder):
        await holder[0]

    holder = []
    h = ex.spawn(self_join(holder))
    holder.append(h)
    with pytest.raises(RuntimeError, match="awaits its own JoinHandle"):
        ex.block_on(h)

    with pytest.raises(RuntimeError, match="no asyncspec task is being polled"):
        current_context()
    c = coro()
    ex.block_on(c)


def test_deadlock_is_reported_instead_of_blocking_forever(ex):
    class Never(Future):
        def poll(self, cx):
            return PENDING  # stores no waker: nothing can ever wake it

    async def stuck():
        await Never()

    async def main():
        await spawn(stuck())  # waits on a task that can never finish

    with pytest.raises(DeadlockError, match="can never finish"):
        ex.block_on(main())


# ---------------------------------------------------------------- shutdown


def test_close_cancels_what_is_pending_and_leaves_nothing():
    ex = Executor()
    a, b = socketpair()
    cleaned = []

    async def sleeper():
        try:
            await sleep(60)
        finally:
            cleaned.append("sleeper")

    async def reader():
        try:
            await sock_recv(a, 1)
        finally:
            await sock_close(a)  # finally blocks may still use the executor
            cleaned.append("reader")

    async def waiter(h):
        try:
            await h
        finally:
            cleaned.append("waiter")
            await sleep(1)  # cannot wait any more: TaskCancelled, swallowed by close

    hs = [ex.spawn(sleeper()), ex.spawn(reader())]
    hs.append(ex.spawn(waiter(hs[0])))
    ex.run_until_idle()
    assert ex.pending_tasks() == 3 and ex.live_tasks() == 3 and ex.registered() == 1
    ex.close()
    assert sorted(cleaned) == ["reader", "sleeper", "waiter"]
    assert a.fileno() == -1
    b.close()
    for h in hs:
        assert h.cancelled()
        with pytest.raises(TaskCancelled, match=f"task {h.task_id} was cancelled"):
            h.result()
        assert h.task.freed
    ex.close()  # idempotent
    with pytest.raises(RuntimeError, match="the executor is closed"):
        ex.spawn(None)


def test_a_failing_detached_task_is_reported(ex, capfd):
    async def boom():
        raise LookupError("nobody is listening")

    ex.spawn(boom()).detach()
    ex.run_until_idle()
    err = capfd.readouterr().err
    assert "raised, and its JoinHandle was dropped" in err and "nobody is listening" in err


def test_many_tasks_and_the_quarantine_stays_bounded():
    async def tiny(i):
        await sleep(0.001 * (i % 7))
        return i

    async def main():
        hs = [spawn(tiny(i)) for i in range(3000)]
        total = 0
        for h in hs:
            total += await h
            h.detach()
        return total

    task.flush()
    with Executor(quarantine_limit=100) as ex:
        assert ex.block_on(main()) == sum(range(3000))
        assert task.quarantined() < 3000  # flushed along the way
