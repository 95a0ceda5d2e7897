"""cffi (API mode) build script for the tasks' C layer: asyncspec.impl.task._task.

The declarations are task.h's cffi section; the sources are task.c,
queue.c and atomic_waker.c (C11 atomics and pthreads, nothing
architecture-specific).  cffi compiles them when the package is built or
installed (`cffi_modules` in impl/build_backend.py).

`make(module, srcdir)` builds the same layer from another copy of this
directory (the tests compile patched copies: tests/fixtures/broken_builds.py).
"""

import os

from cffi import FFI

try:  # imported as a module of the package
    from asyncspec.impl import cdef
except ImportError:  # run by cffi while the package is built: impl/ is on sys.path (backend-path)
    import cdef

HERE = os.path.dirname(os.path.abspath(__file__))
MODULE = "asyncspec.impl.task._task"
HEADER = "task.h"
SOURCES = ("task.c", "queue.c", "atomic_waker.c")
# C11 atomics; pthreads for the run queue's and the registry's mutexes.
COMPILE_ARGS = ("-std=gnu11", "-pthread")
LINK_ARGS = ("-pthread",)


def make(module: str, srcdir: str, *, extra_sources=(), preamble: str = "", extra_cdef: str = "",
         extra_compile_args=()) -> FFI:  # fmt: skip
    """An FFI builder for `module` from the layer's files in `srcdir`, plus
    `extra_sources` (compiled with the same flags, seeing internal.h),
    declared to the module by `preamble` (C) and to cffi by `extra_cdef`."""
    builder = FFI()
    builder.cdef(cdef.declarations(os.path.join(srcdir, HEADER)) + extra_cdef)
    builder.set_source(
        module,
        f'#include "{HEADER}"\n{preamble}',
        sources=[os.path.join(srcdir, s) for s in SOURCES] + list(extra_sources),
        include_dirs=[srcdir],
        extra_compile_args=[*COMPILE_ARGS, *extra_compile_args],
        extra_link_args=list(LINK_ARGS),
    )
    return builder


# Paths relative to the directory the build runs in (the project root when
# setuptools runs this file), so no absolute path ends up in the build.
ffibuilder = make(MODULE, os.path.relpath(HERE))
