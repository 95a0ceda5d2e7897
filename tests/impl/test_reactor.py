"""Tests of the reference reactor (asyncspec.impl.reactor) on Linux epoll."""

from __future__ import annotations

import errno
import fcntl
import math
import os
import random
import signal
import socket
import sys
import tempfile
import threading
import time

import pytest
from asyncspec.impl import (
    Event,
    Events,
    Interest,
    Poll,
    Registry,
    Token,
    Trigger,
    Waker,
    reactor,
)

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="epoll backend")

R = Interest.READABLE
W = Interest.WRITABLE
RW = R | W


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture(autouse=True)
def no_fd_leak():
    before = fd_count()
    yield
    assert fd_count() == before, "the test leaked file descriptors"


@pytest.fixture
def poll():
    with Poll() as p:
        yield p


def pipe():
    return os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)


def is_cloexec(fd: int) -> bool:
    return bool(fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC)


def events_of(p: Poll, timeout=0, capacity=64) -> list[Event]:
    ev = Events(capacity)
    n = p.poll(ev, timeout)
    assert n == len(ev)
    return list(ev)


def by_token(evs) -> dict[int, int]:
    out: dict[int, int] = {}
    for e in evs:
        out[int(e.token)] = out.get(int(e.token), 0) | e.raw
    return out


# --------------------------------------------------------------------------
# Value types


def test_token_range():
    assert Token(0) == 0 and Token(2**64 - 1) == 2**64 - 1
    assert isinstance(Token(5), int) and repr(Token(5)) == "Token(5)"
    for bad in (-1, 2**64, -(2**70)):
        with pytest.raises(ValueError, match=str(bad)):
            Token(bad)
    for bad in ("1", 1.0, None):
        with pytest.raises(TypeError):
            Token(bad)


def test_interest_validation(poll):
    r, w = pipe()
    try:
        reg = poll.registry()
        with pytest.raises(ValueError, match="empty"):
            reg.register(r, 0, Interest(0))
        with pytest.raises(TypeError):
            reg.register(r, 0, 1)
        with pytest.raises(TypeError):
            reg.register(r, 0, R, trigger="edge")
        with pytest.raises(ValueError, match="-3"):
            reg.register(r, -3, R)
        with pytest.raises(TypeError):
            reg.register("not an fd", 0, R)
        # Nothing was registered by the failed calls.
        with pytest.raises(OSError) as ei:
            reg.deregister(r)
        assert ei.value.errno == errno.ENOENT
    finally:
        os.close(r)
        os.close(w)


def test_events_buffer():
    with pytest.raises(ValueError, match="-1"):
        Events(-1)
    with pytest.raises(TypeError):
        Events(1.5)
    ev = Events(4)
    assert ev.capacity == 4 and len(ev) == 0 and ev.is_empty() and list(ev) == []
    assert Events(0).capacity == 0


def test_event_predicates_and_repr():
    E = reactor
    cases = {
        E.EPOLLIN: dict(readable=True),
        E.EPOLLPRI: dict(readable=True, priority=True),
        E.EPOLLOUT: dict(writable=True),
        E.EPOLLHUP: dict(read_closed=True, write_closed=True),
        E.EPOLLIN | E.EPOLLRDHUP: dict(readable=True, read_closed=True),
        E.EPOLLRDHUP: dict(),
        E.EPOLLOUT | E.EPOLLERR: dict(writable=True, write_closed=True, error=True),
        E.EPOLLERR: dict(write_closed=True, error=True),
        E.EPOLLIN | E.EPOLLERR: dict(readable=True, error=True),
    }
    for raw, want in cases.items():
        e = Event(Token(1), raw)
        got = dict(
            readable=e.is_readable(),
            writable=e.is_writable(),
            read_closed=e.is_read_closed(),
            write_closed=e.is_write_closed(),
            error=e.is_error(),
            priority=e.is_priority(),
        )
        assert got == {k: want.get(k, False) for k in got}, hex(raw)
    assert repr(Event(Token(7), E.EPOLLIN | E.EPOLLOUT)) == "Event(token=7, raw=EPOLLIN|EPOLLOUT)"


