"""The waker area: the RawWakerVTable contract, task notification, AtomicWaker."""

from ..core import Area
from . import machine, rules
from .machine import MACHINE

AREA = Area(
    name=rules.AREA,
    overview=rules.__doc__,
    machine_doc=machine.__doc__,
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
