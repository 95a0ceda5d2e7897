"""`asyncio`: `asyncio.SelectorEventLoop`'s add_reader/add_writer, one loop per example.

`CallbackLoopReactor` drives any asyncio-style loop through that API; the
`uvloop` target (uvloop_target.py) is the same driver over uvloop's loop.
What each claims, what was measured and the results are in the classes'
docstrings.
"""

from __future__ import annotations

import asyncio
from functools import partial

from asyncspec.conformance.areas.readiness.target import LinuxSources
from asyncspec.conformance.targets.python.selectors_target import Selectors
from asyncspec.spec.readiness import machine as M


class CallbackLoopReactor(LinuxSources):
    """The reactor calls over an asyncio-style loop's add_reader/add_writer.

    Subclasses give `new_loop`.  The loop's exception handler records what
    the loop reports (an exception in a callback, an error it cannot pass on
    to a callback), and the next poll raises it: a loop that swallows an
    error is a target failure (TGT-1), not an empty poll.
    """

    features = frozenset({"level", "dup", "eventfd", "nested"})

    def new_loop(self) -> asyncio.AbstractEventLoop:
        raise NotImplementedError

    def reactor_open(self):
        self._loop = self.new_loop()
        self._loop.set_exception_handler(self._on_loop_error)
        self._reported: list[dict] = []
        self._watched: dict[int, tuple[bool, bool]] = {}  # fd -> (reader, writer) added
        self._fired: dict[tuple[int, int], int] = {}

    def reactor_close(self):
        loop, self._loop = self._loop, None
        try:
            for fd, (r, w) in self._watched.items():
                if r:
                    loop.remove_reader(fd)
                if w:
                    loop.remove_writer(fd)
        finally:
            self._watched = {}
            loop.close()

    def _on_loop_error(self, loop, context):
        self._reported.append(context)

    def _ready(self, fd: int, token: int, flag: int) -> None:
        self._fired[(fd, token)] = self._fired.get((fd, token), 0) | flag

    def _watch(self, fd: int, token: int, readable: bool, writable: bool) -> None:
        r, w = self._watched.get(fd, (False, False))
        try:
            if readable:
                self._loop.add_reader(fd, partial(self._ready, fd, token, M.IN))
                r = True
            elif r:
                self._loop.remove_reader(fd)
                r = False
            if writable:
                self._loop.add_writer(fd, partial(self._ready, fd, token, M.OUT))
                w = True
            elif w:
                self._loop.remove_writer(fd)
                w = False
        finally:
            # What the loop holds now, even when a call raised.
            if r or w:
                self._watched[fd] = (r, w)
            else:
                self._watched.pop(fd, None)

    def ctl_register(self, fd, token, interest):
        self._watch(fd, token, interest.readable, interest.writable)

    def ctl_reregister(self, fd, token, interest):
        self._watch(fd, token, interest.readable, interest.writable)

    def ctl_deregister(self, fd):
        self._watch(fd, 0, False, False)

    def poll(self, max_events):
        # max_events is not expressible (no "cap" feature): the run only asks
        # for room for every registration.
        self._fired = {}
        self._loop.stop()
        self._loop.run_forever()
        reported, self._reported = self._reported, []
        if reported:
            context = reported[0]
            raise RuntimeError(f"{self.name} reported an error: {context.get('message')} {context.get('exception')!r}")
        return [(token, flags) for (_fd, token), flags in self._fired.items()]

    # Readable/writable only, and HUP/ERR folded in as EpollSelector does.
    project = Selectors.project


class AsyncioTarget(CallbackLoopReactor):
    """asyncio.SelectorEventLoop's readiness API, a fresh loop per example.

    Registrations.  Interest ``r`` is ``add_reader(fd, cb)``, ``w`` is
    ``add_writer(fd, cb)``; a reregister calls them again with callbacks
    carrying the new token (asyncio replaces a callback) and
    ``remove_reader``/``remove_writer`` for a direction no longer wanted; a
    deregister removes both.  Each callback records ``(fd, token, IN/OUT)``.

    Polls.  One iteration of the loop without blocking: ``loop.stop()`` then
    ``loop.run_forever()``.  With ``_stopping`` already set, ``_run_once``
    takes timeout 0, calls ``selector.select(0)`` exactly once (measured with
    a spy on the selector; tests/conformance/test_loop_targets.py checks it), runs the
    callbacks that select made ready, and returns.  The poll returns what
    the callbacks recorded, one event per registration.  (``call_soon(stop)``
    gives one select too in asyncio, but two iterations in uvloop, whose
    ``stop`` is itself a callback: `CallbackLoopReactor` uses ``stop()``.)

    Claims (measured on CPython 3.11, Linux 6.x), and why:

    - ``level``: the selector's epoll registration is level-triggered; a
      callback runs in every iteration while its fd is ready.
    - ``dup``, ``eventfd``, ``nested``: a dup of a watched fd changes
      nothing; eventfds and epoll fds are watched like any other fd.
    - Not ``edge``, ``oneshot``, ``rdhup``: the API cannot ask for them.
    - Not ``flags``: a callback only says "readable" or "writable".
      `EpollSelector` makes any event but EPOLLIN "writable" and any but
      EPOLLOUT "readable", and asyncio runs the callbacks registered for
      those directions; so, as for `selectors`, the spec's events are
      compared through that view (`project`): HUP and ERR show as readable
      and/or writable, never on their own (RDY-HUP-1, RDY-ERR-1, RDY-EV-2
      n/a).
    - Not ``cap``: ``select`` asks for as many events as there are watched
      fds; a smaller max_events cannot be expressed (RDY-POLL-* n/a).
    - Not ``errors``: the kernel's errno surfaces only where the selector's
      first EPOLL_CTL_ADD fails -- ``add_reader`` on a closed fd raises
      OSError(EBADF), on a regular file PermissionError(EPERM), and the fd
      is not kept -- but a second ``add_reader`` silently replaces the
      callback (no EEXIST), ``remove_reader`` of an unwatched fd returns
      False (no ENOENT), and there is no max_events to be EINVAL.
    - Not ``ofd``: a watched fd must be removed before it is closed (the
      selectors contract asyncio inherits).  Measured: with a dup open,
      events keep coming to the old callback (as RDY-OFD-1 says); but after
      the last fd is closed the selector still maps the number, so a new fd
      reusing it is silently never reported after ``add_reader`` with the
      same interest, and ``add_writer`` on it fails with ENOENT (EPOLL_CTL_MOD).

    Results (``-n 300``, and 1,500 examples with seed 7): every rule it
    claims passes in `linux-epoll` (RDY-LT-1, RDY-EV-1/3/5, RDY-CTL-6,
    RDY-NEST-1, RDY-RDHUP-2, RDY-SRC-1..5) and in `portable` (there also
    RDY-EV-4); everything else is n/a.
    """

    name = "asyncio"
    description = (
        "asyncio.SelectorEventLoop add_reader/add_writer, one loop iteration per poll: "
        "level-triggered readable/writable only (HUP/ERR seen as readable/writable); no edge, "
        "oneshot, max_events or epoll_ctl errors to claim."
    )

    def new_loop(self):
        return asyncio.SelectorEventLoop()


TARGETS = [AsyncioTarget]
