"""Deliberately broken fiber switchers: the conformance suite must catch each one.

Each is the reference switcher (impl/fiber/) with one classic bug patched in
(fixtures/broken_builds.py), driven by the reference target's own code
through the probe interpreter bound to that build
(`asyncspec.conformance.targets.impl.probe.api`).  They are given to
`asyncspec run fiber` as ``module:attribute`` targets like any user's own:

    EntryAlign16      a new fiber enters with rsp % 16 == 0 (the libco bug)
    RbxNotRestored    the switch saves rbx and never restores it
    MxcsrNotSwitched  the switch leaves MXCSR alone (x87 control word switched)
    GuardOverlap      an allocated stack's usable range starts at its guard
                      page, one page below where it belongs
    FramePointerNotZeroed  a new fiber starts with its creator's rbp (breaks
                      only FIB-STACK-4, a SHOULD rule: a warning unless --strict)

plus EntryAlign16Movaps, the first with code that the misalignment really
breaks (it crashes the target: rule TGT-1), and Unbroken, the same build
path with no bug (it must conform: the failures come from the bugs, not
from building variants).

Each variant is compiled once into a temporary directory (named in the
environment, so that the worker processes the runner starts load it from
there instead of compiling again) and imported once per process.
"""

from __future__ import annotations

from asyncspec.conformance.targets.impl_fiber import ImplFiber
from variant_builds import variant_api as _variant_api

from fixtures.broken_builds import switcher_build

DIR_ENV = "ASYNCSPEC_BROKEN_SWITCHERS_DIR"


def variant_api(name: str):
    """The probe API over the switcher's test build `name` (fixtures/broken_builds.py; "" for no patch)."""
    return _variant_api(DIR_ENV, name, switcher_build)


class VariantBuild:
    """Mixed into a reference target: drive the test build named `build`."""

    build = ""

    @classmethod
    def unavailable(cls):
        why = super().unavailable()
        if why:
            return why
        try:
            variant_api(cls.build)  # compiled here, before the workers start
        except Exception as e:
            return f"cannot build the {cls.build or 'unbroken'} switcher: {e}"
        return None

    def _api(self):
        return variant_api(self.build)


class BrokenSwitcher(VariantBuild, ImplFiber):
    """The reference target over a broken build; `build` names the bug."""


class EntryAlign16(BrokenSwitcher):
    name = "broken-entry-align16"
    build = "entry-align16"
    description = "A new fiber enters its entry function with rsp % 16 == 0, aligned as before a call."


class EntryAlign16Movaps(EntryAlign16):
    """Before each entry experiment, a fiber does an aligned 16-byte SSE
    access (movaps) to a 16-byte aligned stack local: the compiler placed
    the local assuming the ABI's alignment at entry, so it is misaligned and
    the access faults -- a crash (SIGSEGV) in the worker, not a wrong answer."""

    name = "broken-entry-align16-movaps"

    def do_entry(self, kind, size, offset):
        f = self._f
        with f.Stack.allocate(65536) as stack, f.Fiber(stack, [f.Align()]) as fib:
            fib.resume(0)
        return super().do_entry(kind, size, offset)


class RbxNotRestored(BrokenSwitcher):
    name = "broken-rbx"
    build = "rbx"
    description = "The switch saves rbx but never restores it."


class MxcsrNotSwitched(BrokenSwitcher):
    name = "broken-mxcsr"
    build = "mxcsr"
    description = "The switch neither saves nor restores MXCSR; the x87 control word is still switched."


class GuardOverlap(BrokenSwitcher):
    name = "broken-guard-overlap"
    build = "guard-overlap"
    description = "An allocated stack's usable range starts at its guard page: its top is one page too low."


class FramePointerNotZeroed(BrokenSwitcher):
    name = "broken-fp-chain"
    build = "fp-chain"
    description = "A new fiber starts with its creator's rbp: the frame-pointer chain runs off its stack (a SHOULD rule)."


class Unbroken(BrokenSwitcher):
    name = "unbroken-variant"
    build = ""
    description = "The reference sources through the test-build path, with no patch."