# --------------------------------------------------------------------------
# Readiness


def test_pipe_readable_and_writable(poll):
    r, w = pipe()
    try:
        reg = poll.registry()
        reg.register(r, Token(1), R)
        reg.register(w, 2, W)
        assert by_token(events_of(poll)) == {2: reactor.EPOLLOUT}
        os.write(w, b"x")
        evs = events_of(poll)
        assert by_token(evs) == {1: reactor.EPOLLIN}
        (e,) = evs
        assert isinstance(e.token, Token) and e.is_readable() and not e.is_writable()
        # Writer closed: the read end reports HUP (read closed).
        os.read(r, 10)
        os.close(w)
        w = -1
        (e,) = events_of(poll)
        assert e.token == 1 and e.is_read_closed() and e.raw & reactor.EPOLLHUP
        reg.deregister(r)
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)


def test_pipe_write_end_reports_error_when_reader_closes(poll):
    r, w = pipe()
    try:
        poll.registry().register(w, 9, W)
        assert by_token(events_of(poll)) == {9: reactor.EPOLLOUT}
        os.close(r)
        r = -1
        (e,) = events_of(poll)
        assert e.raw == reactor.EPOLLOUT | reactor.EPOLLERR
        assert e.is_write_closed() and e.is_error() and not e.is_read_closed()
    finally:
        os.close(w)
        if r >= 0:
            os.close(r)


def test_socketpair_readable_writable_and_read_closed(poll):
    a, b = socket.socketpair()
    try:
        a.setblocking(False)
        reg = poll.registry()
        reg.register(a, 3, RW | Interest.READ_CLOSED)
        (e,) = events_of(poll)
        assert e.token == 3 and e.is_writable() and not e.is_readable()
        b.send(b"hello")
        (e,) = events_of(poll)
        assert e.is_readable() and e.is_writable() and not e.is_read_closed()
        assert a.recv(100) == b"hello"
        # Half-close by the peer: EPOLLIN|EPOLLRDHUP, read closed but not HUP.
        b.shutdown(socket.SHUT_WR)
        (e,) = events_of(poll)
        assert e.is_read_closed() and not e.raw & reactor.EPOLLHUP
        assert not e.is_write_closed()
        # Full close: HUP, both directions closed.
        b.close()
        (e,) = events_of(poll)
        assert e.raw & reactor.EPOLLHUP and e.is_read_closed() and e.is_write_closed()
        reg.deregister(a.fileno())
    finally:
        a.close()
        b.close()


def test_read_closed_without_readable_is_raw_only(poll):
    a, b = socket.socketpair()
    try:
        poll.registry().register(a, 1, W | Interest.READ_CLOSED, trigger=Trigger.LEVEL)
        assert by_token(events_of(poll)) == {1: reactor.EPOLLOUT}
        b.shutdown(socket.SHUT_WR)
        (e,) = events_of(poll)
        assert e.raw == reactor.EPOLLOUT | reactor.EPOLLRDHUP
        assert not e.is_read_closed()  # mio's definition needs EPOLLIN too
    finally:
        a.close()
        b.close()


def test_rdhup_only_reported_when_asked(poll):
    a, b = socket.socketpair()
    try:
        poll.registry().register(a, 1, R, trigger=Trigger.LEVEL)
        b.shutdown(socket.SHUT_WR)
        (e,) = events_of(poll)
        assert e.raw == reactor.EPOLLIN  # no EPOLLRDHUP without READ_CLOSED
        assert not e.is_read_closed()
    finally:
        a.close()
        b.close()


def test_eventfd_readable(poll):
    efd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
    try:
        poll.registry().register(efd, 2**64 - 1, R)
        assert events_of(poll) == []
        os.eventfd_write(efd, 3)
        (e,) = events_of(poll)
        assert e.token == 2**64 - 1 and e.is_readable()
        assert os.eventfd_read(efd) == 3
    finally:
        os.close(efd)


