/*
 * x86_64.S -- the probes' machine code for x86-64, System V ABI (ELF): what
 * the probe interpreter (../probe.c) needs and C cannot say.
 *
 *   uint64_t  asp_fp_control_get(void);        MXCSR (bits 0-31), x87 CW (32-47)
 *   void      asp_fp_control_set(uint64_t);
 *   uintptr_t asp_call_with_regs(const uintptr_t in[6], uintptr_t out[6],
 *                 uintptr_t (*fn)(void *, uintptr_t), void *arg, uintptr_t value);
 *       Hold in[] in rbx, rbp, r12-r15 across a call of fn(arg, value) (which
 *       switches away and back) and report in out[] what they hold after it.
 *   uintptr_t asp_arch_aligned_access(void *p);  movaps: faults unless p % 16 == 0
 *   uintptr_t asp_arch_direction_flag(void);    rflags.DF
 *
 * asp_call_with_regs's frame, on the stack of whoever calls it (rsp + 8 is
 * 16-aligned at its first instruction; seven pushes leave rsp 16-aligned
 * for the call of fn):
 *
 *       R+56  | return address into the caller               |
 *       R+48  | the caller's rbp                             |
 *       R+40  | the caller's rbx                             |
 *       R+32  | the caller's r12                             |
 *       R+24  | the caller's r13                             |
 *       R+16  | the caller's r14                             |
 *       R+8   | the caller's r15                             |
 *       R     | out[] (needed after the call)                |  <- rsp == R during fn
 *
 * Comments: every instruction carries the reason it is there.  Where a run of
 * lines does the same thing to one register (or slot) after another, the
 * first line gives the reason and each line after it says "... <what it
 * moves>", which reads as the same reason for that register.
 */

        .text

/* ------------------------------------------------------------------------
 * uint64_t asp_fp_control_get(void): MXCSR in bits 0-31, x87 CW in bits 32-47.
 * A leaf: uses the red zone below rsp.
 * ------------------------------------------------------------------------ */
        .globl  asp_fp_control_get
        .hidden asp_fp_control_get
        .type   asp_fp_control_get, @function
        .p2align 4
asp_fp_control_get:
        .cfi_startproc
        stmxcsr -8(%rsp)                /* MXCSR into the red zone */
        fnstcw  -4(%rsp)                /* x87 control word next to it */
        movl    -8(%rsp), %eax          /* low half of the result: MXCSR (zero-extends rax) */
        movzwl  -4(%rsp), %edx          /* the control word, zero-extended */
        shlq    $32, %rdx               /* to bits 32-47 */
        orq     %rdx, %rax              /* combine */
        ret                             /* return it */
        .cfi_endproc
        .size   asp_fp_control_get, .-asp_fp_control_get

/* ------------------------------------------------------------------------
 * void asp_fp_control_set(uint64_t v [rdi]): the inverse.  probe.c rejects
 * values with reserved bits set before calling (ldmxcsr would fault).
 * ------------------------------------------------------------------------ */
        .globl  asp_fp_control_set
        .hidden asp_fp_control_set
        .type   asp_fp_control_set, @function
        .p2align 4
asp_fp_control_set:
        .cfi_startproc
        movl    %edi, -8(%rsp)          /* MXCSR into the red zone */
        shrq    $32, %rdi               /* the control word down to bits 0-15 */
        movw    %di, -4(%rsp)           /* into the red zone */
        ldmxcsr -8(%rsp)                /* load MXCSR */
        fldcw   -4(%rsp)                /* load the x87 control word */
        ret                             /* done */
        .cfi_endproc
        .size   asp_fp_control_set, .-asp_fp_control_set

/* ------------------------------------------------------------------------
 * uintptr_t asp_call_with_regs(const uintptr_t in[6] [rdi], uintptr_t out[6] [rsi],
 *         uintptr_t (*fn)(void *, uintptr_t) [rdx], void *arg [rcx], uintptr_t value [r8])
 * Probe: loads rbx, rbp, r12, r13, r14, r15 from in[], calls fn(arg, value),
 * stores what those registers hold after fn returns into out[] (same
 * order), restores the caller's own values and returns fn's result.  Across
 * the call rbp is not a frame pointer, so the unwind info below is
 * rsp-based.
 * ------------------------------------------------------------------------ */
        .globl  asp_call_with_regs
        .hidden asp_call_with_regs
        .type   asp_call_with_regs, @function
        .p2align 4
