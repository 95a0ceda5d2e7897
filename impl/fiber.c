/*
 * fiber.c -- the C layer of asyncspec's fibers: stacks, fibers, stack-overflow
 * recovery, and probe bodies that run inside fibers.
 *
 * Compiled by cffi in API mode into asyncspec.impl._fiber together with the
 * architecture's assembly file (fiber_x86_64.S), and driven from
 * impl/fiber.py.  This file is architecture-neutral: everything that depends
 * on registers or on the stack frame layout is in the assembly file, behind
 * the functions declared under "Architecture interface" below, plus the
 * constants in the ASF_ARCH block.
 *
 * Conventions
 * -----------
 * Every function returns 0 (or a non-negative status) on success and -errno
 * on failure; none aborts on bad input.  The structs are allocated by the
 * caller, zero-initialized (a zeroed struct is "not live"), and stay
 * readable after they are freed, so a second free or a use after free is
 * detected (-EBADF) instead of touching freed memory.  They must not be
 * moved while live.
 *
 * Stacks
 * ------
 * asf_stack_alloc maps size bytes (rounded up to pages) plus one PROT_NONE
 * guard page below them.  asf_stack_from_memory uses caller memory of any
 * alignment: the top is aligned down to 16 and the bottom up to 16, and the
 * usable size is what remains; such a stack has no guard page (the memory
 * is the caller's, and changing its protection could break its owner), so
 * an overflow there is not detected.  A stack holds one live fiber at a time.
 *
 * Fibers
 * ------
 * States: NEW -> RUNNING -> SUSPENDED -> RUNNING -> ... -> FINISHED or FAILED;
 * CLOSED (0) before init and after destroy.  resume(f, v) runs f until it
 * yields, finishes or fails and returns that status with the value it
 * yielded or returned.  The thread's current fiber (NULL: the thread's own
 * stack) is its resumer; a fiber may resume another one, and that one's
 * yield returns to it.  Resuming the current fiber is -EDEADLK, a RUNNING
 * one (an ancestor in the resume chain, or one running on another thread)
 * -EBUSY, a FINISHED or FAILED one -ESRCH.
 *
 * State publication: a fiber never publishes its own state when it stops
 * running.  It writes its outcome, switches, and the resumer -- once the
 * fiber's context is completely saved -- stores the new state (release).  A
 * resume claims a fiber with a compare-and-swap from NEW/SUSPENDED to
 * RUNNING, so two threads can never enter the same fiber.  A fiber may be
 * resumed by a thread other than the one it last ran on.
 *
 * Thread-local state and switching: after a switch, code may be on another
 * thread, but compilers treat the thread pointer as constant within a
 * function and may reuse a TLS address computed before the switch.  So the
 * current fiber is read and written only through the noinline accessors
 * below, and nothing reads TLS after a switch in the same function without
 * going through them.
 *
 * Stack overflow
 * --------------
 * A SIGSEGV handler, installed once per process (on first resume) with
 * SA_ONSTACK, runs on an alternate signal stack; each thread that resumes a
 * fiber gets one (ours, 64 KiB, freed at thread exit) unless it already has
 * one (e.g. Python's faulthandler's), which is then used as is.  When the
 * fault address is in the guard page of the thread's running fiber, the
 * handler marks that fiber FAILED and switches, with asf_switch, to the
 * fiber's resumer, whose context was saved by the switch that entered the
 * fiber; the handler never returns.  Why that is safe:
 *   - The signal mask: the handler is installed with SA_NODEFER and an empty
 *     sa_mask, so the kernel blocked nothing on entry and there is nothing a
 *     skipped sigreturn would have had to unblock.  (Without SA_NODEFER,
 *     SIGSEGV would stay blocked and the next fault would kill the process.)
 *   - The alternate stack: Linux decides "on the alternate stack" from the
 *     stack pointer, so once we are off it the next signal starts at its top
 *     again; the abandoned signal frame is just dead memory.
 *   - Registers: the resumer gets back everything the ABI lets it rely on
 *     (callee-saved registers, MXCSR/x87 control) from its saved frame; the
 *     kernel gave the handler a clean FPU state and DF clear.
 *   - The abandoned fiber is never run again.  Its stack is reclaimed by
 *     destroy + free.  Code that overflows while holding a lock (inside
 *     malloc, say) leaves that lock held: overflow recovery is for code that
 *     holds none, like the probe bodies here.
 * siglongjmp would be just as safe (it restores the mask itself), but it
 * needs a sigsetjmp -- with a sigprocmask system call to save the mask --
 * on every resume, and a second way of restoring a context; returning
 * through the context the entering switch already saved costs nothing on
 * the fast path.
 *
 * The handler reads the current fiber from initial-exec TLS: a plain load
 * relative to the thread pointer that never allocates (general-dynamic TLS
 * in a loaded library may call malloc on a thread's first access, which a
 * signal handler must not).  When a fiber whose stack has a guard page
 * resumes another fiber, resume first touches the stack 1 KiB below its
 * frame, before claiming the other fiber, so that an overflow of the
 * resuming fiber happens while it is still the current one (and only it
 * fails).
 *
 * Every other SIGSEGV is passed on: to the previous handler if there was
 * one, else the default action is restored and the fault repeats on return
 * (or, for a SIGSEGV sent with kill, is raised again), so the process
 * crashes exactly as it would have without us.  A misaligned movaps, for
 * example, is a general-protection fault reported as SIGSEGV with
 * si_code SI_KERNEL and si_addr 0: a crash, never a FAILED fiber.
 *
 * Probes
 * ------
 * A fiber runs a caller-supplied program of struct asf_op (no Python runs
 * inside fibers).  Each op reads its inputs (code, arg, ptr, input[]) and writes
 * its results to output[]; `v`, the fiber's value, starts as the first resume's
 * value and is what the fiber returns when the program ends.  See the
 * ASF_OP_* constants.  Every fiber records, in entry_sp and entry_fp, the
 * stack pointer and frame pointer at the first instruction of its entry
 * function (asf_fiber_entry, which then tail-calls asf_fiber_main with the
 * same stack pointer).  This file is compiled with frame pointers so that the
 * FRAMES probe can walk the chain.
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------------
 * Public constants and structs (mirrored in impl/fiber_build.py's cdef)
 * ------------------------------------------------------------------------ */

