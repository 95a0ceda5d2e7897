"""The pytest plugin: a runtime's own test suite runs the conformance suite.

    pytest --asyncspec-target=mypkg.adapter:Target --asyncspec-area=readiness

adds one test per rule of the area (``asyncspec/readiness::RDY-ET-1``),
plus ``TGT-1`` (the target survives every step).  The area is checked
once, on the first of its tests; each test then reports its rule: pass;
fail with the counterexample, the drawing's path and the replay command;
skip when the rule is not applicable, not selected, or was never exercised
(a failure with ``--asyncspec-strict``).  The target may be anything
`asyncspec run --target` takes: a built-in name, ``module:attribute``
(the rootdir is importable) or ``exec:COMMAND``.

Registered through the ``pytest11`` entry point, so installing asyncspec
is enough; without ``--asyncspec-target`` it adds nothing.  That is also
why the engine is imported inside the hooks, not at the top: every pytest
run of a project that has asyncspec installed loads this module, and it
must cost nothing there.
"""

from __future__ import annotations

import sys
import warnings

import pytest

_RUNS = pytest.StashKey[dict]()


def pytest_addoption(parser) -> None:
    group = parser.getgroup("asyncspec", "conformance of a runtime to the asyncspec spec")
    group.addoption("--asyncspec-target", default=None, help="target: built-in name, module:attribute or exec:COMMAND")
    group.addoption("--asyncspec-area", action="append", default=[], help="area to check (repeatable; default: all)")
    group.addoption("--asyncspec-profile", default=None, help="spec profile (default: the area's)")
    group.addoption("--asyncspec-max-examples", type=int, default=200, help="Hypothesis examples per area (200)")
    group.addoption("--asyncspec-steps", type=int, default=None, help="maximum steps per example (40; a batched target: its own bound)")
    group.addoption("--asyncspec-seed", type=int, default=None, help="seed for a reproducible search")
    group.addoption("--asyncspec-rules", action="append", default=[], help="only rules matching these globs")
    group.addoption("--asyncspec-exclude", action="append", default=[], help="not rules matching these globs")
    group.addoption("--asyncspec-strict", action="store_true", help="SHOULD rules enforced; never-exercised rules fail")
    group.addoption("--asyncspec-out", default="asyncspec-out", help="where counterexample files go (asyncspec-out)")


class AsyncspecFailure(Exception):
    """A rule the target broke (the message is the whole explanation)."""


def _config_runs(config) -> dict:
    if _RUNS not in config.stash:
        config.stash[_RUNS] = {}
    return config.stash[_RUNS]


def _selection(config):
    from asyncspec.conformance.engine.selection import Selection

    return Selection.of(
        config.getoption("asyncspec_rules"), config.getoption("asyncspec_exclude"), config.getoption("asyncspec_strict")
    )


def _run(config, area: str):
    """The area's run (done once), with its counterexamples saved."""
    runs = _config_runs(config)
    if area not in runs:
        from asyncspec.conformance.engine.runner import run
        from asyncspec.conformance.engine.verdicts import Finding
        from asyncspec.conformance.output.counterexample import save

        root = str(config.rootpath)
        if root not in sys.path:
            sys.path.insert(0, root)  # a project's own adapter module is importable
        target = config.getoption("asyncspec_target")
        res = run(
            area,
            target=target,
            profile=config.getoption("asyncspec_profile"),
            max_examples=config.getoption("asyncspec_max_examples"),
            steps=config.getoption("asyncspec_steps"),
            seed=config.getoption("asyncspec_seed"),
            selection=_selection(config),
        )
        found = ([(res.failure, True)] if res.failure is not None else []) + [(w, False) for w in res.warnings]
        out = str(config.rootpath / config.getoption("asyncspec_out"))
        for violation, fatal in found:
            files, note = save(violation, target, out, config.getoption("asyncspec_seed"), fatal, selection=res.selection)
            res.findings.append(Finding(violation, fatal, files, note))
        runs[area] = res
    return runs[area]


def _explain(res, rules: tuple[str, ...]) -> str:
    from asyncspec.conformance.output.text import format_failure

    finding = next((f for f in res.findings if set(rules) & set(f.violation.rules)), None)
    if finding is None:
        return res.error or "broken"
    text = format_failure(finding.violation)
    drawing = finding.files.get("svg") or finding.files.get("dot")
    text += f"\n\n  drawing: {drawing}" + (f" ({finding.render_note})" if finding.render_note else "")
    text += f"\n  replay:  asyncspec replay {finding.files['json']}"
    return text


class RuleItem(pytest.Item):
    def __init__(self, *, area: str, rule_id: str, **kw):
        super().__init__(**kw)
        self.area, self.rule_id = area, rule_id
        self.add_marker(pytest.mark.asyncspec)

    def runtest(self) -> None:
        from asyncspec.conformance.engine.runner import UsageError
        from asyncspec.conformance.engine.verdicts import FAIL, NA, PASS, SKIP, UNTESTED, WARN

        try:
            res = _run(self.config, self.area)
        except UsageError as e:
            pytest.skip(f"asyncspec: {e}")
        if self.rule_id == "TGT-1":
            if res.failure is not None and "TGT-1" in res.failure.rules or res.error:
                raise AsyncspecFailure(_explain(res, ("TGT-1",)))
            return
        result = next((r for r in res.results if r.rule.id == self.rule_id), None)
        if result is None or result.status in (NA, SKIP):
            pytest.skip(f"{self.rule_id}: {result.why if result else 'not selected'}")
        if result.status == FAIL:
            raise AsyncspecFailure(f"{self.rule_id}: {result.rule.statement}\n\n" + _explain(res, (self.rule_id,)))
        if result.status == UNTESTED:
            if res.selection.strict:
                raise AsyncspecFailure(f"{self.rule_id} was never exercised (--asyncspec-strict)")
            pytest.skip(f"{self.rule_id}: never exercised (more --asyncspec-max-examples may reach it)")
        if result.status == WARN:
            warnings.warn(f"asyncspec {self.rule_id} (SHOULD): {result.why}\n" + _explain(res, (self.rule_id,)))
        assert result.status in (PASS, WARN)

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, AsyncspecFailure):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style)

    def reportinfo(self):
        return self.path, None, f"asyncspec {self.area} {self.rule_id}"


class AreaCollector(pytest.Collector):
    def __init__(self, *, area: str, **kw):
        super().__init__(**kw)
        self.area = area

    def collect(self):
        from asyncspec.conformance.engine.runner import selected_rules

        for rule in selected_rules(self.area, _selection(self.config)):
            yield RuleItem.from_parent(self, name=rule.id, nodeid=f"{self.nodeid}::{rule.id}", area=self.area, rule_id=rule.id)
        yield RuleItem.from_parent(self, name="TGT-1", nodeid=f"{self.nodeid}::TGT-1", area=self.area, rule_id="TGT-1")


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", "asyncspec: a rule of the asyncspec conformance suite")


def pytest_collection_modifyitems(session, config, items) -> None:
    if not config.getoption("asyncspec_target"):
        return
    from asyncspec.spec import machines

    known = machines()
    areas = config.getoption("asyncspec_area") or sorted(known)
    for area in areas:
        if area not in known:
            raise pytest.UsageError(f"--asyncspec-area: unknown area {area!r} (known: {', '.join(sorted(known))})")
    try:
        _selection(config)
    except ValueError as e:
        raise pytest.UsageError(str(e)) from None
    for area in areas:
        collector = AreaCollector.from_parent(session, name=f"asyncspec/{area}", nodeid=f"asyncspec/{area}", area=area)
        items.extend(collector.collect())
