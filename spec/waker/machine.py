"""The waker machine: wakers in slots, tasks, a run queue and one AtomicWaker.

State
-----
``World`` holds

    tasks    T tasks; each NONE (not made), BARE (just waker data: std's
             RawWaker over a counting vtable, no executor) or SPAWNED (an
             executor's task), with
               refs      its reference count (WAK-TASK-6; for a bare task,
                         its live instances)
               leaked    instances given to mem::forget
               join      the JoinHandle still holds a reference
               owned     the executor still owns it (until it completes)
               notified  it is queued (RUNNING exists only inside `poll`)
               complete  its future returned Ready
               freed     its memory was released (refs reached 0)
    slots    W waker slots: EMPTY, NOOP (Waker::noop) or a task index
    queue    the run queue: T entries, task indices in order, then NOTASK
             (a fixed shape, so the symbolic reading has fixed fields)
    aw       one AtomicWaker and the two sides driving it (see below)

Observations
------------
Every action observes the same 5-tuple:

    (calls, result, refs, freed, queue)

``calls`` the vtable calls made during the step, in order, as
(name, task) pairs; ``result`` the action's own answer (a bool for
will_wake, the polled task for poll, the state seen for AtomicWaker steps,
else None); ``refs``/``freed`` per task; ``queue`` the run queue afterwards.

The AtomicWaker
---------------
A consumer registers the waker in one slot and then checks a condition; a
producer sets the condition and then wakes.  Each side's atomic steps are
separate actions, so a search interleaves them every way:

    consumer  aw_register (compare_exchange WAITING -> REGISTERING)
              aw_store    (store a clone of the waker, drop the old one)
              aw_unlock   (compare_exchange REGISTERING -> WAITING; on
                           failure take the waker, reset, wake it)
              aw_check    (read the condition)
    producer  aw_set      (set the condition)
              aw_take     (fetch_or WAKING)
              aw_take_end (take the stored waker, clear WAKING: only when
                           aw_take saw WAITING)
              aw_wake     (wake what was taken)

and ``aw_round`` starts a new round once each side is done or never
started (so a waker can stay stored across rounds and be replaced).  WAK-AW-4 is an
invariant over these states: a finished round has the condition seen or
the consumer's task woken.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..core import Action, Invariant, Machine, Outcome, Param, Profile
from ..logic import all_, any_, ite, not_
from . import rules as R

T = 2  # tasks
W = 3  # waker slots
NONE, BARE, SPAWNED = range(3)
KIND_NAMES = ("none", "bare", "spawned")
EMPTY, NOOP = -1, -2
NOTASK = -1

# AtomicWaker state bits (futures-rs).
WAITING, REGISTERING, WAKING = 0, 1, 2
AW_NAMES = ("WAITING", "REGISTERING", "WAKING", "REGISTERING|WAKING")  # by state
# Consumer program counter: 0 idle, 1 locked, 2 stored, 3 registered (check next), 4 done.
# Producer program counter: 0 idle, 1 condition set, 2 took WAITING (take_end next), 3 taken (wake next), 4 done.


@dataclass(frozen=True)
class Task:
    kind: int = NONE
    refs: int = 0
    leaked: int = 0
    join: bool = False
    owned: bool = False
    notified: bool = False
    complete: bool = False
    freed: bool = False


@dataclass(frozen=True)
class AW:
    state: int = WAITING
    stored: int = NOTASK  # the task whose waker is stored
    c_pc: int = 0
    c_slot: int = 0  # the slot the consumer registers (borrowed while locked)
    c_task: int = NOTASK  # that waker's task
    p_pc: int = 0
    taken: int = NOTASK
    flag: bool = False  # the condition
    saw: bool = False  # the consumer saw it
    woke: bool = False  # the consumer's task was woken this round


@dataclass(frozen=True)
class World:
    tasks: tuple[Task, ...]
    slots: tuple[int, ...]
    queue: tuple[int, ...] = (NOTASK,) * T
    aw: AW = AW()

    def task(self, t: int) -> Task:
        return self.tasks[t]

    def put(self, t: int, task: Task) -> "World":
        return replace(self, tasks=self.tasks[:t] + (task,) + self.tasks[t + 1 :])

    def slot(self, s: int, value: int) -> "World":
        return replace(self, slots=self.slots[:s] + (value,) + self.slots[s + 1 :])


def queued(w: World) -> tuple[int, ...]:
    """The run queue's tasks, head first."""
    return tuple(t for t in w.queue if t != NOTASK)


def enqueue(w: World, t: int) -> World:
    """Put task t at the tail of the run queue (the first free entry)."""
    for i in range(T):
        if w.queue[i] == NOTASK:
            return replace(w, queue=w.queue[:i] + (t,) + w.queue[i + 1 :])
    raise AssertionError("the run queue is full: a task was queued twice")


