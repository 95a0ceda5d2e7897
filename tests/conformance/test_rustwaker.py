"""Rust's std as the waker oracle: the contract measured on real `std::task::Waker`.

Each scenario drives conformance/targets/rust/waker/main.rs through
asyncspec.conformance.targets.rust.waker.driver and states what std did: which vtable calls
each operation made and how many wakers of each task are alive.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from asyncspec.conformance.targets.rust.waker import driver as rustwaker
from asyncspec.conformance.targets.rust.waker.driver import (
    InterpreterDied,
    InterpreterFailed,
    InterpreterHung,
    RustBuildError,
    RustWakers,
)
from tests.support.leaks import children, open_fds

NONE = [0] * 8


def counts(**by_task) -> list[int]:
    """Instances per task: counts(t0=2, t3=1) -> [2, 0, 0, 1, 0, 0, 0, 0]."""
    out = [0] * 8
    for name, n in by_task.items():
        out[int(name[1:])] = n
    return out


@pytest.fixture(scope="module")
def exe() -> str:
    why = rustwaker.available()
    if why is not None:
        pytest.skip(why)
    return rustwaker.build()


@pytest.fixture
def w(exe):
    with RustWakers(exe=exe) as wakers:
        yield wakers


def ok(w: RustWakers, op: str, **fields) -> dict:
    answer = w.request(op, **fields)
    assert answer["error"] is None, answer
    return answer


def _reaped(pid: int) -> bool:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True  # no such child any more: reaped, no zombie
    return False


# ----------------------------------------------------------- raw vtable


def test_new_makes_no_call(w):
    a = ok(w, "new", slot=0, task=3, kind="raw")
    assert a["calls"] == [] and a["instances"] == counts(t3=1) and a["result"] is None


def test_clone_is_one_clone_call(w):
    ok(w, "new", slot=0, task=0, kind="raw")
    a = ok(w, "clone", src=0, dst=1)
    assert a["calls"] == [("clone", 0)] and a["instances"] == counts(t0=2)


def test_drop_is_one_drop_call(w):
    ok(w, "new", slot=0, task=1, kind="raw")
    ok(w, "clone", src=0, dst=1)
    a = ok(w, "drop", slot=1)
    assert a["calls"] == [("drop", 1)] and a["instances"] == counts(t1=1)
    a = ok(w, "drop", slot=0)
    assert a["calls"] == [("drop", 1)] and a["instances"] == NONE


def test_wake_consumes_the_waker_without_a_drop(w):
    ok(w, "new", slot=0, task=2, kind="raw")
    ok(w, "clone", src=0, dst=1)
    a = ok(w, "wake", slot=1)
    assert a["calls"] == [("wake", 2)]  # exactly one call: no drop after the wake
    assert a["instances"] == counts(t2=1)
    assert "slot 1 is empty" in w.request("drop", slot=1)["error"]


def test_wake_by_ref_keeps_the_waker(w):
    ok(w, "new", slot=0, task=2, kind="raw")
    a = ok(w, "wake_by_ref", slot=0)
    assert a["calls"] == [("wake_by_ref", 2)] and a["instances"] == counts(t2=1)
    assert ok(w, "wake_by_ref", slot=0)["calls"] == [("wake_by_ref", 2)]
    assert ok(w, "drop", slot=0)["calls"] == [("drop", 2)]


def test_will_wake_compares_data_and_vtable_without_calls(w):
    ok(w, "new", slot=0, task=0, kind="raw")
    ok(w, "clone", src=0, dst=1)
    ok(w, "new", slot=2, task=0, kind="raw")  # made separately, same record and vtable
    ok(w, "new", slot=3, task=1, kind="raw")
    for a, b, expected in [(0, 1, True), (1, 0, True), (0, 2, True), (0, 0, True), (0, 3, False), (3, 2, False)]:
        answer = ok(w, "will_wake", a=a, b=b)
        assert answer["result"] is expected, (a, b)
        assert answer["calls"] == []
    assert answer["instances"] == counts(t0=3, t1=1)


def test_clone_from_skips_the_clone_when_will_wake(w):
    # Measured on rustc 1.95.0: Waker::clone_from is `if !self.will_wake(source)
    # { *self = source.clone() }` -- same task: nothing at all.
    ok(w, "new", slot=0, task=4, kind="raw")
    ok(w, "clone", src=0, dst=1)
    a = ok(w, "clone_from", dst=1, src=0)
    assert a["calls"] == [] and a["instances"] == counts(t4=2)


def test_clone_from_another_task_clones_then_drops(w):
    ok(w, "new", slot=0, task=4, kind="raw")
    ok(w, "new", slot=1, task=5, kind="raw")
    a = ok(w, "clone_from", dst=1, src=0)
    # The clone of the source is made first, then the old value is dropped.
    assert a["calls"] == [("clone", 4), ("drop", 5)]
    assert a["instances"] == counts(t4=2)
    assert ok(w, "will_wake", a=1, b=0)["result"] is True


def test_forget_makes_no_call_and_the_instance_stays(w):
    ok(w, "new", slot=0, task=6, kind="raw")
    ok(w, "clone", src=0, dst=1)
    a = ok(w, "forget", slot=1)
    assert a["calls"] == [] and a["instances"] == counts(t6=2)
    assert "slot 1 is empty" in w.request("wake", slot=1)["error"]
    # reset drops what is still in a slot; the forgotten waker is never dropped
    a = ok(w, "reset")
    assert a["calls"] == [("drop", 6)] and a["instances"] == NONE


def test_context_from_waker_makes_no_call(w):
    ok(w, "new", slot=5, task=7, kind="raw")
    a = ok(w, "context", slot=5)
    assert a["result"] is True and a["calls"] == [] and a["instances"] == counts(t7=1)


def test_noop_waker_calls_nothing_of_ours(w):
    ok(w, "new", slot=0, task=0, kind="raw")
    for op, fields in [
        ("noop", {"slot": 1}),
        ("clone", {"src": 1, "dst": 2}),
        ("wake_by_ref", {"slot": 1}),
        ("wake", {"slot": 2}),
        ("noop", {"slot": 3}),
        ("context", {"slot": 3}),
        ("drop", {"slot": 3}),
    ]:
        a = ok(w, op, **fields)
        assert a["calls"] == [] and a["instances"] == counts(t0=1), op
    ok(w, "noop", slot=2)
    assert ok(w, "will_wake", a=1, b=2)["result"] is True  # one noop vtable, one data pointer
    assert ok(w, "will_wake", a=1, b=0)["result"] is False
    # clone_from between a raw and a noop waker: only our half is seen
    a = ok(w, "clone_from", dst=1, src=0)
    assert a["calls"] == [("clone", 0)] and a["instances"] == counts(t0=2)
    a = ok(w, "clone_from", dst=0, src=2)
    assert a["calls"] == [("drop", 0)] and a["instances"] == counts(t0=1)


def test_reset_drops_every_slot_in_order_and_starts_a_new_trace(w):
    ok(w, "new", slot=4, task=1, kind="raw")
    ok(w, "new", slot=2, task=3, kind="raw")
    ok(w, "new", slot=6, task=5, kind="arc")
    ok(w, "noop", slot=0)
    a = w.reset()
    assert a["calls"] == [("drop", 3), ("drop", 1)] and a["instances"] == NONE and a["error"] is None
    # every slot is empty and every task's kind is forgotten
    for slot in range(8):
        assert "is empty" in w.request("drop", slot=slot)["error"]
    ok(w, "new", slot=0, task=1, kind="arc")
    ok(w, "new", slot=1, task=5, kind="raw")
    assert ok(w, "reset")["calls"] == [("drop", 5)]


# ----------------------------------------------------------- Arc<impl Wake>


def test_arc_counts_follow_clone_drop_and_wake(w):
    a = ok(w, "new", slot=0, task=2, kind="arc")
    assert a["calls"] == [] and a["instances"] == counts(t2=1)
    # std's own vtable clones and drops: seen only in Arc::strong_count
    a = ok(w, "clone", src=0, dst=1)
    assert a["calls"] == [] and a["instances"] == counts(t2=2)
    a = ok(w, "new", slot=2, task=2, kind="arc")
    assert a["instances"] == counts(t2=3)
    a = ok(w, "drop", slot=2)
    assert a["calls"] == [] and a["instances"] == counts(t2=2)
    # Waker::wake_by_ref on an Arc waker calls Wake::wake_by_ref, and keeps the Arc
    a = ok(w, "wake_by_ref", slot=1)
    assert a["calls"] == [("wake_by_ref", 2)] and a["instances"] == counts(t2=2)
    # Waker::wake calls Wake::wake, which is handed the waker's Arc and drops it
    a = ok(w, "wake", slot=1)
    assert a["calls"] == [("wake", 2)] and a["instances"] == counts(t2=1)
    a = ok(w, "forget", slot=0)
    assert a["calls"] == [] and a["instances"] == counts(t2=1)


def test_arc_will_wake_clone_from_and_context(w):
    ok(w, "new", slot=0, task=2, kind="arc")
    ok(w, "new", slot=1, task=2, kind="arc")
    ok(w, "new", slot=2, task=3, kind="arc")
    assert ok(w, "will_wake", a=0, b=1)["result"] is True  # one Arc, one std vtable
    assert ok(w, "will_wake", a=0, b=2)["result"] is False
    assert ok(w, "context", slot=2)["result"] is True
    a = ok(w, "clone_from", dst=1, src=0)  # will_wake: nothing happens
    assert a["calls"] == [] and a["instances"] == counts(t2=2, t3=1)
    a = ok(w, "clone_from", dst=2, src=0)  # another task: the count moves
    assert a["calls"] == [] and a["instances"] == counts(t2=3)
    a = w.reset()
    assert a["calls"] == [] and a["instances"] == NONE


def test_a_task_is_raw_or_arc_until_reset(w):
    ok(w, "new", slot=0, task=1, kind="raw")
    a = w.request("new", slot=1, task=1, kind="arc")
    assert a["error"] == "new: task 1 is a raw task until reset, not arc"
    assert a["calls"] == [] and a["instances"] == counts(t1=1)


# ------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "line,error",
    [
        ("{bad", "bad JSON: expected a field name at byte 1"),
        ("", "empty request"),
        ('"new"', "a request must be a JSON object, got a string"),
        ('{"slot": 0}', 'missing field "op"'),
        ('{"op": 5}', 'field "op" must be a string, got a number'),
        ('{"op": "frob"}', 'unknown op "frob" (known: new, noop,'),
        ('{"op": "new", "slot": 0, "task": 0}', 'missing field "kind"'),
        ('{"op": "new", "slot": 0, "task": 0, "kind": "box"}', 'new: unknown kind "box"'),
        ('{"op": "new", "slot": 8, "task": 0, "kind": "raw"}', 'field "slot" is 8, but slots are 0 to 7'),
        ('{"op": "new", "slot": 0, "task": 99, "kind": "raw"}', 'field "task" is 99, but tasks are 0 to 7'),
        ('{"op": "drop", "slot": -1}', 'field "slot" must be a non-negative integer, got -1'),
        ('{"op": "drop", "slot": 1.5}', 'field "slot" must be a non-negative integer, got 1.5'),
        ('{"op": "drop", "slot": "0"}', 'field "slot" must be an integer, got a string'),
        ('{"op": "drop", "slot": 0, "slot": 1}', 'field "slot" appears twice'),
        ('{"op": "drop", "slt": 0}', 'drop: unknown field "slt" (drop takes slot)'),
        ('{"op": "drop", "slot": 3}', "drop: slot 3 is empty"),
        ('{"op": "new", "slot": 0, "task": 2, "kind": "raw"}', "new: slot 0 is occupied (by a raw waker of task 0)"),
        ('{"op": "clone", "src": 0, "dst": 0}', "clone: slot 0 is occupied"),
        ('{"op": "clone_from", "dst": 0, "src": 0}', "clone_from: dst and src are both slot 0"),
        ('{"op": "will_wake", "a": 0, "b": 5}', "will_wake: slot 5 is empty"),
        ('{"op": "reset", "all": true}', 'reset: unknown field "all" (reset takes no fields)'),
        ("[" * 40, "nested deeper than 16 levels"),
        ('{"op": "\\ud800"}', "unpaired surrogate"),
        ('{"op": "drop", "slot": 0} x', "unexpected text after the value"),
    ],
)
def test_bad_requests_are_refused_and_the_process_goes_on(w, line, error):
    pid = w.pid
    ok(w, "new", slot=0, task=0, kind="raw")
    a = w.request_line(line)
    assert a["error"] is not None and error in a["error"], a["error"]
    assert a["calls"] == [] and a["instances"] == counts(t0=1) and a["result"] is None
    assert ok(w, "clone", src=0, dst=1)["calls"] == [("clone", 0)]  # nothing changed, still serving
    assert w.pid == pid


def test_invalid_utf8_is_refused(w):
    assert w.request_line(b'{"op": "\xff"}')["error"] == "the request is not valid UTF-8"
    assert w.request_line("{}")["error"] == 'missing field "op"'


# ------------------------------------------------- crashes, hangs, exits


def test_killed_child_is_reported_and_reaped(exe):
    fds, kids = open_fds(), children()
    w = RustWakers(exe=exe)
    ok(w, "new", slot=0, task=0, kind="raw")
    pid = w.pid
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(InterpreterDied) as e:
        w.request("wake", slot=0)
    msg = str(e.value)
    assert msg.startswith('request {"op": "wake", "slot": 0}: ') and "killed by SIGKILL" in msg
    assert _reaped(pid) and children() == kids and open_fds() == fds
    with pytest.raises(InterpreterFailed, match=r"is closed \(it died: killed by SIGKILL\)"):
        w.request("drop", slot=0)
    w.close()  # closing again is harmless


def test_hang_is_reported_killed_and_reaped(exe):
    fds, kids = open_fds(), children()
    with RustWakers(exe=exe, timeout=0.3) as w:
        pid = w.pid
        ok(w, "new", slot=0, task=0, kind="raw")
        os.kill(pid, signal.SIGSTOP)  # it stops answering
        started = time.monotonic()
        with pytest.raises(InterpreterHung) as e:
            w.request("clone", src=0, dst=1)
        assert time.monotonic() - started < 2
        assert str(e.value) == (
            'request {"op": "clone", "src": 0, "dst": 1}: the Rust waker interpreter gave no answer within 0.3 s (killed)'
        )
        assert _reaped(pid)
    assert children() == kids and open_fds() == fds


def test_early_exit_is_reported_with_its_status(exe):
    fds = open_fds()
    with RustWakers(exe=exe) as w:
        pid = w.pid
        assert w.request_line('{"op": "quit"}')["error"] is None  # behind the driver's back
        with pytest.raises(InterpreterDied, match=r'request \{"op": "reset"\}: .* died \(exit status 0\)'):
            w.reset()
        assert _reaped(pid)
    assert open_fds() == fds


def test_quit_and_close_reap_without_leaks(exe):
    fds, kids = open_fds(), children()
    w = RustWakers(exe=exe)
    pid = w.pid
    ok(w, "new", slot=0, task=0, kind="raw")
    assert ok(w, "quit")["instances"] == counts(t0=1)
    assert _reaped(pid) and w.pid is None
    with pytest.raises(InterpreterFailed, match=r"is closed \(it quit\)"):
        w.request("drop", slot=0)
    for _ in range(3):
        with RustWakers(exe=exe) as w:
            ok(w, "new", slot=0, task=0, kind="raw")
            pid = w.pid
        assert _reaped(pid)
    assert children() == kids and open_fds() == fds


def test_crash_message_carries_stderr(tmp_path):
    # Any executable that dies speaking on stderr: the last line is reported.
    script = tmp_path / "dies"
    script.write_text("#!/bin/sh\nread line\necho 'thread main panicked: boom' >&2\nexit 101\n")
    script.chmod(0o755)
    fds = open_fds()
    dying = pytest.raises(
        InterpreterDied, match=r"died \(exit status 101\); its stderr ends: thread main panicked: boom"
    )
    with RustWakers(exe=str(script)) as w, dying:
        w.reset()
    assert open_fds() == fds


def test_out_of_protocol_answer_is_reported(tmp_path):
    script = tmp_path / "chatty"
    script.write_text("#!/bin/sh\nread line\necho 'hello there'\nsleep 30\n")
    script.chmod(0o755)
    fds = open_fds()
    w = RustWakers(exe=str(script))
    pid = w.pid
    with pytest.raises(InterpreterFailed, match=r"answered out of protocol: b'hello there' \(killed\)"):
        w.reset()
    assert _reaped(pid) and open_fds() == fds


# --------------------------------------------------------------- building


def test_build_cache_is_reused(exe):
    before = os.stat(exe)
    assert rustwaker.build() == exe
    after = os.stat(exe)
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)  # not recompiled
    assert os.path.basename(exe).startswith("rust_waker-")
    assert os.path.dirname(exe) == os.path.join(rustwaker.cache_dir(), "rust_waker")


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("ASYNCSPEC_CACHE", str(tmp_path / "mine"))
    assert rustwaker.cache_dir() == str(tmp_path / "mine")
    monkeypatch.delenv("ASYNCSPEC_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert rustwaker.cache_dir() == str(tmp_path / "xdg" / "asyncspec")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert rustwaker.cache_dir() == str(tmp_path / "home" / ".cache" / "asyncspec")


def test_parallel_builds_agree_and_leave_no_temporaries(exe, monkeypatch, tmp_path):
    monkeypatch.setenv("ASYNCSPEC_CACHE", str(tmp_path))
    results: list = []

    def one():
        try:
            results.append(rustwaker.build())
        except Exception as e:  # pragma: no cover - reported below
            results.append(e)

    threads = [threading.Thread(target=one) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 2 and results[0] == results[1] and isinstance(results[0], str), results
    assert os.listdir(tmp_path / "rust_waker") == [os.path.basename(results[0])]
    with RustWakers(exe=results[0]) as w:
        assert ok(w, "new", slot=0, task=0, kind="raw")["instances"] == counts(t0=1)


def test_compile_error_is_clear(exe, monkeypatch, tmp_path):
    monkeypatch.setenv("ASYNCSPEC_CACHE", str(tmp_path / "cache"))
    bad = tmp_path / "broken.rs"
    bad.write_text('fn main() { let x: u32 = "no"; }\n')
    with pytest.raises(RustBuildError) as e:
        rustwaker.build(str(bad))
    msg = str(e.value)
    assert msg.startswith(f"rustc could not compile {bad} (rustc ")
    assert "error[E0308]: mismatched types" in msg and "broken.rs:1" in msg
    assert os.listdir(tmp_path / "cache" / "rust_waker") == []  # no half-built leftovers


def test_without_rustc_the_reason_is_given(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert rustwaker.available() == "rustc not found on PATH"


def test_module_import_is_light():
    """The driver (and the target package around it) imports none of the heavy engines."""
    code = (
        "import sys, asyncspec.conformance.targets.rust.waker.driver; "
        "print(sorted(m for m in ('hypothesis', 'z3', 'graphviz', 'mkdocs') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
