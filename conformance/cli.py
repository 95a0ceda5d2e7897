"""The `asyncspec` command.

    asyncspec run [AREA ...] [--target T] [--profile P] [--max-examples N] [--steps N] [--seed S]
                  [--rules GLOBS] [--exclude GLOBS] [--strict] [--list]
                  [--report DIR] [--json FILE] [--junit FILE] [--png]
    asyncspec replay FILE [--target T]
    asyncspec draw FILE [--png]
    asyncspec prove [AREA ...] [--json FILE] [--out DIR]
    asyncspec rules [AREA]
    asyncspec targets [AREA]
    asyncspec docs [--out DIR] [--no-site] [--matrix [AREA ...]]
    asyncspec bench [--quick]

Exit status: 0 every applicable rule passed, 1 a rule was violated (or the
target misbehaved), 2 bad usage.
"""

from __future__ import annotations

import argparse
import signal
import sys
import textwrap

from asyncspec.conformance import targets
from asyncspec.conformance.engine.runner import UsageError, replay_file, resolve, run, selected_rules, stop
from asyncspec.conformance.engine.selection import ENFORCED, BadSelection, Selection
from asyncspec.conformance.engine.verdicts import Finding, Violation
from asyncspec.conformance.output.counterexample import BadCounterexample, draw, save, save_model_run
from asyncspec.conformance.output.report import write_html, write_json, write_junit
from asyncspec.conformance.output.text import Progress, format_failure, format_result
from asyncspec.spec import RULES, machines
from asyncspec.spec import area as spec_area


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="asyncspec", description="Executable spec and conformance suite for async-runtime primitives.")
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the conformance suite against a target")
    run.add_argument("areas", nargs="*", metavar="AREA", help="areas to check (default: all)")
    run.add_argument("--target", "-t", default="impl", help="built-in target name or module:attribute (default: impl)")
    run.add_argument("--profile", "-p", default=None, help="spec profile (default: the area's default)")
    run.add_argument("--max-examples", "-n", type=_positive, default=500, help="Hypothesis examples per area (default 500)")
    run.add_argument("--steps", type=_positive, default=None, help="maximum steps per example (default 40; a batched target's own bound, rustc pin: 12)")
    run.add_argument("--seed", type=int, default=None, help="seed for a reproducible search")
    run.add_argument("--shrink", action="store_true", help="also let Hypothesis shrink (slower; the trace is minimized anyway)")
    run.add_argument("--timeout", type=float, default=10.0, help="seconds a target may take for one step (default 10)")
    run.add_argument("--in-process", action="store_true", help="run the target in this process (no crash isolation; for debugging)")
    run.add_argument("--out", default="asyncspec-out", help="where counterexample files go (default asyncspec-out)")
    run.add_argument("--quiet", "-q", action="store_true", help="no progress lines")
    sel = run.add_argument_group("selecting rules")
    sel.add_argument("--rules", action="append", default=[], metavar="GLOBS", help="enforce only rules matching these patterns (e.g. 'RDY-ET-*'; comma-separated, repeatable)")
    sel.add_argument("--exclude", action="append", default=[], metavar="GLOBS", help="do not enforce rules matching these patterns")
    sel.add_argument("--strict", action="store_true", help="enforce SHOULD rules too, and fail on selected rules never exercised")
    sel.add_argument("--list", action="store_true", help="dry run: print what would run and the rules it would enforce")
    reports = run.add_argument_group("reports")
    reports.add_argument("--report", metavar="DIR", help="write an HTML report (DIR/index.html) with the drawings inline")
    reports.add_argument("--json", metavar="FILE", help="write machine-readable results")
    reports.add_argument("--junit", metavar="FILE", help="write JUnit XML, one testcase per rule")
    reports.add_argument("--png", action="store_true", help="also draw counterexamples as PNG")

    draw = sub.add_parser("draw", help="draw a counterexample file with Graphviz (.dot, .svg; .png on request)")
    draw.add_argument("file", help="a counterexample .json written by `asyncspec run`")
    draw.add_argument("--png", action="store_true", help="also a PNG")

    rep = sub.add_parser("replay", help="re-execute a counterexample file's steps, without Hypothesis")
    rep.add_argument("file", help="a counterexample .json written by `asyncspec run`")
    rep.add_argument("--target", "-t", default=None, help="replay against this target instead of the file's")
    rep.add_argument("--timeout", type=float, default=10.0, help="seconds a target may take for one step")
    rep.add_argument("--in-process", action="store_true", help="run the target in this process")

    docs = sub.add_parser(
        "docs",
        help="generate the spec docs (Markdown, state diagrams, proof status) and build the HTML site; "
        "the conformance matrix with --matrix",
    )
    docs.add_argument("areas", nargs="*", metavar="AREA", help="areas for the matrix (default: all)")
    docs.add_argument("--out", default="docs", help="where the docs go (default: docs; the site goes to OUT/site)")
    docs.add_argument("--no-site", action="store_true", help="write the Markdown and drawings only, no HTML site")
    docs.add_argument("--matrix", action="store_true", help="also run every built-in target and write docs/conformance.md")
    docs.add_argument("--max-examples", "-n", type=_positive, default=300, help="examples per target for the matrix (300)")
    docs.add_argument("--seed", type=int, default=1, help="seed for the matrix runs (default 1)")

    prove = sub.add_parser("prove", help="prove the spec's properties with z3 (induction, BMC, quantified facts)")
    prove.add_argument("areas", nargs="*", metavar="AREA", help="only these areas")
    prove.add_argument("--json", metavar="FILE", help="write each property's outcome as JSON")
    prove.add_argument("--out", metavar="DIR", help="write a refuted property's run as a counterexample file set here")

    rules = sub.add_parser("rules", help="list the spec's rules")
    rules.add_argument("area", nargs="?", help="only this area")

    targets = sub.add_parser("targets", help="list the built-in targets and whether each can run here")
    targets.add_argument("area", nargs="?", help="only this area")

    bench = sub.add_parser("bench", help="benchmarks: ratios against peers measured in the same run")
    bench.add_argument("--quick", action="store_true", help="fewer iterations (a smoke run)")
    return p


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        # As a command: die quietly when the output pipe closes (`| head`).
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    args = _parser().parse_args(argv)
    try:
        if args.command == "run":
            return cmd_run(args)
        if args.command == "replay":
            return cmd_replay(args)
        if args.command == "draw":
            return cmd_draw(args)
        if args.command == "rules":
            return cmd_rules(args)
        if args.command == "docs":
            return cmd_docs(args)
        if args.command == "prove":
            return cmd_prove(args)
        if args.command == "targets":
            return cmd_targets(args)
        if args.command == "bench":
            from asyncspec.conformance.bench import main as bench_main

            return bench_main(quick=args.quick)
    except _Usage as e:
        print(f"asyncspec: {e}", file=sys.stderr)
        return 2
    return 2


