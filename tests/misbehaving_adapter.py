"""An exec: adapter that breaks the protocol on purpose, at a chosen step.

    python tests/misbehaving_adapter.py MODE STEP

serves the stdlib-epoll readiness target correctly until step STEP of the
first example, then: garbage (a line that is not JSON), wrong-seq (answers
as if it were the previous step), unknown (a message of an unknown type),
segfault (dies of SIGSEGV), hang (never answers), exit (exits with status
3), error (reports an error for the step).  MODE bad-hello answers the
handshake without its features; MODE claims serves correctly but claims
only some rules and the portable profile.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time

from asyncspec.conformance.process import serve as served
from asyncspec.conformance.targets.python.stdlib_epoll import StdlibEpoll


def main() -> int:
    mode, at = sys.argv[1], int(sys.argv[2])
    out = sys.stdout

    def fault(msg: dict) -> bool:
        if msg["seq"] != at:
            return False
        if mode == "garbage":
            out.write("this is not json\n")
        elif mode == "wrong-seq":
            out.write(json.dumps({"type": "result", "seq": at - 1, "obs": ["ok"]}) + "\n")
        elif mode == "unknown":
            out.write(json.dumps({"type": "bogus", "seq": at}) + "\n")
        elif mode == "segfault":
            os.kill(os.getpid(), signal.SIGSEGV)
        elif mode == "hang":
            time.sleep(3600)
        elif mode == "exit":
            print("giving up", file=sys.stderr)
            sys.exit(3)
        elif mode == "error":
            out.write(json.dumps({"type": "error", "seq": at, "message": "the runtime refused"}) + "\n")
        out.flush()
        return True

    if mode == "claims":
        # Claims only the level-triggered rules, and only the portable profile.
        out_write = out.write

        def write(text):
            msg = json.loads(text)
            if msg.get("type") == "hello":
                msg.update(rules=["RDY-LT-*", "RDY-SRC-*"], profiles=["portable"], profile="portable")
                text = json.dumps(msg) + "\n"
            return out_write(text)

        out.write = write
        return served.serve(StdlibEpoll, sys.stdin, out)
    if mode == "bad-hello":
        sys.stdin.readline()
        out.write(json.dumps({"type": "hello", "protocol": "asyncspec-target/1", "name": "x", "area": "readiness"}) + "\n")
        out.flush()
        sys.stdin.read()
        return 0
    return served.serve(StdlibEpoll, sys.stdin, out, fault)


if __name__ == "__main__":
    sys.exit(main())
