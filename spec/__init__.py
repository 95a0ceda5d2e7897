"""The spec: every area's rules and state machine, written once."""

from .core import RULES, Action, Machine, Outcome, Param, Profile, Rule


def machines() -> dict[str, Machine]:
    """Every area's machine, by area name."""
    from .readiness import MACHINE as readiness

    return {readiness.area: readiness}


__all__ = ["RULES", "Action", "Machine", "Outcome", "Param", "Profile", "Rule", "machines"]
