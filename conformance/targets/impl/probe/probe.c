/*
 * probe.c -- the probe interpreter (see probe.h).
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "probe.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>

#include "fiber.h"

/* The switcher table's entries have the types fiber.h gives the functions. */
_Static_assert(__builtin_types_compatible_p(__typeof__(((struct asp_switcher *)0)->resume), __typeof__(&asf_fiber_resume)),
               "asp_switcher.resume is asf_fiber_resume");
_Static_assert(__builtin_types_compatible_p(__typeof__(((struct asp_switcher *)0)->yield), __typeof__(&asf_fiber_yield)),
               "asp_switcher.yield is asf_fiber_yield");
_Static_assert(sizeof(((struct asp_op *)0)->input) == ASP_OP_IO * sizeof(uintptr_t), "ASP_OP_IO words of input");
_Static_assert(sizeof(((struct asp_op *)0)->output) == ASP_OP_IO * sizeof(uintptr_t), "ASP_OP_IO words of output");

#define ASP_OP_MAX_ ASP_OP_SIGMASK

/* ------------------------------------------------------------------------
 * Architecture constants and interface (arch/<machine>.S)
 * ------------------------------------------------------------------------ */
#if defined(__x86_64__)
/* rbx, rbp, r12, r13, r14, r15: the order of asp_call_with_regs's arrays. */
#define ASP_NREGS 6
/* asp_fp_control_get/set: MXCSR in bits 0-31 (bits 16-31 reserved: ldmxcsr
 * faults on them), x87 control word in bits 32-47. */
#define ASP_FP_CONTROL_RESERVED 0xFFFF0000FFFF0000ull
/* rflags has a direction flag (the DF probe, asp_arch_direction_flag). */
#define ASP_HAVE_DF 1
#elif defined(__aarch64__)
/* x19, x20, x21, x27, x28, x29, d8, d15: the order of asp_call_with_regs's
 * arrays (arch/aarch64.S; eight fit an op's input/output). */
#define ASP_NREGS 8
/* asp_fp_control_get/set: FPCR.  Reserved: the RES0 bits 3-7, 14 and
 * 27-63; every defined field (trap enables, Len/Stride, FZ16, RMode, FZ,
 * DN, AHP, and the newer FIZ/AH/NEP, EBF) may be written. */
#define ASP_FP_CONTROL_RESERVED 0xFFFFFFFFF80040F8ull
#else
#error "probe.c: no probe assembly for this architecture yet"
#endif

#define ASP_HIDDEN __attribute__((visibility("hidden")))
ASP_HIDDEN uint64_t asp_fp_control_get(void);
ASP_HIDDEN void asp_fp_control_set(uint64_t value);
ASP_HIDDEN uintptr_t asp_call_with_regs(const uintptr_t *in, uintptr_t *out,
                                        uintptr_t (*fn)(void *, uintptr_t), void *arg, uintptr_t value);
ASP_HIDDEN uintptr_t asp_arch_aligned_access(void *p);
#ifdef ASP_HAVE_DF
ASP_HIDDEN uintptr_t asp_arch_direction_flag(void);
#endif

/* ------------------------------------------------------------------------
 * Checking a program
 * ------------------------------------------------------------------------ */

static int fp_control_valid(uint64_t v)
{
    return (v & ASP_FP_CONTROL_RESERVED) == 0;
}

