"""`impl` for pin: started fibers as self-referential values (asyncspec.impl.fiber).

A fiber that has run is self-referential: its saved stack pointer, its
entry stack and frame pointers and its saved frame-pointer chain all point
into its own stack.  So the reference switcher treats a started fiber as
pinned, the way a future is pinned by its first poll, and the pin spec's
statements map onto it:

    create(v)         a new fiber (never run: it may still move)
    move(v)           Fiber.relocate to a fresh stack: refused once the
                      fiber has started (PinnedError), the runtime's
                      counterpart of rustc's "use of moved value"
    box_pin(v)        pin it: remember where its stack is and start it
                      (it runs to its first yield)
    poll(v)           check its self-pointers (Fiber.self_check), then
                      resume it, only if they are sound
    check(v)          check its self-pointers, without running it
    unsafe_move(v)    Fiber._relocate_unchecked: a bitwise move of a
                      started fiber, fixing no pointer
    drop_*/forget_*   close it (a drop: "in-place" when its stack is where
                      it was pinned) / keep it alive, unreachable, to the end
    end()             close every fiber still reachable

A relocation done unchecked is never resumed: the checker reports the
dangling pointers first, which is what PIN-UNSAFE-1 asks.  Only !Unpin
values exist here (no "unpin" feature) and none of the Rust-only
statements (no "rust" feature); the target sees a rejected statement as
rejected, without rustc's error code.
"""

from __future__ import annotations

from asyncspec.spec.pin import machine as PM
from asyncspec.conformance.target import Target
from asyncspec.conformance.targets.impl.fiber import SWITCHER, SWITCHER_HINT

STACK = 64 * 1024
REJECTED = ("rejected",)


class _Value:
    __slots__ = ("fiber", "stacks", "x", "p", "pinned_base", "gone")

    def __init__(self, fiber, stack):
        self.fiber = fiber
        self.stacks = [stack]  # every stack it used (freed when it is closed)
        self.x = True  # reachable through its binding
        self.p = False  # reachable through its pin
        self.pinned_base = None
        self.gone = False  # dropped or leaked


class ImplPin(Target):
    name = "impl"
    area = "pin"
    features = frozenset()
    description = "asyncspec.impl.fiber: started fibers are pinned (relocation refused, self-pointers checked)."

    requires = SWITCHER
    requires_hint = SWITCHER_HINT

    def _api(self):
        from asyncspec.conformance.targets.impl import probe as fiber

        return fiber

    def open(self):
        self._f = self._api()
        self._vals: dict[int, _Value] = {}
        self._leaked: list[_Value] = []

    def close(self):
        for val in list(self._vals.values()) + self._leaked:
            self._release(val)
        self._vals.clear()
        self._leaked.clear()

    # -- helpers -------------------------------------------------------------

    def _stack(self):
        return self._f.Stack.allocate(STACK)

    def _release(self, val: _Value) -> None:
        if val.fiber is None:
            return
        val.fiber.close()
        for s in val.stacks:
            s.free()
        val.fiber = None

    def _where(self, val: _Value) -> str:
        if val.pinned_base is None:
            return PM.FREE
        return PM.IN_PLACE if val.fiber.stack.base == val.pinned_base else PM.MOVED

    def _looked_at(self, val: _Value):
        stable = None if val.pinned_base is None else val.fiber.stack.base == val.pinned_base
        return stable, val.fiber.self_check().ok

    def _reachable(self, v: int, through: str) -> _Value | None:
        val = self._vals.get(v)
        if val is None or val.gone or not getattr(val, through):
            return None
        return val

    # -- the statements --------------------------------------------------------

    def perform(self, action, args):
        v = args.get("v")
        if action == "create":
            stack = self._stack()
            fiber = self._f.Fiber(stack, [self._f.Yield(times=1 << 30)])
            self._vals[v] = _Value(fiber, stack)
            return PM.obs()
        if action == "move":
            val = self._vals.get(v)
            if val is None or val.gone:
                return PM.obs(REJECTED)
            stack = self._stack()
            if val.x and val.pinned_base is not None:
                # Owned again after an unchecked move: a plain bitwise move.
                val.fiber._relocate_unchecked(stack)
                val.stacks.append(stack)
                return PM.obs()
            try:
                old = val.fiber.relocate(stack)
            except self._f.PinnedError:
                stack.free()
                return PM.obs(REJECTED)
            val.stacks.append(stack)
            if not val.x:
                # The runtime let a pinned fiber move: report what happened.
                return PM.obs()
            val.stacks.remove(old)
            old.free()
            return PM.obs()
        if action == "box_pin":
            val = self._reachable(v, "x")
            if val is None:
                return PM.obs(REJECTED)
            val.pinned_base = val.fiber.stack.base
            val.fiber.resume()
            val.x, val.p = False, True
            return PM.obs()
        if action == "poll":
            val = self._reachable(v, "p")
            if val is None:
                return PM.obs(REJECTED)
            seen = self._looked_at(val)
            if seen[1]:
                val.fiber.resume()
            return PM.obs(result=seen)
        if action == "check":
            val = self._reachable(v, "x")
            if val is None:
                return PM.obs(REJECTED)
            return PM.obs(result=self._looked_at(val))
        if action == "unsafe_move":
            val = self._reachable(v, "p")
            if val is None:
                return PM.obs(REJECTED)
            stack = self._stack()
            val.fiber._relocate_unchecked(stack)
            val.stacks.append(stack)
            val.x, val.p = True, False
            return PM.obs()
        if action in ("drop_value", "forget_value", "drop_pin", "forget_pin"):
            val = self._reachable(v, "x" if action.endswith("value") else "p")
            if val is None:
                return PM.obs(REJECTED)
            val.gone = True
            if action.startswith("forget"):
                self._leaked.append(val)
                return PM.obs()
            where = self._where(val)
            self._release(val)
            return PM.obs(drops=((v, where),))
        if action == "end":
            drops = []
            for v, val in self._vals.items():
                if not val.gone:
                    drops.append((v, self._where(val)))
                    val.gone = True
                    self._release(val)
            return PM.obs(drops=drops)
        raise ValueError(f"the impl pin target has no action {action!r}")

    def project(self, state, action, obs):
        errors, result, drops = obs
        return (REJECTED if errors else (), result, drops)


TARGETS = [ImplPin]
