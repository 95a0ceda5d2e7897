"""`asyncspec bench`: speed, as ratios against peers measured in the same run.

* conformance steps per second of the readiness machine (model + kernel,
  against `impl`, and against `stdlib-epoll` for comparison);
* the cost of one `Poll.poll` returning one ready event, relative to
  `select.epoll.poll` on the same kind of source in the same process;
* fibers: ns per context switch in a pure C ping-pong, ours against glibc's
  swapcontext (the `ucontext` peer, which also switches the signal mask
  with a system call) where it is built; and the Python-driven resume +
  yield round trip of our switcher against a greenlet switch pair;
* wakers: wake_by_ref + poll cycles through our C wakers and run queue
  (driven from Python, and all in C) against a pure-Python waker with the
  same state logic; and the delay-server demo's wall time for 1,000
  concurrent requests against the sum (and the longest) of their delays.

Timings are medians of several repeats; only the ratios are meant to be
compared across machines.
"""

from __future__ import annotations

import os
import select
import statistics
import time


def _median_ns_per_call(fn, calls: int, repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        started = time.perf_counter_ns()
        fn(calls)
        samples.append((time.perf_counter_ns() - started) / calls)
    return statistics.median(samples)


def poll_cost(calls: int, repeats: int) -> tuple[float, float]:
    """ns per poll (and reading its one event) with one ready level-triggered event: (ours, select.epoll)."""
    from asyncspec import impl

    efd = os.eventfd(1, os.EFD_NONBLOCK | os.EFD_CLOEXEC)  # readable, stays readable
    try:
        with impl.Poll() as poll:
            poll.registry().register(efd, impl.Token(1), impl.Interest.READABLE, trigger=impl.Trigger.LEVEL)
            events = impl.Events(8)

            # Both sides poll and read every returned event's token and flags.
            def ours(n):
                p, e = poll.poll, events
                for _ in range(n):
                    p(e, 0)
                    for ev in e:
                        ev.token, ev.raw

            assert poll.poll(events, 0) == 1
            ep = select.epoll()
            try:
                ep.register(efd, select.EPOLLIN)

                def stdlib(n):
                    p = ep.poll
                    for _ in range(n):
                        for fd, flags in p(0, 8):
                            pass

                assert len(ep.poll(0, 8)) == 1
                # Interleave the two so drift affects both alike.
                a, b = [], []
                for _ in range(repeats):
                    a.append(_median_ns_per_call(ours, calls, 1))
                    b.append(_median_ns_per_call(stdlib, calls, 1))
                return statistics.median(a), statistics.median(b)
            finally:
                ep.close()
    finally:
        os.close(efd)


def conformance_rate(target: str, examples: int) -> tuple[float, int]:
    from asyncspec.conformance.engine.runner import run

    res = run("readiness", target, max_examples=examples, seed=0)
    if not res.ok:
        raise SystemExit(f"bench: {target} failed conformance; fix that first")
    return res.recorder.steps / res.seconds, res.recorder.steps


def fiber_costs(calls: int, repeats: int) -> dict[str, float]:
    """ns: C switch (ours; glibc swapcontext's as "ucontext_switch" where built),
    Python resume+yield round trip (ours), greenlet switch pair."""
    from asyncspec.conformance.benchmarks import fibers
    from asyncspec.conformance.targets.impl import probe as fiber

    out = {}
    out["c_switch"] = statistics.median(fibers.bench_pingpong(calls * 10) / (calls * 20) for _ in range(repeats))
    try:
        from asyncspec.conformance.targets.c.ucontext._ucontext import lib as ucontext
    except ImportError:
        pass
    else:
        samples = [ucontext.asu_bench_pingpong(calls * 10) for _ in range(repeats)]
        if all(s > 0 for s in samples):  # per switch: two swapcontext calls per round trip
            out["ucontext_switch"] = statistics.median(s / (calls * 20) for s in samples)

    stack = fiber.Stack.allocate(64 * 1024)
    f = fiber.Fiber(stack, [fiber.Loop()])

    def ours(n):
        r = f.resume
        for _ in range(n):
            r(0)

    import greenlet

    def body(x):
        parent = greenlet.getcurrent().parent
        while True:
            x = parent.switch(x + 1)

    g = greenlet.greenlet(body)

    def theirs(n):
        sw = g.switch
        for _ in range(n):
            sw(0)

    try:
        a, b = [], []
        for _ in range(repeats):
            a.append(_median_ns_per_call(ours, calls, 1))
            b.append(_median_ns_per_call(theirs, calls, 1))
        out["py_roundtrip"], out["greenlet_pair"] = statistics.median(a), statistics.median(b)
    finally:
        f.close()
        stack.free()
        g.throw(greenlet.GreenletExit)
    return out


def waker_costs(calls: int, repeats: int, requests: int) -> None:
    """Print wake cycles (ours against a pure-Python waker) and the delay-server demo's wall time."""
    import subprocess
    import sys

    from asyncspec.conformance.benchmarks import wakes

    runs = [wakes.bench_wakes(calls) for _ in range(repeats)]
    c = statistics.median(r.c for r in runs)
    py = statistics.median(r.python for r in runs)
    native = statistics.median(wakes.bench_wakes_native(calls * 10) for _ in range(repeats))
    print(f"  wake_by_ref + poll, from Python: impl {c:8.0f} ns   Python waker {py:8.0f} ns   ratio {c / py:5.2f}x")
    print(f"  wake_by_ref + poll, all in C:    impl {native:8.1f} ns   ({1e9 / native:,.0f} wakes/s)")
    client = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "examples", "delay_server", "client.py")
    if not os.path.exists(client):
        print("  delay server demo: not measured (docs/examples is not installed with the package)")
        return
    done = subprocess.run(
        [sys.executable, client, "--requests", str(requests), "--seed", "1"], capture_output=True, text=True, timeout=120
    )
    line = (done.stdout.strip().splitlines() or [done.stderr.strip()])[-1]
    print(f"  delay server demo:               {line}")


