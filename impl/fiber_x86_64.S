/*
 * fiber_x86_64.S -- context switch and fiber entry for x86-64, System V ABI (ELF).
 *
 * The C side (fiber.c) is architecture-neutral; it calls the functions below,
 * which another architecture provides in its own file with the same names and
 * meanings:
 *
 *   uintptr_t asf_switch(void **save_sp, void *load_sp, uintptr_t value);
 *       Save the running context on its own stack, store its stack pointer in
 *       *save_sp, continue the context whose stack pointer is load_sp, and make
 *       the asf_switch call (or the first entry) over there return `value`.
 *
 *   void *asf_init_stack(void *top, void (*entry)(void *, uintptr_t), void *arg);
 *       Build, below `top`, the frame of a context that was never run, and
 *       return its stack pointer.  The first asf_switch to it calls
 *       entry(arg, value) with the stack aligned as after a `call`.
 *
 *   void asf_fiber_entry(struct asf_fiber *f, uintptr_t value);
 *       The entry function of every fiber: records the stack and frame
 *       pointers it starts with in f's first two words, then continues in the
 *       C function asf_fiber_main(f, value) with the same stack.
 *
 *   uintptr_t asf_fiber_exit_address(void);   the fake return address
 *   uint64_t  asf_fp_control_get(void);        floating-point control state
 *   void      asf_fp_control_set(uint64_t);
 *   uintptr_t asf_call_with_regs(const uintptr_t in[6], uintptr_t out[6],
 *                 uintptr_t (*fn)(void *, uintptr_t), void *arg, uintptr_t value);
 *   uintptr_t asf_arch_aligned_access(void *p);
 *   uintptr_t asf_arch_direction_flag(void);    rflags.DF (x86 only: ASF_HAVE_DF)
 *       (probes, used by the tests through fiber.c)
 *
 * What a context is.  The psABI makes rbx, rbp, r12-r15 callee-saved, and also
 * the control bits of MXCSR and the x87 control word; rsp is the context
 * itself.  Everything else (rax, rcx, rdx, rsi, rdi, r8-r11, xmm/ymm/zmm, the
 * x87 stack, MXCSR's status flags) is caller-saved, so a function call --
 * which asf_switch is, to its caller -- may clobber it and nothing needs
 * saving.  rflags.DF is clear at every call and return by the ABI.  The
 * switch saves the whole 32-bit MXCSR: its status flags (bits 0-5) are
 * caller-saved, so whatever they hold after a call is conforming.
 *
 * Stack layouts (addresses grow upwards on the page; "sp" is the value that
 * asf_switch stores in *save_sp and later loads into rsp):
 *
 *   A suspended context: the caller of asf_switch had an aligned stack,
 *   (rsp + 8) % 16 == 0 at asf_switch's first instruction, so S % 16 == 0.
 *
 *       S+56  | return address into the caller of asf_switch |  (S+56) % 16 == 8
 *       S+48  | rbp                                          |
 *       S+40  | rbx                                          |
 *       S+32  | r12                                          |
 *       S+24  | r13                                          |
 *       S+16  | r14                                          |
 *       S+8   | r15                                          |
 *       S+4   | x87 control word (2 bytes) | 2 bytes unused  |
 *       S     | MXCSR (4 bytes)                              |  <- sp == S
 *
 *   A new fiber, built by asf_init_stack; T is the stack top, 16-aligned, and
 *   nothing at or above T is touched:
 *
 *       T-8   | &asf_fiber_trampoline_ret (fake return addr) |  (T-8) % 16 == 8
 *       T-16  | &asf_fiber_trampoline                        |  asf_switch's `ret` target
 *       T-24  | rbp = 0         (ends the frame-pointer chain)
 *       T-32  | rbx = arg       (the trampoline passes it in rdi)
 *       T-40  | r12 = entry     (the trampoline jumps there)
 *       T-48  | r13 = 0                                      |
 *       T-56  | r14 = 0                                      |
 *       T-64  | r15 = 0                                      |
 *       T-68  | x87 control word of the creating context     |
 *       T-72  | MXCSR of the creating context, flags cleared |  <- sp == T-72
 *
 *   The same shape as a suspended context, so asf_switch needs no special
 *   case, but one word lower with respect to 16: the `ret` that ends
 *   asf_switch pops the trampoline's address, which leaves rsp == T-8, and
 *   the trampoline enters the entry function with a `jmp`, so the entry
 *   function starts with rsp == T-8, (rsp + 8) % 16 == 0 -- exactly as after
 *   a `call` -- and [rsp] is the fake return address, which points inside
 *   the trampoline, whose unwind info says "no caller" (debuggers and
 *   unwinders stop there), and at a `ud2` in case the entry function ever
 *   returns (it must not).
 *
 * Signal handlers: fiber.c's SIGSEGV handler (running on the alternate
 * signal stack) leaves a fiber that hit its guard page by calling asf_switch
 * to the fiber's resumer, saving into a dead slot; see fiber.c.
 *
 * No CET: the switch changes stacks with `ret` and so is incompatible with
 * shadow stacks, and this object carries no .note.gnu.property, which makes
 * the linked library say so.
 *
 * Deliberately broken variants.  Each ASF_BROKEN_* macro (all undefined in
 * the real build) plants one classic bug, so that the conformance suite can
 * be shown to catch it (tests/fixtures/broken_switchers.py builds them with
 * impl/fiber_build.py's build_variant):
 *   ASF_BROKEN_ENTRY_ALIGN16  a new fiber's frame is built one word lower, so
 *                             its entry function starts with rsp % 16 == 0
 *                             (aligned as *before* a call: the libco bug);
 *   ASF_BROKEN_RBX            asf_switch saves rbx but never restores it
 *                             (see also fiber.c);
 *   ASF_BROKEN_MXCSR          asf_switch neither saves nor loads MXCSR (the
 *                             x87 control word is still switched);
 *   ASF_BROKEN_FP_CHAIN       a new fiber starts with its creator's rbp, not
 *                             0 (breaks only FIB-STACK-4, a SHOULD rule);
 * and, in fiber.c, ASF_BROKEN_GUARD_OVERLAP (an allocated stack's usable
 * range starts at its guard page) and ASF_BROKEN_RELOCATE (Fiber.relocate
 * moves a started fiber instead of refusing it: tests/fixtures/broken_pin.py).
 */

        .text

