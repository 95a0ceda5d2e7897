/*
 * fiber_abi_test.c -- checks of the AArch64 fiber switcher (impl/fiber/arch/
 * aarch64.S under impl/fiber/fiber.c) against the AAPCS64 rules of
 * spec/fiber/rules.py, with no Python on the target: tests/impl/aarch64/run.sh
 * builds it as a static program (cross-compiled, and run under qemu-user on
 * a machine that is not AArch64).
 *
 * The fibers run the conformance suite's probe interpreter
 * (conformance/targets/impl/probe/), as they do under Python.  This file
 * includes both C files -- fiber.c for the switcher's internals too
 * (asf_switch, asf_init_stack: the raw contexts below), probe.c for the
 * probes -- and gives the interpreter the switcher directly (`direct`).  It
 * is compiled with frame pointers, as both are (impl/fiber/build.py).
 *
 * Output: "plan: N checks", then one line per check, "PASS name" or
 * "FAIL name: why" (with indented detail lines before it), then
 * "N passed, N failed".  Exit status 0 when every check passed, 1 otherwise.
 * Each check runs in a child process of its own, so a crash fails that check
 * only, and every check starts from a fresh process (no SIGSEGV handler, no
 * alternate stack, the default FPCR).  Arguments, if any, select checks by
 * name.
 *
 * Rules checked: FIB-A64-1 (sp % 16 == 0 at entry and at every switch),
 * FIB-A64-2 (x19-x29 and d8-d15 survive switches both ways; FPCR per
 * context), FIB-STACK-1 (entry sp is the aligned top), FIB-STACK-3 (guard
 * page overflow -> FAILED, everything else keeps working), FIB-STACK-4
 * (x29 == 0 at entry; the frame-record chain ends at the exit address),
 * FIB-LIFE-2/3/4 (values, nesting, errors).
 */

#include "../../../impl/fiber/fiber.c"
#include "../../../conformance/targets/impl/probe/probe.c"

#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>

#if !defined(__aarch64__)
#error "fiber_abi_test.c: an AArch64 test (build it with tests/impl/aarch64/run.sh)"
#endif

/* tests/impl/aarch64/regs_helper.S: all 19 callee-saved registers, in the order
 * x19-x28, x29, d8-d15. */
#define T_NREGS 19
uint64_t t_with_regs(const uint64_t *in, uint64_t *out, uint64_t (*fn)(void *, uint64_t), void *arg,
                     uint64_t value);

static const char *const reg_names[T_NREGS] = {"x19", "x20", "x21", "x22", "x23", "x24", "x25",
                                               "x26", "x27", "x28", "x29", "d8",  "d9",  "d10",
                                               "d11", "d12", "d13", "d14", "d15"};
/* asp_call_with_regs's eight (conformance/targets/impl/probe/arch/aarch64.S). */
static const char *const probe_names[ASP_NREGS] = {"x19", "x20", "x21", "x27", "x28", "x29", "d8", "d15"};

/* FPCR fields. */
#define FPCR_RMODE_RP (1ull << 22) /* round towards +infinity */
#define FPCR_RMODE_RM (2ull << 22) /* round towards -infinity */
#define FPCR_RMODE_RZ (3ull << 22) /* round towards zero */
#define FPCR_FZ (1ull << 24)
#define FPCR_DN (1ull << 25)

#define HUGE_DEPTH ((uintptr_t)1 << 40) /* RECURSE deep enough to overflow any stack */

/* ------------------------------------------------------------------------
 * Reporting
 * ------------------------------------------------------------------------ */

static void detail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("    ", stdout);
    vprintf(fmt, ap);
    fputc('\n', stdout);
    va_end(ap);
}

