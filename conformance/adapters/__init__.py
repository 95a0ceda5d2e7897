"""Adapters: programs that put a runtime behind the `exec:` target protocol.

- `serve`: any Python Target served over the protocol (``python -m
  asyncspec.conformance.adapters.serve module:Target``), for runtimes
  written in Python and as the protocol's reference implementation;
- `rust_waker/`: a std-only Rust program driven by the `rust-std` waker target.
"""
