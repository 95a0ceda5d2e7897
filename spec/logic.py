"""The few operators spec guards and effects are built from.

Spec code writes conditions with these instead of Python's ``if`` on state,
so the same function can later be read with other interpretations (z3 terms
in ``asyncspec.model``).  Here they are the plain-value interpretation.
"""

from __future__ import annotations


def ite(cond, then, otherwise):
    """``then`` if ``cond`` else ``otherwise`` (both already evaluated)."""
    return then if cond else otherwise


def all_(*conds) -> bool:
    return all(conds)


def any_(*conds) -> bool:
    return any(conds)


def not_(cond) -> bool:
    return not cond


def bits(*pairs) -> int:
    """OR of ``flag`` for every ``(cond, flag)`` pair whose ``cond`` holds."""
    value = 0
    for cond, flag in pairs:
        value |= ite(cond, flag, 0)
    return value
