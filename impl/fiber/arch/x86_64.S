/*
 * x86_64.S -- context switch and fiber entry for x86-64, System V ABI (ELF).
 *
 * The C side (../fiber.c) is architecture-neutral; it calls the functions
 * below, which another architecture provides in its own file with the same
 * names and meanings (aarch64.S):
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
 * Comments: every instruction carries the reason it is there.  Where a run of
 * lines does the same thing to one register (or slot) after another, the
 * first line gives the reason and each line after it says "... <what it
 * moves>", which reads as the same reason for that register.
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
        pushq   %rbp                    /* callee-saved registers, onto this context's stack: rbp (the caller's frame pointer) */
        .cfi_adjust_cfa_offset 8
        .cfi_rel_offset %rbp, 0
        pushq   %rbx                    /* ... rbx */
        .cfi_adjust_cfa_offset 8
        .cfi_rel_offset %rbx, 0
        pushq   %r12                    /* ... r12 */
        .cfi_adjust_cfa_offset 8
        .cfi_rel_offset %r12, 0
        pushq   %r13                    /* ... r13 */
        .cfi_adjust_cfa_offset 8
        .cfi_rel_offset %r13, 0
        pushq   %r14                    /* ... r14 */
        .cfi_adjust_cfa_offset 8
        .cfi_rel_offset %r14, 0
        pushq   %r15                    /* ... r15 */
        .cfi_adjust_cfa_offset 8
        .cfi_rel_offset %r15, 0
        subq    $8, %rsp                /* one slot for MXCSR + x87 CW; rsp is now 16-aligned */
        .cfi_adjust_cfa_offset 8
        stmxcsr (%rsp)                  /* MXCSR's control bits are callee-saved (rounding, FTZ, DAZ, masks) */
        fnstcw  4(%rsp)                 /* so is the x87 control word (precision, rounding, masks) */
        movq    %rsp, (%rdi)            /* publish this context's sp: it is now complete on its stack */
        movq    %rsi, %rsp              /* switch stacks: from here on we run the other context */
        /* The other context has the same frame shape (see the diagrams), so
         * the unwind rules above describe it too. */
        ldmxcsr (%rsp)                  /* its MXCSR */
        fldcw   4(%rsp)                 /* its x87 control word */
        addq    $8, %rsp                /* drop the MXCSR/CW slot */
        .cfi_adjust_cfa_offset -8
        popq    %r15                    /* its callee-saved registers, in reverse push order: r15 */
        .cfi_adjust_cfa_offset -8
        .cfi_restore %r15
        popq    %r14                    /* ... r14 */
        .cfi_adjust_cfa_offset -8
        .cfi_restore %r14
        popq    %r13                    /* ... r13 */
        .cfi_adjust_cfa_offset -8
        .cfi_restore %r13
        popq    %r12                    /* ... r12 */
        .cfi_adjust_cfa_offset -8
        .cfi_restore %r12
        popq    %rbx                    /* ... rbx */
        .cfi_adjust_cfa_offset -8
        .cfi_restore %rbx
        popq    %rbp                    /* ... rbp, its frame pointer (0 for a new fiber) */
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
        movq    %rbx, %rdi              /* first argument: arg */
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
        leaq    asf_fiber_trampoline_ret(%rip), %rcx  /* the fake return address */
        movq    %rcx, -8(%rax)          /* T-8: seen by the entry function as its return address */
        leaq    asf_fiber_trampoline(%rip), %rcx      /* where asf_switch's `ret` goes */
        movq    %rcx, -16(%rax)         /* T-16 */
        movq    $0, -24(%rax)           /* T-24: rbp = 0, the end of the frame-pointer chain */
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

/* The stack of a program that links this object need not be executable. */
        .section .note.GNU-stack, "", @progbits
