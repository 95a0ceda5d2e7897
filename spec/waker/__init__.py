"""The waker area: the RawWakerVTable contract, task notification, AtomicWaker."""

from ..core import Area
from . import rules
from .machine import MACHINE

AREA = Area(
    name=rules.AREA,
    machines=(MACHINE,),
    features={
        "bare": "tasks with a plain counting vtable, outside any executor",
        "executor": "tasks spawned on an executor with a run queue, polled by it",
        "noop": "Waker::noop",
        "context": "Context::from_waker and the waker borrowed from it",
        "atomic_waker": "an AtomicWaker, driven step by step",
    },
)

__all__ = ["AREA", "MACHINE", "rules"]
