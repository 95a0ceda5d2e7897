"""In-tree PEP 517 backend: setuptools plus the cffi extensions.

pyproject.toml cannot pass setuptools the `cffi_modules` keyword that builds
an API-mode (out-of-line) cffi extension, and the repository has no setup.py.
This backend is setuptools' own, with `setup()` called with that keyword.
The package list is found below (every folder with an __init__.py);
everything else (metadata, package data) comes from pyproject.toml.

The fibers' extension also compiles an assembly file (`.S`: assembly run
through the C preprocessor).  setuptools' compilers only accept C-family
source extensions, so build_ext below adds ".S" to the Unix compiler's list;
the C compiler driver assembles such files itself.
"""

import os
import platform
import sys

from setuptools import build_meta as _setuptools_backend
from setuptools.command.build_ext import build_ext as _build_ext

CFFI_MODULES = [
    "impl/reactor/build.py:ffibuilder",
    "impl/task/build.py:ffibuilder",
    # What `asyncspec bench` runs in C, over the installed extensions.
    "conformance/benchmarks/build.py:ffibuilder",
]

# The ucontext peer (a comparison target, not part of the switcher) needs
# glibc's makecontext/swapcontext: Linux only.
if sys.platform.startswith("linux"):
    CFFI_MODULES.append("conformance/targets/c/ucontext/build.py:ffibuilder")

# The fibers need a context switch written for the machine (see
# impl/fiber/build.py); elsewhere the package installs without them, and
# without the probe interpreter that the conformance suite runs in them.
if sys.platform.startswith("linux") and platform.machine().lower() in ("x86_64", "amd64"):
    CFFI_MODULES.append("impl/fiber/build.py:ffibuilder")
    CFFI_MODULES.append("conformance/targets/impl/probe/build.py:ffibuilder")


class build_ext(_build_ext):
    """build_ext that also compiles `.S` sources."""

    def build_extensions(self):
        if ".S" not in self.compiler.src_extensions:
            self.compiler.src_extensions.append(".S")
        super().build_extensions()


# The repository's top-level folders are the subpackages of `asyncspec`
# (pyproject.toml maps the package to "."); every folder below them with an
# __init__.py is a package.
SUBPACKAGES = ("spec", "model", "impl", "conformance")


def packages(root: str = ".") -> list[str]:
    found = []
    for top in SUBPACKAGES:
        for folder, dirs, files in os.walk(os.path.join(root, top)):
            dirs[:] = sorted(d for d in dirs if not d.startswith((".", "_")) and d != "site")
            if "__init__.py" in files:
                rel = os.path.relpath(folder, root)
                found.append("asyncspec." + rel.replace(os.sep, "."))
    return found


class _Backend(_setuptools_backend._BuildMetaBackend):
    def run_setup(self, setup_script="setup.py"):
        import setuptools

        setuptools.setup(packages=packages(), cffi_modules=CFFI_MODULES, cmdclass={"build_ext": build_ext})


_backend = _Backend()
get_requires_for_build_wheel = _backend.get_requires_for_build_wheel
get_requires_for_build_sdist = _backend.get_requires_for_build_sdist
get_requires_for_build_editable = _backend.get_requires_for_build_editable
prepare_metadata_for_build_wheel = _backend.prepare_metadata_for_build_wheel
prepare_metadata_for_build_editable = _backend.prepare_metadata_for_build_editable
build_wheel = _backend.build_wheel
build_sdist = _backend.build_sdist
build_editable = _backend.build_editable
