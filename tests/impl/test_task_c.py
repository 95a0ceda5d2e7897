"""The reference executor's C tasks and wakers (asyncspec.impl.task), scenario by scenario.

Every semantic rule of impl/task/ has a scenario here: the vtable's
accounting, notify's coalescing, a wake during a poll, the free at the last
reference and the quarantine's use-after-free reports, each deliberately
broken build (fixtures/broken_builds.py) doing what its patch says,
AtomicWaker (whole operations, every interleaving of its split steps, and
real threads: fixtures/task_stress.c), and a long random run checked
against a model of the state word.

Each test leaves no live task and no leaked waker behind (the autouse
fixture checks).
"""

from __future__ import annotations

import gc
import itertools
import os
import random
import subprocess
import sys

import pytest
from asyncspec.impl import task
from tests.fixtures import broken_builds, task_stress
from tests.support.variant_builds import variant_dir
from asyncspec.impl.task import (
    PENDING,
    READY,
    AtomicWaker,
    Calls,
    Outcome,
    RunQueue,
    TaskState,
    TaskStatus,
    Waker,
    WakerError,
    WakerUseError,
)

# ---------------------------------------------------------------- fixtures


@pytest.fixture(autouse=True)
def no_leaks():
    gc.collect()
    live = task.live_tasks()
    task.take_leaks()
    yield
    gc.collect()
    assert task.leaked_wakers() == 0, f"wakers leaked: tasks {task.take_leaks()}"
    assert task.live_tasks() == live, "the test left live tasks behind"


@pytest.fixture
def q():
    with RunQueue() as rq:
        yield rq


# The test builds of the task layer (fixtures/broken_builds.py, and the
# stress tests'), in the run's directory of them (task_stress.DIR_ENV,
# shared with test_installed_builds).
_compiled = False
_variants: dict = {}


def _compile_broken() -> str:
    """Compile every broken build at once, each in its own process (the
    machine's cores work in parallel; cffi's compile changes the working
    directory, so threads could not)."""
    global _compiled
    directory = variant_dir(task_stress.DIR_ENV)
    if not _compiled:
        code = ("import sys; sys.path.insert(0, sys.argv[3]); from tests.fixtures import broken_builds; "
                "broken_builds.executor_build(*sys.argv[1:3])")
        here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repository
        procs = [subprocess.Popen([sys.executable, "-c", code, b, directory, here], stderr=subprocess.PIPE)
                 for b in broken_builds.EXECUTOR]  # fmt: skip
        for b, p in zip(broken_builds.EXECUTOR, procs, strict=True):
            _, err = p.communicate()
            assert p.returncode == 0, f"building {b}: {err.decode(errors='replace')}"
        _compiled = True
    return directory


def variant(name: str) -> task.Api:
    """The task API over the broken build `name` (fixtures/broken_builds.py)."""
    if name not in _variants:
        _variants[name] = task.api(broken_builds.executor_build(name, _compile_broken()))
    return _variants[name]


def stress() -> task_stress.Stress:
    """The stress tests, in their test build (compiled on its own: a worker
    may run them without any broken build)."""
    if "stress" not in _variants:
        _variants["stress"] = task_stress.Stress(task_stress.build(variant_dir(task_stress.DIR_ENV)))
    return _variants["stress"]


def pending(task_, cx):
    return PENDING


def ready(task_, cx):
    return READY


def S(running=False, notified=False, complete=False, refs=0) -> TaskState:
    return TaskState(running, notified, complete, refs)


def C(clone=0, wake=0, wake_by_ref=0, drop=0) -> Calls:
    return Calls(clone, wake, wake_by_ref, drop)


def finish(q: RunQueue, *tasks) -> None:
    """Complete every task (if it is queued, or by waking it) and drop its JoinHandle."""
    for t in tasks:
        if not t.freed and not t.state().complete:
            w = t.waker()
            w.wake()
            while q.poll_next(ready) is not None:
                pass
        if t.holds_join_handle:
            t.drop_join_handle()


# ---------------------------------------------------------------- spawning, references


def test_spawn_holds_the_join_handle_the_owned_set_and_the_queue(q):
    a = q.spawn()
    b = q.spawn(schedule=False)
    assert b.id > a.id >= 1
    assert a.state() == S(notified=True, refs=3)  # JoinHandle + owned + queue
    assert b.state() == S(refs=2)  # JoinHandle + owned
    assert q.queued() == [a.id]
    assert a.calls() == b.calls() == C()
    assert a.holds_join_handle and a.holds_owned
    finish(q, a, b)


