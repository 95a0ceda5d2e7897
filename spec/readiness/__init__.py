"""The readiness area: epoll's level-/edge-triggered and oneshot semantics."""

from . import rules
from .machine import MACHINE, Slot, World

__all__ = ["MACHINE", "World", "Slot", "rules"]