/* ------------------------------------------------------------------------
 * uintptr_t asf_switch(void **save_sp [rdi], void *load_sp [rsi], uintptr_t value [rdx])
 * ------------------------------------------------------------------------ */
        .globl  asf_switch
        .hidden asf_switch
        .type   asf_switch, @function
        .p2align 4
asf_switch:
        .cfi_startproc
        pushq   %rbp                    /* callee-saved: the caller's frame pointer */
        .cfi_adjust_cfa_offset 8
        .cfi_rel_offset %rbp, 0
        pushq   %rbx                    /* callee-saved */
        .cfi_adjust_cfa_offset 8
        .cfi_rel_offset %rbx, 0
        pushq   %r12                    /* callee-saved */
        .cfi_adjust_cfa_offset 8
        .cfi_rel_offset %r12, 0
        pushq   %r13                    /* callee-saved */
        .cfi_adjust_cfa_offset 8
        .cfi_rel_offset %r13, 0
        pushq   %r14                    /* callee-saved */
        .cfi_adjust_cfa_offset 8
        .cfi_rel_offset %r14, 0
        pushq   %r15                    /* callee-saved */
        .cfi_adjust_cfa_offset 8
        .cfi_rel_offset %r15, 0
        subq    $8, %rsp                /* one slot for MXCSR + x87 CW; rsp is now 16-aligned */
        .cfi_adjust_cfa_offset 8