def test_a_new_waker_takes_a_reference_without_a_vtable_call(q):
    t = q.spawn(schedule=False)
    w = t.waker()
    assert t.state().refs == 3 and t.calls() == C()
    assert w.task_id == t.id and w.consumed is None
    w.drop()
    assert t.state().refs == 2 and t.calls() == C(drop=1)
    finish(q, t)


def test_clone_wake_by_ref_and_drop_accounting(q):
    t = q.spawn(schedule=False)
    w = t.waker()
    c = w.clone()
    assert t.calls() == C(clone=1) and t.state().refs == 4
    assert c.will_wake(w) and c is not w
    c.wake_by_ref()
    assert t.calls() == C(clone=1, wake_by_ref=1)
    assert t.state() == S(notified=True, refs=5)  # + the queue's reference, the instance kept
    c.drop()
    assert t.calls() == C(clone=1, wake_by_ref=1, drop=1) and t.state().refs == 4
    w.drop()
    assert t.calls() == C(clone=1, wake_by_ref=1, drop=2) and t.state().refs == 3
    finish(q, t)


def test_wake_consumes_the_instance_without_counting_a_drop(q):
    t = q.spawn(schedule=False)
    w = t.waker()
    w.wake()
    assert t.calls() == C(wake=1)  # no drop call
    assert t.state() == S(notified=True, refs=3)  # the waker's reference went to ... the queue's came
    assert q.queued() == [t.id]
    assert w.consumed == "was consumed by wake()"
    for op in ("wake", "drop", "wake_by_ref", "clone", "forget", "into_raw"):
        with pytest.raises(WakerUseError, match=f"{op} on a waker of task {t.id} that was consumed by wake"):
            getattr(w, op)()
    finish(q, t)


def test_wakes_coalesce_while_queued_and_the_queue_is_fifo(q):
    a, b = q.spawn(schedule=False), q.spawn(schedule=False)
    wa, wb = a.waker(), b.waker()
    for _ in range(5):
        wa.wake_by_ref()
    wb.wake_by_ref()
    wa.wake_by_ref()
    assert q.queued() == [a.id, b.id]  # each at most once, in order of their first wake
    assert a.state() == S(notified=True, refs=4)  # one queue reference, not five
    assert a.calls() == C(wake_by_ref=6)
    assert q.poll_next(pending).task == a
    assert q.poll_next(pending).task == b
    assert q.poll_next(pending) is None
    wa.drop()
    wb.drop()
    finish(q, a, b)


def test_a_wake_while_running_causes_exactly_one_more_poll(q):
    t = q.spawn()
    w = t.waker()
    seen = []

    def step(task_, cx):
        seen.append(task_.state())
        w.wake_by_ref()
        w.wake_by_ref()  # coalesces with the first
        cx.wake_by_ref()  # the borrowed waker too
        w.clone().wake()
        return PENDING

    assert q.poll_next(step).outcome is Outcome.REQUEUED
    assert seen == [S(running=True, refs=4)]  # NOTIFIED cleared when the poll began
    assert t.state() == S(notified=True, refs=4)  # the popped reference became the queue's
    assert q.queued() == [t.id]
    assert q.poll_next(pending).outcome is Outcome.IDLE  # the one more poll; no wake in it
    assert q.poll_next(pending) is None
    assert t.state() == S(refs=3)
    assert t.calls() == C(clone=1, wake=1, wake_by_ref=3)
    w.drop()
    finish(q, t)


def test_a_wake_while_running_then_ready_completes_without_a_requeue(q):
    t = q.spawn()
    w = t.waker()

    def step(task_, cx):
        w.wake_by_ref()
        return READY

    assert q.poll_next(step).outcome is Outcome.COMPLETE
    assert q.queued() == []
    s = t.state()
    assert s.complete and not s.running and s.refs == 2  # JoinHandle + waker
    w.drop()
    t.drop_join_handle()
    assert t.freed


def test_a_wake_after_complete_does_nothing(q):
    t = q.spawn()
    w = t.waker()
    q.poll_next(ready)
    before = t.state()
    w.wake_by_ref()
    assert t.state() == before and q.queued() == []
    w.clone().wake()  # consumes its own instance: the count goes back
    assert t.state() == before and q.queued() == []
    assert t.calls() == C(clone=1, wake=1, wake_by_ref=1)
    w.drop()
    t.drop_join_handle()