#define EXPECT(cond)                                                                                         \
    do {                                                                                                     \
        if (!(cond)) {                                                                                       \
            detail("line %d: expected %s", __LINE__, #cond);                                                 \
            return 1;                                                                                        \
        }                                                                                                    \
    } while (0)

#define EXPECT_EQ(a, b)                                                                                      \
    do {                                                                                                     \
        uint64_t a_ = (uint64_t)(a), b_ = (uint64_t)(b);                                                     \
        if (a_ != b_) {                                                                                      \
            detail("line %d: expected %s == %s: %#llx != %#llx (%lld, %lld)", __LINE__, #a, #b,             \
                   (unsigned long long)a_, (unsigned long long)b_, (long long)a_, (long long)b_);            \
            return 1;                                                                                        \
        }                                                                                                    \
    } while (0)

/* Compare register arrays; report every register that changed. */
static int regs_differ(const char *who, const char *const *names, const uint64_t *want, const uint64_t *got,
                       int n)
{
    int bad = 0;
    for (int i = 0; i < n; i++) {
        if (want[i] != got[i]) {
            detail("%s: %s = %#llx, expected %#llx", who, names[i], (unsigned long long)got[i],
                   (unsigned long long)want[i]);
            bad = 1;
        }
    }
    return bad;
}

/* Distinct values: side (0xA main, 0xB fiber), round and register number
 * all visible in every word. */
static void fill(uint64_t *v, int n, unsigned side, unsigned round)
{
    for (int i = 0; i < n; i++)
        v[i] = ((uint64_t)side << 60) | ((uint64_t)(round & 0xffff) << 40) | ((uint64_t)(i + 1) << 32) |
               (0x5a5a0000u ^ (unsigned)(i * 0x1111 + round));
}

/* Run fn(arg) in a child process that must die of signal `sig`.  Returns 0
 * if it did; prints how it ended otherwise.  No core files, and the child's
 * stderr (where an emulator reports the signal) is discarded. */
static int expect_death(int (*fn)(void *), void *arg, int sig)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
        detail("fork: %s", strerror(errno));
        return 1;
    }
    if (pid == 0) {
        struct rlimit no_core = {0, 0};
        setrlimit(RLIMIT_CORE, &no_core);
        int null = open("/dev/null", O_WRONLY);
        if (null >= 0)
            dup2(null, 2);
        int r = fn(arg);
        fflush(stdout);
        _exit(r ? 3 : 2); /* survived: not what was expected */
    }
    int st = 0;
    if (waitpid(pid, &st, 0) != pid) {
        detail("waitpid: %s", strerror(errno));
        return 1;
    }
    if (WIFSIGNALED(st) && WTERMSIG(st) == sig)
        return 0;
    if (WIFSIGNALED(st))
        detail("child died of signal %d (%s), expected %d (%s)", WTERMSIG(st), strsignal(WTERMSIG(st)), sig,
               strsignal(sig));
    else
        detail("child exited with %d, expected death by signal %d (%s)", WEXITSTATUS(st), sig, strsignal(sig));
    return 1;
}

/* ------------------------------------------------------------------------
 * Fixtures
 * ------------------------------------------------------------------------ */

static struct asf_stack *stack_new(size_t size)
{
    struct asf_stack *s = calloc(1, sizeof *s);
    if (!s || asf_stack_alloc(s, size) != 0) {
        detail("asf_stack_alloc(%zu) failed", size);
        exit(1);
    }
    return s;
}

/* The interpreter's switcher: this program's own asf_fiber_resume and asf_fiber_yield. */
static const struct asp_switcher direct = {asf_fiber_resume, asf_fiber_yield};

/* A fiber running the probe `ops`, and its program (freed with it). */
struct probe_fiber {
    struct asf_fiber f; /* first: fiber_free frees the block through &f */
    struct asp_program p;
};

static struct asf_fiber *fiber_new(struct asf_stack *s, struct asp_op *ops, size_t nops)
{
    struct probe_fiber *pf = calloc(1, sizeof *pf);
    int r = pf ? asp_check(ops, nops) : -ENOMEM;
    if (r == 0) {
        pf->p = (struct asp_program){&direct, s->lo, s->hi, ops, nops};
        r = asf_fiber_init(&pf->f, s, asp_run, &pf->p);
    }
    if (r != 0) {
        detail("fiber_new failed: %d", r);
        exit(1);
    }
    return &pf->f;
}

static void fiber_free(struct asf_fiber *f, struct asf_stack *s)
{
    asf_fiber_destroy(f);
    asf_stack_free(s);
    free(f);
    free(s);
}

static struct asp_op op(int code, uintptr_t arg)
{
    struct asp_op o;
    memset(&o, 0, sizeof o);
    o.code = code;
    o.arg = arg;
    return o;
}

/* A context driven with asf_switch directly (no fiber.c bookkeeping): for
 * the checks that need C code of their own inside the fiber. */
struct raw {
    void *main_sp;
    void *fiber_sp;
    int rounds;
    int bad;          /* fiber side: a check failed (details printed) */
    int done;         /* fiber side: finished its loop */
    int misaligned;   /* a saved sp with sp % 16 != 0 */
    uintptr_t ra;     /* lr at the entry function's start */
    double third[4];  /* rounding results */
};

static uint64_t raw_to_main(void *arg, uint64_t v)
{
    struct raw *r = arg;
    uint64_t got = asf_switch(&r->fiber_sp, r->main_sp, v);
    if ((uintptr_t)r->fiber_sp % 16 || (uintptr_t)r->main_sp % 16)
        r->misaligned = 1;
    return got;
}

static uint64_t raw_to_fiber(void *arg, uint64_t v)
{
    struct raw *r = arg;
    uint64_t got = asf_switch(&r->main_sp, r->fiber_sp, v);
    if ((uintptr_t)r->fiber_sp % 16 || (uintptr_t)r->main_sp % 16)
        r->misaligned = 1;
    return got;
}

__attribute__((noreturn)) static void raw_finish(struct raw *r, uint64_t v)
{
    void *dead;
    r->done = 1;
    asf_switch(&dead, r->main_sp, v);
    __builtin_trap();
}

/* ------------------------------------------------------------------------
 * Checks
 * ------------------------------------------------------------------------ */

static int check_arch(void)
{
    EXPECT(strcmp(asf_arch(), "aarch64") == 0);
    EXPECT_EQ(asp_nregs(), 8);
    EXPECT_EQ(sizeof(void *), 8);
    return 0;
}