#ifndef ASF_BROKEN_MXCSR
        stmxcsr (%rsp)                  /* MXCSR's control bits are callee-saved (rounding, FTZ, DAZ, masks) */
#endif
        fnstcw  4(%rsp)                 /* so is the x87 control word (precision, rounding, masks) */
        movq    %rsp, (%rdi)            /* publish this context's sp: it is now complete on its stack */
        movq    %rsi, %rsp              /* switch stacks: from here on we run the other context */
        /* The other context has the same frame shape (see the diagrams), so
         * the unwind rules above describe it too. */
#ifndef ASF_BROKEN_MXCSR
        ldmxcsr (%rsp)                  /* its MXCSR */
#endif
        fldcw   4(%rsp)                 /* its x87 control word */
        addq    $8, %rsp                /* drop the MXCSR/CW slot */
        .cfi_adjust_cfa_offset -8
        popq    %r15                    /* its callee-saved registers, in reverse push order */
        .cfi_adjust_cfa_offset -8
        .cfi_restore %r15
        popq    %r14                    /* (see above) */
        .cfi_adjust_cfa_offset -8
        .cfi_restore %r14
        popq    %r13                    /* (see above) */
        .cfi_adjust_cfa_offset -8
        .cfi_restore %r13
        popq    %r12                    /* (see above) */
        .cfi_adjust_cfa_offset -8
        .cfi_restore %r12
#ifndef ASF_BROKEN_RBX
        popq    %rbx                    /* (see above) */
#else
        popq    %rcx                    /* BROKEN: the saved rbx goes to a scratch register; rbx keeps the other context's value */
#endif
        .cfi_adjust_cfa_offset -8
        .cfi_restore %rbx
        popq    %rbp                    /* its frame pointer (0 for a new fiber) */
        .cfi_adjust_cfa_offset -8
        .cfi_restore %rbp
        movq    %rdx, %rax              /* the value handed over is asf_switch's result over there */
        ret                             /* into its asf_switch caller, or the trampoline for a new fiber */
        .cfi_endproc
        .size   asf_switch, .-asf_switch

/* ------------------------------------------------------------------------
 * The first code a new fiber runs, reached by asf_switch's `ret` with
 * rsp == T-8 (pointing at the fake return address), rbx = arg,
 * r12 = entry, rbp = 0 and rax = the value of the first resume.
 * ------------------------------------------------------------------------ */
        .globl  asf_fiber_trampoline
        .hidden asf_fiber_trampoline
        .type   asf_fiber_trampoline, @function
        .p2align 4
asf_fiber_trampoline:
        .cfi_startproc
        .cfi_undefined %rip             /* outermost frame: unwinders and debuggers stop here */
#ifndef ASF_BROKEN_RBX
        movq    %rbx, %rdi              /* first argument: arg */
#else
        movq    %rcx, %rdi              /* first argument: arg (the broken switch left it in rcx, not rbx) */
#endif
        movq    %rax, %rsi              /* second argument: the value passed to the first resume */
        cld                             /* DF clear at function entry (already clear: asf_switch was called; cheap insurance) */
        jmpq    *%r12                   /* enter entry(arg, value); [rsp] is already its return address */
        /* The fake return address points here, one byte past the `jmp`, so
         * an unwinder's lookup at (return address - 1) lands inside this
         * function and finds the rip-undefined rule above. */
asf_fiber_trampoline_ret:
        ud2                             /* the entry function returned: a bug; trap (SIGILL) */
        .cfi_endproc
        .size   asf_fiber_trampoline, .-asf_fiber_trampoline

/* ------------------------------------------------------------------------
 * uintptr_t asf_fiber_exit_address(void): the fake return address.
 * ------------------------------------------------------------------------ */
        .globl  asf_fiber_exit_address
        .hidden asf_fiber_exit_address
        .type   asf_fiber_exit_address, @function
        .p2align 4
