"""The fiber target protocol.

A fiber target creates fibers whose bodies are the spec's programs
(`asyncspec.spec.fiber.machine.PROGS`), resumes them from the main context
and frees them, answering in the spec's vocabulary:

    do_create(slot, prog) -> ("ok",)
    do_resume(slot, value) -> ("yielded", x) | ("finished", x)
                              | ("failed", "overflow") | ("err", "finished" ...)
    do_free(slot)         -> ("ok",) | ("err", "none")
"""

from __future__ import annotations

from asyncspec.conformance.target import Target


class FiberTarget(Target):
    area = "fiber"
