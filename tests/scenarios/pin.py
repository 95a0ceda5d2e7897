"""Hand-written pin scenarios: each demonstrates one rule of the pin spec.

A step is (action, args, expected observation).  Observations are the
machine's ``(errors, result, drops)`` in the spec's vocabulary (rustc's
error codes; a target that cannot tell codes apart compares them through
its own ``project``), written with `o(...)` below.  The spec allows exactly
the expected observation at every step (the model test checks that), so a
scenario is also a fixed trace to replay against any target that has what
it ``needs``: rustc, and the fiber-based ``impl`` target for the scenarios
that need neither "rust" nor "unpin".
"""

from __future__ import annotations

from dataclasses import dataclass

from asyncspec.spec.pin.machine import FREE, IN_PLACE, MOVED, PINNED, UNPIN

N, U = PINNED, UNPIN  # create(kind=...): a !Unpin value, an Unpin one


def o(errors=(), result=None, drops=()):
    return (tuple(sorted(errors)), result, tuple(sorted(drops)))


OK = o()


def step(action, expect=OK, **args):
    return (action, args, expect)


@dataclass(frozen=True)
class Scenario:
    name: str
    rule: str  # the rule it demonstrates (a step of it exercises that rule)
    needs: frozenset[str]
    steps: tuple

    def actions(self):
        return [(a, args) for a, args, _ in self.steps]

    def expected(self):
        return [e for _, _, e in self.steps]


def scenario(name, rule, needs, *steps):
    return Scenario(name, rule, frozenset(needs.split()), tuple(steps))


def create(v, kind=N):
    return step("create", v=v, kind=kind)


