"""AtomicWaker: futures-rs's algorithm over the C wakers, whole and in its
atomic steps.  See the package doc."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

from ._task import lib
from .waker import _BORROWED, _LIVE

if TYPE_CHECKING:
    from .api import Api
    from .waker import Waker


class AtomicWaker:
    """futures-rs's AtomicWaker: holds at most one waker instance (a clone
    of the registered one).  `close()` drops it (a collected AtomicWaker
    that still holds one counts as a leaked waker, like a Waker)."""

    WAITING = lib.AST_AW_WAITING
    REGISTERING = lib.AST_AW_REGISTERING
    WAKING = lib.AST_AW_WAKING

    __slots__ = ("__weakref__", "_aw", "_closed")
    _b: Api

    def __init__(self) -> None:
        self._aw = self._b.ffi.new("struct ast_atomic_waker *")  # zeroed: WAITING, empty
        self._closed = False

    def _arg(self, waker: Waker, op: str):
        if self._closed:
            raise ValueError(f"{op}: the AtomicWaker is closed")
        if not isinstance(waker, self._b.Waker):
            raise TypeError(f"{op} needs a Waker of the same build, not {type(waker).__name__}")
        if waker._st > _BORROWED:
            raise waker._unusable(op)
        if waker._epoch != self._b._epoch:
            waker._memory(op)
        return waker._raw

    def _check(self, rc: int) -> int:
        if rc < 0:
            raise self._b._error()
        return rc

    def _taken(self, out) -> Waker:
        tid = int(self._b.lib.ast_task_id(self._b.ffi.cast("struct ast_task *", out.data)))
        return self._b.Waker._make(out, tid, _LIVE)

    # -- whole operations --------------------------------------------------

    def register(self, waker: Waker) -> None:
        """Store a clone of `waker` (borrowed) for the next wake."""
        raw = self._arg(waker, "register")
        self._check(self._b.lib.ast_aw_register(self._aw, raw))

    def take(self) -> Waker | None:
        """Take the stored waker (now owned by the caller), if any."""
        if self._closed:
            raise ValueError("take: the AtomicWaker is closed")
        out = self._b.ffi.new("struct ast_raw_waker *")
        if self._check(self._b.lib.ast_aw_take(self._aw, out)):
            return self._taken(out)
        return None

    def wake(self) -> bool:
        """take, then wake the taken waker.  Whether one was woken."""
        if self._closed:
            raise ValueError("wake: the AtomicWaker is closed")
        return bool(self._check(self._b.lib.ast_aw_wake(self._aw)))

    # -- the steps ---------------------------------------------------------

    def register_begin(self, waker: Waker) -> int:
        """CAS WAITING -> REGISTERING: returns the state seen (WAITING: go on
        with register_store and register_end; WAKING: `waker` was woken by
        reference, the register is over; REGISTERING...: over)."""
        raw = self._arg(waker, "register_begin")
        return self._check(self._b.lib.ast_aw_register_begin(self._aw, raw))

    def register_store(self, waker: Waker) -> bool:
        """Store a clone of `waker`, dropping the old one (True), or keep the
        stored one when it will_wake `waker` (False)."""
        raw = self._arg(waker, "register_store")
        return bool(self._check(self._b.lib.ast_aw_register_store(self._aw, raw)))

    def register_end(self) -> bool:
        """CAS REGISTERING -> WAITING; True if a wake came in meanwhile and
        the stored waker was taken and woken here."""
        if self._closed:
            raise ValueError("register_end: the AtomicWaker is closed")
        return bool(self._check(self._b.lib.ast_aw_register_end(self._aw)))

    def take_begin(self) -> int:
        """fetch_or WAKING: returns the previous state, for take_end."""
        if self._closed:
            raise ValueError("take_begin: the AtomicWaker is closed")
        return self._check(self._b.lib.ast_aw_take_begin(self._aw))

    def take_end(self, prev: int) -> Waker | None:
        """If `prev` was WAITING: take the stored waker and clear WAKING."""
        if self._closed:
            raise ValueError("take_end: the AtomicWaker is closed")
        out = self._b.ffi.new("struct ast_raw_waker *")
        if self._check(self._b.lib.ast_aw_take_end(self._aw, int(prev), out)):
            return self._taken(out)
        return None

    # -- inspection and lifetime -------------------------------------------

    @property
    def state(self) -> int:
        return int(self._b.lib.ast_aw_state(self._aw))

    @property
    def stored_task_id(self) -> int | None:
        """The task of the stored waker, or None."""
        w = self._b.lib.ast_aw_peek(self._aw)
        if w.vtable == self._b.ffi.NULL:
            return None
        return int(self._b.lib.ast_task_id(self._b.ffi.cast("struct ast_task *", w.data)))

    def close(self) -> bool:
        """Drop the stored waker, if any (True if there was one).  Idempotent."""
        if self._closed:
            return False
        self._closed = True
        return bool(self._check(self._b.lib.ast_aw_drop(self._aw)))

    def __enter__(self) -> AtomicWaker:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        if not getattr(self, "_closed", True):
            try:
                tid = self.stored_task_id
                if tid is not None:
                    self._b._leaks.append(tid)
                    warnings.warn(f"an AtomicWaker holding a waker of task {tid} was garbage-collected "
                                  "without close(): the waker's reference leaks", ResourceWarning, stacklevel=2)  # fmt: skip
            except Exception:
                pass

    def __repr__(self) -> str:
        names = {0: "WAITING", 1: "REGISTERING", 2: "WAKING", 3: "REGISTERING|WAKING"}
        return f"<AtomicWaker {names.get(self.state, self.state)} stored={self.stored_task_id}>"