#define ASF_STACK_MIN (16 * 1024) /* smallest usable stack, bytes */
#define ASF_OP_IO 8               /* size of asf_op.input and asf_op.output */

/* Fiber states (struct asf_fiber.state). */
#define ASF_STATE_CLOSED 0
#define ASF_STATE_NEW 1
#define ASF_STATE_SUSPENDED 2
#define ASF_STATE_RUNNING 3
#define ASF_STATE_FINISHED 4
#define ASF_STATE_FAILED 5

/* Results of asf_fiber_resume (>= 1; errors are < 0). */
#define ASF_YIELDED 1
#define ASF_FINISHED 2
#define ASF_FAILED 3

/*
 * Probe ops.  `v` is the fiber's value.
 *   SET     v = arg
 *   ADD     v += arg
 *   YIELD   arg times: v = yield(v + input[0]); output[0] = yields done
 *   REGS    load the callee-saved registers (ASF_NREGS, arch order) from
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
 *   RESUME  resume the fiber ptr with v: output[0] = its result (status or
 *           -errno, as a signed value), output[1] = the value; v = that value
 *           if it yielded or finished (unchanged if it failed or was refused)
 *   FAULT   write to address arg (a deliberate crash when arg is unmapped)
 *   LOOP    forever: v = yield(v + 1)  (benchmarks)
 *   DF      output[0] = rflags.DF when the op starts (as the first op: as
 *           the fiber entered, since compiled code never sets DF), v =
 *           yield(v), output[1] = DF after resume.  x86 only (ASF_HAVE_DF).
 *   SIGMASK block signal arg in the thread's signal mask: output[0] = 1 if it
 *           was blocked already, v = yield(v), output[1] = 1 if it is blocked
 *           after resume.  The mask is the thread's, not part of the fiber's
 *           context: what the resumer did to it meanwhile shows here, and the
 *           block shows in the resumer.  arg = SIGSEGV is refused (the guard
 *           page handler needs it).
 */
#define ASF_OP_SET 1
#define ASF_OP_ADD 2
#define ASF_OP_YIELD 3
#define ASF_OP_REGS 4
#define ASF_OP_FP 5
#define ASF_OP_RECURSE 6
#define ASF_OP_FRAMES 7
#define ASF_OP_ALIGN 8
#define ASF_OP_RESUME 9
#define ASF_OP_FAULT 10
#define ASF_OP_LOOP 11
#define ASF_OP_DF 12
#define ASF_OP_SIGMASK 13
#define ASF_OP_MAX_ 13

/* ------------------------------------------------------------------------
 * Architecture constants
 * ------------------------------------------------------------------------ */
#if defined(__x86_64__)
/* rbx, rbp, r12, r13, r14, r15: the order of asf_call_with_regs's arrays. */
#define ASF_NREGS 6
/* asf_fp_control_get/set: MXCSR in bits 0-31 (bits 16-31 reserved: ldmxcsr
 * faults on them), x87 control word in bits 32-47. */
#define ASF_FP_CONTROL_RESERVED 0xFFFF0000FFFF0000ull
/* rflags has a direction flag (the DF probe, asf_arch_direction_flag). */
#define ASF_HAVE_DF 1
#elif defined(__aarch64__)
/* x19, x20, x21, x27, x28, x29, d8, d15: the order of asf_call_with_regs's
 * arrays (fiber_aarch64.S; eight fit an op's input/output). */
#define ASF_NREGS 8
/* asf_fp_control_get/set: FPCR.  Reserved: the RES0 bits 3-7, 14 and
 * 27-63; every defined field (trap enables, Len/Stride, FZ16, RMode, FZ,
 * DN, AHP, and the newer FIZ/AH/NEP, EBF) may be written. */
#define ASF_FP_CONTROL_RESERVED 0xFFFFFFFFF80040F8ull
#else
#error "fiber.c: no context-switch assembly for this architecture yet"
#endif

struct asf_stack {
    uintptr_t lo;       /* lowest usable address (16-aligned) */
    uintptr_t hi;       /* one past the highest usable byte (16-aligned) */
    uintptr_t guard_lo; /* PROT_NONE guard page(s) [guard_lo, guard_hi), */
    uintptr_t guard_hi; /*   both 0 for caller memory */
    void *map_base;     /* exactly what mmap returned (NULL: caller memory) */
    size_t map_len;     /* and its length */
    int state;          /* 0 not live, ASF_STACK_IDLE, ASF_STACK_BUSY */
};

