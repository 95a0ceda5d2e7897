"""Other builds of a cffi C layer: the same sources with extra -D definitions.

The deliberately broken switchers (ASF_BROKEN_*, impl/fiber_build.py) are
the reference sources compiled with one definition each.  `build` compiles such a variant into a
directory of the caller's, without touching the installed module.

The module is named after the variant and a hash of the sources,
definitions and flags, and lands in the directory under that name by an
atomic rename: a process that finds it there already (another worker, a
second call) imports it without compiling, and two processes building at
once do not disturb each other.  Within a process each module is imported
once.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import sys
import tempfile
from typing import Callable, Iterable

_modules: dict = {}


def macro(define: str) -> tuple[str, str | None]:
    """("NAME", None) or ("NAME", "VALUE") from "NAME" or "NAME=VALUE"."""
    name, eq, value = define.partition("=")
    if not name.isidentifier():
        raise ValueError(f"not a preprocessor definition: {define!r}")
    return name, (value if eq else None)


def build(
    prefix: str,
    name: str,
    defines: Iterable[str],
    tmpdir: str,
    *,
    cdef: str,
    c_source: str,
    hashed: Iterable[str] = (),
    prepare: Callable[[str, list[str]], dict] | None = None,
    **set_source,
):
    """Compile ``c_source`` (declarations ``cdef``) with ``defines`` into a
    module ``_<prefix>_<name>_<hash>`` in ``tmpdir``; import and return it.

    ``hashed`` are further texts the build depends on (an assembly file);
    ``prepare(workdir, flags)`` may build extra objects first and returns
    more keyword arguments for cffi's ``set_source``.
    """
    from cffi import FFI

    macros = [macro(d) for d in defines]
    flags = [f"-D{n}" if v is None else f"-D{n}={v}" for n, v in macros]
    args = [str(a) for a in set_source.get("extra_compile_args", ())]
    key = "\0".join([c_source, *hashed, cdef, *flags, *args, sys.implementation.cache_tag])
    safe = "".join(c if c.isalnum() else "_" for c in name)
    module_name = f"_{prefix}_{safe}_{hashlib.sha256(key.encode()).hexdigest()[:16]}"
    if module_name in _modules:
        return _modules[module_name]
    os.makedirs(tmpdir, exist_ok=True)
    final = os.path.join(tmpdir, module_name + ".so")
    if not os.path.exists(final):
        work = tempfile.mkdtemp(prefix=module_name + "-", dir=tmpdir)
        try:
            extra = prepare(work, flags) if prepare else {}
            builder = FFI()
            builder.cdef(cdef)
            builder.set_source(module_name, c_source, define_macros=macros, **set_source, **extra)
            try:
                built = builder.compile(tmpdir=work)
            except Exception as e:  # distutils' CompileError and friends
                raise RuntimeError(f"compiling the {prefix} layer with {flags}: {e}") from None
            os.replace(built, final)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    spec = importlib.util.spec_from_file_location(module_name, final)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    _modules[module_name] = module
    return module
