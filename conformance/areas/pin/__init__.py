"""The pin area's conformance pieces: its state diagrams (a pin target
derives from the plain `Target`)."""

from asyncspec.conformance.areas import AreaConformance
from asyncspec.conformance.areas.pin.views import VIEWS

CONFORMANCE = AreaConformance(name="pin", views=VIEWS)

__all__ = ["CONFORMANCE"]
