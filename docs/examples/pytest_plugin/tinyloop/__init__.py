"""tinyloop: a toy level-triggered reactor (the "runtime" of this example).

    loop = Reactor()
    loop.watch(fd, token=7, read=True)
    loop.wait(timeout=0)      # [(7, READ)]
"""

from __future__ import annotations

import select

READ, WRITE, CLOSED, ERROR = 1, 2, 4, 8


class Reactor:
    """Watches fds for readiness with poll(2); level-triggered."""

    def __init__(self) -> None:
        self._poll = select.poll()
        self._tokens: dict[int, int] = {}

    def watch(self, fd: int, token: int, read: bool = False, write: bool = False) -> None:
        mask = (select.POLLIN if read else 0) | (select.POLLOUT if write else 0)
        if fd in self._tokens:
            self._poll.modify(fd, mask)
        else:
            self._poll.register(fd, mask)
        self._tokens[fd] = token

    def unwatch(self, fd: int) -> None:
        self._poll.unregister(fd)
        del self._tokens[fd]

    def wait(self, timeout: float | None = None) -> list[tuple[int, int]]:
        ms = None if timeout is None else int(timeout * 1000)
        out = []
        for fd, ev in self._poll.poll(ms):
            if ev & select.POLLNVAL:
                continue
            what = (READ if ev & select.POLLIN else 0) | (WRITE if ev & select.POLLOUT else 0)
            what |= (CLOSED if ev & select.POLLHUP else 0) | (ERROR if ev & select.POLLERR else 0)
            out.append((self._tokens[fd], what))
        return out