def dequeue(w: World) -> World:
    return replace(w, queue=w.queue[1:] + (NOTASK,))


def observe(w: World, calls=(), result=None):
    return (
        tuple(calls),
        result,
        tuple(t.refs for t in w.tasks),
        tuple(t.freed for t in w.tasks),
        queued(w),
    )


# ------------------------------------------------------- task effects


def _ref(w: World, t: int, delta: int) -> World:
    """Add delta to a task's count; a spawned task is freed at zero."""
    task = w.task(t)
    refs = task.refs + delta
    return w.put(t, replace(task, refs=refs, freed=task.kind == SPAWNED and refs == 0))


def notify(w: World, t: int, running: int = NOTASK) -> tuple[World, tuple[str, ...]]:
    """A wake reaching task t's scheduler; ``running`` is the task being polled."""
    if t < 0:
        return w, (R.NO_CALL,)
    task = w.task(t)
    if task.kind != SPAWNED:
        return w, ()
    if task.complete:
        return w, (R.WAKE_COMPLETE,)
    if t == running:
        return w.put(t, replace(task, notified=True)), (R.WAKE_RUNNING,)
    if task.notified:
        return w, (R.WAKE_IDLE,)  # coalesced with the queued poll
    w = enqueue(w.put(t, replace(task, notified=True)), t)
    return _ref(w, t, +1), (R.WAKE_IDLE, R.REFCOUNT)


def vt_wake(w: World, t: int, running: int = NOTASK):
    """Waker::wake on an instance of t (NOOP: nothing): wake call, notify, instance ends."""
    if t == NOOP:
        return w, (), (R.NO_CALL,)
    w, rules = notify(w, t, running)
    return _ref(w, t, -1), (("wake", t),), (R.WAKE_CONSUMES, R.ACCOUNTING) + rules


def vt_wake_by_ref(w: World, t: int, running: int = NOTASK):
    if t == NOOP:
        return w, (), (R.NO_CALL,)
    w, rules = notify(w, t, running)
    return w, (("wake_by_ref", t),), (R.WAKE_BY_REF,) + rules


def vt_clone(w: World, t: int):
    if t == NOOP:
        return w, (), (R.NO_CALL,)
    return _ref(w, t, +1), (("clone", t),), (R.CLONE, R.ACCOUNTING)


def vt_drop(w: World, t: int):
    if t == NOOP:
        return w, (), (R.NO_CALL,)
    return _ref(w, t, -1), (("drop", t),), (R.DROP, R.ACCOUNTING, R.REFCOUNT)


# -------------------------------------------------------- preconditions

P_SLOT = Param("slot", tuple(range(W)))
P_TASK = Param("task", tuple(range(T)))


def live(w: World, s: int) -> bool:
    """The slot holds a waker."""
    return w.slots[s] != EMPTY


def lent(w: World, s: int) -> bool:
    """The slot's waker is borrowed by a register in progress (it cannot be moved out)."""
    return w.aw.c_pc in (1, 2) and w.aw.c_slot == s


def usable_task(w: World, t: int) -> bool:
    task = w.task(t)
    return task.kind != NONE and not task.freed


def kind_feature(w: World, t: int) -> frozenset[str]:
    return frozenset({"executor"} if w.task(t).kind == SPAWNED else {"bare"} if w.task(t).kind == BARE else ())


def slot_features(w: World, *slots: int) -> frozenset[str]:
    out: set[str] = set()
    for s in slots:
        if w.slots[s] >= 0:
            out |= kind_feature(w, w.slots[s])
    return frozenset(out)


# ----------------------------------------------------------- vtable actions


def make_outcomes(w, a, p):
    t = a["task"]
    if a["kind"] == "bare":
        w2 = w.put(t, Task(kind=BARE))
        return [Outcome(observe(w2), w2, ())]
    w2 = w.put(t, Task(kind=SPAWNED, refs=3, join=True, owned=True, notified=True))
    w2 = enqueue(w2, t)
    return [Outcome(observe(w2), w2, (R.SPAWN, R.REFCOUNT))]


MAKE = Action(
    "make",
    (P_TASK, Param("kind", ("bare", "spawned"))),
    lambda w, a, p: w.task(a["task"]).kind == NONE,
    make_outcomes,
    requires=lambda w, a: frozenset({"bare"} if a["kind"] == "bare" else {"executor"}),
    doc="Make a task: bare waker data (a counting RawWakerVTable) or a task spawned on the executor "
    "(queued at once; referenced by its JoinHandle, the executor and the queue).",
)


def new_outcomes(w, a, p):
    w2 = _ref(w.slot(a["slot"], a["task"]), a["task"], +1)
    return [Outcome(observe(w2), w2, (R.ACCOUNTING, R.REFCOUNT))]


