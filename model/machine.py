"""A spec machine read symbolically: transition summaries, induction, bounded model checking.

`Symbolic(machine, profile, template)` reads the machine's own actions with
`asyncspec.model.symbolic`: the state is ``template`` with every field a
fresh z3 symbol, and each (action, arguments) pair is explored path by path
into *transitions*: a path condition over the symbols, the next state's
fields as terms, and the observation.  On that:

- `induction(inv)`: Init => Inv, and Inv /\\ Trans => Inv' for every
  transition, or a counterexample to induction (a concrete state satisfying
  Inv, the step, and the state it leads to);
- `bmc(prop, depth, start)`: no run of up to ``depth`` steps from ``start``
  (the initial state, or any state satisfying a formula) breaks ``prop``,
  or the shortest such run as concrete steps, replayable by `asyncspec
  replay` like any counterexample.

The well-formedness invariant (``shape``) is assumed while exploring, so a
symbolic index only takes the values a real state can have, and so is a
bound on the counters' size (`BOUND`): they are read as 16-bit vectors.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

import z3

from ..spec.core import Action, Machine, Profile
from . import symbolic as S


BOUND = 2**12


@dataclass
class Transition:
    action: str
    args: dict
    cond: z3.BoolRef  # over the pre-state symbols
    next: Any  # the next state (leaves: symbolic terms or constants)
    obs: Any
    rules: tuple


@dataclass
class Cti:
    """A counterexample to induction, or a bounded counterexample."""

    states: list  # concrete states (one for a CTI before the step, or the run's)
    steps: list  # (action, args) per step
    observations: list


def _rebind(value, x: S.Explorer):
    """The same value with its symbolic leaves belonging to explorer ``x``."""
    if isinstance(value, S.Sym):
        return S.Sym(value.e, x)
    if isinstance(value, S.SBool):
        return S.SBool(value.e, x)
    if isinstance(value, tuple):
        return tuple(_rebind(v, x) for v in value)
    if hasattr(value, "__dataclass_fields__"):
        from dataclasses import fields, replace

        return replace(value, **{f.name: _rebind(getattr(value, f.name), x) for f in fields(value)})
    return value


class Symbolic:
    def __init__(
        self,
        machine: Machine,
        profile: Profile,
        template: Any,
        shape: Callable[[Any, Profile], bool],
        actions: list[Action] | None = None,
        index_range=range(-4, 8),
    ):
        self.machine, self.profile, self.template = machine, profile, template
        self.shape = shape
        self.actions = actions if actions is not None else list(machine.actions)
        self.index_range = index_range
        x = S.Explorer(index_range=index_range)
        self.vars: list = []
        self.state = S.symbolic_copy(template, x, "", self.vars)
        # Counters are read as 16-bit vectors: states whose numbers stay below
        # BOUND in size, so that one step cannot wrap them (an artifact of the
        # width, not of the spec).  Every claim is "for all such states".
        bounds = [z3.And(v >= -BOUND, v < BOUND) for _, v in self.vars if not z3.is_bool(v)]
        self.shape_f = z3.And(*bounds, self.formula(lambda s: shape(s, profile)))
        self._transitions: list[Transition] | None = None

    # --------------------------------------------------------------- reading

    def formula(self, pred: Callable[[Any], Any], state=None, assumptions=()) -> z3.BoolRef:
        """``pred(state)`` (default: the symbolic pre-state) as a formula."""
        x = S.Explorer(assumptions, self.index_range)
        st = _rebind(self.state if state is None else state, x)
        return x.formula(lambda: pred(st))

    def transitions(self) -> list[Transition]:
        if self._transitions is None:
            out = []
            for action in self.actions:
                for args in action.all_args():
                    x = S.Explorer([self.shape_f], self.index_range)
                    st = _rebind(self.state, x)

                    def step(action=action, args=args, st=st):
                        if not action.pre(st, args, self.profile):
                            return []
                        return [(o.next, o.obs, o.rules) for o in action.outcomes(st, args, self.profile)]

                    for cond, outcomes in x.paths(step):
                        for nxt, obs, rules in outcomes:
                            out.append(Transition(action.name, dict(args), cond, nxt, obs, rules))
            self._transitions = out
        return self._transitions

    # ------------------------------------------------------------- checking

    def _model_state(self, model, value=None):
        return S.concrete(self.state if value is None else value, model, self.template)

    def induction(self, inv: Callable[[Any, Profile], bool]) -> tuple[bool, Cti | None, str]:
        """Init => Inv and Inv /\\ Trans => Inv'; (ok, counterexample, detail)."""
        init = self.machine.init(self.profile)
        if not (self.shape(init, self.profile) and inv(init, self.profile)):
            return False, Cti([init], [], []), "the initial state breaks it"
        inv_f = self.formula(lambda s: inv(s, self.profile), assumptions=[self.shape_f])
        checked = 0
        for tr in self.transitions():
            x = S.Explorer([self.shape_f, inv_f, tr.cond], self.index_range)
            nxt = _rebind(tr.next, x)
            for cond, holds in x.paths(lambda: bool(self.shape(nxt, self.profile) and inv(nxt, self.profile))):
                checked += 1
                if holds:
                    continue
                s = z3.Solver()
                s.add(self.shape_f, inv_f, tr.cond, cond)
                assert s.check() == z3.sat
                m = s.model()
                return False, Cti([self._model_state(m), self._model_state(m, tr.next)], [(tr.action, tr.args)], []), (
                    f"not inductive: {tr.action}{tr.args} leads out of it"
                )
        return True, None, f"{len(self.transitions())} transitions, {checked} paths"

    def bmc(self, prop: Callable[[Any, Profile], bool], depth: int, start: Callable[[Any, Profile], bool] | None = None):
        """No run of 1..depth steps breaks ``prop``: from the initial state, or
        from every well-formed state satisfying ``start``.  (ok, counterexample, detail)."""
        trs = self.transitions()
        leaves = [t for _, t in S.leaves(self.state)]
        terms = [leaf.e for leaf in leaves]
        prop_f = self.formula(lambda s: prop(s, self.profile), assumptions=[self.shape_f])
        solver = z3.Solver()
        frames = []
        for i in range(depth + 1):
            frames.append([z3.Const(f"s{i}.{n}", t.sort()) for (n, _), t in zip(S.leaves(self.state), terms)])

        def at(f, i):
            return z3.substitute(f, *zip(terms, frames[i]))

        if start is None:
            init = self.machine.init(self.profile)
            for (_, leaf), var in zip(S.leaves(init), frames[0]):
                solver.add(var == S.as_term(leaf, var))
        else:
            solver.add(at(self.shape_f, 0), at(self.formula(lambda s: start(s, self.profile), assumptions=[self.shape_f]), 0))
        choices = []
        for i in range(depth):
            c = z3.Int(f"choice{i}")
            choices.append(c)
            options = []
            for k, tr in enumerate(trs):
                nxt = [S.as_term(leaf, var) for (_, leaf), var in zip(S.leaves(tr.next), frames[0])]
                eqs = [frames[i + 1][j] == at(nxt[j], i) for j in range(len(nxt))]
                options.append(z3.And(c == k, at(tr.cond, i), *eqs))
            solver.add(z3.Or(*options))
            solver.push()
            solver.add(z3.Not(at(prop_f, i + 1)))
            if solver.check() == z3.sat:
                m = solver.model()
                steps = [(trs[m.eval(choices[j]).as_long()].action, trs[m.eval(choices[j]).as_long()].args) for j in range(i + 1)]
                states = []
                for j in range(i + 2):
                    vals = {f.decl().name(): m.eval(f, model_completion=True) for f in frames[j]}
                    states.append(_state_from(self.template, vals, f"s{j}."))
                return False, Cti(states, steps, []), f"broken after {i + 1} steps"
            solver.pop()
        return True, None, f"no run of 1..{depth} steps breaks it ({len(trs)} transitions)"


def _state_from(template, vals: dict, prefix: str):
    from dataclasses import fields, is_dataclass, replace

    def build(t, path):
        if is_dataclass(t) and not isinstance(t, type):
            return replace(t, **{f.name: build(getattr(t, f.name), f"{path}{f.name}.") for f in fields(t)})
        if isinstance(t, tuple):
            return tuple(build(v, f"{path}{i}.") for i, v in enumerate(t))
        v = vals[prefix + path.rstrip(".")]
        return z3.is_true(v) if isinstance(t, bool) else v.as_signed_long()

    return build(template, "")


def timed(fn):
    started = time.monotonic()
    result = fn()
    return result, time.monotonic() - started