asf_fiber_exit_address:
        .cfi_startproc
        leaq    asf_fiber_trampoline_ret(%rip), %rax  /* position-independent address of the label */
        ret                             /* return it */
        .cfi_endproc
        .size   asf_fiber_exit_address, .-asf_fiber_exit_address

/* ------------------------------------------------------------------------
 * void *asf_init_stack(void *top [rdi], void (*entry)(void *, uintptr_t) [rsi], void *arg [rdx])
 * Writes the "new fiber" frame of the diagram below top and returns its sp.
 * A leaf: it writes through rax and never touches its own stack.
 * ------------------------------------------------------------------------ */
        .globl  asf_init_stack
        .hidden asf_init_stack
        .type   asf_init_stack, @function
        .p2align 4
asf_init_stack:
        .cfi_startproc
        movq    %rdi, %rax              /* rax walks down from the top */
        andq    $-16, %rax              /* T: 16-aligned (fiber.c already aligns it; the layout depends on it) */
#ifdef ASF_BROKEN_ENTRY_ALIGN16
        subq    $8, %rax                /* BROKEN: the frame one word lower, so the entry function starts with rsp == T-16 */
#endif
        leaq    asf_fiber_trampoline_ret(%rip), %rcx  /* the fake return address */
        movq    %rcx, -8(%rax)          /* T-8: seen by the entry function as its return address */
        leaq    asf_fiber_trampoline(%rip), %rcx      /* where asf_switch's `ret` goes */
        movq    %rcx, -16(%rax)         /* T-16 */
#ifdef ASF_BROKEN_FP_CHAIN
        movq    %rbp, -24(%rax)         /* BROKEN: the creator's rbp, so the chain runs off this stack */
#else
        movq    $0, -24(%rax)           /* T-24: rbp = 0, the end of the frame-pointer chain */
#endif
        movq    %rdx, -32(%rax)         /* T-32: rbx = arg */
        movq    %rsi, -40(%rax)         /* T-40: r12 = entry */
        movq    $0, -48(%rax)           /* T-48: r13 = 0 (defined contents, for debuggers) */
        movq    $0, -56(%rax)           /* T-56: r14 = 0 */
        movq    $0, -64(%rax)           /* T-64: r15 = 0 */
        movq    $0, -72(%rax)           /* T-72: clear the MXCSR/CW slot, including its 2 unused bytes */
        stmxcsr -72(%rax)               /* a new fiber inherits the creator's MXCSR (as a new thread does) */
        andl    $-64, -72(%rax)         /* ...without its sticky exception flags (bits 0-5) */
        fnstcw  -68(%rax)               /* and its x87 control word */
        subq    $72, %rax               /* the new context's sp, T-72 */
        ret                             /* return it */
        .cfi_endproc
        .size   asf_init_stack, .-asf_init_stack

/* ------------------------------------------------------------------------
 * void asf_fiber_entry(struct asf_fiber *f [rdi], uintptr_t value [rsi])
 * The entry function of every fiber (placed in r12 by fiber.c).  Its first
 * two instructions record what the entry function sees: rsp (which must
 * satisfy (rsp + 8) % 16 == 0) and rbp (which must be 0).  fiber.c asserts
 * that entry_sp and entry_fp are the first two words of struct asf_fiber.
 * ------------------------------------------------------------------------ */
        .globl  asf_fiber_entry
        .hidden asf_fiber_entry
        .type   asf_fiber_entry, @function
        .p2align 4
asf_fiber_entry:
        .cfi_startproc
        movq    %rsp, 0(%rdi)           /* f->entry_sp: rsp at the entry function's first instruction */
        movq    %rbp, 8(%rdi)           /* f->entry_fp: rbp there */
        jmp     asf_fiber_main          /* tail call: same rsp, same arguments (rdi, rsi) */
        .cfi_endproc
        .size   asf_fiber_entry, .-asf_fiber_entry