int asp_check(const struct asp_op *ops, size_t nops)
{
    if ((nops && !ops) || nops > (1u << 20))
        return -EINVAL;
    for (size_t i = 0; i < nops; i++) {
        if (ops[i].code < 1 || ops[i].code > ASP_OP_MAX_)
            return -EINVAL;
        if (ops[i].code == ASP_OP_FP && !fp_control_valid(ops[i].arg))
            return -EINVAL;
#ifndef ASP_HAVE_DF
        if (ops[i].code == ASP_OP_DF)
            return -EINVAL;
#endif
        if (ops[i].code == ASP_OP_SIGMASK && (ops[i].arg < 1 || ops[i].arg >= NSIG || ops[i].arg == SIGSEGV))
            return -EINVAL;
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * The ops (run inside fibers)
 * ------------------------------------------------------------------------ */

static uintptr_t yield_value(const struct asp_program *p, uintptr_t v)
{
    uintptr_t in = v;
    p->sw->yield(v, &in); /* cannot fail: we are inside a fiber */
    return in;
}

static uintptr_t yield_thunk(void *arg, uintptr_t v)
{
    return yield_value(arg, v);
}

__attribute__((noinline)) static uintptr_t recurse(volatile uintptr_t *deepest, uintptr_t depth, uintptr_t level)
{
    volatile unsigned char pad[256];
    pad[0] = (unsigned char)level;
    pad[sizeof pad - 1] = (unsigned char)level;
    *deepest = level;
    if (level >= depth)
        return level;
    uintptr_t r = recurse(deepest, depth, level + 1);
    return r + pad[0] - pad[sizeof pad - 1]; /* uses the frame after the call: no tail call */
}

__attribute__((noinline)) static void op_frames(const struct asp_program *p, struct asp_op *op)
{
    uintptr_t lo = p->stack_lo, hi = p->stack_hi;
    uintptr_t fp = (uintptr_t)__builtin_frame_address(0);
    uintptr_t n = 0, last = 0, ok = 1;
    while (fp) {
        if (fp < lo || fp > hi - 2 * sizeof(uintptr_t) || (fp & (sizeof(uintptr_t) - 1)) || n > 100000) {
            ok = 0;
            break;
        }
        last = fp;
        n++;
        uintptr_t next = *(const uintptr_t *)fp;
        if (next && next <= fp) {
            ok = 0;
            fp = next;
            break;
        }
        fp = next;
    }
    op->output[0] = n;
    op->output[1] = fp;
    op->output[2] = last;
    op->output[3] = last ? ((const uintptr_t *)last)[1] : 0;
    op->output[4] = ok;
}

__attribute__((noinline)) static void op_align(struct asp_op *op)
{
    _Alignas(16) unsigned char local[48];
    memset(local, 0x5a, sizeof local);
    size_t off = op->arg < 32 ? (size_t)op->arg : 0;
    uintptr_t a = asp_arch_aligned_access(local + off);
    op->output[0] = a;
    op->output[1] = a & 15;
    __asm__ __volatile__("" : : "r"(local) : "memory"); /* keep the local alive */
}

__attribute__((noinline)) static void op_sigmask(const struct asp_program *p, struct asp_op *op, uintptr_t *v)
{
    int sig = (int)op->arg; /* validated by asp_check */
    sigset_t one, cur;
    sigemptyset(&one);
    sigaddset(&one, sig);
    pthread_sigmask(SIG_BLOCK, &one, &cur);
    op->output[0] = sigismember(&cur, sig) == 1;
    *v = yield_value(p, *v);
    /* Possibly on another thread now: pthread_sigmask asks the current one. */
    pthread_sigmask(SIG_BLOCK, NULL, &cur);
    op->output[1] = sigismember(&cur, sig) == 1;
}

uintptr_t asp_run(void *program, uintptr_t v)
{
    const struct asp_program *p = program;
    for (size_t i = 0; i < p->nops; i++) {
        struct asp_op *op = &p->ops[i];
        switch (op->code) {
        case ASP_OP_SET:
            v = op->arg;
            break;
        case ASP_OP_ADD:
            v += op->arg;
            break;
        case ASP_OP_YIELD:
            op->output[0] = 0;
            for (uintptr_t k = 0; k < op->arg; k++) {
                v = yield_value(p, v + op->input[0]);
                op->output[0] = k + 1;
            }
            break;
        case ASP_OP_REGS:
            v = asp_call_with_regs(op->input, op->output, yield_thunk, (void *)p, v);
            break;
        case ASP_OP_FP:
            op->output[0] = asp_fp_control_get();
            asp_fp_control_set(op->arg); /* validated by asp_check */
            v = yield_value(p, v);
            op->output[1] = asp_fp_control_get();
            break;
        case ASP_OP_RECURSE:
            op->output[0] = 0;
            recurse((volatile uintptr_t *)&op->output[0], op->arg, 0);
            break;
        case ASP_OP_FRAMES:
            op_frames(p, op);
            break;
        case ASP_OP_ALIGN:
            op_align(op);
            break;
        case ASP_OP_RESUME: {
            uintptr_t got = 0;
            int r = p->sw->resume((struct asf_fiber *)op->ptr, v, &got);
            op->output[0] = (uintptr_t)(intptr_t)r;
            op->output[1] = got;
            if (r == ASF_YIELDED || r == ASF_FINISHED)
                v = got;
            break;
        }
        case ASP_OP_FAULT:
            *(volatile uintptr_t *)op->arg = v;
            break;
        case ASP_OP_LOOP:
            for (;;)
                v = yield_value(p, v + 1);
        case ASP_OP_DF:
#ifdef ASP_HAVE_DF
            op->output[0] = asp_arch_direction_flag();
            v = yield_value(p, v);
            op->output[1] = asp_arch_direction_flag();
#endif
            break;
        case ASP_OP_SIGMASK:
            op_sigmask(p, op, &v);
            break;
        }
    }
    return v;
}

/* ------------------------------------------------------------------------
 * The resumer's side, and the thread's state
 * ------------------------------------------------------------------------ */

/* Lets the thread's main context run a resume with chosen values in the
 * callee-saved registers (asp_call_with_regs). */
struct resume_call {
    const struct asp_switcher *sw;
    struct asf_fiber *f;
    uintptr_t *out;
    int rc;
};

static uintptr_t resume_thunk(void *arg, uintptr_t value)
{
    struct resume_call *c = arg;
    c->rc = c->sw->resume(c->f, value, c->out);
    return 0;
}

int asp_resume_regs(const struct asp_switcher *sw, struct asf_fiber *f, uintptr_t value, uintptr_t *out,
                    const uintptr_t *regs_in, uintptr_t *regs_out)
{
    if (!sw || !regs_in || !regs_out)
        return -EINVAL;
    struct resume_call c = {sw, f, out, 0};
    asp_call_with_regs(regs_in, regs_out, resume_thunk, &c, value);
    return c.rc;
}

int asp_nregs(void)
{
    return ASP_NREGS;
}

uint64_t asp_fp_control(void)
{
    return asp_fp_control_get();
}

int asp_set_fp_control(uint64_t value)
{
    if (!fp_control_valid(value))
        return -EINVAL;
    asp_fp_control_set(value);
    return 0;
}

int asp_direction_flag(void)
{
#ifdef ASP_HAVE_DF
    return (int)asp_arch_direction_flag();
#else
    return -ENOSYS;
#endif
}
