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
from typing import Any

from ..spec import RULES
from .bridge import Violation

FORMAT = "asyncspec-counterexample/1"


def _jsonable(value):
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    return value


def tupled(value):
    """JSON lists back to the tuples observations are made of."""
    if isinstance(value, list):
        return tuple(tupled(v) for v in value)
    return value


def version() -> str:
    try:
        return metadata.version("asyncspec")
    except metadata.PackageNotFoundError:
        return "unknown"


def to_data(v: Violation, target: str, seed: int | None = None) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "asyncspec": version(),
        "area": v.area,
        "profile": v.profile,
        "target": target,
        "seed": seed,
        "steps": [
            {
                "index": s.index,
                "action": s.action,
                "args": s.args,
                "observed": _jsonable(s.observed),
                "allowed": _jsonable(list(s.allowed)),
                "state_before": list(s.before),
                "violated": list(s.violated),
            }
            for s in v.steps
        ],
        "violated": [
            {"id": rid, "statement": RULES[rid].statement, "source": RULES[rid].source} for rid in v.rules
        ],
    }


def write(v: Violation, target: str, out_dir: str, seed: int | None = None) -> str:
    os.makedirs(out_dir, exist_ok=True)
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{v.area}-{target}-{v.profile}")
    path = os.path.join(out_dir, f"{slug}-{time.strftime('%Y%m%dT%H%M%S')}.json")
    n = 1
    while os.path.exists(path):
        n += 1
        path = os.path.join(out_dir, f"{slug}-{time.strftime('%Y%m%dT%H%M%S')}-{n}.json")
    with open(path, "w") as f:
        json.dump(to_data(v, target, seed), f, indent=1)
        f.write("\n")
    return path


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
