"""The waker area's conformance pieces: its state diagrams (a waker target
derives from the plain `Target`)."""

from asyncspec.conformance.areas import AreaConformance
from asyncspec.conformance.areas.waker.views import VIEWS

CONFORMANCE = AreaConformance(name="waker", views=VIEWS)

__all__ = ["CONFORMANCE"]
