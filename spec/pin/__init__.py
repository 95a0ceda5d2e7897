"""The pin area: Rust's pinning contract as typestate (see rules.py and machine.py)."""

from . import rules
from .machine import MACHINE

__all__ = ["MACHINE", "rules"]
