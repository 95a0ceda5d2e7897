"""Reading the executable spec symbolically: the same Python, run on z3 values.

A spec action is ordinary Python over a state's small ints and bools.  To
read it for z3, `Explorer.paths(fn)` runs ``fn`` with some values replaced by
symbolic ones (`Sym`): arithmetic on them builds z3 terms, and wherever the
code needs a truth value (``if``, ``and``, ``not``, a comparison inside
``==`` of two tuples, an index) the explorer *decides* it.  It runs the
function again for every feasible combination of decisions, so each run is
one path, with the path condition that leads to it and the value it
computes (an outcome list, a next state, a bool).  Nothing is translated by
hand: the z3 reading is exactly the code that runs the conformance suite.

Integers are 16-bit vectors (the spec's counters and flags are small; the
fiber layout's 64-bit arithmetic is proved with its own z3 integers, see
`asyncspec.model.fiber`).  What the explorer cannot read (hashing a symbolic
value into a set, for one) raises `NotSymbolic`, naming the construct: the
fix is to write the spec more plainly, not to copy it.
"""

from __future__ import annotations

from dataclasses import fields, is_dataclass, replace
from typing import Any, Callable

import z3

WIDTH = 16


class NotSymbolic(TypeError):
    """Spec code did something the symbolic reading cannot follow."""


class _Infeasible(Exception):
    pass


class Explorer:
    """Runs functions on symbolic values, once per feasible path."""

    def __init__(self, assumptions=(), index_range=range(-4, 8)):
        self.assumptions = list(assumptions)
        self.index_range = index_range
        self._trail: list[list] = []  # [cond, choice, other side still to explore]
        self._indexed: dict = {}
        self._forced: list[tuple[bool, bool]] = []
        self._solver = z3.Solver()
        self._solver.add(*self.assumptions)

    # -------------------------------------------------------------- values

    def int(self, name: str) -> "Sym":
        return Sym(z3.BitVec(name, WIDTH), self)

    def bool(self, name: str) -> "SBool":
        return SBool(z3.Bool(name), self)

    # The logic helpers' symbolic reading (spec.logic): terms, no decisions.

    def _bool(self, v) -> z3.BoolRef:
        if isinstance(v, SBool):
            return v.e
        if isinstance(v, Sym):
            return v.e != 0
        return z3.BoolVal(bool(v))

    def ite(self, cond, then, otherwise):
        c = self._bool(cond)
        if isinstance(then, SBool) or isinstance(otherwise, SBool) or isinstance(then, bool) and isinstance(otherwise, bool):
            return SBool(z3.If(c, self._bool(then), self._bool(otherwise)), self)
        return Sym(z3.If(c, _term(then, self), _term(otherwise, self)), self)

    def all_(self, conds) -> "SBool":
        return SBool(z3.And(*[self._bool(c) for c in conds]), self)

    def any_(self, conds) -> "SBool":
        return SBool(z3.Or(*[self._bool(c) for c in conds]), self)

    def not_(self, cond) -> "SBool":
        return SBool(z3.Not(self._bool(cond)), self)

    def lift(self, value):
        """A z3 term (BitVec or Bool) as a symbolic value of this explorer."""
        if z3.is_bool(value):
            return SBool(value, self)
        return Sym(value, self)

    # --------------------------------------------------------------- paths

    def _feasible(self, conds) -> bool:
        self._solver.push()
        self._solver.add(*conds)
        ok = self._solver.check() != z3.unsat
        self._solver.pop()
        return ok

    def condition(self) -> z3.BoolRef:
        return z3.And(*[c if ch else z3.Not(c) for c, ch, _ in self._trail]) if self._trail else z3.BoolVal(True)

    def decide(self, cond: z3.BoolRef) -> bool:
        cond = z3.simplify(cond)
        if z3.is_true(cond):
            return True
        if z3.is_false(cond):
            return False
        k = len(self._trail)
        if k < len(self._forced):
            choice, other = self._forced[k]
            if k == len(self._forced) - 1 and not self._feasible(self._path() + [cond if choice else z3.Not(cond)]):
                raise _Infeasible  # the flipped side, which was only assumed open
        else:
            # Optimistic: the other side is checked only when it is taken.
            if self._feasible(self._path() + [cond]):
                choice, other = True, True
            else:
                choice, other = False, False
        self._trail.append([cond, choice, other])
        return choice

    def _path(self) -> list:
        return [c if ch else z3.Not(c) for c, ch, _ in self._trail]

    def index(self, e) -> int:
        """A concrete value for a symbolic index: one path per value it can take
        (remembered on the path, so a second use of it decides nothing)."""
        key = e.hash()
        for other, v in self._indexed.get(key, ()):
            if other.eq(e):
                return v
        for v in self.index_range:
            if self.decide(e == v):
                self._indexed.setdefault(key, []).append((e, v))
                return v
        raise _Infeasible

    def paths(self, fn: Callable[[], Any]) -> list[tuple[z3.BoolRef, Any]]:
        """Every feasible path of ``fn()``: (path condition, its value)."""
        out = []
        self._forced = []
        while True:
            self._trail = []
            self._indexed: dict = {}
            try:
                value = fn()
            except _Infeasible:
                pass
            else:
                out.append((self.condition(), value))
            # Backtrack to the last decision whose other side is still open.
            i = len(self._trail) - 1
            while i >= 0 and not self._trail[i][2]:
                i -= 1
            if i < 0:
                return out
            self._forced = [(c[1], c[2]) for c in self._trail[:i]] + [(not self._trail[i][1], False)]

    def formula(self, predicate: Callable[[], Any]) -> z3.BoolRef:
        """The condition under which ``predicate()`` is true, as one formula."""
        return z3.Or(*[pc for pc, v in self.paths(lambda: bool(predicate())) if v] or [z3.BoolVal(False)])


