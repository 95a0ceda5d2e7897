"""Deliberately broken executors: the conformance suite must catch each one.

Each is the reference C task layer (impl/task.c) compiled with one
AST_BROKEN_* definition (see the head of task.c), given to `asyncspec run`
as a ``module:attribute`` target:

    LostWake        a wake while the task is RUNNING is ignored
    DoubleEnqueue   a wake of a queued task queues it again
    WakeDrops       wake also counts a drop call and releases an extra reference
    RefcountOffByOne  clone does not increment the reference count

plus Unbroken, the same build path with no bug (it must conform).  The
variants are compiled once into a temporary directory named in the
environment, so the runner's worker processes load them from there.
"""

from __future__ import annotations

from asyncspec.conformance.targets.impl.waker import ImplWaker
from variant_builds import variant_api as _variant_api

DIR_ENV = "ASYNCSPEC_BROKEN_EXECUTORS_DIR"


def variant_api(define: str):
    from asyncspec.impl import task, task_build

    return _variant_api(DIR_ENV, define, task_build.build_variant, task.api)


class BrokenExecutor(ImplWaker):
    define = ""

    @classmethod
    def unavailable(cls):
        try:
            variant_api(cls.define)  # compiled here, before the workers start
        except Exception as e:
            return f"cannot build the {cls.define or 'unbroken'} task layer: {e}"
        return None

    def _api(self):
        return variant_api(self.define)


class LostWake(BrokenExecutor):
    name = "broken-lost-wake"
    define = "AST_BROKEN_LOST_WAKE"
    description = "A wake while the task is being polled is ignored."


class DoubleEnqueue(BrokenExecutor):
    name = "broken-double-enqueue"
    define = "AST_BROKEN_DOUBLE_ENQUEUE"
    description = "A wake of a task already queued queues it again."


class WakeDrops(BrokenExecutor):
    name = "broken-wake-drops"
    define = "AST_BROKEN_WAKE_DROPS"
    description = "wake also counts a drop call and releases one more reference."


class RefcountOffByOne(BrokenExecutor):
    name = "broken-refcount"
    define = "AST_BROKEN_REFCOUNT"
    description = "clone does not increment the reference count."


class Unbroken(BrokenExecutor):
    name = "unbroken-executor"
    define = ""
    description = "The reference task layer built by build_variant with no AST_BROKEN_* definition."
