"""Adding an area is adding its packages: a toy area from the tests goes
through `asyncspec run`, `rules`, `targets`, the docs and the matrix with
nothing registered anywhere else."""

from __future__ import annotations

import os

import pytest

from tests.fixtures import toy_area

from asyncspec import spec
from asyncspec.conformance import targets
from asyncspec.conformance.cli import main
from asyncspec.conformance.docgen.matrix import write_matrix
from asyncspec.conformance.docgen.pages import write_docs
from asyncspec.conformance.engine.runner import UsageError, run
from asyncspec.conformance.engine.verdicts import FAIL, PASS


@pytest.fixture(autouse=True)
def toy():
    with toy_area.installed() as area:
        yield area


def test_the_area_is_found_beside_the_built_in_ones(toy):
    assert spec.areas()["toy"] is toy
    assert spec.machine_for("toy") is toy.machine
    assert {"fiber", "pin", "readiness", "waker"} <= set(spec.AREAS) and "toy" not in spec.AREAS
    assert targets.builtin("toy") == {"counter": toy_area.ToyCounter}


def test_unregistered_it_is_gone_with_its_rules(toy):
    spec.unregister("toy")
    try:
        assert "toy" not in spec.areas() and "TOY-1" not in spec.RULES
    finally:
        spec.register(toy_area.make_area())


def test_run_judges_its_rules_in_a_worker_process():
    res = run("toy", "counter", max_examples=30, seed=1)
    assert res.ok and {r.rule.id: r.status for r in res.results} == {"TOY-1": PASS, "TOY-2": PASS}


def test_a_broken_target_of_the_area_is_caught():
    res = run("toy", "tests.fixtures.toy_area:ForgetfulCounter", max_examples=50, seed=1)
    assert res.failure is not None and res.failure.rules == ("TOY-1",)
    assert [s.action for s in res.failure.steps] == ["incr", "incr", "read"]
    assert {r.rule.id: r.status for r in res.results}["TOY-1"] == FAIL


def test_a_feature_the_area_does_not_declare_is_an_error_not_an_n_a():
    with pytest.raises(UsageError, match=r"unknown toy feature\(s\) bounde .*declares: bounded"):
        run("toy", "tests.fixtures.toy_area:MisspeltFeature", max_examples=1)


def test_rules_targets_and_run_from_the_command_line(capsys):
    assert main(["rules", "toy"]) == 0
    out = capsys.readouterr().out
    assert "toy: 2 rules" in out and "TOY-2" in out
    assert "needs target features: bounded" in out and "bounded        the counter stops at 3" in out
    assert main(["targets", "toy"]) == 0
    assert "counter" in capsys.readouterr().out
    assert main(["run", "toy", "--target", "counter", "--max-examples", "20", "--seed", "1", "--quiet"]) == 0
    assert "2 passed, 0 failed" in capsys.readouterr().out


def test_the_docs_have_a_page_with_a_diagram_and_the_matrix_a_section(tmp_path):
    os.makedirs(tmp_path / "spec" / "diagrams")
    written = write_docs(str(tmp_path), outcomes=[], report=lambda line: None)
    page = (tmp_path / "spec" / "toy.md").read_text()
    assert "TOY-1" in page and "A read returns the number of increments so far." in page
    assert str(tmp_path / "spec" / "diagrams" / "toy-states.dot") in written
    assert "[toy](toy.md)" in (tmp_path / "spec" / "README.md").read_text()
    path = write_matrix(str(tmp_path), ["toy"], max_examples=20, seed=1, progress=lambda line: None)
    matrix = open(path).read()
    assert "## toy" in matrix and "`counter`" in matrix
    assert "| [TOY-1](spec/toy.md#toy-1) | MUST | pass |" in matrix
