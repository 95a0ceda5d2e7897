"""Deliberately broken executors: the conformance suite must catch each one.

Each is the reference C task layer (impl/task/) with one bug patched in
(fixtures/broken_builds.py), given to `asyncspec run` as a
``module:attribute`` target:

    LostWake        a wake while the task is RUNNING is ignored
    DoubleEnqueue   a wake of a queued task queues it again
    WakeDrops       wake also counts a drop call and releases an extra reference
    RefcountOffByOne  clone does not increment the reference count

plus Unbroken, the same build path with no bug (it must conform).  The
variants are compiled once into a temporary directory named in the
environment, so the runner's worker processes load them from there.
"""

from __future__ import annotations

from asyncspec.conformance.targets.impl_waker import ImplWaker
from variant_builds import variant_api as _variant_api

from asyncspec.impl import task
from fixtures.broken_builds import executor_build

DIR_ENV = "ASYNCSPEC_BROKEN_EXECUTORS_DIR"


def _build(name: str, directory: str):
    return task.api(executor_build(name, directory))


def variant_api(name: str):
    return _variant_api(DIR_ENV, name, _build)


class BrokenExecutor(ImplWaker):
    build = ""  # the broken build's name in fixtures/broken_builds.py

    @classmethod
    def unavailable(cls):
        try:
            variant_api(cls.build)  # compiled here, before the workers start
        except Exception as e:
            return f"cannot build the {cls.build or 'unbroken'} task layer: {e}"
        return None

    def _api(self):
        return variant_api(self.build)


class LostWake(BrokenExecutor):
    name = "broken-lost-wake"
    build = "lost-wake"
    description = "A wake while the task is being polled is ignored."


class DoubleEnqueue(BrokenExecutor):
    name = "broken-double-enqueue"
    build = "double-enqueue"
    description = "A wake of a task already queued queues it again."


class WakeDrops(BrokenExecutor):
    name = "broken-wake-drops"
    build = "wake-drops"
    description = "wake also counts a drop call and releases one more reference."


class RefcountOffByOne(BrokenExecutor):
    name = "broken-refcount"
    build = "refcount"
    description = "clone does not increment the reference count."


class Unbroken(BrokenExecutor):
    name = "unbroken-executor"
    build = ""
    description = "The reference task layer through the test-build path, with no patch."
