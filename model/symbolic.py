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

Integers are 16-bit vectors (the spec's counters and flags are small; a
wider constant, such as the eventfd counter's maximum, is read modulo 2^16;
the fiber layout's 64-bit arithmetic is proved with z3 integers, see
`asyncspec.model.proofs.fiber`).  `ite` on two numbers or two same-shaped states
is one term, not two paths; `rules_if` (rule labels) never branches.  What
the explorer cannot read (hashing a symbolic value into a set, for one)
raises `NotSymbolic`, naming the construct: the fix is to write the spec
more plainly, not to copy it.

Terms are built through z3's C API and each decision's feasibility is one
solver call; this, not z3's solving, is what bounds `asyncspec prove`'s time.
"""

from __future__ import annotations

from dataclasses import fields, is_dataclass, replace
from typing import Any, Callable

import z3

WIDTH = 16

_CONSTS: dict = {}


def bv(value: int) -> z3.BitVecRef:
    """The constant ``value`` as a term (cached: making z3 constants is slow)."""
    t = _CONSTS.get(value)
    if t is None:
        t = _CONSTS[value] = z3.BitVecVal(value, WIDTH)
    return t


_TRUE, _FALSE = z3.BoolVal(True), z3.BoolVal(False)

# Terms are built through z3's C API: z3's Python operators check and coerce
# every argument, which is most of the cost of reading a spec symbolically.
_CTX = z3.main_ctx()
_C = z3.z3core


def _b(fn, a, b) -> z3.BoolRef:
    return z3.BoolRef(fn(_CTX.ref(), a.as_ast(), b.as_ast()), _CTX)


def _v(fn, a, b) -> z3.BitVecRef:
    return z3.BitVecRef(fn(_CTX.ref(), a.as_ast(), b.as_ast()), _CTX)


def _nary(fn, args) -> z3.BoolRef:
    arr = (z3.Ast * len(args))()
    for i, a in enumerate(args):
        arr[i] = a.as_ast()
    return z3.BoolRef(fn(_CTX.ref(), len(args), arr), _CTX)


_TID, _FID = _TRUE.get_id(), _FALSE.get_id()


def is_true(a) -> bool:
    return a.get_id() == _TID


def is_false(a) -> bool:
    return a.get_id() == _FID


def t_and(args) -> z3.BoolRef:
    args = [a for a in args if a.get_id() != _TID]
    return _TRUE if not args else args[0] if len(args) == 1 else _nary(_C.Z3_mk_and, args)


def t_or(args) -> z3.BoolRef:
    args = [a for a in args if a.get_id() != _FID]
    return _FALSE if not args else args[0] if len(args) == 1 else _nary(_C.Z3_mk_or, args)


def t_not(a) -> z3.BoolRef:
    return z3.BoolRef(_C.Z3_mk_not(_CTX.ref(), a.as_ast()), _CTX)


def t_eq(a, b) -> z3.BoolRef:
    return _b(_C.Z3_mk_eq, a, b)


def t_ite(c, a, b):
    cls = z3.BoolRef if z3.is_bool(a) else z3.BitVecRef
    return cls(_C.Z3_mk_ite(_CTX.ref(), c.as_ast(), a.as_ast(), b.as_ast()), _CTX)


def t_simplify(a):
    return z3.BoolRef(_C.Z3_simplify(_CTX.ref(), a.as_ast()), _CTX)


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
        self._decided: dict = {}  # condition id -> choice, on the current path
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
            return t_not(t_eq(v.e, bv(0)))
        return _TRUE if v else _FALSE

    def ite(self, cond, then, otherwise):
        """``then`` if ``cond`` else ``otherwise``: one term where both are
        numbers or truth values, leaf by leaf where both are states of the
        same shape, and a decision (two paths) for anything else."""
        c = t_simplify(self._bool(cond))
        if is_true(c):
            return then
        if is_false(c):
            return otherwise
        merged = self._merge(c, then, otherwise)
        if merged is _UNMERGED:
            return then if self.decide(c) else otherwise
        return merged

    def _merge(self, c, a, b):
        if a is b:
            return a
        if is_dataclass(a) and not isinstance(a, type) and type(a) is type(b):
            changes = {}
            for f in fields(a):
                x, y = getattr(a, f.name), getattr(b, f.name)
                m = self._merge(c, x, y)
                if m is _UNMERGED:
                    return _UNMERGED
                if m is not x:
                    changes[f.name] = m
            return replace(a, **changes) if changes else a
        if isinstance(a, tuple) and isinstance(b, tuple):
            if len(a) != len(b):
                return _UNMERGED
            out = []
            for x, y in zip(a, b):
                m = self._merge(c, x, y)
                if m is _UNMERGED:
                    return _UNMERGED
                out.append(m)
            return tuple(out)
        a_num, b_num = _numeric(a), _numeric(b)
        if a_num and b_num:
            if not isinstance(a, (Sym, SBool)) and not isinstance(b, (Sym, SBool)) and a == b and type(a) is type(b):
                return a
            if _truth(a) and _truth(b):
                return SBool(t_ite(c, self._bool(a), self._bool(b)), self)
            return Sym(t_ite(c, _term(a, self), _term(b, self)), self)
        if not a_num and not b_num and type(a) is type(b) and a == b:
            return a
        return _UNMERGED

    def all_(self, conds) -> "SBool":
        if len(conds) == 1:
            return SBool(self._bool(conds[0]), self)
        return SBool(t_and([self._bool(c) for c in conds]), self)

    def any_(self, conds) -> "SBool":
        return SBool(t_or([self._bool(c) for c in conds]), self)

    def not_(self, cond) -> "SBool":
        return SBool(t_not(self._bool(cond)), self)

    def rules_if(self, pairs) -> tuple:
        """spec.logic.rules_if: every rule whose condition may hold (labels only; no decision)."""
        return tuple(dict.fromkeys(r for c, r in pairs if not (isinstance(c, (bool, int)) and not isinstance(c, (Sym, SBool)) and not c)))

    def lift(self, value):
        """A z3 term (BitVec or Bool) as a symbolic value of this explorer."""
        if z3.is_bool(value):
            return SBool(value, self)
        return Sym(value, self)

    # --------------------------------------------------------------- paths

    def _feasible(self, conds) -> bool:
        s = self._solver
        s.push()
        _C.Z3_solver_assert(_CTX.ref(), s.solver, t_and(conds).as_ast())
        ok = s.check() != z3.unsat
        s.pop()
        return ok

    def condition(self) -> z3.BoolRef:
        return t_and(self._path())

    def decide(self, cond: z3.BoolRef) -> bool:
        cond = t_simplify(cond)
        if is_true(cond):
            return True
        if is_false(cond):
            return False
        key = cond.get_id()
        known = self._decided.get(key)
        if known is not None:
            return known  # decided earlier on this path
        choice = self._decide(cond)
        self._decided[key] = choice
        return choice

    def _decide(self, cond: z3.BoolRef) -> bool:
        k = len(self._trail)
        if k < len(self._forced):
            choice, other = self._forced[k]
            if k == len(self._forced) - 1 and not self._feasible(self._path() + [cond if choice else t_not(cond)]):
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
        return [c if ch else t_not(c) for c, ch, _ in self._trail]

    def index(self, e) -> int:
        """A concrete value for a symbolic index: one path per value it can take
        (remembered on the path, so a second use of it decides nothing)."""
        key = e.hash()
        for other, v in self._indexed.get(key, ()):
            if other.eq(e):
                return v
        for v in self.index_range:
            if self.decide(t_eq(e, bv(v))):
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
            self._decided = {}
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
        return t_or([pc for pc, v in self.paths(lambda: bool(predicate())) if v])


_UNMERGED = object()


def _numeric(v) -> bool:
    return isinstance(v, (int, Sym, SBool))  # bool is an int


def _truth(v) -> bool:
    return isinstance(v, (bool, SBool))


def _term(value, x: Explorer):
    if isinstance(value, Sym):
        return value.e
    if isinstance(value, SBool):
        return t_ite(value.e, bv(1), bv(0))
    if isinstance(value, int):
        return bv(int(value))
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

    __add__ = lambda s, o: s._bin(o, lambda a, b: _v(_C.Z3_mk_bvadd, a, b))  # noqa: E731
    __radd__ = lambda s, o: s._rbin(o, lambda a, b: _v(_C.Z3_mk_bvadd, a, b))  # noqa: E731
    __sub__ = lambda s, o: s._bin(o, lambda a, b: _v(_C.Z3_mk_bvsub, a, b))  # noqa: E731
    __rsub__ = lambda s, o: s._rbin(o, lambda a, b: _v(_C.Z3_mk_bvsub, a, b))  # noqa: E731
    __mul__ = lambda s, o: s._bin(o, lambda a, b: _v(_C.Z3_mk_bvmul, a, b))  # noqa: E731
    __rmul__ = lambda s, o: s._rbin(o, lambda a, b: _v(_C.Z3_mk_bvmul, a, b))  # noqa: E731
    __and__ = lambda s, o: s._bin(o, lambda a, b: _v(_C.Z3_mk_bvand, a, b))  # noqa: E731
    __rand__ = lambda s, o: s._rbin(o, lambda a, b: _v(_C.Z3_mk_bvand, a, b))  # noqa: E731
    __or__ = lambda s, o: s._bin(o, lambda a, b: _v(_C.Z3_mk_bvor, a, b))  # noqa: E731
    __ror__ = lambda s, o: s._rbin(o, lambda a, b: _v(_C.Z3_mk_bvor, a, b))  # noqa: E731
    __xor__ = lambda s, o: s._bin(o, lambda a, b: _v(_C.Z3_mk_bvxor, a, b))  # noqa: E731
    __rxor__ = lambda s, o: s._rbin(o, lambda a, b: _v(_C.Z3_mk_bvxor, a, b))  # noqa: E731
    __lshift__ = lambda s, o: s._bin(o, lambda a, b: _v(_C.Z3_mk_bvshl, a, b))  # noqa: E731
    __rshift__ = lambda s, o: s._bin(o, lambda a, b: _v(_C.Z3_mk_bvashr, a, b))  # noqa: E731

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
        return SBool(t_eq(self.e, _term(o, self.x)), self.x)

    def __ne__(self, o):  # type: ignore[override]
        if not isinstance(o, (int, Sym, SBool)):
            return True
        return SBool(t_not(t_eq(self.e, _term(o, self.x))), self.x)

    def __lt__(self, o):
        return SBool(_b(_C.Z3_mk_bvslt, self.e, _term(o, self.x)), self.x)

    def __le__(self, o):
        return SBool(_b(_C.Z3_mk_bvsle, self.e, _term(o, self.x)), self.x)

    def __gt__(self, o):
        return SBool(_b(_C.Z3_mk_bvsgt, self.e, _term(o, self.x)), self.x)

    def __ge__(self, o):
        return SBool(_b(_C.Z3_mk_bvsge, self.e, _term(o, self.x)), self.x)

    def __bool__(self):
        return self.x.decide(t_not(t_eq(self.e, bv(0))))

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
            return SBool(t_eq(self.e, o.e), self.x)
        if isinstance(o, bool):
            return SBool(self.e if o else t_not(self.e), self.x)
        return int(self) == o

    def __ne__(self, o):  # type: ignore[override]
        r = self.__eq__(o)
        return SBool(t_not(r.e), self.x) if isinstance(r, SBool) else not r

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
        return _TRUE if value else _FALSE
    return bv(int(value))


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
