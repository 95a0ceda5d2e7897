/*
 * probe.h -- the probe interpreter: the bodies the conformance suite's `impl`
 * fiber and pin targets, and the tests, run in fibers of the reference
 * switcher (impl/fiber/) to observe it.
 *
 * A probe is a program of struct asp_op; asp_run, the fiber's body, runs it
 * (no Python runs inside fibers).  Each op reads its inputs (code, arg, ptr,
 * input[]) and writes its results to output[]; `v`, the fiber's value,
 * starts as the first resume's value and is what the fiber returns when the
 * program ends.  The interpreter is a module of its own, not part of the
 * switcher: it reaches the switcher only through a struct asp_switcher, the
 * addresses of that build's asf_fiber_resume and asf_fiber_yield, so the
 * probes run on the installed switcher (or a test build of it) unchanged.
 *
 * Ops.  `v` is the fiber's value.
 *   SET     v = arg
 *   ADD     v += arg
 *   YIELD   arg times: v = yield(v + input[0]); output[0] = yields done
 *   REGS    load the callee-saved registers (ASP_NREGS, arch order) from
 *           input[], v = yield(v), output[] = the registers' values after resume
 *   FP      output[0] = FP control state on entry, set it to arg, v = yield(v),
 *           output[1] = FP control state after resume
 *   RECURSE recurse to depth arg (about 300 bytes a level); output[0] = deepest
 *           level reached so far (kept up to date, valid after a FAILED)
 *   FRAMES  walk the frame-pointer chain from this op's frame: output[0] =
 *           frames, output[1] = the value that ended the walk (0: a proper end),
 *           output[2] = address of the last frame record, output[3] = the return
 *           address stored in it, output[4] = 1 if the walk stayed inside the
 *           fiber's stack with strictly increasing frame addresses
 *   ALIGN   a 16-byte aligned local, accessed with the architecture's
 *           alignment-checking vector access at (local + arg); output[0] = the
 *           address, output[1] = address % 16.  arg = 8 crashes the process.
 *   RESUME  resume the fiber ptr (a struct asf_fiber *) with v: output[0] = its result (status or
 *           -errno, as a signed value), output[1] = the value; v = that value
 *           if it yielded or finished (unchanged if it failed or was refused)
 *   FAULT   write to address arg (a deliberate crash when arg is unmapped)
 *   LOOP    forever: v = yield(v + 1)  (benchmarks)
 *   DF      output[0] = rflags.DF when the op starts (as the first op: as
 *           the fiber entered, since compiled code never sets DF), v =
 *           yield(v), output[1] = DF after resume.  x86 only (ASP_HAVE_DF).
 *   SIGMASK block signal arg in the thread's signal mask: output[0] = 1 if it
 *           was blocked already, v = yield(v), output[1] = 1 if it is blocked
 *           after resume.  The mask is the thread's, not part of the fiber's
 *           context: what the resumer did to it meanwhile shows here, and the
 *           block shows in the resumer.  arg = SIGSEGV is refused (the guard
 *           page handler needs it).
 *
 * The architecture's part (arch/x86_64.S, arch/aarch64.S) holds chosen values
 * in the callee-saved registers across a call, reads and sets the
 * floating-point control state, does an alignment-checking access and reads
 * DF.  probe.c is compiled with frame pointers, so that FRAMES can walk the
 * chain through its own frames down to the switcher's.
 *
 * The part between the cffi markers is also the cffi declarations (see
 * impl/cdef.py): build.py reads it from here.
 */

#ifndef ASYNCSPEC_PROBE_H
#define ASYNCSPEC_PROBE_H

#include <stddef.h>
#include <stdint.h>

/* cffi: begin */
#define ASP_OP_IO 8 /* size of asp_op.input and asp_op.output */

#define ASP_OP_SET 1
#define ASP_OP_ADD 2
#define ASP_OP_YIELD 3
#define ASP_OP_REGS 4
#define ASP_OP_FP 5
#define ASP_OP_RECURSE 6
#define ASP_OP_FRAMES 7
#define ASP_OP_ALIGN 8
#define ASP_OP_RESUME 9
#define ASP_OP_FAULT 10
#define ASP_OP_LOOP 11
#define ASP_OP_DF 12
#define ASP_OP_SIGMASK 13

struct asp_op {
    int32_t code;
    int32_t reserved_;
    uintptr_t arg;
    void *ptr;
    uintptr_t input[8];
    uintptr_t output[8];
};

/* The switcher the probes run on: the addresses of one build's
 * asf_fiber_resume and asf_fiber_yield (impl/fiber/fiber.h; probe.c checks
 * the types against it). */
struct asf_fiber;
struct asp_switcher {
    int (*resume)(struct asf_fiber *f, uintptr_t value, uintptr_t *out);
    int (*yield)(uintptr_t value, uintptr_t *in);
};

/* A fiber's argument: its switcher, its stack (for FRAMES) and its program. */
struct asp_program {
    const struct asp_switcher *sw;
    uintptr_t stack_lo;
    uintptr_t stack_hi;
    struct asp_op *ops;
    size_t nops;
};

/* 0 if the program is one asp_run runs, else -EINVAL (an unknown op, an FP
 * value with reserved bits, DF where there is none, a bad SIGMASK signal). */
int asp_check(const struct asp_op *ops, size_t nops);
/* The body: a fiber's entry function, with a struct asp_program as arg. */
uintptr_t asp_run(void *program, uintptr_t value);
/* sw->resume(fiber, value, out) called with regs_in (ASP_NREGS values) in
 * the caller's callee-saved registers; regs_out: what they hold after it. */
int asp_resume_regs(const struct asp_switcher *sw, struct asf_fiber *f, uintptr_t value, uintptr_t *out,
                    const uintptr_t *regs_in, uintptr_t *regs_out);

/* The calling thread's state, as the probes see it. */
int asp_nregs(void);
uint64_t asp_fp_control(void);
int asp_set_fp_control(uint64_t value);
int asp_direction_flag(void);
/* cffi: end */

#endif
