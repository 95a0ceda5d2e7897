"""The readiness target protocol, and the real sources every Linux target shares.

A readiness target is a reactor: it registers fds, reregisters, deregisters
and polls.  The sources themselves (pipes, socketpairs, eventfds, a regular
file) and the operations on them are the kernel's, the same for every
reactor on this machine, so `LinuxSources` performs them and a concrete
target only implements the four reactor calls:

    ctl_register(fd, token, interest)      interest: `Interest` below
    ctl_reregister(fd, token, interest)
    ctl_deregister(fd)
    poll(max_events) -> [(token, epoll flags), ...]

Each raises OSError with the errno the kernel gave.  Observations are
returned in the spec's vocabulary: ``("ok",)``, ``("n", k)``,
``("err", "EAGAIN")``, and for a poll a sorted tuple of ``(token, flags)``.

Fd numbers: the spec talks about "our fd" after it was closed (epoll_ctl on
it must fail with EBADF).  If the process reused that number for something
else, the check would hit the wrong file.  So every source fd of a target is
moved to a fixed number in a block far above what the process otherwise
uses (the kernel always hands out the lowest free number), and a closed
number of ours stays closed for the rest of the run.
"""

from __future__ import annotations

import errno
import os
import resource
import select
import socket
import tempfile
import threading
from dataclasses import dataclass
from typing import Any, Hashable, Mapping

from asyncspec.conformance.target import Target
from asyncspec.spec.readiness import AREA as SPEC_AREA
from asyncspec.spec.readiness import machine as M


@dataclass(frozen=True)
class Interest:
    """What a registration asks for, in the spec's terms."""

    readable: bool
    writable: bool
    rdhup: bool
    edge: bool
    oneshot: bool


def errname(e: OSError) -> str:
    return errno.errorcode.get(e.errno, str(e.errno))


# ----------------------------------------------------------- fd number blocks

_BLOCK = 8  # per slot: ours, dup, peer
_blocks_lock = threading.Lock()
_blocks_free: list[int] = []
_blocks_next = [0]


