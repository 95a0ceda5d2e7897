"""rustc as an oracle for Rust's pinning contract: traces in, observations out.

Each trace (a list of pin actions, see spec/pin/machine.py) becomes one
Rust function: one statement per step, each on its own line after a marker
that prints ``@ trace step``.  Its scopes are blocks: an ``end`` step closes
one (so the drops at its closing brace print as that step) and the next
step opens another.  At the end of each scope every pin binding still alive
is used once more (``let _ = &p0;``), so a pin's borrow lasts until it is
consumed or its scope ends, and whether a step compiles depends only on
the steps before it.  The prelude (``prelude.rs`` beside this file)
defines the value types and what they print; see there for the output
lines.

Which statements compile is decided without the spec's predictions, one
step at a time, every trace of a batch at once: round r checks one crate
(``--emit=metadata``, JSON diagnostics) holding, per trace, its steps up to
r without the ones rejected before, and the errors whose primary span is on
step r's line are that step's codes.  Asking each prefix on its own is what
makes the answer the prefix's: in one program of the whole trace, a later
statement changes what is reported earlier (a use of a pin after it was
moved still extends the borrow it holds, so an earlier move of the borrowed
value fails too), and a type error anywhere hides every borrow-checker
error of the function.  Then one binary is built of every trace of the
batch (without the rejected statements; debug, no optimisation, so a moved
value really changes address) and run once, and its output is split per
trace and step.

    observe([[("create", {"v": 0, "kind": 2}), ("pin_new", {"v": 0})]])
    # [[((), None, ()), (("E0277",), None, ())]]

Each observation is the spec's ``(errors, result, drops)``.  A program that
crashes observes ``("crashed", why)`` at the step it was in (and the steps
after); the other traces of its batch are run again from the next one.
Everything happens in a temporary directory that is removed afterwards;
rustc and the binary run under timeouts and are killed (with their process
group) when they overstay.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
from typing import Any, Mapping, Sequence

from asyncspec.conformance.process import procs
from asyncspec.conformance.process.procs import exit_status, no_core_dumps

PRELUDE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "prelude.rs")

#: Traces per crate: one crate per batch.
BATCH = 200
#: Seconds one rustc invocation may take, and one run of a built program.
COMPILE_TIMEOUT = 300.0
RUN_TIMEOUT = 60.0
RUSTC_FLAGS = ("--edition", "2021", "--cap-lints", "allow", "-C", "opt-level=0", "-C", "debuginfo=0")

# The kinds of spec/pin/machine.py (UNPIN, PINNED).
_TYPES = {1: "U", 2: "N"}

Step = tuple[str, Mapping[str, Any]]


class RustcPinError(Exception):
    """The oracle could not answer (rustc or the program failed in a way no step explains)."""


class RustcUnavailable(RustcPinError):
    """There is no usable rustc here."""


# ------------------------------------------------------------------ rustc


def rustc() -> tuple[str, str]:
    """rustc's path and ``rustc -V`` line, or RustcUnavailable saying why not."""
    try:
        return procs.rustc()
    except procs.NoRustc as e:
        raise RustcUnavailable(str(e)) from None


def available() -> str | None:
    try:
        rustc()
    except RustcUnavailable as e:
        return str(e)
    if not os.path.exists(PRELUDE):
        return f"the prelude {PRELUDE} is missing"
    return None




class _Overstayed(Exception):
    """A process did not finish within its timeout (it was killed); what it printed until then."""

    def __init__(self, out: bytes, err: bytes):
        self.out, self.err = out, err


def _run(argv: list[str], timeout: float, cwd: str | None = None) -> tuple[int, bytes, bytes]:
    """Run ``argv`` in its own process group; kill the group if it overstays (_Overstayed)."""
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        preexec_fn=no_core_dumps,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except BaseException as e:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        out, err = proc.communicate()
        if isinstance(e, subprocess.TimeoutExpired):
            raise _Overstayed(out, err) from None
        raise
    return proc.returncode, out, err


# ------------------------------------------------------------- statements


