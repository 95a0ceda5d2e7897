"""Each area's conformance pieces, found from the spec's list of areas.

For every area in `asyncspec.spec.areas()`, the package
``asyncspec.conformance.areas.<area>`` (when there is one) exports one
`AreaConformance` record named ``CONFORMANCE``: the target base a Python
target of the area starts from, the class whose wire view reads every
answer (an `exec:` adapter's too), the guide's sentence about that base,
and the state diagrams the docs draw.  An area without such a package gets
the defaults (the plain Target; one diagram explored from its machine).
An area registered from outside the package (`asyncspec.spec.register`)
registers its record here with `register`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from asyncspec.conformance.target import Target
from asyncspec.spec import areas as spec_areas


@dataclass(frozen=True)
class AreaConformance:
    name: str
    #: The class whose `received`/`project` read this area's answers (its
    #: wire view): every target of the area derives from it, and so does
    #: the class an `exec:` adapter is driven through.
    wire: type[Target] = Target
    #: What a Python target of the area starts from, and one sentence on
    #: what it does for you (the getting-started page).
    base: type[Target] = Target
    base_doc: str = ""
    #: The state diagrams of the generated docs (`docgen.diagrams.View`s);
    #: empty: one default view explored from the machine.
    views: tuple = ()


_registered: dict[str, AreaConformance] = {}
_loaded: dict[str, AreaConformance] = {}


def register(record: AreaConformance) -> AreaConformance:
    """The conformance record of an area defined outside this package."""
    _registered[record.name] = record
    return record


def unregister(name: str) -> None:
    _registered.pop(name, None)


def conformance(area: str) -> AreaConformance:
    """The conformance record of ``area`` (KeyError for an unknown area)."""
    if area not in spec_areas():
        raise KeyError(f"unknown area {area!r} (known: {', '.join(sorted(spec_areas()))})")
    if area in _registered:
        return _registered[area]
    if area not in _loaded:
        try:
            module = importlib.import_module(f"{__name__}.{area}")
        except ModuleNotFoundError as e:
            if e.name != f"{__name__}.{area}":
                raise
            _loaded[area] = AreaConformance(area)
        else:
            _loaded[area] = module.CONFORMANCE
    return _loaded[area]


__all__ = ["AreaConformance", "conformance", "register", "unregister"]
