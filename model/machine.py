"""A spec machine read symbolically: transition summaries, induction, bounded model checking.

`Symbolic(machine, profile, template)` reads the machine's own actions with
`asyncspec.model.symbolic`: the state is ``template`` with every field a
fresh z3 symbol, and each (action, arguments) pair is explored path by path
into *transitions*: a path condition over the symbols, the next state's
fields as terms, and the observation.  On that:

- `induction(inv)`: Init => Inv, and Inv /\\ Trans => Inv' for every
  transition, or a counterexample to induction (a concrete state satisfying
  Inv, the step, and the state it leads to);
- `step_property(prop, inv)`: every step from every state satisfying ``inv``
  satisfies ``prop(before, action, args, observation, after)`` (with ``inv``
  inductive, that is every step of every run);
- `bmc(prop, depth, start)`: no run of up to ``depth`` steps from ``start``
  (the initial state, or any state satisfying a formula) breaks ``prop``,
  or the shortest such run as concrete steps (`asyncspec.model.trace`
  makes it plain data, which `asyncspec prove --out` writes as a
  counterexample file that `asyncspec replay` re-executes).

The well-formedness invariant (``shape``) is assumed while exploring, so a
symbolic index only takes the values a real state can have, and so is a
bound on the counters' size (`BOUND`): they are read as 16-bit vectors.

A *small world* is a template with fewer slots than the machine's own
initial state (``init`` gives its initial state, ``domains`` narrows the
parameters that index slots): the actions are the spec's, unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, is_dataclass, replace
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
    choice: int = 0  # which of the action's outcomes (in the spec's order)
    terms: list | None = None  # the next state's leaves as terms, in variable order


@dataclass
class Cti:
    """A counterexample to induction, or a bounded counterexample."""

    states: list  # concrete states (one for a CTI before the step, or the run's)
    steps: list  # (action, args) per step
    observations: list
    choices: list | None = None  # the outcome each step took (its index in the spec's list)
    from_init: bool = False  # a run from the machine's initial state (replayable)


def _rebind(value, x: S.Explorer):
    """The same value with its symbolic leaves belonging to explorer ``x``."""
    if isinstance(value, S.Sym):
        return S.Sym(value.e, x)
    if isinstance(value, S.SBool):
        return S.SBool(value.e, x)
    if isinstance(value, tuple):
        return tuple(_rebind(v, x) for v in value)
    if is_dataclass(value) and not isinstance(value, type):
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
        init: Any = None,
        domains: dict | None = None,
    ):
        self.machine, self.profile, self.template = machine, profile, template
        self.shape = shape
        self.actions = actions if actions is not None else list(machine.actions)
        self.index_range = index_range
        self.init = init if init is not None else machine.init(profile)
        self.domains = domains or {}
        x = S.Explorer(index_range=index_range)
        self.vars: list = []
        self.state = S.symbolic_copy(template, x, "", self.vars)
        self.terms = [t for _, t in self.vars]
        # Counters are read as 16-bit vectors: states whose numbers stay below
        # BOUND in size, so that one step cannot wrap them (an artifact of the
        # width, not of the spec).  Every claim is "for all such states".
        self.bounds_f = z3.And(*[z3.And(v >= -BOUND, v < BOUND) for v in self.terms if not z3.is_bool(v)])
        self.user_shape_f = self.formula(lambda s: shape(s, profile))
        self.shape_f = z3.And(self.bounds_f, self.user_shape_f)
        self._transitions: list[Transition] | None = None

    # --------------------------------------------------------------- reading

    def formula(self, pred: Callable[[Any], Any], state=None, assumptions=()) -> z3.BoolRef:
        """``pred(state)`` (default: the symbolic pre-state) as a formula."""
        x = S.Explorer(assumptions, self.index_range)
        st = _rebind(self.state if state is None else state, x)
        return x.formula(lambda: pred(st))

    def state_formula(self, pred: Callable[[Any, Profile], Any]) -> z3.BoolRef:
        """``pred`` over the symbolic state, read under the shape (exact for well-formed states)."""
        return self.formula(lambda s: pred(s, self.profile), assumptions=[self.user_shape_f])

    def all_args(self, action: Action) -> list[dict]:
        return [a for a in action.all_args() if all(a[k] in v for k, v in self.domains.items() if k in a)]

    def transitions(self) -> list[Transition]:
        if self._transitions is None:
            out = []
            for action in self.actions:
                for args in self.all_args(action):
                    x = S.Explorer([self.shape_f], self.index_range)
                    st = _rebind(self.state, x)

                    def step(action=action, args=args, st=st):
                        if not action.pre(st, args, self.profile):
                            return []
                        return [(o.next, o.obs, o.rules) for o in action.outcomes(st, args, self.profile)]

                    for cond, outcomes in x.paths(step):
                        for k, (nxt, obs, rules) in enumerate(outcomes):
                            terms = [S.as_term(leaf, var) for (_, leaf), var in zip(S.leaves(nxt), self.terms)]
                            out.append(Transition(action.name, dict(args), cond, nxt, obs, rules, k, terms))
            self._transitions = out
        return self._transitions

    def after(self, formula: z3.BoolRef, tr: Transition) -> z3.BoolRef:
        """``formula`` (over the pre-state symbols) read in the state ``tr`` leads to."""
        return z3.substitute(formula, *zip(self.terms, tr.terms))

    # ------------------------------------------------------------- checking

    def _model_state(self, model, value=None):
        return S.concrete(self.state if value is None else value, model, self.template)

    def induction(self, inv, assume=None):
        """Init => Inv and Inv /\\ Trans => Inv'; (ok, counterexample, detail).

        ``inv`` is one predicate or a list of them (checked as a conjunction);
        ``assume``: invariants already proved, assumed before each step."""
        invs = list(inv) if isinstance(inv, (list, tuple)) else [inv]
        assumed = list(assume) if isinstance(assume, (list, tuple)) else [assume] if assume else []
        init = self.init
        if not (self.shape(init, self.profile) and all(bool(i(init, self.profile)) for i in invs)):
            return False, Cti([init], [], []), "the initial state breaks it"
        inv_fs = [self.state_formula(i) for i in invs]
        hyp = z3.And(self.shape_f, *inv_fs, *[self.state_formula(a) for a in assumed])
        # What must hold after a step, conjunct by conjunct: a step leaves most
        # conjuncts as they were (then they are hypotheses), and only the
        # changed ones are checked, all of one action's paths in one query.
        goal = z3.simplify(z3.And(self.user_shape_f, *inv_fs))
        same = {c.get_id() for c in _conjuncts(goal)}
        trs = self.transitions()
        by_action: dict = {}
        for tr in trs:
            changed = [c for c in _conjuncts(z3.simplify(self.after(goal, tr))) if c.get_id() not in same]
            if changed:
                by_action.setdefault(tr.action, []).append((tr, z3.And(tr.cond, z3.Not(z3.And(*changed)))))
        for alts in by_action.values():
            s = solver()
            s.add(hyp, z3.Or(*[bad for _, bad in alts]))
            if s.check() == z3.sat:
                m = s.model()
                tr = next(tr for tr, bad in alts if z3.is_true(m.eval(bad, model_completion=True)))
                cti = Cti([self._model_state(m), self._model_state(m, tr.next)], [(tr.action, tr.args)], [], [tr.choice])
                return False, cti, f"not inductive: {tr.action}{tr.args} leads out of it"
        return True, None, f"{len(trs)} transitions"

    def step_property(self, prop, inv: Callable[[Any, Profile], bool] | None = None, actions=None):
        """Every step (of ``actions``, default all) from every well-formed state
        satisfying ``inv`` satisfies ``prop(before, action_name, args, obs, after)``."""
        base = [self.shape_f] + ([self.state_formula(inv)] if inv is not None else [])
        checked = 0
        for tr in self.transitions():
            if actions is not None and tr.action not in actions:
                continue
            x = S.Explorer(base + [tr.cond], self.index_range)
            pre, obs, nxt = _rebind(self.state, x), _rebind(tr.obs, x), _rebind(tr.next, x)
            for cond, holds in x.paths(lambda: bool(prop(pre, tr.action, tr.args, obs, nxt))):
                checked += 1
                if holds:
                    continue
                s = z3.Solver()
                s.add(*base, tr.cond, cond)
                assert s.check() == z3.sat
                m = s.model()
                cti = Cti([self._model_state(m), self._model_state(m, tr.next)], [(tr.action, tr.args)], [], [tr.choice])
                return False, cti, f"broken by {tr.action}{tr.args}"
        return True, None, f"{checked} step paths"

    def bmc(self, prop: Callable[[Any, Profile], bool], depth: int, start: Callable[[Any, Profile], bool] | None = None):
        """No run of 1..depth steps breaks ``prop``: from the initial state, or
        from every well-formed state satisfying ``start``.  (ok, counterexample, detail)."""
        trs = self.transitions()
        prop_f = self.state_formula(prop)
        # The transition relation, once, over the state symbols and primed copies.
        primed = [z3.Const(f"{n}'", t.sort()) for n, t in self.vars]
        choice = z3.Int("choice")
        rel = z3.Or(*[z3.And(choice == k, tr.cond, *[p == t for p, t in zip(primed, tr.terms)]) for k, tr in enumerate(trs)])
        frames = [[z3.Const(f"s{i}.{n}", t.sort()) for n, t in self.vars] for i in range(depth + 1)]
        choices = [z3.Int(f"choice{i}") for i in range(depth)]

        def at(f, i):
            return z3.substitute(f, *zip(self.terms, frames[i]))

        s = z3.Solver()
        if start is None:
            for (_, leaf), var in zip(S.leaves(self.init), frames[0]):
                s.add(var == S.as_term(leaf, var))
        else:
            s.add(at(self.state_formula(start), 0))
        for i in range(depth):
            # Each step is taken from a well-formed state of bounded counters
            # (the transitions were read under that assumption).
            s.add(at(self.shape_f, i))
            s.add(z3.substitute(rel, *zip(self.terms, frames[i]), *zip(primed, frames[i + 1]), (choice, choices[i])))
            s.push()
            s.add(z3.Not(at(prop_f, i + 1)))
            if s.check() == z3.sat:
                m = s.model()
                taken = [trs[m.eval(choices[j]).as_long()] for j in range(i + 1)]
                states = []
                for j in range(i + 2):
                    vals = {f.decl().name(): m.eval(f, model_completion=True) for f in frames[j]}
                    states.append(_state_from(self.template, vals, f"s{j}."))
                cx = Cti(states, [(t.action, t.args) for t in taken], [], [t.choice for t in taken], start is None)
                return False, cx, f"broken after {i + 1} steps"
            s.pop()
        return True, None, f"no run of 1..{depth} steps breaks it ({len(trs)} transitions)"


def solver() -> z3.Solver:
    """A fresh solver for one query (bit-blasting beats z3's incremental
    core on these small bit-vector problems)."""
    return z3.Then("simplify", "solve-eqs", "bit-blast", "sat").solver()


def _conjuncts(f: z3.BoolRef) -> list:
    return list(f.children()) if z3.is_and(f) else [f]


def _state_from(template, vals: dict, prefix: str):
    def build(t, path):
        if is_dataclass(t) and not isinstance(t, type):
            return replace(t, **{f.name: build(getattr(t, f.name), f"{path}{f.name}.") for f in fields(t)})
        if isinstance(t, tuple):
            return tuple(build(v, f"{path}{i}.") for i, v in enumerate(t))
        v = vals[prefix + path.rstrip(".")]
        return z3.is_true(v) if isinstance(t, bool) else v.as_signed_long()

    return build(template, "")


# ------------------------------------------------------------------ monitors


@dataclass(frozen=True)
class Watched:
    """A machine's state with a monitor's ghost state beside it."""

    state: Any
    ghost: Any


def watched(machine: Machine, ghost: Any, update: Callable) -> Machine:
    """``machine`` with a monitor: the same actions on ``Watched(state, ghost)``,
    where each outcome also updates the ghost with
    ``update(ghost, action_name, args, before, obs, after)``.  A property of
    runs (what was observed since what) becomes an invariant of this product;
    the spec's actions run unchanged on the ``state`` part."""

    def wrap(a: Action) -> Action:
        def outcomes(w, args, p, a=a):
            return [
                type(o)(o.obs, Watched(o.next, update(w.ghost, a.name, args, w.state, o.obs, o.next)), o.rules, o.breaks)
                for o in a.outcomes(w.state, args, p)
            ]

        return replace(
            a,
            pre=lambda w, args, p, a=a: a.pre(w.state, args, p),
            outcomes=outcomes,
            explain=None,
            accepts=None,
            requires=lambda w, args, a=a: a.requires(w.state, args),
        )

    return replace(
        machine,
        init=lambda p: Watched(machine.init(p), ghost),
        actions=tuple(wrap(a) for a in machine.actions),
        invariants=(),
        describe=lambda w: machine.describe(w.state) if isinstance(w, Watched) else machine.describe(w),
    )
