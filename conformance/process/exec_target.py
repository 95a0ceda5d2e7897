"""`exec:` targets: a runtime checked through an adapter in any language.

    asyncspec run readiness --target 'exec:./my-adapter --flag'

starts the adapter as a child process and speaks protocol
``asyncspec-target/1`` with it: JSON lines over its stdin and stdout,
one message per line, each message described by a JSON Schema in
``conformance/process/protocol/`` (and in docs/protocol.md):

    runner                                   adapter
    {"type": "hello", "protocol", "area"} -> <- {"type": "hello", "protocol", "name",
                                                 "area", "dialect"?, "features"}
    {"type": "open", "example": 1}        -> <- {"type": "opened"}
    {"type": "step", "seq": 1,            -> <- {"type": "result", "seq": 1, "obs": [...]}
     "action": "...", "args": {...}}         or {"type": "error", "seq": 1, "message": "..."}
    ...
    {"type": "close"}                     -> <- {"type": "closed"}
    {"type": "bye"}                       -> (exits with status 0)

One adapter process serves a whole run; it is started by the handshake,
and again after it died.  Everything the adapter does wrong is a failure
of rule TGT-1 naming the step: garbage on stdout, a message that breaks its
schema, an unknown type, a response to another step, an error message, a
crash (the signal or exit status, and its last line of stderr), a hang (no
answer within the step timeout) or an early exit.  The adapter is killed
after any of these (its state is unknown) and always reaped; on Linux it is
also killed if the runner dies.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
from functools import lru_cache
from typing import Any, Callable, Hashable, Mapping

from asyncspec.conformance.areas import conformance
from asyncspec.conformance.process.worker import DEFAULT_TIMEOUT, STARTUP_TIMEOUT, Child
from asyncspec.conformance.target import Target
from asyncspec.conformance.wire import tupled

PROTOCOL = "asyncspec-target/1"
SCHEMA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "protocol")
# The step timeout: the runner sets it from --timeout (the variable reaches
# worker processes too).
TIMEOUT_ENV = "ASYNCSPEC_STEP_TIMEOUT"


class ProtocolError(Exception):
    """The adapter broke the protocol (the message says how, and at which step)."""


# ------------------------------------------------------------------ schemas


@lru_cache(maxsize=None)
def schema(name: str) -> dict:
    with open(os.path.join(SCHEMA_DIR, f"{name}.schema.json")) as f:
        return json.load(f)


_TYPES = {
    "object": dict,
    "array": list,
    "string": str,
    "integer": int,
    "boolean": bool,
}


def check(value: Any, sch: dict, where: str = "") -> None:
    """Validate ``value`` against the subset of JSON Schema the protocol's
    schemas use (type, const, enum, required, properties,
    additionalProperties, items, minimum, minLength); raise ProtocolError."""
    at = where or "the message"
    if "const" in sch and value != sch["const"]:
        raise ProtocolError(f"{at} must be {sch['const']!r}, not {value!r}")
    if "enum" in sch and value not in sch["enum"]:
        raise ProtocolError(f"{at} must be one of {sch['enum']}, not {value!r}")
    kind = sch.get("type")
    if kind is not None:
        ok = isinstance(value, _TYPES[kind]) and not (kind == "integer" and isinstance(value, bool))
        if not ok:
            raise ProtocolError(f"{at} must be a JSON {kind}, not {json.dumps(value)[:60]}")
    if isinstance(value, (int, float)) and not isinstance(value, bool) and "minimum" in sch and value < sch["minimum"]:
        raise ProtocolError(f"{at} must be at least {sch['minimum']}, not {value}")
    if isinstance(value, str) and len(value) < sch.get("minLength", 0):
        raise ProtocolError(f"{at} must not be empty")
    if isinstance(value, dict):
        for key in sch.get("required", ()):
            if key not in value:
                raise ProtocolError(f"{at} lacks {key!r}")
        props = sch.get("properties", {})
        for key, item in value.items():
            if key in props:
                check(item, props[key], f"{key!r}")
            elif sch.get("additionalProperties", True) is False:
                raise ProtocolError(f"{at} has an unknown field {key!r}")
    if isinstance(value, list) and "items" in sch:
        for i, item in enumerate(value):
            check(item, sch["items"], f"{where}[{i}]")


# ------------------------------------------------------------------ the adapter


def _child_env() -> dict:
    return dict(os.environ)


class Adapter:
    """One adapter process and the protocol spoken with it."""

    def __init__(self, command: str, area: str, timeout: float):
        self.command, self.area, self.timeout = command, area, timeout
        argv = shlex.split(command)
        if not argv:
            raise ProtocolError("exec: needs a command")
        exe = argv[0]
        if os.sep not in exe and shutil.which(exe) is None:
            raise ProtocolError(f"adapter command {exe!r} not found on PATH")
        if os.sep in exe and not os.access(exe, os.X_OK):
            raise ProtocolError(f"adapter {exe!r} is not an executable file")
        self.child = Child(argv, timeout, _child_env())
        self.hello = self._handshake()

    def _handshake(self) -> dict:
        failed = self.child.send({"type": "hello", "protocol": PROTOCOL, "area": self.area})
        if failed is not None:
            raise ProtocolError(f"the adapter died before the handshake ({failed['crashed']})")
        msg = self.receive("hello", "the handshake", timeout=max(self.timeout, STARTUP_TIMEOUT))
        if msg["area"] != self.area:
            self.kill()
            raise ProtocolError(f"the adapter implements area {msg['area']!r}, not {self.area!r}")
        return msg

    def alive(self) -> bool:
        return self.child.alive()

    def kill(self) -> None:
        self.child.kill()

    def stop(self) -> None:
        if self.child.alive():
            self.child.send({"type": "bye"})
            try:
                self.child.proc.wait(timeout=2)
            except Exception:
                pass
        self.child.kill()

    def receive(self, expected: str, what: str, seq: int | None = None, timeout: float | None = None) -> dict:
        """The next message, which must be of type ``expected`` (or, for a
        step, an error); a failure of any kind raises AdapterFailed."""
        line = self.child.read_line(timeout)
        if isinstance(line, dict):  # crashed or hung: the child is reaped
            kind, detail = next(iter(line.items()))
            raise AdapterFailed(kind, f"{what}: the adapter {'died' if kind == 'crashed' else 'hung'} ({detail})")
        try:
            try:
                msg = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise ProtocolError(f"not a JSON message on stdout: {line[:80]!r}") from None
            if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
                raise ProtocolError(f"not a protocol message (an object with a 'type'): {line[:80]!r}")
            kind = msg["type"]
            allowed = (expected, "error") if expected == "result" else (expected,)
            if kind not in allowed:
                known = kind in ("hello", "opened", "result", "error", "closed")
                raise ProtocolError(f"expected {expected!r}, got {'a' if known else 'an unknown'} {kind!r} message")
            check(msg, schema(kind if kind != "hello" else "hello.adapter"), f"the {kind!r} message")
            if seq is not None and msg["seq"] != seq:
                raise ProtocolError(f"a response to step {msg['seq']} while step {seq} was asked")
        except ProtocolError as e:
            self.kill()
            raise AdapterFailed("raised", f"{what}: protocol error: {e}") from None
        return msg

    def request(self, message: dict, expected: str, what: str, seq: int | None = None) -> dict:
        failed = self.child.send(message)
        if failed is not None:
            raise AdapterFailed("crashed", f"{what}: the adapter died ({failed['crashed']})")
        return self.receive(expected, what, seq)


class AdapterFailed(Exception):
    """The adapter failed a step; ``kind`` is crashed, hung or raised (TGT-1)."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