/* FIB-A64-1, FIB-STACK-1, FIB-STACK-4: what the entry function sees. */
static int entry_ok(struct asf_stack *s, const char *what)
{
    struct asp_op ops[1] = {op(ASP_OP_ADD, 1)};
    struct asf_fiber *f = fiber_new(s, ops, 1);
    uintptr_t v = 0;
    EXPECT_EQ(asf_fiber_state(f), ASF_STATE_NEW);
    EXPECT_EQ(asf_fiber_resume(f, 41, &v), ASF_FINISHED);
    EXPECT_EQ(v, 42);
    if (f->entry_sp % 16 != 0 || f->entry_sp != s->hi || f->entry_fp != 0 || f->entry_sp <= s->lo) {
        detail("%s: stack [%#lx, %#lx): entry sp %#lx (sp %% 16 = %lu), fp %#lx", what, (unsigned long)s->lo,
               (unsigned long)s->hi, (unsigned long)f->entry_sp, (unsigned long)(f->entry_sp % 16),
               (unsigned long)f->entry_fp);
        return 1;
    }
    asf_fiber_destroy(f);
    free(f);
    return 0;
}

static int check_entry_sp_fp(void)
{
    static const size_t sizes[] = {ASF_STACK_MIN,     ASF_STACK_MIN + 1, ASF_STACK_MIN + 8, ASF_STACK_MIN + 15,
                                   20000,             65536,             65537,             1 << 20};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        struct asf_stack *s = stack_new(sizes[i]);
        if (entry_ok(s, "mapped"))
            return 1;
        EXPECT_EQ(asf_stack_free(s), 0);
        free(s);
    }
    /* Caller memory at every alignment of base and length. */
    size_t len0 = ASF_STACK_MIN + 64;
    unsigned char *mem = malloc(len0 + 64);
    EXPECT(mem != NULL);
    for (unsigned off = 0; off < 16; off++) {
        for (unsigned extra = 0; extra < 16; extra += 3) {
            struct asf_stack s;
            memset(&s, 0, sizeof s);
            EXPECT_EQ(asf_stack_from_memory(&s, mem + off, len0 + extra), 0);
            EXPECT(s.lo % 16 == 0 && s.hi % 16 == 0);
            EXPECT(s.lo >= (uintptr_t)(mem + off) && s.hi <= (uintptr_t)(mem + off + len0 + extra));
            if (entry_ok(&s, "caller memory"))
                return 1;
            EXPECT_EQ(asf_stack_free(&s), 0);
        }
    }
    free(mem);
    return 0;
}

/* FIB-STACK-4: the frame-record chain ends with x29 = 0, and its last record
 * holds the exit address as return address. */
static int check_frame_chain(void)
{
    struct asf_stack *s = stack_new(64 * 1024);
    struct asp_op ops[1] = {op(ASP_OP_FRAMES, 0)};
    struct asf_fiber *f = fiber_new(s, ops, 1);
    EXPECT_EQ(asf_fiber_resume(f, 0, NULL), ASF_FINISHED);
    detail("frames %lu, last record %#lx (top %#lx), its lr %#lx, exit address %#lx",
           (unsigned long)ops[0].output[0], (unsigned long)ops[0].output[2], (unsigned long)s->hi,
           (unsigned long)ops[0].output[3], (unsigned long)asf_exit_address());
    EXPECT(ops[0].output[0] >= 2);
    EXPECT_EQ(ops[0].output[1], 0);
    EXPECT_EQ(ops[0].output[4], 1);
    EXPECT_EQ(ops[0].output[3], asf_exit_address());
    EXPECT(ops[0].output[2] + 16 <= s->hi);
    fiber_free(f, s);
    return 0;
}

/* The exit address is a brk, and lr holds it at entry; returning traps. */
static void returning_entry(void *arg, uintptr_t v)
{
    struct raw *r = arg;
    r->ra = (uintptr_t)__builtin_extract_return_addr(__builtin_return_address(0));
    raw_to_main(r, v); /* resumed: fall off the end, into the brk */
}

static int resume_returning(void *arg)
{
    struct raw *r = arg;
    asf_switch(&r->main_sp, r->fiber_sp, 0);
    return 0; /* not reached */
}

static int check_exit_address_traps(void)
{
    uint32_t insn;
    memcpy(&insn, (const void *)asf_exit_address(), sizeof insn);
    EXPECT_EQ(insn & 0xffe0001fu, 0xd4200000u); /* BRK #imm16 */
    struct asf_stack *s = stack_new(64 * 1024);
    struct raw r;
    memset(&r, 0, sizeof r);
    r.fiber_sp = asf_init_stack((void *)s->hi, returning_entry, &r);
    EXPECT_EQ((uintptr_t)r.fiber_sp, s->hi - 176);
    asf_switch(&r.main_sp, r.fiber_sp, 7);
    EXPECT_EQ(r.ra, asf_exit_address());
    return expect_death(resume_returning, &r, SIGTRAP);
}

/* FIB-A64-2, both directions, every callee-saved register: each side loads
 * its own values and switches; each must find its own back. */
