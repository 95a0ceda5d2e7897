"""cffi (API mode) build script for the reactor's C layer: asyncspec.impl.reactor._reactor.

The declarations are reactor.h's cffi section; the sources are the
platform's backend (epoll.c on Linux, kqueue.c on BSD and macOS) and fd.c.
cffi compiles them when the package is built or installed (`cffi_modules`
in impl/build_backend.py).
"""

import os
import sys

from cffi import FFI

try:  # imported as a module of the package
    from asyncspec.impl import cdef
except ImportError:  # run by cffi while the package is built: impl/ is on sys.path (backend-path)
    import cdef

HERE = os.path.dirname(os.path.abspath(__file__))


def backend() -> str:
    """The backend source file for this platform."""
    if sys.platform.startswith("linux"):
        return "epoll.c"
    if sys.platform == "darwin" or "bsd" in sys.platform or sys.platform.startswith("dragonfly"):
        return "kqueue.c"
    raise RuntimeError(f"asyncspec reactor: no backend for {sys.platform} (epoll or kqueue)")


def _rel(name: str) -> str:
    # Relative to the directory the build runs in (the project root when
    # setuptools runs this file), so no absolute path ends up in the build.
    return os.path.relpath(os.path.join(HERE, name))


ffibuilder = FFI()
ffibuilder.cdef(cdef.declarations(os.path.join(HERE, "reactor.h")))
ffibuilder.set_source(
    "asyncspec.impl.reactor._reactor",
    '#include "reactor.h"',
    sources=[_rel(backend()), _rel("fd.c")],
    include_dirs=[_rel(".")],
)