asp_call_with_regs:
        .cfi_startproc
        pushq   %rbp                    /* keep the caller's callee-saved registers: rbp */
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
        pushq   %rsi                    /* out[], needed after the call; 7 pushes: rsp 16-aligned for the call */
        .cfi_adjust_cfa_offset 8
        movq    %rdx, %rax              /* fn, out of the way of the argument registers */
        movq    %rdi, %r11              /* in[], likewise (r11 is a scratch register) */
        movq    %rcx, %rdi              /* fn's first argument */
        movq    %r8, %rsi               /* fn's second argument */
        movq    0(%r11), %rbx           /* the test values: in[0] into rbx */
        movq    8(%r11), %rbp           /* ... in[1] into rbp */
        movq    16(%r11), %r12          /* ... in[2] into r12 */
        movq    24(%r11), %r13          /* ... in[3] into r13 */
        movq    32(%r11), %r14          /* ... in[4] into r14 */
        movq    40(%r11), %r15          /* ... in[5] into r15 */
        callq   *%rax                   /* fn(arg, value); result in rax */
        movq    (%rsp), %rcx            /* out[] back */
        movq    %rbx, 0(%rcx)           /* what fn left in the callee-saved registers: rbx into out[0] */
        movq    %rbp, 8(%rcx)           /* ... rbp into out[1] */
        movq    %r12, 16(%rcx)          /* ... r12 into out[2] */
        movq    %r13, 24(%rcx)          /* ... r13 into out[3] */
        movq    %r14, 32(%rcx)          /* ... r14 into out[4] */
        movq    %r15, 40(%rcx)          /* ... r15 into out[5] */
        addq    $8, %rsp                /* drop the out[] slot */
        .cfi_adjust_cfa_offset -8
        popq    %r15                    /* the caller's own values back: r15 */
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
        popq    %rbp                    /* ... rbp */
        .cfi_adjust_cfa_offset -8
        .cfi_restore %rbp
        ret                             /* fn's result is still in rax */
        .cfi_endproc
        .size   asp_call_with_regs, .-asp_call_with_regs

/* ------------------------------------------------------------------------
 * uintptr_t asp_arch_aligned_access(void *p [rdi])
 * Probe: a 16-byte aligned SSE load and store of p's 16 bytes (unchanged).
 * movaps raises #GP -- SIGSEGV with si_code SI_KERNEL, not on a guard page --
 * when p % 16 != 0.  Returns p, so the caller cannot fold p's alignment at
 * compile time.
 * ------------------------------------------------------------------------ */
        .globl  asp_arch_aligned_access
        .hidden asp_arch_aligned_access
        .type   asp_arch_aligned_access, @function
        .p2align 4
asp_arch_aligned_access:
        .cfi_startproc
        movaps  (%rdi), %xmm0           /* aligned load: faults if p is misaligned */
        movaps  %xmm0, (%rdi)           /* aligned store of the same bytes */
        movq    %rdi, %rax              /* return p */
        ret                             /* done */
        .cfi_endproc
        .size   asp_arch_aligned_access, .-asp_arch_aligned_access

/* ------------------------------------------------------------------------
 * uintptr_t asp_arch_direction_flag(void)
 * Probe: rflags.DF (bit 10), 0 or 1.  A leaf (one push and its pop).
 * ------------------------------------------------------------------------ */
        .globl  asp_arch_direction_flag
        .hidden asp_arch_direction_flag
        .type   asp_arch_direction_flag, @function
        .p2align 4
asp_arch_direction_flag:
        .cfi_startproc
        pushfq                          /* rflags onto the stack: the only way to read DF */
        .cfi_adjust_cfa_offset 8
        popq    %rax                    /* and into rax */
        .cfi_adjust_cfa_offset -8
        shrq    $10, %rax               /* DF is bit 10 */
        andl    $1, %eax                /* just that bit (zero-extends rax) */
        ret                             /* return it */
        .cfi_endproc
        .size   asp_arch_direction_flag, .-asp_arch_direction_flag

/* The stack of a program that links this object need not be executable. */
        .section .note.GNU-stack, "", @progbits
