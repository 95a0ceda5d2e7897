"""The Python ecosystem's event loops as readiness targets: asyncio, uvloop, trio.

Each run is judged as measured (see the targets' docstrings): asyncio and
trio conform in every rule they claim; uvloop breaks RDY-LT-1 (an EPOLLERR
source is reported once, then never again), and the run must show that
counterexample rather than pass.
"""

from __future__ import annotations

import threading

import pytest
from asyncspec.conformance import targets
from asyncspec.conformance.cli import main
from asyncspec.conformance.engine.replay import replay
from asyncspec.conformance.engine.verdicts import FAIL, NA, PASS
from asyncspec.conformance.engine.runner import run
from asyncspec.spec import RULES
from asyncspec.spec.readiness import MACHINE
from tests.support.leaks import open_fds

LOOPS = ("asyncio", "uvloop", "trio")


def _cls(name):
    return targets.load(name, "readiness")


def _need(name):
    why = _cls(name).unavailable()
    if why:
        pytest.skip(f"{name}: {why}")
    return _cls(name)


def _statuses(res) -> dict[str, str]:
    return {r.rule.id: r.status for r in res.results}


def _claimed(res, cls) -> set[str]:
    """The rules of the run's profile whose features the target claims."""
    return {
        r.id
        for r in RULES.area("readiness")
        if r.holds_in(res.profile) and r.features <= cls.features
    }


# ---------------------------------------------------------------- the runs

CONFORMING = [
    # (target, profile, seed, examples)
    ("asyncio", "linux-epoll", 1, 150),
    ("asyncio", "portable", 2, 80),
    ("trio", "linux-epoll", 1, 150),
    ("trio", "portable", 2, 80),
]


@pytest.mark.slow
@pytest.mark.parametrize("name,profile,seed,n", CONFORMING, ids=[f"{c[0]}-{c[1]}" for c in CONFORMING])
def test_conforming_loops(name, profile, seed, n):
    cls = _need(name)
    res = run("readiness", name, profile=profile, max_examples=n, seed=seed)
    assert res.ok, res.failure
    statuses = _statuses(res)
    for rid in _claimed(res, cls):
        assert statuses[rid] == PASS, (rid, statuses[rid])
    # What the loop cannot express is n/a, never a silent pass.
    for rid, status in statuses.items():
        if RULES[rid].features - cls.features:
            assert status == NA, (rid, status)
    assert statuses["RDY-LT-1"] == PASS
    assert statuses["RDY-ET-1"] == NA and statuses["RDY-HUP-1"] == NA and statuses["RDY-CTL-1"] == NA
    if name == "trio":
        assert statuses["RDY-ONESHOT-1"] == PASS
        if profile == "linux-epoll":
            assert statuses["RDY-ONESHOT-2"] == PASS
    else:
        assert statuses["RDY-ONESHOT-1"] == NA


@pytest.mark.parametrize("profile", ["linux-epoll", "portable"])
def test_uvloop_breaks_level_triggering_on_err(profile):
    """The run finds uvloop's departure: after EPOLLERR libuv stops the poll
    handle (uv__poll_io -> UV_EBADF), uvloop runs the callbacks once and
    closes it, so a level-triggered ERR source is reported once, then never."""
    _need("uvloop")
    res = run("readiness", "uvloop", profile=profile, max_examples=150, seed=1)
    assert not res.ok and res.failure is not None
    assert "RDY-LT-1" in res.failure.rules
    assert _statuses(res)["RDY-LT-1"] == FAIL
    steps = res.failure.steps
    # The shrunk counterexample: a source with a pending error (a pipe's
    # write end whose reader closed, or a reset socket) reported by one
    # poll, and not by the next although it is still ready.
    assert [s.action for s in steps][-3:] == ["close_peer", "poll", "poll"]
    slot = steps[-3].args["slot"]
    kinds = [s.args["kind"] for s in steps if s.action == "create" and s.args["slot"] == slot]
    assert kinds[-1] in ("pipe_w", "sock")
    assert steps[-2].observed != () and steps[-1].observed == ()
    assert "ERR" in steps[-1].before[0] or any("ERR" in b for b in steps[-1].before)


ERR_THEN = [
    ("create", {"slot": 0, "kind": "pipe_w"}),
    ("register", {"slot": 0, "token": 1, "interest": "w", "mode": "lt", "oneshot": False, "rdhup": False}),
    ("close_peer", {"slot": 0}),
    ("poll", {"max_events": 8}),
]


def _replay(name, steps):
    with _cls(name)() as t:
        return replay(MACHINE, MACHINE.profile(), t, steps)


