"""The pin area's state diagrams in the generated docs: what each one
looks at (`asyncspec.conformance.docgen.diagrams` explores the machine and
draws what it finds; nothing here says which transitions exist)."""

from __future__ import annotations

from asyncspec.conformance.docgen.diagrams import Step, View
from asyncspec.spec.pin import machine as PM


def _pin_obs(obs) -> str:
    """A statement's outcome, briefly: the compiler's error codes, or the drops it ran."""
    errors, _result, drops = obs
    if errors:
        return "does not compile: " + ", ".join(errors)
    return ", ".join(f"drops it {how}" for _v, how in drops)


def _pin_facts(w, selfref: bool = True) -> tuple[str, ...]:
    val = w.vals[0]
    if val.kind == PM.NOVAL:
        return ("no value",)
    facts = [PM.L_NAMES[val.loc]]
    if val.p != PM.P_NONE:
        facts.append(f"pin: {PM.P_NAMES[val.p]}")
    if val.pinned:
        facts.append("MOVED while pinned" if val.moved else "pinned")
    if selfref and val.selfref != PM.SR_NONE:
        facts.append(PM.SR_NAMES[val.selfref])
    return tuple(facts)


def _pin_view(name: str, title: str, caption: str, kind_name: str, statements: tuple[str, ...]) -> View:
    kind = PM.PINNED if kind_name == "!Unpin" else PM.UNPIN
    steps = [Step("create", (dict(v=0, kind=kind),), label=lambda a: f"create ({kind_name})", show_obs=False)]
    steps += [Step(s, (dict(v=0),), show_obs=_pin_obs) for s in statements]
    return View(
        area="pin",
        name=name,
        title=title,
        caption=caption,
        steps=tuple(steps),
        # An Unpin value's self-reference is no part of its typestate (PIN-SELF-1 is about !Unpin ones).
        project=_pin_facts if kind_name == "!Unpin" else lambda w: _pin_facts(w, selfref=False),
        # A use of the moved-from binding (E0382) is possible after every move: not drawn.
        hide=lambda obs: "E0382" in obs[0],
    )


PIN = (
    _pin_view(
        "not-unpin",
        "The typestate of one !Unpin value",
        "One value of a !Unpin type (it holds a PhantomPinned) and the statements a program may write about it. "
        "Box::pin or pin! moves it into its pinned place (PIN-MOVE-2) and its self-reference is set up there; "
        "from then on it stays at that address (PIN-ADDR-1) and is dropped in place (PIN-DROP-1), also when "
        "Pin::set replaces it (PIN-DROP-2).  A statement the compiler rejects changes nothing: its loop names the "
        "error (PIN-UNPIN-1); uses of a moved-from binding (E0382, PIN-MOVE-1) are left out.  Only an unsafe move out through get_unchecked_mut reaches the "
        "MOVED-while-pinned state, the broken contract a checker must report (PIN-UNSAFE-1).",
        "!Unpin",
        ("move", "box_pin", "pin_slot", "pin_new", "get_mut", "set", "replace", "unsafe_move", "drop_value", "drop_pin", "forget_pin"),
    ),
    _pin_view(
        "unpin",
        "The typestate of one Unpin value",
        "The same statements for a value of an Unpin type: pinning has no effect (PIN-UNPIN-2).  Pin::new pins "
        "it in place by borrowing it, get_mut and mem::replace move through the pin, Pin::into_inner gives the "
        "box back, and the value may move again.  Uses of a moved-from binding (E0382) are left out.",
        "Unpin",
        ("move", "box_pin", "pin_new", "get_mut", "into_inner", "replace", "drop_value", "drop_pin"),
    ),
)

VIEWS = PIN
