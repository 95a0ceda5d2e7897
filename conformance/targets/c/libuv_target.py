"""`libuv`: libuv's uv_poll_t, through a C adapter over the `exec:` protocol.

The adapter (conformance/targets/c/libuv/adapter.c) is compiled on first use
with the system's C compiler against the system's libuv (Debian:
libuv1-dev), once per source and compiler, into the cache directory (see
conformance/targets/c/libuv/build.py).  It owns its sources as
`LinuxSources` does and puts the reactor calls to libuv: register =
uv_poll_init + uv_poll_start, reregister = uv_poll_start, deregister =
uv_poll_stop + uv_close, poll = one uv_run(UV_RUN_NOWAIT).  What it claims,
and why, is in the adapter's file head; its hello names the features.

Without a compiler or libuv's headers the target is unavailable, with the
reason (`asyncspec targets readiness` shows it).
"""

from __future__ import annotations

import shlex

from asyncspec.conformance.process.exec_target import exec_target
from asyncspec.conformance.targets.c.libuv.build import build

Libuv = exec_target(lambda: shlex.quote(build()), "readiness", label="libuv")
Libuv.description = "libuv uv_poll_t through a C adapter (compiled on first use against the system's libuv)."


TARGETS = [Libuv]
