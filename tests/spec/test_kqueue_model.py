"""The bsd-kqueue profile: hand-written scenarios against the model only.

No kqueue exists on Linux, so these pin the machine to the kqueue(2) manual:
each scenario must be allowed exactly (or, where the manual leaves a choice,
be among the allowed outcomes), and each near-miss must be rejected.
"""

from __future__ import annotations

import pytest
from asyncspec.conformance.engine.replay import ModelTarget, replay
from asyncspec.conformance.engine.runner import UsageError, run
from asyncspec.spec import RULES, machine_for

MACHINE = machine_for("readiness", "bsd-kqueue")
PROFILE = MACHINE.profile("bsd-kqueue")
OK = ("ok",)


def create(slot, kind):
    return ("create", dict(slot=slot, kind=kind), OK)


def add(slot, flt, token, clear=False, oneshot=False, dispatch=False, expect=OK):
    return ("kev_add", dict(slot=slot, filter=flt, token=token, clear=clear, oneshot=oneshot, dispatch=dispatch), expect)


def change(kind, slot, flt, expect=OK):
    return (f"kev_{kind}", dict(slot=slot, filter=flt), expect)


def op(name, slot, expect=OK, **kw):
    return (name, dict(slot=slot, **kw), expect)


def kevent(n, *events):
    return ("kevent", dict(nevents=n), tuple(sorted(events)))


def R(token, eof=False, data=0):
    return (token, "EVFILT_READ", eof, data)


def W(token, eof=False):
    return (token, "EVFILT_WRITE", eof, -1)


def check(steps):
    expected = [e for _n, _a, e in steps]
    return replay(MACHINE, PROFILE, ModelTarget(expected), [(n, a) for n, a, _e in steps])


SCENARIOS = {
    "RDY-KQ-1": [
        create(0, "sock"),
        add(0, "read", 1),
        add(0, "write", 2),
        kevent(8, W(2)),
        op("write_peer", 0, ("n", 3), n=3),
        kevent(8, R(1, data=3), W(2)),
        change("delete", 0, "write"),
        kevent(8, R(1, data=3)),
    ],
    "RDY-KQ-2": [
        create(0, "pipe_r"),
        add(0, "read", 1),
        kevent(8),
        op("write_peer", 0, ("n", 1), n=1),
        kevent(8, R(1, data=1)),
        kevent(8, R(1, data=1)),
    ],
    "RDY-KQ-3": [
        create(0, "pipe_r"),
        add(0, "read", 1, clear=True),
        op("write_peer", 0, ("n", 1), n=1),
        kevent(8, R(1, data=1)),
        kevent(8),
        op("write_peer", 0, ("n", 1), n=1),
        kevent(8, R(1, data=2)),
    ],
    "RDY-KQ-4": [
        create(0, "pipe_r"),
        op("write_peer", 0, ("n", 1), n=1),
        add(0, "read", 1, oneshot=True),
        kevent(8, R(1, data=1)),
        kevent(8),
        change("delete", 0, "read", ("err", "ENOENT")),
    ],
    "RDY-KQ-5": [
        create(0, "pipe_r"),
        op("write_peer", 0, ("n", 1), n=1),
        add(0, "read", 1, dispatch=True),
        kevent(8, R(1, data=1)),
        op("write_peer", 0, ("n", 1), n=1),
        kevent(8),
        change("enable", 0, "read"),
        kevent(8, R(1, data=2)),
        kevent(8),
    ],
    "RDY-KQ-6": [
        create(0, "pipe_r"),
        create(1, "pipe_w"),
        add(0, "read", 1),
        add(1, "write", 2),
        op("write_peer", 0, ("n", 3), n=3),
        op("close_peer", 0),
        op("close_peer", 1),
        kevent(8, R(1, eof=True, data=3), W(2, eof=True)),
    ],
    "RDY-KQ-7": [
        create(0, "pipe_r"),
        op("write_peer", 0, ("n", 1), n=1),
        add(0, "read", 1, dispatch=True),
        kevent(8, R(1, data=1)),
        add(0, "read", 2),
        kevent(8, R(2, data=1)),
        kevent(8, R(2, data=1)),
    ],
    "RDY-KQ-8": [
        create(0, "pipe_r"),
        change("enable", 0, "read", ("err", "ENOENT")),
        change("disable", 0, "read", ("err", "ENOENT")),
        op("close_ours", 0),
        add(0, "read", 1, expect=("err", "EBADF")),
    ],
    "RDY-KQ-9": [
        create(0, "pipe_r"),
        add(0, "read", 1),
        op("dup_ours", 0),
        op("close_ours", 0),
        op("write_peer", 0, ("n", 1), n=1),
        kevent(8),
    ],
    "RDY-KQ-10": [
        create(0, "sock"),
        create(1, "sock"),
        add(0, "write", 0),
        add(1, "write", 1),
        kevent(0),
        kevent(8, W(0), W(1)),
        kevent(1, W(1)),  # which one is the manual's choice: either is allowed
    ],
    "RDY-KQ-11": [
        create(0, "sock"),
        add(0, "read", 1),
        op("write_peer", 0, ("n", 3), n=3),
        op("write_peer", 0, ("n", 64), n=64),
        kevent(8, R(1, data=67)),
        op("read_ours", 0, ("n", 64), n=64),
        kevent(8, R(1, data=3)),
    ],
    "RDY-KQ-12": [
        create(0, "pipe_r"),
        add(0, "read", 1, clear=True),
        change("disable", 0, "read"),
        op("write_peer", 0, ("n", 1), n=1),
        kevent(8),
        change("enable", 0, "read"),
        kevent(8, R(1, data=1)),
    ],
}

