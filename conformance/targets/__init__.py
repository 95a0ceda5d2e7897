"""Built-in targets, found in this package; any other target is given as
``module:attribute`` or ``exec:COMMAND``.

The built-in targets are grouped by where the runtime comes from: `impl/`
(the reference implementation), `python/`, `rust/`, `c/`.  Each module
directly in one of those folders that lists Target classes in ``TARGETS``
adds them under their ``area`` and ``name``; adapter sources (a Rust
program, a C file and its build) sit in a subfolder beside their target
and are not scanned.  Adding a built-in target is adding one such module.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import sys

from asyncspec.conformance.process.exec_target import exec_target
from asyncspec.conformance.target import Target, TargetUnavailable, unknown_features

ORIGINS = ("impl", "python", "rust", "c")


class UnknownTarget(LookupError):
    pass


_found: dict[str, dict[str, type[Target]]] | None = None
_registered: dict[str, dict[str, type[Target]]] = {}
_exec_classes: dict = {}


def _scan() -> dict[str, dict[str, type[Target]]]:
    out: dict[str, dict[str, type[Target]]] = {}
    for origin in ORIGINS:
        package = importlib.import_module(f"{__name__}.{origin}")
        for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
            if info.ispkg:
                continue  # adapter sources
            module = importlib.import_module(f"{package.__name__}.{info.name}")
            for cls in getattr(module, "TARGETS", ()):
                _add(out, cls, module.__name__)
    return out


def _add(table: dict, cls: type[Target], where: str) -> None:
    if not (isinstance(cls, type) and issubclass(cls, Target)):
        raise TypeError(f"{where}: TARGETS lists {cls!r}, which is not a Target class")
    if cls.name in table.get(cls.area, {}):
        raise ValueError(f"{where}: a built-in {cls.area} target named {cls.name!r} exists already")
    table.setdefault(cls.area, {})[cls.name] = cls


def register(cls: type[Target]) -> type[Target]:
    """Add a built-in target defined outside this package (a registered area's)."""
    if builtin(cls.area).get(cls.name) not in (None, cls):
        raise ValueError(f"a built-in {cls.area} target named {cls.name!r} exists already")
    _registered.setdefault(cls.area, {})[cls.name] = cls
    return cls


def unregister(cls: type[Target]) -> None:
    if _registered.get(cls.area, {}).get(cls.name) is cls:
        del _registered[cls.area][cls.name]


def builtin(area: str) -> dict[str, type[Target]]:
    """The built-in targets of ``area``, by name (sorted)."""
    global _found
    if _found is None:
        _found = _scan()
    table = {**_found.get(area, {}), **_registered.get(area, {})}
    return dict(sorted(table.items()))


def load(spec: str, area: str) -> type[Target]:
    """Resolve a target name, ``module:attribute`` or ``exec:COMMAND`` to a Target class."""
    if spec.startswith("exec:"):
        key = (spec, area)
        if key not in _exec_classes:
            _exec_classes[key] = exec_target(spec[len("exec:") :].strip(), area)
        return _exec_classes[key]
    cls = builtin(area).get(spec)
    if cls is None:
        if ":" not in spec:
            known = ", ".join(builtin(area)) or "none"
            raise UnknownTarget(f"unknown {area} target {spec!r} (built-in: {known}; or give module:attribute or exec:COMMAND)")
        cls = _import(spec)
    if cls.area != area:
        raise UnknownTarget(f"target {spec!r} implements area {cls.area!r}, not {area!r}")
    wrong = unknown_features(cls)
    if wrong:
        raise UnknownTarget(wrong)
    return cls


def _import(spec: str) -> type[Target]:
    module_name, _, attr = spec.partition(":")
    # Like `python -m`, a user's own target module may sit in the current directory.
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise UnknownTarget(f"target {spec!r}: cannot import {module_name!r}: {e}") from None
    try:
        cls = getattr(module, attr)
    except AttributeError:
        raise UnknownTarget(f"target {spec!r}: module {module_name!r} has no attribute {attr!r}") from None
    if not (isinstance(cls, type) and issubclass(cls, Target)):
        raise UnknownTarget(f"target {spec!r}: {spec} is not a Target subclass")
    return cls


__all__ = ["ORIGINS", "builtin", "load", "register", "unregister", "Target", "TargetUnavailable", "UnknownTarget"]
