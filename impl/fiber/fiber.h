/*
 * fiber.h -- the C layer of asyncspec's fibers: stacks, fibers, stack-overflow
 * recovery.  Its API.
 *
 * Compiled by cffi in API mode into asyncspec.impl.fiber._fiber (build.py)
 * together with the architecture's context switch (arch/x86_64.S,
 * arch/aarch64.S), and driven from the Python package beside it.  fiber.c is
 * architecture-neutral: everything that depends on registers or on the
 * stack frame layout is in the assembly file.
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
 * A fiber runs a body, entry(arg, value), on its stack: value is the first
 * resume's, and what the body returns is the fiber's result.  Inside it,
 * asf_fiber_yield(v, &in) suspends the fiber: the resume that ran it returns
 * v, and the next resume's value comes back in `in`.  A body that overflows
 * into the guard page fails the fiber instead of the process (fiber.c says
 * how, and what such a body must not hold).
 *
 * States: NEW -> RUNNING -> SUSPENDED -> RUNNING -> ... -> FINISHED or FAILED;
 * CLOSED (0) before init and after destroy.  resume(f, v) runs f until it
 * yields, finishes or fails and returns that status with the value it
 * yielded or returned.  The thread's current fiber (NULL: the thread's own
 * stack) is its resumer; a fiber may resume another one, and that one's
 * yield returns to it.  Resuming the current fiber is -EDEADLK, a RUNNING
 * one (an ancestor in the resume chain, or one running on another thread)
 * -EBUSY, a FINISHED or FAILED one -ESRCH.  Destroying a suspended fiber
 * abandons its stack without unwinding it.
 *
 * Every fiber records, in entry_sp and entry_fp, the stack pointer and frame
 * pointer at the first instruction of its entry function (asf_fiber_entry,
 * which then tail-calls asf_fiber_main, the caller of the body, with the same
 * stack pointer).  A started fiber is pinned (asf_fiber_relocate: see
 * fiber.c).
 *
 * The part between the cffi markers is also the cffi declarations (see
 * impl/cdef.py): build.py reads it from here.
 */

#ifndef ASYNCSPEC_FIBER_H
#define ASYNCSPEC_FIBER_H

#include <stddef.h>
#include <stdint.h>

/* cffi: begin */
#define ASF_STACK_MIN (16 * 1024) /* smallest usable stack, bytes */

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

/* struct asf_stack.state */
#define ASF_STACK_IDLE 0x4b415453 /* live, no fiber */
#define ASF_STACK_BUSY 0x59535542 /* live, holds a live fiber */

/* A fiber's body: runs on the fiber's stack; its result finishes the fiber. */
typedef uintptr_t (*asf_entry_fn)(void *arg, uintptr_t value);

struct asf_stack {
    uintptr_t lo;       /* lowest usable address (16-aligned) */
    uintptr_t hi;       /* one past the highest usable byte (16-aligned) */
    uintptr_t guard_lo; /* PROT_NONE guard page(s) [guard_lo, guard_hi), */
    uintptr_t guard_hi; /*   both 0 for caller memory */
    void *map_base_;    /* exactly what mmap returned (NULL: caller memory) */
    size_t map_len;     /* and its length */
    int state;          /* 0 not live, ASF_STACK_IDLE, ASF_STACK_BUSY */
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
    asf_entry_fn entry_;         /* the body, and its argument */
    void *arg_;
};

size_t asf_page_size(void);
int asf_stack_alloc(struct asf_stack *s, size_t size);
int asf_stack_from_memory(struct asf_stack *s, void *base, size_t len);
int asf_stack_free(struct asf_stack *s);

int asf_fiber_init(struct asf_fiber *f, struct asf_stack *s, asf_entry_fn entry, void *arg);
int asf_fiber_resume(struct asf_fiber *f, uintptr_t value, uintptr_t *out);
int asf_fiber_yield(uintptr_t value, uintptr_t *in);
int asf_fiber_destroy(struct asf_fiber *f);
int asf_fiber_state(const struct asf_fiber *f);
int asf_fiber_relocate(struct asf_fiber *f, struct asf_stack *to);
int asf_fiber_relocate_unchecked(struct asf_fiber *f, struct asf_stack *to);
int asf_fiber_self_check(const struct asf_fiber *f, uintptr_t out[3]);

/* The fake return address a fiber's entry function sees (unwinders stop there). */
uintptr_t asf_exit_address(void);
const char *asf_arch(void);
/* cffi: end */

#endif
