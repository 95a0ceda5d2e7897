/*
 * aarch64.S -- the probes' machine code for AArch64, AAPCS64 (ELF): the same
 * functions as x86_64.S (see the head of that file), for ../probe.c.
 *
 *   uint64_t  asp_fp_control_get(void);        FPCR
 *   void      asp_fp_control_set(uint64_t);    (probe.c rejects RES0 bits)
 *   uintptr_t asp_call_with_regs(const uintptr_t in[8], uintptr_t out[8],
 *                 uintptr_t (*fn)(void *, uintptr_t), void *arg, uintptr_t value);
 *   uintptr_t asp_arch_aligned_access(void *p);  ldxp: faults unless p % 16 == 0
 *
 * (There is no direction flag on AArch64: probe.c refuses the DF op.)
 *
 * Comments: every instruction carries the reason it is there.  Where a run of
 * lines does the same thing to one register pair (or slot) after another,
 * the first line gives the reason and each line after it says "... <what it
 * moves>", which reads as the same reason for those registers.
 */

        .text

/* ------------------------------------------------------------------------
 * uint64_t asp_fp_control_get(void): FPCR (64 bits; bits 27-63 are RES0).
 * ------------------------------------------------------------------------ */
        .globl  asp_fp_control_get
        .hidden asp_fp_control_get
        .type   asp_fp_control_get, %function
        .p2align 4
asp_fp_control_get:
        .cfi_startproc
        mrs     x0, fpcr                /* read FPCR */
        ret                             /* return it */
        .cfi_endproc
        .size   asp_fp_control_get, .-asp_fp_control_get

/* ------------------------------------------------------------------------
 * void asp_fp_control_set(uint64_t v [x0]): the inverse.  probe.c rejects
 * values with RES0 bits set before calling.  Fields the CPU does not
 * implement (trap enables, mostly) read back as 0.
 * ------------------------------------------------------------------------ */
        .globl  asp_fp_control_set
        .hidden asp_fp_control_set
        .type   asp_fp_control_set, %function
        .p2align 4
asp_fp_control_set:
        .cfi_startproc
        msr     fpcr, x0                /* write FPCR */
        ret                             /* done */
        .cfi_endproc
        .size   asp_fp_control_set, .-asp_fp_control_set

/* ------------------------------------------------------------------------
 * uintptr_t asp_call_with_regs(const uintptr_t in[8] [x0], uintptr_t out[8] [x1],
 *         uintptr_t (*fn)(void *, uintptr_t) [x2], void *arg [x3], uintptr_t value [x4])
 * Probe: loads x19, x20, x21, x27, x28, x29, d8, d15 (that order; both ends
 * of each callee-saved range, and the frame pointer) from in[], calls
 * fn(arg, value), stores what those registers hold after fn returns into
 * out[] (same order), restores the caller's own values and returns fn's
 * result.  Eight is all that fits a probe op's input/output arrays.  Across
 * the call x29 is not a frame pointer, so the unwind info below is
 * sp-based.
 *
 *   frame (80 bytes):  sp+72 d15 | sp+64 d8 | sp+56 out | sp+48 x28 |
 *                      sp+40 x27 | sp+32 x21 | sp+24 x20 | sp+16 x19 |
 *                      sp+8 x30  | sp+0 x29
 * ------------------------------------------------------------------------ */
        .globl  asp_call_with_regs
        .hidden asp_call_with_regs
        .type   asp_call_with_regs, %function
        .p2align 4
asp_call_with_regs:
        .cfi_startproc
        stp     x29, x30, [sp, #-80]!   /* keep the caller's fp and our return address; 80 keeps sp 16-aligned */
        .cfi_def_cfa_offset 80
        .cfi_offset x29, -80
        .cfi_offset x30, -72
        stp     x19, x20, [sp, #16]     /* keep the caller's callee-saved registers that we load */
        .cfi_offset x19, -64
        .cfi_offset x20, -56
        stp     x21, x27, [sp, #32]     /* ... x21, x27 */
        .cfi_offset x21, -48
        .cfi_offset x27, -40
        stp     x28, x1, [sp, #48]      /* x28, and out[], needed after the call */
        .cfi_offset x28, -32
        stp     d8, d15, [sp, #64]      /* ... d8, d15 */
        .cfi_offset d8, -16
        .cfi_offset d15, -8
        mov     x9, x2                  /* fn, out of the way of the argument registers */
        mov     x10, x0                 /* in[], likewise (x10 is a scratch register) */
        mov     x0, x3                  /* fn's first argument */
        mov     x1, x4                  /* fn's second argument */
        ldp     x19, x20, [x10, #0]     /* the test values: in[0], in[1] */
        ldp     x21, x27, [x10, #16]    /* in[2], in[3] */
        ldp     x28, x29, [x10, #32]    /* in[4], in[5] */
        ldp     d8, d15, [x10, #48]     /* in[6], in[7] */
        blr     x9                      /* fn(arg, value); result in x0 */
        ldr     x9, [sp, #56]           /* out[] back */
        stp     x19, x20, [x9, #0]      /* what fn left in the callee-saved registers: x19, x20 into out[0], out[1] */
        stp     x21, x27, [x9, #16]     /* ... x21, x27 into out[2], out[3] */
        stp     x28, x29, [x9, #32]     /* ... x28, x29 into out[4], out[5] */
        stp     d8, d15, [x9, #48]      /* ... d8, d15 into out[6], out[7] */
        ldp     d8, d15, [sp, #64]      /* the caller's own values back: d8, d15 */
        .cfi_restore d8
        .cfi_restore d15
        ldr     x28, [sp, #48]          /* ... x28 (the out[] slot next to it is dropped) */
        .cfi_restore x28
        ldp     x21, x27, [sp, #32]     /* ... x21, x27 */
        .cfi_restore x21
        .cfi_restore x27
        ldp     x19, x20, [sp, #16]     /* ... x19, x20 */
        .cfi_restore x19
        .cfi_restore x20
        ldp     x29, x30, [sp], #80     /* the caller's fp, our return address; drop the frame */
        .cfi_def_cfa_offset 0
        .cfi_restore x29
        .cfi_restore x30
        ret                             /* fn's result is still in x0 */
        .cfi_endproc
        .size   asp_call_with_regs, .-asp_call_with_regs

/* ------------------------------------------------------------------------
 * uintptr_t asp_arch_aligned_access(void *p [x0])
 * Probe: a 16-byte load-exclusive pair of p's 16 bytes (left unchanged).
 * Ordinary AArch64 loads and stores, vector ones included, do not check
 * alignment under Linux; exclusive accesses always do, and ldxp of two
 * X registers needs p % 16 == 0.  A misaligned p raises an alignment fault
 * -- SIGBUS with si_code BUS_ADRALN, never a guard-page SIGSEGV.  Returns
 * p, so the caller cannot fold p's alignment at compile time.
 * ------------------------------------------------------------------------ */
        .globl  asp_arch_aligned_access
        .hidden asp_arch_aligned_access
        .type   asp_arch_aligned_access, %function
        .p2align 4
asp_arch_aligned_access:
        .cfi_startproc
        ldxp    x9, x10, [x0]           /* aligned exclusive load: faults if p is misaligned */
        clrex                           /* no store follows: release the exclusive monitor */
        ret                             /* p is still in x0: return it */
        .cfi_endproc
        .size   asp_arch_aligned_access, .-asp_arch_aligned_access

/* The stack of a program that links this object need not be executable. */
        .section .note.GNU-stack, "", %progbits
