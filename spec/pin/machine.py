"""The pin machine: two values, their bindings, their pins, one scope.

State
-----
``World`` holds V values, each with

    kind     NOVAL (not created), UNPIN (an Unpin type) or PINNED (a !Unpin
             type: it holds a PhantomPinned)
    x        the binding ``x{v}`` that owns the value: NONE (never declared),
             LIVE (holds it) or MOVED (moved-from)
    p        the binding ``p{v}`` holding its pin: NONE, BOX (Pin<Box<T>>),
             SLOT (Pin<&mut T> from pin!), REF (Pin<&mut T> from Pin::new,
             borrowing x), or MOVED (consumed)
    boxed    the binding ``p{v}`` holds, or held until it was consumed, a
             Pin<Box<T>> (what into_inner of a consumed pin still checks)
    loc      where the value is: in x, in the box, in pin!'s slot, dropped,
             or leaked
    pinned   (!Unpin only) its address has been recorded as pinned
    moved    (!Unpin only) it was moved after being pinned: the violation
    selfref  NONE (no self-reference), SET (points into itself) or DANGLING

The statements run in one scope (a block); ``end`` closes it and opens
the next.  Every value placed in a pinned place has
its self-reference set up at once (as a future does on its first poll).

Actions
-------
Each action is one Rust statement over ``x{v}``/``p{v}``:

    create(v, kind)   let mut x0 = N::new(0);
    move(v)           let mut x0 = x0;
    box_pin(v)        let mut p0 = Box::pin(x0);            (then set up the self-reference)
    pin_slot(v)       let mut p0 = pin!(x0);                (then set up the self-reference)
    pin_new(v)        let mut p0 = Pin::new(&mut x0);       (then set up the self-reference)
    get_mut(v)        p0.as_mut().get_mut().touch();
    into_inner(v)     let mut x0 = *Pin::into_inner(p0);
    poll(v)           p0.as_mut().poll()                    (observes, through the pin)
    check(v)          x0.check()                            (observes, through the binding)
    set(v)            p0.set(N::new(0));                    (then set up the self-reference)
    replace(v)        let _ = mem::replace(&mut *p0, N::new(0));
    unsafe_move(v)    let mut x0 = unsafe { ptr::read(p0.as_mut().get_unchecked_mut()) }; mem::forget(p0);
    drop_value(v)     drop(x0);          forget_value(v)  mem::forget(x0);
    drop_pin(v)       drop(p0);          forget_pin(v)    mem::forget(p0);
    project(v, field) p0.as_mut().inner().check() | mem::replace(p0.as_mut().data(), 7)
    end()             } {   the scope ends, dropping every value still owned or
                      pinned, and a new scope begins with fresh bindings

A pin stays alive until it is consumed (dropped, forgotten, turned back
into a box) or the scope ends: a translation keeps every live pin in use
until then, so what compiles depends only on the steps so far.

Observations
------------
Every step observes ``(errors, result, drops)``: the compiler's error codes
for the statement (empty: it compiled; a rejected statement changes
nothing), the step's own result (poll/check: ``(stable, selfref_ok)`` with
``stable`` None for a value that is not pinned; project: ``stable``), and
the drops that ran, each ``(v, how)`` with ``how`` "free" (not pinned),
"in-place" (at its pinned address) or "moved" (away from it).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..core import Action, Invariant, Machine, Outcome, Param, Profile
from ..logic import all_, any_, ite, not_
from . import rules as R

V = 2
NOVAL, UNPIN, PINNED = range(3)
KIND_NAMES = ("none", "Unpin", "!Unpin")
X_NONE, X_LIVE, X_MOVED = range(3)
P_NONE, P_BOX, P_SLOT, P_REF, P_MOVED = range(5)
P_NAMES = ("-", "Pin<Box>", "pin!", "Pin::new", "moved")
L_NONE, L_X, L_BOX, L_SLOT, L_DROPPED, L_LEAKED = range(6)
L_NAMES = ("-", "in x", "in its box", "in pin!'s slot", "dropped", "leaked")
SR_NONE, SR_SET, SR_DANGLING = range(3)
SR_NAMES = ("-", "self-ref ok", "self-ref DANGLING")

FREE, IN_PLACE, MOVED = "free", "in-place", "moved"
OK = ()


@dataclass(frozen=True)
class Val:
    kind: int = NOVAL
    x: int = X_NONE
    p: int = P_NONE
    boxed: bool = False
    loc: int = L_NONE
    pinned: bool = False
    moved: bool = False
    selfref: int = SR_NONE


@dataclass(frozen=True)
class World:
    vals: tuple[Val, ...]

    def put(self, v: int, val: Val) -> "World":
        return replace(self, vals=self.vals[:v] + (val,) + self.vals[v + 1 :])


def how_dropped(val: Val) -> str:
    """What a checker sees when the value is dropped where it is now."""
    if val.kind != PINNED or not val.pinned:
        return FREE
    return MOVED if val.moved else IN_PLACE


def stable(val: Val):
    """Is a pinned value where it was pinned (None: not pinned)."""
    if val.kind != PINNED or not val.pinned:
        return None
    return not val.moved


def looked_at(val: Val):
    return (stable(val), val.selfref != SR_DANGLING)


def obs(errors=OK, result=None, drops=()):
    return (tuple(sorted(errors)), result, tuple(sorted(drops)))


def rejected(w: World, errors, rules):
    return [Outcome(obs(errors), w, tuple(rules))]


P_V = Param("v", tuple(range(V)))
P_KIND = Param("kind", (PINNED, UNPIN))
P_FIELD = Param("field", ("pinned", "plain"))


def _live_pin(val: Val) -> bool:
    return val.p in (P_BOX, P_SLOT, P_REF)


def _pinned_at(val: Val, loc: int, p: int) -> Val:
    """The value moved into a pinned place, its self-reference set up there."""
    return replace(
        val, x=X_MOVED if p != P_REF else val.x, p=p, boxed=p == P_BOX, loc=loc, pinned=val.kind == PINNED, moved=False, selfref=SR_SET
    )


def _x_errors(val: Val, using_shared: bool = False):
    """Errors of a statement that uses the binding x (moving it, or reading it)."""
    if val.x == X_MOVED:
        # Moved into a pin: only the pin reaches it now (PIN-MOVE-2).
        into_pin = val.p in (P_BOX, P_SLOT) and val.loc in (L_BOX, L_SLOT)
        return (("E0382",), (R.PIN_CONSUMES if into_pin else R.MOVED_FROM,))
    if val.p == P_REF:
        return ((("E0502",) if using_shared else ("E0505",)), (R.MOVED_FROM,))
    return None


def _p_errors(val: Val):
    if val.p == P_MOVED:
        return (("E0382",), (R.MOVED_FROM,))
    return None


def _created(w, a, p):
    return w.vals[a["v"]].kind != NOVAL


def _has_pin(w, a, p):
    return w.vals[a["v"]].p != P_NONE


def _rust(w, a):
    return frozenset({"rust"})


def _kind_features(w, a) -> frozenset[str]:
    return frozenset({"unpin"}) if w.vals[a["v"]].kind == UNPIN else frozenset()


# --------------------------------------------------------------- creating


def create_outcomes(w, a, p):
    v = a["v"]
    return [Outcome(obs(), w.put(v, Val(kind=a["kind"], x=X_LIVE, loc=L_X)), ())]


CREATE = Action(
    "create",
    (P_V, P_KIND),
    pre=lambda w, a, p: w.vals[a["v"]].kind == NOVAL,
    outcomes=create_outcomes,
    requires=lambda w, a: frozenset({"unpin"}) if a["kind"] == UNPIN else frozenset(),
    doc="let mut x{v} = T::new(v): a value in a fresh binding.",
)


def move_outcomes(w, a, p):
    v = a["v"]
    val = w.vals[v]
    err = _x_errors(val)
    if err:
        return rejected(w, *err)
    if val.selfref == SR_SET:
        # A move between stack slots may or may not change the address.
        return [
            Outcome(obs(), w, (R.SELF_REF,)),
            Outcome(obs(), w.put(v, replace(val, selfref=SR_DANGLING)), (R.SELF_REF,)),
        ]
    return [Outcome(obs(), w.put(v, replace(val, moved=val.moved or val.pinned)), (R.MOVED_FROM,))]


MOVE = Action(
    "move",
    (P_V,),
    pre=_created,
    outcomes=move_outcomes,
    requires=_kind_features,
    doc="let mut x{v} = x{v}: move the value to another binding.",
)


def _pin_outcomes(loc: int, how: int):
    def outcomes(w, a, p):
        v = a["v"]
        val = w.vals[v]
        if how == P_REF and val.kind == PINNED:
            return rejected(w, ("E0277",), (R.UNPIN_ONLY,))
        err = _x_errors(val)
        if err:
            return rejected(w, *err)
        rules = (R.UNPIN_FREE,) if how == P_REF else (R.PIN_CONSUMES, R.ADDRESS)
        return [Outcome(obs(), w.put(v, _pinned_at(val, loc, how)), rules)]

    return outcomes


def _may_pin(w, a, p):
    val = w.vals[a["v"]]
    # A value moved out of its pin unsafely is not pinned again: that run has
    # already broken the contract, and what follows would be meaningless.
    return _created(w, a, p) and not _live_pin(val) and not val.moved


BOX_PIN = Action(
    "box_pin",
    (P_V,),
    pre=_may_pin,
    outcomes=_pin_outcomes(L_BOX, P_BOX),
    requires=_kind_features,
    doc="let mut p{v} = Box::pin(x{v}): move the value into a pinned box.",
)
PIN_SLOT = Action(
    "pin_slot",
    (P_V,),
    pre=_may_pin,
    outcomes=_pin_outcomes(L_SLOT, P_SLOT),
    requires=lambda w, a: _rust(w, a) | _kind_features(w, a),
    doc="let mut p{v} = pin!(x{v}): move the value into a pinned slot of this scope.",
)
PIN_NEW = Action(
    "pin_new",
    (P_V,),
    pre=_may_pin,
    outcomes=_pin_outcomes(L_X, P_REF),
    requires=lambda w, a: _rust(w, a) | _kind_features(w, a),
    doc="let mut p{v} = Pin::new(&mut x{v}): pin in place by borrowing (Unpin only).",
)


# ------------------------------------------------------- through the pin


def get_mut_outcomes(w, a, p):
    val = w.vals[a["v"]]
    if val.kind == PINNED:
        return rejected(w, ("E0277",), (R.UNPIN_ONLY,))
    err = _p_errors(val)
    if err:
        return rejected(w, *err)
    return [Outcome(obs(), w, (R.UNPIN_FREE,))]


GET_MUT = Action(
    "get_mut",
    (P_V,),
    pre=_has_pin,
    outcomes=get_mut_outcomes,
    requires=lambda w, a: _rust(w, a) | _kind_features(w, a),
    doc="p{v}.as_mut().get_mut(): a plain &mut T (Unpin only).",
)


def into_inner_outcomes(w, a, p):
    v = a["v"]
    val = w.vals[v]
    if val.kind == PINNED:
        return rejected(w, ("E0277",), (R.UNPIN_ONLY,))
    errors, rules = [], []
    err = _p_errors(val)
    if err:
        errors += err[0]
        rules += err[1]
    # A Pin<&mut T> gives back a &mut T, which cannot be moved out of,
    # whether or not the pin was consumed already (rustc reports both).
    if not val.boxed:
        errors.append("E0507")
        rules.append(R.PIN_CONSUMES)
    if errors:
        return rejected(w, errors, rules)
    dangling = SR_DANGLING if val.selfref == SR_SET else val.selfref  # out of the heap: a new address
    return [Outcome(obs(), w.put(v, replace(val, x=X_LIVE, p=P_MOVED, loc=L_X, selfref=dangling)), (R.UNPIN_FREE,))]


INTO_INNER = Action(
    "into_inner",
    (P_V,),
    pre=_has_pin,
    outcomes=into_inner_outcomes,
    requires=lambda w, a: _rust(w, a) | _kind_features(w, a),
    doc="let mut x{v} = *Pin::into_inner(p{v}): unpin a box (Unpin only).",
)


def poll_outcomes(w, a, p):
    val = w.vals[a["v"]]
    err = _p_errors(val)
    if err:
        return rejected(w, *err)
    return [Outcome(obs(result=looked_at(val)), w, (R.ADDRESS, R.SELF_REF))]


POLL = Action(
    "poll",
    (P_V,),
    pre=_has_pin,
    outcomes=poll_outcomes,
    requires=_kind_features,
    doc="p{v}.as_mut().poll(): use the value through its pin; observe where it is.",
    weight=2,
)


def check_outcomes(w, a, p):
    val = w.vals[a["v"]]
    err = _x_errors(val, using_shared=True)
    if err:
        return rejected(w, *err)
    rules = (R.UNCHECKED_MOVE,) if val.moved else (R.SELF_REF,)
    return [Outcome(obs(result=looked_at(val)), w, rules)]


CHECK = Action(
    "check",
    (P_V,),
    pre=_created,
    outcomes=check_outcomes,
    requires=_kind_features,
    doc="x{v}.check(): look at the value through its binding; observe where it is.",
)


def set_outcomes(w, a, p):
    v = a["v"]
    val = w.vals[v]
    err = _p_errors(val)
    if err:
        return rejected(w, *err)
    fresh = replace(val, pinned=val.kind == PINNED, moved=False, selfref=SR_SET)
    return [Outcome(obs(drops=((v, how_dropped(val)),)), w.put(v, fresh), (R.SET_DROPS, R.DROP_ONCE))]


SET = Action(
    "set",
    (P_V,),
    pre=_has_pin,
    outcomes=set_outcomes,
    requires=lambda w, a: _rust(w, a) | _kind_features(w, a),
    doc="p{v}.set(T::new(v)): replace the pinned value in place.",
)


def replace_outcomes(w, a, p):
    v = a["v"]
    val = w.vals[v]
    errors, rules = [], []
    if val.kind == PINNED:
        errors.append("E0596")
        rules.append(R.UNPIN_ONLY)
    err = _p_errors(val)
    if err:
        errors += err[0]
        rules += err[1]
    if errors:
        return rejected(w, errors, rules)
    # The old value moves out (and is dropped at the statement's end); a fresh one takes its place.
    return [Outcome(obs(drops=((v, FREE),)), w.put(v, replace(val, selfref=SR_NONE)), (R.UNPIN_FREE, R.DROP_ONCE))]


REPLACE = Action(
    "replace",
    (P_V,),
    pre=_has_pin,
    outcomes=replace_outcomes,
    requires=lambda w, a: _rust(w, a) | _kind_features(w, a),
    doc="let _ = mem::replace(&mut *p{v}, T::new(v)): move the value out through the pin (Unpin only).",
)


def unsafe_move_outcomes(w, a, p):
    v = a["v"]
    val = w.vals[v]
    err = _p_errors(val)
    if err:
        return rejected(w, *err)
    dangling = SR_DANGLING if val.selfref == SR_SET else val.selfref  # out of the heap
    out = replace(val, x=X_LIVE, p=P_MOVED, loc=L_X, moved=val.pinned, selfref=dangling)
    rules = (R.UNCHECKED_MOVE,) if val.kind == PINNED else (R.UNPIN_FREE,)
    return [Outcome(obs(), w.put(v, out), rules)]


UNSAFE_MOVE = Action(
    "unsafe_move",
    (P_V,),
    # Only out of a box: moving out of a pin!'s slot would also drop the
    # value twice (the slot still drops it), which no checker can report.
    pre=lambda w, a, p: _has_pin(w, a, p) and w.vals[a["v"]].p in (P_BOX, P_MOVED),
    outcomes=unsafe_move_outcomes,
    requires=_kind_features,
    doc="let mut x{v} = unsafe { ptr::read(p{v}.as_mut().get_unchecked_mut()) }; mem::forget(p{v}): move a pinned value out.",
)


def project_outcomes(w, a, p):
    val = w.vals[a["v"]]
    err = _p_errors(val)
    if err:
        return rejected(w, *err)
    result = stable(val) if a["field"] == "pinned" else None
    return [Outcome(obs(result=result), w, (R.PROJECTION,))]


PROJECT = Action(
    "project",
    (P_V, P_FIELD),
    pre=_has_pin,
    outcomes=project_outcomes,
    requires=lambda w, a: _rust(w, a) | _kind_features(w, a),
    doc="Project the pin to a structurally pinned field (observe its address) or to a plain one (move out of it).",
)


# ------------------------------------------------------------ ending values


def _end_value(how: str):
    def outcomes(w, a, p):
        v = a["v"]
        val = w.vals[v]
        err = _x_errors(val)
        if err:
            return rejected(w, *err)
        if how == "drop":
            rules = (R.DROP_ONCE, R.UNCHECKED_MOVE) if val.moved else (R.DROP_ONCE,)
            return [Outcome(obs(drops=((v, how_dropped(val)),)), w.put(v, replace(val, x=X_MOVED, loc=L_DROPPED)), rules)]
        return [Outcome(obs(), w.put(v, replace(val, x=X_MOVED, loc=L_LEAKED)), (R.DROP_ONCE,))]

    return outcomes


DROP_VALUE = Action(
    "drop_value",
    (P_V,),
    pre=_created,
    outcomes=_end_value("drop"),
    requires=_kind_features,
    doc="drop(x{v}).",
)
FORGET_VALUE = Action(
    "forget_value",
    (P_V,),
    pre=_created,
    outcomes=_end_value("forget"),
    requires=_kind_features,
    doc="mem::forget(x{v}).",
)


def _end_pin(how: str):
    def outcomes(w, a, p):
        v = a["v"]
        val = w.vals[v]
        err = _p_errors(val)
        if err:
            return rejected(w, *err)
        gone = replace(val, p=P_MOVED)
        if val.p == P_BOX:
            if how == "drop":
                return [
                    Outcome(
                        obs(drops=((v, how_dropped(val)),)),
                        w.put(v, replace(gone, loc=L_DROPPED)),
                        (R.DROP_GUARANTEE, R.DROP_ONCE),
                    )
                ]
            return [Outcome(obs(), w.put(v, replace(gone, loc=L_LEAKED)), (R.PIN_MACRO_SCOPE, R.DROP_ONCE))]
        if val.p == P_SLOT:
            # Only the reference goes: the value stays pinned in its slot.
            return [Outcome(obs(), w.put(v, gone), (R.PIN_MACRO_SCOPE,))]
        # Pin::new's borrow ends: the binding owns the value again.
        return [Outcome(obs(), w.put(v, gone), (R.UNPIN_FREE,))]

    return outcomes


DROP_PIN = Action(
    "drop_pin",
    (P_V,),
    pre=_has_pin,
    outcomes=_end_pin("drop"),
    requires=_kind_features,
    doc="drop(p{v}).",
)
FORGET_PIN = Action(
    "forget_pin",
    (P_V,),
    pre=_has_pin,
    outcomes=_end_pin("forget"),
    requires=_kind_features,
    doc="mem::forget(p{v}).",
)


def end_outcomes(w, a, p):
    drops, rules = [], [R.DROP_ONCE]
    for v, val in enumerate(w.vals):
        if val.loc in (L_X, L_BOX, L_SLOT):
            drops.append((v, how_dropped(val)))
            if val.pinned and not val.moved:
                rules.append(R.DROP_GUARANTEE)
            if val.loc == L_SLOT and val.p == P_MOVED:
                rules.append(R.PIN_MACRO_SCOPE)
    # A new scope begins, with fresh bindings (leaked values stay leaked: unseen).
    return [Outcome(obs(drops=drops), World(tuple(Val() for _ in w.vals)), tuple(dict.fromkeys(rules)))]


END = Action(
    "end",
    (),
    # An empty scope has nothing to end.
    pre=lambda w, a, p: any(val.kind != NOVAL for val in w.vals),
    outcomes=end_outcomes,
    doc="} { : the scope ends (every value still owned or pinned is dropped) and a new one begins.",
)


# ------------------------------------------------------------- invariants


def _inv_pinned_stays(w: World, p: Profile) -> bool:
    """No value is moved away from its pinned address by anything but an unsafe move,
    which leaves it in a binding (never behind a pin)."""
    return all(not (val.moved and val.loc in (L_BOX, L_SLOT)) for val in w.vals)


def _same(a, b):
    return ite(a, b, not_(b))


def _val_shape(val: Val):
    """One value's fields are in their domains and agree with each other."""
    live_pin = any_(val.p == P_BOX, val.p == P_SLOT, val.p == P_REF)
    fresh = all_(
        val.x == X_NONE, val.p == P_NONE, not_(val.boxed), val.loc == L_NONE,
        not_(val.pinned), not_(val.moved), val.selfref == SR_NONE,
    )  # fmt: skip
    made = all_(
        val.x != X_NONE,
        val.loc != L_NONE,
        _same(val.p == P_BOX, val.loc == L_BOX),
        _same(val.p == P_SLOT, all_(val.loc == L_SLOT, val.p != P_MOVED)),
        ite(val.loc == L_SLOT, any_(val.p == P_SLOT, val.p == P_MOVED), True),
        ite(any_(val.loc == L_DROPPED, val.loc == L_LEAKED), not_(live_pin), True),
        ite(val.p == P_REF, all_(val.loc == L_X, val.kind == UNPIN), True),
        _same(val.loc == L_X, val.x == X_LIVE),
        ite(val.kind == UNPIN, not_(any_(val.pinned, val.moved)), True),
        ite(val.moved, val.pinned, True),
        # A pinned !Unpin value is back in a binding only by an unsafe move.
        ite(all_(val.pinned, val.loc == L_X), val.moved, True),
    )
    in_domains = all_(
        0 <= val.kind, val.kind < 3, 0 <= val.x, val.x < 3, 0 <= val.p, val.p < 5,
        0 <= val.loc, val.loc < 6, 0 <= val.selfref, val.selfref < 3,
    )  # fmt: skip
    return all_(in_domains, ite(val.kind == NOVAL, fresh, made))