def statement(action: str, args: Mapping[str, Any]) -> str:
    """The Rust statement(s) of one step, on one line ("" for ``end``)."""
    v = args.get("v")
    x, p = f"x{v}", f"p{v}"
    init = f" {p}.as_mut().init();"
    if action == "create":
        return f"let mut {x} = {_TYPES[args['kind']]}::new({v});"
    if action == "move":
        return f"let mut {x} = {x};"
    if action == "box_pin":
        return f"let mut {p} = Box::pin({x});" + init
    if action == "pin_slot":
        return f"let mut {p} = pin!({x});" + init
    if action == "pin_new":
        return f"let mut {p} = Pin::new(&mut {x});" + init
    if action == "get_mut":
        return f"{p}.as_mut().get_mut().touch();"
    if action == "into_inner":
        return f"let mut {x} = *Pin::into_inner({p});"
    if action == "poll":
        return f"{p}.as_mut().poll();"
    if action == "check":
        return f"{x}.check();"
    if action == "set":
        return f"{p}.set(Fresh::fresh({v}));" + init
    if action == "replace":
        return f"let _ = mem::replace(&mut *{p}, Fresh::fresh({v}));"
    if action == "unsafe_move":
        return f"let mut {x} = unsafe {{ ptr::read({p}.as_mut().get_unchecked_mut()) }}; mem::forget({p});"
    if action == "project":
        if args["field"] == "pinned":
            return f"{p}.as_mut().inner().check();"
        return f"let _ = mem::replace({p}.as_mut().data(), 7);"
    if action == "drop_value":
        return f"drop({x});"
    if action == "forget_value":
        return f"mem::forget({x});"
    if action == "drop_pin":
        return f"drop({p});"
    if action == "forget_pin":
        return f"mem::forget({p});"
    if action == "end":
        return ""
    raise ValueError(f"the rustc pin target has no statement for {action!r}")


# What a statement does to the pin bindings (for the keep-alive uses).
_DECLARES_PIN = {"box_pin", "pin_slot", "pin_new"}
_CONSUMES_PIN = {"into_inner", "unsafe_move", "drop_pin", "forget_pin"}


def _live_pins(steps: Sequence[tuple[int, Step]], left_out: set[int]) -> list[str]:
    live: dict[str, None] = {}
    for i, (action, args) in steps:
        if i in left_out:
            continue
        name = f"p{args.get('v')}"
        if action in _DECLARES_PIN:
            live[name] = None
        elif action in _CONSUMES_PIN:
            live.pop(name, None)
    return list(live)


def _function(t: int, trace: Sequence[Step], left_out: set[int], lines: list[str], where: dict[int, tuple[int, int]]):
    """Append trace ``t`` as function ``t{t}`` to ``lines``; ``where`` maps line numbers (1-based) to (t, step).

    Each scope is a block; an ``end`` step closes one (its marker is the
    block's last statement, so the drops at the closing brace print as
    that step) and the next step opens another.
    """
    lines.append(f"fn t{t}() {{")
    scope: list[tuple[int, Step]] = []

    def close(marker: str) -> None:
        for name in _live_pins(scope, left_out):
            lines.append(f"        let _ = &{name};")
        lines.append(f'        mark({t}, "{marker}");')
        lines.append("    }")
        # Nothing of the closed scope is reachable any more (a leaked box
        # stays where it is): the next one starts with no pinned address.
        lines.append("    unpin_all();")
        scope.clear()

    lines.append("    {")
    for i, (action, args) in enumerate(trace):
        if action == "end":
            close(str(i))
            lines.append("    {")
            continue
        scope.append((i, (action, args)))
        code = "" if i in left_out else statement(action, args)
        lines.append(f'        mark({t}, "{i}"); {code}')
        where[len(lines)] = (t, i)
    close("~")
    lines.append(f'    mark({t}, "$");')
    lines.append("}")


def source(traces: Sequence[Sequence[Step]], left_out: Sequence[set[int]]) -> tuple[str, dict[int, tuple[int, int]]]:
    """The crate for ``traces`` (without the ``left_out`` steps) and its line -> (trace, step) map."""
    with open(PRELUDE) as f:
        prelude = f.read()
    lines = prelude.rstrip("\n").split("\n")
    where: dict[int, tuple[int, int]] = {}
    for t, trace in enumerate(traces):
        _function(t, trace, left_out[t], lines, where)
    lines.append("fn main() {")
    lines.append(f"    let traces: [fn(); {len(traces)}] = [{', '.join(f't{t}' for t in range(len(traces)))}];")
    lines.append("    let first: usize = std::env::args().nth(1).map_or(0, |a| a.parse().unwrap());")
    lines.append("    for t in &traces[first..] {")
    lines.append("        t();")
    lines.append("    }")
    lines.append("}")
    return "\n".join(lines) + "\n", where