#define RAW_ROUNDS 50

static void regs_entry(void *arg, uintptr_t v)
{
    struct raw *r = arg;
    for (int k = 0; k < RAW_ROUNDS; k++) {
        uint64_t in[T_NREGS], out[T_NREGS];
        fill(in, T_NREGS, 0xB, (unsigned)k);
        v = t_with_regs(in, out, raw_to_main, r, v + 1);
        if (regs_differ("fiber, after being resumed", reg_names, in, out, T_NREGS))
            r->bad = 1;
        r->rounds++;
    }
    raw_finish(r, v + 1);
}

static int check_regs_raw(void)
{
    struct asf_stack *s = stack_new(64 * 1024);
    struct raw r;
    memset(&r, 0, sizeof r);
    r.fiber_sp = asf_init_stack((void *)s->hi, regs_entry, &r);
    uint64_t v = 100;
    int bad = 0;
    for (int k = 0; k <= RAW_ROUNDS; k++) {
        uint64_t in[T_NREGS], out[T_NREGS];
        fill(in, T_NREGS, 0xA, (unsigned)k);
        uint64_t got = t_with_regs(in, out, raw_to_fiber, &r, v);
        if (regs_differ("main, after the fiber yielded", reg_names, in, out, T_NREGS))
            bad = 1;
        EXPECT_EQ(got, v + 1); /* the value went there and back */
        v = got;
    }
    EXPECT(!bad && !r.bad);
    EXPECT(r.done);
    EXPECT_EQ(r.rounds, RAW_ROUNDS);
    EXPECT(!r.misaligned);
    detail("%d round trips, 19 registers each way", RAW_ROUNDS);
    asf_stack_free(s);
    free(s);
    return 0;
}

/* The same through fiber.c's resume/yield: the main side with all 19
 * registers around asf_fiber_resume, the fiber side with the REGS probe
 * (asp_call_with_regs, 8 registers) around its yield. */
struct resume_args {
    struct asf_fiber *f;
    int rc;
};

static uint64_t resume_thunk_t(void *arg, uint64_t v)
{
    struct resume_args *a = arg;
    uintptr_t out = 0;
    a->rc = asf_fiber_resume(a->f, v, &out);
    return out;
}

static int check_regs_api(void)
{
    struct asf_stack *s = stack_new(64 * 1024);
    struct asp_op ops[2] = {op(ASP_OP_REGS, 0), op(ASP_OP_REGS, 0)};
    fill(ops[0].input, ASP_NREGS, 0xC, 1);
    fill(ops[1].input, ASP_NREGS, 0xC, 2);
    struct asf_fiber *f = fiber_new(s, ops, 2);
    struct resume_args a = {f, 0};
    int bad = 0;
    for (unsigned k = 0; k < 3; k++) {
        uint64_t in[T_NREGS], out[T_NREGS];
        fill(in, T_NREGS, 0xA, k);
        uint64_t got = t_with_regs(in, out, resume_thunk_t, &a, 10 + k);
        EXPECT_EQ(a.rc, k < 2 ? ASF_YIELDED : ASF_FINISHED);
        EXPECT_EQ(got, 10 + k);
        if (regs_differ("main, across asf_fiber_resume", reg_names, in, out, T_NREGS))
            bad = 1;
    }
    for (int i = 0; i < 2; i++)
        if (regs_differ(i ? "fiber (2nd REGS op)" : "fiber (1st REGS op)", probe_names, ops[i].input,
                        ops[i].output, ASP_NREGS))
            bad = 1;
    EXPECT(!bad);
    fiber_free(f, s);

    /* asp_resume_regs: the interpreter's own probe on the main side. */
    s = stack_new(64 * 1024);
    struct asp_op y[1] = {op(ASP_OP_YIELD, 1)};
    f = fiber_new(s, y, 1);
    uintptr_t rin[ASP_NREGS], rout[ASP_NREGS], v = 0;
    for (int k = 0; k < 2; k++) {
        fill(rin, ASP_NREGS, 0xD, (unsigned)k);
        memset(rout, 0, sizeof rout);
        EXPECT_EQ(asp_resume_regs(&direct, f, 5, &v, rin, rout), k == 0 ? ASF_YIELDED : ASF_FINISHED);
        if (regs_differ("main, asp_resume_regs", probe_names, rin, rout, ASP_NREGS))
            return 1;
    }
    fiber_free(f, s);
    return 0;
}

