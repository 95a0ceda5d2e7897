"""Rules of the target itself: whatever the area, a runtime under test must
answer every step the spec allows.  They are checked by the conformance
runner around every step (a target's exception, crash or hang is an
observation no spec allows), so they hold in every profile."""

from ..core import rule

AREA = "target"

TARGET_SOUND = rule(
    "TGT-1",
    """A target performs every step without raising an exception, crashing
    (SIGSEGV, SIGBUS, SIGILL, abort) or exiting, and answers each step within
    the step timeout.""",
    source="asyncspec: a runtime under test must survive every sequence the spec allows",
    profiles=["any"],
    area=AREA,
)