def _inv_shape(w: World, p: Profile) -> bool:
    return all_(*[_val_shape(val) for val in w.vals])


INVARIANTS = (
    Invariant(R.ADDRESS, _inv_pinned_stays, "A value behind a pin is at its pinned address."),
    Invariant(R.PIN_CONSUMES, _inv_shape, "Bindings, pins and places agree (a pin's value is in its place; x holds a value exactly when it is in x)."),
)


def describe(w: World) -> str:
    parts = []
    for v, val in enumerate(w.vals):
        if val.kind == NOVAL:
            continue
        text = f"v{v} {KIND_NAMES[val.kind]} {L_NAMES[val.loc]}"
        if val.p != P_NONE:
            text += f" p={P_NAMES[val.p]}"
        if val.pinned:
            text += " MOVED-WHILE-PINNED" if val.moved else " pinned"
        if val.selfref != SR_NONE:
            text += f" {SR_NAMES[val.selfref]}"
        parts.append(text)
    return "; ".join(parts) or "(nothing)"


def show(o) -> str:
    if not (isinstance(o, tuple) and len(o) == 3):
        return repr(o)
    errors, result, drops = o
    text = ("error " + ",".join(errors)) if errors else "ok"
    if result is not None:
        if isinstance(result, tuple):
            st, sr = result
            text += f" stable={'-' if st is None else st} selfref={'ok' if sr else 'DANGLING'}"
        else:
            text += f" stable={result}"
    if drops:
        text += " drops " + ", ".join(f"v{v} {how}" for v, how in drops)
    return text


PROFILES = (
    Profile(
        R.RUST,
        R.AREA,
        "Rust's pinning contract as rustc 1.95 and std enforce it (error codes are rustc's).",
        {},
    ),
)

MACHINE = Machine(
    area=R.AREA,
    init=lambda p: World(tuple(Val() for _ in range(V))),
    actions=(
        CREATE,
        MOVE,
        BOX_PIN,
        PIN_SLOT,
        PIN_NEW,
        GET_MUT,
        INTO_INNER,
        POLL,
        CHECK,
        SET,
        REPLACE,
        UNSAFE_MOVE,
        PROJECT,
        DROP_VALUE,
        FORGET_VALUE,
        DROP_PIN,
        FORGET_PIN,
        END,
    ),
    profiles=PROFILES,
    invariants=INVARIANTS,
    default_profile=R.RUST,
    describe=describe,
    show=show,
)
