"""`impl` for fibers: asyncspec's own switcher (asyncspec.impl.fiber), through its public API.

Each spec program becomes a probe of C operations: yieldK is
Yield(k, add=1) then Add(100); overflow recurses into the guard page;
nestJ alternates Resume(J) and Yield (J bound at creation); self resumes
itself.  A resume the switcher refuses raises ValueError; the target
answers with the fiber's state, as the spec words it.

Subclasses may drive another build of the same C layer (`_api`), such as the
deliberately broken switchers of tests/fixtures/broken_switchers.py.
"""

from __future__ import annotations

from asyncspec.conformance.areas.fiber.target import FiberTarget
from asyncspec.spec.fiber.machine import FP_CONTROL_MASK, reg_values

ROUNDS = 64  # nested bodies alternate resume/yield this many times (more than any run's steps)
STACK = 64 * 1024


#: What the targets over the reference switcher need (fiber and pin): the
#: probe interpreter, which runs on the installed switcher.
SWITCHER = ("asyncspec.conformance.targets.impl.probe",)
SWITCHER_HINT = "the fiber switcher is built for x86-64 Linux only"


class ImplFiber(FiberTarget):
    name = "impl"
    features = frozenset({"nested", "errors", "guard", "abi", "stack", "df", "sigmask"})
    description = "asyncspec.impl.fiber: the reference C + assembly switcher (x86-64 SysV)."

    requires = SWITCHER
    requires_hint = SWITCHER_HINT

    def _api(self):
        """The fiber API this target drives: the installed build's (asyncspec.impl.fiber)."""
        from asyncspec.conformance.targets.impl import probe as fiber

        return fiber

    def open(self):
        self._f = self._api()
        self._slots: dict = {}

    def close(self):
        for slot in list(self._slots):
            self.do_free(slot)

    def _probe(self, prog: str):
        f = self._f
        if prog.startswith("yield"):
            return [f.Yield(times=int(prog[5:]), add=1), f.Add(100)]
        if prog == "overflow":
            return [f.Recurse(depth=1 << 40)]
        if prog == "self":
            return [f.Resume("self"), f.Yield(1)] * ROUNDS
        target = self._slots[int(prog[4:])]
        return [f.Resume(target), f.Yield(1)] * ROUNDS

    def do_create(self, slot, prog):
        stack = self._f.Stack.allocate(STACK)
        self._slots[slot] = self._f.Fiber(stack, self._probe(prog))
        return ("ok",)

    def do_resume(self, slot, value):
        fib = self._slots.get(slot)
        if fib is None:
            return ("err", "none")
        try:
            status, out = fib.resume(value)
        except ValueError:
            return ("err", {"FINISHED": "finished", "FAILED": "failed", "RUNNING": "running"}.get(fib.state.name, fib.state.name.lower()))
        if status.name == "FAILED":
            return ("failed", "overflow")
        return (status.name.lower(), out)

    def do_free(self, slot):
        fib = self._slots.pop(slot, None)
        if fib is None:
            return ("err", "none")
        stack = fib.stack
        fib.close()
        if not stack.freed:
            stack.free()
        return ("ok",)

    # ABI experiments ------------------------------------------------------------

    def do_entry(self, kind, size, offset):
        f = self._f
        buf = None
        if kind == "mmap":
            stack = f.Stack.allocate(size)
            start = stack.guard[0]
        else:
            buf = bytearray(size + offset)
            stack = f.Stack.from_buffer(buf, offset, size)
            start = f.ffi.cast("uintptr_t", f.ffi.from_buffer(buf))
            start = int(start)
        lo, hi = stack.base, stack.top  # the usable range the switcher says it gives the fiber
        try:
            with f.Fiber(stack, []) as fib:
                fib.resume(0)
                sp, fp = fib.entry_sp, fib.entry_fp
        finally:
            stack.free()
        return ("entry", start, sp, fp, lo, hi)

    def do_regs(self, seed):
        f = self._f
        mine, main = reg_values(seed, 0), reg_values(seed, 1)
        stack = f.Stack.allocate(STACK)
        try:
            with f.Fiber(stack, [f.Registers(mine)]) as fib:
                # The main context holds its values across both resumes: it
                # checks the switch back from the yield and from the finish,
                # and never returns to Python with registers a switch lost.
                _status, _v, after_yield = fib.resume_with_registers(0, main)
                _status, _v, after_finish = fib.resume_with_registers(0, main)
                fiber_after = fib.results[0]
        finally:
            stack.free()
        main_after = next((m for m in (after_yield, after_finish) if m != main), main)
        return ("regs", tuple(fiber_after), tuple(main_after))

    def do_fpctl(self, fiber, main):
        f = self._f
        saved = f.fp_control()
        stack = f.Stack.allocate(STACK)
        try:
            with f.Fiber(stack, [f.FpControl(fiber)]) as fib:
                f.set_fp_control(main)
                fib.resume(0)
                main_after = f.fp_control()
                fib.resume(0)
                _entry, fiber_after = fib.results[0]
        finally:
            f.set_fp_control(saved)
            stack.free()
        return ("fp", fiber_after & FP_CONTROL_MASK, main_after & FP_CONTROL_MASK)

    def do_df(self):
        f = self._f
        stack = f.Stack.allocate(STACK)
        try:
            with f.Fiber(stack, [f.DirectionFlag()]) as fib:
                fib.resume(0)
                main_after = f.direction_flag()
                fib.resume(0)
                at_entry, fiber_after = fib.results[0]
        finally:
            stack.free()
        return ("df", at_entry, main_after, fiber_after)

    def do_sigmask(self, sig):
        import signal

        f = self._f
        num = signal.Signals[sig]
        # The thread's mask as Python had it; the signal unblocked for the experiment.
        saved = signal.pthread_sigmask(signal.SIG_UNBLOCK, [num])
        try:
            stack = f.Stack.allocate(STACK)
            try:
                with f.Fiber(stack, [f.SignalMask(int(num))]) as fib:
                    fib.resume(0)  # the fiber blocks it and yields
                    main_after = num in signal.pthread_sigmask(signal.SIG_UNBLOCK, [num])
                    fib.resume(0)  # the fiber reads it again
                    at_start, fiber_after = fib.results[0]
            finally:
                stack.free()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, saved)
        return ("sigmask", at_start, int(main_after), fiber_after)

    def do_small_stack(self, kind, size, offset):
        f = self._f
        if kind == "mmap":
            try:
                f.Stack.allocate(size).free()
            except ValueError:
                return ("err", "too-small")
            return ("ok",)
        buf = bytearray(size + offset)
        start = int(f.ffi.cast("uintptr_t", f.ffi.from_buffer(buf))) if buf else 0
        try:
            f.Stack.from_buffer(buf, offset, size).free()
        except ValueError:
            return ("err", start)
        return ("ok", start)


TARGETS = [ImplFiber]
