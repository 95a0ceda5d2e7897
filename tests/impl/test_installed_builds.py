"""The installed reference extensions are the product only: no deliberately
broken code path, no probe, stress or benchmark code is compiled into them.

Each installed extension of impl/ (the reactor's, the tasks', the fibers')
is read as a file: its symbol tables (`nm`: the dynamic one and, when the
file is not stripped, the full one with the static functions) and the
strings of its read-only data (`readelf -p .rodata`: the string literals,
and the names of everything cffi declares).  Every test build carries a
marker symbol (tests/support/cbuild.py), the probe interpreter and the
benchmarks are modules of their own, and the same look finds them, so a
test build or probe code that ended up installed would fail here.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess

import pytest
from tests.fixtures import task_stress
from tests.support.cbuild import MARKER
from tests.support.variant_builds import variant_dir

pytestmark = pytest.mark.skipif(not (shutil.which("nm") and shutil.which("readelf")), reason="needs binutils (nm, readelf)")

REFERENCE = ("asyncspec.impl.reactor._reactor", "asyncspec.impl.task._task", "asyncspec.impl.fiber._fiber")

# Symbols of test, probe and benchmark code: the test builds' marker, the
# stress tests and benchmarks, anything named broken, the probe interpreter
# (asp_*, its ops and thunks) and the machine code only probes use, the
# benchmarks' loops (asb_*).  (asf_fiber_relocate_unchecked is the product's
# unsafe move, for checkers: not a variant.)
_SYMBOLS = re.compile(
    rf"{MARKER}|stress|bench|broken|^asp_|^asb_|asf_op|run_ops|op_(frames|align|sigmask)|_thunk"
    r"|call_with_regs|aligned_access|direction_flag|fp_control|resume_regs|nregs",
    re.I,
)
# The same in the read-only strings (where cffi keeps the declared names).
_STRINGS = re.compile(
    rf"{MARKER}|stress|bench|broken|AST_UNCHECKED|\basp_|\basb_|ASF_OP_|ASP_OP_|call_with_regs|resume_regs|fp_control",
    re.I,
)


def _symbols(path: str) -> set[str]:
    names = set()
    for args in (["nm", "-D", "--defined-only"], ["nm", "--defined-only"]):
        out = subprocess.run([*args, path], capture_output=True, text=True)
        if out.returncode == 0:  # the full table is absent from a stripped file ("no symbols")
            names.update(line.split()[-1] for line in out.stdout.splitlines() if line.strip())
    return names


def _strings(path: str) -> list[str]:
    out = subprocess.run(["readelf", "-p", ".rodata", path], capture_output=True, text=True, errors="replace", check=True)
    # Lines look like "  [  1a8]  some string".
    return [line.split("]", 1)[1].strip() for line in out.stdout.splitlines() if line.lstrip().startswith("[")]


def findings(path: str) -> list[str]:
    """What test, probe or benchmark code the file at `path` contains."""
    found = [f"symbol {s}" for s in sorted(_symbols(path)) if _SYMBOLS.search(s)]
    found += [f"string {s!r}" for s in _strings(path) if _STRINGS.search(s)]
    return found


def _installed(name: str) -> str:
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        pytest.skip(f"{name} is not built here")
    return spec.origin


@pytest.mark.parametrize("module", REFERENCE)
def test_the_installed_extension_has_no_test_probe_or_bench_code(module):
    path = _installed(module)
    assert _symbols(path), f"nm found no symbols in {path}"
    assert findings(path) == []


def test_the_installed_extensions_are_what_they_declare():
    # The look is not vacuous: it sees the API the modules do export.
    assert "asf_fiber_resume" in _symbols(_installed("asyncspec.impl.fiber._fiber"))
    assert "asf_fiber_resume" in _strings(_installed("asyncspec.impl.fiber._fiber"))
    assert "ast_aw_register" in _symbols(_installed("asyncspec.impl.task._task"))
    assert "asr_poll_wait" in _symbols(_installed("asyncspec.impl.reactor._reactor"))


def test_the_same_look_finds_test_builds():
    # The stress build: a test build like the broken ones (the same marker),
    # and with test code of its own.
    stress = findings(task_stress.build(variant_dir(task_stress.DIR_ENV)).__file__)
    assert f"symbol {MARKER}" in stress
    assert "symbol ast_stress_atomic_waker" in stress and "string 'ast_stress_atomic_waker'" in stress


def test_the_same_look_finds_probe_and_bench_code():
    bench = findings(_installed("asyncspec.conformance.benchmarks._bench"))
    assert "symbol asb_wakes" in bench and "string 'asb_pingpong'" in bench
    probe = findings(_installed("asyncspec.conformance.targets.impl.probe._probe"))
    assert "symbol asp_run" in probe and any("asp_call_with_regs" in f for f in probe)
