"""A mio-shaped readiness reactor over Linux epoll (asyncspec's reference reactor).

The shape follows mio: a `Poll` owns the OS selector; its `Registry` registers
I/O sources (file descriptors) under a `Token` with an `Interest`; `Poll.poll`
fills an `Events` buffer with `Event`s, each naming the token of a source that
became ready and what it is ready for.  A `Waker` lets another thread wake a
blocked `Poll.poll`.

    with Poll() as poll:
        registry = poll.registry()
        registry.register(sock, Token(0), Interest.READABLE)
        events = Events(128)
        while True:
            poll.poll(events, timeout=None)
            for event in events:
                ...   # event.token, event.is_readable(), ...

Sources are plain file descriptors: an int, or any object with a `fileno()`
method.  The reactor never reads or writes them (except a Waker's own
eventfd) and never closes them.

Registration options: `trigger=Trigger.EDGE` (the default, as in mio) or
`Trigger.LEVEL`, and `oneshot=True` to disable the registration after its
first event until `Registry.reregister` arms it again.

Errors reported by the kernel are raised as `OSError(errno, message)`: `.errno`
is the kernel's errno and the message names the call and the fd.  Using a
closed `Poll`, `Registry` or `Waker` raises `OSError(EBADF, "... is closed")`.

Portability
-----------

Using the reactor the same way on every platform is what keeps a program
portable; the points below are where platforms differ, and what a program
should assume.

Spurious events: `Poll.poll` may return readiness events even though the
associated source is not actually ready.  Given the same code, this may happen
more on some platforms than others.  Users should never assume that an event
means the operation will succeed: attempt it and be prepared for it to fail
with EAGAIN (BlockingIOError), and for events with empty readiness.

Draining readiness: with edge-triggered registrations (the default), once a
readiness event is received, the source must be read (or written) until the
operation fails with EAGAIN.  Only then is a new event delivered for it.
Stopping before EAGAIN may leave the source readable without a further event,
forever.  Level-triggered registrations report the source again on each poll
while it stays ready.

One registration per file descriptor: register a source in one Poll only, and
only once.  epoll would accept the same fd in several epoll instances, other
selectors do not, so portable code must not rely on it.  Registering the same
fd twice in one Poll fails with EEXIST (on epoll).  Change a registration with
`Registry.reregister`, and remove it with `Registry.deregister` before
registering it anywhere else.

Registrations belong to the open file description, not to the fd number:
epoll keys them by (fd, open file).  Closing an fd removes its registration
only when no other fd refers to the same open file.  If a duplicate lives
(`os.dup`, `fork`, `socket.dup`), the registration survives, keeps reporting
events under its token, and can no longer be deregistered through the closed
fd number.  Always deregister before closing.

Oneshot: after a oneshot registration reports an event, it stays registered
but disabled; `Registry.reregister` re-arms it, and `Registry.deregister`
still works.

Interest: an empty Interest is rejected (ValueError), as in mio.
`Interest.READ_CLOSED` asks epoll for EPOLLRDHUP; it is only meaningful
together with `Interest.READABLE`: `Event.is_read_closed()` follows mio and
needs EPOLLIN with EPOLLRDHUP (or EPOLLHUP), so without READABLE a peer's
half-close shows up only in `Event.raw`.  (epoll accepts it, so the reactor
does too.)  `Interest.PRIORITY` asks for EPOLLPRI (out-of-band data, some
device files).  The kernel may report EPOLLERR and EPOLLHUP whatever the
Interest.

Backends: on Linux only the epoll backend is built (eventfd for the Waker).
The C layer also has a kqueue backend for BSD and macOS (EVFILT_READ and
EVFILT_WRITE filters, EV_CLEAR for edge trigger, EV_DISPATCH for oneshot,
EVFILT_USER for the Waker); it cannot be exercised on Linux.  Where kqueue
differs: a readable-and-writable source may be reported as two events with the
same token; `register` of an fd that is already registered modifies it instead
of failing with EEXIST, and `reregister` of an unregistered fd registers it
instead of failing with ENOENT; `is_read_closed()` comes from EV_EOF on the
read filter and `is_write_closed()` from EV_EOF on the write filter;
`Interest.PRIORITY` needs EVFILT_EXCEPT (macOS, OpenBSD; EOPNOTSUPP elsewhere).

Threads: `Registry` methods and `Waker.wake` may be called from any thread,
also while another thread is blocked in `Poll.poll` (which releases the GIL).
An `Events` buffer belongs to one polling thread.  Do not close a `Poll`,
`Registry` or `Waker` while another thread is using it.

Signals: a blocking poll interrupted by a signal lets Python's signal
handlers run, then waits again (with the remaining time, for a finite
timeout); a handler that raises, such as Ctrl-C's KeyboardInterrupt, ends
the poll with its exception (PEP 475).

Resources: `Poll`, `Registry` clones and `Waker` own file descriptors, all
close-on-exec.  Close them with `close()` (idempotent) or a `with` block; the
garbage-collection fallback closes them too, with a ResourceWarning.
"""

