"""Run one area's machine against one target and judge every rule."""

from __future__ import annotations

import os
import random
import sys
import textwrap
import time
from dataclasses import dataclass, field

from hypothesis import HealthCheck, Phase, Verbosity, settings
from hypothesis import seed as hypothesis_seed
from hypothesis.errors import Flaky
from hypothesis.stateful import run_state_machine_as_test

from ..spec import RULES, machine_for
from ..spec.core import Action, Machine, Profile, Rule
from . import targets as target_registry
from .bridge import Recorder, Violation, build, check_invariants, takeable_args, warning
from .exec_target import TIMEOUT_ENV
from .replay import NotEnabled, minimize, replay
from .selection import EVERYTHING, EXCLUDED, NOT_SELECTED, SHOULD_ONLY, Selection
from .worker import DEFAULT_TIMEOUT, isolated

PASS, FAIL, NA, UNTESTED, WARN, SKIP = "pass", "FAIL", "n/a", "untested", "warn", "skipped"
STATUSES = (PASS, FAIL, WARN, UNTESTED, SKIP, NA)


DEFAULT_STEPS = 40


class UsageError(Exception):
    """Bad command-line input (exit status 2)."""


@dataclass
class RuleResult:
    rule: Rule
    status: str
    exercised: int
    why: str = ""


@dataclass
class Finding:
    """A counterexample of a run, and the files it was saved to."""

    violation: Violation
    fatal: bool  # False: it breaks only rules the run tolerates (a warning)
    files: dict[str, str] = field(default_factory=dict)  # kind (json, itf, dot, svg, png) -> path
    render_note: str = ""  # why a drawing is missing, if it is


@dataclass
class RunResult:
    area: str
    target: str
    profile: str
    results: list[RuleResult]
    recorder: Recorder
    seconds: float
    failure: Violation | None = None
    error: str | None = None
    settings: dict = field(default_factory=dict)
    selection: Selection = EVERYTHING
    warnings: list[Violation] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)  # filled in when saved

    @property
    def ok(self) -> bool:
        if self.failure is not None or self.error is not None:
            return False
        # --strict: a selected rule no step exercised is not a pass.
        return not (self.selection.strict and any(r.status == UNTESTED for r in self.results))

    def counts(self) -> dict[str, int]:
        return {s: sum(1 for r in self.results if r.status == s) for s in STATUSES}


def judge(
    rule: Rule,
    profile: str,
    features: frozenset[str],
    exercised: int,
    violated: set[str],
    selection: Selection = EVERYTHING,
    tolerated: dict[str, int] | None = None,
    claimed: bool = True,
) -> RuleResult:
    tolerated = tolerated or {}
    if not rule.holds_in(profile):
        return RuleResult(rule, NA, 0, f"not in profile {profile}")
    if not claimed:
        return RuleResult(rule, NA, exercised, "not claimed by the target")
    missing = rule.features - features
    if missing:
        return RuleResult(rule, NA, exercised, "target lacks " + ", ".join(sorted(missing)))
    status = selection.status(rule)
    broken = tolerated.get(rule.id, 0)
    if status in (EXCLUDED, NOT_SELECTED):
        why = status + (f"; broken {broken} times (see the warning's counterexample)" if broken else "")
        return RuleResult(rule, SKIP, exercised, why)
    if status == SHOULD_ONLY and (broken or rule.id in violated):
        return RuleResult(rule, WARN, exercised, f"SHOULD rule broken {max(broken, 1)} times (--strict makes it fail)")
    if rule.id in violated:
        return RuleResult(rule, FAIL, exercised)
    if exercised == 0:
        return RuleResult(rule, UNTESTED, 0, "never exercised")
    return RuleResult(rule, PASS, exercised)