def test_the_borrowed_context_waker(q):
    t = q.spawn()
    kept = []

    def step(task_, cx):
        assert cx.borrowed and cx.task_id == t.id
        assert task_.state().refs == 3  # JoinHandle + owned + popped: the borrow took none
        kept.append(cx.clone())
        assert cx.will_wake(kept[0])
        with pytest.raises(WakerUseError, match="borrowed context waker of task .* only lent for the poll"):
            cx.wake()
        with pytest.raises(WakerUseError, match="borrowed"):
            cx.drop()
        with pytest.raises(WakerUseError, match="borrowed"):
            cx.forget()
        kept.append(cx)
        return PENDING

    q.poll_next(step)
    assert t.calls() == C(clone=1)  # the poll itself made no call
    owned, cx = kept
    with pytest.raises(WakerUseError, match="borrowed for a poll that has ended"):
        cx.wake_by_ref()
    with pytest.raises(WakerUseError, match="borrowed for a poll that has ended"):
        cx.clone()
    owned.wake()
    finish(q, t)


def test_will_wake_and_clone_from_follow_std(q):
    a, b = q.spawn(schedule=False), q.spawn(schedule=False)
    wa, wb = a.waker(), b.waker()
    wa2 = wa.clone()
    assert wa.will_wake(wa2) and not wa.will_wake(wb)
    assert a.calls() == C(clone=1) and b.calls() == C()  # will_wake made no call
    wa2.clone_from(wa)  # will_wake: nothing at all
    assert a.calls() == C(clone=1)
    wa2.clone_from(wb)  # clone b, then drop the instance of a
    assert a.calls() == C(clone=1, drop=1) and b.calls() == C(clone=1)
    assert wa2.task_id == b.id and wa2.will_wake(wb)
    assert a.state().refs == 3 and b.state().refs == 4
    for w in (wa, wb, wa2):
        w.drop()
    finish(q, a, b)


def test_forget_keeps_the_reference_and_is_not_a_leak_but_garbage_collection_is(q):
    t = q.spawn(schedule=False)
    w = t.waker()
    raw = w.raw
    w.forget()
    assert t.state().refs == 3 and task.leaked_wakers() == 0
    Waker.from_raw(raw).drop()  # give the forgotten instance back
    w2 = t.waker()
    raw2 = w2.raw
    with pytest.warns(ResourceWarning, match=f"waker of task {t.id} was garbage-collected"):
        del w2
        gc.collect()
    assert task.take_leaks() == [t.id]
    assert t.state().refs == 3  # the collector did not drop it
    Waker.from_raw(raw2).drop()
    assert t.calls() == C(drop=2)
    finish(q, t)


def test_into_raw_and_from_raw_move_ownership(q):
    t = q.spawn(schedule=False)
    w = t.waker()
    raw = w.into_raw()
    assert w.consumed == "was turned into a RawWaker by into_raw()" and raw.task_id == t.id
    assert t.state().refs == 3 and task.leaked_wakers() == 0
    w2 = Waker.from_raw(raw)
    w2.wake_by_ref()
    w2.drop()
    assert t.calls() == C(wake_by_ref=1, drop=1)
    finish(q, t)


# ---------------------------------------------------------------- the last reference, quarantine


def test_freed_exactly_at_the_last_reference_in_every_order(q):
    # Each order of releasing JoinHandle (J), one waker (W, by drop or by
    # wake) and the owned set (O, at completion): freed only at the last.
    for order in itertools.permutations("JWO"):
        for waker_release in ("drop", "wake"):
            t = q.spawn(schedule=False)
            w = t.waker()
            for i, what in enumerate(order):
                assert not t.freed, (order, i)
                if what == "J":
                    t.drop_join_handle()
                elif what == "W":
                    getattr(w, waker_release)()
                    while q.poll_next(pending if "O" in order[i + 1 :] else ready):
                        pass  # a wake queued it: the queue's reference comes and goes
                else:
                    if t.state().notified:
                        q.poll_next(ready)
                    else:
                        w2 = t.waker()
                        w2.wake()
                        q.poll_next(ready)
                last = i == 2
                assert t.freed == last, (order, waker_release, i)
                if not last:
                    assert t.state().refs == 2 - i
            assert t.status is TaskStatus.QUARANTINED


