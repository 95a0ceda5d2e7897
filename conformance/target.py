"""The Target protocol: what the conformance bridge checks against a spec.

A target performs one spec action at a time and returns what it observed,
in the spec's vocabulary.  The bridge knows nothing else about it: the
reference implementation is one target among several.

Everything a runner may ask of a target is declared here, with its
default; nothing else is looked up on a target class.

Required: ``name``, ``area``, and one ``do_<action>(**args)`` method per
spec action it can take (or its own ``perform``).

Optional, declared with defaults below:

- what it claims: ``dialect``, ``features`` (checked against the area's
  declared features: a misspelt one is an error), ``profile``,
  ``profiles``, ``claims``;
- where it can run: ``requires`` (modules that must import) and
  ``unavailable()``;
- how it runs: ``out_of_process`` (it is a process of its own already: no
  worker around it), ``batched`` with ``prepare(traces)`` (it answers from
  whole traces prepared at once, e.g. compiled), ``max_steps`` (its own
  bound on steps per example), ``shutdown()`` (end the run's processes);
- how its answers are read: ``received`` (the area's wire view: an answer
  as the spec compares it) and ``project`` (a spec observation in this
  target's view).
"""

from __future__ import annotations

import fnmatch
import importlib
from abc import ABC
from typing import Any, Callable, ClassVar, Hashable, Iterable, Mapping, Sequence

from asyncspec.spec import areas
from asyncspec.spec.target.rules import TARGET_SOUND

FAILED_STEP = ("crashed", "hung", "raised")

Trace = Sequence[tuple[str, Mapping[str, Any]]]


def target_failed(obs) -> bool:
    """Is this observation a target's failure rather than an answer?"""
    return isinstance(obs, tuple) and len(obs) == 2 and obs[0] in FAILED_STEP


class TargetUnavailable(Exception):
    """The target cannot run on this machine (the message says why)."""


class Target(ABC):
    #: Short name shown in reports.
    name: ClassVar[str] = "?"
    #: The spec area the target implements.
    area: ClassVar[str] = "?"
    #: The protocol it speaks, when an area has several (readiness: "epoll").
    dialect: ClassVar[str] = ""
    #: Optional capabilities it claims (rules needing others are n/a); each
    #: must be one the area declares.
    features: ClassVar[frozenset[str]] = frozenset()
    #: One line on what it is and what it claims.
    description: ClassVar[str] = ""
    #: The spec profile it is checked under when none is asked for ("": the area's default).
    profile: ClassVar[str] = ""
    #: The profiles it claims to implement (empty: any) and the rules it
    #: claims (glob patterns; empty: every rule its features allow).  Rules
    #: it does not claim are reported not applicable.
    profiles: ClassVar[frozenset[str]] = frozenset()
    claims: ClassVar[tuple[str, ...]] = ()
    #: Modules that must import for it to run, and what to tell a user
    #: when one does not (the default `unavailable` checks them).
    requires: ClassVar[tuple[str, ...]] = ()
    requires_hint: ClassVar[str] = ""
    #: It is a process of its own already (an `exec:` adapter): a runner
    #: puts no worker process around it.
    out_of_process: ClassVar[bool] = False
    #: It answers from traces prepared all at once by `prepare` (a target
    #: that compiles what it is asked), not one step at a time.
    batched: ClassVar[bool] = False
    #: Its own bound on steps per example (None: the run's).
    max_steps: ClassVar[int | None] = None

    @classmethod
    def claims_rule(cls, rule_id: str) -> bool:
        return not cls.claims or any(fnmatch.fnmatchcase(rule_id, p) for p in cls.claims)

    @classmethod
    def unavailable(cls) -> str | None:
        """Why the target cannot run here, or None when it can."""
        return missing_module(cls.requires, cls.requires_hint)

    @classmethod
    def prepare(cls, traces: Iterable[Trace]) -> None:
        """A batched target: compute the answers to every step of ``traces`` at once."""
        if cls.batched:
            raise NotImplementedError(f"{cls.name} is batched but has no prepare()")

    @classmethod
    def shutdown(cls) -> None:
        """End whatever the run started for this class (a worker, an adapter)."""

    def open(self) -> None:
        """Acquire resources for one run (one Hypothesis example)."""

    def close(self) -> None:
        """Release every resource ``open`` and the steps acquired."""

    def perform(self, action: str, args: Mapping[str, Any]) -> Hashable:
        """Take one action; return the observation (by default: ``do_<action>(**args)``)."""
        return self.step_method(action)(**args)

    def step_method(self, action: str) -> Callable[..., Hashable]:
        method = getattr(self, "do_" + action, None)
        if method is None:
            raise NotImplementedError(f"{self.name} cannot perform {action!r} (no do_{action} method)")
        return method

    @staticmethod
    def received(action: str, obs: Hashable) -> Hashable:
        """An answer as the spec compares it (the area's wire view; by default as is)."""
        return obs

    def project(self, state: Any, action: str, obs: Hashable) -> Hashable:
        """Map a spec observation into this target's view (default: as is)."""
        return obs

    def __enter__(self):
        self.open()
        return self

    def __exit__(self, *exc):
        self.close()


def missing_module(modules: Iterable[str], hint: str = "") -> str | None:
    """Why one of ``modules`` cannot be imported (with ``hint``), or None."""
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as e:
            return f"{module} is not importable ({e})" + (f"; {hint}" if hint else "")
    return None


def unknown_features(target_cls: type[Target]) -> str | None:
    """What is wrong with the features a target claims, or None (checked against its area's declaration)."""
    area = areas().get(target_cls.area)
    if area is None:
        return f"target {target_cls.name!r} names unknown area {target_cls.area!r} (known: {', '.join(sorted(areas()))})"
    bad = area.unknown_features(target_cls.features)
    if bad:
        return (
            f"target {target_cls.name!r} claims unknown {area.name} feature(s) {', '.join(bad)}"
            f" (the area declares: {area.feature_list()})"
        )
    return None


__all__ = ["FAILED_STEP", "TARGET_SOUND", "Target", "TargetUnavailable", "missing_module", "target_failed", "unknown_features"]
