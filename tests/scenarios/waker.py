"""Hand-written waker scenarios: each demonstrates one or more rules.

A step is (action, args, expected observation, exact): exact when the spec
allows nothing else there.  Observations are the machine's 5-tuple
(calls, result, refs, freed, queue), written with `o(...)` below.  The same
scenario runs against the model and against the targets that have what it
``needs``.
"""

from __future__ import annotations

from dataclasses import dataclass

F = (False, False)


def o(calls=(), result=None, refs=(0, 0), freed=F, queue=()):
    return (tuple(calls), result, tuple(refs), tuple(freed), tuple(queue))


def step(action, expect, exact=True, **args):
    return (action, args, expect, exact)


@dataclass(frozen=True)
class Scenario:
    name: str
    rules: tuple[str, ...]
    needs: frozenset[str]
    steps: tuple


def scenario(name, rules, needs, *steps):
    return Scenario(name, tuple(rules.split()), frozenset(needs.split()), tuple(steps))


BARE = "bare"
EXEC = "executor"
AW = "executor atomic_waker"


def bare(task=0, refs=(0, 0)):
    return step("make", o(refs=refs), task=task, kind="bare")


def spawn(task=0, refs=(3, 0), queue=(0,)):
    return step("make", o(refs=refs, queue=queue), task=task, kind="spawned")