/* FIB-A64-2: FPCR belongs to the context. */
static int check_fpcr_per_context(void)
{
    EXPECT_EQ(asp_fp_control(), 0); /* a fresh process: round to nearest, no FZ/DN */
    EXPECT_EQ(asp_set_fp_control(FPCR_RMODE_RZ), 0);
    EXPECT_EQ(asp_fp_control(), FPCR_RMODE_RZ);
    struct asf_stack *s = stack_new(64 * 1024);
    struct asp_op ops[2] = {op(ASP_OP_FP, FPCR_RMODE_RP | FPCR_DN), op(ASP_OP_FP, FPCR_RMODE_RM | FPCR_FZ)};
    struct asf_fiber *f = fiber_new(s, ops, 2); /* inherits RZ */
    EXPECT_EQ(asp_set_fp_control(FPCR_DN), 0);  /* changed after creation: not inherited */
    EXPECT_EQ(asf_fiber_resume(f, 0, NULL), ASF_YIELDED);
    EXPECT_EQ(ops[0].output[0], FPCR_RMODE_RZ);         /* the creator's FPCR at creation */
    EXPECT_EQ(asp_fp_control(), FPCR_DN);               /* ours, not the fiber's RP|DN */
    EXPECT_EQ(asp_set_fp_control(FPCR_FZ), 0);
    EXPECT_EQ(asf_fiber_resume(f, 0, NULL), ASF_YIELDED);
    EXPECT_EQ(ops[0].output[1], FPCR_RMODE_RP | FPCR_DN); /* the fiber's own, not our FZ */
    EXPECT_EQ(ops[1].output[0], FPCR_RMODE_RP | FPCR_DN);
    EXPECT_EQ(asp_fp_control(), FPCR_FZ);
    EXPECT_EQ(asf_fiber_resume(f, 0, NULL), ASF_FINISHED);
    EXPECT_EQ(ops[1].output[1], FPCR_RMODE_RM | FPCR_FZ);
    EXPECT_EQ(asp_fp_control(), FPCR_FZ);
    fiber_free(f, s);
    /* A new fiber starts with its creator's current FPCR. */
    s = stack_new(64 * 1024);
    struct asp_op one[1] = {op(ASP_OP_FP, 0)};
    f = fiber_new(s, one, 1);
    EXPECT_EQ(asf_fiber_resume(f, 0, NULL), ASF_YIELDED);
    EXPECT_EQ(one[0].output[0], FPCR_FZ);
    EXPECT_EQ(asf_fiber_resume(f, 0, NULL), ASF_FINISHED);
    fiber_free(f, s);
    /* RES0 bits are refused, before they reach the register. */
    EXPECT_EQ(asp_set_fp_control(1ull << 32), -EINVAL);
    EXPECT_EQ(asp_set_fp_control(1ull << 3), -EINVAL);
    EXPECT_EQ(asp_fp_control(), FPCR_FZ);
    struct asp_op badop[1] = {op(ASP_OP_FP, 1ull << 40)};
    EXPECT_EQ(asp_check(badop, 1), -EINVAL); /* refused before any fiber runs it */
    return 0;
}

/* The rounding mode really is per context: 1/3 rounds up in the fiber
 * (RP) and down in the main context (RM), however the switches interleave. */
static double divide(double a, double b)
{
    volatile double x = a, y = b; /* computed now, under the current FPCR */
    return x / y;
}

static void rounding_entry(void *arg, uintptr_t v)
{
    struct raw *r = arg;
    asp_fp_control_set(FPCR_RMODE_RP);
    r->third[0] = divide(1.0, 3.0);
    v = raw_to_main(r, v);
    r->third[1] = divide(1.0, 3.0);
    raw_finish(r, v);
}

static int check_fpcr_rounding(void)
{
    struct asf_stack *s = stack_new(64 * 1024);
    struct raw r;
    memset(&r, 0, sizeof r);
    asp_fp_control_set(FPCR_RMODE_RM);
    r.fiber_sp = asf_init_stack((void *)s->hi, rounding_entry, &r);
    asf_switch(&r.main_sp, r.fiber_sp, 0);
    r.third[2] = divide(1.0, 3.0);
    asf_switch(&r.main_sp, r.fiber_sp, 0);
    r.third[3] = divide(1.0, 3.0);
    EXPECT(r.done);
    detail("fiber (RP): %.17g %.17g; main (RM): %.17g %.17g", r.third[0], r.third[1], r.third[2], r.third[3]);
    EXPECT(r.third[0] == r.third[1]);
    EXPECT(r.third[2] == r.third[3]);
    EXPECT(r.third[0] > r.third[2]);
    EXPECT_EQ(asp_fp_control_get(), FPCR_RMODE_RM);
    asf_stack_free(s);
    free(s);
    return 0;
}

/* FIB-LIFE-1/2: values in and out, states. */
static int check_yield_resume_values(void)
{
    struct asf_stack *s = stack_new(64 * 1024);
    struct asp_op ops[3] = {op(ASP_OP_YIELD, 3), op(ASP_OP_ADD, 5), op(ASP_OP_YIELD, 1)};
    ops[0].input[0] = 10;
    ops[2].input[0] = 1000;
    struct asf_fiber *f = fiber_new(s, ops, 3);
    uintptr_t v = 0;
    EXPECT_EQ(asf_fiber_state(f), ASF_STATE_NEW);
    EXPECT_EQ(asf_fiber_resume(f, 1, &v), ASF_YIELDED); /* 1 + 10 */
    EXPECT_EQ(v, 11);
    EXPECT_EQ(asf_fiber_state(f), ASF_STATE_SUSPENDED);
    EXPECT_EQ(asf_fiber_resume(f, 2, &v), ASF_YIELDED);
    EXPECT_EQ(v, 12);
    EXPECT_EQ(asf_fiber_resume(f, 3, &v), ASF_YIELDED);
    EXPECT_EQ(v, 13);
    EXPECT_EQ(ops[0].output[0], 2);
    EXPECT_EQ(asf_fiber_resume(f, 4, &v), ASF_YIELDED); /* (4 + 5) + 1000 */
    EXPECT_EQ(v, 1009);
    EXPECT_EQ(ops[0].output[0], 3);
    EXPECT_EQ(asf_fiber_resume(f, UINTPTR_MAX, &v), ASF_FINISHED); /* full 64-bit values */
    EXPECT_EQ(v, UINTPTR_MAX);
    EXPECT_EQ(asf_fiber_state(f), ASF_STATE_FINISHED);
    fiber_free(f, s);
    return 0;
}

