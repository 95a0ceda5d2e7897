/*
 * aarch64.S -- context switch and fiber entry for AArch64, AAPCS64 (ELF).
 *
 * The same architecture interface as x86_64.S (see the head of that file
 * for the full contracts); ../fiber.c calls:
 *
 *   uintptr_t asf_switch(void **save_sp, void *load_sp, uintptr_t value);
 *       Save the running context on its own stack, store its stack pointer in
 *       *save_sp, continue the context whose stack pointer is load_sp, and make
 *       the asf_switch call (or the first entry) over there return `value`.
 *
 *   void *asf_init_stack(void *top, void (*entry)(void *, uintptr_t), void *arg);
 *       Build, below `top`, the frame of a context that was never run, and
 *       return its stack pointer.  The first asf_switch to it calls
 *       entry(arg, value) with sp == top (aligned down to 16), x29 == 0 and
 *       lr == the exit address.
 *
 *   void asf_fiber_entry(struct asf_fiber *f, uintptr_t value);
 *       The entry function of every fiber: records sp and x29 as it finds
 *       them in f's first two words, then continues in the C function
 *       asf_fiber_main(f, value) with the same stack and the same lr.
 *
 *   uintptr_t asf_fiber_exit_address(void);   the value of lr at entry
 *
 * What a context is.  AAPCS64 makes x19-x28 callee-saved, x29 the frame
 * pointer (also preserved), and of the SIMD&FP registers only the low 64
 * bits of v8-v15, i.e. d8-d15; sp is the context itself, and lr (x30) is
 * where the context continues, so it is saved as the resume address.
 * Everything else (x0-x18, x16/x17 as veneer scratch, the upper halves of
 * v8-v15, v0-v7, v16-v31, SVE and SME state) is caller-saved: asf_switch is
 * an ordinary call to its caller, so nothing else needs saving.  x18 (the
 * platform register) is not touched: Linux gives it no meaning, and a
 * platform that does keeps it per thread, not per context.  Of the
 * floating-point state, FPCR's mode fields (rounding mode, flush-to-zero,
 * default NaN, alternative half precision) are preserved across calls, so
 * they belong to the context and the switch saves and loads the whole FPCR;
 * FPSR holds only sticky status flags (and saturation), which a call may
 * change, so it is not switched.  sp % 16 == 0 at every public interface;
 * every frame below is a multiple of 16 bytes, so that holds at every
 * instruction here, as the hardware's SP alignment check (when enabled)
 * demands for any sp-based access.
 *
 * Stack layouts (addresses grow upwards on the page; "sp" is the value that
 * asf_switch stores in *save_sp and later loads into sp):
 *
 *   A suspended context: the caller of asf_switch had sp % 16 == 0, and the
 *   frame is 176 bytes, so S % 16 == 0.  S is also a valid AAPCS64 frame
 *   record (saved x29, then the return address), though x29 does not point
 *   at it.
 *
 *       S+176 | (the caller's frame)                         |
 *       S+168 | unused (pads the frame to a multiple of 16)  |
 *       S+160 | FPCR                                         |
 *       S+152 | d15                                          |
 *       S+144 | d14                                          |
 *       S+136 | d13                                          |
 *       S+128 | d12                                          |
 *       S+120 | d11                                          |
 *       S+112 | d10                                          |
 *       S+104 | d9                                           |
 *       S+96  | d8                                           |
 *       S+88  | x28                                          |
 *       S+80  | x27                                          |
 *       S+72  | x26                                          |
 *       S+64  | x25                                          |
 *       S+56  | x24                                          |
 *       S+48  | x23                                          |
 *       S+40  | x22                                          |
 *       S+32  | x21                                          |
 *       S+24  | x20                                          |
 *       S+16  | x19                                          |
 *       S+8   | x30 (lr): the resume address in the caller   |
 *       S     | x29 (fp) of the caller                       |  <- sp == S
 *
 *   A new fiber, built by asf_init_stack; T is the stack top, 16-aligned, and
 *   nothing at or above T is touched:
 *
 *       T-8   | 0 (unused)                                   |
 *       T-16  | FPCR of the creating context                 |
 *       T-24  | d15 = 0 ... (d8-d15 all 0)                   |
 *       T-80  | d8 = 0                                       |
 *       T-88  | x28 = 0 ... (x21-x28 all 0)                  |
 *       T-144 | x21 = 0                                      |
 *       T-152 | x20 = entry     (the trampoline calls it)    |
 *       T-160 | x19 = arg       (the trampoline passes it)   |
 *       T-168 | x30 = &asf_fiber_trampoline                  |  asf_switch's `ret` target
 *       T-176 | x29 = 0         (ends the frame-record chain)|  <- sp == T-176
 *
 *   The same shape as a suspended context, so asf_switch needs no special
 *   case.  Its `ret` goes to the trampoline with sp == T (the frame popped),
 *   x29 == 0, x19 = arg, x20 = entry and x0 = the first resume's value.  The
 *   trampoline calls entry(arg, value) with `blr`, so the entry function
 *   starts with sp == T, T % 16 == 0, x29 == 0 -- the frame record it pushes
 *   ends the chain -- and lr == the address just after the `blr`, which is
 *   asf_fiber_exit_address(): inside the trampoline, whose unwind info says
 *   "no caller" (unwinders look up lr - 1 and stop there), and at a `brk` in
 *   case the entry function ever returns (it must not): SIGTRAP.
 *
 * Signal handlers: fiber.c's SIGSEGV handler (running on the alternate
 * signal stack) leaves a fiber that hit its guard page by calling asf_switch
 * to the fiber's resumer, saving into a dead slot; see fiber.c.  Nothing
 * here depends on AArch64 specifics of signal delivery: the resumer's frame
 * carries everything the ABI lets it rely on, FPCR included.
 *
 * No BTI, no PAC: the switch enters the trampoline with `ret` and the entry
 * function with `blr` from a register, neither of which carries a landing
 * pad, and lr values are stored unsigned.  This object carries no
 * .note.gnu.property, so a program or library that links it is not marked
 * BTI-enabled.  (Code compiled with pac-ret still works across a switch: it
 * signs lr with sp as the modifier, and a context always resumes with the
 * same sp it was suspended with.)
 *
 * Comments: every instruction carries the reason it is there.  Where a run of
 * lines does the same thing to one register pair (or slot) after another,
 * the first line gives the reason and each line after it says "... <what it
 * moves>", which reads as the same reason for those registers.
 */

        .text