def run(
    area: str,
    target: str = "impl",
    profile: str | None = None,
    max_examples: int = 500,
    steps: int | None = None,
    seed: int | None = None,
    progress=None,
    database=None,
    shrink: bool = False,
    isolate: bool = True,
    timeout: float = DEFAULT_TIMEOUT,
    selection: Selection = EVERYTHING,
) -> RunResult:
    machine, prof, target_cls = resolve(area, target, profile, timeout)
    # Steps per example: as asked, else the target's own bound (a batched
    # target's traces are compiled whole), else 40.
    steps = steps or getattr(target_cls, "max_steps", None) or DEFAULT_STEPS
    target_cls = contained(target_cls, isolate, timeout)
    recorder = Recorder(progress=progress)
    machine_cls = build(machine, prof, target_cls, recorder, selection)
    if seed is not None:
        machine_cls = hypothesis_seed(seed)(machine_cls)
    run_settings = settings(
        max_examples=max_examples,
        stateful_step_count=steps,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=False,
        verbosity=Verbosity.quiet,
        database=database,
        # Hypothesis's shrinker replays thousands of real-system runs; the
        # trace minimizer below gets as short a counterexample in a fraction
        # of the time, so Hypothesis shrinks only on request.
        phases=[Phase.explicit, Phase.reuse, Phase.generate] + ([Phase.shrink] if shrink else []),
    )
    started = time.monotonic()
    failure = None
    error = None

    batched = getattr(target_cls, "batched", False)

    def shortest(v: Violation, rules, selection: Selection | None) -> Violation:
        trace = [(st.action, st.args) for st in v.steps]
        prepare = target_cls.prepare if batched else None  # one build per round of candidates
        shorter = minimize(machine, prof, target_cls, trace, rules, selection, prepare=prepare)
        if shorter is not None and len(shorter.steps) < len(v.steps):
            return Violation(area, prof.name, target_cls.name, shorter.steps)
        return v

    try:
        if batched:
            found = run_batched(machine, prof, target_cls, recorder, selection, max_examples, steps, seed)
            if found is not None:
                failure = shortest(found, [r for r in found.rules if selection.enforces(r)], selection)
        else:
            try:
                run_state_machine_as_test(machine_cls, settings=run_settings)
            except Violation as v:
                # The last raised, i.e. the shrunk example; minimized keeping an enforced rule broken.
                failure = shortest(v, [r for r in v.rules if selection.enforces(r)], selection)
            except Flaky as e:
                error = f"the target behaved non-deterministically (Hypothesis: {e})"
        # A warning is replayed enforcing every rule: that is how it shows.
        warnings = [shortest(v, v.rules, None) for _, v in sorted(recorder.tolerated.items())]
    finally:
        stop(target_cls)
    seconds = time.monotonic() - started
    violated = set(failure.rules) if failure else set()
    results = [
        judge(
            r,
            prof.name,
            target_cls.features,
            recorder.rules.get(r.id, 0),
            violated,
            selection,
            recorder.tolerated_count,
            claims_rule(target_cls, r.id),
        )
        for r in selected_rules(area, selection)
    ]
    return RunResult(
        area=area,
        target=target_cls.name,
        profile=prof.name,
        results=results,
        recorder=recorder,
        seconds=seconds,
        failure=failure,
        error=error,
        settings=dict(max_examples=max_examples, steps=steps, seed=seed, shrink=shrink, isolate=isolate),
        selection=selection,
        warnings=warnings,
    )


# ------------------------------------------------------------ batched runs
#
# A target that compiles what it is asked (rustc for the pin area) cannot
# afford one build per example.  It says so with ``batched = True`` and a
# classmethod ``prepare(traces)``; the run then samples its traces first,
# as random walks over the spec machine, hands them all to ``prepare`` at
# once, and replays each against a fresh instance (which answers from what
# ``prepare`` found).  Coverage, warnings, minimizing and the RunResult are
# those of a Hypothesis run.


def sample_traces(
    machine: Machine, profile: Profile, features: frozenset[str], count: int, steps: int, rng: random.Random
) -> list[list[tuple[str, dict]]]:
    """``count`` random walks of up to ``steps`` steps over ``machine``.

    A step is an action with arguments enabled in every state the walk may
    be in (whatever the target observes, the spec's belief is inside that
    set) whose required features the target has.  Actions are drawn by
    weight, arguments by their parameters' weights, as the Hypothesis
    bridge does; and half the time a step prefers an (action, arguments)
    pair no walk has taken yet, so every one a walk can reach shows up.
    """
    choices_cache: dict = {}

    def choices(beliefs: frozenset) -> list[tuple[Action, dict, int]]:
        if beliefs not in choices_cache:
            choices_cache[beliefs] = [
                (action, args, action.arg_weight(args))
                for action in machine.actions
                for args in takeable_args(action, beliefs, profile, features)
            ]
        return choices_cache[beliefs]

    def after(beliefs: frozenset, action: Action, args: dict) -> frozenset:
        nxt = {o.next for s in beliefs for o in action.outcomes(s, args, profile) if not o.breaks}
        if len(nxt) > 64:  # keep the walk cheap: a sample of what may follow
            nxt = set(rng.sample(sorted(nxt, key=repr), 64))
        return frozenset(nxt)

    def key(action: Action, args: dict) -> tuple:
        return (action.name, tuple(sorted(args.items())))

    seen: set = set()
    traces = []
    for _ in range(count):
        beliefs = frozenset({machine.init(profile)})
        trace: list[tuple[str, dict]] = []
        while len(trace) < steps and beliefs:
            options = choices(beliefs)
            if not options:
                break
            fresh = [o for o in options if key(o[0], o[1]) not in seen]
            if fresh and rng.random() < 0.5:
                action, args, _w = rng.choice(fresh)
            else:
                actions = list(dict.fromkeys(o[0] for o in options))
                action = rng.choices(actions, weights=[max(1, a.weight) for a in actions])[0]
                mine = [o for o in options if o[0] is action]
                action, args, _w = rng.choices(mine, weights=[o[2] for o in mine])[0]
            seen.add(key(action, args))
            trace.append((action.name, dict(args)))
            beliefs = after(beliefs, action, args)
        if trace:
            traces.append(trace)
    return traces