# -------------------------------------------------------------- compiling


class _Crate:
    """One temporary directory, one rustc: compile sources and run what they build."""

    def __init__(self, work: str, path: str):
        self.work, self.rustc = work, path
        self.n = 0

    def _write(self, text: str) -> str:
        self.n += 1
        src = os.path.join(self.work, f"pin{self.n}.rs")
        with open(src, "w") as f:
            f.write(text)
        return src

    def errors(self, text: str, where: dict[int, tuple[int, int]], emit: str = "metadata") -> tuple[dict, int, bytes]:
        """Compile; the errors by (trace, step) -> set of codes, the exit status and stderr."""
        src = self._write(text)
        out = os.path.join(self.work, f"pin{self.n}" + (".rmeta" if emit == "metadata" else ""))
        argv = [self.rustc, *RUSTC_FLAGS, "--crate-type", "bin", "--crate-name", f"pin{self.n}", "--error-format=json"]
        argv += [f"--emit={emit}", "-o", out, src]
        try:
            code, _out, err = _run(argv, COMPILE_TIMEOUT, cwd=self.work)
        except _Overstayed:
            raise RustcPinError(f"rustc did not finish within {COMPILE_TIMEOUT:g} s (killed)") from None
        found: dict[tuple[int, int], set[str]] = {}
        stray: list[str] = []
        for line in err.decode(errors="replace").splitlines():
            try:
                d = json.loads(line)
            except ValueError:
                continue
            if d.get("level") != "error" or not d.get("spans"):
                continue
            codes = (d.get("code") or {}).get("code") or "error"
            step = None
            for span in d["spans"]:
                if span.get("is_primary"):
                    line_no = _line_in(span, src)
                    step = where.get(line_no)
                    break
            if step is None:
                stray.append(d.get("rendered") or d.get("message", ""))
                continue
            found.setdefault(step, set()).add(codes)
        if stray:
            raise RustcPinError("rustc reported errors outside any step:\n" + "\n".join(stray)[:4000])
        if code != 0 and not found:
            raise RustcPinError(f"rustc failed ({exit_status(code)}) without an error at a step:\n{err.decode(errors='replace')[-4000:]}")
        return found, code, err


def _line_in(span: dict, src: str) -> int | None:
    """The line in our source a span points at (following macro expansions back to their call)."""
    while span is not None:
        if os.path.basename(span.get("file_name", "")) == os.path.basename(src):
            return span["line_start"]
        span = (span.get("expansion") or {}).get("span")
    return None


def _decide(crate: _Crate, traces: Sequence[Sequence[Step]]) -> list[dict[int, tuple[str, ...]]]:
    """Which steps of each trace rustc rejects, and with which codes (see the module doc)."""
    rejected: list[dict[int, tuple[str, ...]]] = [{} for _ in traces]
    for r in range(max((len(t) for t in traces), default=0)):
        # Round r: every trace's steps up to r, its earlier rejected steps
        # left out.  Traces asking the same question are asked once.
        asked: dict[tuple, list[int]] = {}
        for t, trace in enumerate(traces):
            if len(trace) <= r or trace[r][0] == "end":
                continue
            key = tuple(_step_key(s) for i, s in enumerate(trace[: r + 1]) if i not in rejected[t])
            asked.setdefault(key, []).append(t)
        if not asked:
            continue
        firsts = [ts[0] for ts in asked.values()]
        text, where = source([traces[t][: r + 1] for t in firsts], [set(rejected[t]) for t in firsts])
        found, _code, _err = crate.errors(text, where)
        errors_of: dict[int, dict[int, set[str]]] = {}
        for (k, step), codes in found.items():
            errors_of.setdefault(k, {})[step] = codes
        for k, ts in enumerate(asked.values()):
            errs = errors_of.get(k)
            if not errs:
                continue
            # The step's own codes.  A statement can also make earlier
            # lines fail (a use of a moved pin extends the borrow it holds):
            # it is rejected all the same, with those codes if it has none.
            codes = errs.get(r) or set().union(*errs.values())
            for t in ts:
                rejected[t][r] = tuple(sorted(codes))
    return rejected


