"""Build the libuv readiness adapter (adapter.c) once, into the cache.

    from asyncspec.conformance.targets.c.libuv.build import available, build
    why = available()   # None, or why the adapter cannot be built here
    exe = build()       # the executable's path (compiled on first use)

The adapter is C11 over libc and libuv only.  It is compiled with

    cc -std=c11 -O2 -Wall -Werror adapter.c $(pkg-config --cflags --libs libuv)

(``-luv`` when pkg-config is missing or does not know libuv; ``$CC``
replaces ``cc``) once, into the build cache (conformance/process/buildcache.py), keyed by the
source, the compiler's ``--version`` line and the flags.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess

from asyncspec.conformance.process.buildcache import cached

SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "adapter.c")
CFLAGS = ("-std=c11", "-O2", "-Wall", "-Werror")
#: How long a compile may take before it counts as hung.
BUILD_TIMEOUT = 120.0
NO_HEADERS = "libuv headers not found (Debian: apt-get install libuv1-dev)"


class LibuvAdapterError(RuntimeError):
    """Something kept the libuv adapter from being built."""


class LibuvUnavailable(LibuvAdapterError):
    """No C compiler, or no libuv to compile against (the message says which)."""


class LibuvBuildError(LibuvAdapterError):
    """The compiler failed on adapter.c (the message carries its stderr)."""


def _run(argv: list[str], timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout, check=False)


def _compiler() -> tuple[list[str], str]:
    """The compiler's argv and its ``--version`` first line."""
    cc = shlex.split(os.environ.get("CC") or "cc")
    if not cc or shutil.which(cc[0]) is None:
        raise LibuvUnavailable(f"no C compiler: {cc[0] if cc else '$CC'} not found on PATH (Debian: apt-get install gcc libc6-dev)")
    try:
        proc = _run([*cc, "--version"])
    except (OSError, subprocess.TimeoutExpired) as e:
        raise LibuvUnavailable(f"{' '.join(cc)} --version failed: {e}") from None
    lines = proc.stdout.decode(errors="replace").strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise LibuvUnavailable(f"{' '.join(cc)} --version failed: {proc.stderr.decode(errors='replace').strip()}")
    return cc, lines[0]


def _libuv_flags() -> list[str]:
    """pkg-config's flags for libuv, or plain -luv (the compile then tells
    whether the headers and library are there)."""
    pkg = shutil.which("pkg-config")
    if pkg is not None:
        try:
            proc = _run([pkg, "--cflags", "--libs", "libuv"])
        except (OSError, subprocess.TimeoutExpired):
            proc = None
        if proc is not None and proc.returncode == 0:
            return shlex.split(proc.stdout.decode())
    return ["-luv"]


def build(source: str | None = None) -> str:
    """Compile adapter.c (or ``source``) unless the cache has it; return the executable's path."""
    cc, version = _compiler()
    libs = _libuv_flags()
    src = os.path.abspath(SOURCE if source is None else source)
    with open(src, "rb") as f:
        code = f.read()
    flags = [*CFLAGS, *libs]

    def compile(out: str) -> None:
        try:
            proc = _run([*cc, *CFLAGS, "-o", out, src, *libs], timeout=BUILD_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise LibuvBuildError(f"{cc[0]} did not finish compiling {src} within {BUILD_TIMEOUT:g} s") from None
        if proc.returncode != 0:
            err = proc.stderr.decode(errors="replace").strip()
            if re.search(r"\buv\.h['’]?: No such file|['‘]?\buv\.h['’]? file not found", err):
                raise LibuvUnavailable(NO_HEADERS)
            if "cannot find -luv" in err:
                raise LibuvUnavailable(f"{NO_HEADERS}: the library is missing ({err.splitlines()[-1]})")
            raise LibuvBuildError(f"{cc[0]} could not compile {src} ({version}, exit status {proc.returncode}):\n{err}")

    return cached("libuv_adapter", [code, version.encode(), " ".join([*cc, *flags]).encode()], compile)


def available() -> str | None:
    """None when the adapter can be built (and is, now), else why not."""
    try:
        build()
    except LibuvAdapterError as e:
        return str(e)
    except OSError as e:
        return f"cannot build the libuv adapter: {e}"
    return None