def test_use_after_free_is_reported_not_done(q):
    t = q.spawn(schedule=False)
    w = t.waker()
    raw = w.raw  # an unchecked copy of the instance's pointers
    c = w.clone()
    q0 = task.quarantined()
    c.drop()
    w.drop()
    t.drop_join_handle()
    finish_owned = t.waker  # the task still has its owned reference
    w3 = finish_owned()
    w3.wake()
    q.poll_next(ready)
    assert t.freed and t.status is TaskStatus.QUARANTINED
    assert task.quarantined() == q0 + 1
    assert t.calls() == C(clone=1, wake=1, drop=2)  # readable in quarantine
    with pytest.raises(WakerError, match=rf"^wake on task {t.id} after its last reference was dropped$") as e:
        raw.wake()
    assert (e.value.op, e.value.code, e.value.task_id) == ("wake", "AST_ERR_FREED", t.id)
    with pytest.raises(WakerError, match=rf"^drop on task {t.id} after its last reference was dropped$"):
        raw.drop()  # a drop twice
    with pytest.raises(WakerError, match=rf"^clone on task {t.id} after its last reference was dropped$"):
        raw.clone()  # a clone of a dropped waker
    with pytest.raises(WakerError, match=rf"^wake_by_ref on task {t.id} after"):
        raw.wake_by_ref()
    assert t.calls() == C(clone=1, wake=1, drop=2)  # the refused calls changed nothing
    with pytest.raises(WakerError, match=rf"state on task {t.id} after its last reference was dropped"):
        t.state()
    with pytest.raises(WakerError, match=rf"task {t.id} after its last reference was dropped"):
        t.waker()
    with pytest.raises(WakerError, match="after its last reference was dropped"):
        t.drop_join_handle()
    # The flush returns the memory: the handle answers by id, stale pointers are still caught.
    assert task.flush() >= 1
    assert task.quarantined() == 0
    assert t.status is TaskStatus.RELEASED and t.freed
    with pytest.raises(WakerError, match=rf"^wake on task {t.id} .* released by flush"):
        raw.wake()
    with pytest.raises(WakerError, match="released by flush"):
        t.calls()
    assert task.task_status(10**15) is TaskStatus.UNKNOWN


def test_a_join_handle_is_dropped_once(q):
    t = q.spawn(schedule=False)
    t.drop_join_handle()
    with pytest.raises(WakerError, match=f"drop of the JoinHandle of task {t.id}: the JoinHandle was already"):
        t.drop_join_handle()
    assert t.state().refs == 1
    finish(q, t)


def test_a_stale_waker_after_a_flush_never_touches_the_new_memory(q):
    # Waker objects keep the pointer; after a flush they check it by id
    # first, so a block malloc reused for a new task is never woken by mistake.
    t = q.spawn(schedule=False)
    w = t.waker()
    raw = w.raw
    w.drop()
    finish(q, t)
    task.flush()
    others = [q.spawn(schedule=False) for _ in range(8)]  # likely reuse the block
    with pytest.raises(WakerError, match="released by flush"):
        Waker.from_raw(raw).wake()
    assert all(o.calls() == C() for o in others)
    finish(q, *others)


# ---------------------------------------------------------------- polling edge cases


def test_a_step_that_raises_completes_the_task_and_the_error_propagates(q):
    t = q.spawn()

    def boom(task_, cx):
        raise KeyError("inside the poll")

    with pytest.raises(KeyError, match="inside the poll"):
        q.poll_next(boom)
    assert t.state() == S(complete=True, refs=1)
    t2 = q.spawn()
    with pytest.raises(TypeError, match=f"step_fn must return READY or PENDING, not 42 \\(task {t2.id} completes"):
        q.poll_next(lambda task_, cx: 42)
    assert t2.state().complete
    finish(q, t, t2)


def test_a_poll_cannot_poll_another(q):
    a = q.spawn()
    q.spawn()

    def nested(task_, cx):
        with pytest.raises(RuntimeError, match="from inside a poll"):
            q.poll_next(pending)
        return PENDING

    q.poll_next(nested)
    assert q.queued() == [a.id + 1]
    for t in q.tasks():
        finish(q, t)


def test_close_cancels_what_has_not_completed(q):
    a, b, c = q.spawn(), q.spawn(schedule=False), q.spawn()
    q.poll_next(ready)  # a completes
    wb = b.waker()
    q.close()
    assert len(q) == 0
    assert b.cancelled and b.state() == S(complete=True, refs=2)  # JoinHandle + waker
    assert c.state() == S(notified=True, complete=True, refs=1)  # its queue entry was released
    wb.wake_by_ref()  # does nothing now
    assert b.state() == S(complete=True, refs=2)
    wb.drop()
    for t in (a, b, c):
        t.drop_join_handle()
        assert t.freed
    assert q.live_tasks() == 0
    with pytest.raises(ValueError, match="closed"):
        q.spawn()


