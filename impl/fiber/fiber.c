/*
 * fiber.c -- stacks, fibers and stack-overflow recovery (see fiber.h for the
 * API).  The context switch is the architecture's assembly file
 * (arch/x86_64.S, arch/aarch64.S), behind the functions declared under
 * "Architecture interface" below.
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
 *     malloc, say) leaves that lock held: overflow recovery is for bodies that
 *     hold none at the point where they may overflow.
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
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fiber.h"

_Static_assert(offsetof(struct asf_fiber, entry_sp) == 0, "asf_fiber_entry writes entry_sp at offset 0");
_Static_assert(offsetof(struct asf_fiber, entry_fp) == sizeof(uintptr_t),
               "asf_fiber_entry writes entry_fp at offset 8");

#define ASF_FIBER_MAGIC_ 0x52424946u

/* ------------------------------------------------------------------------
 * Architecture interface (the assembly file)
 * ------------------------------------------------------------------------ */
#define ASF_HIDDEN __attribute__((visibility("hidden")))
ASF_HIDDEN uintptr_t asf_switch(void **save_sp, void *load_sp, uintptr_t value);
ASF_HIDDEN void *asf_init_stack(void *top, void (*entry)(void *, uintptr_t), void *arg);
ASF_HIDDEN void asf_fiber_entry(void *fiber, uintptr_t value);
ASF_HIDDEN uintptr_t asf_fiber_exit_address(void);

/* Called (jumped to) from asf_fiber_entry. */
ASF_HIDDEN __attribute__((noreturn, used)) void asf_fiber_main(struct asf_fiber *f, uintptr_t value);

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
    s->map_base_ = base;
    s->map_len = len;
    s->guard_lo = (uintptr_t)base;
    s->guard_hi = (uintptr_t)base + page;
    s->lo = s->guard_hi;
    s->hi = (uintptr_t)base + len;
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
    s->map_base_ = NULL;
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
    if (s->map_base_) {
        if (munmap(s->map_base_, s->map_len) != 0) {
            int e = errno;
            __atomic_store_n(&s->state, ASF_STACK_IDLE, __ATOMIC_RELEASE);
            return -e;
        }
        s->map_base_ = NULL;
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

int asf_fiber_init(struct asf_fiber *f, struct asf_stack *s, asf_entry_fn entry, void *arg)
{
    if (!f || !s || !entry)
        return -EINVAL;
    if (f->magic_ == ASF_FIBER_MAGIC_ && f->state != ASF_STATE_CLOSED)
        return -EBUSY; /* live: re-initializing it would leak its stack */
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
    f->entry_ = entry;
    f->arg_ = arg;
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
    /* A suspended fiber's stack is simply abandoned, not unwound (fiber.h). */
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
#define ASF_SAVED_FP_OFFSET 48 /* rbp's slot in a suspended context, see arch/x86_64.S */
#elif defined(__aarch64__)
#define ASF_SAVED_FP_OFFSET 0 /* x29's slot in a suspended context, see arch/aarch64.S */
#endif

int asf_fiber_relocate_unchecked(struct asf_fiber *f, struct asf_stack *to);

int asf_fiber_relocate(struct asf_fiber *f, struct asf_stack *to)
{
    if (!f || !to || f->magic_ != ASF_FIBER_MAGIC_)
        return -EBADF;
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

uintptr_t asf_exit_address(void)
{
    return asf_fiber_exit_address();
}

/* ------------------------------------------------------------------------
 * The caller of every body
 * ------------------------------------------------------------------------ */

/* Reached from asf_fiber_entry by a jump, with the entry function's stack
 * pointer: its frame record is the outermost of the fiber (it saves the 0
 * that asf_init_stack put in the frame pointer, beside the exit address). */
void asf_fiber_main(struct asf_fiber *f, uintptr_t value)
{
    value = f->entry_(f->arg_, value);
    f->outcome_ = ASF_STATE_FINISHED;
    void *dead; /* this context is never resumed */
    asf_switch(&dead, f->resumer_sp_, value);
    __builtin_trap();
}

const char *asf_arch(void)
{
#if defined(__x86_64__)
    return "x86_64";
#elif defined(__aarch64__)
    return "aarch64";
#endif
}