class _Usage(Exception):
    pass


def _areas(names) -> list[str]:
    known = machines()
    for name in names:
        if name not in known:
            raise _Usage(f"unknown area {name!r} (known: {', '.join(sorted(known))})")
    return list(names) or sorted(known)


def cmd_run(args) -> int:
    try:
        selection = Selection.of(args.rules, args.exclude, args.strict)
    except BadSelection as e:
        raise _Usage(str(e)) from None
    areas = []
    for area in _areas(args.areas):
        if not args.areas and args.target not in targets.builtin(area) and ":" not in args.target:
            # Running every area: one without this built-in target yet is skipped, said plainly.
            print(f"== {area}: no built-in target {args.target!r} yet; skipped", flush=True)
            continue
        if selection.rules and not any(selection.status(r) != "not selected" for r in RULES.area(area)):
            if args.areas:
                raise _Usage(f"--rules selects no rule of area {area!r}")
            continue  # every area: skip the ones the selection leaves empty
        areas.append(area)
    if args.list:
        return _list_run(areas, args, selection)
    formats = ("svg", "png") if args.png else ("svg",)
    results = []
    status = 0
    for area in areas:
        progress = None if args.quiet else Progress(f"{area}/{args.target}", args.max_examples)
        try:
            res = run(
                area,
                target=args.target,
                profile=args.profile,
                max_examples=args.max_examples,
                steps=args.steps,
                seed=args.seed,
                progress=progress,
                shrink=args.shrink,
                isolate=not args.in_process,
                timeout=args.timeout,
                selection=selection,
            )
        except UsageError as e:
            raise _Usage(str(e)) from None
        print(format_result(res), flush=True)
        found = ([(res.failure, True)] if res.failure is not None else []) + [(w, False) for w in res.warnings]
        for violation, fatal in found:
            files, note = save(violation, args.target, args.out, args.seed, fatal, formats, selection)
            res.findings.append(Finding(violation, fatal, files, note))
            what = "counterexample" if fatal else "warning's counterexample"
            print(f"\n  {what} written to {files['json']}\n  replay it: asyncspec replay {files['json']}", flush=True)
            drawing = files.get("svg") or files.get("dot")
            print(f"  drawing: {drawing}" + (f" ({note})" if note else ""), flush=True)
        if not res.ok:
            status = 1
        results.append(res)
    command = "asyncspec " + " ".join(sys.argv[1:]) if sys.argv and sys.argv[0].endswith("asyncspec") else ""
    if args.json:

        write_json(results, args.json, command)
        print(f"results (JSON): {args.json}")
    if args.junit:

        write_junit(results, args.junit)
        print(f"results (JUnit XML): {args.junit}")
    if args.report:

        print(f"report: {write_html(results, args.report, command)}")
    return status


