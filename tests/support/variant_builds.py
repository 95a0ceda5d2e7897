"""Where the deliberately broken builds (tests/fixtures/broken_builds.py,
driven by tests/fixtures/broken_switchers.py and
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


def variant_api(env: str, name: str, build):
    """The API ``build(name, directory)`` returns over the test build `name`
    ("" for the unpatched sources; fixtures/broken_builds.py), built once
    per process into the directory `env` names."""
    key = (env, name)
    if key not in _apis:
        _apis[key] = build(name, variant_dir(env))
    return _apis[key]
