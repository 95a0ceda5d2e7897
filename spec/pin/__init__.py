"""The pin area: Rust's pinning contract as typestate (see rules.py and machine.py)."""

from ..core import Area
from . import rules
from .machine import MACHINE

AREA = Area(
    name=rules.AREA,
    machines=(MACHINE,),
    features={
        "rust": "the statements only Rust has (Pin::set, mem::replace through a pin, projections, get_unchecked_mut, pin!)",
        "unpin": "Unpin values (a target that pins only !Unpin values lacks it)",
    },
)

__all__ = ["AREA", "MACHINE", "rules"]
