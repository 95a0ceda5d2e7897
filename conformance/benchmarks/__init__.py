"""The measurements `asyncspec bench` makes of the reference implementation.

Benchmark code, not part of the implementation: the C loops (bench.c,
compiled at install time into asyncspec.conformance.benchmarks._bench) call
the installed extensions' public functions through their addresses, so
what they time is the installed code; the Python-driven loops and their
pure-Python baselines are in wakes.py and fibers.py.
"""

from __future__ import annotations


def address(ffi, lib, name: str) -> int:
    """The address of the C function `name` of a cffi module (`ffi`, `lib`)."""
    return int(ffi.cast("uintptr_t", ffi.addressof(lib, name)))


def table(ffi, struct: str, entries: dict[str, int]):
    """A new `struct` of function pointers (cffi `ffi`), each field set to
    the address `entries` gives it."""
    t = ffi.new(struct + " *")
    for field, addr in entries.items():
        setattr(t, field, ffi.cast(ffi.typeof(getattr(t, field)), addr))
    return t