def _term(value, x: Explorer):
    if isinstance(value, (Sym, SBool)):
        return value.e
    if isinstance(value, bool):
        return z3.BitVecVal(int(value), WIDTH)
    if isinstance(value, int):
        return z3.BitVecVal(value, WIDTH)
    raise NotSymbolic(f"cannot compute with {type(value).__name__} {value!r} and a symbolic integer")


class Sym:
    """A symbolic integer (a 16-bit z3 vector, signed comparisons)."""

    __slots__ = ("e", "x")

    @property
    def __symbolic__(self) -> Explorer:
        return self.x

    def __init__(self, e, x: Explorer):
        self.e, self.x = e, x

    def _bin(self, other, op):
        return Sym(op(self.e, _term(other, self.x)), self.x)

    def _rbin(self, other, op):
        return Sym(op(_term(other, self.x), self.e), self.x)

    __add__ = lambda s, o: s._bin(o, lambda a, b: a + b)  # noqa: E731
    __radd__ = lambda s, o: s._rbin(o, lambda a, b: a + b)  # noqa: E731
    __sub__ = lambda s, o: s._bin(o, lambda a, b: a - b)  # noqa: E731
    __rsub__ = lambda s, o: s._rbin(o, lambda a, b: a - b)  # noqa: E731
    __mul__ = lambda s, o: s._bin(o, lambda a, b: a * b)  # noqa: E731
    __rmul__ = lambda s, o: s._rbin(o, lambda a, b: a * b)  # noqa: E731
    __and__ = lambda s, o: s._bin(o, lambda a, b: a & b)  # noqa: E731
    __rand__ = lambda s, o: s._rbin(o, lambda a, b: a & b)  # noqa: E731
    __or__ = lambda s, o: s._bin(o, lambda a, b: a | b)  # noqa: E731
    __ror__ = lambda s, o: s._rbin(o, lambda a, b: a | b)  # noqa: E731
    __xor__ = lambda s, o: s._bin(o, lambda a, b: a ^ b)  # noqa: E731
    __rxor__ = lambda s, o: s._rbin(o, lambda a, b: a ^ b)  # noqa: E731
    __lshift__ = lambda s, o: s._bin(o, lambda a, b: a << b)  # noqa: E731
    __rshift__ = lambda s, o: s._bin(o, lambda a, b: a >> b)  # noqa: E731

    def __neg__(self):
        return Sym(-self.e, self.x)

    def __invert__(self):
        return Sym(~self.e, self.x)

    def __mod__(self, o):
        return self._bin(o, z3.SRem)

    def __floordiv__(self, o):
        return self._bin(o, lambda a, b: a / b)

    def __eq__(self, o):  # type: ignore[override]
        if not isinstance(o, (int, Sym, SBool)):
            return False
        return SBool(self.e == _term(o, self.x), self.x)

    def __ne__(self, o):  # type: ignore[override]
        if not isinstance(o, (int, Sym, SBool)):
            return True
        return SBool(self.e != _term(o, self.x), self.x)

    def __lt__(self, o):
        return SBool(self.e < _term(o, self.x), self.x)

    def __le__(self, o):
        return SBool(self.e <= _term(o, self.x), self.x)

    def __gt__(self, o):
        return SBool(self.e > _term(o, self.x), self.x)

    def __ge__(self, o):
        return SBool(self.e >= _term(o, self.x), self.x)

    def __bool__(self):
        return self.x.decide(self.e != 0)

    def __index__(self):
        """A concrete index: one path per value the symbolic one can take."""
        return self.x.index(self.e)

    __int__ = __index__

    def __hash__(self):
        raise NotSymbolic("a symbolic integer was hashed (put in a set or dict, or used as a key)")

    def __repr__(self):
        return f"Sym({self.e})"


