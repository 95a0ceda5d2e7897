/* A peer switcher over glibc's makecontext/swapcontext, for the `ucontext`
 * fiber target: asyncspec.conformance.targets.c.ucontext._ucontext.
 *
 * Fibers run on mmap'd stacks with a PROT_NONE guard page below them and run
 * the same kind of C bodies as the spec's programs (asyncspec.spec.fiber):
 *
 *   ASU_PROG_YIELD    yield value+1 `count` times, then return value+100
 *   ASU_PROG_NEST     forever: resume the bound fiber with the value and
 *                     yield what came back (the value unchanged if that
 *                     resume is refused)
 *   ASU_PROG_SELF     forever: resume itself (refused) and yield the value
 *   ASU_PROG_SIGMASK  block signal `count` and yield; record whether it was
 *                     blocked at the start and after the resume
 *   ASU_PROG_ENTRY    return at once; the entry stub records sp and fp
 *   ASU_PROG_LOOP     forever: yield value+1 (the benchmark)
 *
 * There is no overflow body: the guard page turns a runaway recursion into
 * SIGSEGV, but nothing here recovers from it (no claim of detection).
 *
 * asu_resume returns ASU_YIELDED or ASU_FINISHED (the value in *out), or a
 * negative ASU_ERR_* when the fiber may not be resumed: it is running (on the
 * resume chain, itself included), finished, or not initialised.  A refused
 * resume changes nothing.
 */

#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#define ASU_PROG_YIELD 1
#define ASU_PROG_NEST 2
#define ASU_PROG_SELF 3
#define ASU_PROG_SIGMASK 4
#define ASU_PROG_ENTRY 5
#define ASU_PROG_LOOP 6

#define ASU_STATE_NONE 0
#define ASU_STATE_CREATED 1
#define ASU_STATE_SUSPENDED 2
#define ASU_STATE_RUNNING 3
#define ASU_STATE_FINISHED 4

#define ASU_YIELDED 1
#define ASU_FINISHED 2

#define ASU_ERR_RUNNING (-1)
#define ASU_ERR_FINISHED (-2)
#define ASU_ERR_NONE (-3)

#define ASU_STACK_MIN (16 * 1024)

struct asu_fiber {
    ucontext_t ctx;
    ucontext_t *resumer; /* the context a yield or the return goes back to */
    void *map;
    size_t map_len;
    uintptr_t lo, hi; /* usable stack [lo, hi) */
    int state;
    int prog;
    int64_t count;
    struct asu_fiber *bound; /* ASU_PROG_NEST */
    uintptr_t xfer;          /* the value passed by the last switch */
    int status;              /* ASU_YIELDED / ASU_FINISHED of the last switch out */
    uintptr_t entry_sp, entry_fp;
    int out[2];
};

/* ------------------------------------------------------------- entry stub */

__attribute__((visibility("hidden"))) void asu_fiber_main(unsigned int hi, unsigned int lo);

/* The context's entry point.  On x86-64 a stub records rsp and rbp at its
 * first instruction (as makecontext left them) and jumps to the C entry with
 * the arguments and the stack untouched; elsewhere the C entry records its
 * own frame address. */
#if defined(__x86_64__)
__attribute__((visibility("hidden"))) uintptr_t asu_probe_sp_, asu_probe_fp_;
void asu_entry_stub(void);
__asm__(
    ".text\n"
    ".globl asu_entry_stub\n"
    ".hidden asu_entry_stub\n"
    ".type asu_entry_stub, @function\n"
    "asu_entry_stub:\n"
    "    movq %rsp, asu_probe_sp_(%rip)\n"
    "    movq %rbp, asu_probe_fp_(%rip)\n"
    "    jmp asu_fiber_main\n"
    ".size asu_entry_stub, .-asu_entry_stub\n");
#define ASU_ENTRY asu_entry_stub
#define ASU_HAVE_ENTRY_PROBE 1
#else
static uintptr_t asu_probe_sp_, asu_probe_fp_;
#define ASU_ENTRY asu_fiber_main
#define ASU_HAVE_ENTRY_PROBE 0
#endif

/* ----------------------------------------------------------------- core */

static __thread struct asu_fiber *current_;

int asu_resume(struct asu_fiber *f, uintptr_t value, uintptr_t *out)
{
    switch (f->state) {
    case ASU_STATE_RUNNING:
        return ASU_ERR_RUNNING;
    case ASU_STATE_FINISHED:
        return ASU_ERR_FINISHED;
    case ASU_STATE_CREATED:
    case ASU_STATE_SUSPENDED:
        break;
    default:
        return ASU_ERR_NONE;
    }
    ucontext_t back;
    struct asu_fiber *prev = current_;
    f->resumer = &back;
    f->xfer = value;
    f->state = ASU_STATE_RUNNING;
    current_ = f;
    if (swapcontext(&back, &f->ctx) != 0) {
        current_ = prev;
        f->state = ASU_STATE_SUSPENDED;
        return -errno - 100;
    }
    current_ = prev;
    *out = f->xfer;
    return f->status;
}

static uintptr_t yield_value(struct asu_fiber *f, uintptr_t value)
{
    f->xfer = value;
    f->status = ASU_YIELDED;
    f->state = ASU_STATE_SUSPENDED;
    swapcontext(&f->ctx, f->resumer);
    return f->xfer;
}

