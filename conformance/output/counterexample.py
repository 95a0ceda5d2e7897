"""Counterexample files: a failure as data, replayable without Hypothesis.

A file holds everything needed to re-execute exactly the failing steps and
to explain them: the asyncspec version, area, profile, target, each step's
action and arguments with what the target observed and what the spec
allowed, and the broken rules with their statements and sources.
"""

from __future__ import annotations

import json
import os
import re
import time
from importlib import metadata
from typing import Any, Iterable

from asyncspec.conformance.engine.replay import model_run
from asyncspec.conformance.engine.selection import EVERYTHING, Selection
from asyncspec.conformance.engine.verdicts import Violation
from asyncspec.conformance.output import itf, render
from asyncspec.conformance.wire import jsonable, state_data, tupled
from asyncspec.spec import RULES

FORMAT = "asyncspec-counterexample/1"


def version() -> str:
    try:
        return metadata.version("asyncspec")
    except metadata.PackageNotFoundError:
        return "unknown"


def to_data(
    v: Violation, target: str, seed: int | None = None, fatal: bool = True, selection: Selection = EVERYTHING
) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "asyncspec": version(),
        "area": v.area,
        "profile": v.profile,
        "target": target,
        "seed": seed,
        # "failure": the run failed on it; "warning": it breaks only rules the run tolerated.
        "verdict": "failure" if fatal else "warning",
        # The run's rule selection: a replay tolerates what the run tolerated.
        "selection": {"rules": list(selection.rules), "exclude": list(selection.exclude), "strict": selection.strict},
        "steps": [
            {
                "index": s.index,
                "action": s.action,
                "args": s.args,
                "observed": jsonable(s.observed),
                "allowed": jsonable(list(s.allowed)),
                "state_before": list(s.before),
                "state_after": list(s.after),
                "model_before": [state_data(m) for m in s.model_before],
                "model_after": [state_data(m) for m in s.model_after],
                "violated": list(s.violated),
                "tolerated": list(s.tolerated),
            }
            for s in v.steps
        ],
        "violated": [
            {"id": rid, "statement": RULES[rid].statement, "source": RULES[rid].source} for rid in v.rules
        ],
    }


def write(
    v: Violation, target: str, out_dir: str, seed: int | None = None, fatal: bool = True, selection: Selection = EVERYTHING
) -> str:
    return _write_data(to_data(v, target, seed, fatal, selection), out_dir)


def _write_data(data: dict[str, Any], out_dir: str, stamp: bool = True) -> str:
    """Write the file; its name says what and, with ``stamp``, when (else it
    is stable, for files kept in the repository, and replaced)."""
    os.makedirs(out_dir, exist_ok=True)
    kind = "" if data["verdict"] == "failure" else "warning-"
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{kind}{data['area']}-{data['target']}-{data['profile']}")
    if not stamp:
        rules = re.sub(r"[^A-Za-z0-9_.-]+", "_", "-".join(r["id"] for r in data["violated"]))
        path = os.path.join(out_dir, f"{slug}-{rules}.json")
    else:
        when = time.strftime("%Y%m%dT%H%M%S")
        path = os.path.join(out_dir, f"{slug}-{when}.json")
        n = 1
        while os.path.exists(path):
            n += 1
            path = os.path.join(out_dir, f"{slug}-{when}-{n}.json")
    with open(path, "w") as f:
        json.dump(data, f, indent=1)
        f.write("\n")
    return path


def save(
    v: Violation,
    target: str,
    out_dir: str,
    seed: int | None = None,
    fatal: bool = True,
    formats=("svg",),
    selection: Selection = EVERYTHING,
    stamp: bool = True,
) -> tuple[dict[str, str], str]:
    """Write a counterexample as a file set: ``X.json`` (replayable), ``X.itf.json``
    (the Apalache/TLA+ Informal Trace Format), ``X.dot`` and the drawings.

    Returns (paths by kind: json, itf, dot, svg, ...; a note on any drawing not made).
    """
    data = to_data(v, target, seed, fatal, selection)
    path = _write_data(data, out_dir, stamp)
    base = path[: -len(".json")]
    paths = {"json": path, "itf": base + ".itf.json"}
    with open(paths["itf"], "w") as f:
        json.dump(itf.from_counterexample(data), f, indent=1)
        f.write("\n")
    drawn, note = render.render(render.to_dot(data), base, formats)
    paths.update(drawn)
    return paths, note


def save_model_run(run, out_dir: str, formats=("svg",)) -> tuple[dict[str, str], str]:
    """Write a run the model found (`asyncspec.model.trace.Run`) as a file set
    (as `save`), its target the spec itself: (paths by kind, a note)."""
    v = model_run(run)
    return save(v, v.target, out_dir, formats=formats)


class BadCounterexample(ValueError):
    pass


def read(path: str) -> dict[str, Any]:
    try:
        with open(path) as f:
            data = json.load(f)
    except OSError as e:
        raise BadCounterexample(f"cannot read {path}: {e.strerror}") from None
    except json.JSONDecodeError as e:
        raise BadCounterexample(f"{path} is not JSON: {e}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise BadCounterexample(f"{path} is not an asyncspec counterexample (format {FORMAT!r} expected)")
    for key in ("area", "profile", "target", "steps"):
        if key not in data:
            raise BadCounterexample(f"{path} has no {key!r}")
    for i, step in enumerate(data["steps"], 1):
        if not isinstance(step, dict) or "action" not in step or not isinstance(step.get("args"), dict):
            raise BadCounterexample(f"{path}: step {i} needs an 'action' and an 'args' object")
        step["observed"] = tupled(step.get("observed"))
    return data


def replay_selection(data: dict[str, Any]) -> Selection | None:
    """The rules a replay of this file tolerates: a failure's run selection;
    none for a warning (replayed enforcing every rule, which is how it shows)."""
    sel = data.get("selection")
    if data.get("verdict") == "warning" or not isinstance(sel, dict):
        return None
    return Selection(tuple(sel.get("rules", ())), tuple(sel.get("exclude", ())), bool(sel.get("strict", False)))


def draw(path: str, formats: Iterable[str] = ("svg",)) -> tuple[dict[str, str], str]:
    """Draw a saved counterexample file next to it: (paths by kind, a note on any drawing not made)."""
    data = read(path)
    base = path[:-5] if path.endswith(".json") else path
    return render.render(render.to_dot(data), base, formats)
