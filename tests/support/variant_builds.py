"""Where the deliberately broken builds (tests/fixtures/broken_switchers.py,
tests/fixtures/broken_executors.py) are compiled, once per run.

The directory is named in the environment, so the worker processes the
runner starts find the modules there instead of compiling again.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

_apis: dict = {}


def variant_dir(env: str) -> str:
    path = os.environ.get(env)
    if path is None:
        path = tempfile.mkdtemp(prefix="asyncspec-variants-")
        os.environ[env] = path  # inherited by the runner's worker processes
        atexit.register(shutil.rmtree, path, True)
    return path


def variant_api(env: str, define: str, build_variant, api):
    """``api(module)`` over the sources compiled with ``-D<define>`` (none for "")."""
    key = (env, define)
    if key not in _apis:
        module = build_variant(define.lower() or "unbroken", [define] if define else [], variant_dir(env))
        _apis[key] = api(module)
    return _apis[key]
