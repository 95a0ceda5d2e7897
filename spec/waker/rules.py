"""The waker rules: the RawWakerVTable contract, task notification, AtomicWaker.

Three layers, each a set of plain sentences:

- ``WAK-VT-*``: what std's `Waker` does with the vtable it was built from
  (core::task docs), checked against real std through rustc and against our
  C wakers;
- ``WAK-TASK-*``: the task-notification state machine of an executor, in the
  style of tokio's task state word (a notified bit, a reference count);
- ``WAK-AW-*``: futures-rs's `AtomicWaker` register/take protocol, step by
  atomic step, so every interleaving of a consumer and a producer is explored.
"""

from ..core import SHOULD, rule

AREA = "waker"
STD = "std"
ALL = (STD,)

STD_TASK = "core::task (Rust std 1.95)"
TOKIO = "tokio runtime/task/state.rs and runtime/task/harness.rs (NOTIFIED bit, REF_ONE)"
FUTURES_AW = "futures-core 0.3 task/__internal/atomic_waker.rs (AtomicWaker: WAITING, REGISTERING, WAKING)"


def _r(id, statement, *, source, profiles=ALL, **kw):
    return rule(id, statement, source=source, profiles=profiles, area=AREA, **kw)


# ------------------------------------------------------------- the vtable

CLONE = _r(
    "WAK-VT-1",
    """Cloning a Waker calls its vtable's clone exactly once, with the same
    data, and makes one more live instance of the task's waker.""",
    source=f"{STD_TASK}: RawWakerVTable::new 'clone' ('called when the RawWaker gets cloned'), impl Clone for Waker",
)
DROP = _r(
    "WAK-VT-2",
    """Dropping a Waker calls its vtable's drop exactly once and ends its
    instance.""",
    source=f"{STD_TASK}: RawWakerVTable::new 'drop' ('called when the Waker gets dropped'), impl Drop for Waker",
)
WAKE_CONSUMES = _r(
    "WAK-VT-3",
    """Waker::wake calls the vtable's wake exactly once and never drop: wake
    consumes the instance, so the wake function itself releases what the
    instance held.""",
    source=f"{STD_TASK}: Waker::wake ('wake ... consumes the Waker'), RawWakerVTable 'wake' ('must make sure to release any resources that are associated with this instance')",
)
WAKE_BY_REF = _r(
    "WAK-VT-4",
    """Waker::wake_by_ref calls the vtable's wake_by_ref exactly once and
    leaves the number of instances unchanged.""",
    source=f"{STD_TASK}: Waker::wake_by_ref, RawWakerVTable 'wake_by_ref' ('must not consume the provided data pointer')",
)
WILL_WAKE = _r(
    "WAK-VT-5",
    """will_wake makes no vtable call; it returns true only for two wakers
    of the same task (same data and vtable); false proves nothing.""",
    source=f"{STD_TASK}: Waker::will_wake ('returns true if the Wakers would awaken the same task ... on a best-effort basis')",
    rationale="""std compares the data and vtable pointers; a vtable built at
    two sites may have two addresses (rust-lang/rust#121600), so equal
    wakers may compare unequal, never the other way round.""",
)
CLONE_FROM = _r(
    "WAK-VT-6",
    """clone_from makes no call when will_wake(source) is true; otherwise it
    clones the source and then drops the instance it replaces.""",
    source=f"{STD_TASK}: impl Clone for Waker, clone_from ('if !self.will_wake(source)')",
    measured="rustc 1.95: two wakers of one task: no call at all; of two tasks: clone(source's task), then drop(old task).",
)
ACCOUNTING = _r(
    "WAK-VT-7",
    """Every instance ends in exactly one wake or one drop, or is leaked by
    mem::forget, which makes no call: a task's live instances are the Wakers
    made for it, plus clones, minus wakes and drops.""",
    source=f"{STD_TASK}: RawWaker ('the behavior ... is undefined if the contract ... is not upheld'); core::mem::forget",
)
NO_CALL = _r(
    "WAK-VT-8",
    """Context::from_waker borrows the waker and makes no call; Waker::noop
    and its clones call nothing of any task's vtable.""",
    source=f"{STD_TASK}: Context::from_waker, Waker::noop ('a waker that does nothing when woken')",
    features=["noop", "context"],
)