# ---------------------------------------------------------------- the broken builds


def test_broken_lost_wake_ignores_a_wake_while_running():
    good, bad = task.INSTALLED, variant("lost-wake")
    for api, expected in ((good, Outcome.REQUEUED), (bad, Outcome.IDLE)):
        with api.RunQueue() as rq:
            t = rq.spawn()
            w = t.waker()

            def wake_while_running(task_, cx, w=w):
                w.wake_by_ref()
                return PENDING

            polled = rq.poll_next(wake_while_running)
            assert polled.outcome is expected, api
            assert t.state().notified == (expected is Outcome.REQUEUED)
            assert rq.queued() == ([t.id] if expected is Outcome.REQUEUED else [])
            # A wake while idle still works.
            w.wake()
            assert rq.queued() == [t.id]
            rq.poll_next(ready)
            t.drop_join_handle()
        assert api.live_tasks() == 0


def test_broken_double_enqueue_queues_a_notified_task_twice():
    api = variant("double-enqueue")
    with api.RunQueue() as rq:
        t = rq.spawn(schedule=False)
        w = t.waker()
        w.wake_by_ref()
        w.wake_by_ref()
        assert rq.queued() == [t.id, t.id]  # the rule broken: queued at most once
        assert t.state() == S(notified=True, refs=5)  # one reference per entry
        assert rq.poll_next(pending).outcome is Outcome.IDLE
        assert rq.poll_next(pending).outcome is Outcome.IDLE  # a second poll for one wake
        w.wake_by_ref()
        w.wake_by_ref()
        assert rq.poll_next(ready).outcome is Outcome.COMPLETE
        assert rq.poll_next(pending).outcome is Outcome.SKIPPED  # the stale entry: not polled
        assert rq.poll_next(pending) is None
        w.drop()
        t.drop_join_handle()
        assert t.freed
    assert api.live_tasks() == 0


def test_broken_wake_drops_counts_a_drop_and_frees_early():
    api = variant("wake-drops")
    with api.RunQueue() as rq:
        t = rq.spawn(schedule=False)
        w = t.waker()
        w.wake()
        assert t.calls() == C(wake=1, drop=1)  # the rule broken: wake counted a drop
        assert t.state() == S(notified=True, refs=2)  # should be 3: JoinHandle + owned + queue
        rq.poll_next(ready)  # releases the popped and the owned references: 0
        assert t.freed  # while its JoinHandle still held a reference
        with pytest.raises(api.WakerError, match=f"drop of the JoinHandle on task {t.id} after its last reference"):
            t.drop_join_handle()
    assert api.live_tasks() == 0


def test_broken_refcount_frees_a_task_its_wakers_still_use():
    api = variant("refcount")
    with api.RunQueue() as rq:
        t = rq.spawn(schedule=False)
        w = t.waker()
        c = w.clone()
        assert t.calls() == C(clone=1) and t.state().refs == 3  # should be 4
        c.drop()
        w.drop()  # refs 1 (owned) ...
        t.drop_join_handle()  # ... 0: freed, though the owned set still holds it
        assert t.freed and t.calls() == C(clone=1, drop=2)
    assert api.live_tasks() == 0


def test_broken_refcount_use_after_free_reaches_c():
    api = variant("refcount")
    with api.RunQueue() as rq:
        t = rq.spawn(schedule=False)
        t.drop_join_handle()
        w = t.waker()  # refs 2: owned + w
        c = w.clone()  # refs still 2
        w.drop()  # 1
        w2 = c.clone()  # still 1
        w2.drop()  # 0: freed while c is live
        assert t.freed
        with pytest.raises(api.WakerError, match=f"^wake on task {t.id} after its last reference was dropped$"):
            c.wake()
    assert api.live_tasks() == 0


def test_the_unchecked_build_frees_at_once():
    api = variant("unchecked")
    with api.RunQueue() as rq:
        t = rq.spawn()
        rq.poll_next(ready)
        t.drop_join_handle()
        assert t.status is TaskStatus.RELEASED and api.quarantined() == 0
    assert api.live_tasks() == 0


def test_an_executor_over_the_lost_wake_build_deadlocks_where_the_real_one_runs():
    from asyncspec.impl.executor import DeadlockError, Executor, yield_now

    async def main():
        await yield_now()  # wake_by_ref while running, then PENDING
        return "done"

    with Executor() as ex:
        assert ex.block_on(main()) == "done"
    api = variant("lost-wake")
    with Executor(api=api) as ex:
        with pytest.raises(DeadlockError, match="can never finish"):
            ex.block_on(main())
    assert api.live_tasks() == 0