def test_priority_with_tcp_urgent_data(poll):
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        c = socket.create_connection(srv.getsockname(), timeout=5)
        s, _ = srv.accept()
        try:
            poll.registry().register(s, 4, Interest.PRIORITY, trigger=Trigger.LEVEL)
            c.send(b"!", socket.MSG_OOB)
            (e,) = events_of(poll, timeout=2)
            assert e.token == 4 and e.is_priority() and e.is_readable()
        finally:
            s.close()
            c.close()
    finally:
        srv.close()


def test_capacity_limits_events_per_poll(poll):
    pipes = [pipe() for _ in range(5)]
    try:
        for i, (r, w) in enumerate(pipes):
            poll.registry().register(r, i, R, trigger=Trigger.LEVEL)
            os.write(w, b"x")
        ev = Events(2)
        seen = set()
        for _ in range(3):
            assert poll.poll(ev, 0) == 2 == len(ev)
            seen |= {int(e.token) for e in ev}
        assert seen == set(range(5))  # level-triggered events rotate
        assert poll.poll(Events(100), 0) == 5
    finally:
        for r, w in pipes:
            os.close(r)
            os.close(w)


# --------------------------------------------------------------------------
# Level, edge, oneshot


def test_level_triggered_repeats(poll):
    r, w = pipe()
    try:
        poll.registry().register(r, 1, R, trigger=Trigger.LEVEL)
        os.write(w, b"x")
        for _ in range(3):
            assert by_token(events_of(poll)) == {1: reactor.EPOLLIN}
        os.read(r, 1)
        assert events_of(poll) == []
    finally:
        os.close(r)
        os.close(w)


def test_edge_triggered_once_per_edge(poll):
    r, w = pipe()
    try:
        poll.registry().register(r, 1, R)  # EDGE is the default
        os.write(w, b"x")
        assert len(events_of(poll)) == 1
        assert events_of(poll) == []  # still readable, but no new edge
        os.write(w, b"y")
        assert len(events_of(poll)) == 1  # new data: new edge
        assert os.read(r, 10) == b"xy"
        with pytest.raises(BlockingIOError):
            os.read(r, 10)  # drained until EAGAIN
        assert events_of(poll) == []
    finally:
        os.close(r)
        os.close(w)


@pytest.mark.parametrize("trigger", [Trigger.LEVEL, Trigger.EDGE])
def test_oneshot_rearmed_by_reregister(poll, trigger):
    r, w = pipe()
    try:
        reg = poll.registry()
        reg.register(r, 1, R, trigger=trigger, oneshot=True)
        os.write(w, b"x")
        assert by_token(events_of(poll)) == {1: reactor.EPOLLIN}
        os.write(w, b"y")
        assert events_of(poll) == []  # disarmed, not removed
        with pytest.raises(OSError) as ei:
            reg.register(r, 1, R)
        assert ei.value.errno == errno.EEXIST
        reg.reregister(r, 5, R, trigger=trigger, oneshot=True)  # re-arm, new token
        assert by_token(events_of(poll)) == {5: reactor.EPOLLIN}
        assert events_of(poll) == []
        reg.reregister(r, 6, R, trigger=Trigger.LEVEL)  # back to a plain registration
        assert by_token(events_of(poll)) == {6: reactor.EPOLLIN}
        assert by_token(events_of(poll)) == {6: reactor.EPOLLIN}
        reg.deregister(r)
        assert events_of(poll) == []
    finally:
        os.close(r)
        os.close(w)


def test_reregister_changes_interest(poll):
    a, b = socket.socketpair()
    try:
        reg = poll.registry()
        reg.register(a, 1, R, trigger=Trigger.LEVEL)
        assert events_of(poll) == []
        reg.reregister(a, 2, W, trigger=Trigger.LEVEL)
        assert by_token(events_of(poll)) == {2: reactor.EPOLLOUT}
    finally:
        a.close()
        b.close()


