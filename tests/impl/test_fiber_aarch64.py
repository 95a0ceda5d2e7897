"""The AArch64 switcher (impl/fiber/arch/aarch64.S under impl/fiber/fiber.c), checked
against the AAPCS64 rules by a C program that needs no Python on the target:
tests/impl/aarch64/run.sh cross-compiles it as a static program and runs it under
qemu-user (natively on an AArch64 machine).

Skipped, with the reason, when the cross compiler, its C library or the
emulator is missing; .ci/setup installs all three on Debian.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess

import pytest

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "aarch64", "run.sh")
SKIP_STATUS = 77  # run.sh: a tool is missing


def missing_tool() -> str | None:
    """Why the checks cannot run here, or None."""
    if not shutil.which("bash"):
        return "no bash"
    if platform.machine().lower() in ("aarch64", "arm64"):
        return None if (shutil.which("cc") or os.environ.get("CC")) else "no C compiler"
    if not shutil.which(os.environ.get("CC", "aarch64-linux-gnu-gcc")):
        return (
            "no AArch64 cross compiler (aarch64-linux-gnu-gcc; Debian packages "
            "gcc-aarch64-linux-gnu and libc6-dev-arm64-cross, installed by .ci/setup)"
        )
    if not (os.environ.get("QEMU") or shutil.which("qemu-aarch64") or shutil.which("qemu-aarch64-static")):
        return "no qemu-aarch64 user-mode emulator (Debian package qemu-user, installed by .ci/setup)"
    return None


def test_aarch64_switcher_under_emulation():
    why = missing_tool()
    if why:
        pytest.skip(why)
    proc = subprocess.run(
        ["bash", SCRIPT],
        capture_output=True,
        text=True,
        timeout=600,
    )
    out = proc.stdout
    report = f"--- stdout ---\n{out}\n--- stderr ---\n{proc.stderr}"
    if proc.returncode == SKIP_STATUS:
        pytest.skip(out.strip().splitlines()[-1] if out.strip() else "run.sh skipped")

    plan = re.search(r"^plan: (\d+) checks$", out, re.M)
    assert plan, f"the test program did not start (build failure?)\n{report}"
    planned = int(plan.group(1))
    passed = re.findall(r"^PASS (\S+)$", out, re.M)
    failed = re.findall(r"^FAIL ([^\s:]+)", out, re.M)
    assert not failed, f"AArch64 checks failed: {', '.join(failed)}\n{report}"
    assert planned > 0 and len(passed) == planned, f"{len(passed)} of {planned} checks passed\n{report}"
    assert re.search(rf"^{planned} passed, 0 failed$", out, re.M), report
    assert proc.returncode == 0, f"run.sh exited {proc.returncode}\n{report}"
