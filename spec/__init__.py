"""The spec: every area's rules and state machine, written once.

`AREAS` is the single list of the built-in areas: every subpackage here
that exports one `Area` record named ``AREA`` (its machines and declared
target features) is one, so adding an area is adding its package.
Everything else finds an area through `areas()` here; an area defined
outside this package (a tiny one in the tests) is added with `register`.
"""

from __future__ import annotations

import importlib
import pkgutil

from . import target  # noqa: F401  (TGT-1, the rule every area shares, is registered with the rest)
from .core import RULES, Action, Area, Machine, Outcome, Param, Profile, Rule



def _builtin() -> dict[str, Area]:
    out = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if not info.ispkg:
            continue
        area = getattr(importlib.import_module(f"{__name__}.{info.name}"), "AREA", None)
        if isinstance(area, Area):
            out[area.name] = area
    return out


_BUILTIN = _builtin()
#: The built-in areas, by name (sorted).
AREAS = tuple(_BUILTIN)

_registered: dict[str, Area] = {}


def register(area: Area) -> Area:
    """Add an area defined outside this package (idempotent for the same record)."""
    known = _BUILTIN.get(area.name) or _registered.get(area.name)
    if known is not None and known is not area:
        raise ValueError(f"area {area.name!r} is defined twice")
    _registered[area.name] = area
    return area


def unregister(name: str) -> None:
    """Remove an area added with `register`, and its rules."""
    if name in _BUILTIN:
        raise ValueError(f"area {name!r} is built in")
    if _registered.pop(name, None) is not None:
        RULES.remove_area(name)


def areas() -> dict[str, Area]:
    """Every area by name: the built-in ones in `AREAS` order, then registered ones."""
    return {**_BUILTIN, **_registered}


def area(name: str) -> Area:
    try:
        return areas()[name]
    except KeyError:
        raise KeyError(f"unknown area {name!r} (known: {', '.join(sorted(areas()))})") from None


def all_machines() -> list[Machine]:
    """Every machine of every area (an area may have one per dialect)."""
    return [m for a in areas().values() for m in a.machines]


def machines() -> dict[str, Machine]:
    """Each area's main machine, by area name."""
    return {name: a.machine for name, a in areas().items()}


def machine_for(area_name: str, profile: str | None = None) -> Machine:
    """The machine of ``area_name`` that has ``profile`` (default: the main one)."""
    return area(area_name).machine_for(profile)


__all__ = [
    "AREAS",
    "RULES",
    "Action",
    "Area",
    "Machine",
    "Outcome",
    "Param",
    "Profile",
    "Rule",
    "all_machines",
    "area",
    "areas",
    "machine_for",
    "machines",
    "register",
    "unregister",
]