/* FIB-LIFE-3: A resumes B; B's yield goes to A, not to the main context. */
static int check_nested(void)
{
    struct asf_stack *sa = stack_new(64 * 1024), *sb = stack_new(64 * 1024);
    struct asp_op bops[2] = {op(ASP_OP_YIELD, 1), op(ASP_OP_ADD, 1)};
    bops[0].input[0] = 100;
    struct asf_fiber *b = fiber_new(sb, bops, 2);
    struct asp_op aops[3] = {op(ASP_OP_RESUME, 0), op(ASP_OP_YIELD, 1), op(ASP_OP_RESUME, 0)};
    aops[0].ptr = b;
    aops[2].ptr = b;
    struct asf_fiber *a = fiber_new(sa, aops, 3);
    uintptr_t v = 0;
    EXPECT_EQ(asf_fiber_resume(a, 5, &v), ASF_YIELDED);
    EXPECT_EQ((intptr_t)aops[0].output[0], ASF_YIELDED); /* B yielded to A */
    EXPECT_EQ(aops[0].output[1], 105);
    EXPECT_EQ(v, 105); /* and A yielded that to us */
    EXPECT_EQ(asf_fiber_state(b), ASF_STATE_SUSPENDED);
    EXPECT_EQ(asf_fiber_state(a), ASF_STATE_SUSPENDED);
    EXPECT_EQ(asf_fiber_resume(a, 6, &v), ASF_FINISHED);
    EXPECT_EQ((intptr_t)aops[2].output[0], ASF_FINISHED); /* B's yield got 6, it added 1 */
    EXPECT_EQ(aops[2].output[1], 7);
    EXPECT_EQ(v, 7);
    EXPECT_EQ(asf_fiber_state(b), ASF_STATE_FINISHED);
    EXPECT(current_get() == NULL);
    fiber_free(a, sa);
    fiber_free(b, sb);
    return 0;
}

/* FIB-LIFE-4: refused resumes change nothing. */
static int check_resume_errors(void)
{
    uintptr_t v = 77;
    EXPECT_EQ(asf_fiber_yield(1, NULL), -EPERM); /* not inside a fiber */
    /* Finished. */
    struct asf_stack *s = stack_new(64 * 1024);
    struct asp_op ops[1] = {op(ASP_OP_SET, 9)};
    struct asf_fiber *f = fiber_new(s, ops, 1);
    EXPECT_EQ(asf_fiber_resume(f, 0, &v), ASF_FINISHED);
    v = 77;
    EXPECT_EQ(asf_fiber_resume(f, 0, &v), -ESRCH);
    EXPECT_EQ(v, 77);
    EXPECT_EQ(asf_fiber_state(f), ASF_STATE_FINISHED);
    EXPECT_EQ(asf_fiber_destroy(f), 0);
    EXPECT_EQ(asf_fiber_resume(f, 0, &v), -EBADF); /* destroyed */
    EXPECT_EQ(asf_fiber_destroy(f), -EBADF);
    EXPECT_EQ(asf_stack_free(s), 0);
    free(f);
    free(s);
    /* Itself: -EDEADLK; its running resumer: -EBUSY. */
    struct asf_stack *sa = stack_new(64 * 1024), *sb = stack_new(64 * 1024);
    struct asp_op bops[1] = {op(ASP_OP_RESUME, 0)};
    struct asp_op aops[2] = {op(ASP_OP_RESUME, 0), op(ASP_OP_RESUME, 0)};
    struct asf_fiber *b = fiber_new(sb, bops, 1);
    struct asf_fiber *a = fiber_new(sa, aops, 2);
    aops[0].ptr = a;
    aops[1].ptr = b;
    bops[0].ptr = a;
    EXPECT_EQ(asf_fiber_resume(a, 3, &v), ASF_FINISHED);
    EXPECT_EQ((intptr_t)aops[0].output[0], -EDEADLK);
    EXPECT_EQ((intptr_t)bops[0].output[0], -EBUSY);
    EXPECT_EQ((intptr_t)aops[1].output[0], ASF_FINISHED);
    EXPECT_EQ(v, 3);
    fiber_free(a, sa);
    fiber_free(b, sb);
    return 0;
}