def _list_run(areas, args, selection) -> int:
    """--list: what `asyncspec run` would do, without running anything."""
    for area in areas:
        try:
            machine, prof, target_cls = resolve(area, args.target, args.profile)
        except UsageError as e:
            raise _Usage(str(e)) from None
        stop(target_cls)  # an exec: adapter answered the handshake; nothing runs
        print(f"== {area} against {target_cls.name} (profile {prof.name}); {selection.describe()}")
        for r in selected_rules(area, selection):
            if not r.holds_in(prof.name):
                state = f"n/a (not in profile {prof.name})"
            elif r.features - target_cls.features:
                state = "n/a (target lacks " + ", ".join(sorted(r.features - target_cls.features)) + ")"
            else:
                state = selection.status(r)
            mark = "*" if state == ENFORCED else " "
            print(f"  {mark} {r.id:<16} {r.tier:<6} {state}")
        print(f"  actions: {', '.join(a.name for a in machine.actions)}")
    return 0


def cmd_replay(args) -> int:
    try:
        data, result = replay_file(args.file, args.target, isolate=not args.in_process, timeout=args.timeout)
    except (UsageError, BadCounterexample) as e:
        raise _Usage(str(e)) from None
    target = args.target or data["target"]
    recorded = [r["id"] for r in data.get("violated", [])]
    if result.ok:
        print(f"replayed {len(result.steps)} steps against {target}: every step conforms (recorded: {', '.join(recorded) or 'none'})")
        return 0
    print(format_failure(Violation(data["area"], data["profile"], target, result.steps)))
    same = list(result.violated) == recorded
    print(f"\n  verdict: {'the same as recorded' if same else 'different from the recorded ' + ', '.join(recorded)}")
    return 1


def cmd_draw(args) -> int:
    try:
        files, note = draw(args.file, ("svg", "png") if args.png else ("svg",))
    except BadCounterexample as e:
        raise _Usage(str(e)) from None
    for kind, path in sorted(files.items()):
        print(f"{kind}: {path}")
    if note:
        print(f"note: {note}", file=sys.stderr)
        return 1
    return 0


def cmd_prove(args) -> int:
    # Here, not at the top: z3 and the proof files load only for `prove`.
    from asyncspec.model.prove import main as prove_main


    save = (lambda run: save_model_run(run, args.out)) if args.out else None
    return prove_main(_areas(args.areas) if args.areas else None, json_path=args.json, save=save)


def cmd_docs(args) -> int:
    # Here, not at the top: the docs pull in z3 (the proofs) and mkdocs (the site).
    from asyncspec.conformance.docgen.matrix import write_matrix
    from asyncspec.conformance.docgen.pages import write_docs

    areas = _areas(args.areas)  # bad area names are named before anything runs
    for path in write_docs(args.out, report=lambda m: print(m, flush=True)):
        print(f"wrote {path}")
    if args.matrix:
        path = write_matrix(args.out, areas, args.max_examples, args.seed, lambda m: print(m, flush=True))
        print(f"wrote {path}")
    if not args.no_site:
        from asyncspec.conformance.docgen.site import build_site

        index, warnings = build_site(args.out)
        for w in warnings:
            print(f"site: warning: {w}", file=sys.stderr)
        print(f"site: {index}")
    return 0


def cmd_rules(args) -> int:
    areas = _areas([args.area] if args.area else [])
    for area in areas:
        rules = RULES.area(area)
        print(f"{area}: {len(rules)} rules")
        for r in rules:
            print(f"\n{r.id}  [{r.tier}; {', '.join(sorted(r.profiles))}]")
            print(textwrap.fill(r.statement, 88, initial_indent="  ", subsequent_indent="  "))
            print(f"  source: {r.source}")
            if r.features:
                print(f"  needs target features: {', '.join(sorted(r.features))}")
            if r.measured:
                print(textwrap.fill("measured: " + r.measured, 88, initial_indent="  ", subsequent_indent="    "))
        features = spec_area(area).features
        if features:
            print(f"\n{area} target features (a target claims those it has; rules needing others are n/a):")
            for name, meaning in sorted(features.items()):
                print(f"  {name:<14} {meaning}")
    return 0


def cmd_targets(args) -> int:
    areas = _areas([args.area] if args.area else [])
    for area in areas:
        print(f"{area}:")
        for name in sorted(targets.builtin(area)):
            try:
                cls = targets.load(name, area)
                why = cls.unavailable()
                cls.shutdown()  # an exec: adapter started by the check
            except targets.UnknownTarget as e:
                cls, why = None, str(e)
            state = "available" if not why else f"unavailable: {why}"
            desc = cls.description if cls else ""
            print(f"  {name:<14} {state}")
            if desc:
                print(f"  {'':<14} {desc}")
            if cls is not None:
                print(f"  {'':<14} features: {', '.join(sorted(cls.features))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
