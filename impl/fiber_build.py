"""cffi (API mode) build script for the fibers' C layer: asyncspec.impl._fiber.

The C source is impl/fiber.c (architecture-neutral) plus the architecture's
context switch in assembly (impl/fiber_x86_64.S).  cffi compiles both when the
package is built or installed (`cffi_modules` in impl/build_backend.py, whose
build_ext also teaches the compiler the `.S` extension).

`SUPPORTED` says whether this machine has a context switch; the backend only
builds the module where it does.

`build_variant(name, defines, tmpdir)` compiles the same two files with extra
preprocessor definitions (the deliberately broken ASF_BROKEN_* switchers, see
the head of fiber_x86_64.S) into a separate module in a directory of the
caller's, without touching the installed one; `asyncspec.impl.fiber.api`
puts the fiber API over such a module.
"""

import os
import platform
import sys

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))

# Assembly file per (OS family, machine).  Only ELF x86-64 so far; an AArch64
# file would implement the same functions (see the head of fiber_x86_64.S).
_ASM = {
    ("linux", "x86_64"): "fiber_x86_64.S",
    ("linux", "amd64"): "fiber_x86_64.S",
}


def asm_file():
    """The assembly file for this machine, or None if there is none."""
    osname = "linux" if sys.platform.startswith("linux") else sys.platform
    return _ASM.get((osname, platform.machine().lower()))


SUPPORTED = asm_file() is not None

CDEF = """
    #define ASF_STACK_MIN ...
    #define ASF_STACK_IDLE ...
    #define ASF_STACK_BUSY ...
    #define ASF_OP_IO ...

    #define ASF_STATE_CLOSED ...
    #define ASF_STATE_NEW ...
    #define ASF_STATE_SUSPENDED ...
    #define ASF_STATE_RUNNING ...
    #define ASF_STATE_FINISHED ...
    #define ASF_STATE_FAILED ...

    #define ASF_YIELDED ...
    #define ASF_FINISHED ...
    #define ASF_FAILED ...

    #define ASF_OP_SET ...
    #define ASF_OP_ADD ...
    #define ASF_OP_YIELD ...
    #define ASF_OP_REGS ...
    #define ASF_OP_FP ...
    #define ASF_OP_RECURSE ...
    #define ASF_OP_FRAMES ...
    #define ASF_OP_ALIGN ...
    #define ASF_OP_RESUME ...
    #define ASF_OP_FAULT ...
    #define ASF_OP_LOOP ...
    #define ASF_OP_DF ...
    #define ASF_OP_SIGMASK ...

    /* Caller-allocated and zero-initialized; see fiber.c. */
    struct asf_stack {
        uintptr_t lo;
        uintptr_t hi;
        uintptr_t guard_lo;
        uintptr_t guard_hi;
        size_t map_len;
        int state;
        ...;
    };
    struct asf_op {
        int32_t code;
        uintptr_t arg;
        void *ptr;
        uintptr_t input[8];
        uintptr_t output[8];
        ...;
    };
    struct asf_fiber {
        uintptr_t entry_sp;
        uintptr_t entry_fp;
        uintptr_t fault_addr;
        int state;
        ...;
    };

    /* All int results: >= 0 on success, -errno on failure. */
    size_t asf_page_size(void);
    int asf_stack_alloc(struct asf_stack *s, size_t size);
    int asf_stack_from_memory(struct asf_stack *s, void *base, size_t len);
    int asf_stack_free(struct asf_stack *s);

    int asf_fiber_init(struct asf_fiber *f, struct asf_stack *s, struct asf_op *ops, size_t nops);
    int asf_fiber_resume(struct asf_fiber *f, uintptr_t value, uintptr_t *out);
    int asf_fiber_resume_regs(struct asf_fiber *f, uintptr_t value, uintptr_t *out,
                              const uintptr_t *regs_in, uintptr_t *regs_out);
    int asf_fiber_yield(uintptr_t value, uintptr_t *in);
    int asf_fiber_destroy(struct asf_fiber *f);
    int asf_fiber_state(const struct asf_fiber *f);
    int asf_fiber_relocate(struct asf_fiber *f, struct asf_stack *to);
    int asf_fiber_relocate_unchecked(struct asf_fiber *f, struct asf_stack *to);
    int asf_fiber_self_check(const struct asf_fiber *f, uintptr_t out[3]);

    int asf_nregs(void);
    uint64_t asf_fp_control(void);
    int asf_set_fp_control(uint64_t value);
    uintptr_t asf_exit_address(void);
    int asf_direction_flag(void);
    const char *asf_arch(void);

    int64_t asf_bench_pingpong(uint64_t n);
    int64_t asf_bench_switch(uint64_t n);
"""

# Frame pointers everywhere in fiber.c: the FRAMES probe walks the chain,
# and debuggers and profilers get a chain that ends at the fiber's base.
# No semantic interposition: fiber.c's own calls to its exported functions
# (resume, yield) may then be direct and inlined instead of going through
# the PLT, which made a resume/yield round trip about 1.5x slower.
COMPILE_ARGS = ["-fno-omit-frame-pointer", "-fno-semantic-interposition"]

with open(os.path.join(HERE, "fiber.c")) as f:
    _c_source = f.read()

ffibuilder = FFI()
ffibuilder.cdef(CDEF)

_sources = []
if SUPPORTED:
    # Relative to the directory the build runs in (the project root when
    # setuptools runs this file), so no absolute path ends up in the build.
    _sources.append(os.path.relpath(os.path.join(HERE, asm_file())))

ffibuilder.set_source(
    "asyncspec.impl._fiber",
    _c_source,
    sources=_sources,
    extra_compile_args=COMPILE_ARGS,
)


# ------------------------------------------------------------------ variants


def build_variant(name: str, defines, tmpdir: str):
    """Compile fiber.c and the assembly file with `defines` ("NAME" or
    "NAME=VALUE", passed as -D) into a cffi module in `tmpdir`, import it and
    return it (its `ffi` and `lib` are those of asyncspec.impl._fiber); see
    asyncspec.impl.variants."""
    import shlex
    import subprocess
    import sysconfig

    from asyncspec.impl import variants

    asm = asm_file()
    if asm is None:
        raise RuntimeError(f"no context switch for this machine ({sys.platform}, {platform.machine()})")
    with open(os.path.join(HERE, asm)) as f:
        asm_source = f.read()

    def assemble(work, flags):
        # setuptools' compilers do not take `.S` sources (build_backend.py
        # teaches the package build), so assemble it here, with the same
        # definitions, and link the object in.
        obj = os.path.join(work, "switch.o")
        cc = shlex.split(sysconfig.get_config_var("CC") or "cc")
        try:
            subprocess.run([*cc, "-c", "-fPIC", *flags, os.path.join(HERE, asm), "-o", obj], check=True, capture_output=True)
        except subprocess.CalledProcessError as e:
            raise RuntimeError(f"assembling {asm} with {flags}: {e.stderr.decode(errors='replace')}") from None
        return {"extra_objects": [obj]}

    return variants.build(
        "fiber",
        name,
        defines,
        tmpdir,
        cdef=CDEF,
        c_source=_c_source,
        hashed=[asm_source],
        prepare=assemble,
        extra_compile_args=COMPILE_ARGS,
    )


if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