/* ------------------------------------------------------------------------
 * uint64_t asf_fp_control_get(void): MXCSR in bits 0-31, x87 CW in bits 32-47.
 * A leaf: uses the red zone below rsp.
 * ------------------------------------------------------------------------ */
        .globl  asf_fp_control_get
        .hidden asf_fp_control_get
        .type   asf_fp_control_get, @function
        .p2align 4
asf_fp_control_get:
        .cfi_startproc
        stmxcsr -8(%rsp)                /* MXCSR into the red zone */
        fnstcw  -4(%rsp)                /* x87 control word next to it */
        movl    -8(%rsp), %eax          /* low half of the result: MXCSR (zero-extends rax) */
        movzwl  -4(%rsp), %edx          /* the control word, zero-extended */
        shlq    $32, %rdx               /* to bits 32-47 */
        orq     %rdx, %rax              /* combine */
        ret                             /* return it */
        .cfi_endproc
        .size   asf_fp_control_get, .-asf_fp_control_get

/* ------------------------------------------------------------------------
 * void asf_fp_control_set(uint64_t v [rdi]): the inverse.  fiber.c rejects
 * values with reserved bits set before calling (ldmxcsr would fault).
 * ------------------------------------------------------------------------ */
        .globl  asf_fp_control_set
        .hidden asf_fp_control_set
        .type   asf_fp_control_set, @function
        .p2align 4
asf_fp_control_set:
        .cfi_startproc
        movl    %edi, -8(%rsp)          /* MXCSR into the red zone */
        shrq    $32, %rdi               /* the control word down to bits 0-15 */
        movw    %di, -4(%rsp)           /* into the red zone */
        ldmxcsr -8(%rsp)                /* load MXCSR */
        fldcw   -4(%rsp)                /* load the x87 control word */
        ret                             /* done */
        .cfi_endproc
        .size   asf_fp_control_set, .-asf_fp_control_set

/* ------------------------------------------------------------------------
 * uintptr_t asf_call_with_regs(const uintptr_t in[6] [rdi], uintptr_t out[6] [rsi],
 *         uintptr_t (*fn)(void *, uintptr_t) [rdx], void *arg [rcx], uintptr_t value [r8])
 * Probe: loads rbx, rbp, r12, r13, r14, r15 from in[], calls fn(arg, value),
 * stores what those registers hold after fn returns into out[] (same
 * order), restores the caller's own values and returns fn's result.  Across
 * the call rbp is not a frame pointer, so the unwind info below is
 * rsp-based.
 * ------------------------------------------------------------------------ */
        .globl  asf_call_with_regs
        .hidden asf_call_with_regs
        .type   asf_call_with_regs, @function
        .p2align 4
