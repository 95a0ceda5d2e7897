"""Headless Chromium for the tests: load a page, read its DOM after scripts ran, take a screenshot.

The project's setup installs Debian's chromium; where it is missing the
browser tests skip and say why.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import tempfile
import zlib

# Without the background-networking flags Chromium tries to reach Google's
# services at start and, on a closed network, waits on them.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
]


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _run(args: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(
            [chromium(), *FLAGS, f"--user-data-dir={profile}", *args],
            capture_output=True,
            timeout=timeout,
            check=False,
        )


def dump_dom(url: str) -> str:
    """The page's DOM after its load handlers ran."""
    done = _run(["--virtual-time-budget=5000", "--dump-dom", url])
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    return done.stdout.decode()


def screenshot(url: str, path: str, width: int = 1280, height: int = 1600) -> str:
    done = _run([f"--window-size={width},{height}", f"--screenshot={path}", url])
    assert done.returncode == 0 and os.path.exists(path), done.stderr.decode(errors="replace")[-2000:]
    return path


def distinct_rows(png_path: str) -> int:
    """How many distinct scanlines a PNG has (a blank page has one or two)."""
    with open(png_path, "rb") as f:
        data = f.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, width, channels = 8, b"", 0, 4
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, _height, depth, color = struct.unpack(">IIBB", body[:10])
            assert depth == 8, "expected 8-bit samples"
            channels = {2: 3, 6: 4, 0: 1, 4: 2}[color]
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = 1 + width * channels
    return len({raw[i + 1 : i + stride] for i in range(0, len(raw), stride)})