struct asf_op {
    int32_t code;
    int32_t reserved_;
    uintptr_t arg;
    void *ptr;
    uintptr_t input[ASF_OP_IO];
    uintptr_t output[ASF_OP_IO];
};

struct asf_fiber {
    /* Written by asf_fiber_entry (assembly): keep them the first two words. */
    uintptr_t entry_sp; /* rsp/sp at the entry function's first instruction */
    uintptr_t entry_fp; /* frame pointer there */
    uintptr_t fault_addr;        /* guard-page address that failed it */
    int state;                   /* ASF_STATE_* (atomic) */
    int outcome_;                /* written by the fiber before it switches out */
    uint32_t magic_;
    void *sp_;                   /* its saved context while not running */
    void *resumer_sp_;           /* its resumer's saved context while running */
    struct asf_fiber *resumer_;  /* NULL: the thread's own stack */
    struct asf_stack *stack_;
    struct asf_op *ops_;
    size_t nops_;
};

_Static_assert(offsetof(struct asf_fiber, entry_sp) == 0, "asf_fiber_entry writes entry_sp at offset 0");
_Static_assert(offsetof(struct asf_fiber, entry_fp) == sizeof(uintptr_t),
               "asf_fiber_entry writes entry_fp at offset 8");

#define ASF_STACK_IDLE 0x4b415453 /* live, no fiber */
#define ASF_STACK_BUSY 0x59535542 /* live, holds a live fiber */
#define ASF_FIBER_MAGIC_ 0x52424946u

/* ------------------------------------------------------------------------
 * Architecture interface (the assembly file)
 * ------------------------------------------------------------------------ */
#define ASF_HIDDEN __attribute__((visibility("hidden")))
ASF_HIDDEN uintptr_t asf_switch(void **save_sp, void *load_sp, uintptr_t value);
ASF_HIDDEN void *asf_init_stack(void *top, void (*entry)(void *, uintptr_t), void *arg);
ASF_HIDDEN void asf_fiber_entry(void *fiber, uintptr_t value);
ASF_HIDDEN uintptr_t asf_fiber_exit_address(void);
ASF_HIDDEN uint64_t asf_fp_control_get(void);
ASF_HIDDEN void asf_fp_control_set(uint64_t value);
ASF_HIDDEN uintptr_t asf_call_with_regs(const uintptr_t *in, uintptr_t *out,
                                        uintptr_t (*fn)(void *, uintptr_t), void *arg, uintptr_t value);
ASF_HIDDEN uintptr_t asf_arch_aligned_access(void *p);
#ifdef ASF_HAVE_DF
ASF_HIDDEN uintptr_t asf_arch_direction_flag(void);
#endif

#ifdef ASF_BROKEN_RBX
/* The deliberately broken switch that never restores rbx (see the head of
 * fiber_x86_64.S).  Compiled code here would keep its own values in rbx
 * across asf_switch and crash on the other context's value before any
 * probe could observe it; reserving rbx in this file keeps the bug where a
 * conformance probe sees it: in the registers that asf_call_with_regs
 * holds across a switch (FIB-X86-2). */
register uintptr_t asf_broken_rbx_reserved __asm__("rbx");
#endif

/* Called (jumped to) from asf_fiber_entry. */
ASF_HIDDEN __attribute__((noreturn, used)) void asf_fiber_main(struct asf_fiber *f, uintptr_t value);

int asf_fiber_resume(struct asf_fiber *f, uintptr_t value, uintptr_t *out);
int asf_fiber_yield(uintptr_t value, uintptr_t *in);

/* ------------------------------------------------------------------------
 * Thread-local state
 * ------------------------------------------------------------------------ */
#define ASF_TLS __thread __attribute__((tls_model("initial-exec")))

static ASF_TLS struct asf_fiber *tls_current; /* the running fiber, NULL: the thread's stack */
static ASF_TLS int tls_ready;                 /* handler installed, alternate stack present */
static ASF_TLS void *tls_altstack;            /* our alternate stack, if we made one */
static ASF_TLS size_t tls_altstack_size;

/* The only accessors of tls_current outside the signal handler (see
 * "Thread-local state and switching" above).  The empty asm with a memory
 * clobber keeps the compiler from treating them as pure. */
__attribute__((noinline)) static struct asf_fiber *current_get(void)
{
    __asm__ __volatile__("" ::: "memory");
    return tls_current;
}

__attribute__((noinline)) static void current_set(struct asf_fiber *f)
{
    __asm__ __volatile__("" ::: "memory");
    tls_current = f;
}

/* ------------------------------------------------------------------------
 * Stacks
 * ------------------------------------------------------------------------ */

static size_t page_size(void)
{
    long p = sysconf(_SC_PAGESIZE);
    return p > 0 ? (size_t)p : 4096;
}

size_t asf_page_size(void)
{
    return page_size();
}

