"""Delay server: each request line is a delay in milliseconds; the reply, the
same number on a line, comes after that delay.

One thread, asyncspec's executor (asyncspec.impl.executor): a task accepts
connections, a task per connection reads request lines, and a task per
request sleeps on the executor's timer heap and then answers.  Replies go
out in the order the delays end, not the order of the requests, so a
client that pipelines many requests on one connection gets each answer as
soon as its delay is over.

    python docs/examples/delay_server/server.py --port 7000
    printf '300\\n100\\n' | nc 127.0.0.1 7000       # "100" after 0.1 s, "300" after 0.3 s

A line that is not a whole number of milliseconds from 0 to 60000 gets
"error: ..." back.  The server prints "listening on HOST:PORT" once it
accepts connections, and exits cleanly (closing its executor: every task
cancelled, every socket deregistered and closed) on SIGTERM or Ctrl-C.
"""

from __future__ import annotations

import argparse
import signal
import socket
import sys

from asyncspec.impl.executor import (
    Executor,
    readable,
    sleep,
    sock_accept,
    sock_close,
    sock_recv,
    sock_sendall,
    spawn,
)

MAX_DELAY_MS = 60_000
MAX_LINE = 64  # bytes: a longer line is not a delay


class Connection:
    """One client's socket: replies from many request tasks, written by one
    of them at a time (only one task may wait for a socket to be writable)."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.out = bytearray()
        self.flushing = False
        self.closed = False

    async def reply(self, line: bytes) -> None:
        if self.closed:
            return  # the client went away while this request was sleeping
        self.out += line
        if self.flushing:
            return  # the task already writing sends it too
        self.flushing = True
        try:
            while self.out and not self.closed:
                data = bytes(self.out)
                self.out.clear()
                await sock_sendall(self.sock, data)
        except OSError:
            self.closed = True  # reset by the client: nothing more to say
        finally:
            self.flushing = False


async def answer(conn: Connection, line: bytes) -> None:
    try:
        ms = int(line)
        if not 0 <= ms <= MAX_DELAY_MS:
            raise ValueError
    except ValueError:
        await conn.reply(b"error: a request is a delay in whole milliseconds from 0 to %d, got %r\n"
                         % (MAX_DELAY_MS, line[:MAX_LINE]))  # fmt: skip
        return
    await sleep(ms / 1000)
    await conn.reply(b"%d\n" % ms)


async def serve_connection(sock: socket.socket) -> None:
    conn = Connection(sock)
    pending = []
    buf = b""
    try:
        while True:
            try:
                data = await sock_recv(sock, 65536)
            except ConnectionError:
                break
            if not data:
                break  # the client has sent everything: answer, then close
            buf += data
            *lines, buf = buf.split(b"\n")
            for line in lines:
                if line.strip():
                    pending.append(spawn(answer(conn, line.strip())))
            if len(buf) > MAX_LINE:
                await conn.reply(b"error: request line longer than %d bytes\n" % MAX_LINE)
                break
            if len(pending) > 1024:
                pending = [h for h in pending if not h.done()]
        for h in pending:
            await h
    finally:
        conn.closed = True
        await sock_close(sock)


async def serve(listener: socket.socket) -> None:
    while True:
        conn, _ = await sock_accept(listener)
        spawn(serve_connection(conn)).detach()  # runs on its own; nobody awaits it


async def serve_until(listener: socket.socket, stop: socket.socket) -> None:
    """Serve until a byte arrives on `stop` (SIGTERM writes one)."""
    spawn(serve(listener)).detach()
    await readable(stop)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Reply to each line (a delay in ms) after that delay.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7000, help="0 picks a free port (printed)")
    args = parser.parse_args(argv)
    # SIGTERM only writes a byte to a socketpair the executor watches: the
    # handler runs wherever Python happens to be, and an exception raised
    # there could land inside any task.  The stop is an ordinary readiness.
    stop_r, stop_w = socket.socketpair()
    stop_r.setblocking(False)
    stop_w.setblocking(False)
    signal.signal(signal.SIGTERM, lambda signum, frame: stop_w.send(b"x"))
    with stop_r, stop_w, socket.create_server((args.host, args.port), backlog=1024) as listener:
        listener.setblocking(False)
        host, port = listener.getsockname()[:2]
        print(f"listening on {host}:{port}", flush=True)
        with Executor() as ex:  # closed first: it deregisters the listener before the socket closes
            try:
                ex.block_on(serve_until(listener, stop_r))
            except KeyboardInterrupt:
                pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