def _fd_base() -> int:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft > 4096:
        return 2048
    return max(64, soft // 2)


def _take_block(size: int) -> int:
    with _blocks_lock:
        if _blocks_free:
            return _blocks_free.pop()
        start = _fd_base() + _blocks_next[0] * size
        _blocks_next[0] += 1
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != resource.RLIM_INFINITY and start + size > soft:
            raise OSError(errno.EMFILE, f"no room for {size} fds below RLIMIT_NOFILE={soft}")
        return start


def _give_block(start: int) -> None:
    with _blocks_lock:
        _blocks_free.append(start)


def _place(fd: int, number: int) -> int:
    """Move ``fd`` to exactly ``number`` (close-on-exec) and return it."""
    if fd == number:
        return fd
    os.dup2(fd, number, inheritable=False)
    os.close(fd)
    return number


def _epoll_at(fd: int) -> "select.epoll":
    """A throwaway select.epoll object for the epoll instance behind ``fd``
    (it owns a dup, so closing it leaves ``fd`` alone)."""
    return select.epoll.fromfd(os.dup(fd))


# -------------------------------------------------------------------- sources


class _Src:
    __slots__ = ("kind", "ours", "dup", "peer", "ours_open", "dup_open", "peer_open")

    def __init__(self, kind: int, base: int):
        self.kind = kind
        self.ours, self.dup, self.peer = base, base + 1, base + 2
        self.ours_open = self.dup_open = self.peer_open = False

    def live_fd(self) -> int:
        return self.ours if self.ours_open else self.dup


class EpollWire(Target):
    """The readiness area's wire view: how an epoll target's answers are read.

    Every epoll-dialect target derives from it, and so does an `exec:`
    adapter's target class: a poll's events are compared in one order (a
    reactor may report them in any), and the spec's events, which name the
    slot, are seen as (token, flags).
    """

    area = "readiness"
    dialect = "epoll"

    def project(self, state, action: str, obs: Hashable) -> Hashable:
        if action == "poll" and obs and obs[0] != "err":
            return tuple(sorted((token, flags) for _slot, token, flags in obs))
        return obs

    @staticmethod
    def received(action: str, obs: Hashable) -> Hashable:
        """An observation as the spec compares it: a poll's events in one
        order (a reactor may report them in any)."""
        if action == "poll" and obs and isinstance(obs[0], tuple):
            return tuple(sorted(obs))
        return obs


class LinuxSources(EpollWire):
    """Base of every readiness target running on Linux: it creates the
    sources and performs every operation on them; a concrete target
    implements the reactor calls."""

    slots = M.SLOTS

    def open(self) -> None:
        self._base = _take_block(_BLOCK * self.slots)
        self._src: dict[int, _Src] = {}
        self.reactor_open()

    def close(self) -> None:
        try:
            self.reactor_close()
        finally:
            for src in self._src.values():
                self._close_all(src)
            self._src = {}
            _give_block(self._base)

    def _close_all(self, src: _Src) -> None:
        for attr, flag in (("ours", "ours_open"), ("dup", "dup_open"), ("peer", "peer_open")):
            if getattr(src, flag):
                os.close(getattr(src, attr))
                setattr(src, flag, False)

    # reactor calls (the concrete target implements these) ------------------

    def reactor_open(self) -> None:
        raise NotImplementedError

    def reactor_close(self) -> None:
        raise NotImplementedError

    def ctl_register(self, fd: int, token: int, interest: Interest) -> None:
        raise NotImplementedError

    def ctl_reregister(self, fd: int, token: int, interest: Interest) -> None:
        raise NotImplementedError

    def ctl_deregister(self, fd: int) -> None:
        raise NotImplementedError

    def poll(self, max_events: int) -> list[tuple[int, int]]:
        raise NotImplementedError

    # dispatch ---------------------------------------------------------------

    def perform(self, action: str, args: Mapping[str, Any]) -> Hashable:
        method = self.step_method(action)
        try:
            return method(**args)
        except OSError as e:
            return ("err", errname(e))

    # the actions --------------------------------------------------------------

    def do_create(self, slot: int, kind: str):
        old = self._src.get(slot)
        if old is not None:
            self._close_all(old)
        k = M.KIND_BY_NAME[kind]
        src = _Src(k, self._base + _BLOCK * slot)
        if k in (M.PIPE_R, M.PIPE_W):
            r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
            ours, peer = (r, w) if k == M.PIPE_R else (w, r)
            src.ours, src.peer = _place(ours, src.ours), _place(peer, src.peer)
            src.ours_open = src.peer_open = True
        elif k == M.SOCK:
            a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            a.setblocking(False)
            b.setblocking(False)
            src.ours, src.peer = _place(a.detach(), src.ours), _place(b.detach(), src.peer)
            src.ours_open = src.peer_open = True
        elif k == M.EVENTFD:
            src.ours = _place(os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC), src.ours)
            src.ours_open = True
        elif k in M.EPOLLS:
            # An inner epoll instance at our number, with one eventfd (the
            # child, kept at the peer's number) registered EPOLLIN in it.
            ep = select.epoll()
            try:
                src.ours = _place(os.dup(ep.fileno()), src.ours)
            finally:
                ep.close()
            src.peer = _place(os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC), src.peer)
            src.ours_open = src.peer_open = True
            with _epoll_at(src.ours) as inner:
                inner.register(src.peer, select.EPOLLIN | (select.EPOLLET if k == M.EPOLL_ET else 0))
        elif k == M.FILE:
            fd, path = tempfile.mkstemp(prefix="asyncspec-")
            os.unlink(path)
            src.ours = _place(fd, src.ours)
            src.ours_open = True
        self._src[slot] = src
        return ("ok",)

    @staticmethod
    def _interest(interest: str, mode: str, oneshot: bool, rdhup: bool) -> Interest:
        return Interest("r" in interest, "w" in interest, rdhup, mode == "et", oneshot)

    def do_register(self, slot, token, interest, mode, oneshot, rdhup):
        self.ctl_register(self._src[slot].ours, token, self._interest(interest, mode, oneshot, rdhup))
        return ("ok",)

    def do_reregister(self, slot, token, interest, mode, oneshot, rdhup):
        self.ctl_reregister(self._src[slot].ours, token, self._interest(interest, mode, oneshot, rdhup))
        return ("ok",)

    def do_deregister(self, slot):
        self.ctl_deregister(self._src[slot].ours)
        return ("ok",)

    def do_poll(self, max_events):
        return self.received("poll", tuple(self.poll(max_events)))

    def do_write_peer(self, slot, n):
        return ("n", os.write(self._src[slot].peer, b"p" * n))

    def do_read_ours(self, slot, n):
        src = self._src[slot]
        if src.kind in M.EPOLLS:
            with _epoll_at(src.live_fd()) as inner:
                return ("n", len(inner.poll(0, 8)))
        if src.kind == M.EVENTFD:
            return ("n", os.eventfd_read(src.live_fd()))
        return ("n", len(os.read(src.live_fd(), n)))

    def do_write_ours(self, slot, n):
        src = self._src[slot]
        if src.kind in M.EPOLLS:
            os.eventfd_write(src.peer, n)
            return ("n", n)
        if src.kind == M.EVENTFD:
            os.eventfd_write(src.live_fd(), n)
            return ("n", n)
        return ("n", os.write(src.live_fd(), b"o" * n))

    def do_fill_ours(self, slot):
        src = self._src[slot]
        fd = src.live_fd()
        if src.kind == M.EVENTFD:
            # Add the largest amounts that still fit: the counter ends at
            # exactly 0xfffffffffffffffe without reading it.
            step = 1 << 63
            while step:
                try:
                    os.eventfd_write(fd, step)
                except BlockingIOError:
                    step >>= 1
            return ("ok",)
        for chunk in (65536, 4096, 1):
            while True:
                try:
                    os.write(fd, b"f" * chunk)
                except BlockingIOError:
                    break
        return ("ok",)

    def do_read_peer(self, slot, n):
        return ("n", len(os.read(self._src[slot].peer, n)))

    def do_drain_peer(self, slot):
        fd = self._src[slot].peer
        while True:
            try:
                if not os.read(fd, 65536):
                    break
            except BlockingIOError:
                break
        return ("ok",)

    def do_shutdown_peer(self, slot):
        s = socket.socket(fileno=self._src[slot].peer)
        try:
            s.shutdown(socket.SHUT_WR)
        finally:
            s.detach()
        return ("ok",)

    def do_close_peer(self, slot):
        src = self._src[slot]
        os.close(src.peer)
        src.peer_open = False
        return ("ok",)

    def do_dup_ours(self, slot):
        src = self._src[slot]
        os.dup2(src.ours, src.dup, inheritable=False)
        src.dup_open = True
        return ("ok",)

    def do_close_ours(self, slot):
        src = self._src[slot]
        os.close(src.ours)
        src.ours_open = False
        return ("ok",)

    def do_close_dup(self, slot):
        src = self._src[slot]
        os.close(src.dup)
        src.dup_open = False
        return ("ok",)


#: Every feature the area declares: what a target with all of epoll has.
ALL_FEATURES = frozenset(SPEC_AREA.features)
KNOWN_FLAGS = M.IN | M.PRI | M.OUT | M.ERR | M.HUP | M.RDHUP