NEW = Action(
    "new",
    (P_SLOT, P_TASK),
    lambda w, a, p: not live(w, a["slot"]) and usable_task(w, a["task"]),
    new_outcomes,
    requires=lambda w, a: kind_feature(w, a["task"]),
    weight=2,
    doc="Make a new Waker for the task in an empty slot (Waker::from_raw; no vtable call).",
)

NOOP_ACTION = Action(
    "noop",
    (P_SLOT,),
    lambda w, a, p: not live(w, a["slot"]),
    lambda w, a, p: [Outcome(observe(w.slot(a["slot"], NOOP)), w.slot(a["slot"], NOOP), (R.NO_CALL,))],
    requires=lambda w, a: frozenset({"noop"}),
    doc="Put Waker::noop().clone() in an empty slot.",
)


def clone_outcomes(w, a, p):
    t = w.slots[a["src"]]
    w2, calls, rules = vt_clone(w.slot(a["dst"], t), t)
    return [Outcome(observe(w2, calls), w2, rules)]


CLONE = Action(
    "clone",
    (Param("src", tuple(range(W))), Param("dst", tuple(range(W)))),
    lambda w, a, p: live(w, a["src"]) and not live(w, a["dst"]),
    clone_outcomes,
    requires=lambda w, a: slot_features(w, a["src"]),
    weight=2,
    doc="dst = src.clone().",
)


def drop_outcomes(w, a, p):
    t = w.slots[a["slot"]]
    w2, calls, rules = vt_drop(w.slot(a["slot"], EMPTY), t)
    return [Outcome(observe(w2, calls), w2, rules)]


DROP = Action(
    "drop",
    (P_SLOT,),
    lambda w, a, p: live(w, a["slot"]) and not lent(w, a["slot"]),
    drop_outcomes,
    requires=lambda w, a: slot_features(w, a["slot"]),
    weight=2,
    doc="Drop the slot's waker.",
)


def wake_outcomes(w, a, p):
    t = w.slots[a["slot"]]
    w2, calls, rules = vt_wake(w.slot(a["slot"], EMPTY), t)
    return [Outcome(observe(w2, calls), w2, rules)]


WAKE = Action(
    "wake",
    (P_SLOT,),
    lambda w, a, p: live(w, a["slot"]) and not lent(w, a["slot"]),
    wake_outcomes,
    requires=lambda w, a: slot_features(w, a["slot"]),
    weight=2,
    doc="Take the slot's waker and call wake() (it consumes the waker).",
)


def wake_by_ref_outcomes(w, a, p):
    w2, calls, rules = vt_wake_by_ref(w, w.slots[a["slot"]])
    return [Outcome(observe(w2, calls), w2, rules)]


WAKE_BY_REF = Action(
    "wake_by_ref",
    (P_SLOT,),
    lambda w, a, p: live(w, a["slot"]),
    wake_by_ref_outcomes,
    requires=lambda w, a: slot_features(w, a["slot"]),
    weight=2,
    doc="Call wake_by_ref() on the slot's waker.",
)


def same_task(w: World, s1: int, s2: int) -> bool:
    return w.slots[s1] == w.slots[s2]


def will_wake_outcomes(w, a, p):
    # true only for the same task; for the same task false is allowed too
    results = (True, False) if same_task(w, a["a"], a["b"]) else (False,)
    return [Outcome(observe(w, (), r), w, (R.WILL_WAKE,)) for r in results]


WILL_WAKE = Action(
    "will_wake",
    (Param("a", tuple(range(W))), Param("b", tuple(range(W)))),
    lambda w, a, p: live(w, a["a"]) and live(w, a["b"]),
    will_wake_outcomes,
    requires=lambda w, a: slot_features(w, a["a"], a["b"]),
    doc="a.will_wake(&b).",
)


def clone_from_outcomes(w, a, p):
    dst, src = a["dst"], a["src"]
    t_old, t_new = w.slots[dst], w.slots[src]
    out = []
    if same_task(w, dst, src):
        out.append(Outcome(observe(w), w, (R.CLONE_FROM,)))  # will_wake true: no call
    w2, c1, r1 = vt_clone(w.slot(dst, t_new), t_new)
    w2, c2, r2 = vt_drop(w2, t_old)
    out.append(Outcome(observe(w2, c1 + c2), w2, (R.CLONE_FROM,) + r1 + r2))
    return out


CLONE_FROM = Action(
    "clone_from",
    (Param("dst", tuple(range(W))), Param("src", tuple(range(W)))),
    lambda w, a, p: a["dst"] != a["src"] and live(w, a["dst"]) and live(w, a["src"]) and not lent(w, a["dst"]),
    clone_from_outcomes,
    requires=lambda w, a: slot_features(w, a["dst"], a["src"]),
    doc="dst.clone_from(&src).",
)


