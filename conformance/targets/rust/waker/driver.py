"""Rust's std as an oracle for the Waker / RawWakerVTable contract.

``main.rs`` beside this file is a small Rust program (std only) that keeps
eight waker slots and eight tasks, performs waker operations on real
``std::task::Waker`` values and reports every call that reaches a vtable it
controls.  This module compiles it (once per source and rustc version, into
a cache directory) and drives it over JSON lines:

    with RustWakers() as w:
        w.request("new", slot=0, task=1, kind="raw")
        # {"calls": [], "result": None, "instances": [0, 1, 0, ...], "error": None}
        w.request("clone", src=0, dst=1)
        # {"calls": [("clone", 1)], "result": None, "instances": [0, 2, 0, ...], "error": None}

Every answer has the same four keys:

``calls``
    the vtable calls made while serving this request, in order, as
    ``(name, task)`` tuples; ``name`` is "clone", "wake", "wake_by_ref" or
    "drop".  Arc tasks (``kind="arc"``, std's own vtable over ``Arc<impl
    Wake>``) report only "wake" and "wake_by_ref", their clones and drops
    show in ``instances``.
``result``
    ``True``/``False`` for ``will_wake`` and ``context``, else ``None``.
``instances``
    live wakers per task 0..7 (raw: the vtable's own count; arc:
    ``Arc::strong_count - 1``).
``error``
    ``None``, or a sentence naming what was wrong with the request.  A
    refused request changes nothing and the interpreter keeps going.

The operations and their exact meaning are listed at the top of main.rs.
A request the interpreter does not answer (it crashed, exited, or gave no
answer within the timeout) raises `InterpreterFailed` naming the request
and the exit status or signal; the interpreter is then killed and reaped,
and the object is closed.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import tempfile
import time

from asyncspec.conformance.process import procs
from asyncspec.conformance.process.buildcache import cache_dir, cached  # noqa: F401  (cache_dir: where builds go)
from asyncspec.conformance.process.procs import exit_status, no_core_dumps

DEFAULT_TIMEOUT = 10.0
#: How long a compile may take before it counts as hung.
BUILD_TIMEOUT = 300.0
RUSTC_FLAGS = ("-O", "--edition", "2021", "--crate-name", "rust_waker")

SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "main.rs")


class RustWakerError(Exception):
    """Something kept the Rust waker oracle from answering."""


class RustUnavailable(RustWakerError):
    """There is no usable rustc here (the message says why)."""


class RustBuildError(RustWakerError):
    """rustc could not compile the interpreter (the message carries its stderr)."""


class InterpreterFailed(RustWakerError):
    """The interpreter did not answer a request: it died, hung, or is closed."""


class InterpreterDied(InterpreterFailed):
    """The interpreter exited or was killed by a signal during a request."""


class InterpreterHung(InterpreterFailed):
    """The interpreter gave no answer within the timeout (it was killed)."""


# ------------------------------------------------------------------ build


def _rustc() -> tuple[str, str]:
    """rustc's path and its ``rustc -V`` line, or RustUnavailable."""
    try:
        return procs.rustc()
    except procs.NoRustc as e:
        raise RustUnavailable(str(e)) from None


