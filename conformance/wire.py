"""Observations and model states as JSON, and back: the bottom layer.

Everything that crosses a process boundary (a worker, an `exec:` adapter)
or is written to a file (counterexamples, reports) goes through these:
observations are tuples of plain values, JSON has lists, so tuples become
lists on the way out and lists tuples on the way back.
"""

from __future__ import annotations

import dataclasses
import enum


def jsonable(value):
    """An observation as JSON data (tuples become lists)."""
    if isinstance(value, tuple):
        return [jsonable(v) for v in value]
    return value


def tupled(value):
    """JSON lists back to the tuples observations are made of."""
    if isinstance(value, list):
        return tuple(tupled(v) for v in value)
    return value


def state_data(value):
    """A model state as JSON data: dataclasses become objects, tuples lists."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: state_data(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (tuple, list)):
        return [state_data(v) for v in value]
    if isinstance(value, (frozenset, set)):
        return sorted((state_data(v) for v in value), key=repr)
    if isinstance(value, enum.Enum):
        return value.name
    return value
