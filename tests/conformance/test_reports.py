"""Counterexamples people can read: rule selection and tiers, drawings,
ITF traces, and the JSON / JUnit / HTML reports (the HTML checked in a
real headless browser)."""

from __future__ import annotations

import html
import json
import os
import platform
import xml.etree.ElementTree as ET

import pytest
from asyncspec.conformance.output import itf
from asyncspec.conformance.output import render
from asyncspec.conformance.output import report
from asyncspec.conformance.engine.verdicts import Recorder, Step, Violation
from asyncspec.conformance.cli import main
from asyncspec.conformance.output.counterexample import read, save, to_data
from asyncspec.conformance.engine.verdicts import FAIL, Finding, NA, PASS, RunResult, UNTESTED, WARN
from asyncspec.conformance.engine.runner import replay_file, run
from asyncspec.conformance.engine.selection import EXCLUDED, NOT_SELECTED, SHOULD_ONLY, BadSelection, Selection
from asyncspec.spec import RULES, all_machines

from tests.support import browser

all_machines()
on_x86_64 = pytest.mark.skipif(
    platform.machine().lower() not in ("x86_64", "amd64"), reason="the broken switchers are x86-64 builds"
)


# ------------------------------------------------------------- selection


def test_selection_statuses_and_bad_patterns():
    sel = Selection.of(["RDY-ET-*, RDY-LT-1"], ["RDY-ET-2"])
    assert sel.status(RULES["RDY-ET-1"]) == "enforced"
    assert sel.status(RULES["RDY-ET-2"]) == EXCLUDED
    assert sel.status(RULES["RDY-CTL-1"]) == NOT_SELECTED
    assert sel.enforces("RDY-LT-1") and not sel.enforces("RDY-CTL-1")
    assert sel.enforces("TGT-1")  # a target's own failure is never tolerated
    # SHOULD rules warn unless --strict.
    assert RULES["RDY-POLL-3"].tier == "SHOULD" and RULES["FIB-STACK-4"].tier == "SHOULD"
    assert Selection().status(RULES["FIB-STACK-4"]) == SHOULD_ONLY
    assert Selection(strict=True).status(RULES["FIB-STACK-4"]) == "enforced"
    with pytest.raises(BadSelection, match="--rules 'RDY-NOPE-\\*' matches no rule"):
        Selection.of(["RDY-NOPE-*"])
    with pytest.raises(BadSelection, match="--exclude"):
        Selection.of([], ["nothing"])


def test_list_is_a_dry_run(capsys):
    assert main(["run", "readiness", "--rules", "RDY-ET-*", "--exclude", "RDY-ET-2", "--list"]) == 0
    out = capsys.readouterr().out
    assert "== readiness against impl (profile linux-epoll)" in out
    assert "* RDY-ET-1" in out and "RDY-ET-2" in out and "excluded" in out
    assert "RDY-CTL-1" not in out  # not selected: not listed
    assert "runs," not in out  # nothing ran
    assert main(["run", "fiber", "--list", "--target", "greenlet"]) == 0
    out = capsys.readouterr().out
    assert "FIB-X86-1" in out and "n/a (target lacks" in out
    assert main(["run", "readiness", "--rules", "FIB-*", "--list"]) == 2
    assert "selects no rule of area 'readiness'" in capsys.readouterr().err


def test_rules_focuses_a_run_on_the_selected_rules():
    res = run("readiness", "tests.fixtures.broken_reactors:EdgeAsLevel", max_examples=300, seed=3, selection=Selection.of(["RDY-ET-*"]))
    assert {r.rule.id for r in res.results} == {r.id for r in RULES.match("RDY-ET-*")}
    assert res.failure is not None and "RDY-ET-1" in res.failure.rules


def test_excluded_rule_is_tolerated_with_a_warning():
    # A report of an ET registration with no new edge breaks RDY-ET-1 and
    # also a general rule (RDY-EV-3, or RDY-ONESHOT-1 for a oneshot one): it
    # is tolerated only when every rule it breaks is.
    only_et = run(
        "readiness", "tests.fixtures.broken_reactors:EdgeAsLevel", max_examples=150, seed=1, selection=Selection.of([], ["RDY-ET-*"])
    )
    assert only_et.failure is not None
    assert any(not r.startswith("RDY-ET-") for r in only_et.failure.rules), only_et.failure.rules
    # Enforcing only rules the bug cannot touch: every violation is a warning.
    res = run(
        "readiness", "tests.fixtures.broken_reactors:EdgeAsLevel", max_examples=150, seed=1, selection=Selection.of(["RDY-LT-*,RDY-SRC-*"])
    )
    assert res.ok, res.failure
    status = {r.rule.id: r for r in res.results}
    assert set(status) == {r.id for r in RULES.match("RDY-LT-*") + RULES.match("RDY-SRC-*")}
    assert status["RDY-LT-1"].status == PASS
    assert any("RDY-ET-1" in w.rules for w in res.warnings)
    assert all(len(w.steps) <= 8 for w in res.warnings)


