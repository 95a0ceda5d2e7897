"""Target `rust-std` (waker area): real `std::task::Waker` values, through rustc.

The spec's waker steps are performed by a small Rust program over std only
(conformance/targets/rust/waker/main.rs, compiled once per source and
rustc version, see conformance/targets/rust/waker/driver.py): each task is a static record
behind one static counting `RawWakerVTable`, so what std's `Waker` calls is
observed exactly, in order.  std has no executor and no AtomicWaker: the
target claims bare tasks only (the vtable rules, WAK-VT-*); the task and
AtomicWaker rules are not applicable to it.

One interpreter process serves every example of a run (in the run's worker
process); each example starts with a `reset`, which drops what the last
one left and zeroes the counts.
"""

from __future__ import annotations

import atexit
from typing import Any, Hashable, Mapping

from asyncspec.conformance.target import Target
from asyncspec.conformance.targets.rust.waker import driver as rustwaker
from asyncspec.spec.waker.machine import T

# Spec action -> the interpreter's request (field names are the same).
_OPS = {"new", "noop", "clone", "drop", "wake", "wake_by_ref", "will_wake", "clone_from", "forget", "context"}


class RustStdWaker(Target):
    name = "rust-std"
    area = "waker"
    features = frozenset({"bare", "noop", "context"})
    description = "std::task::Waker over a counting RawWakerVTable, built with rustc: the vtable contract (WAK-VT-*)."

    _shared = None  # the interpreter, one per process

    @classmethod
    def unavailable(cls) -> str | None:
        return rustwaker.available()

    @classmethod
    def _interpreter(cls):
        if cls._shared is None or cls._shared.pid is None:
            cls._shared = rustwaker.RustWakers()
            atexit.register(cls._shared.close)
        return cls._shared

    def open(self) -> None:
        self._rust = self._interpreter()
        self._instances = self._rust.reset()["instances"]

    def perform(self, action: str, args: Mapping[str, Any]) -> Hashable:
        calls: tuple = ()
        result = None
        if action == "make":
            if args["kind"] != "bare":
                raise NotImplementedError("rust-std has no executor: only bare tasks")
        elif action in _OPS:
            fields = dict(args)
            if action == "new":
                fields["kind"] = "raw"
            answer = self._rust.request(action, **fields)
            if answer["error"] is not None:
                raise RuntimeError(f"the Rust interpreter refused {action}{dict(args)}: {answer['error']}")
            calls = tuple((name, task) for name, task in answer["calls"])
            result = answer["result"]
            self._instances = answer["instances"]
        else:
            raise NotImplementedError(f"rust-std cannot perform {action!r} (no executor, no AtomicWaker in std)")
        return (calls, result, tuple(self._instances[:T]), (False,) * T, ())


TARGETS = [RustStdWaker]
