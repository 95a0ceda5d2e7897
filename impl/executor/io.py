"""I/O readiness from the reactor: `readable(source)`, `writable(source)`,
`clear_readiness`, and helpers over non-blocking sockets (see the package
doc's "I/O readiness")."""

from __future__ import annotations

import errno as _errno
import os
import socket
import weakref

from .futures import _READY_NONE, PENDING, Context, Future, current_context


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