def forget_outcomes(w, a, p):
    t = w.slots[a["slot"]]
    w2 = w.slot(a["slot"], EMPTY)
    if t >= 0:
        w2 = w2.put(t, replace(w2.task(t), leaked=w2.task(t).leaked + 1))
    return [Outcome(observe(w2), w2, (R.ACCOUNTING,))]


FORGET = Action(
    "forget",
    (P_SLOT,),
    lambda w, a, p: live(w, a["slot"]) and not lent(w, a["slot"]),
    forget_outcomes,
    requires=lambda w, a: slot_features(w, a["slot"]),
    doc="mem::forget the slot's waker (its instance is leaked; no call).",
)

CONTEXT = Action(
    "context",
    (P_SLOT,),
    lambda w, a, p: live(w, a["slot"]),
    lambda w, a, p: [Outcome(observe(w, (), r), w, (R.NO_CALL, R.WILL_WAKE)) for r in (True, False)],
    requires=lambda w, a: frozenset({"context"}) | slot_features(w, a["slot"]),
    doc="Context::from_waker(&waker), then cx.waker().will_wake(&waker).",
)


# ------------------------------------------------------------- the executor

POLL_DURING = ("none",) + tuple(f"{how}:{s}" for how in ("wake_by_ref", "wake") for s in range(W))


def poll_pre(w, a, p):
    if w.queue[0] == NOTASK:
        return False
    during = a["during"]
    if during == "none":
        return True
    how, s = during.split(":")
    s = int(s)
    return live(w, s) and (how == "wake_by_ref" or not lent(w, s))


def poll_outcomes(w, a, p):
    """Pop the head, poll it once (waking a slot's waker during the poll, if
    asked), and finish the poll as Ready or Pending."""
    t = w.queue[0]
    w = dequeue(w)  # the queue's reference passes to the poller
    w = w.put(t, replace(w.task(t), notified=False))
    rules: tuple[str, ...] = (R.SPAWN, R.FIFO, R.REFCOUNT)
    calls: tuple = ()
    if a["during"] != "none":
        how, s = a["during"].split(":")
        s = int(s)
        u = w.slots[s]
        if how == "wake":
            w, calls, r = vt_wake(w.slot(s, EMPTY), u, running=t)
        else:
            w, calls, r = vt_wake_by_ref(w, u, running=t)
        rules += r
    task = w.task(t)
    if a["result"] == "ready":
        w = w.put(t, replace(task, complete=True, owned=False, notified=False))
        w = _ref(_ref(w, t, -1), t, -1)  # the executor's and the popped queue reference
        rules += (R.WAKE_COMPLETE,) if task.notified else ()
    elif task.notified:
        w = enqueue(w, t)  # woken while running: polled once more
        rules += (R.WAKE_RUNNING,)
    else:
        w = _ref(w, t, -1)
    return [Outcome(observe(w, calls, t), w, rules)]


POLL = Action(
    "poll",
    (Param("result", ("pending", "ready")), Param("during", POLL_DURING)),
    poll_pre,
    poll_outcomes,
    requires=lambda w, a: (
        frozenset({"executor"})
        | (slot_features(w, int(a["during"].split(":")[1])) if a["during"] != "none" else frozenset())
    ),
    weight=3,
    doc="The executor polls the task at the head of the run queue; during the poll its future may wake a "
    "slot's waker (its own or another task's); the poll returns Ready or Pending.",
)


def drop_join_outcomes(w, a, p):
    t = a["task"]
    w2 = _ref(w.put(t, replace(w.task(t), join=False)), t, -1)
    return [Outcome(observe(w2), w2, (R.JOIN_DROP, R.REFCOUNT))]


DROP_JOIN = Action(
    "drop_join",
    (P_TASK,),
    lambda w, a, p: w.task(a["task"]).kind == SPAWNED and w.task(a["task"]).join,
    drop_join_outcomes,
    requires=lambda w, a: frozenset({"executor"}),
    doc="Drop the task's JoinHandle (detach it).",
)


# -------------------------------------------------------------- AtomicWaker


def _aw(w: World, **changes) -> World:
    return replace(w, aw=replace(w.aw, **changes))


def aw_register_outcomes(w, a, p):
    s = a["slot"]
    t = w.slots[s]
    if w.aw.state == WAITING:
        w2 = _aw(w, state=REGISTERING, c_pc=1, c_slot=s, c_task=t)
        return [Outcome(observe(w2, (), AW_NAMES[WAITING]), w2, (R.AW_REGISTER,))]
    # WAKING: a wake is in progress; wake the new waker by reference instead.
    w2, calls, rules = vt_wake_by_ref(w, t)
    w2 = _aw(w2, c_pc=3, c_slot=s, c_task=t, woke=True)
    return [Outcome(observe(w2, calls, AW_NAMES[w.aw.state]), w2, (R.AW_WAKING,) + rules)]


