"""Small helpers for the child processes the conformance side starts (light: no spec, no Hypothesis)."""

from __future__ import annotations

import resource
import shutil
import signal
import subprocess


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

    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


class NoRustc(Exception):
    """There is no usable rustc here (the message says why)."""


def rustc() -> tuple[str, str]:
    """rustc's path and its ``rustc -V`` line, or NoRustc saying why not."""

    path = shutil.which("rustc")
    if path is None:
        raise NoRustc("rustc not found on PATH")
    try:
        proc = subprocess.run([path, "-V"], stdin=subprocess.DEVNULL, capture_output=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise NoRustc(f"{path} -V failed: {e}") from None
    version = proc.stdout.decode(errors="replace").strip()
    if proc.returncode != 0 or not version:
        err = proc.stderr.decode(errors="replace").strip()
        raise NoRustc(f"{path} -V failed ({exit_status(proc.returncode)}): {err or 'no output'}")
    return path, version