int asf_stack_alloc(struct asf_stack *s, size_t size)
{
    if (!s)
        return -EINVAL;
    if (s->state == ASF_STACK_IDLE || s->state == ASF_STACK_BUSY)
        return -EBUSY; /* live: re-initializing it would leak its mapping */
    size_t page = page_size();
    if (size < ASF_STACK_MIN || size > SIZE_MAX / 2)
        return -EINVAL;
    size_t usable = (size + page - 1) & ~(page - 1);
    size_t len = usable + page; /* + the guard page, at the bottom */
    void *base = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (base == MAP_FAILED)
        return -errno;
    if (mprotect(base, page, PROT_NONE) != 0) {
        int e = errno;
        munmap(base, len);
        return -e;
    }
    s->map_base = base;
    s->map_len = len;
    s->guard_lo = (uintptr_t)base;
    s->guard_hi = (uintptr_t)base + page;
#ifndef ASF_BROKEN_GUARD_OVERLAP
    s->lo = s->guard_hi;
    s->hi = (uintptr_t)base + len;
#else
    /* Deliberately broken (a conformance-suite test): the usable range
     * counted from the mapping's base instead of above the guard page, so
     * its lowest page is the guard and its top is one page too low. */
    s->lo = s->guard_lo;
    s->hi = s->lo + usable;
#endif
    __atomic_store_n(&s->state, ASF_STACK_IDLE, __ATOMIC_RELEASE);
    return 0;
}

int asf_stack_from_memory(struct asf_stack *s, void *base, size_t len)
{
    if (!s || !base)
        return -EINVAL;
    if (s->state == ASF_STACK_IDLE || s->state == ASF_STACK_BUSY)
        return -EBUSY;
    uintptr_t b = (uintptr_t)base;
    if (len > UINTPTR_MAX - b)
        return -EINVAL;
    uintptr_t hi = (b + len) & ~(uintptr_t)15;
    uintptr_t lo = (b + 15) & ~(uintptr_t)15;
    if (lo > UINTPTR_MAX - 15 || hi < lo || hi - lo < ASF_STACK_MIN)
        return -EINVAL;
    s->map_base = NULL;
    s->map_len = 0;
    s->guard_lo = s->guard_hi = 0;
    s->lo = lo;
    s->hi = hi;
    __atomic_store_n(&s->state, ASF_STACK_IDLE, __ATOMIC_RELEASE);
    return 0;
}

