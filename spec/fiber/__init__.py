"""The fiber area: stackful context switching, its lifecycle and its ABI rules."""

from . import layout, rules
from .machine import MACHINE

__all__ = ["MACHINE", "layout", "rules"]