@on_x86_64
def test_should_rule_warns_by_default_and_fails_under_strict(tmp_path):
    res = run("fiber", "tests.fixtures.broken_switchers:FramePointerNotZeroed", max_examples=60, seed=1)
    assert res.ok, res.failure
    status = {r.rule.id: r.status for r in res.results}
    assert status["FIB-STACK-4"] == WARN
    # The deviation is a known one: the run goes on after it, so the MUST
    # rules checked by the same step are still exercised and pass.
    assert status["FIB-X86-1"] == PASS and status["FIB-STACK-1"] == PASS
    (warning,) = res.warnings
    assert warning.rules == ("FIB-STACK-4",) and len(warning.steps) <= 8
    # A warning's file replays enforcing every rule: the same verdict.
    files, _note = save(warning, "tests.fixtures.broken_switchers:FramePointerNotZeroed", str(tmp_path), fatal=False)
    assert os.path.basename(files["json"]).startswith("warning-")
    _data, again = replay_file(files["json"], isolate=False)
    assert list(again.violated) == ["FIB-STACK-4"]

    strict = run("fiber", "tests.fixtures.broken_switchers:FramePointerNotZeroed", max_examples=60, seed=1, selection=Selection(strict=True))
    assert not strict.ok and strict.failure.rules == ("FIB-STACK-4",)
    assert {r.rule.id: r.status for r in strict.results}["FIB-STACK-4"] == FAIL


def test_strict_fails_on_rules_never_exercised():
    loose = run("readiness", "impl", max_examples=2, steps=3, seed=1, isolate=False)
    assert loose.ok and any(r.status == UNTESTED for r in loose.results)
    strict = run("readiness", "impl", max_examples=2, steps=3, seed=1, isolate=False, selection=Selection(strict=True))
    assert not strict.ok and strict.failure is None


# ---------------------------------------------------------------- drawing


def _violation(n_steps: int) -> Violation:
    """A synthetic n-step readiness trace whose last poll breaks RDY-ET-1."""
    steps = []
    for i in range(1, n_steps):
        steps.append(
            Step(i, "write_peer", {"slot": 0, "n": 1}, ("n", 1), (("n", 1),), (f"[0] pipe_r rx={i - 1}",), (f"[0] pipe_r rx={i}",))
        )
    steps.append(
        Step(n_steps, "poll", {"max_events": 1}, ((0, 1),), ((),), ("[0] pipe_r rx=9 <reg & co>",), (), ("RDY-ET-1",))
    )
    return Violation("readiness", "linux-epoll", "demo", steps)


needs_dot = pytest.mark.skipif(render.dot_available() is not None, reason="no Graphviz `dot` (the project's setup installs it)")


@needs_dot
@pytest.mark.parametrize("n", [3, 20])
def test_drawing_shows_steps_and_the_broken_rule(tmp_path, n):
    data = to_data(_violation(n), "demo")
    dot = render.to_dot(data)
    assert dot.count("->") == n - 1 + 1  # the chain, and the rule note's edge
    assert "RDY-ET-1" in dot and "spec allowed:" in dot and "target did:" in dot
    assert "&lt;reg &amp; co&gt;" in dot  # state text is escaped for HTML labels
    files, note = render.render(dot, str(tmp_path / f"cx{n}"), ("svg", "png"))
    assert note == ""
    svg = html.unescape(open(files["svg"]).read())
    assert "<svg" in svg and "RDY-ET-1" in svg and f">{n}<" in svg
    assert browser.distinct_rows(files["png"]) > 10  # a real picture, not a blank


