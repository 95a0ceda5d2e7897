"""The spec framework itself."""

import pytest
from asyncspec.spec import RULES, machines
from asyncspec.spec.core import Rule, RuleRegistry, check_step
from asyncspec.spec.readiness import MACHINE


def test_rule_ids_are_unique_and_cited():
    reg = RuleRegistry()
    r = Rule("X-1", "s", "src", frozenset({"p"}), "x")
    reg.add(r)
    with pytest.raises(ValueError, match="defined twice"):
        reg.add(r)
    for rule in RULES:
        assert rule.source, rule.id
        assert rule.profiles, rule.id
        assert rule.statement.endswith("."), rule.id


def test_machines_by_area():
    m = machines()["readiness"]
    assert m is MACHINE
    assert {a.name for a in m.actions} >= {"register", "reregister", "deregister", "poll"}


def test_check_step_narrows_and_names_rules():
    p = MACHINE.profile()
    w = MACHINE.init(p)
    create = MACHINE.action("create")
    r = check_step(MACHINE, p, {w}, create, dict(slot=0, kind="pipe_r"), ("ok",))
    assert r.ok and len(r.beliefs) == 1
    (w,) = r.beliefs
    reg = MACHINE.action("register")
    args = dict(slot=0, token=1, interest="r", mode="et", oneshot=False, rdhup=False)
    r = check_step(MACHINE, p, {w}, reg, args, ("err", "EEXIST"))
    assert not r.ok and r.beliefs == frozenset()
    assert r.violated and all(rid in RULES for rid in r.violated)
    assert r.allowed == (("ok",),)


def test_states_are_hashable_values():
    p = MACHINE.profile()
    a = MACHINE.init(p)
    b = MACHINE.init(p)
    assert a == b and hash(a) == hash(b)
    with pytest.raises(Exception):
        a.slots = ()
