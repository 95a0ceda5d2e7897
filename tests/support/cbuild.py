"""Test builds of a C layer: the product sources, patched, with extra flags or
extra sources, compiled by cffi into a directory of the caller's.

A layer is described by its product build script (asyncspec.impl.task.build,
asyncspec.impl.fiber.build, the probe's build): ``HERE``, the directory of its
sources, and ``make(module, srcdir, ...)``, the cffi builder for a copy of
that directory.  `build` copies the directory, applies the patches (each an
exact substitution, `Patch`), and compiles the copy with ``make``; a layer
with assembly files (``ASSEMBLY``) has them assembled here, with the same
definitions, because cffi's compiler does not take ``.S`` sources (the
package build teaches it: impl/build_backend.py).

Every test build carries a marker, the symbol ``asyncspec_test_build`` (a
string naming the build), so that a look at the installed extensions can
tell a test build from the product (tests/test_installed_builds.py).

The module is named after the build and a hash of everything it is built
from, and lands in the directory under that name by an atomic rename: a
process that finds it there already (another worker, a second call)
imports it without compiling, and two processes building at once do not
disturb each other.  Within a process each module is imported once.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from dataclasses import dataclass
from typing import Iterable

from asyncspec.impl import cdef

_modules: dict = {}

MARKER = "asyncspec_test_build"


class PatchError(RuntimeError):
    """A patch's text is not (or not exactly once) in the product source."""


@dataclass(frozen=True)
class Patch:
    """Replace the text `old`, which must occur exactly once in `file` (a
    path relative to the layer's directory), with `new`."""

    file: str
    old: str
    new: str

    def apply(self, text: str, build: str) -> str:
        n = text.count(self.old)
        if n != 1:
            raise PatchError(
                f"test build {build!r}: {self.file} contains the text to replace {n} times, not once "
                f"(the product source changed; update the patch):\n{self.old}"
            )
        return text.replace(self.old, self.new)


def _read(src: str) -> dict[str, str]:
    """The layer's C, header and assembly files (not cffi's generated _*.c), by relative path."""
    texts = {}
    for folder, dirs, files in os.walk(src):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            if name.endswith((".c", ".h", ".S")) and not name.startswith("_"):
                rel = os.path.relpath(os.path.join(folder, name), src)
                with open(os.path.join(folder, name)) as f:
                    texts[rel] = f.read()
    return texts


def _write(texts: dict[str, str], dst: str) -> None:
    for rel, text in texts.items():
        os.makedirs(os.path.dirname(os.path.join(dst, rel)), exist_ok=True)
        with open(os.path.join(dst, rel), "w") as f:
            f.write(text)


def _assemble(srcdir: str, files: Iterable[str], work: str, flags: list[str]) -> list[str]:
    cc = shlex.split(sysconfig.get_config_var("CC") or "cc")
    objects = []
    for i, rel in enumerate(files):
        obj = os.path.join(work, f"asm{i}.o")
        try:
            subprocess.run([*cc, "-c", "-fPIC", *flags, os.path.join(srcdir, rel), "-o", obj], check=True,
                           capture_output=True)  # fmt: skip
        except subprocess.CalledProcessError as e:
            raise RuntimeError(f"assembling {rel} with {flags}: {e.stderr.decode(errors='replace')}") from None
        objects.append(obj)
    return objects


def build(
    layer,
    name: str,
    tmpdir: str,
    *,
    patches: Iterable[Patch] = (),
    cflags: Iterable[str] = (),
    extra_sources: Iterable[str] = (),
    **make_args,
):
    """Compile `layer` (its build script's module) as the test build `name`:
    its sources with `patches` applied, compiled with the extra `cflags`,
    plus the C files `extra_sources` (paths; they see the layer's directory
    on the include path, and declare what Python calls in them in a cffi
    section, as the layer's header does: impl/cdef.py), into a module
    ``_<layer>_<name>_<hash>`` in `tmpdir`; import and return it.
    `make_args` go to the layer's ``make`` as they are."""
    patches, cflags = tuple(patches), [str(f) for f in cflags]
    extras = []
    decls = ""  # the extra sources' declarations, for the module's own source and for cffi
    for path in extra_sources:
        with open(path) as f:
            extras.append((os.path.basename(path), f.read()))
        decls += cdef.section(extras[-1][1], path)
    prefix = layer.MODULE.rpartition(".")[2].lstrip("_")
    safe = "".join(c if c.isalnum() else "_" for c in name)
    texts = _read(layer.HERE)
    for p in patches:
        if p.file not in texts:
            raise PatchError(f"test build {name!r}: no file {p.file} in {layer.HERE}")
        texts[p.file] = p.apply(texts[p.file], name)
    key = "\0".join([
        *(f"{rel}\0{texts[rel]}" for rel in sorted(texts)), *(t for _, t in extras), *cflags,
        repr(sorted(make_args.items())), sys.implementation.cache_tag,
    ])  # fmt: skip
    module_name = f"_{prefix}_{safe}_{hashlib.sha256(key.encode()).hexdigest()[:16]}"
    if module_name in _modules:
        return _modules[module_name]
    os.makedirs(tmpdir, exist_ok=True)
    final = os.path.join(tmpdir, module_name + ".so")
    if not os.path.exists(final):
        work = tempfile.mkdtemp(prefix=module_name + "-", dir=tmpdir)
        try:
            src = os.path.join(work, "src")
            _write(texts, src)
            sources = []
            for base, text in extras:
                sources.append(os.path.join(work, base))
                with open(sources[-1], "w") as f:
                    f.write(text)
            sources.append(os.path.join(work, "marker.c"))
            with open(sources[-1], "w") as f:
                f.write(f'__attribute__((used, visibility("default"))) const char {MARKER}[] = "{name}";\n')
            if getattr(layer, "ASSEMBLY", ()):
                make_args["asm_objects"] = _assemble(src, layer.ASSEMBLY, work, cflags)
            builder = layer.make(module_name, src, extra_sources=sources, preamble=decls,
                                 extra_cdef=cdef.rewrite(decls), extra_compile_args=cflags, **make_args)  # fmt: skip
            try:
                built = builder.compile(tmpdir=work)
            except Exception as e:  # distutils' CompileError and friends
                raise RuntimeError(f"compiling the {prefix} test build {name!r}: {e}") from None
            os.replace(built, final)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    spec = importlib.util.spec_from_file_location(module_name, final)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    _modules[module_name] = module
    return module
