"""A run's results and counterexamples as terminal text, and its progress lines."""

from __future__ import annotations

import sys
import textwrap
import time

from asyncspec.conformance.engine.verdicts import FAIL, NA, PASS, SKIP, UNTESTED, WARN, Recorder, RunResult, Violation
from asyncspec.spec import RULES, machine_for


def format_result(res: RunResult) -> str:
    lines = [f"== {res.area} against {res.target} (profile {res.profile})"]
    if res.selection.rules or res.selection.exclude or res.selection.strict:
        lines.append(f"   selection: {res.selection.describe()}")
    lines.append("")
    width = max([len(r.rule.id) for r in res.results] + [4])
    lines.append(f"  {'rule':<{width}}  {'tier':<6} {'exercised':>9}  result")
    for r in res.results:
        note = f"  ({r.why})" if r.why else ""
        lines.append(f"  {r.rule.id:<{width}}  {r.rule.tier:<6} {r.exercised:>9}  {r.status}{note}")
    counts = res.counts()
    lines.append("")
    summary = f"  {counts[PASS]} passed, {counts[FAIL]} failed"
    for status, word in ((WARN, "warned"), (UNTESTED, "untested"), (SKIP, "skipped")):
        if counts[status]:
            summary += f", {counts[status]} {word}"
    summary += f", {counts[NA]} not applicable — {res.recorder.examples} runs, {res.recorder.steps} steps in {res.seconds:.1f}s"
    lines.append(summary)
    if res.recorder.actions:
        cover = ", ".join(f"{a} {n}" for a, n in sorted(res.recorder.actions.items()))
        lines.append(textwrap.fill("actions: " + cover, 96, initial_indent="  ", subsequent_indent="    "))
    if counts[UNTESTED]:
        lines.append(
            "  untested rules were never exercised: they are not passes"
            + (" (--strict: the run fails)" if res.selection.strict else "; more --max-examples or --steps may reach them")
        )
    if res.error:
        lines += ["", f"  ERROR: {res.error}"]
    if res.failure:
        lines += ["", format_failure(res.failure)]
    for w in res.warnings:
        lines += ["", "  WARNING (does not fail this run): " + ", ".join(w.rules) + " broken", format_failure(w)]
    return "\n".join(lines)


def format_failure(v: Violation) -> str:
    def show(obs):
        return _obs(obs, v.area, v.profile)

    lines = [f"  Counterexample ({len(v.steps)} steps), target {v.target}, profile {v.profile}:"]
    for step in v.steps:
        marker = ">>" if step.violated else "  "
        lines.append(f"  {marker} {step.index:>2}. {step.call()}  ->  {show(step.observed)}")
    last = v.steps[-1]
    lines.append("")
    lines.append("     state before the failing step:")
    for text in last.before:
        lines.append(f"       {text}")
    lines.append(f"     spec allows: {', '.join(show(a) for a in last.allowed) or '(nothing)'}")
    lines.append(f"     target did:  {show(last.observed)}")
    lines.append("     broken rules:")
    for rid in last.violated:
        r = RULES[rid]
        lines.append(f"       {rid}: {r.statement}")
        lines.append(f"         source: {r.source}")
    return "\n".join(lines)


def _obs(obs, area: str, profile: str) -> str:
    return machine_for(area, profile).show(obs)


class Progress:
    """Prints a line to stderr every couple of seconds on long runs."""

    def __init__(self, label: str, total: int, stream=None, every: float = 2.0):
        self.label, self.total, self.every = label, total, every
        self.stream = stream or sys.stderr
        self.started = self.last = time.monotonic()

    def __call__(self, rec: Recorder) -> None:
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            print(
                f"  {self.label}: {rec.examples} runs ({self.total} planned, plus shrinking),"
                f" {rec.steps} steps, {now - self.started:.0f}s",
                file=self.stream,
                flush=True,
            )
