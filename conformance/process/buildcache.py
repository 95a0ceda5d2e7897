"""Executables compiled once, into a cache keyed by what they are built from.

The `rust-std` waker interpreter and the `libuv` adapter are compiled on
first use.  `cached(name, key_parts, compile)` names the executable after
the sha256 of ``key_parts`` (the source, the compiler's version line, the
flags) in ``cache_dir()/name``; when it is there nothing is compiled.
Otherwise ``compile(out)`` writes it under a temporary name, and it is moved
into place with os.replace, so builds running at once (pytest workers)
never see, or leave, a half-written file.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from typing import Callable, Iterable


def cache_dir() -> str:
    """``$ASYNCSPEC_CACHE``, else ``$XDG_CACHE_HOME/asyncspec``, else ``~/.cache/asyncspec``."""
    explicit = os.environ.get("ASYNCSPEC_CACHE")
    if explicit:
        return explicit
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "asyncspec")


def cached(name: str, key_parts: Iterable[bytes], compile: Callable[[str], None]) -> str:
    """The cached executable for these inputs, compiling it first if needed."""

    key = hashlib.sha256(b"\0".join(key_parts)).hexdigest()[:16]
    directory = os.path.join(cache_dir(), name)
    exe = os.path.join(directory, f"{name}-{key}")
    if os.access(exe, os.X_OK):
        return exe
    os.makedirs(directory, exist_ok=True)
    work = tempfile.mkdtemp(prefix=f".build-{key}-", dir=directory)
    try:
        out = os.path.join(work, name)
        compile(out)
        os.replace(out, exe)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return exe