NEAR_MISSES = {
    "level knote not returned while ready": ("RDY-KQ-2", -1, kevent(8)),
    "EV_CLEAR returned again without activity": ("RDY-KQ-3", 4, kevent(8, R(1, data=1))),
    "oneshot returned twice": ("RDY-KQ-4", 4, kevent(8, R(1, data=1))),
    "dispatch returned while disabled": ("RDY-KQ-5", 5, kevent(8, R(1, data=2))),
    "EV_EOF missing": ("RDY-KQ-6", 7, kevent(8, R(1, data=3), W(2, eof=True))),
    "knote survives close with a dup": ("RDY-KQ-9", 5, kevent(8, R(1, data=1))),
    "more than nevents": ("RDY-KQ-10", 6, kevent(1, W(0), W(1))),
    "wrong data": ("RDY-KQ-11", 4, kevent(8, R(1, data=3))),
}


@pytest.mark.parametrize("rule", sorted(SCENARIOS))
def test_kqueue_scenario_is_allowed(rule):
    result = check(SCENARIOS[rule])
    assert result.ok, [(s.call(), s.observed, s.allowed) for s in result.steps]


@pytest.mark.parametrize("name", sorted(NEAR_MISSES))
def test_kqueue_near_miss_is_rejected(name):
    rule, index, step = NEAR_MISSES[name]
    steps = list(SCENARIOS[rule])
    if index == -1:
        steps.append(step)
    else:
        steps[index] = step
    result = check(steps)
    assert not result.ok, f"the model allowed: {name}"


def test_every_kqueue_rule_has_a_scenario():
    kq = {r.id for r in RULES.area("readiness") if r.holds_in("bsd-kqueue")}
    assert kq == set(SCENARIOS)


def test_kqueue_profile_needs_a_kqueue_target():
    with pytest.raises(UsageError, match="no kqueue target can run on Linux"):
        run("readiness", "impl", profile="bsd-kqueue")


def test_kqueue_machine_runs_under_the_bridge_with_its_own_model():
    # Drive the kqueue machine by Hypothesis with the model answering itself:
    # every listed outcome must be reachable and keep the invariants.
    from asyncspec.conformance.engine.bridge import build
    from asyncspec.conformance.target import Target
    from asyncspec.spec.core import check_step
    from hypothesis import HealthCheck, settings
    from hypothesis.stateful import run_state_machine_as_test

    class Oracle(Target):
        """Answers with the first allowed outcome of the model it mirrors."""

        name, area, dialect = "kqueue-model", "readiness", "kqueue"

        def open(self):
            self.beliefs = {MACHINE.init(PROFILE)}

        def perform(self, action, args):
            a = MACHINE.action(action)
            outs = [o for s in self.beliefs for o in a.outcomes(s, args, PROFILE)]
            obs = outs[0].obs
            self.beliefs = set(check_step(MACHINE, PROFILE, self.beliefs, a, args, obs).beliefs)
            return obs

    cls = build(MACHINE, PROFILE, Oracle)
    run_state_machine_as_test(cls, settings=settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck)))
    assert cls.recorder.steps > 100
