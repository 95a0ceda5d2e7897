"""cffi (API mode) build script for the fibers' C layer: asyncspec.impl.fiber._fiber.

The declarations are fiber.h's cffi section; the sources are fiber.c
(architecture-neutral) and the machine's context switch in assembly
(arch/x86_64.S).  cffi compiles them when the package is built or installed
(`cffi_modules` in impl/build_backend.py, whose build_ext also teaches the
compiler the `.S` extension).  `SUPPORTED` says whether this machine has a
context switch; the backend only builds the module where it does.

`make(module, srcdir)` builds the same layer from another copy of this
directory (the tests compile patched copies: tests/fixtures/broken_builds.py).
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
MODULE = "asyncspec.impl.fiber._fiber"
HEADER = "fiber.h"

# Assembly file per (OS family, machine).  The package builds the x86-64
# one; arch/aarch64.S implements the same functions and is checked under
# qemu-user (tests/aarch64).
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

# Frame pointers everywhere in fiber.c: debuggers, profilers and the
# probes' frame walk get a chain that ends at the fiber's base.  No semantic
# interposition: fiber.c's own calls to its exported functions (resume,
# yield) may then be direct and inlined instead of going through the PLT.
COMPILE_ARGS = ("-fno-omit-frame-pointer", "-fno-semantic-interposition")


def make(module: str, srcdir: str, *, asm_objects=None, extra_sources=(), preamble: str = "", extra_cdef: str = "",
         extra_compile_args=()) -> FFI:  # fmt: skip
    """An FFI builder for `module` from the layer's files in `srcdir`: the
    assembly files are compiled as sources (the package build, whose
    build_ext takes `.S`), or, given `asm_objects`, linked as those objects
    (a build whose compiler does not take `.S` assembles them itself)."""
    builder = FFI()
    builder.cdef(cdef.declarations(os.path.join(srcdir, HEADER)) + extra_cdef)
    asm = [os.path.join(srcdir, a) for a in ASSEMBLY] if asm_objects is None else []
    builder.set_source(
        module,
        f'#include "{HEADER}"\n{preamble}',
        sources=[os.path.join(srcdir, "fiber.c"), *asm, *extra_sources],
        include_dirs=[srcdir],
        extra_objects=list(asm_objects or ()),
        extra_compile_args=[*COMPILE_ARGS, *extra_compile_args],
    )
    return builder


# Paths relative to the directory the build runs in (the project root when
# setuptools runs this file), so no absolute path ends up in the build.
ffibuilder = make(MODULE, os.path.relpath(HERE))
