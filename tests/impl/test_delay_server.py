"""The delay-server demo (docs/examples/delay_server): many requests at once on one thread.

The client starts the server as a subprocess, sends 100 random delays
concurrently over 20 connections, and checks every answer; the whole run
must take about the longest delay, not the sum, and leave nothing behind
(file descriptors, tasks, wakers, the server process).
"""

from __future__ import annotations

import gc
import importlib.util
import os
import socket
import subprocess
import sys

import pytest
from asyncspec.impl import task

EXAMPLE = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, "docs", "examples", "delay_server")

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the reactor's epoll backend")


def load_client():
    spec = importlib.util.spec_from_file_location("delay_client", os.path.join(EXAMPLE, "client.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[spec.name]
        raise
    return module


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def children() -> set[int]:
    with open(f"/proc/{os.getpid()}/task/{os.getpid()}/children") as f:
        return {int(p) for p in f.read().split()}


def test_100_concurrent_requests_take_about_the_longest_delay():
    client = load_client()
    gc.collect()
    fds, live, kids = fd_count(), task.live_tasks(), children()
    task.take_leaks()
    result = client.run(["--requests", "100", "--connections", "20", "--max-delay-ms", "400", "--seed", "3"])
    gc.collect()
    assert result.requests == 100 and result.connections == 20
    assert result.early == 0, "an answer came before its delay was over"
    assert result.longest > 0.3  # seed 3 draws a long one
    assert result.total >= result.longest
    assert result.total < result.longest + 1.5, result.summary()
    assert result.total < 0.5 * result.sum, result.summary()
    assert fd_count() == fds, "file descriptors leaked"
    assert task.live_tasks() == live and task.leaked_wakers() == 0
    assert children() == kids, "the server process was not reaped"


def test_the_server_answers_bad_lines_with_an_error_and_exits_cleanly():
    proc = subprocess.Popen(
        [sys.executable, os.path.join(EXAMPLE, "server.py"), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert line.startswith("listening on 127.0.0.1:"), line
        port = int(line.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"120\nabc\n0\n")
            s.shutdown(socket.SHUT_WR)
            data = b""
            while chunk := s.recv(4096):
                data += chunk
        assert data.splitlines() == [
            b"error: a request is a delay in whole milliseconds from 0 to 60000, got b'abc'",
            b"0",
            b"120",
        ]
        # A connection still waiting when SIGTERM comes: the server closes its
        # executor (cancelling the sleeping request) and exits with status 0.
        held = socket.create_connection(("127.0.0.1", port), timeout=10)
        held.sendall(b"30000\n")
    finally:
        proc.terminate()
        try:
            rc = proc.wait(timeout=10)
        finally:
            proc.kill()
            proc.wait()
    err = proc.stderr.read()
    proc.stdout.close()
    proc.stderr.close()
    held.close()
    assert rc == 0 and err == "", err
