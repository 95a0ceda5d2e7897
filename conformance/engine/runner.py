"""Run one area's machine against one target and judge every rule."""

from __future__ import annotations

import os
import random
import time

from asyncspec.conformance import targets as target_registry
from asyncspec.conformance.engine.bridge import build, check_invariants, takeable_args
from asyncspec.conformance.engine.replay import NotEnabled, minimize, replay
from asyncspec.conformance.engine.selection import EVERYTHING, NOT_SELECTED, Selection
from asyncspec.conformance.engine.verdicts import Recorder, RunResult, Violation, judge, warning
from asyncspec.conformance.output.counterexample import read, replay_selection
from asyncspec.conformance.process.exec_target import TIMEOUT_ENV
from asyncspec.conformance.process.worker import DEFAULT_TIMEOUT, isolated
from asyncspec.spec import RULES, machine_for
from asyncspec.spec.core import Action, Machine, Profile, Rule
from hypothesis import HealthCheck, Phase, Verbosity, settings
from hypothesis import seed as hypothesis_seed
from hypothesis.errors import Flaky
from hypothesis.stateful import run_state_machine_as_test

DEFAULT_STEPS = 40


class UsageError(Exception):
    """Bad command-line input (exit status 2)."""


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
    steps = steps or target_cls.max_steps or DEFAULT_STEPS
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

    batched = target_cls.batched

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
            target_cls.claims_rule(r.id),
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
    if isolate and not target_cls.out_of_process:
        # A target that crashes or hangs must not take the runner with it.
        return isolated(target_cls, timeout)
    return target_cls


def stop(target_cls) -> None:
    """End a run's worker or adapter process, if it has one."""
    target_cls.shutdown()


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
        profile = profile or target_cls.profile or None
        try:
            machine = machine_for(area, profile)
            prof = machine.profile(profile)
        except KeyError as e:
            raise UsageError(str(e.args[0])) from None
        if machine.dialect and target_cls.dialect != machine.dialect:
            raise UsageError(
                f"profile {prof.name!r} is a {machine.dialect} machine and target {target!r} speaks "
                f"{target_cls.dialect or 'another protocol'}"
                + (" (no kqueue target can run on Linux)" if machine.dialect == "kqueue" else "")
            )
        claimed = target_cls.profiles
        if claimed and prof.name not in claimed:
            raise UsageError(f"target {target!r} claims profiles {', '.join(sorted(claimed))}, not {prof.name!r}")
    except UsageError:
        stop(target_cls)  # an adapter started by the handshake
        raise
    return machine, prof, target_cls


def selected_rules(area: str, selection: Selection) -> list[Rule]:
    """The area's rules a report lists: with --rules, only the selected ones."""
    return [r for r in RULES.area(area) if not (selection.rules and selection.status(r) == NOT_SELECTED)]


# ------------------------------------------------------------------ printing


def replay_file(path: str, target: str | None = None, isolate: bool = True, timeout: float = DEFAULT_TIMEOUT):
    """Re-execute a counterexample file's steps (no Hypothesis): the Replay."""
    data = read(path)
    machine, prof, target_cls = resolve(data["area"], target or data["target"], data["profile"], timeout)
    target_cls = contained(target_cls, isolate, timeout)
    steps = [(s["action"], s["args"]) for s in data["steps"]]
    if target_cls.batched:
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