# --------------------------------------------------------------------------
# Errors from the kernel


def raises_errno(code, fn, *args, match=None, **kw):
    with pytest.raises(OSError) as ei:
        fn(*args, **kw)
    assert ei.value.errno == code, ei.value
    if match:
        assert match in str(ei.value), str(ei.value)
    return ei.value


def test_register_twice_is_eexist(poll):
    r, w = pipe()
    try:
        poll.registry().register(r, 1, R)
        e = raises_errno(errno.EEXIST, poll.registry().register, r, 2, W)
        assert str(e) == f"[Errno {errno.EEXIST}] register: fd {r} is already registered in this Poll"
    finally:
        os.close(r)
        os.close(w)


def test_unregistered_is_enoent(poll):
    r, w = pipe()
    try:
        raises_errno(errno.ENOENT, poll.registry().reregister, r, 1, R, match=f"reregister: fd {r} is not registered")
        raises_errno(errno.ENOENT, poll.registry().deregister, r, match=f"deregister: fd {r} is not registered")
        poll.registry().register(r, 1, R)
        poll.registry().deregister(r)
        raises_errno(errno.ENOENT, poll.registry().deregister, r)
    finally:
        os.close(r)
        os.close(w)


def test_closed_fd_is_ebadf(poll):
    r, w = pipe()
    os.close(r)
    os.close(w)
    reg = poll.registry()
    raises_errno(errno.EBADF, reg.register, r, 1, R, match=f"register: fd {r}")
    raises_errno(errno.EBADF, reg.reregister, r, 1, R, match=f"reregister: fd {r}")
    raises_errno(errno.EBADF, reg.deregister, r, match=f"deregister: fd {r}")
    raises_errno(errno.EBADF, reg.register, -1, 1, R)
    raises_errno(errno.EBADF, reg.register, 2**40, 1, R)


