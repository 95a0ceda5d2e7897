"""The pin area: Rust's pinning contract as typestate (see rules.py and machine.py)."""

from ..core import Area
from . import machine, rules
from .machine import MACHINE

AREA = Area(
    name=rules.AREA,
    overview=rules.__doc__,
    machine_doc=machine.__doc__,
    machines=(MACHINE,),
    features={
        "rust": "the statements only Rust has (Pin::set, mem::replace through a pin, projections, get_unchecked_mut, pin!)",
        "unpin": "Unpin values (a target that pins only !Unpin values lacks it)",
    },
)

__all__ = ["AREA", "MACHINE", "rules"]
