"""The waker area end to end: the reference executor and Rust's std conform,
and each deliberately broken executor is caught with a short counterexample."""

from __future__ import annotations

import pytest
from asyncspec.conformance.output.counterexample import read, save
from asyncspec.conformance.engine.verdicts import FAIL, NA, PASS
from asyncspec.conformance.engine.runner import replay_file, run


@pytest.mark.parametrize("target", ["impl", "rust-std"])
def test_targets_conform(target):
    res = run("waker", target, max_examples=150, seed=1)
    assert res.ok, res.failure
    status = {r.rule.id: r.status for r in res.results}
    assert FAIL not in status.values()
    if target == "rust-std":
        # std has no executor and no AtomicWaker: only the vtable rules apply.
        assert all(s == PASS for rid, s in status.items() if rid.startswith("WAK-VT-")), status
        assert all(s == NA for rid, s in status.items() if not rid.startswith("WAK-VT-"))
    else:
        assert all(s == PASS for rid, s in status.items() if rid != "WAK-VT-8"), status


BROKEN = [
    ("LostWake", "WAK-TASK-3"),
    ("DoubleEnqueue", "WAK-TASK-2"),
    ("WakeDrops", "WAK-VT-3"),
    ("RefcountOffByOne", "WAK-VT-1"),
]


@pytest.mark.parametrize("name,rule", BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_executor_is_caught(name, rule, tmp_path):
    res = run("waker", f"tests.fixtures.broken_executors:{name}", max_examples=300, seed=1)
    assert res.failure is not None, f"{name} was not caught"
    assert res.failure.rules[0] == rule, res.failure
    assert len(res.failure.steps) <= 8, res.failure
    # It is a wrong answer, not a crash, and its file replays to the same verdict.
    assert res.failure.steps[-1].observed[0] not in ("crashed", "hung", "raised")
    files, note = save(res.failure, f"tests.fixtures.broken_executors:{name}", str(tmp_path))
    assert read(files["json"])["violated"][0]["id"] == rule
    assert "svg" in files or note
    _data, again = replay_file(files["json"], isolate=False)
    assert again.violated == res.failure.rules


def test_the_variant_build_without_a_bug_conforms():
    res = run("waker", "tests.fixtures.broken_executors:Unbroken", max_examples=100, seed=1)
    assert res.ok, res.failure