def test_regular_file_and_directory_are_eperm(poll):
    with tempfile.TemporaryFile() as f:
        raises_errno(errno.EPERM, poll.registry().register, f, 1, R, match=f"fd {f.fileno()}")
    dfd = os.open(tempfile.gettempdir(), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        raises_errno(errno.EPERM, poll.registry().register, dfd, 1, R)
    finally:
        os.close(dfd)


def test_epoll_nesting_einval_and_eloop():
    with Poll() as p1, Poll() as p2:
        raises_errno(errno.EINVAL, p1.registry().register, p1, 1, R, match="itself")
        p1.registry().register(p2, 1, R)  # nesting one level is allowed
        raises_errno(errno.ELOOP, p2.registry().register, p1, 2, R, match=f"fd {p1.fileno()}")


# --------------------------------------------------------------------------
# Timeouts


def test_timeout_validation(poll):
    ev = Events(4)
    for bad in (-2, -0.5, -1.0001, float("-inf"), float("nan")):
        with pytest.raises(ValueError) as ei:
            poll.poll(ev, bad)
        if not math.isnan(bad):
            assert repr(bad) in str(ei.value)
    for bad in ("1", True, [1]):
        with pytest.raises(TypeError):
            poll.poll(ev, bad)
    with pytest.raises(TypeError):
        poll.poll([], 0)


def test_timeout_zero_and_finite(poll):
    ev = Events(4)
    t = time.monotonic()
    assert poll.poll(ev, 0) == 0
    assert poll.poll(ev, 1e-7) == 0  # rounded up to 1 ms, not an error
    assert time.monotonic() - t < 0.5
    t = time.monotonic()
    assert poll.poll(ev, 0.05) == 0
    assert time.monotonic() - t >= 0.045


@pytest.mark.parametrize("forever", [None, -1, -1.0, float("inf")])
def test_blocking_timeouts_accepted(poll, forever):
    r, w = pipe()
    try:
        os.write(w, b"x")
        poll.registry().register(r, 1, R)
        ev = Events(4)
        assert poll.poll(ev, forever) == 1
    finally:
        os.close(r)
        os.close(w)


def test_poll_clears_events(poll):
    r, w = pipe()
    try:
        poll.registry().register(r, 1, R)
        os.write(w, b"x")
        ev = Events(4)
        assert poll.poll(ev, 0) == 1 and not ev.is_empty()
        assert poll.poll(ev, 0) == 0 and ev.is_empty() and len(ev) == 0
        os.write(w, b"x")
        poll.poll(ev, 0)
        ev.clear()
        assert ev.is_empty()
    finally:
        os.close(r)
        os.close(w)


def test_zero_capacity_is_einval(poll):
    e = raises_errno(errno.EINVAL, poll.poll, Events(0), 0)
    assert "capacity" in str(e)
    raises_errno(errno.EINVAL, poll.poll, Events(0), None)  # fails before blocking


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(), reason="signals")
def test_finite_poll_survives_signal():
    fired = []
    old = signal.signal(signal.SIGALRM, lambda *a: fired.append(time.monotonic()))
    try:
        with Poll() as p:
            t = time.monotonic()
            signal.setitimer(signal.ITIMER_REAL, 0.05)
            assert p.poll(Events(4), 0.3) == 0
            assert fired and time.monotonic() - t >= 0.29  # retried with the time left
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(), reason="signals")
@pytest.mark.parametrize("timeout", [2, None], ids=["finite", "infinite"])
def test_raising_signal_handler_ends_the_poll(timeout):
    """A handler that raises (like Ctrl-C's KeyboardInterrupt) ends a blocking poll."""

    class Boom(Exception):
        pass

    def handler(*a):
        raise Boom

    old = signal.signal(signal.SIGALRM, handler)
    try:
        with Poll() as p:
            t = time.monotonic()
            signal.setitimer(signal.ITIMER_REAL, 0.05)
            with pytest.raises(Boom):
                p.poll(Events(4), timeout)
            assert time.monotonic() - t < 1
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(), reason="signals")
def test_infinite_poll_runs_signal_handlers_while_blocked():
    """timeout=None: a signal handler runs during the wait (not after it), and
    the poll then goes on waiting (PEP 475)."""
    fired = []
    old = signal.signal(signal.SIGALRM, lambda *a: fired.append(time.monotonic()))
    with Poll() as p, Waker(p.registry(), 1) as waker:
        timer = threading.Timer(0.3, waker.wake)
        try:
            started = time.monotonic()
            signal.setitimer(signal.ITIMER_REAL, 0.05)
            timer.start()
            assert p.poll(Events(4), None) == 1
            returned = time.monotonic()
            assert fired and fired[0] < started + 0.25 < returned
        finally:
            timer.cancel()
            timer.join(5)
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)


# --------------------------------------------------------------------------
# Waker


def test_waker_wakes_blocked_poll_from_another_thread():
    with Poll() as p, Waker(p.registry(), Token(42)) as waker:
        rescue_r, rescue_w = pipe()
        try:
            p.registry().register(rescue_r, 99, R)
            result = {}

            def poller():
                ev = Events(8)
                t = time.monotonic()
                result["n"] = p.poll(ev, None)
                result["dt"] = time.monotonic() - t
                result["events"] = list(ev)

            th = threading.Thread(target=poller, daemon=True)
            th.start()
            time.sleep(0.1)
            assert th.is_alive(), "poll(None) returned without an event"
            waker.wake()  # this thread needs the GIL: the poller must have released it
            th.join(5)
            if th.is_alive():
                os.write(rescue_w, b"x")  # unblock so the suite cannot hang
                th.join(5)
                pytest.fail("Waker did not wake a poll blocked with timeout=None")
            assert result["n"] == 1
            (e,) = result["events"]
            assert e.token == 42 and e.is_readable()
            assert result["dt"] >= 0.09
        finally:
            os.close(rescue_r)
            os.close(rescue_w)


