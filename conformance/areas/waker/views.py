"""The waker area's state diagrams in the generated docs: what each one
looks at (`asyncspec.conformance.docgen.diagrams` explores the machine and
draws what it finds; nothing here says which transitions exist)."""

from __future__ import annotations

from asyncspec.conformance.docgen.diagrams import Step, View, arg_grid
from asyncspec.spec.waker.machine import AW_NAMES


def _first_waker(w) -> bool:
    t = w.tasks[0]
    return t.notified and t.join and t.refs == 3


def _task_facts(w) -> tuple[str, ...]:
    t = w.tasks[0]
    if t.kind == 0:
        return ("not spawned",)
    if t.freed:
        return ("freed",)
    facts = ["complete" if t.complete else "notified (queued)" if t.notified else "idle"]
    facts.append(f"refs {t.refs}")
    held = [what for what, on in (("JoinHandle", t.join), ("a waker", w.slots[0] == 0)) if on]
    facts.append("held by " + " and ".join(held) if held else "no handle, no waker")
    return tuple(facts)


_CONSUMER = ("consumer idle", "consumer locked", "consumer stored", "consumer: check next", "consumer done")
_PRODUCER = ("producer idle", "condition set", "producer: take_end next", "producer: wake next", "producer done")


def _ready(w) -> bool:
    """Task 0 and its waker exist: the round can begin."""
    return w.tasks[0].kind != 0 and w.slots[0] == 0


def _aw_calls(obs) -> str:
    calls = obs[0]
    return " ".join(f"{name}()" for name, _task in calls)


def _aw_seen(obs) -> str:
    """What a step read: the state word it found (or the condition), and its vtable calls."""
    seen = "saw " + (str(obs[1]).lower() if isinstance(obs[1], bool) else obs[1])
    calls = _aw_calls(obs)
    return seen + (", " + calls if calls else "")


def _aw_facts(w) -> tuple[str, ...]:
    if not _ready(w):
        return ("no task",) if w.tasks[0].kind == 0 else ("task 0, no waker yet",)
    aw = w.aw
    facts = [AW_NAMES[aw.state] + (" · task 0 stored" if aw.stored == 0 else ""), _CONSUMER[aw.c_pc], _PRODUCER[aw.p_pc]]
    ends = [x for x, on in (("saw the condition", aw.saw), ("task woken", aw.woke)) if on]
    return tuple(facts + ([", ".join(ends)] if ends else []))


WAKER = (
    View(
        area="waker",
        name="task",
        title="A task's notification states",
        caption="One task spawned on the executor with one waker for it.  The executor polls the task at the head "
        "of its run queue; a spawned task is queued (WAK-TASK-1), a wake of an idle task queues it once (WAK-TASK-2), a wake while it is queued "
        "coalesces, a wake during its own poll makes the poll end in one more poll (WAK-TASK-3), a wake after it "
        "completed schedules nothing (WAK-TASK-4), and its memory is freed exactly when the last reference — "
        "JoinHandle, waker, run queue, executor — is gone (WAK-TASK-6).",
        steps=(
            Step("make", (dict(task=0, kind="spawned"),), label=lambda a: "spawn", show_obs=False),
            # One waker, made while the task waits for its first poll (another one later would only
            # repeat the picture with one more reference).
            Step("new", (dict(slot=0, task=0),), label=lambda a: "new waker", show_obs=False, when=_first_waker),
            Step("wake_by_ref", (dict(slot=0),), label=lambda a: "wake_by_ref", show_obs=False),
            Step("wake", (dict(slot=0),), label=lambda a: "wake (consumes the waker)", show_obs=False),
            Step("drop", (dict(slot=0),), label=lambda a: "drop the waker", show_obs=False),
            Step(
                "poll",
                arg_grid(result=("pending", "ready"), during=("none", "wake_by_ref:0")),
                label=lambda a: f"poll → {a['result'].capitalize()}" + (", woken during it" if a["during"] != "none" else ""),
                show_obs=False,
            ),
            Step("drop_join", (dict(task=0),), label=lambda a: "drop the JoinHandle", show_obs=False),
        ),
        project=_task_facts,
    ),
    View(
        area="waker",
        name="atomic-waker",
        title="AtomicWaker: one register against one wake",
        caption="futures' AtomicWaker, its register and take split into their atomic steps.  The consumer "
        "(aw_register, aw_store, aw_unlock, aw_check) registers task 0's waker and then checks the condition; the "
        "producer (aw_set, aw_take, aw_take_end, aw_wake) sets the condition and then wakes.  Every interleaving "
        "of one round is explored; each state shows the AtomicWaker's state word, what is stored, and where each "
        "side is.  Every path ends with the condition seen or the task woken (WAK-AW-4).",
        steps=(
            Step("make", (dict(task=0, kind="bare"),), label=lambda a: "make task 0", show_obs=False),
            Step("new", (dict(slot=0, task=0),), label=lambda a: "new waker", show_obs=False),
            Step("aw_register", (dict(slot=0),), label=lambda a: "aw_register", show_obs=_aw_seen, when=_ready),
            Step("aw_store", label=lambda a: "aw_store", show_obs=_aw_calls),
            Step("aw_unlock", label=lambda a: "aw_unlock", show_obs=_aw_seen),
            Step("aw_check", label=lambda a: "aw_check", show_obs=_aw_seen),
            Step("aw_set", label=lambda a: "aw_set", show_obs=False, when=_ready),
            Step("aw_take", label=lambda a: "aw_take", show_obs=_aw_seen),
            Step("aw_take_end", label=lambda a: "aw_take_end", show_obs=False),
            Step("aw_wake", label=lambda a: "aw_wake", show_obs=_aw_calls),
        ),
        project=lambda w: _aw_facts(w),
        rankdir="TB",
    ),
)

VIEWS = WAKER