/* FIB-STACK-3: overflow into the guard page. */
static int overflow_once(const char *who)
{
    struct asf_stack *s = stack_new(64 * 1024);
    struct asp_op ops[1] = {op(ASP_OP_RECURSE, HUGE_DEPTH)};
    struct asf_fiber *f = fiber_new(s, ops, 1);
    uintptr_t v = 5;
    EXPECT_EQ(asf_fiber_resume(f, 1, &v), ASF_FAILED);
    EXPECT_EQ(asf_fiber_state(f), ASF_STATE_FAILED);
    EXPECT(f->fault_addr >= s->guard_lo && f->fault_addr < s->guard_hi);
    EXPECT(ops[0].output[0] > 100); /* it recursed a good way first */
    EXPECT(current_get() == NULL);
    EXPECT_EQ(asf_fiber_resume(f, 1, &v), -ESRCH);
    /* Off the alternate stack again, which stays installed. */
    stack_t ss;
    EXPECT_EQ(sigaltstack(NULL, &ss), 0);
    EXPECT(!(ss.ss_flags & SS_ONSTACK));
    EXPECT(!(ss.ss_flags & SS_DISABLE));
    detail("%s: FAILED at depth %lu, fault at guard page + %#lx", who, (unsigned long)ops[0].output[0],
           (unsigned long)(f->fault_addr - s->guard_lo));
    fiber_free(f, s);
    return 0;
}

static int healthy_fiber(void)
{
    struct asf_stack *s = stack_new(64 * 1024);
    struct asp_op ops[2] = {op(ASP_OP_YIELD, 2), op(ASP_OP_RECURSE, 50)};
    struct asf_fiber *f = fiber_new(s, ops, 2);
    uintptr_t v = 0;
    EXPECT_EQ(asf_fiber_resume(f, 1, &v), ASF_YIELDED);
    EXPECT_EQ(asf_fiber_resume(f, 2, &v), ASF_YIELDED);
    EXPECT_EQ(asf_fiber_resume(f, 3, &v), ASF_FINISHED);
    EXPECT_EQ(v, 3);
    EXPECT_EQ(ops[1].output[0], 50);
    fiber_free(f, s);
    return 0;
}

static int check_overflow(void)
{
    /* Repeatedly: the handler must work again after it left through a
     * switch instead of returning (SA_NODEFER; the alternate stack reused
     * from its top). */
    for (int i = 0; i < 3; i++) {
        char who[32];
        snprintf(who, sizeof who, "overflow %d", i + 1);
        if (overflow_once(who) || healthy_fiber())
            return 1;
    }
    return 0;
}

static int check_overflow_nested(void)
{
    struct asf_stack *sa = stack_new(64 * 1024), *sb = stack_new(64 * 1024);
    struct asp_op bops[1] = {op(ASP_OP_RECURSE, HUGE_DEPTH)};
    struct asf_fiber *b = fiber_new(sb, bops, 1);
    struct asp_op aops[2] = {op(ASP_OP_RESUME, 0), op(ASP_OP_ADD, 1)};
    aops[0].ptr = b;
    struct asf_fiber *a = fiber_new(sa, aops, 2);
    uintptr_t v = 0;
    EXPECT_EQ(asf_fiber_resume(a, 5, &v), ASF_FINISHED); /* A survives B's overflow */
    EXPECT_EQ((intptr_t)aops[0].output[0], ASF_FAILED);
    EXPECT_EQ(v, 6); /* v unchanged by the failed resume, then + 1 */
    EXPECT_EQ(asf_fiber_state(b), ASF_STATE_FAILED);
    EXPECT(b->fault_addr >= sb->guard_lo && b->fault_addr < sb->guard_hi);
    fiber_free(a, sa);
    fiber_free(b, sb);
    return healthy_fiber();
}

/* Another thread: its own alternate stack; and a fiber that moves between
 * threads. */
struct thread_args {
    struct asf_fiber *f;
    int result;
    uintptr_t v;
};

static void *overflow_thread(void *arg)
{
    struct thread_args *t = arg;
    t->result = overflow_once("second thread") || healthy_fiber();
    if (!t->result && t->f)
        t->result = asf_fiber_resume(t->f, 20, &t->v) == ASF_YIELDED ? 0 : 1;
    return NULL;
}

static int check_overflow_threads(void)
{
    struct asf_stack *s = stack_new(64 * 1024);
    struct asp_op ops[1] = {op(ASP_OP_YIELD, 2)};
    ops[0].input[0] = 1;
    struct asf_fiber *f = fiber_new(s, ops, 1);
    uintptr_t v = 0;
    EXPECT_EQ(asf_fiber_resume(f, 10, &v), ASF_YIELDED); /* started here */
    EXPECT_EQ(v, 11);
    struct thread_args t = {f, 1, 0};
    pthread_t th;
    EXPECT_EQ(pthread_create(&th, NULL, overflow_thread, &t), 0);
    EXPECT_EQ(pthread_join(th, NULL), 0);
    EXPECT_EQ(t.result, 0);
    EXPECT_EQ(t.v, 21); /* resumed there */
    EXPECT_EQ(asf_fiber_resume(f, 30, &v), ASF_FINISHED); /* and back here */
    EXPECT_EQ(v, 30);
    fiber_free(f, s);
    return overflow_once("main thread, after");
}

