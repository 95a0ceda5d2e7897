"""`asyncspec prove`: the properties proved from the spec, one table.

Each property names its rules, its method, and is checked on the spec's own
definitions: `asyncspec.model.symbolic` runs the machines' Python on z3
values (the fiber layout is read with z3 integers).  Methods:

induction
    the property (with the lemmas it needs, which are proved with it) holds
    initially and after every step from every state where it holds -- so in
    every reachable state; a failure gives a counterexample to induction,
    and then a run from the initial state is searched for (BMC) and returned.
step
    every step from every well-formed state satisfies the property.
BMC depth k
    no run of up to k steps breaks it (from the states the row names).
quantified
    a fact over all integers in the stated range, proved by z3.

A property that does not hold prints its counterexample; a run from the
initial state that breaks it comes back as plain data (`trace.Run`), which
the caller may write as a replayable counterexample file (``save``; the
``--out`` of `asyncspec prove`).  What is not proved is listed as such with
the reason, so the table is the honest state of the formal layer.

This module is the runner only: the rows are each area's proof file,
``asyncspec.model.proofs.<area>`` (its ``PROPERTIES``); adding a property
is one `Property` entry there.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import multiprocessing
import os
import time
from dataclasses import dataclass, field
from typing import Callable

from ..spec import machines
from . import proofs
from .proofs import Property
from .trace import Run

PROVED, REFUTED, NOT_YET = "proved", "REFUTED", "not yet"

# The order of the areas in the table: the order their rows were written,
# kept so the table (and the docs made from it) reads as it did.  An area not
# named here follows, in the spec's order.
TABLE_ORDER = ("fiber", "waker", "readiness", "pin")


@dataclass
class Outcome:
    prop: Property
    status: str
    detail: str
    seconds: float
    files: dict = field(default_factory=dict)  # counterexample files, by kind (json, itf, dot, svg)
    run: Run | None = None  # a refuted property's run from the initial state


def proof_files() -> list:
    """The proof file of every area of the spec that has one, in table order."""
    areas = sorted(machines(), key=lambda a: TABLE_ORDER.index(a) if a in TABLE_ORDER else len(TABLE_ORDER))
    names = [f"{proofs.__name__}.{area}" for area in areas]
    # An area without a proof file has no rows (a discovery, hence the dynamic import).
    return [importlib.import_module(n) for n in names if importlib.util.find_spec(n) is not None]


PROPERTIES: list[Property] = [prop for module in proof_files() for prop in module.PROPERTIES]


def _run(props: list[Property]) -> list[Outcome]:
    """Check properties in order (in one process)."""
    results = []
    for prop in props:
        started = time.monotonic()
        if prop.check is None:
            results.append(Outcome(prop, NOT_YET, prop.method.split(": ", 1)[-1], 0.0))
            continue
        got = prop.check()
        ok, detail = got[0], got[1]
        run = got[2] if len(got) > 2 else None
        results.append(Outcome(prop, PROVED if ok else REFUTED, detail, time.monotonic() - started, run=run))
    return results


def _run_group(indexes):
    return indexes, [(o.status, o.detail, o.seconds, o.run) for o in _run([PROPERTIES[i] for i in indexes])]


def prove(
    areas: list[str] | None = None,
    report: Callable[[str], None] = print,
    save: Callable[[Run], tuple[dict, str]] | None = None,
    jobs: int | None = None,
) -> list[Outcome]:
    """Check every property of ``areas`` (default all); report each table line
    as it is known, in table order.  Groups run in parallel on ``jobs``
    processes (default: every core).

    ``save(run)``, when given, writes a refuted property's run as files and
    returns (paths by kind, a note on anything not written): the line then
    names the file."""
    chosen = [i for i, p in enumerate(PROPERTIES) if not areas or p.area in areas]
    groups: dict[str, list[int]] = {}
    for i in chosen:
        groups.setdefault(PROPERTIES[i].group or f"#{i}", []).append(i)
    order = sorted(groups.values(), key=lambda ix: -sum(PROPERTIES[i].cost for i in ix))
    jobs = jobs or min(len(order), os.cpu_count() or 1)
    done: dict[int, Outcome] = {}
    shown = 0

    def take(indexes, rows):
        nonlocal shown
        for i, (status, detail, seconds, run) in zip(indexes, rows):
            o = done[i] = Outcome(PROPERTIES[i], status, detail, seconds, run=run)
            if run is not None and save is not None:
                started = time.monotonic()
                o.files, note = save(run)
                o.detail += f"; counterexample: {o.files['json']}" + (f" ({note})" if note else "")
                o.seconds += time.monotonic() - started
        while shown < len(chosen) and chosen[shown] in done:
            report(_line(done[chosen[shown]]))
            shown += 1

    if jobs <= 1 or len(order) <= 1:
        for ix in order:
            take(*_run_group(ix))
    else:
        ctx = multiprocessing.get_context("fork")
        with ctx.Pool(jobs) as pool:
            for indexes, rows in pool.imap_unordered(_run_group, order):
                take(indexes, rows)
    return [done[i] for i in chosen]


def _line(o: Outcome) -> str:
    method = o.prop.method if o.prop.check is not None else "—"
    return f"  {o.prop.area:<9} {', '.join(o.prop.rules) or '—':<32} {method:<38} {o.status:<8} {o.seconds:6.1f}s  {o.prop.name}: {o.detail}"


def as_json(outcomes: list[Outcome]) -> list[dict]:
    """The outcomes as data (no times: other code compares these)."""
    return [
        {
            "area": o.prop.area,
            "rules": list(o.prop.rules),
            "name": o.prop.name,
            "method": o.prop.method if o.prop.check is not None else "",
            "status": o.status,
            "detail": o.detail,
            "files": dict(o.files),
        }
        for o in outcomes
    ]


def main(areas: list[str] | None = None, json_path: str | None = None, save: Callable[[Run], tuple[dict, str]] | None = None) -> int:
    """The table, printed line by line as it is known; ``json_path``: also as JSON;
    ``save``: writes a refuted property's run (see `prove`)."""
    print(f"  {'area':<9} {'rules':<32} {'method':<38} {'result':<8} {'time':>7}  property", flush=True)
    started = time.monotonic()
    outcomes = prove(areas, lambda line: print(line, flush=True), save)
    total = time.monotonic() - started
    counts = {s: sum(1 for o in outcomes if o.status == s) for s in (PROVED, REFUTED, NOT_YET)}
    print(f"\n  {counts[PROVED]} proved, {counts[REFUTED]} refuted, {counts[NOT_YET]} not yet proved, in {total:.1f}s")
    if json_path:
        with open(json_path, "w") as f:
            json.dump({"format": "asyncspec-proofs/1", "properties": as_json(outcomes)}, f, indent=1)
            f.write("\n")
        print(f"  results (JSON): {json_path}")
    return 1 if counts[REFUTED] else 0


__all__ = ["PROPERTIES", "Outcome", "Property", "as_json", "main", "proof_files", "prove"]
