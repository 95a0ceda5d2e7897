"""The `ucontext` peer (glibc makecontext/swapcontext) against the fiber spec."""

from __future__ import annotations

import signal
import sys

import pytest
from asyncspec.conformance.engine.replay import replay
from asyncspec.conformance.engine.verdicts import NA, PASS
from asyncspec.conformance.engine.runner import run
from asyncspec.spec.fiber import MACHINE

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the ucontext peer is Linux only")

UCONTEXT = MACHINE.profile("ucontext")


@pytest.fixture
def target():
    from asyncspec.conformance.targets.c.ucontext_target import UcontextTarget

    if UcontextTarget.unavailable():
        pytest.skip(UcontextTarget.unavailable())
    t = UcontextTarget()
    t.open()
    yield t
    t.close()


def test_ucontext_conforms_to_its_profile():
    res = run("fiber", "ucontext", profile="ucontext", max_examples=100, seed=3)
    assert res.ok, res.failure
    status = {r.rule.id: r.status for r in res.results}
    for rid in ("FIB-LIFE-1", "FIB-LIFE-2", "FIB-LIFE-3", "FIB-LIFE-4", "FIB-LIFE-5", "FIB-SIG-2"):
        assert status[rid] == PASS, (rid, status[rid])
    for rid in ("FIB-SIG-1", "FIB-STACK-3", "FIB-X86-1"):
        assert status[rid] == NA, (rid, status[rid])


@pytest.mark.parametrize("sig", ["SIGURG", "SIGWINCH"])
def test_swapcontext_restores_the_signal_mask(target, sig):  # FIB-SIG-2
    before = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    # The fiber blocked it and yielded: the main context got its own mask back
    # (unblocked); resumed, the fiber got its own back (blocked).
    assert target.do_sigmask(sig) == ("sigmask", 0, 0, 1)
    assert signal.pthread_sigmask(signal.SIG_BLOCK, []) == before
    assert replay(MACHINE, UCONTEXT, target, [("sigmask", dict(sig=sig))]).ok


def test_resume_of_self_and_of_a_finished_fiber_are_refused(target):  # FIB-LIFE-4
    assert target.do_create(0, "self") == ("ok",)
    assert target.do_resume(0, 7) == ("yielded", 7)  # its own resume refused, the value passed on
    assert target.do_resume(0, 0) == ("yielded", 0)
    assert target.do_create(1, "yield0") == ("ok",)
    assert target.do_resume(1, 7) == ("finished", 107)
    assert target.do_resume(1, 7) == ("err", "finished")
    assert target.do_free(1) == ("ok",)
    assert target.do_free(1) == ("err", "none")


def test_nested_resume_yields_to_the_resumer(target):  # FIB-LIFE-3, FIB-LIFE-4
    target.do_create(0, "yield1")
    target.do_create(1, "nest0")
    target.do_create(2, "nest1")
    assert target.do_resume(2, 7) == ("yielded", 8)  # 2 -> 1 -> 0, which yields 7+1 back up the chain
    assert target.do_resume(0, 1) == ("finished", 101)  # resumed directly from the main context
    assert target.do_resume(2, 5) == ("yielded", 5)  # 1's resume of the finished 0 is refused
    assert target.do_resume(1, 4) == ("yielded", 4)


def test_entry_is_what_makecontext_gives(target):
    # Not claimed as a feature: recorded to document the difference.
    _tag, start, sp, fp, lo, hi = target.do_entry("mmap", 65536, 0)
    assert start + 4096 == lo and lo < sp < hi
    if __import__("platform").machine() in ("x86_64", "AMD64"):
        assert (sp + 8) % 16 == 0  # as after a call
        assert fp != 0  # rbp is the creating context's, so the frame chain does not end at the fiber


def test_c_pingpong_benchmark():
    from asyncspec.conformance.targets.c.ucontext._ucontext import lib

    assert lib.asu_bench_pingpong(1000) > 0
