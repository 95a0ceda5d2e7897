"""Target `impl` (waker area): the reference executor's C wakers, run queue and AtomicWaker.

Every spec step is taken on `asyncspec.impl.task` (impl/task/ through
cffi): tasks spawned on a `RunQueue`, `Waker`s whose data pointer is the C
task header and whose vtable is C, `poll_next` with the spec's wake during
the poll, and `AtomicWaker`'s split steps.  What a step did is read back
from the C layer itself: the per-task vtable call counters, each task's
state word (reference count), the freed-task registry and the run queue.

The call counters give how many calls of each kind a step made, not their
order, so this target compares calls in a canonical order (`project`).
It claims the executor and AtomicWaker rules; it has no bare waker data,
no `Waker::noop` and no `Context` (Python polls through the run queue),
so those steps are never asked of it.
"""

from __future__ import annotations

from typing import Any, Hashable, Mapping

from asyncspec.spec.waker.machine import AW_NAMES, T, W
from asyncspec.conformance.target import Target

_NAMES = ("clone", "wake", "wake_by_ref", "drop")


def canonical(calls) -> tuple:
    """Calls sorted by task, then clone / wake / wake_by_ref / drop."""
    return tuple(sorted(calls, key=lambda c: (c[1], _NAMES.index(c[0]))))


class ImplWaker(Target):
    name = "impl"
    area = "waker"
    features = frozenset({"executor", "atomic_waker"})
    description = "The reference executor's C wakers (impl/task/): vtable, task state word, run queue, AtomicWaker."

    requires = ("asyncspec.impl.task",)
    requires_hint = "the C task layer is not built (reinstall asyncspec)"

    @classmethod
    def _api_cls(cls):
        from asyncspec.impl import task

        return task.INSTALLED

    def _api(self):
        return self._api_cls()

    # ------------------------------------------------------------ lifetime

    def open(self) -> None:
        self.api = self._api()
        self.q = self.api.RunQueue()
        self.tasks: list[Any] = [None] * T
        self.index: dict[int, int] = {}  # C task id -> spec task index
        self.slots: list[Any] = [None] * W
        self.aw = self.api.AtomicWaker()
        self.flag = False
        self.c_slot = 0
        self.prev = 0  # the state aw_take saw
        self.taken = None

    def close(self) -> None:
        for w in self.slots:
            if w is not None and w.consumed is None:
                w.drop()
        if self.taken is not None and self.taken.consumed is None:
            self.taken.drop()
        stored = self.aw.take()
        if stored is not None:
            stored.drop()
        self.q.close()
        self.api.take_leaks()  # forgotten wakers leak on purpose (mem::forget)

    # ------------------------------------------------------------ observing

    def _counts(self):
        return [t.calls() if t is not None else None for t in self.tasks]

    def _observe(self, before, result=None):
        calls = []
        for i, (b, t) in enumerate(zip(before, self.tasks)):
            if t is None:
                continue
            a = t.calls()
            b = b or (0, 0, 0, 0)
            for k, name in enumerate(_NAMES):
                calls.extend([(name, i)] * (a[k] - b[k]))
        refs = tuple(0 if t is None or t.freed else t.state().refs for t in self.tasks)
        freed = tuple(t is not None and t.freed for t in self.tasks)
        queue = tuple(self.index[i] for i in self.q.queued())
        return (canonical(calls), result, refs, freed, queue)

    def project(self, state, action: str, obs: Hashable) -> Hashable:
        if isinstance(obs, tuple) and len(obs) == 5:
            return (canonical(obs[0]),) + obs[1:]
        return obs

    # ------------------------------------------------------------ the steps

    def perform(self, action: str, args: Mapping[str, Any]) -> Hashable:
        before = self._counts()
        result = self.step_method(action)(**args)
        return self._observe(before, result)

    def do_make(self, task: int, kind: str):
        if kind != "spawned":
            raise NotImplementedError("impl has no bare waker data; tasks are spawned")
        t = self.q.spawn()
        self.tasks[task] = t
        self.index[t.id] = task

    def do_new(self, slot: int, task: int):
        self.slots[slot] = self.tasks[task].waker()

    def do_clone(self, src: int, dst: int):
        self.slots[dst] = self.slots[src].clone()

    def do_drop(self, slot: int):
        self.slots[slot].drop()
        self.slots[slot] = None

    def do_wake(self, slot: int):
        self.slots[slot].wake()
        self.slots[slot] = None

    def do_wake_by_ref(self, slot: int):
        self.slots[slot].wake_by_ref()

    def do_will_wake(self, a: int, b: int):
        return self.slots[a].will_wake(self.slots[b])

    def do_clone_from(self, dst: int, src: int):
        self.slots[dst].clone_from(self.slots[src])

    def do_forget(self, slot: int):
        self.slots[slot].forget()
        self.slots[slot] = None

    def do_poll(self, result: str, during: str):
        api = self.api

        def step(task, cx):
            if during != "none":
                how, s = during.split(":")
                s = int(s)
                if how == "wake":
                    self.slots[s].wake()
                    self.slots[s] = None
                else:
                    self.slots[s].wake_by_ref()
            return api.READY if result == "ready" else api.PENDING

        polled = self.q.poll_next(step)
        if polled is None:
            raise RuntimeError("the run queue was empty")
        return self.index[polled.task.id]

    def do_drop_join(self, task: int):
        self.tasks[task].drop_join_handle()

    # AtomicWaker, step by step ---------------------------------------------

    def do_aw_register(self, slot: int):
        self.c_slot = slot
        return AW_NAMES[self.aw.register_begin(self.slots[slot])]

    def do_aw_store(self):
        self.aw.register_store(self.slots[self.c_slot])

    def do_aw_unlock(self):
        # The state it found: REGISTERING, or REGISTERING|WAKING when a take came in.
        return AW_NAMES[3] if self.aw.register_end() else AW_NAMES[1]

    def do_aw_check(self):
        return self.flag

    def do_aw_set(self):
        self.flag = True

    def do_aw_take(self):
        self.prev = self.aw.take_begin()
        return AW_NAMES[self.prev]

    def do_aw_take_end(self):
        self.taken = self.aw.take_end(self.prev)
        return -1 if self.taken is None else self.index[self.taken.task_id]

    def do_aw_wake(self):
        if self.taken is not None:
            self.taken.wake()
            self.taken = None

    def do_aw_round(self):
        self.flag = False


TARGETS = [ImplWaker]
