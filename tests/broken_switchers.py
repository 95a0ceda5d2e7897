"""Deliberately broken fiber switchers: the conformance suite must catch each one.

Each is the reference switcher (impl/fiber.c and impl/fiber_x86_64.S)
compiled with one ASF_BROKEN_* definition, which plants one classic bug (see
the head of fiber_x86_64.S), and driven by the reference target's own code
through `asyncspec.impl.fiber.api`.  They are given to `asyncspec run fiber`
as ``module:attribute`` targets like any user's own:

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

DIR_ENV = "ASYNCSPEC_BROKEN_SWITCHERS_DIR"


def variant_api(define: str):
    """The fiber API over the reference sources compiled with ``-D<define>``
    (with no definition for "")."""
    from asyncspec.impl import fiber, fiber_build

    def build(name, directory):
        return fiber_build.build_variant(name.lower() or "unbroken", [name] if name else [], directory)

    return _variant_api(DIR_ENV, define, build, fiber.api)


class VariantBuild:
    """Mixed into a reference target: drive the build compiled with ``define``."""

    define = ""

    @classmethod
    def unavailable(cls):
        why = super().unavailable()
        if why:
            return why
        try:
            variant_api(cls.define)  # compiled here, before the workers start
        except Exception as e:
            return f"cannot build the {cls.define} switcher: {e}"
        return None

    def _api(self):
        return variant_api(self.define)


class BrokenSwitcher(VariantBuild, ImplFiber):
    """The reference target over a broken build; `define` names the bug."""


class EntryAlign16(BrokenSwitcher):
    name = "broken-entry-align16"
    define = "ASF_BROKEN_ENTRY_ALIGN16"
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
    define = "ASF_BROKEN_RBX"
    description = "The switch saves rbx but never restores it."


class MxcsrNotSwitched(BrokenSwitcher):
    name = "broken-mxcsr"
    define = "ASF_BROKEN_MXCSR"
    description = "The switch neither saves nor restores MXCSR; the x87 control word is still switched."


class GuardOverlap(BrokenSwitcher):
    name = "broken-guard-overlap"
    define = "ASF_BROKEN_GUARD_OVERLAP"
    description = "An allocated stack's usable range starts at its guard page: its top is one page too low."


class FramePointerNotZeroed(BrokenSwitcher):
    name = "broken-fp-chain"
    define = "ASF_BROKEN_FP_CHAIN"
    description = "A new fiber starts with its creator's rbp: the frame-pointer chain runs off its stack (a SHOULD rule)."


class Unbroken(BrokenSwitcher):
    name = "unbroken-variant"
    define = ""
    description = "The reference sources built by build_variant with no ASF_BROKEN_* definition."
