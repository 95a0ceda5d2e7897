"""`exec:` targets: the protocol end to end, and every way an adapter can fail."""

from __future__ import annotations

import json
import os
import shlex
import sys

import pytest
from asyncspec.conformance.process.exec_target import ProtocolError, check, schema
from asyncspec.conformance.engine.verdicts import PASS
from asyncspec.conformance.engine.runner import UsageError, run

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures")
SERVE = f"{shlex.quote(sys.executable)} -m asyncspec.conformance.process.serve"


def test_a_python_target_served_over_the_protocol_conforms(no_leaks):
    res = run("readiness", f"exec:{SERVE} asyncspec.conformance.targets.python.stdlib_epoll:StdlibEpoll", max_examples=60, seed=1)
    assert res.ok, res.failure
    assert res.target == "stdlib-epoll"  # the name comes from the adapter's hello
    status = {r.rule.id: r.status for r in res.results}
    assert status["RDY-ET-1"] == PASS and status["RDY-LT-1"] == PASS


def _misbehaving(mode: str, at: int) -> str:
    return f"exec:{shlex.quote(sys.executable)} {shlex.quote(os.path.join(FIXTURES, 'misbehaving_adapter.py'))} {mode} {at}"


FAULTS = [
    ("garbage", "raised", "protocol error: not a JSON message on stdout: b'this is not json'"),
    ("wrong-seq", "raised", "protocol error: a response to step 2 while step 3 was asked"),
    ("unknown", "raised", "protocol error: expected 'result', got an unknown 'bogus' message"),
    ("segfault", "crashed", "the adapter died (SIGSEGV"),
    ("hang", "hung", "the adapter hung (no answer within 3 s)"),
    ("exit", "crashed", "the adapter died (exit status 3: giving up)"),
    ("error", "raised", "the adapter failed: the runtime refused"),
]


@pytest.mark.parametrize("mode,kind,message", FAULTS, ids=[f[0] for f in FAULTS])
def test_adapter_failures_are_reported_with_the_steps_so_far(mode, kind, message, no_leaks):
    # A short step timeout for the hang (the others never wait for it); long
    # enough that a loaded machine does not make steps 1 and 2 look hung.
    res = run("readiness", _misbehaving(mode, 3), max_examples=5, seed=1, timeout=3.0 if mode == "hang" else 10.0)
    assert res.failure is not None and res.failure.rules == ("TGT-1",)
    last = res.failure.steps[-1]
    assert last.index == 3  # the steps so far are the counterexample
    assert last.observed[0] == kind
    assert f"step 3 ({last.action})" in last.observed[1] and message in last.observed[1], last.observed


def test_a_bad_handshake_makes_the_target_unavailable(no_leaks):
    with pytest.raises(UsageError, match="protocol error: the 'hello' message lacks 'features'"):
        run("readiness", _misbehaving("bad-hello", 1), max_examples=1)
    with pytest.raises(UsageError, match="not found on PATH"):
        run("readiness", "exec:no-such-adapter-anywhere --x", max_examples=1)
    with pytest.raises(UsageError, match="implements area 'readiness', not 'fiber'"):
        run("fiber", f"exec:{SERVE} asyncspec.conformance.targets.python.stdlib_epoll:StdlibEpoll", max_examples=1)


def test_an_adapter_claims_its_profiles_and_rules(no_leaks):
    res = run("readiness", _misbehaving("claims", 0), max_examples=40, seed=1)
    assert res.profile == "portable"  # the profile the adapter is meant for
    status = {r.rule.id: r for r in res.results}
    assert status["RDY-LT-1"].status == PASS
    assert status["RDY-CTL-3"].status == "n/a" and status["RDY-CTL-3"].why == "not claimed by the target"
    with pytest.raises(UsageError, match="claims profiles portable, not 'linux-epoll'"):
        run("readiness", _misbehaving("claims", 0), profile="linux-epoll", max_examples=1)


def test_schemas_are_what_the_runner_checks():
    check({"type": "result", "seq": 1, "obs": ["ok"]}, schema("result"))
    for bad, why in [
        ({"type": "result", "seq": 0, "obs": []}, "at least 1"),
        ({"type": "result", "seq": "1", "obs": []}, "must be a JSON integer"),
        ({"type": "result", "seq": 1}, "lacks 'obs'"),
        ({"type": "result", "seq": 1, "obs": [], "x": 1}, "unknown field 'x'"),
    ]:
        with pytest.raises(ProtocolError, match=why):
            check(bad, schema("result"))
    for name in ("hello.runner", "hello.adapter", "open", "opened", "step", "result", "error", "close", "closed", "bye"):
        s = schema(name)
        assert s["type"] == "object" and s["properties"]["type"]["const"] == name.split(".")[0]
        json.dumps(s)