from __future__ import annotations

import enum
import errno as _errno
import math
import operator
import os
import time
import warnings
from typing import Iterator, Union

from asyncspec.impl.reactor._reactor import ffi, lib

__all__ = [
    "Token",
    "Interest",
    "Trigger",
    "Event",
    "Events",
    "Poll",
    "Registry",
    "Waker",
]

_U64 = 1 << 64
_INT_MAX = (1 << 31) - 1

# Event bits, with epoll's values (also on the kqueue backend).
EPOLLIN = lib.ASR_IN
EPOLLPRI = lib.ASR_PRI
EPOLLOUT = lib.ASR_OUT
EPOLLERR = lib.ASR_ERR
EPOLLHUP = lib.ASR_HUP
EPOLLRDHUP = lib.ASR_RDHUP
_WRHUP = lib.ASR_WRHUP  # kqueue only (0 on epoll)
EPOLLONESHOT = lib.ASR_ONESHOT
EPOLLET = lib.ASR_ET

_BIT_NAMES = (
    (EPOLLIN, "EPOLLIN"),
    (EPOLLPRI, "EPOLLPRI"),
    (EPOLLOUT, "EPOLLOUT"),
    (EPOLLERR, "EPOLLERR"),
    (EPOLLHUP, "EPOLLHUP"),
    (EPOLLRDHUP, "EPOLLRDHUP"),
    (_WRHUP, "WRHUP"),
)


def _bit_names(raw: int) -> str:
    names = []
    rest = raw
    for bit, name in _BIT_NAMES:
        if bit and raw & bit:
            names.append(name)
            rest &= ~bit
    if rest:
        names.append(hex(rest))
    return "|".join(names) if names else "0"


class Token(int):
    """Identifies a registration in the events `Poll.poll` returns: 0 <= value < 2**64."""

    __slots__ = ()

    def __new__(cls, value) -> "Token":
        v = operator.index(value)
        if not 0 <= v < _U64:
            raise ValueError(f"Token value {v} is out of range: a token must be 0 <= value < 2**64")
        return super().__new__(cls, v)

    def __repr__(self) -> str:
        return f"Token({int(self)})"


class Interest(enum.Flag):
    """The readiness a registration asks for.  Combine with `|`; never empty."""

    READABLE = 1
    WRITABLE = 2
    READ_CLOSED = 4  # EPOLLRDHUP; only meaningful with READABLE
    PRIORITY = 8  # EPOLLPRI

    def is_readable(self) -> bool:
        return bool(self & Interest.READABLE)

    def is_writable(self) -> bool:
        return bool(self & Interest.WRITABLE)

    def is_read_closed(self) -> bool:
        return bool(self & Interest.READ_CLOSED)

    def is_priority(self) -> bool:
        return bool(self & Interest.PRIORITY)


class Trigger(enum.Enum):
    """How readiness is reported: LEVEL (every poll while ready) or EDGE (on change)."""

    LEVEL = "level"
    EDGE = "edge"


def _interest_bits(interest, trigger, oneshot) -> int:
    if not isinstance(interest, Interest):
        raise TypeError(f"interest must be an Interest, not {type(interest).__name__}")
    if not interest:
        raise ValueError("interest must not be empty (Interest(0))")
    if not isinstance(trigger, Trigger):
        raise TypeError(f"trigger must be a Trigger, not {type(trigger).__name__}")
    bits = 0
    if interest & Interest.READABLE:
        bits |= EPOLLIN
    if interest & Interest.WRITABLE:
        bits |= EPOLLOUT
    if interest & Interest.READ_CLOSED:
        bits |= EPOLLRDHUP
    if interest & Interest.PRIORITY:
        bits |= EPOLLPRI
    if trigger is Trigger.EDGE:
        bits |= EPOLLET
    if oneshot:
        bits |= EPOLLONESHOT
    return bits


def _token(token) -> Token:
    return token if isinstance(token, Token) else Token(token)


