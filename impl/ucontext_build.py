"""cffi (API mode) build script for the ucontext peer: asyncspec.impl._ucontext.

The C source is impl/ucontext_peer.c: fibers over glibc's
makecontext/swapcontext on guarded mmap stacks, the spec's C bodies, and a
ping-pong benchmark.  It is a peer to compare the reference switcher
against, not part of it.  cffi compiles it when the package is built or
installed (`cffi_modules` in impl/build_backend.py), on Linux only.
"""

import os

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))

CDEF = """
    #define ASU_PROG_YIELD ...
    #define ASU_PROG_NEST ...
    #define ASU_PROG_SELF ...
    #define ASU_PROG_SIGMASK ...
    #define ASU_PROG_ENTRY ...
    #define ASU_PROG_LOOP ...

    #define ASU_STATE_NONE ...
    #define ASU_STATE_CREATED ...
    #define ASU_STATE_SUSPENDED ...
    #define ASU_STATE_RUNNING ...
    #define ASU_STATE_FINISHED ...

    #define ASU_YIELDED ...
    #define ASU_FINISHED ...
    #define ASU_ERR_RUNNING ...
    #define ASU_ERR_FINISHED ...
    #define ASU_ERR_NONE ...

    #define ASU_STACK_MIN ...
    #define ASU_HAVE_ENTRY_PROBE ...

    struct asu_fiber { ...; };

    int asu_fiber_init(struct asu_fiber *f, size_t size, int prog, int64_t count, struct asu_fiber *bound);
    int asu_fiber_free(struct asu_fiber *f);
    int asu_resume(struct asu_fiber *f, uintptr_t value, uintptr_t *out);
    int asu_fiber_state(const struct asu_fiber *f);
    uintptr_t asu_entry_sp(const struct asu_fiber *f);
    uintptr_t asu_entry_fp(const struct asu_fiber *f);
    uintptr_t asu_stack_lo(const struct asu_fiber *f);
    uintptr_t asu_stack_hi(const struct asu_fiber *f);
    uintptr_t asu_map_start(const struct asu_fiber *f);
    int asu_output(const struct asu_fiber *f, int i);
    int64_t asu_bench_pingpong(uint64_t n);
"""

with open(os.path.join(HERE, "ucontext_peer.c")) as f:
    _c_source = f.read()

ffibuilder = FFI()
ffibuilder.cdef(CDEF)
ffibuilder.set_source("asyncspec.impl._ucontext", _c_source)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