AW_REGISTER = Action(
    "aw_register",
    (P_SLOT,),
    lambda w, a, p: w.aw.c_pc == 0 and w.slots[a["slot"]] >= 0,
    aw_register_outcomes,
    requires=lambda w, a: frozenset({"atomic_waker"}) | slot_features(w, a["slot"]),
    doc="Consumer, register step 1: compare_exchange(WAITING, REGISTERING) with the slot's waker.",
)


def aw_store_outcomes(w, a, p):
    t, old = w.aw.c_task, w.aw.stored
    out = []
    if old == t:
        w0 = _aw(w, c_pc=2)
        out.append(Outcome(observe(w0), w0, (R.AW_REGISTER, R.WILL_WAKE)))  # will_wake: keep the stored one
    w2, calls, rules = vt_clone(w, t)
    if old != NOTASK:
        w2, c2, r2 = vt_drop(w2, old)
        calls, rules = calls + c2, rules + r2
    w2 = _aw(w2, stored=t, c_pc=2)
    out.append(Outcome(observe(w2, calls), w2, (R.AW_REGISTER,) + rules))
    return out


AW_STORE = Action(
    "aw_store",
    (),
    lambda w, a, p: w.aw.c_pc == 1,
    aw_store_outcomes,
    requires=lambda w, a: frozenset({"atomic_waker"}),
    doc="Consumer, register step 2: store a clone of the waker (dropping the one it replaces).",
)


def aw_unlock_outcomes(w, a, p):
    if w.aw.state == REGISTERING:
        w2 = _aw(w, state=WAITING, c_pc=3)
        return [Outcome(observe(w2, (), AW_NAMES[REGISTERING]), w2, (R.AW_REGISTER,))]
    # REGISTERING|WAKING: a take came in meanwhile; wake what was just stored.
    t = w.aw.stored
    w2 = _aw(w, stored=NOTASK, state=WAITING, c_pc=3)
    w2, calls, rules = vt_wake(w2, t)
    w2 = _aw(w2, woke=w2.aw.woke or t == w.aw.c_task)
    return [Outcome(observe(w2, calls, AW_NAMES[w.aw.state]), w2, (R.AW_TAKE,) + rules)]


AW_UNLOCK = Action(
    "aw_unlock",
    (),
    lambda w, a, p: w.aw.c_pc == 2,
    aw_unlock_outcomes,
    requires=lambda w, a: frozenset({"atomic_waker"}),
    doc="Consumer, register step 3: compare_exchange(REGISTERING, WAITING); "
    "if WAKING was set meanwhile, take the stored waker, reset to WAITING and wake it.",
)


def aw_check_outcomes(w, a, p):
    w2 = _aw(w, c_pc=4, saw=w.aw.flag)
    return [Outcome(observe(w2, (), w.aw.flag), w2, (R.AW_NO_LOST_WAKEUP,))]


AW_CHECK = Action(
    "aw_check",
    (),
    lambda w, a, p: w.aw.c_pc == 3,
    aw_check_outcomes,
    requires=lambda w, a: frozenset({"atomic_waker"}),
    doc="Consumer: check the condition after registering.",
)


def aw_set_outcomes(w, a, p):
    w2 = _aw(w, flag=True, p_pc=1)
    return [Outcome(observe(w2), w2, ())]


AW_SET = Action(
    "aw_set",
    (),
    lambda w, a, p: w.aw.p_pc == 0,
    aw_set_outcomes,
    requires=lambda w, a: frozenset({"atomic_waker"}),
    doc="Producer: set the condition.",
)


def aw_take_outcomes(w, a, p):
    prev = w.aw.state
    w2 = _aw(w, state=prev | WAKING, p_pc=ite(prev == WAITING, 2, 4))
    return [Outcome(observe(w2, (), AW_NAMES[prev]), w2, (R.AW_TAKE,))]


AW_TAKE = Action(
    "aw_take",
    (),
    lambda w, a, p: w.aw.p_pc == 1,
    aw_take_outcomes,
    requires=lambda w, a: frozenset({"atomic_waker"}),
    doc="Producer, take step 1: fetch_or(WAKING); only a take that saw WAITING goes on to take the waker.",
)


def aw_take_end_outcomes(w, a, p):
    w2 = _aw(w, taken=w.aw.stored, stored=NOTASK, state=w.aw.state & ~WAKING, p_pc=3)
    return [Outcome(observe(w2, (), w.aw.stored), w2, (R.AW_TAKE,))]


AW_TAKE_END = Action(
    "aw_take_end",
    (),
    lambda w, a, p: w.aw.p_pc == 2,
    aw_take_end_outcomes,
    requires=lambda w, a: frozenset({"atomic_waker"}),
    doc="Producer, take step 2: take the stored waker (if any) and clear WAKING.",
)


