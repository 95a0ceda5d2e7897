"""The conformance bridge and `asyncspec run`: real targets pass, broken ones are caught."""

from __future__ import annotations

import subprocess
import sys

import pytest
from asyncspec.conformance import targets
from asyncspec.conformance.cli import main
from asyncspec.conformance.engine.replay import replay
from asyncspec.conformance.engine.verdicts import FAIL, NA, PASS
from asyncspec.conformance.engine.runner import UsageError, run
from asyncspec.spec.readiness import MACHINE
from tests.support.leaks import open_fds


@pytest.mark.parametrize("target", ["impl", "stdlib-epoll", "selectors", "tests.fixtures.example_poll_target:PollTarget"])
def test_real_targets_conform(target):
    res = run("readiness", target, max_examples=120, seed=1)
    assert res.ok, res.failure
    statuses = {r.rule.id: r.status for r in res.results}
    assert FAIL not in statuses.values()
    if target == "selectors":
        # Level-triggered only: the edge-triggered rules do not apply to it.
        assert statuses["RDY-ET-1"] == NA
        assert statuses["RDY-LT-1"] == PASS


BROKEN = [
    ("EdgeAsLevel", "RDY-ET-1"),
    ("OneshotNeverDisarms", "RDY-ONESHOT-1"),
    ("HupDroppedWhenWriteOnly", "RDY-HUP-1"),
    ("StaleToken", "RDY-EV-1"),
]


@pytest.mark.parametrize("name,rule", BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_reactor_is_caught(name, rule):
    res = run("readiness", f"tests.fixtures.broken_reactors:{name}", max_examples=1000)
    assert res.failure is not None, f"{name} was not caught"
    assert rule in res.failure.rules
    assert len(res.failure.steps) <= 8, [s.call() for s in res.failure.steps]
    statuses = {r.rule.id: r.status for r in res.results}
    assert statuses[rule] == FAIL
    # The counterexample replays to the same verdict without Hypothesis.
    cls = targets.load(f"tests.fixtures.broken_reactors:{name}", "readiness")
    for _ in range(20):
        with cls() as t:
            again = replay(MACHINE, MACHINE.profile(), t, [(s.action, s.args) for s in res.failure.steps])
        assert again.violated == res.failure.rules


@pytest.mark.slow
def test_portable_profile():
    for target in ("impl", "stdlib-epoll"):
        res = run("readiness", target, profile="portable", max_examples=100, seed=2)
        assert res.ok, res.failure
    # Edge delivered as level is only spurious events: portable allows it ...
    assert run("readiness", "tests.fixtures.broken_reactors:EdgeAsLevel", profile="portable", max_examples=150, seed=2).ok
    # ... but a oneshot that keeps firing is caught there too.
    res = run("readiness", "tests.fixtures.broken_reactors:OneshotNeverDisarms", profile="portable", max_examples=1000)
    assert res.failure is not None and "RDY-ONESHOT-1" in res.failure.rules


def test_usage_errors():
    with pytest.raises(UsageError, match="unknown readiness target 'nope'"):
        run("readiness", "nope")
    with pytest.raises(UsageError, match="no profile 'bsd'"):
        run("readiness", "impl", profile="bsd")
    with pytest.raises(UsageError, match="unknown area"):
        run("fibres", "impl")
    with pytest.raises(UsageError, match="has no attribute"):
        run("readiness", "tests.fixtures.broken_reactors:Nope")


def test_cli_exit_codes(capsys, tmp_path):
    assert main(["run", "readiness", "--target", "nope"]) == 2
    assert "unknown readiness target" in capsys.readouterr().err
    assert main(["run", "readiness", "-n", "20", "--seed", "3", "-q"]) == 0
    out = capsys.readouterr().out
    assert "RDY-ET-1" in out and "0 failed" in out
    assert main(["run", "readiness", "-t", "tests.fixtures.broken_reactors:OneshotNeverDisarms", "-n", "1000", "-q", "--out", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "Counterexample" in out and "RDY-ONESHOT-1" in out and ">>" in out
    with pytest.raises(SystemExit) as e:
        main(["run", "--max-examples", "0"])
    assert e.value.code == 2


def test_cli_lists(capsys):
    assert main(["rules", "readiness"]) == 0
    out = capsys.readouterr().out
    assert "RDY-POLL-3" in out and "source:" in out and "measured:" in out
    assert main(["targets"]) == 0
    out = capsys.readouterr().out
    assert "stdlib-epoll" in out and "available" in out


def test_console_script_runs():
    out = subprocess.run(
        [sys.executable, "-m", "asyncspec.conformance.cli", "rules", "readiness"],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0 and "RDY-LT-1" in out.stdout


def test_bench_prints_ratios(capsys):
    assert main(["bench", "--quick"]) == 0
    out = capsys.readouterr().out
    # poll, conformance, wakes, Python round trip; and our C switch against swapcontext where the peer is built
    import importlib.util

    peer = importlib.util.find_spec("asyncspec.conformance.targets.c.ucontext._ucontext") is not None
    assert "select.epoll" in out and out.count("ratio") == (5 if peer else 4)
    assert "C ping-pong" in out and "greenlet pair" in out
    assert "Python waker" in out and "wakes/s" in out
    assert "sum of delays" in out  # the delay server demo ran


@pytest.mark.parametrize("target", ["impl", "stdlib-epoll", "selectors"])
def test_runs_leak_no_fds(target):
    before = open_fds()
    run("readiness", target, max_examples=60, seed=4)
    run("readiness", "tests.fixtures.broken_reactors:OneshotNeverDisarms", max_examples=300)  # failing runs too
    assert open_fds() == before


def test_counterexample_file_replays_to_the_same_verdict(tmp_path, capsys):
    from asyncspec.conformance.output.counterexample import BadCounterexample, read
    from asyncspec.conformance.engine.runner import replay_file

    out = tmp_path / "out"
    assert main(["run", "readiness", "-t", "tests.fixtures.broken_reactors:StaleToken", "-q", "--out", str(out)]) == 1
    (path,) = [p for p in out.iterdir() if p.suffix == ".json" and not p.name.endswith(".itf.json")]
    assert {p.name[len(path.stem) :] for p in out.iterdir()} == {".json", ".itf.json", ".dot", ".svg"}
    data = read(str(path))
    assert data["area"] == "readiness" and data["violated"][0]["id"] == "RDY-EV-1"
    assert data["steps"][-1]["violated"] == ["RDY-EV-1"]
    capsys.readouterr()
    assert main(["replay", str(path)]) == 1
    assert "the same as recorded" in capsys.readouterr().out
    for _ in range(100):
        _data, result = replay_file(str(path), isolate=False)
        assert list(result.violated) == ["RDY-EV-1"]
    # Against the reference reactor the same steps conform.
    assert main(["replay", str(path), "--target", "impl"]) == 0
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "other"}')
    with pytest.raises(BadCounterexample, match="not an asyncspec counterexample"):
        read(str(bad))
    assert main(["replay", str(bad)]) == 2
