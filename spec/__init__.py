"""The spec: every area's rules and state machine, written once.

`AREAS` is the single list of the built-in areas: each is a subpackage
exporting one `Area` record (its machines and declared target features).
Everything else finds an area through `areas()` here; an area defined
outside this package (a tiny one in the tests) is added with `register`.
"""

from __future__ import annotations

import importlib

from . import target  # noqa: F401  (TGT-1, the rule every area shares, is registered with the rest)
from .core import RULES, Action, Area, Machine, Outcome, Param, Profile, Rule

AREAS = ("readiness", "fiber", "waker", "pin")

_registered: dict[str, Area] = {}


def _builtin() -> dict[str, Area]:
    out = {}
    for name in AREAS:
        area = importlib.import_module(f"{__name__}.{name}").AREA
        out[area.name] = area
    return out


_BUILTIN = _builtin()


def register(area: Area) -> Area:
    """Add an area defined outside this package (idempotent for the same record)."""
    known = _BUILTIN.get(area.name) or _registered.get(area.name)
    if known is not None and known is not area:
        raise ValueError(f"area {area.name!r} is defined twice")
    _registered[area.name] = area
    return area


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
]