def _step_key(step: Step) -> tuple:
    action, args = step
    return (action, tuple(sorted(args.items())))


def _parse(value: str):
    return {"-": None, "true": True, "false": False}.get(value, value)


def _split(out: bytes, segments: dict, last: list) -> None:
    """Sort a run's output lines into ``segments[(t, step)]``; ``last`` is the last marker seen."""
    for raw in out.decode(errors="replace").splitlines():
        parts = raw.split()
        if not parts:
            continue
        if parts[0] == "@" and len(parts) == 3:
            t, s = int(parts[1]), parts[2]
            last[:] = [t, s]
            if s.isdigit():
                segments.setdefault((t, int(s)), [])
            continue
        if last and last[1].isdigit():
            segments[(last[0], int(last[1]))].append(parts)


def observe(traces: Sequence[Sequence[Step]], batch: int = BATCH) -> list[list[Any]]:
    """Every step's observation, for every trace (one crate per ``batch`` traces)."""
    traces = [[(a, dict(args)) for a, args in trace] for trace in traces]
    for trace in traces:
        for action, args in trace:
            statement(action, args)  # an unknown action fails here, not in rustc
    path, _version = rustc()
    work = tempfile.mkdtemp(prefix="asyncspec-pin-")
    try:
        crate = _Crate(work, path)
        answers: list[list[Any]] = []
        for first in range(0, len(traces), batch):
            answers += _observe_batch(crate, traces[first : first + batch])
        return answers
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _observe_batch(crate: _Crate, traces: list[list[Step]]) -> list[list[Any]]:
    if not traces:
        return []
    rejected = _decide(crate, traces)
    text, where = source(traces, [set(r) for r in rejected])
    found, code, err = crate.errors(text, where, emit="link")
    if found:
        raise RustcPinError(f"the traces do not compile once the rejected steps are left out: {sorted(found)[:5]}")
    exe = os.path.join(crate.work, f"pin{crate.n}")
    segments: dict[tuple[int, int], list[list[str]]] = {}
    crashed: dict[int, tuple[int, str]] = {}  # trace -> (step it crashed in, why)
    first = 0
    while first < len(traces):
        last: list = []
        try:
            status, out, errout = _run([exe, str(first)], RUN_TIMEOUT, cwd=crate.work)
        except _Overstayed as e:
            status, out, errout = None, e.out, e.err
            why = ("hung", f"the program did not finish within {RUN_TIMEOUT:g} s (killed)")
        _split(out, segments, last)
        if status == 0:
            break
        if status is not None:
            tail = errout.decode(errors="replace").strip().splitlines()
            why = ("crashed", exit_status(status) + (f": {tail[-1]}" if tail else ""))
        if not last:
            t, s = first, 0
        else:
            t, s = last
        if s == "$":  # between two traces
            t, s = t + 1, "0"
        if t >= len(traces):
            break
        crashed[t] = (int(s) if s.isdigit() else len(traces[t]) - 1, why)
        first = t + 1
    answers = []
    for t, trace in enumerate(traces):
        obs = []
        for i, _step in enumerate(trace):
            if t in crashed and i >= crashed[t][0]:
                obs.append(crashed[t][1])
            elif i in rejected[t]:
                obs.append((rejected[t][i], None, ()))
            else:
                obs.append(_observation(segments.get((t, i), [])))
        answers.append(obs)
    return answers


def _observation(lines: list[list[str]]):
    result = None
    drops = []
    for parts in lines:
        if parts[0] == "R":
            values = tuple(_parse(p) for p in parts[1:])
            result = values[0] if len(values) == 1 else values
        elif parts[0] == "D" and len(parts) == 3:
            drops.append((int(parts[1]), parts[2]))
    return ((), result, tuple(sorted(drops)))


__all__ = ["BATCH", "RustcPinError", "RustcUnavailable", "available", "observe", "rustc", "statement"]
