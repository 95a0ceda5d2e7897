"""cffi (API mode) build script for the probe interpreter: asyncspec.conformance.targets.impl.probe._probe.

The declarations are probe.h's cffi section; the sources are probe.c and the
machine's probe assembly (arch/x86_64.S).  probe.c includes the switcher's
public header (impl/fiber/fiber.h) for the types of the functions it calls
and their results, and nothing else of it: it reaches the switcher through
the addresses of those functions, handed over from Python.  cffi compiles
it when the package is built or installed, where the switcher is built
(`cffi_modules` in impl/build_backend.py).

`make(module, srcdir)` builds the same module from another copy of this
directory (the tests' builds for a broken switcher that needs the
interpreter compiled differently: tests/fixtures/broken_builds.py).
"""

import os
import platform
import sys

from cffi import FFI

try:  # imported as a module of the package
    from asyncspec.impl import cdef
except ImportError:  # run by cffi while the package is built: impl/ is on sys.path (backend-path)
    import cdef

HERE = os.path.dirname(os.path.abspath(__file__))
MODULE = "asyncspec.conformance.targets.impl.probe._probe"
HEADER = "probe.h"
FIBER_HEADERS = os.path.normpath(os.path.join(HERE, os.pardir, os.pardir, os.pardir, os.pardir, "impl", "fiber"))

_ASM = {
    ("linux", "x86_64"): "arch/x86_64.S",
    ("linux", "amd64"): "arch/x86_64.S",
}


def asm_file():
    """The assembly file for this machine (relative to this directory), or None if there is none."""
    osname = "linux" if sys.platform.startswith("linux") else sys.platform
    return _ASM.get((osname, platform.machine().lower()))


SUPPORTED = asm_file() is not None
ASSEMBLY = (asm_file(),) if SUPPORTED else ()
# Frame pointers: the FRAMES op walks the chain through the interpreter's
# own frames down to the switcher's.
COMPILE_ARGS = ("-fno-omit-frame-pointer",)


def make(module: str, srcdir: str, *, asm_objects=None, extra_sources=(), preamble: str = "", extra_cdef: str = "",
         extra_compile_args=()) -> FFI:  # fmt: skip
    """An FFI builder for `module` from the files in `srcdir`: the assembly
    files compiled as sources (the package build), or, given `asm_objects`,
    linked as those objects (a build whose compiler does not take `.S`)."""
    builder = FFI()
    builder.cdef(cdef.declarations(os.path.join(srcdir, HEADER)) + extra_cdef)
    asm = [os.path.join(srcdir, a) for a in ASSEMBLY] if asm_objects is None else []
    builder.set_source(
        module,
        f'#include "{HEADER}"\n{preamble}',
        sources=[os.path.join(srcdir, "probe.c"), *asm, *extra_sources],
        include_dirs=[srcdir, os.path.relpath(FIBER_HEADERS) if not os.path.isabs(srcdir) else FIBER_HEADERS],
        extra_objects=list(asm_objects or ()),
        extra_compile_args=[*COMPILE_ARGS, *extra_compile_args],
    )
    return builder


# Paths relative to the directory the build runs in (the project root when
# setuptools runs this file), so no absolute path ends up in the build.
ffibuilder = make(MODULE, os.path.relpath(HERE))
