"""What a test compares before and after to show nothing leaked.

`children()` lists this process's children with their state (zombies
included: a child not reaped shows as "Z"); `open_fds()` lists its open file
descriptors.  The `no_leaks` fixture (conftest.py) asserts both unchanged.
"""

from __future__ import annotations

import os


def children() -> list[tuple[int, str]]:
    """Our child processes (pid, state), zombies included."""
    me = os.getpid()
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == me:
            out.append((int(pid), fields[0]))
    return sorted(out)


def open_fds() -> list[str]:
    return sorted(os.listdir("/proc/self/fd"))
