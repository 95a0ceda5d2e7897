"""The fiber area's state diagrams in the generated docs: what each one
looks at (`asyncspec.conformance.docgen.diagrams` explores the machine and
draws what it finds; nothing here says which transitions exist)."""

from __future__ import annotations

from asyncspec.conformance.docgen.diagrams import Step, View, arg_grid
from asyncspec.spec.fiber.machine import PROGS

_FIBER_STATES = ("no fiber", "created", "suspended", "finished", "failed")

FIBER = (
    View(
        area="fiber",
        name="lifecycle",
        title="A fiber's lifecycle",
        caption="One fiber slot, driven from the main context: a body that yields once and then returns, and one "
        "that overflows its stack into the guard page.  Resuming a created or suspended fiber runs it until it "
        "yields, returns or fails (FIB-LIFE-1, FIB-LIFE-2, FIB-STACK-3); resuming a finished or failed one is an "
        "error, not undefined behaviour (FIB-LIFE-4); freeing returns the slot (FIB-LIFE-5).",
        steps=(
            Step("create", arg_grid(slot=(0,), prog=("yield1", "overflow")), label=lambda a: f"create ({a['prog']})", show_obs=False),
            Step("resume", (dict(slot=0, value=0),), label=lambda a: "resume(0)"),
            Step("free", (dict(slot=0),), label=lambda a: "free", show_obs=False),
        ),
        project=lambda w: _fiber_facts(w),
    ),
)


def _fiber_facts(w) -> tuple[str, ...]:
    f = w.fibers[0]
    if f.st == 0:
        return ("no fiber",)
    return (_FIBER_STATES[f.st], f"body {PROGS[f.prog]}")

VIEWS = FIBER
