"""Counterexamples in the Informal Trace Format (ITF) of Apalache / TLA+ tools.

ITF (Apalache ADR-015) is a JSON trace: ``vars`` names the state variables,
``states`` gives each state's value for every variable.  Values: booleans,
strings, integers (``{"#bigint": "..."}`` beyond ±(2^53 - 1)), lists
(TLA+ sequences), records (JSON objects), ``{"#set": [...]}``,
``{"#tup": [...]}``.  ITF tools (trace viewers, Quint's and Apalache's
tooling) read it without knowing asyncspec.

A counterexample becomes one ITF state per point in the trace: state 0 is
the spec's initial state, state i the situation after step i:

    possible    the set of model states the spec allows after the step
                (a set, because the checker follows every state consistent
                with what the target showed; empty after the broken step)
    action      the step's action ("init" in state 0)
    args        the action's arguments (a record)
    observed    what the target observed, as the spec prints it
    allowed     the set of observations the spec allowed at this step
    violated    the set of rule IDs the step broke (empty but at the end)
"""

from __future__ import annotations

from typing import Any

from asyncspec.conformance.output.render import shower
from asyncspec.conformance.wire import tupled

ITF_VARS = ["possible", "action", "args", "observed", "allowed", "violated"]
_SAFE = 2**53 - 1


def value(v: Any) -> Any:
    """JSON data (as in a counterexample file) as an ITF value."""
    if isinstance(v, bool) or isinstance(v, str):
        return v
    if isinstance(v, int):
        return v if -_SAFE <= v <= _SAFE else {"#bigint": str(v)}
    if isinstance(v, (list, tuple)):
        return [value(x) for x in v]
    if isinstance(v, dict):
        return {str(k): value(x) for k, x in v.items()}
    return {"#unserializable": repr(v)}


def _set(items) -> dict:
    out, seen = [], set()
    for item in items:
        key = repr(item)
        if key not in seen:
            seen.add(key)
            out.append(item)
    return {"#set": out}


def from_counterexample(data: dict[str, Any]) -> dict[str, Any]:
    """The ITF trace of a counterexample (a dict in the counterexample file format)."""
    show = shower(data["area"], data["profile"])
    steps = data["steps"]
    initial = steps[0].get("model_before", []) if steps else []
    states = [
        {
            "#meta": {"index": 0},
            "possible": _set(value(m) for m in initial),
            "action": "init",
            "args": {},
            "observed": "",
            "allowed": _set([]),
            "violated": _set([]),
        }
    ]
    for step in steps:
        states.append(
            {
                "#meta": {"index": step["index"]},
                "possible": _set(value(m) for m in step.get("model_after", [])),
                "action": step["action"],
                "args": value(step["args"]),
                "observed": show(tupled(step["observed"])),
                "allowed": _set(show(tupled(a)) for a in step.get("allowed", [])),
                "violated": _set(step.get("violated", [])),
            }
        )
    return {
        "#meta": {
            "format": "ITF",
            "format-description": "https://apalache-mc.org/docs/adr/015adr-trace.html",
            "source": "asyncspec",
            "description": (
                f"asyncspec {data.get('verdict', 'failure')}: {data['area']} against {data['target']}"
                f" (profile {data['profile']}), broken: {', '.join(r['id'] for r in data.get('violated', []))}"
            ),
            "asyncspec": data.get("asyncspec", "unknown"),
            "area": data["area"],
            "target": data["target"],
            "profile": data["profile"],
        },
        "vars": list(ITF_VARS),
        "states": states,
    }
