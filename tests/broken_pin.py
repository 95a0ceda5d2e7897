"""A deliberately broken pinning runtime: the pin conformance run must catch it.

RelocateStarted is the reference fiber switcher with the "relocate" patch
(fixtures/broken_builds.py): its safe Fiber.relocate lets a started fiber
move (a bitwise move that fixes no pointer) instead of refusing it.  Driven by the
reference pin target's own code, given to `asyncspec run pin` as a
``module:attribute`` target like any user's own.
"""

from __future__ import annotations

from asyncspec.conformance.targets.impl_pin import ImplPin
from broken_switchers import VariantBuild


class RelocateStarted(VariantBuild, ImplPin):
    name = "broken-relocate-started"
    description = "Fiber.relocate moves a started (pinned) fiber instead of refusing it."
    build = "relocate"