# ------------------------------------------------------------------ the Target


def exec_target(command: str | Callable[[], str], area: str, label: str | None = None) -> type[Target]:
    """A Target class for ``exec:COMMAND`` in ``area`` (the handshake runs on first use).

    ``command`` may be a function returning the command line, called when
    the adapter is first started (a built-in adapter that is compiled on
    first use); an exception from it makes the target unavailable, with its
    message.  ``label`` names the target before the handshake.
    """
    try:
        base = conformance(area).wire  # the area's wire view; the adapter owns everything else
    except KeyError as e:
        raise ValueError(e.args[0]) from None

    class ExecTarget(base):  # type: ignore[misc, valid-type]
        name = label or f"exec:{command}"
        out_of_process = True  # no worker process around it: it is one
        _adapter: Adapter | None = None
        _why: str | None = None
        _hello_done = False

        @classmethod
        def _timeout(cls) -> float:
            return float(os.environ.get(TIMEOUT_ENV, DEFAULT_TIMEOUT))

        @classmethod
        def _start(cls) -> Adapter:
            if cls._adapter is None or not cls._adapter.alive():
                cls._adapter = Adapter(command() if callable(command) else command, area, cls._timeout())
                hello = cls._adapter.hello
                cls.name = hello["name"]
                cls.features = frozenset(hello["features"])
                cls.dialect = hello.get("dialect", "")
                cls.description = hello.get("description", f"exec adapter {command!r}")
                cls.profiles = frozenset(hello.get("profiles", ()))
                cls.claims = tuple(hello.get("rules", ()))
                cls.profile = hello.get("profile", "")
            return cls._adapter

        @classmethod
        def unavailable(cls) -> str | None:
            try:
                cls._start()
            except (ProtocolError, AdapterFailed, OSError, RuntimeError) as e:
                return f"{cls.name}: {e}"
            return None

        @classmethod
        def shutdown(cls) -> None:
            if cls._adapter is not None:
                cls._adapter.stop()
                cls._adapter = None

        def open(self) -> None:
            self._broken: tuple | None = None
            self._seq = 0
            cls = type(self)
            cls._examples = getattr(cls, "_examples", 0) + 1
            try:
                adapter = cls._start()
                adapter.request({"type": "open", "example": cls._examples}, "opened", "open")
            except (ProtocolError, AdapterFailed) as e:
                self._broken = (getattr(e, "kind", "raised"), str(e))

        def close(self) -> None:
            adapter = type(self)._adapter
            if self._broken is None and adapter is not None and adapter.alive():
                try:
                    adapter.request({"type": "close"}, "closed", "close")
                except AdapterFailed:
                    pass  # already killed and reaped; the next example starts another

        def perform(self, action: str, args: Mapping[str, Any]) -> Hashable:
            if self._broken is not None:
                return self._broken
            self._seq += 1
            what = f"step {self._seq} ({action})"
            try:
                msg = type(self)._adapter.request(
                    {"type": "step", "seq": self._seq, "action": action, "args": dict(args)}, "result", what, self._seq
                )
            except AdapterFailed as e:
                self._broken = (e.kind, str(e))
                return self._broken
            if msg["type"] == "error":
                return ("raised", f"{what}: the adapter failed: {msg['message']}")
            return self.received(action, tupled(msg["obs"]))

    ExecTarget.area = area
    ExecTarget.__name__ = ExecTarget.__qualname__ = "ExecTarget"
    return ExecTarget
