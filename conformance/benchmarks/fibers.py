"""The fiber switch timed in C: resume/yield round trips between a thread and
a fiber of the installed switcher (`bench_pingpong`).  (The round trip
driven from Python runs the probe interpreter's Loop: conformance/bench.py.)"""

from __future__ import annotations

import os

from asyncspec.impl.fiber import _fiber as installed

from . import address, table
from ._bench import ffi, lib

# bench.h's struct asb_fibers: field -> the switcher's function.
_FIBER_FUNCTIONS = {
    "stack_alloc": "asf_stack_alloc",
    "stack_free": "asf_stack_free",
    "init": "asf_fiber_init",
    "resume": "asf_fiber_resume",
    "yield": "asf_fiber_yield",
    "destroy": "asf_fiber_destroy",
}

_fibers = table(ffi, "struct asb_fibers", {f: address(installed.ffi, installed.lib, fn) for f, fn in _FIBER_FUNCTIONS.items()})


def bench_pingpong(n: int) -> int:
    """Nanoseconds for n resume/yield round trips (2n switches) in C, through
    the installed switcher's public functions."""
    if not isinstance(n, int) or n < 1:
        raise ValueError("n must be a positive int")
    r = lib.asb_pingpong(_fibers, n)
    if r < 0:
        raise OSError(-r, f"bench_pingpong: {os.strerror(-r)}")
    return int(r)