int asf_stack_free(struct asf_stack *s)
{
    if (!s)
        return -EINVAL;
    int st = ASF_STACK_IDLE;
    if (!__atomic_compare_exchange_n(&s->state, &st, 0, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
        return st == ASF_STACK_BUSY ? -EBUSY : -EBADF;
    if (s->map_base) {
        if (munmap(s->map_base, s->map_len) != 0) {
            int e = errno;
            __atomic_store_n(&s->state, ASF_STACK_IDLE, __ATOMIC_RELEASE);
            return -e;
        }
        s->map_base = NULL;
        s->map_len = 0;
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * The SIGSEGV handler and per-thread set-up
 * ------------------------------------------------------------------------ */

#define ASF_ALTSTACK_SIZE (64 * 1024)

static pthread_once_t install_once = PTHREAD_ONCE_INIT;
static int install_error;
static struct sigaction prev_segv;
static pthread_key_t altstack_key;

static void pass_on(int sig, siginfo_t *si, void *uctx)
{
    if (prev_segv.sa_flags & SA_SIGINFO) {
        if (prev_segv.sa_sigaction) {
            prev_segv.sa_sigaction(sig, si, uctx);
            return;
        }
    } else if (prev_segv.sa_handler != SIG_DFL && prev_segv.sa_handler != SIG_IGN) {
        prev_segv.sa_handler(sig);
        return;
    }
    /* No previous handler (or SIG_IGN, which the kernel overrides for a
     * fault anyway): the default action.  A fault repeats when we return;
     * a SIGSEGV sent by kill/raise does not, so raise it again (SIGSEGV is
     * not blocked here: SA_NODEFER). */
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    sigaction(sig, &dfl, NULL);
    if (si == NULL || si->si_code <= 0)
        raise(sig);
}

static void segv_handler(int sig, siginfo_t *si, void *uctx)
{
    struct asf_fiber *f = tls_current; /* initial-exec TLS: a plain load */
    if (f && si && si->si_code > 0 && f->stack_) {
        uintptr_t a = (uintptr_t)si->si_addr;
        struct asf_stack *s = f->stack_;
        if (s->guard_lo < s->guard_hi && a >= s->guard_lo && a < s->guard_hi) {
            void *dead; /* the handler's context is abandoned */
            f->fault_addr = a;
            f->outcome_ = ASF_STATE_FAILED;
            asf_switch(&dead, f->resumer_sp_, 0);
            /* not reached: nobody switches back to `dead` */
        }
    }
    pass_on(sig, si, uctx);
}

static void altstack_destroy(void *p)
{
    stack_t cur;
    if (sigaltstack(NULL, &cur) == 0 && cur.ss_sp == p && !(cur.ss_flags & SS_DISABLE)) {
        if (cur.ss_flags & SS_ONSTACK)
            return; /* cannot happen at thread exit; never unmap a stack in use */
        stack_t off;
        memset(&off, 0, sizeof off);
        off.ss_flags = SS_DISABLE;
        sigaltstack(&off, NULL);
    }
    munmap(p, tls_altstack_size);
    tls_altstack = NULL;
    tls_ready = 0;
}

static void install(void)
{
    if (pthread_key_create(&altstack_key, altstack_destroy) != 0) {
        install_error = -EAGAIN;
        return;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = segv_handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
    if (sigaction(SIGSEGV, NULL, &prev_segv) != 0 || sigaction(SIGSEGV, &sa, NULL) != 0)
        install_error = -errno;
}

static int thread_setup(void)
{
    pthread_once(&install_once, install);
    if (install_error)
        return install_error;
    stack_t cur;
    if (sigaltstack(NULL, &cur) != 0)
        return -errno;
    if (!(cur.ss_flags & SS_DISABLE)) {
        tls_ready = 1; /* the thread already has one: use it */
        return 0;
    }
    size_t size = ASF_ALTSTACK_SIZE;
#ifdef _SC_SIGSTKSZ
    long want = sysconf(_SC_SIGSTKSZ);
    if (want > 0 && (size_t)want > size)
        size = (size_t)want;
#endif
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (p == MAP_FAILED)
        return -errno;
    stack_t ss;
    memset(&ss, 0, sizeof ss);
    ss.ss_sp = p;
    ss.ss_size = size;
    if (sigaltstack(&ss, NULL) != 0) {
        int e = errno;
        munmap(p, size);
        return -e;
    }
    tls_altstack = p;
    tls_altstack_size = size;
    pthread_setspecific(altstack_key, p); /* unmapped at thread exit */
    tls_ready = 1;
    return 0;
}

/* ------------------------------------------------------------------------
 * Fibers
 * ------------------------------------------------------------------------ */

/* Take an idle stack for a fiber: -EBUSY if another fiber has it, -EBADF if freed. */
static int claim_stack(struct asf_stack *s)
{
    int st = ASF_STACK_IDLE;
    if (!__atomic_compare_exchange_n(&s->state, &st, ASF_STACK_BUSY, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
        return st == ASF_STACK_BUSY ? -EBUSY : -EBADF;
    return 0;
}

static int fp_control_valid(uint64_t v)
{
    return (v & ASF_FP_CONTROL_RESERVED) == 0;
}

int asf_fiber_init(struct asf_fiber *f, struct asf_stack *s, struct asf_op *ops, size_t nops)
{
    if (!f || !s || (nops && !ops) || nops > (1u << 20))
        return -EINVAL;
    if (f->magic_ == ASF_FIBER_MAGIC_ && f->state != ASF_STATE_CLOSED)
        return -EBUSY; /* live: re-initializing it would leak its stack */
    for (size_t i = 0; i < nops; i++) {
        if (ops[i].code < 1 || ops[i].code > ASF_OP_MAX_)
            return -EINVAL;
        if (ops[i].code == ASF_OP_FP && !fp_control_valid(ops[i].arg))
            return -EINVAL;
#ifndef ASF_HAVE_DF
        if (ops[i].code == ASF_OP_DF)
            return -EINVAL;
#endif
        if (ops[i].code == ASF_OP_SIGMASK && (ops[i].arg < 1 || ops[i].arg >= NSIG || ops[i].arg == SIGSEGV))
            return -EINVAL;
    }
    int r = claim_stack(s);
    if (r < 0)
        return r;
    f->entry_sp = 0;
    f->entry_fp = 0;
    f->fault_addr = 0;
    f->outcome_ = 0;
    f->resumer_ = NULL;
    f->resumer_sp_ = NULL;
    f->stack_ = s;
    f->ops_ = ops;
    f->nops_ = nops;
    f->sp_ = asf_init_stack((void *)s->hi, asf_fiber_entry, f);
    f->magic_ = ASF_FIBER_MAGIC_;
    __atomic_store_n(&f->state, ASF_STATE_NEW, __ATOMIC_RELEASE);
    return 0;
}

int asf_fiber_destroy(struct asf_fiber *f)
{
    if (!f || f->magic_ != ASF_FIBER_MAGIC_)
        return -EBADF;
    int st = __atomic_load_n(&f->state, __ATOMIC_ACQUIRE);
    for (;;) {
        if (st == ASF_STATE_RUNNING)
            return -EBUSY;
        if (st == ASF_STATE_CLOSED)
            return -EBADF;
        if (__atomic_compare_exchange_n(&f->state, &st, ASF_STATE_CLOSED, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
            break;
    }
    /* A suspended fiber's stack is simply abandoned: probe bodies own
     * nothing that would need unwinding. */
    __atomic_store_n(&f->stack_->state, ASF_STACK_IDLE, __ATOMIC_RELEASE);
    f->stack_ = NULL;
    f->magic_ = 0;
    return 0;
}

int asf_fiber_state(const struct asf_fiber *f)
{
    if (!f || f->magic_ != ASF_FIBER_MAGIC_)
        return ASF_STATE_CLOSED;
    return __atomic_load_n(&f->state, __ATOMIC_ACQUIRE);
}

/* ------------------------------------------------------------------------
 * Pinning: a started fiber is a self-referential object
 * ------------------------------------------------------------------------
 * Once a fiber has run, its saved context points into its own stack: sp_
 * (in the struct) and entry_sp/entry_fp point there, and so does every saved
 * frame pointer of the frame chain inside it.  Moving the stack's bytes
 * elsewhere leaves all of those pointing at the old place, as moving a
 * pinned Rust value leaves its self-references dangling.  So a started fiber
 * is pinned: asf_fiber_relocate refuses it (EPERM), and only a fiber that
 * has never run (its one saved frame is built from scratch, see
 * asf_init_stack) may move to another stack.
 *
 * asf_fiber_relocate_unchecked is the unsafe move, for checkers: it copies
 * the stack's bytes to the new stack and fixes nothing.  The old memory stays
 * mapped (the caller keeps it), so nothing faults; asf_fiber_self_check is
 * the checker that finds the dangling pointers, before anything resumes the
 * fiber on them.
 */

#if defined(__x86_64__)
#define ASF_SAVED_FP_OFFSET 48 /* rbp's slot in a suspended context, see fiber_x86_64.S */
#elif defined(__aarch64__)
#define ASF_SAVED_FP_OFFSET 0 /* x29's slot in a suspended context, see fiber_aarch64.S */
#endif

int asf_fiber_relocate_unchecked(struct asf_fiber *f, struct asf_stack *to);

int asf_fiber_relocate(struct asf_fiber *f, struct asf_stack *to)
{
    if (!f || !to || f->magic_ != ASF_FIBER_MAGIC_)
        return -EBADF;
#ifdef ASF_BROKEN_RELOCATE
    /* The deliberately broken runtime (tests): it lets safe code move a
     * started fiber, as a bitwise move that fixes no pointer. */
    if (__atomic_load_n(&f->state, __ATOMIC_ACQUIRE) != ASF_STATE_NEW)
        return asf_fiber_relocate_unchecked(f, to);
#endif
    if (__atomic_load_n(&f->state, __ATOMIC_ACQUIRE) != ASF_STATE_NEW)
        return -EPERM; /* started: pinned */
    int r = claim_stack(to);
    if (r < 0)
        return r;
    __atomic_store_n(&f->stack_->state, ASF_STACK_IDLE, __ATOMIC_RELEASE);
    f->stack_ = to;
    f->sp_ = asf_init_stack((void *)to->hi, asf_fiber_entry, f);
    return 0;
}

int asf_fiber_relocate_unchecked(struct asf_fiber *f, struct asf_stack *to)
{
    if (!f || !to || f->magic_ != ASF_FIBER_MAGIC_)
        return -EBADF;
    if (__atomic_load_n(&f->state, __ATOMIC_ACQUIRE) == ASF_STATE_RUNNING)
        return -EBUSY;
    struct asf_stack *from = f->stack_;
    size_t len = from->hi - from->lo;
    if (to->hi - to->lo < len)
        return -ENOSPC;
    int r = claim_stack(to);
    if (r < 0)
        return r;
    /* A bitwise move: the same bytes at the same distance from the top. */
    memcpy((void *)(to->hi - len), (const void *)from->lo, len);
    __atomic_store_n(&from->state, ASF_STACK_IDLE, __ATOMIC_RELEASE);
    f->stack_ = to;
    return 0;
}

static int inside(uintptr_t p, uintptr_t lo, uintptr_t hi)
{
    return p >= lo && p <= hi;
}

int asf_fiber_self_check(const struct asf_fiber *f, uintptr_t out[3])
{
    if (!f || !out || f->magic_ != ASF_FIBER_MAGIC_)
        return -EBADF;
    int st = __atomic_load_n(&f->state, __ATOMIC_ACQUIRE);
    if (st == ASF_STATE_RUNNING)
        return -EBUSY;
    uintptr_t lo = f->stack_->lo, hi = f->stack_->hi, n = 0, bad = 0;
    if (st == ASF_STATE_NEW || st == ASF_STATE_SUSPENDED) {
        uintptr_t ptrs[3] = {(uintptr_t)f->sp_, f->entry_sp, f->entry_fp};
        for (int i = 0; i < 3 && !bad; i++) {
            if (i > 0 && ptrs[i] == 0)
                continue; /* entry_sp/entry_fp: 0 before the first run */
            n++;
            if (!inside(ptrs[i], lo, hi))
                bad = ptrs[i] ? ptrs[i] : 1;
        }
        /* The frame chain from the saved frame pointer, read only through a
         * saved stack pointer that is itself inside the stack. */
        uintptr_t fp = bad ? 0 : *(const uintptr_t *)((uintptr_t)f->sp_ + ASF_SAVED_FP_OFFSET);
        while (fp && !bad && n < 100000) {
            n++;
            if (!inside(fp, lo, hi - 2 * sizeof(uintptr_t)) || (fp & (sizeof(uintptr_t) - 1))) {
                bad = fp;
                break;
            }
            uintptr_t next = *(const uintptr_t *)fp;
            if (next && next <= fp) {
                bad = next;
                break;
            }
            fp = next;
        }
    }
    out[0] = n;
    out[1] = bad;
    out[2] = !bad;
    return 0;
}

/* Read a byte 1 KiB below the caller's frame, so that a fiber about to
 * overflow faults here, while it is still the current fiber. */
__attribute__((noinline)) static void stack_probe(void)
{
    volatile char *p = (volatile char *)((uintptr_t)__builtin_frame_address(0) - 1024);
    (void)*p;
}

int asf_fiber_resume(struct asf_fiber *f, uintptr_t value, uintptr_t *out)
{
    if (!f || f->magic_ != ASF_FIBER_MAGIC_)
        return -EBADF;
    if (!tls_ready) {
        int r = thread_setup();
        if (r < 0)
            return r;
    }
    struct asf_fiber *cur = current_get();
    if (cur == f)
        return -EDEADLK;
    if (cur && cur->stack_->guard_hi)
        stack_probe(); /* before claiming f: if this faults, only cur fails */
    int st = __atomic_load_n(&f->state, __ATOMIC_ACQUIRE);
    for (;;) {
        if (st == ASF_STATE_RUNNING)
            return -EBUSY;
        if (st == ASF_STATE_FINISHED || st == ASF_STATE_FAILED)
            return -ESRCH;
        if (st != ASF_STATE_NEW && st != ASF_STATE_SUSPENDED)
            return -EBADF;
        if (__atomic_compare_exchange_n(&f->state, &st, ASF_STATE_RUNNING, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
            break;
    }
    f->resumer_ = cur;
    current_set(f);
    uintptr_t v = asf_switch(&f->resumer_sp_, f->sp_, value);
    /* Back on this thread and stack: f yielded, finished or failed. */
    current_set(cur);
    f->resumer_ = NULL;
    int status, next;
    switch (f->outcome_) {
    case ASF_STATE_SUSPENDED:
        status = ASF_YIELDED;
        next = ASF_STATE_SUSPENDED;
        break;
    case ASF_STATE_FINISHED:
        status = ASF_FINISHED;
        next = ASF_STATE_FINISHED;
        break;
    default:
        status = ASF_FAILED;
        next = ASF_STATE_FAILED;
        break;
    }
    __atomic_store_n(&f->state, next, __ATOMIC_RELEASE);
    if (out)
        *out = v;
    return status;
}

int asf_fiber_yield(uintptr_t value, uintptr_t *in)
{
    struct asf_fiber *f = current_get();
    if (!f)
        return -EPERM; /* not inside a fiber */
    f->outcome_ = ASF_STATE_SUSPENDED;
    uintptr_t v = asf_switch(&f->sp_, f->resumer_sp_, value);
    /* Resumed, possibly on another thread: only locals from here on. */
    if (in)
        *in = v;
    return 0;
}

/* Lets the thread's main context run asf_fiber_resume with chosen values in
 * the callee-saved registers (asf_call_with_regs). */
struct resume_call {
    struct asf_fiber *f;
    uintptr_t *out;
    int rc;
};

static uintptr_t resume_thunk(void *arg, uintptr_t value)
{
    struct resume_call *c = arg;
    c->rc = asf_fiber_resume(c->f, value, c->out);
    return 0;
}

int asf_fiber_resume_regs(struct asf_fiber *f, uintptr_t value, uintptr_t *out, const uintptr_t *regs_in,
                          uintptr_t *regs_out)
{
    if (!regs_in || !regs_out)
        return -EINVAL;
    struct resume_call c = {f, out, 0};
    asf_call_with_regs(regs_in, regs_out, resume_thunk, &c, value);
    return c.rc;
}

int asf_nregs(void)
{
    return ASF_NREGS;
}

uint64_t asf_fp_control(void)
{
    return asf_fp_control_get();
}

int asf_set_fp_control(uint64_t value)
{
    if (!fp_control_valid(value))
        return -EINVAL;
    asf_fp_control_set(value);
    return 0;
}

uintptr_t asf_exit_address(void)
{
    return asf_fiber_exit_address();
}

int asf_direction_flag(void)
{
#ifdef ASF_HAVE_DF
    return (int)asf_arch_direction_flag();
#else
    return -ENOSYS;
#endif
}

/* ------------------------------------------------------------------------
 * Probe bodies (run inside fibers)
 * ------------------------------------------------------------------------ */

static uintptr_t yield_value(uintptr_t v)
{
    uintptr_t in = v;
    asf_fiber_yield(v, &in); /* cannot fail: we are inside a fiber */
    return in;
}

static uintptr_t yield_thunk(void *arg, uintptr_t v)
{
    (void)arg;
    return yield_value(v);
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

__attribute__((noinline)) static void op_frames(struct asf_fiber *f, struct asf_op *op)
{
    uintptr_t lo = f->stack_->lo, hi = f->stack_->hi;
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

__attribute__((noinline)) static void op_align(struct asf_op *op)
{
    _Alignas(16) unsigned char local[48];
    memset(local, 0x5a, sizeof local);
    size_t off = op->arg < 32 ? (size_t)op->arg : 0;
    uintptr_t a = asf_arch_aligned_access(local + off);
    op->output[0] = a;
    op->output[1] = a & 15;
    __asm__ __volatile__("" : : "r"(local) : "memory"); /* keep the local alive */
}

__attribute__((noinline)) static void op_sigmask(struct asf_op *op, uintptr_t *v)
{
    int sig = (int)op->arg; /* validated by asf_fiber_init */
    sigset_t one, cur;
    sigemptyset(&one);
    sigaddset(&one, sig);
    pthread_sigmask(SIG_BLOCK, &one, &cur);
    op->output[0] = sigismember(&cur, sig) == 1;
    *v = yield_value(*v);
    /* Possibly on another thread now: pthread_sigmask asks the current one. */
    pthread_sigmask(SIG_BLOCK, NULL, &cur);
    op->output[1] = sigismember(&cur, sig) == 1;
}

static uintptr_t run_ops(struct asf_fiber *f, uintptr_t v)
{
    for (size_t i = 0; i < f->nops_; i++) {
        struct asf_op *op = &f->ops_[i];
        switch (op->code) {
        case ASF_OP_SET:
            v = op->arg;
            break;
        case ASF_OP_ADD:
            v += op->arg;
            break;
        case ASF_OP_YIELD:
            op->output[0] = 0;
            for (uintptr_t k = 0; k < op->arg; k++) {
                v = yield_value(v + op->input[0]);
                op->output[0] = k + 1;
            }
            break;
        case ASF_OP_REGS:
            v = asf_call_with_regs(op->input, op->output, yield_thunk, NULL, v);
            break;
        case ASF_OP_FP:
            op->output[0] = asf_fp_control_get();
            asf_fp_control_set(op->arg); /* validated by asf_fiber_init */
            v = yield_value(v);
            op->output[1] = asf_fp_control_get();
            break;
        case ASF_OP_RECURSE:
            op->output[0] = 0;
            recurse((volatile uintptr_t *)&op->output[0], op->arg, 0);
            break;
        case ASF_OP_FRAMES:
            op_frames(f, op);
            break;
        case ASF_OP_ALIGN:
            op_align(op);
            break;
        case ASF_OP_RESUME: {
            uintptr_t got = 0;
            int r = asf_fiber_resume((struct asf_fiber *)op->ptr, v, &got);
            op->output[0] = (uintptr_t)(intptr_t)r;
            op->output[1] = got;
            if (r == ASF_YIELDED || r == ASF_FINISHED)
                v = got;
            break;
        }
        case ASF_OP_FAULT:
            *(volatile uintptr_t *)op->arg = v;
            break;
        case ASF_OP_LOOP:
            for (;;)
                v = yield_value(v + 1);
        case ASF_OP_DF:
#ifdef ASF_HAVE_DF
            op->output[0] = asf_arch_direction_flag();
            v = yield_value(v);
            op->output[1] = asf_arch_direction_flag();
#endif
            break;
        case ASF_OP_SIGMASK:
            op_sigmask(op, &v);
            break;
        }
    }
    return v;
}

void asf_fiber_main(struct asf_fiber *f, uintptr_t value)
{
    value = run_ops(f, value);
    f->outcome_ = ASF_STATE_FINISHED;
    void *dead; /* this context is never resumed */
    asf_switch(&dead, f->resumer_sp_, value);
    __builtin_trap();
}

/* ------------------------------------------------------------------------
 * Microbenchmarks: elapsed nanoseconds (or -errno) for n round trips, each
 * two switches.
 * ------------------------------------------------------------------------ */

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Through the public API: resume + yield (state checks, compare-and-swap,
 * current-fiber bookkeeping). */
int64_t asf_bench_pingpong(uint64_t n)
{
    struct asf_stack s;
    struct asf_fiber f;
    struct asf_op op;
    memset(&s, 0, sizeof s);
    memset(&f, 0, sizeof f);
    memset(&op, 0, sizeof op);
    op.code = ASF_OP_LOOP;
    int r = asf_stack_alloc(&s, 64 * 1024);
    if (r < 0)
        return r;
    r = asf_fiber_init(&f, &s, &op, 1);
    if (r < 0) {
        asf_stack_free(&s);
        return r;
    }
    uintptr_t v = 0;
    r = asf_fiber_resume(&f, v, &v); /* start it (not timed) */
    int64_t t0 = now_ns();
    for (uint64_t i = 0; i < n && r == ASF_YIELDED; i++)
        r = asf_fiber_resume(&f, v, &v);
    int64_t t1 = now_ns();
    asf_fiber_destroy(&f);
    asf_stack_free(&s);
    if (r != ASF_YIELDED)
        return r < 0 ? r : -EIO;
    if (v != n + 1)
        return -EIO; /* each round trip adds one on the fiber's side */
    return t1 - t0;
}

/* The bare switch: two contexts calling asf_switch at each other. */
struct bench_ctx {
    void *main_sp;
    void *fiber_sp;
};

static void bench_entry(void *arg, uintptr_t v)
{
    struct bench_ctx *c = arg;
    for (;;)
        v = asf_switch(&c->fiber_sp, c->main_sp, v + 1);
}

int64_t asf_bench_switch(uint64_t n)
{
    struct asf_stack s;
    memset(&s, 0, sizeof s);
    int r = asf_stack_alloc(&s, 64 * 1024);
    if (r < 0)
        return r;
    struct bench_ctx c;
    c.main_sp = NULL;
    c.fiber_sp = asf_init_stack((void *)s.hi, bench_entry, &c);
    uintptr_t v = asf_switch(&c.main_sp, c.fiber_sp, 0);
    int64_t t0 = now_ns();
    for (uint64_t i = 0; i < n; i++)
        v = asf_switch(&c.main_sp, c.fiber_sp, v);
    int64_t t1 = now_ns();
    asf_stack_free(&s);
    return v == n + 1 ? t1 - t0 : -EIO;
}

const char *asf_arch(void)
{
#if defined(__x86_64__)
    return "x86_64";
#elif defined(__aarch64__)
    return "aarch64";
#endif
}