def run_batched(
    machine: Machine,
    profile: Profile,
    target_cls,
    recorder: Recorder,
    selection: Selection,
    max_examples: int,
    steps: int,
    seed: int | None,
) -> Violation | None:
    """Sample ``max_examples`` traces, prepare them at once, replay each: the first failure, unminimized."""
    rng = random.Random(seed if seed is not None else random.randrange(2**32))
    traces = sample_traces(machine, profile, frozenset(target_cls.features), max_examples, steps, rng)
    target_cls.prepare(traces)

    def record(step, result) -> None:
        recorder.step(result, step.action)
        check_invariants(machine, profile, result.beliefs)

    for trace in traces:
        recorder.examples += 1
        if recorder.progress:
            recorder.progress(recorder)
        target = target_cls()
        target.open()
        try:
            done = replay(machine, profile, target, trace, selection, on_step=record)
        except NotEnabled:
            continue  # a walk through a state the target's answers ruled out
        finally:
            target.close()
        for i, step in enumerate(done.steps):
            if step.tolerated:
                recorder.tolerate(warning(machine.area, profile.name, target_cls.name, done.steps[: i + 1]))
        if not done.ok:
            failure = Violation(machine.area, profile.name, target_cls.name, done.steps)
            if not selection.fails_on(done.violated):
                recorder.tolerate(failure)  # only unenforced rules broken: a warning; search on
                continue
            recorder.failure = failure
            return failure
    return None


def contained(target_cls, isolate: bool, timeout: float):
    """The target class to drive: in a worker process unless ``isolate`` is
    off or the target runs out of process already (an `exec:` adapter)."""
    if isolate and not getattr(target_cls, "out_of_process", False):
        # A target that crashes or hangs must not take the runner with it.
        return isolated(target_cls, timeout)
    return target_cls


def stop(target_cls) -> None:
    """End a run's worker or adapter process, if it has one."""
    shutdown = getattr(target_cls, "shutdown", None)
    if shutdown is not None:
        shutdown()


def resolve(area: str, target: str, profile: str | None, timeout: float = DEFAULT_TIMEOUT):
    """The machine, profile and target class a run would use (UsageError if they don't fit)."""
    os.environ[TIMEOUT_ENV] = str(timeout)  # an exec: adapter's step timeout, here and in workers
    try:
        machine_for(area)
    except KeyError as e:
        raise UsageError(str(e.args[0])) from None
    try:
        target_cls = target_registry.load(target, area)
    except target_registry.UnknownTarget as e:
        raise UsageError(str(e)) from None
    why = target_cls.unavailable()  # an exec: adapter's handshake happens here
    if why:
        raise UsageError(f"target {target!r} is unavailable here: {why}")
    try:
        # A target may name the profile it is meant for (ucontext: its own).
        profile = profile or getattr(target_cls, "profile", "") or None
        try:
            machine = machine_for(area, profile)
            prof = machine.profile(profile)
        except KeyError as e:
            raise UsageError(str(e.args[0])) from None
        if machine.dialect and getattr(target_cls, "dialect", "") != machine.dialect:
            raise UsageError(
                f"profile {prof.name!r} is a {machine.dialect} machine and target {target!r} speaks "
                f"{getattr(target_cls, 'dialect', '') or 'another protocol'}"
                + (" (no kqueue target can run on Linux)" if machine.dialect == "kqueue" else "")
            )
        claimed = getattr(target_cls, "profiles", frozenset())
        if claimed and prof.name not in claimed:
            raise UsageError(f"target {target!r} claims profiles {', '.join(sorted(claimed))}, not {prof.name!r}")
    except UsageError:
        stop(target_cls)  # an adapter started by the handshake
        raise
    return machine, prof, target_cls


def claims_rule(target_cls, rule_id: str) -> bool:
    check = getattr(target_cls, "claims_rule", None)
    return True if check is None else check(rule_id)


def selected_rules(area: str, selection: Selection) -> list[Rule]:
    """The area's rules a report lists: with --rules, only the selected ones."""
    return [r for r in RULES.area(area) if not (selection.rules and selection.status(r) == NOT_SELECTED)]


# ------------------------------------------------------------------ printing


def replay_file(path: str, target: str | None = None, isolate: bool = True, timeout: float = DEFAULT_TIMEOUT):
    """Re-execute a counterexample file's steps (no Hypothesis): the Replay."""
    from .counterexample import read, replay_selection
    from .replay import NotEnabled, replay

    data = read(path)
    machine, prof, target_cls = resolve(data["area"], target or data["target"], data["profile"], timeout)
    target_cls = contained(target_cls, isolate, timeout)
    steps = [(s["action"], s["args"]) for s in data["steps"]]
    if getattr(target_cls, "batched", False):
        target_cls.prepare([steps])  # one build for the whole trace
    t = target_cls()
    t.open()
    try:
        return data, replay(machine, prof, t, steps, replay_selection(data))
    except NotEnabled as e:
        raise UsageError(f"{path}: {e}") from None
    finally:
        t.close()
        stop(target_cls)


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
