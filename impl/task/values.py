"""The values of the task API: poll results and outcomes, a task's state
word and call counters, and the errors (WakerError's messages name the
operation and the C error)."""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, NamedTuple

from ._task import lib

if TYPE_CHECKING:
    from .queue import Task


# ---------------------------------------------------------------------------
# Values
# ---------------------------------------------------------------------------


class Step(enum.Enum):
    """What one poll of a task returned."""

    READY = "ready"
    PENDING = "pending"


READY = Step.READY
PENDING = Step.PENDING


class Outcome(enum.Enum):
    """How `RunQueue.poll_next` ended for the task it popped."""

    COMPLETE = "complete"  # READY: the task finished
    IDLE = "idle"  # PENDING, no wake during the poll: waits for one
    REQUEUED = "requeued"  # PENDING, woken during the poll: back on the tail
    SKIPPED = "skipped"  # popped while already complete: not polled


class Polled(NamedTuple):
    task: Task
    outcome: Outcome


class TaskState(NamedTuple):
    """The flags and reference count of a live task's state word."""

    running: bool
    notified: bool
    complete: bool
    refs: int


class Calls(NamedTuple):
    """How many times each vtable entry was called for a task."""

    clone: int
    wake: int
    wake_by_ref: int
    drop: int


class TaskStatus(enum.IntEnum):
    UNKNOWN = lib.AST_STATUS_UNKNOWN  # no task ever had that id
    LIVE = lib.AST_STATUS_LIVE
    QUARANTINED = lib.AST_STATUS_QUARANTINED  # freed, memory kept in quarantine
    RELEASED = lib.AST_STATUS_RELEASED  # freed, memory returned by flush()


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------


class WakerError(RuntimeError):
    """The C layer refused a call: on a freed task (a use after free: wake
    after the last drop, drop twice, clone of a dropped waker), on a pointer
    that is not a task, or in a state that does not allow it.  `op` names the
    operation, `code` the C error (an AST_ERR_* name), `task_id` the task."""

    def __init__(self, message: str, *, op: str, code: str, task_id: int | None):
        super().__init__(message)
        self.op = op
        self.code = code
        self.task_id = task_id


class WakerUseError(ValueError):
    """A Waker object used the wrong way in Python: after it was consumed
    (woken, dropped, forgotten, turned into a RawWaker), a borrowed context
    waker after its poll or consumed by value."""


_OP_NAMES = {
    lib.AST_OP_CLONE: "clone",
    lib.AST_OP_WAKE: "wake",
    lib.AST_OP_WAKE_BY_REF: "wake_by_ref",
    lib.AST_OP_DROP: "drop",
    lib.AST_OP_NEW_WAKER: "new waker",
    lib.AST_OP_POLL: "poll",
    lib.AST_OP_JOIN_DROP: "drop of the JoinHandle",
    lib.AST_OP_CANCEL: "cancel",
    lib.AST_OP_SPAWN: "spawn",
    lib.AST_OP_AW_REGISTER: "AtomicWaker register",
    lib.AST_OP_AW_TAKE: "AtomicWaker take",
    lib.AST_OP_READ: "read",
}
_ERR_NAMES = {
    lib.AST_ERR_FREED: "AST_ERR_FREED",
    lib.AST_ERR_NOT_TASK: "AST_ERR_NOT_TASK",
    lib.AST_ERR_REFCOUNT: "AST_ERR_REFCOUNT",
    lib.AST_ERR_STATE: "AST_ERR_STATE",
    lib.AST_ERR_NOMEM: "AST_ERR_NOMEM",
    lib.AST_ERR_INVAL: "AST_ERR_INVAL",
    lib.AST_ERR_CLOSED: "AST_ERR_CLOSED",
    lib.AST_ERR_UNKNOWN: "AST_ERR_UNKNOWN",
}
_STATE_REASONS = {
    lib.AST_OP_POLL: "it is not in a state to be polled (already running, or a poll ended that never began)",
    lib.AST_OP_JOIN_DROP: "the JoinHandle was already dropped",
    lib.AST_OP_CANCEL: "it is running",
    lib.AST_OP_AW_REGISTER: "register_store/register_end without the registering lock (register_begin must "
    "return WAITING first)",
}


def _message(op: int, code: int, task: int, data: int) -> str:
    name = _OP_NAMES.get(op, f"operation {op}")
    if code == lib.AST_ERR_FREED:
        return f"{name} on task {task} after its last reference was dropped"
    if code == lib.AST_ERR_NOT_TASK:
        return f"{name} on {data:#x}, which is not a task (a bad waker data pointer)"
    if code == lib.AST_ERR_REFCOUNT:
        return f"{name} on task {task}: its reference count would go below zero"
    if code == lib.AST_ERR_STATE:
        if op in (lib.AST_OP_AW_REGISTER, lib.AST_OP_AW_TAKE):
            return f"{name}: {_STATE_REASONS[lib.AST_OP_AW_REGISTER]}"
        return f"{name} of task {task}: {_STATE_REASONS.get(op, 'not allowed in its state')}"
    if code == lib.AST_ERR_NOMEM:
        return f"{name}: out of memory"
    if code == lib.AST_ERR_INVAL:
        return f"{name}: invalid argument (a NULL pointer or an empty waker)"
    if code == lib.AST_ERR_CLOSED:
        return f"{name}: the run queue is closed"
    if code == lib.AST_ERR_UNKNOWN:
        return f"{name}: no task was ever issued with id {task}"
    return f"{name}: error {code}"
