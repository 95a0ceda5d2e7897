"""The readiness area's conformance pieces: the target base every Linux
reactor target starts from (`LinuxSources`), the registration vocabulary
it hands to a reactor (`Interest`), the wire view that reads every epoll
target's answers (`EpollWire`), and the area's state diagrams."""

from asyncspec.conformance.areas import AreaConformance
from asyncspec.conformance.areas.readiness.target import ALL_FEATURES, KNOWN_FLAGS, EpollWire, Interest, LinuxSources
from asyncspec.conformance.areas.readiness.views import VIEWS

CONFORMANCE = AreaConformance(
    name="readiness",
    wire=EpollWire,
    base=LinuxSources,
    base_doc="it creates the sources and performs every operation on them; you implement the reactor calls",
    views=VIEWS,
)

__all__ = ["ALL_FEATURES", "CONFORMANCE", "KNOWN_FLAGS", "EpollWire", "Interest", "LinuxSources"]
