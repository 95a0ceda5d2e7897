"""The pin rules: Rust's pinning contract, as typestate.

A value is *owned* (in a binding, free to move), *pinned* (behind a
``Pin<Box<T>>``, a ``pin!`` slot or a ``Pin<&mut T>``), *moved-from*,
*dropped* or *leaked*.  Pinning matters only for ``!Unpin`` types: for
them no safe operation moves a pinned value, a self-reference set up once
it is pinned stays valid, and its memory is not reused before its drop
runs in place (the drop guarantee).  For ``Unpin`` types a pin is a plain
pointer: the value may be moved out again.

Each step predicts two things: whether the statement compiles (and, when
it does not, rustc's error codes), and what a checker sees at run time
(where a value is dropped, whether a pinned value is still at its pinned
address, whether its self-reference still points into itself).  The
unsafe escape hatch (``get_unchecked_mut`` followed by a move) is in the
spec too: the spec predicts the damage it does, so a checker that reports
it is right and one that hides it is wrong.

Sources: the ``std::pin`` module documentation (Rust 1.95: "Pinning",
"Address-sensitive values", "The drop guarantee", "Projections and
Structural Pinning"), the ``Pin`` and ``Unpin`` API docs, the rustc error
index, and Ralf Jung's typestate reading of pinning ("A Formal Look at
Pinning", 2018: a pinned location is a typestate of its own, beside owned
and shared).
"""

from ..core import rule

AREA = "pin"
RUST = "rust"
ALL = (RUST,)

STD_PIN = "std::pin module docs (Rust 1.95)"
JUNG = "R. Jung, 'A formal look at pinning' (2018): the pinned typestate of a location"
ERRIDX = "rustc error index"


def _r(id, statement, *, source, profiles=ALL, **kw):
    return rule(id, statement, source=source, profiles=profiles, area=AREA, **kw)


UNPIN_ONLY = _r(
    "PIN-UNPIN-1",
    """Pin::new, Pin::get_mut and Pin::into_inner exist only for a pointee
    that is Unpin, and so does a mutable dereference of a pin (&mut *pin,
    used by mem::swap and mem::replace): for a !Unpin type they do not
    compile (E0277 for the trait bound, E0596 for the missing DerefMut).""",
    source=f"{STD_PIN}: Pin::new, Pin::get_mut, Pin::into_inner ('T: Unpin'), impl DerefMut for Pin<Ptr> where Ptr::Target: Unpin; {ERRIDX}: E0277, E0596",
    features=("rust",),
)
UNPIN_FREE = _r(
    "PIN-UNPIN-2",
    """For an Unpin type pinning has no effect: Pin::new pins a value in
    place by borrowing it, get_mut and mem::replace through the pin move
    its contents, into_inner gives the box back, and the value may be
    moved again afterwards.""",
    source=f"{STD_PIN}: 'Unpin' section ('Pin<Ptr> ... has no effect for T: Unpin'); std::marker::Unpin",
    features=("unpin",),
)
MOVED_FROM = _r(
    "PIN-MOVE-1",
    """A binding whose value was moved (into a pin, a drop, a forget or
    another binding) cannot be used again (E0382); a value lent to a
    Pin<&mut T> cannot be moved (E0505) or read (E0502) while that pin is
    alive.""",
    source=f"The Rust Reference: 'Moved and copied types', borrow rules; {ERRIDX}: E0382, E0505, E0502",
)
PIN_CONSUMES = _r(
    "PIN-MOVE-2",
    """Pinning by value moves the value into its pinned place: after
    Box::pin(x) or pin!(x) the binding x is moved-from, so no safe code can
    reach the value except through the pin.  A Pin<&mut T> made by pin! or
    Pin::new cannot be turned back into an owned value (E0507).""",
    source=f"{STD_PIN}: Box::pin, macro pin! ('the value is moved into the pin'); Pin::into_inner; {ERRIDX}: E0507",
)
ADDRESS = _r(
    "PIN-ADDR-1",
    """From the moment a !Unpin value is pinned until its drop runs, its
    address does not change: no safe operation moves it, and every access
    through its pin finds it where it was pinned.""",
    source=f"{STD_PIN}: 'Pinning' ('the pointee ... will not be moved ... until it is dropped'); {JUNG}",
)
SELF_REF = _r(
    "PIN-SELF-1",
    """A self-reference set up once a value is pinned (a future's borrow of
    its own field, a fiber's saved stack pointer into its own stack)
    stays valid while the value is pinned; moving an unpinned value with a
    self-reference leaves it dangling.""",
    source=f"{STD_PIN}: 'Address-sensitive values' and the self-referential struct example",
)
DROP_GUARANTEE = _r(
    "PIN-DROP-1",
    """The drop guarantee: the memory of a pinned !Unpin value is not
    invalidated or reused before its drop runs; it is dropped in place, at
    its pinned address (or leaked and never dropped, its memory never
    reused).""",
    source=f"{STD_PIN}: 'Drop guarantee' ('its memory will not get invalidated or repurposed ... until when drop is called')",
)
SET_DROPS = _r(
    "PIN-DROP-2",
    """Pin::set drops the old value in place before the new value takes its
    pinned place; the new value is pinned at the same address.""",
    source=f"{STD_PIN}: Pin::set ('the old value is dropped in place'); 'Drop guarantee'",
    features=("rust",),
)
PIN_MACRO_SCOPE = _r(
    "PIN-DROP-3",
    """Dropping or forgetting the Pin<&mut T> that pin! returns does not end
    the value: it stays pinned in its slot and is dropped at the end of the
    enclosing scope, so mem::forget cannot break the drop guarantee;
    forgetting a Pin<Box<T>> leaks the value, which is never dropped.""",
    source=f"{STD_PIN}: macro pin! ('the value ... is dropped at the end of the enclosing block'); 'Drop guarantee' (leaking is fine); std::mem::forget",
    features=("rust",),
)
DROP_ONCE = _r(
    "PIN-DROP-4",
    """Every value is dropped exactly once, at an explicit drop, when
    Pin::set or mem::replace takes its place, or at the end of its scope,
    unless it is forgotten or leaked; never twice, and a forgotten value is
    never dropped.""",
    source="The Rust Reference: 'Destructors'; std::mem::forget",
)
PROJECTION = _r(
    "PIN-PROJ-1",
    """Structural pinning: projecting a pinned struct to a structurally
    pinned field gives a Pin<&mut Field> at a fixed address (the struct's
    pinned address plus the field's offset); projecting to a non-structural
    field gives a plain &mut Field, which may be moved out of without
    moving the struct.""",
    source=f"{STD_PIN}: 'Projections and Structural Pinning' (the four requirements: Unpin only if all structural fields are, no moving destructor, the drop guarantee, no moving out of fields)",
    features=("rust",),
)
UNCHECKED_MOVE = _r(
    "PIN-UNSAFE-1",
    """Moving a pinned !Unpin value out through get_unchecked_mut breaks the
    pinning contract (the caller's unsafe promise is false): its
    self-references dangle and it is dropped away from its pinned address.
    A checker must report exactly that, and a runtime must refuse the same
    relocation when asked by safe code.""",
    source=f"{STD_PIN}: Pin::get_unchecked_mut ('Safety: ... must never move the data out of the mutable reference'); {JUNG}",
)