def _source_fd(source) -> int:
    if isinstance(source, int):
        fd = int(source)
    elif hasattr(source, "fileno"):
        fd = source.fileno()
        if not isinstance(fd, int):
            raise TypeError(f"{type(source).__name__}.fileno() returned {type(fd).__name__}, not int")
    else:
        raise TypeError(f"source must be an int fd or have fileno(), not {type(source).__name__}")
    if not -(1 << 31) <= fd <= _INT_MAX:
        # Out of C int range: no such fd can be open.
        raise OSError(_errno.EBADF, f"fd {fd} is not an open file descriptor")
    return fd


_CTL_REASONS = {
    ("register", _errno.EEXIST): "is already registered in this Poll",
    ("reregister", _errno.ENOENT): "is not registered in this Poll",
    ("deregister", _errno.ENOENT): "is not registered in this Poll",
    _errno.EBADF: "is not an open file descriptor",
    _errno.EPERM: "does not support polling (a regular file or a directory?)",
    _errno.ELOOP: "would nest epoll instances in a loop or too deep",
    _errno.EINVAL: "was refused as invalid (EINVAL)",
    _errno.ENOMEM: "cannot be registered: out of kernel memory",
    _errno.ENOSPC: "cannot be registered: the user's epoll watch limit is reached",
}


def _ctl_error(call: str, fd: int, pfd: int, err: int) -> OSError:
    if err == _errno.EINVAL and fd == pfd:
        reason = "is this Poll's own epoll fd: an epoll instance cannot watch itself"
    else:
        reason = _CTL_REASONS.get((call, err)) or _CTL_REASONS.get(err)
    if reason is None:
        reason = f"failed: {os.strerror(err)}"
    return OSError(err, f"{call}: fd {fd} {reason}")


def _closed(what: str) -> OSError:
    return OSError(_errno.EBADF, f"{what} is closed")


class _Fd:
    """An owned file descriptor, closed once."""

    __slots__ = ("fd", "what", "_close_fn", "__weakref__")

    def __init__(self, fd: int, what: str, close_fn=lib.asr_close):
        self.fd = fd
        self.what = what
        self._close_fn = close_fn

    @property
    def closed(self) -> bool:
        return self.fd < 0

    def get(self) -> int:
        fd = self.fd
        if fd < 0:
            raise _closed(self.what)
        return fd

    def close(self) -> None:
        fd, self.fd = self.fd, -1
        if fd >= 0:
            r = self._close_fn(fd)
            if r < 0 and r != -_errno.EINTR:
                raise OSError(-r, f"{self.what}: close of fd {fd} failed: {os.strerror(-r)}")

    def _finalize(self, owner) -> None:
        if self.fd >= 0:
            warnings.warn(f"unclosed {owner!r}", ResourceWarning, stacklevel=2)
            try:
                self.close()
            except OSError:
                pass


class Event:
    """One readiness event: the registration's `token` and the raw epoll bits."""

    __slots__ = ("token", "raw")

    def __init__(self, token: Token, raw: int):
        self.token = token
        self.raw = raw

    def is_readable(self) -> bool:
        return bool(self.raw & (EPOLLIN | EPOLLPRI))

    def is_writable(self) -> bool:
        return bool(self.raw & EPOLLOUT)

    def is_read_closed(self) -> bool:
        raw = self.raw
        return bool(raw & EPOLLHUP) or (bool(raw & EPOLLIN) and bool(raw & EPOLLRDHUP))

    def is_write_closed(self) -> bool:
        raw = self.raw
        return (
            bool(raw & EPOLLHUP)
            or (bool(raw & EPOLLOUT) and bool(raw & EPOLLERR))
            or raw == EPOLLERR
            or bool(_WRHUP and raw & _WRHUP)
        )

    def is_error(self) -> bool:
        return bool(self.raw & EPOLLERR)

    def is_priority(self) -> bool:
        return bool(self.raw & EPOLLPRI)

    def __eq__(self, other):
        if not isinstance(other, Event):
            return NotImplemented
        return self.token == other.token and self.raw == other.raw

    def __hash__(self):
        return hash((self.token, self.raw))

    def __repr__(self) -> str:
        return f"Event(token={int(self.token)}, raw={_bit_names(self.raw)})"