# --------------------------------------------------------- task notification

SPAWN = _r(
    "WAK-TASK-1",
    """A spawned task is scheduled: it is queued once and the executor polls
    it.""",
    source=f"{TOKIO}; tokio::spawn docs",
    features=["executor"],
)
WAKE_IDLE = _r(
    "WAK-TASK-2",
    """A wake of an idle task (not queued, not running, not complete) queues
    it exactly once; further wakes before it is polled coalesce into that
    one poll.""",
    source=f"{TOKIO} (transition_to_notified_by_val: only an idle task is submitted)",
    features=["executor"],
)
WAKE_RUNNING = _r(
    "WAK-TASK-3",
    """A wake while the task is being polled is not lost: when that poll
    returns Pending the task is queued again, and polled exactly once more.""",
    source=f"{TOKIO} (transition_to_idle: a NOTIFIED bit set while RUNNING re-schedules); shuttle PR #54",
    features=["executor"],
)
WAKE_COMPLETE = _r(
    "WAK-TASK-4",
    """A wake of a completed task schedules nothing; a wake by value still
    ends its instance.""",
    source=f"{TOKIO} (transition_to_notified_*: COMPLETE -> DoNothing); Future::poll ('once a future has completed ... should not be polled again')",
    features=["executor"],
)
FIFO = _r(
    "WAK-TASK-5",
    """The run queue should be first in, first out: tasks are polled in the
    order they were queued.""",
    source="tokio runtime/scheduler (the local run queue); async-executor, smol",
    features=["executor"],
    tier=SHOULD,
    rationale="""Fairness, not correctness: a task woken early should not
    starve behind later ones.  tokio's LIFO slot deliberately polls the most
    recently woken task first, so this is a SHOULD.""",
)
REFCOUNT = _r(
    "WAK-TASK-6",
    """A task's reference count is its live waker instances plus one for the
    JoinHandle, one for the executor until the task completes, one while it
    is queued and one per waker stored in an AtomicWaker; its memory is
    released exactly when the count reaches zero, never before.""",
    source=f"{TOKIO} (REF_ONE per handle; dealloc on the last ref_dec); tokio #2087",
    features=["executor"],
)
JOIN_DROP = _r(
    "WAK-TASK-7",
    """Dropping a JoinHandle releases its reference and does not cancel or
    wake the task.""",
    source="tokio::task::JoinHandle ('A JoinHandle detaches the associated task when it is dropped')",
    features=["executor"],
)

# --------------------------------------------------------------- AtomicWaker

AW_REGISTER = _r(
    "WAK-AW-1",
    """A register that finds the AtomicWaker WAITING locks it (REGISTERING),
    stores a clone of the waker -- dropping the waker it replaces, unless
    will_wake says they are the same -- and unlocks it.""",
    source=f"{FUTURES_AW}: register",
    features=["atomic_waker"],
)
AW_TAKE = _r(
    "WAK-AW-2",
    """A take that finds the AtomicWaker WAITING sets WAKING, takes the
    stored waker, clears WAKING and wakes it; a take that finds a register
    in progress only sets WAKING, and that register, failing to unlock,
    takes the waker it just stored, resets to WAITING and wakes it.""",
    source=f"{FUTURES_AW}: take, wake; register's failed compare_exchange(REGISTERING, WAITING)",
    features=["atomic_waker"],
)
AW_WAKING = _r(
    "WAK-AW-3",
    """A register that finds a wake in progress (WAKING) wakes the new waker
    by reference instead of storing it.""",
    source=f"{FUTURES_AW}: register ('WAKING => waker.wake_by_ref()')",
    features=["atomic_waker"],
)
AW_NO_LOST_WAKEUP = _r(
    "WAK-AW-4",
    """No lost wake-up: when the consumer registers and then checks its
    condition, and the producer sets the condition and then wakes, in every
    interleaving of their atomic steps the consumer sees the condition or
    its task is woken.""",
    source=f"{FUTURES_AW}: type docs (the register-then-check, set-then-wake protocol); tokio #7589",
    features=["atomic_waker"],
)
