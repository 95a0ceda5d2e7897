"""The waker area: the RawWakerVTable contract, task notification, AtomicWaker."""

from . import rules
from .machine import MACHINE

__all__ = ["MACHINE", "rules"]
