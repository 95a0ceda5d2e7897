"""The spec: every area's rules and state machine, written once."""

from .core import RULES, Action, Machine, Outcome, Param, Profile, Rule


def all_machines() -> list[Machine]:
    """Every machine of every area (an area may have one per dialect)."""
    from .fiber import MACHINE as fiber
    from .pin import MACHINE as pin
    from .readiness import MACHINE as readiness
    from .readiness.kqueue import MACHINE as kqueue
    from .waker import MACHINE as waker

    return [readiness, kqueue, fiber, waker, pin]


def machines() -> dict[str, Machine]:
    """Each area's main machine, by area name."""
    out: dict[str, Machine] = {}
    for m in all_machines():
        out.setdefault(m.area, m)
    return out


def machine_for(area: str, profile: str | None = None) -> Machine:
    """The machine of ``area`` that has ``profile`` (default: the main one)."""
    candidates = [m for m in all_machines() if m.area == area]
    if not candidates:
        known = ", ".join(sorted(machines()))
        raise KeyError(f"unknown area {area!r} (known: {known})")
    if profile is None:
        return candidates[0]
    for m in candidates:
        if any(p.name == profile for p in m.profiles):
            return m
    known = ", ".join(p.name for m in candidates for p in m.profiles)
    raise KeyError(f"{area} has no profile {profile!r} (known: {known})")


__all__ = ["RULES", "Action", "Machine", "Outcome", "Param", "Profile", "Rule", "all_machines", "machine_for", "machines"]
