"""Reports of `asyncspec run`: JSON, JUnit XML and a self-contained HTML page.

All three are made from the same `RunResult`s (one per area run), after
their counterexamples were saved (`RunResult.findings`):

- ``--json FILE``: machine-readable results (format ``asyncspec-results/1``):
  per run, every rule with its status and how often it was exercised, how
  often each action ran, and each counterexample with its files and the
  command that replays it.
- ``--junit FILE``: one ``<testsuite>`` per run, one ``<testcase>`` per rule
  (FAIL is a ``<failure>`` carrying the explanation; n/a, skipped and
  untested are ``<skipped>`` with the reason, untested being a
  ``<failure>`` under ``--strict``; a target's own failure is testcase TGT-1).
- ``--report DIR``: ``DIR/index.html``, one page with a summary, the rule
  table per run (statement, tier, times exercised, result; rules never
  exercised flagged), the action coverage, and every counterexample with
  its explanation, its drawing inline and how to replay it.
"""

from __future__ import annotations

import html
import json
import os
import re
import time
import xml.etree.ElementTree as ET
from typing import Any, Iterable

from asyncspec.conformance.engine.verdicts import FAIL, NA, SKIP, STATUSES, UNTESTED, WARN, RunResult
from asyncspec.conformance.output.counterexample import version
from asyncspec.conformance.output.text import format_failure
from asyncspec.spec import RULES

RESULTS_FORMAT = "asyncspec-results/1"


def _replay_command(path: str) -> str:
    return f"asyncspec replay {path}"


def _finding_data(f) -> dict[str, Any]:
    return {
        "verdict": "failure" if f.fatal else "warning",
        "rules": list(f.violation.rules),
        "steps": len(f.violation.steps),
        "files": dict(f.files),
        "drawing_note": f.render_note,
        "replay": _replay_command(f.files["json"]) if "json" in f.files else None,
    }


