"""`ucontext`: glibc's makecontext/swapcontext as a peer switcher.

The C layer is asyncspec.conformance.targets.c.ucontext._ucontext
(conformance/targets/c/ucontext/peer.c): fibers on
mmap'd stacks with a guard page, running the spec's programs as C bodies
(yieldK, nestJ, self) and reporting a resume of a running or finished fiber
as an error code.

Features, and why not more:

* ``nested``, ``errors``: nested resumes and refused resumes are C bodies
  over the same resume call.
* ``abi``, ``sigmask``: the `sigmask` experiment runs a real fiber across
  two swapcontext calls; swapcontext saves and restores ``uc_sigmask``
  (FIB-SIG-2).
* no ``guard``: the guard page faults, but nothing here recovers from the
  SIGSEGV, so an overflow body would take the process down.
* no ``stack``: `do_entry` reports what makecontext really gives the entry
  function (on x86-64 rsp + 8 aligned to 16, as after a call, and rbp left
  at whatever the creating context's getcontext saved, not 0), which is
  not what the spec asks of a stack (a chain ending in 0); and the stack
  size is the caller's business, so there is no minimum to check.
"""

from __future__ import annotations

from asyncspec.conformance.areas.fiber.target import FiberTarget

STACK = 64 * 1024


class UcontextTarget(FiberTarget):
    name = "ucontext"
    profile = "ucontext"
    features = frozenset({"nested", "errors", "abi", "sigmask"})
    description = "glibc makecontext/swapcontext on guarded mmap stacks (peer; signal mask switched with the context)."

    requires = ("asyncspec.conformance.targets.c.ucontext._ucontext",)
    requires_hint = "the ucontext peer is built on Linux only"

    def open(self):
        from asyncspec.conformance.targets.c.ucontext._ucontext import ffi, lib

        self._ffi, self._lib = ffi, lib
        self._out = ffi.new("uintptr_t *")
        self._slots: dict = {}
        # A nested body holds a pointer to the fiber it resumes: keep that
        # struct allocated while the binder lives, even if its slot is freed
        # (its state is then NONE, and a resume of it is refused).
        self._bound: dict = {}

    def close(self):
        for slot in list(self._slots):
            self.do_free(slot)

    def _new(self, prog: int, count: int = 0, bound=None):
        ffi, lib = self._ffi, self._lib
        f = ffi.new("struct asu_fiber *")
        r = lib.asu_fiber_init(f, STACK, prog, count, bound if bound is not None else ffi.NULL)
        if r < 0:
            raise OSError(-r, f"asu_fiber_init failed ({r})")
        return f

    def do_create(self, slot, prog):
        lib = self._lib
        if prog.startswith("yield"):
            f = self._new(lib.ASU_PROG_YIELD, int(prog[5:]))
        elif prog.startswith("nest"):
            bound = self._slots[int(prog[4:])]
            f = self._new(lib.ASU_PROG_NEST, 0, bound)
            self._bound[slot] = bound
        elif prog == "self":
            f = self._new(lib.ASU_PROG_SELF)
        else:  # "overflow": needs the guard feature, which this target does not claim
            raise NotImplementedError(f"ucontext target has no {prog!r} body")
        self._slots[slot] = f
        return ("ok",)

    def do_resume(self, slot, value):
        lib = self._lib
        f = self._slots.get(slot)
        if f is None:
            return ("err", "none")
        r = lib.asu_resume(f, value, self._out)
        if r == lib.ASU_YIELDED:
            return ("yielded", int(self._out[0]))
        if r == lib.ASU_FINISHED:
            return ("finished", int(self._out[0]))
        return ("err", {lib.ASU_ERR_RUNNING: "running", lib.ASU_ERR_FINISHED: "finished"}.get(r, "none"))

    def do_free(self, slot):
        f = self._slots.pop(slot, None)
        if f is None:
            return ("err", "none")
        self._bound.pop(slot, None)
        r = self._lib.asu_fiber_free(f)
        return ("ok",) if r == 0 else ("err", "running")

    # ABI experiments ------------------------------------------------------------

    def do_entry(self, kind, size, offset):
        """What makecontext gives the entry function on a mapped stack (recorded
        by an entry stub on x86-64).  Only mapped stacks: makecontext takes any
        memory, but this peer maps its own."""
        if kind != "mmap":
            raise NotImplementedError("ucontext target maps its own stacks")
        lib = self._lib
        f = self._new(lib.ASU_PROG_ENTRY) if size == STACK else None
        if f is None:
            ffi = self._ffi
            f = ffi.new("struct asu_fiber *")
            r = lib.asu_fiber_init(f, size, lib.ASU_PROG_ENTRY, 0, ffi.NULL)
            if r < 0:
                raise OSError(-r, f"asu_fiber_init failed ({r})")
        try:
            lib.asu_resume(f, 0, self._out)
            obs = (
                "entry", int(lib.asu_map_start(f)), int(lib.asu_entry_sp(f)), int(lib.asu_entry_fp(f)),
                int(lib.asu_stack_lo(f)), int(lib.asu_stack_hi(f)),
            )  # fmt: skip
        finally:
            lib.asu_fiber_free(f)
        return obs

    def do_sigmask(self, sig):
        """The main context unblocks the signal and starts a fiber, which blocks
        it and yields; the main context reads it; the fiber, resumed, reads it:
        ('sigmask', blocked in the fiber at its start, in the main context after
        the yield, in the fiber after the resume).  With swapcontext each
        context gets its own mask back: (0, 0, 1)."""
        import signal

        lib = self._lib
        num = signal.Signals[sig]
        saved = signal.pthread_sigmask(signal.SIG_UNBLOCK, [num])
        try:
            # getcontext in asu_fiber_init takes the mask the fiber starts with: unblocked.
            f = self._new(lib.ASU_PROG_SIGMASK, int(num))
            try:
                lib.asu_resume(f, 0, self._out)  # the fiber blocks it and yields
                main_after = num in signal.pthread_sigmask(signal.SIG_UNBLOCK, [num])
                lib.asu_resume(f, 0, self._out)  # the fiber reads it again and returns
                at_start, fiber_after = lib.asu_output(f, 0), lib.asu_output(f, 1)
            finally:
                lib.asu_fiber_free(f)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, saved)
        return ("sigmask", at_start, int(main_after), fiber_after)


TARGETS = [UcontextTarget]
