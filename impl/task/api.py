"""The task API over one build of the C layer.

The classes (Waker, RawWaker, Task, RunQueue, AtomicWaker) reach their C
layer through the build they are bound to (the class attribute `_b`, an
`Api`).  The installed build's Api is `INSTALLED`, bound to the classes
themselves; `api(module)` binds subclasses to another build, a cffi module
made with build.make from the same sources (the tests' patched builds).
Objects of different builds do not mix.
"""

from __future__ import annotations

from . import values
from ._task import ffi, lib
from .atomic_waker import AtomicWaker
from .queue import RunQueue, Task
from .values import _ERR_NAMES, _OP_NAMES, WakerError, _message
from .waker import RawWaker, Waker

# The names an Api shares with the package unchanged (nothing in them calls C).
_SHARED = (
    "Calls", "Outcome", "PENDING", "Polled", "READY", "Step", "TaskState", "TaskStatus", "WakerError",
    "WakerUseError",
)  # fmt: skip
_CLASSES = {"Waker": Waker, "RawWaker": RawWaker, "Task": Task, "RunQueue": RunQueue, "AtomicWaker": AtomicWaker}


class Api:
    """The task API over one build of the C layer: Waker, RawWaker, Task,
    RunQueue and AtomicWaker bound to it, its functions (live_tasks,
    flush, ...), and the shared values, under the package's names.  The
    package's own names are those of the installed build's Api; `api(module)`
    makes one for another build."""

    def __init__(self, ffi_, lib_, *, installed: bool = False) -> None:
        self.ffi, self.lib = ffi_, lib_
        self.vtable = lib_.ast_vtable()
        self._epoch = 0  # bumped by flush(): pointers are checked by id after one
        self._leaks: list[int] = []  # task ids of wakers collected while live
        for name in _SHARED:
            setattr(self, name, getattr(values, name))
        for name, base in _CLASSES.items():
            if installed:  # the classes themselves
                base._b = self
                cls = base
            else:  # another build: subclasses bound to it
                cls = type(name, (base,), {"_b": self, "_lib": lib_, "__slots__": (),
                                           "__module__": base.__module__, "__doc__": base.__doc__})  # fmt: skip
            setattr(self, name, cls)

    def _error(self) -> WakerError:
        e = self.lib.ast_last_error()
        code, op, tid = int(e.code), int(e.op), int(e.task)
        data = int(self.ffi.cast("uintptr_t", e.data))
        return WakerError(
            _message(op, code, tid, data),
            op=_OP_NAMES.get(op, str(op)),
            code=_ERR_NAMES.get(code, str(code)),
            task_id=tid or None,
        )

    # -- accounting --------------------------------------------------------

    def live_tasks(self) -> int:
        """Tasks of this build not yet freed (all run queues)."""
        return int(self.lib.ast_live_tasks())

    def quarantined(self) -> int:
        """Freed task blocks kept in quarantine."""
        return int(self.lib.ast_quarantined())

    def flush(self) -> int:
        """Return the quarantined blocks to malloc; how many there were."""
        n = int(self.lib.ast_quarantine_flush())
        self._epoch += 1
        return n

    def task_status(self, task_id: int) -> values.TaskStatus:
        return values.TaskStatus(self.lib.ast_task_info(task_id, self.ffi.new("struct ast_task_info *")))

    def leaked_wakers(self) -> int:
        """Wakers (and AtomicWakers holding one) garbage-collected while
        they still owned an instance."""
        return len(self._leaks)

    def take_leaks(self) -> list[int]:
        """The task ids of the leaked wakers so far; resets the count."""
        leaks, self._leaks[:] = list(self._leaks), []
        return leaks

    def __repr__(self) -> str:
        return f"<task Api over {getattr(self.lib, '__name__', self.lib)!r}>"


def api(module) -> Api:
    """The task API over another build of the C layer: `module` is a cffi
    module with `ffi` and `lib` compiled from these sources (build.make)."""
    return Api(module.ffi, module.lib)


INSTALLED = Api(ffi, lib, installed=True)
"""The Api of the installed build: the package's own classes and functions."""