SCENARIOS = [
    scenario(
        "unpin_only_operations_do_not_compile_for_a_pinned_type",
        "PIN-UNPIN-1",
        "rust",
        create(0),
        step("pin_new", o(["E0277"]), v=0),  # Pin::new needs T: Unpin
        step("box_pin", v=0),
        step("get_mut", o(["E0277"]), v=0),
        step("into_inner", o(["E0277"]), v=0),
        step("replace", o(["E0596"]), v=0),  # &mut *pin: no DerefMut
        step("poll", o(result=(True, True)), v=0),  # nothing moved it
        step("end", o(drops=[(0, IN_PLACE)])),
    ),
    scenario(
        "an_unpin_value_moves_in_and_out_of_its_pin",
        "PIN-UNPIN-2",
        "rust unpin",
        create(0, U),
        step("box_pin", v=0),
        step("get_mut", v=0),
        step("replace", o(drops=[(0, FREE)]), v=0),  # the old value moves out and is dropped
        step("poll", o(result=(None, True)), v=0),  # never "pinned": stable is None
        step("into_inner", v=0),  # the box gives it back
        step("move", v=0),
        step("check", o(result=(None, True)), v=0),
        create(1, U),
        step("pin_new", v=1),  # pinned in place, by borrowing
        step("poll", o(result=(None, True)), v=1),
        step("drop_pin", v=1),
        step("drop_value", o(drops=[(1, FREE)]), v=1),
        step("end", o(drops=[(0, FREE)])),
    ),
    scenario(
        "a_moved_from_binding_cannot_be_used",
        "PIN-MOVE-1",
        "",
        create(0),
        step("move", v=0),
        step("check", o(result=(None, True)), v=0),  # not pinned: no address to keep
        step("drop_value", o(drops=[(0, FREE)]), v=0),
        step("check", o(["E0382"]), v=0),
        step("drop_value", o(["E0382"]), v=0),  # dropped once only
        step("end"),
    ),
    scenario(
        "a_value_lent_to_pin_new_is_neither_read_nor_moved",
        "PIN-MOVE-1",
        "rust unpin",
        create(0, U),
        step("pin_new", v=0),
        step("check", o(["E0502"]), v=0),
        step("move", o(["E0505"]), v=0),
        step("drop_value", o(["E0505"]), v=0),
        step("poll", o(result=(None, True)), v=0),
        step("drop_pin", v=0),  # the borrow ends
        step("check", o(result=(None, True)), v=0),
        step("end", o(drops=[(0, FREE)])),
    ),
    scenario(
        "pinning_moves_the_value_into_the_pin",
        "PIN-MOVE-2",
        "",
        create(0),
        step("box_pin", v=0),
        step("check", o(["E0382"]), v=0),
        step("move", o(["E0382"]), v=0),
        step("drop_value", o(["E0382"]), v=0),
        step("poll", o(result=(True, True)), v=0),
        step("end", o(drops=[(0, IN_PLACE)])),
    ),
    scenario(
        "a_pin_to_a_slot_is_not_turned_back_into_a_value",
        "PIN-MOVE-2",
        "rust unpin",
        create(0, U),
        step("pin_slot", v=0),
        step("into_inner", o(["E0507"]), v=0),  # a Pin<&mut U> gives back a &mut U
        step("drop_pin", v=0),
        step("into_inner", o(["E0382", "E0507"]), v=0),
        step("end", o(drops=[(0, FREE)])),
    ),
    scenario(
        "a_pinned_value_stays_at_its_address",
        "PIN-ADDR-1",
        "",
        create(0),
        step("box_pin", v=0),
        step("poll", o(result=(True, True)), v=0),
        create(1),
        step("box_pin", v=1),
        step("poll", o(result=(True, True)), v=1),
        step("poll", o(result=(True, True)), v=0),
        step("end", o(drops=[(0, IN_PLACE), (1, IN_PLACE)])),
    ),
    scenario(
        "a_self_reference_set_up_in_a_pin_stays_valid",
        "PIN-SELF-1",
        "",
        create(0),
        step("check", o(result=(None, True)), v=0),  # no self-reference yet
        step("box_pin", v=0),
        step("poll", o(result=(True, True)), v=0),
        step("poll", o(result=(True, True)), v=0),
        step("end", o(drops=[(0, IN_PLACE)])),
    ),
    scenario(
        "moving_an_unpinned_value_out_of_its_box_leaves_its_self_reference_dangling",
        "PIN-SELF-1",
        "rust unpin",
        create(0, U),
        step("box_pin", v=0),
        step("poll", o(result=(None, True)), v=0),
        step("into_inner", v=0),
        step("check", o(result=(None, False)), v=0),
        step("drop_value", o(drops=[(0, FREE)]), v=0),
    ),
    scenario(
        "a_pinned_value_is_dropped_in_place",
        "PIN-DROP-1",
        "",
        create(0),
        step("box_pin", v=0),
        step("drop_pin", o(drops=[(0, IN_PLACE)]), v=0),
        create(1),
        step("box_pin", v=1),
        step("end", o(drops=[(1, IN_PLACE)])),
    ),
    scenario(
        "pin_set_drops_the_old_value_in_place",
        "PIN-DROP-2",
        "rust",
        create(0),
        step("box_pin", v=0),
        step("set", o(drops=[(0, IN_PLACE)]), v=0),
        step("poll", o(result=(True, True)), v=0),  # the new value, at the same address
        create(1),
        step("pin_slot", v=1),
        step("set", o(drops=[(1, IN_PLACE)]), v=1),
        step("end", o(drops=[(0, IN_PLACE), (1, IN_PLACE)])),
    ),
    scenario(
        "forgetting_a_pin_macro_pin_does_not_leak_its_value",
        "PIN-DROP-3",
        "rust",
        create(0),
        step("pin_slot", v=0),
        step("forget_pin", v=0),
        step("poll", o(["E0382"]), v=0),
        create(1),
        step("box_pin", v=1),
        step("forget_pin", v=1),  # a forgotten box leaks its value: never dropped
        step("end", o(drops=[(0, IN_PLACE)])),
    ),
    scenario(
        "every_value_is_dropped_once_unless_forgotten",
        "PIN-DROP-4",
        "",
        create(0),
        step("forget_value", v=0),
        create(1),
        step("drop_value", o(drops=[(1, FREE)]), v=1),
        step("drop_value", o(["E0382"]), v=1),
        step("forget_value", o(["E0382"]), v=1),
        step("end"),  # nothing is left to drop
        create(0),  # a new scope: fresh bindings
        step("end", o(drops=[(0, FREE)])),
    ),
    scenario(
        "a_structural_projection_stays_at_its_pinned_offset",
        "PIN-PROJ-1",
        "rust",
        create(0),
        step("box_pin", v=0),
        step("project", o(result=True), v=0, field="pinned"),
        step("project", v=0, field="plain"),  # a plain &mut: moving out of it moves nothing else
        step("poll", o(result=(True, True)), v=0),
        step("project", o(result=True), v=0, field="pinned"),
        step("end", o(drops=[(0, IN_PLACE)])),
    ),
    scenario(
        "an_unchecked_move_out_of_a_pin_is_seen",
        "PIN-UNSAFE-1",
        "",
        create(0),
        step("box_pin", v=0),
        step("poll", o(result=(True, True)), v=0),
        step("unsafe_move", v=0),
        step("check", o(result=(False, False)), v=0),  # away from its pinned address, self-reference dangling
        step("drop_value", o(drops=[(0, MOVED)]), v=0),
    ),
]

RULES_COVERED = sorted({s.rule for s in SCENARIOS})
