"""Run a target in a worker process, so a crashing or hanging target is a
reported failure and never a dead runner.

`isolated(target_cls, timeout)` returns a Target class with the same name,
area, dialect and features whose instances forward every step to a child
Python process over JSON lines on its stdin/stdout:

    -> {"op": "open"}                       <- {"ok": true}
    -> {"op": "perform", "action": "poll", "args": {...}}
                                            <- {"ok": true, "obs": [...]}
    -> {"op": "close"}                      <- {"ok": true}

One child serves every example of a run (a fresh target instance per
example); when it dies it is reaped and the next example starts another.
A step whose child dies (SIGSEGV, SIGBUS, SIGILL, abort, exit) or does not
answer within ``timeout`` seconds observes ``("crashed", "SIGSEGV")`` or
``("hung", "...")``, which no spec allows, so the step fails with rule
TGT-1 (defined with the Target protocol) and the steps so far.  Observations cross as JSON: tuples become
lists on the way and tuples again on return.
"""

from __future__ import annotations

import ctypes
import importlib
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any, Hashable, Mapping

from asyncspec.conformance.process.procs import no_core_dumps
from asyncspec.conformance.target import Target
from asyncspec.conformance.wire import tupled

DEFAULT_TIMEOUT = 10.0
# How long a new child may take to start and answer its first message.
STARTUP_TIMEOUT = 60.0


def _signal_name(code: int) -> str:
    if code < 0:
        try:
            return signal.Signals(-code).name
        except ValueError:
            return f"signal {-code}"
    return f"exit status {code}"


class Child:
    """A child process spoken to in JSON lines over its stdin and stdout.

    stderr goes to a file (a chatty child must not block on a full pipe);
    faults in the child leave no core files behind, and on Linux the child
    is killed if its parent dies (so a killed runner leaves no orphan).
    The child is always reaped: on `stop`, `kill`, or when found dead.
    """

    def __init__(self, argv: list[str], timeout: float, env: dict | None = None):
        self.stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            env=env,
            preexec_fn=_child_setup,
        )
        self.timeout = timeout
        self._buf = b""

    def alive(self) -> bool:
        return self.proc.poll() is None

    def send(self, message: dict) -> dict | None:
        """Write one message; None, or {"crashed": ...} if the child is gone."""
        try:
            self.proc.stdin.write((json.dumps(message) + "\n").encode())
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            return self._died()
        return None

    def read_line(self, timeout: float | None = None) -> bytes | dict:
        """The next line the child writes, or {"crashed": ...} / {"hung": ...}."""
        limit = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                self.kill()
                return {"hung": f"no answer within {limit:g} s"}
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                return self._died()
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return line

    def request(self, message: dict, timeout: float | None = None) -> dict:
        """Send one request; the answer, or {"crashed": ...} / {"hung": ...}."""
        failed = self.send(message)
        if failed is not None:
            return failed
        line = self.read_line(timeout)
        return line if isinstance(line, dict) else json.loads(line)

    def _died(self) -> dict:
        try:
            code = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()
            code = self.proc.returncode
        self.stderr.seek(0)
        err = self.stderr.read().decode(errors="replace").strip().splitlines()
        detail = _signal_name(code) + (f": {err[-1]}" if err else "")
        self._reap()
        return {"crashed": detail}

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self._reap()

    def _reap(self) -> None:
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        for stream in (self.proc.stdin, self.proc.stdout, self.stderr):
            try:
                stream.close()
            except OSError:
                pass

    def stop(self) -> None:
        if self.alive():
            try:
                self.proc.stdin.close()
                self.proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                self.kill()
        self._reap()


def _child_setup():
    no_core_dumps()
    if sys.platform.startswith("linux"):
        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def target_path(cls: type[Target]) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def isolated(target_cls: type[Target], timeout: float = DEFAULT_TIMEOUT) -> type[Target]:
    """A Target class that runs ``target_cls`` in a worker process."""
    path = target_path(target_cls)
    shadow = target_cls()  # never opened: only its pure `project` is used

    class Isolated(Target):
        name = target_cls.name
        area = target_cls.area
        dialect = target_cls.dialect
        features = target_cls.features
        description = target_cls.description
        profile = target_cls.profile
        profiles = target_cls.profiles
        claims = target_cls.claims
        max_steps = target_cls.max_steps
        _child: Child | None = None
        inner = target_cls

        @classmethod
        def unavailable(cls):
            return target_cls.unavailable()

        @classmethod
        def shutdown(cls) -> None:
            if cls._child is not None:
                cls._child.stop()
                cls._child = None

        def open(self) -> None:
            self._broken: dict | None = None
            cls = type(self)
            fresh = cls._child is None or not cls._child.alive()
            if fresh:
                env = dict(os.environ, PYTHONPATH=os.pathsep.join(p or os.getcwd() for p in sys.path))
                cls._child = Child([sys.executable, "-m", "asyncspec.conformance.process.worker", path], timeout, env)
            # A new worker first imports Python and the target: that is not
            # the target's step time, so its first answer gets longer.
            answer = cls._child.request({"op": "open"}, max(timeout, STARTUP_TIMEOUT) if fresh else None)
            if not answer.get("ok"):
                self._broken = answer

        def close(self) -> None:
            child = type(self)._child
            if child is not None and child.alive() and self._broken is None:
                answer = child.request({"op": "close"})
                if not answer.get("ok"):
                    type(self)._child = None

        def perform(self, action: str, args: Mapping[str, Any]) -> Hashable:
            if self._broken is not None:
                return _failure(self._broken)
            child = type(self)._child
            answer = child.request({"op": "perform", "action": action, "args": dict(args)})
            if "obs" in answer:
                return tupled(answer["obs"])
            self._broken = answer
            type(self)._child = None if not child.alive() else child
            return _failure(answer)

        def project(self, state, action, obs):
            return shadow.project(state, action, obs)

    Isolated.__name__ = Isolated.__qualname__ = f"Isolated[{target_cls.__name__}]"
    return Isolated


def _failure(answer: dict) -> tuple:
    if "crashed" in answer:
        return ("crashed", answer["crashed"])
    if "hung" in answer:
        return ("hung", answer["hung"])
    return ("raised", answer.get("error", "the worker failed"))


# ------------------------------------------------------------------ the child


def serve(path: str) -> int:
    module, _, attr = path.partition(":")
    cls = importlib.import_module(module)
    for part in attr.split("."):
        cls = getattr(cls, part)
    if not (isinstance(cls, type) and issubclass(cls, Target)):
        raise SystemExit(f"{path} is not a Target")
    out = sys.stdout.buffer
    inst = None
    for line in sys.stdin.buffer:
        msg = json.loads(line)
        op = msg["op"]
        try:
            if op == "open":
                inst = cls()
                inst.open()
                reply = {"ok": True}
            elif op == "close":
                if inst is not None:
                    inst.close()
                inst = None
                reply = {"ok": True}
            elif op == "perform":
                try:
                    obs = inst.perform(msg["action"], msg["args"])
                except Exception as e:  # a raising target: an observation like any other
                    obs = ("raised", f"{type(e).__name__}: {e}")
                reply = {"ok": True, "obs": obs}
            else:
                reply = {"ok": False, "error": f"unknown op {op!r}"}
        except Exception as e:
            reply = {"ok": False, "error": f"{type(e).__name__}: {e}"}
        out.write((json.dumps(reply) + "\n").encode())
        out.flush()
    if inst is not None:
        inst.close()
    return 0


if __name__ == "__main__":
    sys.exit(serve(sys.argv[1]))