def aw_wake_outcomes(w, a, p):
    t = w.aw.taken
    w2 = _aw(w, taken=NOTASK, p_pc=4)
    if t == NOTASK:
        return [Outcome(observe(w2), w2, (R.AW_TAKE,))]
    w2, calls, rules = vt_wake(w2, t)
    w2 = _aw(w2, woke=w2.aw.woke or t == w.aw.c_task)
    return [Outcome(observe(w2, calls), w2, (R.AW_TAKE,) + rules)]


AW_WAKE = Action(
    "aw_wake",
    (),
    lambda w, a, p: w.aw.p_pc == 3,
    aw_wake_outcomes,
    requires=lambda w, a: frozenset({"atomic_waker"}),
    doc="Producer: wake the waker it took (nothing if none was stored).",
)


def aw_round_outcomes(w, a, p):
    w2 = _aw(w, c_pc=0, p_pc=0, flag=False, saw=False, woke=False, c_task=NOTASK, c_slot=0)
    return [Outcome(observe(w2), w2, (R.AW_NO_LOST_WAKEUP,))]


AW_ROUND = Action(
    "aw_round",
    (),
    # A round ends with each side done or not started: a consumer may
    # register with no producer around (its waker stays stored), and the
    # other way round.
    lambda w, a, p: w.aw.c_pc in (0, 4) and w.aw.p_pc in (0, 4) and (w.aw.c_pc, w.aw.p_pc) != (0, 0),
    aw_round_outcomes,
    requires=lambda w, a: frozenset({"atomic_waker"}),
    doc="Each side is done or idle: clear the condition for a new round (the stored waker stays).",
)


# ------------------------------------------------------------- explaining

_CALL_RULES = {"clone": R.CLONE, "drop": R.DROP, "wake": R.WAKE_CONSUMES, "wake_by_ref": R.WAKE_BY_REF}
_RESULT_RULES = {
    "will_wake": R.WILL_WAKE,
    "context": R.WILL_WAKE,
    "poll": R.FIFO,
    "aw_register": R.AW_REGISTER,
    "aw_unlock": R.AW_TAKE,
    "aw_take": R.AW_TAKE,
    "aw_take_end": R.AW_TAKE,
    "aw_check": R.AW_NO_LOST_WAKEUP,
}
_CALLS_RULES = {  # an action whose calls are its own rule
    "will_wake": R.WILL_WAKE,
    "context": R.NO_CALL,
    "noop": R.NO_CALL,
    "clone_from": R.CLONE_FROM,
    "forget": R.ACCOUNTING,
    "new": R.ACCOUNTING,
    "aw_store": R.AW_REGISTER,
    "aw_register": R.AW_WAKING,
    "aw_unlock": R.AW_TAKE,
    "aw_wake": R.AW_TAKE,
}
_REFS_RULES = {
    "clone": R.CLONE,
    "drop": R.DROP,
    "wake": R.WAKE_CONSUMES,
    "wake_by_ref": R.WAKE_BY_REF,
    "new": R.ACCOUNTING,
    "forget": R.ACCOUNTING,
    "drop_join": R.JOIN_DROP,
}


def _counts(items) -> dict:
    out: dict = {}
    for x in items:
        out[x] = out.get(x, 0) + 1
    return out


def _differences(name: str, w: World, a, obs, expected) -> list[str]:
    calls, result, refs, freed, queue = obs
    e_calls, e_result, e_refs, e_freed, e_queue = expected
    broken: list[str] = []
    if _counts(calls) != _counts(e_calls):
        if name in _CALLS_RULES:
            broken.append(_CALLS_RULES[name])
        seen, want = _counts(calls), _counts(e_calls)
        for call in set(seen) | set(want):
            if seen.get(call, 0) != want.get(call, 0):
                # a drop made by a wake is the wake's fault (it must consume)
                broken.append(R.WAKE_CONSUMES if name == "wake" else _CALL_RULES.get(call[0], R.ACCOUNTING))
    if result != e_result and name in _RESULT_RULES:
        broken.append(_RESULT_RULES[name])
    if queue != e_queue:
        if len(set(queue)) < len(queue):
            broken.append(R.WAKE_IDLE)  # queued twice
        elif sorted(queue) == sorted(e_queue):
            broken.append(R.FIFO)
        for t in set(e_queue) - set(queue):
            if name == "make":
                broken.append(R.SPAWN)
            elif name == "poll" and t == w.queue[0]:
                broken.append(R.WAKE_RUNNING)  # the polled task, woken meanwhile, not queued again
            else:
                broken.append(R.WAKE_IDLE)
        for t in set(queue) - set(e_queue):
            broken.append(
                R.WAKE_COMPLETE if w.task(t).complete or name == "poll" and a["result"] == "ready" else R.WAKE_IDLE
            )
    if not broken and (refs != e_refs or freed != e_freed):
        broken.append(_REFS_RULES.get(name, R.REFCOUNT))
        if freed != e_freed:
            broken.append(R.REFCOUNT)
    return broken


