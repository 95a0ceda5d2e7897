/*
 * regs_helper.S -- test helper for fiber_abi_test.c (AArch64, AAPCS64).
 *
 *   uint64_t t_with_regs(const uint64_t in[19], uint64_t out[19],
 *                        uint64_t (*fn)(void *, uint64_t), void *arg, uint64_t value);
 *
 * Loads every callee-saved register -- x19-x28, x29, d8-d15, in that order
 * -- from in[], calls fn(arg, value), stores what those registers hold when
 * fn returns into out[] (same order), restores the caller's own values and
 * returns fn's result.  fn is where the test switches away and back: any
 * register the switch fails to preserve shows up in out[].  Unlike
 * asp_call_with_regs (eight registers, the size of a probe op's arrays),
 * this covers all nineteen.
 *
 * Frame (176 bytes, sp stays 16-aligned): the caller's x29/x30 at sp+0,
 * x19-x28 at sp+16..sp+88, d8-d15 at sp+96..sp+152, out[] at sp+160, one
 * unused word.  x29 holds a test value across the call, so the unwind info
 * is sp-based.
 */

        .text
        .globl  t_with_regs
        .type   t_with_regs, %function
        .p2align 4
t_with_regs:
        .cfi_startproc
        stp     x29, x30, [sp, #-176]!  /* the caller's fp and our return address */
        .cfi_def_cfa_offset 176
        .cfi_offset x29, -176
        .cfi_offset x30, -168
        stp     x19, x20, [sp, #16]     /* the caller's callee-saved registers, all of them */
        .cfi_offset x19, -160
        .cfi_offset x20, -152
        stp     x21, x22, [sp, #32]     /* (see above) */
        .cfi_offset x21, -144
        .cfi_offset x22, -136
        stp     x23, x24, [sp, #48]     /* (see above) */
        .cfi_offset x23, -128
        .cfi_offset x24, -120
        stp     x25, x26, [sp, #64]     /* (see above) */
        .cfi_offset x25, -112
        .cfi_offset x26, -104
        stp     x27, x28, [sp, #80]     /* (see above) */
        .cfi_offset x27, -96
        .cfi_offset x28, -88
        stp     d8, d9, [sp, #96]       /* (see above) */
        .cfi_offset d8, -80
        .cfi_offset d9, -72
        stp     d10, d11, [sp, #112]    /* (see above) */
        .cfi_offset d10, -64
        .cfi_offset d11, -56
        stp     d12, d13, [sp, #128]    /* (see above) */
        .cfi_offset d12, -48
        .cfi_offset d13, -40
        stp     d14, d15, [sp, #144]    /* (see above) */
        .cfi_offset d14, -32
        .cfi_offset d15, -24
        str     x1, [sp, #160]          /* out[], needed after the call */
        mov     x9, x2                  /* fn, out of the way of the argument registers */
        mov     x10, x0                 /* in[], likewise */
        mov     x0, x3                  /* fn's first argument: arg */
        mov     x1, x4                  /* fn's second argument: value */
        ldp     x19, x20, [x10, #0]     /* the test values: in[0], in[1] */
        ldp     x21, x22, [x10, #16]    /* in[2], in[3] */
        ldp     x23, x24, [x10, #32]    /* in[4], in[5] */
        ldp     x25, x26, [x10, #48]    /* in[6], in[7] */
        ldp     x27, x28, [x10, #64]    /* in[8], in[9] */
        ldr     x29, [x10, #80]         /* in[10]: the frame pointer too */
        ldp     d8, d9, [x10, #88]      /* in[11], in[12]: plain loads, any bit pattern survives */
        ldp     d10, d11, [x10, #104]   /* in[13], in[14] */
        ldp     d12, d13, [x10, #120]   /* in[15], in[16] */
        ldp     d14, d15, [x10, #136]   /* in[17], in[18] */
        blr     x9                      /* fn(arg, value); its result in x0 */
        ldr     x9, [sp, #160]          /* out[] back */
        stp     x19, x20, [x9, #0]      /* what the registers hold now */
        stp     x21, x22, [x9, #16]     /* (see above) */
        stp     x23, x24, [x9, #32]     /* (see above) */
        stp     x25, x26, [x9, #48]     /* (see above) */
        stp     x27, x28, [x9, #64]     /* (see above) */
        str     x29, [x9, #80]          /* (see above) */
        stp     d8, d9, [x9, #88]       /* (see above) */
        stp     d10, d11, [x9, #104]    /* (see above) */
        stp     d12, d13, [x9, #120]    /* (see above) */
        stp     d14, d15, [x9, #136]    /* (see above) */
        ldp     d8, d9, [sp, #96]       /* the caller's own values back */
        ldp     d10, d11, [sp, #112]    /* (see above) */
        ldp     d12, d13, [sp, #128]    /* (see above) */
        ldp     d14, d15, [sp, #144]    /* (see above) */
        ldp     x19, x20, [sp, #16]     /* (see above) */
        ldp     x21, x22, [sp, #32]     /* (see above) */
        ldp     x23, x24, [sp, #48]     /* (see above) */
        ldp     x25, x26, [sp, #64]     /* (see above) */
        ldp     x27, x28, [sp, #80]     /* (see above) */
        ldp     x29, x30, [sp], #176    /* the caller's fp, our return address; drop the frame */
        .cfi_def_cfa_offset 0
        .cfi_restore x29
        .cfi_restore x30
        ret                             /* fn's result is still in x0 */
        .cfi_endproc
        .size   t_with_regs, .-t_with_regs

        .section .note.GNU-stack, "", %progbits