# ---------------------------------------------------------------- AtomicWaker


def test_atomic_waker_whole_operations(q):
    a, b = q.spawn(schedule=False), q.spawn(schedule=False)
    wa, wb = a.waker(), b.waker()
    aw = AtomicWaker()
    assert aw.state == AtomicWaker.WAITING and aw.stored_task_id is None
    assert aw.take() is None and aw.wake() is False
    aw.register(wa)
    assert aw.stored_task_id == a.id and a.calls() == C(clone=1) and a.state().refs == 4
    aw.register(wa)  # will_wake the stored one: kept, no call (futures-rs)
    assert a.calls() == C(clone=1)
    aw.register(wb)  # clone b, drop the stored a
    assert a.calls() == C(clone=1, drop=1) and b.calls() == C(clone=1) and aw.stored_task_id == b.id
    assert aw.wake() is True  # the stored clone is woken, consumed
    assert b.calls() == C(clone=1, wake=1) and q.queued() == [b.id] and aw.stored_task_id is None
    aw.register(wa)
    taken = aw.take()
    assert taken.task_id == a.id and aw.stored_task_id is None and a.state().refs == 4
    taken.drop()
    aw.register(wa)
    assert aw.close() is True  # dropping an AtomicWaker drops what it holds
    assert a.calls() == C(clone=3, drop=3) and a.state().refs == 3
    wa.drop()
    wb.drop()
    finish(q, a, b)


def test_atomic_waker_register_with_a_borrowed_waker_and_a_collected_one_leaks(q):
    t = q.spawn()
    held = [AtomicWaker()]

    def register(task_, cx):
        held[0].register(cx)
        return PENDING

    q.poll_next(register)
    assert held[0].stored_task_id == t.id and t.calls() == C(clone=1)
    with pytest.warns(ResourceWarning, match="AtomicWaker holding a waker"):  # noqa: PT031
        held.clear()
        gc.collect()
    assert task.take_leaks() == [t.id]
    # Give the leaked instance back: a waker of t, dropped.
    raw = t.waker().into_raw()
    Waker.from_raw(raw).drop()
    Waker.from_raw(raw).drop()
    finish(q, t)


def _program_register(aw, waker, flag, log):
    """The consumer: register (as its steps), then check the flag."""
    seen = aw.register_begin(waker)
    log.append(("begin", seen))
    yield
    if seen == AtomicWaker.WAITING:
        aw.register_store(waker)
        yield
        log.append(("end", aw.register_end()))
        yield
    log.append(("check", bool(flag)))


def _program_wake(aw, flag, taken, log):
    """The producer: set the flag, then wake (take_begin, take_end, wake)."""
    flag.append(True)
    yield
    prev = aw.take_begin()
    log.append(("take_begin", prev))
    yield
    w = aw.take_end(prev)
    yield
    if w is not None:
        taken.append(w.task_id)
        w.wake()


def _interleavings(n_a: int, n_b: int):
    """Every way to merge a steps of one program with b of the other (as 0/1 choices)."""
    for picks in itertools.combinations(range(n_a + n_b), n_a):
        order = [1] * (n_a + n_b)
        for i in picks:
            order[i] = 0
        yield order