SCENARIOS = [
    # ------------------------------------------------------------- vtable
    scenario(
        "clone_then_drop_each",
        "WAK-VT-1 WAK-VT-2 WAK-VT-7",
        BARE,
        bare(),
        step("new", o(refs=(1, 0)), slot=0, task=0),
        step("clone", o([("clone", 0)], refs=(2, 0)), src=0, dst=1),
        step("clone", o([("clone", 0)], refs=(3, 0)), src=1, dst=2),
        step("drop", o([("drop", 0)], refs=(2, 0)), slot=1),
        step("drop", o([("drop", 0)], refs=(1, 0)), slot=0),
        step("drop", o([("drop", 0)], refs=(0, 0)), slot=2),
    ),
    scenario(
        "wake_consumes_without_a_drop",
        "WAK-VT-3 WAK-VT-7",
        BARE,
        bare(),
        step("new", o(refs=(1, 0)), slot=0, task=0),
        step("clone", o([("clone", 0)], refs=(2, 0)), src=0, dst=1),
        step("wake", o([("wake", 0)], refs=(1, 0)), slot=1),
        step("wake", o([("wake", 0)], refs=(0, 0)), slot=0),
    ),
    scenario(
        "wake_by_ref_keeps_the_instance",
        "WAK-VT-4",
        BARE,
        bare(),
        step("new", o(refs=(1, 0)), slot=0, task=0),
        step("wake_by_ref", o([("wake_by_ref", 0)], refs=(1, 0)), slot=0),
        step("wake_by_ref", o([("wake_by_ref", 0)], refs=(1, 0)), slot=0),
        step("drop", o([("drop", 0)]), slot=0),
    ),
    scenario(
        "will_wake_true_only_for_the_same_task",
        "WAK-VT-5",
        BARE,
        bare(0),
        bare(1),
        step("new", o(refs=(1, 0)), slot=0, task=0),
        step("new", o(refs=(1, 1)), slot=1, task=1),
        step("clone", o([("clone", 0)], refs=(2, 1)), src=0, dst=2),
        # Same task: true (std compares data and vtable); false would be allowed.
        step("will_wake", o(result=True, refs=(2, 1)), exact=False, a=0, b=2),
        step("will_wake", o(result=False, refs=(2, 1)), a=0, b=1),
        step("will_wake", o(result=False, refs=(2, 1)), a=1, b=2),
    ),
    scenario(
        "clone_from_clones_only_another_task",
        "WAK-VT-6",
        BARE,
        bare(0),
        bare(1),
        step("new", o(refs=(1, 0)), slot=0, task=0),
        step("new", o(refs=(1, 1)), slot=1, task=1),
        # Two tasks: clone the source, then drop the replaced instance.
        step("clone_from", o([("clone", 1), ("drop", 0)], refs=(0, 2)), dst=0, src=1),
        # Now the same task: will_wake is true, no call (a clone + drop would be allowed).
        step("clone_from", o(refs=(0, 2)), exact=False, dst=0, src=1),
    ),
    scenario(
        "forget_leaks_without_a_call",
        "WAK-VT-7",
        BARE,
        bare(),
        step("new", o(refs=(1, 0)), slot=0, task=0),
        step("clone", o([("clone", 0)], refs=(2, 0)), src=0, dst=1),
        step("forget", o(refs=(2, 0)), slot=0),
        step("drop", o([("drop", 0)], refs=(1, 0)), slot=1),
    ),
    scenario(
        "noop_and_context_make_no_call",
        "WAK-VT-8",
        "bare noop context",
        bare(),
        step("noop", o(), slot=0),
        step("clone", o(), src=0, dst=1),
        step("wake_by_ref", o(), slot=1),
        step("wake", o(), slot=1),
        step("new", o(refs=(1, 0)), slot=2, task=0),
        step("will_wake", o(result=False, refs=(1, 0)), a=0, b=2),
        step("context", o(result=True, refs=(1, 0)), exact=False, slot=2),
        step("drop", o(refs=(1, 0)), slot=0),
    ),
    # ------------------------------------------------------------- tasks
    scenario(
        "spawn_queues_and_a_poll_runs_it",
        "WAK-TASK-1 WAK-TASK-6",
        EXEC,
        spawn(),
        step("poll", o(result=0, refs=(2, 0)), result="pending", during="none"),
    ),
    scenario(
        "wakes_of_an_idle_task_coalesce",
        "WAK-TASK-2 WAK-TASK-6",
        EXEC,
        spawn(),
        step("poll", o(result=0, refs=(2, 0)), result="pending", during="none"),
        step("new", o(refs=(3, 0)), slot=0, task=0),
        step("wake_by_ref", o([("wake_by_ref", 0)], refs=(4, 0), queue=(0,)), slot=0),
        step("wake_by_ref", o([("wake_by_ref", 0)], refs=(4, 0), queue=(0,)), slot=0),
        step("clone", o([("clone", 0)], refs=(5, 0), queue=(0,)), src=0, dst=1),
        step("wake", o([("wake", 0)], refs=(4, 0), queue=(0,)), slot=1),
        step("poll", o(result=0, refs=(3, 0)), result="pending", during="none"),
    ),
    scenario(
        "a_wake_while_running_is_one_more_poll",
        "WAK-TASK-3",
        EXEC,
        spawn(),
        step("new", o(refs=(4, 0), queue=(0,)), slot=0, task=0),
        step("poll", o([("wake_by_ref", 0)], 0, refs=(4, 0), queue=(0,)), result="pending", during="wake_by_ref:0"),
        step("poll", o(result=0, refs=(3, 0)), result="pending", during="none"),
        # By value: the instance ends, the task is polled once more.
        step("wake_by_ref", o([("wake_by_ref", 0)], refs=(4, 0), queue=(0,)), slot=0),
        step("poll", o([("wake", 0)], 0, refs=(3, 0), queue=(0,)), result="pending", during="wake:0"),
        step("poll", o(result=0, refs=(2, 0)), result="pending", during="none"),
    ),
    scenario(
        "a_wake_after_completion_schedules_nothing",
        "WAK-TASK-4 WAK-TASK-6",
        EXEC,
        spawn(),
        step("new", o(refs=(4, 0), queue=(0,)), slot=0, task=0),
        step("clone", o([("clone", 0)], refs=(5, 0), queue=(0,)), src=0, dst=1),
        # It wakes itself and completes in the same poll: not queued again.
        step("poll", o([("wake_by_ref", 0)], 0, refs=(3, 0)), result="ready", during="wake_by_ref:0"),
        step("wake_by_ref", o([("wake_by_ref", 0)], refs=(3, 0)), slot=1),
        step("wake", o([("wake", 0)], refs=(2, 0)), slot=1),
        step("drop", o([("drop", 0)], refs=(1, 0)), slot=0),
        step("drop_join", o(refs=(0, 0), freed=(True, False)), task=0),
    ),
    scenario(
        "the_run_queue_is_fifo",
        "WAK-TASK-5",
        EXEC,
        spawn(0),
        spawn(1, refs=(3, 3), queue=(0, 1)),
        step("new", o(refs=(3, 4), queue=(0, 1)), slot=0, task=1),
        step("poll", o(result=0, refs=(2, 4), queue=(1,)), result="pending", during="none"),
        step("new", o(refs=(3, 4), queue=(1,)), slot=1, task=0),
        step("wake_by_ref", o([("wake_by_ref", 0)], refs=(4, 4), queue=(1, 0)), slot=1),
        step("poll", o(result=1, refs=(4, 3), queue=(0,)), result="pending", during="none"),
        step("poll", o([("wake_by_ref", 1)], 0, refs=(3, 4), queue=(1,)), result="pending", during="wake_by_ref:0"),
    ),
    scenario(
        "memory_is_released_at_the_last_reference",
        "WAK-TASK-6",
        EXEC,
        spawn(),
        step("new", o(refs=(4, 0), queue=(0,)), slot=0, task=0),
        step("drop_join", o(refs=(3, 0), queue=(0,)), task=0),
        step("poll", o(result=0, refs=(1, 0)), result="ready", during="none"),
        step("drop", o([("drop", 0)], refs=(0, 0), freed=(True, False)), slot=0),
    ),
    scenario(
        "dropping_the_join_handle_detaches",
        "WAK-TASK-7",
        EXEC,
        spawn(),
        step("drop_join", o(refs=(2, 0), queue=(0,)), task=0),
        step("poll", o(result=0, refs=(1, 0)), result="pending", during="none"),
        step("new", o(refs=(2, 0)), slot=0, task=0),
        step("wake", o([("wake", 0)], refs=(2, 0), queue=(0,)), slot=0),
        step("poll", o(result=0, refs=(0, 0), freed=(True, False)), result="ready", during="none"),
    ),
    # ------------------------------------------------------- AtomicWaker
    scenario(
        "register_then_take_and_wake",
        "WAK-AW-1 WAK-AW-2 WAK-AW-4",
        AW,
        spawn(),
        step("poll", o(result=0, refs=(2, 0)), result="pending", during="none"),
        step("new", o(refs=(3, 0)), slot=0, task=0),
        step("aw_register", o(result="WAITING", refs=(3, 0)), slot=0),
        step("aw_store", o([("clone", 0)], refs=(4, 0))),
        step("aw_unlock", o(result="REGISTERING", refs=(4, 0))),
        step("aw_check", o(result=False, refs=(4, 0))),
        step("aw_set", o(refs=(4, 0))),
        step("aw_take", o(result="WAITING", refs=(4, 0))),
        step("aw_take_end", o(result=0, refs=(4, 0))),
        step("aw_wake", o([("wake", 0)], refs=(4, 0), queue=(0,))),
        step("aw_round", o(refs=(4, 0), queue=(0,))),
        # A second register of the same task: will_wake, so nothing to clone or drop
        # (nothing is stored after the take; the clone is made again).
        step("aw_register", o(result="WAITING", refs=(4, 0), queue=(0,)), slot=0),
        step("aw_store", o([("clone", 0)], refs=(5, 0), queue=(0,))),
        step("aw_unlock", o(result="REGISTERING", refs=(5, 0), queue=(0,))),
    ),
    scenario(
        "a_take_during_register_is_woken_by_the_register",
        "WAK-AW-2 WAK-AW-4",
        AW,
        spawn(),
        step("poll", o(result=0, refs=(2, 0)), result="pending", during="none"),
        step("new", o(refs=(3, 0)), slot=0, task=0),
        step("aw_register", o(result="WAITING", refs=(3, 0)), slot=0),
        step("aw_set", o(refs=(3, 0))),
        step("aw_take", o(result="REGISTERING", refs=(3, 0))),
        step("aw_store", o([("clone", 0)], refs=(4, 0))),
        step("aw_unlock", o([("wake", 0)], "REGISTERING|WAKING", refs=(4, 0), queue=(0,))),
        step("aw_check", o(result=True, refs=(4, 0), queue=(0,))),
        step("aw_round", o(refs=(4, 0), queue=(0,))),
    ),
    scenario(
        "a_register_during_a_wake_wakes_by_ref",
        "WAK-AW-3 WAK-AW-4",
        AW,
        spawn(),
        step("poll", o(result=0, refs=(2, 0)), result="pending", during="none"),
        step("new", o(refs=(3, 0)), slot=0, task=0),
        step("aw_set", o(refs=(3, 0))),
        step("aw_take", o(result="WAITING", refs=(3, 0))),
        step("aw_register", o([("wake_by_ref", 0)], "WAKING", refs=(4, 0), queue=(0,)), slot=0),
        step("aw_take_end", o(result=-1, refs=(4, 0), queue=(0,))),
        step("aw_check", o(result=True, refs=(4, 0), queue=(0,))),
        step("aw_wake", o(refs=(4, 0), queue=(0,))),
        step("aw_round", o(refs=(4, 0), queue=(0,))),
    ),
    scenario(
        "a_new_waker_replaces_the_stored_one",
        "WAK-AW-1",
        AW,
        spawn(0),
        spawn(1, refs=(3, 3), queue=(0, 1)),
        step("new", o(refs=(4, 3), queue=(0, 1)), slot=0, task=0),
        step("new", o(refs=(4, 4), queue=(0, 1)), slot=1, task=1),
        # A round with no producer: the waker stays stored.
        step("aw_register", o(result="WAITING", refs=(4, 4), queue=(0, 1)), slot=0),
        step("aw_store", o([("clone", 0)], refs=(5, 4), queue=(0, 1))),
        step("aw_unlock", o(result="REGISTERING", refs=(5, 4), queue=(0, 1))),
        step("aw_check", o(result=False, refs=(5, 4), queue=(0, 1))),
        step("aw_round", o(refs=(5, 4), queue=(0, 1))),
        # The same task again: will_wake, so the stored one is kept (a clone + drop is allowed).
        step("aw_register", o(result="WAITING", refs=(5, 4), queue=(0, 1)), slot=0),
        step("aw_store", o(refs=(5, 4), queue=(0, 1)), exact=False),
        step("aw_unlock", o(result="REGISTERING", refs=(5, 4), queue=(0, 1))),
        step("aw_check", o(result=False, refs=(5, 4), queue=(0, 1))),
        step("aw_round", o(refs=(5, 4), queue=(0, 1))),
        # Another task: clone the new waker, drop the replaced one.
        step("aw_register", o(result="WAITING", refs=(5, 4), queue=(0, 1)), slot=1),
        step("aw_store", o([("clone", 1), ("drop", 0)], refs=(4, 5), queue=(0, 1))),
        step("aw_unlock", o(result="REGISTERING", refs=(4, 5), queue=(0, 1))),
    ),
]