def test_waker_edge_per_wake_and_coalescing(poll):
    with Waker(poll.registry(), 7) as waker:
        assert waker.token == 7
        assert events_of(poll) == []
        waker.wake()
        waker.wake()
        assert by_token(events_of(poll)) == {7: reactor.EPOLLIN}  # coalesced
        assert events_of(poll) == []
        waker.wake()  # counter is not reset by the poller; still a new edge
        assert by_token(events_of(poll)) == {7: reactor.EPOLLIN}


def test_waker_full_counter_is_reset(poll):
    with Waker(poll.registry(), 7) as waker:
        os.eventfd_write(waker.fileno(), 2**64 - 2)  # the maximum counter value
        events_of(poll)
        with pytest.raises(BlockingIOError):
            os.eventfd_write(waker.fileno(), 1)
        waker.wake()  # EAGAIN inside: read to reset, then write
        assert by_token(events_of(poll)) == {7: reactor.EPOLLIN}
        assert os.eventfd_read(waker.fileno()) == 1


def test_waker_close_and_errors(poll):
    waker = Waker(poll.registry(), 1)
    fd = waker.fileno()
    assert is_cloexec(fd)
    waker.close()
    waker.close()
    assert waker.closed
    raises_errno(errno.EBADF, waker.wake, match="Waker is closed")
    with pytest.raises(ValueError):
        Waker(poll.registry(), -1)
    with pytest.raises(TypeError):
        Waker(poll, 1)
    # The closed eventfd left the epoll set with its fd.
    assert events_of(poll) == []


