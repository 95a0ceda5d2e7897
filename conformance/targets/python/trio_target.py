"""`trio`: trio's `trio.lowlevel.wait_readable` / `wait_writable`, stepped from a synchronous target."""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass, field

from asyncspec.conformance.areas.readiness.target import Interest, LinuxSources
from asyncspec.conformance.targets.python.selectors_target import Selectors
from asyncspec.spec.readiness import machine as M

#: Seconds the caller waits for the trio thread to answer one command.
ANSWER_TIMEOUT = 30.0


@dataclass(eq=False)
class _Registration:
    token: int
    interest: Interest
    armed: bool = True  # oneshot: not fired since (re)register
    started: bool = False  # oneshot: its waits were started
    waits: dict = field(default_factory=dict)  # "r"/"w" -> CancelScope of a parked wait

    def directions(self) -> tuple[str, ...]:
        return tuple(d for d, on in (("r", self.interest.readable), ("w", self.interest.writable)) if on)


class TrioTarget(LinuxSources):
    """trio's readiness API: tasks parked in ``trio.lowlevel.wait_readable`` /
    ``wait_writable``, a fresh ``trio.run`` per example.

    Driving trio one step at a time.  ``trio.run`` runs in a dedicated
    thread whose main task takes one command at a time from a queue with a
    *blocking* ``get`` -- outside trio, so between steps the whole run
    stands still and trio calls epoll_wait only inside a poll step (strace:
    no epoll_wait between steps; every one in a step has timeout 0).  The
    caller waits for each command's answer, so the thread never runs
    concurrently with the sources being changed.  ``start_guest_run`` was
    not used: when nothing is runnable, guest mode does its blocking
    ``get_events(timeout)`` in a worker thread, which would watch the
    sources while the steps change them (a transient readiness could fire
    a oneshot wait or not, depending on timing).  close() ends the run
    (every wait cancelled) and joins the thread.

    Registrations.  A registration is the adapter's record of what to wait
    for; the waits are tasks in one nursery, each in its own cancel scope:

    - level-triggered (``oneshot=False``): a program that waits in a loop.
      At every poll a wait is (re)started for each direction of the interest
      that has none parked; a wait that fired is started again at the next
      poll, not at once (else trio would report it twice in one step).
    - ``oneshot``: a program that waits once for either direction (two
      waits raced, the other cancelled when one fires).  Its waits are
      started at the first poll after the register or reregister and stay
      parked across polls until they fire; then the registration is
      disarmed until reregistered.
    - reregister / deregister cancel the waits (trio's abort disarms the fd
      at once); a reregister's new waits start at the next poll.

    A poll starts the waits it needs and awaits
    ``trio.testing.wait_all_tasks_blocked()``: trio runs until every task is
    blocked, calling epoll_wait(0) two or three times (before the new waits
    arm, after, and, if some woke, once more after they ran), all at one
    state of the sources, so together they report what one epoll_wait would.  The poll
    returns one event per registration: IN if its read wait fired, OUT if
    its write wait did.

    What trio does underneath (measured, trio 0.35, Linux 6.x): one epoll
    registration per fd, always EPOLLONESHOT with IN/OUT for the directions
    waited on (EPOLL_CTL_MOD, ADD when MOD fails with ENOENT); after an
    event it re-arms for the directions still waited on; a cancelled wait
    leaves the fd registered with EPOLLONESHOT alone (disabled, never
    reported; trio deletes an fd only in ``notify_closing``).  An event
    with anything but EPOLLIN wakes the write wait and anything but
    EPOLLOUT the read wait (trio's "hack stolen from selectors"), so HUP and
    ERR show as readable/writable and the spec's events are compared
    through the `selectors` view (`project`).

    Claims: ``level`` and ``oneshot`` as above; ``dup``, ``eventfd``,
    ``nested`` (any fd can be waited on).  Not ``edge`` or ``rdhup``
    (no API), not ``flags`` (a wait only returns), not ``cap`` (trio asks
    epoll_wait for as many events as it has fds).  Not ``errors``: a wait
    on a regular file raises PermissionError(EPERM) and on a closed fd
    OSError(EBADF) (from EPOLL_CTL_ADD, when the wait starts), but a second
    wait in one direction is trio.BusyResourceError (no EEXIST) and there
    is nothing to be ENOENT.  Not ``ofd``: trio requires
    ``notify_closing(fd)`` before an fd it waits on is closed, and that
    wakes the waits with ClosedResourceError and deletes the fd from epoll
    even while a dup keeps the file open -- the opposite of RDY-OFD-1.

    Results (``-n 300``, and 1,500 examples with seed 7): every rule it
    claims passes in `linux-epoll` (RDY-LT-1, RDY-ONESHOT-1, RDY-ONESHOT-2,
    RDY-EV-1/3/5, RDY-CTL-6, RDY-NEST-1, RDY-RDHUP-2, RDY-SRC-1..5) and in
    `portable` (there also RDY-EV-4); everything else is n/a.
    """

    name = "trio"
    features = frozenset({"level", "oneshot", "dup", "eventfd", "nested"})
    description = (
        "trio.lowlevel.wait_readable/wait_writable (EPOLLONESHOT underneath) in a trio run on its own "
        "thread that stands still between steps: level-triggered (wait again each poll) and oneshot "
        "(one wait per arming), readable/writable only."
    )

    requires = ("trio", "trio.testing")  # trio.testing: wait_all_tasks_blocked
    requires_hint = "pip install trio (it is in the test extras)"

    # ------------------------------------------------------------ the thread

    def reactor_open(self):
        self._regs: dict[int, _Registration] = {}
        self._fired: list[tuple[int, _Registration, str]] = []
        self._failures: list[BaseException] = []
        self._commands: queue.SimpleQueue = queue.SimpleQueue()
        self._answers: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._thread_main, name="asyncspec-trio", daemon=True)
        self._thread.start()
        self._answer()  # the run is up

    def reactor_close(self):
        thread, self._thread = self._thread, None
        if thread is None:
            return
        if thread.is_alive():
            self._commands.put(None)
            thread.join(ANSWER_TIMEOUT)
        if thread.is_alive():
            raise RuntimeError("the trio thread did not finish")

    def _thread_main(self):
        import trio

        try:
            trio.run(self._main)
        except BaseException as e:  # noqa: BLE001 -- handed to the caller
            self._answers.put(("raised", e))

    async def _main(self):
        import trio

        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            self._answers.put(("ok", None))
            while True:
                # Deliberately blocking, outside trio: the whole run stands
                # still between steps, so trio calls epoll_wait only inside
                # a poll step, never while the sources change.
                command = self._commands.get()
                if command is None:
                    break
                try:
                    answer = ("ok", await command())
                except Exception as e:  # noqa: BLE001 -- handed to the caller
                    answer = ("raised", e)
                self._answers.put(answer)
            nursery.cancel_scope.cancel()

    def _answer(self):
        try:
            kind, value = self._answers.get(timeout=ANSWER_TIMEOUT)
        except queue.Empty:
            raise RuntimeError(f"the trio thread did not answer within {ANSWER_TIMEOUT:g}s") from None
        if kind == "raised":
            raise value
        return value

    def _call(self, fn, *args):
        if not self._thread.is_alive():
            raise RuntimeError("the trio run has ended")

        async def command():
            return await fn(*args)

        self._commands.put(command)
        return self._answer()

    # --------------------------------------------------------- reactor calls

    def ctl_register(self, fd, token, interest):
        self._call(self._set, fd, _Registration(token, interest))

    def ctl_reregister(self, fd, token, interest):
        self._call(self._set, fd, _Registration(token, interest))

    def ctl_deregister(self, fd):
        self._call(self._set, fd, None)

    def poll(self, max_events):
        # max_events is not expressible (no "cap" feature).
        return self._call(self._poll)

    project = Selectors.project

    # ------------------------------------------------- inside the trio thread

    async def _set(self, fd: int, reg: _Registration | None) -> None:
        old = self._regs.pop(fd, None)
        if old is not None:
            for scope in old.waits.values():
                scope.cancel()  # aborts the wait at once: trio disarms the fd
            old.waits.clear()
        if reg is not None:
            self._regs[fd] = reg

    async def _poll(self):
        import trio
        import trio.testing

        self._fired = []
        for fd, reg in self._regs.items():
            if reg.interest.oneshot:
                if not reg.armed or reg.started:
                    continue  # its waits are parked, or it fired
                reg.started = True
            for d in reg.directions():
                if d not in reg.waits:
                    scope = reg.waits[d] = trio.CancelScope()
                    self._nursery.start_soon(self._wait, fd, reg, d, scope)
        # Run every task until all are blocked again: the new waits arm
        # their fds, trio's epoll_wait(0) reports what is ready, the woken
        # waits record it.
        await trio.testing.wait_all_tasks_blocked()
        failures, self._failures = self._failures, []
        if failures:
            raise failures[0]  # an OSError is observed as its errno; anything else fails TGT-1
        events: dict[tuple[int, int], int] = {}
        for fd, reg, d in self._fired:
            key = (fd, reg.token)
            events[key] = events.get(key, 0) | (M.IN if d == "r" else M.OUT)
            if reg.interest.oneshot and reg.armed:
                reg.armed = False
                for scope in reg.waits.values():
                    scope.cancel()  # the other direction's wait: one event per arming
                reg.waits.clear()
        return [(token, flags) for (_fd, token), flags in events.items()]

    async def _wait(self, fd: int, reg: _Registration, d: str, scope) -> None:
        import trio

        wait = trio.lowlevel.wait_readable if d == "r" else trio.lowlevel.wait_writable
        with scope:
            try:
                await wait(fd)
            except Exception as e:  # noqa: BLE001 -- the poll raises it
                self._failures.append(e)
            else:
                self._fired.append((fd, reg, d))
        if reg.waits.get(d) is scope:
            del reg.waits[d]


TARGETS = [TrioTarget]