@pytest.mark.parametrize("stored", ["empty", "same task", "other task"])
def test_atomic_waker_every_interleaving_of_one_register_and_one_wake(q, stored):
    """No schedule of the split steps loses the wake-up or leaks a waker.

    The consumer registers, then reads a flag; the producer sets the flag,
    then wakes.  If the consumer read the flag unset, the producer's wake
    must have reached the consumer's task.  Runs every interleaving of the
    two programs' steps (programs are generators: each `yield` is a step
    boundary; the register's steps after a failed begin are skipped)."""
    paths = set()
    runs = 0
    # Step counts are at most 4 each; run shorter programs out with no-ops.
    for order in _interleavings(4, 4):
        consumer = q.spawn(schedule=False)
        other = q.spawn(schedule=False)
        wc, wo = consumer.waker(), other.waker()
        aw = AtomicWaker()
        base_c, base_o = consumer.calls(), other.calls()
        if stored == "same task":
            aw.register(wc)
        elif stored == "other task":
            aw.register(wo)
        flag, taken, log = [], [], []
        progs = [_program_register(aw, wc, flag, log), _program_wake(aw, flag, taken, log)]
        for who in order:
            next(progs[who], None)  # a program that ended early skips its turns
        for p in progs:
            for _ in p:
                pass
        (flag_at_check,) = [seen for what, seen in log if what == "check"]
        paths.add(tuple(e for e in log if e[0] != "check"))
        woken = consumer.state().notified
        assert flag_at_check or woken, f"lost wake-up: {order} {log}"
        assert aw.state == AtomicWaker.WAITING, (order, log)
        # No leaked instance: after dropping what is stored, every instance
        # the AtomicWaker cloned was woken or dropped exactly once.
        aw.close()
        for t, base in ((consumer, base_c), (other, base_o)):
            d = t.calls()
            assert d.clone - base.clone == (d.wake - base.wake) + (d.drop - base.drop), (order, log, t)
        wc.drop()
        wo.drop()
        assert consumer.state().refs == 2 + woken and other.state().refs == 2 + other.state().notified
        finish(q, consumer, other)
        runs += 1
    assert runs == 70
    # The racy paths were all taken: a register that found a wake in
    # progress (and woke by reference), one whose end found WAKING and woke.
    begins = {e[1] for p in paths for e in p if e[0] == "begin"}
    ends = {e[1] for p in paths for e in p if e[0] == "end"}
    assert begins == {AtomicWaker.WAITING, AtomicWaker.WAKING}
    assert ends == {False, True}


def test_atomic_waker_steps_out_of_order_are_refused(q):
    t = q.spawn(schedule=False)
    w = t.waker()
    with AtomicWaker() as aw:  # noqa: SIM117 - one AtomicWaker, several checks
        with pytest.raises(WakerError, match="register_store/register_end without the registering lock"):
            aw.register_store(w)
        with pytest.raises(WakerError, match="without the registering lock"):
            aw.register_end()
        assert aw.register_begin(w) == AtomicWaker.WAITING
        assert aw.register_begin(w) == AtomicWaker.REGISTERING  # a second register does nothing
        assert aw.register_store(w) is True
        assert aw.register_end() is False
    w.drop()
    finish(q, t)


def test_atomic_waker_threaded_stress_loses_no_wake_up():
    r = stress().atomic_waker(20000, seed=7)
    assert r.iterations == 20000
    assert r.lost == 0, r
    assert r.saw_flag + r.woken == r.iterations
    assert r.refs_left == 0, r
    # Every clone the AtomicWaker made was woken or dropped; +1: the consumer's own waker, dropped.
    assert r.calls.clone + 1 == r.calls.wake + r.calls.drop, r
    assert r.seconds < 120, r  # a guard against a livelock, not a speed check (2 cores under load: ~10 s)


def test_remote_wakes_from_threads_are_never_lost():
    r = stress().remote_wakes(threads=2, iterations=20000)
    assert r.lost == 0 and r.refs_left == 0, r
    assert r.calls == C(clone=40000, wake=40000, wake_by_ref=40000, drop=1)
    assert 1 <= r.polls <= 80000


# ---------------------------------------------------------------- a long random run against a model


class _Model:
    """The state word's rules in plain Python, for the random run."""

    def __init__(self):
        self.refs: dict[int, int] = {}
        self.notified: dict[int, bool] = {}
        self.complete: dict[int, bool] = {}
        self.queue: list[int] = []

    def spawn(self, tid, schedule):
        self.refs[tid] = 3 if schedule else 2
        self.notified[tid] = schedule
        self.complete[tid] = False
        if schedule:
            self.queue.append(tid)

    def notify(self, tid, running=False):
        if self.complete[tid]:
            return
        if running:
            self.notified[tid] = True
        elif not self.notified[tid]:
            self.notified[tid] = True
            self.refs[tid] += 1
            self.queue.append(tid)


