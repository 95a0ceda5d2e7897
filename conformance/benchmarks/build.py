"""cffi (API mode) build script for the benchmarks' C loops: asyncspec.conformance.benchmarks._bench.

The declarations are bench.h's cffi section; the source is bench.c, which
includes the public headers of the task and fiber layers (impl/task/task.h,
impl/fiber/fiber.h) for their types and constants, and nothing else of the
implementation: it reaches the installed extensions' functions through
addresses handed over from Python.  cffi
compiles it when the package is built or installed (`cffi_modules` in
impl/build_backend.py).
"""

import os

from cffi import FFI

try:  # imported as a module of the package
    from asyncspec.impl import cdef
except ImportError:  # run by cffi while the package is built: impl/ is on sys.path (backend-path)
    import cdef

HERE = os.path.dirname(os.path.abspath(__file__))
IMPL = os.path.join(HERE, os.pardir, os.pardir, "impl")
# The public headers of the layers the loops drive, for their types and constants.
HEADERS = [os.path.join(IMPL, "task"), os.path.join(IMPL, "fiber")]


def _rel(path: str) -> str:
    # Relative to the directory the build runs in (the project root when
    # setuptools runs this file), so no absolute path ends up in the build.
    return os.path.relpath(path)


ffibuilder = FFI()
ffibuilder.cdef(cdef.declarations(os.path.join(HERE, "bench.h")))
ffibuilder.set_source(
    "asyncspec.conformance.benchmarks._bench",
    '#include "bench.h"',
    sources=[_rel(os.path.join(HERE, "bench.c"))],
    include_dirs=[_rel(HERE), *(_rel(h) for h in HEADERS)],
    extra_compile_args=["-std=gnu11"],
)
