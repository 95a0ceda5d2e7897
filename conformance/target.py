"""The Target protocol: what the conformance bridge checks against a spec.

A target performs one spec action at a time and returns what it observed,
in the spec's vocabulary.  The bridge knows nothing else about it: the
reference implementation is one target among several.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Hashable, Mapping

from ..spec.core import rule

TARGET_SOUND = rule(
    "TGT-1",
    """A target performs every step without raising an exception, crashing
    (SIGSEGV, SIGBUS, SIGILL, abort) or exiting, and answers each step within
    the step timeout.""",
    source="asyncspec: a runtime under test must survive every sequence the spec allows",
    profiles=["any"],
    area="target",
)

FAILED_STEP = ("crashed", "hung", "raised")


def target_failed(obs) -> bool:
    """Is this observation a target's failure rather than an answer?"""
    return isinstance(obs, tuple) and len(obs) == 2 and obs[0] in FAILED_STEP


class TargetUnavailable(Exception):
    """The target cannot run on this machine (the message says why)."""


class Target(ABC):
    #: Short name shown in reports.
    name: str = "?"
    #: The spec area the target implements.
    area: str = "?"
    #: The protocol it speaks, when an area has several (readiness: "epoll").
    dialect: str = ""
    #: Optional capabilities it claims (rules needing others are n/a).
    features: frozenset[str] = frozenset()
    #: One line on what it is and what it claims.
    description: str = ""
    #: The spec profile it is checked under when none is asked for ("": the area's default).
    profile: str = ""
    #: The profiles it claims to implement (empty: any) and the rules it
    #: claims (glob patterns; empty: every rule its features allow).  Rules
    #: it does not claim are reported not applicable.
    profiles: frozenset[str] = frozenset()
    claims: tuple[str, ...] = ()

    @classmethod
    def claims_rule(cls, rule_id: str) -> bool:
        import fnmatch

        return not cls.claims or any(fnmatch.fnmatchcase(rule_id, p) for p in cls.claims)

    @classmethod
    def unavailable(cls) -> str | None:
        """Why the target cannot run here, or None when it can."""
        return None

    def open(self) -> None:
        """Acquire resources for one run (one Hypothesis example)."""

    def close(self) -> None:
        """Release every resource ``open`` and the steps acquired."""

    @abstractmethod
    def perform(self, action: str, args: Mapping[str, Any]) -> Hashable:
        """Take one action; return the observation."""

    def project(self, state: Any, action: str, obs: Hashable) -> Hashable:
        """Map a spec observation into this target's view (default: as is)."""
        return obs

    def __enter__(self):
        self.open()
        return self

    def __exit__(self, *exc):
        self.close()