def explainer(name: str, outcomes):
    """The rules an observation of action ``name`` breaks: compared part by
    part (calls, result, queue, counts) with the closest allowed outcome."""

    def explain(w: World, a, p: Profile, obs) -> tuple[str, ...]:
        if not (isinstance(obs, tuple) and len(obs) == 5):
            return ()
        allowed = [o.obs for o in outcomes(w, a, p)]
        best = min(allowed, key=lambda e: sum(x != y for x, y in zip(obs, e)))
        return tuple(dict.fromkeys(_differences(name, w, a, obs, best)))

    return explain


def _with_explain(action: Action) -> Action:
    return replace(action, explain=explainer(action.name, action.outcomes))


# ------------------------------------------------------------- invariants


# Written with the logic helpers (all_, any_, not_, ite) instead of Python's
# and/or/if, so that the symbolic reading (asyncspec.model) builds one term
# per invariant instead of one path per case.  Each invariant is small: the
# proofs check them one by one.


def _in(v, lo: int, hi: int):
    return all_(lo <= v, v < hi)


def pick(values, i, default):
    """``values[i]`` for an index that may be symbolic (``default`` out of range)."""
    out = default
    for k in range(len(values) - 1, -1, -1):
        out = ite(i == k, values[k], out)
    return out


def live_task(w: World, t):
    """t names a task that exists and is not freed."""
    alive = [all_(task.kind != NONE, not_(task.freed)) for task in w.tasks]
    return all_(_in(t, 0, T), pick(alive, t, False))


def _inv_task(t: int):
    def holds(w: World, p: Profile):
        task = w.task(t)
        return all_(
            _in(task.kind, NONE, SPAWNED + 1),
            task.refs >= 0,
            task.leaked >= 0,
            ite(task.kind == SPAWNED, True, not_(any_(task.join, task.owned, task.notified, task.complete, task.freed))),
            ite(task.kind == NONE, all_(task.refs == 0, task.leaked == 0), True),
            not_(all_(task.complete, task.owned)),
        )

    return holds


def _inv_slot(s: int):
    def holds(w: World, p: Profile):
        v = w.slots[s]
        return any_(v == EMPTY, v == NOOP, live_task(w, v))

    return holds


def _inv_aw(w: World, p: Profile):
    aw = w.aw
    return all_(
        _in(aw.state, 0, 4),
        _in(aw.c_pc, 0, 5),
        _in(aw.p_pc, 0, 5),
        _in(aw.c_slot, 0, W),
        any_(aw.stored == NOTASK, live_task(w, aw.stored)),
        any_(aw.taken == NOTASK, live_task(w, aw.taken)),
        any_(aw.c_task == NOTASK, _in(aw.c_task, 0, T)),
        # While the consumer registers, its slot holds its task's waker (borrowed, see `lent`).
        ite(any_(aw.c_pc == 1, aw.c_pc == 2), pick(w.slots, aw.c_slot, EMPTY) == aw.c_task, True),
        ite(any_(aw.c_pc == 1, aw.c_pc == 2), aw.c_task != NOTASK, True),
        any_(aw.taken == NOTASK, aw.p_pc == 3),
    )


def _inv_refcount(t: int):
    def holds(w: World, p: Profile):
        task = w.task(t)
        held = task.leaked + ite(task.join, 1, 0) + ite(task.owned, 1, 0) + ite(task.notified, 1, 0)
        for s in w.slots:
            held = held + ite(s == t, 1, 0)
        held = held + ite(w.aw.stored == t, 1, 0) + ite(w.aw.taken == t, 1, 0)
        return task.refs == held

    return holds


def _inv_freed(t: int):
    def holds(w: World, p: Profile):
        task = w.task(t)
        return ite(task.freed, all_(task.kind == SPAWNED, task.refs == 0), not_(all_(task.kind == SPAWNED, task.refs == 0)))

    return holds


def _inv_queue(w: World, p: Profile):
    q = w.queue
    parts = [any_(q[i] == NOTASK, _in(q[i], 0, T)) for i in range(T)]
    parts += [any_(q[i] != NOTASK, q[i + 1] == NOTASK) for i in range(T - 1)]  # compact
    parts += [any_(q[i] == NOTASK, q[i] != q[j]) for i in range(T) for j in range(i + 1, T)]  # once
    for t in range(T):
        task = w.task(t)
        in_queue = any_(*[q[i] == t for i in range(T)])
        parts.append(ite(in_queue, task.notified, not_(task.notified)))
        parts.append(not_(all_(task.complete, task.notified)))
    return all_(*parts)


def _inv_no_lost_wakeup(w: World, p: Profile):
    aw = w.aw
    return any_(not_(all_(aw.c_pc == 4, aw.p_pc == 4)), aw.saw, aw.woke)


