"""In-tree PEP 517 backend: setuptools plus the cffi extension.

pyproject.toml cannot pass setuptools the `cffi_modules` keyword that builds
an API-mode (out-of-line) cffi extension, and the repository has no setup.py.
This backend is setuptools' own, with `setup()` called with that keyword.
Everything else (metadata, packages) comes from pyproject.toml.
"""

from setuptools import build_meta as _setuptools_backend

CFFI_MODULES = ["impl/reactor_build.py:ffibuilder"]


class _Backend(_setuptools_backend._BuildMetaBackend):
    def run_setup(self, setup_script="setup.py"):
        import setuptools

        setuptools.setup(cffi_modules=CFFI_MODULES)


_backend = _Backend()
get_requires_for_build_wheel = _backend.get_requires_for_build_wheel
get_requires_for_build_sdist = _backend.get_requires_for_build_sdist
get_requires_for_build_editable = _backend.get_requires_for_build_editable
prepare_metadata_for_build_wheel = _backend.prepare_metadata_for_build_wheel
prepare_metadata_for_build_editable = _backend.prepare_metadata_for_build_editable
build_wheel = _backend.build_wheel
build_sdist = _backend.build_sdist
build_editable = _backend.build_editable