class Events:
    """A reusable buffer that `Poll.poll` fills with up to `capacity` events.

    The kernel's records stay in the buffer; `Event` objects are made when
    first looked at, once per poll (a poll nobody reads costs no objects).
    """

    __slots__ = ("_capacity", "_cap", "_buf", "_n", "_events")

    def __init__(self, capacity: int):
        if isinstance(capacity, bool) or not isinstance(capacity, int):
            raise TypeError(f"capacity must be an int, not {type(capacity).__name__}")
        if capacity < 0:
            raise ValueError(f"capacity must be >= 0, got {capacity}")
        self._capacity = capacity
        self._cap = min(capacity, _INT_MAX)  # what one epoll_wait may return
        self._buf = ffi.new("struct asr_event[]", capacity)
        self._n = 0
        self._events: list[Event] | None = []

    @property
    def capacity(self) -> int:
        return self._capacity

    def clear(self) -> None:
        self._n = 0
        self._events = []

    def is_empty(self) -> bool:
        return self._n == 0

    def __len__(self) -> int:
        return self._n

    def _list(self) -> list[Event]:
        events = self._events
        if events is None:
            buf = self._buf
            new_token = int.__new__  # the kernel hands back our own u64s: no range check needed
            events = self._events = [Event(new_token(Token, buf[i].token), buf[i].events) for i in range(self._n)]
        return events

    def __iter__(self) -> Iterator[Event]:
        return iter(self._list())

    def __getitem__(self, index: int) -> Event:
        return self._list()[index]

    def _fill(self, n: int) -> None:
        self._n = n
        self._events = None

    def __repr__(self) -> str:
        return f"Events(capacity={self._capacity}, {self._list()!r})"


def _timeout_ms(timeout) -> int:
    """Seconds -> epoll milliseconds (-1 = forever), rounded up so a short
    timeout never becomes a busy non-blocking poll."""
    if timeout is None:
        return -1
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"timeout must be None or a number of seconds, not {type(timeout).__name__}")
    if timeout != timeout:
        raise ValueError("timeout must not be NaN")
    if timeout == -1 or timeout == math.inf:
        return -1
    if timeout < 0:
        raise ValueError(f"timeout must be None, -1 or >= 0 seconds, got {timeout!r}")
    ms = math.ceil(timeout * 1000)
    return min(ms, _INT_MAX)


class Registry:
    """Registers sources with a Poll.  Obtained from `Poll.registry()` (shares
    the Poll's epoll fd; closing it is a no-op, close the Poll) or from
    `Registry.try_clone()` (owns a dup of the epoll fd; close it)."""

    __slots__ = ("_fd", "_owns", "__weakref__")

    def __init__(self, _fd: _Fd, _owns: bool):
        self._fd = _fd
        self._owns = _owns

    @property
    def closed(self) -> bool:
        return self._fd.closed

    def fileno(self) -> int:
        return self._fd.get()

    def register(self, source, token, interest: Interest, *, trigger: Trigger = Trigger.EDGE,
                 oneshot: bool = False) -> None:
        """Register `source` (fd or object with fileno()) under `token` (EPOLL_CTL_ADD)."""
        self._ctl("register", lib.asr_ctl_add, source, token, interest, trigger, oneshot)

    def reregister(self, source, token, interest: Interest, *, trigger: Trigger = Trigger.EDGE,
                   oneshot: bool = False) -> None:
        """Replace the registration of `source` (EPOLL_CTL_MOD); re-arms a oneshot."""
        self._ctl("reregister", lib.asr_ctl_mod, source, token, interest, trigger, oneshot)

    def deregister(self, source) -> None:
        """Remove the registration of `source` (EPOLL_CTL_DEL)."""
        fd = _source_fd(source)
        pfd = self._fd.get()
        r = lib.asr_ctl_del(pfd, fd)
        if r < 0:
            raise _ctl_error("deregister", fd, pfd, -r)

    def _ctl(self, call, fn, source, token, interest, trigger, oneshot) -> None:
        tok = _token(token)
        bits = _interest_bits(interest, trigger, oneshot)
        fd = _source_fd(source)
        pfd = self._fd.get()
        r = fn(pfd, fd, bits, tok)
        if r < 0:
            raise _ctl_error(call, fd, pfd, -r)

    def try_clone(self) -> "Registry":
        """A new Registry for the same Poll, owning a dup of its epoll fd."""
        pfd = self._fd.get()
        r = lib.asr_dup(pfd)
        if r < 0:
            raise OSError(-r, f"try_clone: dup of fd {pfd} failed: {os.strerror(-r)}")
        return Registry(_Fd(r, "Registry"), True)

    def close(self) -> None:
        """Close a cloned Registry's fd (idempotent); no-op for a Poll's own Registry."""
        if self._owns:
            self._fd.close()

    def __enter__(self) -> "Registry":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        fd = getattr(self, "_fd", None)
        if fd is not None and getattr(self, "_owns", False):
            fd._finalize(self)

    def __repr__(self) -> str:
        state = "closed" if self._fd.closed else f"fd={self._fd.fd}"
        kind = "clone" if self._owns else "poll's"
        return f"<Registry {kind} {state}>"