def test_100000_random_operations_leave_nothing_behind():
    rng = random.Random(20260523)
    m = _Model()
    tasks: dict[int, task.Task] = {}
    wakers: list[Waker] = []  # owned instances
    joins: list[int] = []
    awakers: list[AtomicWaker] = [AtomicWaker() for _ in range(3)]
    aw_held: list[int | None] = [None, None, None]
    ops = 0
    q0 = task.quarantined()
    live: list[int] = []  # ids that may have references left (pruned lazily)
    seen = {o: 0 for o in Outcome} | {"spawn": 0, "aw wake": 0, "freed": 0}

    def pick_live():
        while live:
            i = rng.randrange(len(live))
            tid = live[i]
            if m.refs[tid] > 0:
                return tid
            live[i] = live[-1]
            live.pop()
        return None

    with RunQueue() as rq:

        def check(tid):
            t = tasks[tid]
            if m.refs[tid] == 0:
                assert t.freed
                seen["freed"] += 1
                return
            s = t.state()
            assert s == TaskState(False, m.notified[tid], m.complete[tid], m.refs[tid]), (ops, tid)

        while ops < 100_000:
            ops += 1
            op = rng.random()
            if op < 0.04 or len(live) < 3:
                t = rq.spawn(schedule=rng.random() < 0.5)
                seen["spawn"] += 1
                tasks[t.id] = t
                joins.append(t.id)
                live.append(t.id)
                m.spawn(t.id, t.state().notified)
                check(t.id)
            elif op < 0.14:
                tid = pick_live()
                if tid is None:
                    continue
                wakers.append(tasks[tid].waker())
                m.refs[tid] += 1
            elif op < 0.26 and wakers:
                w = rng.choice(wakers)
                wakers.append(w.clone())
                m.refs[w.task_id] += 1
            elif op < 0.40 and wakers:
                w = rng.choice(wakers)
                w.wake_by_ref()
                m.notify(w.task_id)
                check(w.task_id)
            elif op < 0.50 and wakers:
                w = wakers.pop(rng.randrange(len(wakers)))
                w.wake()
                m.notify(w.task_id)
                m.refs[w.task_id] -= 1
                check(w.task_id)
            elif op < 0.60 and wakers:
                w = wakers.pop(rng.randrange(len(wakers)))
                w.drop()
                m.refs[w.task_id] -= 1
                check(w.task_id)
            elif op < 0.63 and joins:
                i = rng.randrange(len(joins))
                tid = joins[i]
                joins[i] = joins[-1]
                joins.pop()
                tasks[tid].drop_join_handle()
                m.refs[tid] -= 1
                check(tid)
            elif op < 0.70 and wakers:
                i = rng.randrange(3)
                w = rng.choice(wakers)
                awakers[i].register(w)
                if aw_held[i] != w.task_id:
                    if aw_held[i] is not None:
                        m.refs[aw_held[i]] -= 1
                    m.refs[w.task_id] += 1
                    aw_held[i] = w.task_id
            elif op < 0.73:
                i = rng.randrange(3)
                tid = aw_held[i]
                assert awakers[i].wake() == (tid is not None)
                if tid is not None:
                    seen["aw wake"] += 1
                    aw_held[i] = None
                    m.notify(tid)
                    m.refs[tid] -= 1
                    check(tid)
            else:
                # A poll: maybe wake things (itself among them) while running.
                expect = m.queue[0] if m.queue else None
                plan = rng.random()

                def step(task_, cx, plan=plan, expect=expect):
                    tid = task_.id
                    assert tid == expect
                    m.notified[tid] = False
                    if plan < 0.3:
                        cx.wake_by_ref()
                        m.notify(tid, running=True)
                    if plan < 0.5 and wakers:
                        w = rng.choice(wakers)
                        w.wake_by_ref()
                        m.notify(w.task_id, running=w.task_id == tid)
                    return READY if plan > 0.8 else PENDING

                polled = rq.poll_next(step)
                if expect is None:
                    assert polled is None
                    continue
                tid = m.queue.pop(0)
                seen[polled.outcome] += 1
                m.refs[tid] -= 1  # the popped reference ...
                if polled.outcome is Outcome.COMPLETE:
                    m.complete[tid] = True
                    m.refs[tid] -= 1  # ... and the owned set's
                elif polled.outcome is Outcome.REQUEUED:
                    m.refs[tid] += 1
                    m.queue.append(tid)
                else:
                    assert not m.notified[tid]
                check(tid)
                assert rq.queued() == m.queue
            if ops % 10_000 == 0:
                task.flush()  # stale pointers must keep being caught by id
        # Every path was taken, many times; and a complete task was never
        # found in the queue (it is queued at most once, never after completing).
        assert seen.pop(Outcome.SKIPPED) == 0
        assert min(seen.values()) > 1000, seen
        # Release everything.
        for aw in awakers:
            aw.close()
        for w in wakers:
            w.drop()
        for tid in joins:
            tasks[tid].drop_join_handle()
    assert rq.live_tasks() == 0
    assert all(t.freed for t in tasks.values())
    assert task.quarantined() >= q0
    task.flush()
    assert task.quarantined() == 0