def test_uvloop_counterexamples_replay_exactly():
    _need("uvloop")
    poll_again = ERR_THEN + [("poll", {"max_events": 8})]
    r = _replay("uvloop", poll_again)
    assert r.steps[3].observed == ((1, 4),) and r.steps[4].observed == ()
    assert "RDY-LT-1" in r.violated
    # Watching the fd again without removing it first: the closed UVPoll
    # handle is still in the loop's table, and add_writer raises.
    rewatch = ERR_THEN + [("reregister", {**ERR_THEN[1][1], "token": 2})]
    r = _replay("uvloop", rewatch)
    assert r.violated == ("TGT-1",)
    assert "RuntimeError" in r.steps[-1].observed[1] and "closed" in r.steps[-1].observed[1]
    # The same steps conform on asyncio and trio.
    for name in ("asyncio", "trio"):
        if _cls(name).unavailable() is None:
            assert _replay(name, poll_again).ok and _replay(name, rewatch).ok


# ------------------------------------------------------ what a poll step is


def test_asyncio_poll_is_one_select_with_timeout_0():
    cls = _cls("asyncio")
    with cls() as t:
        calls = []
        selector = t._loop._selector
        real = selector.select
        selector.select = lambda timeout=None: calls.append(timeout) or real(timeout)
        t.perform("create", {"slot": 0, "kind": "pipe_r"})
        t.perform("register", {"slot": 0, "token": 1, "interest": "r", "mode": "lt", "oneshot": False, "rdhup": False})
        t.perform("write_peer", {"slot": 0, "n": 1})
        for _ in range(3):
            calls.clear()
            assert t.perform("poll", {"max_events": 8}) == ((1, 1),)
            assert calls == [0]


@pytest.mark.parametrize("name", ["asyncio", "uvloop"])
def test_callback_loops_run_each_ready_callback_once_per_poll(name):
    """One poll is one loop iteration: ``stop(); run_forever()``.  (uvloop's
    ``call_soon(stop)`` would take two iterations: two polls, two callbacks.)"""
    cls = _need(name)
    with cls() as t:
        counts = []
        real = t._ready
        t._ready = lambda fd, token, flag: counts.append(flag) or real(fd, token, flag)
        t.perform("create", {"slot": 0, "kind": "eventfd"})
        t.perform("register", {"slot": 0, "token": 2, "interest": "rw", "mode": "lt", "oneshot": False, "rdhup": False})
        t.perform("write_ours", {"slot": 0, "n": 1})
        for _ in range(3):
            counts.clear()
            assert t.poll(8) == [(2, 1 | 4)]
            assert sorted(counts) == [1, 4]  # each callback once


def test_trio_does_no_io_between_steps():
    """A oneshot wait parked across steps: had trio polled while the pipe
    was briefly readable, the wait would have fired then and the last poll
    would be empty."""
    cls = _need("trio")
    with cls() as t:
        t.perform("create", {"slot": 0, "kind": "pipe_r"})
        t.perform("register", {"slot": 0, "token": 1, "interest": "r", "mode": "lt", "oneshot": True, "rdhup": False})
        assert t.perform("poll", {"max_events": 8}) == ()  # the wait is parked, armed
        for _ in range(20):
            t.perform("write_peer", {"slot": 0, "n": 1})
            t.perform("read_ours", {"slot": 0, "n": 64})
        assert t.perform("poll", {"max_events": 8}) == ()
        t.perform("write_peer", {"slot": 0, "n": 1})
        assert t.perform("poll", {"max_events": 8}) == ((1, 1),)
        assert t.perform("poll", {"max_events": 8}) == ()  # fired once per arming


# ------------------------------------------------------- leaks, availability


@pytest.mark.parametrize("name", LOOPS)
def test_no_fd_or_thread_leak(name):
    _need(name)
    fds, threads = open_fds(), threading.active_count()
    # In this process (no worker), so a leak would show here; uvloop's run
    # stops at its counterexample, after running its minimizer's replays.
    run("readiness", name, max_examples=25, seed=3, isolate=False)
    assert open_fds() == fds
    assert threading.active_count() == threads


def test_targets_lists_each_loop_with_availability(capsys):
    assert main(["targets", "readiness"]) == 0
    out = capsys.readouterr().out
    for name in LOOPS:
        line = next(line for line in out.splitlines() if line.strip().startswith(name + " "))
        why = _cls(name).unavailable()
        if why:
            assert "unavailable: " + why in line
        else:
            assert line.split() == [name, "available"]


def test_unavailable_without_the_package(monkeypatch):
    import sys

    for name, module in (("uvloop", "uvloop"), ("trio", "trio")):
        monkeypatch.setitem(sys.modules, module, None)  # import fails
        why = _cls(name).unavailable()
        assert why and module in why and "pip install" in why