def build(source: str | None = None) -> str:
    """Compile the interpreter (``source``: main.rs by default) unless the
    cache has it (see conformance/process/buildcache.py, keyed by the source, the
    ``rustc -V`` line and the flags); return the executable's path."""
    rustc, version = _rustc()
    src = os.path.abspath(SOURCE if source is None else source)
    with open(src, "rb") as f:
        code = f.read()

    def compile(out: str) -> None:
        try:
            proc = subprocess.run(
                [rustc, *RUSTC_FLAGS, "-o", out, src],
                cwd=os.path.dirname(out),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=BUILD_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise RustBuildError(f"rustc did not finish compiling {src} within {BUILD_TIMEOUT:g} s") from None
        if proc.returncode != 0:
            err = proc.stderr.decode(errors="replace").strip()
            raise RustBuildError(f"rustc could not compile {src} ({version}, {exit_status(proc.returncode)}):\n{err}")

    return cached("rust_waker", [code, version.encode(), " ".join(RUSTC_FLAGS).encode()], compile)


def available() -> str | None:
    """None when the interpreter can be built (and is, now), else why not."""
    try:
        build()
    except RustWakerError as e:
        return str(e)
    except OSError as e:
        return f"cannot build the Rust waker interpreter: {e}"
    return None


# ------------------------------------------------------------ the driver




class RustWakers:
    """One running interpreter.  Use as a context manager, or call close().

    ``timeout`` bounds each request (seconds); ``exe`` is an interpreter
    built already (default: ``build()``).
    """

    def __init__(self, timeout: float = DEFAULT_TIMEOUT, exe: str | None = None):

        self.timeout = timeout
        self._buf = b""
        self._closed_because: str | None = None
        self._proc: subprocess.Popen | None = None
        exe = build() if exe is None else exe
        # stderr goes to a file: a chatty interpreter must not block on a
        # full pipe, and its last words go into the error message.
        self._stderr = tempfile.TemporaryFile()
        try:
            self._proc = subprocess.Popen(
                [exe],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._stderr,
                preexec_fn=no_core_dumps,
            )
        except BaseException:
            self._stderr.close()
            raise

    @property
    def pid(self) -> int | None:
        """The interpreter's process id (None once closed)."""
        return None if self._proc is None else self._proc.pid

    def __enter__(self) -> RustWakers:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def request(self, op: str, **fields) -> dict:
        """Perform one operation; the interpreter's answer (see the module doc)."""
        message = json.dumps({"op": op, **fields})
        answer = self._exchange(message, message.encode())
        if op == "quit" and answer["error"] is None:
            self._finish("it quit")
        return answer

    def request_line(self, line: str | bytes) -> dict:
        """Send one raw line (no newline) as a request: for malformed input."""
        data = line.encode() if isinstance(line, str) else bytes(line)
        if b"\n" in data:
            raise ValueError("a request is one line")
        return self._exchange(line if isinstance(line, str) else repr(data), data)

    def reset(self) -> dict:
        """Drop every slot's waker (the answer reports those drops) and start a new trace."""
        return self.request("reset")

    def close(self) -> None:
        """Stop the interpreter (end of input, then SIGKILL if it lingers) and reap it."""
        self._finish("close() was called")

    # -------------------------------------------------------------- inside

    def _exchange(self, message: str, data: bytes) -> dict:
        """Send ``data`` and a newline; read one answer.  ``message`` names the request in errors."""
        proc = self._proc
        if proc is None:
            raise InterpreterFailed(f"request {message}: the Rust waker interpreter is closed ({self._closed_because})")
        try:
            try:
                proc.stdin.write(data + b"\n")
                proc.stdin.flush()
            except OSError:  # BrokenPipeError: it is gone already
                self._died(message)
            deadline = time.monotonic() + self.timeout
            fd = proc.stdout.fileno()
            while b"\n" not in self._buf:
                left = deadline - time.monotonic()
                if left <= 0:
                    self._kill(f"it gave no answer to {message} within {self.timeout:g} s")
                    raise InterpreterHung(
                        f"request {message}: the Rust waker interpreter gave no answer within "
                        f"{self.timeout:g} s (killed)"
                    )
                ready, _, _ = select.select([fd], [], [], left)
                if not ready:
                    continue
                chunk = os.read(fd, 65536)
                if not chunk:
                    self._died(message)
                self._buf += chunk
        except InterpreterFailed:
            raise
        except BaseException:
            # Interrupted mid-request (KeyboardInterrupt, ...): the answer
            # would arrive out of step, so the interpreter goes.
            self._kill("interrupted during a request")
            raise
        line, _, self._buf = self._buf.partition(b"\n")
        try:
            answer = json.loads(line)
            answer["calls"] = [(str(name), int(task)) for name, task in answer["calls"]]
            if set(answer) != {"calls", "result", "instances", "error"}:
                raise ValueError(sorted(answer))
        except (ValueError, TypeError, KeyError):
            self._kill("it answered out of protocol")
            raise InterpreterFailed(
                f"request {message}: the Rust waker interpreter answered out of protocol: {line[:300]!r} (killed)"
            ) from None
        return answer

    def _died(self, message: str):
        proc = self._proc
        try:
            code = proc.wait(timeout=5)
        except subprocess.TimeoutExpired:  # stdout closed but still running
            proc.kill()
            code = proc.wait()
        self._stderr.seek(0)
        err = self._stderr.read().decode(errors="replace").strip().splitlines()
        status = exit_status(code)
        self._finish(f"it died: {status}")
        detail = f"; its stderr ends: {err[-1]}" if err else ""
        raise InterpreterDied(f"request {message}: the Rust waker interpreter died ({status}){detail}")

    def _kill(self, why: str) -> None:
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.kill()
        self._finish(why)

    def _finish(self, why: str) -> None:
        """Reap the interpreter (ending it if need be) and close every fd we hold."""
        proc = self._proc
        if proc is None:
            return
        self._proc = None
        self._closed_because = why
        try:
            if proc.poll() is None:
                try:
                    proc.stdin.close()  # end of input: the interpreter exits 0
                except OSError:
                    pass
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        finally:
            for stream in (proc.stdin, proc.stdout, self._stderr):
                try:
                    stream.close()
                except OSError:
                    pass