asf_call_with_regs:
        .cfi_startproc
        pushq   %rbp                    /* keep the caller's callee-saved registers */
        .cfi_adjust_cfa_offset 8
        .cfi_rel_offset %rbp, 0
        pushq   %rbx                    /* (see above) */
        .cfi_adjust_cfa_offset 8
        .cfi_rel_offset %rbx, 0
        pushq   %r12                    /* (see above) */
        .cfi_adjust_cfa_offset 8
        .cfi_rel_offset %r12, 0
        pushq   %r13                    /* (see above) */
        .cfi_adjust_cfa_offset 8
        .cfi_rel_offset %r13, 0
        pushq   %r14                    /* (see above) */
        .cfi_adjust_cfa_offset 8
        .cfi_rel_offset %r14, 0
        pushq   %r15                    /* (see above) */
        .cfi_adjust_cfa_offset 8
        .cfi_rel_offset %r15, 0
        pushq   %rsi                    /* out[], needed after the call; 7 pushes: rsp 16-aligned for the call */
        .cfi_adjust_cfa_offset 8
        movq    %rdx, %rax              /* fn, out of the way of the argument registers */
        movq    %rdi, %r11              /* in[], likewise (r11 is a scratch register) */
        movq    %rcx, %rdi              /* fn's first argument */
        movq    %r8, %rsi               /* fn's second argument */
        movq    0(%r11), %rbx           /* the test values */
        movq    8(%r11), %rbp           /* (see above) */
        movq    16(%r11), %r12          /* (see above) */
        movq    24(%r11), %r13          /* (see above) */
        movq    32(%r11), %r14          /* (see above) */
        movq    40(%r11), %r15          /* (see above) */
        callq   *%rax                   /* fn(arg, value); result in rax */
        movq    (%rsp), %rcx            /* out[] back */
        movq    %rbx, 0(%rcx)           /* what fn left in the callee-saved registers */
        movq    %rbp, 8(%rcx)           /* (see above) */
        movq    %r12, 16(%rcx)          /* (see above) */
        movq    %r13, 24(%rcx)          /* (see above) */
        movq    %r14, 32(%rcx)          /* (see above) */
        movq    %r15, 40(%rcx)          /* (see above) */
        addq    $8, %rsp                /* drop the out[] slot */
        .cfi_adjust_cfa_offset -8
        popq    %r15                    /* the caller's own values back */
        .cfi_adjust_cfa_offset -8
        .cfi_restore %r15
        popq    %r14                    /* (see above) */
        .cfi_adjust_cfa_offset -8
        .cfi_restore %r14
        popq    %r13                    /* (see above) */
        .cfi_adjust_cfa_offset -8
        .cfi_restore %r13
        popq    %r12                    /* (see above) */
        .cfi_adjust_cfa_offset -8
        .cfi_restore %r12
        popq    %rbx                    /* (see above) */
        .cfi_adjust_cfa_offset -8
        .cfi_restore %rbx
        popq    %rbp                    /* (see above) */
        .cfi_adjust_cfa_offset -8
        .cfi_restore %rbp
        ret                             /* fn's result is still in rax */
        .cfi_endproc
        .size   asf_call_with_regs, .-asf_call_with_regs

/* ------------------------------------------------------------------------
 * uintptr_t asf_arch_aligned_access(void *p [rdi])
 * Probe: a 16-byte aligned SSE load and store of p's 16 bytes (unchanged).
 * movaps raises #GP -- SIGSEGV with si_code SI_KERNEL, not on a guard page --
 * when p % 16 != 0.  Returns p, so the caller cannot fold p's alignment at
 * compile time.
 * ------------------------------------------------------------------------ */
        .globl  asf_arch_aligned_access
        .hidden asf_arch_aligned_access
        .type   asf_arch_aligned_access, @function
        .p2align 4
asf_arch_aligned_access:
        .cfi_startproc
        movaps  (%rdi), %xmm0           /* aligned load: faults if p is misaligned */
        movaps  %xmm0, (%rdi)           /* aligned store of the same bytes */
        movq    %rdi, %rax              /* return p */
        ret                             /* done */
        .cfi_endproc
        .size   asf_arch_aligned_access, .-asf_arch_aligned_access

/* ------------------------------------------------------------------------
 * uintptr_t asf_arch_direction_flag(void)
 * Probe: rflags.DF (bit 10), 0 or 1.  A leaf (one push and its pop).
 * ------------------------------------------------------------------------ */
        .globl  asf_arch_direction_flag
        .hidden asf_arch_direction_flag
        .type   asf_arch_direction_flag, @function
        .p2align 4
asf_arch_direction_flag:
        .cfi_startproc
        pushfq                          /* rflags onto the stack: the only way to read DF */
        .cfi_adjust_cfa_offset 8
        popq    %rax                    /* and into rax */
        .cfi_adjust_cfa_offset -8
        shrq    $10, %rax               /* DF is bit 10 */
        andl    $1, %eax                /* just that bit (zero-extends rax) */
        ret                             /* return it */
        .cfi_endproc
        .size   asf_arch_direction_flag, .-asf_arch_direction_flag

/* The stack of a program that links this object need not be executable. */
        .section .note.GNU-stack, "", @progbits
