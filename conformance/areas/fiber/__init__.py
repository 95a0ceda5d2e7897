"""The fiber area's conformance pieces: the target base (`FiberTarget`) and
the area's state diagrams."""

from asyncspec.conformance.areas import AreaConformance
from asyncspec.conformance.areas.fiber.target import FiberTarget
from asyncspec.conformance.areas.fiber.views import VIEWS

CONFORMANCE = AreaConformance(
    name="fiber",
    wire=FiberTarget,
    base=FiberTarget,
    base_doc="it dispatches each action to a `do_<action>` method",
    views=VIEWS,
)

__all__ = ["CONFORMANCE", "FiberTarget"]
