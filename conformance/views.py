"""Which state diagrams the generated docs draw, area by area.

Each `View` picks a small configuration of an area's spec machine (the
actions and arguments the search may take), a bound, and the facts each
state is projected onto; `asyncspec.conformance.diagrams` explores the
machine itself and draws what it finds.  Nothing here says which
transitions exist: only what to look at.

An area with no entry in `VIEWS` is drawn with `diagrams.default_view`.
"""

from __future__ import annotations

from .diagrams import Step, View, arg_grid

# ------------------------------------------------------------------ readiness


def _readiness(name: str, title: str, caption: str, mode: str, oneshot: bool) -> View:
    reg = dict(slot=0, token=1, interest="r", mode=mode, oneshot=oneshot, rdhup=False)
    steps = [
        Step("create", (dict(slot=0, kind="pipe_r"),), label=lambda a: "create a pipe", show_obs=False),
        Step("register", (reg,), label=lambda a: "register", show_obs=False, when=lambda w: not w.slots[0].reg),
        Step("write_peer", (dict(slot=0, n=1),), label=lambda a: "peer writes", show_obs=False),
        Step("read_ours", (dict(slot=0, n=64),), label=lambda a: "read all", show_obs=False, when=lambda w: w.slots[0].rx > 0),
        Step("poll", (dict(max_events=8),), label=lambda a: "poll", when=lambda w: w.slots[0].reg),
    ]
    if oneshot:
        steps.append(Step("reregister", (reg,), label=lambda a: "reregister", show_obs=False, when=lambda w: w.slots[0].reg))

    def project(w) -> tuple[str, ...]:
        s = w.slots[0]
        if s.kind == 0:
            return ("no source",)
        facts = ["readable" if s.rx > 0 else "not readable"]
        if not s.reg:
            return tuple(facts + ["not registered"])
        if oneshot:
            facts.append("armed" if s.armed else "disarmed")
        facts.append("on the ready list" if s.queued else "not on the ready list")
        return tuple(facts)

    return View(
        area="readiness",
        name=name,
        title=title,
        caption=caption,
        steps=tuple(steps),
        project=project,
        profile="linux-epoll",
        dialect="epoll",
        keep=lambda w: w.slots[0].rx <= 2,
    )


READINESS = (
    _readiness(
        "level",
        "One level-triggered registration",
        "The read end of a pipe registered for reading, level-triggered (linux-epoll).  A poll reports the "
        "registration for as long as data is there (RDY-LT-1): a reported entry goes back on the ready list, and "
        "only a poll that finds it not readable drops it.",
        "lt",
        False,
    ),
    _readiness(
        "edge",
        "One edge-triggered registration",
        "The same pipe registered edge-triggered (EPOLLET).  A poll reports it once and takes it off the ready "
        "list (RDY-ET-1); only a new write puts it back — on Linux every write does, even when data was already "
        "there (RDY-ET-2) — so a reader must read until EAGAIN.",
        "et",
        False,
    ),
    _readiness(
        "oneshot",
        "One EPOLLONESHOT registration",
        "The same pipe registered level-triggered with EPOLLONESHOT.  The first report disarms the registration "
        "(RDY-ONESHOT-1): nothing more is reported, whatever is written, until a reregister (EPOLL_CTL_MOD) arms "
        "it again (RDY-ONESHOT-2).",
        "lt",
        True,
    ),
)

# ---------------------------------------------------------------------- waker


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
    from ..spec.waker.machine import AW_NAMES

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

# ---------------------------------------------------------------------- fiber

_FIBER_STATES = ("no fiber", "created", "suspended", "finished", "failed")

FIBER = (
    View(
        area="fiber",
        name="lifecycle",
        title="A fiber's lifecycle",
        caption="One fiber slot, driven from the main context: a body that yields once and then returns, and one "
        "that overflows its stack into the guard page.  Resuming a created or suspended fiber runs it until it "
        "yields, returns or fails (FIB-LIFE-1, FIB-LIFE-2, FIB-STACK-3); resuming a finished or failed one is an "
        "error, not undefined behaviour (FIB-LIFE-4); freeing returns the slot (FIB-LIFE-5).",
        steps=(
            Step("create", arg_grid(slot=(0,), prog=("yield1", "overflow")), label=lambda a: f"create ({a['prog']})", show_obs=False),
            Step("resume", (dict(slot=0, value=0),), label=lambda a: "resume(0)"),
            Step("free", (dict(slot=0),), label=lambda a: "free", show_obs=False),
        ),
        project=lambda w: _fiber_facts(w),
    ),
)


def _fiber_facts(w) -> tuple[str, ...]:
    from ..spec.fiber.machine import PROGS

    f = w.fibers[0]
    if f.st == 0:
        return ("no fiber",)
    return (_FIBER_STATES[f.st], f"body {PROGS[f.prog]}")


# ------------------------------------------------------------------------ pin


def _pin_obs(obs) -> str:
    """A statement's outcome, briefly: the compiler's error codes, or the drops it ran."""
    errors, _result, drops = obs
    if errors:
        return "does not compile: " + ", ".join(errors)
    return ", ".join(f"drops it {how}" for _v, how in drops)


def _pin_facts(w, selfref: bool = True) -> tuple[str, ...]:
    from ..spec.pin import machine as PM

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
    from ..spec.pin import machine as PM

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

VIEWS: dict[str, tuple[View, ...]] = {"readiness": READINESS, "waker": WAKER, "fiber": FIBER, "pin": PIN}
