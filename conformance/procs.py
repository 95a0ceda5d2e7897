"""Small helpers for the child processes the conformance side starts (light: no spec, no Hypothesis)."""

from __future__ import annotations

import signal


def exit_status(code: int | None) -> str:
    """A child's return code in words."""
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


def no_core_dumps() -> None:
    """In a child before exec: a crash leaves no core file behind."""
    import resource

    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