class Poll:
    """Owns an epoll instance; `poll()` waits for readiness events."""

    __slots__ = ("_fd", "_registry", "__weakref__")

    def __init__(self):
        r = lib.asr_poll_create()
        if r < 0:
            raise OSError(-r, f"Poll: epoll_create1 failed: {os.strerror(-r)}")
        self._fd = _Fd(r, "Poll")
        self._registry = Registry(self._fd, False)

    @property
    def closed(self) -> bool:
        return self._fd.closed

    def fileno(self) -> int:
        return self._fd.get()

    def registry(self) -> Registry:
        """This Poll's Registry (shares the Poll's fd and its closed state)."""
        return self._registry

    def poll(self, events: Events, timeout: Union[float, int, None] = None) -> int:
        """Wait for events, fill `events` (cleared first) and return their number.

        `timeout` in seconds: None or -1 blocks until an event, 0 returns at
        once, otherwise waits at most that long (rounded up to milliseconds).
        """
        if type(events) is not Events and not isinstance(events, Events):
            raise TypeError(f"events must be an Events, not {type(events).__name__}")
        # The common timeouts first: no conversion needed.
        if timeout is None:
            ms = -1
        elif timeout == 0 and type(timeout) is int:
            ms = 0
        else:
            ms = _timeout_ms(timeout)
        events.clear()
        pfd = self._fd.fd
        if pfd < 0:
            pfd = self._fd.get()  # raises: closed
        cap = events._cap
        deadline = None
        while True:
            n = lib.asr_poll_wait(pfd, events._buf, cap, ms)
            if n >= 0:
                events._fill(n)
                return n
            if n != -_errno.EINTR:
                hint = f" (events capacity is {cap})" if n == -_errno.EINVAL else ""
                raise OSError(-n, f"poll: epoll_wait on fd {pfd} failed: {os.strerror(-n)}{hint}")
            # Interrupted by a signal: Python's handlers have had their chance
            # to run (and raise) on return; wait again with what is left.
            if ms > 0:
                if deadline is None:
                    deadline = time.monotonic() + ms / 1000.0
                ms = max(0, math.ceil((deadline - time.monotonic()) * 1000))
            pfd = self._fd.get()

    def close(self) -> None:
        """Close the epoll fd (idempotent).  Registry clones keep the instance alive."""
        self._fd.close()

    def __enter__(self) -> "Poll":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        fd = getattr(self, "_fd", None)
        if fd is not None:
            fd._finalize(self)

    def __repr__(self) -> str:
        return f"<Poll {'closed' if self._fd.closed else f'fd={self._fd.fd}'}>"


class Waker:
    """Wakes a blocked `Poll.poll` from any thread: an eventfd registered
    READABLE, edge-triggered, under `token` in `registry`'s Poll.  Each
    `wake()` produces an event with that token (several wakes before a poll
    may be coalesced into one event)."""

    __slots__ = ("_fd", "_token", "__weakref__")

    def __init__(self, registry: Registry, token):
        if not isinstance(registry, Registry):
            raise TypeError(f"registry must be a Registry, not {type(registry).__name__}")
        tok = _token(token)
        pfd = registry._fd.get()
        r = lib.asr_waker_create(pfd, tok)
        if r < 0:
            raise OSError(-r, f"Waker: cannot create or register the waker in fd {pfd}: {os.strerror(-r)}")
        self._token = tok
        self._fd = _Fd(r, "Waker", lib.asr_waker_close)

    @property
    def token(self) -> Token:
        return self._token

    @property
    def closed(self) -> bool:
        return self._fd.closed

    def fileno(self) -> int:
        return self._fd.get()

    def wake(self) -> None:
        """Make the Poll report an event for this Waker's token.  Thread-safe."""
        fd = self._fd.get()
        r = lib.asr_waker_wake(fd)
        if r < 0:
            raise OSError(-r, f"wake: write to fd {fd} failed: {os.strerror(-r)}")

    def close(self) -> None:
        """Close the eventfd (idempotent); this also removes its registration."""
        self._fd.close()

    def __enter__(self) -> "Waker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        fd = getattr(self, "_fd", None)
        if fd is not None:
            fd._finalize(self)

    def __repr__(self) -> str:
        state = "closed" if self._fd.closed else f"fd={self._fd.fd}"
        return f"<Waker token={int(self._token)} {state}>"