def to_json(results: Iterable[RunResult], command: str = "") -> dict[str, Any]:
    results = list(results)
    return {
        "format": RESULTS_FORMAT,
        "asyncspec": version(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": command,
        "ok": all(r.ok for r in results),
        "runs": [
            {
                "area": r.area,
                "target": r.target,
                "profile": r.profile,
                "ok": r.ok,
                "error": r.error,
                "seconds": round(r.seconds, 3),
                "examples": r.recorder.examples,
                "steps": r.recorder.steps,
                "settings": r.settings,
                "selection": {"rules": list(r.selection.rules), "exclude": list(r.selection.exclude), "strict": r.selection.strict},
                "counts": r.counts(),
                "rules": [
                    {
                        "id": rr.rule.id,
                        "tier": rr.rule.tier,
                        "status": rr.status,
                        "exercised": rr.exercised,
                        "why": rr.why,
                        "statement": rr.rule.statement,
                        "source": rr.rule.source,
                    }
                    for rr in r.results
                ],
                "actions": dict(sorted(r.recorder.actions.items())),
                "counterexamples": [_finding_data(f) for f in r.findings],
            }
            for r in results
        ],
    }


def write_json(results: Iterable[RunResult], path: str, command: str = "") -> None:
    _ensure_dir(path)
    with open(path, "w") as f:
        json.dump(to_json(results, command), f, indent=1)
        f.write("\n")


# ----------------------------------------------------------------- JUnit XML


def to_junit(results: Iterable[RunResult]) -> ET.Element:
    results = list(results)
    root = ET.Element("testsuites", name="asyncspec")
    totals = dict(tests=0, failures=0, errors=0, skipped=0)
    total_time = 0.0
    for r in results:
        suite = ET.SubElement(root, "testsuite", name=f"{r.area}/{r.target}/{r.profile}")
        counts = dict(tests=0, failures=0, errors=0, skipped=0)
        fatal = next((f for f in r.findings if f.fatal), None)
        for rr in r.results:
            case = ET.SubElement(
                suite, "testcase", classname=f"asyncspec.{r.area}.{r.target}", name=rr.rule.id, time="0"
            )
            counts["tests"] += 1
            if rr.status == FAIL:
                counts["failures"] += 1
                el = ET.SubElement(case, "failure", message=f"{rr.rule.id}: {rr.rule.statement}", type="RuleViolated")
                el.text = _failure_text(r, fatal)
            elif rr.status == UNTESTED and r.selection.strict:
                counts["failures"] += 1
                ET.SubElement(case, "failure", message="never exercised (--strict)", type="Untested")
            elif rr.status in (NA, SKIP, UNTESTED):
                counts["skipped"] += 1
                ET.SubElement(case, "skipped", message=rr.why or rr.status)
            elif rr.status == WARN:
                out = ET.SubElement(case, "system-out")
                out.text = "warning: " + rr.why
            ET.SubElement(case, "properties")
            props = case.find("properties")
            for k, v in (("tier", rr.rule.tier), ("exercised", str(rr.exercised)), ("source", rr.rule.source)):
                ET.SubElement(props, "property", name=k, value=v)
        if r.error or (r.failure and "TGT-1" in r.failure.rules):
            case = ET.SubElement(suite, "testcase", classname=f"asyncspec.{r.area}.{r.target}", name="TGT-1", time="0")
            counts["tests"] += 1
            counts["errors"] += 1
            el = ET.SubElement(case, "error", message=r.error or "the target failed (crash, hang or exception)")
            el.text = _failure_text(r, fatal) if r.failure else (r.error or "")
        for k, v in counts.items():
            suite.set(k, str(v))
            totals[k] += v
        suite.set("time", f"{r.seconds:.3f}")
        total_time += r.seconds
    for k, v in totals.items():
        root.set(k, str(v))
    root.set("time", f"{total_time:.3f}")
    return root


def _failure_text(r: RunResult, fatal) -> str:
    text = format_failure(r.failure) if r.failure else ""
    if fatal is not None and "json" in fatal.files:
        text += f"\n\nreplay: {_replay_command(fatal.files['json'])}"
        for kind in ("svg", "png", "dot"):
            if kind in fatal.files:
                text += f"\ndrawing: {fatal.files[kind]}"
                break
    return text


def write_junit(results: Iterable[RunResult], path: str) -> None:
    _ensure_dir(path)
    tree = ET.ElementTree(to_junit(results))
    ET.indent(tree)
    tree.write(path, encoding="utf-8", xml_declaration=True)


# ---------------------------------------------------------------------- HTML

_CSS = """
body { font: 14px/1.45 "DejaVu Sans", system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #212121; padding: 0 1em; }
h1 { font-size: 1.6em; margin-bottom: .2em; } h2 { margin-top: 2em; border-bottom: 2px solid #e0e0e0; }
.meta { color: #616161; }
table { border-collapse: collapse; margin: .6em 0; width: 100%; }
th, td { text-align: left; padding: 3px 8px; border-bottom: 1px solid #eeeeee; vertical-align: top; }
th { background: #fafafa; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
.status { font-weight: bold; white-space: nowrap; }
.s-pass { color: #2e7d32; } .s-FAIL { color: #fff; background: #c62828; } .s-warn { color: #e65100; }
.s-untested { color: #8d6e00; background: #fff8e1; } .s-skipped, .s-na { color: #9e9e9e; }
tr.untested td { background: #fffde7; }
.verdict { display: inline-block; padding: 2px 10px; border-radius: 3px; font-weight: bold; }
.v-ok { background: #e8f5e9; color: #2e7d32; } .v-bad { background: #ffebee; color: #c62828; }
pre { white-space: pre-wrap; background: #263238; color: #eceff1; padding: .8em; overflow-x: auto; font-size: 12px; }
.drawing { border: 1px solid #e0e0e0; padding: .5em; overflow-x: auto; background: #fff; }
.drawing svg { max-width: 100%; height: auto; }
code { background: #f5f5f5; padding: 1px 4px; }
.note { color: #8d6e00; }
"""

# Runs in the browser once the page has loaded: it measures what was drawn,
# so a test in a headless browser can tell the page rendered (not just parsed).
_CHECK = """
window.addEventListener('load', function () {
  var svgs = document.querySelectorAll('.drawing svg'), drawn = 0;
  svgs.forEach(function (s) { var b = s.getBoundingClientRect(); if (b.width > 50 && b.height > 50) drawn++; });
  var rows = document.querySelectorAll('table.rules tbody tr').length;
  document.body.setAttribute('data-check', 'svgs=' + svgs.length + ' drawn=' + drawn + ' rule-rows=' + rows);
});
"""


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _status_class(status: str) -> str:
    return "s-na" if status == NA else f"s-{status}"


def _inline_svg(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        svg = f.read()
    # Drop the XML prolog and DOCTYPE: the <svg> element goes inline.
    return svg[svg.index("<svg") :] if "<svg" in svg else ""


def _rel(path: str, base: str) -> str:
    return os.path.relpath(os.path.abspath(path), os.path.abspath(base))


def to_html(results: Iterable[RunResult], report_dir: str, command: str = "") -> str:
    results = list(results)
    ok = all(r.ok for r in results)
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        "<title>asyncspec conformance report</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>asyncspec conformance report</h1>",
        f'<p class="meta">asyncspec {_e(version())} · {_e(time.strftime("%Y-%m-%d %H:%M:%S %Z"))}'
        + (f" · <code>{_e(command)}</code>" if command else "")
        + "</p>",
        f'<p><span class="verdict {"v-ok" if ok else "v-bad"}">{"every enforced rule held" if ok else "rules broken"}</span></p>',
        "<table class=summary><thead><tr><th>area</th><th>target</th><th>profile</th>"
        + "".join(f"<th>{_e(s)}</th>" for s in STATUSES)
        + "<th>runs</th><th>steps</th><th>time</th></tr></thead><tbody>",
    ]
    for r in results:
        c = r.counts()
        out.append(
            f'<tr><td><a href="#{_anchor(r)}">{_e(r.area)}</a></td><td>{_e(r.target)}</td><td>{_e(r.profile)}</td>'
            + "".join(f'<td class="n {_status_class(s) if c[s] else ""}">{c[s]}</td>' for s in STATUSES)
            + f'<td class="n">{r.recorder.examples}</td><td class="n">{r.recorder.steps}</td><td class="n">{r.seconds:.1f}s</td></tr>'
        )
    out.append("</tbody></table>")
    for r in results:
        out.extend(_run_section(r, report_dir))
    out.append(f"<script>{_CHECK}</script></body></html>")
    return "\n".join(out) + "\n"


def _anchor(r: RunResult) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", f"{r.area}-{r.target}-{r.profile}")


def _run_section(r: RunResult, report_dir: str) -> list[str]:
    out = [f'<h2 id="{_anchor(r)}">{_e(r.area)} against {_e(r.target)} <small>(profile {_e(r.profile)})</small></h2>']
    sel = r.selection
    out.append(
        f'<p class="meta">{r.recorder.examples} runs, {r.recorder.steps} steps, {r.seconds:.1f}s; '
        f"settings: {_e(', '.join(f'{k}={v}' for k, v in r.settings.items()))}; selection: {_e(sel.describe())}</p>"
    )
    if r.error:
        out.append(f'<p class="verdict v-bad">error: {_e(r.error)}</p>')
    untested = [rr for rr in r.results if rr.status == UNTESTED]
    if untested:
        out.append(
            f'<p class="note">{len(untested)} rule(s) never exercised ({_e(", ".join(rr.rule.id for rr in untested))}): '
            "a rule exercised zero times is not a pass.</p>"
        )
    # What a reader needs first: the counterexamples; then the rule table.
    for f in r.findings:
        out.extend(_finding_section(f, report_dir))
    out.append("<h3>Rules</h3>")
    out.append(
        '<table class="rules"><thead><tr><th>rule</th><th>tier</th><th>statement</th><th>exercised</th><th>result</th></tr></thead><tbody>'
    )
    for rr in r.results:
        cls = ' class="untested"' if rr.status == UNTESTED else ""
        why = f"<br><small>{_e(rr.why)}</small>" if rr.why else ""
        out.append(
            f'<tr{cls}><td><b>{_e(rr.rule.id)}</b></td><td>{_e(rr.rule.tier)}</td>'
            f'<td>{_e(rr.rule.statement)}<br><small class="meta">{_e(rr.rule.source)}</small></td>'
            f'<td class="n">{rr.exercised}</td><td><span class="status {_status_class(rr.status)}">{_e(rr.status)}</span>{why}</td></tr>'
        )
    out.append("</tbody></table>")
    if r.recorder.actions:
        out.append("<h3>Actions performed</h3><table class=actions><thead><tr><th>action</th><th>times</th></tr></thead><tbody>")
        for name, n in sorted(r.recorder.actions.items()):
            out.append(f'<tr><td>{_e(name)}</td><td class="n">{n}</td></tr>')
        out.append("</tbody></table>")
    return out


def _finding_section(f, report_dir: str) -> list[str]:
    v = f.violation
    kind = "Counterexample" if f.fatal else "Warning (a tolerated rule was broken)"
    out = [f"<h3>{kind}: {_e(', '.join(v.rules))}, {len(v.steps)} steps</h3>"]
    for rid in v.rules:
        if rid in RULES:
            rule = RULES[rid]
            out.append(f"<p><b>{_e(rid)}</b>: {_e(rule.statement)}<br><small class=meta>source: {_e(rule.source)}</small></p>")
    out.append(f"<pre>{_e(format_failure(v))}</pre>")
    if "svg" in f.files and os.path.exists(f.files["svg"]):
        out.append(f'<div class="drawing">{_inline_svg(f.files["svg"])}</div>')
    else:
        out.append(f'<p class="note">No drawing: {_e(f.render_note or "not rendered")}</p>')
    if "json" in f.files:
        out.append(f"<p>Replay it (no Hypothesis, exactly these steps): <code>{_e(_replay_command(f.files['json']))}</code></p>")
    links = ", ".join(f'<a href="{_e(_rel(p, report_dir))}">{_e(k)}</a>' for k, p in sorted(f.files.items()))
    out.append(f"<p class=meta>files: {links}</p>")
    return out


def write_html(results: Iterable[RunResult], report_dir: str, command: str = "") -> str:
    os.makedirs(report_dir, exist_ok=True)
    path = os.path.join(report_dir, "index.html")
    with open(path, "w", encoding="utf-8") as f:
        f.write(to_html(results, report_dir, command))
    return path


def _ensure_dir(path: str) -> None:
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)