/* Other faults are not overflows: the process dies as it would without us. */
static int run_fault(void *arg)
{
    struct asf_stack *s = stack_new(64 * 1024);
    struct asp_op *ops = arg;
    struct asf_fiber *f = fiber_new(s, ops, 1);
    asf_fiber_resume(f, 0, NULL);
    return 0;
}

static int check_fault_outside_guard(void)
{
    struct asp_op ops[1] = {op(ASP_OP_FAULT, 8)}; /* page 0 */
    return expect_death(run_fault, ops, SIGSEGV);
}

static int check_misaligned_access(void)
{
    struct asf_stack *s = stack_new(64 * 1024);
    struct asp_op ops[1] = {op(ASP_OP_ALIGN, 0)};
    struct asf_fiber *f = fiber_new(s, ops, 1);
    EXPECT_EQ(asf_fiber_resume(f, 0, NULL), ASF_FINISHED);
    EXPECT_EQ(ops[0].output[1], 0);
    fiber_free(f, s);
    struct asp_op bad[1] = {op(ASP_OP_ALIGN, 8)};
    return expect_death(run_fault, bad, SIGBUS); /* an alignment fault, not a guard-page SIGSEGV */
}

/* Many fibers, interleaved. */
static int check_many_fibers(void)
{
    enum { N = 64, Y = 10 };
    struct asf_stack *s[N];
    struct asf_fiber *f[N];
    struct asp_op ops[N][1];
    for (int i = 0; i < N; i++) {
        s[i] = stack_new(ASF_STACK_MIN);
        ops[i][0] = op(ASP_OP_YIELD, Y);
        ops[i][0].input[0] = (uintptr_t)i;
        f[i] = fiber_new(s[i], ops[i], 1);
    }
    for (int k = 0; k <= Y; k++) {
        for (int i = 0; i < N; i++) {
            uintptr_t v = 0;
            EXPECT_EQ(asf_fiber_resume(f[i], (uintptr_t)(k * 1000), &v), k < Y ? ASF_YIELDED : ASF_FINISHED);
            EXPECT_EQ(v, k < Y ? (uintptr_t)(k * 1000 + i) : (uintptr_t)(k * 1000));
        }
    }
    for (int i = 0; i < N; i++)
        fiber_free(f[i], s[i]);
    return 0;
}

/* ------------------------------------------------------------------------
 * Driver
 * ------------------------------------------------------------------------ */

struct check {
    const char *name;
    int (*fn)(void);
};

static const struct check checks[] = {
    {"arch", check_arch},
    {"entry_sp_aligned_fp_zero", check_entry_sp_fp},
    {"frame_chain_ends_at_exit_address", check_frame_chain},
    {"entry_return_traps", check_exit_address_traps},
    {"callee_saved_regs_both_directions", check_regs_raw},
    {"callee_saved_regs_resume_yield", check_regs_api},
    {"fpcr_per_context", check_fpcr_per_context},
    {"fpcr_rounding_per_context", check_fpcr_rounding},
    {"yield_resume_values", check_yield_resume_values},
    {"nested_fibers", check_nested},
    {"resume_errors", check_resume_errors},
    {"overflow_fails_fiber", check_overflow},
    {"overflow_nested", check_overflow_nested},
    {"overflow_threads", check_overflow_threads},
    {"fault_outside_guard_crashes", check_fault_outside_guard},
    {"misaligned_exclusive_sigbus", check_misaligned_access},
    {"many_fibers", check_many_fibers},
};

static int selected(const char *name, int argc, char **argv)
{
    if (argc < 2)
        return 1;
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return 1;
    return 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IONBF, 0); /* a crashing check loses no output */
    struct rlimit no_core = {0, 0};
    setrlimit(RLIMIT_CORE, &no_core); /* checks crash on purpose: leave no core files */
    size_t n = sizeof checks / sizeof checks[0], planned = 0;
    for (size_t i = 0; i < n; i++)
        planned += selected(checks[i].name, argc, argv);
    printf("plan: %zu checks\n", planned);
    int passed = 0, failed = 0;
    for (size_t i = 0; i < n; i++) {
        if (!selected(checks[i].name, argc, argv))
            continue;
        pid_t pid = fork();
        if (pid < 0) {
            perror("fork");
            return 2;
        }
        if (pid == 0)
            _exit(checks[i].fn() ? 1 : 0);
        int st = 0;
        if (waitpid(pid, &st, 0) != pid) {
            perror("waitpid");
            return 2;
        }
        if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
            printf("PASS %s\n", checks[i].name);
            passed++;
        } else {
            if (WIFSIGNALED(st))
                printf("FAIL %s: killed by signal %d (%s)\n", checks[i].name, WTERMSIG(st),
                       strsignal(WTERMSIG(st)));
            else
                printf("FAIL %s: exit status %d\n", checks[i].name, WEXITSTATUS(st));
            failed++;
        }
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