def test_waker_many_threads(poll):
    with Waker(poll.registry(), 5) as waker:
        threads = [threading.Thread(target=lambda: [waker.wake() for _ in range(200)]) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(5)
        assert by_token(events_of(poll)) == {5: reactor.EPOLLIN}
        assert os.eventfd_read(waker.fileno()) == 800


# --------------------------------------------------------------------------
# Registry clones, closing, context managers


def test_try_clone(poll):
    r, w = pipe()
    try:
        with poll.registry().try_clone() as clone:
            assert isinstance(clone, Registry)
            assert clone.fileno() != poll.fileno() and is_cloexec(clone.fileno())
            clone.register(r, 8, R)
            raises_errno(errno.EEXIST, poll.registry().register, r, 8, R)  # same epoll instance
            os.write(w, b"x")
            assert by_token(events_of(poll)) == {8: reactor.EPOLLIN}
            with clone.try_clone() as clone2:
                clone2.deregister(r)
            raises_errno(errno.ENOENT, clone.deregister, r)
        raises_errno(errno.EBADF, clone.register, r, 1, R, match="Registry is closed")
        raises_errno(errno.EBADF, clone.try_clone, match="Registry is closed")
        clone.close()  # idempotent
    finally:
        os.close(r)
        os.close(w)


def test_clone_outlives_poll():
    r, w = pipe()
    try:
        p = Poll()
        clone = p.registry().try_clone()
        p.close()
        raises_errno(errno.EBADF, p.registry().register, r, 1, R, match="Poll is closed")
        clone.register(r, 1, R)  # the epoll instance lives on in the clone
        clone.deregister(r)
        clone.close()
    finally:
        os.close(r)
        os.close(w)


def test_poll_close_and_context_manager():
    before = fd_count()
    with Poll() as p:
        assert is_cloexec(p.fileno())
        clone = p.registry().try_clone()
        waker = Waker(p.registry(), 1)
        with clone, waker:
            assert fd_count() == before + 3
        assert fd_count() == before + 1
        assert repr(p).startswith("<Poll fd=")
    assert fd_count() == before
    assert p.closed and repr(p) == "<Poll closed>"
    raises_errno(errno.EBADF, p.poll, Events(1), 0, match="Poll is closed")
    raises_errno(errno.EBADF, p.fileno, match="Poll is closed")
    raises_errno(errno.EBADF, p.registry().deregister, 0, match="Poll is closed")
    raises_errno(errno.EBADF, Waker, p.registry(), 1, match="Poll is closed")
    p.close()
    p.registry().close()  # a Poll's own registry: no-op


def test_own_registry_close_is_noop(poll):
    reg = poll.registry()
    assert reg is poll.registry()
    with reg:
        pass
    assert not reg.closed
    assert poll.poll(Events(1), 0) == 0


def test_registration_belongs_to_open_file_description(poll):
    """Closing an fd while a dup lives keeps the registration alive."""
    r, w = pipe()
    r2 = os.dup(r)
    try:
        poll.registry().register(r, 3, R, trigger=Trigger.LEVEL)
        os.close(r)
        os.write(w, b"x")
        assert by_token(events_of(poll)) == {3: reactor.EPOLLIN}  # still reported
        raises_errno(errno.EBADF, poll.registry().deregister, r)
        raises_errno(errno.ENOENT, poll.registry().deregister, r2)  # keyed by (fd number, file)
        os.close(r2)
        r2 = -1
        assert events_of(poll) == []  # last reference gone: registration gone
    finally:
        os.close(w)
        if r2 >= 0:
            os.close(r2)


def test_unclosed_poll_warns_and_closes():
    before = fd_count()
    p = Poll()
    with pytest.warns(ResourceWarning):
        del p
        import gc

        gc.collect()
    assert fd_count() == before


# --------------------------------------------------------------------------
# Random operations: nothing leaks


OK_ERRNOS = {errno.EEXIST, errno.ENOENT, errno.EBADF, errno.EPERM, errno.EINVAL, errno.ELOOP}


def test_random_operations_leak_no_fds():
    seed = int(os.environ.get("REACTOR_SEED", "20240611"))
    rng = random.Random(seed)
    before = fd_count()
    polls: list[Poll] = []
    clones: list[Registry] = []
    wakers: list[Waker] = []
    sources: list[int] = []  # readable/writable fds we own
    peers: dict[int, int] = {}  # fd -> the fd to write to for it to become readable
    objs = []  # every object ever made, kept alive so __del__ cannot be what closes fds
    tmp = tempfile.TemporaryFile()
    counts: dict[str, int] = {}

    def registries():
        return [p.registry() for p in polls if not p.closed] + [c for c in clones if not c.closed]

    def close_source(fd):
        sources.remove(fd)
        peers.pop(fd, None)
        for k, v in list(peers.items()):
            if v == fd:
                peers.pop(k)
        os.close(fd)

    def new_sources():
        kind = rng.randrange(3)
        if kind == 0:
            r, w = pipe()
            sources.extend((r, w))
            peers[r] = w
        elif kind == 1:
            a, b = socket.socketpair()
            a.setblocking(False)
            b.setblocking(False)
            fa, fb = a.detach(), b.detach()
            sources.extend((fa, fb))
            peers[fa] = fb
            peers[fb] = fa
        else:
            e = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
            sources.append(e)
            peers[e] = e

    def any_fd():
        choice = rng.random()
        if sources and choice < 0.85:
            return rng.choice(sources)
        if choice < 0.9:
            return tmp  # EPERM
        if choice < 0.95 and polls:
            return rng.choice(polls)  # nesting: EINVAL / ELOOP / fine
        return rng.choice([-1, 10**6])  # EBADF

    def any_interest():
        return Interest(rng.randrange(1, 16))

    def any_mode():
        return dict(trigger=rng.choice([Trigger.LEVEL, Trigger.EDGE]), oneshot=rng.random() < 0.3)

    ops = {}

    def op(weight):
        def deco(fn):
            ops[fn.__name__] = (weight, fn)
            return fn

        return deco

    @op(6)
    def create_sources():
        if len(sources) < 120:
            new_sources()

    @op(3)
    def close_a_source():
        if sources:
            close_source(rng.choice(sources))

    @op(2)
    def new_poll():
        if len(polls) < 6:
            p = Poll()
            polls.append(p)
            objs.append(p)

    @op(1)
    def close_poll():
        if polls:
            p = polls.pop(rng.randrange(len(polls)))
            p.close()

    @op(2)
    def clone():
        regs = registries()
        if regs and len(clones) < 6:
            c = rng.choice(regs).try_clone()
            clones.append(c)
            objs.append(c)

    @op(1)
    def close_clone():
        if clones:
            clones.pop(rng.randrange(len(clones))).close()

    @op(2)
    def new_waker():
        regs = registries()
        if regs and len(wakers) < 6:
            wk = Waker(rng.choice(regs), rng.randrange(2**64))
            wakers.append(wk)
            objs.append(wk)

    @op(1)
    def close_waker():
        if wakers:
            wakers.pop(rng.randrange(len(wakers))).close()

    @op(4)
    def wake():
        if wakers:
            rng.choice(wakers).wake()

    @op(15)
    def register():
        regs = registries()
        if regs:
            rng.choice(regs).register(any_fd(), rng.randrange(2**64), any_interest(), **any_mode())

    @op(10)
    def reregister():
        regs = registries()
        if regs:
            rng.choice(regs).reregister(any_fd(), rng.randrange(2**64), any_interest(), **any_mode())

    @op(8)
    def deregister():
        regs = registries()
        if regs:
            rng.choice(regs).deregister(any_fd())

    @op(12)
    def write():
        if peers:
            fd = rng.choice(list(peers))
            target = peers[fd]
            if target == fd:
                os.eventfd_write(fd, 1)
            else:
                try:
                    os.write(target, b"x" * rng.randrange(1, 64))
                except (BlockingIOError, BrokenPipeError, ConnectionResetError):
                    pass

    @op(8)
    def read():
        if sources:
            fd = rng.choice(sources)
            try:
                os.read(fd, 4096)
            except (BlockingIOError, OSError):
                pass

    @op(15)
    def do_poll():
        live = [p for p in polls if not p.closed]
        if live:
            cap = rng.choice([0, 1, 4, 64])
            live_poll = rng.choice(live)
            n = live_poll.poll(Events(cap), 0)
            assert 0 <= n <= cap

    @op(2)
    def bad_arguments():
        regs = registries()
        if not regs or not sources:
            return
        reg = rng.choice(regs)
        which = rng.randrange(3)
        if which == 0:
            reg.register(rng.choice(sources), 1, Interest(0))
        elif which == 1:
            reg.register(rng.choice(sources), -5, Interest.READABLE)
        else:
            live = [p for p in polls if not p.closed]
            if live:
                rng.choice(live).poll(Events(1), -3)

    @op(1)
    def use_closed():
        candidates = [x for x in objs if x.closed]
        if candidates:
            x = rng.choice(candidates)
            if isinstance(x, Poll):
                x.poll(Events(1), 0)
            elif isinstance(x, Registry):
                x.register(0, 0, Interest.READABLE)
            else:
                x.wake()

    names = list(ops)
    weights = [ops[n][0] for n in names]
    t0 = time.monotonic()
    try:
        for _ in range(10_000):
            name = rng.choices(names, weights)[0]
            try:
                ops[name][1]()
                counts[name] = counts.get(name, 0) + 1
            except ValueError:
                counts["ValueError"] = counts.get("ValueError", 0) + 1
            except OSError as e:
                assert e.errno in OK_ERRNOS, (name, e)
                counts[f"errno {errno.errorcode[e.errno]}"] = counts.get(f"errno {errno.errorcode[e.errno]}", 0) + 1
    finally:
        for x in wakers + clones + polls:
            x.close()
        for fd in list(sources):
            close_source(fd)
        tmp.close()
    elapsed = time.monotonic() - t0
    # Measured while every reactor object is still referenced: __del__ closed nothing.
    assert fd_count() == before
    assert all(x.closed for x in objs)
    # The mix really exercised the error paths.
    for code in ("EEXIST", "ENOENT", "EBADF", "EPERM"):
        assert counts.get(f"errno {code}", 0) > 0, (code, counts)
    assert counts.get("ValueError", 0) > 0
    assert elapsed < 15, elapsed
