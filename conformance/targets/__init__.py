"""Built-in targets, by name; any other target is given as ``module:attribute``."""

from __future__ import annotations

import importlib
import os
import sys

from ..target import Target, TargetUnavailable

BUILTIN: dict[str, dict[str, str]] = {
    "readiness": {
        "impl": "asyncspec.conformance.targets.impl_reactor:ImplReactor",
        "stdlib-epoll": "asyncspec.conformance.targets.stdlib_epoll:StdlibEpoll",
        "selectors": "asyncspec.conformance.targets.selectors_target:Selectors",
        "asyncio": "asyncspec.conformance.targets.asyncio_target:AsyncioTarget",
        "uvloop": "asyncspec.conformance.targets.uvloop_target:UvloopTarget",
        "trio": "asyncspec.conformance.targets.trio_target:TrioTarget",
        "libuv": "asyncspec.conformance.targets.libuv_target:Libuv",
    },
    "fiber": {
        "impl": "asyncspec.conformance.targets.impl_fiber:ImplFiber",
        "greenlet": "asyncspec.conformance.targets.greenlet_target:GreenletTarget",
        "ucontext": "asyncspec.conformance.targets.ucontext_target:UcontextTarget",
    },
    "waker": {
        "impl": "asyncspec.conformance.targets.impl_waker:ImplWaker",
        "rust-std": "asyncspec.conformance.targets.rust_std_waker:RustStdWaker",
    },
    "pin": {
        "impl": "asyncspec.conformance.targets.impl_pin:ImplPin",
        "rustc": "asyncspec.conformance.targets.rustc_pin:RustcPin",
    },
}


class UnknownTarget(LookupError):
    pass


_exec_classes: dict = {}


def load(spec: str, area: str) -> type[Target]:
    """Resolve a target name, ``module:attribute`` or ``exec:COMMAND`` to a Target class."""
    if spec.startswith("exec:"):
        from ..exec_target import exec_target

        key = (spec, area)
        if key not in _exec_classes:
            _exec_classes[key] = exec_target(spec[len("exec:") :].strip(), area)
        return _exec_classes[key]
    path = BUILTIN.get(area, {}).get(spec)
    if path is None:
        if ":" not in spec:
            known = ", ".join(sorted(BUILTIN.get(area, {}))) or "none"
            raise UnknownTarget(f"unknown {area} target {spec!r} (built-in: {known}; or give module:attribute or exec:COMMAND)")
        path = spec
    module_name, _, attr = path.partition(":")
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
        raise UnknownTarget(f"target {spec!r}: {path} is not a Target subclass")
    if cls.area != area:
        raise UnknownTarget(f"target {spec!r} implements area {cls.area!r}, not {area!r}")
    return cls


__all__ = ["BUILTIN", "load", "Target", "TargetUnavailable", "UnknownTarget"]