def _inv_aw_unlocked(w: World, p: Profile):
    # The lock bit is set exactly while the consumer is inside register.
    locked = (w.aw.state & REGISTERING) != 0
    inside = any_(w.aw.c_pc == 1, w.aw.c_pc == 2)
    return ite(locked, inside, not_(inside))


def _inv_owned_until_complete(w: World, p: Profile):
    # A lemma: without it the invariants above are not inductive (a poll
    # that completes a task leads out of them).
    return all_(*[ite(t.kind == SPAWNED, t.owned != t.complete, True) for t in w.tasks])


SHAPE = (
    tuple(Invariant(R.ACCOUNTING, _inv_task(t), f"Task {t}'s fields are in their domains and agree with its kind.") for t in range(T))
    + tuple(Invariant(R.ACCOUNTING, _inv_slot(s), f"Waker slot {s} is empty, a noop waker, or a live task's.") for s in range(W))
    + (Invariant(R.AW_REGISTER, _inv_aw, "The AtomicWaker's fields are in their domains; what it holds is a live task's."),)
)

INVARIANTS = (
    SHAPE
    + tuple(Invariant(R.REFCOUNT, _inv_refcount(t), f"Task {t}'s count is the number of things holding it.") for t in range(T))
    + tuple(Invariant(R.REFCOUNT, _inv_freed(t), f"Task {t} is freed exactly when spawned with a count of zero.") for t in range(T))
    + (
        Invariant(R.WAKE_IDLE, _inv_queue, "A task is queued at most once, exactly while notified, never once complete."),
        Invariant(R.AW_NO_LOST_WAKEUP, _inv_no_lost_wakeup, "A finished round saw the condition or woke the consumer's task."),
        Invariant(R.AW_REGISTER, _inv_aw_unlocked, "REGISTERING is set exactly while a register is in progress."),
        Invariant(R.REFCOUNT, _inv_owned_until_complete, "A spawned task is owned by the executor exactly until it completes."),
    )
)


def describe(w: World) -> str:
    parts = []
    for t, task in enumerate(w.tasks):
        if task.kind == NONE:
            continue
        text = f"task{t} {KIND_NAMES[task.kind]} refs={task.refs}"
        flags = [
            name
            for name, on in (
                ("join", task.join),
                ("owned", task.owned),
                ("queued", task.notified),
                ("complete", task.complete),
                ("freed", task.freed),
            )
            if on
        ]
        if task.leaked:
            flags.append(f"leaked={task.leaked}")
        parts.append(text + (" " + " ".join(flags) if flags else ""))
    held = [f"[{s}]={'noop' if v == NOOP else f'task{v}'}" for s, v in enumerate(w.slots) if v != EMPTY]
    if held:
        parts.append("wakers " + " ".join(held))
    if queued(w):
        parts.append("queue " + ",".join(f"task{t}" for t in queued(w)))
    aw = w.aw
    if aw != AW():
        stored = f"task{aw.stored}" if aw.stored >= 0 else "-"
        parts.append(
            f"aw {AW_NAMES[aw.state]} stored={stored} consumer@{aw.c_pc} producer@{aw.p_pc}"
            + (" flag" if aw.flag else "")
            + (" saw" if aw.saw else "")
            + (" woke" if aw.woke else "")
        )
    return "; ".join(parts) or "(nothing)"


def show(obs) -> str:
    if not (isinstance(obs, tuple) and len(obs) == 5):
        return repr(obs)
    calls, result, refs, freed, queue = obs
    text = " ".join(f"{name}(task{t})" for name, t in calls) or "no calls"
    if result is not None:
        text += f" -> {result}"
    text += " refs=" + ",".join(str(r) for r in refs)
    if any(freed):
        text += " freed=" + ",".join(f"task{t}" for t, f in enumerate(freed) if f)
    if queue:
        text += " queue=" + ",".join(f"task{t}" for t in queue)
    return text


PROFILES = (
    Profile(
        R.STD,
        R.AREA,
        "core::task's Waker contract, a tokio-style task state machine, and futures' AtomicWaker.",
        {},
    ),
)

MACHINE = Machine(
    area=R.AREA,
    init=lambda p: World(tuple(Task() for _ in range(T)), tuple(EMPTY for _ in range(W))),
    actions=tuple(
        _with_explain(a)
        for a in (
            MAKE,
            NEW,
            NOOP_ACTION,
            CLONE,
            DROP,
            WAKE,
            WAKE_BY_REF,
            WILL_WAKE,
            CLONE_FROM,
            FORGET,
            CONTEXT,
            POLL,
            DROP_JOIN,
            AW_REGISTER,
            AW_STORE,
            AW_UNLOCK,
            AW_CHECK,
            AW_SET,
            AW_TAKE,
            AW_TAKE_END,
            AW_WAKE,
            AW_ROUND,
        )
    ),
    profiles=PROFILES,
    invariants=INVARIANTS,
    default_profile=R.STD,
    describe=describe,
    show=show,
)