def test_without_dot_the_dot_file_is_written_and_the_reason_given(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    files, note = render.render(render.to_dot(to_data(_violation(3), "demo")), str(tmp_path / "cx"))
    assert set(files) == {"dot"} and os.path.exists(files["dot"])
    assert "`dot` is not on PATH" in note


@needs_dot
def test_draw_command_redraws_a_saved_file(tmp_path, capsys):
    files, _ = save(_violation(3), "demo", str(tmp_path))
    os.remove(files["svg"])
    assert main(["draw", files["json"], "--png"]) == 0
    assert os.path.exists(files["svg"]) and os.path.exists(files["json"][:-5] + ".png")
    assert main(["draw", str(tmp_path / "missing.json")]) == 2


# -------------------------------------------------------------------- ITF


def test_itf_trace_is_well_formed():
    v = run("readiness", "tests.fixtures.broken_reactors:StaleToken", max_examples=300, seed=2).failure
    assert v is not None
    trace = itf.from_counterexample(to_data(v, "tests.fixtures.broken_reactors:StaleToken"))
    assert trace["#meta"]["format"] == "ITF"
    assert len(trace["states"]) == len(v.steps) + 1
    for i, state in enumerate(trace["states"]):
        assert set(state) - {"#meta"} == set(trace["vars"])
        assert state["#meta"]["index"] == i
        assert set(state["possible"]) == {"#set"} and set(state["violated"]) == {"#set"}
    first, last = trace["states"][0], trace["states"][-1]
    assert first["action"] == "init" and len(first["possible"]["#set"]) == 1
    # The initial state is the model's own, field by field.
    assert "slots" in first["possible"]["#set"][0]
    assert last["violated"] == {"#set": ["RDY-EV-1"]} and last["possible"] == {"#set": []}

    def ints(x):
        if isinstance(x, dict):
            return [y for v in x.values() for y in ints(v)]
        if isinstance(x, list):
            return [y for v in x for y in ints(v)]
        return [x] if isinstance(x, int) and not isinstance(x, bool) else []

    assert all(abs(n) < 2**53 for n in ints(trace))
    assert itf.value(2**64 - 1) == {"#bigint": str(2**64 - 1)}


# ---------------------------------------------------------------- reports


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """A planted bug in each area, run, saved and reported."""
    out = tmp_path_factory.mktemp("reports")
    runs = [run("readiness", "tests.fixtures.broken_reactors:StaleToken", max_examples=300, seed=2)]
    if platform.machine().lower() in ("x86_64", "amd64"):
        runs.append(run("fiber", "tests.fixtures.broken_switchers:RbxNotRestored", max_examples=100, seed=1))
    for res in runs:
        assert res.failure is not None
        files, note = save(res.failure, res.target, str(out / "cx"))
        res.findings.append(Finding(res.failure, True, files, note))
    report.write_json(runs, str(out / "results.json"), "asyncspec run ...")
    report.write_junit(runs, str(out / "junit.xml"))
    report.write_html(runs, str(out / "report"), "asyncspec run ...")
    return out, runs


def test_json_results(planted):
    out, runs = planted
    data = json.loads((out / "results.json").read_text())
    assert data["format"] == "asyncspec-results/1" and data["ok"] is False
    assert [r["area"] for r in data["runs"]] == [r.area for r in runs]
    for run_data, res in zip(data["runs"], runs):
        statuses = {r["id"]: r["status"] for r in run_data["rules"]}
        assert [rid for rid, s in statuses.items() if s == FAIL] == list(res.failure.rules)
        assert sum(run_data["actions"].values()) == res.recorder.steps
        (cx,) = run_data["counterexamples"]
        assert cx["verdict"] == "failure" and cx["replay"].startswith("asyncspec replay ")
        assert read(cx["files"]["json"])["violated"][0]["id"] == res.failure.rules[0]
        assert all(os.path.exists(p) for p in cx["files"].values())


def test_junit_has_one_testcase_per_rule(planted):
    out, runs = planted
    root = ET.parse(out / "junit.xml").getroot()
    suites = root.findall("testsuite")
    assert len(suites) == len(runs)
    for suite, res in zip(suites, runs):
        cases = {c.get("name"): c for c in suite.findall("testcase")}
        assert set(cases) == {r.rule.id for r in res.results}
        assert int(suite.get("tests")) == len(cases)
        assert int(suite.get("failures")) == 1
        failing = cases[res.failure.rules[0]]
        assert "asyncspec replay" in failing.find("failure").text
        na = [r.rule.id for r in res.results if r.status == NA]
        assert all(cases[rid].find("skipped") is not None for rid in na)


@needs_dot
@pytest.mark.skipif(browser.chromium() is None, reason="no chromium (the project's setup installs Debian's)")
def test_html_report_renders_in_headless_chromium(planted):
    out, runs = planted
    url = (out / "report" / "index.html").as_uri()
    dom = browser.dump_dom(url)
    rows = sum(len(r.results) for r in runs)
    # Set by the page's own script after load: each drawing laid out with a real size.
    assert f'data-check="svgs={len(runs)} drawn={len(runs)} rule-rows={rows}"' in dom
    for res in runs:
        assert res.failure.rules[0] in dom and "asyncspec replay" in dom
    shot = browser.screenshot(url, str(out / "report.png"))
    assert browser.distinct_rows(shot) > 100


def test_cli_writes_every_report(tmp_path, capsys):
    args = ["run", "readiness", "-t", "tests.fixtures.broken_reactors:StaleToken", "-q", "-n", "300", "--seed", "2", "--out", str(tmp_path / "cx")]
    args += ["--json", str(tmp_path / "r.json"), "--junit", str(tmp_path / "j.xml"), "--report", str(tmp_path / "html")]
    assert main(args) == 1
    printed = capsys.readouterr().out
    assert "drawing:" in printed and "report:" in printed
    assert json.loads((tmp_path / "r.json").read_text())["runs"][0]["counterexamples"]
    assert ET.parse(tmp_path / "j.xml").getroot().get("failures") == "1"
    assert "<svg" in (tmp_path / "html" / "index.html").read_text()


def test_a_run_result_without_findings_reports_cleanly(tmp_path):
    res = RunResult("readiness", "impl", "linux-epoll", [], Recorder(), 0.0)
    report.write_json([res], str(tmp_path / "r.json"))
    report.write_junit([res], str(tmp_path / "j.xml"))
    assert json.loads((tmp_path / "r.json").read_text())["ok"] is True