/* ------------------------------------------------------------------------
 * uintptr_t asf_switch(void **save_sp [x0], void *load_sp [x1], uintptr_t value [x2])
 * ------------------------------------------------------------------------ */
        .globl  asf_switch
        .hidden asf_switch
        .type   asf_switch, %function
        .p2align 4
asf_switch:
        .cfi_startproc
        stp     x29, x30, [sp, #-176]!  /* open the 176-byte frame; caller's fp and the resume address at S */
        .cfi_def_cfa_offset 176
        .cfi_offset x29, -176
        .cfi_offset x30, -168
        stp     x19, x20, [sp, #16]     /* callee-saved: x19, x20 */
        .cfi_offset x19, -160
        .cfi_offset x20, -152
        stp     x21, x22, [sp, #32]     /* ... x21, x22 */
        .cfi_offset x21, -144
        .cfi_offset x22, -136
        stp     x23, x24, [sp, #48]     /* ... x23, x24 */
        .cfi_offset x23, -128
        .cfi_offset x24, -120
        stp     x25, x26, [sp, #64]     /* ... x25, x26 */
        .cfi_offset x25, -112
        .cfi_offset x26, -104
        stp     x27, x28, [sp, #80]     /* ... x27, x28 */
        .cfi_offset x27, -96
        .cfi_offset x28, -88
        stp     d8, d9, [sp, #96]       /* callee-saved: the low 64 bits of v8-v15 */
        .cfi_offset d8, -80
        .cfi_offset d9, -72
        stp     d10, d11, [sp, #112]    /* ... d10, d11 */
        .cfi_offset d10, -64
        .cfi_offset d11, -56
        stp     d12, d13, [sp, #128]    /* ... d12, d13 */
        .cfi_offset d12, -48
        .cfi_offset d13, -40
        stp     d14, d15, [sp, #144]    /* ... d14, d15 */
        .cfi_offset d14, -32
        .cfi_offset d15, -24
        mrs     x9, fpcr                /* FPCR's mode fields are preserved across calls: part of the context */
        str     x9, [sp, #160]          /* (kept in x9 too, for the comparison below) */
        mov     x10, sp                 /* sp cannot be the source of a plain str */
        str     x10, [x0]               /* publish this context's sp: it is now complete on its stack */
        mov     sp, x1                  /* switch stacks: from here on we run the other context */
        /* The other context has the same frame shape (see the diagrams), so
         * the unwind rules above describe it too. */
        ldr     x10, [sp, #160]         /* its FPCR */
        cmp     x10, x9                 /* the same as ours (the usual case)? */
        b.eq    1f                      /* then skip the write: an FPCR write can stall the pipeline */
        msr     fpcr, x10               /* load its FPCR */
1:      ldp     d8, d9, [sp, #96]       /* its d8-d15 */
        .cfi_restore d8
        .cfi_restore d9
        ldp     d10, d11, [sp, #112]    /* ... d10, d11 */
        .cfi_restore d10
        .cfi_restore d11
        ldp     d12, d13, [sp, #128]    /* ... d12, d13 */
        .cfi_restore d12
        .cfi_restore d13
        ldp     d14, d15, [sp, #144]    /* ... d14, d15 */
        .cfi_restore d14
        .cfi_restore d15
        ldp     x19, x20, [sp, #16]     /* its callee-saved registers (x19 = arg, x20 = entry for a new fiber) */
        .cfi_restore x19
        .cfi_restore x20
        ldp     x21, x22, [sp, #32]     /* ... x21, x22 */
        .cfi_restore x21
        .cfi_restore x22
        ldp     x23, x24, [sp, #48]     /* ... x23, x24 */
        .cfi_restore x23
        .cfi_restore x24
        ldp     x25, x26, [sp, #64]     /* ... x25, x26 */
        .cfi_restore x25
        .cfi_restore x26
        ldp     x27, x28, [sp, #80]     /* ... x27, x28 */
        .cfi_restore x27
        .cfi_restore x28
        ldp     x29, x30, [sp], #176    /* its fp (0 for a new fiber) and resume address; drop the frame */
        .cfi_def_cfa_offset 0
        .cfi_restore x29
        .cfi_restore x30
        mov     x0, x2                  /* the value handed over is asf_switch's result over there */
        ret                             /* into its asf_switch caller, or the trampoline for a new fiber */
        .cfi_endproc
        .size   asf_switch, .-asf_switch

/* ------------------------------------------------------------------------
 * The first code a new fiber runs, reached by asf_switch's `ret` with
 * sp == T, x29 == 0, x19 = arg, x20 = entry and x0 = the value of the first
 * resume.
 * ------------------------------------------------------------------------ */
        .globl  asf_fiber_trampoline
        .hidden asf_fiber_trampoline
        .type   asf_fiber_trampoline, %function
        .p2align 4
asf_fiber_trampoline:
        .cfi_startproc
        .cfi_undefined x30              /* outermost frame: unwinders and debuggers stop here */
        mov     x1, x0                  /* second argument: the value passed to the first resume */
        mov     x0, x19                 /* first argument: arg */
        blr     x20                     /* entry(arg, value); lr = asf_fiber_trampoline_ret, sp and x29 unchanged */
        /* The return address is the next instruction; an unwinder's lookup
         * at (lr - 1) lands on the `blr`, inside this function, and finds
         * the x30-undefined rule above. */
asf_fiber_trampoline_ret:
        brk     #0xa5f                  /* the entry function returned: a bug; trap (SIGTRAP) */
        .cfi_endproc
        .size   asf_fiber_trampoline, .-asf_fiber_trampoline

/* ------------------------------------------------------------------------
 * uintptr_t asf_fiber_exit_address(void): lr at the entry function's start.
 * ------------------------------------------------------------------------ */
        .globl  asf_fiber_exit_address
        .hidden asf_fiber_exit_address
        .type   asf_fiber_exit_address, %function
        .p2align 4
asf_fiber_exit_address:
        .cfi_startproc
        adr     x0, asf_fiber_trampoline_ret  /* pc-relative, so position-independent */
        ret                             /* return it */
        .cfi_endproc
        .size   asf_fiber_exit_address, .-asf_fiber_exit_address

/* ------------------------------------------------------------------------
 * void *asf_init_stack(void *top [x0], void (*entry)(void *, uintptr_t) [x1], void *arg [x2])
 * Writes the "new fiber" frame of the diagram above below top and returns
 * its sp.  A leaf: it writes through x0 and never touches its own stack.
 * ------------------------------------------------------------------------ */
        .globl  asf_init_stack
        .hidden asf_init_stack
        .type   asf_init_stack, %function
        .p2align 4
asf_init_stack:
        .cfi_startproc
        and     x9, x0, #-16            /* T: 16-aligned (fiber.c already aligns it; the layout depends on it) */
        sub     x0, x9, #176            /* the new context's sp, T-176: also the result */
        adr     x10, asf_fiber_trampoline  /* where asf_switch's `ret` goes */
        stp     xzr, x10, [x0, #0]      /* T-176: x29 = 0, the end of the frame-record chain; T-168: x30 */
        stp     x2, x1, [x0, #16]       /* T-160: x19 = arg; T-152: x20 = entry */
        stp     xzr, xzr, [x0, #32]     /* x21, x22 = 0 (defined contents, for debuggers) */
        stp     xzr, xzr, [x0, #48]     /* x23, x24 = 0 */
        stp     xzr, xzr, [x0, #64]     /* x25, x26 = 0 */
        stp     xzr, xzr, [x0, #80]     /* x27, x28 = 0 */
        stp     xzr, xzr, [x0, #96]     /* d8, d9 = 0 (+0.0) */
        stp     xzr, xzr, [x0, #112]    /* d10, d11 = 0 */
        stp     xzr, xzr, [x0, #128]    /* d12, d13 = 0 */
        stp     xzr, xzr, [x0, #144]    /* d14, d15 = 0 */
        mrs     x11, fpcr               /* a new fiber inherits the creator's FPCR (as a new thread does) */
        stp     x11, xzr, [x0, #160]    /* T-16: FPCR; T-8: the unused word, cleared */
        ret                             /* return T-176 */
        .cfi_endproc
        .size   asf_init_stack, .-asf_init_stack

/* ------------------------------------------------------------------------
 * void asf_fiber_entry(struct asf_fiber *f [x0], uintptr_t value [x1])
 * The entry function of every fiber (placed in x20 by fiber.c).  Its first
 * two instructions record what the entry function sees: sp (which must be
 * 16-aligned) and x29 (which must be 0).  fiber.c asserts that entry_sp and
 * entry_fp are the first two words of struct asf_fiber.
 * ------------------------------------------------------------------------ */
        .globl  asf_fiber_entry
        .hidden asf_fiber_entry
        .type   asf_fiber_entry, %function
        .p2align 4
asf_fiber_entry:
        .cfi_startproc
        mov     x9, sp                  /* sp at the entry function's first instruction */
        stp     x9, x29, [x0]           /* f->entry_sp = sp, f->entry_fp = x29 */
        b       asf_fiber_main          /* tail call: same sp, same lr (the exit address), same x0/x1 */
        .cfi_endproc
        .size   asf_fiber_entry, .-asf_fiber_entry

/* The stack of a program that links this object need not be executable. */
        .section .note.GNU-stack, "", %progbits
