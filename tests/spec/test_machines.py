"""One sanity check for every machine of every area: explore it (breadth
first, then by weighted random walks into the deep states); every state
met keeps the machine's invariants, every action is enabled somewhere,
every feature an action asks for is one its area declares, and every rule
of the area is named by some step the exploration took."""

from __future__ import annotations

import random
from collections import deque

import pytest

from asyncspec.spec import AREAS, area

BFS_STATES = 500
WALKS, DEPTH = 300, 60


def _explore(machine, profile, rng):
    """(states met, rules named, actions enabled, features required)."""
    seen, rules, enabled, required = set(), set(), set(), set()

    def step_options(s):
        out = []
        for action in machine.actions:
            for args in action.all_args():
                if action.pre(s, args, profile):
                    out.append((action, args))
                    enabled.add(action.name)
                    required.update(action.requires(s, args))
        return out

    def outcomes(s, action, args):
        outs = action.outcomes(s, args, profile)
        for o in outs:
            rules.update(o.rules, o.breaks)
        if action.accepts is not None:
            rules.update(action.rules)
        return outs

    init = machine.init(profile)
    seen.add(init)
    queue = deque([init])
    while queue and len(seen) < BFS_STATES:
        s = queue.popleft()
        for action, args in step_options(s):
            for o in outcomes(s, action, args):
                if o.next not in seen:
                    seen.add(o.next)
                    queue.append(o.next)
    # Walks pick an action by weight, then its arguments, preferring half
    # the time a combination no walk took yet, so the rare ones deep states
    # need show up.
    all_args = {a.name: a.all_args() for a in machine.actions}
    weights = [max(1, a.weight) for a in machine.actions]
    taken: set = set()
    for _ in range(WALKS):
        s = init
        for _ in range(DEPTH):
            order = sorted(machine.actions, key=lambda a: rng.random() ** (1 / weights[machine.actions.index(a)]), reverse=True)
            for action in order:
                options = [args for args in all_args[action.name] if action.pre(s, args, profile)]
                if options:
                    break
            else:
                break
            enabled.add(action.name)
            fresh = [args for args in options if (action.name, repr(args)) not in taken]
            if fresh and rng.random() < 0.5:
                args = rng.choice(fresh)
            else:
                args = rng.choices(options, [action.arg_weight(a) for a in options])[0]
            taken.add((action.name, repr(args)))
            required.update(action.requires(s, args))
            s = rng.choice(outcomes(s, action, args)).next
            seen.add(s)
    return seen, rules, enabled, required


@pytest.mark.slow
@pytest.mark.parametrize("name", AREAS)
def test_every_machine_explores_soundly_and_reaches_every_rule_and_action(name):
    record = area(name)
    rng = random.Random(7)
    named: set[str] = set()
    for machine in record.machines:
        enabled_anywhere: set[str] = set()
        for profile in machine.profiles:
            states, rules, enabled, required = _explore(machine, profile, rng)
            for inv in machine.invariants:
                broken = [machine.describe(s) for s in states if not inv.holds(s, profile)]
                assert not broken, f"{inv.rule} fails in {profile.name}: {broken[0]}"
            assert not record.unknown_features(required), f"{machine.dialect or name} actions ask for undeclared features"
            named |= rules
            enabled_anywhere |= enabled
        assert enabled_anywhere == {a.name for a in machine.actions}, "an action is never enabled"
    missing = sorted(r.id for r in record.rules() if r.id not in named)
    assert not missing, f"no explored step names {missing}"
