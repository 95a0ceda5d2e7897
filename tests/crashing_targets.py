"""Targets that crash or hang: the runner must report them, never die."""

from __future__ import annotations

import ctypes
import os
import time

from asyncspec.conformance.targets.python.stdlib_epoll import StdlibEpoll


class SegfaultsOnSecondPoll(StdlibEpoll):
    name = "crash-segv"

    def reactor_open(self):
        super().reactor_open()
        self._polls = 0

    def poll(self, max_events):
        self._polls += 1
        if self._polls == 2:
            ctypes.string_at(0)  # SIGSEGV
        return super().poll(max_events)


class AbortsOnDeregister(StdlibEpoll):
    name = "crash-abort"

    def ctl_deregister(self, fd):
        os.abort()


class HangsOnEdgeTriggered(StdlibEpoll):
    name = "hang"

    def ctl_register(self, fd, token, interest):
        if interest.edge:
            time.sleep(3600)
        super().ctl_register(fd, token, interest)


class RaisesOnReregister(StdlibEpoll):
    name = "raises"

    def ctl_reregister(self, fd, token, interest):
        raise RuntimeError("reregister is not implemented")
