"""The fiber rules: stackful context switching.

``sysv-x86_64`` and ``aapcs64`` are the two ABI profiles; ``lifecycle`` rules
hold in both and in any stackful coroutine (greenlet included).  The signal
mask is *not* part of a fiber's context in either ABI profile (a switch does
no system call); ``ucontext`` profile: swapcontext(3) saves and restores it.
"""

from ..core import SHOULD, rule

AREA = "fiber"
X86 = "sysv-x86_64"
A64 = "aapcs64"
UCONTEXT = "ucontext"
ABIS = (X86, A64)
ALL = (X86, A64, UCONTEXT)

X86_ABI = "System V AMD64 psABI 1.0"
A64_ABI = "Procedure Call Standard for the Arm 64-bit Architecture (AAPCS64)"


def _r(id, statement, *, source, profiles=ALL, **kw):
    return rule(id, statement, source=source, profiles=profiles, area=AREA, **kw)


# ------------------------------------------------------------------ lifecycle

LIFE_STATES = _r(
    "FIB-LIFE-1",
    """A fiber is CREATED until first resumed, RUNNING while it runs,
    SUSPENDED after it yields, FINISHED after its entry function returns and
    FAILED after a fault (such as a stack overflow) ended it; FINISHED and
    FAILED are final.""",
    source="asyncspec; boost.context fiber, corosensei Coroutine (states)",
)
LIFE_VALUES = _r(
    "FIB-LIFE-2",
    """resume(value) passes value to the fiber (as its start argument, or as
    the result of its pending yield) and returns what the fiber next yields,
    or what its entry function returns.""",
    source="asyncspec; corosensei Coroutine::resume / Yielder::suspend",
)
LIFE_NESTED = _r(
    "FIB-LIFE-3",
    """A fiber may resume another; a yield returns control to whoever resumed
    the yielding fiber (its resumer), not to the main context.""",
    source="asyncspec; greenlet 'parent'; boost.context",
)
LIFE_ERRORS = _r(
    "FIB-LIFE-4",
    """Resuming a RUNNING fiber (itself or one of its resumers), a FINISHED or
    a FAILED one is an error reported to the caller, never undefined
    behaviour, and changes nothing.""",
    source="asyncspec (corosensei panics; greenlet raises)",
    features=["errors"],
)
LIFE_FREE = _r(
    "FIB-LIFE-5",
    """Freeing a fiber that is not RUNNING releases its stack; freeing it
    again, or freeing a RUNNING fiber, is an error.""",
    source="asyncspec; munmap(2)",
)

# --------------------------------------------------------------- stack layout

STACK_DOWN = _r(
    "FIB-STACK-1",
    """The stack grows down from its top; the top given by the caller is
    aligned down to 16 bytes and the usable range is recomputed after
    aligning, so it never overlaps the guard page.""",
    source=f"{X86_ABI} §3.2.2; {A64_ABI} §6.4.5.1",
    profiles=ABIS,
    features=["stack"],
)
STACK_MIN = _r(
    "FIB-STACK-2",
    """A stack whose usable range after alignment is smaller than the
    minimum is rejected with an error naming the sizes.""",
    source="asyncspec (MINSIGSTKSZ-style lower bound)",
    profiles=ABIS,
    features=["stack", "errors"],
)
STACK_GUARD = _r(
    "FIB-STACK-3",
    """A stack overflow into the guard page is detected: the fiber becomes
    FAILED, its resumer gets control back, and the process and the other
    fibers keep working.""",
    source="mmap(2) PROT_NONE; sigaltstack(2); asyncspec",
    profiles=ABIS,
    features=["guard"],
)
FP_CHAIN = _r(
    "FIB-STACK-4",
    """The entry function should start with rbp = 0 (x86-64) / x29 = 0
    (AArch64), so the frame-pointer chain ends at the fiber's base frame.""",
    source=f"{X86_ABI} §3.4.1 ('the user code should mark the deepest stack frame by setting the frame pointer to zero'); {A64_ABI} §6.4.6 (frame records end with 0)",
    profiles=ABIS,
    features=["stack"],
    tier=SHOULD,
    rationale="""The psABI words it as a recommendation: code runs correctly
    without it.  What breaks is every tool that walks frame pointers
    (profilers, debuggers, crash reporters), which follow a garbage chain
    off the fiber's stack.""",
)

# ------------------------------------------------------------------ x86-64 ABI

X86_ENTRY_ALIGN = _r(
    "FIB-X86-1",
    """At the first instruction of the fiber's entry function (rsp + 8) % 16
    == 0, exactly as after a call: a context entered with ret or jmp must
    place a fake return address.""",
    source=f"{X86_ABI} §3.2.2 ('the value (%rsp + 8) is always a multiple of 16 when control is transferred to the function entry point')",
    profiles=[X86],
    features=["abi"],
)
X86_CALLEE_SAVED = _r(
    "FIB-X86-2",
    """rbx, rbp and r12-r15 hold the same values after every switch as
    before it, in both directions.""",
    source=f"{X86_ABI} §3.2.1, Figure 3.4 (callee-saved registers)",
    profiles=[X86],
    features=["abi"],
)
X86_MXCSR_X87 = _r(
    "FIB-X86-3",
    """The MXCSR control bits and the x87 control word belong to the context:
    each fiber and the main context keep their own across switches.""",
    source=f"{X86_ABI} §3.2.1 ('The control bits of the MXCSR register are callee-saved ... the x87 control word is callee-saved')",
    profiles=[X86],
    features=["abi"],
)
X86_DF = _r(
    "FIB-X86-4",
    """The direction flag is clear at the fiber's entry and after every
    switch.""",
    source=f"{X86_ABI} §3.2.1 ('The direction flag DF ... must be clear ... on function entry and return')",
    profiles=[X86],
    features=["abi", "df"],
)

# ------------------------------------------------------------------ AArch64 ABI

A64_SP_ALIGN = _r(
    "FIB-A64-1",
    """sp % 16 == 0 at every switch and at the fiber's entry.""",
    source=f"{A64_ABI} §6.4.5.1 ('SP mod 16 = 0' at a public interface)",
    profiles=[A64],
    features=["abi"],
)
A64_CALLEE_SAVED = _r(
    "FIB-A64-2",
    """x19-x29, sp and the low 64 bits of v8-v15 (d8-d15) hold the same
    values after every switch as before it; lr is saved as the resume
    address.""",
    source=f"{A64_ABI} §6.1.1 (r19-r28 callee-saved, r29 FP), §6.1.2 (v8-v15 bottom 64 bits)",
    profiles=[A64],
    features=["abi"],
)

# ---------------------------------------------------------------- signal mask

SIGMASK = _r(
    "FIB-SIG-1",
    """The signal mask is not part of a fiber's context: a switch neither
    saves nor restores it (no system call on the switch path).""",
    source="asyncspec; contrast swapcontext(3), which saves and restores it",
    profiles=ABIS,
    features=["abi", "sigmask"],
)
SIGMASK_UCONTEXT = _r(
    "FIB-SIG-2",
    """swapcontext saves and restores the signal mask with the context.""",
    source="getcontext(3), swapcontext(3) ('uc_sigmask')",
    profiles=[UCONTEXT],
    features=["abi"],
)
