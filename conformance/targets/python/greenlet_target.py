"""`greenlet`: the lifecycle rules against greenlet's switch/parent/dead.

greenlet has no guard pages and no ABI to check from Python, and a switch to
a dead or running greenlet is not an error there (it goes to the parent, or
returns at once), so this target claims only the lifecycle of fibers that
are resumed correctly, nesting included: a nested resume sets the resumed
greenlet's parent to its resumer, so its yield comes back there
(FIB-LIFE-3), as greenlet's documentation describes for `parent`.
"""

from __future__ import annotations

from asyncspec.conformance.areas.fiber.target import FiberTarget


class GreenletTarget(FiberTarget):
    name = "greenlet"
    features = frozenset({"nested"})
    description = "greenlet: switch/parent/dead; lifecycle rules only."

    requires = ("greenlet",)
    requires_hint = "pip install greenlet (it is in the test extras)"

    def open(self):
        import greenlet

        self._greenlet = greenlet.greenlet
        self._getcurrent = greenlet.getcurrent
        self._exit = greenlet.GreenletExit
        self._slots: dict = {}

    def close(self):
        for slot in list(self._slots):
            self.do_free(slot)

    def _body(self, prog: str):
        slots = self._slots
        getcurrent = self._getcurrent

        def yield_(value):
            me = getcurrent()
            return me.parent.switch(("yielded", value))

        def body(value):
            if prog.startswith("yield"):
                for _ in range(int(prog[5:])):
                    value = yield_(value + 1)
                return ("finished", value + 100)
            j = int(prog[4:])
            while True:
                child = slots[j]
                child.parent = getcurrent()  # a yield returns to its resumer
                kind, x = child.switch(value)
                value = yield_(x if kind in ("yielded", "finished") else value)

        return body

    def do_create(self, slot, prog):
        if prog in ("overflow", "self"):
            raise NotImplementedError(f"greenlet target has no {prog!r} body")
        self._slots[slot] = self._greenlet(self._body(prog))
        return ("ok",)

    def do_resume(self, slot, value):
        g = self._slots[slot]
        g.parent = self._getcurrent()
        return tuple(g.switch(value))

    def do_free(self, slot):
        g = self._slots.pop(slot, None)
        if g is None:
            return ("err", "none")
        if g:  # started and not dead: unwind its frames, back to us
            g.parent = self._getcurrent()
            g.throw(self._exit)
        return ("ok",)


TARGETS = [GreenletTarget]
