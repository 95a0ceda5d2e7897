"""Delay client: N requests at once, from one thread, over non-blocking sockets.

Each request is a random delay (0 to --max-delay-ms); the server answers
each after its delay.  The requests are spread over --connections
connections and pipelined on each, all driven by asyncspec's executor on
this one thread, so the whole run takes about as long as the *longest*
delay, not their sum.  The client checks every answer (each delay comes
back exactly once, never before its delay is over) and prints the total
wall time against the sum of the delays and the longest one.

    python docs/examples/delay_server/client.py --requests 1000

Without --server it starts server.py as a subprocess on a free port (and
always stops and reaps it, also on errors and Ctrl-C); with
--server HOST:PORT it uses a running server.
"""

from __future__ import annotations

import argparse
import os
import random
import select
import socket
import subprocess
import sys
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass

from asyncspec.impl.executor import (
    Executor,
    sock_close,
    sock_connect,
    sock_recv,
    sock_sendall,
    spawn,
)

SERVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "server.py")


@dataclass
class Result:
    requests: int
    connections: int
    total: float  # seconds, first connect to last answer
    longest: float  # seconds, the longest delay asked for
    sum: float  # seconds, all delays added up
    early: int  # answers that came before their delay was over (must be 0)

    def summary(self) -> str:
        return (
            f"{self.requests} requests over {self.connections} connections: {self.total:.3f} s in total; "
            f"longest delay {self.longest:.3f} s, sum of delays {self.sum:.1f} s "
            f"({self.sum / self.total:.0f}x faster than one at a time)"
        )


async def one_connection(address, delays: list[int]) -> int:
    """Send `delays` on one connection, read every answer; the number of
    answers that came too early."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        await sock_connect(sock, address)
        sent = time.monotonic()
        await sock_sendall(sock, b"".join(b"%d\n" % d for d in delays))
        outstanding = Counter(delays)
        got = early = 0
        buf = b""
        while got < len(delays):
            data = await sock_recv(sock, 65536)
            if not data:
                raise ConnectionError(f"the server closed the connection with {len(delays) - got} answers missing")
            now = time.monotonic()
            buf += data
            *lines, buf = buf.split(b"\n")
            for line in lines:
                try:
                    d = int(line)
                except ValueError:
                    raise ValueError(f"the server answered {line!r}, not a delay") from None
                if outstanding[d] == 0:
                    raise ValueError(f"the server answered {d}, which was not asked for (or twice)")
                outstanding[d] -= 1
                got += 1
                if now - sent < d / 1000:
                    early += 1
        return early
    finally:
        await sock_close(sock)


async def all_requests(address, delays: list[int], connections: int) -> int:
    handles = [spawn(one_connection(address, delays[i::connections])) for i in range(connections)]
    early = 0
    for h in handles:
        early += await h
    return early


@contextmanager
def server_process(timeout: float = 15.0):
    """server.py in a subprocess on a free port: yields its (host, port).
    Always terminated and reaped on the way out."""
    proc = subprocess.Popen(
        [sys.executable, SERVER, "--port", "0"], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True
    )
    try:
        ready, _, _ = select.select([proc.stdout], [], [], timeout)
        line = proc.stdout.readline() if ready else ""
        if not line.startswith("listening on "):
            raise RuntimeError(f"the server did not start (said {line!r}, exit status {proc.poll()})")
        host, port = line.split()[-1].rsplit(":", 1)
        yield host, int(port)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()


def run(argv=None) -> Result:
    parser = argparse.ArgumentParser(description="Send many delay requests at once; compare wall time to the delays.")
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--connections", type=int, default=None, help="default: min(requests, 100)")
    parser.add_argument("--max-delay-ms", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--server", default=None, help="HOST:PORT of a running server (default: start one)")
    args = parser.parse_args(argv)
    if args.requests < 1:
        parser.error("--requests must be at least 1")
    if not 0 <= args.max_delay_ms <= 60_000:
        parser.error("--max-delay-ms must be from 0 to 60000")
    connections = min(args.requests, args.connections or 100)
    if connections < 1:
        parser.error("--connections must be at least 1")
    rng = random.Random(args.seed)
    delays = [rng.randint(0, args.max_delay_ms) for _ in range(args.requests)]

    def go(address) -> Result:
        with Executor() as ex:
            started = time.monotonic()
            early = ex.block_on(all_requests(address, delays, connections))
            total = time.monotonic() - started
        return Result(args.requests, connections, total, max(delays) / 1000, sum(delays) / 1000, early)

    if args.server:
        host, _, port = args.server.rpartition(":")
        if not host or not port.isdigit():
            parser.error(f"--server must be HOST:PORT, got {args.server!r}")
        return go((host, int(port)))
    with server_process() as address:
        return go(address)


def main(argv=None) -> int:
    result = run(argv)
    print(result.summary())
    if result.early:
        print(f"error: {result.early} answers came before their delay was over", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
