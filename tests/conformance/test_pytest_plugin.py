"""The pytest plugin: one pytest test per rule in a runtime's own test run."""

from __future__ import annotations

import pytest

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLE = os.path.join(ROOT, "docs", "examples", "pytest_plugin")


def _pytest(args, cwd, extra_path=()):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([*extra_path, os.environ.get("PYTHONPATH", "")]))
    env.pop("PYTEST_XDIST_WORKER", None)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:xdist", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.mark.slow
def test_the_example_project_runs_the_rules_as_tests():
    from asyncspec.spec import RULES, all_machines

    all_machines()
    listed = _pytest(["--collect-only", "-q"], EXAMPLE)
    assert listed.returncode == 0, listed.stdout + listed.stderr
    items = [line for line in listed.stdout.splitlines() if line.startswith("asyncspec/readiness::")]
    assert len(items) == len(RULES.area("readiness")) + 1  # every rule, and TGT-1
    assert "asyncspec/readiness::RDY-LT-1" in items and "asyncspec/readiness::TGT-1" in items
    done = _pytest(["-q", "-rs"], EXAMPLE)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "RDY-ET-1: target lacks edge" in done.stdout  # skipped with the reason
    assert " passed" in done.stdout


def test_a_broken_rule_fails_with_its_counterexample(tmp_path):
    args = [
        "-q",
        "--asyncspec-target=tests.fixtures.broken_reactors:EdgeAsLevel",
        "--asyncspec-area=readiness",
        "--asyncspec-rules=RDY-ET-*",
        "--asyncspec-seed=1",
        "--asyncspec-max-examples=300",
        "-p",
        "no:cacheprovider",
    ]
    done = _pytest(args, str(tmp_path), [ROOT])
    assert done.returncode == 1, done.stdout[-3000:]
    out = done.stdout
    assert "FAILED asyncspec/readiness::RDY-ET-1" in out
    assert "target did:" in out and "drawing: " in out and "asyncspec replay " in out
    assert (tmp_path / "asyncspec-out").is_dir()
    collected = _pytest([*args, "--collect-only"], str(tmp_path), [ROOT]).stdout
    assert "RDY-LT-1" not in collected and "RDY-ET-2" in collected


def test_without_the_option_nothing_is_added(tmp_path):
    (tmp_path / "test_x.py").write_text("def test_x():\n    pass\n")
    done = _pytest(["-q", "--collect-only", "-p", "no:cacheprovider"], str(tmp_path))
    assert "asyncspec/" not in done.stdout and "1 test collected" in done.stdout
