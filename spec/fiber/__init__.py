"""The fiber area: stackful context switching, its lifecycle and its ABI rules."""

from ..core import Area
from . import machine, layout, rules
from .machine import MACHINE

AREA = Area(
    name=rules.AREA,
    overview=rules.__doc__,
    machine_doc=machine.__doc__,
    machines=(MACHINE,),
    features={
        "nested": "a fiber may resume another fiber (the resumer is the one it yields to)",
        "errors": "misuse (resuming a finished, running or freed fiber) is an error, not undefined behaviour",
        "stack": "the target reports each fiber's stack (range, guard page, frame chain)",
        "guard": "a stack overflow hits a guard page and fails the fiber, not the process",
        "abi": "the target can observe the callee-saved registers and control words across a switch",
        "df": "the target can observe the direction flag across a switch (x86-64)",
        "sigmask": "the target can observe the signal mask across a switch",
    },
)

__all__ = ["AREA", "MACHINE", "layout", "rules"]