__attribute__((noinline)) static void body_sigmask(struct asu_fiber *f, uintptr_t *v)
{
    int sig = (int)f->count;
    sigset_t one, cur;
    sigemptyset(&one);
    sigaddset(&one, sig);
    pthread_sigmask(SIG_BLOCK, &one, &cur);
    f->out[0] = sigismember(&cur, sig) == 1;
    *v = yield_value(f, *v);
    pthread_sigmask(SIG_BLOCK, NULL, &cur);
    f->out[1] = sigismember(&cur, sig) == 1;
}

void asu_fiber_main(unsigned int hi, unsigned int lo)
{
    struct asu_fiber *f = (struct asu_fiber *)(((uintptr_t)hi << 32) | (uintptr_t)lo);
#if !ASU_HAVE_ENTRY_PROBE
    asu_probe_sp_ = (uintptr_t)__builtin_frame_address(0);
    asu_probe_fp_ = 0;
#endif
    f->entry_sp = asu_probe_sp_;
    f->entry_fp = asu_probe_fp_;
    uintptr_t v = f->xfer, got;
    int r;
    switch (f->prog) {
    case ASU_PROG_YIELD:
        for (int64_t i = 0; i < f->count; i++)
            v = yield_value(f, v + 1);
        v += 100;
        break;
    case ASU_PROG_NEST:
        for (;;) {
            r = asu_resume(f->bound, v, &got);
            v = yield_value(f, r > 0 ? got : v);
        }
    case ASU_PROG_SELF:
        for (;;) {
            r = asu_resume(f, v, &got);
            v = yield_value(f, r > 0 ? got : v);
        }
    case ASU_PROG_SIGMASK:
        body_sigmask(f, &v);
        break;
    case ASU_PROG_LOOP:
        for (;;)
            v = yield_value(f, v + 1);
    default:
        break;
    }
    f->xfer = v;
    f->status = ASU_FINISHED;
    f->state = ASU_STATE_FINISHED;
    setcontext(f->resumer); /* this context is never resumed */
    __builtin_trap();
}

/* Map a stack (one guard page below `size` rounded up to pages) and make
 * the fiber's context on it.  0, or -errno (-EINVAL below the minimum). */
int asu_fiber_init(struct asu_fiber *f, size_t size, int prog, int64_t count, struct asu_fiber *bound)
{
    memset(f, 0, sizeof *f);
    if (size < ASU_STACK_MIN)
        return -EINVAL;
    if (prog == ASU_PROG_NEST && bound == NULL)
        return -EINVAL;
    if (prog == ASU_PROG_SIGMASK && (count < 1 || count >= NSIG || count == SIGSEGV || count == SIGKILL || count == SIGSTOP))
        return -EINVAL;
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t usable = (size + page - 1) / page * page;
    size_t len = usable + page;
    void *map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (map == MAP_FAILED)
        return -errno;
    if (mprotect(map, page, PROT_NONE) != 0) {
        int e = errno;
        munmap(map, len);
        return -e;
    }
    if (getcontext(&f->ctx) != 0) {
        int e = errno;
        munmap(map, len);
        return -e;
    }
    f->map = map;
    f->map_len = len;
    f->lo = (uintptr_t)map + page;
    f->hi = f->lo + usable;
    f->ctx.uc_stack.ss_sp = (void *)f->lo;
    f->ctx.uc_stack.ss_size = usable;
    f->ctx.uc_link = NULL; /* the body goes back to its resumer itself */
    f->prog = prog;
    f->count = count;
    f->bound = bound;
    uintptr_t p = (uintptr_t)f;
    makecontext(&f->ctx, (void (*)(void))ASU_ENTRY, 2, (unsigned int)(p >> 32), (unsigned int)(p & 0xFFFFFFFFu));
    f->state = ASU_STATE_CREATED;
    return 0;
}

/* Unmap the stack of a fiber that is not running: 0, or a negative ASU_ERR_*. */
int asu_fiber_free(struct asu_fiber *f)
{
    if (f->state == ASU_STATE_RUNNING)
        return ASU_ERR_RUNNING;
    if (f->state == ASU_STATE_NONE)
        return ASU_ERR_NONE;
    munmap(f->map, f->map_len);
    f->map = NULL;
    f->state = ASU_STATE_NONE;
    return 0;
}

int asu_fiber_state(const struct asu_fiber *f) { return f->state; }
uintptr_t asu_entry_sp(const struct asu_fiber *f) { return f->entry_sp; }
uintptr_t asu_entry_fp(const struct asu_fiber *f) { return f->entry_fp; }
uintptr_t asu_stack_lo(const struct asu_fiber *f) { return f->lo; }
uintptr_t asu_stack_hi(const struct asu_fiber *f) { return f->hi; }
uintptr_t asu_map_start(const struct asu_fiber *f) { return (uintptr_t)f->map; }
int asu_output(const struct asu_fiber *f, int i) { return (i == 0 || i == 1) ? f->out[i] : -1; }

/* --------------------------------------------------------------- benchmark */

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Elapsed ns (or a negative error) for n resume + yield round trips, two
 * swapcontext calls each, between this context and a looping fiber. */
int64_t asu_bench_pingpong(uint64_t n)
{
    struct asu_fiber f;
    int r = asu_fiber_init(&f, 64 * 1024, ASU_PROG_LOOP, 0, NULL);
    if (r < 0)
        return r;
    uintptr_t v = 0;
    r = asu_resume(&f, v, &v); /* start it (not timed) */
    int64_t t0 = now_ns();
    for (uint64_t i = 0; i < n && r == ASU_YIELDED; i++)
        r = asu_resume(&f, v, &v);
    int64_t t1 = now_ns();
    asu_fiber_free(&f);
    if (r != ASU_YIELDED)
        return r < 0 ? r : -EIO;
    return t1 - t0;
}