class SBool:
    """A symbolic truth value."""

    __slots__ = ("e", "x")

    @property
    def __symbolic__(self) -> Explorer:
        return self.x

    def __init__(self, e, x: Explorer):
        self.e, self.x = e, x

    def __bool__(self):
        return self.x.decide(self.e)

    def __int__(self):
        return 1 if bool(self) else 0

    __index__ = __int__

    def __eq__(self, o):  # type: ignore[override]
        if isinstance(o, SBool):
            return SBool(self.e == o.e, self.x)
        if isinstance(o, bool):
            return SBool(self.e == z3.BoolVal(o), self.x)
        return int(self) == o

    def __ne__(self, o):  # type: ignore[override]
        r = self.__eq__(o)
        return SBool(z3.Not(r.e), self.x) if isinstance(r, SBool) else not r

    def __hash__(self):
        raise NotSymbolic("a symbolic bool was hashed (put in a set or dict, or used as a key)")

    def __repr__(self):
        return f"SBool({self.e})"


# ------------------------------------------------------------ states as terms


def symbolic_copy(value, x: Explorer, prefix: str, vars_out: list):
    """A copy of a state value with every int and bool replaced by a fresh
    symbol named after its path (``tasks.0.refs``); the symbols are appended
    to ``vars_out`` as (name, z3 term)."""
    if is_dataclass(value) and not isinstance(value, type):
        changes = {f.name: symbolic_copy(getattr(value, f.name), x, f"{prefix}{f.name}.", vars_out) for f in fields(value)}
        return replace(value, **changes)
    if isinstance(value, tuple):
        return tuple(symbolic_copy(v, x, f"{prefix}{i}.", vars_out) for i, v in enumerate(value))
    name = prefix.rstrip(".")
    if isinstance(value, bool):
        s = x.bool(name)
    elif isinstance(value, int):
        s = x.int(name)
    else:
        raise NotSymbolic(f"state field {name} holds a {type(value).__name__}, which has no symbolic reading")
    vars_out.append((name, s.e))
    return s


def leaves(value, prefix: str = "") -> list[tuple[str, Any]]:
    """(path, leaf) for every int/bool/symbol in a state value, in field order."""
    if is_dataclass(value) and not isinstance(value, type):
        out = []
        for f in fields(value):
            out += leaves(getattr(value, f.name), f"{prefix}{f.name}.")
        return out
    if isinstance(value, tuple):
        out = []
        for i, v in enumerate(value):
            out += leaves(v, f"{prefix}{i}.")
        return out
    return [(prefix.rstrip("."), value)]


def as_term(value, like):
    """A leaf as a z3 term of the same sort as ``like`` (a Bool or a BitVec)."""
    if isinstance(value, (Sym, SBool)):
        return value.e
    if z3.is_bool(like):
        return z3.BoolVal(bool(value))
    return z3.BitVecVal(int(value), WIDTH)


def concrete(value, model: z3.ModelRef, template):
    """``template`` (a state shape) with each leaf taken from ``value``
    evaluated in ``model``: a concrete state from a z3 model."""
    if is_dataclass(template) and not isinstance(template, type):
        return replace(template, **{f.name: concrete(getattr(value, f.name), model, getattr(template, f.name)) for f in fields(template)})
    if isinstance(template, tuple):
        return tuple(concrete(v, model, t) for v, t in zip(value, template))
    if isinstance(value, (Sym, SBool)):
        got = model.eval(value.e, model_completion=True)
        return z3.is_true(got) if isinstance(template, bool) else got.as_signed_long()
    return value
