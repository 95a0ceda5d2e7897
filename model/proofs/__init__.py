"""The rows of `asyncspec prove`, one file per area: ``proofs/<area>.py``.

Each file declares ``PROPERTIES``, its area's rows of the table, in table
order.  The runner (`asyncspec.model.prove`) finds a file by its area's
name: an area without one has no rows, and adding rows to an area is adding
this file.  What every file shares is here: a row (`Property`) and how a
counterexample to induction reads (`cti_text`).

The invariants a proof needs (shape, lemmas) are the spec's own, stated
beside the machine's other invariants so that every conformance run checks
them too; a file here chooses which to prove and how, and states only what
the spec cannot: properties of steps or of runs, and lemmas over a
monitor's ghost state, which only a proof keeps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass
class Property:
    area: str
    rules: tuple[str, ...]
    name: str
    method: str
    # None: not proved yet (``method`` says why, after "not yet: ").  Else it
    # returns (ok, detail) or (ok, detail, run or None), where a run
    # (`asyncspec.model.trace.Run`) is a run from the initial state that
    # breaks the property, as plain data.
    check: Callable[[], tuple] | None
    # Properties of one group run in one process, in order (they share the
    # machine's symbolic reading); groups run in parallel.
    group: str = ""
    # Rough seconds the check takes (two cores): the slowest groups start first.
    cost: float = 1.0


def cti_text(sym, cx) -> str:
    """A counterexample to induction (or a bounded one) in words."""
    describe = sym.machine.describe
    steps = " -> ".join(f"{a}{args}" for a, args in cx.steps)
    return f"{steps} from {describe(cx.states[0])}" + (f", to {describe(cx.states[-1])}" if len(cx.states) > 1 else "")
