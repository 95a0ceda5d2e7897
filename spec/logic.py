"""The few operators spec guards and effects are built from.

Spec code writes conditions with these instead of Python's ``if``/``and``/
``or``/``not`` on state, so the same function can be read two ways: with
plain values when a machine runs, and with z3 terms when `asyncspec.model`
proves it.  Each helper picks the interpretation from its arguments: if any
is a z3 expression, it builds a z3 term; otherwise it computes the value.
"""

from __future__ import annotations


# Plain truth values and numbers, the common case (every conformance step
# evaluates the invariants with these): recognised by their exact type first,
# which keeps a helper call about five times cheaper than the lookups below.
_PLAIN = (bool, int)


def _plain(values) -> bool:
    for v in values:
        if type(v) not in _PLAIN:
            return False
    return True


def _symbolic(*values) -> bool:
    # No import of z3 here: a z3 term is recognised by its type's module.
    return any(type(v).__module__.startswith("z3") for v in values)


def _reader(values):
    """The symbolic reading (asyncspec.model.symbolic) a value belongs to, if any:
    its values carry ``__symbolic__``, the explorer that builds their terms."""
    for v in values:
        x = getattr(v, "__symbolic__", None)
        if x is not None:
            return x
    return None


def ite(cond, then, otherwise):
    """``then`` if ``cond`` else ``otherwise`` (both already evaluated)."""
    if _plain((cond, then, otherwise)):
        return then if cond else otherwise
    x = _reader((cond, then, otherwise))
    if x is not None:
        return x.ite(cond, then, otherwise)
    if _symbolic(cond, then, otherwise):
        import z3

        return z3.If(cond, then, otherwise)
    return then if cond else otherwise


def all_(*conds):
    if _plain(conds):
        return all(conds)
    x = _reader(conds)
    if x is not None:
        return x.all_(conds)
    if _symbolic(*conds):
        import z3

        return z3.And(*conds)
    return all(conds)


def any_(*conds):
    if _plain(conds):
        return any(conds)
    x = _reader(conds)
    if x is not None:
        return x.any_(conds)
    if _symbolic(*conds):
        import z3

        return z3.Or(*conds)
    return any(conds)


def not_(cond):
    if type(cond) in _PLAIN:
        return not cond
    x = _reader((cond,))
    if x is not None:
        return x.not_(cond)
    if _symbolic(cond):
        import z3

        return z3.Not(cond)
    return not cond


def bits(*pairs) -> int:
    """OR of ``flag`` for every ``(cond, flag)`` pair whose ``cond`` holds."""
    value = 0
    for cond, flag in pairs:
        value |= ite(cond, flag, 0)
    return value


def rules_if(*pairs) -> tuple[str, ...]:
    """The rule IDs of every ``(cond, rule_id)`` pair whose ``cond`` holds, in
    order, each once: the rules a step exercises.

    Rule IDs label a step; they are not its behaviour.  The symbolic reading
    (asyncspec.model) therefore does not branch on them: it keeps every rule
    whose condition may hold (a superset), so labelling a step never splits
    its paths.
    """
    x = _reader([c for c, _ in pairs])
    if x is not None:
        return x.rules_if(pairs)
    return tuple(dict.fromkeys(r for c, r in pairs if c))
