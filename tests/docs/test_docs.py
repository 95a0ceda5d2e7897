"""The generated docs are what `asyncspec docs` makes from the spec now.

The committed docs are regenerated once into a temporary folder and compared
file by file; their proof status is the test run's one proof table (the
`proof_table` fixture, shared with test_model.py).
"""

from __future__ import annotations

import html
import os
import re

import pytest

from asyncspec.conformance import targets
from asyncspec.conformance.docgen.diagrams import dot_digest, explore, stamp_of
from asyncspec.conformance.docgen.pages import area_views, write_docs
from asyncspec.model.prove import PROPERTIES
from asyncspec.spec import RULES, all_machines, machines

pytestmark = pytest.mark.slow  # they regenerate the docs, build the site and open it in a browser

DOCS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "docs")


def _files(root: str) -> set[str]:
    out = set()
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d != "site"]
        out |= {os.path.relpath(os.path.join(folder, f), root) for f in files}
    return out


@pytest.fixture(scope="module")
def fresh(tmp_path_factory, proof_table):
    out = tmp_path_factory.mktemp("docs")
    written = write_docs(str(out), proof_table.outcomes, report=lambda line: None)
    return str(out), {os.path.relpath(p, out) for p in written}


def test_the_generated_docs_are_not_stale(fresh):
    out, written = fresh
    for name in sorted(written):
        committed = os.path.join(DOCS, name)
        assert os.path.exists(committed), f"docs/{name} is missing: run `asyncspec docs`"
        if name.endswith(".svg"):
            continue  # drawn by Graphviz, whose bytes vary by version: checked by its stamp below
        with open(os.path.join(out, name)) as fresh_file, open(committed) as old:
            assert fresh_file.read() == old.read(), f"docs/{name} is stale: run `asyncspec docs`"


def test_every_drawing_is_drawn_from_its_current_dot(fresh):
    out, written = fresh
    for name in sorted(n for n in written if n.endswith(".svg")):
        with open(os.path.join(DOCS, name[:-4] + ".dot")) as f:
            dot = f.read()
        with open(os.path.join(DOCS, name)) as f:
            svg = f.read()
        assert "<svg" in svg and "<g id=\"node" in svg, f"docs/{name} is not a Graphviz drawing"
        assert stamp_of(svg) == dot_digest(dot), f"docs/{name} was not drawn from its .dot: run `asyncspec docs`"


def test_no_drawing_is_left_over_from_a_removed_view(fresh):
    _out, written = fresh
    committed = {f"spec/diagrams/{n}" for n in os.listdir(os.path.join(DOCS, "spec", "diagrams"))}
    assert committed == {n for n in written if n.startswith("spec/diagrams/")}


def test_every_rule_is_in_the_catalog_with_its_source():
    all_machines()
    for area in machines():
        with open(os.path.join(DOCS, "spec", f"{area}.md")) as f:
            text = f.read()
        for rule in RULES.area(area):
            assert f"### {rule.id}\n" in text
            assert rule.source in text


def test_every_area_has_state_diagrams_explored_from_its_machine():
    for area in machines():
        with open(os.path.join(DOCS, "spec", f"{area}.md")) as f:
            text = f.read()
        views = area_views(area)
        assert views, area
        for view in views:
            graph = explore(view)
            assert len(graph.nodes) >= 3 and graph.edges, f"{area}/{view.name}: a picture of nothing"
            name = f"diagrams/{area}-{view.name}"
            assert f"]({name}.svg)" in text, f"{area}.md does not show {name}.svg"
            with open(os.path.join(DOCS, "spec", name + ".dot")) as f:
                dot = f.read()
            for facts in graph.nodes:  # every explored state is a box of the drawing
                assert all(html.escape(fact, quote=True) in dot for fact in facts)


def test_diagram_captions_cite_real_rules():
    for area in machines():
        for view in area_views(area):
            for rid in re.findall(r"\b[A-Z]{2,}-[A-Z0-9]+-\d+\b", view.caption):
                assert rid in RULES, f"{area}/{view.name} cites {rid}, which is no rule"


def test_every_area_page_has_its_proof_status_and_links_the_matrix():
    for area in machines():
        with open(os.path.join(DOCS, "spec", f"{area}.md")) as f:
            text = f.read()
        section = text.split("## What is proved\n", 1)[1].split("\n## ", 1)[0]
        for prop in PROPERTIES:
            if prop.area == area:
                assert prop.name in section, f"{area}: {prop.name!r} missing"
        assert not re.search(r"\d+\.\d+ ?s\b", section), "the time a proof took varies: it is not written"
        assert re.search(r"\| (proved|\*\*REFUTED\*\*|not yet) \|", section) or "Nothing is stated" in section
        assert f"](../conformance.md#{area})" in text


def test_the_matrix_lists_the_current_rules_and_targets():
    path = os.path.join(DOCS, "conformance.md")
    assert os.path.exists(path), "docs/conformance.md is missing: run `asyncspec docs --matrix`"
    with open(path) as f:
        text = f.read()
    all_machines()
    for area in machines():
        assert f"## {area}\n" in text, f"the matrix has no {area} section: run `asyncspec docs --matrix`"
        section = text.split(f"## {area}\n", 1)[1].split("\n## ", 1)[0]
        rows = re.findall(r"^\| \[([A-Z0-9-]+)\]", section, re.M)
        assert "| TGT-1 (the target survives every step) |" in section
        assert rows == [r.id for r in RULES.area(area)], f"the {area} matrix is stale: run `asyncspec docs --matrix`"
        header = next(line for line in section.splitlines() if line.startswith("| rule |"))
        assert re.findall(r"`([^`]+)`", header) == sorted(targets.builtin(area)), f"{area}: targets changed"
        for link in re.findall(r"\]\((counterexamples/[^)]+)\)", section):
            assert os.path.exists(os.path.join(DOCS, link)), link
