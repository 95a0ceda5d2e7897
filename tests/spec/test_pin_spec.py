"""The pin machine on its own: its invariants hold in every reachable state,
and every rule and every action is reached by some step."""

from __future__ import annotations

from collections import deque

from asyncspec.spec import RULES
from asyncspec.spec.pin import MACHINE as M
from asyncspec.spec.pin import machine as PM


def explore():
    p = M.profile()
    init = M.init(p)
    seen, queue, named, taken = {init}, deque([init]), set(), set()
    while queue:
        s = queue.popleft()
        for a in M.actions:
            for args in a.all_args():
                if not a.pre(s, args, p):
                    continue
                for o in a.outcomes(s, args, p):
                    for inv in M.invariants:
                        assert inv.holds(o.next, p), (inv.doc, M.describe(s), a.name, args, M.describe(o.next))
                    named.update(o.rules)
                    taken.add(a.name)
                    if o.next not in seen:
                        seen.add(o.next)
                        queue.append(o.next)
    return seen, named, taken


def test_invariants_hold_in_every_reachable_state_and_every_rule_and_action_is_reached():
    seen, named, taken = explore()
    assert len(seen) > 500
    assert named == {r.id for r in RULES.area("pin")}
    assert taken == {a.name for a in M.actions}


def test_a_pinned_unpin_value_is_never_moved_by_a_safe_step():
    p = M.profile()
    seen, _, _ = explore()
    for s in seen:
        for a in M.actions:
            if a.name == "unsafe_move":
                continue
            for args in a.all_args():
                if not a.pre(s, args, p):
                    continue
                for o in a.outcomes(s, args, p):
                    for before, after in zip(s.vals, o.next.vals):
                        assert before.moved or not after.moved, (M.describe(s), a.name, args)


def test_each_observation_reads_back_in_words():
    assert M.show(PM.obs()) == "ok"
    assert M.show(PM.obs(("E0596", "E0382"))) == "error E0382,E0596"
    assert M.show(PM.obs(result=(True, False), drops=((0, "in-place"),))) == "ok stable=True selfref=DANGLING drops v0 in-place"
