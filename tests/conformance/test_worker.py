"""Crash-proof runs: a target that crashes, aborts, hangs or raises is a reported failure."""

from __future__ import annotations


import pytest
from asyncspec.conformance.engine.verdicts import FAIL
from asyncspec.conformance.engine.runner import run
from tests.support.leaks import children


@pytest.mark.parametrize(
    "target,observed",
    [
        ("tests.fixtures.crashing_targets:SegfaultsOnSecondPoll", "crashed SIGSEGV"),
        ("tests.fixtures.crashing_targets:AbortsOnDeregister", "crashed SIGABRT"),
        ("tests.fixtures.crashing_targets:RaisesOnReregister", "raised RuntimeError"),
    ],
)
def test_crash_is_a_reported_failure(target, observed):
    before = children()
    res = run("readiness", target, max_examples=200)
    f = res.failure
    assert f is not None and f.rules == ("TGT-1",)
    last = f.steps[-1]
    assert " ".join(map(str, last.observed)).startswith(observed)
    assert len(f.steps) <= 8, [s.call() for s in f.steps]
    assert children() == before  # every worker reaped
    assert not any(r.status == FAIL for r in res.results)  # no spec rule is blamed


def test_hang_is_a_reported_failure():
    before = children()
    res = run("readiness", "tests.fixtures.crashing_targets:HangsOnEdgeTriggered", max_examples=200, timeout=0.5)
    f = res.failure
    assert f is not None and f.rules == ("TGT-1",)
    assert f.steps[-1].observed[0] == "hung" and f.steps[-1].action == "register"
    assert children() == before


def test_in_process_is_still_available():
    res = run("readiness", "stdlib-epoll", max_examples=20, seed=5, isolate=False)
    assert res.ok
