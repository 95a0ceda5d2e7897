"""Serve a Python Target over the `exec:` protocol (asyncspec-target/1).

    asyncspec run readiness --target 'exec:python -m asyncspec.conformance.process.serve mypkg.mod:MyTarget'

The reference implementation of the adapter side of the protocol (see
conformance/process/exec_target.py and docs/protocol.md): a handshake, then one
target instance per example (open ... close), one result per step.  A step
the target raises on is answered with an "error" message.
"""

from __future__ import annotations

import importlib
import json
import sys
from typing import IO, Callable

from asyncspec.conformance.process.exec_target import PROTOCOL
from asyncspec.conformance.targets import load


def _load(path: str):
    module, _, attr = path.partition(":")
    if not attr:
        raise SystemExit(f"serve: give the target as module:attribute, not {path!r}")
    cls = getattr(importlib.import_module(module), attr)
    return load(path, cls.area)


def serve(cls, stdin: IO[str], stdout: IO[str], on_step: Callable[[dict], None] | None = None) -> int:
    """Answer the runner's messages until "bye" or end of input.

    ``on_step(message)`` runs before each step; when it returns true the
    step is taken as answered (tests plant faults there).
    """

    def send(msg: dict) -> None:
        stdout.write(json.dumps(msg) + "\n")
        stdout.flush()

    target = None
    for line in stdin:
        msg = json.loads(line)
        kind = msg.get("type")
        if kind == "hello":
            if msg.get("protocol") != PROTOCOL:
                print(f"serve: unsupported protocol {msg.get('protocol')!r}", file=sys.stderr)
                return 2
            hello = {"type": "hello", "protocol": PROTOCOL, "name": cls.name, "area": cls.area,
                     "features": sorted(cls.features), "description": cls.description}  # fmt: skip
            if getattr(cls, "dialect", ""):
                hello["dialect"] = cls.dialect
            send(hello)
        elif kind == "open":
            target = cls()
            target.open()
            send({"type": "opened"})
        elif kind == "step":
            if on_step is not None and on_step(msg):
                continue
            try:
                obs = target.perform(msg["action"], msg["args"])
            except Exception as e:  # the target's own failure
                send({"type": "error", "seq": msg["seq"], "message": f"{type(e).__name__}: {e}"})
                continue
            send({"type": "result", "seq": msg["seq"], "obs": obs})
        elif kind == "close":
            if target is not None:
                target.close()
                target = None
            send({"type": "closed"})
        elif kind == "bye":
            break
        else:
            print(f"serve: unknown message type {kind!r}", file=sys.stderr)
            return 2
    if target is not None:
        target.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m asyncspec.conformance.process.serve module:Target", file=sys.stderr)
        return 2
    return serve(_load(argv[0]), sys.stdin, sys.stdout)


if __name__ == "__main__":
    sys.exit(main())
