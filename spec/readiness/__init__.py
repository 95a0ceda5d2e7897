"""The readiness area: epoll's level-/edge-triggered and oneshot semantics."""

from . import rules
from .machine import MACHINE, World, Slot

__all__ = ["MACHINE", "World", "Slot", "rules"]