def main(quick: bool = False) -> int:
    calls, repeats, examples = (2000, 3, 30) if quick else (20000, 7, 300)
    print("asyncspec bench" + (" (quick)" if quick else ""))
    ours, peer = poll_cost(calls, repeats)
    print(f"  Poll.poll, 1 ready event:        impl {ours:8.0f} ns   select.epoll {peer:8.0f} ns   ratio {ours / peer:5.2f}x")
    rate_impl, steps_impl = conformance_rate("impl", examples)
    rate_std, steps_std = conformance_rate("stdlib-epoll", examples)
    print(
        f"  readiness conformance steps/s:   impl {rate_impl:8.0f}      stdlib-epoll {rate_std:8.0f}      "
        f"ratio {rate_impl / rate_std:5.2f}x   ({steps_impl} and {steps_std} steps)"
    )
    waker_costs(calls, repeats, 200 if quick else 1000)
    try:
        fc = fiber_costs(calls, repeats)
    except ImportError as e:
        print(f"  fibers: not measured ({e})")
        return 0
    print(f"  fiber switch, C ping-pong:       impl {fc['c_switch']:8.1f} ns   (targets: fcontext ~9 ns, corosensei ~2 ns)")
    if "ucontext_switch" in fc:
        uc = fc["ucontext_switch"]
        print(f"  fiber switch vs swapcontext:     impl {fc['c_switch']:8.1f} ns   ucontext {uc:8.1f} ns   ratio {fc['c_switch'] / uc:5.2f}x")
    else:
        print("  fiber switch vs swapcontext:     not measured (the ucontext peer is not built here)")
    print(
        f"  fiber resume+yield from Python:  impl {fc['py_roundtrip']:8.0f} ns   greenlet pair {fc['greenlet_pair']:8.0f} ns   "
        f"ratio {fc['py_roundtrip'] / fc['greenlet_pair']:5.2f}x"
    )
    return 0
